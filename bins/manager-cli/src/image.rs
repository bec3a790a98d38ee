//! `manager-cli image ...`: the image catalogue (`images`, `image_aliases`) of the database `[db]`
//! names, as the reference's `backend.ai mgr image` commands show and edit it.
//!
//! Unlike the reference, every failure (unknown image, existing or missing alias, an image that
//! still has aliases) prints what was wrong, naming the image, alias and architecture, and exits 1;
//! `set-resource-limit` really stores the limit.

use std::process::ExitCode;

use crate::cli::args::image::ImageCommand;
use anyhow::Context;
use bai_config::LoadOptions;
use bai_db_models::entities::images;
use bai_db_models::queries::images::{self as image_queries, LimitRange};
use bai_etcd_store::shared_config::RedisConfig;
use bai_redis::ImageDb;
use sea_orm::DatabaseConnection;
use serde::Serialize;
use serde_json::Value;

pub fn run(command: ImageCommand, options: &LoadOptions) -> anyhow::Result<ExitCode> {
    let Some(loaded) = crate::load_config(options) else {
        return Ok(ExitCode::FAILURE);
    };
    let config = loaded.config;
    crate::block_on(async move {
        let db = bai_db_models::connect(&config.db).await?;
        match command {
            ImageCommand::List {
                short,
                installed,
                json,
            } => {
                let rows = image_queries::list_all(&db).await?;
                let agents = if installed {
                    let redis = crate::redis_config(&config.etcd).await?;
                    Some(installed_agents(&redis, &rows).await?)
                } else {
                    None
                };
                if json {
                    print_list_json(&rows, agents.as_deref())?;
                } else {
                    print_list(&rows, agents.as_deref(), short);
                }
            }
            ImageCommand::Inspect {
                canonical_or_alias,
                architecture,
            } => {
                let candidates =
                    image_queries::canonical_or_alias(&canonical_or_alias, &architecture);
                let found = image_queries::inspect(&db, &candidates).await?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&Inspected::from(&found))?
                );
            }
            ImageCommand::Forget {
                canonical_or_alias,
                architecture,
            } => {
                let candidates =
                    image_queries::canonical_or_alias(&canonical_or_alias, &architecture);
                let forgotten = image_queries::forget(&db, &candidates).await?;
                println!("Forgot the image {}.", described(&forgotten));
            }
            ImageCommand::SetResourceLimit {
                canonical_or_alias,
                slot_type,
                range,
                architecture,
            } => {
                set_resource_limit(&db, &canonical_or_alias, &slot_type, range, &architecture)
                    .await?;
            }
            ImageCommand::Alias {
                alias,
                target,
                architecture,
            } => {
                let image =
                    image_queries::create_alias(&db, &alias, &target, &architecture).await?;
                println!("Alias {alias:?} now points to {}.", described(&image));
            }
            ImageCommand::Dealias { alias } => {
                let image = image_queries::delete_alias(&db, &alias).await?;
                println!("Removed the alias {alias:?} of {}.", described(&image));
            }
            ImageCommand::Rescan(args) => {
                return crate::image_rescan::rescan(args, &config.etcd, &db).await;
            }
        }
        db.close()
            .await
            .context("closing the database connection")?;
        Ok(ExitCode::SUCCESS)
    })?
}

async fn set_resource_limit(
    db: &DatabaseConnection,
    canonical_or_alias: &str,
    slot: &str,
    range: LimitRange,
    architecture: &str,
) -> anyhow::Result<()> {
    let candidates = image_queries::canonical_or_alias(canonical_or_alias, architecture);
    let image = image_queries::set_resource_limit(db, &candidates, slot, range).await?;
    let bounds = image.resources.get(slot);
    let bound = |key: &str| match bounds.and_then(|b| b.get(key)) {
        Some(Value::String(text)) => text.clone(),
        _ => "none".to_owned(),
    };
    println!(
        "The {slot} limits of {} are now min {}, max {}.",
        described(&image),
        bound("min"),
        bound("max")
    );
    Ok(())
}

/// `CANONICAL (ARCHITECTURE)`, as the reference prints an image row.
fn described(image: &images::Model) -> String {
    format!("{} ({})", image.name, image.architecture)
}

/// Prints `rows` (each with its agents when `agents` is given, skipping rows no agent has):
/// one `CANONICAL (ARCH)` line per row, or with `short` a table of canonical name and digest.
fn print_list(rows: &[images::Model], agents: Option<&[Vec<String>]>, short: bool) {
    let mut table = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let holders = agents.map(|agents| agents[index].clone());
        if holders.as_ref().is_some_and(Vec::is_empty) {
            continue;
        }
        match (short, holders) {
            (true, holders) => {
                let mut cells = vec![row.name.clone(), row.config_digest.trim().to_owned()];
                cells.extend(holders.map(|holders| holders.join(" ")));
                table.push(cells);
            }
            (false, Some(holders)) => println!("{} @ {}", described(row), holders.join(" ")),
            (false, None) => println!("{}", described(row)),
        }
    }
    crate::print_table(&table);
}

/// `image list --json`: the rows (only those some agent holds, with `agents`, when `agents` is
/// given) as a JSON array.
fn print_list_json(rows: &[images::Model], agents: Option<&[Vec<String>]>) -> anyhow::Result<()> {
    let mut listed = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let mut entry = serde_json::json!({
            "canonical": row.name,
            "architecture": row.architecture,
            "config_digest": row.config_digest.trim(),
        });
        if let Some(agents) = agents {
            if agents[index].is_empty() {
                continue;
            }
            entry["agents"] = serde_json::json!(agents[index]);
        }
        listed.push(entry);
    }
    println!("{}", serde_json::to_string_pretty(&listed)?);
    Ok(())
}

/// For each row, the ids of the agents that reported its canonical name in Redis database 3.
async fn installed_agents(
    config: &RedisConfig,
    rows: &[images::Model],
) -> anyhow::Result<Vec<Vec<String>>> {
    let redis = ImageDb::connect(config)
        .await
        .context("connecting to Redis for --installed")?;
    let names: Vec<&str> = rows.iter().map(|row| row.name.as_str()).collect();
    let agents = redis.agents_holding(&names).await;
    redis.close().await;
    agents.context("reading which agents hold the images")
}

/// What `image inspect` prints: the reference's fields, in its order.
#[derive(Serialize)]
struct Inspected<'a> {
    canonical_ref: &'a str,
    name: &'a str,
    humanized_name: &'a str,
    tag: Option<&'a str>,
    architecture: &'a str,
    registry: &'a str,
    digest: &'a str,
    labels: &'a Value,
    size_bytes: i64,
    resource_limits: Vec<ResourceLimit>,
    supported_accelerators: Vec<&'a str>,
    reverse_aliases: &'a [String],
}

/// One slot of `resources`: a missing MIN reads as `0` and a missing MAX as `Infinity`, as the
/// reference prints them.
#[derive(Serialize)]
struct ResourceLimit {
    key: String,
    min: String,
    max: String,
}

impl<'a> From<&'a image_queries::ImageWithAliases> for Inspected<'a> {
    fn from(found: &'a image_queries::ImageWithAliases) -> Inspected<'a> {
        let image = &found.image;
        let bound = |limits: &Value, key: &str, default: &str| match limits.get(key) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Null) | None => default.to_owned(),
            Some(other) => other.to_string(),
        };
        let resource_limits = image
            .resources
            .as_object()
            .into_iter()
            .flatten()
            .map(|(key, limits)| ResourceLimit {
                key: key.clone(),
                min: bound(limits, "min", "0"),
                max: bound(limits, "max", "Infinity"),
            })
            .collect();
        Inspected {
            canonical_ref: &image.name,
            name: &image.image,
            humanized_name: &image.image,
            tag: image.tag.as_deref(),
            architecture: &image.architecture,
            registry: &image.registry,
            digest: image.config_digest.trim(),
            labels: &image.labels,
            size_bytes: image.size_bytes,
            resource_limits,
            supported_accelerators: image
                .accelerators
                .as_deref()
                .map(|accelerators| accelerators.split(',').collect())
                .unwrap_or_default(),
            reverse_aliases: &found.aliases,
        }
    }
}
