//! `endpoints`: model-service endpoints: the model vfolder, image and resources of the sessions
//! that serve a model, and how many of them there should be.

use crate::entities::ResourceSlot;
use crate::entities::enums::{EndpointLifecycle, RuntimeVariant};
use sea_orm::entity::prelude::*;

/// One row of `endpoints`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub created_user: Uuid,
    pub session_owner: Uuid,
    pub desired_session_count: i32,
    pub image: Uuid,
    pub model: Option<Uuid>,
    pub model_mount_destination: String,
    pub domain: String,
    pub project: Uuid,
    pub resource_group: String,
    pub lifecycle_stage: EndpointLifecycle,
    pub tag: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub startup_command: Option<String>,
    pub bootstrap_script: Option<String>,
    /// Rows the reference wrote without a URL may hold the string `'None'`: read it as no URL.
    #[sea_orm(column_type = "Text", nullable)]
    pub callback_url: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub environ: Option<Json>,
    pub open_to_public: Option<bool>,
    pub runtime_variant: RuntimeVariant,
    pub model_definition_path: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub resource_slots: ResourceSlot,
    pub url: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub resource_opts: Option<Json>,
    /// Stored by NAME (`SINGLE_NODE`, `MULTI_NODE`), unlike `sessions.cluster_mode`.
    pub cluster_mode: String,
    pub cluster_size: i32,
    /// JSON array of VFolderMount objects.
    #[sea_orm(column_type = "JsonBinary")]
    pub extra_mounts: Json,
    pub retries: i32,
    pub created_at: Option<DateTimeWithTimeZone>,
    pub destroyed_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `created_user` -> `users.uuid` (fk_endpoints_created_user_users).
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::CreatedUser",
        to = "super::users::Column::Uuid",
        on_update = "NoAction",
        on_delete = "Restrict"
    )]
    CreatedUser,
    /// `domain` -> `domains.name` (fk_endpoints_domain_domains).
    #[sea_orm(
        belongs_to = "super::domains::Entity",
        from = "Column::Domain",
        to = "super::domains::Column::Name",
        on_update = "NoAction",
        on_delete = "Restrict"
    )]
    Domain,
    /// `endpoint_tokens.endpoint` refers to this row.
    #[sea_orm(has_many = "super::endpoint_tokens::Entity")]
    EndpointTokens,
    /// `image` -> `images.id` (fk_endpoints_image_images).
    #[sea_orm(
        belongs_to = "super::images::Entity",
        from = "Column::Image",
        to = "super::images::Column::Id",
        on_update = "NoAction",
        on_delete = "Restrict"
    )]
    Image,
    /// `model` -> `vfolders.id` (fk_endpoints_model_vfolders).
    #[sea_orm(
        belongs_to = "super::vfolders::Entity",
        from = "Column::Model",
        to = "super::vfolders::Column::Id",
        on_update = "NoAction",
        on_delete = "SetNull"
    )]
    Model,
    /// `project` -> `groups.id` (fk_endpoints_project_groups).
    #[sea_orm(
        belongs_to = "super::groups::Entity",
        from = "Column::Project",
        to = "super::groups::Column::Id",
        on_update = "NoAction",
        on_delete = "Restrict"
    )]
    Project,
    /// `resource_group` -> `scaling_groups.name` (fk_endpoints_resource_group_scaling_groups).
    #[sea_orm(
        belongs_to = "super::scaling_groups::Entity",
        from = "Column::ResourceGroup",
        to = "super::scaling_groups::Column::Name",
        on_update = "NoAction",
        on_delete = "Restrict"
    )]
    ResourceGroup,
    /// `routings.endpoint` refers to this row.
    #[sea_orm(has_many = "super::routings::Entity")]
    Routings,
    /// `session_owner` -> `users.uuid` (fk_endpoints_session_owner_users).
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

impl Related<super::endpoint_tokens::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::EndpointTokens.def()
    }
}

impl Related<super::images::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Image.def()
    }
}

impl Related<super::vfolders::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Model.def()
    }
}

impl Related<super::groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Project.def()
    }
}

impl Related<super::scaling_groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ResourceGroup.def()
    }
}

impl Related<super::routings::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Routings.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
