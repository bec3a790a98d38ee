//! `/services`: model-service endpoints (the reference's `api/service.py`): listing the caller's,
//! creating one (checked as the reference checks it, without starting a session: the scaler of
//! `bai_sessions::scale` creates the sessions), reading, scaling and deleting one, its start
//! errors, and the runtimes it may use.
//!
//! An endpoint needs an app proxy: the reference refuses to create one in a resource group
//! without `wsproxy_addr` and `wsproxy_api_token` (503), and so do we. This manager does not talk
//! to app proxies: routes are not registered with one, so an endpoint's `url` stays unset, and
//! `POST /services/{id}/token` and `POST /services/{id}/sync` are refused (503) after the
//! reference's checks, where the reference would ask the proxy (and answer 500 without one).

use std::collections::BTreeMap;

use axum::extract::State;
use bai_db_models::entities::ResourceSlot;
use bai_db_models::entities::enums::{
    EndpointLifecycle, RouteStatus, RuntimeVariant, SessionType, UserRole, VFolderOwnershipType,
    VFolderUsageMode,
};
use bai_db_models::entities::{endpoints, vfolders};
use bai_db_models::queries::endpoints::{self as queries, EndpointRow};
use bai_db_models::queries::scaling_groups::{self, ProjectRef};
use bai_db_models::queries::session_enqueue;
use bai_db_models::queries::vfolders::{AccessFilter, Requester, accessible_vfolders};
use bai_scheduler::KnownSlots;
use bai_scheduler::enqueue::{self as rules, ScalingGroupCandidate};
use bai_storage_proxy::StorageError;
use http::{Method, StatusCode};
use sea_orm::{ActiveEnum, ColumnTrait, Condition};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::session::{ClusterModeParam, owner_scope, resolve_image, session_name};
use super::vfolder::vfolder_id;
use super::{Access, Authenticated, Route, StatusGate};
use crate::auth::Caller;
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorKind};
use crate::json::PyJson;
use crate::params::{Params, Path};

pub(super) fn routes() -> Vec<Route> {
    let user = |route: Route, gate| route.access(Access::User).gate(gate);
    vec![
        user(
            Route::new(Method::GET, "/services", "service.list_serve", list_serve),
            StatusGate::ReadAllowed,
        )
        .params::<ListParams>()
        .summary("The caller's model services that are not being destroyed."),
        user(
            Route::new(Method::POST, "/services", "service.create", create),
            StatusGate::AllAllowed,
        )
        .params::<NewServiceParams>()
        .summary(
            "Creates a model service; the scaler starts its inference sessions \
             (desired_session_count of them).",
        ),
        user(
            Route::new(
                Method::GET,
                "/services/_/runtimes",
                "service.list_supported_runtimes",
                list_supported_runtimes,
            ),
            StatusGate::ReadAllowed,
        )
        .summary("The inference runtimes a model service may use."),
        user(
            Route::new(
                Method::GET,
                "/services/{service_id}",
                "service.get_info",
                get_info,
            ),
            StatusGate::ReadAllowed,
        )
        .summary("One model service and its healthy routes."),
        user(
            Route::new(
                Method::DELETE,
                "/services/{service_id}",
                "service.delete",
                delete,
            ),
            StatusGate::ReadAllowed,
        )
        .summary("Removes a model service; the scaler ends its sessions."),
        user(
            Route::new(
                Method::GET,
                "/services/{service_id}/errors",
                "service.list_errors",
                list_errors,
            ),
            StatusGate::ReadAllowed,
        )
        .summary("The errors of the inference sessions that failed to start."),
        user(
            Route::new(
                Method::POST,
                "/services/{service_id}/errors/clear",
                "service.clear_error",
                clear_error,
            ),
            StatusGate::ReadAllowed,
        )
        .summary("Forgets the start errors so that the scaler tries again."),
        user(
            Route::new(
                Method::POST,
                "/services/{service_id}/scale",
                "service.scale",
                scale,
            ),
            StatusGate::ReadAllowed,
        )
        .params::<ScaleParams>()
        .summary("Sets how many inference sessions the model service should have."),
        user(
            Route::new(
                Method::POST,
                "/services/{service_id}/sync",
                "service.sync",
                sync,
            ),
            StatusGate::ReadAllowed,
        )
        .summary(
            "Would send the healthy routes to the resource group's app proxy; refused, as this \
             manager does not talk to app proxies.",
        ),
        user(
            Route::new(
                Method::POST,
                "/services/{service_id}/token",
                "service.generate_token",
                generate_token,
            ),
            StatusGate::ReadAllowed,
        )
        .params::<TokenParams>()
        .summary(
            "Would ask the resource group's app proxy for an access token; refused, as this \
             manager does not talk to app proxies.",
        ),
    ]
}

/// The reference's `DEFAULT_IMAGE_ARCH`.
const DEFAULT_ARCH: &str = "x86_64";
/// Where the model folder is mounted unless the request says otherwise.
const DEFAULT_MODEL_MOUNT: &str = "/models";
/// The names the model definition is looked for under when the request gives none.
const MODEL_DEFINITION_NAMES: [&str; 2] = ["model-definition.yaml", "model-definition.yml"];

fn db_error(context: &'static str) -> impl FnOnce(bai_db_models::DbError) -> ApiError {
    move |error| ApiError::internal(context, &error)
}

/// `uuid.UUID(request.match_info["service_id"])`, refused with the field named (the reference
/// answers 500 for a malformed id).
fn service_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        ApiError::invalid_params("Input validation error")
            .data(json!({ "service_id": "not a valid UUID" }))
    })
}

/// The endpoint `id` (of any lifecycle stage), if the caller may act on its owner
/// (`get_user_uuid_scopes` with the endpoint's `session_owner`).
async fn owned_endpoint(
    ctx: &ApiContext,
    caller: &Caller,
    id: Uuid,
) -> Result<EndpointRow, ApiError> {
    let row = queries::by_id(ctx.db(), id, &queries::OwnerScope::default())
        .await
        .map_err(db_error("reading the model service"))?
        .ok_or_else(|| ApiError::not_found("object"))?;
    check_may_act_for(ctx, caller, row.endpoint.session_owner).await?;
    Ok(row)
}

/// `check_if_requester_is_eligible_to_act_as_target_user_uuid`.
async fn check_may_act_for(ctx: &ApiContext, caller: &Caller, owner: Uuid) -> Result<(), ApiError> {
    if owner == caller.user.uuid {
        return Ok(());
    }
    let (owner_domain, owner_role) = queries::owner_domain_and_role(ctx.db(), owner)
        .await
        .map_err(db_error("reading the owner of the model service"))?
        .ok_or_else(|| ApiError::invalid_params("Unknown owner access key"))?;
    let forbidden = |msg: &str| ApiError::with_msg(ErrorKind::GenericForbidden, msg);
    match caller.role() {
        UserRole::Superadmin => Ok(()),
        UserRole::Admin => {
            if caller.user.domain_name != owner_domain {
                return Err(forbidden(
                    "Domain-admins can perform operations on behalf of other users in the same domain only.",
                ));
            }
            if owner_role == Some(UserRole::Superadmin) {
                return Err(forbidden(
                    "Domain-admins cannot perform operations on behalf of super-admins.",
                ));
            }
            Ok(())
        }
        UserRole::User | UserRole::Monitor => Err(forbidden(
            "Only admins can perform operations on behalf of other users.",
        )),
    }
}

fn max_sessions_per_service(caller: &Caller) -> i32 {
    caller.user_policy.max_session_count_per_model_session
}

fn too_many_sessions(max: i32) -> ApiError {
    ApiError::invalid_params(format!(
        "Cannot spawn more than {max} sessions for a single service"
    ))
}

// ----- GET /services -----

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// Only the service of this name.
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Serialize)]
struct CompactServeInfo {
    id: Uuid,
    name: String,
    desired_session_count: i32,
    active_route_count: usize,
    service_endpoint: Option<String>,
    is_public: bool,
}

async fn list_serve(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<ListParams>,
) -> Result<PyJson<Vec<CompactServeInfo>>, ApiError> {
    tracing::info!(target: "bai_api", "SERVE.LIST (email:{}, ak:{})", caller.user.email, caller.access_key());
    let name = params.name.as_deref().filter(|name| !name.is_empty());
    let rows = queries::owned_live(ctx.db(), caller.user.uuid, name)
        .await
        .map_err(db_error("listing the model services"))?;
    Ok(PyJson(
        rows.into_iter()
            .map(|row| CompactServeInfo {
                id: row.endpoint.id,
                name: row.endpoint.name.clone(),
                desired_session_count: row.endpoint.desired_session_count,
                active_route_count: row
                    .routings
                    .iter()
                    .filter(|route| route.status == RouteStatus::Healthy)
                    .count(),
                service_endpoint: row.endpoint.url.clone(),
                is_public: row.endpoint.open_to_public.unwrap_or(false),
            })
            .collect(),
    ))
}

// ----- GET /services/{id} -----

#[derive(Debug, Serialize)]
struct RouteInfo {
    route_id: Uuid,
    session_id: Option<Uuid>,
    traffic_ratio: f64,
}

#[derive(Debug, Serialize)]
struct ServeInfo {
    endpoint_id: Uuid,
    model_id: Option<Uuid>,
    extra_mounts: Vec<Uuid>,
    name: String,
    desired_session_count: i32,
    model_definition_path: Option<String>,
    active_routes: Vec<RouteInfo>,
    service_endpoint: Option<String>,
    is_public: bool,
    runtime_variant: String,
}

/// The folder ids of an endpoint's `extra_mounts` (`VFolderMount` objects whose `vfid` is
/// `{quota_scope_id}/{folder id}` or the folder id alone).
fn extra_mount_ids(extra_mounts: &Value) -> Vec<Uuid> {
    extra_mounts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|mount| {
            let vfid = mount.get("vfid")?.as_str()?;
            Uuid::parse_str(vfid.rsplit('/').next()?).ok()
        })
        .collect()
}

impl ServeInfo {
    fn of(row: &EndpointRow) -> ServeInfo {
        let endpoint = &row.endpoint;
        ServeInfo {
            endpoint_id: endpoint.id,
            model_id: endpoint.model,
            extra_mounts: extra_mount_ids(&endpoint.extra_mounts),
            name: endpoint.name.clone(),
            desired_session_count: endpoint.desired_session_count,
            model_definition_path: endpoint.model_definition_path.clone(),
            active_routes: row
                .routings
                .iter()
                .filter(|route| route.status == RouteStatus::Healthy)
                .map(|route| RouteInfo {
                    route_id: route.id,
                    session_id: route.session,
                    traffic_ratio: route.traffic_ratio,
                })
                .collect(),
            service_endpoint: endpoint.url.clone(),
            is_public: endpoint.open_to_public.unwrap_or(false),
            runtime_variant: endpoint.runtime_variant.to_value(),
        }
    }
}

async fn get_info(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<PyJson<ServeInfo>, ApiError> {
    let id = service_id(&id)?;
    tracing::info!(target: "bai_api", "SERVE.GET_INFO (email:{}, ak:{}, s:{id})", caller.user.email, caller.access_key());
    let row = owned_endpoint(&ctx, &caller, id).await?;
    Ok(PyJson(ServeInfo::of(&row)))
}

// ----- POST /services -----

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum RuntimeVariantParam {
    Vllm,
    Nim,
    Cmd,
    #[default]
    Custom,
}

impl From<RuntimeVariantParam> for RuntimeVariant {
    fn from(param: RuntimeVariantParam) -> RuntimeVariant {
        match param {
            RuntimeVariantParam::Vllm => RuntimeVariant::Vllm,
            RuntimeVariantParam::Nim => RuntimeVariant::Nim,
            RuntimeVariantParam::Cmd => RuntimeVariant::Cmd,
            RuntimeVariantParam::Custom => RuntimeVariant::Custom,
        }
    }
}

fn default_arch() -> String {
    DEFAULT_ARCH.to_owned()
}

fn default_name() -> String {
    "default".to_owned()
}

fn one() -> i32 {
    1
}

fn default_model_mount() -> String {
    DEFAULT_MODEL_MOUNT.to_owned()
}

fn model_version() -> i64 {
    1
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewServiceParams {
    /// The service's name (aliases `service_name`, `clientSessionToken`).
    #[serde(alias = "service_name", alias = "clientSessionToken")]
    #[serde(deserialize_with = "session_name")]
    #[schemars(length(min = 4, max = 64))]
    name: String,
    #[serde(alias = "desiredSessionCount")]
    desired_session_count: i32,
    /// The image reference or alias (alias `lang`).
    #[serde(alias = "lang")]
    image: String,
    #[serde(default)]
    runtime_variant: RuntimeVariantParam,
    #[serde(default = "default_arch", alias = "arch")]
    architecture: String,
    #[serde(default = "default_name", alias = "groupName", alias = "group_name")]
    group: String,
    #[serde(default = "default_name", alias = "domainName", alias = "domain_name")]
    domain: String,
    #[serde(default = "one", alias = "clusterSize")]
    cluster_size: i32,
    #[serde(default, alias = "clusterMode")]
    cluster_mode: ClusterModeParam,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default, alias = "startupCommand")]
    startup_command: Option<String>,
    #[serde(default, alias = "bootstrapScript")]
    bootstrap_script: Option<String>,
    #[serde(default, alias = "callbackUrl", alias = "CallbackURL")]
    callback_url: Option<String>,
    /// (Admins only) the owner of the service's sessions.
    #[serde(default)]
    owner_access_key: Option<String>,
    #[serde(default)]
    open_to_public: bool,
    config: ServiceConfig,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ServiceConfig {
    /// The model folder, by id or by name.
    model: String,
    #[serde(default)]
    model_definition_path: Option<String>,
    /// Unused, as in the reference.
    #[serde(
        rename = "model_version",
        default = "model_version",
        alias = "modelVersion"
    )]
    _model_version: i64,
    #[serde(default = "default_model_mount", alias = "modelMountDestination")]
    model_mount_destination: String,
    /// Other folders to mount, by folder id.
    #[serde(default)]
    extra_mounts: BTreeMap<String, Value>,
    #[serde(default)]
    environ: Option<BTreeMap<String, String>>,
    #[serde(alias = "scalingGroup")]
    scaling_group: String,
    resources: BTreeMap<String, Value>,
    #[serde(default)]
    resource_opts: Map<String, Value>,
}

/// Who a new service's sessions belong to, and where (`query_userinfo`).
struct Owner {
    uuid: Uuid,
    role: UserRole,
}

/// `query_userinfo`: the owner's domain must be active; the project is looked up by name in the
/// requested domain, which users and domain admins may not change (admins and superadmins acting
/// for another user may pick any active project there, users only their own).
async fn resolve_owner(
    ctx: &ApiContext,
    caller: &Caller,
    owner: Option<&session_enqueue::KeypairOwner>,
    domain: &str,
    group: &str,
) -> Result<Owner, ApiError> {
    let db = ctx.db();
    let (uuid, role, scope_role, owner_domain) = match owner {
        Some(owner) => (
            owner.user.uuid,
            owner.user.role.unwrap_or(UserRole::User),
            owner.user.role.unwrap_or(UserRole::User),
            owner.user.domain_name.clone().unwrap_or_default(),
        ),
        // The reference treats the requester as a plain user here, whatever its role.
        None => (
            caller.user.uuid,
            caller.role(),
            UserRole::User,
            caller.user.domain_name.clone().unwrap_or_default(),
        ),
    };
    if !session_enqueue::is_active_domain(db, &owner_domain)
        .await
        .map_err(db_error("reading the owner's domain"))?
    {
        return Err(ApiError::invalid_params("Invalid domain"));
    }
    // The owner must be allowed in the project; the endpoint records the project the request
    // names (`resolve_group_name_or_id`), as the reference does.
    match scope_role {
        UserRole::Superadmin => session_enqueue::active_project_id(db, domain, group, None).await,
        UserRole::Admin => {
            if domain != owner_domain {
                return Err(ApiError::invalid_params(
                    "You can only set the domain to the owner's domain.",
                ));
            }
            session_enqueue::active_project_id(db, &owner_domain, group, None).await
        }
        UserRole::User | UserRole::Monitor => {
            if domain != owner_domain {
                return Err(ApiError::invalid_params(
                    "You can only set the domain to your domain.",
                ));
            }
            session_enqueue::active_project_id(db, &owner_domain, group, Some(uuid)).await
        }
    }
    .map_err(db_error("reading the project"))?
    .ok_or_else(|| ApiError::invalid_params("Invalid group"))?;
    Ok(Owner { uuid, role })
}

/// `ModelServicePredicateChecker.check_scaling_group`: the resource group must be one the owner
/// may use for inference sessions, and have an app proxy.
async fn check_scaling_group(
    ctx: &ApiContext,
    requested: &str,
    owner_access_key: &str,
    domain: &str,
    group: &str,
) -> Result<String, ApiError> {
    let project = match Uuid::parse_str(group) {
        Ok(id) => ProjectRef::Id(id),
        Err(_) => ProjectRef::Name(group),
    };
    let allowed =
        scaling_groups::allowed_for_project(ctx.db(), Some(domain), project, owner_access_key)
            .await
            .map_err(db_error("reading the allowed resource groups"))?;
    let candidates: Vec<ScalingGroupCandidate> =
        allowed.iter().map(ScalingGroupCandidate::from).collect();
    let name =
        rules::select_scaling_group(&candidates, Some(requested), SessionType::Inference, false)?;
    let sgroup = allowed
        .iter()
        .find(|sgroup| sgroup.name == name)
        .ok_or_else(|| ApiError::not_found("scaling group"))?;
    let unavailable = |msg: &str| ApiError::with_msg(ErrorKind::ServiceUnavailable, msg);
    if sgroup.wsproxy_addr.as_deref().unwrap_or("").is_empty() {
        return Err(unavailable(
            "No coordinator configured for this resource group",
        ));
    }
    if sgroup.wsproxy_api_token.as_deref().unwrap_or("").is_empty() {
        return Err(unavailable(
            "Scaling group not ready to start model service",
        ));
    }
    Ok(name)
}

/// The model folder `model` (an id, else the name of a model folder) among those the owner can
/// reach.
async fn model_folder(
    ctx: &ApiContext,
    owner: &Owner,
    domain: &str,
    model: &str,
) -> Result<vfolders::Model, ApiError> {
    let allowed_types: Vec<VFolderOwnershipType> = match ctx.shared_config().volumes.as_ref() {
        Some(volumes) => [
            (volumes.types.user, VFolderOwnershipType::User),
            (volumes.types.group, VFolderOwnershipType::Group),
        ]
        .into_iter()
        .filter_map(|(enabled, kind)| enabled.then_some(kind))
        .collect(),
        None => vec![VFolderOwnershipType::User],
    };
    let requester = Requester {
        uuid: owner.uuid,
        role: owner.role,
        domain_name: domain,
    };
    let condition = match Uuid::parse_str(model) {
        Ok(id) => Condition::all().add(vfolders::Column::Id.eq(id)),
        Err(_) => Condition::all()
            .add(vfolders::Column::Name.eq(model))
            .add(vfolders::Column::UsageMode.eq(VFolderUsageMode::Model)),
    };
    let filter = AccessFilter {
        folders: Some(condition),
        ..AccessFilter::default()
    };
    let found = accessible_vfolders(ctx.db(), &requester, &allowed_types, &filter)
        .await
        .map_err(db_error("looking for the model folder"))?;
    let folder = found
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found("virtual folder"))?
        .folder;
    if folder.usage_mode != VFolderUsageMode::Model {
        return Err(ApiError::invalid_params(
            "Selected VFolder is not a model folder",
        ));
    }
    Ok(folder)
}

/// `validate_model_definition` for the `custom` runtime: the model definition (the path the
/// request gives, else `model-definition.yaml` or `.yml`) must be in the model folder, read
/// through its storage proxy. Returns the path found.
async fn find_model_definition(
    ctx: &ApiContext,
    folder: &vfolders::Model,
    path: Option<&str>,
) -> Result<String, ApiError> {
    let storage_unavailable = |error: StorageError| {
        ApiError::with_msg(
            ErrorKind::ServiceUnavailable,
            format!("Cannot read the model definition from the model folder: {error}"),
        )
    };
    let proxies = ctx.storage_proxies().map_err(storage_unavailable)?;
    let vfid = vfolder_id(&folder.quota_scope_id, folder.id);
    let candidates: Vec<String> = match path {
        Some(path) => vec![path.to_owned()],
        None => MODEL_DEFINITION_NAMES
            .iter()
            .map(|name| (*name).to_owned())
            .collect(),
    };
    for candidate in &candidates {
        match proxies
            .fetch_file(&folder.host, &vfid, &format!("./{candidate}"))
            .await
        {
            Ok(_) => return Ok(candidate.clone()),
            Err(StorageError::Rejected { .. } | StorageError::RejectedPlain { .. }) => continue,
            Err(other) => return Err(storage_unavailable(other)),
        }
    }
    Err(ApiError::invalid_params(match path {
        Some(path) => {
            format!("Model definition YAML file {path} not found inside the model storage")
        }
        None => "Model definition YAML file \"model-definition.yaml\" or \"model-definition.yml\" not found inside the model storage".to_owned(),
    }))
}

async fn create(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<NewServiceParams>,
) -> Result<PyJson<ServeInfo>, ApiError> {
    tracing::info!(target: "bai_api", "SERVE.CREATE (email:{}, ak:{}, s:{})", caller.user.email, caller.access_key(), params.name);
    let config = &params.config;
    // _validate
    let owner_keypair = owner_scope(&ctx, &caller, params.owner_access_key.as_deref()).await?;
    let max = max_sessions_per_service(&caller);
    if params.desired_session_count > max {
        return Err(too_many_sessions(max));
    }
    let owner_access_key = owner_keypair.as_ref().map_or_else(
        || caller.access_key().to_owned(),
        |owner| owner.keypair.access_key.clone(),
    );
    let scaling_group = check_scaling_group(
        &ctx,
        &config.scaling_group,
        &owner_access_key,
        &params.domain,
        &params.group,
    )
    .await?;
    let owner = resolve_owner(
        &ctx,
        &caller,
        owner_keypair.as_ref(),
        &params.domain,
        &params.group,
    )
    .await?;
    let folder = model_folder(&ctx, &owner, &params.domain, &config.model).await?;
    let mut extra_mount_ids = Vec::new();
    for key in config.extra_mounts.keys() {
        let id = Uuid::parse_str(key).map_err(|_| {
            ApiError::invalid_params("Input validation error")
                .data(json!({ format!("config.extra_mounts.{key}"): "not a valid UUID" }))
        })?;
        if id == folder.id {
            return Err(ApiError::invalid_params(
                "Same VFolder appears on both model specification and VFolder mount",
            ));
        }
        extra_mount_ids.push(id);
    }
    if !extra_mount_ids.is_empty() {
        return Err(ApiError::with_msg(
            ErrorKind::NotImplemented,
            "Mounting extra virtual folders is not supported by this manager yet (no storage proxy)",
        ));
    }
    let runtime_variant = RuntimeVariant::from(params.runtime_variant);
    let model_definition_path = if runtime_variant == RuntimeVariant::Custom {
        find_model_definition(&ctx, &folder, config.model_definition_path.as_deref()).await?
    } else {
        if runtime_variant != RuntimeVariant::Cmd
            && config.model_mount_destination != DEFAULT_MODEL_MOUNT
        {
            return Err(ApiError::invalid_params(
                "Model mount destination must be /models for non-custom runtimes",
            ));
        }
        // Not read by sessions of these runtimes; kept for the convention, as the reference does.
        MODEL_DEFINITION_NAMES[0].to_owned()
    };

    // create: the image, then what `create_session(dry_run=True)` checks.
    let image = resolve_image(
        &ctx,
        &params.image,
        &params.architecture,
        owner.uuid,
        &params.domain,
    )
    .await?;
    rules::check_mount_aliases(&[(
        folder.id.to_string(),
        config.model_mount_destination.clone(),
    )])?;
    let known = KnownSlots::load(ctx.etcd())
        .await
        .map_err(|error| ApiError::internal("reading etcd config/resource_slots", &error))?;
    let resources: Vec<(String, Value)> = config
        .resources
        .iter()
        .map(|(slot, amount)| (slot.clone(), amount.clone()))
        .collect();
    let slots = rules::slots_from_user_input(&resources, &known).map_err(|error| {
        ApiError::invalid_params(format!("Invalid resource allocation: {error}"))
    })?;
    // Only the slots the request names are kept, as the reference keeps the request's map.
    let resource_slots: ResourceSlot = ResourceSlot::from(&slots)
        .iter()
        .filter(|(slot, _)| config.resources.get(*slot).is_some_and(|v| !v.is_null()))
        .map(|(slot, amount)| (slot.to_owned(), amount))
        .collect();

    if queries::name_in_use(ctx.db(), &params.name)
        .await
        .map_err(db_error("looking for a service of the same name"))?
    {
        return Err(ApiError::invalid_params(
            "Cannot create multiple services with same name",
        ));
    }
    let project = queries::project_id(ctx.db(), &params.domain, &params.group)
        .await
        .map_err(db_error("reading the project"))?
        .ok_or_else(|| ApiError::invalid_params("Invalid group name None"))?;
    let endpoint = endpoints::Model {
        id: Uuid::new_v4(),
        name: params.name.clone(),
        created_user: caller.user.uuid,
        session_owner: owner.uuid,
        desired_session_count: params.desired_session_count,
        image: image.id,
        model: Some(folder.id),
        model_mount_destination: config.model_mount_destination.clone(),
        domain: params.domain.clone(),
        project,
        resource_group: scaling_group,
        lifecycle_stage: EndpointLifecycle::Created,
        tag: params.tag.clone(),
        startup_command: params.startup_command.clone(),
        bootstrap_script: params.bootstrap_script.clone(),
        callback_url: params.callback_url.clone(),
        environ: config.environ.as_ref().map(|environ| json!(environ)),
        open_to_public: Some(params.open_to_public),
        runtime_variant,
        model_definition_path: Some(model_definition_path),
        resource_slots,
        url: None,
        resource_opts: Some(Value::Object(config.resource_opts.clone())),
        cluster_mode: params.cluster_mode.name().to_owned(),
        cluster_size: params.cluster_size,
        extra_mounts: json!([]),
        retries: 0,
        created_at: None,
        destroyed_at: None,
    };
    queries::insert(ctx.db(), endpoint.clone())
        .await
        .map_err(db_error("creating the model service"))?;
    Ok(PyJson(ServeInfo::of(&EndpointRow {
        endpoint,
        routings: Vec::new(),
        created_user_email: None,
        session_owner_email: None,
    })))
}

// ----- DELETE, scale, errors -----

#[derive(Debug, Serialize)]
struct Success {
    success: bool,
}

async fn delete(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<PyJson<Success>, ApiError> {
    let id = service_id(&id)?;
    tracing::info!(target: "bai_api", "SERVE.DELETE (email:{}, ak:{}, s:{id})", caller.user.email, caller.access_key());
    let row = owned_endpoint(&ctx, &caller, id).await?;
    queries::mark_for_removal(ctx.db(), id, !row.routings.is_empty())
        .await
        .map_err(db_error("removing the model service"))?;
    Ok(PyJson(Success { success: true }))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ScaleParams {
    /// How many inference sessions the service should have.
    #[serde(deserialize_with = "strict_i32")]
    to: i32,
}

/// An integer (or a string of one, as pydantic's lax mode reads it) that fits 32 bits.
fn strict_i32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    let invalid = || D::Error::custom("Input should be a valid integer");
    let value = match Value::deserialize(deserializer)? {
        Value::Number(number) => number.as_i64().ok_or_else(invalid)?,
        Value::String(text) => text.trim().parse::<i64>().map_err(|_| invalid())?,
        _ => return Err(invalid()),
    };
    i32::try_from(value).map_err(|_| invalid())
}

#[derive(Debug, Serialize)]
struct ScaleAnswer {
    current_route_count: usize,
    target_count: i32,
}

async fn scale(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Params(params): Params<ScaleParams>,
) -> Result<PyJson<ScaleAnswer>, ApiError> {
    let id = service_id(&id)?;
    tracing::info!(target: "bai_api", "SERVE.SCALE (email:{}, ak:{}, s:{id})", caller.user.email, caller.access_key());
    let row = owned_endpoint(&ctx, &caller, id).await?;
    if params.to < 0 {
        return Err(ApiError::invalid_params(
            "Amount of desired session count cannot be a negative number",
        ));
    }
    let max = max_sessions_per_service(&caller);
    if params.to > max {
        return Err(too_many_sessions(max));
    }
    queries::set_desired_session_count(ctx.db(), id, params.to)
        .await
        .map_err(db_error("scaling the model service"))?;
    Ok(PyJson(ScaleAnswer {
        current_route_count: row.routings.len(),
        target_count: params.to,
    }))
}

#[derive(Debug, Serialize)]
struct ErrorInfo {
    session_id: Option<Value>,
    error: Value,
}

#[derive(Debug, Serialize)]
struct ErrorList {
    errors: Vec<ErrorInfo>,
    retries: i32,
}

async fn list_errors(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<PyJson<ErrorList>, ApiError> {
    let id = service_id(&id)?;
    tracing::info!(target: "bai_api", "SERVE.LIST_ERRORS (email:{}, ak:{}, s:{id})", caller.user.email, caller.access_key());
    let row = owned_endpoint(&ctx, &caller, id).await?;
    let errors = row
        .routings
        .iter()
        .filter(|route| route.status == RouteStatus::FailedToStart)
        .map(|route| {
            let data = route.error_data.as_ref();
            ErrorInfo {
                session_id: data.and_then(|data| data.get("session_id")).cloned(),
                error: data
                    .and_then(|data| data.get("errors"))
                    .cloned()
                    .unwrap_or(Value::Null),
            }
        })
        .collect();
    Ok(PyJson(ErrorList {
        errors,
        retries: row.endpoint.retries,
    }))
}

async fn clear_error(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = service_id(&id)?;
    tracing::info!(target: "bai_api", "SERVE.CLEAR_ERROR (email:{}, ak:{}, s:{id})", caller.user.email, caller.access_key());
    owned_endpoint(&ctx, &caller, id).await?;
    queries::clear_errors(ctx.db(), id)
        .await
        .map_err(db_error("clearing the errors of the model service"))?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- runtimes, token -----

#[derive(Debug, Serialize)]
struct RuntimeInfo {
    name: String,
    human_readable_name: &'static str,
}

#[derive(Debug, Serialize)]
struct Runtimes {
    runtimes: Vec<RuntimeInfo>,
}

async fn list_supported_runtimes(
    Authenticated(_caller): Authenticated,
) -> Result<PyJson<Runtimes>, ApiError> {
    let runtimes = [
        RuntimeVariant::Vllm,
        RuntimeVariant::Nim,
        RuntimeVariant::Cmd,
        RuntimeVariant::Custom,
    ]
    .into_iter()
    .map(|variant| RuntimeInfo {
        name: variant.to_value(),
        human_readable_name: crate::gql::runtime_label(variant),
    })
    .collect();
    Ok(PyJson(Runtimes { runtimes }))
}

/// The refusal of what only an app proxy can do.
fn no_app_proxy(what: &str) -> ApiError {
    ApiError::with_msg(
        ErrorKind::ServiceUnavailable,
        format!("{what} the resource group's app proxy, which this manager does not talk to"),
    )
}

/// The reference sends the endpoint's healthy routes to the resource group's app proxy (and
/// answers 500 when there is none); after the same checks, the request is refused.
async fn sync(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<PyJson<Success>, ApiError> {
    let id = service_id(&id)?;
    tracing::info!(target: "bai_api", "SERVE.SYNC (email:{}, ak:{}, s:{id})", caller.user.email, caller.access_key());
    owned_endpoint(&ctx, &caller, id).await?;
    Err(no_app_proxy("Routes are registered with"))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct TokenParams {
    /// How long the token stays valid (`1h`, `30m`, or seconds).
    #[serde(default)]
    duration: Option<Value>,
    /// When the token expires, in seconds since the epoch.
    #[serde(default)]
    valid_until: Option<i64>,
}

/// The reference checks the endpoint, then asks the resource group's app proxy
/// (`{wsproxy_addr}/v2/endpoints/{id}/token`) for the token it stores. This manager talks to no
/// app proxy: after the same checks, the request is refused.
async fn generate_token(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Params(params): Params<TokenParams>,
) -> Result<axum::response::Response, ApiError> {
    let id = service_id(&id)?;
    tracing::info!(target: "bai_api", "SERVE.GENERATE_TOKEN (email:{}, ak:{}, s:{id})", caller.user.email, caller.access_key());
    owned_endpoint(&ctx, &caller, id).await?;
    let now = chrono::Utc::now().timestamp();
    let expires = match (params.valid_until.filter(|at| *at != 0), &params.duration) {
        (Some(at), _) => at,
        (None, Some(duration)) if !duration.is_null() => {
            let seconds = duration_seconds(duration).ok_or_else(|| {
                ApiError::invalid_params("Input validation error")
                    .data(json!({ "duration": "not a valid time duration" }))
            })?;
            now.saturating_add(seconds)
        }
        _ => {
            return Err(ApiError::invalid_params(
                "valid_until and duration can't be both unspecified",
            ));
        }
    };
    if now > expires {
        return Err(ApiError::invalid_params("valid_until is older than now"));
    }
    Err(no_app_proxy("Endpoint tokens are issued by"))
}

/// `tv.TimeDuration`: seconds as a number, or text such as `1h`, `30m`, `2d`, `1w`.
fn duration_seconds(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|f| f as i64)),
        Value::String(text) => rules::str_to_timedelta(text).map(|delta| delta.num_seconds()),
        _ => None,
    }
}
