//! From PENDING to RUNNING and back on simulated agents: a scheduling round, `prepare()` calling
//! `create_kernels` on agent-sim over RPC, the agent's `kernel_*` events handled by a real
//! consumer of the event bus (with the agent registry, whose heartbeats made the agent's row),
//! and a session whose agent fails `create_kernels` ending CANCELLED with its slots released.
//!
//! Against the halfstack's PostgreSQL (a fresh database with the install guide's fixtures) and
//! etcd (a fresh namespace), and a Redis server of each test's own.

mod common;

use std::time::Duration;

use bai_agent_sim::Faults;
use bai_db_models::entities::enums::{KernelStatus, SessionStatus};
use bai_db_models::entities::{ResourceSlot, kernels, sessions};
use bai_events::Event;
use bai_redis::SchedulerStatus;
use bai_sessions::{Scheduler, Starter};
use sea_orm::prelude::Uuid;

use common::GIB;
use common::stack::{self, Stack};

/// The manager id the harness records its scheduler status under.
const MANAGER_ID: &str = "i-start-test";

const AGENT: &str = "i-start";

struct Harness {
    scheduler: Scheduler,
    starter: Starter,
    /// What the scheduler and the starter record of their runs.
    status: SchedulerStatus,
    stack: Stack,
}

impl Harness {
    /// The stores, one agent-sim agent (4 cores, 8 GiB) with `faults`, and a consumer running
    /// the agent registry's and the lifecycle's handlers; returns once the agent's row is ALIVE.
    async fn new(label: &str, faults: Faults) -> Harness {
        let stack = Stack::with_alive_agent(label, Duration::from_secs(20), AGENT, faults).await;
        let status = stack.status(MANAGER_ID);
        Harness {
            scheduler: stack.scheduler(&["cpu", "mem"], status.clone()),
            starter: stack.starter(status.clone(), Duration::from_secs(10)),
            status,
            stack,
        }
    }

    fn db(&self) -> &sea_orm::DatabaseConnection {
        self.stack.db()
    }

    /// A PENDING single-node session of `kernels` kernels of one core and 1 GiB each.
    async fn pending(&self, name: &str, kernels: u32) -> Uuid {
        common::pending(self.db(), name, kernels, 1, 1, 0).await
    }

    async fn session(&self, id: Uuid) -> sessions::Model {
        common::session(self.db(), id).await
    }

    async fn kernels_of(&self, id: Uuid) -> Vec<kernels::Model> {
        common::kernels_of(self.db(), id).await
    }

    async fn occupied(&self) -> ResourceSlot {
        common::occupied(self.db(), AGENT).await
    }

    /// The names of the session-level events on the stream.
    async fn session_events(&self) -> Vec<String> {
        self.stack
            .stream_entries()
            .await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_runs_on_its_agent_and_holds_what_the_agent_allocated() {
    let harness = Harness::new("sessions_start", Faults::default()).await;
    let session = harness.pending("pair", 2).await;

    let report = harness.scheduler.schedule().await.expect("round");
    assert_eq!(report.scheduled, 1);
    assert_eq!(harness.starter.prepare().await.expect("prepare"), 1);
    harness
        .stack
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
    let agent = harness.stack.rpc.get(AGENT).await.expect("connection");
    let exists = agent
        .create_local_network(&network)
        .await
        .expect_err("made");
    assert!(exists.to_string().contains("already exists"), "{exists}");
    stack::destroy(&harness.starter.destroyer(), session).await;
    harness
        .stack
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
