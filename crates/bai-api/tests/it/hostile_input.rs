//! What `cargo xtask fuzz` found, kept as regressions: strings holding U+0000 (which PostgreSQL
//! cannot store or compare) and path parameters that are not UTF-8 are refused as 400
//! `invalid-api-params` problems, never a 500.

use crate::common::Api;
use bai_api::testing::{SUPERADMIN, signed_request};
use http::Method;
use serde_json::json;

#[tokio::test]
async fn nul_characters_and_bad_path_bytes_are_invalid_parameters() {
    let api = Api::start("hostile_input").await;
    let get = |path: &str| signed_request(Method::GET, path, None, &SUPERADMIN);

    api.send(get("/config/resource-slots/details?sgroup=a%00b"))
        .await
        .assert_problem(400, "invalid-api-params", Some("Input validation error"));

    let answer = api
        .send(signed_request(
            Method::POST,
            "/manager/scheduler/operation",
            Some(&json!({"op": "include-agents", "args": ["i-x", "a\u{0}b"]})),
            &SUPERADMIN,
        ))
        .await;
    answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
    assert_eq!(
        answer.json["data"],
        json!({"args[1]": "NUL characters are not allowed"})
    );

    api.send(get("/session/a%00b")).await.assert_problem(
        400,
        "invalid-api-params",
        Some("Malformed path parameter"),
    );
    api.send(get("/session/%FF%FE")).await.assert_problem(
        400,
        "invalid-api-params",
        Some("Malformed path parameter"),
    );
    // A name that decodes well is looked up as usual.
    api.send(get("/session/no-such-session"))
        .await
        .assert_problem(404, "object-not-found", None);
}
