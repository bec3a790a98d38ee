//! The official clients' domain admin commands against our server, with `--output json`:
//! `admin domain list|info|add|update|delete|purge` of 24.3.11 (Python 3.12) and 23.9.10
//! (Python 3.11), checked against the expected JSON and the database afterwards.

use crate::support::{CLIENT_23_09, CLIENT_24_03, Client, Server, Settings, Stack, free_port};
use bai_db_models::entities::domains;
use bai_db_models::queries;
use serde_json::{Value, json};

fn one(item: Value) -> Value {
    json!({"count": 1, "total_count": 1, "items": [item]})
}

/// A listing without `created_at`, which is the time the test database was made.
fn without_created_at(mut listing: Value) -> Value {
    for item in listing["items"].as_array_mut().expect("items") {
        let created_at = item
            .as_object_mut()
            .expect("an item")
            .remove("created_at")
            .expect("created_at");
        assert!(created_at.is_string(), "{created_at}");
    }
    listing
}

async fn domain(stack: &Stack, name: &str) -> Option<domains::Model> {
    queries::domains::by_name(&stack.db.connection, name)
        .await
        .expect("reading the domain")
}

async fn check(client: &Client, label: &str) {
    let stack = Stack::with_install_guide_keypairs(label).await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    let default_domain = json!({
        "name": "default",
        "description": "The default domain",
        "is_active": true,
        "total_resource_slots": {},
        "allowed_vfolder_hosts": "{}",
        "allowed_docker_registries": ["cr.backend.ai", "index.docker.io"],
        "integration_id": null,
    });
    let listed = client.cli_json(&stack, port, &["admin", "domain", "list"]);
    assert_eq!(without_created_at(listed), one(default_domain.clone()));
    let info = client.cli_json(&stack, port, &["admin", "domain", "info", "default"]);
    assert_eq!(without_created_at(info), one(default_domain));

    let added = client.cli_json(
        &stack,
        port,
        &[
            "admin",
            "domain",
            "add",
            "lab",
            "-d",
            "Research lab",
            "--total-resource-slots",
            "{\"cpu\": \"8\", \"mem\": \"16g\"}",
            "--allowed-docker-registries",
            "cr.backend.ai,docker.io",
        ],
    );
    assert_eq!(
        added,
        json!({"ok": true, "msg": "success", "domain": {"name": "lab"}})
    );
    let row = domain(&stack, "lab").await.expect("created");
    assert_eq!(row.description.as_deref(), Some("Research lab"));
    assert_eq!(row.is_active, Some(true));
    assert_eq!(
        serde_json::to_value(row.total_resource_slots).unwrap(),
        json!({"cpu": "8", "mem": "17179869184"})
    );
    assert_eq!(
        row.allowed_docker_registries,
        ["cr.backend.ai", "docker.io"]
    );

    let again = client.cli_json_failure(&stack, port, &["admin", "domain", "add", "lab"]);
    assert_eq!(
        again,
        json!({"ok": false, "msg": "domain \"lab\" already exists", "item_name": "domain", "action_name": "add"})
    );

    let updated = client.cli_json(
        &stack,
        port,
        &[
            "admin",
            "domain",
            "update",
            "lab",
            "--description",
            "Lab",
            "--is-active",
            "false",
        ],
    );
    assert_eq!(
        updated,
        json!({"ok": true, "msg": "success", "name": "lab"})
    );
    let row = domain(&stack, "lab").await.expect("kept");
    assert_eq!(
        (row.description.as_deref(), row.is_active),
        (Some("Lab"), Some(false))
    );

    client.cli_json(
        &stack,
        port,
        &["admin", "domain", "update", "lab", "--is-active", "true"],
    );
    let deleted = client.cli_json(&stack, port, &["admin", "domain", "delete", "lab"]);
    assert_eq!(
        deleted,
        json!({"ok": true, "msg": "success", "name": "lab"})
    );
    assert_eq!(
        domain(&stack, "lab").await.expect("kept").is_active,
        Some(false)
    );

    let purged =
        client.cli_json_confirmed(&stack, port, &["admin", "domain", "purge", "lab"], true);
    assert_eq!(purged, json!({"ok": true, "msg": "success", "name": "lab"}));
    assert_eq!(domain(&stack, "lab").await, None);

    let refused = client.cli_json_confirmed(
        &stack,
        port,
        &["admin", "domain", "purge", "default"],
        false,
    );
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(
        refused["msg"],
        "domain \"default\" has 5 users; remove them first"
    );
    assert!(domain(&stack, "default").await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_domain_commands_of_24_3_11() {
    check(&CLIENT_24_03, "pyadmin_dom2403").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_domain_commands_of_23_9_10() {
    check(&CLIENT_23_09, "pyadmin_dom2309").await;
}
