//! What the session tests share: a server on a stack that knows the test image, the real dummy
//! agent or an agent-sim agent with the local runner registered with it, and a session created
//! by an official client and RUNNING.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use bai_agent_rpc::testing::RealAgent;
use bai_agent_sim::{AgentBehaviour, CodeRunner, LocalRunnerOptions};
use bai_db_models::entities::{agents, sessions};
use bai_db_models::fixtures::{self, FixtureFile};
use bai_etcd_store::Scope;
use sea_orm::EntityTrait;
use sea_orm::prelude::Uuid;

use crate::agents::{Simulated, agent_toml, real_agent, settings, wait_for};
use crate::support::{
    Client, PYTHON_IMAGE, Server, Stack, created_session_id, free_port, python_image_fixture,
};

/// A stand-in storage proxy's manager API on a free port, as etcd's proxy `local` (volume
/// `local:volume1` the default host): `folder/file/fetch` of `relpath` with the token
/// `proxy-secret` answers `content`; anything else a JSON 404.
pub(crate) async fn serve_storage_proxy(
    stack: &Stack,
    relpath: &'static str,
    content: &'static str,
) {
    let app = Router::new().route(
        "/folder/file/fetch",
        post(move |headers: HeaderMap, body: String| async move {
            let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let token = headers.get("X-BackendAI-Storage-Auth-Token");
            if token.is_some_and(|token| token == "proxy-secret") && body["relpath"] == relpath {
                content.into_response()
            } else {
                (
                    StatusCode::NOT_FOUND,
                    [("content-type", "application/json")],
                    r#"{"msg": "No such file"}"#,
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let manager_api = format!("http://{addr}");
    put_global(
        stack,
        &[
            ("volumes/default_host", "local:volume1"),
            ("volumes/proxies/local/client_api", "http://127.0.0.1:1"),
            ("volumes/proxies/local/manager_api", manager_api.as_str()),
            ("volumes/proxies/local/secret", "proxy-secret"),
            ("volumes/proxies/local/ssl_verify", "false"),
        ],
    )
    .await;
}

/// A stack with the install guide's keypairs, the test image and its registry, and a server.
pub(crate) async fn stack_with_server(label: &str) -> (Stack, Server, u16) {
    let stack = stack_with_test_image(label).await;
    let (server, port) = serve(&stack).await;
    (stack, server, port)
}

/// A stack with the install guide's keypairs, the test image and its registry.
pub(crate) async fn stack_with_test_image(label: &str) -> Stack {
    let stack = Stack::with_install_guide_keypairs(label).await;
    let file = FixtureFile::parse("images.json", &python_image_fixture()).expect("fixture");
    fixtures::populate(&stack.db.connection, &file)
        .await
        .expect("loading the image");
    put_global(
        &stack,
        &[
            (
                "config/docker/registry/cr.backend.ai",
                "https://cr.backend.ai",
            ),
            ("config/docker/registry/cr.backend.ai/type", "docker"),
        ],
    )
    .await;
    stack
}

/// Writes `pairs` to the global scope of `stack`'s etcd namespace.
pub(crate) async fn put_global(stack: &Stack, pairs: &[(&str, &str)]) {
    for (key, value) in pairs {
        stack
            .store
            .put(key, value, Scope::Global)
            .await
            .expect("etcd put");
    }
}

/// A server of `stack` (one process) on a free port, once it answers.
pub(crate) async fn serve(stack: &Stack) -> (Server, u16) {
    let port = free_port();
    let config = stack.config("manager.toml", &settings(port, 1));
    let mut server = Server::start(stack, &config, "server");
    server.wait_ready(port).await;
    (server, port)
}

/// An agent-sim agent `id` with the local runner (its kernels' folders under the stack's
/// `scratch`), saying it is release `version` (`None`: agent-sim's own), once registered; and the
/// runner's options.
pub(crate) async fn local_runner_agent(
    stack: &Stack,
    id: &str,
    version: Option<&str>,
) -> (Simulated, LocalRunnerOptions) {
    let config = agent_toml(stack, &stack.path(id), id, "default", 0.5, 1);
    let runner = LocalRunnerOptions {
        scratch_root: stack.path("scratch"),
        // These tests may run as root; the runner only runs what the tests send.
        allow_root: true,
    };
    let mut behaviour = AgentBehaviour {
        runner: CodeRunner::Local(runner.clone()),
        ..AgentBehaviour::default()
    };
    if let Some(version) = version {
        behaviour.version = version.to_owned();
    }
    let agent = Simulated::start_behaving(&config, &behaviour);
    wait_for_agent(stack, id).await;
    (agent, runner)
}

/// Waits until agent `id` has its row.
pub(crate) async fn wait_for_agent(stack: &Stack, id: &str) {
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

/// The real dummy agent `id` in the default resource group, once registered.
pub(crate) async fn registered_real_agent(stack: &Stack, id: &str) -> RealAgent {
    let agent = real_agent(stack, id, "default");
    wait_for_agent(stack, id).await;
    agent
}

/// `session create -t name -r cpu=1 -r mem=1g {extra} IMAGE` of `client`: what it printed.
pub(crate) fn create_session(
    client: &Client,
    stack: &Stack,
    port: u16,
    name: &str,
    extra: &[&str],
) -> String {
    let mut args = vec![
        "session", "create", "-t", name, "-r", "cpu=1", "-r", "mem=1g",
    ];
    args.extend_from_slice(extra);
    args.push(PYTHON_IMAGE);
    client.cli(stack, port, &args)
}

/// `session create -t name ... IMAGE` of `client`, waiting: the id of the RUNNING session.
pub(crate) fn running_session(client: &Client, stack: &Stack, port: u16, name: &str) -> String {
    ready_session_id(&create_session(client, stack, port, name, &[]))
}

/// The id of the session whose waiting `session create` printed `printed`, once it is RUNNING.
pub(crate) fn ready_session_id(printed: &str) -> String {
    assert!(printed.contains("is created and ready"), "{printed}");
    created_session_id(printed)
}

pub(crate) async fn session_row(stack: &Stack, id: &str) -> sessions::Model {
    let id: Uuid = id.parse().expect("a session id");
    sessions::Entity::find_by_id(id)
        .one(&stack.db.connection)
        .await
        .expect("sessions")
        .expect("the session")
}
