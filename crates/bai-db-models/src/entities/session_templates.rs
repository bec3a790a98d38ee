//! `session_templates`: session templates (task or cluster) that users create sessions from.

use crate::entities::enums::TemplateType;
use sea_orm::entity::prelude::*;

/// One row of `session_templates`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "session_templates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created_at: Option<DateTimeWithTimeZone>,
    pub is_active: Option<bool>,
    pub domain_name: String,
    pub group_id: Option<Uuid>,
    pub user_uuid: Uuid,
    pub r#type: TemplateType,
    pub name: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub template: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `domain_name` -> `domains.name` (fk_session_templates_domain_name_domains).
    #[sea_orm(
        belongs_to = "super::domains::Entity",
        from = "Column::DomainName",
        to = "super::domains::Column::Name",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    Domain,
    /// `group_id` -> `groups.id` (fk_session_templates_group_id_groups).
    #[sea_orm(
        belongs_to = "super::groups::Entity",
        from = "Column::GroupId",
        to = "super::groups::Column::Id",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    Group,
    /// `user_uuid` -> `users.uuid` (fk_session_templates_user_uuid_users).
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserUuid",
        to = "super::users::Column::Uuid",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    User,
}

impl Related<super::domains::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Domain.def()
    }
}

impl Related<super::groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Group.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
