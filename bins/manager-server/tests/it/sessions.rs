//! Compute sessions from the official client to the agents and back: `backend.ai session create`
//! waits until our scheduler placed the session, an agent created its kernel and the kernel
//! events made it RUNNING; `session info` shows it; `session rm` destroys it through the agent,
//! and the session ends TERMINATED with the agent's slots released. Against simulated agents
//! (`bai-agent-sim`, in this process) and the real Backend.AI 24.3.11 agent in dummy mode.

use std::time::Duration;

use bai_agent_sim::RpcOptions;
use bai_db_models::entities::agents;
use bai_db_models::fixtures::{self, FixtureFile};
use bai_etcd_store::Scope;
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::agents::{Simulated, agent_toml, real_agent, settings, wait_for};
use crate::support::{
    CLIENT_24_03, PYTHON_IMAGE, Server, Stack, created_session_id, free_port, python_image_fixture,
};

/// A stack with the install guide's keypairs, the test image and its registry, and a server.
async fn stack_with_server(label: &str) -> (Stack, Server, u16) {
    let stack = Stack::with_install_guide_keypairs(label).await;
    let file = FixtureFile::parse("images.json", &python_image_fixture()).expect("fixture");
    fixtures::populate(&stack.db.connection, &file)
        .await
        .expect("loading the image");
    for (key, value) in [
        (
            "config/docker/registry/cr.backend.ai",
            "https://cr.backend.ai",
        ),
        ("config/docker/registry/cr.backend.ai/type", "docker"),
    ] {
        stack
            .store
            .put(key, value, Scope::Global)
            .await
            .expect("etcd put");
    }
    let port = free_port();
    let config = stack.config("manager.toml", &settings(port, 1));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;
    (stack, server, port)
}

async fn wait_for_agent(stack: &Stack, id: &str) {
    wait_for(
        &format!("agent {id} registered"),
        Duration::from_secs(60),
        || async {
            agents::Entity::find_by_id(id.to_owned())
                .one(&stack.db.connection)
                .await
                .expect("agents")
                .map(|_| ())
        },
    )
    .await;
}

async fn occupied(stack: &Stack, id: &str) -> Value {
    agents::Entity::find_by_id(id.to_owned())
        .one(&stack.db.connection)
        .await
        .expect("agents")
        .expect("the agent")
        .occupied_slots
        .to_json()
}

/// `session create` (waiting), `session info`, `session rm` of the 24.3.11 client on `agent`.
async fn create_run_destroy(stack: &Stack, port: u16, agent: &str) {
    let client = &CLIENT_24_03;
    let printed = client.cli(
        stack,
        port,
        &[
            "session",
            "create",
            "-t",
            "runs01",
            "-r",
            "cpu=1",
            "-r",
            "mem=1g",
            PYTHON_IMAGE,
        ],
    );
    assert!(printed.contains("is created and ready"), "{printed}");
    let session_id = created_session_id(&printed);
    let info = client.cli_json(stack, port, &["session", "info", &session_id]);
    let session = &info["items"][0];
    assert_eq!(session["status"], "RUNNING", "{info}");
    assert_eq!(session["containers"][0]["agent"], agent, "{info}");
    assert_eq!(
        occupied(stack, agent).await,
        json!({"cpu": "1", "mem": "1073741824"})
    );

    let removed = client.cli(stack, port, &["session", "rm", "runs01"]);
    assert!(!removed.contains('✘'), "{removed}");
    wait_for(
        "the session TERMINATED",
        Duration::from_secs(30),
        || async {
            let info = client.cli_json(stack, port, &["session", "info", &session_id]);
            (info["items"][0]["status"] == "TERMINATED").then_some(())
        },
    )
    .await;
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
    create_run_destroy(&stack, port, "i-sim-session").await;
    agents.stop().await;
    server.stop(nix::sys::signal::Signal::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_runs_on_the_real_dummy_agent_and_is_destroyed() {
    let (stack, mut server, port) = stack_with_server("sessions_real").await;
    let agent = real_agent(&stack, "i-real-session", "default");
    wait_for_agent(&stack, "i-real-session").await;
    create_run_destroy(&stack, port, "i-real-session").await;
    drop(agent);
    server.stop(nix::sys::signal::Signal::SIGTERM).await;
}
