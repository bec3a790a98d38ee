//! Compute sessions from the official clients (24.3.11 on Python 3.12 and 23.9.10 on Python 3.11)
//! to the agents and back: `backend.ai session create` waits until our scheduler placed the
//! session, an agent created its kernels and the kernel events made it RUNNING; `session list`,
//! `admin session list` and `session info` show it; `session rm` destroys it through the agent,
//! and the session ends TERMINATED with the agent's slots released. A two-kernel single-node
//! cluster runs both kernels on one agent (after the reference's refusal of it under a policy of one
//! container per session); a session over its keypair's concurrency limit, and one over its slot
//! quota, stay PENDING with the reference's predicate messages in `status_data`, and start once
//! the session in their way is gone.
//!
//! Against the real Backend.AI 24.3.11 agent in dummy mode (`configs/agent/`), and simulated
//! agents (`bai-agent-sim`, in this process). Placement across several agents (multi-node
//! clusters, every picker and selector) is tested on agent-sim in
//! `crates/bai-sessions/tests/placement.rs`: one dummy agent per test is what this machine runs
//! comfortably, and the dummy agent's placement is no different.

use std::time::Duration;

use bai_agent_sim::RpcOptions;
use bai_db_models::entities::enums::KernelStatus;
use bai_db_models::entities::{agents, kernels};
use sea_orm::prelude::Uuid;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::agents::{Simulated, agent_toml, wait_for};
use crate::session_support::{
    create_session, ready_session_id, registered_real_agent, session_row, stack_with_server,
    wait_for_agent,
};
use crate::support::{CLIENT_23_09, CLIENT_24_03, Client, PYTHON_IMAGE, Stack, created_session_id};

async fn occupied(stack: &Stack, id: &str) -> Value {
    agents::Entity::find_by_id(id.to_owned())
        .one(&stack.db.connection)
        .await
        .expect("agents")
        .expect("the agent")
        .occupied_slots
        .to_json()
}

async fn kernel_rows(stack: &Stack, id: &str) -> Vec<kernels::Model> {
    let id: Uuid = id.parse().expect("a session id");
    kernels::Entity::find()
        .filter(kernels::Column::SessionId.eq(id))
        .all(&stack.db.connection)
        .await
        .expect("kernels")
}

/// `session info` of `session_id`: its one item.
fn info(client: &Client, stack: &Stack, port: u16, session_id: &str) -> Value {
    let mut info = client.cli_json(stack, port, &["session", "info", session_id]);
    assert_eq!(info["total_count"], 1, "{info}");
    info["items"][0].take()
}

/// `session rm name`, then waits until the session is TERMINATED.
async fn remove(client: &Client, stack: &Stack, port: u16, name: &str, session_id: &str) {
    let removed = client.cli(stack, port, &["session", "rm", name]);
    assert!(!removed.contains('✘'), "{removed}");
    wait_status(client, stack, port, name, session_id, "TERMINATED").await;
}

/// Waits until `session info` of `client` shows `session_id` in `status`.
async fn wait_status(
    client: &Client,
    stack: &Stack,
    port: u16,
    what: &str,
    session_id: &str,
    status: &str,
) {
    wait_for(
        &format!("{what} {status}"),
        Duration::from_secs(30),
        || async {
            let session = info(client, stack, port, session_id);
            (session["status"] == status).then_some(())
        },
    )
    .await;
}

/// `session create` (waiting), `session list`, `admin session list`, `session info` and
/// `session rm` of `client` on `agent`, for a session named `name`.
async fn create_run_destroy(stack: &Stack, port: u16, client: &Client, name: &str, agent: &str) {
    let session_id = ready_session_id(&create_session(client, stack, port, name, &[]));
    for args in [&["session", "list"][..], &["admin", "session", "list"]] {
        let listed = client.cli_json(stack, port, args);
        assert_eq!(listed["total_count"], 1, "{args:?}: {listed}");
        let item = &listed["items"][0];
        assert_eq!(item["name"], name, "{args:?}: {listed}");
        assert_eq!(item["session_id"], session_id.as_str(), "{listed}");
        assert_eq!(item["status"], "RUNNING", "{listed}");
        assert_eq!(item["image"], PYTHON_IMAGE, "{listed}");
    }
    let session = info(client, stack, port, &session_id);
    assert_eq!(session["status"], "RUNNING", "{session}");
    assert_eq!(session["containers"][0]["agent"], agent, "{session}");
    assert_eq!(session["containers"][0]["status"], "RUNNING", "{session}");
    assert_eq!(
        session["occupying_slots"],
        json!({"cpu": "1", "mem": "1073741824"}),
        "{session}"
    );
    assert_eq!(
        occupied(stack, agent).await,
        json!({"cpu": "1", "mem": "1073741824"})
    );

    remove(client, stack, port, name, &session_id).await;
    assert_eq!(occupied(stack, agent).await, json!({}));
    let listed = client.cli_json(stack, port, &["session", "list"]);
    assert_eq!(listed["total_count"], 0, "{listed}");
    let dead = client.cli_json(stack, port, &["admin", "session", "list", "--dead"]);
    let item = dead["items"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["name"] == name))
        .unwrap_or_else(|| panic!("{name} is not among the dead: {dead}"));
    assert_eq!(item["status"], "TERMINATED", "{dead}");
}

/// A session of two kernels on one agent (`--cluster-size 2`, single-node).
async fn two_kernel_cluster(stack: &Stack, port: u16, client: &Client, name: &str, agent: &str) {
    let session_id = ready_session_id(&create_session(
        client,
        stack,
        port,
        name,
        &["--cluster-size", "2"],
    ));
    let session = info(client, stack, port, &session_id);
    assert_eq!(session["status"], "RUNNING", "{session}");
    let containers = session["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 2, "{session}");
    let mut roles: Vec<&str> = containers
        .iter()
        .map(|container| {
            assert_eq!(container["agent"], agent, "{session}");
            assert_eq!(container["status"], "RUNNING", "{session}");
            container["cluster_role"].as_str().expect("a role")
        })
        .collect();
    roles.sort_unstable();
    assert_eq!(roles, ["main", "sub"], "{session}");

    let row = session_row(stack, &session_id).await;
    assert_eq!(row.cluster_mode, "single-node");
    assert_eq!(row.cluster_size, 2);
    assert_eq!(row.agent_ids, Some(vec![agent.to_owned()]));
    let kernels = kernel_rows(stack, &session_id).await;
    assert_eq!(kernels.len(), 2);
    for kernel in &kernels {
        assert_eq!(kernel.status, KernelStatus::Running);
        assert_eq!(kernel.agent.as_deref(), Some(agent));
    }
    // The session's network is made by `create_local_network("bai-singlenode-{id}")` on the
    // agent before `create_kernels`; a failure there would have cancelled the session. The dummy
    // agent only logs the call at DEBUG, which the shared agent configuration does not enable.
    assert_eq!(
        occupied(stack, agent).await,
        json!({"cpu": "2", "mem": "2147483648"})
    );
    remove(client, stack, port, name, &session_id).await;
    for kernel in kernel_rows(stack, &session_id).await {
        assert_eq!(kernel.status, KernelStatus::Terminated);
    }
    assert_eq!(occupied(stack, agent).await, json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_runs_on_a_simulated_agent_and_is_destroyed() {
    let (stack, mut server, port) = stack_with_server("sessions_sim").await;
    let config = agent_toml(
        &stack,
        &stack.path("agent"),
        "i-sim-session",
        "default",
        1.0,
        1,
    );
    let agents = Simulated::start_serving(&config, None, Some(RpcOptions::default()));
    wait_for_agent(&stack, "i-sim-session").await;
    create_run_destroy(&stack, port, &CLIENT_24_03, "runs01", "i-sim-session").await;
    agents.stop().await;
    server.stop(nix::sys::signal::Signal::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_clients_run_sessions_and_clusters_on_the_real_dummy_agent() {
    let (stack, mut server, port) = stack_with_server("sessions_real").await;
    let agent = registered_real_agent(&stack, "i-real-session").await;
    for (client, name) in [(&CLIENT_24_03, "runs2403"), (&CLIENT_23_09, "runs2309")] {
        create_run_destroy(&stack, port, client, name, "i-real-session").await;
    }
    // The install guide's policy allows one container per session: the reference refuses a
    // cluster at enqueue time (412, `QuotaExceeded`).
    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let output = client.run(
            &stack,
            port,
            "backend.ai",
            &[
                "session",
                "create",
                "--cluster-size",
                "2",
                "-r",
                "cpu=1",
                PYTHON_IMAGE,
            ],
        );
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!output.status.success(), "{printed}");
        assert!(printed.contains("412 Precondition Failed"), "{printed}");
        assert!(
            printed.contains("You cannot create session with more than 1 containers."),
            "{printed}"
        );
    }
    stack
        .db
        .connection
        .execute_unprepared(
            "UPDATE keypair_resource_policies SET max_containers_per_session = 2 \
             WHERE name = 'default'",
        )
        .await
        .expect("the policy");
    crate::support::announce_change(&stack).await;
    for (client, name) in [(&CLIENT_24_03, "pair2403"), (&CLIENT_23_09, "pair2309")] {
        two_kernel_cluster(&stack, port, client, name, "i-real-session").await;
    }
    drop(agent);
    server.stop(nix::sys::signal::Signal::SIGTERM).await;
}

/// What `session info` of `client` shows of a PENDING session's `status_data.scheduler`, once a
/// round found that a predicate failed.
async fn failed_checks(client: &Client, stack: &Stack, port: u16, session_id: &str) -> Value {
    wait_for("the session tried", Duration::from_secs(30), || async {
        let session = info(client, stack, port, session_id);
        (session["status_info"] == "predicate-checks-failed").then_some(())
    })
    .await;
    let session = info(client, stack, port, session_id);
    assert_eq!(session["status"], "PENDING", "{session}");
    let data = &session["status_data"];
    let data: Value = match data.as_str() {
        Some(text) => serde_json::from_str(text).expect("status_data JSON"),
        None => data.clone(),
    };
    let scheduler = data["scheduler"].clone();
    assert!(
        scheduler["retries"].as_u64().is_some_and(|n| n >= 1),
        "{session}"
    );
    assert!(scheduler["last_try"].is_string(), "{session}");
    scheduler
}

/// The predicates of a non-SYSTEM session in the reference's order (spec §4.3), as
/// `passed_predicates` lists them, without those named in `failed`.
fn passed_except(failed: &[&str]) -> Value {
    [
        "reserved_time",
        "dependencies",
        "concurrency",
        "pending_session_resource_limit",
        "pending_session_count_limit",
        "keypair_resource_limit",
        "user_resource_limit",
        "user_group_resource_limit",
        "domain_resource_limit",
    ]
    .into_iter()
    .filter(|name| !failed.contains(name))
    .map(|name| json!({ "name": name }))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_over_the_keypair_quota_wait_with_the_reference_messages() {
    let (stack, mut server, port) = stack_with_server("sessions_quota").await;
    let db = &stack.db.connection;
    // The install guide's policy of every keypair: one session at a time.
    db.execute_unprepared(
        "UPDATE keypair_resource_policies SET max_concurrent_sessions = 1 WHERE name = 'default'",
    )
    .await
    .expect("the policy");
    crate::support::announce_change(&stack).await;
    let agent = registered_real_agent(&stack, "i-real-quota").await;
    let client = &CLIENT_24_03;
    let first = ready_session_id(&create_session(client, &stack, port, "first", &[]));
    // The second from the 23.9.10 client, which asks not to wait.
    let printed = create_session(&CLIENT_23_09, &stack, port, "second", &["--enqueue-only"]);
    assert!(printed.contains("is enqueued for scheduling"), "{printed}");
    let second = created_session_id(&printed);

    // The round that `session_enqueued` triggers tries it and leaves it PENDING (spec §4.3,
    // §4.7): the reference runs every predicate and records which passed and which failed.
    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let scheduler = failed_checks(client, &stack, port, &second).await;
        assert_eq!(
            scheduler["failed_predicates"],
            json!([{"name": "concurrency", "msg": "You cannot run more than 1 concurrent sessions"}]),
        );
        assert_eq!(
            scheduler["passed_predicates"],
            passed_except(&["concurrency"])
        );
    }
    assert_eq!(session_row(&stack, &second).await.agent_ids, None);
    assert_eq!(
        occupied(&stack, "i-real-quota").await,
        json!({"cpu": "1", "mem": "1073741824"})
    );

    // Once the first is gone, a round triggered by its termination starts the second.
    remove(client, &stack, port, "first", &first).await;
    wait_status(
        client,
        &stack,
        port,
        "the second session",
        &second,
        "RUNNING",
    )
    .await;

    // Now slots, not sessions: 1.5 GiB in all (other slots unlimited), 1 GiB held by the second.
    // The admin's main keypair is this keypair, so its user quota fails too. The listing is
    // `ResourceSlot.from_policy(...).to_humanized(...)` of the reference: the policy's slots,
    // then the other known slots filled in, sizes as `BinarySize`.
    db.execute_unprepared(
        "UPDATE keypair_resource_policies SET max_concurrent_sessions = 0, \
         total_resource_slots = '{\"mem\": \"1610612736\"}' WHERE name = 'default'",
    )
    .await
    .expect("the policy");
    crate::support::announce_change(&stack).await;
    let printed = create_session(client, &stack, port, "third", &["--enqueue-only"]);
    assert!(printed.contains("is enqueued for scheduling"), "{printed}");
    let third = created_session_id(&printed);
    let scheduler = failed_checks(client, &stack, port, &third).await;
    assert_eq!(
        scheduler["failed_predicates"],
        json!([
            {"name": "keypair_resource_limit",
             "msg": "Your keypair resource quota is exceeded. (mem=1.5g cpu=Infinity)"},
            {"name": "user_resource_limit",
             "msg": "Your main-keypair resource quota is exceeded. (mem=1.5g cpu=Infinity)"},
        ])
    );
    assert_eq!(
        scheduler["passed_predicates"],
        passed_except(&["keypair_resource_limit", "user_resource_limit"])
    );

    remove(client, &stack, port, "second", &second).await;
    wait_status(client, &stack, port, "the third session", &third, "RUNNING").await;
    remove(client, &stack, port, "third", &third).await;
    assert_eq!(occupied(&stack, "i-real-quota").await, json!({}));
    drop(agent);
    server.stop(nix::sys::signal::Signal::SIGTERM).await;
}
