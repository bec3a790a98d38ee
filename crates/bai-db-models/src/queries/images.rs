//! The image catalogue (`images`, `image_aliases`) as the `image` commands see it: listing,
//! resolving a canonical reference or an alias for an architecture (spec §1.3 "Resolution"),
//! aliasing, forgetting and editing resource limits.
//!
//! Each write runs in one transaction, and every refusal is an [`ImageError`] naming the image,
//! alias and architecture involved, so a caller can say exactly what was wrong.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use sea_orm::prelude::Uuid;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder, Set, TransactionTrait,
};
use serde_json::{Map, Value};

use crate::entities::{endpoints, image_aliases, images};
use crate::error::DbError;
use crate::image_ref::{ImageRef, ImageRefError, KnownRegistries};

/// One way to name an image row, tried in order by [`resolve`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageCandidate {
    /// Rows whose `name` is the reference's canonical form; if exactly one row has that name it
    /// is taken whatever its architecture (the reference's non-strict resolution), otherwise the
    /// row of the reference's architecture.
    Reference(ImageRef),
    /// The row an `image_aliases.alias` points to (aliases are bound to one row, so the
    /// architecture plays no part).
    Alias(String),
}

impl fmt::Display for ImageCandidate {
    /// The reference's wording in `ImageNotFound`: `ref:'…'` or `alias:'…'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reference(reference) => write!(
                f,
                "ref:'{}' ({})",
                reference.canonical(),
                reference.architecture()
            ),
            Self::Alias(alias) => write!(f, "alias:'{alias}'"),
        }
    }
}

/// An image row with the aliases that point to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageWithAliases {
    pub image: images::Model,
    /// Sorted.
    pub aliases: Vec<String>,
}

/// A `MIN:MAX` range of a resource limit (`image set-resource-limit`); an empty side leaves that
/// bound as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitRange {
    pub min: Option<Decimal>,
    pub max: Option<Decimal>,
}

/// Why an image operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("Unknown image references: {}", list(.searched))]
    NotFound { searched: Vec<ImageCandidate> },
    #[error(transparent)]
    InvalidReference(#[from] ImageRefError),
    #[error("alias {alias:?} already exists: it points to {canonical} ({architecture})")]
    AliasExists {
        alias: String,
        canonical: String,
        architecture: String,
    },
    #[error("alias {alias:?} does not exist")]
    AliasNotFound { alias: String },
    #[error(
        "image {canonical} ({architecture}) still has the aliases {}; remove them first with `image dealias`",
        list(.aliases)
    )]
    HasAliases {
        canonical: String,
        architecture: String,
        aliases: Vec<String>,
    },
    #[error(
        "image {canonical} ({architecture}) is used by {count} model service endpoint(s); delete them first"
    )]
    UsedByEndpoints {
        canonical: String,
        architecture: String,
        count: u64,
    },
    #[error(
        "the images of registry {registry} are used by {count} model service endpoint(s); delete them first"
    )]
    RegistryUsedByEndpoints { registry: String, count: u64 },
    #[error("image {canonical} ({architecture}): {reason}")]
    InvalidLimit {
        canonical: String,
        architecture: String,
        reason: String,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Why a `MIN:MAX` argument is not a range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitRangeError {
    #[error("{text:?} is not MIN:MAX (decimals, either side may be empty)")]
    NotARange { text: String },
    #[error("{side} {value:?} of {text:?} is not a decimal number")]
    NotADecimal {
        text: String,
        side: &'static str,
        value: String,
    },
    #[error("{side} {value:?} of {text:?} is negative")]
    Negative {
        text: String,
        side: &'static str,
        value: String,
    },
    #[error("{text:?} sets neither MIN nor MAX")]
    Empty { text: String },
    #[error("MIN is greater than MAX in {text:?}")]
    Inverted { text: String },
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for LimitRange {
    type Err = LimitRangeError;

    /// `MIN:MAX`, `MIN:`, `:MAX`, as the reference's `MinMaxRange` reads them (decimals; Python's
    /// `Decimal` also takes exponents such as `1e9`).
    fn from_str(text: &str) -> Result<LimitRange, LimitRangeError> {
        let Some((min, max)) = text.split_once(':') else {
            return Err(LimitRangeError::NotARange {
                text: text.to_owned(),
            });
        };
        let side = |value: &str, side: &'static str| -> Result<Option<Decimal>, LimitRangeError> {
            if value.is_empty() {
                return Ok(None);
            }
            let parsed = Decimal::from_str(value)
                .or_else(|_| Decimal::from_scientific(value))
                .map_err(|_| LimitRangeError::NotADecimal {
                    text: text.to_owned(),
                    side,
                    value: value.to_owned(),
                })?;
            if parsed.is_sign_negative() && !parsed.is_zero() {
                return Err(LimitRangeError::Negative {
                    text: text.to_owned(),
                    side,
                    value: value.to_owned(),
                });
            }
            Ok(Some(parsed))
        };
        let range = LimitRange {
            min: side(min, "MIN")?,
            max: side(max, "MAX")?,
        };
        match (range.min, range.max) {
            (None, None) => Err(LimitRangeError::Empty {
                text: text.to_owned(),
            }),
            (Some(min), Some(max)) if min > max => Err(LimitRangeError::Inverted {
                text: text.to_owned(),
            }),
            _ => Ok(range),
        }
    }
}

/// Every image row, by canonical name then architecture.
pub async fn list_all(db: &impl ConnectionTrait) -> Result<Vec<images::Model>, DbError> {
    images::Entity::find()
        .order_by_asc(images::Column::Name)
        .order_by_asc(images::Column::Architecture)
        .all(db)
        .await
        .map_err(DbError::query("listing the images"))
}

/// The first row one of `candidates` names (spec §1.3 "Resolution", non-strict architecture).
pub async fn resolve(
    db: &impl ConnectionTrait,
    candidates: &[ImageCandidate],
) -> Result<images::Model, ImageError> {
    for candidate in candidates {
        let found = match candidate {
            ImageCandidate::Reference(reference) => by_reference(db, reference).await?,
            ImageCandidate::Alias(alias) => by_alias(db, alias).await?,
        };
        if let Some(row) = found {
            return Ok(row);
        }
    }
    Err(ImageError::NotFound {
        searched: candidates.to_vec(),
    })
}

/// What the `image` commands accept as CANONICAL_OR_ALIAS: the reference read with any registry
/// allowed (`["*"]`) for `architecture`, then the same text as an alias. Text that is no valid
/// reference can still be an alias.
pub fn canonical_or_alias(text: &str, architecture: &str) -> Vec<ImageCandidate> {
    let mut candidates = Vec::with_capacity(2);
    if let Ok(reference) = ImageRef::parse(text, KnownRegistries::Any, architecture) {
        candidates.push(ImageCandidate::Reference(reference));
    }
    candidates.push(ImageCandidate::Alias(text.to_owned()));
    candidates
}

/// The row `candidates` resolve to, with its aliases.
pub async fn inspect(
    db: &impl ConnectionTrait,
    candidates: &[ImageCandidate],
) -> Result<ImageWithAliases, ImageError> {
    let image = resolve(db, candidates).await?;
    let aliases = aliases_of(db, image.id).await?;
    Ok(ImageWithAliases { image, aliases })
}

/// Makes `alias` point to the row `target` (a reference only, read with any registry allowed)
/// resolves to for `architecture`. Refuses an alias that exists, naming where it points.
pub async fn create_alias<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    alias: &str,
    target: &str,
    architecture: &str,
) -> Result<images::Model, ImageError> {
    let reference = ImageRef::parse(target, KnownRegistries::Any, architecture)?;
    let txn = db
        .begin()
        .await
        .map_err(DbError::query("starting the alias transaction"))?;
    if let Some(existing) = by_alias(&txn, alias).await? {
        return Err(ImageError::AliasExists {
            alias: alias.to_owned(),
            canonical: existing.name,
            architecture: existing.architecture,
        });
    }
    let image = resolve(&txn, &[ImageCandidate::Reference(reference)]).await?;
    image_aliases::ActiveModel {
        id: Set(Uuid::new_v4()),
        alias: Set(Some(alias.to_owned())),
        image: Set(image.id),
    }
    .insert(&txn)
    .await
    .map_err(DbError::query(format!(
        "adding alias {alias:?} of image {} ({})",
        image.name, image.architecture
    )))?;
    txn.commit()
        .await
        .map_err(DbError::query(format!("committing alias {alias:?}")))?;
    Ok(image)
}

/// Deletes `alias`; returns the row it pointed to.
pub async fn delete_alias<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    alias: &str,
) -> Result<images::Model, ImageError> {
    let txn = db
        .begin()
        .await
        .map_err(DbError::query("starting the dealias transaction"))?;
    let Some(image) = by_alias(&txn, alias).await? else {
        return Err(ImageError::AliasNotFound {
            alias: alias.to_owned(),
        });
    };
    image_aliases::Entity::delete_many()
        .filter(image_aliases::Column::Alias.eq(alias))
        .exec(&txn)
        .await
        .map_err(DbError::query(format!("deleting alias {alias:?}")))?;
    txn.commit().await.map_err(DbError::query(format!(
        "committing the removal of alias {alias:?}"
    )))?;
    Ok(image)
}

/// Deletes the row `candidates` resolve to. Refuses while aliases point to it (naming them) or
/// model service endpoints use it; returns the deleted row.
pub async fn forget<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    candidates: &[ImageCandidate],
) -> Result<images::Model, ImageError> {
    let txn = db
        .begin()
        .await
        .map_err(DbError::query("starting the forget transaction"))?;
    let image = resolve(&txn, candidates).await?;
    let aliases = aliases_of(&txn, image.id).await?;
    if !aliases.is_empty() {
        return Err(ImageError::HasAliases {
            canonical: image.name,
            architecture: image.architecture,
            aliases,
        });
    }
    let count = endpoints::Entity::find()
        .filter(endpoints::Column::Image.eq(image.id))
        .count(&txn)
        .await
        .map_err(DbError::query(format!(
            "counting the endpoints of image {} ({})",
            image.name, image.architecture
        )))?;
    if count > 0 {
        return Err(ImageError::UsedByEndpoints {
            canonical: image.name,
            architecture: image.architecture,
            count,
        });
    }
    images::Entity::delete_by_id(image.id)
        .exec(&txn)
        .await
        .map_err(DbError::query(format!(
            "deleting image {} ({})",
            image.name, image.architecture
        )))?;
    txn.commit().await.map_err(DbError::query(format!(
        "committing the removal of image {} ({})",
        image.name, image.architecture
    )))?;
    Ok(image)
}

/// Sets the bounds `range` gives of `slot` in the `resources` of the row `candidates` resolve
/// to, as decimal strings (the reference's `str(Decimal)`); an empty side keeps the stored bound.
/// A slot the image did not list gets MIN `0` when only MAX is given (`min` is required in the
/// column's schema, and the reference reads a missing MIN as 0). Returns the updated row.
pub async fn set_resource_limit<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    candidates: &[ImageCandidate],
    slot: &str,
    range: LimitRange,
) -> Result<images::Model, ImageError> {
    let txn = db
        .begin()
        .await
        .map_err(DbError::query("starting the resource-limit transaction"))?;
    let image = resolve(&txn, candidates).await?;
    let invalid = |reason: String| ImageError::InvalidLimit {
        canonical: image.name.clone(),
        architecture: image.architecture.clone(),
        reason,
    };
    let mut resources = match &image.resources {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        other => {
            return Err(invalid(format!(
                "the stored resources are not a JSON object: {other}"
            )));
        }
    };
    let entry = resources
        .entry(slot.to_owned())
        .or_insert_with(|| serde_json::json!({"min": "0", "max": null}));
    let Value::Object(bounds) = entry else {
        return Err(invalid(format!(
            "the stored limit of slot {slot:?} is not a JSON object: {entry}"
        )));
    };
    if let Some(min) = range.min {
        bounds.insert("min".to_owned(), Value::String(min.to_string()));
    }
    if let Some(max) = range.max {
        bounds.insert("max".to_owned(), Value::String(max.to_string()));
    }
    let description = format!("{} ({})", image.name, image.architecture);
    let mut active = image.into_active_model();
    active.resources = Set(Value::Object(resources));
    let updated = active.update(&txn).await.map_err(DbError::query(format!(
        "updating the resource limits of image {description}"
    )))?;
    txn.commit().await.map_err(DbError::query(format!(
        "committing the resource limits of image {description}"
    )))?;
    Ok(updated)
}

async fn by_reference(
    db: &impl ConnectionTrait,
    reference: &ImageRef,
) -> Result<Option<images::Model>, DbError> {
    let canonical = reference.canonical();
    let mut rows = images::Entity::find()
        .filter(images::Column::Name.eq(canonical.as_str()))
        .order_by_asc(images::Column::Architecture)
        .all(db)
        .await
        .map_err(DbError::query(format!("looking up image {canonical}")))?;
    if rows.len() == 1 {
        return Ok(rows.pop());
    }
    Ok(rows
        .into_iter()
        .find(|row| row.architecture == reference.architecture()))
}

async fn by_alias(
    db: &impl ConnectionTrait,
    alias: &str,
) -> Result<Option<images::Model>, DbError> {
    let found = image_aliases::Entity::find()
        .filter(image_aliases::Column::Alias.eq(alias))
        .find_also_related(images::Entity)
        .one(db)
        .await
        .map_err(DbError::query(format!("looking up alias {alias:?}")))?;
    Ok(found.and_then(|(_, image)| image))
}

/// The aliases pointing to `image`, sorted.
pub(crate) async fn aliases_of(
    db: &impl ConnectionTrait,
    image: Uuid,
) -> Result<Vec<String>, DbError> {
    let rows = image_aliases::Entity::find()
        .filter(image_aliases::Column::Image.eq(image))
        .order_by_asc(image_aliases::Column::Alias)
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "reading the aliases of image {image}"
        )))?;
    Ok(rows.into_iter().filter_map(|row| row.alias).collect())
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::{LimitRange, LimitRangeError};

    #[test]
    fn limit_ranges() {
        let range = |text: &str| text.parse::<LimitRange>();
        let dec = |text: &str| Some(text.parse::<Decimal>().expect("decimal"));
        assert_eq!(
            range("1:4"),
            Ok(LimitRange {
                min: dec("1"),
                max: dec("4")
            })
        );
        assert_eq!(
            range(":2.5"),
            Ok(LimitRange {
                min: None,
                max: dec("2.5")
            })
        );
        assert_eq!(
            range("1e9:"),
            Ok(LimitRange {
                min: dec("1000000000"),
                max: None
            })
        );
        assert!(matches!(range(":"), Err(LimitRangeError::Empty { .. })));
        assert!(matches!(range("4"), Err(LimitRangeError::NotARange { .. })));
        assert!(matches!(
            range("4:1"),
            Err(LimitRangeError::Inverted { .. })
        ));
        assert!(matches!(
            range("x:1"),
            Err(LimitRangeError::NotADecimal { side: "MIN", .. })
        ));
        assert!(matches!(
            range("-1:"),
            Err(LimitRangeError::Negative { .. })
        ));
    }
}
