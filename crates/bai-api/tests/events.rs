//! Server-sent events through the real router with the worker's event feed around it, in this
//! process: `GET /events/session` (what users, domain admins and superadmins see of a session's
//! lifecycle on a simulated agent, the name, scope and project filters, the refusals), a client
//! that stops reading while the feed moves on (its stream ends; a reader that keeps up gets
//! everything), and `GET /events/background-task` (a running task's progress to its end, a task
//! that had ended, an unknown one). The bus events of background tasks are produced by the test:
//! no manager feature runs background tasks yet.
//!
//! On the halfstack's PostgreSQL and etcd (fresh database and namespace) and a private Redis.

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;
mod support;

use std::time::Duration;

use axum::body::BodyDataStream;
use axum::{Extension, Router};
use bai_api::testing::{
    DOMAIN_ADMIN, ExampleUser, SESSION_LIFECYCLE, SUPERADMIN, USER, session_lifecycle,
    signed_request,
};
use bai_events::{BgtaskEnd, BgtaskProgress, Event, EventProducer};
use bai_redis::StreamDb;
use bai_sessions::feed::event_feed_with_capacity;
use common::Api;
use futures_util::StreamExt;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Stack, create_body, wait_until};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(60);

const STACK: Stack = Stack {
    name: "events",
    agents: 1,
    cpu: 8,
    mem: 16 << 30,
    max_concurrent_sessions: 10,
    patience: PATIENCE,
};

/// `router` with a feed of `capacity` notices fed from the bus of `api`'s cluster; the feed stops
/// when the token is cancelled.
async fn with_feed(api: &Api, router: Router, capacity: usize) -> (Router, CancellationToken) {
    let (feed, feeder) =
        event_feed_with_capacity(api.cluster.database.connection.clone(), capacity);
    let stream = StreamDb::connect(&api.ctx.shared_config().redis)
        .await
        .expect("the feed's Redis");
    let shutdown = CancellationToken::new();
    tokio::spawn(feeder.run(stream, shutdown.clone()));
    // The subscriber starts at the end of the stream once it has read where that is.
    tokio::time::sleep(Duration::from_millis(500)).await;
    (router.layer(Extension(feed)), shutdown)
}

/// One SSE message.
#[derive(Clone, Debug, PartialEq)]
struct Message {
    event: String,
    data: String,
    retry: Option<u32>,
}

impl Message {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|error| panic!("{error}: {}", self.data))
    }
}

/// An open event stream, read frame by frame.
struct Sse {
    body: BodyDataStream,
    pending: String,
    /// Every byte read so far, to check the framing.
    raw: String,
}

impl Sse {
    async fn open(router: &Router, path: &str, user: &ExampleUser) -> Sse {
        let response = router
            .clone()
            .oneshot(signed_request(Method::GET, path, None, user))
            .await
            .expect("the router is infallible");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert_eq!(headers["content-type"], "text/event-stream", "{path}");
        assert_eq!(headers["cache-control"], "no-cache");
        assert_eq!(headers["connection"], "keep-alive");
        assert_eq!(headers["x-accel-buffering"], "no");
        Sse {
            body: response.into_body().into_data_stream(),
            pending: String::new(),
            raw: String::new(),
        }
    }

    /// `GET /events/background-task?taskId=` of the task, as the example user.
    async fn task(router: &Router, task_id: Uuid) -> Sse {
        Sse::open(
            router,
            &format!("/events/background-task?taskId={task_id}"),
            &USER,
        )
        .await
    }

    /// The next message, `None` when the stream ended; fails after `within`.
    async fn next(&mut self, within: Duration) -> Option<Message> {
        tokio::time::timeout(within, self.read())
            .await
            .unwrap_or_else(|_| panic!("no event within {within:?}; read so far: {}", self.raw))
    }

    async fn read(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.pending.find("\r\n\r\n") {
                let block: String = self.pending.drain(..end + 4).collect();
                if block.starts_with(':') {
                    continue;
                }
                let mut message = Message {
                    event: "message".to_owned(),
                    data: String::new(),
                    retry: None,
                };
                for line in block.trim_end().split("\r\n") {
                    let (field, value) = line.split_once(": ").expect("field: value");
                    match field {
                        "event" => message.event = value.to_owned(),
                        "data" => message.data = value.to_owned(),
                        "retry" => message.retry = Some(value.parse().expect("a number")),
                        other => panic!("unexpected field {other:?} in {block:?}"),
                    }
                }
                return Some(message);
            }
            let chunk = self.body.next().await?.expect("the body");
            let text = std::str::from_utf8(&chunk).expect("UTF-8");
            self.pending.push_str(text);
            self.raw.push_str(text);
        }
    }

    /// The next message is the server's `server_close`, and the stream ends after it.
    async fn closes(&mut self) {
        assert_eq!(
            self.next(PATIENCE).await.map(|message| message.event),
            Some("server_close".to_owned())
        );
        assert_eq!(self.next(Duration::from_secs(5)).await, None);
    }

    /// Messages until `done` says the last one is the last wanted.
    async fn until(&mut self, mut done: impl FnMut(&[Message]) -> bool) -> Vec<Message> {
        let mut messages = Vec::new();
        while !done(&messages) {
            let message = self
                .next(PATIENCE)
                .await
                .unwrap_or_else(|| panic!("the stream ended after {messages:?}"));
            messages.push(message);
        }
        messages
    }
}

async fn call(
    router: &Router,
    method: Method,
    path: &str,
    body: Option<&Value>,
    user: &ExampleUser,
) -> (StatusCode, Value) {
    let response = router
        .clone()
        .oneshot(signed_request(method, path, body, user))
        .await
        .expect("the router is infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("the body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn get(router: &Router, path: &str, user: &ExampleUser) -> (StatusCode, Value) {
    call(router, Method::GET, path, None, user).await
}

/// Creates session `name` of `user` (waiting for its start), then destroys it and waits until
/// it is over; returns its id.
async fn run_session(router: &Router, api: &Api, name: &str, user: &ExampleUser) -> Uuid {
    let (status, created) = call(
        router,
        Method::POST,
        "/session",
        Some(&create_body(name)),
        user,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "RUNNING", "{created}");
    let id: Uuid = created["sessionId"]
        .as_str()
        .expect("sessionId")
        .parse()
        .expect("a uuid");
    let (status, destroyed) = call(
        router,
        Method::DELETE,
        &format!("/session/{name}"),
        None,
        user,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{destroyed}");
    let db = api.cluster.database.connection.clone();
    wait_until(&format!("{name} terminated"), PATIENCE, || {
        let db = db.clone();
        async move {
            use sea_orm::EntityTrait;
            bai_db_models::entities::sessions::Entity::find_by_id(id)
                .one(&db)
                .await
                .expect("sessions")
                .is_some_and(|row| {
                    row.status == bai_db_models::entities::enums::SessionStatus::Terminated
                })
        }
    })
    .await;
    id
}

fn names(messages: &[Message]) -> Vec<&str> {
    messages
        .iter()
        .map(|message| message.event.as_str())
        .collect()
}

fn terminated(count: usize) -> impl FnMut(&[Message]) -> bool {
    move |messages| {
        messages
            .iter()
            .filter(|message| message.event == "session_terminated")
            .count()
            == count
    }
}

/// The names of `messages` as [`SESSION_LIFECYCLE`] lists them.
fn lifecycle(messages: &[Message]) -> Vec<&str> {
    session_lifecycle(names(messages))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_see_their_own_sessions_and_the_filters_apply() {
    let (api, _manager) = support::start("events_filters", &STACK).await;
    let (router, feed) =
        with_feed(&api, api.router.clone(), bai_sessions::feed::FEED_CAPACITY).await;

    // Refusals answer before any stream opens.
    let (status, problem) = get(
        &router,
        "/events/session?ownerAccessKey=AKIAIOSFODNN7EXAMPLE",
        &USER,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(
        problem["type"],
        "https://api.backend.ai/probs/generic-forbidden"
    );
    let (status, problem) = get(
        &router,
        "/events/session?group=no-such-project",
        &SUPERADMIN,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert_eq!(problem["title"], "No such user group (or project).");
    let (status, problem) = get(&router, "/events/session?scope=agent", &SUPERADMIN).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(problem["data"]["scope"].is_string(), "{problem}");
    let (status, problem) = get(&router, "/events/session?owner_access_key=x", &SUPERADMIN).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");

    let mut superadmin_all = Sse::open(&router, "/events/session", &SUPERADMIN).await;
    let mut domain_admin_all = Sse::open(&router, "/events/session", &DOMAIN_ADMIN).await;
    let mut user_all = Sse::open(&router, "/events/session", &USER).await;
    let mut sessions_only = Sse::open(
        &router,
        "/events/session?scope=session&group=default",
        &SUPERADMIN,
    )
    .await;
    let mut kernels_of_one = Sse::open(
        &router,
        "/events/session?sessionName=evadm1&scope=kernel",
        &SUPERADMIN,
    )
    .await;

    // The superadmin's session first, over before the user's starts.
    let admin_session = run_session(&router, &api, "evadm1", &SUPERADMIN).await;
    let user_session = run_session(&router, &api, "evusr1", &USER).await;

    let superadmin_seen = superadmin_all.until(terminated(2)).await;
    let (first, second): (Vec<Message>, Vec<Message>) = superadmin_seen
        .iter()
        .cloned()
        .partition(|message| message.json()["sessionId"] == admin_session.to_string());
    assert_eq!(lifecycle(&first), SESSION_LIFECYCLE, "{first:?}");
    assert_eq!(names(&first)[3], "kernel_pulling", "{first:?}");
    assert_eq!(lifecycle(&second), SESSION_LIFECYCLE, "{second:?}");
    assert!(
        second
            .iter()
            .all(|message| message.json()["sessionId"] == user_session.to_string())
    );
    for message in &first {
        let data = message.json();
        assert_eq!(data["sessionName"], "evadm1", "{data}");
        assert_eq!(data["ownerAccessKey"], SUPERADMIN.access_key, "{data}");
        if message.event.starts_with("kernel_") {
            assert!(
                data["kernelId"]
                    .as_str()
                    .is_some_and(|id| id.parse::<Uuid>().is_ok()),
                "{data}"
            );
            assert_eq!(data["clusterRole"], "main", "{data}");
            assert_eq!(data["clusterIdx"], 1, "{data}");
        } else {
            assert!(data.get("kernelId").is_none(), "{data}");
            assert!(data.get("clusterRole").is_none(), "{data}");
            assert!(data.get("clusterIdx").is_none(), "{data}");
        }
        if matches!(
            message.event.as_str(),
            "kernel_terminating" | "kernel_terminated"
        ) {
            assert!(data["exitCode"].is_i64(), "{data}");
        } else {
            assert!(data["exitCode"].is_null(), "{data}");
        }
    }
    // The wire form of one message, as `json.dumps` writes it.
    let enqueued = &first[0];
    assert_eq!(
        enqueued.data,
        format!(
            "{{\"reason\": \"\", \"sessionName\": \"evadm1\", \"ownerAccessKey\": \"{}\", \
             \"sessionId\": \"{admin_session}\", \"exitCode\": null}}",
            SUPERADMIN.access_key
        )
    );
    assert!(
        superadmin_all.raw.starts_with(&format!(
            "event: session_enqueued\r\ndata: {}\r\n\r\n",
            enqueued.data
        )),
        "{}",
        superadmin_all.raw
    );

    // Domain admins see their domain's sessions: both.
    let seen = domain_admin_all.until(terminated(2)).await;
    assert_eq!(names(&seen), names(&superadmin_seen), "{seen:?}");

    // A user sees only their own session.
    let seen = user_all.until(terminated(1)).await;
    assert_eq!(lifecycle(&seen), SESSION_LIFECYCLE, "{seen:?}");
    for message in &seen {
        let data = message.json();
        assert_eq!(data["sessionId"], user_session.to_string(), "{data}");
        assert_eq!(data["ownerAccessKey"], USER.access_key, "{data}");
    }

    let seen = sessions_only.until(terminated(2)).await;
    let expected: Vec<&str> = SESSION_LIFECYCLE
        .iter()
        .copied()
        .filter(|name| name.starts_with("session_"))
        .collect();
    assert_eq!(
        names(&seen),
        [expected.clone(), expected].concat(),
        "{seen:?}"
    );

    let seen = kernels_of_one
        .until(|messages| {
            messages
                .last()
                .is_some_and(|message| message.event == "kernel_terminated")
        })
        .await;
    let expected: Vec<&str> = SESSION_LIFECYCLE
        .iter()
        .copied()
        .filter(|name| name.starts_with("kernel_"))
        .collect();
    assert_eq!(lifecycle(&seen), expected, "{seen:?}");
    assert!(
        seen.iter()
            .all(|message| message.json()["sessionId"] == admin_session.to_string())
    );

    // The streams end when the feed stops.
    feed.cancel();
    assert_eq!(user_all.next(Duration::from_secs(5)).await, None);
}

/// Writes the tracker of a task as the reference's background-task manager does.
async fn track(api: &Api, task_id: Uuid, fields: &[(&str, &str)]) {
    api.ctx
        .redis()
        .stream
        .raw()
        .hset(&format!("bgtask.{task_id}"), fields)
        .await
        .expect("the tracker");
}

/// The tracker of a task that has just started.
async fn track_started(api: &Api, task_id: Uuid) {
    track(
        api,
        task_id,
        &[
            ("status", "started"),
            ("current", "0"),
            ("total", "0"),
            ("msg", ""),
        ],
    )
    .await;
}

/// Produces the events of a background task on `api`'s bus, as the manager.
struct Bus(EventProducer);

impl Bus {
    fn of(api: &Api) -> Bus {
        Bus(EventProducer::new(api.ctx.redis().stream.clone()))
    }

    async fn send(&self, event: Event) {
        self.0.produce(&event, "manager").await.expect("produce");
    }

    async fn progress(&self, task_id: Uuid, current: f64, total: f64, message: Option<&str>) {
        self.send(Event::BgtaskUpdated(BgtaskProgress {
            task_id,
            current,
            total,
            message: message.map(str::to_owned),
        }))
        .await;
    }

    async fn end(&self, end: fn(BgtaskEnd) -> Event, task_id: Uuid, message: Option<&str>) {
        self.send(end(BgtaskEnd {
            task_id,
            message: message.map(str::to_owned),
        }))
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_falls_behind_is_disconnected_while_others_keep_receiving() {
    const CAPACITY: usize = 1024;
    const UPDATES: usize = 2 * CAPACITY;
    let api = Api::start("events_lagging").await;
    let (router, _feed) = with_feed(&api, api.router.clone(), CAPACITY).await;
    let task_id = Uuid::new_v4();
    track_started(&api, task_id).await;

    // Never read until the updates are over: it falls behind by more than the ring.
    let mut stalled = Sse::open(&router, "/events/session", &SUPERADMIN).await;
    let mut keeping_up = Sse::task(&router, task_id).await;
    let reader = tokio::spawn(async move {
        let messages = keeping_up
            .until(|messages| {
                messages
                    .last()
                    .is_some_and(|message| message.event == "server_close")
            })
            .await;
        let end = keeping_up.next(Duration::from_secs(5)).await;
        (messages, end)
    });
    let bus = Bus::of(&api);
    for current in 1..=UPDATES {
        bus.progress(task_id, current as f64, UPDATES as f64, None)
            .await;
    }
    bus.end(Event::BgtaskDone, task_id, None).await;

    let (messages, end) = reader.await.expect("the reader");
    assert_eq!(end, None, "the stream ends after server_close");
    assert_eq!(messages.len(), UPDATES + 2);
    for (index, message) in messages[..UPDATES].iter().enumerate() {
        assert_eq!(message.event, "bgtask_updated");
        assert_eq!(message.json()["current_progress"], index + 1, "{message:?}");
    }
    assert_eq!(names(&messages[UPDATES..]), ["bgtask_done", "server_close"]);

    // The stalled client's first read finds it fell behind: its stream ends, nothing sent.
    assert_eq!(stalled.next(Duration::from_secs(5)).await, None);
    assert_eq!(stalled.raw, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_task_events_round_trip() {
    let api = Api::start("events_bgtask").await;
    let (router, _feed) = with_feed(&api, api.router.clone(), 64).await;
    let bus = Bus::of(&api);

    // A running task, followed to its end.
    let task_id = Uuid::new_v4();
    track_started(&api, task_id).await;
    let mut stream = Sse::open(
        &router,
        &format!("/events/background-task?task_id={task_id}"),
        &USER,
    )
    .await;
    for (current, message) in [(1.0, Some("step one")), (2.5, None)] {
        bus.progress(task_id, current, 3.0, message).await;
    }
    // Another task's end is not this stream's.
    bus.end(Event::BgtaskDone, Uuid::new_v4(), None).await;
    bus.end(Event::BgtaskDone, task_id, Some("fine")).await;
    let mut messages = Vec::new();
    while let Some(message) = stream.next(PATIENCE).await {
        messages.push(message);
    }
    assert_eq!(
        stream.raw,
        format!(
            "event: bgtask_updated\r\ndata: {{\"task_id\": \"{task_id}\", \"message\": \"step one\", \
             \"current_progress\": 1, \"total_progress\": 3}}\r\nretry: 5\r\n\r\n\
             event: bgtask_updated\r\ndata: {{\"task_id\": \"{task_id}\", \"message\": null, \
             \"current_progress\": 2.5, \"total_progress\": 3}}\r\nretry: 5\r\n\r\n\
             event: bgtask_done\r\ndata: {{}}\r\n\r\n\
             event: server_close\r\ndata: {{}}\r\n\r\n"
        )
    );

    // A failing and a cancelled task: `server_close` only.
    for end in [
        Event::BgtaskFailed as fn(BgtaskEnd) -> Event,
        Event::BgtaskCancelled,
    ] {
        let task_id = Uuid::new_v4();
        track_started(&api, task_id).await;
        let mut stream = Sse::task(&router, task_id).await;
        bus.end(end, task_id, Some("ValueError()")).await;
        stream.closes().await;
    }

    // A task that had ended: its last state at once, from the tracker.
    let ended = Uuid::new_v4();
    track(
        &api,
        ended,
        &[
            ("status", "failed"),
            ("current", "2"),
            ("total", "3"),
            ("msg", "boom"),
        ],
    )
    .await;
    let mut stream = Sse::task(&router, ended).await;
    let message = stream.next(PATIENCE).await.expect("the last state");
    assert_eq!(message.event, "bgtask_failed");
    assert_eq!(
        message.json(),
        json!({"task_id": ended.to_string(), "message": "boom", "status": "failed",
            "current_progress": "2", "total_progress": "3"})
    );
    stream.closes().await;

    // An unknown task, a malformed id.
    let (status, problem) = get(
        &router,
        &format!("/events/background-task?taskId={}", Uuid::new_v4()),
        &USER,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert_eq!(problem["title"], "No such background task.");
    assert_eq!(problem["data"], "No such background task.");
    let (status, problem) = get(&router, "/events/background-task?taskId=nope", &USER).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let (status, problem) = get(&router, "/events/background-task", &USER).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["data"], json!({"task_id": "is required"}));
}
