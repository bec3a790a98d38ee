//! The GraphQL container registry queries on the real router: `container_registry` and
//! `container_registries` read etcd `config/docker/registry/*` as it is at the request (a
//! registry added after the worker started shows), for superadmins only, with the password
//! masked. The mutations, with the WebUI's documents, write the keys as the reference does.

use std::collections::BTreeMap;

use crate::common::{Api, ask};
use bai_api::testing::{DOMAIN_ADMIN, SUPERADMIN, USER};
use bai_etcd_store::{Scope, quote};
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

// The WebUI's documents (ContainerRegistryEditorModal, ContainerRegistryList), as it sends them.
const CREATE: &str = "mutation ContainerRegistryEditorModalCreateMutation(\n  $hostname: String!\n  $props: CreateContainerRegistryInput!\n) {\n  create_container_registry(hostname: $hostname, props: $props) {\n    container_registry {\n      id\n      hostname\n      config {\n        url\n        type\n        project\n        username\n        password\n        ssl_verify\n      }\n    }\n  }\n}\n";
const MODIFY: &str = "mutation ContainerRegistryEditorModalModifyMutation(\n  $hostname: String!\n  $props: ModifyContainerRegistryInput!\n) {\n  modify_container_registry(hostname: $hostname, props: $props) {\n    container_registry {\n      id\n      hostname\n      config {\n        url\n        type\n        project\n        username\n        password\n        ssl_verify\n      }\n    }\n  }\n}\n";
const DELETE: &str = "mutation ContainerRegistryListDeleteMutation(\n  $hostname: String!\n) {\n  delete_container_registry(hostname: $hostname) {\n    container_registry {\n      id\n    }\n  }\n}\n";

/// Every key below `config/docker/registry`, relative to it (pieces quoted as stored).
async fn stored(api: &Api) -> BTreeMap<String, String> {
    let store = api.cluster.namespace.store().await;
    let tree = store
        .get_prefix("config/docker/registry", Scope::Global)
        .await
        .expect("etcd get");
    let mut pairs = BTreeMap::new();
    for (name, node) in &tree {
        let key = quote(name);
        let entry = node.as_tree().expect("a registry is a subtree");
        for (field, value) in entry {
            let value = value.as_value().expect("a value").to_owned();
            if field.is_empty() {
                pairs.insert(key.clone(), value);
            } else {
                pairs.insert(format!("{key}/{field}"), value);
            }
        }
    }
    pairs
}

fn pairs(list: &[(&str, &str)]) -> BTreeMap<String, String> {
    list.iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

#[tokio::test]
async fn create_modify_and_delete_as_the_webui_does() {
    let api = Api::start("gql_container_registries").await;
    let props = json!({"url": "https://cr.example:5000", "type": "harbor2",
                       "project": ["stable", "ngc"], "username": "admin", "password": "s3cret",
                       "ssl_verify": false});
    let created = ask(
        &api,
        &SUPERADMIN,
        CREATE,
        json!({"hostname": "cr.example:5000", "props": props}),
    )
    .await;
    let shown = json!({
        "id": "Q29udGFpbmVyUmVnaXN0cnk6Y3IuZXhhbXBsZTo1MDAw",
        "hostname": "cr.example:5000",
        "config": {"url": "https://cr.example:5000", "type": "harbor2",
                   "project": ["stable", "ngc"], "username": "admin", "password": "*****",
                   "ssl_verify": false},
    });
    assert_eq!(
        created.json,
        json!({"data": {"create_container_registry": {"container_registry": shown}}}),
        "{}",
        created.text
    );
    assert_eq!(
        stored(&api).await,
        pairs(&[
            ("cr.example%3A5000", "https://cr.example:5000"),
            ("cr.example%3A5000/type", "harbor2"),
            ("cr.example%3A5000/username", "admin"),
            ("cr.example%3A5000/password", "s3cret"),
            ("cr.example%3A5000/project", "stable,ngc"),
            ("cr.example%3A5000/ssl_verify", "0"),
        ])
    );
    let all = ask(&api, &SUPERADMIN, ALL, json!({})).await;
    assert_eq!(all.json["data"]["container_registries"], json!([shown]));

    // Only the given fields change; a null removes a setting.
    let modified = ask(
        &api,
        &SUPERADMIN,
        MODIFY,
        json!({"hostname": "cr.example:5000",
               "props": {"project": ["community"], "username": null, "ssl_verify": true}}),
    )
    .await;
    assert_eq!(
        modified.json["data"]["modify_container_registry"]["container_registry"]["config"],
        json!({"url": "https://cr.example:5000", "type": "harbor2", "project": ["community"],
               "username": null, "password": "*****", "ssl_verify": true}),
        "{}",
        modified.text
    );
    assert_eq!(
        stored(&api).await,
        pairs(&[
            ("cr.example%3A5000", "https://cr.example:5000"),
            ("cr.example%3A5000/type", "harbor2"),
            ("cr.example%3A5000/password", "s3cret"),
            ("cr.example%3A5000/project", "community"),
            ("cr.example%3A5000/ssl_verify", "1"),
        ])
    );

    let deleted = ask(
        &api,
        &SUPERADMIN,
        DELETE,
        json!({"hostname": "cr.example:5000"}),
    )
    .await;
    assert_eq!(
        deleted.json,
        json!({"data": {"delete_container_registry": {"container_registry": {
            "id": "Q29udGFpbmVyUmVnaXN0cnk6Y3IuZXhhbXBsZTo1MDAw"}}}}),
        "{}",
        deleted.text
    );
    assert_eq!(stored(&api).await, BTreeMap::new());
    let none = ask(&api, &SUPERADMIN, ALL, json!({})).await;
    assert_eq!(none.json, json!({"data": {"container_registries": []}}));
}

/// The reference deletes every key starting with the registry's quoted name (so `a` takes `ab`
/// with it) and writes the others back afterwards; ours touches only the registry's own keys.
#[tokio::test]
async fn a_registry_whose_name_extends_another_is_left_alone() {
    let api = Api::start("gql_container_registries").await;
    for hostname in ["a", "ab", "a:5000"] {
        let created = ask(
            &api,
            &SUPERADMIN,
            CREATE,
            json!({"hostname": hostname,
                   "props": {"url": format!("https://{hostname}"), "type": "docker",
                             "username": hostname}}),
        )
        .await;
        assert!(created.json["errors"].is_null(), "{}", created.text);
    }
    let others = |all: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        all.iter()
            .filter(|(key, _)| key.split('/').next() != Some("a"))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    };
    let before = others(&stored(&api).await);
    assert_eq!(before.len(), 8, "{before:?}");

    let modified = ask(
        &api,
        &SUPERADMIN,
        MODIFY,
        json!({"hostname": "a", "props": {"url": "http://a.example"}}),
    )
    .await;
    assert!(modified.json["errors"].is_null(), "{}", modified.text);
    let after = stored(&api).await;
    assert_eq!(others(&after), before);
    assert_eq!(after["a"], "http://a.example");
    assert_eq!(after["a/username"], "a");

    let deleted = ask(&api, &SUPERADMIN, DELETE, json!({"hostname": "a"})).await;
    assert!(deleted.json["errors"].is_null(), "{}", deleted.text);
    assert_eq!(stored(&api).await, before);
}

#[tokio::test]
async fn refusals_write_nothing() {
    let api = Api::start("gql_container_registries").await;
    let local = json!({"url": "http://10.0.0.5:5000", "type": "docker"});
    let created = ask(
        &api,
        &SUPERADMIN,
        CREATE,
        json!({"hostname": "local", "props": local}),
    )
    .await;
    assert!(created.json["errors"].is_null(), "{}", created.text);
    let before = stored(&api).await;

    for (query, variables) in [
        (
            MODIFY,
            json!({"hostname": "nowhere", "props": {"username": "x"}}),
        ),
        (DELETE, json!({"hostname": "nowhere"})),
    ] {
        let missing = ask(&api, &SUPERADMIN, query, variables).await;
        assert_eq!(
            missing.json["errors"][0]["message"], "No such container registry.",
            "{}",
            missing.text
        );
    }

    for who in [&DOMAIN_ADMIN, &USER] {
        for (field, query, variables) in [
            (
                "create_container_registry",
                CREATE,
                json!({"hostname": "other", "props": local}),
            ),
            (
                "modify_container_registry",
                MODIFY,
                json!({"hostname": "local", "props": {"username": "x"}}),
            ),
            (
                "delete_container_registry",
                DELETE,
                json!({"hostname": "local"}),
            ),
        ] {
            let refused = ask(&api, who, query, variables).await;
            assert_eq!(
                refused.json["errors"][0]["message"],
                format!("no permission to execute {field}"),
                "{}",
                refused.text
            );
        }
    }

    let bad_url = "Missing or invalid API parameters. (config/docker/registry/other: expected an \
                   http:// or https:// URL, found \"ftp://cr.example\")";
    let refused = ask(
        &api,
        &SUPERADMIN,
        CREATE,
        json!({"hostname": "other", "props": {"url": "ftp://cr.example", "type": "docker"}}),
    )
    .await;
    assert_eq!(
        refused.json["errors"][0]["message"], bad_url,
        "{}",
        refused.text
    );
    let refused = ask(
        &api,
        &SUPERADMIN,
        MODIFY,
        json!({"hostname": "local", "props": {"url": "cr.example", "type": ""}}),
    )
    .await;
    assert_eq!(
        refused.json["errors"][0]["message"],
        "Missing or invalid API parameters. (config/docker/registry/local: expected an http:// \
         or https:// URL, found \"cr.example\"; config/docker/registry/local/type: must not be \
         blank)",
        "{}",
        refused.text
    );
    assert_eq!(stored(&api).await, before);
}

#[tokio::test]
async fn create_replaces_a_registry_and_modify_rewrites_legacy_keys() {
    let api = Api::start("gql_container_registries").await;
    let store = api.cluster.namespace.store().await;
    let legacy = json!({"local": {"": "http://10.0.0.5:5000", "ssl-verify": "no",
                                  "project": "", "password": "old"}});
    store
        .put_prefix(
            "config/docker/registry",
            legacy.as_object().expect("an object"),
            Scope::Global,
        )
        .await
        .expect("etcd put");

    // Stored as the reference's serializer writes a registry: `ssl_verify`, `type` spelled out,
    // an empty project list left out.
    let modified = ask(
        &api,
        &SUPERADMIN,
        MODIFY,
        json!({"hostname": "local", "props": {"username": "lab"}}),
    )
    .await;
    assert_eq!(
        modified.json["data"]["modify_container_registry"]["container_registry"]["config"],
        json!({"url": "http://10.0.0.5:5000", "type": "docker", "project": [],
               "username": "lab", "password": "*****", "ssl_verify": false}),
        "{}",
        modified.text
    );
    assert_eq!(
        stored(&api).await,
        pairs(&[
            ("local", "http://10.0.0.5:5000"),
            ("local/type", "docker"),
            ("local/username", "lab"),
            ("local/password", "old"),
            ("local/ssl_verify", "0"),
        ])
    );

    // A create by an existing name leaves nothing of the old registry behind.
    let created = ask(
        &api,
        &SUPERADMIN,
        CREATE,
        json!({"hostname": "local", "props": {"url": "https://10.0.0.6", "type": "harbor2",
                                             "project": ["stable"]}}),
    )
    .await;
    assert!(created.json["errors"].is_null(), "{}", created.text);
    assert_eq!(
        stored(&api).await,
        pairs(&[
            ("local", "https://10.0.0.6"),
            ("local/type", "harbor2"),
            ("local/project", "stable"),
            ("local/ssl_verify", "1"),
        ])
    );
}
