//! The official clients' keypair resource policy commands against our server, with `--output
//! json`: `admin keypair-resource-policy list|info|add|update|delete` of 24.3.11 (Python 3.12) and
//! 23.9.10 (Python 3.11), checked against the expected JSON and the database afterwards. (Neither
//! client has commands for user or project resource policies or for preset administration.)

use crate::support::{CLIENT_23_09, CLIENT_24_03, Client, Server, Settings, Stack, free_port};
use bai_db_models::entities::enums::DefaultForUnspecified;
use bai_db_models::entities::{ResourceSlot, keypair_resource_policies};
use bai_db_models::queries::resource_policies;
use serde_json::{Value, json};

async fn policy(stack: &Stack, name: &str) -> Option<keypair_resource_policies::Model> {
    resource_policies::keypair_policy(&stack.db.connection, name)
        .await
        .expect("reading the policy")
}

/// The items of a listing with `created_at` checked and removed (it is when the test database
/// was made) and the JSONString fields parsed, so that the comparison does not depend on how the
/// JSON text is spaced.
fn normalized(mut listing: Value) -> Value {
    for item in listing["items"].as_array_mut().expect("items") {
        let item = item.as_object_mut().expect("an item");
        let created_at = item.remove("created_at").expect("created_at");
        assert!(created_at.is_string(), "{created_at}");
        for field in [
            "total_resource_slots",
            "allowed_vfolder_hosts",
            "max_pending_session_resource_slots",
        ] {
            if let Some(Value::String(text)) = item.get(field) {
                let parsed = serde_json::from_str(text).expect("a JSONString");
                item.insert(field.to_owned(), parsed);
            }
        }
    }
    listing
}

pub(crate) const ALL_PERMISSIONS: [&str; 8] = [
    "create-vfolder",
    "modify-vfolder",
    "delete-vfolder",
    "mount-in-session",
    "upload-file",
    "download-file",
    "invite-others",
    "set-user-specific-permission",
];

/// `allowed_vfolder_hosts` with its permission lists sorted (the order of a set).
fn sorted_hosts(mut item: Value) -> Value {
    if let Some(hosts) = item["allowed_vfolder_hosts"].as_object_mut() {
        for permissions in hosts.values_mut() {
            let list = permissions.as_array_mut().expect("permissions");
            list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
    }
    item
}

fn all_permissions_on(host: &str) -> Value {
    let mut permissions: Vec<&str> = ALL_PERMISSIONS.to_vec();
    permissions.sort_unstable();
    json!({ host: permissions })
}

/// The default policy of the install guide's fixtures, as the 24.03 client lists it.
fn default_policy() -> Value {
    json!({
        "name": "default",
        "total_resource_slots": {},
        "max_concurrent_sessions": 5,
        "idle_timeout": 3600,
        "max_containers_per_session": 1,
        "allowed_vfolder_hosts": all_permissions_on("local:volume1"),
        "max_session_lifetime": 0,
        "max_pending_session_count": null,
        "max_pending_session_resource_slots": null,
        "max_concurrent_sftp_sessions": 1,
    })
}

async fn check(client: &Client, label: &str) {
    let stack = Stack::with_install_guide_keypairs(label).await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    if client.venv == CLIENT_23_09.venv {
        // 23.09 formats `max_vfolder_size` as a size, which 24.03 (the reference as well as we)
        // answers with null: its list and info fail on every policy.
        for args in [
            &["admin", "keypair-resource-policy", "list"][..],
            &["admin", "keypair-resource-policy", "info", "default"][..],
        ] {
            assert_eq!(
                client.cli_json_failure(&stack, port, args),
                json!({"error": "float() argument must be a string or a real number, not 'NoneType'"})
            );
        }
    } else {
        let listed = normalized(client.cli_json(
            &stack,
            port,
            &["admin", "keypair-resource-policy", "list"],
        ));
        let items: Vec<Value> = listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .cloned()
            .map(sorted_hosts)
            .collect();
        assert_eq!(items, [default_policy()], "{listed}");
        assert_eq!(
            (&listed["count"], &listed["total_count"]),
            (&json!(1), &json!(1))
        );
        let info = normalized(client.cli_json(
            &stack,
            port,
            &["admin", "keypair-resource-policy", "info", "default"],
        ));
        assert_eq!(info["items"].as_array().expect("items").len(), 1, "{info}");
        assert_eq!(sorted_hosts(info["items"][0].clone()), default_policy());
    }

    let added = client.cli_json(
        &stack,
        port,
        &[
            "admin",
            "keypair-resource-policy",
            "add",
            "lab",
            "--default-for-unspecified",
            "LIMITED",
            "--total-resource-slots",
            "{\"cpu\": \"8\", \"mem\": \"16g\"}",
            "--max-concurrent-sessions",
            "3",
            "--max-concurrent-sftp-sessions",
            "2",
            "--idle-timeout",
            "600",
            "--vfolder-host-perms",
            "{\"local:volume2\": [\"mount-in-session\"]}",
        ],
    );
    assert_eq!(
        added,
        json!({"ok": true, "msg": "success", "resource_policy": {"name": "lab"}})
    );
    let row = policy(&stack, "lab").await.expect("created");
    assert_eq!(row.default_for_unspecified, DefaultForUnspecified::Limited);
    assert_eq!(
        row.total_resource_slots,
        ResourceSlot::from_json(&json!({"cpu": "8", "mem": "17179869184"})).unwrap()
    );
    assert_eq!(
        (
            row.max_session_lifetime,
            row.max_concurrent_sessions,
            row.max_concurrent_sftp_sessions,
            row.max_containers_per_session,
            row.idle_timeout,
        ),
        (0, 3, 2, 1, 600)
    );
    assert_eq!(
        serde_json::to_value(&row.allowed_vfolder_hosts).unwrap(),
        json!({"local:volume2": ["mount-in-session"]})
    );
    assert_eq!(
        (
            row.max_pending_session_count,
            row.max_pending_session_resource_slots.clone()
        ),
        (None, None)
    );

    let defaults = client.cli_json(
        &stack,
        port,
        &["admin", "keypair-resource-policy", "add", "plain"],
    );
    assert_eq!(defaults["ok"], true, "{defaults}");
    let plain = policy(&stack, "plain").await.expect("created");
    assert_eq!(
        (
            plain.default_for_unspecified,
            plain.max_concurrent_sessions,
            plain.max_concurrent_sftp_sessions,
            plain.max_containers_per_session,
            plain.idle_timeout,
        ),
        (DefaultForUnspecified::Unlimited, 30, 30, 1, 1800)
    );
    assert_eq!(
        sorted_hosts(json!({
            "allowed_vfolder_hosts": serde_json::to_value(&plain.allowed_vfolder_hosts).unwrap()
        }))["allowed_vfolder_hosts"],
        all_permissions_on("local:volume1")
    );

    let again = client.cli_json_failure(
        &stack,
        port,
        &["admin", "keypair-resource-policy", "add", "lab"],
    );
    assert_eq!(
        again,
        json!({"ok": false, "msg": "keypair resource policy \"lab\" already exists", "item_name": "resource_policy", "action_name": "add"})
    );

    let updated = client.cli_json(
        &stack,
        port,
        &[
            "admin",
            "keypair-resource-policy",
            "update",
            "lab",
            "--max-concurrent-sessions",
            "7",
            "--total-resource-slots",
            "{\"cpu\": \"2\"}",
        ],
    );
    assert_eq!(
        updated,
        json!({"ok": true, "msg": "success", "name": "lab"})
    );
    let modified = policy(&stack, "lab").await.expect("kept");
    assert_eq!(
        modified,
        keypair_resource_policies::Model {
            max_concurrent_sessions: 7,
            total_resource_slots: ResourceSlot::from_json(&json!({"cpu": "2"})).unwrap(),
            ..row
        }
    );
    if client.venv == CLIENT_24_03.venv {
        let info = normalized(client.cli_json(
            &stack,
            port,
            &["admin", "keypair-resource-policy", "info", "lab"],
        ));
        assert_eq!(
            (
                &info["items"][0]["max_concurrent_sessions"],
                &info["items"][0]["total_resource_slots"]
            ),
            (&json!(7), &json!({"cpu": "2"})),
            "{info}"
        );
    }

    let missing = client.cli_json_failure(
        &stack,
        port,
        &[
            "admin",
            "keypair-resource-policy",
            "update",
            "nowhere",
            "--idle-timeout",
            "1",
        ],
    );
    assert_eq!(
        missing,
        json!({"ok": false, "msg": "no such keypair resource policy \"nowhere\"", "item_name": "resource_policy", "action_name": "update"})
    );

    let refused = client.cli_json_confirmed(
        &stack,
        port,
        &["admin", "keypair-resource-policy", "delete", "default"],
        false,
    );
    assert_eq!(
        refused,
        json!({"ok": false, "msg": "keypair resource policy \"default\" is used by 5 keypairs; give them another policy first", "item_name": "resource_policy", "action_name": "deletion"})
    );
    assert!(policy(&stack, "default").await.is_some());

    let deleted = client.cli_json_confirmed(
        &stack,
        port,
        &["admin", "keypair-resource-policy", "delete", "lab"],
        true,
    );
    assert_eq!(
        deleted,
        json!({"ok": true, "msg": "success", "name": "lab"})
    );
    assert_eq!(policy(&stack, "lab").await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_keypair_resource_policy_commands_of_24_3_11() {
    check(&CLIENT_24_03, "pyadmin_kprp2403").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_keypair_resource_policy_commands_of_23_9_10() {
    check(&CLIENT_23_09, "pyadmin_kprp2309").await;
}
