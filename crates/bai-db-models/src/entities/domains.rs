//! `domains`: the top-level tenants: their total resource limit, the vfolder hosts and docker
//! registries they may use, and dotfiles copied into every session.

use crate::entities::{ResourceSlot, VFolderHostPermissions};
use sea_orm::entity::prelude::*;

/// One row of `domains`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "domains")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub created_at: Option<DateTimeWithTimeZone>,
    /// No trigger updates it: every UPDATE must set it, as the reference's SQLAlchemy does.
    pub modified_at: Option<DateTimeWithTimeZone>,
    /// Python's default leaves the JSON string `"{}"` here; it reads as an empty map.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub total_resource_slots: Option<ResourceSlot>,
    #[sea_orm(column_type = "JsonBinary")]
    pub allowed_vfolder_hosts: VFolderHostPermissions,
    /// Python's default `'{}'` left the array `{"{","}"}` in rows it wrote; write a real empty
    /// array.
    pub allowed_docker_registries: Vec<String>,
    pub integration_id: Option<String>,
    /// msgpack array of `{path, perm, data}`; empty is
    /// [`EMPTY_DOTFILES`](crate::entities::EMPTY_DOTFILES).
    #[sea_orm(column_type = "VarBinary(StringLen::None)")]
    pub dotfiles: Vec<u8>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `endpoint_tokens.domain` refers to this row.
    #[sea_orm(has_many = "super::endpoint_tokens::Entity")]
    EndpointTokens,
    /// `endpoints.domain` refers to this row.
    #[sea_orm(has_many = "super::endpoints::Entity")]
    Endpoints,
    /// `groups.domain_name` refers to this row.
    #[sea_orm(has_many = "super::groups::Entity")]
    Groups,
    /// `kernels.domain_name` refers to this row.
    #[sea_orm(has_many = "super::kernels::Entity")]
    Kernels,
    /// `routings.domain` refers to this row.
    #[sea_orm(has_many = "super::routings::Entity")]
    Routings,
    /// `session_templates.domain_name` refers to this row.
    #[sea_orm(has_many = "super::session_templates::Entity")]
    SessionTemplates,
    /// `sessions.domain_name` refers to this row.
    #[sea_orm(has_many = "super::sessions::Entity")]
    Sessions,
    /// `sgroups_for_domains.domain` refers to this row.
    #[sea_orm(has_many = "super::sgroups_for_domains::Entity")]
    SgroupsForDomains,
    /// `users.domain_name` refers to this row.
    #[sea_orm(has_many = "super::users::Entity")]
    Users,
}

impl Related<super::endpoint_tokens::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::EndpointTokens.def()
    }
}

impl Related<super::endpoints::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Endpoints.def()
    }
}

impl Related<super::groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Groups.def()
    }
}

impl Related<super::kernels::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Kernels.def()
    }
}

impl Related<super::routings::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Routings.def()
    }
}

impl Related<super::session_templates::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SessionTemplates.def()
    }
}

impl Related<super::sessions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Sessions.def()
    }
}

impl Related<super::sgroups_for_domains::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SgroupsForDomains.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Users.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
