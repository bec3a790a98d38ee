//! `routings`: routes from model-service endpoints to the sessions that serve them.

use crate::entities::enums::RouteStatus;
use sea_orm::entity::prelude::*;

/// One row of `routings`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "routings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub endpoint: Uuid,
    pub session: Option<Uuid>,
    pub session_owner: Uuid,
    pub domain: String,
    pub project: Uuid,
    pub status: RouteStatus,
    #[sea_orm(column_type = "Double")]
    pub traffic_ratio: f64,
    pub created_at: Option<DateTimeWithTimeZone>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub error_data: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `domain` -> `domains.name` (fk_routings_domain_domains).
    #[sea_orm(
        belongs_to = "super::domains::Entity",
        from = "Column::Domain",
        to = "super::domains::Column::Name",
        on_update = "NoAction",
        on_delete = "Restrict"
    )]
    Domain,
    /// `endpoint` -> `endpoints.id` (fk_routings_endpoint_endpoints).
    #[sea_orm(
        belongs_to = "super::endpoints::Entity",
        from = "Column::Endpoint",
        to = "super::endpoints::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    Endpoint,
    /// `project` -> `groups.id` (fk_routings_project_groups).
    #[sea_orm(
        belongs_to = "super::groups::Entity",
        from = "Column::Project",
        to = "super::groups::Column::Id",
        on_update = "NoAction",
        on_delete = "Restrict"
    )]
    Project,
    /// `session` -> `sessions.id` (fk_routings_session_sessions).
    #[sea_orm(
        belongs_to = "super::sessions::Entity",
        from = "Column::Session",
        to = "super::sessions::Column::Id",
        on_update = "NoAction",
        on_delete = "Restrict"
    )]
    Session,
    /// `session_owner` -> `users.uuid` (fk_routings_session_owner_users).
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::SessionOwner",
        to = "super::users::Column::Uuid",
        on_update = "NoAction",
        on_delete = "Restrict"
    )]
    SessionOwner,
}

impl Related<super::domains::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Domain.def()
    }
}

impl Related<super::endpoints::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Endpoint.def()
    }
}

impl Related<super::groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Project.def()
    }
}

impl Related<super::sessions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SessionOwner.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
