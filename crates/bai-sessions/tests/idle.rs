//! The idle checkers against real stores (a fresh database with the install guide's fixtures, an
//! etcd namespace, a Redis server of the test's own) and sessions running on agent-sim: the
//! network timeout ends a session unused past its threshold with `idle-timeout`, `execution_*`
//! events keep one alive, the session lifetime ends one with `idle-session-lifetime`, the
//! utilization checker ends one whose statistics (written here, as an agent writes them) stay
//! under the thresholds with `idle-utilization`, checkers that are not enabled (or whose settings
//! are bad) do nothing, and the reports read back in the reference's shape.
//!
//! The `execution_*` events are produced here, as an agent running code produces them.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bai_agent_sim::Faults;
use bai_db_models::entities::enums::SessionStatus;
use bai_etcd_store::Scope;
use bai_events::{Event, SessionCreation};
use bai_redis::SchedulerStatus;
use bai_sessions::{
    Destroyer, IDLE_SESSION_LIFETIME, IDLE_TIMEOUT, IDLE_UTILIZATION, IdleChecker, Scheduler,
    Starter,
};
use rmpv::Value;
use sea_orm::ConnectionTrait;
use sea_orm::prelude::Uuid;
use serde_json::json;

use common::stack::Stack;

const AGENT: &str = "i-idle";
/// How often the checks run in these tests.
const INTERVAL: Duration = Duration::from_millis(500);

struct Harness {
    checker: IdleChecker,
    scheduler: Scheduler,
    starter: Starter,
    stack: Stack,
}

impl Harness {
    /// The stores, one agent-sim agent, and a consumer running the registry's, the lifecycle's
    /// and the idle checks' handlers; the idle checks run on a timer only when `timer`.
    async fn new(label: &str, timer: bool) -> Harness {
        let stack = Stack::new(label, Duration::from_secs(30)).await;
        stack.image("x86_64", false, "{}").await;
        let checker = IdleChecker::new(
            stack.db().clone(),
            stack.etcd.clone(),
            &stack.stores.redis.live,
            stack.stores.redis.stat.clone(),
            stack.producer.clone(),
        )
        .with_check_interval(INTERVAL);
        let destroyer = Destroyer::new(
            stack.db().clone(),
            stack.producer.clone(),
            stack.stores.redis.stat.clone(),
            Arc::clone(&stack.rpc),
        );
        let (trigger, bursts) = bai_sessions::idle_triggers();
        stack
            .consume_with(stack.lifecycle(), |handlers| {
                bai_sessions::idle_handlers(&checker, &destroyer, &trigger, handlers);
            })
            .await;
        tokio::spawn(bai_sessions::run_idle_checker(
            checker.clone(),
            bursts,
            timer,
            stack.shutdown.clone(),
        ));
        stack.run_agent(AGENT, Duration::from_millis(10), Faults::default());
        let status = SchedulerStatus::new(stack.stores.redis.live.clone(), "i-idle-test");
        let harness = Harness {
            checker,
            scheduler: stack.scheduler(&["cpu", "mem"], status.clone()),
            starter: stack.starter(status, Duration::from_secs(10)),
            stack,
        };
        harness
            .stack
            .wait_until("the agent's row is ALIVE", || async {
                common::agent_row(harness.stack.db(), AGENT).await.is_some()
            })
            .await;
        harness
    }

    async fn put(&self, key: &str, value: &str) {
        self.stack
            .etcd
            .put(key, value, Scope::Global)
            .await
            .expect("etcd put");
    }

    /// Sets the `default` keypair resource policy's `idle_timeout` and `max_session_lifetime`.
    async fn policy(&self, idle_timeout: i64, max_session_lifetime: i32) {
        self.stack
            .db()
            .execute_unprepared(&format!(
                "UPDATE keypair_resource_policies SET idle_timeout = {idle_timeout}, \
                 max_session_lifetime = {max_session_lifetime} WHERE name = 'default'"
            ))
            .await
            .expect("policy");
    }

    /// Sessions of one core and 1 GiB, RUNNING on the agent.
    async fn running(&self, names: &[&str]) -> Vec<Uuid> {
        let mut sessions = Vec::new();
        for name in names {
            sessions.push(common::pending(self.stack.db(), name, 1, 1, 1, 0).await);
        }
        self.scheduler.schedule().await.expect("round");
        self.starter.prepare().await.expect("prepare");
        for session in &sessions {
            self.stack
                .wait_until("the session is RUNNING", || async {
                    self.status(*session).await == SessionStatus::Running
                })
                .await;
        }
        sessions
    }

    async fn status(&self, session: Uuid) -> SessionStatus {
        common::session(self.stack.db(), session).await.status
    }

    /// Waits until `session` ended (TERMINATING or after) and returns its status info.
    async fn ended(&self, session: Uuid) -> String {
        self.stack
            .wait_until("the session ends", || async {
                matches!(
                    self.status(session).await,
                    SessionStatus::Terminating | SessionStatus::Terminated
                )
            })
            .await;
        common::session(self.stack.db(), session)
            .await
            .status_info
            .unwrap_or_default()
    }

    /// Waits until the `session_started` handler recorded the session's last access.
    async fn last_access_recorded(&self, session: Uuid) {
        let key = format!("session.{session}.last_access");
        self.stack
            .wait_until("the last access is recorded", || async {
                let live = self.stack.stores.redis.live.raw();
                live.get(&key).await.expect("GET").is_some()
            })
            .await;
    }

    async fn produce(&self, event: Event) {
        self.stack
            .producer
            .produce(&event, AGENT)
            .await
            .expect("XADD");
    }

    async fn report(&self, session: Uuid) -> serde_json::Value {
        let report = bai_sessions::idle_check_report(
            &self.stack.etcd,
            &self.stack.stores.redis.live,
            session,
        )
        .await
        .expect("report");
        serde_json::to_value(&report).expect("json")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_ends_with_idle_timeout_within_the_check_interval() {
    let harness = Harness::new("idle_network_timeout", true).await;
    // The policy leaves the timeout to etcd's threshold.
    harness.policy(-1, 0).await;
    harness.put("config/idle/enabled", "network_timeout").await;
    harness
        .put("config/idle/checkers/network_timeout/threshold", "5s")
        .await;
    let [session] = harness.running(&["idle"]).await[..] else {
        unreachable!("one session")
    };
    let started = Instant::now();
    harness.last_access_recorded(session).await;
    let reason = harness.ended(session).await;
    let took = started.elapsed();
    assert_eq!(reason, IDLE_TIMEOUT);
    // Idle for the threshold, then ended by the next check (and its event's consumer).
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_secs(6) + INTERVAL,
        "ended {took:?} after it started"
    );
    let report = harness.report(session).await;
    assert_eq!(
        report,
        json!({
            "session_lifetime": {"remaining": null, "remaining_time_type": "expire_after", "extra": null},
            "network_timeout": {"remaining": -1, "remaining_time_type": "expire_after", "extra": null},
        })
    );
    harness
        .stack
        .wait_until("the agent destroyed the kernel", || async {
            harness.status(session).await == SessionStatus::Terminated
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_events_keep_a_session_alive() {
    let harness = Harness::new("idle_execution", true).await;
    harness.policy(3, 0).await;
    harness.put("config/idle/enabled", "network_timeout").await;
    let [busy, idle] = harness.running(&["busy", "idle"]).await[..] else {
        unreachable!("two sessions")
    };
    // An agent reports executions of a session it started (its `session_started` is handled).
    harness.last_access_recorded(busy).await;
    harness
        .produce(Event::ExecutionStarted { session_id: busy })
        .await;
    assert_eq!(harness.ended(idle).await, IDLE_TIMEOUT);
    // Code runs in `busy` for longer than the timeout.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(harness.status(busy).await, SessionStatus::Running);
    harness
        .produce(Event::ExecutionFinished { session_id: busy })
        .await;
    let finished = Instant::now();
    let report = harness.report(busy).await;
    let remaining = &report["network_timeout"]["remaining"];
    assert!(
        remaining.is_null() || remaining.as_f64().is_some_and(|left| left > 0.0),
        "{report}"
    );
    assert_eq!(harness.ended(busy).await, IDLE_TIMEOUT);
    assert!(finished.elapsed() >= Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_past_its_lifetime_ends_with_idle_session_lifetime() {
    let harness = Harness::new("idle_lifetime", false).await;
    harness.policy(-1, 3).await;
    let [session] = harness.running(&["old"]).await[..] else {
        unreachable!("one session")
    };
    assert_eq!(harness.checker.check().await.expect("check"), []);
    let report = harness.report(session).await;
    let remaining = report["session_lifetime"]["remaining"]
        .as_f64()
        .expect("a remaining time");
    assert!(remaining > 0.0 && remaining <= 3.0, "{report}");
    assert_eq!(report.as_object().map(serde_json::Map::len), Some(1));
    // A `do_idle_check` on the bus runs a check, as the reference's timer's event does.
    tokio::time::sleep(Duration::from_secs(3)).await;
    harness.produce(Event::DoIdleCheck).await;
    assert_eq!(harness.ended(session).await, IDLE_SESSION_LIFETIME);
}

/// The live statistics an agent writes for a kernel (stat database, key = kernel id).
async fn write_stat(harness: &Harness, session: Uuid, cpu_pct: &str) {
    let kernels = common::kernels_of(harness.stack.db(), session).await;
    let stat = Value::Map(vec![
        (
            Value::from("cpu_util"),
            Value::Map(vec![
                (Value::from("current"), Value::from(cpu_pct)),
                (Value::from("pct"), Value::from(cpu_pct)),
            ]),
        ),
        (
            Value::from("mem"),
            Value::Map(vec![
                (Value::from("current"), Value::from("536870912")),
                (Value::from("pct"), Value::from("50.0")),
            ]),
        ),
    ]);
    harness
        .stack
        .stores
        .redis
        .stat
        .raw()
        .set(&kernels[0].id.to_string(), bai_events::codec::encode(&stat))
        .await
        .expect("SET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_underused_session_ends_with_idle_utilization() {
    let harness = Harness::new("idle_utilization", true).await;
    harness.policy(-1, 0).await;
    for (key, value) in [
        ("config/idle/enabled", "utilization"),
        ("config/idle/checkers/utilization/time-window", "2"),
        ("config/idle/checkers/utilization/initial-grace-period", "0"),
        (
            "config/idle/checkers/utilization/resource-thresholds/cpu_util/average",
            "30",
        ),
        (
            "config/idle/checkers/utilization/resource-thresholds/mem/average",
            "90",
        ),
        (
            "config/idle/checkers/utilization/thresholds-check-operator",
            "and",
        ),
    ] {
        harness.put(key, value).await;
    }
    let [busy, idle] = harness.running(&["busy", "idle"]).await[..] else {
        unreachable!("two sessions")
    };
    write_stat(&harness, busy, "80.0").await;
    write_stat(&harness, idle, "10.0").await;
    assert_eq!(harness.ended(idle).await, IDLE_UTILIZATION);
    assert_eq!(harness.status(busy).await, SessionStatus::Running);
    let report = harness.report(busy).await;
    let utilization = &report["utilization"];
    assert_eq!(utilization["remaining_time_type"], "grace_period");
    assert_eq!(utilization["remaining"], -1, "the window is past: {report}");
    // Memory is reported in whole bytes-or-percent integers, as the reference's `BinarySize`.
    assert_eq!(
        utilization["extra"],
        json!({"thresholds_check_operator": "and", "resources": {"cpu_util": [80.0, 30.0], "mem": [50, 90]}})
    );
    // The reference's order: `thresholds_check_operator` first, then `resources`.
    let text = serde_json::to_string(
        &bai_sessions::idle_check_report(
            &harness.stack.etcd,
            &harness.stack.stores.redis.live,
            busy,
        )
        .await
        .expect("report"),
    )
    .expect("json");
    assert!(
        text.starts_with(
            r#"{"session_lifetime":{"remaining":null,"remaining_time_type":"expire_after","extra":null},"utilization":{"remaining":-1,"remaining_time_type":"grace_period","extra":{"thresholds_check_operator":"and","resources":{"cpu_util":[80.0,30.0],"mem":[50,90]}}}}"#
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkers_that_are_not_enabled_or_badly_set_do_nothing() {
    let harness = Harness::new("idle_disabled", false).await;
    harness.policy(1, 0).await;
    let [session] = harness.running(&["idle"]).await[..] else {
        unreachable!("one session")
    };
    // Not enabled: a 1 s policy timeout does not apply.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(harness.checker.check().await.expect("check"), []);
    // Enabled, with a bad threshold, and the policy leaves the timeout to it: skipped.
    harness.policy(-1, 0).await;
    harness
        .put("config/idle/enabled", "network_timeout,timeout")
        .await;
    harness
        .put("config/idle/checkers/network_timeout/threshold", "soon")
        .await;
    assert_eq!(harness.checker.check().await.expect("check"), []);
    assert_eq!(harness.status(session).await, SessionStatus::Running);
    let report = harness.report(session).await;
    assert_eq!(
        report,
        json!({
            "session_lifetime": {"remaining": null, "remaining_time_type": "expire_after", "extra": null},
            "network_timeout": {"remaining": null, "remaining_time_type": "expire_after", "extra": null},
        })
    );
    // Fixed: the next check applies it.
    harness
        .put("config/idle/checkers/network_timeout/threshold", "1")
        .await;
    let verdicts = harness.checker.check().await.expect("check");
    assert_eq!(verdicts.len(), 1);
    assert_eq!(verdicts[0].reason, IDLE_TIMEOUT);
    assert_eq!(harness.ended(session).await, IDLE_TIMEOUT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_started_event_records_the_last_access() {
    let harness = Harness::new("idle_started", false).await;
    harness.policy(2, 0).await;
    harness.put("config/idle/enabled", "network_timeout").await;
    let [session] = harness.running(&["s"]).await[..] else {
        unreachable!("one session")
    };
    // Started again (as a restart announces it): the timeout counts from now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    harness
        .produce(Event::SessionStarted(SessionCreation {
            session_id: session,
            creation_id: "c-s".to_owned(),
            reason: String::new(),
        }))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(harness.checker.check().await.expect("check"), []);
    let report = harness.report(session).await;
    let remaining = report["network_timeout"]["remaining"]
        .as_f64()
        .expect("a remaining time");
    assert!(remaining > 1.0, "{report}");
}
