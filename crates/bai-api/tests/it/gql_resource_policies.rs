//! The GraphQL resource policy queries and mutations on the real router: keypair, user and
//! project policies by role, and their create/modify/delete for superadmins only.

use crate::common::{Api, ask};
use bai_api::testing::{DOMAIN_ADMIN, MONITOR, SUPERADMIN, USER};
use bai_db_models::entities::enums::DefaultForUnspecified;
use bai_db_models::entities::{
    ResourceSlot, keypair_resource_policies, project_resource_policies, user_resource_policies,
};
use bai_db_models::queries::resource_policies;
use serde_json::{Value, json};

/// A JSONString field, parsed.
#[track_caller]
fn parsed(value: &Value) -> Value {
    serde_json::from_str(value.as_str().expect("a JSONString")).expect("JSON")
}

async fn keypair_policy(api: &Api, name: &str) -> Option<keypair_resource_policies::Model> {
    resource_policies::keypair_policy(&api.cluster.database.connection, name)
        .await
        .expect("reading the policy")
}

async fn user_policy(api: &Api, name: &str) -> Option<user_resource_policies::Model> {
    resource_policies::user_policy(&api.cluster.database.connection, name)
        .await
        .expect("reading the policy")
}

async fn project_policy(api: &Api, name: &str) -> Option<project_resource_policies::Model> {
    resource_policies::project_policy(&api.cluster.database.connection, name)
        .await
        .expect("reading the policy")
}

const KEYPAIR_FIELDS: &str = "name created_at default_for_unspecified total_resource_slots max_session_lifetime max_concurrent_sessions max_containers_per_session idle_timeout allowed_vfolder_hosts max_vfolder_count max_vfolder_size max_quota_scope_size max_concurrent_sftp_sessions max_pending_session_count max_pending_session_resource_slots";
const USER_FIELDS: &str = "id name created_at max_vfolder_count max_quota_scope_size max_vfolder_size max_session_count_per_model_session max_customized_image_count";
const PROJECT_FIELDS: &str =
    "id name created_at max_vfolder_count max_quota_scope_size max_vfolder_size";

const CREATE_KEYPAIR: &str = "mutation($name: String!, $props: CreateKeyPairResourcePolicyInput!) { create_keypair_resource_policy(name: $name, props: $props) { ok msg resource_policy { name default_for_unspecified total_resource_slots max_session_lifetime max_concurrent_sessions max_concurrent_sftp_sessions max_containers_per_session idle_timeout allowed_vfolder_hosts max_pending_session_count max_pending_session_resource_slots } } }";
const MODIFY_KEYPAIR: &str = "mutation($name: String!, $props: ModifyKeyPairResourcePolicyInput!) { modify_keypair_resource_policy(name: $name, props: $props) { ok msg } }";
const DELETE_KEYPAIR: &str =
    "mutation($name: String!) { delete_keypair_resource_policy(name: $name) { ok msg } }";
const CREATE_USER: &str = "mutation($name: String!, $props: CreateUserResourcePolicyInput!) { create_user_resource_policy(name: $name, props: $props) { ok msg resource_policy { id name max_vfolder_count max_quota_scope_size max_session_count_per_model_session max_customized_image_count } } }";
const MODIFY_USER: &str = "mutation($name: String!, $props: ModifyUserResourcePolicyInput!) { modify_user_resource_policy(name: $name, props: $props) { ok msg } }";
const DELETE_USER: &str =
    "mutation($name: String!) { delete_user_resource_policy(name: $name) { ok msg } }";
const CREATE_PROJECT: &str = "mutation($name: String!, $props: CreateProjectResourcePolicyInput!) { create_project_resource_policy(name: $name, props: $props) { ok msg resource_policy { id name max_vfolder_count max_quota_scope_size max_vfolder_size } } }";
const MODIFY_PROJECT: &str = "mutation($name: String!, $props: ModifyProjectResourcePolicyInput!) { modify_project_resource_policy(name: $name, props: $props) { ok msg } }";
const DELETE_PROJECT: &str =
    "mutation($name: String!) { delete_project_resource_policy(name: $name) { ok msg } }";

/// A keypair policy "other" that no keypair uses, and user and project policies of that name.
async fn add_other_policies(api: &Api) {
    let answer = ask(
        api,
        &SUPERADMIN,
        CREATE_KEYPAIR,
        json!({"name": "other", "props": {"default_for_unspecified": "LIMITED", "max_concurrent_sessions": 1, "max_containers_per_session": 1, "idle_timeout": 60}}),
    )
    .await;
    assert_eq!(
        answer.data()["create_keypair_resource_policy"]["ok"],
        true,
        "{}",
        answer.text
    );
    let answer = ask(
        api,
        &SUPERADMIN,
        CREATE_USER,
        json!({"name": "other", "props": {"max_vfolder_count": 1, "max_quota_scope_size": 1, "max_session_count_per_model_session": 1}}),
    )
    .await;
    assert_eq!(answer.data()["create_user_resource_policy"]["ok"], true);
    let answer = ask(
        api,
        &SUPERADMIN,
        CREATE_PROJECT,
        json!({"name": "other", "props": {"max_vfolder_count": 1, "max_quota_scope_size": 1}}),
    )
    .await;
    assert_eq!(answer.data()["create_project_resource_policy"]["ok"], true);
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|item| item["name"].as_str().expect("a name"))
        .collect()
}

#[tokio::test]
async fn keypair_resource_policies_by_role() {
    let api = Api::start("gql_kp_policies").await;
    let answer = ask(
        &api,
        &SUPERADMIN,
        &format!("{{ keypair_resource_policies {{ {KEYPAIR_FIELDS} }} }}"),
        Value::Null,
    )
    .await;
    let mut listed = answer.data()["keypair_resource_policies"].clone();
    let created_at = listed[0]
        .as_object_mut()
        .expect("a policy")
        .remove("created_at")
        .expect("created_at");
    assert!(created_at.is_string(), "{created_at}");
    assert_eq!(
        parsed(&listed[0]["allowed_vfolder_hosts"])["local:volume1"]
            .as_array()
            .expect("permissions")
            .len(),
        8
    );
    listed[0]["allowed_vfolder_hosts"] = Value::Null;
    assert_eq!(
        listed,
        json!([{
            "name": "default", "default_for_unspecified": "UNLIMITED", "total_resource_slots": "{}",
            "max_session_lifetime": 0, "max_concurrent_sessions": 5, "max_containers_per_session": 1,
            "idle_timeout": 3600, "allowed_vfolder_hosts": null, "max_vfolder_count": null,
            "max_vfolder_size": null, "max_quota_scope_size": null, "max_concurrent_sftp_sessions": 1,
            "max_pending_session_count": null, "max_pending_session_resource_slots": null,
        }])
    );

    add_other_policies(&api).await;
    for (who, expected) in [
        (&SUPERADMIN, vec!["default", "other"]),
        (&DOMAIN_ADMIN, vec!["default", "other"]),
        (&USER, vec!["default"]),
    ] {
        let answer = ask(
            &api,
            who,
            "{ keypair_resource_policies { name } }",
            Value::Null,
        )
        .await;
        assert_eq!(
            names(&answer.data()["keypair_resource_policies"]),
            expected,
            "{}",
            who.email
        );
        let answer = ask(
            &api,
            who,
            "{ keypair_resource_policy { name } }",
            Value::Null,
        )
        .await;
        assert_eq!(answer.data()["keypair_resource_policy"]["name"], "default");
        // As in the reference, a policy named is shown to anyone.
        let answer = ask(
            &api,
            who,
            "query($name: String) { keypair_resource_policy(name: $name) { name max_concurrent_sessions } }",
            json!({"name": "other"}),
        )
        .await;
        assert_eq!(
            answer.data()["keypair_resource_policy"],
            json!({"name": "other", "max_concurrent_sessions": 1})
        );
    }
    let answer = ask(
        &api,
        &USER,
        "{ keypair_resource_policy(name: \"nowhere\") { name } }",
        Value::Null,
    )
    .await;
    assert_eq!(answer.data()["keypair_resource_policy"], Value::Null);

    let answer = ask(
        &api,
        &MONITOR,
        "{ keypair_resource_policies { name } }",
        Value::Null,
    )
    .await;
    assert_eq!(
        answer.error_message(),
        "Missing or invalid API parameters. (Unknown client role)"
    );
}

#[tokio::test]
async fn user_and_project_resource_policies_by_role() {
    let api = Api::start("gql_user_project_policies").await;
    let answer = ask(
        &api,
        &USER,
        &format!("{{ user_resource_policy {{ {USER_FIELDS} }} }}"),
        Value::Null,
    )
    .await;
    let mut own = answer.data()["user_resource_policy"].clone();
    assert!(own["created_at"].is_string(), "{own}");
    own["created_at"] = Value::Null;
    assert_eq!(
        own,
        json!({
            "id": "UserResourcePolicy:default", "name": "default", "created_at": null,
            "max_vfolder_count": 0, "max_quota_scope_size": -1, "max_vfolder_size": null,
            "max_session_count_per_model_session": 10, "max_customized_image_count": 3,
        })
    );
    let answer = ask(
        &api,
        &USER,
        &format!("{{ project_resource_policy(name: \"default\") {{ {PROJECT_FIELDS} }} }}"),
        Value::Null,
    )
    .await;
    let mut project = answer.data()["project_resource_policy"].clone();
    assert!(project["created_at"].is_string(), "{project}");
    project["created_at"] = Value::Null;
    assert_eq!(
        project,
        json!({
            "id": "ProjectResourcePolicy:default", "name": "default", "created_at": null,
            "max_vfolder_count": 0, "max_quota_scope_size": -1, "max_vfolder_size": -1,
        })
    );

    add_other_policies(&api).await;
    for (who, users, projects) in [
        (
            &SUPERADMIN,
            vec!["default", "other"],
            Some(vec!["default", "other"]),
        ),
        (
            &DOMAIN_ADMIN,
            vec!["default", "other"],
            Some(vec!["default", "other"]),
        ),
        (&USER, vec!["default"], None),
    ] {
        let answer = ask(
            &api,
            who,
            "{ user_resource_policies { name } }",
            Value::Null,
        )
        .await;
        assert_eq!(
            names(&answer.data()["user_resource_policies"]),
            users,
            "{}",
            who.email
        );
        let answer = ask(
            &api,
            who,
            "{ project_resource_policies { name } }",
            Value::Null,
        )
        .await;
        match projects {
            Some(projects) => {
                assert_eq!(names(&answer.data()["project_resource_policies"]), projects)
            }
            None => assert_eq!(
                answer.error_message(),
                "Missing or invalid API parameters. (Unknown client role)"
            ),
        }
        let answer = ask(
            &api,
            who,
            "{ user_resource_policy(name: \"other\") { name } project_resource_policy(name: \"other\") { name } }",
            Value::Null,
        )
        .await;
        assert_eq!(
            answer.data(),
            &json!({"user_resource_policy": {"name": "other"}, "project_resource_policy": {"name": "other"}})
        );
    }
    for query in [
        "{ user_resource_policies { name } }",
        "{ project_resource_policies { name } }",
    ] {
        let answer = ask(&api, &MONITOR, query, Value::Null).await;
        assert_eq!(
            answer.error_message(),
            "Missing or invalid API parameters. (Unknown client role)"
        );
    }
    let answer = ask(
        &api,
        &MONITOR,
        "{ user_resource_policy { name } project_resource_policy(name: \"nowhere\") { name } }",
        Value::Null,
    )
    .await;
    assert_eq!(
        answer.data(),
        &json!({"user_resource_policy": {"name": "default"}, "project_resource_policy": null})
    );
}

#[tokio::test]
async fn keypair_resource_policy_mutations() {
    let api = Api::start("gql_kp_policy_mutations").await;
    let answer = ask(
        &api,
        &SUPERADMIN,
        CREATE_KEYPAIR,
        json!({"name": "small", "props": {"default_for_unspecified": "LIMITED", "max_concurrent_sessions": 2, "max_containers_per_session": 1, "idle_timeout": 600}}),
    )
    .await;
    assert_eq!(
        answer.data()["create_keypair_resource_policy"],
        json!({"ok": true, "msg": "success", "resource_policy": {
            "name": "small", "default_for_unspecified": "LIMITED", "total_resource_slots": "{}",
            "max_session_lifetime": 0, "max_concurrent_sessions": 2, "max_concurrent_sftp_sessions": 2,
            "max_containers_per_session": 1, "idle_timeout": 600, "allowed_vfolder_hosts": "{}",
            "max_pending_session_count": null, "max_pending_session_resource_slots": null,
        }})
    );

    let props = json!({
        "default_for_unspecified": "UNLIMITED",
        "total_resource_slots": "{\"cpu\": \"8\", \"mem\": \"16g\"}",
        "max_session_lifetime": 3600,
        "max_concurrent_sessions": 4,
        "max_concurrent_sftp_sessions": 2,
        "max_containers_per_session": 2,
        "idle_timeout": 5_000_000_000_i64,
        "allowed_vfolder_hosts": "{\"local:volume1\": [\"create-vfolder\"]}",
        "max_vfolder_count": 9,
        "max_vfolder_size": 9,
        "max_quota_scope_size": 9,
        "max_pending_session_count": 3,
        "max_pending_session_resource_slots": "{\"cpu\": \"2\"}",
    });
    let answer = ask(
        &api,
        &SUPERADMIN,
        CREATE_KEYPAIR,
        json!({"name": "large", "props": props}),
    )
    .await;
    let created = &answer.data()["create_keypair_resource_policy"];
    assert_eq!(created["ok"], true, "{}", answer.text);
    assert_eq!(
        parsed(&created["resource_policy"]["total_resource_slots"]),
        json!({"cpu": "8", "mem": "17179869184"})
    );
    assert_eq!(
        created["resource_policy"]["idle_timeout"],
        5_000_000_000_i64
    );
    let row = keypair_policy(&api, "large").await.expect("stored");
    assert_eq!(
        row.default_for_unspecified,
        DefaultForUnspecified::Unlimited
    );
    assert_eq!(
        (
            row.max_session_lifetime,
            row.max_concurrent_sessions,
            row.max_concurrent_sftp_sessions,
            row.max_containers_per_session
        ),
        (3600, 4, 2, 2)
    );
    assert_eq!(row.max_pending_session_count, Some(3));
    assert_eq!(
        row.max_pending_session_resource_slots,
        Some(ResourceSlot::from_json(&json!({"cpu": "2"})).unwrap())
    );
    assert_eq!(
        row.allowed_vfolder_hosts.hosts().collect::<Vec<_>>(),
        ["local:volume1"]
    );

    let base = json!({"default_for_unspecified": "LIMITED", "max_concurrent_sessions": 1, "max_containers_per_session": 1, "idle_timeout": 1});
    let with = |field: &str, value: Value| {
        let mut props = base.clone();
        props[field] = value;
        json!({"name": "bad", "props": props})
    };
    let refusals = [
        (
            json!({"name": "small", "props": base.clone()}),
            "keypair resource policy \"small\" already exists",
        ),
        (
            with("default_for_unspecified", json!("SOME")),
            "default_for_unspecified: \"SOME\" is neither LIMITED nor UNLIMITED",
        ),
        (
            with("total_resource_slots", json!("{\"cpu\": \"many\"}")),
            "total_resource_slots: ",
        ),
        (
            with(
                "allowed_vfolder_hosts",
                json!("{\"local:volume1\": [\"fly\"]}"),
            ),
            "allowed_vfolder_hosts: ",
        ),
        (
            with("max_pending_session_resource_slots", json!("[1]")),
            "max_pending_session_resource_slots: ",
        ),
    ];
    for (variables, msg) in refusals {
        let answer = ask(&api, &SUPERADMIN, CREATE_KEYPAIR, variables.clone()).await;
        let payload = &answer.data()["create_keypair_resource_policy"];
        assert_eq!(payload["ok"], false, "{variables}: {}", answer.text);
        assert!(
            payload["msg"].as_str().unwrap().starts_with(msg),
            "{variables}: {}",
            answer.text
        );
        assert_eq!(payload["resource_policy"], Value::Null);
    }
    assert_eq!(keypair_policy(&api, "bad").await, None);
    assert_eq!(
        keypair_policy(&api, "small")
            .await
            .expect("kept")
            .idle_timeout,
        600
    );

    let answer = ask(
        &api,
        &SUPERADMIN,
        MODIFY_KEYPAIR,
        json!({"name": "large", "props": {"idle_timeout": 30, "max_pending_session_count": null, "max_pending_session_resource_slots": null, "max_vfolder_count": 1}}),
    )
    .await;
    assert_eq!(
        answer.data()["modify_keypair_resource_policy"],
        json!({"ok": true, "msg": "success"})
    );
    let modified = keypair_policy(&api, "large").await.expect("kept");
    assert_eq!(
        modified,
        keypair_resource_policies::Model {
            idle_timeout: 30,
            max_pending_session_count: None,
            max_pending_session_resource_slots: None,
            ..row
        }
    );
    for (variables, msg) in [
        (
            json!({"name": "nowhere", "props": {"idle_timeout": 1}}),
            "no such keypair resource policy \"nowhere\"",
        ),
        (
            json!({"name": "large", "props": {"idle_timeout": 1, "default_for_unspecified": "limited"}}),
            "default_for_unspecified: \"limited\" is neither LIMITED nor UNLIMITED",
        ),
    ] {
        let answer = ask(&api, &SUPERADMIN, MODIFY_KEYPAIR, variables.clone()).await;
        assert_eq!(
            answer.data()["modify_keypair_resource_policy"],
            json!({"ok": false, "msg": msg}),
            "{variables}"
        );
    }
    assert_eq!(keypair_policy(&api, "large").await, Some(modified));

    let answer = ask(
        &api,
        &SUPERADMIN,
        DELETE_KEYPAIR,
        json!({"name": "default"}),
    )
    .await;
    assert_eq!(
        answer.data()["delete_keypair_resource_policy"],
        json!({"ok": false, "msg": "keypair resource policy \"default\" is used by 5 keypairs; give them another policy first"})
    );
    assert!(keypair_policy(&api, "default").await.is_some());
    let answer = ask(&api, &SUPERADMIN, DELETE_KEYPAIR, json!({"name": "small"})).await;
    assert_eq!(
        answer.data()["delete_keypair_resource_policy"],
        json!({"ok": true, "msg": "success"})
    );
    assert_eq!(keypair_policy(&api, "small").await, None);
    let answer = ask(&api, &SUPERADMIN, DELETE_KEYPAIR, json!({"name": "small"})).await;
    assert_eq!(
        answer.data()["delete_keypair_resource_policy"],
        json!({"ok": false, "msg": "no such keypair resource policy \"small\""})
    );
}

#[tokio::test]
async fn user_and_project_resource_policy_mutations() {
    let api = Api::start("gql_user_project_policy_mutations").await;
    let answer = ask(
        &api,
        &SUPERADMIN,
        CREATE_USER,
        json!({"name": "big", "props": {"max_vfolder_count": 10, "max_quota_scope_size": 1_099_511_627_776_i64, "max_session_count_per_model_session": 4, "max_vfolder_size": 1}}),
    )
    .await;
    assert_eq!(
        answer.data()["create_user_resource_policy"],
        json!({"ok": true, "msg": "success", "resource_policy": {
            "id": "UserResourcePolicy:big", "name": "big", "max_vfolder_count": 10,
            "max_quota_scope_size": 1_099_511_627_776_i64, "max_session_count_per_model_session": 4,
            "max_customized_image_count": 3,
        }})
    );
    for (variables, msg) in [
        (
            json!({"name": "big", "props": {"max_vfolder_count": 1, "max_quota_scope_size": 1, "max_session_count_per_model_session": 1}}),
            "user resource policy \"big\" already exists",
        ),
        (
            json!({"name": "half", "props": {"max_vfolder_count": 1, "max_session_count_per_model_session": 1}}),
            "max_quota_scope_size: required",
        ),
    ] {
        let answer = ask(&api, &SUPERADMIN, CREATE_USER, variables.clone()).await;
        assert_eq!(
            answer.data()["create_user_resource_policy"],
            json!({"ok": false, "msg": msg, "resource_policy": null}),
            "{variables}"
        );
    }
    assert_eq!(user_policy(&api, "half").await, None);
    let answer = ask(
        &api,
        &SUPERADMIN,
        MODIFY_USER,
        json!({"name": "big", "props": {"max_customized_image_count": 0}}),
    )
    .await;
    assert_eq!(
        answer.data()["modify_user_resource_policy"],
        json!({"ok": true, "msg": "success"})
    );
    let row = user_policy(&api, "big").await.expect("stored");
    assert_eq!(
        (
            row.max_vfolder_count,
            row.max_quota_scope_size,
            row.max_customized_image_count
        ),
        (10, 1 << 40, 0)
    );
    let answer = ask(
        &api,
        &SUPERADMIN,
        MODIFY_USER,
        json!({"name": "nowhere", "props": {"max_vfolder_count": 1}}),
    )
    .await;
    assert_eq!(
        answer.data()["modify_user_resource_policy"],
        json!({"ok": false, "msg": "no such user resource policy \"nowhere\""})
    );
    let answer = ask(&api, &SUPERADMIN, DELETE_USER, json!({"name": "default"})).await;
    assert_eq!(
        answer.data()["delete_user_resource_policy"],
        json!({"ok": false, "msg": "user resource policy \"default\" is used by 5 users; give them another policy first"})
    );
    let answer = ask(&api, &SUPERADMIN, DELETE_USER, json!({"name": "big"})).await;
    assert_eq!(
        answer.data()["delete_user_resource_policy"],
        json!({"ok": true, "msg": "success"})
    );
    assert_eq!(user_policy(&api, "big").await, None);

    let answer = ask(
        &api,
        &SUPERADMIN,
        CREATE_PROJECT,
        json!({"name": "team", "props": {"max_vfolder_count": 2, "max_quota_scope_size": 1024}}),
    )
    .await;
    assert_eq!(
        answer.data()["create_project_resource_policy"],
        json!({"ok": true, "msg": "success", "resource_policy": {
            "id": "ProjectResourcePolicy:team", "name": "team", "max_vfolder_count": 2,
            "max_quota_scope_size": 1024, "max_vfolder_size": 1024,
        }})
    );
    let answer = ask(
        &api,
        &SUPERADMIN,
        CREATE_PROJECT,
        json!({"name": "half", "props": {"max_quota_scope_size": 1}}),
    )
    .await;
    assert_eq!(
        answer.data()["create_project_resource_policy"],
        json!({"ok": false, "msg": "max_vfolder_count: required", "resource_policy": null})
    );
    assert_eq!(project_policy(&api, "half").await, None);
    let answer = ask(
        &api,
        &SUPERADMIN,
        MODIFY_PROJECT,
        json!({"name": "team", "props": {"max_vfolder_count": 5}}),
    )
    .await;
    assert_eq!(
        answer.data()["modify_project_resource_policy"],
        json!({"ok": true, "msg": "success"})
    );
    let row = project_policy(&api, "team").await.expect("stored");
    assert_eq!((row.max_vfolder_count, row.max_quota_scope_size), (5, 1024));
    let answer = ask(
        &api,
        &SUPERADMIN,
        DELETE_PROJECT,
        json!({"name": "default"}),
    )
    .await;
    assert_eq!(
        answer.data()["delete_project_resource_policy"],
        json!({"ok": false, "msg": "project resource policy \"default\" is used by 2 projects; give them another policy first"})
    );
    let answer = ask(&api, &SUPERADMIN, DELETE_PROJECT, json!({"name": "team"})).await;
    assert_eq!(
        answer.data()["delete_project_resource_policy"],
        json!({"ok": true, "msg": "success"})
    );
    let answer = ask(&api, &SUPERADMIN, DELETE_PROJECT, json!({"name": "team"})).await;
    assert_eq!(
        answer.data()["delete_project_resource_policy"],
        json!({"ok": false, "msg": "no such project resource policy \"team\""})
    );
}

#[tokio::test]
async fn resource_policy_mutations_are_for_superadmins_and_refused_while_frozen() {
    let api = Api::start("gql_policy_mutation_roles").await;
    let mutations = [
        (
            CREATE_KEYPAIR,
            "create_keypair_resource_policy",
            json!({"name": "x", "props": {"default_for_unspecified": "LIMITED", "max_concurrent_sessions": 1, "max_containers_per_session": 1, "idle_timeout": 1}}),
        ),
        (
            MODIFY_KEYPAIR,
            "modify_keypair_resource_policy",
            json!({"name": "default", "props": {"idle_timeout": 1}}),
        ),
        (
            DELETE_KEYPAIR,
            "delete_keypair_resource_policy",
            json!({"name": "default"}),
        ),
        (
            CREATE_USER,
            "create_user_resource_policy",
            json!({"name": "x", "props": {"max_vfolder_count": 1, "max_quota_scope_size": 1, "max_session_count_per_model_session": 1}}),
        ),
        (
            MODIFY_USER,
            "modify_user_resource_policy",
            json!({"name": "default", "props": {"max_vfolder_count": 1}}),
        ),
        (
            DELETE_USER,
            "delete_user_resource_policy",
            json!({"name": "default"}),
        ),
        (
            CREATE_PROJECT,
            "create_project_resource_policy",
            json!({"name": "x", "props": {"max_vfolder_count": 1, "max_quota_scope_size": 1}}),
        ),
        (
            MODIFY_PROJECT,
            "modify_project_resource_policy",
            json!({"name": "default", "props": {"max_vfolder_count": 1}}),
        ),
        (
            DELETE_PROJECT,
            "delete_project_resource_policy",
            json!({"name": "default"}),
        ),
    ];
    for who in [&DOMAIN_ADMIN, &USER, &MONITOR] {
        for (mutation, field, variables) in &mutations {
            let answer = ask(&api, who, mutation, variables.clone()).await;
            let payload = &answer.data()[field];
            assert_eq!(payload["ok"], false, "{}: {}", who.email, answer.text);
            assert_eq!(payload["msg"], format!("no permission to execute {field}"));
        }
    }
    let unchanged = (
        keypair_policy(&api, "default").await,
        user_policy(&api, "default").await,
        project_policy(&api, "default").await,
    );

    api.ctx
        .set_manager_status(bai_api::ManagerStatus::Frozen)
        .await
        .unwrap();
    for (mutation, field, variables) in &mutations {
        let answer = ask(&api, &SUPERADMIN, mutation, variables.clone()).await;
        assert_eq!(answer.json["data"][field], Value::Null, "{}", answer.text);
        assert!(answer.error_message().contains("frozen"), "{}", answer.text);
    }
    assert_eq!(keypair_policy(&api, "x").await, None);
    assert_eq!(user_policy(&api, "x").await, None);
    assert_eq!(project_policy(&api, "x").await, None);
    assert_eq!(
        (
            keypair_policy(&api, "default").await,
            user_policy(&api, "default").await,
            project_policy(&api, "default").await,
        ),
        unchanged
    );
}
