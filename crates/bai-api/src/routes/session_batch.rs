//! What batch sessions add to `/session`: the dependency graph of a session
//! (`GET /session/{name}/dependency-graph`, the reference's `get_dependency_graph`) and the task
//! logs (`GET`/`HEAD /session/_/logs`, `get_task_logs`), read from the user's `.logs` folder
//! through its storage proxy (`bai-storage-proxy`) and streamed as they come.
//!
//! Starting batches and ending them on their results is `bai_sessions`' (`trigger_batch`,
//! `BatchResults`); the rows come through `bai_db_models::queries::session_batch`.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bai_db_models::entities::enums::KernelStatus;
use bai_db_models::queries::session_batch::{self, FolderLocation, LOGS_FOLDER};
use bai_db_models::queries::session_enqueue as queries;
use bai_pyjson::datetime::str_datetime_or_none;
use bai_storage_proxy::StorageError;
use futures_util::StreamExt;
use http::{HeaderValue, Method, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::session::session_not_found;
use super::vfolder::{storage_refusal, vfolder_id};
use super::{Access, Authenticated, Route, StatusGate};
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorKind};
use crate::json::PyJson;
use crate::params::{Params, Path};

pub(super) fn routes() -> Vec<Route> {
    let task_logs = |method: Method| {
        Route::new(
            method,
            "/session/_/logs",
            "session.get_task_logs",
            get_task_logs,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<TaskLogParams>()
        .summary(
            "The log of batch task `taskId` (a kernel id) from the caller's `.logs` folder, \
                 streamed from its storage proxy as `text/plain`.",
        )
    };
    vec![
        task_logs(Method::HEAD),
        task_logs(Method::GET),
        Route::new(
            Method::GET,
            "/session/{session_name}/dependency-graph",
            "session.get_dependency_graph",
            get_dependency_graph,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .summary(
            "The caller's session and, recursively, the sessions it depends on, with their \
             kernel's status.",
        ),
    ]
}

fn db_error(context: &str) -> impl FnOnce(bai_db_models::DbError) -> ApiError + '_ {
    move |error| ApiError::internal(context, &error)
}

// ----- GET /session/{name}/dependency-graph -----

/// One session of the graph, as the reference writes it.
#[derive(Debug, Serialize)]
struct GraphNode {
    session_id: String,
    session_name: String,
    /// `str()` of the kernel's status enum: `KernelStatus.RUNNING`.
    status: String,
    /// `str()` of the kernel's `status_changed`: `2024-05-01 10:00:00.123456+00:00`, or `None`.
    status_changed: String,
    depends_on: Vec<GraphNode>,
}

type NodeFuture<'a> = Pin<Box<dyn Future<Output = Result<GraphNode, ApiError>> + Send + 'a>>;

async fn get_dependency_graph(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(session_name): Path<String>,
) -> Result<PyJson<GraphNode>, ApiError> {
    let access_key = caller.access_key();
    tracing::info!(
        target: "bai_api",
        "GET_DEPENDENCY_GRAPH (ak:{access_key}/{access_key}, s:{session_name})"
    );
    let mut path = HashSet::new();
    graph_node(&ctx, session_name, access_key, &mut path)
        .await
        .map(PyJson)
}

/// The node of the newest of the caller's sessions `reference` names (terminated ones too), and
/// of its dependencies; a dependency already on `path` (a cycle, which the API cannot create)
/// is left out rather than followed forever.
fn graph_node<'a>(
    ctx: &'a ApiContext,
    reference: String,
    access_key: &'a str,
    path: &'a mut HashSet<Uuid>,
) -> NodeFuture<'a> {
    Box::pin(async move {
        let session = queries::match_sessions(ctx.db(), &reference, Some(access_key), true, false)
            .await
            .map_err(db_error("finding the session"))?
            .into_iter()
            .next()
            .ok_or_else(|| session_not_found(&reference))?;
        let node = session_batch::graph_node(ctx.db(), session.id)
            .await
            .map_err(db_error("reading the session's dependencies"))?;
        let (status, status_changed) = match node.kernel {
            Some((status, changed)) => (
                kernel_status_repr(status),
                str_datetime_or_none(changed.as_ref()),
            ),
            None => ("None".to_owned(), "None".to_owned()),
        };
        path.insert(session.id);
        let mut depends_on = Vec::with_capacity(node.depends_on.len());
        for dependency in node.depends_on {
            if path.contains(&dependency) {
                continue;
            }
            depends_on.push(graph_node(ctx, dependency.to_string(), access_key, path).await?);
        }
        path.remove(&session.id);
        Ok(GraphNode {
            session_id: session.id.to_string(),
            session_name: session.name.unwrap_or_default(),
            status,
            status_changed,
            depends_on,
        })
    })
}

/// Python's `str()` of the reference's `KernelStatus` member (a plain `enum.Enum`).
fn kernel_status_repr(status: KernelStatus) -> String {
    use sea_orm::ActiveEnum;
    format!("KernelStatus.{}", status.to_value())
}

// ----- GET/HEAD /session/_/logs -----

/// `get_task_logs`: the task (a kernel id) under any of its names.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct TaskLogParams {
    #[serde(alias = "session_name", alias = "sessionName", alias = "taskId")]
    #[schemars(with = "String")]
    task_id: Uuid,
}

async fn get_task_logs(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<TaskLogParams>,
) -> Result<Response, ApiError> {
    tracing::info!(
        target: "bai_api",
        "GET_TASK_LOG (ak:{}, k:{})",
        caller.access_key(),
        params.task_id
    );
    let folder = session_batch::logs_folder(ctx.db(), caller.user.uuid)
        .await
        .map_err(db_error("finding the user's .logs folder"))?
        .ok_or_else(|| {
            ApiError::new(ErrorKind::ObjectNotFound("vfolder"))
                .data(json!({ "vfolder_name": LOGS_FOLDER }))
        })?;
    // The clients are made per request: task logs are read rarely, and a client per proxy is
    // cheap next to the file it streams. A proxy etcd does not name fails the fetch.
    let proxies = ctx
        .storage_proxies()
        .map_err(|error| storage_error(&folder, error))?;
    let file = proxies
        .fetch_file(
            &folder.host,
            &vfolder_id(&folder.quota_scope_id, folder.id),
            &task_log_path(params.task_id),
        )
        .await
        .map_err(|error| storage_error(&folder, error))?;
    let task_id = params.task_id;
    let body = file.into_stream().map(move |chunk| {
        chunk.inspect_err(|error| {
            tracing::warn!(target: "bai_api", "GET_TASK_LOG (k:{task_id}): {error}");
        })
    });
    let mut response = Body::from_stream(body).into_response();
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

/// `task/{xx}/{yy}/{rest}.log` of the kernel id's hex digits, where the reference's batch
/// tasks write their logs.
fn task_log_path(task_id: Uuid) -> String {
    let hex = task_id.simple().to_string();
    format!("task/{}/{}/{}.log", &hex[..2], &hex[2..4], &hex[4..])
}

/// A storage proxy's refusal or failure while fetching a task log from `folder`.
fn storage_error(folder: &FolderLocation, error: StorageError) -> ApiError {
    storage_refusal(
        error,
        &format!(
            "fetching a task log from the {LOGS_FOLDER} folder on {}",
            folder.host
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_logs_live_under_the_kernel_ids_hex_digits() {
        let id = Uuid::parse_str("0123abcd-4567-89ef-0123-456789abcdef").expect("uuid");
        assert_eq!(
            task_log_path(id),
            "task/01/23/abcd456789ef0123456789abcdef.log"
        );
    }

    #[test]
    fn folder_ids_and_times_are_written_as_python_writes_them() {
        let id = Uuid::parse_str("0123abcd-4567-89ef-0123-456789abcdef").expect("uuid");
        assert_eq!(
            vfolder_id("user:f38dea23-50fa-42a0-b5ae-338f5f4693f4", id),
            "user:f38dea23-50fa-42a0-b5ae-338f5f4693f4/0123abcd456789ef0123456789abcdef"
        );
        assert_eq!(
            kernel_status_repr(KernelStatus::Terminated),
            "KernelStatus.TERMINATED"
        );
    }
}
