//! `resource_presets`: named resource presets offered to users (`resource_slots`, plus
//! `shared_memory` in bytes).

use crate::entities::ResourceSlot;
use sea_orm::entity::prelude::*;

/// One row of `resource_presets`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "resource_presets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub resource_slots: ResourceSlot,
    pub shared_memory: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
