//! `GET /scaling-groups` on the real router against the halfstack: which resource groups each
//! example user sees for a project given by id or name, and the refusals. Each test has its own
//! database and etcd namespace.

use crate::common::{Answer, Api};
use bai_api::ManagerStatus;
use bai_api::testing::{DOMAIN_ADMIN, MONITOR, SUPERADMIN, USER, signed_request};
use bai_db_models::fixtures::{self, FixtureFile};
use http::Method;
use serde_json::json;

/// The example project every example user belongs to, and the second one.
const DEFAULT_PROJECT: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const MODEL_STORE_PROJECT: &str = "8e32dd28-d319-4e3b-8851-ea37837699a5";

/// Resource groups beside the example `default` (public, associated with the domain): a private
/// one and an inactive one of the domain, one of the `model-store` project, and one of
/// user@lablup.com's keypair.
const MORE_GROUPS: &str = r#"{
    "scaling_groups": [
        {"name": "private", "is_active": true, "is_public": false, "driver": "static",
         "driver_opts": {}, "scheduler": "fifo"},
        {"name": "retired", "is_active": false, "driver": "static", "driver_opts": {},
         "scheduler": "fifo"},
        {"name": "models", "is_active": true, "driver": "static", "driver_opts": {},
         "scheduler": "fifo"},
        {"name": "personal", "is_active": true, "driver": "static", "driver_opts": {},
         "scheduler": "fifo"}
    ],
    "sgroups_for_domains": [
        {"scaling_group": "private", "domain": "default"},
        {"scaling_group": "retired", "domain": "default"}
    ],
    "sgroups_for_groups": [
        {"scaling_group": "models", "group": "8e32dd28-d319-4e3b-8851-ea37837699a5"}
    ],
    "sgroups_for_keypairs": [
        {"scaling_group": "personal", "access_key": "AKIANABBDUSEREXAMPLE"}
    ]
}"#;

async fn api_with_more_groups(label: &str) -> Api {
    let api = Api::start(label).await;
    let file = FixtureFile::parse("more-groups.json", MORE_GROUPS).expect("fixture parses");
    fixtures::populate(&api.cluster.database.connection, &file)
        .await
        .expect("fixture loads");
    api
}

#[tokio::test]
async fn the_example_user_sees_the_default_group() {
    let api = Api::start("sgroups_default").await;
    let answer = api
        .send(signed_request(
            Method::GET,
            "/scaling-groups?group=default",
            None,
            &USER,
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.text, r#"{"scaling_groups": [{"name": "default"}]}"#);
    assert_eq!(
        answer.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(answer.header("x-ratelimit-limit"), Some("30000"));
}

#[tokio::test]
async fn each_caller_sees_its_domain_project_and_keypair_groups() {
    let api = api_with_more_groups("sgroups_visibility").await;
    let names = |answer: &Answer| -> Vec<String> {
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.json["scaling_groups"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|sgroup| sgroup["name"].as_str().expect("a name").to_owned())
            .collect()
    };

    // Non-admin keypairs see only public groups; an admin keypair (the keypair's flag, not the
    // user's role) sees the private one too. Inactive groups are never listed.
    for (user, expected) in [
        (USER, vec!["default", "personal"]),
        (MONITOR, vec!["default"]),
        (DOMAIN_ADMIN, vec!["default", "private"]),
        (SUPERADMIN, vec!["default", "private"]),
    ] {
        let answer = api
            .send(signed_request(
                Method::GET,
                "/scaling-groups?group=default",
                None,
                &user,
            ))
            .await;
        assert_eq!(names(&answer), expected, "{}", user.email);
    }

    // The project by name, by id, and through both aliases.
    for query in [
        "group=model-store".to_owned(),
        format!("group={MODEL_STORE_PROJECT}"),
        format!("group_id={MODEL_STORE_PROJECT}"),
        "group_name=model-store".to_owned(),
        // With several of the three keys, `group` wins, then `group_id`.
        format!("group_name=default&group={MODEL_STORE_PROJECT}"),
        format!("group_name=default&group_id={MODEL_STORE_PROJECT}"),
    ] {
        let path = format!("/scaling-groups?{query}");
        let answer = api
            .send(signed_request(Method::GET, &path, None, &USER))
            .await;
        assert_eq!(names(&answer), ["default", "models", "personal"], "{query}");
    }
    let path = format!("/scaling-groups?group={DEFAULT_PROJECT}");
    let answer = api
        .send(signed_request(Method::GET, &path, None, &SUPERADMIN))
        .await;
    assert_eq!(names(&answer), ["default", "private"]);

    // A project that does not exist is no error: it just adds no groups (as in the reference).
    for query in [
        "group=nowhere",
        "group=00000000-0000-4000-8000-000000000000",
    ] {
        let path = format!("/scaling-groups?{query}");
        let answer = api
            .send(signed_request(Method::GET, &path, None, &USER))
            .await;
        assert_eq!(names(&answer), ["default", "personal"], "{query}");
    }

    // GET parameters come from the query string only, even when a body is sent.
    let body = json!({"group": "model-store"});
    let answer = api
        .send(signed_request(
            Method::GET,
            "/scaling-groups?group=default",
            Some(&body),
            &USER,
        ))
        .await;
    assert_eq!(names(&answer), ["default", "personal"]);
}

#[tokio::test]
async fn listing_works_while_frozen_but_not_when_the_manager_is_down() {
    let api = Api::start("sgroups_gate").await;
    let request = || signed_request(Method::GET, "/scaling-groups?group=default", None, &USER);
    api.ctx
        .set_manager_status(ManagerStatus::Frozen)
        .await
        .expect("freeze");
    let answer = api.send(request()).await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    api.ctx
        .set_manager_status(ManagerStatus::Terminated)
        .await
        .expect("terminate");
    api.send(request())
        .await
        .assert_problem(503, "service-unavailable", None);

    api.ctx
        .set_manager_status(ManagerStatus::Running)
        .await
        .expect("run");
    assert_eq!(api.send(request()).await.status, 200);
}

#[tokio::test]
async fn listing_refusals_have_the_references_status_type_and_message() {
    let api = Api::start("sgroups_refused").await;
    let answer = api
        .send(signed_request(Method::GET, "/scaling-groups", None, &USER))
        .await;
    answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
    assert_eq!(answer.json["data"], json!({"group": "is required"}));

    let answer = api
        .send(signed_request(
            Method::GET,
            "/scaling-groups?group=default&bogus=1",
            None,
            &USER,
        ))
        .await;
    answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
    assert_eq!(
        answer.json["data"],
        json!({"bogus": "bogus is not allowed key"})
    );

    let answer = api
        .send(signed_request(
            Method::GET,
            "/scaling-groups?group_name=",
            None,
            &USER,
        ))
        .await;
    answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
    assert_eq!(
        answer.json["data"],
        json!({"group_name": "blank value is not allowed"})
    );

    let mut unsigned = signed_request(Method::GET, "/scaling-groups?group=default", None, &USER);
    unsigned.headers_mut().remove("authorization");
    api.send(unsigned)
        .await
        .assert_problem(401, "auth-failed", Some("Unauthorized access"));

    api.send(signed_request(
        Method::POST,
        "/scaling-groups?group=default",
        None,
        &USER,
    ))
    .await
    .assert_problem(405, "method-not-allowed", None);
}
