//! Running code in a session's main kernel: `POST /session/{name}` (the reference's `execute`,
//! modes `query`, `batch`, `continue`, `input` and the legacy `complete`),
//! `POST /session/{name}/interrupt` and `POST /session/{name}/complete`.
//!
//! The handlers resolve the caller's own session (the reference reads no `owner_access_key`
//! here, though the clients send one) and its main kernel, and call the kernel's agent through
//! the worker's `AgentRpcCache`; what the agent answers is relayed in the reference's wire
//! shapes, and its failures become the reference's `kernel-execution-failed` errors. The
//! streaming routes (`stream.rs`), the file routes (`session_files.rs`) and the logs route
//! (`session_ops.rs`) call agents through [`KernelTarget`] too.
//!
//! What this module must not do: keep any execution state of its own (run ids and output queues
//! live in the agent's kernel runner), or count queries (`increment_session_usage` is a no-op in
//! 24.03.11, so `num_queries` stays untouched).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bai_agent_rpc::{AgentConnection, ExecuteRequest, RpcError};
use bai_agents::AgentRpcCache;
use bai_db_models::entities::{kernels, sessions};
use bai_db_models::queries::session_enqueue as queries;
use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};

use super::session::get_session;
use super::session_ops::{agent_error, no_agent_rpc, pick_kernel};
use super::{Access, Authenticated, Route, StatusGate};
use crate::auth::Caller;
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorKind};
use crate::json::PyJson;
use crate::params::Path;
use crate::version::ApiVersion;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::POST,
            "/session/{session_name}",
            "session.execute",
            execute,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .summary(
            "Runs code in the main kernel of one of the caller's sessions and answers the \
             output gathered so far: a JSON body with `runId` (key required, may be null), \
             `mode` (`query`, `batch`, `continue`, `input`, `complete`), `code`, `options`.",
        ),
        Route::new(
            Method::POST,
            "/session/{session_name}/interrupt",
            "session.interrupt",
            interrupt,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .summary("Interrupts the code running in the session's main kernel."),
        Route::new(
            Method::POST,
            "/session/{session_name}/complete",
            "session.complete",
            complete,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .summary(
            "The completion candidates of the kernel for `code` (a JSON body with `code` and \
             `options`), as its agent answers them.",
        ),
    ]
}

/// How long the agent gathers output before answering `POST /session/{name}` (the reference's).
const EXECUTE_FLUSH_TIMEOUT: f64 = 2.0;

/// The modes `POST /session/{name}` accepts.
const EXECUTE_MODES: [&str; 5] = ["query", "batch", "complete", "continue", "input"];

/// The main kernel of a session and the agent that runs it.
pub(super) struct KernelTarget {
    rpc: Arc<AgentRpcCache>,
    pub(super) session_id: String,
    pub(super) kernel_id: String,
    agent: Option<String>,
}

impl KernelTarget {
    /// The main kernel of `session` (the reference's `MainKernelNotFound` without one); an
    /// embedder without agent RPC gets `not-implemented`.
    pub(super) async fn of(
        ctx: &ApiContext,
        session: &sessions::Model,
        what: &str,
    ) -> Result<KernelTarget, ApiError> {
        let kernel = main_kernel(ctx, session).await?;
        KernelTarget::for_kernel(ctx, session, &kernel, what)
    }

    /// `kernel` of `session`.
    pub(super) fn for_kernel(
        ctx: &ApiContext,
        session: &sessions::Model,
        kernel: &kernels::Model,
        what: &str,
    ) -> Result<KernelTarget, ApiError> {
        let rpc = ctx.agent_rpc().ok_or_else(|| no_agent_rpc(what))?;
        Ok(KernelTarget {
            rpc: Arc::clone(rpc),
            session_id: session.id.to_string(),
            kernel_id: kernel.id.to_string(),
            agent: kernel.agent.clone(),
        })
    }

    /// The agent of the kernel. A kernel on no agent yet (a session not scheduled) is refused as
    /// the client's mistake, 400 `generic-bad-request`: the reference fails its RPC to a missing
    /// agent with a 500 `kernel-execution-failed`, a server error for a request that cannot work
    /// in that state (docs/compat.md).
    pub(super) fn agent(&self, method: &str) -> Result<&str, ApiError> {
        self.agent.as_deref().ok_or_else(|| {
            tracing::info!(
                target: "bai_api",
                "{method} (k:{}): the kernel is on no agent",
                self.kernel_id
            );
            ApiError::bad_request(
                "The session's kernel is not on any agent yet (the session is not scheduled)",
            )
        })
    }

    /// Runs `call` on the connection to the kernel's agent (`method` names it in the log); a
    /// failure is the reference's `kernel-execution-failed`.
    pub(super) async fn call<T, F, Fut>(&self, method: &str, call: F) -> Result<T, ApiError>
    where
        F: FnOnce(Arc<AgentConnection>) -> Fut,
        Fut: Future<Output = Result<T, RpcError>>,
    {
        let agent = self.agent(method)?;
        self.rpc.call(agent, call).await.map_err(|error| {
            tracing::warn!(
                target: "bai_api",
                "{method} (k:{}, ag:{agent}) failed: {error}",
                self.kernel_id
            );
            agent_error(&error)
        })
    }

    /// `execute` on the kernel's agent: the agent's answer as JSON (null when it answered
    /// nothing).
    pub(super) async fn execute(
        &self,
        version: &ApiVersion,
        run: Run,
        flush_timeout: Option<f64>,
    ) -> Result<Value, ApiError> {
        let request = ExecuteRequest {
            api_version: agent_api_version(version),
            run_id: run.run_id,
            mode: run.mode,
            code: run.code,
            opts: bai_events::to_value(&run.opts),
            flush_timeout,
        };
        let (session_id, kernel_id) = (self.session_id.as_str(), self.kernel_id.as_str());
        let reply = self
            .call("execute", |connection| async move {
                connection.execute(session_id, kernel_id, request).await
            })
            .await?;
        Ok(bai_events::to_json(&reply))
    }

    /// `interrupt_kernel` on the kernel's agent.
    pub(super) async fn interrupt(&self) -> Result<(), ApiError> {
        let kernel_id = self.kernel_id.as_str();
        self.call("interrupt_kernel", |connection| async move {
            connection.interrupt_kernel(kernel_id).await
        })
        .await?;
        Ok(())
    }

    /// `get_completions` on the kernel's agent: its answer as JSON (agents answer null).
    async fn complete(&self, code: &str, opts: &Value) -> Result<Value, ApiError> {
        let kernel_id = self.kernel_id.as_str();
        let opts = bai_events::to_value(opts);
        let reply = self
            .call("get_completions", |connection| async move {
                connection.get_completions(kernel_id, code, opts).await
            })
            .await?;
        Ok(bai_events::to_json(&reply))
    }
}

/// The main kernel of `session`, as stored now.
pub(super) async fn main_kernel(
    ctx: &ApiContext,
    session: &sessions::Model,
) -> Result<kernels::Model, ApiError> {
    let kernels = queries::kernels_of(ctx.db(), session.id)
        .await
        .map_err(|error| ApiError::internal("reading the session's kernels", &error))?;
    pick_kernel(session, &kernels, None).cloned()
}

/// One `execute` call's arguments.
pub(super) struct Run {
    pub(super) run_id: Option<String>,
    pub(super) mode: String,
    pub(super) code: String,
    pub(super) opts: Value,
}

impl Run {
    /// A run of `mode` with `code` and no options, under `run_id`.
    pub(super) fn without_options(run_id: String, mode: &str, code: String) -> Run {
        Run {
            run_id: Some(run_id),
            mode: mode.to_owned(),
            code,
            opts: Value::Object(Map::new()),
        }
    }
}

/// The API version the agent is told: the manager-agent protocol of v4 is v3's.
fn agent_api_version(version: &ApiVersion) -> i64 {
    match version.major {
        4 => 3,
        major => i64::from(major),
    }
}

/// The caller's session `session_name` and the request's JSON object, in the reference's order:
/// the body parsed as `request.json()` parses it (any JSON document, else `invalid-api-params`
/// without a message), the call logged as `handler`, the session found, and only then the body
/// required to be an object (the reference reads other documents with `dict.get`, which fails).
async fn session_and_params(
    ctx: &ApiContext,
    caller: &Caller,
    session_name: &str,
    body: &Bytes,
    handler: &str,
) -> Result<(sessions::Model, Map<String, Value>), ApiError> {
    let access_key = caller.access_key();
    let params: Value =
        serde_json::from_slice(body).map_err(|_| ApiError::new(ErrorKind::InvalidApiParameters))?;
    tracing::info!(target: "bai_api", "{handler}(ak:{access_key}/{access_key}, s:{session_name})");
    let session = get_session(ctx, session_name, access_key).await?;
    match params {
        Value::Object(params) => Ok((session, params)),
        _ => Err(ApiError::invalid_params("The body must be a JSON object.")),
    }
}

/// Python's truth value of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|number| number != 0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(entries) => !entries.is_empty(),
    }
}

/// `code`: a string, absent or null meaning empty.
fn code_of(params: &Map<String, Value>) -> Result<String, ApiError> {
    match params.get("code") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(code)) => Ok(code.clone()),
        Some(_) => Err(ApiError::invalid_params("code must be a string.")),
    }
}

/// `options`: a map, absent or null meaning empty.
pub(super) fn options_of(params: &Map<String, Value>) -> Result<Value, ApiError> {
    match params.get("options") {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(options @ Value::Object(_)) => Ok(options.clone()),
        Some(other) if !truthy(other) => Ok(Value::Object(Map::new())),
        Some(_) => Err(ApiError::invalid_params("options must be an object.")),
    }
}

/// What a v2+ `execute` asks for, checked as the reference's assertions check it.
fn execute_params(params: &Map<String, Value>) -> Result<Run, ApiError> {
    let run_id = match params.get("runId") {
        None => return Err(ApiError::invalid_params("runId is missing!")),
        Some(Value::Null) => None,
        Some(Value::String(run_id)) => Some(run_id.clone()),
        Some(_) => return Err(ApiError::invalid_params("runId must be a string or null.")),
    };
    let mode = match params.get("mode") {
        Some(mode) if truthy(mode) => mode,
        _ => return Err(ApiError::invalid_params("mode is missing or empty!")),
    };
    let mode = mode
        .as_str()
        .filter(|mode| EXECUTE_MODES.contains(mode))
        .ok_or_else(|| ApiError::invalid_params("mode has an invalid value."))?;
    if matches!(mode, "continue" | "input") && run_id.is_none() {
        return Err(ApiError::invalid_params(
            "continuation requires explicit run ID",
        ));
    }
    Ok(Run {
        run_id,
        mode: mode.to_owned(),
        code: code_of(params)?,
        opts: options_of(params)?,
    })
}

/// `{"result": ...}`.
#[derive(Debug, Serialize)]
struct Answer<T> {
    result: T,
}

/// The execution result of API v2 and newer, in the reference's key order.
#[derive(Debug, Serialize)]
struct ExecutionResult {
    status: Value,
    #[serde(rename = "runId")]
    run_id: Value,
    #[serde(rename = "exitCode")]
    exit_code: Value,
    options: Value,
    files: Value,
    console: Value,
}

impl ExecutionResult {
    /// What the reference answers when the agent returned nothing: the kernel is gone or the
    /// agent was interrupted.
    fn interrupted(run_id: Option<String>) -> ExecutionResult {
        ExecutionResult {
            status: Value::from("finished"),
            run_id: run_id.map_or(Value::Null, Value::from),
            exit_code: Value::from(130),
            options: Value::Object(Map::new()),
            files: Value::Array(Vec::new()),
            console: Value::Array(Vec::new()),
        }
    }

    /// The agent's result map, which must have a `status`. An answer without `runId` (the
    /// dummy agent's `{"status": "not-implemented"}`) keeps the request's run id, where the
    /// reference fails with a 500.
    fn from_agent(reply: &Value, run_id: Option<String>) -> Result<ExecutionResult, ApiError> {
        let field = |key: &str| reply.get(key).cloned().unwrap_or(Value::Null);
        let status = reply.get("status").cloned().ok_or_else(|| {
            tracing::error!(target: "bai_api", "execute: the agent's result has no status: {reply}");
            ApiError::new(ErrorKind::InternalServerError)
        })?;
        Ok(ExecutionResult {
            status,
            run_id: reply
                .get("runId")
                .cloned()
                .unwrap_or_else(|| run_id.map_or(Value::Null, Value::from)),
            exit_code: field("exitCode"),
            options: field("options"),
            files: field("files"),
            console: field("console"),
        })
    }
}

// ----- POST /session/{name} -----

async fn execute(
    State(ctx): State<ApiContext>,
    Extension(version): Extension<ApiVersion>,
    Authenticated(caller): Authenticated,
    Path(session_name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (session, params) =
        session_and_params(&ctx, &caller, &session_name, &body, "EXECUTE").await?;
    let run = execute_params(&params).inspect_err(|error| {
        tracing::warn!(target: "bai_api", "EXECUTE: invalid/missing parameters: {error}");
    })?;
    let target = KernelTarget::of(&ctx, &session, "Executing code").await?;
    if run.mode == "complete" {
        // The legacy completion of API v1 and v2: the agent's answer as it is.
        let completions = target.complete(&run.code, &run.opts).await?;
        return Ok(PyJson(Answer {
            result: completions,
        })
        .into_response());
    }
    let run_id = run.run_id.clone();
    let reply = target
        .execute(&version, run, Some(EXECUTE_FLUSH_TIMEOUT))
        .await?;
    let result = if reply.is_null() {
        ExecutionResult::interrupted(run_id)
    } else {
        ExecutionResult::from_agent(&reply, run_id)?
    };
    Ok(PyJson(Answer { result }).into_response())
}

// ----- POST /session/{name}/interrupt -----

async fn interrupt(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(session_name): Path<String>,
) -> Result<Response, ApiError> {
    let access_key = caller.access_key();
    tracing::info!(target: "bai_api", "INTERRUPT(ak:{access_key}/{access_key}, s:{session_name})");
    let session = get_session(&ctx, &session_name, access_key).await?;
    KernelTarget::of(&ctx, &session, "Interrupting a session")
        .await?
        .interrupt()
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ----- POST /session/{name}/complete -----

async fn complete(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(session_name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (session, params) =
        session_and_params(&ctx, &caller, &session_name, &body, "COMPLETE").await?;
    let code = code_of(&params)?;
    let opts = options_of(&params)?;
    let completions = KernelTarget::of(&ctx, &session, "Completing code")
        .await?
        .complete(&code, &opts)
        .await?;
    Ok(PyJson(Answer {
        result: completions,
    })
    .into_response())
}
