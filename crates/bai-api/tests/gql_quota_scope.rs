//! GraphQL `quota_scope` and `set_quota_scope` / `unset_quota_scope` through the real router:
//! the WebUI 24.03 Data page's query validates; with the install guide's proxy unreachable the
//! scopes are null with the reference's error; with a proxy that answers, the details are its
//! usage and limit mapped as the reference maps them, or the owner's resource policy when it
//! answers non-2xx; who may read and change which scope.
//!
//! On the halfstack's PostgreSQL and etcd (fresh database and namespace) and a private Redis. The
//! answering storage proxy is a stand-in HTTP server of the test's own (`GET volumes`, `GET` /
//! `PATCH quota-scope`, `DELETE quota-scope/quota`): the real one needs storage backends with
//! quota support that this machine does not have.

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use axum::routing::get;
use bai_api::testing::{DOMAIN_ADMIN, ExampleUser, SUPERADMIN, TestCluster, USER, signed_request};
use bai_etcd_store::Scope;
use common::Api;
use http::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

const USER_UUID: &str = "dfa9da54-4b28-432f-be29-c0d680c7a412";
const USER2_UUID: &str = "009fb1a4-487c-4f6e-9b1b-228b94b1d040";
const DEFAULT_PROJECT: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const MODEL_STORE_PROJECT: &str = "8e32dd28-d319-4e3b-8851-ea37837699a5";
/// A project of the default domain nobody belongs to.
const OUTSIDERS_PROJECT: &str = "5c1e8a7e-6f0b-4f43-9a3e-2c7d1b0f9e11";

/// The WebUI 24.03 `StorageStatusPanelQuery`, as it sends it (its `@since` directives removed).
const STORAGE_STATUS_PANEL: &str = "query StorageStatusPanelQuery($user_RP_name: String, \
     $keypair_resource_policy_name: String, $project_quota_scope_id: String!, \
     $user_quota_scope_id: String!, $storage_host_name: String!, $skipQuotaScope: Boolean!) {
  user_resource_policy(name: $user_RP_name) { max_vfolder_count id }
  keypair_resource_policy(name: $keypair_resource_policy_name) { max_vfolder_count }
  project_quota_scope: quota_scope(quota_scope_id: $project_quota_scope_id, storage_host_name: $storage_host_name) @skip(if: $skipQuotaScope) { ...F id }
  user_quota_scope: quota_scope(quota_scope_id: $user_quota_scope_id, storage_host_name: $storage_host_name) @skip(if: $skipQuotaScope) { ...F id }
}
fragment F on QuotaScope { details { usage_bytes hard_limit_bytes } }";

/// The storage settings panel's query.
const SETTINGS_PANEL: &str = "query Q($qsid: String!, $host: String!) {
  quota_scope(quota_scope_id: $qsid, storage_host_name: $host) {
    id quota_scope_id storage_host_name details { hard_limit_bytes usage_bytes usage_count }
  }
}";

fn panel_variables(skip: bool) -> Value {
    json!({
        "user_RP_name": "default",
        "keypair_resource_policy_name": "default",
        "project_quota_scope_id": format!("project:{DEFAULT_PROJECT}"),
        "user_quota_scope_id": format!("user:{USER_UUID}"),
        "storage_host_name": "local:volume1",
        "skipQuotaScope": skip,
    })
}

async fn gql(api: &Api, who: &ExampleUser, query: &str, variables: Value) -> Value {
    let answer = api
        .send(signed_request(
            Method::POST,
            "/admin/gql",
            Some(&json!({"query": query, "variables": variables})),
            who,
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json
}

/// The settings panel's `quota_scope` of `qsid` on `host`, as `who`.
async fn scope(api: &Api, who: &ExampleUser, qsid: &str, host: &str) -> Value {
    gql(
        api,
        who,
        SETTINGS_PANEL,
        json!({"qsid": qsid, "host": host}),
    )
    .await
}

/// Asserts an answer whose only error is `message` at `path`, with that field null.
#[track_caller]
fn assert_field_error(answer: &Value, field: &str, message: &str) {
    let errors = answer["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{answer}");
    assert_eq!(errors[0]["message"], message, "{answer}");
    assert_eq!(errors[0]["path"][0], field, "{answer}");
    assert!(answer["data"].is_object(), "{answer}");
    assert_eq!(answer["data"][field], Value::Null, "{answer}");
}

/// etcd `volumes/` as the install guide writes it, with `manager_api` given.
async fn volumes_config(cluster: &TestCluster, manager_api: &str) {
    let etcd = cluster.namespace.store().await;
    for (key, value) in [
        ("volumes/_types/user", ""),
        ("volumes/_types/group", ""),
        ("volumes/default_host", "local:volume1"),
        ("volumes/proxies/local/client_api", "http://127.0.0.1:6021"),
        ("volumes/proxies/local/manager_api", manager_api),
        (
            "volumes/proxies/local/secret",
            "some-secret-shared-with-storage-proxy",
        ),
        ("volumes/proxies/local/ssl_verify", "false"),
    ] {
        etcd.put(key, value, Scope::Global).await.expect("etcd put");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_page_query_validates_and_an_unreachable_proxy_nulls_the_scopes() {
    let cluster = TestCluster::start("gql_quota_scope_unreachable").await;
    // The install guide's proxy, which nothing serves here: port 1 refuses at once.
    volumes_config(&cluster, "https://127.0.0.1:1").await;
    let api = Api::on(cluster).await;

    let skipped = gql(&api, &USER, STORAGE_STATUS_PANEL, panel_variables(true)).await;
    assert_eq!(skipped.get("errors"), None, "{skipped}");
    assert!(
        skipped["data"]["keypair_resource_policy"].is_object(),
        "{skipped}"
    );
    assert_eq!(skipped["data"].get("user_quota_scope"), None);

    let answer = gql(&api, &USER, STORAGE_STATUS_PANEL, panel_variables(false)).await;
    // aiohttp's ClientConnectorError, which the reference lets through as the field's error.
    let refused = "Cannot connect to host 127.0.0.1:1 ssl:default \
                   [Connect call failed ('127.0.0.1', 1)]";
    let errors = answer["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{answer}");
    let mut paths: Vec<&str> = errors
        .iter()
        .map(|error| {
            assert_eq!(error["message"], refused, "{answer}");
            error["path"][0].as_str().expect("path")
        })
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, ["project_quota_scope", "user_quota_scope"]);
    let data = &answer["data"];
    assert_eq!(data["project_quota_scope"], Value::Null);
    assert_eq!(data["user_quota_scope"], Value::Null);
    assert!(data["keypair_resource_policy"].is_object(), "{answer}");
    assert!(data["user_resource_policy"].is_object(), "{answer}");

    // The arguments are checked before any proxy is asked.
    let answer = scope(&api, &USER, "", "local:volume1").await;
    assert_field_error(
        &answer,
        "quota_scope",
        "Either quota_scope_id and storage_host_name has to be defined",
    );
    let answer = scope(&api, &USER, &format!("group:{USER_UUID}"), "local:volume1").await;
    assert_field_error(&answer, "quota_scope", "Invalid quota scope type: 'group'");
    let answer = scope(&api, &USER, "user:1234", "local:volume1").await;
    assert_field_error(
        &answer,
        "quota_scope",
        "badly formed hexadecimal UUID string",
    );
}

/// One request the stand-in proxy received: method, path, auth token, JSON body.
type Seen = Arc<Mutex<Vec<(String, String, Option<String>, Value)>>>;

/// `GET quota-scope`'s answer for the scope `qsid` (exactly as sent).
fn quota_scope_answer(qsid: &str) -> axum::response::Response {
    let json_answer = |status: AxumStatus, body: Value| (status, axum::Json(body)).into_response();
    if qsid == format!("user:{USER_UUID}") {
        json_answer(
            AxumStatus::OK,
            json!({"used_bytes": 1234, "limit_bytes": 0}),
        )
    } else if qsid == format!("project:{DEFAULT_PROJECT}") {
        json_answer(
            AxumStatus::OK,
            json!({"used_bytes": -1, "limit_bytes": 5000}),
        )
    } else if qsid == format!("project:{MODEL_STORE_PROJECT}") {
        // The storage proxy's QuotaScopeNotFoundError.
        (
            AxumStatus::NOT_FOUND,
            [(http::header::CONTENT_TYPE, "application/problem+json")],
            r#"{"type": "https://api.backend.ai/probs/storage/quota-scope/not-found", "title": "Quota scope not found"}"#,
        )
            .into_response()
    } else if qsid == format!("user:{USER2_UUID}") {
        (AxumStatus::INTERNAL_SERVER_ERROR, "boom").into_response()
    } else {
        json_answer(
            AxumStatus::BAD_REQUEST,
            json!({"msg": "Invalid quota scope"}),
        )
    }
}

/// Serves the stand-in proxy's calls under `/api`, recording each. Returns its manager_api URL.
async fn stand_in_proxy(seen: Seen) -> String {
    let record = |seen: &Seen, method: &str, path: &str, headers: &HeaderMap, body: &str| {
        let token = headers
            .get(bai_storage_proxy::AUTH_TOKEN_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = serde_json::from_str(body).unwrap_or(Value::Null);
        seen.lock()
            .expect("lock")
            .push((method.to_owned(), path.to_owned(), token, body.clone()));
        body
    };
    let volumes = {
        let seen = Arc::clone(&seen);
        move |headers: HeaderMap, body: String| async move {
            record(&seen, "GET", "volumes", &headers, &body);
            axum::Json(json!({"volumes": [{"name": "volume1", "backend": "xfs",
                "path": "/vfroot/volume1", "fsprefix": ".", "capabilities": ["quota", "vfolder"]}]}))
        }
    };
    let read = {
        let seen = Arc::clone(&seen);
        move |headers: HeaderMap, body: String| async move {
            let body = record(&seen, "GET", "quota-scope", &headers, &body);
            quota_scope_answer(body["qsid"].as_str().unwrap_or_default())
        }
    };
    let patch = {
        let seen = Arc::clone(&seen);
        move |headers: HeaderMap, body: String| async move {
            let body = record(&seen, "PATCH", "quota-scope", &headers, &body);
            if body["qsid"] == format!("user:{USER2_UUID}") {
                (AxumStatus::INTERNAL_SERVER_ERROR, "boom").into_response()
            } else {
                axum::Json(json!({})).into_response()
            }
        }
    };
    let unset = {
        let seen = Arc::clone(&seen);
        move |headers: HeaderMap, body: String| async move {
            record(&seen, "DELETE", "quota-scope/quota", &headers, &body);
            (AxumStatus::NO_CONTENT, "")
        }
    };
    let app = Router::new()
        .route("/api/volumes", get(volumes))
        .route("/api/quota-scope", get(read).patch(patch))
        .route("/api/quota-scope/quota", axum::routing::delete(unset));
    let addr = common::serve(app).await;
    format!("http://{addr}/api/")
}

async fn answering_api(label: &str, seen: &Seen) -> Api {
    let manager_api = stand_in_proxy(Arc::clone(seen)).await;
    let cluster = TestCluster::start(label).await;
    volumes_config(&cluster, &manager_api).await;
    let api = Api::on(cluster).await;
    let db = &api.cluster.database.connection;
    db.execute_unprepared(&format!(
        "INSERT INTO groups (id, name, is_active, domain_name, total_resource_slots, \
         allowed_vfolder_hosts, dotfiles, resource_policy, type) VALUES ('{OUTSIDERS_PROJECT}', \
         'outsiders', true, 'default', '{{}}', '{{}}', '\\x90', 'default', 'general')"
    ))
    .await
    .expect("project row");
    // 10 GiB for every user of the default policy; projects keep -1 (unlimited).
    db.execute_unprepared(
        "UPDATE user_resource_policies SET max_quota_scope_size = 10737418240 \
         WHERE name = 'default'",
    )
    .await
    .expect("policy update");
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn details_are_the_proxys_or_the_owners_policy() {
    let seen = Seen::default();
    let api = answering_api("gql_quota_scope_details", &seen).await;

    let answer = gql(&api, &USER, STORAGE_STATUS_PANEL, panel_variables(false)).await;
    assert_eq!(answer.get("errors"), None, "{answer}");
    let data = &answer["data"];
    // A zero limit reads null; a negative usage reads null.
    assert_eq!(
        data["user_quota_scope"],
        json!({"details": {"usage_bytes": 1234, "hard_limit_bytes": null},
               "id": format!("QuotaScope:local:volume1/user:{USER_UUID}")})
    );
    assert_eq!(
        data["project_quota_scope"],
        json!({"details": {"usage_bytes": null, "hard_limit_bytes": 5000},
               "id": format!("QuotaScope:local:volume1/project:{DEFAULT_PROJECT}")})
    );
    {
        let seen = seen.lock().expect("lock");
        let volumes_calls = seen
            .iter()
            .filter(|(_, path, ..)| path == "volumes")
            .count();
        assert_eq!(volumes_calls, 2, "each scope lists the volumes: {seen:?}");
        let reads: Vec<&Value> = seen
            .iter()
            .filter(|(_, path, ..)| path == "quota-scope")
            .map(|(_, _, token, body)| {
                assert_eq!(
                    token.as_deref(),
                    Some("some-secret-shared-with-storage-proxy")
                );
                body
            })
            .collect();
        assert_eq!(reads.len(), 2);
        assert!(
            reads.contains(&&json!({"volume": "volume1", "qsid": format!("user:{USER_UUID}")}))
        );
    }

    // A 404 from the proxy: the project's policy, -1, reads null; no usage.
    let answer = scope(
        &api,
        &USER,
        &format!("project:{MODEL_STORE_PROJECT}"),
        "local:volume1",
    )
    .await;
    assert_eq!(answer.get("errors"), None, "{answer}");
    assert_eq!(
        answer["data"]["quota_scope"],
        json!({"id": format!("QuotaScope:local:volume1/project:{MODEL_STORE_PROJECT}"),
               "quota_scope_id": format!("project:{MODEL_STORE_PROJECT}"),
               "storage_host_name": "local:volume1",
               "details": {"hard_limit_bytes": null, "usage_bytes": null, "usage_count": null}})
    );
    // A 500 from the proxy: the user's policy (10 GiB). A domain admin reads a user of its domain.
    let answer = scope(
        &api,
        &DOMAIN_ADMIN,
        &format!("user:{USER2_UUID}"),
        "local:volume1",
    )
    .await;
    assert_eq!(answer.get("errors"), None, "{answer}");
    assert_eq!(
        answer["data"]["quota_scope"]["details"],
        json!({"hard_limit_bytes": 10737418240_i64, "usage_bytes": null, "usage_count": null})
    );
    // The id goes to the proxy as the caller spelled it (which this proxy refuses with a 400:
    // the policy again), and comes back so.
    let spelled = format!("USER:{}", USER_UUID.replace('-', ""));
    let answer = scope(&api, &USER, &spelled, "local:volume1").await;
    assert_eq!(answer.get("errors"), None, "{answer}");
    assert_eq!(answer["data"]["quota_scope"]["quota_scope_id"], spelled);
    assert_eq!(
        answer["data"]["quota_scope"]["details"]["hard_limit_bytes"],
        json!(10737418240_i64)
    );
    let last_body = seen.lock().expect("lock").last().expect("a call").3.clone();
    assert_eq!(last_body, json!({"volume": "volume1", "qsid": spelled}));

    // A volume no proxy serves.
    let answer = scope(&api, &USER, &format!("user:{USER_UUID}"), "local:volume9").await;
    assert_field_error(
        &answer,
        "quota_scope",
        "storage volume local:volume9 does not exist",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_read_only_their_own_and_their_projects_scopes() {
    let seen = Seen::default();
    let api = answering_api("gql_quota_scope_access", &seen).await;
    let denied = "Missing or invalid API parameters.";
    for qsid in [
        format!("user:{USER2_UUID}"),
        format!("project:{OUTSIDERS_PROJECT}"),
        // Neither a user nor a project.
        "user:00000000-0000-0000-0000-000000000001".to_owned(),
    ] {
        let answer = scope(&api, &USER, &qsid, "local:volume1").await;
        assert_field_error(&answer, "quota_scope", denied);
    }
    // The superadmin reaches both; no one reaches an owner that does not exist.
    for qsid in [
        format!("user:{USER2_UUID}"),
        format!("project:{OUTSIDERS_PROJECT}"),
    ] {
        let answer = scope(&api, &SUPERADMIN, &qsid, "local:volume1").await;
        assert_eq!(answer.get("errors"), None, "{answer}");
        assert_eq!(answer["data"]["quota_scope"]["quota_scope_id"], qsid);
    }
    let answer = scope(
        &api,
        &SUPERADMIN,
        "project:00000000-0000-0000-0000-000000000001",
        "local:volume1",
    )
    .await;
    assert_field_error(&answer, "quota_scope", denied);
}

const SET: &str = "mutation M($qsid: String!, $host: String!, $props: QuotaScopeInput!) {
  set_quota_scope(quota_scope_id: $qsid, storage_host_name: $host, props: $props) {
    quota_scope { id quota_scope_id storage_host_name }
  }
}";
const UNSET: &str = "mutation M($qsid: String!, $host: String!) {
  unset_quota_scope(quota_scope_id: $qsid, storage_host_name: $host) {
    quota_scope { id quota_scope_id }
  }
}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_set_and_unset_the_limit_on_the_proxy() {
    let seen = Seen::default();
    let api = answering_api("gql_quota_scope_mutations", &seen).await;
    let spelled = format!("user:{}", USER_UUID.replace('-', ""));
    let canonical = format!("user:{USER_UUID}");

    let answer = gql(
        &api,
        &SUPERADMIN,
        SET,
        json!({"qsid": spelled, "host": "local:volume1", "props": {"hard_limit_bytes": 1000}}),
    )
    .await;
    assert_eq!(answer.get("errors"), None, "{answer}");
    assert_eq!(
        answer["data"]["set_quota_scope"]["quota_scope"],
        json!({"id": format!("QuotaScope:local:volume1/{spelled}"), "quota_scope_id": spelled,
               "storage_host_name": "local:volume1"})
    );
    // Absent: nothing is sent. Null: the limit is cleared.
    let answer = gql(
        &api,
        &DOMAIN_ADMIN,
        SET,
        json!({"qsid": canonical, "host": "local:volume1", "props": {}}),
    )
    .await;
    assert_eq!(answer.get("errors"), None, "{answer}");
    let answer = gql(
        &api,
        &DOMAIN_ADMIN,
        SET,
        json!({"qsid": canonical, "host": "local:volume1", "props": {"hard_limit_bytes": null}}),
    )
    .await;
    assert_eq!(answer.get("errors"), None, "{answer}");
    let answer = gql(
        &api,
        &SUPERADMIN,
        UNSET,
        json!({"qsid": spelled, "host": "local:volume1"}),
    )
    .await;
    assert_eq!(answer.get("errors"), None, "{answer}");
    assert_eq!(
        answer["data"]["unset_quota_scope"]["quota_scope"]["quota_scope_id"],
        spelled
    );
    let calls: Vec<(String, String, Value)> = seen
        .lock()
        .expect("lock")
        .iter()
        .map(|(method, path, token, body)| {
            assert_eq!(
                token.as_deref(),
                Some("some-secret-shared-with-storage-proxy")
            );
            (method.clone(), path.clone(), body.clone())
        })
        .collect();
    assert_eq!(
        calls,
        [
            (
                "PATCH".to_owned(),
                "quota-scope".to_owned(),
                json!({"volume": "volume1", "qsid": canonical, "options": {"limit_bytes": 1000}})
            ),
            (
                "PATCH".to_owned(),
                "quota-scope".to_owned(),
                json!({"volume": "volume1", "qsid": canonical, "options": {"limit_bytes": null}})
            ),
            (
                "DELETE".to_owned(),
                "quota-scope/quota".to_owned(),
                json!({"volume": "volume1", "qsid": canonical})
            ),
        ]
    );

    // Users may not; an admin only within reach.
    let answer = gql(
        &api,
        &USER,
        SET,
        json!({"qsid": canonical, "host": "local:volume1", "props": {"hard_limit_bytes": 1}}),
    )
    .await;
    assert_field_error(
        &answer,
        "set_quota_scope",
        "no permission to execute set_quota_scope",
    );
    let answer = gql(
        &api,
        &USER,
        UNSET,
        json!({"qsid": canonical, "host": "local:volume1"}),
    )
    .await;
    assert_field_error(
        &answer,
        "unset_quota_scope",
        "no permission to execute unset_quota_scope",
    );
    let answer = gql(
        &api,
        &DOMAIN_ADMIN,
        UNSET,
        json!({"qsid": "project:00000000-0000-0000-0000-000000000001", "host": "local:volume1"}),
    )
    .await;
    assert_field_error(
        &answer,
        "unset_quota_scope",
        "Missing or invalid API parameters.",
    );
    assert_eq!(seen.lock().expect("lock").len(), 3, "nothing more was sent");

    // The proxy's non-2xx answer is aiohttp's ClientResponseError, as the reference lets it out.
    let manager_api = api
        .ctx
        .shared_config()
        .volumes
        .as_ref()
        .expect("volumes")
        .proxies["local"]
        .manager_api
        .clone();
    let answer = gql(
        &api,
        &SUPERADMIN,
        SET,
        json!({"qsid": format!("user:{USER2_UUID}"), "host": "local:volume1",
               "props": {"hard_limit_bytes": 1}}),
    )
    .await;
    assert_field_error(
        &answer,
        "set_quota_scope",
        &format!(
            "500, message='Internal Server Error', url=URL('{}/quota-scope')",
            manager_api.trim_end_matches('/')
        ),
    );
}

#[test]
fn the_schema_declares_quota_scopes_as_the_reference() {
    let sdl = bai_api::gql::schema().sdl();
    let without_descriptions: String = sdl.split("\"\"\"").step_by(2).collect();
    let sdl = without_descriptions
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("( ", "(")
        .replace(" )", ")");
    for declaration in [
        "quota_scope(storage_host_name: String!, quota_scope_id: String!): QuotaScope ",
        "set_quota_scope(quota_scope_id: String!, storage_host_name: String!, props: \
         QuotaScopeInput!): SetQuotaScope ",
        "unset_quota_scope(quota_scope_id: String!, storage_host_name: String!): \
         UnsetQuotaScope ",
        "type QuotaScope { id: ID! quota_scope_id: String! storage_host_name: String! details: \
         QuotaDetails! }",
        "type QuotaDetails { usage_bytes: BigInt usage_count: BigInt hard_limit_bytes: BigInt }",
        "input QuotaScopeInput { hard_limit_bytes: BigInt }",
        "type SetQuotaScope { quota_scope: QuotaScope }",
        "type UnsetQuotaScope { quota_scope: QuotaScope }",
    ] {
        assert!(sdl.contains(declaration), "missing {declaration:?}");
    }
}
