//! `vfolders`: virtual folders: storage host, quota scope, owner (user or project), usage mode and
//! status.

use crate::entities::enums::{
    VFolderOperationStatus, VFolderOwnershipType, VFolderPermission, VFolderUsageMode,
};
use sea_orm::entity::prelude::*;

/// One row of `vfolders`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "vfolders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub host: String,
    /// `user:<uuid>` or `project:<uuid>`.
    pub quota_scope_id: String,
    pub name: String,
    pub usage_mode: VFolderUsageMode,
    pub permission: Option<VFolderPermission>,
    pub max_files: Option<i32>,
    /// MiB.
    pub max_size: Option<i32>,
    pub num_files: Option<i32>,
    /// KiB (legacy).
    pub cur_size: Option<i32>,
    pub created_at: Option<DateTimeWithTimeZone>,
    pub last_used: Option<DateTimeWithTimeZone>,
    pub creator: Option<String>,
    pub unmanaged_path: Option<String>,
    pub ownership_type: VFolderOwnershipType,
    /// Owning user; no foreign key since 24.03.
    pub user: Option<Uuid>,
    /// Owning project; no foreign key since 24.03.
    pub group: Option<Uuid>,
    pub cloneable: bool,
    pub status: VFolderOperationStatus,
    /// Status VALUE -> ISO 8601 time it was entered.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub status_history: Option<Json>,
    pub status_changed: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `endpoints.model` refers to this row.
    #[sea_orm(has_many = "super::endpoints::Entity")]
    Endpoints,
    /// `vfolder_attachment.vfolder` refers to this row.
    #[sea_orm(has_many = "super::vfolder_attachment::Entity")]
    VfolderAttachment,
    /// `vfolder_invitations.vfolder` refers to this row.
    #[sea_orm(has_many = "super::vfolder_invitations::Entity")]
    VfolderInvitations,
    /// `vfolder_permissions.vfolder` refers to this row.
    #[sea_orm(has_many = "super::vfolder_permissions::Entity")]
    VfolderPermissions,
}

impl Related<super::endpoints::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Endpoints.def()
    }
}

impl Related<super::vfolder_attachment::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::VfolderAttachment.def()
    }
}

impl Related<super::vfolder_invitations::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::VfolderInvitations.def()
    }
}

impl Related<super::vfolder_permissions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::VfolderPermissions.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
