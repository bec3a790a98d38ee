//! The official clients' user and keypair admin commands against our server: `admin user list`,
//! `admin user info`, `admin keypair list` and `admin keypair info` of 24.3.11 (Python 3.12) and
//! 23.9.10 (Python 3.11), with `--output json`, checked item by item against the install guide's
//! users and keypairs; and the `--filter`/`--order` options of the list commands.

use crate::support::{CLIENT_23_09, CLIENT_24_03, Client, Server, Settings, Stack, free_port};
use serde_json::{Value, json};

const DEFAULT_GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const MODEL_STORE: &str = "8e32dd28-d319-4e3b-8851-ea37837699a5";

/// The install guide's users: (uuid, username, role, email, full name, access key, secret key),
/// in the lists' default order (newest first, all loaded at once, then by uuid).
const USERS: [(&str, &str, &str, &str, &str, &str, &str); 5] = [
    (
        "009fb1a4-487c-4f6e-9b1b-228b94b1d040",
        "user2",
        "user",
        "user2@lablup.com",
        "User Lablup",
        "AKIANATWOUSEREXAMPLE",
        "P7oxTDdzHbEpUSs5v7r7EWj9yKstp8VpZ7SEyA-g",
    ),
    (
        "2e10157d-20ca-4bd0-9806-3f909cbcd0e6",
        "monitor",
        "monitor",
        "monitor@lablup.com",
        "Monitor Lablup",
        "AKIANAMONITOREXAMPLE",
        "7tuEwF1J7FfK41vOM4uSSyWCUWjPBolpVwvgkSBu",
    ),
    (
        "4f13d193-f646-425a-a340-270c4d2b9860",
        "domain-admin",
        "admin",
        "domain-admin@lablup.com",
        "Default Domain Admin Lablup",
        "AKIAHUKCHDEZGEXAMPLE",
        "cWbsM_vBB4CzTW7JdORRMx8SjGI3-wEXAMPLEKEY",
    ),
    (
        "dfa9da54-4b28-432f-be29-c0d680c7a412",
        "user",
        "user",
        "user@lablup.com",
        "User Lablup",
        "AKIANABBDUSEREXAMPLE",
        "C8qnIo29EZvXkPK_MXcuAakYTy4NYrxwmCEyNPlf",
    ),
    (
        "f38dea23-50fa-42a0-b5ae-338f5f4693f4",
        "admin",
        "superadmin",
        "admin@lablup.com",
        "Admin Lablup",
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
];

fn user(email: &str) -> Value {
    let (uuid, username, role, email, full_name, access_key, _) = USERS
        .iter()
        .copied()
        .find(|user| user.3 == email)
        .expect("a fixture user");
    json!({
        "uuid": uuid,
        "username": username,
        "role": role,
        "email": email,
        "full_name": full_name,
        "need_password_change": false,
        "status": "active",
        "status_info": "admin-requested",
        "domain_name": "default",
        "groups": [
            {"id": DEFAULT_GROUP, "name": "default"},
            {"id": MODEL_STORE, "name": "model-store"},
        ],
        "allowed_client_ip": null,
        "sudo_session_enabled": false,
        "main_access_key": access_key,
    })
}

/// A keypair item as `admin keypair list` prints it (`info` has no `projects`).
fn keypair(access_key: &str, with_projects: bool) -> Value {
    let (_, _, role, email, full_name, access_key, secret_key) = USERS
        .iter()
        .copied()
        .find(|user| user.5 == access_key)
        .expect("a fixture keypair");
    let mut item = json!({
        "user_id": email,
        "full_name": full_name,
        "access_key": access_key,
        "secret_key": secret_key,
        "is_active": true,
        "is_admin": matches!(role, "superadmin" | "admin"),
        "resource_policy": "default",
        "rate_limit": 30000,
    });
    if with_projects {
        item["projects"] = json!(["default", "model-store"]);
    }
    item
}

/// The items of a `--output json` list, without the timestamps (checked to be present) and the
/// Redis counters, which depend on when the fixtures were loaded and on the Redis the tests share.
fn items(printed: &Value, stamps: &[&str]) -> Vec<Value> {
    assert_eq!(
        printed["count"],
        printed["items"].as_array().expect("items").len()
    );
    printed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let mut item = item.clone();
            let fields = item.as_object_mut().expect("an object");
            for stamp in stamps {
                let value = fields
                    .remove(*stamp)
                    .unwrap_or_else(|| panic!("{stamp} missing"));
                assert!(value.is_string() || value.is_null(), "{stamp}: {value}");
            }
            // Sessions running under the keypair (Redis): none of these keypairs runs any, but
            // the Redis is shared with other tests.
            if let Some(used) = fields.remove("concurrency_used") {
                assert!(used.is_u64(), "concurrency_used: {used}");
            }
            item
        })
        .collect()
}

async fn check(client: &Client, label: &str) {
    let stack = Stack::with_install_guide_keypairs(label).await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    let listed = client.cli_json(&stack, port, &["admin", "user", "list"]);
    assert_eq!(listed["total_count"], 5, "{listed}");
    let expected: Vec<Value> = USERS.iter().map(|user_row| user(user_row.3)).collect();
    assert_eq!(items(&listed, &["created_at"]), expected);

    let listed = client.cli_json(
        &stack,
        port,
        &[
            "admin",
            "user",
            "list",
            "--filter",
            r#"email ilike "%USER%" & status == "ACTIVE""#,
            "--order",
            "-email",
        ],
    );
    assert_eq!(listed["total_count"], 2, "{listed}");
    assert_eq!(
        items(&listed, &["created_at"]),
        [user("user@lablup.com"), user("user2@lablup.com")]
    );
    let listed = client.cli_json(
        &stack,
        port,
        &["admin", "user", "list", "--status", "inactive"],
    );
    assert_eq!(listed, json!({"count": 0, "total_count": 0, "items": []}));

    let shown = client.cli_json(&stack, port, &["admin", "user", "info"]);
    assert_eq!(items(&shown, &["created_at"]), [user("admin@lablup.com")]);
    let shown = client.cli_json(
        &stack,
        port,
        &["admin", "user", "info", "-e", "user@lablup.com"],
    );
    assert_eq!(items(&shown, &["created_at"]), [user("user@lablup.com")]);

    let listed = client.cli_json(&stack, port, &["admin", "keypair", "list"]);
    assert_eq!(listed["total_count"], 5, "{listed}");
    let mut keys: Vec<&str> = USERS.iter().map(|user_row| user_row.5).collect();
    keys.sort_unstable();
    let expected: Vec<Value> = keys.iter().map(|key| keypair(key, true)).collect();
    assert_eq!(items(&listed, &["created_at", "last_used"]), expected);

    let listed = client.cli_json(
        &stack,
        port,
        &[
            "admin",
            "keypair",
            "list",
            "--filter",
            "is_admin == true",
            "--order",
            "+email",
        ],
    );
    assert_eq!(
        items(&listed, &["created_at", "last_used"]),
        [
            keypair("AKIAIOSFODNN7EXAMPLE", true),
            keypair("AKIAHUKCHDEZGEXAMPLE", true)
        ]
    );

    let shown = client.cli_json(&stack, port, &["admin", "keypair", "info"]);
    let shown = items(&shown, &["created_at", "last_used"]);
    assert_eq!(shown, [keypair("AKIAIOSFODNN7EXAMPLE", false)]);

    let (status, _) = server.stop(nix::sys::signal::Signal::SIGTERM).await;
    assert!(status.success(), "{}", server.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_user_and_keypair_commands_of_24_3_11() {
    check(&CLIENT_24_03, "pyadmin_uk2403").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_user_and_keypair_commands_of_23_9_10() {
    check(&CLIENT_23_09, "pyadmin_uk2309").await;
}
