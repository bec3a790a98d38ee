//! The GraphQL resource preset queries (anyone) and mutations (superadmins) on the real router.

use crate::common::{Api, ask};
use bai_api::testing::{DOMAIN_ADMIN, MONITOR, SUPERADMIN, USER};
use bai_db_models::entities::{ResourceSlot, resource_presets};
use bai_db_models::queries;
use serde_json::{Value, json};

async fn preset(api: &Api, name: &str) -> Option<resource_presets::Model> {
    queries::resource_presets::by_name(&api.cluster.database.connection, name)
        .await
        .expect("reading the preset")
}

fn slots(value: Value) -> ResourceSlot {
    ResourceSlot::from_json(&value).expect("slots")
}

const CREATE: &str = "mutation($name: String!, $props: CreateResourcePresetInput!) { create_resource_preset(name: $name, props: $props) { ok msg resource_preset { name resource_slots shared_memory } } }";
const MODIFY: &str = "mutation($name: String!, $props: ModifyResourcePresetInput!) { modify_resource_preset(name: $name, props: $props) { ok msg } }";
const DELETE: &str = "mutation($name: String!) { delete_resource_preset(name: $name) { ok msg } }";

#[tokio::test]
async fn resource_presets_for_everyone() {
    let api = Api::start("gql_presets").await;
    for who in [&SUPERADMIN, &DOMAIN_ADMIN, &USER, &MONITOR] {
        let answer = ask(
            &api,
            who,
            "{ resource_presets { name resource_slots shared_memory } }",
            Value::Null,
        )
        .await;
        let presets = answer.data()["resource_presets"]
            .as_array()
            .expect("a list");
        let names: Vec<&str> = presets
            .iter()
            .map(|preset| preset["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "cpu01-small",
                "cpu02-medium",
                "cpu03-large",
                "cuda01-small",
                "cuda02-medium",
                "cuda03-large"
            ],
            "{}",
            who.email
        );
        assert_eq!(
            presets[1],
            json!({"name": "cpu02-medium", "resource_slots": "{\"cpu\": \"4\", \"mem\": \"8589934592\"}", "shared_memory": 1073741824})
        );
        assert_eq!(presets[0]["shared_memory"], Value::Null);

        let answer = ask(
            &api,
            who,
            "query($name: String) { resource_preset(name: $name) { name shared_memory } }",
            json!({"name": "cuda03-large"}),
        )
        .await;
        assert_eq!(
            answer.data()["resource_preset"],
            json!({"name": "cuda03-large", "shared_memory": 2147483648_i64})
        );
    }
    let answer = ask(
        &api,
        &USER,
        "{ resource_preset(name: \"nowhere\") { name } }",
        Value::Null,
    )
    .await;
    assert_eq!(answer.data()["resource_preset"], Value::Null);
    let answer = ask(&api, &USER, "{ resource_preset { name } }", Value::Null).await;
    assert_eq!(
        answer.json["errors"][0]["message"],
        "Missing or invalid API parameters. (resource_preset needs a name)",
        "{}",
        answer.text
    );
}

#[tokio::test]
async fn resource_preset_mutations() {
    let api = Api::start("gql_preset_mutations").await;
    let answer = ask(
        &api,
        &SUPERADMIN,
        CREATE,
        json!({"name": "gpu", "props": {"resource_slots": "{\"cpu\": \"2\", \"mem\": \"4g\", \"cuda.shares\": \"0.5\"}", "shared_memory": "1g"}}),
    )
    .await;
    let created = &answer.data()["create_resource_preset"];
    assert_eq!(created["ok"], true, "{}", answer.text);
    assert_eq!(created["msg"], "success");
    assert_eq!(created["resource_preset"]["shared_memory"], 1 << 30);
    let row = preset(&api, "gpu").await.expect("stored");
    assert_eq!(
        row.resource_slots,
        slots(json!({"cpu": "2", "mem": "4294967296", "cuda.shares": "0.5"}))
    );
    assert_eq!(row.shared_memory, Some(1 << 30));

    let answer = ask(
        &api,
        &SUPERADMIN,
        CREATE,
        json!({"name": "bare", "props": {"resource_slots": "{\"cpu\": \"1\"}", "shared_memory": ""}}),
    )
    .await;
    assert_eq!(
        answer.data()["create_resource_preset"]["resource_preset"],
        json!({"name": "bare", "resource_slots": "{\"cpu\": \"1\"}", "shared_memory": null})
    );

    for (variables, msg) in [
        (
            json!({"name": "gpu", "props": {"resource_slots": "{}"}}),
            "resource preset \"gpu\" already exists",
        ),
        (
            json!({"name": "bad", "props": {"resource_slots": "{\"cpu\": \"many\"}"}}),
            "resource_slots: ",
        ),
        (
            json!({"name": "bad", "props": {"resource_slots": "{}", "shared_memory": "lots"}}),
            "shared_memory: \"lots\" is not a binary size",
        ),
        (
            json!({"name": "bad", "props": {"resource_slots": "{}", "shared_memory": "inf"}}),
            "shared_memory: \"inf\" is not a binary size",
        ),
    ] {
        let answer = ask(&api, &SUPERADMIN, CREATE, variables.clone()).await;
        let payload = &answer.data()["create_resource_preset"];
        assert_eq!(payload["ok"], false, "{variables}: {}", answer.text);
        assert!(
            payload["msg"].as_str().unwrap().starts_with(msg),
            "{variables}: {}",
            answer.text
        );
        assert_eq!(payload["resource_preset"], Value::Null);
    }
    assert_eq!(preset(&api, "bad").await, None);

    let answer = ask(
        &api,
        &SUPERADMIN,
        MODIFY,
        json!({"name": "gpu", "props": {"shared_memory": "512m"}}),
    )
    .await;
    assert_eq!(
        answer.data()["modify_resource_preset"],
        json!({"ok": true, "msg": "success"})
    );
    let modified = preset(&api, "gpu").await.expect("kept");
    assert_eq!(modified.shared_memory, Some(512 << 20));
    assert_eq!(
        modified.resource_slots, row.resource_slots,
        "left as it was"
    );
    let answer = ask(
        &api,
        &SUPERADMIN,
        MODIFY,
        json!({"name": "gpu", "props": {"resource_slots": "{\"cpu\": \"3\"}", "shared_memory": null}}),
    )
    .await;
    assert_eq!(
        answer.data()["modify_resource_preset"],
        json!({"ok": true, "msg": "success"})
    );
    let modified = preset(&api, "gpu").await.expect("kept");
    assert_eq!(
        (modified.resource_slots.clone(), modified.shared_memory),
        (slots(json!({"cpu": "3"})), None)
    );
    for (variables, msg) in [
        (
            json!({"name": "nowhere", "props": {"shared_memory": "1g"}}),
            "no such resource preset \"nowhere\"",
        ),
        (
            json!({"name": "gpu", "props": {"resource_slots": "[]"}}),
            "resource_slots: a resource slot map must be a JSON object, not an array",
        ),
    ] {
        let answer = ask(&api, &SUPERADMIN, MODIFY, variables.clone()).await;
        assert_eq!(
            answer.data()["modify_resource_preset"],
            json!({"ok": false, "msg": msg}),
            "{variables}"
        );
    }
    assert_eq!(preset(&api, "gpu").await, Some(modified));

    let answer = ask(&api, &SUPERADMIN, DELETE, json!({"name": "gpu"})).await;
    assert_eq!(
        answer.data()["delete_resource_preset"],
        json!({"ok": true, "msg": "success"})
    );
    assert_eq!(preset(&api, "gpu").await, None);
    let answer = ask(&api, &SUPERADMIN, DELETE, json!({"name": "gpu"})).await;
    assert_eq!(
        answer.data()["delete_resource_preset"],
        json!({"ok": false, "msg": "no such resource preset \"gpu\""})
    );
}

#[tokio::test]
async fn resource_preset_mutations_are_for_superadmins_and_refused_while_frozen() {
    let api = Api::start("gql_preset_roles").await;
    let mutations = [
        (
            CREATE,
            "create_resource_preset",
            json!({"name": "x", "props": {"resource_slots": "{}"}}),
        ),
        (
            MODIFY,
            "modify_resource_preset",
            json!({"name": "cpu01-small", "props": {"shared_memory": "1g"}}),
        ),
        (
            DELETE,
            "delete_resource_preset",
            json!({"name": "cpu01-small"}),
        ),
    ];
    let before = queries::resource_presets::all(&api.cluster.database.connection)
        .await
        .expect("presets");
    for who in [&DOMAIN_ADMIN, &USER, &MONITOR] {
        for (mutation, field, variables) in &mutations {
            let answer = ask(&api, who, mutation, variables.clone()).await;
            let payload = &answer.data()[field];
            assert_eq!(payload["ok"], false, "{}: {}", who.email, answer.text);
            assert_eq!(payload["msg"], format!("no permission to execute {field}"));
        }
    }
    api.ctx
        .set_manager_status(bai_api::ManagerStatus::Frozen)
        .await
        .unwrap();
    for (mutation, field, variables) in &mutations {
        let answer = ask(&api, &SUPERADMIN, mutation, variables.clone()).await;
        assert_eq!(answer.json["data"][field], Value::Null, "{}", answer.text);
        assert!(
            answer.json["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("frozen"),
            "{}",
            answer.text
        );
    }
    let after = queries::resource_presets::all(&api.cluster.database.connection)
        .await
        .expect("presets");
    assert_eq!(after, before);
}
