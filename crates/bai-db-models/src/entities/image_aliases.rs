//! `image_aliases`: alias names of images (`alias` -> `images.id`).

use sea_orm::entity::prelude::*;

/// One row of `image_aliases`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "image_aliases")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub alias: Option<String>,
    pub image: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `image` -> `images.id` (fk_image_aliases_image_images).
    #[sea_orm(
        belongs_to = "super::images::Entity",
        from = "Column::Image",
        to = "super::images::Column::Id",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    Image,
}

impl Related<super::images::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Image.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
