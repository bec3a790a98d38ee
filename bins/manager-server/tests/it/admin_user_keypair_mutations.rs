//! The official clients' user and keypair admin commands that write, against our server: `admin
//! user add|update|delete|purge` and `admin keypair add|update|activate|deactivate|delete` of
//! 24.3.11 (Python 3.12) and 23.9.10 (Python 3.11), with `--output json`, each checked against
//! the JSON the client prints and the database afterwards.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::support::{
    ACCESS_KEY, CLIENT_23_09, CLIENT_24_03, Client, SECRET_KEY, Server, Settings, Stack, free_port,
};
use bai_db_models::entities::enums::{UserRole, UserStatus};
use bai_db_models::entities::{keypairs, users};
use bai_db_models::password;
use bai_db_models::queries::keypairs::by_access_key;
use bai_db_models::queries::user_listing::{self, UserScope};
use bai_db_models::testing::TestDatabase;
use serde_json::{Value, json};

const DEFAULT_GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const MODEL_STORE: &str = "8e32dd28-d319-4e3b-8851-ea37837699a5";
const EMAIL: &str = "kim@lablup.com";

/// `backend.ai --output json ARGS` with `input` on its standard input; its exit status and the
/// JSON it printed (after any prompt).
fn cli_answering(
    client: &Client,
    stack: &Stack,
    port: u16,
    args: &[&str],
    input: &str,
) -> (bool, Value) {
    let mut child = Command::new(client.bin("backend.ai"))
        .args(["--output", "json"])
        .args(args)
        .current_dir(stack.dir.path())
        .env("BACKEND_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("BACKEND_ACCESS_KEY", ACCESS_KEY)
        .env("BACKEND_SECRET_KEY", SECRET_KEY)
        .env("PYTHONWARNINGS", "ignore")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run backend.ai");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("answer the prompt");
    let output = child.wait_with_output().expect("backend.ai finishes");
    (output.status.success(), printed_json(args, &output))
}

/// The JSON a command printed; an "Are you sure?" prompt may come first.
fn printed_json(args: &[&str], output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let start = stdout.find('{').unwrap_or_else(|| {
        panic!(
            "backend.ai {} printed no JSON: {stdout}\nstderr: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    serde_json::from_str(&stdout[start..])
        .unwrap_or_else(|error| panic!("backend.ai {}: {error}: {stdout}", args.join(" ")))
}

/// A command that fails: its exit status is 1 and it prints the client's mutation error.
#[track_caller]
fn cli_failure(client: &Client, stack: &Stack, port: u16, args: &[&str]) -> Value {
    let mut full = vec!["--output", "json"];
    full.extend_from_slice(args);
    let output = client.run(stack, port, "backend.ai", &full);
    assert_eq!(output.status.code(), Some(1), "{}", args.join(" "));
    printed_json(args, &output)
}

async fn user_row(db: &TestDatabase, email: &str) -> Option<users::Model> {
    user_listing::by_email(&db.connection, email, &UserScope::default())
        .await
        .expect("read users")
}

async fn keypair_row(db: &TestDatabase, access_key: &str) -> Option<keypairs::Model> {
    by_access_key(&db.connection, access_key)
        .await
        .expect("read keypairs")
        .map(|found| found.keypair)
}

/// The ids of the user's projects, sorted.
async fn projects_of(db: &TestDatabase, user: &users::Model) -> Vec<String> {
    let mut ids: Vec<String> = user_listing::groups_of(&db.connection, &[user.uuid])
        .await
        .expect("read memberships")
        .remove(&user.uuid)
        .unwrap_or_default()
        .into_iter()
        .map(|group| group.id.to_string())
        .collect();
    ids.sort();
    ids
}

async fn check(client: &Client, label: &str) {
    let stack = Stack::with_install_guide_keypairs(label).await;
    let db = &stack.db;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;
    let is_24_03 = client.venv == CLIENT_24_03.venv;

    // admin user add: 24.03 joins the project named by `-g` (`default` unless given, looked up
    // with `groups_by_name`); 23.09 has no such option. Both join the model-store project.
    let add = [
        "admin",
        "user",
        "add",
        "default",
        EMAIL,
        "Kim-pass-1",
        "-n",
        "Kim Lablup",
    ];
    let added = client.cli_json(&stack, port, &add);
    let user = user_row(db, EMAIL).await.expect("the new user");
    let mut expected_user = json!({
        "domain_name": "default",
        "email": EMAIL,
        "username": EMAIL,
        "uuid": user.uuid.to_string(),
    });
    if is_24_03 {
        expected_user["groups"] = json!("default, model-store");
    }
    assert_eq!(
        added,
        json!({"ok": true, "msg": "success", "user": expected_user})
    );
    assert_eq!(user.full_name.as_deref(), Some("Kim Lablup"));
    assert_eq!(user.role, Some(UserRole::User));
    assert_eq!(user.status, UserStatus::Active);
    assert_eq!(user.status_info.as_deref(), Some("admin-requested"));
    assert_eq!(user.resource_policy, "default");
    assert!(password::verify(
        "Kim-pass-1",
        user.password.as_deref().expect("a hash")
    ));
    let mut expected_projects = vec![MODEL_STORE.to_owned()];
    if is_24_03 {
        expected_projects.insert(0, DEFAULT_GROUP.to_owned());
    }
    assert_eq!(projects_of(db, &user).await, expected_projects);
    let main_key = user.main_access_key.clone().expect("a main access key");
    let main = keypair_row(db, &main_key).await.expect("the main keypair");
    assert_eq!(main.user, user.uuid);
    assert_eq!(main.user_id.as_deref(), Some(EMAIL));
    assert_eq!(main.is_active, Some(true));
    assert_eq!(main.is_admin, Some(false));
    assert_eq!(main.rate_limit, Some(10_000));
    assert_eq!(main.resource_policy, "default");
    assert!(
        main.ssh_public_key
            .as_deref()
            .is_some_and(|key| key.starts_with("ssh-rsa "))
    );

    // admin user update: only what is given (the client always sends `description`).
    let updated = client.cli_json(
        &stack,
        port,
        &[
            "admin",
            "user",
            "update",
            EMAIL,
            "-n",
            "Kim Minji",
            "-r",
            "admin",
        ],
    );
    assert_eq!(
        updated,
        json!({"ok": true, "msg": "success", "email": EMAIL})
    );
    let user = user_row(db, EMAIL).await.expect("the user");
    assert_eq!(user.full_name.as_deref(), Some("Kim Minji"));
    assert_eq!(user.role, Some(UserRole::Admin));
    assert_eq!(user.description.as_deref(), Some(""));
    assert_eq!(user.username.as_deref(), Some(EMAIL));
    let main = keypair_row(db, &main_key).await.expect("the main keypair");
    assert_eq!(main.is_admin, Some(true), "the keypair follows the role");

    // admin keypair add, update, deactivate, activate.
    let added = client.cli_json(
        &stack,
        port,
        &["admin", "keypair", "add", EMAIL, "default", "-r", "500"],
    );
    let access_key = added["access_key"]
        .as_str()
        .expect("an access key")
        .to_owned();
    let secret_key = added["secret_key"]
        .as_str()
        .expect("a secret key")
        .to_owned();
    assert_eq!(
        added,
        json!({
            "ok": true,
            "msg": "success",
            "access_key": access_key,
            "secret_key": secret_key,
            "keypair": {"access_key": access_key, "secret_key": secret_key},
        })
    );
    let keypair = keypair_row(db, &access_key).await.expect("the new keypair");
    assert_eq!(keypair.user, user.uuid);
    assert_eq!(keypair.secret_key.as_deref(), Some(secret_key.as_str()));
    assert_eq!(keypair.rate_limit, Some(500));
    assert_eq!(keypair.is_active, Some(true));
    assert_eq!(keypair.is_admin, Some(false));

    let done = json!({"ok": true, "msg": "success", "access_key": access_key});
    let updated = client.cli_json(
        &stack,
        port,
        &[
            "admin",
            "keypair",
            "update",
            &access_key,
            "--rate-limit",
            "7",
            "--is-admin",
            "true",
        ],
    );
    assert_eq!(updated, done);
    let keypair = keypair_row(db, &access_key).await.expect("the keypair");
    assert_eq!(keypair.rate_limit, Some(7));
    assert_eq!(keypair.is_admin, Some(true));
    assert_eq!(keypair.is_active, Some(true));

    let deactivated = client.cli_json(
        &stack,
        port,
        &["admin", "keypair", "deactivate", &access_key],
    );
    assert_eq!(deactivated, done);
    let keypair = keypair_row(db, &access_key).await.expect("the keypair");
    assert_eq!(keypair.is_active, Some(false));
    assert_eq!(
        keypair.resource_policy, "default",
        "the client's nulls change nothing"
    );
    assert_eq!(keypair.rate_limit, Some(7));
    let activated = client.cli_json(&stack, port, &["admin", "keypair", "activate", &access_key]);
    assert_eq!(activated, done);
    assert_eq!(
        keypair_row(db, &access_key)
            .await
            .expect("the keypair")
            .is_active,
        Some(true)
    );

    // admin keypair delete: refused for a main access key, done for another.
    let refused = cli_failure(
        client,
        &stack,
        port,
        &["admin", "keypair", "delete", &main_key],
    );
    assert_eq!(
        refused,
        json!({
            "ok": false,
            "msg": "the keypair is used as main access key by any user",
            "item_name": "keypair",
            "action_name": "deletion",
        })
    );
    assert!(keypair_row(db, &main_key).await.is_some());
    let deleted = client.cli_json(&stack, port, &["admin", "keypair", "delete", &access_key]);
    assert_eq!(deleted, done);
    assert_eq!(keypair_row(db, &access_key).await, None);

    // admin user delete marks the user deleted and its keypairs inactive.
    let deleted = client.cli_json(&stack, port, &["admin", "user", "delete", EMAIL]);
    assert_eq!(
        deleted,
        json!({"ok": true, "msg": "success", "email": EMAIL})
    );
    let user = user_row(db, EMAIL).await.expect("still stored");
    assert_eq!(user.status, UserStatus::Deleted);
    assert_eq!(
        keypair_row(db, &main_key)
            .await
            .expect("still stored")
            .is_active,
        Some(false)
    );

    // admin user purge asks first, then deletes the user and its keypairs.
    let (succeeded, purged) = cli_answering(
        client,
        &stack,
        port,
        &["admin", "user", "purge", EMAIL],
        "y\n",
    );
    assert!(succeeded, "{purged}");
    assert_eq!(
        purged,
        json!({"ok": true, "msg": "success", "email": EMAIL})
    );
    assert_eq!(user_row(db, EMAIL).await, None);
    assert_eq!(keypair_row(db, &main_key).await, None);
    let refused = cli_failure(
        client,
        &stack,
        port,
        &["admin", "user", "update", EMAIL, "-n", "x"],
    );
    assert_eq!(
        refused,
        json!({
            "ok": false,
            "msg": format!("no such user {EMAIL:?}"),
            "item_name": "user",
            "action_name": "update",
        })
    );

    let (status, _) = server.stop(nix::sys::signal::Signal::SIGTERM).await;
    assert!(status.success(), "{}", server.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_user_and_keypair_writes_of_24_3_11() {
    check(&CLIENT_24_03, "pyadmin_ukw2403").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_user_and_keypair_writes_of_23_9_10() {
    check(&CLIENT_23_09, "pyadmin_ukw2309").await;
}
