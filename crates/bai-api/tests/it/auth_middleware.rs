//! The middleware chain on the real router against the halfstack: versions, signatures, dates,
//! keypairs, rate-limit headers, 404/405, CORS, `Server`. Each test has its own database and etcd
//! namespace.

use crate::common::Api;
use axum::body::Body;
use bai_api::testing::{SUPERADMIN, USER, anonymous_request, signed_request, signed_request_at};
use bai_db_models::fixtures::{self, FixtureFile};
use chrono::{TimeDelta, Utc};
use http::{Method, Request};
use sea_orm::ConnectionTrait;

#[tokio::test]
async fn root_answers_the_version_to_anyone() {
    let api = Api::start("api_root").await;
    let answer = api.send(anonymous_request(Method::GET, "/")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["version"], "v8.20240315");
    assert_eq!(answer.json["manager"], "24.03.11");
    assert!(
        answer
            .text
            .starts_with(r#"{"version": "v8.20240315", "manager": "24.03.11""#)
    );
    assert_eq!(
        answer.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(answer.header("server"), Some("BackendAI"));
    assert_eq!(answer.header("x-ratelimit-limit"), Some("1000"));
    assert_eq!(answer.header("x-ratelimit-remaining"), Some("1000"));
    assert_eq!(answer.header("x-ratelimit-window"), Some("900"));

    // A broken signature is not even looked at on an anonymous route.
    let mut request = signed_request(Method::GET, "/", None, &SUPERADMIN);
    request
        .headers_mut()
        .insert("authorization", "BackendAI garbage".parse().unwrap());
    assert_eq!(api.send(request).await.status, 200);
}

#[tokio::test]
async fn a_signed_request_of_a_main_keypair_is_authorized_and_counted() {
    let api = Api::start("api_auth_ok").await;
    let answer = api
        .send(signed_request(
            Method::GET,
            "/auth/test?echo=hello+world",
            None,
            &USER,
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.text,
        r#"{"authorized": "yes", "echo": "hello world"}"#
    );
    assert_eq!(answer.header("x-ratelimit-limit"), Some("30000"));
    assert_eq!(answer.header("x-ratelimit-window"), Some("900"));
    let first: i64 = answer
        .header("x-ratelimit-remaining")
        .unwrap()
        .parse()
        .unwrap();

    let body = serde_json::json!({"echo": "posted"});
    let answer = api
        .send(signed_request(Method::POST, "/auth", Some(&body), &USER))
        .await;
    assert_eq!(answer.json["echo"], "posted");
    let second: i64 = answer
        .header("x-ratelimit-remaining")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        second < first,
        "the window counts every request: {first} then {second}"
    );
}

#[tokio::test]
async fn authentication_failures_have_the_references_status_and_type() {
    let api = Api::start("api_auth_fail").await;
    let path = "/auth/test?echo=x";

    // No Authorization: anonymous, refused by the route.
    let mut request = signed_request(Method::GET, path, None, &USER);
    request.headers_mut().remove("authorization");
    api.send(request)
        .await
        .assert_problem(401, "auth-failed", Some("Unauthorized access"));

    // No Date: checked before the Authorization header.
    let mut request = anonymous_request(Method::GET, path);
    request
        .headers_mut()
        .insert("authorization", "garbage".parse().unwrap());
    api.send(request).await.assert_problem(
        400,
        "invalid-auth-params",
        Some("Date/time sync error"),
    );

    for (garbled, msg) in [
        ("BackendAI", "Malformed authorization header"),
        ("Bearer abc def", "Invalid authorization type name"),
        (
            "BackendAI signMethod=HMAC-SHA256",
            "Missing or malformed authorization parameters",
        ),
        (
            "BackendAI nonsense",
            "Missing or malformed authorization parameters",
        ),
    ] {
        let mut request = signed_request(Method::GET, path, None, &USER);
        request
            .headers_mut()
            .insert("authorization", garbled.parse().unwrap());
        api.send(request)
            .await
            .assert_problem(400, "invalid-auth-params", Some(msg));
    }

    let mut unknown = USER;
    unknown.access_key = "AKIANOSUCHKEYEXAMPLE";
    api.send(signed_request(Method::GET, path, None, &unknown))
        .await
        .assert_problem(401, "auth-failed", Some("Access key not found"));

    let mut wrong_secret = USER;
    wrong_secret.secret_key = SUPERADMIN.secret_key;
    api.send(signed_request(Method::GET, path, None, &wrong_secret))
        .await
        .assert_problem(401, "auth-failed", Some("Signature mismatch"));

    // The signature covers the raw target: changing the query breaks it.
    let mut request = signed_request(Method::GET, path, None, &USER);
    *request.uri_mut() = "/auth/test?echo=y".parse().unwrap();
    api.send(request)
        .await
        .assert_problem(401, "auth-failed", Some("Signature mismatch"));

    // ...and so does another Host.
    let mut request = signed_request(Method::GET, path, None, &USER);
    request
        .headers_mut()
        .insert("host", "localhost:8081".parse().unwrap());
    api.send(request)
        .await
        .assert_problem(401, "auth-failed", Some("Signature mismatch"));

    for skew in [TimeDelta::minutes(-16), TimeDelta::minutes(16)] {
        let request = signed_request_at(Method::GET, path, None, &USER, Utc::now() + skew);
        api.send(request).await.assert_problem(
            400,
            "invalid-auth-params",
            Some("Date/time sync error"),
        );
    }
    let within = signed_request_at(
        Method::GET,
        path,
        None,
        &USER,
        Utc::now() - TimeDelta::minutes(14),
    );
    assert_eq!(api.send(within).await.status, 200);

    let mut request = signed_request(Method::GET, path, None, &USER);
    request
        .headers_mut()
        .insert("x-backendai-version", "v3.20170615".parse().unwrap());
    api.send(request).await.assert_problem(
        400,
        "generic-bad-request",
        Some("Unsupported API version."),
    );
    // ...even on the anonymous root.
    let mut request = anonymous_request(Method::GET, "/");
    request
        .headers_mut()
        .insert("x-backendai-version", "v99.20990101".parse().unwrap());
    api.send(request).await.assert_problem(
        400,
        "generic-bad-request",
        Some("Unsupported API version."),
    );
}

#[tokio::test]
async fn only_the_users_main_keypair_authenticates() {
    let api = Api::start("api_secondary").await;
    // A second, active keypair of user@lablup.com that is not its main access key.
    let second = FixtureFile::parse(
        "second-keypair.json",
        r#"{"keypairs": [{"user_id": "user@lablup.com", "user": "dfa9da54-4b28-432f-be29-c0d680c7a412",
            "access_key": "AKIANSECONDKEYEXAMPL", "secret_key": "second-secret-key-of-the-user-000000000",
            "is_active": true, "is_admin": false, "resource_policy": "default", "rate_limit": 30000,
            "num_queries": 0}]}"#,
    )
    .unwrap();
    fixtures::populate(&api.cluster.database.connection, &second)
        .await
        .expect("second keypair");
    let mut secondary = USER;
    secondary.access_key = "AKIANSECONDKEYEXAMPL";
    secondary.secret_key = "second-secret-key-of-the-user-000000000";
    api.send(signed_request(
        Method::GET,
        "/auth/test?echo=x",
        None,
        &secondary,
    ))
    .await
    .assert_problem(401, "auth-failed", Some("Unauthorized access"));
}

#[tokio::test]
async fn an_inactive_users_keypair_does_not_authenticate() {
    let api = Api::start("api_inactive_user").await;
    let request = || signed_request(Method::GET, "/auth/test?echo=x", None, &USER);
    assert_eq!(api.send(request()).await.status, 200);
    for status in ["inactive", "deleted", "before-verification"] {
        api.cluster
            .database
            .connection
            .execute_unprepared(&format!(
                "UPDATE users SET status = '{status}' WHERE email = '{}'",
                USER.email
            ))
            .await
            .expect("changing the user's status");
        // As an announced write of ours would (a plain UPDATE is only seen after the signer
        // cache's age bound).
        api.ctx.caches().invalidation().invalidate();
        api.send(request())
            .await
            .assert_problem(401, "auth-failed", Some("User is not active"));
    }
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let api = Api::start("api_404").await;
    let answer = api
        .send(anonymous_request(Method::GET, "/v8/auth/test"))
        .await;
    answer.assert_problem(404, "url-not-found", None);
    assert_eq!(answer.json["data"], "/v8/auth/test");
    assert_eq!(answer.header("server"), Some("BackendAI"));
    assert_eq!(
        answer.header("x-ratelimit-limit"),
        None,
        "errors carry no rate-limit headers"
    );
    api.send(anonymous_request(Method::GET, "/auth/test/"))
        .await
        .assert_problem(404, "url-not-found", None);

    let answer = api
        .send(anonymous_request(Method::DELETE, "/auth/test"))
        .await;
    answer.assert_problem(405, "method-not-allowed", None);
    let allow = answer.header("allow").unwrap_or_default();
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "Allow: {allow}"
    );
}

/// The names in a comma-separated header value, lower-cased.
fn header_names(value: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = value
        .unwrap_or_default()
        .split(',')
        .map(str::to_ascii_lowercase)
        .collect();
    names.sort();
    names
}

fn with_origin(mut request: Request<Body>) -> Request<Body> {
    request
        .headers_mut()
        .insert("origin", "https://webui.example.org".parse().unwrap());
    request
}

fn has_cors_headers(answer: &crate::common::Answer) -> bool {
    answer
        .headers
        .keys()
        .any(|name| name.as_str().starts_with("access-control-"))
}

#[tokio::test]
async fn cors_headers_only_when_the_request_carries_an_origin() {
    let api = Api::start("api_cors").await;

    // What backend.ai-webserver sends on behalf of a browser: no Origin, so no CORS headers (the
    // webserver adds its own, and fails when it finds ours already there).
    let body = serde_json::json!({"echo": "posted"});
    let answer = api
        .send(signed_request(Method::POST, "/auth", Some(&body), &USER))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(!has_cors_headers(&answer), "{:?}", answer.headers);
    let answer = api.send(anonymous_request(Method::GET, "/")).await;
    assert!(!has_cors_headers(&answer), "{:?}", answer.headers);

    // With Origin: the origin echoed, every non-simple response header exposed, no credentials.
    let answer = api
        .send(with_origin(signed_request(
            Method::POST,
            "/auth",
            Some(&body),
            &USER,
        )))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://webui.example.org")
    );
    assert_eq!(
        header_names(answer.header("access-control-expose-headers")),
        [
            "content-length",
            "date",
            "server",
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-window"
        ]
    );
    assert_eq!(answer.header("access-control-allow-credentials"), None);
    assert_eq!(answer.header("vary"), None);

    // Errors of a routed path carry them too; unknown paths and other methods have no CORS
    // resource in aiohttp, so none.
    let answer = api
        .send(with_origin(anonymous_request(Method::GET, "/auth/test")))
        .await;
    answer.assert_problem(400, "invalid-auth-params", Some("Date/time sync error"));
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://webui.example.org")
    );
    let answer = api
        .send(with_origin(anonymous_request(Method::GET, "/no-such-path")))
        .await;
    answer.assert_problem(404, "url-not-found", None);
    assert!(!has_cors_headers(&answer), "{:?}", answer.headers);
    let answer = api
        .send(with_origin(anonymous_request(Method::DELETE, "/auth/test")))
        .await;
    answer.assert_problem(405, "method-not-allowed", None);
    assert!(!has_cors_headers(&answer), "{:?}", answer.headers);
}

#[tokio::test]
async fn cors_preflight_answers_as_aiohttp_cors() {
    let api = Api::start("api_cors_preflight").await;
    let preflight = |origin: bool, method: bool, path: &str| {
        let mut request = anonymous_request(Method::OPTIONS, path);
        let headers = request.headers_mut();
        if origin {
            headers.insert("origin", "https://webui.example.org".parse().unwrap());
        }
        if method {
            headers.insert("access-control-request-method", "POST".parse().unwrap());
        }
        headers.insert(
            "access-control-request-headers",
            "authorization, x-backendai-version,,\tContent-Type ,authorization"
                .parse()
                .unwrap(),
        );
        request
    };

    let answer = api.send(preflight(true, true, "/auth/test")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.text, "");
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://webui.example.org")
    );
    assert_eq!(answer.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(
        header_names(answer.header("access-control-allow-headers")),
        ["authorization", "content-type", "x-backendai-version"]
    );
    assert!(
        answer
            .header("access-control-allow-headers")
            .unwrap()
            .contains("X-BACKENDAI-VERSION")
    );
    assert_eq!(answer.header("access-control-expose-headers"), None);
    assert_eq!(answer.header("access-control-max-age"), None);
    assert_eq!(answer.header("access-control-allow-credentials"), None);
    assert_eq!(answer.header("x-ratelimit-limit"), Some("1000"));
    assert_eq!(answer.header("server"), Some("BackendAI"));

    // aiohttp-cors refuses with 403, which the reference's exception middleware answers as 400.
    api.send(preflight(false, true, "/auth/test"))
        .await
        .assert_problem(400, "generic-bad-request", None);
    api.send(preflight(true, false, "/auth/test"))
        .await
        .assert_problem(400, "generic-bad-request", None);
    api.send(preflight(true, true, "/no-such-path"))
        .await
        .assert_problem(404, "url-not-found", None);
}

#[tokio::test]
async fn a_keypair_over_its_rate_limit_gets_429_and_is_still_counted() {
    let api = Api::start("api_ratelimit").await;
    // Rate-limit windows live in Redis under the bare access key: this test counts on a user and
    // keypair of its own.
    let uuid = uuid::Uuid::new_v4();
    let access_key = format!("AKIARL{}", &uuid.simple().to_string()[..14]).to_uppercase();
    // Tables load in file order (users before keypairs), so the JSON is spelled out in that order.
    let own = FixtureFile::parse(
        "rate-limited-user.json",
        &format!(
            r#"{{"users": [{{"uuid": "{uuid}", "username": "rl-{uuid}", "email": "rl-{uuid}@example.org",
                "password": "x", "need_password_change": false, "full_name": "", "description": "",
                "status": "active", "status_info": "admin-requested", "domain_name": "default",
                "role": "user", "resource_policy": "default"}}],
              "keypairs": [{{"user_id": "rl-{uuid}@example.org", "user": "{uuid}", "access_key": "{access_key}",
                "secret_key": "rate-limited-secret-key", "is_active": true, "is_admin": false,
                "resource_policy": "default", "rate_limit": 2, "num_queries": 0}}]}}"#
        ),
    )
    .unwrap();
    let main_key = FixtureFile::parse(
        "rate-limited-main-key.json",
        &serde_json::json!({"__mode": "update", "users": [{"uuid": uuid, "main_access_key": access_key}]})
            .to_string(),
    )
    .unwrap();
    for file in [own, main_key] {
        fixtures::populate(&api.cluster.database.connection, &file)
            .await
            .expect("the rate-limited user");
    }
    let mut limited = USER;
    let access_key: &'static str = Box::leak(access_key.into_boxed_str());
    limited.access_key = access_key;
    limited.secret_key = "rate-limited-secret-key";

    let request = || signed_request(Method::GET, "/auth/test?echo=x", None, &limited);
    let first = api.send(request()).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("1"));
    let second = api.send(request()).await;
    assert_eq!(second.header("x-ratelimit-remaining"), Some("0"));
    let third = api.send(request()).await;
    third.assert_problem(429, "rate-limit-exceeded", None);
    assert_eq!(third.header("x-ratelimit-limit"), None);
    // Refused requests count too: the window stays full.
    api.send(request())
        .await
        .assert_problem(429, "rate-limit-exceeded", None);
    // Another keypair has its own window.
    assert_eq!(
        api.send(signed_request(
            Method::GET,
            "/auth/test?echo=x",
            None,
            &SUPERADMIN
        ))
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn gated_routes_answer_503_while_the_manager_is_not_running() {
    let api = Api::start("api_gate").await;
    let sgroups = || signed_request(Method::GET, "/scaling-groups?group=default", None, &USER);
    assert_eq!(api.send(sgroups()).await.status, 200);
    api.ctx
        .set_manager_status(bai_api::ManagerStatus::Frozen)
        .await
        .unwrap();
    assert_eq!(
        api.send(sgroups()).await.status,
        200,
        "listing is allowed while frozen"
    );
    api.ctx
        .set_manager_status(bai_api::ManagerStatus::Terminated)
        .await
        .unwrap();
    api.send(sgroups())
        .await
        .assert_problem(503, "service-unavailable", None);
    // Ungated routes keep working.
    assert_eq!(
        api.send(signed_request(
            Method::GET,
            "/auth/test?echo=x",
            None,
            &USER
        ))
        .await
        .status,
        200
    );
}
