//! The GraphQL container registry queries on the real router: `container_registry` and
//! `container_registries` read etcd `config/docker/registry/*` as it is at the request (a
//! registry added after the worker started shows), for superadmins only, with the password
//! masked.

use crate::common::{Api, ask};
use bai_api::testing::{DOMAIN_ADMIN, SUPERADMIN, USER};
use bai_etcd_store::Scope;
use serde_json::json;

const ALL: &str = "{ container_registries { id hostname config { url type project username password ssl_verify } } }";
const ONE: &str = "query($hostname: String!) { container_registry(hostname: $hostname) { id hostname config { url type project username password ssl_verify } } }";

#[tokio::test]
async fn registries_from_etcd_for_superadmins() {
    let api = Api::start("gql_container_registries").await;
    let none = ask(&api, &SUPERADMIN, ALL, json!({})).await;
    assert_eq!(none.json, json!({"data": {"container_registries": []}}));

    let store = api.cluster.namespace.store().await;
    let registries = json!({
        "cr.backend.ai": {"": "https://cr.backend.ai", "type": "harbor2",
                          "project": "stable,community", "ssl_verify": "false"},
        "10.0.0.5:5000": {"": "http://10.0.0.5:5000", "username": "lab", "password": "s3cret"},
    });
    store
        .put_prefix(
            "config/docker/registry",
            registries.as_object().expect("an object"),
            Scope::Global,
        )
        .await
        .expect("etcd put");

    let harbor = json!({
        "id": "Q29udGFpbmVyUmVnaXN0cnk6Y3IuYmFja2VuZC5haQ==",
        "hostname": "cr.backend.ai",
        "config": {"url": "https://cr.backend.ai", "type": "harbor2",
                   "project": ["stable", "community"], "username": null, "password": null,
                   "ssl_verify": false},
    });
    let local = json!({
        "id": "Q29udGFpbmVyUmVnaXN0cnk6MTAuMC4wLjU6NTAwMA==",
        "hostname": "10.0.0.5:5000",
        "config": {"url": "http://10.0.0.5:5000", "type": "docker", "project": [],
                   "username": "lab", "password": "*****", "ssl_verify": true},
    });
    let all = ask(&api, &SUPERADMIN, ALL, json!({})).await;
    let mut listed = all.json["data"]["container_registries"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {}", all.text))
        .clone();
    listed.sort_by_key(|registry| registry["hostname"].as_str().unwrap().to_owned());
    assert_eq!(listed, [local.clone(), harbor.clone()]);

    let one = ask(&api, &SUPERADMIN, ONE, json!({"hostname": "10.0.0.5:5000"})).await;
    assert_eq!(one.json["data"]["container_registry"], local);
    let missing = ask(&api, &SUPERADMIN, ONE, json!({"hostname": "nowhere"})).await;
    assert_eq!(
        missing.json["errors"][0]["message"],
        "No such container registry."
    );
    for who in [&DOMAIN_ADMIN, &USER] {
        for (query, variables) in [
            (ALL, json!({})),
            (ONE, json!({"hostname": "cr.backend.ai"})),
        ] {
            let refused = ask(&api, who, query, variables).await;
            assert_eq!(
                refused.json["errors"][0]["message"],
                "Forbidden operation. (superadmin privilege required)",
                "{}",
                refused.text
            );
        }
    }
}
