//! Scheduling rounds against the halfstack's PostgreSQL (a fresh database with the install guide's
//! fixtures per test), a fresh etcd namespace, and a Redis server of the test's own: sessions
//! placed on agents with their slots reserved in the same transaction, the reference's
//! `status_info`/`status_data` for sessions that do not fit or fail a predicate, the events
//! announced, and a second round that finds nothing left to do.

mod common;

use std::time::Duration;

use bai_db_models::entities::enums::{KernelStatus, SessionStatus};
use bai_db_models::entities::{ResourceSlot, kernels, sessions};
use bai_db_models::testing::{INSTALL_GUIDE_FIXTURES, TestDatabase};
use bai_etcd_store::testing::TestNamespace;
use bai_events::{Event, EventProducer};
use bai_redis::testing::PrivateRedis;
use bai_redis::{EntryId, LiveDb, SchedulerStatus, StatDb, StreamDb};
use bai_sessions::{ScheduleReport, Scheduler};
use sea_orm::ConnectionTrait;
use sea_orm::prelude::Uuid;

use common::GIB;
use serde_json::json;

struct Harness {
    scheduler: Scheduler,
    stream: StreamDb,
    database: TestDatabase,
    _etcd: TestNamespace,
    _redis: PrivateRedis,
}

impl Harness {
    async fn new(label: &str) -> Harness {
        let database = TestDatabase::with_fixtures(label, &INSTALL_GUIDE_FIXTURES).await;
        let etcd = TestNamespace::new(&label.replace('_', "-"));
        let redis = PrivateRedis::start();
        let stream = StreamDb::connect(&redis.config()).await.expect("stream");
        let stat = StatDb::connect(&redis.config()).await.expect("stat");
        let live = LiveDb::connect(&redis.config()).await.expect("live");
        let scheduler = Scheduler::new(
            database.connection.clone(),
            etcd.store().await,
            stat,
            EventProducer::new(stream.clone()),
            ["cuda", "rocm", "tpu", "cpu", "mem"]
                .map(str::to_owned)
                .to_vec(),
            SchedulerStatus::new(live, "i-schedule-test"),
        );
        Harness {
            scheduler,
            stream,
            database,
            _etcd: etcd,
            _redis: redis,
        }
    }

    fn db(&self) -> &sea_orm::DatabaseConnection {
        &self.database.connection
    }

    async fn agent(&self, id: &str, cpu: u64, mem_gib: u64) {
        self.db()
            .execute_unprepared(&format!(
                "INSERT INTO agents (id, status, region, scaling_group, schedulable, \
                 available_slots, occupied_slots, addr, version, architecture, compute_plugins) \
                 VALUES ('{id}', 'ALIVE', 'local', 'default', true, \
                 '{{\"cpu\": \"{cpu}\", \"mem\": \"{mem}\"}}', '{{}}', 'tcp://{id}:6001', \
                 '24.03.11', 'x86_64', '{{}}')",
                mem = mem_gib * GIB
            ))
            .await
            .expect("agent row");
    }

    async fn pending(&self, name: &str, kernels: u32, cpu: u64, mem_gib: u64, age: u32) -> Uuid {
        common::pending(self.db(), name, kernels, cpu, mem_gib, age).await
    }

    async fn session(&self, id: Uuid) -> sessions::Model {
        common::session(self.db(), id).await
    }

    async fn kernels_of(&self, id: Uuid) -> Vec<kernels::Model> {
        common::kernels_of(self.db(), id).await
    }

    async fn occupied(&self, agent: &str) -> ResourceSlot {
        common::occupied(self.db(), agent).await
    }

    async fn event_names(&self) -> Vec<String> {
        let entries = self
            .stream
            .read_after(EntryId::ZERO, 1000, Duration::from_millis(100))
            .await
            .expect("XREAD");
        entries
            .into_iter()
            .map(|entry| {
                let event = Event::decode(
                    entry.field("name").expect("name"),
                    entry.field("args").expect("args"),
                )
                .expect("an event");
                event.name().to_owned()
            })
            .collect()
    }
}

fn slots(value: serde_json::Value) -> ResourceSlot {
    ResourceSlot::from_json(&value).expect("slots")
}

#[tokio::test]
async fn a_round_places_what_fits_and_says_why_the_rest_waits() {
    let harness = Harness::new("sessions_schedule").await;
    harness.agent("i-a", 4, 8).await;
    harness.agent("i-b", 2, 4).await;
    // Oldest first: each goes to the agent with the most room left (dispersed).
    let first = harness.pending("first", 1, 2, 2, 30).await;
    let pair = harness.pending("pair", 2, 1, 1, 20).await;
    let huge = harness.pending("huge", 1, 16, 1, 10).await;

    let report = harness.scheduler.schedule().await.expect("round");
    assert_eq!(
        report,
        ScheduleReport {
            scheduled: 2,
            failed: 1,
            cancelled: 0
        }
    );

    let row = harness.session(first).await;
    assert_eq!(row.status, SessionStatus::Scheduled);
    assert_eq!(row.status_info.as_deref(), Some("scheduled"));
    assert_eq!(row.agent_ids, Some(vec!["i-a".to_owned()]));
    assert!(row.status_history.expect("history")["SCHEDULED"].is_string());
    for kernel in harness.kernels_of(first).await {
        assert_eq!(kernel.status, KernelStatus::Scheduled);
        assert_eq!(kernel.agent.as_deref(), Some("i-a"));
        assert_eq!(kernel.agent_addr.as_deref(), Some("tcp://i-a:6001"));
    }
    // After `first`, i-a has 2 cores and 6 GiB left, i-b 2 and 4: i-a has more.
    let row = harness.session(pair).await;
    assert_eq!(row.agent_ids, Some(vec!["i-a".to_owned()]));
    assert_eq!(harness.kernels_of(pair).await.len(), 2);
    assert_eq!(
        harness.occupied("i-a").await,
        slots(json!({"cpu": "4", "mem": (4 * GIB).to_string()}))
    );
    assert_eq!(harness.occupied("i-b").await, slots(json!({})));

    let row = harness.session(huge).await;
    assert_eq!(row.status, SessionStatus::Pending);
    assert_eq!(row.status_info.as_deref(), Some("no-available-instances"));
    let scheduler = &row.status_data.expect("status data")["scheduler"];
    assert_eq!(scheduler["retries"], 1);
    assert!(
        scheduler["msg"].as_str().is_some_and(|msg| !msg.is_empty()),
        "{scheduler}"
    );
    assert!(scheduler["last_try"].is_string());

    let names = harness.event_names().await;
    assert_eq!(
        names,
        ["session_scheduled", "session_scheduled", "do_prepare"]
    );

    // The next round tries the one left again and counts the retry.
    harness.scheduler.schedule().await.expect("round");
    let row = harness.session(huge).await;
    assert_eq!(row.status_data.expect("data")["scheduler"]["retries"], 2);
}

#[tokio::test]
async fn a_failed_predicate_keeps_the_session_pending_with_the_reference_message() {
    let harness = Harness::new("sessions_schedule_predicates").await;
    harness.agent("i-a", 64, 256).await;
    // The keypair's policy allows 5 concurrent sessions; six wait.
    let mut sessions = Vec::new();
    for index in 0..6 {
        sessions.push(
            harness
                .pending(&format!("s{index}"), 1, 1, 1, 60 - index)
                .await,
        );
    }
    let report = harness.scheduler.schedule().await.expect("round");
    assert_eq!(report.scheduled, 5);
    let last = harness.session(sessions[5]).await;
    assert_eq!(last.status, SessionStatus::Pending);
    assert_eq!(last.status_info.as_deref(), Some("predicate-checks-failed"));
    let scheduler = &last.status_data.expect("status data")["scheduler"];
    assert_eq!(
        scheduler["failed_predicates"],
        json!([{"name": "concurrency", "msg": "You cannot run more than 5 concurrent sessions"}])
    );
    assert_eq!(scheduler["retries"], 1);
}

#[tokio::test]
async fn pending_timeouts_apply_in_groups_without_agents() {
    let harness = Harness::new("sessions_schedule_timeout").await;
    harness
        .db()
        .execute_unprepared(
            "UPDATE scaling_groups SET scheduler_opts = \
             jsonb_set(scheduler_opts, '{pending_timeout}', '30') WHERE name = 'default'",
        )
        .await
        .expect("a pending timeout of 30 s");
    let stale = harness.pending("stale", 1, 1, 1, 60).await;
    let fresh = harness.pending("fresh", 1, 1, 1, 5).await;

    let report = harness.scheduler.schedule().await.expect("round");
    assert_eq!(report.cancelled, 1);
    let row = harness.session(stale).await;
    assert_eq!(row.status, SessionStatus::Cancelled);
    assert_eq!(row.status_info.as_deref(), Some("pending-timeout"));
    assert!(row.terminated_at.is_some());
    for kernel in harness.kernels_of(stale).await {
        assert_eq!(kernel.status, KernelStatus::Cancelled);
    }
    // Without agents nothing else is tried: no retry is counted.
    let row = harness.session(fresh).await;
    assert_eq!(row.status, SessionStatus::Pending);
    assert_eq!(row.status_info, None);
    assert_eq!(harness.event_names().await, ["session_cancelled"]);
}
