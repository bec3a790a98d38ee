//! The scheduler's status, the usage recalculation and the containers of sessions and agents,
//! through the official 24.3.11 client against a running `manager-server`: `backend.ai admin
//! resource recalculate-usage` (of the 23.9.10 client too) repairing agents' occupied slots and keypairs' session counters
//! corrupted on purpose, and, through its SDK (`official_client/scheduler_checks.py`: the CLI has
//! no command for these), `GET /manager/scheduler/status` after the server's own scheduling
//! rounds, `compute_container`, `compute_container_list` and an agent's `compute_containers` as a
//! superadmin and as a user.

use std::time::{Duration, Instant};

use crate::support::{
    CLIENT_23_09, CLIENT_24_03, Client, Server, Settings, Stack, free_port, workspace_file,
};
use bai_db_models::fixtures::{self, FixtureFile};
use bai_redis::StatDb;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

const GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const MANAGER_ID: &str = "i-sched-test";
const AGENT_A: &str = "i-sched-a";
const AGENT_B: &str = "i-sched-b";
const USER_SESSION: &str = "6a3c1d2e-7b8f-4a5e-9c0d-1e2f3a4b5c01";
const ADMIN_SESSION: &str = "6a3c1d2e-7b8f-4a5e-9c0d-1e2f3a4b5c02";
const USER_MAIN: &str = "6a3c1d2e-7b8f-4a5e-9c0d-1e2f3a4b5d01";
const USER_SUB: &str = "6a3c1d2e-7b8f-4a5e-9c0d-1e2f3a4b5d02";
const ADMIN_MAIN: &str = "6a3c1d2e-7b8f-4a5e-9c0d-1e2f3a4b5d03";

/// `user@lablup.com` of the install guide.
const USER_ACCESS_KEY: &str = "AKIANABBDUSEREXAMPLE";
const USER_SECRET_KEY: &str = "C8qnIo29EZvXkPK_MXcuAakYTy4NYrxwmCEyNPlf";
const USER_UUID: &str = "dfa9da54-4b28-432f-be29-c0d680c7a412";
/// `admin@lablup.com`, the superadmin.
const ADMIN_ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const ADMIN_UUID: &str = "f38dea23-50fa-42a0-b5ae-338f5f4693f4";
/// `domain-admin@lablup.com`, who has no session.
const IDLE_ACCESS_KEY: &str = "AKIAHUKCHDEZGEXAMPLE";

/// Two ALIVE agents; the user's RUNNING two-container session on A, the superadmin's RUNNING
/// one-container session on B (one core and 1 GiB per container).
fn rows() -> String {
    let agent = |id: &str| {
        json!({
            "id": id, "status": "ALIVE", "region": "local", "scaling_group": "default",
            "schedulable": true, "available_slots": {"cpu": "8", "mem": "17179869184"},
            "occupied_slots": {}, "addr": format!("tcp://{id}:6001"), "version": "24.03.11",
            "architecture": "x86_64", "compute_plugins": {},
        })
    };
    let session = |id: &str, owner: &str, access_key: &str, agent: &str, size: u32| {
        json!({
            "id": id, "creation_id": format!("c-{}", &id[32..]), "name": format!("s-{}", &id[32..]),
            "session_type": "interactive", "cluster_mode": "single-node", "cluster_size": size,
            "domain_name": "default", "group_id": GROUP, "user_uuid": owner,
            "access_key": access_key, "images": ["cr.backend.ai/stable/python:3.9-ubuntu20.04"],
            "scaling_group_name": "default", "agent_ids": [agent],
            "occupying_slots": {"cpu": size.to_string(), "mem": (u64::from(size) << 30).to_string()},
            "requested_slots": {"cpu": size.to_string(), "mem": (u64::from(size) << 30).to_string()},
            "use_host_network": false, "environ": {}, "status": "RUNNING", "status_history": {},
            "result": "UNDEFINED",
        })
    };
    let kernel = |id: &str, session: &Value, role: &str, idx: u32, agent: &str| {
        json!({
            "id": id, "session_id": session["id"], "session_creation_id": session["creation_id"],
            "session_name": session["name"], "session_type": "interactive",
            "cluster_mode": "single-node", "cluster_size": session["cluster_size"],
            "cluster_role": role, "cluster_idx": idx, "local_rank": idx - 1,
            "cluster_hostname": format!("{role}{idx}"), "scaling_group": "default",
            "domain_name": "default", "group_id": GROUP, "user_uuid": session["user_uuid"],
            "access_key": session["access_key"], "image": "cr.backend.ai/stable/python:3.9-ubuntu20.04",
            "architecture": "x86_64", "registry": "cr.backend.ai", "agent": agent,
            "agent_addr": format!("tcp://{agent}:6001"),
            "occupied_slots": {"cpu": "1", "mem": "1073741824"},
            "requested_slots": {"cpu": "1", "mem": "1073741824"}, "occupied_shares": {},
            "repl_in_port": 0, "repl_out_port": 0, "stdin_port": 0, "stdout_port": 0,
            "use_host_network": false, "status": "RUNNING", "result": "UNDEFINED",
        })
    };
    let users = session(USER_SESSION, USER_UUID, USER_ACCESS_KEY, AGENT_A, 2);
    let admins = session(ADMIN_SESSION, ADMIN_UUID, ADMIN_ACCESS_KEY, AGENT_B, 1);
    let kernels = json!([
        kernel(USER_MAIN, &users, "main", 1, AGENT_A),
        kernel(USER_SUB, &users, "sub", 2, AGENT_A),
        kernel(ADMIN_MAIN, &admins, "main", 1, AGENT_B),
    ]);
    // Written by hand: the loader takes tables in file order, and `json!` sorts keys.
    format!(
        r#"{{"agents": {}, "sessions": {}, "kernels": {kernels}}}"#,
        json!([agent(AGENT_A), agent(AGENT_B)]),
        json!([users, admins]),
    )
}

async fn occupied(stack: &Stack, agent: &str) -> Value {
    let row = stack
        .db
        .connection
        .query_one(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            format!("SELECT occupied_slots::text AS slots FROM agents WHERE id = '{agent}'"),
        ))
        .await
        .expect("SELECT")
        .expect("the agent");
    let text: String = row.try_get("", "slots").expect("slots");
    serde_json::from_str(&text).expect("JSON")
}

/// `scheduler_checks.py` as the given keypair, parsed.
fn sdk_checks(
    client: &Client,
    stack: &Stack,
    port: u16,
    keypair: Option<(&str, &str)>,
    asked: &Value,
) -> Value {
    let script = workspace_file("bins/manager-server/tests/official_client/scheduler_checks.py");
    let mut command = client.command(
        stack,
        port,
        "python",
        &[script.to_str().expect("UTF-8 path"), &asked.to_string()],
    );
    if let Some((access_key, secret_key)) = keypair {
        command
            .env("BACKEND_ACCESS_KEY", access_key)
            .env("BACKEND_SECRET_KEY", secret_key);
    }
    let output = command.output().expect("running scheduler_checks.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "scheduler_checks.py failed: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).expect("the script prints JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduler_status_usage_and_containers_through_the_official_client() {
    let client = &CLIENT_24_03;
    let stack = Stack::with_install_guide_keypairs("sched_status").await;
    let file = FixtureFile::parse("rows.json", &rows()).expect("fixture");
    fixtures::populate(&stack.db.connection, &file)
        .await
        .expect("loading the rows");
    let port = free_port();
    let mut settings = Settings::new(port);
    settings.manager_extra = format!("id = {MANAGER_ID:?}");
    let config = stack.config("manager.toml", &settings);
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    // Corrupted on purpose once the server has derived the occupancy at its start, then
    // repaired by each client's command.
    let stat = StatDb::connect(&stack.redis.config()).await.expect("Redis");
    for recalculating in [&CLIENT_24_03, &CLIENT_23_09] {
        stack
            .db
            .connection
            .execute_unprepared(r#"UPDATE agents SET occupied_slots = '{"cpu": "7", "mem": "1"}'"#)
            .await
            .expect("UPDATE agents");
        stat.set_keypair_concurrency(USER_ACCESS_KEY, 9, 9)
            .await
            .expect("MSET");
        stat.set_keypair_concurrency(IDLE_ACCESS_KEY, 4, 2)
            .await
            .expect("MSET");

        let printed = recalculating.cli(&stack, port, &["admin", "resource", "recalculate-usage"]);
        assert!(
            printed.contains("Resource allocation is re-calculated."),
            "{}: {printed}",
            recalculating.venv
        );
        assert_eq!(
            occupied(&stack, AGENT_A).await,
            json!({"cpu": "2", "mem": "2147483648"})
        );
        assert_eq!(
            occupied(&stack, AGENT_B).await,
            json!({"cpu": "1", "mem": "1073741824"})
        );
        for (access_key, used) in [
            (USER_ACCESS_KEY, 1),
            (ADMIN_ACCESS_KEY, 1),
            (IDLE_ACCESS_KEY, 0),
        ] {
            assert_eq!(
                stat.keypair_concurrency_used(access_key)
                    .await
                    .expect("GET"),
                used,
                "{access_key}"
            );
        }
    }

    // The server's first rounds ran at its start; wait until one is recorded as finished.
    let asked = json!({"kernel": USER_SUB, "session": USER_SESSION, "agent": AGENT_A});
    let deadline = Instant::now() + Duration::from_secs(30);
    let superadmin = loop {
        let results = sdk_checks(client, &stack, port, None, &asked);
        let body = &results["scheduler_status"]["body"];
        if body["schedule"]["finish_time"].is_string() && body["prepare"]["finish_time"].is_string()
        {
            break results;
        }
        assert!(Instant::now() < deadline, "no finished round: {results}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let status = &superadmin["scheduler_status"];
    assert_eq!(status["status"], 200, "{status}");
    let schedule = &status["body"]["schedule"];
    assert_eq!(schedule["trigger_event"], "do_schedule", "{status}");
    assert_eq!(schedule["resource_group"], "default", "{status}");
    assert!(schedule["execution_time"].is_string(), "{status}");
    assert_eq!(status["body"]["prepare"]["trigger_event"], "do_prepare");
    assert_eq!(status["body"]["scale_services"], json!({}));

    assert_eq!(
        superadmin["container"]["data"]["compute_container"],
        json!({"id": USER_SUB, "session_id": USER_SESSION, "cluster_role": "sub", "agent": AGENT_A})
    );
    let list = &superadmin["container_list"]["data"]["compute_container_list"];
    assert_eq!(list["total_count"], 2, "{superadmin}");
    let mut roles: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["cluster_role"].as_str().expect("a role"))
        .collect();
    roles.sort_unstable();
    assert_eq!(roles, ["main", "sub"]);
    let containers = superadmin["agent"]["compute_containers"]
        .as_array()
        .unwrap_or_else(|| panic!("the agent's containers: {superadmin}"));
    let mut ids: Vec<&str> = containers
        .iter()
        .map(|container| container["id"].as_str().expect("an id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [USER_MAIN, USER_SUB]);
    assert_eq!(containers[0]["status"], "RUNNING", "{superadmin}");

    // A user sees neither the scheduler nor another user's containers.
    let as_user = sdk_checks(
        client,
        &stack,
        port,
        Some((USER_ACCESS_KEY, USER_SECRET_KEY)),
        &json!({"kernel": ADMIN_MAIN, "session": ADMIN_SESSION}),
    );
    assert_eq!(as_user["scheduler_status"]["status"], 401, "{as_user}");
    assert_eq!(
        as_user["container"]["data"]["compute_container"],
        Value::Null,
        "{as_user}"
    );
    assert_eq!(
        as_user["container_list"]["data"]["compute_container_list"],
        json!({"items": [], "total_count": 0})
    );

    let (exit, _) = server.stop(nix::sys::signal::Signal::SIGTERM).await;
    assert!(exit.success(), "{}", server.stderr());
}
