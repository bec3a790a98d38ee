//! `/auth/authorize`, `/auth/role` and `/auth/update-password` on the real router against the
//! halfstack, with the install guide's example users. Each test has its own database and etcd
//! namespace.

use crate::common::{Answer, Api};
use axum::body::Body;
use bai_api::testing::{
    DOMAIN_ADMIN, ExampleUser, MONITOR, SUPERADMIN, TEST_API_VERSION, TEST_HOST, TestCluster, USER,
    anonymous_request, signed_request,
};
use bai_db_models::fixtures::{self, FixtureFile};
use bai_etcd_store::Scope;
use http::{Method, Request};
use serde_json::{Value, json};

/// The uuid of user@lablup.com in the example fixtures.
const USER_UUID: &str = "dfa9da54-4b28-432f-be29-c0d680c7a412";
/// The example project every example user belongs to.
const DEFAULT_PROJECT: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";

/// An unsigned request with a JSON body, as the web server's sign-in sends it.
fn anonymous_json(method: Method, path: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, TEST_HOST)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("x-backendai-version", TEST_API_VERSION)
        .body(Body::from(body.to_string()))
        .expect("a well-formed test request")
}

async fn sign_in(api: &Api, email: &str, password: &str) -> Answer {
    let body =
        json!({"type": "keypair", "domain": "default", "username": email, "password": password});
    api.send(anonymous_json(Method::POST, "/auth/authorize", &body))
        .await
}

/// Loads a fixture file (usually `"__mode": "update"`) into the test database.
async fn load(api: &Api, text: &str) {
    let file = FixtureFile::parse("test.json", text).expect("fixture parses");
    fixtures::populate(&api.cluster.database.connection, &file)
        .await
        .expect("fixture loads");
}

/// An API whose etcd holds `entries` before the worker reads the shared configuration.
async fn api_with_etcd(label: &str, entries: &[(&str, &str)]) -> Api {
    let cluster = TestCluster::start(label).await;
    let store = cluster.namespace.store().await;
    for (key, value) in entries {
        store
            .put(key, value, Scope::Global)
            .await
            .unwrap_or_else(|error| panic!("etcd put {key}: {error}"));
    }
    let ctx = cluster.context().await;
    bai_stores::register_node(ctx.etcd(), "i-test")
        .await
        .expect("registering the test node");
    let router = bai_api::router(ctx.clone());
    Api {
        cluster,
        ctx,
        router,
    }
}

/// An [`ExampleUser`] for a keypair handed out at run time.
fn user_with_keypair(base: ExampleUser, access_key: &str, secret_key: &str) -> ExampleUser {
    ExampleUser {
        access_key: Box::leak(access_key.to_owned().into_boxed_str()),
        secret_key: Box::leak(secret_key.to_owned().into_boxed_str()),
        ..base
    }
}

#[tokio::test]
async fn every_example_user_signs_in_and_signs_with_the_keypair_it_gets() {
    let api = Api::start("auth_authorize_ok").await;
    let answer = sign_in(&api, SUPERADMIN.email, SUPERADMIN.password).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.text,
        r#"{"data": {"access_key": "AKIAIOSFODNN7EXAMPLE", "secret_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "role": "superadmin", "status": "active"}}"#
    );
    assert_eq!(
        answer.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        answer.header("x-ratelimit-limit"),
        Some("1000"),
        "anonymous"
    );

    for (user, role) in [
        (DOMAIN_ADMIN, "admin"),
        (USER, "user"),
        (MONITOR, "monitor"),
    ] {
        let answer = sign_in(&api, user.email, user.password).await;
        assert_eq!(answer.status, 200, "{}: {}", user.email, answer.text);
        let data = &answer.json["data"];
        assert_eq!(data["access_key"], user.access_key);
        assert_eq!(data["secret_key"], user.secret_key);
        assert_eq!(data["role"], role);
        assert_eq!(data["status"], "active");

        // The keypair it hands out signs requests.
        let signer = user_with_keypair(
            user,
            data["access_key"].as_str().unwrap(),
            data["secret_key"].as_str().unwrap(),
        );
        let echo = api
            .send(signed_request(
                Method::GET,
                "/auth/test?echo=signed-in",
                None,
                &signer,
            ))
            .await;
        assert_eq!(echo.status, 200, "{}", echo.text);
        assert_eq!(echo.json["echo"], "signed-in");
    }

    // Extra keys are allowed (the web server sends `otp`), and an anonymous route does not even
    // look at a broken Authorization header.
    let body = json!({"type": "keypair", "domain": "default", "username": USER.email,
                      "password": USER.password, "otp": "123456", "stoken": null});
    let mut request = anonymous_json(Method::POST, "/auth/authorize", &body);
    request
        .headers_mut()
        .insert("authorization", "BackendAI garbage".parse().unwrap());
    let answer = api.send(request).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["data"]["access_key"], USER.access_key);

    // An empty POST body falls back to the query string.
    let request = anonymous_request(
        Method::POST,
        "/auth/authorize?type=keypair&domain=default&username=user%40lablup.com&password=C8qnIo29",
    );
    let answer = api.send(request).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["data"]["access_key"], USER.access_key);
}

#[tokio::test]
async fn sign_in_refusals_have_the_references_status_type_and_message() {
    let api = Api::start("auth_authorize_refused").await;
    let body = json!({"type": "jwt", "domain": "default", "username": USER.email, "password": USER.password});
    api.send(anonymous_json(Method::POST, "/auth/authorize", &body))
        .await
        .assert_problem(
            400,
            "invalid-api-params",
            Some("Unsupported authorization type"),
        );

    for (domain, email, password) in [
        ("default", USER.email, "wrong-password"),
        ("default", USER.email, SUPERADMIN.password),
        ("default", "nobody@lablup.com", USER.password),
        ("nowhere", USER.email, USER.password),
        ("default", "USER@lablup.com", USER.password),
    ] {
        let body =
            json!({"type": "keypair", "domain": domain, "username": email, "password": password});
        let answer = api
            .send(anonymous_json(Method::POST, "/auth/authorize", &body))
            .await;
        answer.assert_problem(401, "auth-failed", Some("User credential mismatch."));
        assert_eq!(answer.json["title"], "Credential/signature mismatch.");
    }

    let missing = json!({"type": "keypair", "domain": "default", "username": USER.email});
    let answer = api
        .send(anonymous_json(Method::POST, "/auth/authorize", &missing))
        .await;
    answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
    assert_eq!(answer.json["data"], json!({"password": "is required"}));

    let blank =
        json!({"type": "keypair", "domain": "default", "username": USER.email, "password": ""});
    let answer = api
        .send(anonymous_json(Method::POST, "/auth/authorize", &blank))
        .await;
    answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
    assert_eq!(
        answer.json["data"],
        json!({"password": "blank value is not allowed"})
    );

    let unknown_type = json!({"type": "cookie", "domain": "default", "username": USER.email, "password": USER.password});
    let answer = api
        .send(anonymous_json(
            Method::POST,
            "/auth/authorize",
            &unknown_type,
        ))
        .await;
    answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
    assert!(answer.json["data"]["type"].is_string(), "{}", answer.text);

    let mut malformed = anonymous_json(Method::POST, "/auth/authorize", &json!({}));
    *malformed.body_mut() = Body::from("{not json");
    api.send(malformed)
        .await
        .assert_problem(400, "invalid-api-params", Some("Malformed body"));
}

#[tokio::test]
async fn sign_in_looks_at_the_account_status_and_the_keypairs() {
    let api = Api::start("auth_authorize_status").await;
    let set_status = |status: &str| {
        format!(
            r#"{{"__mode": "update", "users": [{{"uuid": "{USER_UUID}", "status": "{status}"}}]}}"#
        )
    };

    load(&api, &set_status("before-verification")).await;
    sign_in(&api, USER.email, USER.password)
        .await
        .assert_problem(
            401,
            "auth-failed",
            Some("This account needs email verification."),
        );
    // ...but only with the right password.
    sign_in(&api, USER.email, "wrong").await.assert_problem(
        401,
        "auth-failed",
        Some("User credential mismatch."),
    );

    for status in ["inactive", "deleted"] {
        load(&api, &set_status(status)).await;
        sign_in(&api, USER.email, USER.password)
            .await
            .assert_problem(401, "auth-failed", Some("User credential mismatch."));
    }

    load(&api, &set_status("active")).await;
    assert_eq!(sign_in(&api, USER.email, USER.password).await.status, 200);

    load(
        &api,
        r#"{"__mode": "update", "keypairs": [{"access_key": "AKIANABBDUSEREXAMPLE", "is_active": false}]}"#,
    )
    .await;
    sign_in(&api, USER.email, USER.password)
        .await
        .assert_problem(401, "auth-failed", Some("No API keypairs found."));

    // Another active keypair, an admin one: sign-in hands out admin keypairs first.
    load(
        &api,
        &format!(
            r#"{{"keypairs": [{{"user_id": "user@lablup.com", "user": "{USER_UUID}",
                "access_key": "AKIANUSERADMINEXAMPL", "secret_key": "the-second-secret-key-of-the-user-000000",
                "is_active": true, "is_admin": true, "resource_policy": "default", "rate_limit": 30000,
                "num_queries": 0}}]}}"#
        ),
    )
    .await;
    load(
        &api,
        r#"{"__mode": "update", "keypairs": [{"access_key": "AKIANABBDUSEREXAMPLE", "is_active": true}]}"#,
    )
    .await;
    let answer = sign_in(&api, USER.email, USER.password).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["data"]["access_key"], "AKIANUSERADMINEXAMPL");
    assert_eq!(
        answer.json["data"]["secret_key"],
        "the-second-secret-key-of-the-user-000000"
    );
}

#[tokio::test]
async fn a_password_older_than_max_password_age_has_expired() {
    let api = api_with_etcd(
        "auth_password_age",
        &[("config/auth/max_password_age", "1d")],
    )
    .await;
    assert_eq!(
        api.ctx.shared_config().auth.max_password_age,
        Some(std::time::Duration::from_secs(86_400))
    );
    // Fresh passwords (the fixtures were just loaded) sign in.
    assert_eq!(
        sign_in(&api, SUPERADMIN.email, SUPERADMIN.password)
            .await
            .status,
        200
    );

    load(
        &api,
        &format!(
            r#"{{"__mode": "update", "users": [{{"uuid": "{USER_UUID}", "password_changed_at": "2020-01-01T00:00:00+00:00"}}]}}"#
        ),
    )
    .await;
    let answer = sign_in(&api, USER.email, USER.password).await;
    answer.assert_problem(
        401,
        "password-expired",
        Some("Password expired on 2020-01-02 00:00:00+00:00."),
    );
    assert_eq!(answer.json["title"], "Password has expired.");
    // A wrong password is still just a mismatch.
    sign_in(&api, USER.email, "wrong").await.assert_problem(
        401,
        "auth-failed",
        Some("User credential mismatch."),
    );

    // Signed requests are not affected, so the user can still change the password...
    let change = json!({"old_password": USER.password, "new_password": "Fr3sh-enough",
                        "new_password2": "Fr3sh-enough"});
    let answer = api
        .send(signed_request(
            Method::POST,
            "/auth/update-password",
            Some(&change),
            &USER,
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    // ...which starts a new age.
    assert_eq!(sign_in(&api, USER.email, "Fr3sh-enough").await.status, 200);
}

#[tokio::test]
async fn roles_follow_the_user_role_and_the_keypair_flag() {
    let api = Api::start("auth_role").await;
    let answer = api
        .send(signed_request(Method::GET, "/auth/role", None, &SUPERADMIN))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.text,
        r#"{"global_role": "superadmin", "domain_role": "admin", "group_role": null}"#
    );
    assert_eq!(answer.header("x-ratelimit-limit"), Some("30000"));

    for (user, global, domain) in [
        (DOMAIN_ADMIN, "user", "admin"),
        (USER, "user", "user"),
        (MONITOR, "user", "user"),
    ] {
        let answer = api
            .send(signed_request(Method::GET, "/auth/role", None, &user))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(
            answer.json,
            json!({"global_role": global, "domain_role": domain, "group_role": null}),
            "{}",
            user.email
        );

        let path = format!("/auth/role?group={DEFAULT_PROJECT}");
        let answer = api
            .send(signed_request(Method::GET, &path, None, &user))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(
            answer.json,
            json!({"global_role": global, "domain_role": domain, "group_role": "user"})
        );
    }
}

#[tokio::test]
async fn role_refusals_have_the_references_status_type_and_message() {
    let api = Api::start("auth_role_refused").await;
    let answer = api
        .send(signed_request(
            Method::GET,
            "/auth/role?group=00000000-0000-4000-8000-000000000000",
            None,
            &USER,
        ))
        .await;
    answer.assert_problem(
        404,
        "object-not-found",
        Some("No such project or you are not the member of it."),
    );
    assert_eq!(answer.json["title"], "No such project (user group).");

    // A project that exists but has no members: even the superadmin is not in it.
    load(
        &api,
        r#"{"groups": [{"id": "6b3f4b37-8e1a-4c4e-9c57-0b2a9f6f9d11", "name": "elsewhere",
            "domain_name": "default", "resource_policy": "default", "total_resource_slots": {},
            "allowed_vfolder_hosts": {}, "type": "general", "is_active": true}]}"#,
    )
    .await;
    api.send(signed_request(
        Method::GET,
        "/auth/role?group=6b3f4b37-8e1a-4c4e-9c57-0b2a9f6f9d11",
        None,
        &SUPERADMIN,
    ))
    .await
    .assert_problem(
        404,
        "object-not-found",
        Some("No such project or you are not the member of it."),
    );

    let answer = api
        .send(signed_request(
            Method::GET,
            "/auth/role?group=default",
            None,
            &USER,
        ))
        .await;
    answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
    assert!(answer.json["data"]["group"].is_string(), "{}", answer.text);

    let answer = api
        .send(signed_request(
            Method::GET,
            "/auth/role?bogus=1",
            None,
            &USER,
        ))
        .await;
    answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
    assert_eq!(
        answer.json["data"],
        json!({"bogus": "bogus is not allowed key"})
    );

    let mut unsigned = signed_request(Method::GET, "/auth/role", None, &USER);
    unsigned.headers_mut().remove("authorization");
    api.send(unsigned)
        .await
        .assert_problem(401, "auth-failed", Some("Unauthorized access"));
}

#[tokio::test]
async fn a_changed_password_signs_in_and_the_old_one_does_not() {
    let api = Api::start("auth_update_password").await;
    let change = json!({"old_password": USER.password, "new_password": "n3w-Passw0rd",
                        "new_password2": "n3w-Passw0rd"});
    let answer = api
        .send(signed_request(
            Method::POST,
            "/auth/update-password",
            Some(&change),
            &USER,
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.text, "{}");

    let answer = sign_in(&api, USER.email, "n3w-Passw0rd").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["data"]["access_key"], USER.access_key);
    sign_in(&api, USER.email, USER.password)
        .await
        .assert_problem(401, "auth-failed", Some("User credential mismatch."));
    // Nobody else's password changed.
    assert_eq!(
        sign_in(&api, MONITOR.email, MONITOR.password).await.status,
        200
    );

    // The old password is now the new one's to give.
    let back = json!({"old_password": USER.password, "new_password": "x", "new_password2": "x"});
    api.send(signed_request(
        Method::POST,
        "/auth/update-password",
        Some(&back),
        &USER,
    ))
    .await
    .assert_problem(401, "auth-failed", Some("Old password mismatch"));
}

#[tokio::test]
async fn password_change_refusals_have_the_references_answers() {
    let api = Api::start("auth_update_password_refused").await;
    let post =
        |body: Value| signed_request(Method::POST, "/auth/update-password", Some(&body), &USER);

    let answer = api
        .send(post(
            json!({"old_password": "wrong", "new_password": "a-new-one",
                          "new_password2": "a-new-one"}),
        ))
        .await;
    answer.assert_problem(401, "auth-failed", Some("Old password mismatch"));

    // The reference answers a mismatch of the two new passwords with plain JSON, not a problem.
    let answer = api
        .send(post(
            json!({"old_password": USER.password, "new_password": "a-new-one",
                          "new_password2": "another-one"}),
        ))
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(answer.text, r#"{"error_msg": "new password mismatch"}"#);
    assert_eq!(
        sign_in(&api, USER.email, USER.password).await.status,
        200,
        "the password did not change"
    );

    let answer = api
        .send(post(
            json!({"old_password": USER.password, "new_password": "a-new-one"}),
        ))
        .await;
    answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
    assert_eq!(answer.json["data"], json!({"new_password2": "is required"}));

    let answer = api
        .send(post(
            json!({"old_password": USER.password, "new_password": "a-new-one",
                          "new_password2": "a-new-one", "email": USER.email}),
        ))
        .await;
    answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
    assert_eq!(
        answer.json["data"],
        json!({"email": "email is not allowed key"})
    );

    let mut unsigned = post(json!({"old_password": USER.password, "new_password": "a",
                                   "new_password2": "a"}));
    unsigned.headers_mut().remove("authorization");
    api.send(unsigned)
        .await
        .assert_problem(401, "auth-failed", Some("Unauthorized access"));
    assert_eq!(sign_in(&api, USER.email, USER.password).await.status, 200);
}
