//! The GraphQL transport on the real router against the halfstack: `/admin/gql` answers 200 with
//! errors in the body, `/admin/graphql` the bare data or 400, extra body keys are refused.

use crate::common::Api;
use bai_api::testing::{SUPERADMIN, USER, signed_request};
use http::Method;
use serde_json::json;

#[tokio::test]
async fn the_callers_keypair_through_both_transports() {
    let api = Api::start("gql_transport").await;
    let query = json!({"query": "query { keypair { user_id access_key secret_key is_active is_admin resource_policy rate_limit user_info { full_name } } }", "variables": null});
    let answer = api
        .send(signed_request(
            Method::POST,
            "/admin/gql",
            Some(&query),
            &USER,
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let keypair = &answer.json["data"]["keypair"];
    assert_eq!(keypair["access_key"], USER.access_key);
    assert_eq!(keypair["secret_key"], USER.secret_key);
    assert_eq!(keypair["user_id"], USER.email);
    assert_eq!(keypair["is_admin"], false);
    assert!(answer.json.get("errors").is_none(), "{}", answer.text);

    let answer = api
        .send(signed_request(
            Method::POST,
            "/admin/graphql",
            Some(&query),
            &USER,
        ))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json["keypair"]["access_key"], USER.access_key,
        "bare data"
    );

    // Another user's keypair: forbidden, reported in the body with the reference's message.
    let other = json!({"query": format!("{{ keypair(access_key: \"{}\") {{ access_key secret_key }} }}", SUPERADMIN.access_key)});
    let answer = api
        .send(signed_request(
            Method::POST,
            "/admin/gql",
            Some(&other),
            &USER,
        ))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json["errors"][0]["message"],
        "Forbidden operation. (you can query only your own keypair)"
    );
    assert_eq!(answer.json["errors"][0]["path"], json!(["keypair"]));
    let answer = api
        .send(signed_request(
            Method::POST,
            "/admin/graphql",
            Some(&other),
            &USER,
        ))
        .await;
    answer.assert_problem(400, "graphql-error", None);
    assert!(
        answer.json["data"][0]["message"].is_string(),
        "{}",
        answer.text
    );

    // A superadmin may read anyone's.
    let answer = api
        .send(signed_request(Method::POST, "/admin/gql", Some(&json!({"query": format!("{{ keypair(access_key: \"{}\") {{ access_key }} }}", USER.access_key)})), &SUPERADMIN))
        .await;
    assert_eq!(
        answer.json["data"]["keypair"]["access_key"],
        USER.access_key
    );
}

#[tokio::test]
async fn malformed_requests() {
    let api = Api::start("gql_malformed").await;
    let extra = json!({"query": "{ keypair { access_key } }", "extensions": {}});
    let answer = api
        .send(signed_request(
            Method::POST,
            "/admin/gql",
            Some(&extra),
            &USER,
        ))
        .await;
    answer.assert_problem(400, "invalid-api-params", None);
    assert_eq!(
        answer.json["data"]["extensions"],
        "extensions is not allowed key"
    );

    let answer = api
        .send(signed_request(Method::GET, "/admin/gql", None, &USER))
        .await;
    answer.assert_problem(405, "method-not-allowed", None);

    let syntax = json!({"query": "{ keypair { "});
    let answer = api
        .send(signed_request(
            Method::POST,
            "/admin/gql",
            Some(&syntax),
            &USER,
        ))
        .await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.json["errors"][0]["message"].is_string(),
        "{}",
        answer.text
    );

    let introspection = json!({"query": "{ __schema { types { name } } }"});
    let answer = api
        .send(signed_request(
            Method::POST,
            "/admin/gql",
            Some(&introspection),
            &SUPERADMIN,
        ))
        .await;
    assert!(
        answer.json["errors"].is_array(),
        "introspection is off by default: {}",
        answer.text
    );
}
