//! `session_dependencies`: session dependencies: `session_id` starts only after `depends_on` has
//! finished.

use sea_orm::entity::prelude::*;

/// One row of `session_dependencies`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "session_dependencies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub depends_on: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `depends_on` -> `sessions.id` (fk_session_dependencies_depends_on_sessions).
    #[sea_orm(
        belongs_to = "super::sessions::Entity",
        from = "Column::DependsOn",
        to = "super::sessions::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    DependsOn,
    /// `session_id` -> `sessions.id` (fk_session_dependencies_session_id_sessions).
    #[sea_orm(
        belongs_to = "super::sessions::Entity",
        from = "Column::SessionId",
        to = "super::sessions::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Session,
}

impl ActiveModelBehavior for ActiveModel {}
