//! The per-session operations of `/session/{name}` past creation: restarting
//! (`PATCH /session/{name}`, the reference's `restart`), renaming (`POST …/rename`,
//! `rename_session`), the name matcher of the clients' completion (`GET /session/_/match`,
//! `match_sessions`), the container logs (`GET …/logs`, `get_container_logs`) and the status
//! history (`GET …/status-history`, which 24.03.11 does not route; its clients call it).
//!
//! Sessions are resolved as `GET /session/{name}` resolves them (`session::get_session`); the
//! restart itself is `bai_sessions::Restarter`'s, the logs come from the main kernel's agent
//! (`get_logs`) or, for a session that is over, from the kernel's stored `container_log`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bai_agent_rpc::RpcError;
use bai_agents::AgentRpcError;
use bai_db_models::entities::enums::SessionStatus;
use bai_db_models::entities::{kernels, sessions};
use bai_db_models::queries::session_enqueue as queries;
use bai_db_models::queries::session_ops::{self, RenameOutcome};
use bai_events::EventProducer;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::execute::KernelTarget;
use super::session::{find_session, get_session, owner_scope, session_not_found};
use super::{Access, Authenticated, Route, StatusGate};
use crate::auth::Caller;
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorKind};
use crate::json::PyJson;
use crate::params::{Params, Path};

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/session/_/match",
            "session.match_sessions",
            match_sessions,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<MatchParams>()
        .summary(
            "The caller's sessions (terminated ones included) whose name or id is `id`, newest \
             first, at most 10.",
        ),
        Route::new(
            Method::PATCH,
            "/session/{session_name}",
            "session.restart",
            restart,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<OwnerParams>()
        .summary(
            "Restarts a RUNNING session's kernels on their agents; the session is RUNNING \
             again when the agents answered.",
        ),
        Route::new(
            Method::POST,
            "/session/{session_name}/rename",
            "session.rename_session",
            rename,
        )
        .access(Access::User)
        .gate(StatusGate::AllAllowed)
        .params::<RenameParams>()
        .summary("Renames a RUNNING session of the caller."),
        Route::new(
            Method::GET,
            "/session/{session_name}/logs",
            "session.get_container_logs",
            get_container_logs,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<LogsParams>()
        .summary(
            "The console log of a session's main kernel (or of `kernel_id`), from its agent, \
             or stored for a session that is over.",
        ),
        Route::new(
            Method::GET,
            "/session/{session_name}/status-history",
            "session.get_status_history",
            get_status_history,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<OwnerParams>()
        .summary("When the session entered each status (`{STATUS: ISO 8601 time}`)."),
    ]
}

// ----- parameters and answers -----

/// `restart`, `status-history`: only `owner_access_key`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct OwnerParams {
    #[serde(default)]
    owner_access_key: Option<String>,
}

/// `rename_session`: the new name, aliases `session_name`, `clientSessionToken`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RenameParams {
    /// The new name (`^(?=.{4,64}$)\w[\w.-]*\w$`).
    #[serde(
        alias = "session_name",
        alias = "clientSessionToken",
        deserialize_with = "super::session::session_name"
    )]
    name: String,
}

/// `match_sessions`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct MatchParams {
    /// A session name or id.
    id: String,
}

/// `get_container_logs` (a pydantic model: other keys are ignored).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct LogsParams {
    #[serde(default, alias = "ownerAccessKey")]
    owner_access_key: Option<String>,
    /// The kernel whose log is wanted; the main kernel's when absent.
    #[serde(default, alias = "kernelId")]
    #[schemars(with = "Option<String>")]
    kernel_id: Option<Uuid>,
}

#[derive(Debug, Serialize)]
struct Matches {
    matches: Vec<Match>,
}

#[derive(Debug, Serialize)]
struct Match {
    id: String,
    name: Option<String>,
    status: String,
}

#[derive(Debug, Serialize)]
struct LogsAnswer {
    result: Logs,
}

#[derive(Debug, Serialize)]
struct Logs {
    logs: String,
}

#[derive(Debug, Serialize)]
struct StatusHistoryAnswer {
    result: Value,
}

fn db_error(context: &str) -> impl FnOnce(bai_db_models::DbError) -> ApiError + '_ {
    move |error| ApiError::internal(context, &error)
}

/// The access key a request acts for: `owner_access_key` when the caller may act for its owner.
pub(super) async fn acting_for(
    ctx: &ApiContext,
    caller: &Caller,
    owner_access_key: Option<&str>,
) -> Result<String, ApiError> {
    let owner = owner_scope(ctx, caller, owner_access_key).await?;
    Ok(owner.map_or_else(
        || caller.access_key().to_owned(),
        |owner| owner.keypair.access_key,
    ))
}

pub(super) fn no_agent_rpc(what: &str) -> ApiError {
    ApiError::with_msg(
        ErrorKind::NotImplemented,
        format!("{what} needs the agents, and this server runs without agent RPC"),
    )
}

// ----- GET /session/_/match -----

async fn match_sessions(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<MatchParams>,
) -> Result<PyJson<Matches>, ApiError> {
    let access_key = caller.access_key();
    tracing::info!(
        target: "bai_api",
        "MATCH_SESSIONS(ak:{access_key}/{access_key}, prefix:{})",
        params.id
    );
    // The reference calls `SessionRow.match_sessions` with its defaults: the exact name or id,
    // stale sessions included.
    let found = queries::match_sessions(ctx.db(), &params.id, Some(access_key), true, false)
        .await
        .map_err(db_error("matching the sessions"))?;
    Ok(PyJson(Matches {
        matches: found
            .into_iter()
            .map(|session| Match {
                id: session.id.to_string(),
                name: session.name,
                status: session_status_name(session.status),
            })
            .collect(),
    }))
}

fn session_status_name(status: SessionStatus) -> String {
    use sea_orm::ActiveEnum;
    status.to_value()
}

// ----- PATCH /session/{name} -----

async fn restart(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(session_name): Path<String>,
    Params(params): Params<OwnerParams>,
) -> Result<Response, ApiError> {
    let owner_access_key = acting_for(&ctx, &caller, params.owner_access_key.as_deref()).await?;
    tracing::info!(
        target: "bai_api",
        "RESTART (ak:{}/{owner_access_key}, s:{session_name})",
        caller.access_key()
    );
    let session = get_session(&ctx, &session_name, &owner_access_key).await?;
    let Some(rpc) = ctx.agent_rpc() else {
        return Err(no_agent_rpc("Restarting a session"));
    };
    let restarter = bai_sessions::Restarter::new(
        ctx.db().clone(),
        EventProducer::new(ctx.redis().stream.clone()),
        Arc::clone(rpc),
    );
    match restarter.restart(session.id).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(bai_sessions::RestartError::NotFound(_)) => Err(session_not_found(&session_name)),
        Err(bai_sessions::RestartError::NotRunning { status, .. }) => {
            Err(ApiError::invalid_params(format!(
                "Can't restart a session in {} status",
                session_status_name(status)
            )))
        }
        Err(bai_sessions::RestartError::Db(error)) => {
            Err(ApiError::internal("restarting the session", &*error))
        }
    }
}

// ----- POST /session/{name}/rename -----

async fn rename(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(session_name): Path<String>,
    Params(params): Params<RenameParams>,
) -> Result<Response, ApiError> {
    // The reference reads no `owner_access_key` here: the caller's own sessions only.
    let access_key = caller.access_key();
    tracing::info!(
        target: "bai_api",
        "RENAME_SESSION (ak:{access_key}/{access_key}, s:{session_name}, newname:{})",
        params.name
    );
    let session = find_session(&ctx, &session_name, access_key, true).await?;
    match session_ops::rename_session(ctx.db(), session.id, &params.name)
        .await
        .map_err(db_error("renaming the session"))?
    {
        RenameOutcome::Renamed => Ok(StatusCode::NO_CONTENT.into_response()),
        RenameOutcome::NotRunning(_) => Err(ApiError::invalid_params(
            "Can't change name of not running session",
        )),
        // The reference lets the database's unique index refuse it (an unhandled 500).
        RenameOutcome::NameTaken => Err(ApiError::invalid_params(format!(
            "Another session of yours is already named {}",
            params.name
        ))),
        RenameOutcome::Gone => Err(session_not_found(&session_name)),
    }
}

// ----- GET /session/{name}/logs -----

async fn get_container_logs(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(session_name): Path<String>,
    Params(params): Params<LogsParams>,
) -> Result<PyJson<LogsAnswer>, ApiError> {
    let owner_access_key = acting_for(&ctx, &caller, params.owner_access_key.as_deref()).await?;
    tracing::info!(
        target: "bai_api",
        "GET_CONTAINER_LOG (ak:{}/{owner_access_key}, s:{session_name}, k:{})",
        caller.access_key(),
        params
            .kernel_id
            .map_or_else(|| "None".to_owned(), |id| id.to_string())
    );
    let session = find_session(&ctx, &session_name, &owner_access_key, true).await?;
    let kernels = queries::kernels_of(ctx.db(), session.id)
        .await
        .map_err(db_error("reading the session's kernels"))?;
    let kernel = pick_kernel(&session, &kernels, params.kernel_id)?;
    if matches!(
        session.status,
        SessionStatus::Cancelled | SessionStatus::Terminated
    ) && let Some(log) = &kernel.container_log
    {
        return Ok(logs_answer(String::from_utf8_lossy(log).into_owned()));
    }
    let target = KernelTarget::for_kernel(&ctx, &session, kernel, "Reading a session's logs")?;
    let kernel_id = target.kernel_id.as_str();
    let logs = target
        .call("get_logs", |connection| async move {
            connection.get_logs(kernel_id).await
        })
        .await?;
    Ok(logs_answer(logs))
}

fn logs_answer(logs: String) -> PyJson<LogsAnswer> {
    PyJson(LogsAnswer {
        result: Logs { logs },
    })
}

/// The kernel `kernel_id` of the session, or its main kernel.
pub(super) fn pick_kernel<'a>(
    session: &sessions::Model,
    kernels: &'a [kernels::Model],
    kernel_id: Option<Uuid>,
) -> Result<&'a kernels::Model, ApiError> {
    match kernel_id {
        Some(kernel_id) => kernels
            .iter()
            .find(|kernel| kernel.id == kernel_id)
            .ok_or_else(|| {
                ApiError::with_msg(
                    ErrorKind::ObjectNotFound("kernel"),
                    format!(
                        "Session has no such kernel (sid:{}, kid:{kernel_id}))",
                        session.id
                    ),
                )
            }),
        None => kernels
            .iter()
            .find(|kernel| kernel.cluster_role == "main")
            .ok_or_else(|| {
                ApiError::with_msg(
                    ErrorKind::ObjectNotFound("main kernel"),
                    format!("Session (id: {}) has no main kernel.", session.id),
                )
            }),
    }
}

const AGENT_TIMEOUT: &str = "https://api.backend.ai/probs/agent-timeout";
const AGENT_FAILURE: &str = "https://api.backend.ai/probs/agent-failure";

/// The reference's `KernelExecutionFailed` for a failed agent call: the agent's own exception
/// (`FAILURE`), no answer in time or no connection (`TIMEOUT`, as the reference's call to an
/// agent that is gone ends), or a failure on our side (the reference's re-raised exception,
/// without its details).
pub(super) fn agent_error(error: &AgentRpcError) -> ApiError {
    match error {
        AgentRpcError::Rpc(RpcError::Failure { repr, .. }) => ApiError::agent(
            ErrorKind::KernelExecutionFailed,
            json!({
                "type": AGENT_FAILURE,
                "title": "Agent-side exception occurred.",
                "exception": repr,
            }),
        ),
        AgentRpcError::Rpc(
            RpcError::Timeout { .. }
            | RpcError::NoAnswer { .. }
            | RpcError::NotSent { .. }
            | RpcError::Disconnected { .. }
            | RpcError::Closed { .. }
            | RpcError::Cancelled { .. }
            | RpcError::CurveHandshake { .. }
            | RpcError::NeedsCurve { .. },
        ) => ApiError::agent(
            ErrorKind::KernelExecutionFailed,
            json!({"type": AGENT_TIMEOUT, "title": null}),
        ),
        _ => unexpected_agent_error(),
    }
}

fn unexpected_agent_error() -> ApiError {
    ApiError::agent(
        ErrorKind::KernelExecutionFailed,
        json!({"type": AGENT_FAILURE, "title": "Unexpected exception ocurred."}),
    )
}

// ----- GET /session/{name}/status-history -----

async fn get_status_history(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(session_name): Path<String>,
    Params(params): Params<OwnerParams>,
) -> Result<PyJson<StatusHistoryAnswer>, ApiError> {
    let owner_access_key = acting_for(&ctx, &caller, params.owner_access_key.as_deref()).await?;
    tracing::info!(
        target: "bai_api",
        "GET_STATUS_HISTORY (ak:{}/{owner_access_key}, s:{session_name})",
        caller.access_key()
    );
    let session = get_session(&ctx, &session_name, &owner_access_key).await?;
    Ok(PyJson(StatusHistoryAnswer {
        result: session.status_history.unwrap_or(Value::Null),
    }))
}
