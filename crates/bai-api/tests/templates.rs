//! The template routes through the real router: `/template/session` and `/template/cluster`
//! (which the official clients do not call), their refusals, the 404 of
//! `POST /session/_/create-from-template` for a template that does not exist, and who may read,
//! change and delete whose templates (stricter than the reference, which checks no ownership on
//! the routes by id).
//!
//! On the halfstack's PostgreSQL and etcd (fresh database and namespace) and a private Redis.

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;

use bai_api::testing::{DOMAIN_ADMIN, ExampleUser, SUPERADMIN, USER, signed_request};
use common::{Answer, Api};
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// The fixtures' second plain user, in the same projects as [`USER`].
const USER2: ExampleUser = ExampleUser {
    email: "user2@lablup.com",
    password: "",
    access_key: "AKIANATWOUSEREXAMPLE",
    secret_key: "P7oxTDdzHbEpUSs5v7r7EWj9yKstp8VpZ7SEyA-g",
};
const USER2_UUID: &str = "009fb1a4-487c-4f6e-9b1b-228b94b1d040";
/// A project of the default domain that no example user belongs to.
const PRIVATE_PROJECT: &str = "6c3b1a6e-3f4e-4c43-9d5f-5b0d2f0b7a01";
/// A project of another domain.
const FARAWAY_PROJECT: &str = "6c3b1a6e-3f4e-4c43-9d5f-5b0d2f0b7a02";
const MISSING: &str = "00000000-0000-0000-0000-000000000000";

/// `method path` as `who`, with `body` for the methods that send one.
async fn call(api: &Api, who: &ExampleUser, method: Method, path: &str, body: &Value) -> Answer {
    let request = if method == Method::GET || method == Method::DELETE {
        signed_request(method, path, None, who)
    } else {
        signed_request(method, path, Some(body), who)
    };
    api.send(request).await
}

/// [`call`], asserting the status.
async fn expect(
    api: &Api,
    who: &ExampleUser,
    (method, path): (Method, &str),
    body: &Value,
    status: StatusCode,
) -> Answer {
    let what = format!("{} {method} {path}", who.email);
    let answer = call(api, who, method, path, body).await;
    assert_eq!(answer.status, status, "{what}: {}", answer.text);
    answer
}

fn task_template(name: &str) -> Value {
    json!({
        "api_version": "6", "kind": "taskTemplate", "metadata": {"name": name},
        "spec": {"kernel": {"image": "cr.backend.ai/stable/python:3.9-ubuntu20.04"}},
    })
}

fn cluster_template(name: &str, task: &str) -> Value {
    json!({
        "api_version": "6", "kind": "clusterTemplate", "mode": "single-node",
        "metadata": {"name": name},
        "spec": {"nodes": [{"role": "main", "session_template": task}]},
    })
}

/// The `payload` of `POST|PUT /template/session` with one entry: `extra` next to the template.
fn task_payload(name: &str, extra: Value) -> Value {
    let mut entry = json!({"template": task_template(name)});
    if let (Some(entry), Value::Object(extra)) = (entry.as_object_mut(), extra) {
        entry.extend(extra);
    }
    json!({ "payload": json!([entry]).to_string() })
}

/// Stores one task template as `who` (`extra`: see [`task_payload`]); its id.
async fn create_task(api: &Api, who: &ExampleUser, name: &str, extra: Value) -> String {
    let route = (Method::POST, "/template/session");
    let created = expect(api, who, route, &task_payload(name, extra), StatusCode::OK).await;
    created.json[0]["id"].as_str().expect("an id").to_owned()
}

/// Stores one cluster template of `task` as `who`, with the parameters `extra`; its id.
async fn create_cluster(
    api: &Api,
    who: &ExampleUser,
    name: &str,
    task: &str,
    mut extra: Value,
) -> String {
    extra["payload"] = Value::from(cluster_template(name, task).to_string());
    let body = extra;
    let route = (Method::POST, "/template/cluster");
    let created = expect(api, who, route, &body, StatusCode::OK).await;
    created.json["id"].as_str().expect("an id").to_owned()
}

/// Asserts the 404 of a template that does not exist or that the caller may not reach.
#[track_caller]
fn assert_no_such_template(answer: &Answer) {
    answer.assert_problem(404, "object-not-found", None);
    assert_eq!(answer.json["title"], "No such task template.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_templates_refuse_what_the_reference_refuses() {
    let api = Api::start("templates-task").await;
    let id = create_task(&api, &USER, "ok", json!({})).await;
    let create = || (Method::POST, "/template/session");

    let mut bad = task_template("bad");
    bad["spec"]["kernel"]["gpus"] = json!(1);
    let body = json!({ "payload": json!([{"template": bad}]).to_string() });
    let refused = expect(&api, &USER, create(), &body, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        refused.json["data"],
        json!({"template.spec.kernel.gpus": "is not allowed key"})
    );
    let body = json!({"payload": "{: not json [nor yaml"});
    let malformed = expect(&api, &USER, create(), &body, StatusCode::BAD_REQUEST).await;
    assert_eq!(malformed.json["msg"], "Malformed payload");

    // A missing template: GET answers `{}` as the reference's, the writes 404.
    let path = format!("/template/session/{MISSING}");
    let got = expect(
        &api,
        &USER,
        (Method::GET, &path),
        &json!({}),
        StatusCode::OK,
    )
    .await;
    assert_eq!(got.json, json!({}));
    for (method, body) in [
        (Method::PUT, task_payload("ok", json!({}))),
        (Method::DELETE, json!({})),
    ] {
        assert_no_such_template(&call(&api, &USER, method, &path, &body).await);
    }
    let from_template = || (Method::POST, "/session/_/create-from-template");
    let body = json!({"template_id": MISSING, "name": "fromtpl"});
    expect(&api, &USER, from_template(), &body, StatusCode::NOT_FOUND).await;
    // Without a name the merged parameters do not validate.
    let body = json!({ "template_id": id });
    let answer = expect(&api, &USER, from_template(), &body, StatusCode::BAD_REQUEST).await;
    assert_eq!(answer.json["msg"], "Error while validating template");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_templates_are_created_listed_read_updated_and_deleted() {
    let api = Api::start("templates-cluster").await;
    let task = create_task(&api, &SUPERADMIN, "node", json!({})).await;
    let id = create_cluster(&api, &SUPERADMIN, "pair", &task, json!({})).await;
    let path = format!("/template/cluster/{id}");
    let as_admin = |method: Method, path: &str, body: Value, status: StatusCode| {
        let path = path.to_owned();
        let api = &api;
        async move { expect(api, &SUPERADMIN, (method, &path), &body, status).await }
    };

    let listed = as_admin(Method::GET, "/template/cluster", json!({}), StatusCode::OK).await;
    assert_eq!(
        listed.json.as_array().map(Vec::len),
        Some(1),
        "{}",
        listed.text
    );
    assert_eq!(listed.json[0]["id"], id.as_str());
    assert_eq!(listed.json[0]["is_owner"], true);
    assert_eq!(listed.json[0]["type"], "user");
    // The task template list does not show cluster templates.
    let tasks = as_admin(Method::GET, "/template/session", json!({}), StatusCode::OK).await;
    assert_eq!(
        tasks.json.as_array().map(Vec::len),
        Some(1),
        "{}",
        tasks.text
    );

    let yaml = as_admin(Method::GET, &path, json!({}), StatusCode::OK).await;
    assert!(yaml.text.contains("role: main"), "{}", yaml.text);
    let json_path = format!("{path}?format=json");
    let got = as_admin(Method::GET, &json_path, json!({}), StatusCode::OK).await;
    assert_eq!(got.json["spec"]["nodes"][0]["replicas"], 1);

    let mut two_mains = cluster_template("pair", &task);
    two_mains["spec"]["nodes"][0]["replicas"] = json!(2);
    let body = json!({ "payload": two_mains.to_string() });
    as_admin(Method::PUT, &path, body, StatusCode::BAD_REQUEST).await;

    let body = json!({ "payload": cluster_template("renamed", &task).to_string() });
    let updated = as_admin(Method::PUT, &path, body, StatusCode::OK).await;
    assert_eq!(updated.json, json!({"success": true}));
    let listed = as_admin(Method::GET, "/template/cluster", json!({}), StatusCode::OK).await;
    assert_eq!(listed.json[0]["name"], "renamed");

    let deleted = as_admin(Method::DELETE, &path, json!({}), StatusCode::OK).await;
    assert_eq!(deleted.json, json!({"success": true}));
    as_admin(Method::GET, &path, json!({}), StatusCode::NOT_FOUND).await;
}

/// A private project of the default domain, and another domain with a project.
async fn extra_projects(api: &Api) {
    use sea_orm::ConnectionTrait;
    api.cluster
        .database
        .connection
        .execute_unprepared(&format!(
            "INSERT INTO domains (name, is_active, total_resource_slots, allowed_vfolder_hosts, \
             allowed_docker_registries, dotfiles) VALUES ('elsewhere', true, '{{}}', '{{}}', \
             '{{}}', '\\x90'); \
             INSERT INTO groups (id, name, is_active, domain_name, total_resource_slots, \
             allowed_vfolder_hosts, dotfiles, resource_policy, type) VALUES \
             ('{PRIVATE_PROJECT}', 'private', true, 'default', '{{}}', '{{}}', '\\x90', \
             'default', 'general'), \
             ('{FARAWAY_PROJECT}', 'faraway', true, 'elsewhere', '{{}}', '{{}}', '\\x90', \
             'default', 'general')"
        ))
        .await
        .expect("extra projects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_those_allowed_read_change_and_delete_a_template() {
    let api = Api::start("templates-access").await;
    extra_projects(&api).await;
    let private = create_task(
        &api,
        &SUPERADMIN,
        "private",
        json!({ "group_id": PRIVATE_PROJECT }),
    )
    .await;
    let shared = create_task(&api, &SUPERADMIN, "shared", json!({})).await;
    let faraway = create_task(
        &api,
        &SUPERADMIN,
        "faraway",
        json!({ "group_id": FARAWAY_PROJECT }),
    )
    .await;
    let mine = create_task(&api, &USER, "mine", json!({})).await;
    let task = |id: &str| format!("/template/session/{id}");
    let get = |who: &'static ExampleUser, id: &str| {
        let (api, path) = (&api, task(id));
        async move { expect(api, who, (Method::GET, &path), &json!({}), StatusCode::OK).await }
    };

    // Reading: one's own, the templates of one's projects, a domain admin's of its domain, a
    // superadmin's all; any other answers `{}` as a missing one does.
    for (who, id, visible) in [
        (&USER, &mine, true),
        (&USER, &shared, true),
        (&USER, &private, false),
        (&USER, &faraway, false),
        (&USER2, &mine, true),
        (&DOMAIN_ADMIN, &private, true),
        (&DOMAIN_ADMIN, &faraway, false),
        (&SUPERADMIN, &faraway, true),
    ] {
        let got = get(who, id).await;
        assert_eq!(
            got.json.get("template").is_some(),
            visible,
            "{}: {id}",
            who.email
        );
    }
    let from_template = (Method::POST, "/session/_/create-from-template");
    let body = json!({"template_id": private, "name": "fromtpl"});
    let answer = expect(&api, &USER, from_template, &body, StatusCode::NOT_FOUND).await;
    assert_no_such_template(&answer);

    // Changing: only the owner, a domain admin in its domain and a superadmin; anyone else gets
    // the 404 of a missing template, even where it may read it.
    for (who, id) in [
        (&USER, &private),
        (&USER, &shared),
        (&USER2, &mine),
        (&DOMAIN_ADMIN, &faraway),
    ] {
        let path = task(id);
        let put = call(&api, who, Method::PUT, &path, &task_payload("x", json!({}))).await;
        assert_no_such_template(&put);
        assert_no_such_template(&call(&api, who, Method::DELETE, &path, &json!({})).await);
    }
    assert_eq!(get(&USER, &mine).await.json["name"], "mine");

    // Giving a template away: a user may not, a domain admin only within its domain.
    let path = task(&mine);
    let put = |who: &'static ExampleUser, extra: Value, status: StatusCode| {
        let (api, path) = (&api, path.clone());
        async move {
            let body = task_payload("moved", extra);
            expect(api, who, (Method::PUT, &path), &body, status).await
        }
    };
    for extra in [
        json!({ "user_uuid": USER2_UUID }),
        json!({ "group_id": PRIVATE_PROJECT }),
    ] {
        let refused = put(&USER, extra, StatusCode::FORBIDDEN).await;
        refused.assert_problem(403, "generic-forbidden", None);
        assert!(
            refused.json["msg"]
                .as_str()
                .is_some_and(|msg| msg.starts_with("Users can give their templates only")),
            "{}",
            refused.text
        );
    }
    let extra = json!({ "group_id": FARAWAY_PROJECT });
    put(&DOMAIN_ADMIN, extra, StatusCode::FORBIDDEN).await;
    // The same rule for a new template's owner.
    let create = (Method::POST, "/template/session");
    for (who, extra) in [
        (&USER, json!({ "user_uuid": USER2_UUID })),
        (&USER, json!({ "group_id": PRIVATE_PROJECT })),
        (&DOMAIN_ADMIN, json!({ "group_id": FARAWAY_PROJECT })),
    ] {
        let body = task_payload("given", extra);
        let refused = expect(&api, who, create.clone(), &body, StatusCode::FORBIDDEN).await;
        refused.assert_problem(403, "generic-forbidden", None);
    }
    assert_eq!(get(&USER, &mine).await.json["name"], "mine");
    put(&USER, json!({}), StatusCode::OK).await;
    let extra = json!({ "user_uuid": USER2_UUID });
    put(&DOMAIN_ADMIN, extra, StatusCode::OK).await;
    let moved = get(&USER2, &mine).await;
    assert_eq!(moved.json["user_uuid"], USER2_UUID);
    // Now USER2's, and no longer USER's to change.
    let answer = call(&api, &USER, Method::DELETE, &path, &json!({})).await;
    assert_no_such_template(&answer);
    expect(
        &api,
        &USER2,
        (Method::DELETE, &path),
        &json!({}),
        StatusCode::OK,
    )
    .await;
    let path = task(&faraway);
    expect(
        &api,
        &SUPERADMIN,
        (Method::DELETE, &path),
        &json!({}),
        StatusCode::OK,
    )
    .await;

    // Cluster templates: the same rules, and GET answers 404. The superadmin's, in the private
    // project (which acting for the domain admin lets it name).
    let extra = json!({"group": "private", "owner_access_key": DOMAIN_ADMIN.access_key});
    let cluster = create_cluster(&api, &SUPERADMIN, "pair", &shared, extra).await;
    let path = format!("/template/cluster/{cluster}");
    let body = json!({ "payload": cluster_template("renamed", &shared).to_string() });
    for (method, body) in [
        (Method::GET, json!({})),
        (Method::PUT, body.clone()),
        (Method::DELETE, json!({})),
    ] {
        assert_no_such_template(&call(&api, &USER, method, &path, &body).await);
    }
    expect(
        &api,
        &SUPERADMIN,
        (Method::GET, &path),
        &json!({}),
        StatusCode::OK,
    )
    .await;
    expect(
        &api,
        &DOMAIN_ADMIN,
        (Method::PUT, &path),
        &body,
        StatusCode::OK,
    )
    .await;
    expect(
        &api,
        &DOMAIN_ADMIN,
        (Method::DELETE, &path),
        &json!({}),
        StatusCode::OK,
    )
    .await;
}
