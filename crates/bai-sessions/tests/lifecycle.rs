//! The kernel events of a two-kernel session against the halfstack's PostgreSQL (a fresh database
//! with the install guide's fixtures per test) and a Redis server of the test's own (the event
//! stream's key is fixed by the protocol): PULLING, PREPARING, RUNNING with the agent's real
//! allocation and `session_started`, then TERMINATED with the slots released and
//! `session_terminated`; and an event delivered twice counting once.

mod common;

use std::time::Duration;

use bai_db_models::entities::enums::{KernelStatus, SessionStatus};
use bai_db_models::entities::{ResourceSlot, kernels, sessions};
use bai_db_models::testing::{INSTALL_GUIDE_FIXTURES, TestDatabase};
use bai_events::{Event, EventProducer, KernelCreation, KernelTermination};
use bai_redis::testing::PrivateRedis;
use bai_redis::{EntryId, StatDb, StreamDb};
use bai_sessions::Lifecycle;
use sea_orm::prelude::Uuid;
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::json;

use common::{ACCESS_KEY, GROUP, USER};

const AGENT: &str = "i-lifecycle";

struct Harness {
    lifecycle: Lifecycle,
    stream: StreamDb,
    database: TestDatabase,
    _redis: PrivateRedis,
}

impl Harness {
    async fn new(label: &str) -> Harness {
        let database = TestDatabase::with_fixtures(label, &INSTALL_GUIDE_FIXTURES).await;
        let redis = PrivateRedis::start();
        let stream = StreamDb::connect(&redis.config()).await.expect("stream");
        let stat = StatDb::connect(&redis.config()).await.expect("stat");
        let lifecycle = Lifecycle::new(
            database.connection.clone(),
            EventProducer::new(stream.clone()),
            stat,
        );
        Harness {
            lifecycle,
            stream,
            database,
            _redis: redis,
        }
    }

    fn db(&self) -> &sea_orm::DatabaseConnection {
        &self.database.connection
    }

    /// An agent holding the two kernels of a PREPARING session, one core each.
    async fn preparing_session(&self) -> (Uuid, [Uuid; 2]) {
        let db = self.db();
        db.execute_unprepared(&format!(
            "INSERT INTO agents (id, status, region, scaling_group, schedulable, available_slots, \
             occupied_slots, addr, version, architecture, compute_plugins) VALUES ('{AGENT}', \
             'ALIVE', 'local', 'default', true, '{{\"cpu\": \"4\"}}', '{{\"cpu\": \"2\"}}', \
             'tcp://127.0.0.1:6001', '24.03.11', 'x86_64', '{{}}')"
        ))
        .await
        .expect("agent row");
        let session = Uuid::new_v4();
        let kernels = [Uuid::new_v4(), Uuid::new_v4()];
        db.execute_unprepared(&format!(
            "INSERT INTO sessions (id, creation_id, name, cluster_size, domain_name, group_id, \
             user_uuid, access_key, occupying_slots, requested_slots, use_host_network, status, \
             status_history) VALUES ('{session}', 'creation-1', 's1', 2, 'default', '{GROUP}', \
             '{USER}', '{ACCESS_KEY}', '{{}}', '{{\"cpu\": \"2\"}}', false, 'PREPARING', \
             '{{\"PENDING\": \"2024-01-01T00:00:00+00:00\"}}')"
        ))
        .await
        .expect("session row");
        for (index, (kernel, role)) in kernels.iter().zip(["main", "sub"]).enumerate() {
            db.execute_unprepared(&format!(
                "INSERT INTO kernels (id, session_id, cluster_size, cluster_role, cluster_idx, \
                 local_rank, cluster_hostname, domain_name, group_id, user_uuid, access_key, \
                 agent, agent_addr, occupied_slots, requested_slots, occupied_shares, \
                 repl_in_port, repl_out_port, stdin_port, stdout_port, use_host_network, status) \
                 VALUES ('{kernel}', '{session}', 2, '{role}', {index}, {index}, \
                 '{role}{index}', 'default', '{GROUP}', '{USER}', '{ACCESS_KEY}', '{AGENT}', \
                 'tcp://127.0.0.1:6001', '{{\"cpu\": \"1\"}}', '{{\"cpu\": \"1\"}}', '{{}}', 0, \
                 0, 0, 0, false, 'PREPARING')"
            ))
            .await
            .expect("kernel row");
        }
        (session, kernels)
    }

    async fn kernel(&self, id: Uuid) -> kernels::Model {
        kernels::Entity::find_by_id(id)
            .one(self.db())
            .await
            .expect("query")
            .expect("kernel")
    }

    async fn session(&self, id: Uuid) -> sessions::Model {
        common::session(self.db(), id).await
    }

    async fn agent_occupied(&self) -> ResourceSlot {
        common::occupied(self.db(), AGENT).await
    }

    /// The names of the events on the stream after `after`.
    async fn events_after(&self, after: &mut EntryId) -> Vec<Event> {
        let entries = self
            .stream
            .read_after(*after, 100, Duration::from_millis(100))
            .await
            .expect("XREAD");
        entries
            .into_iter()
            .map(|entry| {
                *after = entry.id;
                Event::decode(
                    entry.field("name").expect("name"),
                    entry.field("args").expect("args"),
                )
                .expect("an event")
            })
            .collect()
    }
}

fn creation(session: Uuid, kernel: Uuid, reason: &str, info: serde_json::Value) -> KernelCreation {
    KernelCreation {
        kernel_id: kernel,
        session_id: session,
        reason: reason.to_owned(),
        creation_info: info,
    }
}

/// `creation_info` as agent-sim and the dummy agent report it: one core and 1 GiB allocated.
fn started_info(kernel: Uuid) -> serde_json::Value {
    json!({
        "id": kernel.to_string(),
        "kernel_host": "127.0.0.1",
        "repl_in_port": 2000,
        "repl_out_port": 2001,
        "stdin_port": 2002,
        "stdout_port": 2003,
        "service_ports": [],
        "container_id": "",
        "resource_spec": {
            "allocations": {"cpu": {"cpu": {"0": "1"}}, "mem": {"mem": {"root": "1073741824"}}},
        },
        "scaling_group": "default",
        "agent_addr": "tcp://127.0.0.1:6001",
        "attached_devices": {},
    })
}

fn slots(value: serde_json::Value) -> ResourceSlot {
    ResourceSlot::from_json(&value).expect("slots")
}

#[tokio::test]
async fn kernel_events_take_a_session_to_running_and_to_its_end() {
    let harness = Harness::new("sessions_lifecycle").await;
    let (session, [main, sub]) = harness.preparing_session().await;
    let lifecycle = &harness.lifecycle;
    let mut after = EntryId::ZERO;

    let image = "cr.backend.ai/stable/python:3.9-ubuntu20.04";
    lifecycle
        .kernel_pulling(&creation(session, main, image, json!({})))
        .await
        .expect("pulling");
    let pulling = harness.kernel(main).await;
    assert_eq!(pulling.status, KernelStatus::Pulling);
    assert_eq!(pulling.status_info.as_deref(), Some(image));
    assert_eq!(
        harness.session(session).await.status,
        SessionStatus::Pulling
    );

    lifecycle
        .kernel_creating(&creation(session, main, "", json!({})))
        .await
        .expect("creating");
    assert_eq!(harness.kernel(main).await.status, KernelStatus::Preparing);
    assert_eq!(
        harness.session(session).await.status,
        SessionStatus::Preparing
    );

    lifecycle
        .kernel_started(AGENT, &creation(session, main, "", started_info(main)))
        .await
        .expect("main started");
    let running = harness.kernel(main).await;
    assert_eq!(running.status, KernelStatus::Running);
    assert_eq!(running.repl_out_port, 2001);
    assert_eq!(running.kernel_host.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        running.occupied_slots,
        slots(json!({"cpu": "1", "mem": "1073741824"}))
    );
    // The sub kernel is still preparing: so is the session, and nobody was told it started.
    assert_eq!(
        harness.session(session).await.status,
        SessionStatus::Preparing
    );
    assert!(harness.events_after(&mut after).await.is_empty());

    lifecycle
        .kernel_started(AGENT, &creation(session, sub, "", started_info(sub)))
        .await
        .expect("sub started");
    // Delivered again (a consumer taking the entry over): counted once.
    lifecycle
        .kernel_started(AGENT, &creation(session, sub, "", started_info(sub)))
        .await
        .expect("sub started again");
    let row = harness.session(session).await;
    assert_eq!(row.status, SessionStatus::Running);
    assert_eq!(
        row.occupying_slots,
        slots(json!({"cpu": "2", "mem": "2147483648"}))
    );
    match harness.events_after(&mut after).await.as_slice() {
        [Event::SessionStarted(started)] => {
            assert_eq!(started.session_id, session);
            assert_eq!(started.creation_id, "creation-1");
        }
        other => panic!("expected one session_started, got {other:?}"),
    }

    // What destroying the session does first (its own tests come with it): every kernel and the
    // session TERMINATING.
    common::set_terminating(harness.db(), session).await;
    let terminated = |kernel| KernelTermination {
        kernel_id: kernel,
        session_id: session,
        reason: "user-requested".to_owned(),
        exit_code: 0,
    };
    lifecycle
        .kernel_terminated(&terminated(main))
        .await
        .expect("main terminated");
    // The sub kernel still holds what the agent gave it.
    assert_eq!(
        harness.agent_occupied().await,
        slots(json!({"cpu": "1", "mem": "1073741824"}))
    );
    assert_eq!(
        harness.session(session).await.status,
        SessionStatus::Terminating
    );
    assert!(harness.events_after(&mut after).await.is_empty());
    lifecycle
        .kernel_terminated(&terminated(sub))
        .await
        .expect("sub terminated");
    let row = harness.session(session).await;
    assert_eq!(row.status, SessionStatus::Terminated);
    assert_eq!(row.status_info.as_deref(), Some("user-requested"));
    assert!(row.terminated_at.is_some());
    assert_eq!(harness.agent_occupied().await, slots(json!({})));
    let kernel = harness.kernel(sub).await;
    assert_eq!(kernel.status, KernelStatus::Terminated);
    assert_eq!(kernel.status_data.expect("data")["kernel"]["exit_code"], 0);
    match harness.events_after(&mut after).await.as_slice() {
        [Event::SessionTerminated(over)] => {
            assert_eq!(over.session_id, session);
            assert_eq!(over.reason, "user-requested");
        }
        other => panic!("expected one session_terminated, got {other:?}"),
    }
    // A late pull changes nothing any more.
    lifecycle
        .kernel_pulling(&creation(session, main, image, json!({})))
        .await
        .expect("late pulling");
    assert_eq!(
        harness.session(session).await.status,
        SessionStatus::Terminated
    );
}

#[tokio::test]
async fn an_unusable_creation_info_is_an_error_naming_the_kernel() {
    let harness = Harness::new("sessions_lifecycle_bad_info").await;
    let (session, [main, _]) = harness.preparing_session().await;
    let mut info = started_info(main);
    info["repl_in_port"] = json!("two thousand");
    let error = harness
        .lifecycle
        .kernel_started(AGENT, &creation(session, main, "", info))
        .await
        .expect_err("no port");
    let text = error.to_string();
    assert!(
        text.contains(&main.to_string()) && text.contains("repl_in_port"),
        "{text}"
    );
    assert_eq!(harness.kernel(main).await.status, KernelStatus::Preparing);
}

/// Two nodes handle one kernel's `kernel_creating` and `kernel_started` at once (consecutive
/// entries read by different consumers): the creating node's session recompute runs after the
/// starting node's kernel commit and before its recompute. The session still goes RUNNING by the
/// `kernel_started` recompute, which announces it; before, the `kernel_creating` recompute took it
/// there silently and `session_started` was never produced.
#[tokio::test]
async fn a_late_kernel_creating_leaves_running_to_kernel_started() {
    use sea_orm::TransactionTrait;

    let harness = Harness::new("sessions_lifecycle_creating_race").await;
    let (session, [main, sub]) = harness.preparing_session().await;
    let lifecycle = &harness.lifecycle;
    let mut after = EntryId::ZERO;
    let image = "cr.backend.ai/stable/python:3.9-ubuntu20.04";
    lifecycle
        .kernel_pulling(&creation(session, main, image, json!({})))
        .await
        .expect("pulling");
    lifecycle
        .kernel_started(AGENT, &creation(session, sub, "", started_info(sub)))
        .await
        .expect("sub started");
    assert_eq!(
        harness.session(session).await.status,
        SessionStatus::Pulling
    );

    // The starting node's commit, made while the creating node's recompute waits for the
    // session's row lock (held here as the starting node's transaction holds it).
    let starting_node = harness.db().begin().await.expect("BEGIN");
    starting_node
        .execute_unprepared(&format!(
            "SELECT id FROM sessions WHERE id = '{session}' FOR UPDATE"
        ))
        .await
        .expect("session row lock");
    let main_creating = creation(session, main, "", json!({}));
    let creating = lifecycle.kernel_creating(&main_creating);
    let start_meanwhile = async {
        common::wait_until("main PREPARING again", Duration::from_secs(10), || async {
            harness.kernel(main).await.status == KernelStatus::Preparing
        })
        .await;
        common::wait_until(
            "the recompute waits for the session's lock",
            Duration::from_secs(10),
            || async {
                let waiting = harness
                    .db()
                    .query_one(sea_orm::Statement::from_string(
                        sea_orm::DatabaseBackend::Postgres,
                        "SELECT count(*) AS n FROM pg_stat_activity \
                         WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    ))
                    .await
                    .expect("pg_stat_activity")
                    .expect("a row");
                waiting.try_get::<i64>("", "n").expect("n") > 0
            },
        )
        .await;
        starting_node
            .execute_unprepared(&format!(
                "UPDATE kernels SET status = 'RUNNING' WHERE id = '{main}'"
            ))
            .await
            .expect("main RUNNING");
        starting_node.commit().await.expect("COMMIT");
    };
    let (created, ()) = tokio::join!(creating, start_meanwhile);
    created.expect("creating");
    assert_ne!(
        harness.session(session).await.status,
        SessionStatus::Running
    );

    // The starting node's handler goes on: its recompute takes the session to RUNNING.
    lifecycle
        .kernel_started(AGENT, &creation(session, main, "", started_info(main)))
        .await
        .expect("main started");
    assert_eq!(
        harness.session(session).await.status,
        SessionStatus::Running
    );
    let started: Vec<Uuid> = harness
        .events_after(&mut after)
        .await
        .into_iter()
        .filter_map(|event| match event {
            Event::SessionStarted(creation) => Some(creation.session_id),
            _ => None,
        })
        .collect();
    assert_eq!(started, [session]);
}
