//! The `/folders` routes the WebUI calls before any storage exists, through the real router:
//! the folder listing (own, shared and project folders, as each kind of caller sees them, and its
//! parameters), the enabled folder types, the pending invitations, and the storage host listings,
//! both with the install guide's proxy unreachable (the reference's 500) and with a proxy that
//! answers.
//!
//! On the halfstack's PostgreSQL and etcd (fresh database and namespace) and a private Redis,
//! with vfolder and invitation rows inserted directly. The answering storage proxy is a stand-in
//! HTTP server of the test's own (its `GET volumes` and `GET folder/fs-usage`): the real one
//! needs storage volumes this machine does not have, and is not among the project's installs.

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use bai_api::testing::{DOMAIN_ADMIN, ExampleUser, SUPERADMIN, TestCluster, USER, signed_request};
use bai_etcd_store::Scope;
use common::Api;
use http::{Method, StatusCode};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use uuid::Uuid;

const USER_UUID: &str = "dfa9da54-4b28-432f-be29-c0d680c7a412";
const USER2_UUID: &str = "009fb1a4-487c-4f6e-9b1b-228b94b1d040";
const DEFAULT_PROJECT: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const MODEL_STORE_PROJECT: &str = "8e32dd28-d319-4e3b-8851-ea37837699a5";
/// A project of the default domain nobody belongs to.
const OUTSIDERS_PROJECT: &str = "5c1e8a7e-6f0b-4f43-9a3e-2c7d1b0f9e11";

/// A `vfolders` row: `owner` is `user:<uuid>` or `group:<uuid>`.
struct Folder {
    name: &'static str,
    owner: (&'static str, &'static str),
    permission: &'static str,
    status: &'static str,
    created_at: &'static str,
}

async fn insert_folder(db: &DatabaseConnection, folder: &Folder) -> Uuid {
    let id = Uuid::new_v4();
    let (kind, owner) = folder.owner;
    let (user, group, scope) = if kind == "user" {
        (format!("'{owner}'"), "NULL".to_owned(), "user")
    } else {
        ("NULL".to_owned(), format!("'{owner}'"), "project")
    };
    db.execute_unprepared(&format!(
        "INSERT INTO vfolders (id, host, quota_scope_id, name, usage_mode, permission, \
         max_files, max_size, cur_size, created_at, creator, ownership_type, \"user\", \"group\", \
         cloneable, status) VALUES ('{id}', 'local:volume1', '{scope}:{owner}', '{name}', \
         'general', '{permission}', 0, 1024, 0, '{created_at}', 'user@lablup.com', '{kind}', \
         {user}, {group}, false, '{status}')",
        name = folder.name,
        permission = folder.permission,
        created_at = folder.created_at,
        status = folder.status,
    ))
    .await
    .expect("vfolder row");
    id
}

async fn grant(db: &DatabaseConnection, folder: Uuid, user: &str, permission: &str) {
    db.execute_unprepared(&format!(
        "INSERT INTO vfolder_permissions (permission, vfolder, \"user\") \
         VALUES ('{permission}', '{folder}', '{user}')"
    ))
    .await
    .expect("vfolder permission row");
}

/// The folders of [`folders_api`], by name.
struct Folders {
    mine: Uuid,
    from_user2: Uuid,
    project_data: Uuid,
    models: Uuid,
    elsewhere: Uuid,
}

/// A cluster with both folder types enabled and: user@'s own folder `mine` and a removed one,
/// user2@'s folder shared with user@ read-only, a folder of each example project (user@ reads
/// the default project's through a read-only override), and one of a project nobody belongs to.
async fn folders_api(label: &str) -> (Api, Folders) {
    let cluster = TestCluster::start(label).await;
    let etcd = cluster.namespace.store().await;
    for (key, value) in [
        ("volumes/_types/user", ""),
        ("volumes/_types/group", ""),
        ("volumes/default_host", "local:volume1"),
    ] {
        etcd.put(key, value, Scope::Global).await.expect("etcd put");
    }
    let api = Api::on(cluster).await;
    let db = &api.cluster.database.connection;
    db.execute_unprepared(&format!(
        "INSERT INTO groups (id, name, is_active, domain_name, total_resource_slots, \
         allowed_vfolder_hosts, dotfiles, resource_policy, type) VALUES ('{OUTSIDERS_PROJECT}', \
         'outsiders', true, 'default', '{{}}', '{{}}', '\\x90', 'default', 'general')"
    ))
    .await
    .expect("project row");
    let folder = |name, owner, permission, status, created_at| Folder {
        name,
        owner,
        permission,
        status,
        created_at,
    };
    let mine = insert_folder(
        db,
        &folder(
            "mine",
            ("user", USER_UUID),
            "wd",
            "ready",
            "2024-05-01 10:00:00.5+00",
        ),
    )
    .await;
    insert_folder(
        db,
        &folder(
            "gone",
            ("user", USER_UUID),
            "wd",
            "delete-complete",
            "2024-05-01 10:01:00+00",
        ),
    )
    .await;
    let from_user2 = insert_folder(
        db,
        &folder(
            "from-user2",
            ("user", USER2_UUID),
            "wd",
            "ready",
            "2024-05-01 10:02:00+00",
        ),
    )
    .await;
    grant(db, from_user2, USER_UUID, "ro").await;
    let project_data = insert_folder(
        db,
        &folder(
            "project-data",
            ("group", DEFAULT_PROJECT),
            "rw",
            "ready",
            "2024-05-01 10:03:00+00",
        ),
    )
    .await;
    grant(db, project_data, USER_UUID, "ro").await;
    let models = insert_folder(
        db,
        &folder(
            "models",
            ("group", MODEL_STORE_PROJECT),
            "rw",
            "ready",
            "2024-05-01 10:04:00+00",
        ),
    )
    .await;
    let elsewhere = insert_folder(
        db,
        &folder(
            "elsewhere",
            ("group", OUTSIDERS_PROJECT),
            "rw",
            "ready",
            "2024-05-01 10:05:00+00",
        ),
    )
    .await;
    (
        api,
        Folders {
            mine,
            from_user2,
            project_data,
            models,
            elsewhere,
        },
    )
}

async fn listing(api: &Api, query: &str, who: &ExampleUser) -> Vec<Value> {
    let answer = api
        .send(signed_request(
            Method::GET,
            &format!("/folders{query}"),
            None,
            who,
        ))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.json.as_array().expect("a list").clone()
}

/// `(name, is_owner, permission)` of each entry, in order.
fn summary(entries: &[Value]) -> Vec<(String, bool, String)> {
    entries
        .iter()
        .map(|entry| {
            (
                entry["name"].as_str().expect("name").to_owned(),
                entry["is_owner"].as_bool().expect("is_owner"),
                entry["permission"].as_str().expect("permission").to_owned(),
            )
        })
        .collect()
}

fn row(name: &str, is_owner: bool, permission: &str) -> (String, bool, String) {
    (name.to_owned(), is_owner, permission.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_lists_own_shared_and_project_folders_field_for_field() {
    let (api, folders) = folders_api("vfolder_list_user").await;
    let answer = api
        .send(signed_request(Method::GET, "/folders", None, &USER))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.headers[http::header::CONTENT_TYPE],
        "application/json; charset=utf-8"
    );
    let mine_hex = folders.mine.simple().to_string();
    assert!(
        answer
            .text
            .starts_with(&format!(r#"[{{"name": "mine", "id": "{mine_hex}", "#)),
        "{}",
        answer.text
    );
    let entries = answer.json.as_array().expect("a list");
    assert_eq!(
        entries[0],
        json!({
            "name": "mine",
            "id": mine_hex,
            "quota_scope_id": format!("user:{USER_UUID}"),
            "host": "local:volume1",
            "status": "ready",
            "usage_mode": "general",
            "created_at": "2024-05-01 10:00:00.500000+00:00",
            "is_owner": true,
            "permission": "wd",
            "user": USER_UUID,
            "group": null,
            "creator": "user@lablup.com",
            "user_email": "user@lablup.com",
            "group_name": null,
            "ownership_type": "user",
            "type": "user",
            "cloneable": false,
            "max_files": 0,
            "max_size": 1024,
            "cur_size": 0,
        })
    );
    assert_eq!(
        summary(entries),
        [
            row("mine", true, "wd"),
            row("from-user2", false, "ro"),
            row("project-data", false, "ro"),
            row("models", false, "rw"),
        ],
        "the removed folder and the outsiders' project folder are not listed"
    );
    let shared = &entries[1];
    assert_eq!(shared["id"], folders.from_user2.simple().to_string());
    assert_eq!(shared["user_email"], "user2@lablup.com");
    let project = &entries[2];
    assert_eq!(project["id"], folders.project_data.simple().to_string());
    assert_eq!(project["group"], DEFAULT_PROJECT);
    assert_eq!(project["group_name"], "default");
    assert_eq!(project["user"], Value::Null);
    assert_eq!(project["user_email"], Value::Null);
    assert_eq!(project["ownership_type"], "group");
    assert_eq!(
        project["quota_scope_id"],
        format!("project:{DEFAULT_PROJECT}")
    );

    // A project keeps the user folders and only that project's folders.
    let in_model_store = listing(&api, &format!("?group_id={MODEL_STORE_PROJECT}"), &USER).await;
    assert_eq!(
        summary(&in_model_store),
        [
            row("mine", true, "wd"),
            row("from-user2", false, "ro"),
            row("models", false, "rw"),
        ]
    );
    assert_eq!(in_model_store[2]["id"], folders.models.simple().to_string());
    // The camel-case alias the older clients send.
    let aliased = listing(&api, &format!("?groupId={MODEL_STORE_PROJECT}"), &USER).await;
    assert_eq!(summary(&aliased), summary(&in_model_store));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_more_project_folders_and_superadmins_list_for_others() {
    let (api, folders) = folders_api("vfolder_list_admins").await;
    // A domain admin owns every project folder of the domain, members or not.
    let domain_admin = listing(&api, "", &DOMAIN_ADMIN).await;
    assert_eq!(
        summary(&domain_admin),
        [
            row("project-data", true, "rw"),
            row("models", true, "rw"),
            row("elsewhere", true, "rw"),
        ]
    );
    assert_eq!(
        domain_admin[2]["id"],
        folders.elsewhere.simple().to_string()
    );
    // The superadmin sees every project folder.
    let superadmin = listing(&api, "", &SUPERADMIN).await;
    assert_eq!(
        summary(&superadmin),
        [
            row("project-data", true, "rw"),
            row("models", true, "rw"),
            row("elsewhere", true, "rw"),
        ]
    );
    // On behalf of user@, the superadmin sees what user@ sees.
    let delegated = listing(&api, "?owner_user_email=user%40lablup.com", &SUPERADMIN).await;
    let as_user = listing(&api, "", &USER).await;
    assert_eq!(delegated, as_user);
    let camel = listing(&api, "?ownerUserEmail=user%40lablup.com", &SUPERADMIN).await;
    assert_eq!(camel, as_user);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_listing_parameters_are_refused_naming_the_field() {
    let (api, _) = folders_api("vfolder_list_params").await;
    let get = |query: &str, who: &ExampleUser| {
        signed_request(Method::GET, &format!("/folders{query}"), None, who)
    };
    let answer = api
        .send(get("?owner_user_email=user%40lablup.com", &USER))
        .await;
    answer.assert_problem(
        400,
        "invalid-api-params",
        Some("Only superadmins may have user scopes."),
    );
    let answer = api
        .send(get("?owner_user_email=nobody%40lablup.com", &SUPERADMIN))
        .await;
    answer.assert_problem(
        400,
        "invalid-api-params",
        Some("Cannot delegate an unknown user"),
    );
    let answer = api.send(get("?all=true", &USER)).await;
    answer.assert_problem(
        400,
        "invalid-api-params",
        Some("Deprecated use of 'all' option"),
    );
    // `all=false` is the default.
    assert_eq!(api.send(get("?all=false", &USER)).await.status, 200);
    for (query, field) in [
        ("?owner_user_email=not-an-email", "owner_user_email"),
        ("?group_id=default", "group_id"),
        ("?group_id=", "group_id"),
        ("?all=maybe", "all"),
        ("?limit=5", "limit"),
    ] {
        let answer = api.send(get(query, &USER)).await;
        answer.assert_problem(400, "invalid-api-params", None);
        assert!(
            answer.json["data"].get(field).is_some(),
            "{query}: {}",
            answer.text
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_types_are_the_keys_of_volumes_types() {
    let (api, _) = folders_api("vfolder_allowed_types").await;
    for path in ["/folders/_/allowed-types", "/folders/_/allowed_types"] {
        let answer = api
            .send(signed_request(Method::GET, path, None, &USER))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(answer.text, r#"["group", "user"]"#);
    }
    // Without `_types`, user folders only: and the listing has no project folders.
    let bare = Api::start("vfolder_allowed_types_bare").await;
    let answer = bare
        .send(signed_request(
            Method::GET,
            "/folders/_/allowed-types",
            None,
            &USER,
        ))
        .await;
    assert_eq!(answer.text, r#"["user"]"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_invitations_to_and_from_the_caller_are_listed() {
    let (api, folders) = folders_api("vfolder_invitations").await;
    let db = &api.cluster.database.connection;
    let invitation = Uuid::new_v4();
    db.execute_unprepared(&format!(
        "INSERT INTO vfolder_invitations (id, permission, inviter, invitee, state, created_at, \
         modified_at, vfolder) VALUES \
         ('{invitation}', 'rw', 'user2@lablup.com', 'user@lablup.com', 'pending', \
          '2024-05-02 09:00:00+00', NULL, '{from_user2}'), \
         ('{accepted}', 'ro', 'user2@lablup.com', 'user@lablup.com', 'accepted', \
          '2024-05-02 08:00:00+00', '2024-05-02 08:30:00.25+00', '{from_user2}'), \
         ('{sent}', 'ro', 'user@lablup.com', 'user2@lablup.com', 'pending', \
          '2024-05-03 09:00:00+00', '2024-05-03 09:00:00+00', '{mine}')",
        from_user2 = folders.from_user2,
        accepted = Uuid::new_v4(),
        sent = Uuid::new_v4(),
        mine = folders.mine,
    ))
    .await
    .expect("invitation rows");

    let answer = api
        .send(signed_request(
            Method::GET,
            "/folders/invitations/list",
            None,
            &USER,
        ))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.json,
        json!({"invitations": [{
            "id": invitation.to_string(),
            "inviter": "user2@lablup.com",
            "invitee": "user@lablup.com",
            "perm": "rw",
            "state": "pending",
            "created_at": "2024-05-02 09:00:00+00:00",
            "modified_at": "None",
            "vfolder_id": folders.from_user2.to_string(),
            "vfolder_name": "from-user2",
        }]})
    );
    for path in [
        "/folders/invitations/list-sent",
        "/folders/invitations/list_sent",
    ] {
        let answer = api
            .send(signed_request(Method::GET, path, None, &USER))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let sent = answer.json["invitations"].as_array().expect("a list");
        assert_eq!(sent.len(), 1, "{}", answer.text);
        assert_eq!(sent[0]["invitee"], "user2@lablup.com");
        assert_eq!(sent[0]["vfolder_name"], "mine");
        assert_eq!(sent[0]["modified_at"], "2024-05-03 09:00:00+00:00");
    }
    let none = api
        .send(signed_request(
            Method::GET,
            "/folders/invitations/list",
            None,
            &SUPERADMIN,
        ))
        .await;
    assert_eq!(none.text, r#"{"invitations": []}"#);
}

/// etcd `volumes/` as the install guide writes it, with `manager_api` given.
async fn volumes_config(cluster: &TestCluster, manager_api: &str, exposed: &str) {
    let etcd = cluster.namespace.store().await;
    for (key, value) in [
        ("volumes/_types/user", ""),
        ("volumes/_types/group", ""),
        ("volumes/default_host", "local:volume1"),
        ("volumes/exposed_volume_info", exposed),
        ("volumes/proxies/local/client_api", "http://127.0.0.1:6021"),
        ("volumes/proxies/local/manager_api", manager_api),
        (
            "volumes/proxies/local/secret",
            "some-secret-shared-with-storage-proxy",
        ),
        ("volumes/proxies/local/ssl_verify", "false"),
        ("volumes/proxies/local/sftp_scaling_groups", "sftp-a,sftp-b"),
    ] {
        etcd.put(key, value, Scope::Global).await.expect("etcd put");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_storage_proxy_is_the_references_500() {
    let cluster = TestCluster::start("vfolder_hosts_unreachable").await;
    // The install guide's proxy, which nothing serves here: port 1 refuses at once.
    volumes_config(&cluster, "https://127.0.0.1:1", "percentage").await;
    let api = Api::on(cluster).await;
    for (path, who) in [
        ("/folders/_/hosts", &USER),
        ("/folders/_/all-hosts", &SUPERADMIN),
        ("/folders/_/all_hosts", &SUPERADMIN),
    ] {
        let answer = api
            .send_allowing_500(signed_request(Method::GET, path, None, who))
            .await;
        answer.assert_problem(500, "internal-server-error", None);
    }
    // The rest of the pages' calls need no proxy.
    let answer = api
        .send(signed_request(Method::GET, "/folders", None, &USER))
        .await;
    assert_eq!(answer.text, "[]");
    // All hosts are the superadmin's.
    let answer = api
        .send(signed_request(
            Method::GET,
            "/folders/_/all-hosts",
            None,
            &USER,
        ))
        .await;
    answer.assert_problem(401, "auth-failed", None);
    let answer = api
        .send(signed_request(
            Method::GET,
            "/folders/_/hosts?group_id=x",
            None,
            &USER,
        ))
        .await;
    answer.assert_problem(400, "invalid-api-params", None);
}

type Seen = Arc<Mutex<Vec<(String, Option<String>, String)>>>;

/// Serves `GET volumes` (two vfs volumes) and `GET folder/fs-usage` (a quarter used) under
/// `/api`, recording each request's path, token and body. Returns the proxy's manager_api URL.
async fn stand_in_proxy(seen: Seen) -> String {
    let record = move |path: &'static str, answer: Value| {
        let seen = Arc::clone(&seen);
        get(move |headers: HeaderMap, body: String| async move {
            let token = headers
                .get(bai_storage_proxy::AUTH_TOKEN_HEADER)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            seen.lock()
                .expect("lock")
                .push((path.to_owned(), token, body));
            axum::Json(answer)
        })
    };
    let volume = |name: &str| {
        json!({"name": name, "backend": "vfs", "path": format!("/vfroot/{name}"),
               "fsprefix": ".", "capabilities": ["quota", "vfolder"]})
    };
    let app = Router::new()
        .route(
            "/api/volumes",
            record(
                "volumes",
                json!({"volumes": [volume("volume1"), volume("volume2")]}),
            ),
        )
        .route(
            "/api/folder/fs-usage",
            record(
                "folder/fs-usage",
                json!({"used_bytes": 250, "capacity_bytes": 1000}),
            ),
        );
    let addr = common::serve(app).await;
    format!("http://{addr}/api/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_are_the_allowed_ones_a_proxy_serves() {
    let seen = Seen::default();
    let manager_api = stand_in_proxy(Arc::clone(&seen)).await;
    let cluster = TestCluster::start("vfolder_hosts").await;
    volumes_config(&cluster, &manager_api, "percentage,used_bytes").await;
    let api = Api::on(cluster).await;

    // The example keypair policy allows local:volume1; the proxy also serves local:volume2.
    let answer = api
        .send(signed_request(Method::GET, "/folders/_/hosts", None, &USER))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.text,
        r#"{"default": "local:volume1", "allowed": ["local:volume1"], "volume_info": {"local:volume1": {"backend": "vfs", "capabilities": ["quota", "vfolder"], "usage": {"used": 250, "percentage": 25.0}, "sftp_scaling_groups": ["sftp-a", "sftp-b"]}}}"#
    );
    let recorded = seen.lock().expect("lock").clone();
    assert_eq!(
        recorded,
        [
            (
                "volumes".to_owned(),
                Some("some-secret-shared-with-storage-proxy".to_owned()),
                String::new()
            ),
            (
                "folder/fs-usage".to_owned(),
                Some("some-secret-shared-with-storage-proxy".to_owned()),
                r#"{"volume":"volume1"}"#.to_owned()
            ),
        ]
    );

    // A project's hosts join the domain's and the policy's: volume2 through the default project.
    api.cluster
        .database
        .connection
        .execute_unprepared(&format!(
            "UPDATE groups SET allowed_vfolder_hosts = '{{\"local:volume2\": [\"mount-in-session\"]}}' \
             WHERE id = '{DEFAULT_PROJECT}'"
        ))
        .await
        .expect("project hosts");
    let answer = api
        .send(signed_request(
            Method::GET,
            &format!("/folders/_/hosts?group_id={DEFAULT_PROJECT}"),
            None,
            &USER,
        ))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.json["allowed"],
        json!(["local:volume1", "local:volume2"])
    );
    assert_eq!(
        answer.json["volume_info"]["local:volume2"]["usage"],
        json!({"used": 250, "percentage": 25.0})
    );
    // Naming another project leaves the default project's hosts out.
    let answer = api
        .send(signed_request(
            Method::GET,
            &format!("/folders/_/hosts?group_id={MODEL_STORE_PROJECT}"),
            None,
            &USER,
        ))
        .await;
    assert_eq!(answer.json["allowed"], json!(["local:volume1"]));

    for path in ["/folders/_/all-hosts", "/folders/_/all_hosts"] {
        let answer = api
            .send(signed_request(Method::GET, path, None, &SUPERADMIN))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(
            answer.text,
            r#"{"default": "local:volume1", "allowed": ["local:volume1", "local:volume2"]}"#
        );
    }
}
