//! `/session`: creating a session up to PENDING (`POST /session`, `POST /session/_/create`: the
//! reference's `create_from_params`, `create_session` and `enqueue_session`), reading one
//! (`GET /session/{name}`, `get_info`) and cancelling a PENDING one (`DELETE /session/{name}`,
//! `destroy`). The rules that need no store (slots, shared memory, ports, resource groups) are
//! `bai_scheduler::enqueue`'s; the rows are read and written by `bai_db_models` queries; this
//! module reads the request, resolves who and what it names, and writes the answers.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bai_db_models::entities::enums::{KernelStatus, SessionStatus, SessionType, UserRole};
use bai_db_models::entities::{ResourceSlot, images, sessions};
use bai_db_models::image_ref::{ImageRef, KnownRegistries};
use bai_db_models::queries::images::{ImageCandidate, ImageError};
use bai_db_models::queries::scaling_groups;
use bai_db_models::queries::session_enqueue::{
    self as queries, CancelOutcome, EnqueueWriteError, KeypairOwner,
};
use bai_events::{Event, EventProducer, KernelCreation, SessionCreation};
use bai_pyjson::datetime::{isoformat, str_datetime, str_datetime_or_none};
use bai_redis::{EntryId, StreamDb};
use bai_scheduler::KnownSlots;
use bai_scheduler::enqueue::{
    self as rules, EnqueueError, KernelResourceInput, ScalingGroupCandidate,
};
use bai_sessions::pending::{self, ImageRefusal, PendingRows, PendingSession};
use chrono::Utc;
use http::{Method, StatusCode};
use sea_orm::ActiveEnum;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{Access, Authenticated, Route, StatusGate};
use crate::auth::Caller;
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorKind};
use crate::json::{PyJson, json_response};
use crate::params::{Params, Path, from_value, lenient, non_blank};
use crate::version::ApiVersion;

pub(super) fn routes() -> Vec<Route> {
    let create = |path| {
        Route::new(Method::POST, path, "session.create_from_params", create)
            .access(Access::User)
            .gate(StatusGate::AllAllowed)
            .params::<CreateParams>()
            .summary(
                "Creates a compute session with status PENDING (or answers the owner's \
                 existing session of that name), and with enqueueOnly false waits until it \
                 starts or is cancelled.",
            )
    };
    vec![
        create("/session"),
        create("/session/_/create"),
        Route::new(
            Method::GET,
            "/session/{session_name}",
            "session.get_info",
            get_info,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .summary("A session of the caller, by name or id, as the legacy `get_info` shows it."),
        Route::new(
            Method::DELETE,
            "/session/{session_name}",
            "session.destroy",
            destroy,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<DestroyParams>()
        .summary(
            "Cancels a PENDING session of the caller (or, for admins, of `owner_access_key`).",
        ),
    ]
}

/// The reason a user's cancellation writes into `status_info` and the events.
const USER_REQUESTED: &str = "user-requested";
const FORCE_TERMINATED: &str = "force-terminated";

// ----- parameters -----

/// `POST /session` (`create_from_params`). Unknown keys are refused.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateParams {
    /// The session name (`^(?=.{4,64}$)\w[\w.-]*\w$`); aliases `session_name`, `clientSessionToken`.
    #[serde(
        alias = "session_name",
        alias = "clientSessionToken",
        deserialize_with = "session_name"
    )]
    name: String,
    /// Canonical image reference or alias; alias `lang`.
    #[serde(alias = "lang", deserialize_with = "non_blank")]
    image: String,
    /// Alias `architecture`.
    #[serde(
        default = "default_architecture",
        alias = "architecture",
        deserialize_with = "non_blank"
    )]
    arch: String,
    /// `interactive`, `batch`, `inference`, `system`; alias `sessionType`.
    #[serde(default, rename = "type", alias = "sessionType")]
    session_type: SessionTypeParam,
    /// The project name; aliases `groupName`, `group_name`.
    #[serde(
        default = "default_name",
        alias = "groupName",
        alias = "group_name",
        deserialize_with = "non_blank"
    )]
    group: String,
    /// Aliases `domainName`, `domain_name`.
    #[serde(
        default = "default_name",
        alias = "domainName",
        alias = "domain_name",
        deserialize_with = "non_blank"
    )]
    domain: String,
    /// Alias `clusterSize`.
    #[serde(
        default = "one",
        alias = "clusterSize",
        deserialize_with = "cluster_size"
    )]
    #[schemars(with = "i64")]
    cluster_size: i32,
    /// Alias `clusterMode`.
    #[serde(default, alias = "clusterMode")]
    cluster_mode: ClusterModeParam,
    /// The creation config (creation_config_v5 for API v6 and later, v4 before).
    #[serde(default)]
    config: Map<String, Value>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default, rename = "enqueueOnly", deserialize_with = "lenient::bool")]
    enqueue_only: bool,
    /// 0: wait for ever.
    #[serde(
        default,
        rename = "maxWaitSeconds",
        deserialize_with = "non_negative_int"
    )]
    #[schemars(with = "u64")]
    max_wait_seconds: u64,
    /// Batch sessions only: ISO 8601 or a duration such as `1h`; alias `startsAt`.
    #[serde(default, alias = "startsAt")]
    starts_at: Option<String>,
    #[serde(
        default = "yes",
        rename = "reuseIfExists",
        deserialize_with = "lenient::bool"
    )]
    reuse: bool,
    #[serde(default, rename = "startupCommand")]
    startup_command: Option<String>,
    /// Alias `bootstrapScript`.
    #[serde(default, alias = "bootstrapScript")]
    bootstrap_script: Option<String>,
    /// Session ids or names of the owner's sessions.
    #[serde(default)]
    dependencies: Option<Vec<String>>,
    /// Aliases `callbackUrl`, `callbackURL`.
    #[serde(default, alias = "callbackUrl", alias = "callbackURL")]
    callback_url: Option<String>,
    #[serde(default)]
    owner_access_key: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum SessionTypeParam {
    #[default]
    Interactive,
    Batch,
    Inference,
    System,
}

impl From<SessionTypeParam> for SessionType {
    fn from(param: SessionTypeParam) -> SessionType {
        match param {
            SessionTypeParam::Interactive => SessionType::Interactive,
            SessionTypeParam::Batch => SessionType::Batch,
            SessionTypeParam::Inference => SessionType::Inference,
            SessionTypeParam::System => SessionType::System,
        }
    }
}

/// A cluster mode as requests give it (`POST /session`, `POST /services`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
pub(super) enum ClusterModeParam {
    #[default]
    #[serde(rename = "single-node")]
    SingleNode,
    #[serde(rename = "multi-node")]
    MultiNode,
}

impl ClusterModeParam {
    /// Sessions and kernels store the mode by value.
    pub(super) fn value(self) -> &'static str {
        match self {
            ClusterModeParam::SingleNode => "single-node",
            ClusterModeParam::MultiNode => "multi-node",
        }
    }

    /// Endpoints store the mode by name.
    pub(super) fn name(self) -> &'static str {
        match self {
            ClusterModeParam::SingleNode => "SINGLE_NODE",
            ClusterModeParam::MultiNode => "MULTI_NODE",
        }
    }
}

fn default_architecture() -> String {
    "x86_64".to_owned()
}

fn default_name() -> String {
    "default".to_owned()
}

fn one() -> i32 {
    1
}

fn yes() -> bool {
    true
}

/// `^(?=.{4,64}$)\w[\w.-]*\w$` (ASCII).
pub(super) fn session_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let name = String::deserialize(deserializer)?;
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = name.as_bytes();
    let valid = (4..=64).contains(&bytes.len())
        && word(bytes[0])
        && word(bytes[bytes.len() - 1])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-');
    if !valid {
        return Err(D::Error::custom(
            r"does not match pattern ^(?=.{4,64}$)\w[\w.-]*\w$",
        ));
    }
    Ok(name)
}

/// trafaret `ToInt`: an integer or a string of one.
fn to_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| {
                number
                    .as_f64()
                    .filter(|f| f.fract() == 0.0)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| D::Error::custom("value can't be converted to int")),
        Value::String(text) => text
            .trim()
            .parse()
            .map_err(|_| D::Error::custom("value can't be converted to int")),
        _ => Err(D::Error::custom("value can't be converted to int")),
    }
}

fn cluster_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    let size = to_int(deserializer)?;
    if size < 1 {
        return Err(D::Error::custom("value is less than 1"));
    }
    i32::try_from(size).map_err(|_| D::Error::custom("value is too large"))
}

fn non_negative_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = to_int(deserializer)?;
    u64::try_from(value).map_err(|_| D::Error::custom("value is less than 0"))
}

/// `creation_config_v5` (API v6 and later).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreationConfigV5 {
    #[serde(default)]
    mounts: Option<Vec<String>>,
    #[serde(default, alias = "mountMap")]
    mount_map: Option<BTreeMap<String, String>>,
    #[serde(default, alias = "mountOptions")]
    mount_options: Option<Map<String, Value>>,
    #[serde(default)]
    environ: Option<BTreeMap<String, String>>,
    #[serde(default, alias = "scalingGroup")]
    scaling_group: Option<String>,
    #[serde(default)]
    resources: Option<Map<String, Value>>,
    #[serde(default, alias = "resourceOpts")]
    resource_opts: Option<Map<String, Value>>,
    #[serde(default, alias = "preopenPorts")]
    preopen_ports: Option<Vec<PreopenPort>>,
    #[serde(default, alias = "agentList")]
    agent_list: Option<Vec<String>>,
}

/// `creation_config_v4` (API v5): no `mount_options` or `agent_list`; a `cluster_size` that is
/// read and ignored (the top-level one counts).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreationConfigV4 {
    #[serde(default)]
    mounts: Option<Vec<String>>,
    #[serde(default, alias = "mountMap")]
    mount_map: Option<BTreeMap<String, String>>,
    #[serde(default)]
    environ: Option<BTreeMap<String, String>>,
    #[serde(default, alias = "clusterSize")]
    #[allow(dead_code)]
    cluster_size: Option<PositiveInt>,
    #[serde(default, alias = "scalingGroup")]
    scaling_group: Option<String>,
    #[serde(default)]
    resources: Option<Map<String, Value>>,
    #[serde(default, alias = "resourceOpts")]
    resource_opts: Option<Map<String, Value>>,
    #[serde(default, alias = "preopenPorts")]
    preopen_ports: Option<Vec<PreopenPort>>,
}

impl From<CreationConfigV4> for CreationConfigV5 {
    fn from(v4: CreationConfigV4) -> CreationConfigV5 {
        CreationConfigV5 {
            mounts: v4.mounts,
            mount_map: v4.mount_map,
            mount_options: None,
            environ: v4.environ,
            scaling_group: v4.scaling_group,
            resources: v4.resources,
            resource_opts: v4.resource_opts,
            preopen_ports: v4.preopen_ports,
            agent_list: None,
        }
    }
}

/// `t.Int[1:]`
#[derive(Debug)]
struct PositiveInt;

impl<'de> Deserialize<'de> for PositiveInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match i64::deserialize(deserializer)? {
            1.. => Ok(PositiveInt),
            _ => Err(D::Error::custom("value is less than 1")),
        }
    }
}

/// `t.Int[1024:65535]`
#[derive(Clone, Copy, Debug)]
struct PreopenPort(i64);

impl<'de> Deserialize<'de> for PreopenPort {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let port = i64::deserialize(deserializer)?;
        if !(1024..=65535).contains(&port) {
            return Err(D::Error::custom(format!(
                "value {port} is not within 1024 and 65535"
            )));
        }
        Ok(PreopenPort(port))
    }
}

/// The config as the API version reads it; problems are named `config.<key>`.
fn creation_config(
    version: &ApiVersion,
    config: Map<String, Value>,
) -> Result<CreationConfigV5, ApiError> {
    let value = Value::Object(config);
    let checked = if version.major >= 6 {
        from_value::<CreationConfigV5>(value)
    } else {
        from_value::<CreationConfigV4>(value).map(CreationConfigV5::from)
    };
    checked.map_err(|mut error| {
        if let Some(Value::Object(data)) = error.data.take() {
            error.data = Some(Value::Object(
                data.into_iter()
                    .map(|(key, value)| {
                        let key = if key.is_empty() {
                            "config".to_owned()
                        } else {
                            format!("config.{key}")
                        };
                        (key, value)
                    })
                    .collect(),
            ));
        }
        error
    })
}

// ----- answers -----

#[derive(Debug, Serialize)]
struct Created {
    #[serde(rename = "sessionId")]
    session_id: String,
    #[serde(rename = "sessionName")]
    session_name: String,
    status: String,
    #[serde(rename = "servicePorts")]
    service_ports: Vec<Value>,
    created: bool,
}

#[derive(Debug, Serialize)]
struct Reused {
    #[serde(rename = "sessionId")]
    session_id: String,
    #[serde(rename = "sessionName")]
    session_name: String,
    status: String,
    service_ports: Value,
    created: bool,
}

fn created_response<T: Serialize>(body: &T) -> Response {
    json_response(StatusCode::CREATED, body, "application/json; charset=utf-8")
}

// ----- errors -----

fn db_error(context: &str) -> impl FnOnce(bai_db_models::DbError) -> ApiError + '_ {
    move |error| ApiError::internal(context, &error)
}

impl From<EnqueueError> for ApiError {
    fn from(error: EnqueueError) -> ApiError {
        match error {
            EnqueueError::InvalidParameters(msg) => ApiError::invalid_params(msg),
            EnqueueError::QuotaExceeded(msg) => ApiError::with_msg(ErrorKind::QuotaExceeded, msg),
            EnqueueError::ScalingGroupNotFound(msg) => {
                ApiError::with_msg(ErrorKind::ObjectNotFound("scaling group"), msg)
            }
        }
    }
}

pub(super) fn session_not_found(reference: &str) -> ApiError {
    ApiError::with_msg(
        ErrorKind::ObjectNotFound("session"),
        format!("Session (id={reference}) does not exist."),
    )
}

/// `TooManySessionsMatched` with the matches as the reference lists them.
fn too_many_matched(matches: &[sessions::Model]) -> ApiError {
    let matches: Vec<Value> = matches
        .iter()
        .map(|session| {
            json!({
                "id": session.id.to_string(),
                "name": session.name,
                "status": session.status.to_value(),
                "created_at": session.created_at.as_ref().map(isoformat),
            })
        })
        .collect();
    ApiError::new(ErrorKind::TooManySessionsMatched).data(json!({ "matches": matches }))
}

/// `SessionRow.get_session`: exactly one session of `access_key` that `reference` names (name or
/// full id), terminated and cancelled ones excluded.
pub(super) async fn get_session(
    ctx: &ApiContext,
    reference: &str,
    access_key: &str,
) -> Result<sessions::Model, ApiError> {
    find_session(ctx, reference, access_key, false).await
}

/// `SessionRow.get_session(..., allow_stale)`: exactly one session of `access_key` that
/// `reference` names, terminated and cancelled ones included when `allow_stale`.
pub(super) async fn find_session(
    ctx: &ApiContext,
    reference: &str,
    access_key: &str,
    allow_stale: bool,
) -> Result<sessions::Model, ApiError> {
    let mut matches =
        queries::match_sessions(ctx.db(), reference, Some(access_key), allow_stale, false)
            .await
            .map_err(db_error("finding the session"))?;
    match matches.len() {
        0 => Err(session_not_found(reference)),
        1 => Ok(matches.remove(0)),
        _ => Err(too_many_matched(&matches)),
    }
}

/// `get_access_key_scopes`: the owner a request acts for, checked against the requester's role
/// and domain (`check_if_requester_is_eligible_to_act_as_target_access_key`).
pub(super) async fn owner_scope(
    ctx: &ApiContext,
    caller: &Caller,
    owner_access_key: Option<&str>,
) -> Result<Option<KeypairOwner>, ApiError> {
    let Some(owner_access_key) = owner_access_key.filter(|key| *key != caller.access_key()) else {
        return Ok(None);
    };
    let owner = queries::keypair_owner(ctx.db(), owner_access_key)
        .await
        .map_err(db_error("reading the owner access key"))?
        .ok_or_else(|| ApiError::invalid_params("Unknown owner access key"))?;
    let forbidden = |msg: &str| ApiError::with_msg(ErrorKind::GenericForbidden, msg);
    match caller.role() {
        UserRole::Superadmin => {}
        UserRole::Admin => {
            if caller.user.domain_name != owner.user.domain_name {
                return Err(forbidden(
                    "Domain-admins can perform operations on behalf of other users in the same domain only.",
                ));
            }
            if owner.user.role == Some(UserRole::Superadmin) {
                return Err(forbidden(
                    "Domain-admins cannot perform operations on behalf of super-admins.",
                ));
            }
        }
        UserRole::User | UserRole::Monitor => {
            return Err(forbidden(
                "Only admins can perform operations on behalf of other users.",
            ));
        }
    }
    Ok(Some(owner))
}

// ----- POST /session -----

/// Who a new session belongs to and where it goes (`query_userinfo` and the `UserScope`).
pub(super) struct Scope {
    owner_access_key: String,
    policy_max_containers: i32,
    /// The requester's (the reference's `UserScope.user_uuid`, even on behalf of another user).
    user_uuid: Uuid,
    domain_name: String,
    pub(super) group_id: Uuid,
}

/// `query_userinfo`: the owner's domain must be active; the project is looked up by name in the
/// requested domain, which users and domain admins may not change (admins and superadmins acting
/// for another user may pick any active project there, users only their own).
pub(super) async fn resolve_scope(
    ctx: &ApiContext,
    caller: &Caller,
    owner: Option<&KeypairOwner>,
    domain: &str,
    group: &str,
) -> Result<Scope, ApiError> {
    let db = ctx.db();
    let (owner_access_key, owner_uuid, owner_role, owner_domain, max_containers) = match owner {
        Some(owner) => (
            owner.keypair.access_key.clone(),
            owner.user.uuid,
            owner.user.role.unwrap_or(UserRole::User),
            owner.user.domain_name.clone().unwrap_or_default(),
            owner.policy.max_containers_per_session,
        ),
        // The reference treats the requester as a plain user here, whatever its role.
        None => (
            caller.access_key().to_owned(),
            caller.user.uuid,
            UserRole::User,
            caller.user.domain_name.clone().unwrap_or_default(),
            caller.keypair_policy.max_containers_per_session,
        ),
    };
    if !queries::is_active_domain(db, &owner_domain)
        .await
        .map_err(db_error("reading the owner's domain"))?
    {
        return Err(ApiError::invalid_params("Invalid domain"));
    }
    let group_id = match owner_role {
        UserRole::Superadmin => queries::active_project_id(db, domain, group, None).await,
        UserRole::Admin => {
            if domain != owner_domain {
                return Err(ApiError::invalid_params(
                    "You can only set the domain to the owner's domain.",
                ));
            }
            queries::active_project_id(db, &owner_domain, group, None).await
        }
        UserRole::User | UserRole::Monitor => {
            if domain != owner_domain {
                return Err(ApiError::invalid_params(
                    "You can only set the domain to your domain.",
                ));
            }
            queries::active_project_id(db, &owner_domain, group, Some(owner_uuid)).await
        }
    }
    .map_err(db_error("reading the project"))?
    .ok_or_else(|| ApiError::invalid_params("Invalid group"))?;
    Ok(Scope {
        owner_access_key,
        policy_max_containers: max_containers,
        user_uuid: caller.user.uuid,
        domain_name: domain.to_owned(),
        group_id,
    })
}

#[tracing::instrument(
    name = "session.create",
    skip_all,
    fields(access_key = %caller.access_key(), session.name = %params.name)
)]
async fn create(
    State(ctx): State<ApiContext>,
    Extension(version): Extension<ApiVersion>,
    Authenticated(caller): Authenticated,
    Params(params): Params<CreateParams>,
) -> Result<Response, ApiError> {
    if params.name == "from-template" {
        return Err(ApiError::invalid_params(format!(
            "Requested session ID {} is reserved word",
            params.name
        )));
    }
    enqueue_session(&ctx, &version, &caller, &params).await
}

/// `POST /session` past its own checks, also the end of `POST /session/_/create-from-template`:
/// the config read for the API version, agent pinning, the owner and the project resolved, then
/// the session enqueued (and, with `enqueueOnly` false, waited for).
pub(super) async fn enqueue_session(
    ctx: &ApiContext,
    version: &ApiVersion,
    caller: &Caller,
    params: &CreateParams,
) -> Result<Response, ApiError> {
    let config = creation_config(version, params.config.clone())?;
    if config.agent_list.is_some() && !caller.is_superadmin() {
        return Err(ApiError::with_msg(
            ErrorKind::InsufficientPrivilege,
            "You are not allowed to manually assign agents for your session.",
        ));
    }
    if let Some(agents) = config
        .agent_list
        .as_ref()
        .filter(|agents| !agents.is_empty())
    {
        let cluster_size = usize::try_from(params.cluster_size).unwrap_or(0);
        if params.cluster_mode == ClusterModeParam::MultiNode {
            if agents.len() != cluster_size {
                return Err(ApiError::invalid_params(
                    "For multi-node cluster sessions, the number of manually assigned agents must be same to the cluster size. Note that you may specify duplicate agents in the list.",
                ));
            }
        } else if agents.len() != 1 {
            return Err(ApiError::invalid_params(
                "For non-cluster sessions and single-node cluster sessions, you may specify only one manually assigned agent.",
            ));
        }
    }

    let owner = owner_scope(ctx, caller, params.owner_access_key.as_deref()).await?;
    tracing::info!(
        target: "bai_api",
        "GET_OR_CREATE (ak:{}/{}, img:{}, s:{})",
        caller.access_key(),
        owner.as_ref().map_or("*", |owner| owner.keypair.access_key.as_str()),
        params.image,
        params.name
    );
    let scope = resolve_scope(ctx, caller, owner.as_ref(), &params.domain, &params.group).await?;
    let enqueue = Enqueue {
        ctx,
        caller,
        params,
        config: &config,
        scope: &scope,
    };
    enqueue.run().await
}

/// One `POST /session` past parameter checking and owner resolution.
struct Enqueue<'a> {
    ctx: &'a ApiContext,
    caller: &'a Caller,
    params: &'a CreateParams,
    config: &'a CreationConfigV5,
    scope: &'a Scope,
}

impl Enqueue<'_> {
    async fn run(&self) -> Result<Response, ApiError> {
        let ctx = self.ctx;
        let params = self.params;
        let config = self.config;
        let scope = self.scope;
        let db = ctx.db();
        let session_type = SessionType::from(params.session_type);

        // create_session: mount_map aliases, resources against the known slots.
        if let Some(mount_map) = &config.mount_map {
            let pairs: Vec<(String, String)> = mount_map
                .iter()
                .map(|(folder, alias)| (folder.clone(), alias.clone()))
                .collect();
            rules::check_mount_aliases(&pairs)?;
        }
        let known = KnownSlots::load(ctx.etcd())
            .await
            .map_err(|error| ApiError::internal("reading etcd config/resource_slots", &error))?;
        let resources: Option<Vec<(String, Value)>> = config.resources.as_ref().map(|resources| {
            resources
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        });
        if let Some(resources) = resources.as_ref().filter(|r| !r.is_empty()) {
            rules::slots_from_user_input(resources, &known).map_err(|error| {
                ApiError::invalid_params(format!("Invalid resource allocation: {error}"))
            })?;
        }

        let image = resolve_image(
            ctx,
            &params.image,
            &params.arch,
            scope.user_uuid,
            &scope.domain_name,
        )
        .await?;

        // An existing session of this name of the owner.
        let mut existing = queries::match_sessions(
            db,
            &params.name,
            Some(&scope.owner_access_key),
            false,
            false,
        )
        .await
        .map_err(db_error("finding an existing session"))?;
        if existing.len() > 1 {
            return Err(too_many_matched(&existing));
        }
        if let Some(session) = existing.pop() {
            let kernels = queries::kernels_of(db, session.id)
                .await
                .map_err(db_error("reading the existing session's kernels"))?;
            let main = kernels.iter().find(|k| k.cluster_role == rules::MAIN_ROLE);
            let same_image = main.is_some_and(|main| {
                main.image.as_deref() == Some(image.name.as_str())
                    && main.architecture.as_deref() == Some(image.architecture.as_str())
            });
            if !same_image || !params.reuse {
                return Err(ApiError::new(ErrorKind::SessionAlreadyExists)
                    .data(json!({ "existingSessionId": session.id.to_string() })));
            }
            return Ok(created_response(&Reused {
                session_id: session.id.to_string(),
                session_name: session.name.clone().unwrap_or_default(),
                status: session.status.to_value(),
                service_ports: main
                    .and_then(|main| main.service_ports.clone())
                    .unwrap_or(Value::Null),
                created: false,
            }));
        }

        if session_type == SessionType::Batch
            && params.startup_command.as_deref().unwrap_or("").is_empty()
        {
            return Err(ApiError::invalid_params(
                "Batch sessions must have a non-empty startup command.",
            ));
        }
        let starts_at_text = params.starts_at.as_deref().filter(|text| !text.is_empty());
        if session_type != SessionType::Batch && starts_at_text.is_some() {
            return Err(ApiError::invalid_params(
                "Parameter starts_at should be used only for batch sessions",
            ));
        }
        let now = Utc::now();
        let starts_at = starts_at_text
            .map(|text| rules::parse_starts_at(text, now))
            .transpose()?;

        let owner_keypair = queries::keypair_owner(db, &scope.owner_access_key)
            .await
            .map_err(db_error("reading the owner's keypair"))?
            .ok_or_else(|| ApiError::invalid_params("Unknown owner access key"))?
            .keypair;
        let bootstrap_script = match params.bootstrap_script.as_deref().filter(|s| !s.is_empty()) {
            Some(script) => Some(script.to_owned()),
            None => Some(owner_keypair.bootstrap_script.clone()),
        };

        // enqueue_session: quota, resource group, mounts, dotfiles.
        if i64::from(params.cluster_size) > i64::from(scope.policy_max_containers) {
            return Err(EnqueueError::QuotaExceeded(format!(
                "You cannot create session with more than {} containers.",
                scope.policy_max_containers
            ))
            .into());
        }
        let allowed = scaling_groups::allowed_for(
            db,
            &scope.domain_name,
            scope.group_id,
            &scope.owner_access_key,
        )
        .await
        .map_err(db_error("reading the allowed resource groups"))?;
        let candidates: Vec<ScalingGroupCandidate> =
            allowed.iter().map(ScalingGroupCandidate::from).collect();
        let scaling_group = rules::select_scaling_group(
            &candidates,
            config.scaling_group.as_deref(),
            session_type,
            session_type != SessionType::System,
        )?;
        let use_host_network = allowed
            .iter()
            .find(|sgroup| sgroup.name == scaling_group)
            .is_some_and(|sgroup| sgroup.use_host_network);
        self.refuse_mounts()?;
        let (project_dotfiles, domain_dotfiles) =
            queries::project_and_domain_dotfiles(db, scope.group_id, &scope.domain_name)
                .await
                .map_err(db_error("reading the dotfiles"))?;
        let internal_data = pending::dotfile_data(
            &owner_keypair,
            project_dotfiles.as_deref(),
            domain_dotfiles.as_deref(),
        );

        // The kernel configuration (every kernel replicates the main one).
        let labels = &image.labels;
        let label = |name: &str| labels.get(name).and_then(Value::as_str);
        let image_ref = ImageRef::parse(
            &image.name,
            KnownRegistries::Listed(&[image.registry.as_str()]),
            &image.architecture,
        );
        let image_repository = image_ref
            .as_ref()
            .map_or(image.image.as_str(), |r| r.name());
        rules::check_image_role(session_type, label("ai.backend.role"), image_repository)?;
        let service_ports = rules::parse_service_ports(
            label("ai.backend.service-ports").unwrap_or(""),
            label("ai.backend.endpoint-ports").unwrap_or(""),
        )
        .map_err(ApiError::invalid_params)?;
        let preopen_ports: Vec<i64> = config
            .preopen_ports
            .iter()
            .flatten()
            .map(|port| port.0)
            .collect();
        rules::check_preopen_ports(&preopen_ports, &service_ports)?;
        let empty_opts = Map::new();
        let planned = rules::kernel_resources(KernelResourceInput {
            resources: resources.as_deref(),
            resource_opts: config.resource_opts.as_ref().unwrap_or(&empty_opts),
            image_labels: &image.labels,
            image_resources: &image.resources,
            known: &known,
        })?;

        let PendingRows {
            session_id,
            creation_id,
            new_session,
        } = PendingSession {
            name: params.name.clone(),
            session_type,
            cluster_mode: params.cluster_mode.value().to_owned(),
            cluster_size: params.cluster_size,
            scaling_group,
            use_host_network,
            domain_name: scope.domain_name.clone(),
            group_id: scope.group_id,
            user_uuid: scope.user_uuid,
            access_key: scope.owner_access_key.clone(),
            image: &image,
            tag: params.tag.clone(),
            kernel_resources: &planned,
            environ: config
                .environ
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            sudo_session_enabled: self.caller.user.sudo_session_enabled,
            bootstrap_script,
            preopen_ports: preopen_ports
                .iter()
                .filter_map(|port| i32::try_from(*port).ok())
                .collect(),
            designated_agents: config.agent_list.clone().unwrap_or_default(),
            starts_at,
            callback_url: params.callback_url.clone(),
            startup_command: params.startup_command.clone(),
            internal_data,
            dependencies: params.dependencies.clone().unwrap_or_default(),
        }
        .rows(now);

        // Listen before inserting, so that a fast scheduler's `session_started` is not missed.
        let waiter = if params.enqueue_only {
            None
        } else {
            Some(StartWaiter::subscribe(ctx).await?)
        };
        let inserted = queries::enqueue(db, new_session).await;
        if let Err(error) = inserted {
            if let Some(waiter) = waiter {
                waiter.close().await;
            }
            return Err(match error {
                EnqueueWriteError::UnknownDependency(reference) => {
                    ApiError::invalid_params("Unknown session ID or name in the dependency list")
                        .data(json!({ "session_ref": reference }))
                }
                EnqueueWriteError::AmbiguousDependency { matches, .. } => {
                    too_many_matched(&matches)
                }
                EnqueueWriteError::NoSuchAgent(agent) => {
                    ApiError::invalid_params(format!("No such agent: {agent}"))
                }
                EnqueueWriteError::Db(error) => {
                    ApiError::internal("enqueueing the session", &error)
                }
            });
        }
        tracing::info!(target: "bai_api", "session {session_id} enqueued");
        bai_metrics::record::session_created();
        let producer = EventProducer::new(ctx.redis().stream.clone());
        let enqueued = Event::SessionEnqueued(SessionCreation {
            session_id,
            creation_id: creation_id.clone(),
            reason: String::new(),
        });
        if let Err(error) = producer.produce(&enqueued, "manager").await {
            // The row is committed; the scheduler's periodic round picks it up anyway.
            tracing::warn!(target: "bai_api", "session {session_id}: producing session_enqueued: {error}");
        }

        let mut answer = Created {
            session_id: session_id.to_string(),
            session_name: params.name.clone(),
            status: "PENDING".to_owned(),
            service_ports: Vec::new(),
            created: true,
        };
        if let Some(waiter) = waiter {
            let outcome = waiter.wait(&creation_id, params.max_wait_seconds).await;
            match outcome {
                WaitOutcome::TimedOut => answer.status = "TIMEOUT".to_owned(),
                WaitOutcome::Happened => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let kernels = queries::kernels_of(db, session_id)
                        .await
                        .map_err(db_error("reading the started session's kernels"))?;
                    if let Some(main) = kernels.iter().find(|k| k.cluster_role == rules::MAIN_ROLE)
                    {
                        if main.status == KernelStatus::Running {
                            answer.status = "RUNNING".to_owned();
                            answer.service_ports = wire_service_ports(main.service_ports.as_ref());
                        } else {
                            answer.status = main.status.to_value();
                        }
                    }
                }
            }
        }
        Ok(created_response(&answer))
    }

    /// Virtual folders live behind a storage proxy, which this manager does not talk to yet.
    fn refuse_mounts(&self) -> Result<(), ApiError> {
        let config = self.config;
        let mut named: Vec<String> = config.mounts.clone().unwrap_or_default();
        for folder in config.mount_map.iter().flat_map(|map| map.keys()) {
            if !named.contains(folder) {
                named.push(folder.clone());
            }
        }
        for folder in config.mount_options.iter().flat_map(|map| map.keys()) {
            if !named.contains(folder) {
                named.push(folder.clone());
            }
        }
        if named.is_empty() {
            return Ok(());
        }
        Err(ApiError::with_msg(
            ErrorKind::NotImplemented,
            format!(
                "Mounting virtual folders is not supported by this manager yet (no storage proxy): {}",
                named.join(", ")
            ),
        ))
    }
}

/// The image `reference` (or alias) as user `owner` of `domain` may use it (`ImageRow.resolve`
/// and the checks of `create_session`), for `POST /session` and `POST /services`.
pub(super) async fn resolve_image(
    ctx: &ApiContext,
    reference: &str,
    architecture: &str,
    owner: Uuid,
    domain: &str,
) -> Result<images::Model, ApiError> {
    let candidates = bai_db_models::queries::images::canonical_or_alias(reference, architecture);
    let image = bai_db_models::queries::images::resolve(ctx.db(), &candidates)
        .await
        .map_err(|error| match error {
            ImageError::NotFound { searched } => ApiError::with_msg(
                ErrorKind::ObjectNotFound("environment image"),
                format!(
                    "Unknown image references: {}",
                    searched
                        .iter()
                        .map(|candidate| match candidate {
                            ImageCandidate::Reference(reference) =>
                                format!("ref:{}", rules::py_repr_str(&reference.canonical())),
                            ImageCandidate::Alias(alias) =>
                                format!("alias:{}", rules::py_repr_str(alias)),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            other => ApiError::internal("resolving the image", &other),
        })?;
    match pending::image_refusal(ctx.db(), &image, owner, domain)
        .await
        .map_err(db_error("reading the domain's allowed registries"))?
    {
        None => Ok(image),
        Some(ImageRefusal::CustomizedForAnother) => Err(ApiError::not_found("environment image")),
        Some(ImageRefusal::DisallowedRegistry) => Err(ApiError::with_msg(
            ErrorKind::ObjectNotFound("environment image"),
            "unknown alias or disallowed registry",
        )),
    }
}

/// The main kernel's `service_ports` as the creation answer lists them.
pub(super) fn wire_service_ports(service_ports: Option<&Value>) -> Vec<Value> {
    let Some(Value::Array(items)) = service_ports else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| {
            let mut port = Map::new();
            port.insert(
                "name".to_owned(),
                item.get("name").cloned().unwrap_or(Value::Null),
            );
            port.insert(
                "protocol".to_owned(),
                item.get("protocol").cloned().unwrap_or(Value::Null),
            );
            port.insert(
                "ports".to_owned(),
                item.get("container_ports").cloned().unwrap_or(Value::Null),
            );
            for key in ["url_template", "allowed_arguments", "allowed_envs"] {
                if let Some(value) = item.get(key) {
                    port.insert(key.to_owned(), value.clone());
                }
            }
            Value::Object(port)
        })
        .collect()
}

// ----- waiting for the start -----

/// A broadcast reader of the event stream from the moment it was created (the reference's
/// `session_creation_tracker`), on a Redis connection of its own since its reads block. The
/// connection is closed when the waiter ends, also when the request is dropped (the client went
/// away, or the server stops).
struct StartWaiter {
    stream: Option<StreamDb>,
    last: EntryId,
}

enum WaitOutcome {
    /// `session_started` or `session_cancelled` of the creation id arrived.
    Happened,
    TimedOut,
}

impl StartWaiter {
    async fn subscribe(ctx: &ApiContext) -> Result<StartWaiter, ApiError> {
        let stream = StreamDb::connect(&ctx.redis().config())
            .await
            .map_err(|error| ApiError::internal("connecting to the event stream", &error))?;
        let last = match stream.last_id().await {
            Ok(last) => last,
            Err(error) => {
                stream.close().await;
                return Err(ApiError::internal("reading the event stream", &error));
            }
        };
        Ok(StartWaiter {
            stream: Some(stream),
            last,
        })
    }

    async fn close(mut self) {
        if let Some(stream) = self.stream.take() {
            stream.close().await;
        }
    }

    /// Waits for the session's start or cancellation, at most `max_wait_seconds` (0: for ever).
    async fn wait(self, creation_id: &str, max_wait_seconds: u64) -> WaitOutcome {
        let Some(stream) = self.stream.clone() else {
            return WaitOutcome::TimedOut;
        };
        let mut last = self.last;
        let watch = async {
            let mut failing = false;
            loop {
                let entries = match stream.read_after(last, 256, Duration::from_secs(1)).await {
                    Ok(entries) => {
                        failing = false;
                        entries
                    }
                    Err(error) => {
                        if !failing {
                            tracing::warn!(target: "bai_api", "reading the event stream, retrying: {error}");
                            failing = true;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                for entry in entries {
                    last = entry.id;
                    let (Some(name), Some(args)) = (entry.field("name"), entry.field("args"))
                    else {
                        continue;
                    };
                    if name != b"session_started" && name != b"session_cancelled" {
                        continue;
                    }
                    match Event::decode(name, args) {
                        Ok(Event::SessionStarted(event) | Event::SessionCancelled(event))
                            if event.creation_id == creation_id =>
                        {
                            return;
                        }
                        _ => {}
                    }
                }
            }
        };
        let outcome = if max_wait_seconds == 0 {
            watch.await;
            WaitOutcome::Happened
        } else {
            match tokio::time::timeout(Duration::from_secs(max_wait_seconds), watch).await {
                Ok(()) => WaitOutcome::Happened,
                Err(_) => WaitOutcome::TimedOut,
            }
        };
        self.close().await;
        outcome
    }
}

impl Drop for StartWaiter {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move { stream.close().await });
        }
    }
}

// ----- GET /session/{name} -----

#[derive(Debug, Serialize)]
struct SessionInfo {
    #[serde(rename = "domainName")]
    domain_name: String,
    #[serde(rename = "groupId")]
    group_id: String,
    #[serde(rename = "userId")]
    user_id: String,
    lang: Option<String>,
    image: Option<String>,
    architecture: Option<String>,
    registry: Option<String>,
    tag: Option<String>,
    #[serde(rename = "containerId")]
    container_id: String,
    #[serde(rename = "occupiedSlots")]
    occupied_slots: String,
    #[serde(rename = "occupyingSlots")]
    occupying_slots: String,
    #[serde(rename = "requestedSlots")]
    requested_slots: String,
    #[serde(rename = "occupiedShares")]
    occupied_shares: String,
    environ: String,
    #[serde(rename = "resourceOpts")]
    resource_opts: String,
    status: String,
    #[serde(rename = "statusInfo")]
    status_info: String,
    #[serde(rename = "statusData")]
    status_data: Value,
    age: i64,
    #[serde(rename = "creationTime")]
    creation_time: String,
    #[serde(rename = "terminationTime")]
    termination_time: Option<String>,
    #[serde(rename = "numQueriesExecuted")]
    num_queries_executed: Option<i64>,
    #[serde(rename = "lastStat")]
    last_stat: Value,
    #[serde(rename = "idleChecks")]
    idle_checks: bai_sessions::IdleCheckReport,
}

async fn get_info(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(session_name): Path<String>,
) -> Result<PyJson<SessionInfo>, ApiError> {
    // The reference passes no parameters to `get_access_key_scopes` here: the caller's own
    // sessions only.
    let access_key = caller.access_key();
    tracing::info!(target: "bai_api", "GET_INFO (ak:{access_key}/{access_key}, s:{session_name})");
    let session = get_session(&ctx, &session_name, access_key).await?;
    let kernels = queries::kernels_of(ctx.db(), session.id)
        .await
        .map_err(db_error("reading the session's kernels"))?;
    let main = kernels
        .iter()
        .find(|kernel| kernel.cluster_role == rules::MAIN_ROLE)
        .ok_or_else(|| {
            ApiError::with_msg(
                ErrorKind::ObjectNotFound("main kernel"),
                format!("Session (id: {}) has no main kernel.", session.id),
            )
        })?;
    let idle_checks = bai_sessions::idle_check_report(ctx.etcd(), &ctx.redis().live, session.id)
        .await
        .map_err(|error| ApiError::internal("reading the idle checks of the session", &error))?;
    let created_at = session.created_at.map(|at| at.with_timezone(&Utc));
    let resource_opts: Vec<(String, String)> = kernels
        .iter()
        .map(|kernel| {
            (
                rules::py_repr_str(&kernel.cluster_hostname),
                kernel
                    .resource_opts
                    .as_ref()
                    .map_or_else(|| "None".to_owned(), py_repr_jsonb),
            )
        })
        .collect();
    Ok(PyJson(SessionInfo {
        domain_name: session.domain_name.clone(),
        group_id: session.group_id.to_string(),
        user_id: session.user_uuid.to_string(),
        lang: main.image.clone(),
        image: main.image.clone(),
        architecture: main.architecture.clone(),
        registry: main.registry.clone(),
        tag: session.tag.clone(),
        container_id: main
            .container_id
            .clone()
            .unwrap_or_else(|| "None".to_owned()),
        occupied_slots: py_repr_slots(&main.occupied_slots),
        occupying_slots: py_repr_slots(&session.occupying_slots),
        requested_slots: py_repr_slots(&session.requested_slots),
        occupied_shares: py_repr_jsonb(&main.occupied_shares),
        environ: session
            .environ
            .as_ref()
            .map_or_else(|| "None".to_owned(), py_repr_jsonb),
        resource_opts: format!(
            "{{{}}}",
            resource_opts
                .iter()
                .map(|(host, opts)| format!("{host}: {opts}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        status: session.status.to_value(),
        status_info: session
            .status_info
            .clone()
            .unwrap_or_else(|| "None".to_owned()),
        status_data: session.status_data.clone().unwrap_or(Value::Null),
        age: created_at.map_or(0, |at| (Utc::now() - at).num_milliseconds()),
        creation_time: str_datetime_or_none(created_at.as_ref()),
        termination_time: session.terminated_at.as_ref().map(str_datetime),
        num_queries_executed: session.num_queries,
        last_stat: session.last_stat.clone().unwrap_or(Value::Null),
        idle_checks,
    }))
}

/// `str(ResourceSlot)`: `{'cpu': Decimal('1'), 'mem': Decimal('1073741824')}`, in the order
/// PostgreSQL's jsonb keeps the keys.
fn py_repr_slots(slots: &ResourceSlot) -> String {
    let mut entries: Vec<(&str, String)> = slots
        .iter()
        .map(|(slot, amount)| (slot, format!("Decimal('{amount}')")))
        .collect();
    entries.sort_by(|(a, _), (b, _)| jsonb_key_order(a, b));
    format!(
        "{{{}}}",
        entries
            .iter()
            .map(|(slot, amount)| format!("{}: {amount}", rules::py_repr_str(slot)))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn jsonb_key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// `str()` of a jsonb value as Python reads it back: objects in jsonb's key order.
fn py_repr_jsonb(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|(a, _), (b, _)| jsonb_key_order(a, b));
            format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(key, value)| format!(
                        "{}: {}",
                        rules::py_repr_str(key),
                        py_repr_jsonb(value)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(py_repr_jsonb)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => rules::py_repr(other),
    }
}

// ----- DELETE /session/{name} -----

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DestroyParams {
    #[serde(default, deserialize_with = "lenient::bool")]
    forced: bool,
    #[serde(default, deserialize_with = "lenient::bool")]
    recursive: bool,
    #[serde(default)]
    owner_access_key: Option<String>,
}

#[derive(Debug, Serialize)]
struct DestroyAnswer {
    stats: Value,
}

async fn destroy(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(session_name): Path<String>,
    Params(params): Params<DestroyParams>,
) -> Result<Response, ApiError> {
    let owner = owner_scope(&ctx, &caller, params.owner_access_key.as_deref()).await?;
    let owner_access_key = owner.as_ref().map_or_else(
        || caller.access_key().to_owned(),
        |owner| owner.keypair.access_key.clone(),
    );
    tracing::info!(
        target: "bai_api",
        "DESTROY (ak:{}/{}, s:{}, forced:{}, recursive: {})",
        caller.access_key(),
        owner_access_key,
        session_name,
        params.forced,
        params.recursive
    );
    let reason = if params.forced {
        FORCE_TERMINATED
    } else {
        USER_REQUESTED
    };
    let superadmin = caller.is_superadmin();
    if !params.recursive {
        let session = get_session(&ctx, &session_name, &owner_access_key).await?;
        check_destroyable(&session, params.forced, superadmin)?;
        let stats = destroy_one(&ctx, &session, params.forced, superadmin, reason).await?;
        return Ok(PyJson(DestroyAnswer { stats }).into_response());
    }

    // recursive: the sessions that depend on it (found among all of the owner's sessions), then
    // the session itself; those that are gone or that may not be destroyed are skipped, as the
    // reference skips `SessionNotFound` and `GenericForbidden`.
    let root = find_session(&ctx, &session_name, &owner_access_key, true).await?;
    let dependents = queries::dependents_of(ctx.db(), root.id)
        .await
        .map_err(db_error("finding the dependent sessions"))?;
    let mut references: Vec<String> = dependents.iter().map(Uuid::to_string).collect();
    references.push(session_name.clone());
    let mut targets: Vec<sessions::Model> = Vec::new();
    for reference in &references {
        let session = match get_session(&ctx, reference, &owner_access_key).await {
            Ok(session) => session,
            Err(error) if error.kind == ErrorKind::ObjectNotFound("session") => continue,
            Err(error) => return Err(error),
        };
        match check_destroyable(&session, params.forced, superadmin) {
            Ok(()) => targets.push(session),
            Err(error) if error.kind == ErrorKind::GenericForbidden => {}
            Err(error) => return Err(error),
        }
    }
    let mut stats = Vec::with_capacity(targets.len());
    for session in &targets {
        stats.push(destroy_one(&ctx, session, params.forced, superadmin, reason).await?);
    }
    Ok(PyJson(stats).into_response())
}

/// Whether `destroy_session` may destroy `session`: the reference's refusals by status, forced
/// flag and role.
fn check_destroyable(
    session: &sessions::Model,
    forced: bool,
    superadmin: bool,
) -> Result<(), ApiError> {
    let forbidden = |msg: &str| Err(ApiError::with_msg(ErrorKind::GenericForbidden, msg));
    match session.status {
        SessionStatus::Pending => Ok(()),
        SessionStatus::Pulling if !(forced && superadmin) => {
            forbidden("Cannot destroy sessions in pulling status")
        }
        SessionStatus::Scheduled
        | SessionStatus::Preparing
        | SessionStatus::Terminating
        | SessionStatus::Error
            if !forced =>
        {
            forbidden("Cannot destroy sessions in scheduled/preparing/terminating/error status")
        }
        SessionStatus::Terminated => {
            forbidden("Cannot destroy sessions that has already been already terminated")
        }
        SessionStatus::Cancelled => {
            forbidden("Cannot destroy sessions that has already been already cancelled")
        }
        _ => Ok(()),
    }
}

/// Destroys one session: a PENDING one is cancelled here; any other goes through the agents
/// (`bai_sessions::Destroyer`), as does one the scheduler took while we looked.
async fn destroy_one(
    ctx: &ApiContext,
    session: &sessions::Model,
    forced: bool,
    superadmin: bool,
    reason: &str,
) -> Result<Value, ApiError> {
    if session.status == SessionStatus::Pending
        && let Some(stats) = cancel(ctx, session, reason).await?
    {
        return Ok(stats);
    }
    let Some(rpc) = ctx.agent_rpc() else {
        return Err(ApiError::with_msg(
            ErrorKind::NotImplemented,
            format!(
                "Destroying a session in {} status needs the agents, and this server runs without agent RPC",
                session.status.to_value()
            ),
        ));
    };
    let destroyer = bai_sessions::Destroyer::new(
        ctx.db().clone(),
        EventProducer::new(ctx.redis().stream.clone()),
        ctx.redis().stat.clone(),
        std::sync::Arc::clone(rpc),
    );
    let request = bai_sessions::DestroyRequest {
        forced,
        reason: Some(reason),
        superadmin,
    };
    destroyer
        .destroy(session.id, request)
        .await
        .map_err(|error| match error {
            bai_sessions::DestroyError::NotFound(_) => session_not_found(&session.id.to_string()),
            bai_sessions::DestroyError::Forbidden(msg) => {
                ApiError::with_msg(ErrorKind::GenericForbidden, msg)
            }
            bai_sessions::DestroyError::Db(error) => {
                ApiError::internal("destroying the session", &error)
            }
        })
}

/// Cancels a PENDING session and its kernels, emits `kernel_cancelled` for each kernel and
/// `session_cancelled`, and returns the reference's "last stat" of it; `None` when the session
/// is no longer PENDING.
async fn cancel(
    ctx: &ApiContext,
    session: &sessions::Model,
    reason: &str,
) -> Result<Option<Value>, ApiError> {
    let outcome = queries::cancel_pending(ctx.db(), session.id, reason, Utc::now().fixed_offset())
        .await
        .map_err(db_error("cancelling the session"))?;
    let (creation_id, kernel_ids) = match outcome {
        CancelOutcome::Cancelled {
            creation_id,
            kernel_ids,
        } => (creation_id, kernel_ids),
        CancelOutcome::Gone => return Err(session_not_found(&session.id.to_string())),
        // The scheduler took it meanwhile: what the reference would do then needs the agents.
        // The scheduler took it meanwhile: it is destroyed through its agents.
        CancelOutcome::NotPending(_) => return Ok(None),
    };
    let producer = EventProducer::new(ctx.redis().stream.clone());
    let mut events: Vec<Event> = kernel_ids
        .iter()
        .map(|&kernel_id| {
            Event::KernelCancelled(KernelCreation {
                kernel_id,
                session_id: session.id,
                reason: reason.to_owned(),
                creation_info: json!({}),
            })
        })
        .collect();
    events.push(Event::SessionCancelled(SessionCreation {
        session_id: session.id,
        creation_id: creation_id.unwrap_or_default(),
        reason: reason.to_owned(),
    }));
    for event in &events {
        if let Err(error) = producer.produce(event, "manager").await {
            tracing::warn!(
                target: "bai_api",
                "session {}: producing {}: {error}",
                session.id,
                event.name()
            );
        }
    }
    // The reference's answer for a cancelled PENDING session: its main kernel had no agent
    // address, so the main kernel's "last stat" ends up as terminated.
    Ok(Some(json!({"status": "terminated"})))
}
