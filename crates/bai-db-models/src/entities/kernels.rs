//! `kernels`: one row per container (kernel) of a session, with its agent, ports, resources and
//! status.

use crate::entities::ResourceSlot;
use crate::entities::enums::{KernelStatus, SessionResult, SessionType};
use sea_orm::entity::prelude::*;

/// One row of `kernels`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "kernels")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub session_id: Uuid,
    pub session_creation_id: Option<String>,
    pub session_name: Option<String>,
    pub session_type: SessionType,
    /// `single-node`/`multi-node` as the reference's registry writes it, `SINGLE_NODE` from the
    /// server default.
    pub cluster_mode: String,
    pub cluster_size: i32,
    pub cluster_role: String,
    pub cluster_idx: i32,
    pub local_rank: i32,
    /// The reference's default is `cluster_role` followed by `cluster_idx` (`main0`).
    pub cluster_hostname: String,
    pub scaling_group: Option<String>,
    pub agent: Option<String>,
    pub agent_addr: Option<String>,
    pub domain_name: String,
    pub group_id: Uuid,
    pub user_uuid: Uuid,
    pub access_key: Option<String>,
    pub image: Option<String>,
    pub architecture: Option<String>,
    pub registry: Option<String>,
    pub tag: Option<String>,
    pub container_id: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub occupied_slots: ResourceSlot,
    #[sea_orm(column_type = "JsonBinary")]
    pub requested_slots: ResourceSlot,
    #[sea_orm(column_type = "JsonBinary")]
    pub occupied_shares: Json,
    pub environ: Option<Vec<String>>,
    pub mounts: Option<Vec<String>>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub mount_map: Option<Json>,
    /// JSON array of VFolderMount objects.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub vfolder_mounts: Option<Json>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub attached_devices: Option<Json>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub resource_opts: Option<Json>,
    pub bootstrap_script: Option<String>,
    pub kernel_host: Option<String>,
    pub repl_in_port: i32,
    pub repl_out_port: i32,
    pub stdin_port: i32,
    pub stdout_port: i32,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub service_ports: Option<Json>,
    pub preopen_ports: Option<Vec<i32>>,
    pub use_host_network: bool,
    pub created_at: Option<DateTimeWithTimeZone>,
    pub terminated_at: Option<DateTimeWithTimeZone>,
    pub starts_at: Option<DateTimeWithTimeZone>,
    pub status: KernelStatus,
    pub status_changed: Option<DateTimeWithTimeZone>,
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
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub internal_data: Option<Json>,
    #[sea_orm(column_type = "VarBinary(StringLen::None)", nullable)]
    pub container_log: Option<Vec<u8>>,
    pub num_queries: Option<i64>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub last_stat: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `agent` -> `agents.id` (fk_kernels_agent_agents).
    #[sea_orm(
        belongs_to = "super::agents::Entity",
        from = "Column::Agent",
        to = "super::agents::Column::Id",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    Agent,
    /// `domain_name` -> `domains.name` (fk_kernels_domain_name_domains).
    #[sea_orm(
        belongs_to = "super::domains::Entity",
        from = "Column::DomainName",
        to = "super::domains::Column::Name",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    Domain,
    /// `group_id` -> `groups.id` (fk_kernels_group_id_groups).
    #[sea_orm(
        belongs_to = "super::groups::Entity",
        from = "Column::GroupId",
        to = "super::groups::Column::Id",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    Group,
    /// `access_key` -> `keypairs.access_key` (fk_kernels_access_key_keypairs).
    #[sea_orm(
        belongs_to = "super::keypairs::Entity",
        from = "Column::AccessKey",
        to = "super::keypairs::Column::AccessKey",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    Keypair,
    /// `scaling_group` -> `scaling_groups.name` (fk_kernels_scaling_group_scaling_groups).
    #[sea_orm(
        belongs_to = "super::scaling_groups::Entity",
        from = "Column::ScalingGroup",
        to = "super::scaling_groups::Column::Name",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    ScalingGroup,
    /// `session_id` -> `sessions.id` (fk_kernels_session_id_sessions).
    #[sea_orm(
        belongs_to = "super::sessions::Entity",
        from = "Column::SessionId",
        to = "super::sessions::Column::Id",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    Session,
    /// `user_uuid` -> `users.uuid` (fk_kernels_user_uuid_users).
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserUuid",
        to = "super::users::Column::Uuid",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    User,
    /// `vfolder_attachment.kernel` refers to this row.
    #[sea_orm(has_many = "super::vfolder_attachment::Entity")]
    VfolderAttachment,
}

impl Related<super::agents::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Agent.def()
    }
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

impl Related<super::keypairs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Keypair.def()
    }
}

impl Related<super::scaling_groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ScalingGroup.def()
    }
}

impl Related<super::sessions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl Related<super::vfolder_attachment::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::VfolderAttachment.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
