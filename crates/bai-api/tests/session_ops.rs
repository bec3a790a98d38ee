//! The per-session routes past creation through the real router, with the whole manager around
//! it in this process (the event consumer with the agent registry's and the lifecycle's handlers,
//! the dispatcher) and a simulated agent serving RPC: `POST /session/{name}/rename`,
//! `GET /session/_/match`, `GET /session/{name}/status-history`, `GET /session/{name}/logs` and
//! `PATCH /session/{name}` (restart), their refusals, and what they answer once the agent is gone.
//!
//! On the halfstack's PostgreSQL and etcd (fresh database and namespace) and a private Redis.

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use bai_agent_rpc::RpcClient;
use bai_agent_rpc::testing::free_ports;
use bai_agent_sim::{AgentToml, RpcOptions, SimOptions};
use bai_agents::{AgentRegistry, AgentRpcCache};
use bai_api::testing::{DOMAIN_ADMIN, ExampleUser, SUPERADMIN, USER, signed_request};
use bai_db_models::entities::enums::{KernelStatus, SessionStatus};
use bai_db_models::entities::{agents, kernels, sessions};
use bai_events::{ConsumerOptions, EventProducer, Handlers, MANAGER_GROUP, run_consumer};
use bai_redis::{SchedulerStatus, StreamDb};
use bai_sessions::{Lifecycle, Scheduler, Starter};
use common::{Answer, Api};
use http::{Method, Request, StatusCode};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use uuid::Uuid;

const PYTHON: &str = "cr.backend.ai/stable/python:3.9-ubuntu20.04";

/// The manager's background work on `api`'s cluster, and the simulated agent; stopped on drop.
struct Manager {
    shutdown: CancellationToken,
    /// The simulated agent's own token: cancelling it makes the agent vanish.
    agent: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.agent.cancel();
        self.shutdown.cancel();
    }
}

async fn start(label: &str) -> (Api, Manager) {
    let mut api = Api::start(label).await;
    let db = api.cluster.database.connection.clone();
    let etcd = api.ctx.etcd().clone();
    for (key, value) in [
        (
            "config/docker/registry/cr.backend.ai",
            "https://cr.backend.ai",
        ),
        ("config/docker/registry/cr.backend.ai/type", "docker"),
    ] {
        etcd.put(key, value, bai_etcd_store::Scope::Global)
            .await
            .expect("etcd put");
    }
    db.execute_unprepared(&format!(
        "INSERT INTO images (name, image, tag, registry, architecture, config_digest, size_bytes, \
         type, labels, resources) VALUES ('{PYTHON}', 'stable/python', '3.9-ubuntu20.04', \
         'cr.backend.ai', 'x86_64', 'sha256:{zeros}', 0, 'COMPUTE', '{{}}', \
         '{{\"cpu\": {{\"min\": \"1\", \"max\": null}}, \"mem\": {{\"min\": \"256m\", \"max\": null}}}}'); \
         UPDATE keypair_resource_policies SET max_concurrent_sessions = 100",
        zeros = "0".repeat(64),
    ))
    .await
    .expect("image row and a policy for a few sessions at once");

    let stores = api.ctx.stores().clone();
    let rpc = Arc::new(AgentRpcCache::new(db.clone(), RpcClient::new(None)));
    api.ctx = api.cluster.context().await.with_agent_rpc(Arc::clone(&rpc));
    api.router = bai_api::router(api.ctx.clone());

    let producer = EventProducer::new(stores.redis.stream.clone());
    let registry =
        Arc::new(AgentRegistry::new(&stores, Arc::default()).with_rpc_cache(Arc::clone(&rpc)));
    let lifecycle = Arc::new(Lifecycle::new(
        db.clone(),
        producer.clone(),
        stores.redis.stat.clone(),
    ));
    let (triggers, bursts) = bai_sessions::triggers();
    let mut handlers = Handlers::default();
    bai_agents::handlers(&registry, &mut handlers);
    bai_sessions::handlers(&lifecycle, &mut handlers);
    bai_sessions::trigger_handlers(&triggers, &mut handlers);
    let shutdown = CancellationToken::new();
    let consumer = StreamDb::connect(&stores.shared_config.redis)
        .await
        .expect("the consumer's Redis");
    tokio::spawn(run_consumer(
        consumer,
        handlers,
        ConsumerOptions::new(MANAGER_GROUP, "ops:0".to_owned()),
        shutdown.clone(),
    ));
    let status = SchedulerStatus::new(stores.redis.live.clone(), "i-ops");
    let scheduler = Scheduler::new(
        db.clone(),
        etcd.clone(),
        stores.redis.stat.clone(),
        producer.clone(),
        ["cpu", "mem"].map(str::to_owned).to_vec(),
        status.clone(),
    );
    let starter = Starter::new(db, etcd, producer, stores.redis.stat.clone(), rpc, status);
    tokio::spawn(bai_sessions::run_dispatcher(
        scheduler,
        starter,
        bursts,
        true,
        shutdown.clone(),
    ));

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "[etcd]\nnamespace = {:?}\naddr = {{ host = \"127.0.0.1\", port = 8120 }}\n\n\
             [agent]\nid = \"i-ops\"\nrpc-listen-addr = {{ host = \"127.0.0.1\", port = {} }}\n\n\
             [debug]\nheartbeat-interval = 1.0\n",
            api.cluster.namespace.name,
            free_ports(1),
        ),
    )
    .expect("agent.toml");
    let config = AgentToml::load(&path).expect("agent.toml loads");
    let options = SimOptions {
        agents: Some(1),
        cpu: 16,
        mem: 32 << 30,
        stamp_version: false,
    };
    let rpc_options = RpcOptions {
        delay: Duration::from_millis(20),
        ..RpcOptions::default()
    };
    let sims = bai_agent_sim::agents_with_rpc(&config, &options, rpc_options).expect("agents");
    let agent = CancellationToken::new();
    let token = agent.clone();
    tokio::spawn(async move { bai_agent_sim::run(&config, sims, token).await });
    let manager = Manager {
        shutdown,
        agent,
        _dir: dir,
    };
    wait_until("the agent registered", || async {
        !agents::Entity::find()
            .all(&api.cluster.database.connection)
            .await
            .expect("agents")
            .is_empty()
    })
    .await;
    (api, manager)
}

async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates session `name` of `who` and waits until it is RUNNING; returns its id.
async fn running_session(api: &Api, who: &ExampleUser, name: &str) -> Uuid {
    let body = json!({"name": name, "image": PYTHON, "type": "interactive", "group": "default",
        "domain": "default", "clusterSize": 1, "clusterMode": "single-node",
        "config": {"resources": {"cpu": "1", "mem": "1g"}},
        "enqueueOnly": false, "maxWaitSeconds": 60});
    let answer = api
        .send(signed_request(Method::POST, "/session", Some(&body), who))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    assert_eq!(answer.json["status"], "RUNNING", "{}", answer.text);
    answer.json["sessionId"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
        .unwrap_or_else(|| panic!("no sessionId in {}", answer.text))
}

async fn session_row(api: &Api, id: Uuid) -> sessions::Model {
    sessions::Entity::find_by_id(id)
        .one(&api.cluster.database.connection)
        .await
        .expect("sessions")
        .expect("the session")
}

async fn kernel_rows(api: &Api, session_id: Uuid) -> Vec<kernels::Model> {
    kernels::Entity::find()
        .filter(kernels::Column::SessionId.eq(session_id))
        .all(&api.cluster.database.connection)
        .await
        .expect("kernels")
}

async fn call(api: &Api, method: Method, path: &str, body: Option<&Value>) -> Answer {
    api.send(signed_request(method, path, body, &USER)).await
}

/// Like `Api::send`, for the answers that are a 500 by the reference's definition (an agent's
/// failure is `KernelExecutionFailed`, HTTP 500).
async fn send_allowing_500(api: &Api, request: Request<Body>) -> Answer {
    let response = api
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("reading the body");
    let text = String::from_utf8(bytes.to_vec()).expect("UTF-8 body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        text,
        json,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_match_and_status_history_follow_the_reference() {
    let (api, _manager) = start("session-ops-rename").await;
    let first = running_session(&api, &USER, "ops-first").await;

    // Renamed: the session and its kernels carry the new name, and the old one is gone.
    let renamed = call(
        &api,
        Method::POST,
        "/session/ops-first/rename",
        Some(&json!({"name": "ops-renamed"})),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::NO_CONTENT, "{}", renamed.text);
    assert_eq!(
        session_row(&api, first).await.name.as_deref(),
        Some("ops-renamed")
    );
    for kernel in kernel_rows(&api, first).await {
        assert_eq!(kernel.session_name.as_deref(), Some("ops-renamed"));
    }
    call(&api, Method::GET, "/session/ops-first", None)
        .await
        .assert_problem(404, "object-not-found", None);
    let info = call(&api, Method::GET, "/session/ops-renamed", None).await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.text);

    // The name pattern of creation; unknown keys are refused.
    let bad = call(
        &api,
        Method::POST,
        "/session/ops-renamed/rename",
        Some(&json!({"name": "-x"})),
    )
    .await;
    bad.assert_problem(400, "invalid-api-params", None);
    let extra = call(
        &api,
        Method::POST,
        "/session/ops-renamed/rename",
        Some(&json!({"name": "ops-other", "owner_access_key": SUPERADMIN.access_key})),
    )
    .await;
    extra.assert_problem(400, "invalid-api-params", None);
    // Another user's session is not found: rename reads no owner_access_key.
    let stranger = api
        .send(signed_request(
            Method::POST,
            "/session/ops-renamed/rename",
            Some(&json!({"name": "ops-stolen"})),
            &DOMAIN_ADMIN,
        ))
        .await;
    stranger.assert_problem(404, "object-not-found", None);
    call(
        &api,
        Method::POST,
        "/session/ops-nosuch/rename",
        Some(&json!({"name": "ops-other"})),
    )
    .await
    .assert_problem(404, "object-not-found", None);

    // A name another active session of the owner has is refused (the reference's unique index
    // refuses it with a 500); the session's own name is not "another".
    let second = running_session(&api, &USER, "ops-second").await;
    let duplicate = call(
        &api,
        Method::POST,
        &format!("/session/{second}/rename"),
        Some(&json!({"name": "ops-renamed"})),
    )
    .await;
    duplicate.assert_problem(
        400,
        "invalid-api-params",
        Some("Another session of yours is already named ops-renamed"),
    );
    assert_eq!(
        session_row(&api, second).await.name.as_deref(),
        Some("ops-second")
    );
    let same = call(
        &api,
        Method::POST,
        "/session/ops-second/rename",
        Some(&json!({"name": "ops-second"})),
    )
    .await;
    assert_eq!(same.status, StatusCode::NO_CONTENT, "{}", same.text);

    // _/match: the caller's sessions of that exact name or id.
    let matched = call(&api, Method::GET, "/session/_/match?id=ops-renamed", None).await;
    assert_eq!(matched.status, StatusCode::OK, "{}", matched.text);
    assert_eq!(
        matched.json,
        json!({"matches": [
            {"id": first.to_string(), "name": "ops-renamed", "status": "RUNNING"},
        ]})
    );
    let by_id = call(
        &api,
        Method::GET,
        &format!("/session/_/match?id={first}"),
        None,
    )
    .await;
    assert_eq!(by_id.json["matches"][0]["id"], first.to_string());
    assert_eq!(by_id.json["matches"].as_array().map(Vec::len), Some(1));
    let none = call(&api, Method::GET, "/session/_/match?id=ops-nosuch", None).await;
    assert_eq!(none.json, json!({"matches": []}));
    let others = api
        .send(signed_request(
            Method::GET,
            "/session/_/match?id=ops-renamed",
            None,
            &DOMAIN_ADMIN,
        ))
        .await;
    assert_eq!(others.json, json!({"matches": []}));
    call(&api, Method::GET, "/session/_/match", None)
        .await
        .assert_problem(400, "invalid-api-params", None);

    // status-history: every status the session went through, by name.
    let history = call(
        &api,
        Method::GET,
        &format!("/session/{first}/status-history"),
        None,
    )
    .await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.text);
    let result = history.json["result"].as_object().expect("a history");
    for status in ["PENDING", "SCHEDULED", "PREPARING", "RUNNING"] {
        assert!(result.contains_key(status), "{}", history.text);
    }
    // An admin reads it for the owner; a user may not act for another.
    let for_owner = api
        .send(signed_request(
            Method::GET,
            &format!(
                "/session/{first}/status-history?owner_access_key={}",
                USER.access_key
            ),
            None,
            &SUPERADMIN,
        ))
        .await;
    assert_eq!(for_owner.json, history.json);
    call(
        &api,
        Method::GET,
        &format!(
            "/session/{first}/status-history?owner_access_key={}",
            SUPERADMIN.access_key
        ),
        None,
    )
    .await
    .assert_problem(403, "generic-forbidden", None);
    call(
        &api,
        Method::GET,
        "/session/ops-nosuch/status-history",
        None,
    )
    .await
    .assert_problem(404, "object-not-found", None);

    // A session that is over may not be renamed (it is found: rename looks at stale ones too).
    let destroyed = call(&api, Method::DELETE, &format!("/session/{second}"), None).await;
    assert!(destroyed.status.is_success(), "{}", destroyed.text);
    wait_until("the second session TERMINATED", || async {
        session_row(&api, second).await.status == SessionStatus::Terminated
    })
    .await;
    let over = call(
        &api,
        Method::POST,
        &format!("/session/{second}/rename"),
        Some(&json!({"name": "ops-again"})),
    )
    .await;
    over.assert_problem(
        400,
        "invalid-api-params",
        Some("Can't change name of not running session"),
    );
    let stale = call(
        &api,
        Method::GET,
        &format!("/session/_/match?id={second}"),
        None,
    )
    .await;
    assert_eq!(stale.json["matches"][0]["status"], "TERMINATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_restart_go_through_the_agent() {
    let (api, manager) = start("session-ops-agent").await;
    let id = running_session(&api, &USER, "ops-agent").await;
    let kernel = kernel_rows(&api, id).await.remove(0);

    // The main kernel's log from its agent (the dummy kernel's), by name or id.
    let logs = call(&api, Method::GET, "/session/ops-agent/logs", None).await;
    assert_eq!(logs.status, StatusCode::OK, "{}", logs.text);
    assert_eq!(logs.json, json!({"result": {"logs": "my logs"}}));
    let by_kernel = call(
        &api,
        Method::GET,
        &format!("/session/{id}/logs?kernel_id={}", kernel.id),
        None,
    )
    .await;
    assert_eq!(by_kernel.json, logs.json);
    let stranger = Uuid::new_v4();
    call(
        &api,
        Method::GET,
        &format!("/session/{id}/logs?kernelId={stranger}"),
        None,
    )
    .await
    .assert_problem(
        404,
        "object-not-found",
        Some(&format!(
            "Session has no such kernel (sid:{id}, kid:{stranger}))"
        )),
    );
    call(&api, Method::GET, "/session/ops-nosuch/logs", None)
        .await
        .assert_problem(404, "object-not-found", None);

    // Restart: the dummy agent cannot restart a kernel (it fails `restart_kernel`), which, as in
    // the reference, does not fail the restart: 204, and the session and its kernel are RUNNING
    // again after RESTARTING.
    let restarted = call(&api, Method::PATCH, "/session/ops-agent", None).await;
    assert_eq!(
        restarted.status,
        StatusCode::NO_CONTENT,
        "{}",
        restarted.text
    );
    assert!(restarted.text.is_empty());
    let session = session_row(&api, id).await;
    assert_eq!(session.status, SessionStatus::Running);
    let history = session.status_history.expect("a history");
    assert!(history.get("RESTARTING").is_some(), "{history}");
    let restarting_at = history["RESTARTING"].as_str().expect("a time").to_owned();
    let running_at = history["RUNNING"].as_str().expect("a time").to_owned();
    assert!(running_at > restarting_at, "{history}");
    let after = kernel_rows(&api, id).await.remove(0);
    assert_eq!(after.status, KernelStatus::Running);
    let kernel_history = after.status_history.expect("a kernel history");
    assert!(
        kernel_history.get("RESTARTING").is_some(),
        "{kernel_history}"
    );
    assert_eq!(after.repl_in_port, kernel.repl_in_port);
    // The restarted session still works.
    let again = call(&api, Method::GET, "/session/ops-agent/logs", None).await;
    assert_eq!(again.json, logs.json);
    call(&api, Method::PATCH, "/session/ops-nosuch", None)
        .await
        .assert_problem(404, "object-not-found", None);
    call(
        &api,
        Method::PATCH,
        &format!(
            "/session/ops-agent?owner_access_key={}",
            SUPERADMIN.access_key
        ),
        None,
    )
    .await
    .assert_problem(403, "generic-forbidden", None);

    // The agent vanishes: the logs are the reference's agent error, and a restart still ends
    // with the session RUNNING.
    manager.agent.cancel();
    wait_until("the agent TERMINATED", || async {
        agents::Entity::find()
            .all(&api.cluster.database.connection)
            .await
            .expect("agents")
            .iter()
            .all(|agent| agent.status != bai_db_models::entities::enums::AgentStatus::Alive)
    })
    .await;
    let gone = send_allowing_500(
        &api,
        signed_request(Method::GET, "/session/ops-agent/logs", None, &USER),
    )
    .await;
    assert_eq!(
        gone.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        gone.text
    );
    assert_eq!(
        gone.json,
        json!({
            "type": "https://api.backend.ai/probs/kernel-execution-failed",
            "title": "Executing user code in the kernel has failed.",
            "agent-details": {"type": "https://api.backend.ai/probs/agent-timeout", "title": null},
        }),
        "{}",
        gone.text
    );
    let restarted = call(&api, Method::PATCH, &format!("/session/{id}"), None).await;
    assert_eq!(
        restarted.status,
        StatusCode::NO_CONTENT,
        "{}",
        restarted.text
    );
    assert_eq!(session_row(&api, id).await.status, SessionStatus::Running);
}
