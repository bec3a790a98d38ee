//! Container registries (superadmins only): `container_registry(hostname)` and
//! `container_registries`, read from etcd `config/docker/registry/*` at each request (another
//! manager or `etcd put` may have changed them). The password is never shown: a set one reads
//! `*****`, as in the reference. The mutations are in `container_registry_mutations`.

use async_graphql::{Context, ID, Object, SimpleObject};
use bai_etcd_store::shared_config::{ContainerRegistry as RegistryConfig, SharedConfig};
use indexmap::IndexMap;

use super::common::{error, gql, internal, require_superadmin};
use super::images::relay_id;
use crate::error::ApiError;

/// What a set password reads as (the reference's `PASSWORD_PLACEHOLDER`).
const PASSWORD_PLACEHOLDER: &str = "*****";

#[derive(Debug, Default)]
pub struct ContainerRegistryQuery;

/// A registry as the reference's relay `ContainerRegistry` type shows it.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ContainerRegistry {
    /// The relay global id: base64 of `ContainerRegistry:{hostname}`.
    pub id: ID,
    pub hostname: Option<String>,
    pub config: Option<ContainerRegistryConfig>,
}

/// A registry's settings.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ContainerRegistryConfig {
    pub url: String,
    pub r#type: String,
    pub project: Option<Vec<Option<String>>>,
    pub username: Option<String>,
    /// `*****` when a password is set, null otherwise.
    pub password: Option<String>,
    pub ssl_verify: Option<bool>,
}

impl ContainerRegistry {
    pub(super) fn new(hostname: &str, registry: &RegistryConfig) -> ContainerRegistry {
        ContainerRegistry {
            id: ID(relay_id("ContainerRegistry", hostname)),
            hostname: Some(hostname.to_owned()),
            config: Some(ContainerRegistryConfig {
                url: registry.url.clone(),
                r#type: registry.kind.clone(),
                project: Some(registry.projects.iter().cloned().map(Some).collect()),
                username: registry.username.clone(),
                password: registry
                    .password
                    .as_ref()
                    .map(|_| PASSWORD_PLACEHOLDER.to_owned()),
                ssl_verify: Some(registry.ssl_verify),
            }),
        }
    }
}

/// The registries as etcd holds them now.
pub(super) async fn registries(
    ctx: &Context<'_>,
) -> async_graphql::Result<IndexMap<String, RegistryConfig>> {
    let config = SharedConfig::load(gql(ctx).api.etcd())
        .await
        .map_err(|source| internal("reading the container registries", &source))?;
    Ok(config.docker.registries)
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ContainerRegistryQuery {
    /// The registry `hostname`; "No such container registry." when etcd has none by that name.
    async fn container_registry(
        &self,
        ctx: &Context<'_>,
        hostname: String,
    ) -> async_graphql::Result<Option<ContainerRegistry>> {
        require_superadmin(ctx)?;
        let registries = registries(ctx).await?;
        let registry = registries
            .get(&hostname)
            .ok_or_else(|| error(ApiError::not_found("container registry")))?;
        Ok(Some(ContainerRegistry::new(&hostname, registry)))
    }

    /// Every registry, in etcd's key order.
    async fn container_registries(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Vec<Option<ContainerRegistry>>>> {
        require_superadmin(ctx)?;
        let registries = registries(ctx).await?;
        Ok(Some(
            registries
                .iter()
                .map(|(hostname, registry)| Some(ContainerRegistry::new(hostname, registry)))
                .collect(),
        ))
    }
}
