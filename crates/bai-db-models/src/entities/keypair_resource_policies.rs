//! `keypair_resource_policies`: per-keypair limits: total resource slots (`{}` = only what
//! `default_for_unspecified` grants), concurrent and pending sessions, containers per session, idle
//! timeout, vfolder hosts.

use crate::entities::enums::DefaultForUnspecified;
use crate::entities::{ResourceSlot, VFolderHostPermissions};
use sea_orm::entity::prelude::*;

/// One row of `keypair_resource_policies`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "keypair_resource_policies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub created_at: Option<DateTimeWithTimeZone>,
    pub default_for_unspecified: DefaultForUnspecified,
    #[sea_orm(column_type = "JsonBinary")]
    pub total_resource_slots: ResourceSlot,
    pub max_session_lifetime: i32,
    pub max_concurrent_sessions: i32,
    pub max_pending_session_count: Option<i32>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub max_pending_session_resource_slots: Option<ResourceSlot>,
    pub max_concurrent_sftp_sessions: i32,
    pub max_containers_per_session: i32,
    pub idle_timeout: i64,
    #[sea_orm(column_type = "JsonBinary")]
    pub allowed_vfolder_hosts: VFolderHostPermissions,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `keypairs.resource_policy` refers to this row.
    #[sea_orm(has_many = "super::keypairs::Entity")]
    Keypairs,
}

impl Related<super::keypairs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Keypairs.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
