//! `sessions`: one row per compute session, with its owner, resource group, resources, mounts and
//! status history. Its containers are in `kernels`.
//!
//! Enum-like strings: `session_type` and `status`/`result` hold upper-case names, `cluster_mode`
//! the value (`single-node`) when the reference's registry writes it.

use crate::entities::ResourceSlot;
use crate::entities::enums::{SessionResult, SessionStatus, SessionType};
use sea_orm::entity::prelude::*;

/// One row of `sessions`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub creation_id: Option<String>,
    pub name: Option<String>,
    pub session_type: SessionType,
    /// `single-node`/`multi-node` as the reference's registry writes it, `SINGLE_NODE` from the
    /// server default.
    pub cluster_mode: String,
    pub cluster_size: i32,
    pub agent_ids: Option<Vec<String>>,
    pub scaling_group_name: Option<String>,
    /// Rows the reference's registry wrote hold `{"{","}"}` (a Python default quirk).
    pub target_sgroup_names: Option<Vec<String>>,
    pub domain_name: String,
    pub group_id: Uuid,
    pub user_uuid: Uuid,
    pub access_key: Option<String>,
    /// Canonical image names (`images.name`).
    pub images: Option<Vec<String>>,
    pub tag: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub occupying_slots: ResourceSlot,
    #[sea_orm(column_type = "JsonBinary")]
    pub requested_slots: ResourceSlot,
    /// JSON array of VFolderMount objects (`name`, `vfid`, `vfsubpath`, `host_path`, `kernel_path`,
    /// `mount_perm`, `usage_mode`).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub vfolder_mounts: Option<Json>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub environ: Option<Json>,
    pub bootstrap_script: Option<String>,
    pub use_host_network: bool,
    pub timeout: Option<i64>,
    pub created_at: Option<DateTimeWithTimeZone>,
    pub terminated_at: Option<DateTimeWithTimeZone>,
    pub starts_at: Option<DateTimeWithTimeZone>,
    pub status: SessionStatus,
    pub status_info: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub status_data: Option<Json>,
    /// Status NAME -> ISO 8601 time it was entered.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub status_history: Option<Json>,
    /// Rows the reference wrote without a URL hold the string `'None'`: read it as no URL.
    #[sea_orm(column_type = "Text", nullable)]
    pub callback_url: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub startup_command: Option<String>,
    pub result: SessionResult,
    pub num_queries: Option<i64>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub last_stat: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `domain_name` -> `domains.name` (fk_sessions_domain_name_domains).
    #[sea_orm(
        belongs_to = "super::domains::Entity",
        from = "Column::DomainName",
        to = "super::domains::Column::Name",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    Domain,
    /// `group_id` -> `groups.id` (fk_sessions_group_id_groups).
    #[sea_orm(
        belongs_to = "super::groups::Entity",
        from = "Column::GroupId",
        to = "super::groups::Column::Id",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    Group,
    /// `kernels.session_id` refers to this row.
    #[sea_orm(has_many = "super::kernels::Entity")]
    Kernels,
    /// `access_key` -> `keypairs.access_key` (fk_sessions_access_key_keypairs).
    #[sea_orm(
        belongs_to = "super::keypairs::Entity",
        from = "Column::AccessKey",
        to = "super::keypairs::Column::AccessKey",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    Keypair,
    /// `routings.session` refers to this row.
    #[sea_orm(has_many = "super::routings::Entity")]
    Routings,
    /// `scaling_group_name` -> `scaling_groups.name`
    /// (fk_sessions_scaling_group_name_scaling_groups).
    #[sea_orm(
        belongs_to = "super::scaling_groups::Entity",
        from = "Column::ScalingGroupName",
        to = "super::scaling_groups::Column::Name",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    ScalingGroup,
    /// `user_uuid` -> `users.uuid` (fk_sessions_user_uuid_users).
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserUuid",
        to = "super::users::Column::Uuid",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    User,
}

impl Related<super::domains::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Domain.def()
    }
}

impl Related<super::groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Group.def()
    }
}

impl Related<super::kernels::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Kernels.def()
    }
}

impl Related<super::keypairs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Keypair.def()
    }
}

impl Related<super::routings::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Routings.def()
    }
}

impl Related<super::scaling_groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ScalingGroup.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
