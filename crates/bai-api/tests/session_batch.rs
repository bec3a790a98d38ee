//! The batch routes through the real router: `GET /session/{name}/dependency-graph` (the
//! reference's tree, its status and time spellings, the caller's sessions only) and
//! `GET`/`HEAD /session/_/logs` (no `.logs` folder: the reference's 404; with one: the log
//! streamed from the folder's storage proxy, and the proxy's refusals).
//!
//! On the halfstack's PostgreSQL and etcd (fresh database and namespace) and a private Redis. The
//! storage proxy is a stand-in HTTP server of the test's own: the real one needs storage volumes
//! this machine does not have.

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use bai_api::testing::{ExampleUser, TestCluster, USER, signed_request};
use bai_etcd_store::Scope;
use common::Api;
use http::Method;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use uuid::Uuid;

const GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";

async fn user_uuid(db: &DatabaseConnection, who: &ExampleUser) -> Uuid {
    bai_db_models::queries::users::by_email(db, who.email)
        .await
        .expect("reading the user")
        .expect("an example user")
        .uuid
}

/// A session `name` of `who` with one main kernel in `kernel_status` since `changed`.
async fn session(
    db: &DatabaseConnection,
    who: &ExampleUser,
    name: &str,
    kernel_status: &str,
    changed: &str,
) -> Uuid {
    let id = Uuid::new_v4();
    let user = user_uuid(db, who).await;
    let access_key = who.access_key;
    db.execute_unprepared(&format!(
        "INSERT INTO sessions (id, creation_id, name, session_type, cluster_size, domain_name, \
         group_id, user_uuid, access_key, occupying_slots, requested_slots, use_host_network, \
         status, created_at) VALUES ('{id}', 'c-{name}', '{name}', 'BATCH', 1, 'default', \
         '{GROUP}', '{user}', '{access_key}', '{{}}', '{{}}', false, 'PENDING', now()); \
         INSERT INTO kernels (id, session_id, session_name, session_type, cluster_size, \
         cluster_role, cluster_idx, local_rank, cluster_hostname, domain_name, group_id, \
         user_uuid, access_key, occupied_slots, requested_slots, occupied_shares, repl_in_port, \
         repl_out_port, stdin_port, stdout_port, use_host_network, status, status_changed) \
         VALUES ('{kernel}', '{id}', '{name}', 'BATCH', 1, 'main', 1, 0, 'main1', 'default', \
         '{GROUP}', '{user}', '{access_key}', '{{}}', '{{}}', '{{}}', 0, 0, 0, 0, false, \
         '{kernel_status}', '{changed}')",
        kernel = Uuid::new_v4(),
    ))
    .await
    .expect("session rows");
    id
}

async fn depends(db: &DatabaseConnection, session: Uuid, on: Uuid) {
    db.execute_unprepared(&format!(
        "INSERT INTO session_dependencies (session_id, depends_on) VALUES ('{session}', '{on}')"
    ))
    .await
    .expect("dependency");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dependency_graph_is_the_references_tree() {
    let api = Api::start("batch_graph").await;
    let db = &api.cluster.database.connection;
    let root = session(db, &USER, "root", "PENDING", "2024-05-01 10:00:00+00").await;
    let first = session(db, &USER, "first", "TERMINATED", "2024-05-01 09:00:00.5+00").await;
    let second = session(db, &USER, "second", "RUNNING", "2024-05-01 09:30:00+00").await;
    let base = session(db, &USER, "base", "TERMINATED", "2024-05-01 08:00:00+00").await;
    depends(db, root, first).await;
    depends(db, root, second).await;
    depends(db, first, base).await;

    let answer = api
        .send(signed_request(
            Method::GET,
            "/session/root/dependency-graph",
            None,
            &USER,
        ))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.headers[http::header::CONTENT_TYPE],
        "application/json; charset=utf-8"
    );
    let node = |id: Uuid, name: &str, status: &str, changed: &str, depends_on: Value| {
        json!({
            "session_id": id.to_string(),
            "session_name": name,
            "status": status,
            "status_changed": changed,
            "depends_on": depends_on,
        })
    };
    let base_node = node(
        base,
        "base",
        "KernelStatus.TERMINATED",
        "2024-05-01 08:00:00+00:00",
        json!([]),
    );
    let first_node = node(
        first,
        "first",
        "KernelStatus.TERMINATED",
        "2024-05-01 09:00:00.500000+00:00",
        json!([base_node]),
    );
    let second_node = node(
        second,
        "second",
        "KernelStatus.RUNNING",
        "2024-05-01 09:30:00+00:00",
        json!([]),
    );
    let mut dependencies = vec![first_node, second_node];
    dependencies.sort_by_key(|node| node["session_id"].as_str().unwrap_or("").to_owned());
    assert_eq!(
        answer.json,
        node(
            root,
            "root",
            "KernelStatus.PENDING",
            "2024-05-01 10:00:00+00:00",
            Value::Array(dependencies)
        )
    );
    // Python's `json.dumps` spacing and key order.
    assert!(
        answer.text.starts_with(&format!(
            "{{\"session_id\": \"{root}\", \"session_name\": \"root\""
        )),
        "{}",
        answer.text
    );

    // By id too; another user's session is not found.
    let by_id = api
        .send(signed_request(
            Method::GET,
            &format!("/session/{base}/dependency-graph"),
            None,
            &USER,
        ))
        .await;
    assert_eq!(by_id.json, base_node);
    api.send(signed_request(
        Method::GET,
        "/session/root/dependency-graph",
        None,
        &bai_api::testing::DOMAIN_ADMIN,
    ))
    .await
    .assert_problem(404, "object-not-found", None);
}

type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A stand-in storage proxy: `folder/file/fetch` answers the log of `LOGGED_TASK` and a JSON 404
/// for any other file. Returns its manager API URL.
async fn storage_proxy(seen: Seen) -> String {
    let app = Router::new().route(
        "/folder/file/fetch",
        post(move |headers: HeaderMap, body: String| {
            let seen = Arc::clone(&seen);
            async move {
                let body: Value = serde_json::from_str(&body).expect("JSON body");
                let token = headers
                    .get("X-BackendAI-Storage-Auth-Token")
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                seen.lock().expect("lock").push((token, body.clone()));
                if body["relpath"] == "task/01/23/abcd456789ef0123456789abcdef.log" {
                    "batch output\nexit 0\n".into_response()
                } else {
                    (
                        StatusCode::NOT_FOUND,
                        [("content-type", "application/json")],
                        json!({"msg": "No such file"}).to_string(),
                    )
                        .into_response()
                }
            }
        }),
    );
    format!("http://{}", common::serve(app).await)
}

const LOGGED_TASK: &str = "0123abcd-4567-89ef-0123-456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_logs_come_from_the_users_logs_folder_through_its_storage_proxy() {
    let cluster = TestCluster::start("batch_task_logs").await;
    let seen = Seen::default();
    let manager_api = storage_proxy(Arc::clone(&seen)).await;
    let etcd = cluster.namespace.store().await;
    for (key, value) in [
        ("volumes/default_host", "local:volume1"),
        ("volumes/proxies/local/client_api", "http://127.0.0.1:1"),
        ("volumes/proxies/local/manager_api", manager_api.as_str()),
        ("volumes/proxies/local/secret", "proxy-secret"),
        ("volumes/proxies/local/ssl_verify", "false"),
    ] {
        etcd.put(key, value, Scope::Global).await.expect("etcd put");
    }
    let api = Api::on(cluster).await;
    let db = &api.cluster.database.connection;
    let logs_path = format!("/session/_/logs?taskId={LOGGED_TASK}");

    // No `.logs` folder yet.
    let answer = api
        .send(signed_request(Method::GET, &logs_path, None, &USER))
        .await;
    answer.assert_problem(404, "object-not-found", None);
    assert_eq!(answer.json["title"], "No such vfolder.");
    assert_eq!(answer.json["data"], json!({"vfolder_name": ".logs"}));

    let folder = Uuid::parse_str("aaaabbbb-cccc-dddd-eeee-ffff00001111").expect("uuid");
    let user = user_uuid(db, &USER).await;
    db.execute_unprepared(&format!(
        "INSERT INTO vfolders (id, host, quota_scope_id, name, usage_mode, permission, \
         ownership_type, \"user\", creator, cloneable, status) VALUES ('{folder}', \
         'local:volume1', 'user:{user}', '.logs', 'general', 'rw', 'user', '{user}', \
         'user@lablup.com', false, 'ready')"
    ))
    .await
    .expect("vfolder row");

    let answer = api
        .send(signed_request(Method::GET, &logs_path, None, &USER))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.headers[http::header::CONTENT_TYPE], "text/plain");
    assert_eq!(answer.text, "batch output\nexit 0\n");
    assert_eq!(
        seen.lock().expect("lock").first().cloned(),
        Some((
            Some("proxy-secret".to_owned()),
            json!({
                "volume": "volume1",
                "vfid": format!("user:{user}/aaaabbbbccccddddeeeeffff00001111"),
                "relpath": "task/01/23/abcd456789ef0123456789abcdef.log",
            })
        ))
    );
    let head = api
        .send(signed_request(Method::HEAD, &logs_path, None, &USER))
        .await;
    assert_eq!(head.status, StatusCode::OK);

    // Another task: the proxy's refusal, its message kept.
    let answer = api
        .send(signed_request(
            Method::GET,
            &format!("/session/_/logs?taskId={}", Uuid::new_v4()),
            None,
            &USER,
        ))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert_eq!(answer.json["msg"], "No such file");

    // A task id that is not one.
    let answer = api
        .send(signed_request(
            Method::GET,
            "/session/_/logs?taskId=nope",
            None,
            &USER,
        ))
        .await;
    answer.assert_problem(400, "invalid-api-params", None);
}
