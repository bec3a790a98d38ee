//! 100 sessions created at once and destroyed at once through the real router, with the whole
//! manager around it in this process: a consumer of the event bus with the agent registry's, the
//! lifecycle's and the dispatcher's handlers, the dispatcher (scheduling rounds and starts), and
//! four simulated agents serving RPC. Every answer is 2xx, every session ends TERMINATED, and the
//! agents' occupied slots and the keypair's concurrency are back to zero.
//!
//! On the halfstack's PostgreSQL and etcd (fresh database and namespace) and a private Redis.

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bai_agent_rpc::RpcClient;
use bai_agent_rpc::testing::free_ports;
use bai_agent_sim::{AgentToml, RpcOptions, SimOptions};
use bai_agents::{AgentRegistry, AgentRpcCache};
use bai_api::testing::{USER, signed_request};
use bai_db_models::entities::enums::SessionStatus;
use bai_db_models::entities::{agents, sessions};
use bai_events::{ConsumerOptions, EventProducer, Handlers, MANAGER_GROUP, run_consumer};
use bai_redis::{SchedulerStatus, StreamDb};
use bai_sessions::{Lifecycle, Scheduler, Starter};
use common::Api;
use http::{Method, StatusCode};
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const SESSIONS: usize = 100;
const AGENTS: usize = 4;
const PYTHON: &str = "cr.backend.ai/stable/python:3.9-ubuntu20.04";

/// The manager's background work on `api`'s cluster, and the simulated agents; stopped on drop.
struct Manager {
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Manager {
    fn drop(&mut self) {
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
         UPDATE keypair_resource_policies SET max_concurrent_sessions = 1000",
        zeros = "0".repeat(64),
    ))
    .await
    .expect("image row and a policy for 100 sessions at once");

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
        ConsumerOptions::new(MANAGER_GROUP, "load:0".to_owned()),
        shutdown.clone(),
    ));
    let status = SchedulerStatus::new(stores.redis.live.clone(), "i-load");
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
             [agent]\nid = \"i-load\"\nrpc-listen-addr = {{ host = \"127.0.0.1\", port = {} }}\n\n\
             [debug]\nheartbeat-interval = 1.0\n",
            api.cluster.namespace.name,
            free_ports(u16::try_from(AGENTS).expect("a few agents")),
        ),
    )
    .expect("agent.toml");
    let config = AgentToml::load(&path).expect("agent.toml loads");
    let options = SimOptions {
        agents: Some(AGENTS),
        cpu: 32,
        mem: 64 << 30,
        stamp_version: false,
    };
    let rpc_options = RpcOptions {
        delay: Duration::from_millis(20),
        ..RpcOptions::default()
    };
    let sims = bai_agent_sim::agents_with_rpc(&config, &options, rpc_options).expect("agents");
    let token = shutdown.clone();
    tokio::spawn(async move { bai_agent_sim::run(&config, sims, token).await });
    let manager = Manager {
        shutdown,
        _dir: dir,
    };
    wait_until("every agent registered", || async {
        agent_rows(&api).await.len() == AGENTS
    })
    .await;
    (api, manager)
}

async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(90);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 90 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn agent_rows(api: &Api) -> Vec<agents::Model> {
    agents::Entity::find()
        .all(&api.cluster.database.connection)
        .await
        .expect("agents")
}

/// The 24.03 client's `session create` body, waiting up to a minute for the start.
fn create_body(name: &str) -> Value {
    json!({"name": name, "image": PYTHON, "type": "interactive", "group": "default",
        "domain": "default", "clusterSize": 1, "clusterMode": "single-node",
        "config": {"resources": {"cpu": "1", "mem": "1g"}},
        "enqueueOnly": false, "maxWaitSeconds": 60})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_sessions_created_and_destroyed_at_once_all_end_terminated() {
    let (api, _manager) = start("session-load").await;
    let api = Arc::new(api);

    let mut creating = tokio::task::JoinSet::new();
    for index in 0..SESSIONS {
        let api = Arc::clone(&api);
        creating.spawn(async move {
            let body = create_body(&format!("load{index:03}"));
            api.send(signed_request(Method::POST, "/session", Some(&body), &USER))
                .await
        });
    }
    while let Some(answer) = creating.join_next().await {
        let answer = answer.expect("join");
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        assert_eq!(answer.json["status"], "RUNNING", "{}", answer.text);
    }
    let occupied_cpu: f64 = agent_rows(&api)
        .await
        .iter()
        .map(|agent| {
            agent.occupied_slots.to_json()["cpu"]
                .as_str()
                .and_then(|cpu| cpu.parse::<f64>().ok())
                .unwrap_or(0.0)
        })
        .sum();
    assert_eq!(occupied_cpu, SESSIONS as f64);
    assert_eq!(concurrency_used(&api).await, SESSIONS as u64);

    let mut destroying = tokio::task::JoinSet::new();
    for index in 0..SESSIONS {
        let api = Arc::clone(&api);
        destroying.spawn(async move {
            let path = format!("/session/load{index:03}");
            api.send(signed_request(Method::DELETE, &path, None, &USER))
                .await
        });
    }
    while let Some(answer) = destroying.join_next().await {
        let answer = answer.expect("join");
        assert!(answer.status.is_success(), "{}", answer.text);
    }
    wait_until("every session TERMINATED", || async {
        sessions::Entity::find()
            .all(&api.cluster.database.connection)
            .await
            .expect("sessions")
            .iter()
            .all(|session| session.status == SessionStatus::Terminated)
    })
    .await;
    for agent in agent_rows(&api).await {
        assert_eq!(agent.occupied_slots.to_json(), json!({}), "{}", agent.id);
    }
    assert_eq!(concurrency_used(&api).await, 0);
}

/// The keypair's running sessions, as the admin API reports them (Redis
/// `keypair.concurrency_used.{ak}`).
async fn concurrency_used(api: &Api) -> u64 {
    let query = json!({"query": "{ keypair { concurrency_used } }"});
    let answer = api
        .send(signed_request(
            Method::POST,
            "/admin/gql",
            Some(&query),
            &USER,
        ))
        .await;
    answer.json["data"]["keypair"]["concurrency_used"]
        .as_u64()
        .unwrap_or_else(|| panic!("no concurrency_used in {}", answer.text))
}
