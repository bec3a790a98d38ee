//! `vfolder_attachment`: legacy attachments of vfolders to kernels.

use sea_orm::entity::prelude::*;

/// One row of `vfolder_attachment`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "vfolder_attachment")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub vfolder: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub kernel: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `kernel` -> `kernels.id` (fk_vfolder_attachment_kernel_kernels).
    #[sea_orm(
        belongs_to = "super::kernels::Entity",
        from = "Column::Kernel",
        to = "super::kernels::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Kernel,
    /// `vfolder` -> `vfolders.id` (fk_vfolder_attachment_vfolder_vfolders).
    #[sea_orm(
        belongs_to = "super::vfolders::Entity",
        from = "Column::Vfolder",
        to = "super::vfolders::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Vfolder,
}

impl Related<super::kernels::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Kernel.def()
    }
}

impl Related<super::vfolders::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Vfolder.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
