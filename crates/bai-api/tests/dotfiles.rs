//! The dotfile routes through the real router: `/user-config/dotfiles`,
//! `/user-config/bootstrap-script`, `/domain-config/dotfiles` and `/group-config/dotfiles`, what
//! they store (the msgpack lists a new session's kernels are given), who may use them, and the
//! reference's refusals.
//!
//! On the halfstack's PostgreSQL and etcd (fresh database and namespace) and a private Redis.

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;

use bai_api::testing::{DOMAIN_ADMIN, ExampleUser, MONITOR, SUPERADMIN, USER, signed_request};
use common::{Answer, Api};
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// The example project every example user belongs to.
const DEFAULT_PROJECT: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
/// A project of the default domain nobody belongs to.
const OUTSIDERS_PROJECT: &str = "6f0e5cb4-1d35-4b6e-9a53-3a4e2f0c7d11";
/// A project of the domain `elsewhere`.
const ELSEWHERE_PROJECT: &str = "0c4b8d57-7a1c-4c55-8f4e-5d9a8e3b2a10";
const USER_UUID: &str = "dfa9da54-4b28-432f-be29-c0d680c7a412";

async fn call(api: &Api, who: &ExampleUser, method: Method, path: &str, body: &Value) -> Answer {
    let request = if method == Method::GET || method == Method::DELETE {
        let query = body
            .as_object()
            .expect("an object")
            .iter()
            .map(|(key, value)| {
                let value = value.as_str().expect("string parameters");
                format!(
                    "{key}={}",
                    form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let path = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        signed_request(method, &path, None, who)
    } else {
        signed_request(method, path, Some(body), who)
    };
    api.send(request).await
}

fn ok(answer: &Answer) -> &Value {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    &answer.json
}

/// The stored dotfiles of `table`'s row `key = value`, unpacked.
async fn stored(api: &Api, table: &str, key: &str, value: &str) -> Value {
    use sea_orm::{ConnectionTrait, Statement};
    let db = &api.cluster.database.connection;
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT dotfiles FROM {table} WHERE {key} = '{value}'"),
        ))
        .await
        .expect("reading dotfiles")
        .expect("the row");
    let packed: Vec<u8> = row.try_get("", "dotfiles").expect("bytea");
    rmp_serde::from_slice(&packed).expect("a msgpack list")
}

async fn extra_rows(api: &Api) {
    use sea_orm::ConnectionTrait;
    let db = &api.cluster.database.connection;
    db.execute_unprepared(&format!(
        "INSERT INTO domains (name, is_active, total_resource_slots, allowed_vfolder_hosts, \
         allowed_docker_registries, dotfiles) VALUES ('elsewhere', true, '{{}}', '{{}}', '{{}}', \
         '\\x90'); \
         INSERT INTO groups (id, name, is_active, domain_name, total_resource_slots, \
         allowed_vfolder_hosts, dotfiles, resource_policy, type) VALUES \
         ('{OUTSIDERS_PROJECT}', 'outsiders', true, 'default', '{{}}', '{{}}', '\\x90', \
         'default', 'general'), \
         ('{ELSEWHERE_PROJECT}', 'faraway', true, 'elsewhere', '{{}}', '{{}}', '\\x90', \
         'default', 'general'); \
         INSERT INTO vfolders (id, host, quota_scope_id, name, usage_mode, permission, \
         max_files, max_size, cur_size, created_at, creator, ownership_type, \"user\", \
         cloneable, status) VALUES (gen_random_uuid(), 'local:volume1', 'user:{USER_UUID}', \
         '.mydata', 'general', 'rw', 0, 1024, 0, now(), 'user@lablup.com', 'user', \
         '{USER_UUID}', false, 'ready')"
    ))
    .await
    .expect("extra rows");
}

fn dotfile(path: &str, permission: &str, data: &str) -> Value {
    json!({"path": path, "permission": permission, "data": data})
}

fn with(mut base: Value, extra: &Value) -> Value {
    for (key, value) in extra.as_object().expect("an object") {
        base[key] = value.clone();
    }
    base
}

#[tokio::test]
async fn user_dotfiles_and_bootstrap_script() {
    let api = Api::start("dotfiles-user").await;
    extra_rows(&api).await;
    let route = "/user-config/dotfiles";

    // Create, list, get, update (moves to the end), delete.
    let created = call(
        &api,
        &USER,
        Method::POST,
        route,
        &dotfile(".bashrc", "644", "alias ll='ls -l'\n"),
    )
    .await;
    assert_eq!(ok(&created), &json!({}));
    let second = call(
        &api,
        &USER,
        Method::POST,
        route,
        &dotfile(".vimrc", "600", "set nu\n"),
    )
    .await;
    ok(&second);
    let listed = call(&api, &USER, Method::GET, route, &json!({})).await;
    assert_eq!(
        ok(&listed),
        &json!([
            {"path": ".bashrc", "permission": "644", "data": "alias ll='ls -l'\n"},
            {"path": ".vimrc", "permission": "600", "data": "set nu\n"},
        ])
    );
    let got = call(&api, &USER, Method::GET, route, &json!({"path": ".vimrc"})).await;
    assert_eq!(
        ok(&got),
        &json!({"path": ".vimrc", "perm": "600", "data": "set nu\n"})
    );
    let updated = call(
        &api,
        &USER,
        Method::PATCH,
        route,
        &dotfile(".bashrc", "755", "echo hi\n"),
    )
    .await;
    assert_eq!(ok(&updated), &json!({}));
    assert_eq!(
        stored(&api, "keypairs", "access_key", USER.access_key).await,
        json!([
            {"path": ".vimrc", "perm": "600", "data": "set nu\n"},
            {"path": ".bashrc", "perm": "755", "data": "echo hi\n"},
        ])
    );
    let deleted = call(
        &api,
        &USER,
        Method::DELETE,
        route,
        &json!({"path": ".vimrc"}),
    )
    .await;
    assert_eq!(ok(&deleted), &json!({"success": true}));
    let listed = call(&api, &USER, Method::GET, route, &json!({})).await;
    assert_eq!(
        ok(&listed),
        &json!([{"path": ".bashrc", "permission": "755", "data": "echo hi\n"}])
    );

    // The reference's refusals.
    call(
        &api,
        &USER,
        Method::POST,
        route,
        &dotfile(".bashrc", "644", "x"),
    )
    .await
    .assert_problem(400, "generic-bad-request", None);
    let duplicate = call(
        &api,
        &USER,
        Method::POST,
        route,
        &dotfile(".bashrc", "644", "x"),
    )
    .await;
    assert_eq!(duplicate.json["title"], "Dotfile already exists.");
    for reserved in [".ssh", ".ssh/authorized_keys", ".jupyter", ".config"] {
        call(
            &api,
            &USER,
            Method::POST,
            route,
            &dotfile(reserved, "644", "x"),
        )
        .await
        .assert_problem(
            400,
            "invalid-api-params",
            Some("dotfile path is reserved for internal operations."),
        );
    }
    call(
        &api,
        &USER,
        Method::POST,
        route,
        &dotfile(".mydata", "644", "x"),
    )
    .await
    .assert_problem(
        400,
        "invalid-api-params",
        Some("dotfile path conflicts with your dot-prefixed vFolder"),
    );
    for (method, body) in [
        (Method::GET, json!({"path": ".nothing"})),
        (Method::PATCH, dotfile(".nothing", "644", "x")),
        (Method::DELETE, json!({"path": ".nothing"})),
    ] {
        let answer = call(&api, &USER, method, route, &body).await;
        answer.assert_problem(404, "object-not-found", None);
        assert_eq!(answer.json["title"], "No such dotfile.");
    }
    let bad_permission = call(&api, &USER, Method::POST, route, &dotfile(".x", "888", "x")).await;
    bad_permission.assert_problem(400, "invalid-api-params", None);
    assert!(
        bad_permission.json["data"]["permission"].is_string(),
        "{}",
        bad_permission.text
    );
    let too_long = "x".repeat(64 * 1024 + 1);
    let oversized = call(
        &api,
        &USER,
        Method::POST,
        route,
        &dotfile(".big", "644", &too_long),
    )
    .await;
    oversized.assert_problem(400, "invalid-api-params", None);
    assert!(
        oversized.json["data"]["data"].is_string(),
        "{}",
        oversized.text
    );
    let missing = call(
        &api,
        &USER,
        Method::POST,
        route,
        &json!({"path": ".x", "permission": "644"}),
    )
    .await;
    missing.assert_problem(400, "invalid-api-params", None);
    assert_eq!(missing.json["data"]["data"], "is required");
    // Each fits, but the packed list would pass 64 KiB.
    let half = "y".repeat(40 * 1024);
    ok(&call(
        &api,
        &USER,
        Method::POST,
        route,
        &dotfile(".half1", "644", &half),
    )
    .await);
    let full = call(
        &api,
        &USER,
        Method::POST,
        route,
        &dotfile(".half2", "644", &half),
    )
    .await;
    full.assert_problem(
        400,
        "generic-bad-request",
        Some("No leftover space for dotfile storage"),
    );
    assert_eq!(full.json["title"], "Dotfile creation has failed.");
    ok(&call(
        &api,
        &USER,
        Method::DELETE,
        route,
        &json!({"path": ".half1"}),
    )
    .await);
    // At most 100 dotfiles.
    for index in 1..100 {
        ok(&call(
            &api,
            &USER,
            Method::POST,
            route,
            &dotfile(&format!(".f{index}"), "644", "z"),
        )
        .await);
    }
    call(
        &api,
        &USER,
        Method::POST,
        route,
        &dotfile(".f100", "644", "z"),
    )
    .await
    .assert_problem(
        400,
        "generic-bad-request",
        Some("Dotfile creation limit reached"),
    );
    ok(&call(&api, &USER, Method::DELETE, route, &json!({"path": ".f99"})).await);

    // Acting for another keypair: admins for users of their domain only.
    let for_user = call(
        &api,
        &DOMAIN_ADMIN,
        Method::POST,
        route,
        &with(
            dotfile(".profile", "644", "p"),
            &json!({"owner_access_key": USER.access_key}),
        ),
    )
    .await;
    ok(&for_user);
    let got = call(
        &api,
        &DOMAIN_ADMIN,
        Method::GET,
        route,
        &json!({"path": ".profile", "owner_access_key": USER.access_key}),
    )
    .await;
    assert_eq!(ok(&got)["data"], "p");
    call(
        &api,
        &USER,
        Method::POST,
        route,
        &with(
            dotfile(".x", "644", "x"),
            &json!({"owner_access_key": DOMAIN_ADMIN.access_key}),
        ),
    )
    .await
    .assert_problem(403, "generic-forbidden", None);
    call(
        &api,
        &DOMAIN_ADMIN,
        Method::DELETE,
        route,
        &json!({"path": ".x", "owner_access_key": SUPERADMIN.access_key}),
    )
    .await
    .assert_problem(403, "generic-forbidden", None);
    call(
        &api,
        &SUPERADMIN,
        Method::PATCH,
        route,
        &with(
            dotfile(".x", "644", "x"),
            &json!({"owner_access_key": "AKIANOSUCHKEYEXAMPLE"}),
        ),
    )
    .await
    .assert_problem(400, "invalid-api-params", Some("Unknown owner access key"));
    // The admin's own list is untouched: listing ignores `owner_access_key`, as in the reference.
    let own = call(
        &api,
        &DOMAIN_ADMIN,
        Method::GET,
        route,
        &json!({"owner_access_key": USER.access_key}),
    )
    .await;
    assert_eq!(ok(&own), &json!([]));

    // Concurrent additions all land: each write holds the keypair row's lock.
    let bodies: Vec<Value> = (0..8)
        .map(|index| dotfile(&format!(".c{index}"), "644", "c"))
        .collect();
    let answers = futures_util::future::join_all(
        bodies
            .iter()
            .map(|body| call(&api, &DOMAIN_ADMIN, Method::POST, route, body)),
    )
    .await;
    for answer in &answers {
        ok(answer);
    }
    let own = call(&api, &DOMAIN_ADMIN, Method::GET, route, &json!({})).await;
    assert_eq!(ok(&own).as_array().map(Vec::len), Some(8), "{}", own.text);

    // The bootstrap script, stripped.
    let script_route = "/user-config/bootstrap-script";
    let empty = call(&api, &USER, Method::GET, script_route, &json!({})).await;
    assert_eq!(ok(&empty), &json!(""));
    let set = call(
        &api,
        &USER,
        Method::POST,
        script_route,
        &json!({"script": "  echo boot\n\n"}),
    )
    .await;
    assert_eq!(ok(&set), &json!({}));
    let script = call(&api, &USER, Method::GET, script_route, &json!({})).await;
    assert_eq!(ok(&script), &json!("echo boot"));
    ok(&call(
        &api,
        &USER,
        Method::POST,
        script_route,
        &json!({"script": ""}),
    )
    .await);
    let long = call(
        &api,
        &USER,
        Method::POST,
        script_route,
        &json!({"script": too_long}),
    )
    .await;
    long.assert_problem(400, "invalid-api-params", None);
    assert!(long.json["data"]["script"].is_string(), "{}", long.text);
}

#[tokio::test]
async fn domain_dotfiles() {
    let api = Api::start("dotfiles-domain").await;
    extra_rows(&api).await;
    let route = "/domain-config/dotfiles";
    let in_domain = |domain: &str, body: Value| with(body, &json!({"domain": domain}));

    // A domain admin writes their own domain's; every member reads them.
    let created = call(
        &api,
        &DOMAIN_ADMIN,
        Method::POST,
        route,
        &in_domain("default", dotfile(".condarc", "644", "channels: []\n")),
    )
    .await;
    assert_eq!(ok(&created), &json!({}));
    let listed = call(
        &api,
        &USER,
        Method::GET,
        route,
        &json!({"domain": "default"}),
    )
    .await;
    assert_eq!(
        ok(&listed),
        &json!([{"path": ".condarc", "permission": "644", "data": "channels: []\n"}])
    );
    let got = call(
        &api,
        &MONITOR,
        Method::GET,
        route,
        &json!({"domain": "default", "path": ".condarc"}),
    )
    .await;
    assert_eq!(
        ok(&got),
        &json!({"path": ".condarc", "perm": "644", "data": "channels: []\n"})
    );
    ok(&call(
        &api,
        &DOMAIN_ADMIN,
        Method::PATCH,
        route,
        &in_domain("default", dotfile(".condarc", "600", "x")),
    )
    .await);
    assert_eq!(
        stored(&api, "domains", "name", "default").await,
        json!([{"path": ".condarc", "perm": "600", "data": "x"}])
    );
    call(
        &api,
        &DOMAIN_ADMIN,
        Method::POST,
        route,
        &in_domain("default", dotfile(".condarc", "644", "x")),
    )
    .await
    .assert_problem(400, "generic-bad-request", None);
    call(
        &api,
        &DOMAIN_ADMIN,
        Method::POST,
        route,
        &in_domain("default", dotfile(".terminfo", "644", "x")),
    )
    .await
    .assert_problem(
        400,
        "invalid-api-params",
        Some("dotfile path is reserved for internal operations."),
    );

    // Plain users may not write; nobody but a superadmin touches another domain.
    call(
        &api,
        &USER,
        Method::POST,
        route,
        &in_domain("default", dotfile(".a", "644", "x")),
    )
    .await
    .assert_problem(401, "auth-failed", None);
    call(
        &api,
        &DOMAIN_ADMIN,
        Method::POST,
        route,
        &in_domain("elsewhere", dotfile(".a", "644", "x")),
    )
    .await
    .assert_problem(
        403,
        "generic-forbidden",
        Some("Domain admins cannot create dotfiles of other domains"),
    );
    call(
        &api,
        &USER,
        Method::GET,
        route,
        &json!({"domain": "elsewhere"}),
    )
    .await
    .assert_problem(
        403,
        "generic-forbidden",
        Some("Users cannot access dotfiles of other domains"),
    );
    ok(&call(
        &api,
        &SUPERADMIN,
        Method::POST,
        route,
        &in_domain("elsewhere", dotfile(".a", "644", "x")),
    )
    .await);
    let elsewhere = call(
        &api,
        &SUPERADMIN,
        Method::GET,
        route,
        &json!({"domain": "elsewhere"}),
    )
    .await;
    assert_eq!(ok(&elsewhere).as_array().map(Vec::len), Some(1));
    call(
        &api,
        &SUPERADMIN,
        Method::POST,
        route,
        &in_domain("nowhere", dotfile(".a", "644", "x")),
    )
    .await
    .assert_problem(404, "object-not-found", Some("Input domain is not found"));
    let nowhere = call(
        &api,
        &SUPERADMIN,
        Method::GET,
        route,
        &json!({"domain": "nowhere"}),
    )
    .await;
    assert_eq!(ok(&nowhere), &json!([]));

    let deleted = call(
        &api,
        &DOMAIN_ADMIN,
        Method::DELETE,
        route,
        &json!({"domain": "default", "path": ".condarc"}),
    )
    .await;
    assert_eq!(ok(&deleted), &json!({"success": true}));
    call(
        &api,
        &DOMAIN_ADMIN,
        Method::DELETE,
        route,
        &json!({"domain": "default", "path": ".condarc"}),
    )
    .await
    .assert_problem(404, "object-not-found", None);
    let missing = call(&api, &DOMAIN_ADMIN, Method::GET, route, &json!({})).await;
    missing.assert_problem(400, "invalid-api-params", None);
    assert_eq!(missing.json["data"]["domain"], "is required");
}

#[tokio::test]
async fn project_dotfiles() {
    let api = Api::start("dotfiles-project").await;
    extra_rows(&api).await;
    let route = "/group-config/dotfiles";

    // By id, or by name with the domain.
    let created = call(
        &api,
        &DOMAIN_ADMIN,
        Method::POST,
        route,
        &with(
            dotfile(".Rprofile", "644", "r"),
            &json!({"group": DEFAULT_PROJECT}),
        ),
    )
    .await;
    assert_eq!(ok(&created), &json!({}));
    ok(&call(
        &api,
        &DOMAIN_ADMIN,
        Method::POST,
        route,
        &with(
            dotfile(".npmrc", "600", "n"),
            &json!({"group": "default", "domain": "default"}),
        ),
    )
    .await);
    let listed = call(
        &api,
        &USER,
        Method::GET,
        route,
        &json!({"group": "default", "domain": "default"}),
    )
    .await;
    assert_eq!(
        ok(&listed),
        &json!([
            {"path": ".Rprofile", "permission": "644", "data": "r"},
            {"path": ".npmrc", "permission": "600", "data": "n"},
        ])
    );
    let got = call(
        &api,
        &USER,
        Method::GET,
        route,
        &json!({"groupId": DEFAULT_PROJECT, "path": ".npmrc"}),
    )
    .await;
    assert_eq!(
        ok(&got),
        &json!({"path": ".npmrc", "perm": "600", "data": "n"})
    );
    ok(&call(
        &api,
        &SUPERADMIN,
        Method::PATCH,
        route,
        &with(
            dotfile(".npmrc", "644", "m"),
            &json!({"group_id": DEFAULT_PROJECT}),
        ),
    )
    .await);
    assert_eq!(
        stored(&api, "groups", "id", DEFAULT_PROJECT).await,
        json!([
            {"path": ".Rprofile", "perm": "644", "data": "r"},
            {"path": ".npmrc", "perm": "644", "data": "m"},
        ])
    );
    let deleted = call(
        &api,
        &DOMAIN_ADMIN,
        Method::DELETE,
        route,
        &json!({"group": DEFAULT_PROJECT, "path": ".Rprofile"}),
    )
    .await;
    assert_eq!(ok(&deleted), &json!({"success": true}));

    // Refusals: names need a domain, unknown projects, duplicates, reserved paths.
    call(
        &api,
        &USER,
        Method::GET,
        route,
        &json!({"group": "default"}),
    )
    .await
    .assert_problem(
        400,
        "invalid-api-params",
        Some("Missing parameter 'domain'"),
    );
    let unknown = call(
        &api,
        &SUPERADMIN,
        Method::GET,
        route,
        &json!({"group": "nothing", "domain": "default"}),
    )
    .await;
    unknown.assert_problem(404, "object-not-found", None);
    assert_eq!(unknown.json["title"], "No such user group (or project).");
    call(
        &api,
        &DOMAIN_ADMIN,
        Method::POST,
        route,
        &with(
            dotfile(".npmrc", "644", "x"),
            &json!({"group": DEFAULT_PROJECT}),
        ),
    )
    .await
    .assert_problem(400, "generic-bad-request", None);
    call(
        &api,
        &DOMAIN_ADMIN,
        Method::POST,
        route,
        &with(
            dotfile(".local", "644", "x"),
            &json!({"group": DEFAULT_PROJECT}),
        ),
    )
    .await
    .assert_problem(400, "invalid-api-params", None);
    call(
        &api,
        &DOMAIN_ADMIN,
        Method::PATCH,
        route,
        &with(
            dotfile(".none", "644", "x"),
            &json!({"group": DEFAULT_PROJECT}),
        ),
    )
    .await
    .assert_problem(404, "object-not-found", None);

    // Members read; admins of the project's domain and superadmins read and write.
    call(
        &api,
        &USER,
        Method::GET,
        route,
        &json!({"group": OUTSIDERS_PROJECT}),
    )
    .await
    .assert_problem(
        403,
        "generic-forbidden",
        Some("Users cannot access group dotfiles of other groups"),
    );
    ok(&call(
        &api,
        &DOMAIN_ADMIN,
        Method::GET,
        route,
        &json!({"group": OUTSIDERS_PROJECT}),
    )
    .await);
    call(
        &api,
        &USER,
        Method::POST,
        route,
        &with(
            dotfile(".a", "644", "x"),
            &json!({"group": DEFAULT_PROJECT}),
        ),
    )
    .await
    .assert_problem(401, "auth-failed", None);
    call(
        &api,
        &DOMAIN_ADMIN,
        Method::POST,
        route,
        &with(
            dotfile(".a", "644", "x"),
            &json!({"group": ELSEWHERE_PROJECT}),
        ),
    )
    .await
    .assert_problem(
        403,
        "generic-forbidden",
        Some("Admins cannot create group dotfiles of other domains"),
    );
    call(
        &api,
        &DOMAIN_ADMIN,
        Method::GET,
        route,
        &json!({"group": "faraway", "domain": "elsewhere"}),
    )
    .await
    .assert_problem(403, "generic-forbidden", None);
    ok(&call(
        &api,
        &SUPERADMIN,
        Method::POST,
        route,
        &with(
            dotfile(".a", "644", "x"),
            &json!({"group": "faraway", "domain": "elsewhere"}),
        ),
    )
    .await);
    assert_eq!(
        stored(&api, "groups", "id", ELSEWHERE_PROJECT).await,
        json!([{"path": ".a", "perm": "644", "data": "x"}])
    );
}
