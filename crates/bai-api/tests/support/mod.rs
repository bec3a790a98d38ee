//! The whole manager around a test cluster's router, in the test's process: a consumer of the
//! event bus with the agent registry's, the lifecycle's and the dispatcher's handlers, the
//! dispatcher (scheduling rounds and starts), and simulated agents serving RPC. Shared by the
//! test binaries that drive sessions past PENDING (`session_ops`, `session_load`, `execute`,
//! `session_files`, `events`), with the helpers several of them share.
// Each test binary includes this harness and uses a part of its helpers.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bai_agent_rpc::RpcClient;
use bai_agent_rpc::testing::free_ports;
use bai_agent_sim::{AgentToml, RpcOptions, SimOptions};
use bai_agents::{AgentRegistry, AgentRpcCache};
use bai_api::testing::{ExampleUser, signed_request};
use bai_db_models::entities::enums::AgentStatus;
use bai_db_models::entities::{agents, kernels, sessions};
use bai_events::{ConsumerOptions, EventProducer, Handlers, MANAGER_GROUP, run_consumer};
use bai_redis::{SchedulerStatus, StreamDb};
use bai_sessions::{Lifecycle, Scheduler, Starter};
use http::{Method, StatusCode};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::common::{Answer, Api};

/// The one image the stack knows (its row and its registry in etcd).
pub const PYTHON: &str = "cr.backend.ai/stable/python:3.9-ubuntu20.04";

/// What differs between the tests' stacks.
pub struct Stack {
    /// Names the agents (`i-{name}`), the scheduler's node and the consumer (`{name}:0`).
    pub name: &'static str,
    pub agents: usize,
    /// CPU cores of each agent.
    pub cpu: u64,
    /// Memory of each agent in bytes.
    pub mem: u64,
    /// The default keypair policy's limit, high enough for the sessions the test runs at once.
    pub max_concurrent_sessions: u32,
    /// How long the agents may take to register.
    pub patience: Duration,
}

impl Stack {
    /// One agent of 16 cores and 32 GiB, and room for 100 sessions at once.
    pub const fn one_agent(name: &'static str, patience: Duration) -> Stack {
        Stack {
            name,
            agents: 1,
            cpu: 16,
            mem: 32 << 30,
            max_concurrent_sessions: 100,
            patience,
        }
    }
}

/// The manager's background work on `api`'s cluster, and the simulated agents; stopped on drop.
pub struct Manager {
    shutdown: CancellationToken,
    /// The simulated agents' own token: cancelling it makes the agents vanish.
    pub agent: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.agent.cancel();
        self.shutdown.cancel();
    }
}

/// A test cluster whose router calls agents, with the manager and `stack.agents` simulated
/// agents around it; returns once every agent has registered.
pub async fn start(label: &str, stack: &Stack) -> (Api, Manager) {
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
         UPDATE keypair_resource_policies SET max_concurrent_sessions = {max}",
        zeros = "0".repeat(64),
        max = stack.max_concurrent_sessions,
    ))
    .await
    .expect("image row and a policy for the sessions at once");

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
    let consumer = StreamDb::connect(&stores.redis.config())
        .await
        .expect("the consumer's Redis");
    tokio::spawn(run_consumer(
        consumer,
        handlers,
        ConsumerOptions::new(MANAGER_GROUP, format!("{}:0", stack.name)),
        shutdown.clone(),
    ));
    let node = format!("i-{}", stack.name);
    let status = SchedulerStatus::new(stores.redis.live.clone(), &node);
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
             [agent]\nid = \"{node}\"\nrpc-listen-addr = {{ host = \"127.0.0.1\", port = {} }}\n\n\
             [debug]\nheartbeat-interval = 1.0\n",
            api.cluster.namespace.name,
            free_ports(u16::try_from(stack.agents).expect("a few agents")),
        ),
    )
    .expect("agent.toml");
    let config = AgentToml::load(&path).expect("agent.toml loads");
    let options = SimOptions {
        agents: Some(stack.agents),
        cpu: stack.cpu,
        mem: stack.mem,
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
    wait_until("every agent registered", stack.patience, || async {
        agent_rows(&api).await.len() == stack.agents
    })
    .await;
    (api, manager)
}

/// Polls `check` every 100 ms until it holds; fails the test after `within`.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {} s",
            within.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn agent_rows(api: &Api) -> Vec<agents::Model> {
    agents::Entity::find()
        .all(&api.cluster.database.connection)
        .await
        .expect("agents")
}

/// The 24.03 client's `session create` body, waiting up to a minute for the start.
pub fn create_body(name: &str) -> Value {
    json!({"name": name, "image": PYTHON, "type": "interactive", "group": "default",
        "domain": "default", "clusterSize": 1, "clusterMode": "single-node",
        "config": {"resources": {"cpu": "1", "mem": "1g"}},
        "enqueueOnly": false, "maxWaitSeconds": 60})
}

/// Creates session `name` of `who` and waits until it is RUNNING; returns its id.
pub async fn running_session(api: &Api, who: &ExampleUser, name: &str) -> Uuid {
    let answer = api
        .send(signed_request(
            Method::POST,
            "/session",
            Some(&create_body(name)),
            who,
        ))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    assert_eq!(answer.json["status"], "RUNNING", "{}", answer.text);
    answer.json["sessionId"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
        .unwrap_or_else(|| panic!("no sessionId in {}", answer.text))
}

pub async fn session_row(api: &Api, id: Uuid) -> sessions::Model {
    sessions::Entity::find_by_id(id)
        .one(&api.cluster.database.connection)
        .await
        .expect("sessions")
        .expect("the session")
}

pub async fn kernel_rows(api: &Api, session_id: Uuid) -> Vec<kernels::Model> {
    kernels::Entity::find()
        .filter(kernels::Column::SessionId.eq(session_id))
        .all(&api.cluster.database.connection)
        .await
        .expect("kernels")
}

/// Waits until no agent is ALIVE any more (after [`Manager::agent`] was cancelled).
pub async fn wait_agents_gone(api: &Api, within: Duration) {
    wait_until("the agents gone", within, || async {
        agent_rows(api)
            .await
            .iter()
            .all(|agent| agent.status != AgentStatus::Alive)
    })
    .await;
}

/// Asserts the reference's answer for a call to an agent that does not answer: a 500
/// `kernel-execution-failed` with the agent's timeout as its details.
#[track_caller]
pub fn assert_agent_timeout(answer: &Answer) {
    assert_eq!(
        answer.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        answer.text
    );
    assert_eq!(
        answer.json,
        json!({
            "type": "https://api.backend.ai/probs/kernel-execution-failed",
            "title": "Executing user code in the kernel has failed.",
            "agent-details": {"type": "https://api.backend.ai/probs/agent-timeout", "title": null},
        }),
        "{}",
        answer.text
    );
}
