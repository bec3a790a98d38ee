//! The official Backend.AI client from PyPI against our server, unchanged: 24.3.11 on Python 3.12
//! and 23.9.10 on Python 3.11, from the venvs `cargo xtask venv` makes. Each test runs a real
//! `manager-server` on its own database, etcd namespace and port, then drives it with the client's
//! CLI (`backend.ai ...`) and, for what the CLI has no command for, with its SDK
//! (`official_client/sdk_checks.py`: presets, scaling groups, a login through `/auth/authorize`, and
//! signed calls with the keypair the login returned).

use crate::support::{
    CLIENT_23_09, CLIENT_24_03, Client, Server, Settings, Stack, free_port, workspace_file,
};
use bai_etcd_store::Scope;
use serde_json::Value;

async fn check_client(client: &Client, label: &str) {
    let stack = Stack::with_install_guide_keypairs(label).await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    let printed = client.cli(&stack, port, &["config"]);
    assert!(
        printed.contains("Server version: 24.03.11 (API: v8.20240315)"),
        "{printed}"
    );
    assert!(printed.contains(client.negotiated), "{printed}");

    // Signed superadmin calls through the CLI.
    let status = client.cli(&stack, port, &["admin", "manager", "status"]);
    assert!(status.contains("running"), "{status}");
    client.cli(&stack, port, &["admin", "manager", "freeze"]);
    assert_eq!(
        stack
            .store
            .get("manager/status", Scope::Global)
            .await
            .unwrap()
            .as_deref(),
        Some("frozen")
    );
    client.cli(&stack, port, &["admin", "manager", "unfreeze"]);
    assert_eq!(
        stack
            .store
            .get("manager/status", Scope::Global)
            .await
            .unwrap()
            .as_deref(),
        Some("running")
    );
    let redis = client.cli(&stack, port, &["admin", "etcd", "get", "config/redis/addr"]);
    assert!(redis.contains(&stack.redis.addr()), "{redis}");
    let slots = client.cli(&stack, port, &["admin", "resource", "query-slots"]);
    assert!(slots.contains("cpu") && slots.contains("mem"), "{slots}");

    // The SDK: presets, scaling groups, and a login as user@lablup.com.
    let script = workspace_file("bins/manager-server/tests/official_client/sdk_checks.py");
    let login = r#"{"username": "user@lablup.com", "password": "C8qnIo29"}"#;
    let output = client.run(
        &stack,
        port,
        "python",
        &[script.to_str().expect("UTF-8 path"), login],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "sdk_checks.py ({}) failed: {}\nstdout: {stdout}\nstderr: {}",
        client.venv,
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Value = serde_json::from_str(&stdout).expect("the script prints JSON");
    assert!(results["presets"]["presets"].is_array(), "{results}");
    assert!(results["check_presets"]["presets"].is_array(), "{results}");
    assert_eq!(
        results["scaling_groups"],
        serde_json::json!({"status": 200, "body": {"scaling_groups": [{"name": "default"}]}})
    );
    let authorized = &results["authorize"];
    assert_eq!(authorized["status"], 200, "{results}");
    assert_eq!(
        authorized["body"]["data"]["access_key"],
        "AKIANABBDUSEREXAMPLE"
    );
    assert_eq!(authorized["body"]["data"]["role"], "user");
    assert_eq!(authorized["body"]["data"]["status"], "active");
    assert_eq!(results["bad_password"]["status"], 401);
    assert_eq!(
        results["bad_password"]["body"]["type"],
        "https://api.backend.ai/probs/auth-failed"
    );
    assert_eq!(
        results["as_user_test"]["body"],
        serde_json::json!({"authorized": "yes", "echo": "hi there+you/가"})
    );
    assert_eq!(results["as_user_role"]["body"]["global_role"], "user");
    assert_eq!(results["password_updated"], true);

    let (status, _) = server.stop(nix::sys::signal::Signal::SIGTERM).await;
    assert!(status.success(), "{}", server.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_client_24_3_11_works_unchanged() {
    check_client(&CLIENT_24_03, "pyclient2403").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_client_23_9_10_works_unchanged() {
    check_client(&CLIENT_23_09, "pyclient2309").await;
}
