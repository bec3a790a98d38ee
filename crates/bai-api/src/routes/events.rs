//! Server-sent events (the reference's `events` app): `GET /events/session`, the session and
//! kernel lifecycle events a caller may see, filtered by session, project and scope; `GET
//! /events/background-task`, a background task's progress until it ends.
//!
//! Both read the worker's `bai_sessions::EventFeed` (given to the router as an axum
//! `Extension`), which the bus fills; nothing here reads the database per event. The framing is
//! aiohttp_sse 2.2's: `event:` and `data:` lines ended by `\r\n`, a blank line after each event,
//! a `: ping` comment every 15 s. A client that falls more than the feed's ring behind has its
//! stream ended (official clients reconnect after their retry delay); one that went away is
//! dropped on the next failed write or ping.
//!
//! It must not write SQL or Redis commands (the group lookup and the task tracker go through
//! `bai-db-models` and `bai-redis`).

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bai_db_models::entities::enums::UserRole;
use bai_pyjson::Layout;
use bai_sessions::feed::{BgtaskNotice, EventFeed, Notice, SessionNotice};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::{Access, Authenticated, Route, StatusGate};
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorKind};
use crate::params::Params;

/// aiohttp_sse's keep-alive comment interval.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// aiohttp_sse's line separator.
const SEP: &str = "\r\n";
/// The `retry:` field of `bgtask_updated` events (the official client reads it as seconds).
const BGTASK_RETRY: u32 = 5;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/events/background-task",
            "events.push_background_task_events",
            push_background_task_events,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<BgtaskParams>()
        .summary(
            "Server-sent events of a background task: `bgtask_updated` with its progress, then \
             `bgtask_done` (or nothing for a cancelled or failed task) and `server_close`; a task \
             that already ended answers its last state at once.",
        ),
        Route::new(
            Method::GET,
            "/events/session",
            "events.push_session_events",
            push_session_events,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<SessionEventParams>()
        .summary(
            "Server-sent events of the session and kernel lifecycle (`session_enqueued` ... \
             `session_terminated`) the caller may see: users their own sessions, domain admins \
             their domain's, superadmins all; filtered by session name or id, project and scope.",
        ),
    ]
}

/// `push_session_events`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SessionEventParams {
    /// A session name of the owner, or `*` for every session.
    #[serde(default = "any", alias = "sessionName")]
    name: String,
    /// The owner of the named session; the caller when absent.
    #[serde(default, rename = "ownerAccessKey")]
    owner_access_key: Option<String>,
    /// A session id; when given, `name` and `ownerAccessKey` are not looked at.
    #[serde(default, rename = "sessionId")]
    #[schemars(with = "Option<String>")]
    session_id: Option<Uuid>,
    /// A project name, or `*` for every project.
    #[serde(default = "any", alias = "groupName")]
    group: String,
    /// `*` (every event), `session` (`session_*` only) or `kernel` (`kernel_*` only).
    #[serde(default)]
    scope: Scope,
}

fn any() -> String {
    "*".to_owned()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
enum Scope {
    #[default]
    #[serde(rename = "*")]
    All,
    #[serde(rename = "session")]
    Session,
    #[serde(rename = "kernel")]
    Kernel,
}

/// `push_background_task_events`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct BgtaskParams {
    #[serde(alias = "taskId")]
    #[schemars(with = "String")]
    task_id: Uuid,
}

/// What one client of `/events/session` sees.
#[derive(Debug)]
struct SessionFilter {
    role: UserRole,
    domain_name: String,
    user_uuid: Uuid,
    /// `None`: every project.
    group_id: Option<Uuid>,
    scope: Scope,
    session_id: Option<Uuid>,
    /// `None`: every session.
    session_name: Option<String>,
    access_key: String,
}

impl SessionFilter {
    /// The reference's checks, in its order.
    fn admits(&self, notice: &SessionNotice) -> bool {
        let session = &notice.session;
        if matches!(self.role, UserRole::User | UserRole::Admin)
            && session.domain_name != self.domain_name
        {
            return false;
        }
        if self.role == UserRole::User && session.user_uuid != self.user_uuid {
            return false;
        }
        if self
            .group_id
            .is_some_and(|group_id| session.group_id != group_id)
        {
            return false;
        }
        match self.scope {
            Scope::Session if !notice.event_name.starts_with("session_") => return false,
            Scope::Kernel if !notice.event_name.starts_with("kernel_") => return false,
            _ => {}
        }
        match (self.session_id, &self.session_name) {
            (Some(session_id), _) => session.id == session_id,
            (None, Some(name)) => {
                session.name.as_deref() == Some(name.as_str())
                    && session.access_key.as_deref() == Some(self.access_key.as_str())
            }
            (None, None) => true,
        }
    }
}

/// The `data` of a session or kernel event, keys in the reference's order.
#[derive(Debug, Serialize)]
struct SessionEventData<'a> {
    reason: &'a str,
    #[serde(rename = "sessionName")]
    session_name: Option<&'a str>,
    #[serde(rename = "ownerAccessKey")]
    owner_access_key: Option<&'a str>,
    #[serde(rename = "sessionId")]
    session_id: String,
    #[serde(rename = "exitCode")]
    exit_code: Option<i64>,
    #[serde(rename = "kernelId", skip_serializing_if = "Option::is_none")]
    kernel_id: Option<String>,
    /// Only when not empty (the reference tests truthiness).
    #[serde(rename = "clusterRole", skip_serializing_if = "Option::is_none")]
    cluster_role: Option<&'a str>,
    /// Only when not 0 (the reference tests truthiness).
    #[serde(rename = "clusterIdx", skip_serializing_if = "Option::is_none")]
    cluster_idx: Option<i32>,
}

fn session_event_data(notice: &SessionNotice) -> SessionEventData<'_> {
    let kernel = notice.kernel.as_ref();
    SessionEventData {
        reason: &notice.reason,
        session_name: notice.session.name.as_deref(),
        owner_access_key: notice.session.access_key.as_deref(),
        session_id: notice.session.id.to_string(),
        exit_code: notice.exit_code,
        kernel_id: kernel.map(|kernel| kernel.id.to_string()),
        cluster_role: kernel
            .map(|kernel| kernel.cluster_role.as_str())
            .filter(|role| !role.is_empty()),
        cluster_idx: kernel
            .map(|kernel| kernel.cluster_idx)
            .filter(|idx| *idx != 0),
    }
}

/// One SSE message as aiohttp_sse writes it (`data` is one line: JSON from `json.dumps`).
fn frame(event: &str, data: &str, retry: Option<u32>) -> Bytes {
    let mut text = format!("event: {event}{SEP}data: {data}{SEP}");
    if let Some(retry) = retry {
        text.push_str(&format!("retry: {retry}{SEP}"));
    }
    text.push_str(SEP);
    Bytes::from(text)
}

fn ping() -> Bytes {
    Bytes::from(format!(": ping{SEP}{SEP}"))
}

fn json(value: &impl Serialize) -> String {
    // Our own structs of strings and numbers: serde_json cannot refuse them.
    bai_pyjson::to_string(value, Layout::Compact).unwrap_or_else(|_| "{}".to_owned())
}

/// aiohttp_sse's response head around `body`.
fn sse_response(body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn feed_of(feed: Option<Extension<EventFeed>>) -> Result<EventFeed, ApiError> {
    feed.map(|Extension(feed)| feed).ok_or_else(|| {
        ApiError::with_msg(
            ErrorKind::ServiceUnavailable,
            "this server was started without an event feed",
        )
    })
}

async fn push_session_events(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    feed: Option<Extension<EventFeed>>,
    Params(params): Params<SessionEventParams>,
) -> Result<Response, ApiError> {
    let feed = feed_of(feed)?;
    let role = caller.role();
    let access_key = params
        .owner_access_key
        .unwrap_or_else(|| caller.access_key().to_owned());
    if role == UserRole::User && access_key != caller.access_key() {
        return Err(ApiError::new(ErrorKind::GenericForbidden));
    }
    tracing::info!(
        target: "bai_api",
        "PUSH_SESSION_EVENTS (ak:{access_key}, s:{}, g:{})",
        params.name,
        params.group
    );
    let group_id = if params.group == "*" {
        None
    } else {
        let groups = bai_db_models::queries::groups::by_name(ctx.db(), &params.group, None)
            .await
            .map_err(|error| ApiError::internal("reading the project", &error))?;
        match groups.first() {
            Some(group) => Some(group.id),
            None => {
                return Err(ApiError::new(ErrorKind::ObjectNotFound(
                    "user group (or project)",
                )));
            }
        }
    };
    let filter = SessionFilter {
        role,
        domain_name: caller.user.domain_name.clone().unwrap_or_default(),
        user_uuid: caller.user.uuid,
        group_id,
        scope: params.scope,
        session_id: params.session_id,
        session_name: (params.name != "*").then_some(params.name),
        access_key,
    };
    let stream = SseStream::new(feed, Follow::Sessions(filter));
    Ok(sse_response(Body::from_stream(stream.into_stream())))
}

async fn push_background_task_events(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    feed: Option<Extension<EventFeed>>,
    Params(params): Params<BgtaskParams>,
) -> Result<Response, ApiError> {
    let feed = feed_of(feed)?;
    let task_id = params.task_id;
    tracing::info!(
        target: "bai_api",
        "PUSH_BACKGROUND_TASK_EVENTS (ak:{}, t:{task_id})",
        caller.access_key()
    );
    // Subscribed before the tracker is read: an end published meanwhile is not missed.
    let stream = SseStream::new(feed, Follow::Bgtask(task_id));
    let tracker = ctx
        .redis()
        .stream
        .bgtask_tracker(task_id)
        .await
        .map_err(|error| ApiError::internal("reading the background task", &error))?;
    let Some(tracker) = tracker else {
        return Err(ApiError::new(ErrorKind::ObjectNotFound("background task"))
            .data(serde_json::Value::String("No such background task.".into())));
    };
    if tracker.status != "started" {
        let data = BgtaskEndedData {
            task_id: task_id.to_string(),
            message: &tracker.msg,
            status: &tracker.status,
            current_progress: &tracker.current,
            total_progress: &tracker.total,
        };
        let frames = [
            frame(&format!("bgtask_{}", tracker.status), &json(&data), None),
            frame("server_close", "{}", None),
        ];
        let body = futures_util::stream::iter(frames.map(Ok::<_, Infallible>));
        return Ok(sse_response(Body::from_stream(body)));
    }
    Ok(sse_response(Body::from_stream(stream.into_stream())))
}

/// `bgtask_updated`'s data.
#[derive(Debug, Serialize)]
struct BgtaskUpdatedData<'a> {
    task_id: String,
    message: Option<&'a str>,
    current_progress: serde_json::Value,
    total_progress: serde_json::Value,
}

/// The data of a task that had ended before the client asked: the tracker's fields as stored.
#[derive(Debug, Serialize)]
struct BgtaskEndedData<'a> {
    task_id: String,
    message: &'a str,
    status: &'a str,
    current_progress: &'a str,
    total_progress: &'a str,
}

/// A progress figure as Python prints the number it was (an int unless it had a fraction; the
/// bus gives every progress as a float).
fn progress_number(value: f64) -> serde_json::Value {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        // Whole and far inside i64: the cast is exact.
        serde_json::Value::from(value as i64)
    } else {
        serde_json::Number::from_f64(value)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)
    }
}

/// What a stream follows.
#[derive(Debug)]
enum Follow {
    Sessions(SessionFilter),
    Bgtask(Uuid),
}

/// One client's stream over the worker's feed.
struct SseStream {
    feed: EventFeed,
    notices: Receiver<Notice>,
    follow: Follow,
    ping: tokio::time::Interval,
    /// Frames to send before ending (a background task's end).
    ending: Option<Vec<Bytes>>,
}

impl SseStream {
    fn new(feed: EventFeed, follow: Follow) -> SseStream {
        let notices = feed.subscribe();
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        SseStream {
            feed,
            notices,
            follow,
            ping,
            ending: None,
        }
    }

    fn into_stream(self) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send {
        futures_util::stream::unfold(self, |mut stream| async move {
            let frame = stream.next_frame().await?;
            Some((Ok(frame), stream))
        })
    }

    /// The next frame to write; `None` ends the stream.
    async fn next_frame(&mut self) -> Option<Bytes> {
        if let Some(ending) = &mut self.ending {
            return (!ending.is_empty()).then(|| ending.remove(0));
        }
        loop {
            let received = tokio::select! {
                () = self.feed.stopped() => return None,
                _ = self.ping.tick() => return Some(ping()),
                received = self.notices.recv() => received,
            };
            let notice = match received {
                Ok(notice) => notice,
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(
                        target: "bai_api",
                        "an event stream client fell {missed} events behind; disconnected"
                    );
                    return None;
                }
                Err(RecvError::Closed) => return None,
            };
            match (&self.follow, notice) {
                (Follow::Sessions(filter), Notice::Session(notice)) if filter.admits(&notice) => {
                    let data = json(&session_event_data(&notice));
                    return Some(frame(notice.event_name, &data, None));
                }
                (Follow::Bgtask(task_id), Notice::Bgtask(notice))
                    if notice.task_id() == *task_id =>
                {
                    match &*notice {
                        BgtaskNotice::Updated(progress) => {
                            let data = BgtaskUpdatedData {
                                task_id: progress.task_id.to_string(),
                                message: progress.message.as_deref(),
                                current_progress: progress_number(progress.current),
                                total_progress: progress_number(progress.total),
                            };
                            return Some(frame("bgtask_updated", &json(&data), Some(BGTASK_RETRY)));
                        }
                        BgtaskNotice::Done(_) => {
                            self.ending = Some(vec![frame("server_close", "{}", None)]);
                            return Some(frame("bgtask_done", "{}", None));
                        }
                        BgtaskNotice::Cancelled(_) | BgtaskNotice::Failed(_) => {
                            self.ending = Some(Vec::new());
                            return Some(frame("server_close", "{}", None));
                        }
                    }
                }
                _ => {}
            }
        }
    }
}
