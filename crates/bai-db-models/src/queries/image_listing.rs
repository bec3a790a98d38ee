//! Images as the GraphQL admin API lists them (`images`, `image`): every row of `images` with the
//! aliases that point to it, one row by id or by canonical name and architecture, and the registries a domain may use
//! (`domains.allowed_docker_registries`), which limit what non-superadmins see.

use std::collections::HashMap;

use sea_orm::prelude::Uuid;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::entities::{domains, image_aliases, images};
use crate::error::DbError;

/// An image row with the aliases that point to it (sorted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageListing {
    pub image: images::Model,
    pub aliases: Vec<String>,
}

/// Every image row, by canonical name then architecture, with its aliases.
pub async fn list_all(db: &impl ConnectionTrait) -> Result<Vec<ImageListing>, DbError> {
    let rows = images::Entity::find()
        .order_by_asc(images::Column::Name)
        .order_by_asc(images::Column::Architecture)
        .all(db)
        .await
        .map_err(DbError::query("listing the images"))?;
    with_aliases(db, rows).await
}

/// The image row `id`, with its aliases.
pub async fn by_id(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<ImageListing>, DbError> {
    let row = images::Entity::find_by_id(id)
        .one(db)
        .await
        .map_err(DbError::query(format!("reading image {id}")))?;
    Ok(with_aliases(db, row.into_iter().collect()).await?.pop())
}

/// The image row a kernel runs: canonical name `name` for `architecture`, with its aliases.
pub async fn by_name(
    db: &impl ConnectionTrait,
    name: &str,
    architecture: &str,
) -> Result<Option<ImageListing>, DbError> {
    let row = images::Entity::find()
        .filter(images::Column::Name.eq(name))
        .filter(images::Column::Architecture.eq(architecture))
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading image {name} ({architecture})"
        )))?;
    Ok(with_aliases(db, row.into_iter().collect()).await?.pop())
}

/// The rows with their aliases, in the order given.
pub async fn with_aliases(
    db: &impl ConnectionTrait,
    rows: Vec<images::Model>,
) -> Result<Vec<ImageListing>, DbError> {
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let mut aliases: HashMap<Uuid, Vec<String>> = HashMap::new();
    if !ids.is_empty() {
        let found = image_aliases::Entity::find()
            .filter(image_aliases::Column::Image.is_in(ids))
            .order_by_asc(image_aliases::Column::Alias)
            .all(db)
            .await
            .map_err(DbError::query("reading the aliases of images"))?;
        for alias in found {
            if let Some(name) = alias.alias {
                aliases.entry(alias.image).or_default().push(name);
            }
        }
    }
    Ok(rows
        .into_iter()
        .map(|image| ImageListing {
            aliases: aliases.remove(&image.id).unwrap_or_default(),
            image,
        })
        .collect())
}

/// The registries the domain `name` may pull from; empty when there is no such domain.
pub async fn allowed_registries(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Vec<String>, DbError> {
    let domain = domains::Entity::find_by_id(name.to_owned())
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading the allowed registries of domain {name}"
        )))?;
    Ok(domain
        .map(|domain| domain.allowed_docker_registries)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use sea_orm::prelude::Uuid;
    use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};
    use serde_json::json;

    use crate::entities::enums::ImageType;
    use crate::entities::{image_aliases, images};
    use crate::queries::test_rows::{self, Rows};

    async fn image(db: &DatabaseConnection, name: &str, architecture: &str) -> Uuid {
        let id = Uuid::new_v4();
        let (registry, rest) = name.split_once('/').expect("a registry");
        images::ActiveModel {
            id: Set(id),
            name: Set(name.to_owned()),
            image: Set(rest.split(':').next().unwrap_or(rest).to_owned()),
            tag: Set(rest.split(':').nth(1).map(str::to_owned)),
            registry: Set(registry.to_owned()),
            architecture: Set(architecture.to_owned()),
            config_digest: Set("sha256:0".to_owned()),
            size_bytes: Set(1),
            is_local: Set(false),
            r#type: Set(ImageType::Compute),
            labels: Set(json!({})),
            resources: Set(json!({})),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("image");
        id
    }

    async fn alias(db: &DatabaseConnection, alias: &str, image: Uuid) {
        image_aliases::ActiveModel {
            id: Set(Uuid::new_v4()),
            alias: Set(Some(alias.to_owned())),
            image: Set(image),
        }
        .insert(db)
        .await
        .expect("alias");
    }

    #[tokio::test]
    async fn lists_images_with_aliases_and_allowed_registries() {
        let (test, _rows) = test_rows::database("q_image_listing").await;
        let db = &test.connection;
        let arm = image(db, "cr.backend.ai/stable/python:3.9", "aarch64").await;
        let x86 = image(db, "cr.backend.ai/stable/python:3.9", "x86_64").await;
        let other = image(db, "docker.io/lablup/tool:1", "x86_64").await;
        alias(db, "python", x86).await;
        alias(db, "py", x86).await;

        let all = super::list_all(db).await.expect("list");
        let listed: Vec<_> = all
            .iter()
            .map(|listing| (listing.image.id, listing.aliases.clone()))
            .collect();
        assert_eq!(
            listed,
            [
                (arm, vec![]),
                (x86, vec!["py".to_owned(), "python".to_owned()]),
                (other, vec![]),
            ]
        );
        let one = super::by_id(db, x86).await.expect("by id").expect("found");
        assert_eq!(one.aliases, ["py", "python"]);
        assert!(
            super::by_id(db, Uuid::new_v4())
                .await
                .expect("by id")
                .is_none()
        );
        let by_name = super::by_name(db, "cr.backend.ai/stable/python:3.9", "aarch64")
            .await
            .expect("by name")
            .expect("found");
        assert_eq!(by_name.image.id, arm);
        assert_eq!(
            super::allowed_registries(db, Rows::DOMAIN)
                .await
                .expect("registries"),
            ["cr.backend.ai"]
        );
        assert!(
            super::allowed_registries(db, "nowhere")
                .await
                .expect("registries")
                .is_empty()
        );
    }
}
