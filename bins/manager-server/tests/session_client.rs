//! The official clients' `session create --enqueue-only`, `session info` and `session rm` against
//! our server: a session created up to PENDING, read back and cancelled, with 24.3.11 (Python
//! 3.12) and 23.9.10 (Python 3.11).

#[path = "it/support.rs"]
#[allow(dead_code)]
mod support;

use bai_db_models::fixtures::{self, FixtureFile};
use serde_json::{Value, json};
use support::{
    CLIENT_23_09, CLIENT_24_03, Client, PYTHON_IMAGE, Server, Settings, Stack, created_session_id,
    free_port, python_image_fixture,
};

const PYTHON: &str = PYTHON_IMAGE;

async fn check(client: &Client, label: &str) {
    let stack = Stack::with_install_guide_keypairs(label).await;
    let file = FixtureFile::parse("images.json", &python_image_fixture()).expect("fixture");
    fixtures::populate(&stack.db.connection, &file)
        .await
        .expect("loading the image");
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    let printed = client.cli(
        &stack,
        port,
        &[
            "session",
            "create",
            "--enqueue-only",
            "-t",
            "pysess01",
            "-r",
            "cpu=1",
            "-r",
            "mem=1g",
            "-e",
            "GREETING=hello",
            PYTHON,
        ],
    );
    assert!(printed.contains("is enqueued for scheduling."), "{printed}");
    let session_id = created_session_id(&printed);

    let info = client.cli_json(&stack, port, &["session", "info", &session_id]);
    assert_eq!(info["count"], 1, "{info}");
    let session = &info["items"][0];
    assert_eq!(session["name"], "pysess01");
    assert_eq!(session["status"], "PENDING");
    assert_eq!(session["image"], PYTHON);
    assert_eq!(session["occupying_slots"], json!({}));
    let containers = session["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "{session}");
    assert_eq!(containers[0]["cluster_role"], "main");
    assert_eq!(containers[0]["status"], "PENDING");
    assert_eq!(
        containers[0]["occupied_slots"],
        json!({"cpu": "1", "mem": "1073741824"})
    );

    // Creating it again reuses it; with --no-reuse the client shows the refusal.
    let again = client.cli(
        &stack,
        port,
        &[
            "session",
            "create",
            "--enqueue-only",
            "-t",
            "pysess01",
            PYTHON,
        ],
    );
    assert!(again.contains(&session_id), "{again}");
    let refused = client.run(
        &stack,
        port,
        "backend.ai",
        &[
            "session",
            "create",
            "--enqueue-only",
            "--no-reuse",
            "-t",
            "pysess01",
            PYTHON,
        ],
    );
    let refused_text = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!refused.status.success(), "{refused_text}");
    assert!(refused_text.contains("already exists"), "{refused_text}");

    let removed = client.cli(&stack, port, &["session", "rm", "pysess01"]);
    assert!(
        !removed.contains("Error") && !removed.contains("✘"),
        "{removed}"
    );
    let info = client.cli_json(&stack, port, &["session", "info", &session_id]);
    let status: Vec<Value> = info["items"]
        .as_array()
        .map(|items| items.iter().map(|item| item["status"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(status, [json!("CANCELLED")], "{info}");
}

#[tokio::test(flavor = "multi_thread")]
async fn session_create_info_rm_of_24_3_11() {
    check(&CLIENT_24_03, "pysess2403").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn session_create_info_rm_of_23_9_10() {
    check(&CLIENT_23_09, "pysess2309").await;
}
