//! `images`: container image metadata, filled by `image rescan` from the registries configured in
//! etcd. Sessions and kernels refer to images by canonical name (`name`), not by id.

use crate::entities::enums::ImageType;
use sea_orm::entity::prelude::*;

/// One row of `images`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "images")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub image: String,
    pub created_at: Option<DateTimeWithTimeZone>,
    #[sea_orm(column_type = "Text", nullable)]
    pub tag: Option<String>,
    pub registry: String,
    pub architecture: String,
    /// `char(72)`: the 71-character `sha256:...` digest comes back blank-padded; trim it.
    pub config_digest: String,
    pub size_bytes: i64,
    pub is_local: bool,
    pub r#type: ImageType,
    pub accelerators: Option<String>,
    /// `json`, not `jsonb`, unlike every other JSON column.
    pub labels: Json,
    /// Slot name -> `{"min": string, "max": string or null}`.
    #[sea_orm(column_type = "JsonBinary")]
    pub resources: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `endpoints.image` refers to this row.
    #[sea_orm(has_many = "super::endpoints::Entity")]
    Endpoints,
    /// `image_aliases.image` refers to this row.
    #[sea_orm(has_many = "super::image_aliases::Entity")]
    ImageAliases,
}

impl Related<super::endpoints::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Endpoints.def()
    }
}

impl Related<super::image_aliases::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ImageAliases.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
