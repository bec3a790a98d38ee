//! `vfolder_invitations`: invitations to share a user's vfolder (`inviter` and `invitee` are
//! emails).

use crate::entities::enums::{VFolderInvitationState, VFolderPermission};
use sea_orm::entity::prelude::*;

/// One row of `vfolder_invitations`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "vfolder_invitations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub permission: Option<VFolderPermission>,
    pub inviter: Option<String>,
    pub invitee: String,
    pub state: Option<VFolderInvitationState>,
    pub created_at: Option<DateTimeWithTimeZone>,
    /// No trigger updates it: every UPDATE must set it, as the reference's SQLAlchemy does.
    pub modified_at: Option<DateTimeWithTimeZone>,
    pub vfolder: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `vfolder` -> `vfolders.id` (fk_vfolder_invitations_vfolder_vfolders).
    #[sea_orm(
        belongs_to = "super::vfolders::Entity",
        from = "Column::Vfolder",
        to = "super::vfolders::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Vfolder,
}

impl Related<super::vfolders::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Vfolder.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
