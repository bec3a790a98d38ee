//! The GraphQL domain queries on the real router: `domains` for superadmins only, `domain` for the
//! caller's own domain unless a superadmin names another.

use crate::common::{Api, ask};
use bai_api::testing::{DOMAIN_ADMIN, SUPERADMIN, USER};
use serde_json::{Value, json};

#[tokio::test]
async fn domains_and_domain_by_role() {
    let api = Api::start("gql_domains").await;
    let fields = "name description is_active created_at total_resource_slots allowed_vfolder_hosts allowed_docker_registries integration_id";

    let answer = ask(
        &api,
        &SUPERADMIN,
        &format!("{{ domains {{ {fields} }} }}"),
        Value::Null,
    )
    .await;
    assert!(answer.json.get("errors").is_none(), "{}", answer.text);
    let domains = answer.json["data"]["domains"].as_array().expect("a list");
    let default = domains
        .iter()
        .find(|domain| domain["name"] == "default")
        .expect("the default domain");
    assert_eq!(default["is_active"], true);
    let slots: Value = serde_json::from_str(
        default["total_resource_slots"]
            .as_str()
            .expect("JSONString"),
    )
    .expect("JSON");
    assert!(slots.is_object(), "{slots}");
    assert!(default["allowed_vfolder_hosts"].is_string());
    assert!(default["allowed_docker_registries"].is_array());
    let answer = ask(
        &api,
        &SUPERADMIN,
        "{ domains(is_active: false) { name is_active } }",
        Value::Null,
    )
    .await;
    assert!(
        answer.json["data"]["domains"]
            .as_array()
            .expect("a list")
            .iter()
            .all(|domain| domain["is_active"] == false),
        "{}",
        answer.text
    );

    for who in [&DOMAIN_ADMIN, &USER] {
        let answer = ask(&api, who, "{ domains { name } }", Value::Null).await;
        assert_eq!(
            answer.json["errors"][0]["message"],
            "Forbidden operation. (superadmin privilege required)",
            "{}",
            answer.text
        );
        assert_eq!(answer.json["errors"][0]["path"], json!(["domains"]));
        assert_eq!(
            answer.json["data"],
            json!({"domains": null}),
            "{}",
            answer.text
        );

        let answer = ask(&api, who, "{ domain { name is_active } }", Value::Null).await;
        assert_eq!(
            answer.json["data"]["domain"]["name"], "default",
            "{}",
            answer.text
        );
        let answer = ask(
            &api,
            who,
            "{ domain(name: \"default\") { name } }",
            Value::Null,
        )
        .await;
        assert_eq!(
            answer.json["data"]["domain"]["name"], "default",
            "{}",
            answer.text
        );
        let answer = ask(
            &api,
            who,
            "{ domain(name: \"elsewhere\") { name } }",
            Value::Null,
        )
        .await;
        assert_eq!(
            answer.json["errors"][0]["message"], "No such domain.",
            "{}",
            answer.text
        );
    }

    let answer = ask(
        &api,
        &SUPERADMIN,
        "{ domain(name: \"elsewhere\") { name } }",
        Value::Null,
    )
    .await;
    assert_eq!(
        answer.json["data"]["domain"],
        Value::Null,
        "{}",
        answer.text
    );
    assert!(answer.json.get("errors").is_none(), "{}", answer.text);
}

const CREATE: &str = "mutation($name: String!, $props: DomainInput!) { create_domain(name: $name, props: $props) { ok msg domain { name description is_active total_resource_slots allowed_vfolder_hosts allowed_docker_registries integration_id } } }";
const MODIFY: &str = "mutation($name: String!, $props: ModifyDomainInput!) { modify_domain(name: $name, props: $props) { ok msg domain { name description is_active total_resource_slots integration_id } } }";
const DELETE: &str = "mutation($name: String!) { delete_domain(name: $name) { ok msg } }";
const PURGE: &str = "mutation($name: String!) { purge_domain(name: $name) { ok msg } }";

async fn stored(api: &Api, name: &str) -> Option<bai_db_models::entities::domains::Model> {
    bai_db_models::queries::domains::by_name(&api.cluster.database.connection, name)
        .await
        .expect("reading the domain")
}

#[tokio::test]
async fn create_domain_with_the_defaults_and_with_every_property() {
    let api = Api::start("gql_domain_create").await;
    let answer = ask(
        &api,
        &SUPERADMIN,
        CREATE,
        json!({"name": "lab", "props": {}}),
    )
    .await;
    assert_eq!(
        answer.json["data"]["create_domain"],
        json!({"ok": true, "msg": "success", "domain": {
            "name": "lab", "description": "", "is_active": true, "total_resource_slots": "{}",
            "allowed_vfolder_hosts": "{}", "allowed_docker_registries": [], "integration_id": null,
        }}),
        "{}",
        answer.text
    );

    let props = json!({
        "description": "Research lab",
        "is_active": false,
        "total_resource_slots": "{\"cpu\": \"8\", \"mem\": \"16g\"}",
        "allowed_vfolder_hosts": "{\"local:volume1\": [\"create-vfolder\", \"mount-in-session\"]}",
        "allowed_docker_registries": ["cr.backend.ai"],
        "integration_id": "ext-7",
    });
    let answer = ask(
        &api,
        &SUPERADMIN,
        CREATE,
        json!({"name": "lab.2", "props": props}),
    )
    .await;
    let created = &answer.json["data"]["create_domain"];
    assert_eq!(created["ok"], true, "{}", answer.text);
    let slots: Value =
        serde_json::from_str(created["domain"]["total_resource_slots"].as_str().unwrap()).unwrap();
    assert_eq!(slots, json!({"cpu": "8", "mem": "17179869184"}));
    let row = stored(&api, "lab.2").await.expect("stored");
    assert_eq!(row.description.as_deref(), Some("Research lab"));
    assert_eq!(row.is_active, Some(false));
    assert_eq!(
        row.allowed_docker_registries,
        vec!["cr.backend.ai".to_owned()]
    );
    assert_eq!(row.integration_id.as_deref(), Some("ext-7"));
    assert_eq!(
        row.allowed_vfolder_hosts.hosts().collect::<Vec<_>>(),
        ["local:volume1"]
    );
}

#[tokio::test]
async fn create_domain_refuses_bad_input_and_writes_nothing() {
    let api = Api::start("gql_domain_create_bad").await;
    let refusals = [
        (
            json!({"name": "default", "props": {}}),
            "domain \"default\" already exists",
        ),
        (
            json!({"name": "-lab", "props": {}}),
            "name: \"-lab\" is not a slug",
        ),
        (
            json!({"name": "lab x", "props": {}}),
            "name: \"lab x\" is not a slug",
        ),
        (
            json!({"name": "lab", "props": {"total_resource_slots": "{\"cpu\": \"many\"}"}}),
            "total_resource_slots: ",
        ),
        (
            json!({"name": "lab", "props": {"allowed_vfolder_hosts": "{\"local:volume1\": [\"fly\"]}"}}),
            "allowed_vfolder_hosts: ",
        ),
    ];
    for (variables, msg) in refusals {
        let answer = ask(&api, &SUPERADMIN, CREATE, variables.clone()).await;
        let payload = &answer.json["data"]["create_domain"];
        assert_eq!(payload["ok"], false, "{variables}: {}", answer.text);
        assert!(
            payload["msg"].as_str().unwrap().starts_with(msg),
            "{variables}: {}",
            answer.text
        );
        assert_eq!(payload["domain"], Value::Null);
    }
    assert_eq!(stored(&api, "lab").await, None);
}

#[tokio::test]
async fn modify_domain_changes_only_the_given_fields() {
    let api = Api::start("gql_domain_modify").await;
    ask(
        &api,
        &SUPERADMIN,
        CREATE,
        json!({"name": "lab", "props": {"description": "old", "integration_id": "x"}}),
    )
    .await;
    let answer = ask(
        &api,
        &SUPERADMIN,
        MODIFY,
        json!({"name": "lab", "props": {"total_resource_slots": "{\"cpu\": \"4\"}", "integration_id": null}}),
    )
    .await;
    assert_eq!(
        answer.json["data"]["modify_domain"],
        json!({"ok": true, "msg": "success", "domain": {
            "name": "lab", "description": "old", "is_active": true,
            "total_resource_slots": "{\"cpu\": \"4\"}", "integration_id": null,
        }}),
        "{}",
        answer.text
    );
    let before = stored(&api, "lab").await.expect("stored");

    let answer = ask(
        &api,
        &SUPERADMIN,
        MODIFY,
        json!({"name": "lab", "props": {"name": "lab2"}}),
    )
    .await;
    assert_eq!(
        answer.json["data"]["modify_domain"]["domain"]["name"], "lab2",
        "{}",
        answer.text
    );
    assert_eq!(stored(&api, "lab").await, None);
    let renamed = stored(&api, "lab2").await.expect("renamed");
    assert_eq!(renamed.description, before.description);
    assert!(renamed.modified_at >= before.modified_at);

    let refusals = [
        (
            json!({"name": "nowhere", "props": {"description": "x"}}),
            "no such domain \"nowhere\"",
        ),
        (
            json!({"name": "default", "props": {"name": "renamed"}}),
            "domain \"default\" cannot be renamed while users, sessions or session templates belong to it",
        ),
        (
            json!({"name": "lab2", "props": {"name": "default"}}),
            "domain \"default\" already exists",
        ),
        (
            json!({"name": "lab2", "props": {"name": "a/b"}}),
            "name: \"a/b\" is not a slug (letters, digits, '.', '_', '-')",
        ),
    ];
    for (variables, msg) in refusals {
        let answer = ask(&api, &SUPERADMIN, MODIFY, variables.clone()).await;
        assert_eq!(
            answer.json["data"]["modify_domain"],
            json!({"ok": false, "msg": msg, "domain": null}),
            "{variables}: {}",
            answer.text
        );
    }
    assert!(stored(&api, "default").await.is_some());
}

#[tokio::test]
async fn delete_domain_deactivates_and_purge_domain_deletes_an_empty_one() {
    let api = Api::start("gql_domain_delete").await;
    ask(
        &api,
        &SUPERADMIN,
        CREATE,
        json!({"name": "lab", "props": {}}),
    )
    .await;

    let answer = ask(&api, &SUPERADMIN, DELETE, json!({"name": "lab"})).await;
    assert_eq!(
        answer.json["data"]["delete_domain"],
        json!({"ok": true, "msg": "success"})
    );
    assert_eq!(
        stored(&api, "lab").await.expect("kept").is_active,
        Some(false)
    );

    let answer = ask(&api, &SUPERADMIN, PURGE, json!({"name": "default"})).await;
    let payload = &answer.json["data"]["purge_domain"];
    assert_eq!(payload["ok"], false, "{}", answer.text);
    assert!(
        payload["msg"]
            .as_str()
            .unwrap()
            .starts_with("domain \"default\" has "),
        "{}",
        answer.text
    );
    assert!(stored(&api, "default").await.is_some());

    let answer = ask(&api, &SUPERADMIN, PURGE, json!({"name": "lab"})).await;
    assert_eq!(
        answer.json["data"]["purge_domain"],
        json!({"ok": true, "msg": "success"})
    );
    assert_eq!(stored(&api, "lab").await, None);

    for mutation in [DELETE, PURGE] {
        let answer = ask(&api, &SUPERADMIN, mutation, json!({"name": "lab"})).await;
        let payload = answer.json["data"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .clone();
        assert_eq!(
            payload,
            json!({"ok": false, "msg": "no such domain \"lab\""}),
            "{}",
            answer.text
        );
    }
}

#[tokio::test]
async fn domain_mutations_are_for_superadmins_and_refused_while_frozen() {
    let api = Api::start("gql_domain_roles").await;
    for who in [&DOMAIN_ADMIN, &USER] {
        let answer = ask(&api, who, CREATE, json!({"name": "lab", "props": {}})).await;
        assert_eq!(
            answer.json["data"]["create_domain"],
            json!({"ok": false, "msg": "no permission to execute create_domain", "domain": null}),
            "{}",
            answer.text
        );
        let answer = ask(&api, who, PURGE, json!({"name": "default"})).await;
        assert_eq!(
            answer.json["data"]["purge_domain"],
            json!({"ok": false, "msg": "no permission to execute purge_domain"}),
        );
    }
    assert_eq!(stored(&api, "lab").await, None);

    api.ctx
        .set_manager_status(bai_api::ManagerStatus::Frozen)
        .await
        .unwrap();
    let answer = ask(
        &api,
        &SUPERADMIN,
        CREATE,
        json!({"name": "lab", "props": {}}),
    )
    .await;
    assert_eq!(
        answer.json["data"],
        json!({"create_domain": null}),
        "{}",
        answer.text
    );
    assert!(
        answer.json["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("frozen"),
        "{}",
        answer.text
    );
    assert_eq!(stored(&api, "lab").await, None);
}
