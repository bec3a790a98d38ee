//! `project_resource_policies`: per-project limits on vfolders.

use sea_orm::entity::prelude::*;

/// One row of `project_resource_policies`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "project_resource_policies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub created_at: Option<DateTimeWithTimeZone>,
    pub max_vfolder_count: i32,
    pub max_quota_scope_size: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `groups.resource_policy` refers to this row.
    #[sea_orm(has_many = "super::groups::Entity")]
    Groups,
}

impl Related<super::groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Groups.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
