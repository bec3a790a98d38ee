//! Saving what a registry scan found into `images`, in one transaction per scan, and saying for
//! each image whether its row was added, updated or already held the same values.
//!
//! Rows are matched on `(name, architecture)`, as the reference does. The fresh-install schema has no
//! unique index on that pair, so every matching row is updated. Nothing is ever deleted, `created_at`
//! never changes and aliases are left alone; a manual resource-limit edit is overwritten by the
//! values the labels give (the reference's behaviour).

use std::collections::{HashMap, HashSet};

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    TransactionTrait, prelude::Uuid,
};

use crate::entities::enums::ImageType;
use crate::entities::images;
use crate::error::DbError;

/// One image (one architecture of one tag) as a registry scan read it.
#[derive(Clone, Debug, PartialEq)]
pub struct ScannedImage {
    /// The canonical name `{registry}/{image}:{tag}`.
    pub name: String,
    /// The repository path, e.g. `stable/python`.
    pub image: String,
    pub tag: String,
    /// The registry's name in etcd (not its URL's host).
    pub registry: String,
    pub architecture: String,
    /// `sha256:<64 hex digits>` of the config blob.
    pub config_digest: String,
    /// The layers' sizes and the config blob's, as the manifest gives them.
    pub size_bytes: i64,
    /// The label `ai.backend.accelerators` when it is not empty.
    pub accelerators: Option<String>,
    /// Every label of the image, as found.
    pub labels: serde_json::Value,
    /// Slot name -> `{"min": string, "max": string or null}`.
    pub resources: serde_json::Value,
    pub is_local: bool,
}

/// What saving one [`ScannedImage`] did to `images`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SaveOutcome {
    /// No row had its name and architecture; one was inserted.
    Added,
    /// A row had them and at least one value differed; it was overwritten.
    Updated,
    /// A row had them and the same values (or the image came twice in one scan).
    Unchanged,
}

/// The config digest, architecture and labels of every image of `registries`: a config blob is
/// named by its content, so a rescan can take the labels of a digest it has seen from here instead
/// of reading the blob again.
pub async fn known_configs(
    db: &impl ConnectionTrait,
    registries: &[&str],
) -> Result<Vec<KnownConfig>, DbError> {
    let rows: Vec<(String, String, serde_json::Value)> = images::Entity::find()
        .select_only()
        .columns([
            images::Column::ConfigDigest,
            images::Column::Architecture,
            images::Column::Labels,
        ])
        .filter(images::Column::Registry.is_in(registries.iter().copied()))
        .into_tuple()
        .all(db)
        .await
        .map_err(DbError::query(
            "reading the config digests of the catalogue",
        ))?;
    Ok(rows
        .into_iter()
        .map(|(config_digest, architecture, labels)| KnownConfig {
            config_digest: config_digest.trim_end().to_owned(),
            architecture,
            labels,
        })
        .collect())
}

/// What the catalogue holds for one config digest.
#[derive(Clone, Debug, PartialEq)]
pub struct KnownConfig {
    pub config_digest: String,
    pub architecture: String,
    pub labels: serde_json::Value,
}

/// Rows are read in chunks of this many names, well below PostgreSQL's 65,535 bind parameters.
const NAMES_PER_QUERY: usize = 5_000;
/// Rows are inserted in chunks of this many (13 parameters each).
const ROWS_PER_INSERT: usize = 1_000;

/// Saves `found` in one transaction and returns what happened to each, in the same order. Either
/// every image is saved or, on an error, none.
pub async fn save_scan(
    db: &impl TransactionTrait,
    found: &[ScannedImage],
) -> Result<Vec<SaveOutcome>, DbError> {
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let context = "saving the scanned images";
    let txn = db.begin().await.map_err(DbError::query(context))?;

    let mut names: Vec<&str> = found.iter().map(|image| image.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut existing: HashMap<(String, String), Vec<images::Model>> = HashMap::new();
    for chunk in names.chunks(NAMES_PER_QUERY) {
        let rows = images::Entity::find()
            .filter(images::Column::Name.is_in(chunk.iter().copied()))
            .all(&txn)
            .await
            .map_err(DbError::query("reading the images a scan found"))?;
        for row in rows {
            existing
                .entry((row.name.clone(), row.architecture.clone()))
                .or_default()
                .push(row);
        }
    }

    let mut outcomes = Vec::with_capacity(found.len());
    let mut new_rows = Vec::new();
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for image in found {
        if !seen.insert((image.name.as_str(), image.architecture.as_str())) {
            outcomes.push(SaveOutcome::Unchanged);
            continue;
        }
        let key = (image.name.clone(), image.architecture.clone());
        match existing.get(&key) {
            None => {
                new_rows.push(new_row(image));
                outcomes.push(SaveOutcome::Added);
            }
            Some(rows) if rows.iter().all(|row| holds(row, image)) => {
                outcomes.push(SaveOutcome::Unchanged);
            }
            Some(rows) => {
                for row in rows.iter().filter(|row| !holds(row, image)) {
                    overwrite(&txn, row.id, image).await?;
                }
                outcomes.push(SaveOutcome::Updated);
            }
        }
    }
    let mut new_rows = new_rows.into_iter().peekable();
    while new_rows.peek().is_some() {
        let chunk: Vec<images::ActiveModel> = new_rows.by_ref().take(ROWS_PER_INSERT).collect();
        images::Entity::insert_many(chunk)
            .exec_without_returning(&txn)
            .await
            .map_err(DbError::query("inserting the images a scan found"))?;
    }
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(outcomes)
}

/// Whether `row` already holds what the scan found (`config_digest` comes back blank-padded).
fn holds(row: &images::Model, image: &ScannedImage) -> bool {
    row.config_digest.trim_end() == image.config_digest
        && row.size_bytes == image.size_bytes
        && row.accelerators == image.accelerators
        && row.labels == image.labels
        && row.resources == image.resources
        && row.is_local == image.is_local
}

fn new_row(image: &ScannedImage) -> images::ActiveModel {
    images::ActiveModel {
        id: ActiveValue::Set(Uuid::new_v4()),
        name: ActiveValue::Set(image.name.clone()),
        image: ActiveValue::Set(image.image.clone()),
        created_at: ActiveValue::NotSet,
        tag: ActiveValue::Set(Some(image.tag.clone())),
        registry: ActiveValue::Set(image.registry.clone()),
        architecture: ActiveValue::Set(image.architecture.clone()),
        config_digest: ActiveValue::Set(image.config_digest.clone()),
        size_bytes: ActiveValue::Set(image.size_bytes),
        is_local: ActiveValue::Set(image.is_local),
        r#type: ActiveValue::Set(ImageType::Compute),
        accelerators: ActiveValue::Set(image.accelerators.clone()),
        labels: ActiveValue::Set(image.labels.clone()),
        resources: ActiveValue::Set(image.resources.clone()),
    }
}

/// Writes the scanned values into the row `id` (the columns the reference's rescan updates).
async fn overwrite(
    txn: &sea_orm::DatabaseTransaction,
    id: Uuid,
    image: &ScannedImage,
) -> Result<(), DbError> {
    images::Entity::update_many()
        .filter(images::Column::Id.eq(id))
        .col_expr(
            images::Column::ConfigDigest,
            Expr::value(image.config_digest.clone()),
        )
        .col_expr(images::Column::SizeBytes, Expr::value(image.size_bytes))
        .col_expr(
            images::Column::Accelerators,
            Expr::value(image.accelerators.clone()),
        )
        .col_expr(images::Column::Labels, Expr::value(image.labels.clone()))
        .col_expr(
            images::Column::Resources,
            Expr::value(image.resources.clone()),
        )
        .col_expr(images::Column::IsLocal, Expr::value(image.is_local))
        .exec(txn)
        .await
        .map_err(DbError::query(format!(
            "updating image {} ({})",
            image.name, image.architecture
        )))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sea_orm::{EntityTrait, QueryOrder};
    use serde_json::json;

    use super::{SaveOutcome, ScannedImage, new_row, save_scan};
    use crate::entities::images;
    use crate::testing::TestDatabase;

    fn found(tag: &str, architecture: &str, digest: &str) -> ScannedImage {
        ScannedImage {
            name: format!("cr.backend.ai/stable/python:{tag}"),
            image: "stable/python".to_owned(),
            tag: tag.to_owned(),
            registry: "cr.backend.ai".to_owned(),
            architecture: architecture.to_owned(),
            config_digest: format!("sha256:{digest:0>64}"),
            size_bytes: 1024,
            accelerators: None,
            labels: json!({"ai.backend.kernelspec": "1"}),
            resources: json!({"cpu": {"min": "1", "max": null}}),
            is_local: false,
        }
    }

    #[tokio::test]
    async fn rows_are_added_updated_or_left_alone() {
        let test = TestDatabase::with_schema("q_image_scan").await;
        let db = &test.connection;
        // The fresh-install schema has no unique (name, architecture) index: both copies follow.
        for _ in 0..2 {
            images::Entity::insert(new_row(&found("3.8", "x86_64", "1")))
                .exec(db)
                .await
                .expect("insert");
        }
        images::Entity::insert(new_row(&found("3.9", "x86_64", "2")))
            .exec(db)
            .await
            .expect("insert");

        let scan = [
            found("3.8", "x86_64", "a"),
            found("3.9", "x86_64", "2"),
            found("3.9", "aarch64", "3"),
            found("3.9", "aarch64", "4"),
        ];
        let outcomes = save_scan(db, &scan).await.expect("save");
        assert_eq!(
            outcomes,
            [
                SaveOutcome::Updated,
                SaveOutcome::Unchanged,
                SaveOutcome::Added,
                SaveOutcome::Unchanged,
            ]
        );
        let rows = images::Entity::find()
            .order_by_asc(images::Column::Name)
            .order_by_asc(images::Column::Architecture)
            .all(db)
            .await
            .expect("rows");
        let digests: Vec<(&str, &str)> = rows
            .iter()
            .map(|row| (row.architecture.as_str(), row.config_digest.trim_end()))
            .collect();
        let digest = |d: &str| format!("sha256:{d:0>64}");
        assert_eq!(
            digests,
            [
                ("x86_64", digest("a").as_str()),
                ("x86_64", digest("a").as_str()),
                ("aarch64", digest("3").as_str()),
                ("x86_64", digest("2").as_str()),
            ]
        );
        assert_eq!(save_scan(db, &[]).await.expect("nothing"), []);

        let known = super::known_configs(db, &["cr.backend.ai", "other"])
            .await
            .expect("known");
        assert_eq!(known.len(), 4);
        assert_eq!(known[0].labels, json!({"ai.backend.kernelspec": "1"}));
        assert!(known.iter().all(|row| row.config_digest.len() == 71));
        assert_eq!(
            super::known_configs(db, &["other"]).await.expect("known"),
            []
        );
    }
}
