//! 100 sessions created at once and destroyed at once through the real router, with the whole
//! manager around it in this process: a consumer of the event bus with the agent registry's, the
//! lifecycle's and the dispatcher's handlers, the dispatcher (scheduling rounds and starts), and
//! four simulated agents serving RPC. Every answer is 2xx, every session ends TERMINATED, and the
//! agents' occupied slots and the keypair's concurrency are back to zero.
//!
//! On the halfstack's PostgreSQL and etcd (fresh database and namespace) and a private Redis.

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;
mod support;

use std::sync::Arc;
use std::time::Duration;

use bai_api::testing::{USER, signed_request};
use bai_db_models::entities::enums::SessionStatus;
use bai_db_models::entities::sessions;
use common::Api;
use http::{Method, StatusCode};
use sea_orm::EntityTrait;
use serde_json::json;
use support::{Stack, agent_rows, create_body, wait_until};

const SESSIONS: usize = 100;
const AGENTS: usize = 4;
const PATIENCE: Duration = Duration::from_secs(90);

const STACK: Stack = Stack {
    name: "load",
    agents: AGENTS,
    cpu: 32,
    mem: 64 << 30,
    max_concurrent_sessions: 1000,
    patience: PATIENCE,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_sessions_created_and_destroyed_at_once_all_end_terminated() {
    let (api, _manager) = support::start("session-load", &STACK).await;
    let api = Arc::new(api);

    let mut creating = tokio::task::JoinSet::new();
    for index in 0..SESSIONS {
        let api = Arc::clone(&api);
        creating.spawn(async move {
            let body = create_body(&format!("load{index:03}"));
            api.send(signed_request(Method::POST, "/session", Some(&body), &USER))
                .await
        });
    }
    while let Some(answer) = creating.join_next().await {
        let answer = answer.expect("join");
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        assert_eq!(answer.json["status"], "RUNNING", "{}", answer.text);
    }
    let occupied_cpu: f64 = agent_rows(&api)
        .await
        .iter()
        .map(|agent| {
            agent.occupied_slots.to_json()["cpu"]
                .as_str()
                .and_then(|cpu| cpu.parse::<f64>().ok())
                .unwrap_or(0.0)
        })
        .sum();
    assert_eq!(occupied_cpu, SESSIONS as f64);
    assert_eq!(concurrency_used(&api).await, SESSIONS as u64);

    let mut destroying = tokio::task::JoinSet::new();
    for index in 0..SESSIONS {
        let api = Arc::clone(&api);
        destroying.spawn(async move {
            let path = format!("/session/load{index:03}");
            api.send(signed_request(Method::DELETE, &path, None, &USER))
                .await
        });
    }
    while let Some(answer) = destroying.join_next().await {
        let answer = answer.expect("join");
        assert!(answer.status.is_success(), "{}", answer.text);
    }
    wait_until("every session TERMINATED", PATIENCE, || async {
        sessions::Entity::find()
            .all(&api.cluster.database.connection)
            .await
            .expect("sessions")
            .iter()
            .all(|session| session.status == SessionStatus::Terminated)
    })
    .await;
    for agent in agent_rows(&api).await {
        assert_eq!(agent.occupied_slots.to_json(), json!({}), "{}", agent.id);
    }
    // The count is written to Redis after the status is committed: it follows a moment later.
    wait_until("the keypair's concurrency back to 0", PATIENCE, || async {
        concurrency_used(&api).await == 0
    })
    .await;
}

/// The keypair's running sessions, as the admin API reports them (Redis
/// `keypair.concurrency_used.{ak}`).
async fn concurrency_used(api: &Api) -> u64 {
    let query = json!({"query": "{ keypair { concurrency_used } }"});
    let answer = api
        .send(signed_request(
            Method::POST,
            "/admin/gql",
            Some(&query),
            &USER,
        ))
        .await;
    answer.json["data"]["keypair"]["concurrency_used"]
        .as_u64()
        .unwrap_or_else(|| panic!("no concurrency_used in {}", answer.text))
}
