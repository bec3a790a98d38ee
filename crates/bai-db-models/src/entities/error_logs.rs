//! `error_logs`: error reports sent by clients and the server (`/logs/error`).

use crate::entities::enums::ErrorLogSeverity;
use sea_orm::entity::prelude::*;

/// One row of `error_logs`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "error_logs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created_at: Option<DateTimeWithTimeZone>,
    pub severity: Option<ErrorLogSeverity>,
    pub source: Option<String>,
    pub user: Option<Uuid>,
    pub is_read: Option<bool>,
    pub is_cleared: Option<bool>,
    #[sea_orm(column_type = "Text", nullable)]
    pub message: Option<String>,
    pub context_lang: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub context_env: Option<Json>,
    pub request_url: Option<String>,
    pub request_status: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub traceback: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `user` -> `users.uuid` (fk_error_logs_user_users).
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::User",
        to = "super::users::Column::Uuid",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    User,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
