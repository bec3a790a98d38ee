//! Model serving: `endpoint`, `endpoint_list`, `routing`, `routing_list`, `endpoint_token` and
//! `endpoint_token_list`, with the `Endpoint`, `Routing`, `EndpointToken` and
//! `InferenceSessionError` types the WebUI's Serving pages select.
//!
//! Scoped as the reference's `scoped_query(autofill_user=False, user_key="user_uuid")`:
//! superadmins see every endpoint, domain admins their domain's, users the endpoints whose
//! sessions they own; monitors are refused. Like the reference, `routing_list` and
//! `endpoint_token_list` accept `filter` and `order` but do not apply them.

use async_graphql::{Context, ID, Object, SimpleObject};
use bai_db_models::entities::enums::{EndpointLifecycle, RouteStatus, RuntimeVariant};
use bai_db_models::entities::{endpoint_tokens, routings, vfolders};
use bai_db_models::queries::endpoints::{self as queries, EndpointRow, OwnerScope, RouteRow};
use bai_db_models::queries::image_listing;
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use sea_orm::ActiveEnum;
use serde_json::Value;
use uuid::Uuid;

use super::common::{JsonString, error, gql, internal};
use super::images::{ImageNode, relay_id};
use super::users::{invalid, list_error, page, scoped};
use crate::error::ApiError;
use bai_sessions::SERVICE_MAX_RETRIES;

#[derive(Debug, Default)]
pub struct EndpointQuery;

/// The caller's scope; `user_uuid` narrows it for superadmins and domain admins, and must be the
/// caller's own for users.
fn owner_scope(
    ctx: &Context<'_>,
    domain_name: Option<String>,
    user_uuid: Option<String>,
    project: Option<Uuid>,
) -> async_graphql::Result<OwnerScope> {
    let own = gql(ctx).caller.user.uuid.to_string();
    let scoped = scoped(
        ctx,
        domain_name,
        user_uuid,
        &own,
        |given, own| Uuid::parse_str(given).is_ok_and(|given| given.to_string() == own),
        false,
    )?;
    let session_owner = scoped
        .key
        .map(|key| {
            Uuid::parse_str(&key).map_err(|_| invalid(format!("user_uuid {key:?} is not a UUID")))
        })
        .transpose()?;
    Ok(OwnerScope {
        domain_name: scoped.domain_name,
        project,
        session_owner,
    })
}

fn total(count: u64) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl EndpointQuery {
    /// The endpoint `endpoint_id`, if it is in the caller's scope.
    async fn endpoint(
        &self,
        ctx: &Context<'_>,
        endpoint_id: Uuid,
    ) -> async_graphql::Result<Option<Endpoint>> {
        let scope = owner_scope(ctx, None, None, None)?;
        let row = queries::by_id(gql(ctx).api.db(), endpoint_id, &scope)
            .await
            .map_err(|source| internal("reading an endpoint", &source))?
            .ok_or_else(|| error(ApiError::not_found("endpoint")))?;
        Ok(Some(Endpoint(row)))
    }

    /// One page of the endpoints in scope (of every lifecycle stage) matching `filter`, ordered
    /// by `order` (default: newest first).
    #[allow(clippy::too_many_arguments)]
    async fn endpoint_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        domain_name: Option<String>,
        #[graphql(desc = "Accepted and ignored, as the reference does.")] group_id: Option<String>,
        user_uuid: Option<String>,
        project: Option<Uuid>,
    ) -> async_graphql::Result<Option<EndpointList>> {
        let _ = group_id;
        let scope = owner_scope(ctx, domain_name, user_uuid, project)?;
        let page = page(limit, offset)?;
        let db = gql(ctx).api.db();
        let total_count = queries::count(db, &scope, filter.as_deref())
            .await
            .map_err(|failure| list_error("counting endpoints", failure))?;
        let rows = queries::list(db, &scope, filter.as_deref(), order.as_deref(), page)
            .await
            .map_err(|failure| list_error("listing endpoints", failure))?;
        Ok(Some(EndpointList {
            items: rows.into_iter().map(|row| Some(Endpoint(row))).collect(),
            total_count: total(total_count),
        }))
    }

    /// The route `routing_id`, if it is in the caller's scope.
    async fn routing(
        &self,
        ctx: &Context<'_>,
        routing_id: Uuid,
    ) -> async_graphql::Result<Option<Routing>> {
        let scope = owner_scope(ctx, None, None, None)?;
        let row = queries::route_by_id(gql(ctx).api.db(), routing_id, &scope)
            .await
            .map_err(|source| internal("reading a route", &source))?
            .ok_or_else(|| error(ApiError::not_found("routing")))?;
        Ok(Some(Routing::from(row)))
    }

    /// One page of the routes in scope (of `endpoint_id`, when given), newest first.
    #[allow(clippy::too_many_arguments)]
    async fn routing_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        endpoint_id: Option<Uuid>,
    ) -> async_graphql::Result<Option<RoutingList>> {
        let _ = (filter, order);
        let scope = owner_scope(ctx, None, None, None)?;
        let page = page(limit, offset)?;
        let db = gql(ctx).api.db();
        let total_count = queries::route_count(db, endpoint_id, &scope)
            .await
            .map_err(|source| internal("counting routes", &source))?;
        let rows = queries::routes(db, endpoint_id, &scope, page)
            .await
            .map_err(|source| internal("listing routes", &source))?;
        Ok(Some(RoutingList {
            items: rows
                .into_iter()
                .map(|row| Some(Routing::from(row)))
                .collect(),
            total_count: total(total_count),
        }))
    }

    /// The endpoint token `token`, if it is in the caller's scope.
    async fn endpoint_token(
        &self,
        ctx: &Context<'_>,
        token: String,
    ) -> async_graphql::Result<Option<EndpointToken>> {
        let scope = owner_scope(ctx, None, None, None)?;
        let row = queries::token(gql(ctx).api.db(), &token, &scope)
            .await
            .map_err(|source| internal("reading an endpoint token", &source))?
            .ok_or_else(|| error(ApiError::not_found("endpoint_token")))?;
        Ok(Some(EndpointToken(row)))
    }

    /// One page of the endpoint tokens in scope (of `endpoint_id`, when given), newest first.
    #[allow(clippy::too_many_arguments)]
    async fn endpoint_token_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        endpoint_id: Option<Uuid>,
    ) -> async_graphql::Result<Option<EndpointTokenList>> {
        let _ = (filter, order);
        let scope = owner_scope(ctx, None, None, None)?;
        let page = page(limit, offset)?;
        let db = gql(ctx).api.db();
        let total_count = queries::token_count(db, endpoint_id, &scope)
            .await
            .map_err(|source| internal("counting endpoint tokens", &source))?;
        let rows = queries::tokens(db, endpoint_id, &scope, page)
            .await
            .map_err(|source| internal("listing endpoint tokens", &source))?;
        Ok(Some(EndpointTokenList {
            items: rows
                .into_iter()
                .map(|row| Some(EndpointToken(row)))
                .collect(),
            total_count: total(total_count),
        }))
    }
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct EndpointList {
    items: Vec<Option<Endpoint>>,
    total_count: i32,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct RoutingList {
    items: Vec<Option<Routing>>,
    total_count: i32,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct EndpointTokenList {
    items: Vec<Option<EndpointToken>>,
    total_count: i32,
}

/// The `name` of a lifecycle stage (`CREATED`), as the reference shows `lifecycle_stage`.
fn lifecycle_name(stage: EndpointLifecycle) -> &'static str {
    match stage {
        EndpointLifecycle::Created => "CREATED",
        EndpointLifecycle::Destroying => "DESTROYING",
        EndpointLifecycle::Destroyed => "DESTROYED",
    }
}

/// The `name` of a route status (`HEALTHY`), as the reference shows `Routing.status`.
pub fn route_status_name(status: RouteStatus) -> &'static str {
    match status {
        RouteStatus::Healthy => "HEALTHY",
        RouteStatus::Unhealthy => "UNHEALTHY",
        RouteStatus::Terminating => "TERMINATING",
        RouteStatus::Provisioning => "PROVISIONING",
        RouteStatus::FailedToStart => "FAILED_TO_START",
    }
}

/// A runtime variant's label (`MODEL_SERVICE_RUNTIME_PROFILES[v].name`).
pub fn runtime_label(variant: RuntimeVariant) -> &'static str {
    match variant {
        RuntimeVariant::Custom => "Custom (Default)",
        RuntimeVariant::Vllm => "vLLM",
        RuntimeVariant::Nim => "NVIDIA NIM",
        RuntimeVariant::Cmd => "Predefined Image Command",
    }
}

/// An endpoint's status as the reference derives it from its lifecycle stage, retries and
/// routes.
pub fn endpoint_status(
    stage: EndpointLifecycle,
    retries: i32,
    routings: &[routings::Model],
) -> &'static str {
    match stage {
        EndpointLifecycle::Destroyed => "DESTROYED",
        EndpointLifecycle::Destroying => "DESTROYING",
        EndpointLifecycle::Created => {
            if routings.is_empty() {
                return "READY";
            }
            if retries > SERVICE_MAX_RETRIES {
                return "UNHEALTHY";
            }
            let healthy = routings
                .iter()
                .filter(|route| route.status == RouteStatus::Healthy)
                .count();
            if healthy == routings.len() {
                return "HEALTHY";
            }
            if routings
                .iter()
                .any(|route| route.status == RouteStatus::Unhealthy)
            {
                return "DEGRADED";
            }
            "PROVISIONING"
        }
    }
}

/// The errors of a route that failed to start (`error_data`), as `InferenceSessionError` shows
/// them; `None` for a route without any.
fn route_error(route: &routings::Model) -> Option<InferenceSessionError> {
    if route.status != RouteStatus::FailedToStart {
        return None;
    }
    let data = route.error_data.as_ref()?;
    let session_id = match data.get("type").and_then(Value::as_str) {
        Some("session_cancelled") => data
            .get("session_id")
            .and_then(Value::as_str)
            .and_then(|id| Uuid::parse_str(id).ok()),
        _ => None,
    };
    let text = |error: &Value, key: &str| error.get(key).and_then(Value::as_str).map(str::to_owned);
    let errors = data
        .get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|error| InferenceSessionErrorInfo {
                    src: text(error, "src"),
                    name: text(error, "name"),
                    repr: text(error, "repr"),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(InferenceSessionError { session_id, errors })
}

/// An endpoint as the reference's `Endpoint` type shows it.
#[derive(Debug)]
pub struct Endpoint(EndpointRow);

#[Object(rename_fields = "snake_case")]
impl Endpoint {
    /// Null, as the reference leaves it.
    async fn id(&self) -> Option<ID> {
        None
    }

    async fn endpoint_id(&self) -> Option<Uuid> {
        Some(self.0.endpoint.id)
    }

    #[graphql(deprecation = "Deprecated since 23.09.9. use `image_object`")]
    async fn image(&self) -> Option<String> {
        None
    }

    /// Added in 23.09.9.
    async fn image_object(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ImageNode>> {
        let listing = image_listing::by_id(gql(ctx).api.db(), self.0.endpoint.image)
            .await
            .map_err(|source| internal("reading the image of an endpoint", &source))?;
        Ok(listing.map(ImageNode::from_listing))
    }

    async fn domain(&self) -> Option<String> {
        Some(self.0.endpoint.domain.clone())
    }

    async fn project(&self) -> Option<String> {
        Some(self.0.endpoint.project.to_string())
    }

    async fn resource_group(&self) -> Option<String> {
        Some(self.0.endpoint.resource_group.clone())
    }

    async fn resource_slots(&self) -> Option<JsonString> {
        Some(JsonString(self.0.endpoint.resource_slots.to_json()))
    }

    async fn url(&self) -> Option<String> {
        self.0.endpoint.url.clone()
    }

    async fn model(&self) -> Option<Uuid> {
        self.0.endpoint.model
    }

    /// Added in 24.03.4.
    async fn model_definition_path(&self) -> Option<String> {
        self.0.endpoint.model_definition_path.clone()
    }

    /// The model folder; an error when the endpoint has none (its folder was deleted).
    async fn model_vfolder(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<VirtualFolderNode>> {
        let Some(model) = self.0.endpoint.model else {
            return Err(error(ApiError::not_found("VFolder")));
        };
        let mut folders = folder_nodes(ctx, &[model]).await?;
        Ok(folders.pop())
    }

    #[graphql(deprecation = "Deprecated since 24.03.4; use `model_mount_destination` instead")]
    async fn model_mount_destiation(&self) -> Option<String> {
        Some(self.0.endpoint.model_mount_destination.clone())
    }

    /// Added in 24.03.4.
    async fn model_mount_destination(&self) -> Option<String> {
        Some(self.0.endpoint.model_mount_destination.clone())
    }

    /// Added in 24.03.4.
    async fn extra_mounts(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Vec<Option<VirtualFolderNode>>>> {
        let ids: Vec<Uuid> = self
            .0
            .endpoint
            .extra_mounts
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|mount| {
                let vfid = mount.get("vfid")?.as_str()?;
                // `VFolderID` is `{quota_scope_id}/{folder id hex}`, or the id alone.
                let folder = vfid.rsplit('/').next()?;
                Uuid::parse_str(folder).ok()
            })
            .collect();
        let folders = folder_nodes(ctx, &ids).await?;
        Ok(Some(folders.into_iter().map(Some).collect()))
    }

    #[graphql(deprecation = "Deprecated since 23.09.8. use `created_user_id`")]
    async fn created_user(&self) -> Option<Uuid> {
        Some(self.0.endpoint.created_user)
    }

    /// Added in 23.09.8.
    async fn created_user_email(&self) -> Option<String> {
        self.0.created_user_email.clone()
    }

    /// Added in 23.09.8.
    async fn created_user_id(&self) -> Option<Uuid> {
        Some(self.0.endpoint.created_user)
    }

    #[graphql(deprecation = "Deprecated since 23.09.8. use `session_owner_id`")]
    async fn session_owner(&self) -> Option<Uuid> {
        Some(self.0.endpoint.session_owner)
    }

    /// Added in 23.09.8.
    async fn session_owner_email(&self) -> Option<String> {
        self.0.session_owner_email.clone()
    }

    /// Added in 23.09.8.
    async fn session_owner_id(&self) -> Option<Uuid> {
        Some(self.0.endpoint.session_owner)
    }

    async fn tag(&self) -> Option<String> {
        self.0.endpoint.tag.clone()
    }

    async fn startup_command(&self) -> Option<String> {
        self.0.endpoint.startup_command.clone()
    }

    async fn bootstrap_script(&self) -> Option<String> {
        self.0.endpoint.bootstrap_script.clone()
    }

    async fn callback_url(&self) -> Option<String> {
        self.0
            .endpoint
            .callback_url
            .clone()
            .filter(|url| url != "None")
    }

    async fn environ(&self) -> Option<JsonString> {
        self.0.endpoint.environ.clone().map(JsonString)
    }

    async fn name(&self) -> Option<String> {
        Some(self.0.endpoint.name.clone())
    }

    async fn resource_opts(&self) -> Option<JsonString> {
        self.0.endpoint.resource_opts.clone().map(JsonString)
    }

    async fn desired_session_count(&self) -> Option<i32> {
        Some(self.0.endpoint.desired_session_count)
    }

    async fn cluster_mode(&self) -> Option<String> {
        Some(self.0.endpoint.cluster_mode.clone())
    }

    async fn cluster_size(&self) -> Option<i32> {
        Some(self.0.endpoint.cluster_size)
    }

    async fn open_to_public(&self) -> Option<bool> {
        self.0.endpoint.open_to_public
    }

    /// Added in 24.03.5.
    async fn runtime_variant(&self) -> Option<RuntimeVariantInfo> {
        Some(RuntimeVariantInfo::of(self.0.endpoint.runtime_variant))
    }

    async fn created_at(&self) -> DateTime<FixedOffset> {
        self.0
            .endpoint
            .created_at
            .unwrap_or_else(|| Utc.timestamp_opt(0, 0).unwrap().fixed_offset())
    }

    async fn destroyed_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.endpoint.destroyed_at
    }

    async fn routings(&self) -> Option<Vec<Option<Routing>>> {
        let url = self.0.endpoint.url.clone();
        Some(
            self.0
                .routings
                .iter()
                .map(|route| {
                    Some(Routing::from(RouteRow {
                        route: route.clone(),
                        endpoint_url: url.clone(),
                    }))
                })
                .collect(),
        )
    }

    async fn retries(&self) -> Option<i32> {
        Some(self.0.endpoint.retries)
    }

    async fn status(&self) -> Option<&'static str> {
        Some(endpoint_status(
            self.0.endpoint.lifecycle_stage,
            self.0.endpoint.retries,
            &self.0.routings,
        ))
    }

    async fn lifecycle_stage(&self) -> Option<&'static str> {
        Some(lifecycle_name(self.0.endpoint.lifecycle_stage))
    }

    /// The errors of the routes that failed to start.
    async fn errors(&self) -> Vec<InferenceSessionError> {
        self.0.routings.iter().filter_map(route_error).collect()
    }
}

/// Added in 24.03.5.
#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct RuntimeVariantInfo {
    name: Option<String>,
    human_readable_name: Option<String>,
}

impl RuntimeVariantInfo {
    fn of(variant: RuntimeVariant) -> RuntimeVariantInfo {
        RuntimeVariantInfo {
            name: Some(variant.to_value()),
            human_readable_name: Some(runtime_label(variant).to_owned()),
        }
    }
}

/// A route as the reference's `Routing` type shows it.
#[derive(Debug)]
pub struct Routing(RouteRow);

impl From<RouteRow> for Routing {
    fn from(row: RouteRow) -> Routing {
        Routing(row)
    }
}

#[Object(rename_fields = "snake_case")]
impl Routing {
    /// Null, as the reference leaves it.
    async fn id(&self) -> Option<ID> {
        None
    }

    async fn routing_id(&self) -> Option<Uuid> {
        Some(self.0.route.id)
    }

    /// The URL of the route's endpoint.
    async fn endpoint(&self) -> Option<String> {
        self.0.endpoint_url.clone()
    }

    async fn session(&self) -> Option<Uuid> {
        self.0.route.session
    }

    async fn status(&self) -> Option<&'static str> {
        Some(route_status_name(self.0.route.status))
    }

    async fn traffic_ratio(&self) -> Option<f64> {
        Some(self.0.route.traffic_ratio)
    }

    async fn created_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.route.created_at
    }

    async fn error(&self) -> Option<InferenceSessionError> {
        route_error(&self.0.route)
    }

    async fn error_data(&self) -> Option<JsonString> {
        self.0.route.error_data.clone().map(JsonString)
    }
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct InferenceSessionError {
    session_id: Option<Uuid>,
    errors: Vec<InferenceSessionErrorInfo>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct InferenceSessionErrorInfo {
    src: Option<String>,
    name: Option<String>,
    repr: Option<String>,
}

/// An endpoint token as the reference's `EndpointToken` type shows it.
#[derive(Debug)]
pub struct EndpointToken(endpoint_tokens::Model);

#[Object(rename_fields = "snake_case")]
impl EndpointToken {
    /// Null, as the reference leaves it.
    async fn id(&self) -> Option<ID> {
        None
    }

    async fn token(&self) -> String {
        self.0.token.clone()
    }

    async fn endpoint_id(&self) -> Option<Uuid> {
        self.0.endpoint
    }

    async fn domain(&self) -> String {
        self.0.domain.clone()
    }

    async fn project(&self) -> String {
        self.0.project.to_string()
    }

    async fn session_owner(&self) -> Option<Uuid> {
        self.0.session_owner
    }

    async fn created_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.created_at
    }

    /// The `exp` claim of the token (a JWT, read without checking its signature), in UTC.
    async fn valid_until(&self) -> Option<DateTime<FixedOffset>> {
        let claims = self.0.token.split('.').nth(1)?;
        let bytes = data_encoding::BASE64URL_NOPAD
            .decode(claims.trim_end_matches('=').as_bytes())
            .ok()?;
        let claims: Value = serde_json::from_slice(&bytes).ok()?;
        let exp = claims.get("exp")?.as_i64()?;
        Utc.timestamp_opt(exp, 0)
            .single()
            .map(|at| at.fixed_offset())
    }
}

/// A virtual folder as the reference's relay `VirtualFolderNode` shows it (the endpoint's model
/// folder and extra mounts).
#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct VirtualFolderNode {
    /// The relay global id: base64 of `VirtualFolderNode:{uuid}`.
    id: ID,
    row_id: Option<Uuid>,
    host: Option<String>,
    quota_scope_id: Option<String>,
    name: Option<String>,
    user: Option<Uuid>,
    user_email: Option<String>,
    group: Option<Uuid>,
    group_name: Option<String>,
    creator: Option<String>,
    unmanaged_path: Option<String>,
    usage_mode: Option<String>,
    permission: Option<String>,
    ownership_type: Option<String>,
    max_files: Option<i32>,
    max_size: Option<i32>,
    created_at: Option<DateTime<FixedOffset>>,
    last_used: Option<DateTime<FixedOffset>>,
    num_files: Option<i32>,
    cur_size: Option<i32>,
    cloneable: Option<bool>,
    status: Option<String>,
}

/// The folders `ids` (those that exist), with their owners' emails and projects' names.
async fn folder_nodes(
    ctx: &Context<'_>,
    ids: &[Uuid],
) -> async_graphql::Result<Vec<VirtualFolderNode>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let folders = queries::folders_with_owners(gql(ctx).api.db(), ids)
        .await
        .map_err(|source| internal("reading the folders of an endpoint", &source))?;
    Ok(folders
        .into_iter()
        .map(|(folder, user_email, group_name)| folder_node(folder, user_email, group_name))
        .collect())
}

fn folder_node(
    folder: vfolders::Model,
    user_email: Option<String>,
    group_name: Option<String>,
) -> VirtualFolderNode {
    VirtualFolderNode {
        id: ID(relay_id("VirtualFolderNode", &folder.id.to_string())),
        row_id: Some(folder.id),
        host: Some(folder.host),
        quota_scope_id: Some(folder.quota_scope_id),
        name: Some(folder.name),
        user: folder.user,
        user_email,
        group: folder.group,
        group_name,
        creator: folder.creator,
        unmanaged_path: folder.unmanaged_path,
        usage_mode: Some(folder.usage_mode.to_value()),
        permission: folder.permission.map(|permission| permission.to_value()),
        ownership_type: Some(folder.ownership_type.to_value()),
        max_files: folder.max_files,
        max_size: folder.max_size,
        created_at: folder.created_at,
        last_used: folder.last_used,
        num_files: folder.num_files,
        cur_size: folder.cur_size,
        cloneable: Some(folder.cloneable),
        status: Some(folder.status.to_value()),
    }
}
