//! The agent registry against the halfstack's PostgreSQL and etcd and a Redis server of each test's
//! own (`PrivateRedis`: the event stream's key and the database numbers are fixed by the
//! protocol): a fresh database (with the install guide's fixtures, so resource group `default`
//! exists) and etcd namespace per test.
//!
//! It checks what heartbeats write (the `agents` row, `agent.last_seen` in Redis database 2, slot
//! units in etcd `config/resource_slots`, image holders in Redis database 3), the diff update, the
//! status transitions of `agent_started` / `agent_terminated` (revival with `agent_started
//! ("revived")`, stale heartbeats, `RESTARTING`), unknown resource groups (one warning, then the
//! row once the group exists), the lost check run by two manager nodes at once (one report per
//! loss), concurrent first heartbeats, and the handlers on a real consumer of the event bus.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bai_agents::AgentRegistry;
use bai_db_models::entities::enums::AgentStatus;
use bai_db_models::entities::{ResourceSlot, agents};
use bai_db_models::queries::scaling_groups::{self, NewScalingGroup};
use bai_db_models::testing::{INSTALL_GUIDE_FIXTURES, TestDatabase};
use bai_etcd_store::testing::logs::CapturedLogs;
use bai_etcd_store::testing::{HALFSTACK_ETCD, TestNamespace};
use bai_etcd_store::{EtcdStore, Scope, SharedConfig};
use bai_events::{
    AgentInfo, ConsumerOptions, Event, EventProducer, Handlers, MANAGER_GROUP, SlotCapacity,
    consumer_name, run_consumer,
};
use bai_redis::testing::PrivateRedis;
use bai_redis::{EntryId, Redis, StreamDb};
use bai_stores::Stores;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::{
    ActiveValue, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, Statement,
    TransactionTrait,
};
use tokio_util::sync::CancellationToken;

/// The image every test agent reports, and its canonical name (the registry is configured).
const IMAGE: &str = "cr.backend.ai/stable/python:3.9-ubuntu20.04";
const IMAGE_DIGEST: &str =
    "sha256:1b6f1d6b1c2f4a9ef3f1d7c0f0a3b8e4d2c9a5b6e7f8091a2b3c4d5e6f708192";
const LAST_SEEN: &str = "agent.last_seen";
const A_PUBLIC_KEY: &str = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";

/// One test's stores: a database, an etcd namespace and a Redis server of its own.
struct Harness {
    stores: Stores,
    // Dropped after `stores`: the database and the namespace are removed, the server stopped.
    database: TestDatabase,
    namespace: TestNamespace,
    redis_server: PrivateRedis,
}

impl Harness {
    async fn new(label: &str) -> Harness {
        let database = TestDatabase::with_fixtures(label, &INSTALL_GUIDE_FIXTURES).await;
        let namespace = TestNamespace::new(&label.replace('_', "-"));
        let redis_server = PrivateRedis::start();
        let etcd = namespace.store().await;
        for (key, value) in [
            ("config/redis/addr", redis_server.addr()),
            (
                "config/docker/registry/cr.backend.ai",
                "https://cr.backend.ai".to_owned(),
            ),
            (
                "config/docker/registry/cr.backend.ai/type",
                "docker".to_owned(),
            ),
        ] {
            etcd.put(key, &value, Scope::Global)
                .await
                .expect("etcd put");
        }
        let stores = Harness::stores_on(etcd, &database).await;
        Harness {
            stores,
            database,
            namespace,
            redis_server,
        }
    }

    /// The stores of another manager node: connections of its own to the same etcd namespace,
    /// database and Redis.
    async fn other_node(&self) -> Stores {
        Harness::stores_on(self.namespace.store().await, &self.database).await
    }

    async fn stores_on(etcd: EtcdStore, database: &TestDatabase) -> Stores {
        let shared_config = SharedConfig::load(&etcd)
            .await
            .expect("the test's shared config loads");
        let redis = Redis::connect(&shared_config.redis)
            .await
            .expect("the test's Redis answers");
        let db = bai_db_models::connect(&database.config)
            .await
            .expect("the test database answers");
        Stores::from_parts(etcd, shared_config, db, redis)
    }

    fn registry(&self) -> AgentRegistry {
        AgentRegistry::new(&self.stores, Default::default())
    }

    async fn row(&self, agent_id: &str) -> Option<agents::Model> {
        agents::Entity::find_by_id(agent_id.to_owned())
            .one(&self.stores.db)
            .await
            .expect("reading the agent row")
    }

    async fn alive_row(&self, agent_id: &str) -> agents::Model {
        self.row(agent_id)
            .await
            .unwrap_or_else(|| panic!("agent {agent_id} has a row"))
    }

    async fn agent_count(&self) -> u64 {
        agents::Entity::find()
            .count(&self.stores.db)
            .await
            .expect("counting agents")
    }

    async fn last_seen(&self, agent_id: &str) -> Option<f64> {
        self.stores
            .redis
            .live
            .raw()
            .hget(LAST_SEEN, agent_id)
            .await
            .expect("HGET agent.last_seen")
            .map(|raw| raw.parse().expect("agent.last_seen holds a number"))
    }

    async fn image_holders(&self) -> Vec<String> {
        self.stores
            .redis
            .image
            .raw()
            .smembers(IMAGE)
            .await
            .expect("SMEMBERS of the image")
    }

    /// `(name, source, event)` of every stream entry after `after`.
    async fn events_after(&self, after: EntryId) -> Vec<(String, String, Event)> {
        self.stores
            .redis
            .stream
            .read_after(after, 10_000, Duration::from_millis(10))
            .await
            .expect("XREAD events")
            .into_iter()
            .map(|entry| {
                let name = entry.field("name").expect("a name field");
                let args = entry.field("args").expect("an args field");
                let source = entry.field("source").expect("a source field");
                (
                    String::from_utf8_lossy(name).into_owned(),
                    String::from_utf8_lossy(source).into_owned(),
                    Event::decode(name, args).expect("a valid event"),
                )
            })
            .collect()
    }

    async fn stream_end(&self) -> EntryId {
        self.stores
            .redis
            .stream
            .last_id()
            .await
            .expect("the stream's end")
    }

    async fn etcd_slot(&self, slot: &str) -> Option<String> {
        self.stores
            .etcd
            .get(&format!("config/resource_slots/{slot}"), Scope::Global)
            .await
            .expect("etcd get")
    }

    /// The etcd revision that last wrote `config/resource_slots/{slot}`.
    async fn etcd_slot_revision(&self, slot: &str) -> i64 {
        let key = self
            .stores
            .etcd
            .raw_key(&format!("config/resource_slots/{slot}"), Scope::Global)
            .expect("the raw key");
        let mut client = etcd_client::Client::connect([HALFSTACK_ETCD], None)
            .await
            .expect("etcd answers");
        let response = client.get(key, None).await.expect("etcd get");
        response
            .kvs()
            .first()
            .unwrap_or_else(|| panic!("config/resource_slots/{slot} exists"))
            .mod_revision()
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64()
}

fn slot(slot: &str, slot_type: &str, amount: &str) -> SlotCapacity {
    SlotCapacity {
        slot: slot.to_owned(),
        slot_type: slot_type.to_owned(),
        amount: amount.to_owned(),
    }
}

/// What a 24.03 agent of resource group `group` says in its heartbeats.
fn agent_info(group: &str) -> AgentInfo {
    AgentInfo {
        ip: "10.0.0.5".to_owned(),
        region: "local".to_owned(),
        scaling_group: group.to_owned(),
        addr: "tcp://10.0.0.5:6001".to_owned(),
        public_key: Some(A_PUBLIC_KEY.to_owned()),
        public_host: Some("10.0.0.5".to_owned()),
        resource_slots: vec![
            slot("cpu", "count", "7"),
            slot("mem", "bytes", "16106127360"),
            slot("cuda.device", "count", "2"),
        ],
        version: "24.03.11".to_owned(),
        compute_plugins: serde_json::json!({"cuda": {"version": "12.1", "driver": "535.54"}}),
        images: vec![(IMAGE.to_owned(), IMAGE_DIGEST.to_owned())],
        architecture: "x86_64".to_owned(),
        auto_terminate_abusing_kernel: false,
    }
}

async fn heartbeat(registry: &AgentRegistry, agent_id: &str, info: &AgentInfo) {
    heartbeat_sent_at(registry, agent_id, info, Utc::now()).await;
}

async fn heartbeat_sent_at(
    registry: &AgentRegistry,
    agent_id: &str,
    info: &AgentInfo,
    sent_at: DateTime<Utc>,
) {
    registry
        .handle_heartbeat(agent_id, info, sent_at)
        .await
        .unwrap_or_else(|error| panic!("heartbeat of {agent_id}: {error}"));
}

async fn terminated(registry: &AgentRegistry, agent_id: &str, reason: &str) {
    registry
        .handle_terminated(agent_id, reason)
        .await
        .unwrap_or_else(|error| panic!("agent_terminated({reason}) of {agent_id}: {error}"));
}

async fn started(registry: &AgentRegistry, agent_id: &str, reason: &str) {
    registry
        .handle_started(agent_id, reason)
        .await
        .unwrap_or_else(|error| panic!("agent_started({reason}) of {agent_id}: {error}"));
}

fn decimal(text: &str) -> Decimal {
    text.parse().expect("a decimal")
}

fn slots(pairs: &[(&str, &str)]) -> ResourceSlot {
    let mut slots = ResourceSlot::new();
    for (slot, amount) in pairs {
        slots.insert(*slot, decimal(amount));
    }
    slots
}

#[tokio::test]
async fn a_first_heartbeat_inserts_the_agent_and_records_it_everywhere() {
    let harness = Harness::new("agents_first_heartbeat").await;
    let registry = harness.registry();
    // etcd knows `cpu` already (as a count) and `mem` with another unit; `cuda.device` is new.
    let etcd = &harness.stores.etcd;
    etcd.put("config/resource_slots/cpu", "count", Scope::Global)
        .await
        .expect("etcd put");
    etcd.put("config/resource_slots/mem", "count", Scope::Global)
        .await
        .expect("etcd put");
    let cpu_revision = harness.etcd_slot_revision("cpu").await;
    let mem_revision = harness.etcd_slot_revision("mem").await;

    let before = Utc::now();
    let seen_from = unix_now();
    heartbeat(&registry, "i-first", &agent_info("default")).await;
    let seen_until = unix_now();

    let row = harness.alive_row("i-first").await;
    assert_eq!(row.status, AgentStatus::Alive);
    assert_eq!(row.scaling_group, "default");
    assert_eq!(row.region, "local");
    assert_eq!(
        row.available_slots,
        slots(&[("cpu", "7"), ("mem", "16106127360"), ("cuda.device", "2")])
    );
    assert_eq!(
        row.available_slots.to_json(),
        serde_json::json!({"cpu": "7", "mem": "16106127360", "cuda.device": "2"})
    );
    assert!(row.occupied_slots.is_empty(), "{:?}", row.occupied_slots);
    assert_eq!(row.addr, "tcp://10.0.0.5:6001");
    assert_eq!(row.public_host.as_deref(), Some("10.0.0.5"));
    assert_eq!(row.public_key.as_deref(), Some(A_PUBLIC_KEY));
    assert_eq!(row.version, "24.03.11");
    assert_eq!(row.architecture, "x86_64");
    assert_eq!(
        row.compute_plugins,
        serde_json::json!({"cuda": {"version": "12.1", "driver": "535.54"}})
    );
    assert!(!row.auto_terminate_abusing_kernel);
    assert!(row.schedulable, "schedulable by default");
    let first_contact = row.first_contact.expect("first_contact is set");
    assert!(
        first_contact >= before - chrono::Duration::seconds(1)
            && first_contact <= Utc::now() + chrono::Duration::seconds(1),
        "first_contact {first_contact} is the time of the heartbeat"
    );
    assert_eq!(row.lost_at, None);

    let seen = harness
        .last_seen("i-first")
        .await
        .expect("agent.last_seen holds the agent");
    assert!(
        seen >= seen_from - 0.001 && seen <= seen_until + 0.001,
        "last seen at {seen}, heartbeat between {seen_from} and {seen_until}"
    );

    assert_eq!(harness.etcd_slot("cpu").await.as_deref(), Some("count"));
    assert_eq!(harness.etcd_slot("mem").await.as_deref(), Some("bytes"));
    assert_eq!(
        harness.etcd_slot("cuda.device").await.as_deref(),
        Some("count")
    );
    assert_eq!(
        harness.etcd_slot_revision("cpu").await,
        cpu_revision,
        "a slot unit etcd has right already is not written again"
    );
    assert!(harness.etcd_slot_revision("mem").await > mem_revision);

    assert_eq!(harness.image_holders().await, ["i-first"]);
    assert_eq!(harness.agent_count().await, 1);
}

#[tokio::test]
async fn a_later_heartbeat_updates_only_what_changed() {
    let harness = Harness::new("agents_diff_update").await;
    let registry = harness.registry();
    let mut info = agent_info("default");
    heartbeat(&registry, "i-diff", &info).await;
    // The scheduler's bookkeeping, which heartbeats must leave alone.
    agents::Entity::update(agents::ActiveModel {
        id: ActiveValue::Unchanged("i-diff".to_owned()),
        occupied_slots: ActiveValue::Set(slots(&[("cpu", "2"), ("mem", "4294967296")])),
        ..Default::default()
    })
    .exec(&harness.stores.db)
    .await
    .expect("setting occupied_slots");
    let before = harness.alive_row("i-diff").await;
    let cpu_revision = harness.etcd_slot_revision("cpu").await;

    // The same heartbeat again changes nothing.
    heartbeat(&registry, "i-diff", &info).await;
    assert_eq!(harness.alive_row("i-diff").await, before);

    info.version = "24.03.12".to_owned();
    info.addr = "tcp://10.0.0.5:6011".to_owned();
    heartbeat(&registry, "i-diff", &info).await;
    let after = harness.alive_row("i-diff").await;
    let expected = agents::Model {
        version: "24.03.12".to_owned(),
        addr: "tcp://10.0.0.5:6011".to_owned(),
        ..before.clone()
    };
    assert_eq!(after, expected);
    assert_eq!(
        after.occupied_slots,
        slots(&[("cpu", "2"), ("mem", "4294967296")])
    );
    assert_eq!(
        harness.etcd_slot_revision("cpu").await,
        cpu_revision,
        "slot units are written when an agent joins, not by every heartbeat"
    );
    assert_eq!(harness.agent_count().await, 1);
}

#[tokio::test]
async fn a_terminated_agent_is_forgotten_and_revived_by_its_next_heartbeat() {
    let harness = Harness::new("agents_terminate_revive").await;
    let registry = harness.registry();
    let info = agent_info("default");
    heartbeat(&registry, "i-revive", &info).await;
    // Another agent holding the image stays its holder.
    heartbeat(&registry, "i-other", &info).await;
    let alive = harness.alive_row("i-revive").await;
    assert_eq!(harness.image_holders().await, ["i-other", "i-revive"]);

    let stopping = Utc::now();
    terminated(&registry, "i-revive", "shutdown").await;
    let row = harness.alive_row("i-revive").await;
    assert_eq!(row.status, AgentStatus::Terminated);
    let status_changed = row.status_changed.expect("status_changed is set");
    assert!(
        status_changed > alive.status_changed.expect("set when inserted"),
        "status_changed moves on termination"
    );
    assert!(status_changed >= stopping - chrono::Duration::seconds(1));
    assert!(row.lost_at.is_some(), "lost_at is set on termination");
    assert_eq!(harness.last_seen("i-revive").await, None);
    assert!(harness.last_seen("i-other").await.is_some());
    assert_eq!(harness.image_holders().await, ["i-other"]);
    assert_eq!(
        harness.alive_row("i-other").await.status,
        AgentStatus::Alive
    );

    let stream_before = harness.stream_end().await;
    heartbeat(&registry, "i-revive", &info).await;
    let row = harness.alive_row("i-revive").await;
    assert_eq!(row.status, AgentStatus::Alive);
    assert_eq!(row.lost_at, None);
    assert_eq!(
        row.first_contact, alive.first_contact,
        "first contact stays"
    );
    assert!(harness.last_seen("i-revive").await.is_some());
    assert_eq!(harness.image_holders().await, ["i-other", "i-revive"]);

    let events = harness.events_after(stream_before).await;
    assert_eq!(
        events,
        [(
            "agent_started".to_owned(),
            "i-revive".to_owned(),
            Event::AgentStarted {
                reason: "revived".to_owned()
            }
        )]
    );
    // Read from the very start too: the revival is the only agent_started ever added.
    let all = harness.events_after(EntryId::ZERO).await;
    assert_eq!(
        all.iter()
            .filter(|(name, _, _)| name == "agent_started")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_heartbeat_sent_before_the_termination_revives_nothing() {
    let harness = Harness::new("agents_stale_heartbeat").await;
    let registry = harness.registry();
    let info = agent_info("default");
    heartbeat(&registry, "i-stale", &info).await;
    terminated(&registry, "i-stale", "shutdown").await;
    let gone = harness.alive_row("i-stale").await;
    let status_changed = gone
        .status_changed
        .expect("status_changed is set")
        .with_timezone(&Utc);
    let stream_before = harness.stream_end().await;

    // Delivered late (e.g. again after a manager restart), sent before the agent stopped.
    heartbeat_sent_at(
        &registry,
        "i-stale",
        &info,
        status_changed - chrono::Duration::seconds(1),
    )
    .await;
    assert_eq!(harness.alive_row("i-stale").await, gone);
    assert_eq!(harness.last_seen("i-stale").await, None);
    assert!(harness.image_holders().await.is_empty());
    assert!(harness.events_after(stream_before).await.is_empty());

    // One sent after it is a revival.
    heartbeat_sent_at(
        &registry,
        "i-stale",
        &info,
        status_changed + chrono::Duration::milliseconds(1),
    )
    .await;
    assert_eq!(
        harness.alive_row("i-stale").await.status,
        AgentStatus::Alive
    );
}

#[tokio::test]
async fn lost_restarting_and_started_agents_change_status_as_the_reference() {
    let harness = Harness::new("agents_status_transitions").await;
    let registry = harness.registry();
    let info = agent_info("default");
    heartbeat(&registry, "i-status", &info).await;

    terminated(&registry, "i-status", "agent-lost").await;
    let lost = harness.alive_row("i-status").await;
    assert_eq!(lost.status, AgentStatus::Lost);
    assert!(lost.lost_at.is_some());
    assert_eq!(harness.last_seen("i-status").await, None);
    assert!(harness.image_holders().await.is_empty());
    // Reported lost again (another node's check): nothing moves.
    terminated(&registry, "i-status", "agent-lost").await;
    assert_eq!(harness.alive_row("i-status").await, lost);
    // A shutdown of a lost agent leaves it lost (the reference's `mark_agent_terminated`).
    terminated(&registry, "i-status", "shutdown").await;
    assert_eq!(harness.alive_row("i-status").await, lost);

    heartbeat(&registry, "i-status", &info).await;
    assert_eq!(
        harness.alive_row("i-status").await.status,
        AgentStatus::Alive
    );

    terminated(&registry, "i-status", "agent-restart").await;
    let restarting = harness.alive_row("i-status").await;
    assert_eq!(restarting.status, AgentStatus::Restarting);
    let mut newer = info.clone();
    newer.version = "24.03.12".to_owned();
    heartbeat(&registry, "i-status", &newer).await;
    assert_eq!(
        harness.alive_row("i-status").await,
        restarting,
        "a heartbeat leaves a restarting agent as it is"
    );

    started(&registry, "i-status", "self-started").await;
    let alive = harness.alive_row("i-status").await;
    assert_eq!(alive.status, AgentStatus::Alive);
    assert_eq!(
        alive.status_changed, restarting.status_changed,
        "agent_started does not touch status_changed"
    );
    assert_eq!(alive.version, "24.03.11");
    // From here on heartbeats update it again.
    heartbeat(&registry, "i-status", &newer).await;
    assert_eq!(harness.alive_row("i-status").await.version, "24.03.12");

    // agent_started of an agent without a row inserts nothing.
    started(&registry, "i-unknown", "self-started").await;
    assert_eq!(harness.row("i-unknown").await, None);
    assert_eq!(harness.agent_count().await, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn heartbeats_of_an_unknown_resource_group_are_dropped_with_one_warning() {
    let logs = CapturedLogs::start("bai_agents=warn");

    let harness = Harness::new("agents_unknown_group").await;
    let registry = harness.registry();
    let info = agent_info("gpu-nodes");
    for _ in 0..3 {
        heartbeat(&registry, "i-orphan", &info).await;
    }
    assert_eq!(harness.row("i-orphan").await, None);
    assert_eq!(harness.agent_count().await, 0);
    assert_eq!(harness.last_seen("i-orphan").await, None);
    let warnings: Vec<String> = logs
        .text()
        .lines()
        .filter(|line| line.contains("WARN"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning, not one per heartbeat: {warnings:?}"
    );
    assert!(
        warnings[0].contains("i-orphan") && warnings[0].contains("gpu-nodes"),
        "the warning names the agent and the group: {}",
        warnings[0]
    );

    scaling_groups::create(
        &harness.stores.db,
        "gpu-nodes",
        NewScalingGroup {
            description: Some("created after the agent".to_owned()),
            is_active: true,
            is_public: true,
            wsproxy_addr: None,
            wsproxy_api_token: None,
            driver: "static".to_owned(),
            driver_opts: serde_json::json!({}),
            scheduler: "fifo".to_owned(),
            scheduler_opts: serde_json::json!({}),
            use_host_network: false,
        },
    )
    .await
    .expect("creating the resource group");
    heartbeat(&registry, "i-orphan", &info).await;
    let row = harness.alive_row("i-orphan").await;
    assert_eq!(row.status, AgentStatus::Alive);
    assert_eq!(row.scaling_group, "gpu-nodes");
    assert!(harness.last_seen("i-orphan").await.is_some());
    assert_eq!(
        logs.text()
            .lines()
            .filter(|line| line.contains("WARN"))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lost_check_of_two_nodes_reports_a_silent_agent_once() {
    let harness = Harness::new("agents_lost_check").await;
    let node_a = harness.registry();
    let other_stores = harness.other_node().await;
    let node_b = AgentRegistry::new(&other_stores, Default::default());
    let info = agent_info("default");
    heartbeat(&node_a, "i-silent", &info).await;
    heartbeat(&node_b, "i-fresh", &info).await;
    let timeout = Duration::from_secs(40);

    let stream_before = harness.stream_end().await;
    let long_ago = format!("{:.6}", unix_now() - 100.0);
    let rounds = 10;
    for round in 0..rounds {
        harness
            .stores
            .redis
            .live
            .raw()
            .hset(LAST_SEEN, &[("i-silent", long_ago.as_str())])
            .await
            .expect("HSET agent.last_seen");
        let (a, b) = tokio::join!(node_a.check_lost(timeout), node_b.check_lost(timeout));
        let reported = a.expect("node A's check") + b.expect("node B's check");
        assert_eq!(reported, 1, "round {round}: one of the nodes reports it");
        assert_eq!(harness.last_seen("i-silent").await, None);
    }
    let events = harness.events_after(stream_before).await;
    assert_eq!(events.len(), rounds, "{events:?}");
    for (name, source, event) in &events {
        assert_eq!(name, "agent_terminated");
        assert_eq!(source, "i-silent");
        assert_eq!(
            event,
            &Event::AgentTerminated {
                reason: "agent-lost".to_owned()
            }
        );
    }
    assert!(harness.last_seen("i-fresh").await.is_some());

    // The loss is handled (by whichever node consumes the event).
    terminated(&node_b, "i-silent", "agent-lost").await;
    let row = harness.alive_row("i-silent").await;
    assert_eq!(row.status, AgentStatus::Lost);
    assert!(row.lost_at.is_some());
    assert_eq!(
        harness.alive_row("i-fresh").await.status,
        AgentStatus::Alive
    );

    let stream_before = harness.stream_end().await;
    let (a, b) = tokio::join!(node_a.check_lost(timeout), node_b.check_lost(timeout));
    assert_eq!(a.expect("node A's check") + b.expect("node B's check"), 0);
    assert!(harness.events_after(stream_before).await.is_empty());
    other_stores.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_heartbeats_insert_one_row() {
    let harness = Harness::new("agents_concurrent_first").await;
    let node_a = harness.registry();
    let other_stores = harness.other_node().await;
    let node_b = AgentRegistry::new(&other_stores, Default::default());
    let info = agent_info("default");
    let agent_ids: Vec<String> = (0..8).map(|index| format!("i-twin-{index}")).collect();
    for agent_id in &agent_ids {
        let now = Utc::now();
        let (a, b) = tokio::join!(
            node_a.handle_heartbeat(agent_id, &info, now),
            node_b.handle_heartbeat(agent_id, &info, now)
        );
        a.unwrap_or_else(|error| panic!("node A's heartbeat of {agent_id}: {error}"));
        b.unwrap_or_else(|error| panic!("node B's heartbeat of {agent_id}: {error}"));
        let row = harness.alive_row(agent_id).await;
        assert_eq!(row.status, AgentStatus::Alive);
        assert!(harness.last_seen(agent_id).await.is_some());
    }
    assert_eq!(harness.agent_count().await, agent_ids.len() as u64);
    assert_eq!(harness.image_holders().await, agent_ids);

    // Make the two meet at the insert for sure: a third transaction holds the agent's id
    // (inserted, not committed) until both heartbeats wait for it, then gives it up. Both have
    // found no row by then; one inserts, the other's insert finds the id taken.
    let blocker = harness.stores.db.begin().await.expect("BEGIN");
    blocker
        .execute_unprepared(
            "INSERT INTO agents (id, status, region, available_slots, occupied_slots, addr, \
             version, architecture, compute_plugins) VALUES ('i-race', 'ALIVE', 'local', '{}', \
             '{}', 'tcp://10.9.9.9:6001', '0', 'x86_64', '{}')",
        )
        .await
        .expect("holding the agent's id");
    let now = Utc::now();
    let (a, b, ()) = tokio::join!(
        node_a.handle_heartbeat("i-race", &info, now),
        node_b.handle_heartbeat("i-race", &info, now),
        async {
            wait_for(
                "both heartbeats waiting for the uncommitted row",
                Duration::from_secs(5),
                || async { sessions_waiting_for_a_lock(&harness).await >= 2 },
            )
            .await;
            blocker.rollback().await.expect("ROLLBACK");
        }
    );
    a.unwrap_or_else(|error| panic!("node A's heartbeat of i-race: {error}"));
    b.unwrap_or_else(|error| panic!("node B's heartbeat of i-race: {error}"));
    let row = harness.alive_row("i-race").await;
    assert_eq!(row.status, AgentStatus::Alive);
    assert_eq!(row.addr, info.addr);
    assert_eq!(row.version, info.version);
    assert_eq!(harness.agent_count().await, agent_ids.len() as u64 + 1);
    // Nothing was revived: a concurrent insert is not a revival.
    assert!(
        harness
            .events_after(EntryId::ZERO)
            .await
            .iter()
            .all(|(name, _, _)| name != "agent_started")
    );
    other_stores.close().await;
}

/// How many sessions on the test database wait for a lock.
async fn sessions_waiting_for_a_lock(harness: &Harness) -> i64 {
    harness
        .stores
        .db
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS waiting FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        ))
        .await
        .expect("reading pg_stat_activity")
        .expect("a count")
        .try_get("", "waiting")
        .expect("the count")
}

async fn wait_for<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handlers_run_on_a_consumer_of_the_event_bus() {
    let harness = Harness::new("agents_event_bus").await;
    let registry = Arc::new(harness.registry());
    let mut handlers = Handlers::default();
    bai_agents::handlers(&registry, &mut handlers);
    // The group reads from the moment it exists: create it before anything is produced.
    harness
        .stores
        .redis
        .stream
        .ensure_group(MANAGER_GROUP)
        .await
        .expect("creating the consumer group");
    let consumer_stream = StreamDb::connect(&harness.redis_server.config())
        .await
        .expect("a stream connection of the consumer's own");
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(run_consumer(
        consumer_stream,
        handlers,
        ConsumerOptions::new(MANAGER_GROUP, consumer_name("i-test-node", "/tmp/bai", 0)),
        shutdown.clone(),
    ));

    let producer = EventProducer::new(harness.stores.redis.stream.clone());
    producer
        .produce(
            &Event::AgentHeartbeat(Box::new(agent_info("default"))),
            "i-bus",
        )
        .await
        .expect("producing agent_heartbeat");
    wait_for("the heartbeat's row", Duration::from_secs(1), || async {
        harness.row("i-bus").await.is_some()
    })
    .await;
    let row = harness.alive_row("i-bus").await;
    assert_eq!(row.status, AgentStatus::Alive);
    assert_eq!(
        row.available_slots,
        slots(&[("cpu", "7"), ("mem", "16106127360"), ("cuda.device", "2")])
    );
    assert_eq!(row.public_key.as_deref(), Some(A_PUBLIC_KEY));
    // The row is written first; Redis follows within the same handler run.
    wait_for(
        "the agent among the image's holders",
        Duration::from_secs(1),
        || async { harness.image_holders().await == ["i-bus"] },
    )
    .await;
    assert!(harness.last_seen("i-bus").await.is_some());

    producer
        .produce(
            &Event::AgentTerminated {
                reason: "shutdown".to_owned(),
            },
            "i-bus",
        )
        .await
        .expect("producing agent_terminated");
    wait_for("the termination", Duration::from_secs(1), || async {
        harness.alive_row("i-bus").await.status == AgentStatus::Terminated
    })
    .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), consumer)
        .await
        .expect("the consumer stops on shutdown")
        .expect("the consumer task");
}
