//! Batch sessions on simulated agents: the startup command reaches the agent, a 24.03 agent is
//! sent `trigger_batch_execution` once the session is RUNNING and a 23.09 agent is not (it starts
//! the command itself), `session_success` / `session_failure` set the session's `result` and end
//! it (`task-finished`), a dependent session waits for its dependency's success, and `starts_at`
//! holds a session back.
//!
//! Against the halfstack's PostgreSQL (a fresh database with the install guide's fixtures) and
//! etcd (a fresh namespace), and a Redis server of each test's own. The agents are agent-sim's,
//! never the real dummy agent, whose batch loop never yields (spec §5.1). Where an agent-sim with
//! the local runner runs the command, the agent's own `session_success`/`session_failure` end the
//! session; where it does not, the test puts those events on the bus itself, as an agent would.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bai_agent_sim::{AgentBehaviour, CodeRunner, LocalRunnerOptions, RpcOptions, SimOptions};
use bai_db_models::entities::enums::{SessionResult, SessionStatus};
use bai_events::{ConsumerOptions, Event, Handlers, MANAGER_GROUP, SessionResult as BatchEnd};
use bai_sessions::{
    BatchResults, BatchTrigger, Destroyer, Scheduler, Starter, TASK_FINISHED, trigger_batch,
};
use sea_orm::ConnectionTrait;
use sea_orm::prelude::Uuid;

use common::GIB;
use common::stack::Stack;

const MANAGER_ID: &str = "i-batch-test";

struct Harness {
    scheduler: Scheduler,
    starter: Starter,
    stack: Stack,
    _scratch: tempfile::TempDir,
}

impl Harness {
    /// The stores, agent `agent` of 4 cores and 8 GiB saying it is release `version` (with the
    /// local runner when `local_runner`), and a consumer running the agent registry's, the
    /// lifecycle's and the batch results' handlers; returns once the agent's row is ALIVE.
    async fn new(label: &str, agent: &str, version: &str, local_runner: bool) -> Harness {
        let stack = Stack::new(label, Duration::from_secs(30)).await;
        stack.image("x86_64", false, "{}").await;
        let scratch = tempfile::tempdir().expect("scratch");
        let config = stack.agent_config(agent, bai_agent_rpc::testing::free_ports(1), "", "");
        let behaviour = AgentBehaviour {
            runner: if local_runner {
                CodeRunner::Local(LocalRunnerOptions {
                    scratch_root: scratch.path().to_owned(),
                    // Test machines run as root; the commands are the tests' own.
                    allow_root: true,
                })
            } else {
                CodeRunner::Dummy
            },
            version: version.to_owned(),
        };
        let options = SimOptions {
            agents: None,
            cpu: 4,
            mem: 8 * GIB,
            stamp_version: false,
        };
        let rpc = RpcOptions {
            delay: Duration::from_millis(20),
            ..RpcOptions::default()
        };
        let sims = bai_agent_sim::agents_with_behaviour(&config, &options, rpc, &behaviour)
            .expect("agents");
        stack.run_agents(config, sims);
        consume_with_batches(&stack).await;
        let status = stack.status(MANAGER_ID);
        let harness = Harness {
            scheduler: stack.scheduler(&["cpu", "mem"], status.clone()),
            starter: stack.starter(status, Duration::from_secs(10)),
            stack,
            _scratch: scratch,
        };
        harness
            .stack
            .wait_until("the agent's row is ALIVE", || async {
                common::agent_row(harness.db(), agent).await.is_some()
            })
            .await;
        harness
    }

    fn db(&self) -> &sea_orm::DatabaseConnection {
        self.stack.db()
    }

    /// Schedules and starts what is pending.
    async fn run_round(&self) -> usize {
        let report = self.scheduler.schedule().await.expect("round");
        self.starter.prepare().await.expect("prepare");
        report.scheduled
    }

    async fn wait_for(&self, session: Uuid, status: SessionStatus) {
        self.stack
            .wait_until(&format!("the session is {status:?}"), || async {
                common::session(self.db(), session).await.status == status
            })
            .await;
    }
}

/// A consumer of the stack's bus with the agent registry's, the lifecycle's and the batch
/// results' handlers (the stack's own `consume` has no batch handlers). It reads on the stores'
/// stream connection, which nothing else of the test blocks on.
async fn consume_with_batches(stack: &Stack) {
    let lifecycle = Arc::new(stack.lifecycle());
    let destroyer = Destroyer::new(
        stack.db().clone(),
        stack.producer.clone(),
        stack.stores.redis.stat.clone(),
        Arc::clone(&stack.rpc),
    );
    let results = Arc::new(BatchResults::new(stack.db().clone(), destroyer));
    let mut handlers = Handlers::default();
    bai_agents::handlers(&stack.registry, &mut handlers);
    bai_sessions::handlers(&lifecycle, &mut handlers);
    bai_sessions::batch_handlers(&results, &mut handlers);
    let options = ConsumerOptions::new(MANAGER_GROUP, "test:0".to_owned());
    tokio::spawn(bai_events::run_consumer(
        stack.stores.redis.stream.clone(),
        handlers,
        options,
        stack.shutdown.clone(),
    ));
}

/// A PENDING batch session of one kernel (1 core, 1 GiB) running `command`.
async fn pending_batch(db: &sea_orm::DatabaseConnection, name: &str, command: &str) -> Uuid {
    let session = common::pending(db, name, 1, 1, 1, 0).await;
    db.execute_unprepared(&format!(
        "UPDATE sessions SET session_type = 'BATCH' WHERE id = '{session}'; \
         UPDATE kernels SET session_type = 'BATCH', startup_command = '{command}' \
         WHERE session_id = '{session}'"
    ))
    .await
    .expect("batch session");
    session
}

/// The `msg` of the failed predicate `name` the last round wrote into `status_data`.
async fn predicate_message(db: &sea_orm::DatabaseConnection, session: Uuid, name: &str) -> String {
    let row = common::session(db, session).await;
    let data = row.status_data.unwrap_or_default();
    data["scheduler"]["failed_predicates"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|predicate| predicate["name"] == name)
        .and_then(|predicate| predicate["msg"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_ends_with_the_result_of_its_command_on_a_24_03_agent() {
    let harness = Harness::new("sessions_batch_24", "i-batch-24", "24.03.11", true).await;
    let ok = pending_batch(harness.db(), "batch-ok", "echo done").await;
    let failing = pending_batch(harness.db(), "batch-fails", "exit 3").await;
    assert_eq!(harness.run_round().await, 2);

    for (session, result) in [
        (ok, SessionResult::Success),
        (failing, SessionResult::Failure),
    ] {
        harness.wait_for(session, SessionStatus::Terminated).await;
        let row = common::session(harness.db(), session).await;
        assert_eq!(row.result, result, "{}", row.name.unwrap_or_default());
        assert_eq!(row.status_info.as_deref(), Some(TASK_FINISHED));
    }
    // The startup command went to the agent in the kernel's creation config.
    let kernels = common::kernels_of(harness.db(), ok).await;
    assert_eq!(kernels[0].startup_command.as_deref(), Some("echo done"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_23_09_agent_is_not_sent_trigger_batch_execution_and_runs_the_batch_itself() {
    let harness = Harness::new("sessions_batch_23", "i-batch-23", "23.09.10", true).await;
    let session = pending_batch(harness.db(), "batch-old", "true").await;
    assert_eq!(harness.run_round().await, 1);
    harness.wait_for(session, SessionStatus::Terminated).await;
    let row = common::session(harness.db(), session).await;
    assert_eq!(row.result, SessionResult::Success);
    assert_eq!(row.status_info.as_deref(), Some(TASK_FINISHED));

    // Asked again, the trigger sends nothing to a 23.09 agent.
    let trigger = trigger_batch(harness.db(), &harness.stack.rpc, session)
        .await
        .expect("trigger");
    assert_eq!(
        trigger,
        BatchTrigger::StartedByAgent {
            agent: "i-batch-23".to_owned(),
            version: "23.09.10".to_owned()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_results_on_the_bus_set_the_result_and_end_the_session() {
    // The dummy code runner: the batch never ends by itself, the test reports its end.
    let harness = Harness::new("sessions_batch_events", "i-batch-ev", "24.03.11", false).await;
    let ok = pending_batch(harness.db(), "batch-ev-ok", "true").await;
    let failing = pending_batch(harness.db(), "batch-ev-fail", "false").await;
    let interactive = common::pending(harness.db(), "interactive", 1, 1, 1, 0).await;
    assert_eq!(harness.run_round().await, 3);
    for session in [ok, failing, interactive] {
        harness.wait_for(session, SessionStatus::Running).await;
    }
    // The trigger was sent to (and accepted by) the 24.03 agent; an interactive session has
    // none.
    assert_eq!(
        trigger_batch(harness.db(), &harness.stack.rpc, ok)
            .await
            .expect("trigger"),
        BatchTrigger::Sent {
            agent: "i-batch-ev".to_owned()
        }
    );
    assert_eq!(
        trigger_batch(harness.db(), &harness.stack.rpc, interactive)
            .await
            .expect("trigger"),
        BatchTrigger::NotBatch
    );

    for (event, session) in [
        (
            Event::SessionSuccess(BatchEnd {
                session_id: ok,
                reason: "task-done".to_owned(),
                exit_code: 0,
            }),
            ok,
        ),
        (
            Event::SessionFailure(BatchEnd {
                session_id: failing,
                reason: "task-failed".to_owned(),
                exit_code: 1,
            }),
            failing,
        ),
    ] {
        harness
            .stack
            .producer
            .produce(&event, "i-batch-ev")
            .await
            .expect("produce");
        harness.wait_for(session, SessionStatus::Terminated).await;
    }
    let ok_row = common::session(harness.db(), ok).await;
    assert_eq!(ok_row.result, SessionResult::Success);
    assert_eq!(ok_row.status_info.as_deref(), Some(TASK_FINISHED));
    let failed_row = common::session(harness.db(), failing).await;
    assert_eq!(failed_row.result, SessionResult::Failure);
    assert_eq!(failed_row.status_info.as_deref(), Some(TASK_FINISHED));
    assert_eq!(
        common::session(harness.db(), interactive).await.status,
        SessionStatus::Running
    );

    // A late duplicate changes nothing on a session that is over.
    harness
        .stack
        .producer
        .produce(
            &Event::SessionFailure(BatchEnd {
                session_id: ok,
                reason: "task-failed".to_owned(),
                exit_code: 1,
            }),
            "i-batch-ev",
        )
        .await
        .expect("produce");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = common::session(harness.db(), ok).await;
    assert_eq!(again.status, SessionStatus::Terminated);
    assert_eq!(again.status_info.as_deref(), Some(TASK_FINISHED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_session_waits_for_its_dependency_to_succeed() {
    let harness = Harness::new("sessions_batch_deps", "i-batch-deps", "24.03.11", true).await;
    let first = pending_batch(harness.db(), "first", "sleep 1").await;
    let second = pending_batch(harness.db(), "second", "true").await;
    harness
        .db()
        .execute_unprepared(&format!(
            "INSERT INTO session_dependencies (session_id, depends_on) VALUES ('{second}', '{first}')"
        ))
        .await
        .expect("dependency");

    assert_eq!(harness.run_round().await, 1);
    assert_eq!(
        common::session(harness.db(), second).await.status,
        SessionStatus::Pending
    );
    assert_eq!(
        predicate_message(harness.db(), second, "dependencies").await,
        format!("Waiting dependency sessions to finish as success. (first ({first}))")
    );
    harness.wait_for(first, SessionStatus::Terminated).await;
    assert_eq!(
        common::session(harness.db(), first).await.result,
        SessionResult::Success
    );

    assert_eq!(harness.run_round().await, 1);
    harness.wait_for(second, SessionStatus::Terminated).await;
    assert_eq!(
        common::session(harness.db(), second).await.result,
        SessionResult::Success
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_dependency_keeps_its_dependent_waiting_and_starts_at_holds_a_batch() {
    let harness = Harness::new("sessions_batch_hold", "i-batch-hold", "24.03.11", true).await;
    let failing = pending_batch(harness.db(), "failing", "exit 1").await;
    let dependent = pending_batch(harness.db(), "dependent", "true").await;
    let later = pending_batch(harness.db(), "later", "true").await;
    harness
        .db()
        .execute_unprepared(&format!(
            "INSERT INTO session_dependencies (session_id, depends_on) \
             VALUES ('{dependent}', '{failing}'); \
             UPDATE sessions SET starts_at = now() + interval '1 hour' WHERE id = '{later}'"
        ))
        .await
        .expect("dependency and start time");

    assert_eq!(harness.run_round().await, 1);
    harness.wait_for(failing, SessionStatus::Terminated).await;
    assert_eq!(
        common::session(harness.db(), failing).await.result,
        SessionResult::Failure
    );
    assert_eq!(harness.run_round().await, 0);
    assert_eq!(
        predicate_message(harness.db(), dependent, "dependencies").await,
        format!("Waiting dependency sessions to finish as success. (failing ({failing}))")
    );
    assert_eq!(
        predicate_message(harness.db(), later, "reserved_time").await,
        "Before start time"
    );
    for session in [dependent, later] {
        assert_eq!(
            common::session(harness.db(), session).await.status,
            SessionStatus::Pending
        );
    }
}
