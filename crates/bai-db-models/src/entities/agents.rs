//! `agents`: one row per agent the manager has ever seen (`id` is the agent id), with its resource
//! slots, address, ZeroMQ CURVE public key and liveness.

use crate::entities::ResourceSlot;
use crate::entities::enums::AgentStatus;
use sea_orm::entity::prelude::*;

/// One row of `agents`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "agents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub status: AgentStatus,
    pub status_changed: Option<DateTimeWithTimeZone>,
    pub region: String,
    pub scaling_group: String,
    pub schedulable: bool,
    #[sea_orm(column_type = "JsonBinary")]
    pub available_slots: ResourceSlot,
    #[sea_orm(column_type = "JsonBinary")]
    pub occupied_slots: ResourceSlot,
    pub addr: String,
    pub public_host: Option<String>,
    /// Z85-encoded ZeroMQ CURVE public key.
    pub public_key: Option<String>,
    pub first_contact: Option<DateTimeWithTimeZone>,
    pub lost_at: Option<DateTimeWithTimeZone>,
    pub version: String,
    pub architecture: String,
    /// Plugin name -> metadata. No server default: the reference writes `{}`.
    #[sea_orm(column_type = "JsonBinary")]
    pub compute_plugins: Json,
    pub auto_terminate_abusing_kernel: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `kernels.agent` refers to this row.
    #[sea_orm(has_many = "super::kernels::Entity")]
    Kernels,
    /// `scaling_group` -> `scaling_groups.name` (fk_agents_scaling_group_scaling_groups).
    #[sea_orm(
        belongs_to = "super::scaling_groups::Entity",
        from = "Column::ScalingGroup",
        to = "super::scaling_groups::Column::Name",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    ScalingGroup,
}

impl Related<super::kernels::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Kernels.def()
    }
}

impl Related<super::scaling_groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ScalingGroup.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
