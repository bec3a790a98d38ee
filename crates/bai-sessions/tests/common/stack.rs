//! The stores and peers the session tests that run agent-sim share: a fresh database with the
//! install guide's fixtures, an etcd namespace with the Redis address and the registry, a Redis
//! server of the test's own, the agent registry and a consumer of the event bus running its and
//! the lifecycle's handlers, and simulated agents announcing themselves by heartbeats.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bai_agent_rpc::RpcClient;
use bai_agent_sim::{AgentToml, Faults, RpcOptions, SimAgent, SimOptions};
use bai_agents::{AgentRegistry, AgentRpcCache};
use bai_db_models::testing::{INSTALL_GUIDE_FIXTURES, TestDatabase};
use bai_etcd_store::testing::TestNamespace;
use bai_etcd_store::{EtcdStore, Scope, SharedConfig};
use bai_events::{ConsumerOptions, EventProducer, Handlers, MANAGER_GROUP, run_consumer};
use bai_redis::testing::PrivateRedis;
use bai_redis::{EntryId, Redis, SchedulerStatus, StreamDb, StreamEntry};
use bai_sessions::{DestroyRequest, Destroyer, Lifecycle, Scheduler, Starter};
use bai_stores::Stores;
use sea_orm::prelude::Uuid;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{GIB, IMAGE};

/// What one test runs against; everything it started stops when it is dropped.
pub struct Stack {
    pub stores: Stores,
    pub etcd: EtcdStore,
    /// The event bus, for reading what was announced.
    pub stream: StreamDb,
    pub producer: EventProducer,
    /// The manager's connections to the agents.
    pub rpc: Arc<AgentRpcCache>,
    pub registry: Arc<AgentRegistry>,
    pub shutdown: CancellationToken,
    pub database: TestDatabase,
    /// How long `wait_until` waits.
    patience: Duration,
    /// Where the agents' `agent.toml` files are written.
    dir: tempfile::TempDir,
    namespace: TestNamespace,
    redis: PrivateRedis,
}

impl Stack {
    /// The stores of test `label`, and the agent registry (with the RPC cache); no consumer yet.
    /// `wait_until` gives up after `patience`.
    pub async fn new(label: &str, patience: Duration) -> Stack {
        let database = TestDatabase::with_fixtures(label, &INSTALL_GUIDE_FIXTURES).await;
        let namespace = TestNamespace::new(&label.replace('_', "-"));
        let redis = PrivateRedis::start();
        let etcd = namespace.store().await;
        for (key, value) in [
            ("config/redis/addr", redis.addr()),
            (
                "config/docker/registry/cr.backend.ai",
                "https://cr.backend.ai".to_owned(),
            ),
            (
                "config/docker/registry/cr.backend.ai/type",
                "docker".to_owned(),
            ),
            ("nodes/manager/test", "up".to_owned()),
        ] {
            etcd.put(key, &value, Scope::Global)
                .await
                .expect("etcd put");
        }
        let shared_config = SharedConfig::load(&etcd).await.expect("shared config");
        let stores = Stores::from_parts(
            etcd.clone(),
            shared_config.clone(),
            database.connection.clone(),
            Redis::connect(&shared_config.redis).await.expect("redis"),
        );
        let stream = StreamDb::connect(&redis.config()).await.expect("stream");
        let producer = EventProducer::new(stream.clone());
        let rpc = Arc::new(AgentRpcCache::new(
            database.connection.clone(),
            RpcClient::new(None),
        ));
        let registry =
            Arc::new(AgentRegistry::new(&stores, Arc::default()).with_rpc_cache(Arc::clone(&rpc)));
        Stack {
            stores,
            etcd,
            stream,
            producer,
            rpc,
            registry,
            shutdown: CancellationToken::new(),
            database,
            patience,
            dir: tempfile::tempdir().expect("tempdir"),
            namespace,
            redis,
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.database.connection
    }

    /// Polls `check` until it holds; fails the test if it does not within the stack's patience.
    pub async fn wait_until<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        super::wait_until(what, self.patience, check).await;
    }

    /// Everything on the event bus so far.
    pub async fn stream_entries(&self) -> Vec<StreamEntry> {
        self.stream
            .read_after(EntryId::ZERO, 10_000, Duration::from_millis(100))
            .await
            .expect("XREAD")
    }

    /// The test image's row for `architecture`, with these `labels` (JSON), pulled on the
    /// agents already if `local`.
    pub async fn image(&self, architecture: &str, local: bool, labels: &str) {
        self.db()
            .execute_unprepared(&format!(
                "INSERT INTO images (name, image, tag, registry, architecture, config_digest, \
                 size_bytes, is_local, type, labels, resources) VALUES ('{IMAGE}', \
                 'stable/python', '3.9-ubuntu20.04', 'cr.backend.ai', '{architecture}', \
                 'sha256:{zeros}', 0, {local}, 'COMPUTE', '{labels}', '{{}}')",
                zeros = "0".repeat(64),
            ))
            .await
            .expect("image row");
    }

    /// The lifecycle's event handlers, with the RPC cache (to destroy kernels that start after
    /// their session ended).
    pub fn lifecycle(&self) -> Lifecycle {
        Lifecycle::new(
            self.db().clone(),
            self.producer.clone(),
            self.stores.redis.stat.clone(),
        )
        .with_rpc_cache(Arc::clone(&self.rpc))
    }

    /// Runs a consumer of the event bus with the agent registry's and `lifecycle`'s handlers.
    pub async fn consume(&self, lifecycle: Lifecycle) {
        self.consume_with(lifecycle, |_| {}).await;
    }

    /// [`Stack::consume`], with the handlers `more` adds after the lifecycle's.
    pub async fn consume_with(&self, lifecycle: Lifecycle, more: impl FnOnce(&mut Handlers)) {
        let lifecycle = Arc::new(lifecycle);
        let mut handlers = Handlers::default();
        bai_agents::handlers(&self.registry, &mut handlers);
        bai_sessions::handlers(&lifecycle, &mut handlers);
        more(&mut handlers);
        let stream = StreamDb::connect(&self.redis.config())
            .await
            .expect("stream");
        let options = ConsumerOptions::new(MANAGER_GROUP, "test:0".to_owned());
        tokio::spawn(run_consumer(
            stream,
            handlers,
            options,
            self.shutdown.clone(),
        ));
    }

    /// Writes the `agent.toml` of agent `id` (heartbeats every second, RPC on `port`), with
    /// `agent_lines` added to its `[agent]` section and `sections` after it, and loads it.
    pub fn agent_config(
        &self,
        id: &str,
        port: u16,
        agent_lines: &str,
        sections: &str,
    ) -> AgentToml {
        let path = self.dir.path().join(format!("{id}.toml"));
        std::fs::write(
            &path,
            format!(
                "[etcd]\nnamespace = {namespace:?}\naddr = {{ host = \"127.0.0.1\", port = 8120 }}\n\n\
                 [agent]\nid = {id:?}\n{agent_lines}\
                 rpc-listen-addr = {{ host = \"127.0.0.1\", port = {port} }}\n\n\
                 {sections}[debug]\nheartbeat-interval = 1.0\n",
                namespace = self.namespace.name,
            ),
        )
        .expect("agent.toml");
        AgentToml::load(&path).expect("agent.toml loads")
    }

    /// Runs `sims` (with `config`'s etcd) until the stack is dropped or the task is aborted.
    pub fn run_agents(&self, config: AgentToml, sims: Vec<SimAgent>) -> JoinHandle<()> {
        let token = self.shutdown.clone();
        tokio::spawn(async move {
            if let Err(error) = bai_agent_sim::run(&config, sims, token).await {
                panic!("agent-sim: {error}");
            }
        })
    }

    /// Runs agent `id` of 4 cores and 8 GiB on a free port, each step of its calls taking
    /// `delay`, with `faults`.
    pub fn run_agent(&self, id: &str, delay: Duration, faults: Faults) -> JoinHandle<()> {
        let config = self.agent_config(id, bai_agent_rpc::testing::free_ports(1), "", "");
        let sims = sims(&config, 4, 8, RpcOptions { delay, faults });
        self.run_agents(config, sims)
    }

    /// A stack (see [`Stack::new`]) with the test image for x86_64 with a jupyter service port,
    /// a consumer with the lifecycle's handlers, and agent `agent` (see [`Stack::run_agent`],
    /// calls taking 20 ms) with `faults`; returns once the agent's row is ALIVE.
    pub async fn with_alive_agent(
        label: &str,
        patience: Duration,
        agent: &str,
        faults: Faults,
    ) -> Stack {
        let stack = Stack::new(label, patience).await;
        stack
            .image(
                "x86_64",
                false,
                "{\"ai.backend.service-ports\": \"jupyter:http:8080\"}",
            )
            .await;
        stack.consume(stack.lifecycle()).await;
        stack.run_agent(agent, Duration::from_millis(20), faults);
        stack
            .wait_until("the agent's row is ALIVE", || async {
                super::agent_row(stack.db(), agent).await.is_some()
            })
            .await;
        stack
    }

    /// What the scheduler and the starter record of their runs, under `manager_id`.
    pub fn status(&self, manager_id: &str) -> SchedulerStatus {
        SchedulerStatus::new(self.stores.redis.live.clone(), manager_id)
    }

    pub fn scheduler(&self, resource_priority: &[&str], status: SchedulerStatus) -> Scheduler {
        Scheduler::new(
            self.db().clone(),
            self.etcd.clone(),
            self.stores.redis.stat.clone(),
            self.producer.clone(),
            resource_priority
                .iter()
                .map(|&slot| slot.to_owned())
                .collect(),
            status,
        )
    }

    /// A starter whose `create_kernels` calls time out after `create_timeout`.
    pub fn starter(&self, status: SchedulerStatus, create_timeout: Duration) -> Starter {
        Starter::new(
            self.db().clone(),
            self.etcd.clone(),
            self.producer.clone(),
            self.stores.redis.stat.clone(),
            Arc::clone(&self.rpc),
            status,
        )
        .with_create_timeout(create_timeout)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The simulated agents `config` describes, of `cpu` cores and `mem_gib` GiB each.
pub fn sims(config: &AgentToml, cpu: u64, mem_gib: u64, rpc: RpcOptions) -> Vec<SimAgent> {
    let options = SimOptions {
        agents: None,
        cpu,
        mem: mem_gib * GIB,
        stamp_version: false,
    };
    bai_agent_sim::agents_with_rpc(config, &options, rpc).expect("agents")
}

/// Destroys `session` as its owner asks for it (not forced, no reason given).
pub async fn destroy(destroyer: &Destroyer, session: Uuid) {
    let request = DestroyRequest {
        forced: false,
        reason: None,
        superadmin: false,
    };
    destroyer.destroy(session, request).await.expect("destroy");
}
