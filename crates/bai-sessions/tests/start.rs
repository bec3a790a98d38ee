//! From PENDING to RUNNING and back on simulated agents: a scheduling round, `prepare()` calling
//! `create_kernels` on agent-sim over RPC, the agent's `kernel_*` events handled by a real
//! consumer of the event bus (with the agent registry, whose heartbeats made the agent's row),
//! and a session whose agent fails `create_kernels` ending CANCELLED with its slots released.
//!
//! Against the halfstack's PostgreSQL (a fresh database with the install guide's fixtures) and
//! etcd (a fresh namespace), and a Redis server of each test's own.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bai_agent_rpc::RpcClient;
use bai_agent_rpc::testing::free_ports;
use bai_agent_sim::{AgentToml, Faults, RpcOptions, SimOptions};
use bai_agents::{AgentRegistry, AgentRpcCache};
use bai_db_models::entities::enums::{KernelStatus, SessionStatus};
use bai_db_models::entities::{ResourceSlot, agents, kernels, sessions};
use bai_db_models::testing::{INSTALL_GUIDE_FIXTURES, TestDatabase};
use bai_etcd_store::testing::TestNamespace;
use bai_etcd_store::{Scope, SharedConfig};
use bai_events::{ConsumerOptions, Event, EventProducer, Handlers, MANAGER_GROUP, run_consumer};
use bai_redis::testing::PrivateRedis;
use bai_redis::{EntryId, Redis, SchedulerStatus, StreamDb};
use bai_sessions::{DestroyRequest, Lifecycle, Scheduler, Starter};
use bai_stores::Stores;
use sea_orm::prelude::Uuid;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use tokio_util::sync::CancellationToken;

use common::{GIB, IMAGE};

/// The manager id the harness records its scheduler status under.
const MANAGER_ID: &str = "i-start-test";

const AGENT: &str = "i-start";

struct Harness {
    scheduler: Scheduler,
    /// The manager's connections to the agent, also for asking the agent what it holds.
    rpc: Arc<AgentRpcCache>,
    starter: Starter,
    /// What the scheduler and the starter record of their runs.
    status: SchedulerStatus,
    stream: StreamDb,
    shutdown: CancellationToken,
    database: TestDatabase,
    _dir: tempfile::TempDir,
    _etcd: TestNamespace,
    _redis: PrivateRedis,
}

impl Harness {
    /// The stores, one agent-sim agent (4 cores, 8 GiB) with `faults`, and a consumer running
    /// the agent registry's and the lifecycle's handlers; returns once the agent's row is ALIVE.
    async fn new(label: &str, faults: Faults) -> Harness {
        let database = TestDatabase::with_fixtures(label, &INSTALL_GUIDE_FIXTURES).await;
        let etcd_namespace = TestNamespace::new(&label.replace('_', "-"));
        let redis = PrivateRedis::start();
        let etcd = etcd_namespace.store().await;
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
        database
            .connection
            .execute_unprepared(&format!(
                "INSERT INTO images (name, image, tag, registry, architecture, config_digest, \
                 size_bytes, is_local, type, labels, resources) VALUES ('{IMAGE}', \
                 'stable/python', '3.9-ubuntu20.04', 'cr.backend.ai', 'x86_64', 'sha256:{zeros}', 0, \
                 false, 'COMPUTE', '{{\"ai.backend.service-ports\": \"jupyter:http:8080\"}}', '{{}}')",
                zeros = "0".repeat(64),
            ))
            .await
            .expect("image row");
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
        let lifecycle = Arc::new(
            Lifecycle::new(
                database.connection.clone(),
                producer.clone(),
                stores.redis.stat.clone(),
            )
            .with_rpc_cache(Arc::clone(&rpc)),
        );
        let mut handlers = Handlers::default();
        bai_agents::handlers(&registry, &mut handlers);
        bai_sessions::handlers(&lifecycle, &mut handlers);
        let shutdown = CancellationToken::new();
        let consumer_stream = StreamDb::connect(&redis.config()).await.expect("stream");
        let options = ConsumerOptions::new(MANAGER_GROUP, "test:0".to_owned());
        tokio::spawn(run_consumer(
            consumer_stream,
            handlers,
            options,
            shutdown.clone(),
        ));

        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_ports(1);
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            format!(
                "[etcd]\nnamespace = {:?}\naddr = {{ host = \"127.0.0.1\", port = 8120 }}\n\n\
                 [agent]\nid = {AGENT:?}\nrpc-listen-addr = {{ host = \"127.0.0.1\", port = {port} }}\n\n\
                 [debug]\nheartbeat-interval = 1.0\n",
                etcd_namespace.name
            ),
        )
        .expect("agent.toml");
        let config = AgentToml::load(&path).expect("agent.toml loads");
        let options = SimOptions {
            agents: None,
            cpu: 4,
            mem: 8 * GIB,
            stamp_version: false,
        };
        let rpc_options = RpcOptions {
            delay: Duration::from_millis(20),
            faults,
        };
        let sims = bai_agent_sim::agents_with_rpc(&config, &options, rpc_options).expect("agents");
        let token = shutdown.clone();
        tokio::spawn(async move { bai_agent_sim::run(&config, sims, token).await });

        let status = SchedulerStatus::new(stores.redis.live.clone(), MANAGER_ID);
        let scheduler = Scheduler::new(
            database.connection.clone(),
            etcd.clone(),
            stores.redis.stat.clone(),
            producer.clone(),
            ["cpu", "mem"].map(str::to_owned).to_vec(),
            status.clone(),
        );
        let starter = Starter::new(
            database.connection.clone(),
            etcd,
            producer,
            stores.redis.stat.clone(),
            Arc::clone(&rpc),
            status.clone(),
        )
        .with_create_timeout(Duration::from_secs(10));
        let harness = Harness {
            scheduler,
            rpc,
            starter,
            status,
            stream,
            shutdown,
            database,
            _dir: dir,
            _etcd: etcd_namespace,
            _redis: redis,
        };
        harness
            .wait_until("the agent's row is ALIVE", || async {
                agents::Entity::find_by_id(AGENT.to_owned())
                    .one(harness.db())
                    .await
                    .expect("query")
                    .is_some()
            })
            .await;
        harness
    }

    fn db(&self) -> &sea_orm::DatabaseConnection {
        &self.database.connection
    }

    async fn wait_until<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check().await {
            assert!(Instant::now() < deadline, "{what}: not within 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A PENDING single-node session of `kernels` kernels of one core and 1 GiB each.
    async fn pending(&self, name: &str, kernels: u32) -> Uuid {
        common::pending(self.db(), name, kernels, 1, 1, 0).await
    }

    async fn session(&self, id: Uuid) -> sessions::Model {
        sessions::Entity::find_by_id(id)
            .one(self.db())
            .await
            .expect("query")
            .expect("session")
    }

    async fn kernels_of(&self, id: Uuid) -> Vec<kernels::Model> {
        kernels::Entity::find()
            .filter(kernels::Column::SessionId.eq(id))
            .all(self.db())
            .await
            .expect("query")
    }

    async fn occupied(&self) -> ResourceSlot {
        agents::Entity::find_by_id(AGENT.to_owned())
            .one(self.db())
            .await
            .expect("query")
            .expect("agent")
            .occupied_slots
    }

    /// The names of the session-level events on the stream.
    async fn session_events(&self) -> Vec<String> {
        let entries = self
            .stream
            .read_after(EntryId::ZERO, 10_000, Duration::from_millis(100))
            .await
            .expect("XREAD");
        entries
            .into_iter()
            .filter_map(|entry| {
                let name = String::from_utf8_lossy(entry.field("name")?).into_owned();
                name.starts_with("session_").then(|| {
                    let event = Event::decode(name.as_bytes(), entry.field("args").expect("args"))
                        .expect("an event");
                    event.name().to_owned()
                })
            })
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_runs_on_its_agent_and_holds_what_the_agent_allocated() {
    let harness = Harness::new("sessions_start", Faults::default()).await;
    let session = harness.pending("pair", 2).await;

    let report = harness.scheduler.schedule().await.expect("round");
    assert_eq!(report.scheduled, 1);
    assert_eq!(harness.starter.prepare().await.expect("prepare"), 1);
    harness
        .wait_until("the session is RUNNING", || async {
            harness.session(session).await.status == SessionStatus::Running
        })
        .await;
    let row = harness.session(session).await;
    assert_eq!(row.agent_ids, Some(vec![AGENT.to_owned()]));
    let two =
        ResourceSlot::from_json(&serde_json::json!({"cpu": "2", "mem": (2 * GIB).to_string()}))
            .expect("slots");
    assert_eq!(row.occupying_slots, two);
    assert_eq!(harness.occupied().await, two);
    for kernel in harness.kernels_of(session).await {
        assert_eq!(kernel.status, KernelStatus::Running);
        assert_eq!(kernel.kernel_host.as_deref(), Some("127.0.0.1"));
        assert!(kernel.repl_in_port > 0);
    }
    let events = harness.session_events().await;
    assert_eq!(
        events,
        ["session_scheduled", "session_preparing", "session_started"]
    );

    // Both runs are recorded as the reference's dispatcher records them, under the manager id.
    let recorded = harness.status.read().await.expect("HGETALL");
    let tasks: Vec<&str> = recorded.iter().map(|(task, _)| task.name()).collect();
    assert_eq!(tasks, ["schedule", "prepare", "scale_services"]);
    for (task, trigger) in [(&recorded[0], "do_schedule"), (&recorded[1], "do_prepare")] {
        let fields: Vec<&str> = task.1.iter().map(|(field, _)| field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "trigger_event",
                "execution_time",
                "resource_group",
                "finish_time"
            ]
        );
        let value = |name: &str| {
            task.1
                .iter()
                .find(|(field, _)| field == name)
                .map(|(_, value)| value.as_str())
                .expect("a field")
        };
        assert_eq!(value("trigger_event"), trigger);
        assert_eq!(value("resource_group"), "default");
        let started = chrono::DateTime::parse_from_rfc3339(value("execution_time")).expect("ISO");
        let finished = chrono::DateTime::parse_from_rfc3339(value("finish_time")).expect("ISO");
        assert!(started <= finished, "{started} > {finished}");
        assert!(value("finish_time").ends_with("+00:00"));
    }
    assert!(recorded[2].1.is_empty(), "{:?}", recorded[2]);

    // A later run starts its hash over: nothing was scheduled, so no group is recorded.
    harness.starter.prepare().await.expect("prepare");
    let again = harness.status.read().await.expect("HGETALL");
    let fields: Vec<&str> = again[1].1.iter().map(|(field, _)| field.as_str()).collect();
    assert_eq!(fields, ["trigger_event", "execution_time", "finish_time"]);

    // The cluster's local network is on the agent while the session runs, and is removed from
    // it once the session is over (`clean_session`): only then can the name be made again.
    let network = format!("bai-singlenode-{session}");
    let agent = harness.rpc.get(AGENT).await.expect("connection");
    let exists = agent
        .create_local_network(&network)
        .await
        .expect_err("made");
    assert!(exists.to_string().contains("already exists"), "{exists}");
    let request = DestroyRequest {
        forced: false,
        reason: None,
        superadmin: false,
    };
    harness
        .starter
        .destroyer()
        .destroy(session, request)
        .await
        .expect("destroy");
    harness
        .wait_until(
            "the session's network is removed from its agent",
            || async { agent.create_local_network(&network).await.is_ok() },
        )
        .await;
    assert_eq!(
        harness.session(session).await.status,
        SessionStatus::Terminated
    );
    assert_eq!(harness.occupied().await, ResourceSlot::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_agent_fails_create_kernels_is_cancelled_with_its_slots_released() {
    let faults = Faults {
        fail_create: true,
        ..Faults::default()
    };
    let harness = Harness::new("sessions_start_fails", faults).await;
    let session = harness.pending("doomed", 1).await;
    harness.scheduler.schedule().await.expect("round");
    harness.starter.prepare().await.expect("prepare");
    let row = harness.session(session).await;
    assert_eq!(row.status, SessionStatus::Cancelled);
    assert_eq!(row.status_info.as_deref(), Some("failed-to-start"));
    let error = &row.status_data.expect("status data")["error"];
    assert_eq!(error["name"], "AgentError");
    assert!(
        error["repr"]
            .as_str()
            .is_some_and(|repr| repr.contains("create_kernels")),
        "{error}"
    );
    assert!(row.terminated_at.is_some());
    for kernel in harness.kernels_of(session).await {
        assert_eq!(kernel.status, KernelStatus::Cancelled);
    }
    assert_eq!(harness.occupied().await, ResourceSlot::new());
    let events = harness.session_events().await;
    assert_eq!(
        events,
        [
            "session_scheduled",
            "session_preparing",
            "session_cancelled"
        ]
    );
}
