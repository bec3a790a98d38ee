//! Container registry mutations (superadmins only): `create_container_registry`,
//! `modify_container_registry` and `delete_container_registry` write etcd
//! `config/docker/registry/{quoted hostname}` as the reference stores it. Each change is one etcd
//! transaction on that registry's own key and the keys below it, so a registry whose name merely
//! starts with the same text (`a` and `ab`) is never touched, and the shared configuration's
//! watchers see the old registry or the new one, never a mix.

use async_graphql::{Context, InputObject, MaybeUndefined, Object, SimpleObject};
use bai_etcd_store::shared_config::ContainerRegistry as RegistryConfig;
use bai_etcd_store::{NodeCondition, Scope};

use super::common::{Allowed, error, gql, internal, mutation_guard};
use super::container_registries::{ContainerRegistry, registries};
use crate::error::ApiError;

#[derive(Debug, Default)]
pub struct ContainerRegistryMutation;

/// A new registry's settings; `ssl_verify` defaults to true.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct CreateContainerRegistryInput {
    pub url: String,
    pub r#type: String,
    pub project: Option<Vec<Option<String>>>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ssl_verify: Option<bool>,
}

/// The settings to change: an absent field stays as it is; a null `project`, `username` or
/// `password` is removed, a null `ssl_verify` returns to its default (true).
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyContainerRegistryInput {
    pub url: MaybeUndefined<String>,
    pub r#type: MaybeUndefined<String>,
    pub project: MaybeUndefined<Vec<Option<String>>>,
    pub username: MaybeUndefined<String>,
    pub password: MaybeUndefined<String>,
    pub ssl_verify: MaybeUndefined<bool>,
}

/// `create_container_registry`'s payload: the registry as written (no `ok` or `msg`).
#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct CreateContainerRegistry {
    pub container_registry: Option<ContainerRegistry>,
}

/// `modify_container_registry`'s payload: the registry as written.
#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyContainerRegistry {
    pub container_registry: Option<ContainerRegistry>,
}

/// `delete_container_registry`'s payload: the registry as it was before the deletion.
#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct DeleteContainerRegistry {
    pub container_registry: Option<ContainerRegistry>,
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ContainerRegistryMutation {
    /// Writes the registry `hostname`; one that exists by that name is replaced as a whole.
    async fn create_container_registry(
        &self,
        ctx: &Context<'_>,
        hostname: String,
        props: CreateContainerRegistryInput,
    ) -> async_graphql::Result<Option<CreateContainerRegistry>> {
        superadmins_only(ctx, "create_container_registry").await?;
        let registry = RegistryConfig {
            url: props.url,
            kind: props.r#type,
            username: props.username,
            password: props.password,
            projects: project_names(props.project)?,
            ssl_verify: props.ssl_verify.unwrap_or(true),
        };
        write(ctx, &hostname, &registry, NodeCondition::Any).await?;
        tracing::info!(target: "bai_api", "create container registry {hostname} by API request");
        Ok(Some(CreateContainerRegistry {
            container_registry: Some(ContainerRegistry::new(&hostname, &registry)),
        }))
    }

    /// Changes the given settings of the registry `hostname`; "No such container registry." when
    /// there is none (or it was deleted meanwhile: then nothing is written).
    async fn modify_container_registry(
        &self,
        ctx: &Context<'_>,
        hostname: String,
        props: ModifyContainerRegistryInput,
    ) -> async_graphql::Result<Option<ModifyContainerRegistry>> {
        superadmins_only(ctx, "modify_container_registry").await?;
        let mut registry = registries(ctx)
            .await?
            .shift_remove(&hostname)
            .ok_or_else(not_found)?;
        match props.url {
            MaybeUndefined::Value(url) => registry.url = url,
            MaybeUndefined::Null => return Err(required("url")),
            MaybeUndefined::Undefined => {}
        }
        match props.r#type {
            MaybeUndefined::Value(kind) => registry.kind = kind,
            MaybeUndefined::Null => return Err(required("type")),
            MaybeUndefined::Undefined => {}
        }
        if let Some(projects) = props.project.as_opt_ref() {
            registry.projects = project_names(projects.cloned())?;
        }
        props.username.update_to(&mut registry.username);
        props.password.update_to(&mut registry.password);
        if let Some(ssl_verify) = props.ssl_verify.as_opt_ref() {
            registry.ssl_verify = ssl_verify.copied().unwrap_or(true);
        }
        write(ctx, &hostname, &registry, NodeCondition::ValuePresent).await?;
        tracing::info!(target: "bai_api", "modify container registry {hostname} by API request");
        Ok(Some(ModifyContainerRegistry {
            container_registry: Some(ContainerRegistry::new(&hostname, &registry)),
        }))
    }

    /// Deletes the registry `hostname` (its key and the keys below it, nothing else); "No such
    /// container registry." when there is none.
    async fn delete_container_registry(
        &self,
        ctx: &Context<'_>,
        hostname: String,
    ) -> async_graphql::Result<Option<DeleteContainerRegistry>> {
        superadmins_only(ctx, "delete_container_registry").await?;
        let registry = registries(ctx)
            .await?
            .shift_remove(&hostname)
            .ok_or_else(not_found)?;
        let deleted = gql(ctx)
            .api
            .etcd()
            .replace_node(
                &RegistryConfig::key(&hostname),
                &[],
                NodeCondition::ValuePresent,
                Scope::Global,
            )
            .await
            .map_err(|source| internal("deleting the container registry", &source))?;
        if !deleted {
            return Err(not_found());
        }
        tracing::info!(target: "bai_api", "delete container registry {hostname} by API request");
        Ok(Some(DeleteContainerRegistry {
            container_registry: Some(ContainerRegistry::new(&hostname, &registry)),
        }))
    }
}

/// Refuses a caller who is not a superadmin. The reference's middleware answers them with a
/// payload these types cannot hold, which fails as a GraphQL error; ours says why.
async fn superadmins_only(ctx: &Context<'_>, field: &str) -> async_graphql::Result<()> {
    match mutation_guard(ctx, Allowed::SuperAdmin, field).await? {
        Some(refusal) => Err(async_graphql::Error::new(refusal)),
        None => Ok(()),
    }
}

/// Checks `registry` as the shared configuration reads it and writes it as `hostname` in one
/// transaction; under [`NodeCondition::ValuePresent`] a registry gone meanwhile is not found.
async fn write(
    ctx: &Context<'_>,
    hostname: &str,
    registry: &RegistryConfig,
    condition: NodeCondition,
) -> async_graphql::Result<()> {
    registry.check(hostname).map_err(|problems| {
        let described: Vec<String> = problems.iter().map(ToString::to_string).collect();
        error(ApiError::invalid_params(described.join("; ")))
    })?;
    let existed = gql(ctx)
        .api
        .etcd()
        .replace_node(
            &RegistryConfig::key(hostname),
            &registry.to_pairs(hostname),
            condition,
            Scope::Global,
        )
        .await
        .map_err(|source| internal("writing the container registry", &source))?;
    if condition == NodeCondition::ValuePresent && !existed {
        return Err(not_found());
    }
    Ok(())
}

/// The project names of a `project` list; a null item is refused, as the reference cannot join it.
fn project_names(project: Option<Vec<Option<String>>>) -> async_graphql::Result<Vec<String>> {
    project
        .unwrap_or_default()
        .into_iter()
        .map(|name| {
            name.ok_or_else(|| {
                error(ApiError::invalid_params(
                    "project: a project name must not be null",
                ))
            })
        })
        .collect()
}

fn required(field: &str) -> async_graphql::Error {
    error(ApiError::invalid_params(format!(
        "{field}: must not be null"
    )))
}

fn not_found() -> async_graphql::Error {
    error(ApiError::not_found("container registry"))
}
