//! The official clients' agent admin commands against our server, with `--output json`: `admin
//! agent list` (the CLI asks for `ALIVE` agents) without agents and with agent rows loaded as a
//! fixture, and `admin agent info`, of 24.3.11 (Python 3.12) and 23.9.10 (Python 3.11).

use crate::support::{CLIENT_23_09, CLIENT_24_03, Client, Server, Settings, Stack, free_port};
use bai_db_models::fixtures::{self, FixtureFile};
use serde_json::{Value, json};

/// Two agents of the default resource group, one alive and one lost, with ids unique to the test
/// (Redis, where live statistics would be, is shared by every test).
fn agents_fixture(alive: &str, lost: &str) -> String {
    let agent = |id: &str, status: &str| {
        json!({
            "id": id, "status": status, "region": "local", "scaling_group": "default",
            "available_slots": {"cpu": "8", "mem": "17179869184"},
            "occupied_slots": {"cpu": "1", "mem": "1073741824"},
            "addr": "tcp://10.0.0.1:6011", "version": "24.03.11", "architecture": "x86_64",
            "first_contact": "2024-05-01T10:00:00+00:00",
        })
    };
    json!({"agents": [agent(alive, "ALIVE"), agent(lost, "LOST")]}).to_string()
}

async fn check(client: &Client, label: &str) {
    let stack = Stack::with_install_guide_keypairs(label).await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    let empty = client.cli_json(&stack, port, &["admin", "agent", "list"]);
    assert_eq!(empty, json!({"count": 0, "total_count": 0, "items": []}));

    let alive = format!("i-{label}-alive");
    let lost = format!("i-{label}-lost");
    let file = FixtureFile::parse("agents.json", &agents_fixture(&alive, &lost)).expect("fixture");
    fixtures::populate(&stack.db.connection, &file)
        .await
        .expect("loading the agents");

    let expected = |id: &str, status: &str| {
        json!({
            "id": id, "status": status, "architecture": "x86_64", "scaling_group": "default",
            "region": "local", "first_contact": "2024-05-01T10:00:00+00:00",
            "cpu_cur_pct": 0.0, "mem_cur_bytes": 0.0,
            "available_slots": {"cpu": "8", "mem": "17179869184"},
            "occupied_slots": {"cpu": "1", "mem": "1073741824"},
        })
    };
    let listed = client.cli_json(&stack, port, &["admin", "agent", "list"]);
    assert_eq!(
        listed,
        json!({"count": 1, "total_count": 1, "items": [expected(&alive, "ALIVE")]})
    );
    let lost_ones = client.cli_json(&stack, port, &["admin", "agent", "list", "-s", "LOST"]);
    assert_eq!(
        lost_ones,
        json!({"count": 1, "total_count": 1, "items": [expected(&lost, "LOST")]})
    );
    let other_group = client.cli_json(
        &stack,
        port,
        &["admin", "agent", "list", "--scaling-group", "nowhere"],
    );
    assert_eq!(other_group["total_count"], 0, "{other_group}");

    let info = client.cli_json(&stack, port, &["admin", "agent", "info", &lost]);
    assert_eq!(
        info,
        json!({"count": 1, "total_count": 1, "items": [{
            "id": lost, "status": "LOST", "region": "local", "architecture": "x86_64",
            "first_contact": "2024-05-01T10:00:00+00:00", "cpu_cur_pct": 0.0,
            "available_slots": {"cpu": "8", "mem": "17179869184"},
            "occupied_slots": {"cpu": "1", "mem": "1073741824"},
            // The client's formatter prints absent live statistics as "".
            "hardware_metadata": null, "live_stat": "",
            "local_config": {"agent": {"auto_terminate_abusing_kernel": false}},
        }]})
    );
    let listed: Value = client.cli_json(
        &stack,
        port,
        &["admin", "agent", "list", "-s", "ALIVE,LOST"],
    );
    assert_eq!(listed["total_count"], 2, "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_agent_commands_of_24_3_11() {
    check(&CLIENT_24_03, "pyadmin_agent2403").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_agent_commands_of_23_9_10() {
    check(&CLIENT_23_09, "pyadmin_agent2309").await;
}
