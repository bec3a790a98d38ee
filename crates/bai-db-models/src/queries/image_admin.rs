//! The image catalogue's writes of the GraphQL image mutations (api-auth-client.md §6.2):
//! forgetting an image by reference or id (superadmins any image, everyone else only their own
//! customized images), editing an image's columns (`modify_image`) and clearing a registry's
//! images (`clear_images`). Aliasing goes through [`images`](super::images).
//!
//! Each write runs in one transaction. A forgotten image takes its aliases with it (the reference
//! leaves them behind pointing nowhere); an image a model service endpoint uses is refused.

use sea_orm::prelude::Uuid;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, Set, TransactionTrait,
};
use serde_json::Value;

use super::image_listing::ImageListing;
use super::images::{ImageCandidate, ImageError, aliases_of, resolve};
use crate::entities::enums::ImageType;
use crate::entities::{endpoints, image_aliases, images};
use crate::error::DbError;

/// The label naming a customized image's owner, `user:{uuid}`.
pub const CUSTOMIZED_IMAGE_OWNER: &str = "ai.backend.customized-image.owner";

/// Who asks to forget an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forgetter {
    /// Any image.
    Superadmin,
    /// Only the images this user customized.
    Owner(Uuid),
}

/// What came of a request to forget an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForgetOutcome {
    /// Deleted, with the aliases it had (deleted too).
    Forgotten(Box<ImageListing>),
    /// The image is not the caller's customized image: nothing changed.
    NotOwner,
}

/// New values of an image's columns (`ModifyImageInput`); `None` leaves a column as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageChanges {
    pub name: Option<String>,
    pub registry: Option<String>,
    pub image: Option<String>,
    pub tag: Option<String>,
    pub architecture: Option<String>,
    pub is_local: Option<bool>,
    pub size_bytes: Option<i64>,
    pub r#type: Option<ImageType>,
    pub config_digest: Option<String>,
    /// Stored comma-joined.
    pub accelerators: Option<Vec<String>>,
    pub labels: Option<serde_json::Map<String, Value>>,
    /// Slot name -> `{"min": ..., "max": ...}` (either bound may be absent).
    pub resources: Option<serde_json::Map<String, Value>>,
}

/// True when `image` is the customized image of `user` (label `user:{uuid}`).
pub fn is_owned_by(image: &images::Model, user: Uuid) -> bool {
    image
        .labels
        .get(CUSTOMIZED_IMAGE_OWNER)
        .and_then(Value::as_str)
        .is_some_and(|owner| owner == format!("user:{user}"))
}

/// Forgets the row `candidates` resolve to, as `forgetter` may.
pub async fn forget<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    candidates: &[ImageCandidate],
    forgetter: Forgetter,
) -> Result<ForgetOutcome, ImageError> {
    let txn = db
        .begin()
        .await
        .map_err(DbError::query("starting the forget transaction"))?;
    let image = resolve(&txn, candidates).await?;
    let outcome = forget_row(&txn, image, forgetter).await?;
    txn.commit()
        .await
        .map_err(DbError::query("committing the removal of an image"))?;
    Ok(outcome)
}

/// Forgets the row `id`, as `forgetter` may; `None` when there is no such row.
pub async fn forget_by_id<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    id: Uuid,
    forgetter: Forgetter,
) -> Result<Option<ForgetOutcome>, ImageError> {
    let txn = db
        .begin()
        .await
        .map_err(DbError::query("starting the forget transaction"))?;
    let Some(image) = images::Entity::find_by_id(id)
        .one(&txn)
        .await
        .map_err(DbError::query(format!("reading image {id}")))?
    else {
        return Ok(None);
    };
    let outcome = forget_row(&txn, image, forgetter).await?;
    txn.commit().await.map_err(DbError::query(format!(
        "committing the removal of image {id}"
    )))?;
    Ok(Some(outcome))
}

/// Applies `changes` to the row `reference` (a canonical reference, not an alias) resolves to;
/// returns the updated row.
pub async fn modify<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    reference: &ImageCandidate,
    changes: ImageChanges,
) -> Result<images::Model, ImageError> {
    let txn = db
        .begin()
        .await
        .map_err(DbError::query("starting the image transaction"))?;
    let image = resolve(&txn, std::slice::from_ref(reference)).await?;
    let description = format!("{} ({})", image.name, image.architecture);
    let mut active = image.into_active_model();
    let ImageChanges {
        name,
        registry,
        image,
        tag,
        architecture,
        is_local,
        size_bytes,
        r#type,
        config_digest,
        accelerators,
        labels,
        resources,
    } = changes;
    if let Some(name) = name {
        active.name = Set(name);
    }
    if let Some(registry) = registry {
        active.registry = Set(registry);
    }
    if let Some(image) = image {
        active.image = Set(image);
    }
    if let Some(tag) = tag {
        active.tag = Set(Some(tag));
    }
    if let Some(architecture) = architecture {
        active.architecture = Set(architecture);
    }
    if let Some(is_local) = is_local {
        active.is_local = Set(is_local);
    }
    if let Some(size_bytes) = size_bytes {
        active.size_bytes = Set(size_bytes);
    }
    if let Some(r#type) = r#type {
        active.r#type = Set(r#type);
    }
    if let Some(config_digest) = config_digest {
        active.config_digest = Set(config_digest);
    }
    if let Some(accelerators) = accelerators {
        active.accelerators = Set(Some(accelerators.join(",")));
    }
    if let Some(labels) = labels {
        active.labels = Set(Value::Object(labels));
    }
    if let Some(resources) = resources {
        active.resources = Set(Value::Object(resources));
    }
    let updated = active
        .update(&txn)
        .await
        .map_err(DbError::query(format!("updating image {description}")))?;
    txn.commit()
        .await
        .map_err(DbError::query(format!("committing image {description}")))?;
    Ok(updated)
}

/// Deletes every image of `registry` and their aliases; the number of images deleted. Refused
/// while a model service endpoint uses one of them.
pub async fn clear_registry<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    registry: &str,
) -> Result<u64, ImageError> {
    let txn = db
        .begin()
        .await
        .map_err(DbError::query("starting the clear transaction"))?;
    let ids: Vec<Uuid> = images::Entity::find()
        .filter(images::Column::Registry.eq(registry))
        .all(&txn)
        .await
        .map_err(DbError::query(format!(
            "reading the images of registry {registry}"
        )))?
        .into_iter()
        .map(|image| image.id)
        .collect();
    if ids.is_empty() {
        return Ok(0);
    }
    let what = format!("the images of registry {registry}");
    let used = endpoints_using(&txn, ids.clone(), &what).await?;
    if used > 0 {
        return Err(ImageError::RegistryUsedByEndpoints {
            registry: registry.to_owned(),
            count: used,
        });
    }
    let deleted = delete_with_aliases(&txn, ids, &what).await?;
    txn.commit().await.map_err(DbError::query(format!(
        "committing the removal of registry {registry}'s images"
    )))?;
    Ok(deleted)
}

/// Deletes `image` (inside the caller's transaction) when `forgetter` may.
async fn forget_row(
    txn: &impl ConnectionTrait,
    image: images::Model,
    forgetter: Forgetter,
) -> Result<ForgetOutcome, ImageError> {
    if let Forgetter::Owner(user) = forgetter
        && !is_owned_by(&image, user)
    {
        return Ok(ForgetOutcome::NotOwner);
    }
    let what = format!("image {} ({})", image.name, image.architecture);
    let count = endpoints_using(txn, vec![image.id], &what).await?;
    if count > 0 {
        return Err(ImageError::UsedByEndpoints {
            canonical: image.name,
            architecture: image.architecture,
            count,
        });
    }
    let aliases = aliases_of(txn, image.id).await?;
    delete_with_aliases(txn, vec![image.id], &what).await?;
    Ok(ForgetOutcome::Forgotten(Box::new(ImageListing {
        image,
        aliases,
    })))
}

/// How many model service endpoints use one of the images `ids` (`what` names them).
async fn endpoints_using(
    txn: &impl ConnectionTrait,
    ids: Vec<Uuid>,
    what: &str,
) -> Result<u64, DbError> {
    endpoints::Entity::find()
        .filter(endpoints::Column::Image.is_in(ids))
        .count(txn)
        .await
        .map_err(DbError::query(format!("counting the endpoints of {what}")))
}

/// Deletes the images `ids` (`what` names them) and the aliases pointing to them, inside the
/// caller's transaction; the number of images deleted.
async fn delete_with_aliases(
    txn: &impl ConnectionTrait,
    ids: Vec<Uuid>,
    what: &str,
) -> Result<u64, DbError> {
    image_aliases::Entity::delete_many()
        .filter(image_aliases::Column::Image.is_in(ids.clone()))
        .exec(txn)
        .await
        .map_err(DbError::query(format!("deleting the aliases of {what}")))?;
    let deleted = images::Entity::delete_many()
        .filter(images::Column::Id.is_in(ids))
        .exec(txn)
        .await
        .map_err(DbError::query(format!("deleting {what}")))?;
    Ok(deleted.rows_affected)
}
