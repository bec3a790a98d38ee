//! The GraphQL group (project) queries and mutations on the real router: `group`,
//! `groups_by_name` and `groups` by role; `create_group`, `modify_group` (with membership
//! changes), `delete_group` and `purge_group` for superadmins and for domain admins within their
//! domain, refusals that write nothing, and the frozen manager.

use crate::common::{Api, ask, bare_sdl};
use bai_api::testing::{DOMAIN_ADMIN, MONITOR, SUPERADMIN, USER};
use bai_db_models::entities::enums::{
    VFolderOperationStatus, VFolderOwnershipType, VFolderPermission, VFolderUsageMode,
};
use bai_db_models::entities::{association_groups_users, groups, vfolders};
use bai_db_models::queries;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

const DEFAULT_GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const MODEL_STORE_GROUP: &str = "8e32dd28-d319-4e3b-8851-ea37837699a5";
const USER_UUID: &str = "dfa9da54-4b28-432f-be29-c0d680c7a412";
const USER2_UUID: &str = "009fb1a4-487c-4f6e-9b1b-228b94b1d040";

const FIELDS: &str = "id name description is_active domain_name total_resource_slots allowed_vfolder_hosts integration_id resource_policy type container_registry scaling_groups";
const CREATE: &str = "mutation($name: String!, $props: GroupInput!) { create_group(name: $name, props: $props) { ok msg group { id name description is_active domain_name total_resource_slots allowed_vfolder_hosts integration_id resource_policy type container_registry scaling_groups } } }";
const MODIFY: &str = "mutation($gid: UUID!, $props: ModifyGroupInput!) { modify_group(gid: $gid, props: $props) { ok msg group { name description is_active domain_name total_resource_slots integration_id resource_policy container_registry } } }";
const DELETE: &str = "mutation($gid: UUID!) { delete_group(gid: $gid) { ok msg } }";
const PURGE: &str = "mutation($gid: UUID!) { purge_group(gid: $gid) { ok msg } }";

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|group| group["name"].as_str().expect("a name"))
        .collect()
}

async fn stored(api: &Api, id: &str) -> Option<groups::Model> {
    let id = Uuid::parse_str(id).expect("a UUID");
    queries::groups::by_id(&api.cluster.database.connection, id, None)
        .await
        .expect("reading the group")
}

async fn members(api: &Api, id: &str) -> Vec<Uuid> {
    let id = Uuid::parse_str(id).expect("a UUID");
    let mut members: Vec<Uuid> = association_groups_users::Entity::find()
        .filter(association_groups_users::Column::GroupId.eq(id))
        .all(&api.cluster.database.connection)
        .await
        .expect("reading the members")
        .into_iter()
        .map(|row| row.user_id)
        .collect();
    members.sort();
    members
}

/// Creates the group `name` in `domain` as the superadmin and returns its id.
async fn create(api: &Api, name: &str, domain: &str) -> String {
    let answer = ask(
        api,
        &SUPERADMIN,
        CREATE,
        json!({"name": name, "props": {"domain_name": domain}}),
    )
    .await;
    let payload = &answer.data()["create_group"];
    assert_eq!(payload["ok"], true, "{}", answer.text);
    payload["group"]["id"].as_str().expect("an id").to_owned()
}

async fn create_domain(api: &Api, name: &str) {
    let answer = ask(
        api,
        &SUPERADMIN,
        "mutation($name: String!) { create_domain(name: $name, props: {}) { ok msg } }",
        json!({"name": name}),
    )
    .await;
    assert_eq!(
        answer.data()["create_domain"]["ok"],
        true,
        "{}",
        answer.text
    );
}

#[test]
fn the_schema_declares_groups_as_the_reference() {
    let sdl = bare_sdl();
    for declaration in [
        "group(id: UUID!, domain_name: String, type: [String] = [\"GENERAL\"]): Group ",
        "groups_by_name(name: String!, domain_name: String): [Group] ",
        "groups(domain_name: String, is_active: Boolean, type: [String] = [\"GENERAL\"]): [Group] ",
        "create_group(name: String!, props: GroupInput!): CreateGroup ",
        "modify_group(gid: UUID!, props: ModifyGroupInput!): ModifyGroup ",
        "delete_group(gid: UUID!): DeleteGroup ",
        "purge_group(gid: UUID!): PurgeGroup ",
        "type Group { id: UUID name: String description: String is_active: Boolean created_at: \
         DateTime modified_at: DateTime domain_name: String total_resource_slots: JSONString \
         allowed_vfolder_hosts: JSONString integration_id: String resource_policy: String type: \
         String container_registry: JSONString scaling_groups: [String] }",
        "input GroupInput { type: String = \"GENERAL\" description: String = \"\" is_active: \
         Boolean = true domain_name: String! total_resource_slots: JSONString = \"{}\" \
         allowed_vfolder_hosts: JSONString = \"{}\" integration_id: String = \"\" \
         resource_policy: String = \"default\" container_registry: JSONString = \"{}\" }",
        "input ModifyGroupInput { name: String description: String is_active: Boolean \
         domain_name: String total_resource_slots: JSONString user_update_mode: String \
         user_uuids: [String] allowed_vfolder_hosts: JSONString integration_id: String \
         resource_policy: String container_registry: JSONString = \"{}\" }",
        "type CreateGroup { ok: Boolean msg: String group: Group }",
        "type ModifyGroup { ok: Boolean msg: String group: Group }",
        "type DeleteGroup { ok: Boolean msg: String }",
        "type PurgeGroup { ok: Boolean msg: String }",
    ] {
        assert!(sdl.contains(declaration), "missing {declaration:?}");
    }
}

#[tokio::test]
async fn group_queries_by_role() {
    let api = Api::start("gql_groups_query").await;
    create_domain(&api, "lab").await;
    let lab_group = create(&api, "research", "lab").await;
    let answer = ask(
        &api,
        &SUPERADMIN,
        "mutation($gid: UUID!) { associate_scaling_group_with_user_group(scaling_group: \"default\", user_group: $gid) { ok msg } }",
        json!({"gid": DEFAULT_GROUP}),
    )
    .await;
    assert_eq!(
        answer.data()["associate_scaling_group_with_user_group"]["ok"],
        true,
        "{}",
        answer.text
    );

    let expected_default = json!({
        "id": DEFAULT_GROUP,
        "name": "default",
        "description": "The default user group",
        "is_active": true,
        "domain_name": "default",
        "total_resource_slots": "{}",
        "allowed_vfolder_hosts": "{}",
        "integration_id": null,
        "resource_policy": "default",
        "type": "GENERAL",
        "container_registry": null,
        "scaling_groups": ["default"],
    });
    let by_id = format!("query($id: UUID!) {{ group(id: $id) {{ {FIELDS} }} }}");
    for who in [&SUPERADMIN, &DOMAIN_ADMIN, &USER] {
        let answer = ask(&api, who, &by_id, json!({"id": DEFAULT_GROUP})).await;
        assert_eq!(answer.data()["group"], expected_default, "{}", answer.text);
    }

    // Superadmins: every domain, the types asked for.
    let answer = ask(&api, &SUPERADMIN, "{ groups { name } }", json!(null)).await;
    assert_eq!(names(&answer.data()["groups"]), ["default", "research"]);
    let answer = ask(
        &api,
        &SUPERADMIN,
        "{ groups(domain_name: \"default\", type: [\"GENERAL\", \"MODEL_STORE\"]) { name type } }",
        json!(null),
    )
    .await;
    assert_eq!(
        answer.data()["groups"],
        json!([{"name": "default", "type": "GENERAL"}, {"name": "model-store", "type": "MODEL_STORE"}])
    );
    let answer = ask(
        &api,
        &SUPERADMIN,
        "{ groups(is_active: false) { name } }",
        json!(null),
    )
    .await;
    assert_eq!(answer.data()["groups"], json!([]));
    let answer = ask(
        &api,
        &SUPERADMIN,
        "{ groups(type: [\"NEITHER\"]) { name } }",
        json!(null),
    )
    .await;
    assert_eq!(
        answer.error_message(),
        "Missing or invalid API parameters. (type: \"NEITHER\" is not a project type (GENERAL, MODEL_STORE))"
    );
    let answer = ask(
        &api,
        &SUPERADMIN,
        "query($id: UUID!) { group(id: $id) { name } }",
        json!({"id": lab_group}),
    )
    .await;
    assert_eq!(answer.data()["group"]["name"], "research");
    let answer = ask(
        &api,
        &SUPERADMIN,
        "query($id: UUID!) { group(id: $id, domain_name: \"default\") { name } }",
        json!({"id": lab_group}),
    )
    .await;
    assert_eq!(answer.data()["group"], Value::Null);
    let answer = ask(
        &api,
        &SUPERADMIN,
        "{ groups_by_name(name: \"research\") { name domain_name } }",
        json!(null),
    )
    .await;
    assert_eq!(
        answer.data()["groups_by_name"],
        json!([{"name": "research", "domain_name": "lab"}])
    );

    // Domain admins: their own domain only.
    let answer = ask(&api, &DOMAIN_ADMIN, "{ groups { name } }", json!(null)).await;
    assert_eq!(names(&answer.data()["groups"]), ["default"]);
    let answer = ask(
        &api,
        &DOMAIN_ADMIN,
        "query($id: UUID!) { group(id: $id) { name } }",
        json!({"id": lab_group}),
    )
    .await;
    assert_eq!(answer.data()["group"], Value::Null);
    let answer = ask(
        &api,
        &DOMAIN_ADMIN,
        "{ groups_by_name(name: \"research\") { name } }",
        json!(null),
    )
    .await;
    assert_eq!(answer.data()["groups_by_name"], json!([]));

    // Users: only the general groups they belong to.
    let answer = ask(
        &api,
        &USER,
        "{ groups(type: [\"MODEL_STORE\"]) { name } }",
        json!(null),
    )
    .await;
    assert_eq!(names(&answer.data()["groups"]), ["default"]);
    let answer = ask(
        &api,
        &USER,
        "{ groups_by_name(name: \"default\") { id } }",
        json!(null),
    )
    .await;
    assert_eq!(
        answer.data()["groups_by_name"],
        json!([{"id": DEFAULT_GROUP}])
    );
    for (id, kind) in [
        (MODEL_STORE_GROUP, "[\"MODEL_STORE\"]"),
        (lab_group.as_str(), "[\"GENERAL\"]"),
        (DEFAULT_GROUP, "[\"MODEL_STORE\"]"),
    ] {
        let answer = ask(
            &api,
            &USER,
            &format!("query($id: UUID!) {{ group(id: $id, type: {kind}) {{ name }} }}"),
            json!({"id": id}),
        )
        .await;
        assert_eq!(answer.error_message(), "Insufficient privilege.", "{id}");
    }

    // Another domain is refused to all but superadmins; monitors are not a known role here.
    for who in [&DOMAIN_ADMIN, &USER] {
        for query in [
            "{ groups(domain_name: \"lab\") { name } }",
            "{ groups_by_name(name: \"research\", domain_name: \"lab\") { name } }",
        ] {
            let answer = ask(&api, who, query, json!(null)).await;
            assert_eq!(answer.error_message(), "Insufficient privilege.", "{query}");
        }
        let answer = ask(
            &api,
            who,
            "query($id: UUID!) { group(id: $id, domain_name: \"lab\") { name } }",
            json!({"id": lab_group}),
        )
        .await;
        assert_eq!(answer.error_message(), "Insufficient privilege.");
    }
    for query in [
        "{ groups { name } }",
        "{ groups_by_name(name: \"default\") { name } }",
    ] {
        let answer = ask(&api, &MONITOR, query, json!(null)).await;
        assert_eq!(
            answer.error_message(),
            "Missing or invalid API parameters. (Unknown client role)"
        );
    }
}

#[tokio::test]
async fn create_group_with_the_defaults_and_with_every_property() {
    let api = Api::start("gql_groups_create").await;
    let answer = ask(
        &api,
        &SUPERADMIN,
        CREATE,
        json!({"name": "lab", "props": {"domain_name": "default"}}),
    )
    .await;
    let mut payload = answer.data()["create_group"].clone();
    let id = payload["group"]
        .as_object_mut()
        .expect("a group")
        .remove("id")
        .expect("an id");
    assert_eq!(
        payload,
        json!({"ok": true, "msg": "success", "group": {
            "name": "lab", "description": "", "is_active": true, "domain_name": "default",
            "total_resource_slots": "{}", "allowed_vfolder_hosts": "{}", "integration_id": "",
            "resource_policy": "default", "type": "GENERAL", "container_registry": "{}",
            "scaling_groups": [],
        }})
    );
    let row = stored(&api, id.as_str().unwrap()).await.expect("stored");
    assert_eq!(row.name, "lab");
    assert_eq!(row.container_registry, Some(json!({})));

    let props = json!({
        "type": "MODEL_STORE",
        "description": "Research lab",
        "is_active": false,
        "domain_name": "default",
        "total_resource_slots": "{\"cpu\": \"8\", \"mem\": \"16g\"}",
        "allowed_vfolder_hosts": "{\"local:volume1\": [\"create-vfolder\", \"mount-in-session\"]}",
        "integration_id": null,
        "container_registry": "{\"registry\": \"cr.backend.ai\", \"project\": \"models\"}",
    });
    let answer = ask(
        &api,
        &DOMAIN_ADMIN,
        CREATE,
        json!({"name": "models", "props": props}),
    )
    .await;
    let group = &answer.data()["create_group"]["group"];
    assert_eq!(group["type"], "MODEL_STORE", "{}", answer.text);
    let slots: Value =
        serde_json::from_str(group["total_resource_slots"].as_str().unwrap()).unwrap();
    assert_eq!(slots, json!({"cpu": "8", "mem": "17179869184"}));
    let row = stored(&api, group["id"].as_str().unwrap())
        .await
        .expect("stored");
    assert_eq!(row.description.as_deref(), Some("Research lab"));
    assert_eq!(row.is_active, Some(false));
    assert_eq!(row.integration_id, None);
    assert_eq!(
        row.allowed_vfolder_hosts.hosts().collect::<Vec<_>>(),
        ["local:volume1"]
    );
    assert_eq!(
        row.container_registry,
        Some(json!({"registry": "cr.backend.ai", "project": "models"}))
    );
}

#[tokio::test]
async fn create_group_refuses_bad_input_and_writes_nothing() {
    let api = Api::start("gql_groups_create_bad").await;
    let refusals = [
        (
            json!({"name": "lab", "props": {"domain_name": "nowhere"}}),
            "no such domain \"nowhere\"",
        ),
        (
            json!({"name": "lab", "props": {"domain_name": "default", "resource_policy": "gold"}}),
            "no such project resource policy \"gold\"",
        ),
        (
            json!({"name": "default", "props": {"domain_name": "default"}}),
            "group \"default\" already exists in domain \"default\"",
        ),
        (
            json!({"name": "-lab", "props": {"domain_name": "default"}}),
            "name: \"-lab\" is not a slug (letters, digits, '.', '_', '-')",
        ),
        (
            json!({"name": "lab", "props": {"domain_name": "default", "type": "PRIVATE"}}),
            "type: \"PRIVATE\" is not a project type (GENERAL, MODEL_STORE)",
        ),
        (
            json!({"name": "lab", "props": {"domain_name": "default", "total_resource_slots": "{\"cpu\": \"many\"}"}}),
            "total_resource_slots: ",
        ),
        (
            json!({"name": "lab", "props": {"domain_name": "default", "allowed_vfolder_hosts": "{\"local:volume1\": [\"fly\"]}"}}),
            "allowed_vfolder_hosts: ",
        ),
        (
            json!({"name": "lab", "props": {"domain_name": "default", "container_registry": "{\"registry\": \"cr.backend.ai\"}"}}),
            "container_registry: {\"registry\":\"cr.backend.ai\"} is neither {} nor",
        ),
    ];
    for (variables, msg) in refusals {
        let answer = ask(&api, &SUPERADMIN, CREATE, variables.clone()).await;
        let payload = &answer.data()["create_group"];
        assert_eq!(payload["ok"], false, "{variables}: {}", answer.text);
        assert!(
            payload["msg"].as_str().unwrap().starts_with(msg),
            "{variables}: {}",
            answer.text
        );
        assert_eq!(payload["group"], Value::Null);
    }
    let count = groups::Entity::find()
        .count(&api.cluster.database.connection)
        .await
        .expect("counting groups");
    assert_eq!(count, 2, "only the fixtures' groups");
}

#[tokio::test]
async fn modify_group_changes_the_given_fields_and_the_members() {
    let api = Api::start("gql_groups_modify").await;
    let id = create(&api, "lab", "default").await;
    let answer = ask(
        &api,
        &SUPERADMIN,
        MODIFY,
        json!({"gid": id, "props": {
            "name": "lab2", "description": null, "is_active": false,
            "total_resource_slots": "{\"cpu\": \"4\"}", "integration_id": "ext-1",
            "container_registry": "{\"registry\": \"cr.backend.ai\", \"project\": \"lab\"}",
        }}),
    )
    .await;
    assert_eq!(
        answer.data()["modify_group"],
        json!({"ok": true, "msg": "success", "group": {
            "name": "lab2", "description": null, "is_active": false, "domain_name": "default",
            "total_resource_slots": "{\"cpu\": \"4\"}", "integration_id": "ext-1",
            "resource_policy": "default",
            "container_registry": "{\"project\": \"lab\", \"registry\": \"cr.backend.ai\"}",
        }}),
        "{}",
        answer.text
    );
    let before = stored(&api, &id).await.expect("stored");

    // Absent fields stay, but an absent container_registry is reset to its default `{}`.
    let answer = ask(
        &api,
        &SUPERADMIN,
        MODIFY,
        json!({"gid": id, "props": {"user_update_mode": "add", "user_uuids": [USER_UUID, USER2_UUID]}}),
    )
    .await;
    assert_eq!(
        answer.data()["modify_group"]["msg"],
        "success",
        "{}",
        answer.text
    );
    let after = stored(&api, &id).await.expect("stored");
    assert_eq!(after.name, "lab2");
    assert_eq!(after.integration_id.as_deref(), Some("ext-1"));
    assert_eq!(after.container_registry, Some(json!({})));
    assert!(after.modified_at >= before.modified_at);
    let mut both = vec![
        Uuid::parse_str(USER_UUID).unwrap(),
        Uuid::parse_str(USER2_UUID).unwrap(),
    ];
    both.sort();
    assert_eq!(members(&api, &id).await, both);

    let answer = ask(
        &api,
        &DOMAIN_ADMIN,
        MODIFY,
        json!({"gid": id, "props": {"user_update_mode": "remove", "user_uuids": [USER2_UUID, "f38dea23-50fa-42a0-b5ae-338f5f4693f4"]}}),
    )
    .await;
    assert_eq!(answer.data()["modify_group"]["ok"], true, "{}", answer.text);
    assert_eq!(
        members(&api, &id).await,
        [Uuid::parse_str(USER_UUID).unwrap()]
    );

    let unknown = Uuid::new_v4();
    let refusals = [
        (
            json!({"gid": unknown, "props": {"description": "x"}}),
            format!("no such group {unknown}"),
        ),
        (
            json!({"gid": id, "props": {"name": "default"}}),
            "group \"default\" already exists in domain \"default\"".to_owned(),
        ),
        (
            json!({"gid": id, "props": {"name": "a/b"}}),
            "name: \"a/b\" is not a slug (letters, digits, '.', '_', '-')".to_owned(),
        ),
        (
            json!({"gid": id, "props": {"user_update_mode": "add", "user_uuids": [USER2_UUID, USER_UUID]}}),
            format!("user {USER_UUID} is already a member of group {id}"),
        ),
        (
            json!({"gid": id, "props": {"user_update_mode": "add", "user_uuids": [USER2_UUID, unknown]}}),
            format!("no such user {unknown}"),
        ),
        (
            json!({"gid": id, "props": {"user_update_mode": "add", "user_uuids": ["someone"]}}),
            "user_uuids: Some(\"someone\") is not a UUID".to_owned(),
        ),
        (
            json!({"gid": id, "props": {"user_update_mode": "swap", "user_uuids": [USER2_UUID]}}),
            "user_update_mode: \"swap\" is neither \"add\" nor \"remove\"".to_owned(),
        ),
        (
            json!({"gid": id, "props": {"user_update_mode": "add", "user_uuids": [USER2_UUID], "domain_name": "nowhere"}}),
            "no such domain \"nowhere\"".to_owned(),
        ),
        (
            json!({"gid": id, "props": {"user_update_mode": "add", "user_uuids": [USER2_UUID], "resource_policy": "gold"}}),
            "no such project resource policy \"gold\"".to_owned(),
        ),
        (
            json!({"gid": id, "props": {"total_resource_slots": "[1]"}}),
            "total_resource_slots: ".to_owned(),
        ),
    ];
    for (variables, msg) in refusals {
        let answer = ask(&api, &SUPERADMIN, MODIFY, variables.clone()).await;
        let payload = &answer.data()["modify_group"];
        assert_eq!(payload["ok"], false, "{variables}: {}", answer.text);
        assert!(
            payload["msg"].as_str().unwrap().starts_with(&msg),
            "{variables}: {}",
            answer.text
        );
        assert_eq!(payload["group"], Value::Null);
    }
    assert_eq!(
        members(&api, &id).await,
        [Uuid::parse_str(USER_UUID).unwrap()],
        "no refused change added a member"
    );
    assert_eq!(stored(&api, &id).await.expect("kept").name, "lab2");

    // A superadmin may move a group to another domain.
    create_domain(&api, "lab").await;
    let answer = ask(
        &api,
        &SUPERADMIN,
        MODIFY,
        json!({"gid": id, "props": {"domain_name": "lab"}}),
    )
    .await;
    assert_eq!(answer.data()["modify_group"]["group"]["domain_name"], "lab");
}

/// Inserts a session of the group `group` (as the example user) with one kernel in `status`.
async fn session_with_kernel(api: &Api, group: &str, status: &str) -> Uuid {
    let session = Uuid::new_v4();
    let db = &api.cluster.database.connection;
    db.execute_unprepared(&format!(
        "INSERT INTO sessions (id, cluster_size, domain_name, group_id, user_uuid, access_key, \
         occupying_slots, requested_slots, use_host_network) VALUES ('{session}', 1, 'default', \
         '{group}', '{USER_UUID}', 'AKIANABBDUSEREXAMPLE', '{{}}', '{{}}', false)"
    ))
    .await
    .expect("session row");
    db.execute_unprepared(&format!(
        "INSERT INTO kernels (id, session_id, cluster_size, cluster_role, cluster_idx, \
         local_rank, cluster_hostname, domain_name, group_id, user_uuid, access_key, \
         occupied_slots, requested_slots, occupied_shares, repl_in_port, repl_out_port, \
         stdin_port, stdout_port, use_host_network, status) VALUES ('{kernel}', '{session}', 1, \
         'main', 0, 0, 'main1', 'default', '{group}', '{USER_UUID}', 'AKIANABBDUSEREXAMPLE', \
         '{{}}', '{{}}', '{{}}', 0, 0, 0, 0, false, '{status}')",
        kernel = Uuid::new_v4(),
    ))
    .await
    .expect("kernel row");
    session
}

#[tokio::test]
async fn delete_group_deactivates_and_purge_group_deletes_it() {
    let api = Api::start("gql_groups_delete").await;
    let id = create(&api, "lab", "default").await;
    let answer = ask(
        &api,
        &SUPERADMIN,
        MODIFY,
        json!({"gid": id, "props": {"integration_id": "ext-1", "user_update_mode": "add", "user_uuids": [USER_UUID]}}),
    )
    .await;
    assert_eq!(answer.data()["modify_group"]["ok"], true);

    let answer = ask(&api, &DOMAIN_ADMIN, DELETE, json!({"gid": id})).await;
    assert_eq!(
        answer.data()["delete_group"],
        json!({"ok": true, "msg": "success"})
    );
    let row = stored(&api, &id).await.expect("kept");
    assert_eq!((row.is_active, row.integration_id), (Some(false), None));

    let session = session_with_kernel(&api, &id, "RUNNING").await;
    let answer = ask(&api, &SUPERADMIN, PURGE, json!({"gid": id})).await;
    assert_eq!(
        answer.data()["purge_group"],
        json!({"ok": false, "msg": format!("group {id} has 1 active kernel(s); terminate its sessions first")})
    );
    let db = &api.cluster.database.connection;
    db.execute_unprepared(&format!(
        "UPDATE kernels SET status = 'TERMINATED' WHERE session_id = '{session}'"
    ))
    .await
    .expect("terminating the kernel");

    let vfolder = vfolders::ActiveModel {
        id: Set(Uuid::new_v4()),
        host: Set("local:volume1".to_owned()),
        quota_scope_id: Set(format!("project:{}", id.replace('-', ""))),
        name: Set("shared".to_owned()),
        usage_mode: Set(VFolderUsageMode::General),
        permission: Set(Some(VFolderPermission::ReadWrite)),
        ownership_type: Set(VFolderOwnershipType::Group),
        group: Set(Some(Uuid::parse_str(&id).unwrap())),
        cloneable: Set(false),
        status: Set(VFolderOperationStatus::Ready),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("vfolder");
    let answer = ask(&api, &DOMAIN_ADMIN, PURGE, json!({"gid": id})).await;
    assert_eq!(
        answer.data()["purge_group"],
        json!({"ok": false, "msg": format!("group {id} owns 1 vfolder(s); purging needs the storage proxy, which this manager does not use yet: delete them first")})
    );
    assert!(stored(&api, &id).await.is_some());
    vfolders::Entity::delete_by_id(vfolder.id)
        .exec(db)
        .await
        .expect("deleting the vfolder");

    let answer = ask(&api, &DOMAIN_ADMIN, PURGE, json!({"gid": id})).await;
    assert_eq!(
        answer.data()["purge_group"],
        json!({"ok": true, "msg": "success"})
    );
    assert_eq!(stored(&api, &id).await, None);
    assert!(members(&api, &id).await.is_empty());
    let sessions = db
        .query_one(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!("SELECT count(*) AS n FROM sessions WHERE id = '{session}'"),
        ))
        .await
        .expect("counting sessions")
        .expect("a row")
        .try_get::<i64>("", "n")
        .expect("a count");
    assert_eq!(sessions, 0, "the finished session went with the group");

    for mutation in [DELETE, PURGE] {
        let answer = ask(&api, &SUPERADMIN, mutation, json!({"gid": id})).await;
        let payload = answer
            .data()
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .clone();
        assert_eq!(
            payload,
            json!({"ok": false, "msg": format!("no such group {id}")}),
        );
    }
}

#[tokio::test]
async fn group_mutations_by_role_and_refused_while_frozen() {
    let api = Api::start("gql_groups_roles").await;
    create_domain(&api, "lab").await;
    let lab_group = create(&api, "research", "lab").await;
    let own_group = create(&api, "mine", "default").await;

    let cases = [
        (
            CREATE,
            json!({"name": "x", "props": {"domain_name": "default"}}),
            "create_group",
        ),
        (
            MODIFY,
            json!({"gid": own_group, "props": {"description": "x"}}),
            "modify_group",
        ),
        (DELETE, json!({"gid": own_group}), "delete_group"),
        (PURGE, json!({"gid": own_group}), "purge_group"),
    ];
    for who in [&USER, &MONITOR] {
        for (mutation, variables, field) in &cases {
            let answer = ask(&api, who, mutation, variables.clone()).await;
            let payload = &answer.data()[field];
            assert_eq!(payload["ok"], false, "{field}: {}", answer.text);
            assert_eq!(payload["msg"], format!("no permission to execute {field}"));
        }
    }

    // A domain admin may not reach into, or move a group to, another domain.
    let unknown = Uuid::new_v4().to_string();
    let cases = [
        (
            CREATE,
            json!({"name": "x", "props": {"domain_name": "lab"}}),
            "create_group",
        ),
        (
            MODIFY,
            json!({"gid": lab_group, "props": {"description": "x"}}),
            "modify_group",
        ),
        (
            MODIFY,
            json!({"gid": own_group, "props": {"domain_name": "lab"}}),
            "modify_group",
        ),
        (
            MODIFY,
            json!({"gid": unknown, "props": {"description": "x"}}),
            "modify_group",
        ),
        (DELETE, json!({"gid": lab_group}), "delete_group"),
        (PURGE, json!({"gid": lab_group}), "purge_group"),
    ];
    for (mutation, variables, field) in &cases {
        let answer = ask(&api, &DOMAIN_ADMIN, mutation, variables.clone()).await;
        let payload = &answer.data()[field];
        assert_eq!(payload["ok"], false, "{variables}: {}", answer.text);
        assert_eq!(payload["msg"], format!("no permission to execute {field}"));
    }
    let lab = stored(&api, &lab_group).await.expect("kept");
    assert_eq!(
        (lab.description.as_deref(), lab.is_active),
        (Some(""), Some(true))
    );
    let own = stored(&api, &own_group).await.expect("kept");
    assert_eq!(
        (own.domain_name.as_str(), own.description.as_deref()),
        ("default", Some(""))
    );
    let count = groups::Entity::find()
        .filter(groups::Column::Name.eq("x"))
        .count(&api.cluster.database.connection)
        .await
        .expect("counting groups");
    assert_eq!(count, 0);

    api.ctx
        .set_manager_status(bai_api::ManagerStatus::Frozen)
        .await
        .unwrap();
    for (mutation, variables, field) in [
        (
            CREATE,
            json!({"name": "x", "props": {"domain_name": "default"}}),
            "create_group",
        ),
        (
            MODIFY,
            json!({"gid": own_group, "props": {"description": "x"}}),
            "modify_group",
        ),
        (DELETE, json!({"gid": own_group}), "delete_group"),
        (PURGE, json!({"gid": own_group}), "purge_group"),
    ] {
        let answer = ask(&api, &SUPERADMIN, mutation, variables).await;
        assert_eq!(answer.json["data"][field], Value::Null, "{}", answer.text);
        assert!(answer.error_message().contains("frozen"), "{}", answer.text);
    }
    let own = stored(&api, &own_group).await.expect("kept");
    assert_eq!(
        (own.description.as_deref(), own.is_active),
        (Some(""), Some(true))
    );
}
