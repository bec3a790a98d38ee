//! The signer cache (bai-api `cache`): a keypair deactivated through GraphQL is refused on the very
//! next request by every worker of the node that wrote it, and by the other nodes once
//! PostgreSQL's notification reached them; one deactivated behind the server's back (plain SQL, as
//! psql would) is refused within `SIGNER_MAX_AGE`.

use std::time::{Duration, Instant};

use axum::http::Method;
use bai_api::cache::SIGNER_MAX_AGE;
use bai_api::testing::{ExampleUser, SUPERADMIN, USER, signed_request};
use sea_orm::ConnectionTrait;
use serde_json::{Value as Json, json};

use crate::support::{Server, Settings, Stack, free_port};

/// Requests sent after each change: enough for fresh connections to reach both workers.
const PROBES: usize = 24;

/// A node of `stack`: `num_proc` workers under manager id `id`.
async fn node(stack: &Stack, id: &str, num_proc: u32) -> (Server, u16) {
    let port = free_port();
    let mut settings = Settings::new(port);
    settings.num_proc = num_proc;
    settings.pid_file = stack.path(&format!("{id}.pid"));
    settings.manager_extra = format!("id = {id:?}");
    let config = stack.config(&format!("{id}.toml"), &settings);
    let mut server = Server::start(stack, &config, id);
    server.wait_ready(port).await;
    (server, port)
}

/// Sends a signed request on a fresh connection (so that the kernel spreads them over the
/// workers' listeners); the status and the body.
async fn signed(
    port: u16,
    method: Method,
    path: &str,
    body: Option<&Json>,
    who: &ExampleUser,
) -> (u16, Json) {
    let (parts, _) = signed_request(method, path, body, who).into_parts();
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let mut builder = client
        .request(parts.method, format!("http://127.0.0.1:{port}{path}"))
        .headers(parts.headers);
    if let Some(body) = body {
        builder = builder.body(body.to_string());
    }
    let response = builder.send().await.expect("the request");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Json::Null);
    (status, body)
}

/// The statuses of [`PROBES`] `GET /auth/test` of `who`, one connection each.
async fn probe(port: u16, who: &ExampleUser) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(PROBES);
    for _ in 0..PROBES {
        statuses.push(
            signed(port, Method::GET, "/auth/test?echo=x", None, who)
                .await
                .0,
        );
    }
    statuses
}

async fn set_user_keypair_active(port: u16, active: bool) {
    let mutation = json!({
        "query": "mutation($access_key: String!, $props: ModifyKeyPairInput!) { \
                  modify_keypair(access_key: $access_key, props: $props) { ok msg } }",
        "variables": {"access_key": USER.access_key, "props": {"is_active": active}},
    });
    let (status, body) = signed(
        port,
        Method::POST,
        "/admin/gql",
        Some(&mutation),
        &SUPERADMIN,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["modify_keypair"]["ok"], true, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keypair_deactivated_through_graphql_is_refused_at_once_everywhere() {
    let stack = Stack::with_install_guide_keypairs("authcache_gql").await;
    let (mut node_a, port_a) = node(&stack, "node-a", 2).await;
    let (mut node_b, port_b) = node(&stack, "node-b", 1).await;
    // Both nodes' workers have the user's keypair cached.
    assert!(
        probe(port_a, &USER)
            .await
            .iter()
            .all(|&status| status == 200)
    );
    assert!(
        probe(port_b, &USER)
            .await
            .iter()
            .all(|&status| status == 200)
    );

    set_user_keypair_active(port_a, false).await;
    let statuses = probe(port_a, &USER).await;
    assert!(
        statuses.iter().all(|&status| status == 401),
        "the very next requests to the node that wrote: {statuses:?}"
    );
    // The other node hears of it through PostgreSQL within moments.
    let started = Instant::now();
    loop {
        let statuses = probe(port_b, &USER).await;
        if statuses.iter().all(|&status| status == 401) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "node B still accepts the keypair: {statuses:?}"
        );
    }

    // And back: active again is accepted at once by the writer.
    set_user_keypair_active(port_a, true).await;
    let statuses = probe(port_a, &USER).await;
    assert!(statuses.iter().all(|&status| status == 200), "{statuses:?}");

    for node in [&mut node_a, &mut node_b] {
        let (status, _) = node.stop(nix::sys::signal::Signal::SIGTERM).await;
        assert!(status.success(), "{}", node.stderr());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keypair_deactivated_behind_the_servers_back_is_refused_within_the_age_bound() {
    let stack = Stack::with_install_guide_keypairs("authcache_sql").await;
    let (mut server, port) = node(&stack, "node-a", 2).await;
    assert!(probe(port, &USER).await.iter().all(|&status| status == 200));

    // What an operator's psql does: no notification, only the age bound applies.
    stack
        .db
        .connection
        .execute_unprepared(&format!(
            "UPDATE keypairs SET is_active = false WHERE access_key = '{}'",
            USER.access_key
        ))
        .await
        .expect("update");
    let updated = Instant::now();
    let bound = SIGNER_MAX_AGE + Duration::from_secs(1);
    loop {
        let (status, _) = signed(port, Method::GET, "/auth/test?echo=x", None, &USER).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            updated.elapsed() < bound,
            "still accepted {:?} after the update",
            updated.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Refused by every worker from then on, at the latest one age bound after the update.
    tokio::time::sleep(bound.saturating_sub(updated.elapsed())).await;
    let statuses = probe(port, &USER).await;
    assert!(statuses.iter().all(|&status| status == 401), "{statuses:?}");

    let (status, _) = server.stop(nix::sys::signal::Signal::SIGTERM).await;
    assert!(status.success(), "{}", server.stderr());
}
