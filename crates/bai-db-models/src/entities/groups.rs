//! `groups`: projects (called groups in the schema) of a domain: resource limit, allowed vfolder
//! hosts, dotfiles, resource policy and container registry.

use crate::entities::enums::ProjectType;
use crate::entities::{ResourceSlot, VFolderHostPermissions};
use sea_orm::entity::prelude::*;

/// One row of `groups`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "groups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub created_at: Option<DateTimeWithTimeZone>,
    /// No trigger updates it: every UPDATE must set it, as the reference's SQLAlchemy does.
    pub modified_at: Option<DateTimeWithTimeZone>,
    pub integration_id: Option<String>,
    pub domain_name: String,
    /// Python's default leaves the JSON string `"{}"` here; it reads as an empty map.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub total_resource_slots: Option<ResourceSlot>,
    #[sea_orm(column_type = "JsonBinary")]
    pub allowed_vfolder_hosts: VFolderHostPermissions,
    /// msgpack array of `{path, perm, data}`; empty is
    /// [`EMPTY_DOTFILES`](crate::entities::EMPTY_DOTFILES).
    #[sea_orm(column_type = "VarBinary(StringLen::None)")]
    pub dotfiles: Vec<u8>,
    pub resource_policy: String,
    pub r#type: ProjectType,
    /// `{}` or `{"registry": ..., "project": ...}`.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub container_registry: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `association_groups_users.group_id` refers to this row.
    #[sea_orm(has_many = "super::association_groups_users::Entity")]
    AssociationGroupsUsers,
    /// `domain_name` -> `domains.name` (fk_groups_domain_name_domains).
    #[sea_orm(
        belongs_to = "super::domains::Entity",
        from = "Column::DomainName",
        to = "super::domains::Column::Name",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Domain,
    /// `endpoint_tokens.project` refers to this row.
    #[sea_orm(has_many = "super::endpoint_tokens::Entity")]
    EndpointTokens,
    /// `endpoints.project` refers to this row.
    #[sea_orm(has_many = "super::endpoints::Entity")]
    Endpoints,
    /// `kernels.group_id` refers to this row.
    #[sea_orm(has_many = "super::kernels::Entity")]
    Kernels,
    /// `resource_policy` -> `project_resource_policies.name`
    /// (fk_groups_resource_policy_project_resource_policies).
    #[sea_orm(
        belongs_to = "super::project_resource_policies::Entity",
        from = "Column::ResourcePolicy",
        to = "super::project_resource_policies::Column::Name",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    ResourcePolicy,
    /// `routings.project` refers to this row.
    #[sea_orm(has_many = "super::routings::Entity")]
    Routings,
    /// `session_templates.group_id` refers to this row.
    #[sea_orm(has_many = "super::session_templates::Entity")]
    SessionTemplates,
    /// `sessions.group_id` refers to this row.
    #[sea_orm(has_many = "super::sessions::Entity")]
    Sessions,
    /// `sgroups_for_groups.group` refers to this row.
    #[sea_orm(has_many = "super::sgroups_for_groups::Entity")]
    SgroupsForGroups,
}

impl Related<super::association_groups_users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AssociationGroupsUsers.def()
    }
}

impl Related<super::domains::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Domain.def()
    }
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

impl Related<super::kernels::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Kernels.def()
    }
}

impl Related<super::project_resource_policies::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ResourcePolicy.def()
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

impl Related<super::sgroups_for_groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SgroupsForGroups.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
