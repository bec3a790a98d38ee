//! `/manager/*`: the manager status (freeze and unfreeze) and the announcement banner, both in etcd;
//! the scheduler's triggers, its agent operations, and what it recorded of its last runs.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bai_db_models::queries;
use bai_events::{Event, EventProducer};
use bai_redis::SchedulerStatus;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::config::Ordered;
use super::{Access, Authenticated, Route};
use bai_stores::ManagerStatus;

use crate::context::ApiContext;
use crate::error::{ApiError, ErrorKind};
use crate::json::PyJson;
use crate::params::{Params, lenient};
use crate::version::{ApiVersion, COMPATIBLE_MANAGER_VERSION};

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/manager/status",
            "manager.fetch_manager_status",
            fetch_status,
        )
        .summary("This node, the cluster-wide manager status and the number of active sessions."),
        Route::new(
            Method::PUT,
            "/manager/status",
            "manager.update_manager_status",
            update_status,
        )
        .access(Access::SuperAdmin)
        .params::<StatusUpdate>()
        .summary("Freezes or unfreezes the manager (etcd `manager/status`)."),
        Route::new(
            Method::GET,
            "/manager/announcement",
            "manager.get_announcement",
            get_announcement,
        )
        .summary("The announcement banner, if one is enabled."),
        Route::new(
            Method::POST,
            "/manager/announcement",
            "manager.update_announcement",
            update_announcement,
        )
        .access(Access::SuperAdmin)
        .params::<AnnouncementUpdate>()
        .summary("Enables (with a message) or disables the announcement banner."),
        Route::new(
            Method::POST,
            "/manager/scheduler/operation",
            "manager.perform_scheduler_ops",
            scheduler_operation,
        )
        .access(Access::SuperAdmin)
        .params::<SchedulerOperation>()
        .summary("Includes agents in scheduling or excludes them from it (`agents.schedulable`)."),
        Route::new(
            Method::POST,
            "/manager/scheduler/trigger",
            "manager.scheduler_trigger",
            scheduler_trigger,
        )
        .access(Access::SuperAdmin)
        .params::<SchedulerTrigger>()
        .summary(
            "Asks for a scheduling round, a start of the scheduled sessions, or a scaling round.",
        ),
        Route::new(
            Method::GET,
            "/manager/scheduler/status",
            "manager.scheduler_healthcheck",
            scheduler_status,
        )
        .access(Access::SuperAdmin)
        .summary(
            "What this manager's scheduler recorded of its last run of each task (Redis `manager.{id}.{task}`).",
        ),
    ]
}

/// `GET /manager/scheduler/status`: per task (`schedule`, `prepare`, `scale_services`), the hash
/// its last run on this manager (`manager.id`) left; `{}` for a task that never ran here.
async fn scheduler_status(
    State(ctx): State<ApiContext>,
    _caller: Authenticated,
) -> Result<PyJson<Ordered<Ordered<String>>>, ApiError> {
    let status = SchedulerStatus::new(ctx.redis().live.clone(), ctx.config().manager.id.clone());
    let tasks = status
        .read()
        .await
        .map_err(|error| ApiError::internal("reading the scheduler's status", &error))?;
    Ok(PyJson(Ordered(
        tasks
            .into_iter()
            .map(|(task, fields)| (task.name().to_owned(), Ordered(fields)))
            .collect(),
    )))
}

/// `POST /manager/scheduler/operation`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SchedulerOperation {
    op: SchedulerOp,
    args: Vec<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema)]
enum SchedulerOp {
    #[serde(rename = "include-agents")]
    IncludeAgents,
    #[serde(rename = "exclude-agents")]
    ExcludeAgents,
}

async fn scheduler_operation(
    State(ctx): State<ApiContext>,
    _caller: Authenticated,
    Params(operation): Params<SchedulerOperation>,
) -> Result<Response, ApiError> {
    let include = matches!(operation.op, SchedulerOp::IncludeAgents);
    let all_found = queries::agent_registry::set_schedulable(ctx.db(), &operation.args, include)
        .await
        .map_err(|error| ApiError::internal("changing the agents' schedulability", &error))?;
    if !all_found {
        return Err(ApiError::new(ErrorKind::ObjectNotFound("agent instance")));
    }
    if include {
        produce(&ctx, &Event::DoSchedule).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /manager/scheduler/trigger`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SchedulerTrigger {
    event: TriggeredEvent,
}

#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum TriggeredEvent {
    Schedule,
    Prepare,
    ScaleServices,
}

async fn scheduler_trigger(
    State(ctx): State<ApiContext>,
    _caller: Authenticated,
    Params(trigger): Params<SchedulerTrigger>,
) -> Result<Response, ApiError> {
    let event = match trigger.event {
        TriggeredEvent::Schedule => Event::DoSchedule,
        TriggeredEvent::Prepare => Event::DoPrepare,
        TriggeredEvent::ScaleServices => Event::DoScale,
    };
    produce(&ctx, &event).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn produce(ctx: &ApiContext, event: &Event) -> Result<(), ApiError> {
    EventProducer::new(ctx.redis().stream.clone())
        .produce(event, "manager")
        .await
        .map_err(|error| ApiError::internal("producing the scheduler's event", &error))?;
    Ok(())
}

#[derive(Debug, Serialize)]
struct NodeStatus {
    id: String,
    num_proc: i64,
    service_addr: String,
    heartbeat_timeout: f64,
    ssl_enabled: bool,
    active_sessions: u64,
    status: &'static str,
    version: &'static str,
    api_version: (u32, &'static str),
}

#[derive(Debug, Serialize)]
struct ClusterStatus {
    nodes: Vec<NodeStatus>,
    status: &'static str,
    active_sessions: u64,
}

async fn fetch_status(
    State(ctx): State<ApiContext>,
    Extension(version): Extension<ApiVersion>,
) -> Result<PyJson<ClusterStatus>, ApiError> {
    let status = ctx
        .manager_status()
        .await
        .map_err(|error| ApiError::internal("reading the manager status", &error))?;
    let active_sessions = queries::kernels::count_active_sessions(ctx.db())
        .await
        .map_err(|error| ApiError::internal("counting active sessions", &error))?;
    let manager = &ctx.config().manager;
    Ok(PyJson(ClusterStatus {
        nodes: vec![NodeStatus {
            id: manager.id.clone(),
            num_proc: manager.num_proc,
            service_addr: manager.service_addr.to_string(),
            heartbeat_timeout: manager.heartbeat_timeout,
            ssl_enabled: manager.ssl_enabled,
            active_sessions,
            status: status.as_str(),
            version: COMPATIBLE_MANAGER_VERSION,
            api_version: (version.major, version.date),
        }],
        status: status.as_str(),
        active_sessions,
    }))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct StatusUpdate {
    status: StatusName,
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schemars(with = "bool")]
    force_kill: bool,
}

/// A manager status as `PUT /manager/status` names it.
#[derive(Clone, Copy, Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum StatusName {
    Terminated,
    Preparing,
    Running,
    Frozen,
}

impl From<StatusName> for ManagerStatus {
    fn from(name: StatusName) -> ManagerStatus {
        match name {
            StatusName::Terminated => ManagerStatus::Terminated,
            StatusName::Preparing => ManagerStatus::Preparing,
            StatusName::Running => ManagerStatus::Running,
            StatusName::Frozen => ManagerStatus::Frozen,
        }
    }
}

async fn update_status(
    State(ctx): State<ApiContext>,
    _caller: Authenticated,
    Params(update): Params<StatusUpdate>,
) -> Result<Response, ApiError> {
    if update.force_kill {
        // Killing sessions is an agent RPC, which this server does not speak yet. With nothing
        // running there is nothing to kill; otherwise say so rather than freeze half-way.
        let active = queries::kernels::count_active_sessions(ctx.db())
            .await
            .map_err(|error| ApiError::internal("counting active sessions", &error))?;
        if active > 0 {
            return Err(ApiError::with_msg(
                ErrorKind::NotImplemented,
                format!(
                    "force_kill cannot terminate the {active} active session(s): this manager \
                     does not drive agents yet"
                ),
            ));
        }
    }
    let status = ManagerStatus::from(update.status);
    ctx.set_manager_status(status)
        .await
        .map_err(|error| ApiError::internal("writing the manager status", &error))?;
    tracing::info!(target: "bai_api", "manager status set to {}", status.as_str());
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Serialize)]
struct Announcement {
    enabled: bool,
    message: String,
}

async fn get_announcement(State(ctx): State<ApiContext>) -> Result<PyJson<Announcement>, ApiError> {
    let message = ctx
        .stores()
        .announcement()
        .await
        .map_err(|error| ApiError::internal("reading the announcement", &error))?;
    Ok(PyJson(match message {
        Some(message) => Announcement {
            enabled: true,
            message,
        },
        None => Announcement {
            enabled: false,
            message: String::new(),
        },
    }))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct AnnouncementUpdate {
    #[serde(default, deserialize_with = "lenient::bool")]
    #[schemars(with = "bool")]
    enabled: bool,
    #[serde(default)]
    message: Option<String>,
}

async fn update_announcement(
    State(ctx): State<ApiContext>,
    _caller: Authenticated,
    Params(update): Params<AnnouncementUpdate>,
) -> Result<Response, ApiError> {
    let message = if update.enabled {
        let message = update.message.unwrap_or_default();
        if message.is_empty() {
            return Err(ApiError::invalid_params(
                "Empty message not allowed to enable announcement",
            ));
        }
        Some(message)
    } else {
        None
    };
    ctx.stores()
        .set_announcement(message.as_deref())
        .await
        .map_err(|error| ApiError::internal("writing the announcement", &error))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
