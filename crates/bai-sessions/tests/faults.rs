//! No session waits for good on an agent that failed it: against agent-sim with fault injection
//! (`create_kernels` failing, never answered, the RPC server dying mid-call, the agent killed
//! mid-creation), each session ends in the reference's end state with its agents' occupied slots
//! and its keypair's concurrency (Redis) back to zero. An agent lost while a session starts
//! cancels the session; a session RUNNING on a lost agent stays RUNNING until it is destroyed; a
//! kernel that starts after its session ended is destroyed on its agent; and the hang-tolerance
//! scanner destroys the sessions PREPARING or TERMINATING past their threshold, and only those.
//!
//! Against the halfstack's PostgreSQL (a fresh database with the install guide's fixtures) and
//! etcd (a fresh namespace), a Redis server of each test's own, a real consumer of the event bus
//! running the agent registry's and the lifecycle's handlers, and the agent registry's lost check.
//! An agent is killed by dropping its simulator's task: heartbeats stop and its RPC socket
//! closes, without an `agent_terminated`.

mod common;

use std::time::{Duration, Instant};

use bai_agent_sim::Faults;
use bai_db_models::entities::enums::{AgentStatus, KernelStatus, SessionStatus};
use bai_db_models::entities::{ResourceSlot, agents, kernels, sessions};
use bai_db_models::queries::scheduling;
use bai_etcd_store::Scope;
use bai_events::Event;
use bai_sessions::{HANG_TIMEOUT, Scheduler, Starter};
use sea_orm::ConnectionTrait;
use sea_orm::prelude::Uuid;
use tokio::task::JoinHandle;

use common::ACCESS_KEY;
use common::stack::{self, Stack};

const AGENT: &str = "i-faults";
/// The lost check's heartbeat timeout (the agent sends one every second).
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);

/// How one test's agent behaves.
struct AgentSetup {
    faults: Faults,
    /// How long each step of a simulated call takes.
    delay: Duration,
    /// The test image is on the agent already (no pull, no PULLING).
    local_image: bool,
    /// The Starter's `create_kernels` timeout.
    create_timeout: Duration,
}

impl Default for AgentSetup {
    fn default() -> AgentSetup {
        AgentSetup {
            faults: Faults::default(),
            delay: Duration::from_millis(20),
            local_image: false,
            create_timeout: Duration::from_secs(30),
        }
    }
}

struct Harness {
    scheduler: Scheduler,
    starter: Starter,
    agent: Option<JoinHandle<()>>,
    stack: Stack,
}

impl Harness {
    /// The stores, one agent-sim agent (4 cores, 8 GiB) set up as `setup` says, a consumer
    /// running the agent registry's and the lifecycle's handlers, and the lost check; returns
    /// once the agent's row exists.
    async fn new(label: &str, setup: AgentSetup) -> Harness {
        let stack = Stack::new(label, Duration::from_secs(30)).await;
        stack.image("x86_64", setup.local_image, "{}").await;
        stack.consume(stack.lifecycle()).await;
        tokio::spawn(bai_agents::run_lost_check(
            stack.registry.clone(),
            HEARTBEAT_TIMEOUT,
            stack.shutdown.clone(),
        ));
        let agent = stack.run_agent(AGENT, setup.delay, setup.faults);
        let status = stack.status("i-faults-manager");
        let harness = Harness {
            scheduler: stack.scheduler(&["cpu", "mem"], status.clone()),
            starter: stack.starter(status, setup.create_timeout),
            agent: Some(agent),
            stack,
        };
        harness
            .stack
            .wait_until("the agent's row exists", || async {
                harness.agent_row().await.is_some()
            })
            .await;
        harness
    }

    fn db(&self) -> &sea_orm::DatabaseConnection {
        self.stack.db()
    }

    /// Kills the agent: no goodbye, no more heartbeats, its RPC socket closed.
    fn kill_agent(&mut self) {
        if let Some(agent) = self.agent.take() {
            agent.abort();
        }
    }

    /// A PENDING single-node session of one kernel of `cpu` cores and 1 GiB, scheduled on the
    /// agent.
    async fn scheduled(&self, name: &str, cpu: u64) -> Uuid {
        let session = common::pending(self.db(), name, 1, cpu, 1, 0).await;
        let report = self.scheduler.schedule().await.expect("round");
        assert_eq!(report.scheduled, 1, "{name} is scheduled");
        session
    }

    /// A session of one kernel of one core and 1 GiB, scheduled, started, and RUNNING.
    async fn running(&self, name: &str) -> Uuid {
        let session = self.scheduled(name, 1).await;
        self.starter.prepare().await.expect("prepare");
        self.wait_for_status(session, SessionStatus::Running).await;
        session
    }

    async fn session(&self, id: Uuid) -> sessions::Model {
        common::session(self.db(), id).await
    }

    async fn kernels_of(&self, id: Uuid) -> Vec<kernels::Model> {
        common::kernels_of(self.db(), id).await
    }

    async fn agent_row(&self) -> Option<agents::Model> {
        common::agent_row(self.db(), AGENT).await
    }

    async fn occupied(&self) -> ResourceSlot {
        common::occupied(self.db(), AGENT).await
    }

    async fn concurrency(&self) -> i64 {
        self.stack
            .stores
            .redis
            .stat
            .keypair_concurrency_used(ACCESS_KEY)
            .await
            .expect("Redis")
    }

    async fn wait_for_status(&self, session: Uuid, status: SessionStatus) {
        self.stack
            .wait_until(&format!("the session is {status:?}"), || async {
                self.session(session).await.status == status
            })
            .await;
    }

    async fn wait_until_lost(&self) {
        self.stack
            .wait_until("the agent is LOST", || async {
                self.agent_row()
                    .await
                    .is_some_and(|agent| agent.status == AgentStatus::Lost)
            })
            .await;
    }

    /// The events on the stream: name, source, and the event.
    async fn events(&self) -> Vec<(String, Event)> {
        self.stack
            .stream_entries()
            .await
            .into_iter()
            .filter_map(|entry| {
                let name = entry.field("name")?.to_vec();
                let source = String::from_utf8_lossy(entry.field("source")?).into_owned();
                let event = Event::decode(&name, entry.field("args")?).ok()?;
                Some((source, event))
            })
            .collect()
    }

    /// A session that failed to start is CANCELLED (`failed-to-start`, an agent error whose text
    /// contains `repr_has`) with its kernels, and holds nothing anywhere.
    async fn assert_cancelled_and_released(&self, session: Uuid, repr_has: &str) {
        let row = self.session(session).await;
        assert_eq!(row.status, SessionStatus::Cancelled);
        assert_eq!(row.status_info.as_deref(), Some("failed-to-start"));
        let error = &row.status_data.expect("status data")["error"];
        assert_eq!(error["name"], "AgentError", "{error}");
        assert!(
            error["repr"]
                .as_str()
                .is_some_and(|repr| repr.contains(repr_has)),
            "{error} should mention {repr_has:?}"
        );
        assert!(row.terminated_at.is_some());
        for kernel in self.kernels_of(session).await {
            assert_eq!(kernel.status, KernelStatus::Cancelled);
        }
        assert_eq!(self.occupied().await, ResourceSlot::new());
        assert_eq!(self.concurrency().await, 0);
        let cancelled = self.events().await.into_iter().any(|(_, event)| {
            matches!(event, Event::SessionCancelled(creation)
                if creation.session_id == session && creation.reason == "failed-to-start")
        });
        assert!(cancelled, "session_cancelled(failed-to-start) is announced");
    }

    /// Sets `status_history[status]` of session `id` to `ago` in the past.
    async fn backdate(&self, id: Uuid, status: &str, ago: Duration) {
        self.db()
            .execute_unprepared(&format!(
                "UPDATE sessions SET status_history = status_history || jsonb_build_object(\
                 '{status}', to_char((now() - interval '{secs} seconds') AT TIME ZONE 'UTC', \
                 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')) WHERE id = '{id}'",
                secs = ago.as_secs(),
            ))
            .await
            .expect("backdating");
    }

    async fn put_threshold(&self, status: &str, threshold: &str) {
        self.stack
            .etcd
            .put(
                &format!("config/session/hang-tolerance/threshold/{status}"),
                threshold,
                Scope::Global,
            )
            .await
            .expect("etcd put");
    }
}

fn one_core() -> ResourceSlot {
    ResourceSlot::from_json(&serde_json::json!({"cpu": "1", "mem": common::GIB.to_string()}))
        .expect("slots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_failing_create_kernels_cancels_the_session_with_everything_released() {
    let setup = AgentSetup {
        faults: Faults {
            fail_create: true,
            ..Faults::default()
        },
        ..AgentSetup::default()
    };
    let harness = Harness::new("sessions_fault_fail", setup).await;
    let session = harness.scheduled("failing", 1).await;
    harness.starter.prepare().await.expect("prepare");
    harness
        .assert_cancelled_and_released(session, "--fail-create")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_kernels_never_answered_cancels_the_session_at_its_timeout() {
    let timeout = Duration::from_secs(2);
    let setup = AgentSetup {
        faults: Faults {
            never_answer: true,
            ..Faults::default()
        },
        create_timeout: timeout,
        ..AgentSetup::default()
    };
    let harness = Harness::new("sessions_fault_silent", setup).await;
    let session = harness.scheduled("unanswered", 1).await;
    assert_eq!(harness.occupied().await, one_core());
    let began = Instant::now();
    harness.starter.prepare().await.expect("prepare");
    assert!(began.elapsed() >= timeout, "the Starter waited its timeout");
    harness
        .assert_cancelled_and_released(session, "create_kernels")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_dying_mid_call_cancels_the_session_without_waiting_for_the_timeout() {
    let setup = AgentSetup {
        faults: Faults {
            die_mid_call: true,
            ..Faults::default()
        },
        create_timeout: Duration::from_secs(60),
        ..AgentSetup::default()
    };
    let harness = Harness::new("sessions_fault_dies", setup).await;
    let session = harness.scheduled("orphaned", 1).await;
    let began = Instant::now();
    harness.starter.prepare().await.expect("prepare");
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "a dropped connection fails the call at once, not at the timeout"
    );
    harness
        .assert_cancelled_and_released(session, "create_kernels")
        .await;
    // Its heartbeats go on: the agent itself is fine.
    assert_eq!(
        harness.agent_row().await.expect("agent").status,
        AgentStatus::Alive
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_creation_cancels_the_session_and_is_lost() {
    let setup = AgentSetup {
        delay: Duration::from_secs(5),
        create_timeout: Duration::from_secs(60),
        ..AgentSetup::default()
    };
    let mut harness = Harness::new("sessions_fault_killed", setup).await;
    let session = harness.scheduled("interrupted", 1).await;
    let starter = harness.starter.clone();
    let preparing = tokio::spawn(async move { starter.prepare().await });
    // The agent has the call: it announced the kernel (the simulator pulls for `delay`).
    harness
        .stack
        .wait_until("the agent works on the kernel", || async {
            harness.kernels_of(session).await[0].status == KernelStatus::Pulling
        })
        .await;
    harness.kill_agent();
    let began = Instant::now();
    preparing.await.expect("joined").expect("prepare");
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "the dropped connection failed the call"
    );
    harness
        .assert_cancelled_and_released(session, "create_kernels")
        .await;
    harness.wait_until_lost().await;
    assert_eq!(harness.occupied().await, ResourceSlot::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_agent_cancels_the_sessions_it_was_starting() {
    let mut harness = Harness::new("sessions_fault_lost", AgentSetup::default()).await;
    let session = harness.scheduled("stranded", 1).await;
    // A manager that died right after taking the session: PREPARING, nobody calling the agent.
    let taken = scheduling::take_scheduled(harness.db())
        .await
        .expect("take");
    assert_eq!(taken.len(), 1);
    assert_eq!(harness.occupied().await, one_core());
    harness.kill_agent();
    harness.wait_until_lost().await;
    harness
        .wait_for_status(session, SessionStatus::Cancelled)
        .await;
    harness
        .assert_cancelled_and_released(session, "was lost")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_agent_ends_the_kernels_it_was_destroying() {
    let mut harness = Harness::new("sessions_fault_lost_destroying", AgentSetup::default()).await;
    let session = harness.running("unfinished").await;
    // Destroyed by a manager that died before the agent answered: TERMINATING, as the rows say.
    harness
        .db()
        .execute_unprepared(&format!(
            "UPDATE kernels SET status = 'TERMINATING', status_info = 'user-requested' \
             WHERE session_id = '{session}'; \
             UPDATE sessions SET status = 'TERMINATING', status_info = 'user-requested' \
             WHERE id = '{session}'"
        ))
        .await
        .expect("terminating");
    harness.kill_agent();
    harness.wait_until_lost().await;
    harness
        .wait_for_status(session, SessionStatus::Terminated)
        .await;
    let row = harness.session(session).await;
    assert_eq!(row.status_info.as_deref(), Some("user-requested"));
    for kernel in harness.kernels_of(session).await {
        assert_eq!(kernel.status, KernelStatus::Terminated);
        assert_eq!(kernel.status_data.expect("data")["kernel"]["exit_code"], -1);
    }
    assert_eq!(harness.occupied().await, ResourceSlot::new());
    assert_eq!(harness.concurrency().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_session_on_a_lost_agent_stays_running_until_it_is_destroyed() {
    let mut harness = Harness::new("sessions_fault_lost_running", AgentSetup::default()).await;
    let session = harness.running("survivor").await;
    harness.kill_agent();
    harness.wait_until_lost().await;
    // The agent may come back with its containers: nothing changes by itself.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        harness.session(session).await.status,
        SessionStatus::Running
    );
    assert_eq!(harness.occupied().await, one_core());
    assert_eq!(harness.concurrency().await, 1);

    stack::destroy(&harness.starter.destroyer(), session).await;
    harness
        .wait_for_status(session, SessionStatus::Terminated)
        .await;
    let row = harness.session(session).await;
    assert_eq!(row.status_info.as_deref(), Some("user-requested"));
    for kernel in harness.kernels_of(session).await {
        assert_eq!(kernel.status, KernelStatus::Terminated);
    }
    assert_eq!(harness.occupied().await, ResourceSlot::new());
    assert_eq!(harness.concurrency().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_that_starts_after_its_session_hung_past_the_threshold_is_destroyed_on_its_agent()
{
    let setup = AgentSetup {
        delay: Duration::from_secs(3),
        local_image: true,
        ..AgentSetup::default()
    };
    let harness = Harness::new("sessions_fault_late", setup).await;
    harness.put_threshold("PREPARING", "1s").await;
    let scanning = harness.stack.shutdown.child_token();
    tokio::spawn(bai_sessions::run_hang_scanner(
        harness.starter.hang_scanner(),
        scanning.clone(),
    ));
    // All three cores the agent offers (four, one reserved): a second session fits only once the
    // agent gave them back.
    let session = harness.scheduled("late", 3).await;
    let starter = harness.starter.clone();
    let preparing = tokio::spawn(async move { starter.prepare().await });
    harness
        .wait_for_status(session, SessionStatus::Terminated)
        .await;
    let row = harness.session(session).await;
    assert_eq!(row.status_info.as_deref(), Some(HANG_TIMEOUT));
    assert_eq!(harness.occupied().await, ResourceSlot::new());
    assert_eq!(harness.concurrency().await, 0);

    // The agent finishes creating the kernel, which stays TERMINATED and is destroyed there.
    preparing.await.expect("joined").expect("prepare");
    let kernel = harness.kernels_of(session).await[0].id;
    harness
        .stack
        .wait_until("the agent destroyed the late kernel", || async {
            harness.events().await.into_iter().any(|(source, event)| {
                matches!(event, Event::KernelTerminated(termination)
                    if source == AGENT && termination.kernel_id == kernel)
            })
        })
        .await;
    assert_eq!(
        harness.kernels_of(session).await[0].status,
        KernelStatus::Terminated
    );
    assert_eq!(
        harness.session(session).await.status,
        SessionStatus::Terminated
    );

    // The next session takes longer than the threshold too: no more scans.
    scanning.cancel();
    let next = harness.scheduled("next", 3).await;
    harness.starter.prepare().await.expect("prepare");
    harness.wait_for_status(next, SessionStatus::Running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hang_scanner_destroys_sessions_past_their_threshold_and_no_others() {
    let harness = Harness::new("sessions_fault_hang", AgentSetup::default()).await;
    harness.put_threshold("PREPARING", "30s").await;
    harness.put_threshold("TERMINATING", "0.5m").await;
    let scanner = harness.starter.hang_scanner();
    assert_eq!(
        scanner.thresholds().await.expect("thresholds"),
        [
            (SessionStatus::Preparing, Duration::from_secs(30)),
            (SessionStatus::Terminating, Duration::from_secs(30)),
        ]
    );

    // Stuck TERMINATING: the agent never answered the destroy (the rows say so).
    let stuck_terminating = harness.running("stuck-terminating").await;
    common::set_terminating(harness.db(), stuck_terminating).await;
    harness
        .backdate(stuck_terminating, "TERMINATING", Duration::from_secs(60))
        .await;
    // Stuck PREPARING (nobody calls the agent), and one PREPARING for less than the threshold.
    let stuck_preparing = harness.scheduled("stuck-preparing", 1).await;
    let young = harness.scheduled("young", 1).await;
    scheduling::take_scheduled(harness.db())
        .await
        .expect("take");
    harness
        .backdate(stuck_preparing, "PREPARING", Duration::from_secs(60))
        .await;
    harness
        .backdate(young, "PREPARING", Duration::from_secs(10))
        .await;

    let destroyed = scanner
        .scan(SessionStatus::Preparing, Duration::from_secs(30))
        .await
        .expect("scan");
    assert_eq!(destroyed, [stuck_preparing]);
    let destroyed = scanner
        .scan(SessionStatus::Terminating, Duration::from_secs(30))
        .await
        .expect("scan");
    assert_eq!(destroyed, [stuck_terminating]);

    for session in [stuck_preparing, stuck_terminating] {
        harness
            .wait_for_status(session, SessionStatus::Terminated)
            .await;
        let row = harness.session(session).await;
        assert_eq!(row.status_info.as_deref(), Some(HANG_TIMEOUT));
        for kernel in harness.kernels_of(session).await {
            assert_eq!(kernel.status, KernelStatus::Terminated);
        }
    }
    assert_eq!(
        harness.session(young).await.status,
        SessionStatus::Preparing
    );
    // Only the young session holds anything.
    assert_eq!(harness.occupied().await, one_core());
    assert_eq!(harness.concurrency().await, 1);
    let terminating_announced = harness.events().await.into_iter().any(|(_, event)| {
        matches!(event, Event::SessionTerminating(termination)
            if termination.session_id == stuck_preparing && termination.reason == HANG_TIMEOUT)
    });
    assert!(terminating_announced);
}

/// The shared configuration followed live, as a server's stores follow it, until the test ends.
async fn live_shared_config(harness: &Harness) -> bai_etcd_store::LiveSharedConfig {
    let (live, watcher) = bai_etcd_store::SharedConfigWatcher::load(harness.stack.etcd.clone())
        .await
        .expect("the shared config loads");
    tokio::spawn(watcher.run(harness.stack.shutdown.clone().cancelled_owned()));
    live
}

async fn until_config(
    live: &bai_etcd_store::LiveSharedConfig,
    what: &str,
    test: impl Fn(&bai_etcd_store::SharedConfig) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !test(&live.current()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_threshold_set_while_the_scanner_runs_applies_and_a_bad_one_is_ignored() {
    let harness = Harness::new("sessions_fault_hang_live", AgentSetup::default()).await;
    let live = live_shared_config(&harness).await;
    let starter = harness.starter.clone().with_shared_config(live.clone());
    let scanning = harness.stack.shutdown.child_token();
    tokio::spawn(bai_sessions::run_hang_scanner(
        starter.hang_scanner(),
        scanning.clone(),
    ));
    // PREPARING for a minute, with no threshold: nothing happens.
    let stuck = harness.scheduled("stuck-live", 1).await;
    scheduling::take_scheduled(harness.db())
        .await
        .expect("take");
    harness
        .backdate(stuck, "PREPARING", Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        harness.session(stuck).await.status,
        SessionStatus::Preparing
    );

    // A threshold that is no duration keeps the section as it was (no threshold).
    harness.put_threshold("PREPARING", "soon").await;
    harness.put_threshold("TERMINATING", "1h").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(live.current().session.hang_tolerance.preparing, None);
    assert_eq!(
        harness.session(stuck).await.status,
        SessionStatus::Preparing
    );

    // Fixed, it applies to the running scanner at once.
    harness.put_threshold("PREPARING", "30s").await;
    harness
        .wait_for_status(stuck, SessionStatus::Terminated)
        .await;
    assert_eq!(
        harness.session(stuck).await.status_info.as_deref(),
        Some(HANG_TIMEOUT)
    );

    // Turned off again: the next stuck session stays.
    harness
        .stack
        .etcd
        .delete_prefix("config/session/hang-tolerance", Scope::Global)
        .await
        .expect("etcd delete");
    until_config(&live, "the thresholds' removal", |config| {
        config.session.hang_tolerance.preparing.is_none()
    })
    .await;
    let next = harness.scheduled("stuck-after", 1).await;
    scheduling::take_scheduled(harness.db())
        .await
        .expect("take");
    harness
        .backdate(next, "PREPARING", Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(harness.session(next).await.status, SessionStatus::Preparing);
    scanning.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_changed_in_etcd_is_used_by_the_next_start_without_a_restart() {
    let harness = Harness::new("sessions_fault_registry_live", AgentSetup::default()).await;
    let live = live_shared_config(&harness).await;
    let starter = harness.starter.clone().with_shared_config(live.clone());
    let etcd = &harness.stack.etcd;

    // The image's registry leaves etcd (another one stays, as the schema wants one).
    etcd.put_dict(
        &[
            (
                "config/docker/registry/cr.other.test".to_owned(),
                "https://cr.other.test".to_owned(),
            ),
            (
                "config/docker/registry/cr.other.test/type".to_owned(),
                "docker".to_owned(),
            ),
        ],
        Scope::Global,
    )
    .await
    .expect("etcd put");
    etcd.delete_prefix("config/docker/registry/cr.backend.ai", Scope::Global)
        .await
        .expect("etcd delete");
    until_config(&live, "the registry's removal", |config| {
        !config.docker.registries.contains_key("cr.backend.ai")
    })
    .await;
    let refused = harness.scheduled("unknown-registry", 1).await;
    starter.prepare().await.expect("prepare");
    let row = harness.session(refused).await;
    assert_eq!(row.status, SessionStatus::Cancelled);
    assert_eq!(
        row.status_data.expect("status data")["error"]["name"],
        "UnknownImageRegistry"
    );

    // Back, under another URL: the next start uses it.
    etcd.put_dict(
        &[
            (
                "config/docker/registry/cr.backend.ai".to_owned(),
                "https://mirror.backend.ai".to_owned(),
            ),
            (
                "config/docker/registry/cr.backend.ai/type".to_owned(),
                "docker".to_owned(),
            ),
        ],
        Scope::Global,
    )
    .await
    .expect("etcd put");
    until_config(&live, "the registry's return", |config| {
        config
            .docker
            .registries
            .get("cr.backend.ai")
            .is_some_and(|registry| registry.url == "https://mirror.backend.ai")
    })
    .await;
    let started = harness.scheduled("known-registry", 1).await;
    starter.prepare().await.expect("prepare");
    harness
        .wait_for_status(started, SessionStatus::Running)
        .await;
}
