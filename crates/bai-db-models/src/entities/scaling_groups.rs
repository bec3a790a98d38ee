//! `scaling_groups`: resource groups (scaling groups in the schema): a pool of agents with its
//! scheduler and scheduler options.

use sea_orm::entity::prelude::*;

/// One row of `scaling_groups`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "scaling_groups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub is_public: bool,
    pub created_at: Option<DateTimeWithTimeZone>,
    pub wsproxy_addr: Option<String>,
    pub wsproxy_api_token: Option<String>,
    pub driver: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub driver_opts: Json,
    pub scheduler: String,
    pub use_host_network: bool,
    /// ScalingGroupOpts: `allowed_session_types`, `pending_timeout`, `config`,
    /// `agent_selection_strategy`, `roundrobin`.
    #[sea_orm(column_type = "JsonBinary")]
    pub scheduler_opts: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `agents.scaling_group` refers to this row.
    #[sea_orm(has_many = "super::agents::Entity")]
    Agents,
    /// `endpoints.resource_group` refers to this row.
    #[sea_orm(has_many = "super::endpoints::Entity")]
    Endpoints,
    /// `kernels.scaling_group` refers to this row.
    #[sea_orm(has_many = "super::kernels::Entity")]
    Kernels,
    /// `sessions.scaling_group_name` refers to this row.
    #[sea_orm(has_many = "super::sessions::Entity")]
    Sessions,
    /// `sgroups_for_domains.scaling_group` refers to this row.
    #[sea_orm(has_many = "super::sgroups_for_domains::Entity")]
    SgroupsForDomains,
    /// `sgroups_for_groups.scaling_group` refers to this row.
    #[sea_orm(has_many = "super::sgroups_for_groups::Entity")]
    SgroupsForGroups,
    /// `sgroups_for_keypairs.scaling_group` refers to this row.
    #[sea_orm(has_many = "super::sgroups_for_keypairs::Entity")]
    SgroupsForKeypairs,
}

impl Related<super::agents::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Agents.def()
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

impl Related<super::sgroups_for_groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SgroupsForGroups.def()
    }
}

impl Related<super::sgroups_for_keypairs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SgroupsForKeypairs.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
