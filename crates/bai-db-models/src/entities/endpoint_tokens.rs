//! `endpoint_tokens`: access tokens of model-service endpoints.

use sea_orm::entity::prelude::*;

/// One row of `endpoint_tokens`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "endpoint_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub token: String,
    pub endpoint: Option<Uuid>,
    pub session_owner: Option<Uuid>,
    pub domain: String,
    pub project: Uuid,
    pub created_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `domain` -> `domains.name` (fk_endpoint_tokens_domain_domains).
    #[sea_orm(
        belongs_to = "super::domains::Entity",
        from = "Column::Domain",
        to = "super::domains::Column::Name",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    Domain,
    /// `endpoint` -> `endpoints.id` (fk_endpoint_tokens_endpoint_endpoints).
    #[sea_orm(
        belongs_to = "super::endpoints::Entity",
        from = "Column::Endpoint",
        to = "super::endpoints::Column::Id",
        on_update = "NoAction",
        on_delete = "SetNull"
    )]
    Endpoint,
    /// `project` -> `groups.id` (fk_endpoint_tokens_project_groups).
    #[sea_orm(
        belongs_to = "super::groups::Entity",
        from = "Column::Project",
        to = "super::groups::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    Project,
    /// `session_owner` -> `users.uuid` (fk_endpoint_tokens_session_owner_users).
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::SessionOwner",
        to = "super::users::Column::Uuid",
        on_update = "NoAction",
        on_delete = "NoAction"
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

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SessionOwner.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
