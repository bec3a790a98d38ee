//! `vfolder_permissions`: per-user permissions on vfolders shared with them.
//!
//! The table has no primary key and no unique constraint. sea-orm needs one, so the entity declares
//! `(vfolder, user)`: reading is unaffected, but an update or delete through a model touches every
//! row with that pair.

use crate::entities::enums::VFolderPermission;
use sea_orm::entity::prelude::*;

/// One row of `vfolder_permissions`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "vfolder_permissions")]
pub struct Model {
    pub permission: Option<VFolderPermission>,
    /// Part of the entity's key only: the table has none.
    #[sea_orm(primary_key, auto_increment = false)]
    pub vfolder: Uuid,
    /// Part of the entity's key only: the table has none.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `user` -> `users.uuid` (fk_vfolder_permissions_user_users).
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::User",
        to = "super::users::Column::Uuid",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    User,
    /// `vfolder` -> `vfolders.id` (fk_vfolder_permissions_vfolder_vfolders).
    #[sea_orm(
        belongs_to = "super::vfolders::Entity",
        from = "Column::Vfolder",
        to = "super::vfolders::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Vfolder,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl Related<super::vfolders::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Vfolder.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
