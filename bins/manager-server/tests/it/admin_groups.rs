//! The official clients' group (project) admin commands against our server, with `--output json`:
//! `admin group list|info|add|update|add-users|remove-users|delete|purge` of 24.3.11 (Python 3.12)
//! and 23.9.10 (Python 3.11), checked against the expected JSON and the database afterwards.

use crate::support::{CLIENT_23_09, CLIENT_24_03, Client, Server, Settings, Stack, free_port};
use bai_db_models::entities::enums::ProjectType;
use bai_db_models::entities::groups;
use bai_db_models::queries;
use bai_db_models::queries::user_listing::UserScope;
use serde_json::{Value, json};

const DEFAULT_GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const USER_UUID: &str = "dfa9da54-4b28-432f-be29-c0d680c7a412";
const USER2_UUID: &str = "009fb1a4-487c-4f6e-9b1b-228b94b1d040";

/// A listing without `created_at` (the time the test database was made), which must be a string.
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

/// The stored group whose id reads `id`.
async fn group(stack: &Stack, id: &str) -> Option<groups::Model> {
    let every_type = [ProjectType::General, ProjectType::ModelStore];
    queries::groups::list(&stack.db.connection, None, None, &every_type)
        .await
        .expect("reading the groups")
        .into_iter()
        .find(|row| row.id.to_string() == id)
}

/// The UUIDs of the members of `row`, sorted.
async fn members(stack: &Stack, row: &groups::Model) -> Vec<String> {
    let scope = UserScope {
        group_id: Some(row.id),
        ..UserScope::default()
    };
    let mut members: Vec<String> =
        queries::user_listing::list(&stack.db.connection, &scope, None, None, None)
            .await
            .expect("reading the members")
            .into_iter()
            .map(|user| user.uuid.to_string())
            .collect();
    members.sort();
    members
}

async fn check(client: &Client, label: &str) {
    let stack = Stack::with_install_guide_keypairs(label).await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    let listed = client.cli_json(&stack, port, &["admin", "group", "list"]);
    assert_eq!(
        without_created_at(listed),
        json!({"count": 1, "total_count": 1, "items": [
            {"id": DEFAULT_GROUP, "name": "default", "is_active": true, "integration_id": null},
        ]})
    );
    let default_detail = json!({"count": 1, "total_count": 1, "items": [{
        "id": DEFAULT_GROUP,
        "name": "default",
        "description": "The default user group",
        "is_active": true,
        "domain_name": "default",
        "total_resource_slots": {},
        "allowed_vfolder_hosts": "{}",
        "integration_id": null,
    }]});
    for id_or_name in [DEFAULT_GROUP, "default"] {
        let info = client.cli_json(&stack, port, &["admin", "group", "info", id_or_name]);
        assert_eq!(without_created_at(info), default_detail, "{id_or_name}");
    }

    let mut added = client.cli_json(
        &stack,
        port,
        &[
            "admin",
            "group",
            "add",
            "default",
            "lab",
            "-d",
            "Research lab",
            "--total-resource-slots",
            "{\"cpu\": \"8\", \"mem\": \"16g\"}",
            "--vfolder-host-perms",
            "{\"local:volume1\": [\"create-vfolder\"]}",
        ],
    );
    let id = added["group"]
        .as_object_mut()
        .expect("the group")
        .remove("id")
        .expect("its id");
    let id = id.as_str().expect("a UUID").to_owned();
    assert_eq!(
        added,
        json!({"ok": true, "msg": "success", "group": {"domain_name": "default", "name": "lab"}})
    );
    let row = group(&stack, &id).await.expect("created");
    assert_eq!(row.description.as_deref(), Some("Research lab"));
    assert_eq!(row.is_active, Some(true));
    assert_eq!(row.integration_id, None);
    assert_eq!(
        serde_json::to_value(row.total_resource_slots).unwrap(),
        json!({"cpu": "8", "mem": "17179869184"})
    );
    assert_eq!(
        row.allowed_vfolder_hosts.hosts().collect::<Vec<_>>(),
        ["local:volume1"]
    );

    let again = client.cli_json_failure(&stack, port, &["admin", "group", "add", "default", "lab"]);
    assert_eq!(
        again,
        json!({"ok": false, "msg": "group \"lab\" already exists in domain \"default\"", "item_name": "group", "action_name": "add"})
    );
    let nowhere =
        client.cli_json_failure(&stack, port, &["admin", "group", "add", "nowhere", "lab"]);
    assert_eq!(
        nowhere,
        json!({"ok": false, "msg": "no such domain \"nowhere\"", "item_name": "group", "action_name": "add"})
    );

    let updated = client.cli_json(
        &stack,
        port,
        &[
            "admin",
            "group",
            "update",
            &id,
            "--name",
            "lab2",
            "--description",
            "Lab",
            "--is-active",
            "false",
        ],
    );
    assert_eq!(updated, json!({"ok": true, "msg": "success", "gid": id}));
    let row = group(&stack, &id).await.expect("kept");
    // 23.9.10 converts `--is-active` with Python's `bool()`, so "false" sends true (against the
    // reference as well).
    let is_active = client.venv == CLIENT_23_09.venv;
    assert_eq!(
        (row.name.as_str(), row.description.as_deref(), row.is_active),
        ("lab2", Some("Lab"), Some(is_active))
    );
    assert_eq!(
        row.allowed_vfolder_hosts.hosts().collect::<Vec<_>>(),
        ["local:volume1"],
        "not given, so unchanged"
    );

    let joined = client.cli_json(
        &stack,
        port,
        &["admin", "group", "add-users", &id, USER_UUID, USER2_UUID],
    );
    assert_eq!(joined, json!({"ok": true, "msg": "success", "gid": id}));
    assert_eq!(members(&stack, &row).await, [USER2_UUID, USER_UUID]);
    let twice = client.cli_json_failure(
        &stack,
        port,
        &["admin", "group", "add-users", &id, USER_UUID],
    );
    assert_eq!(
        twice,
        json!({"ok": false, "msg": format!("user {USER_UUID} is already a member of group {id}"), "item_name": "group", "action_name": "add_users"})
    );
    let left = client.cli_json(
        &stack,
        port,
        &["admin", "group", "remove-users", &id, USER2_UUID],
    );
    assert_eq!(left, json!({"ok": true, "msg": "success", "gid": id}));
    assert_eq!(members(&stack, &row).await, [USER_UUID]);

    let deleted = client.cli_json(&stack, port, &["admin", "group", "delete", &id]);
    assert_eq!(deleted, json!({"ok": true, "msg": "success", "gid": id}));
    assert_eq!(
        group(&stack, &id).await.expect("kept").is_active,
        Some(false)
    );
    let listed = client.cli_json(&stack, port, &["admin", "group", "list"]);
    assert_eq!(
        without_created_at(listed)["items"][1],
        json!({"id": id, "name": "lab2", "is_active": false, "integration_id": null})
    );

    let purged = client.cli_json_confirmed(&stack, port, &["admin", "group", "purge", &id], true);
    assert_eq!(purged, json!({"ok": true, "msg": "success", "gid": id}));
    assert_eq!(group(&stack, &id).await, None);
    assert!(members(&stack, &row).await.is_empty());

    let refused = client.cli_json_confirmed(&stack, port, &["admin", "group", "purge", &id], false);
    assert_eq!(
        refused,
        json!({"ok": false, "msg": format!("no such group {id}"), "item_name": "group", "action_name": "purge"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_group_commands_of_24_3_11() {
    check(&CLIENT_24_03, "pyadmin_grp2403").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_group_commands_of_23_9_10() {
    check(&CLIENT_23_09, "pyadmin_grp2309").await;
}
