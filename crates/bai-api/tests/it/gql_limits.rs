//! The GraphQL depth and complexity limits (`bai_api::gql::MAX_DEPTH`, `MAX_COMPLEXITY`): the
//! standard introspection query and the official client's largest list query pass, a document
//! nested or repeated beyond them is refused in `errors` (200), never a 5xx.

use crate::common::Api;
use bai_api::testing::{SUPERADMIN, TestCluster, signed_request};
use bai_etcd_store::Scope;
use http::Method;
use serde_json::json;

/// graphql-js' `getIntrospectionQuery()` (descriptions on, the `TypeRef` fragment 8 `ofType` deep),
/// the query GraphiQL and most tools send.
const INTROSPECTION_QUERY: &str = r"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description
    args { ...InputValue }
    type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}
";

/// The 24.03 client's `KeyPair.list` query with every field it may ask for.
const KEYPAIR_LIST: &str = "query($limit: Int!, $offset: Int!) { keypair_list(limit: $limit, offset: $offset) { items { user_id projects user_info { full_name } access_key secret_key is_active is_admin created_at last_used resource_policy rate_limit concurrency_used } total_count } }";

#[tokio::test]
async fn limits_let_real_queries_through_and_refuse_hostile_ones() {
    let cluster = TestCluster::start("gql_limits").await;
    cluster
        .namespace
        .store()
        .await
        .put(
            "config/api/allow-graphql-schema-introspection",
            "true",
            Scope::Global,
        )
        .await
        .expect("etcd put");
    let api = Api::on(cluster).await;
    let gql = |body: serde_json::Value| {
        signed_request(Method::POST, "/admin/gql", Some(&body), &SUPERADMIN)
    };

    let answer = api.send(gql(json!({"query": INTROSPECTION_QUERY}))).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.json.get("errors").is_none(), "{}", answer.text);
    assert!(answer.json["data"]["__schema"]["types"].is_array());

    let answer = api
        .send(gql(
            json!({"query": KEYPAIR_LIST, "variables": {"limit": 50, "offset": 0}}),
        ))
        .await;
    assert!(answer.json.get("errors").is_none(), "{}", answer.text);

    // Deeper than the limit: user_info nested through fragments of types that lead back.
    let mut deep = String::from("kind name");
    for _ in 0..bai_api::gql::MAX_DEPTH {
        deep = format!("kind ofType {{ {deep} }}");
    }
    let answer = api
        .send(gql(
            json!({"query": format!("{{ __type(name: \"String\") {{ {deep} }} }}")}),
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer.json["errors"][0]["message"]
            .as_str()
            .is_some_and(|message| message.contains("nested too deep")),
        "{}",
        answer.text
    );

    // Many aliases of one field: more fields than the complexity limit.
    let aliases: String = (0..=bai_api::gql::MAX_COMPLEXITY)
        .map(|index| format!("a{index}: keypair {{ access_key }} "))
        .collect();
    let answer = api
        .send(gql(json!({"query": format!("{{ {aliases} }}")})))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer.json["errors"][0]["message"]
            .as_str()
            .is_some_and(|message| message.contains("too complex")),
        "{}",
        answer.text
    );
}
