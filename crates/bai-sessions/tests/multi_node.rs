//! Several manager nodes: a session whose starting node died after moving it to PREPARING and
//! before calling its agent is started again by another node's `prepare()` once it has stalled,
//! exactly once; one another node still claims is left alone.
//!
//! Against the halfstack's PostgreSQL and etcd (fresh database and namespace) and a Redis server
//! of the test's own, with one agent-sim agent.

mod common;

use std::time::Duration;

use bai_agent_sim::Faults;
use bai_db_models::entities::enums::{KernelStatus, SessionStatus};
use bai_events::Event;
use bai_redis::StartClaims;
use bai_sessions::STALL_GRACE;
use sea_orm::ConnectionTrait;
use sea_orm::prelude::Uuid;

use common::stack::Stack;

const AGENT: &str = "i-multi-node";

/// Moves the SCHEDULED sessions to PREPARING as a node does before it calls the agents, and
/// dates their kernels' move back past the stall grace: the node died right after its commit.
async fn taken_by_a_dead_node(stack: &Stack) -> Vec<Uuid> {
    let taken = bai_db_models::queries::scheduling::take_scheduled(stack.db())
        .await
        .expect("take");
    let ids: Vec<Uuid> = taken.iter().map(|rows| rows.session.id).collect();
    let seconds = STALL_GRACE.as_secs() + 5;
    for id in &ids {
        stack
            .db()
            .execute_unprepared(&format!(
                "UPDATE kernels SET status_changed = now() - interval '{seconds} seconds' \
                 WHERE session_id = '{id}'"
            ))
            .await
            .expect("backdate");
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_whose_node_died_is_sent_again_once() {
    let stack = Stack::with_alive_agent(
        "sessions_multi_node",
        Duration::from_secs(20),
        AGENT,
        Faults::default(),
    )
    .await;
    let orphan = common::pending(stack.db(), "orphan", 1, 1, 1, 0).await;
    let claimed = common::pending(stack.db(), "claimed", 1, 1, 1, 0).await;
    let status = stack.status("i-node-b");
    let report = stack
        .scheduler(&["cpu", "mem"], status.clone())
        .schedule()
        .await
        .expect("round");
    assert_eq!(report.scheduled, 2);
    let taken = taken_by_a_dead_node(&stack).await;
    assert_eq!(taken.len(), 2);
    // A node that is alive keeps renewing its claim: its session is not touched.
    let live_node = StartClaims::new(stack.stores.redis.live.clone(), "i-node-alive");
    live_node
        .claim_all(&[claimed], Duration::from_secs(60))
        .await
        .expect("claim");

    let node_b = stack
        .starter(status.clone(), Duration::from_secs(10))
        .with_start_claims(
            StartClaims::new(stack.stores.redis.live.clone(), "i-node-b"),
            stack.stream.clone(),
        );
    assert_eq!(node_b.prepare().await.expect("prepare"), 1);
    stack
        .wait_until("the orphan is RUNNING", || async {
            common::session(stack.db(), orphan).await.status == SessionStatus::Running
        })
        .await;
    // Sent once: a second run finds nothing stalled, and the claimed session stays as it was.
    assert_eq!(node_b.prepare().await.expect("prepare"), 0);
    assert_eq!(
        common::session(stack.db(), claimed).await.status,
        SessionStatus::Preparing
    );
    let kernels = common::kernels_of(stack.db(), claimed).await;
    assert!(kernels.iter().all(|k| k.status == KernelStatus::Preparing));
    let started: Vec<Uuid> = stack
        .stream_entries()
        .await
        .into_iter()
        .filter_map(|entry| {
            let event = Event::decode(entry.field("name")?, entry.field("args")?).ok()?;
            match event {
                Event::SessionStarted(creation) => Some(creation.session_id),
                _ => None,
            }
        })
        .collect();
    assert_eq!(started, [orphan]);
    // The restarting node's claim is gone once its call was answered.
    assert_eq!(
        live_node.unclaimed(&[orphan]).await.expect("MGET"),
        [orphan]
    );
}
