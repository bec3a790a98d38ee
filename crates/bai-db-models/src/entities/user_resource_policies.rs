//! `user_resource_policies`: per-user limits: vfolders, quota scope size, sessions per model
//! service, customised images.

use sea_orm::entity::prelude::*;

/// One row of `user_resource_policies`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "user_resource_policies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub created_at: Option<DateTimeWithTimeZone>,
    pub max_vfolder_count: i32,
    pub max_quota_scope_size: i64,
    pub max_session_count_per_model_session: i32,
    pub max_customized_image_count: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `users.resource_policy` refers to this row.
    #[sea_orm(has_many = "super::users::Entity")]
    Users,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Users.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
