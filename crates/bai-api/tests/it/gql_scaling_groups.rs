//! The GraphQL resource-group (scaling-group) queries and mutations on the real router: superadmins
//! only, every association table, and refusals that name what was wrong and write nothing.

use crate::common::{Api, ask, data};
use bai_api::testing::{DOMAIN_ADMIN, MONITOR, SUPERADMIN, USER};
use bai_db_models::entities::enums::AgentStatus;
use bai_db_models::entities::{ResourceSlot, agents};
use bai_db_models::queries::scaling_groups::{self as sgroups, Associate};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};
use uuid::Uuid;

/// The example fixtures' default project.
const DEFAULT_PROJECT: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|item| item["name"].as_str().expect("a name"))
        .collect()
}

async fn create(api: &Api, name: &str, props: Value) -> Value {
    let answer = data(
        api,
        &SUPERADMIN,
        CREATE,
        json!({"name": name, "props": props}),
    )
    .await;
    answer["create_scaling_group"].clone()
}

async fn insert_agent(api: &Api, id: &str, scaling_group: &str, status: AgentStatus, cpu: i64) {
    let mut available = ResourceSlot::new();
    available.insert("cpu", cpu);
    available.insert("mem", 1 << 30);
    let mut occupied = ResourceSlot::new();
    occupied.insert("cpu", 1);
    agents::ActiveModel {
        id: Set(id.to_owned()),
        status: Set(status),
        region: Set("local".to_owned()),
        scaling_group: Set(scaling_group.to_owned()),
        schedulable: Set(true),
        available_slots: Set(available),
        occupied_slots: Set(occupied),
        addr: Set("tcp://127.0.0.1:6011".to_owned()),
        version: Set("24.03.11".to_owned()),
        architecture: Set("x86_64".to_owned()),
        compute_plugins: Set(json!({})),
        auto_terminate_abusing_kernel: Set(false),
        ..Default::default()
    }
    .insert(&api.cluster.database.connection)
    .await
    .expect("inserting an agent");
}

const FIELDS: &str = "name description is_active is_public created_at wsproxy_addr wsproxy_api_token driver driver_opts scheduler scheduler_opts use_host_network";
const CREATE: &str = "mutation($name: String!, $props: CreateScalingGroupInput!) { create_scaling_group(name: $name, props: $props) { ok msg scaling_group { name description is_active is_public wsproxy_addr wsproxy_api_token driver driver_opts scheduler scheduler_opts use_host_network } } }";
const MODIFY: &str = "mutation($name: String!, $props: ModifyScalingGroupInput!) { modify_scaling_group(name: $name, props: $props) { ok msg } }";
const DELETE: &str = "mutation($name: String!) { delete_scaling_group(name: $name) { ok msg } }";

#[tokio::test]
async fn queries_show_every_field_and_narrow_by_association_and_activity() {
    let api = Api::start("gql_sgroups_query").await;
    let listed = data(
        &api,
        &SUPERADMIN,
        &format!("{{ scaling_groups {{ {FIELDS} }} }}"),
        Value::Null,
    )
    .await;
    let default = &listed["scaling_groups"][0];
    assert!(default["created_at"].is_string(), "{default}");
    let mut default = default.clone();
    default.as_object_mut().unwrap().remove("created_at");
    assert_eq!(
        default,
        json!({
            "name": "default", "description": "The default agent scaling group",
            "is_active": true, "is_public": true, "wsproxy_addr": "http://127.0.0.1:5050",
            "wsproxy_api_token": "v625xZLOgbMHhl0s49VuqQ", "driver": "static",
            "driver_opts": "{}", "scheduler": "fifo", "use_host_network": false,
            "scheduler_opts": default["scheduler_opts"].clone(),
        })
    );
    let opts: Value =
        serde_json::from_str(default["scheduler_opts"].as_str().expect("JSONString")).unwrap();
    assert_eq!(
        opts,
        json!({"allowed_session_types": ["interactive", "batch"], "pending_timeout": 0.0,
               "config": {}, "agent_selection_strategy": "dispersed", "roundrobin": false})
    );

    assert_eq!(
        create(&api, "gpu", json!({"driver": "static", "scheduler": "drf"})).await["ok"],
        true
    );
    assert_eq!(
        create(
            &api,
            "old",
            json!({"driver": "static", "scheduler": "fifo", "is_active": false})
        )
        .await["ok"],
        true
    );
    let db = &api.cluster.database.connection;
    let project: Uuid = DEFAULT_PROJECT.parse().unwrap();
    sgroups::associate(db, &["gpu".into()], &Associate::Project(project))
        .await
        .expect("project association");
    sgroups::associate(
        db,
        &["old".into(), "gpu".into()],
        &Associate::Keypair(USER.access_key.into()),
    )
    .await
    .expect("keypair association");

    let all = data(
        &api,
        &SUPERADMIN,
        "{ scaling_groups { name } }",
        Value::Null,
    )
    .await;
    assert_eq!(names(&all["scaling_groups"]), ["default", "gpu", "old"]);
    let active = data(
        &api,
        &SUPERADMIN,
        "{ scaling_groups(is_active: true) { name } }",
        Value::Null,
    )
    .await;
    assert_eq!(names(&active["scaling_groups"]), ["default", "gpu"]);
    let named = data(
        &api,
        &SUPERADMIN,
        "{ scaling_groups(name: \"old\") { name is_active } }",
        Value::Null,
    )
    .await;
    assert_eq!(
        named["scaling_groups"],
        json!([{"name": "old", "is_active": false}])
    );
    let one = data(
        &api,
        &SUPERADMIN,
        "query($name: String) { scaling_group(name: $name) { name scheduler } }",
        json!({"name": "gpu"}),
    )
    .await;
    assert_eq!(
        one["scaling_group"],
        json!({"name": "gpu", "scheduler": "drf"})
    );
    let missing = data(
        &api,
        &SUPERADMIN,
        "{ scaling_group(name: \"nowhere\") { name } }",
        Value::Null,
    )
    .await;
    assert_eq!(missing["scaling_group"], Value::Null);

    let associated = data(
        &api,
        &SUPERADMIN,
        "query($group: String!, $ak: String!) {
            d: scaling_groups_for_domain(domain: \"default\") { name }
            nd: scaling_groups_for_domain(domain: \"nowhere\") { name }
            g: scaling_groups_for_user_group(user_group: $group) { name }
            k: scaling_groups_for_keypair(access_key: $ak) { name }
            ka: scaling_groups_for_keypair(access_key: $ak, is_active: true) { name }
            ki: scaling_groups_for_keypair(access_key: $ak, is_active: false) { name }
        }",
        json!({"group": DEFAULT_PROJECT, "ak": USER.access_key}),
    )
    .await;
    assert_eq!(names(&associated["d"]), ["default"]);
    assert!(names(&associated["nd"]).is_empty());
    assert_eq!(names(&associated["g"]), ["gpu"]);
    assert_eq!(names(&associated["k"]), ["gpu", "old"]);
    assert_eq!(names(&associated["ka"]), ["gpu"]);
    assert_eq!(names(&associated["ki"]), ["old"]);

    let answer = ask(
        &api,
        &SUPERADMIN,
        "{ scaling_groups_for_user_group(user_group: \"default\") { name } }",
        Value::Null,
    )
    .await;
    assert_eq!(
        answer.json["errors"][0]["message"],
        "Missing or invalid API parameters. (user_group \"default\" is not a UUID)",
        "{}",
        answer.text
    );

    for who in [&DOMAIN_ADMIN, &USER, &MONITOR] {
        for query in [
            "{ scaling_groups { name } }",
            "{ scaling_group(name: \"default\") { name } }",
            "{ scaling_groups_for_domain(domain: \"default\") { name } }",
            "{ scaling_groups_for_user_group(user_group: \"2de2b969-1d04-48a6-af16-0bc8adb3c831\") { name } }",
            "{ scaling_groups_for_keypair(access_key: \"AKIANABBDUSEREXAMPLE\") { name } }",
        ] {
            let answer = ask(&api, who, query, Value::Null).await;
            assert_eq!(
                answer.json["errors"][0]["message"],
                "Forbidden operation. (superadmin privilege required)",
                "{query}: {}",
                answer.text
            );
        }
    }
}

#[tokio::test]
async fn agent_counts_and_slot_totals_by_status() {
    let api = Api::start("gql_sgroups_agents").await;
    let prefix = format!("i-sg-{}", Uuid::new_v4().simple());
    insert_agent(
        &api,
        &format!("{prefix}-a"),
        "default",
        AgentStatus::Alive,
        4,
    )
    .await;
    insert_agent(
        &api,
        &format!("{prefix}-b"),
        "default",
        AgentStatus::Alive,
        8,
    )
    .await;
    insert_agent(
        &api,
        &format!("{prefix}-c"),
        "default",
        AgentStatus::Lost,
        2,
    )
    .await;
    let answer = data(
        &api,
        &SUPERADMIN,
        "{ scaling_group(name: \"default\") {
            alive: agent_count_by_status
            lost: agent_count_by_status(status: \"LOST\")
            both: agent_count_by_status(status: \"ALIVE,LOST\")
            terminated: agent_count_by_status(status: \"TERMINATED\")
            slots: agent_total_resource_slots_by_status
            lost_slots: agent_total_resource_slots_by_status(status: \"LOST\")
        } }",
        Value::Null,
    )
    .await;
    let group = &answer["scaling_group"];
    assert_eq!(
        (
            &group["alive"],
            &group["lost"],
            &group["both"],
            &group["terminated"]
        ),
        (&json!(2), &json!(1), &json!(3), &json!(0))
    );
    let slots: Value = serde_json::from_str(group["slots"].as_str().unwrap()).unwrap();
    assert_eq!(
        slots,
        json!({"occupied_slots": {"cpu": "2"},
               "available_slots": {"cpu": "12", "mem": "2147483648"}})
    );
    let lost: Value = serde_json::from_str(group["lost_slots"].as_str().unwrap()).unwrap();
    assert_eq!(
        lost,
        json!({"occupied_slots": {"cpu": "1"},
               "available_slots": {"cpu": "2", "mem": "1073741824"}})
    );
    let answer = ask(
        &api,
        &SUPERADMIN,
        "{ scaling_group(name: \"default\") { agent_count_by_status(status: \"GONE\") } }",
        Value::Null,
    )
    .await;
    assert_eq!(
        answer.json["errors"][0]["message"],
        "Missing or invalid API parameters. (unknown agent status \"GONE\" (one of ALIVE, LOST, RESTARTING, TERMINATED))",
        "{}",
        answer.text
    );

    // A resource group with agents cannot be deleted.
    let refused = data(&api, &SUPERADMIN, DELETE, json!({"name": "default"})).await;
    assert_eq!(
        refused["delete_scaling_group"],
        json!({"ok": false, "msg": "scaling group \"default\" still has agents, sessions, kernels or endpoints; move or remove them first"})
    );
}

#[tokio::test]
async fn create_modify_and_delete() {
    let api = Api::start("gql_sgroups_write").await;
    let created = create(
        &api,
        "gpu",
        json!({"driver": "static", "scheduler": "fifo"}),
    )
    .await;
    let opts = created["scaling_group"]["scheduler_opts"].clone();
    assert_eq!(
        created,
        json!({"ok": true, "msg": "success", "scaling_group": {
            "name": "gpu", "description": "", "is_active": true, "is_public": true,
            "wsproxy_addr": null, "wsproxy_api_token": null, "driver": "static",
            "driver_opts": "{}", "scheduler": "fifo", "scheduler_opts": opts,
            "use_host_network": false,
        }})
    );
    let full = create(
        &api,
        "cpu",
        json!({
            "description": "CPU nodes", "is_active": false, "is_public": false,
            "wsproxy_addr": "http://proxy:5050", "wsproxy_api_token": "token",
            "driver": "static", "driver_opts": "{\"x\": 1}", "scheduler": "drf",
            "scheduler_opts": "{\"allowed_session_types\": [\"batch\"], \"pending_timeout\": \"5m\", \"roundrobin\": true}",
            "use_host_network": true,
        }),
    )
    .await;
    assert_eq!(full["ok"], true, "{full}");
    let row = sgroups::by_name(&api.cluster.database.connection, "cpu")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(
        (
            row.description.as_deref(),
            row.is_active,
            row.is_public,
            row.wsproxy_addr.as_deref(),
            row.wsproxy_api_token.as_deref(),
            row.use_host_network
        ),
        (
            Some("CPU nodes"),
            Some(false),
            false,
            Some("http://proxy:5050"),
            Some("token"),
            true
        )
    );
    assert_eq!(row.driver_opts, json!({"x": 1}));
    assert_eq!(
        row.scheduler_opts,
        json!({"allowed_session_types": ["batch"], "pending_timeout": 300.0, "config": {},
               "agent_selection_strategy": "dispersed", "roundrobin": true})
    );

    let long_name = "x".repeat(65);
    for (name, props, msg) in [
        (
            "gpu",
            json!({"driver": "static", "scheduler": "fifo"}),
            "scaling group \"gpu\" already exists",
        ),
        (
            "bad",
            json!({"driver": "static", "scheduler": "fifo", "scheduler_opts": "{\"roundrobin\": 3}"}),
            "scheduler_opts: roundrobin: expected true or false, got a number (3)",
        ),
        (
            "",
            json!({"driver": "static", "scheduler": "fifo"}),
            "name: must not be empty",
        ),
        (
            long_name.as_str(),
            json!({"driver": "static", "scheduler": "fifo"}),
            "name: longer than 64 characters",
        ),
    ] {
        let refused = create(&api, name, props).await;
        assert_eq!(
            refused,
            json!({"ok": false, "msg": msg, "scaling_group": null}),
            "{name}"
        );
    }
    let all = sgroups::list(&api.cluster.database.connection, None, None)
        .await
        .unwrap();
    assert_eq!(all.len(), 3, "nothing else was written");

    let modified = data(
        &api,
        &SUPERADMIN,
        MODIFY,
        json!({"name": "cpu", "props": {
            "description": null, "is_active": true, "is_public": true, "wsproxy_addr": null,
            "scheduler": "fifo", "scheduler_opts": "{}", "driver_opts": "{}",
            "use_host_network": false,
        }}),
    )
    .await;
    assert_eq!(
        modified["modify_scaling_group"],
        json!({"ok": true, "msg": "success"})
    );
    let row = sgroups::by_name(&api.cluster.database.connection, "cpu")
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(
        (
            row.description,
            row.is_active,
            row.is_public,
            row.wsproxy_addr,
            row.wsproxy_api_token.as_deref(),
            row.scheduler.as_str(),
            row.use_host_network
        ),
        (None, Some(true), true, None, Some("token"), "fifo", false)
    );
    assert_eq!(
        row.scheduler_opts["allowed_session_types"],
        json!(["interactive", "batch"])
    );
    let unchanged = data(
        &api,
        &SUPERADMIN,
        MODIFY,
        json!({"name": "cpu", "props": {}}),
    )
    .await;
    assert_eq!(unchanged["modify_scaling_group"]["ok"], true);
    for (name, props, msg) in [
        (
            "nowhere",
            json!({"description": "x"}),
            "no such scaling group \"nowhere\"",
        ),
        (
            "cpu",
            json!({"scheduler_opts": "{\"agent_selection_strategy\": \"random\"}"}),
            "scheduler_opts: agent_selection_strategy: \"random\" is not one of dispersed, concentrated, legacy",
        ),
    ] {
        let refused = data(
            &api,
            &SUPERADMIN,
            MODIFY,
            json!({"name": name, "props": props}),
        )
        .await;
        assert_eq!(
            refused["modify_scaling_group"],
            json!({"ok": false, "msg": msg})
        );
    }

    // Deleting takes the associations along.
    sgroups::associate(
        &api.cluster.database.connection,
        &["cpu".into()],
        &Associate::Domain("default".into()),
    )
    .await
    .unwrap();
    let deleted = data(&api, &SUPERADMIN, DELETE, json!({"name": "cpu"})).await;
    assert_eq!(
        deleted["delete_scaling_group"],
        json!({"ok": true, "msg": "success"})
    );
    let left = sgroups::list(
        &api.cluster.database.connection,
        Some(&Associate::Domain("default".into())),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        left.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["default"]
    );
    let again = data(&api, &SUPERADMIN, DELETE, json!({"name": "cpu"})).await;
    assert_eq!(
        again["delete_scaling_group"],
        json!({"ok": false, "msg": "no such scaling group \"cpu\""})
    );
}

#[tokio::test]
async fn mutations_refuse_everyone_but_superadmins() {
    let api = Api::start("gql_sgroups_roles").await;
    let mutations = [
        (
            "create_scaling_group",
            "mutation { create_scaling_group(name: \"x\", props: {driver: \"static\", scheduler: \"fifo\"}) { ok msg scaling_group { name } } }",
        ),
        (
            "modify_scaling_group",
            "mutation { modify_scaling_group(name: \"default\", props: {description: \"x\"}) { ok msg } }",
        ),
        (
            "delete_scaling_group",
            "mutation { delete_scaling_group(name: \"default\") { ok msg } }",
        ),
        (
            "associate_scaling_group_with_keypair",
            "mutation { associate_scaling_group_with_keypair(scaling_group: \"default\", access_key: \"AKIANABBDUSEREXAMPLE\") { ok msg } }",
        ),
        (
            "disassociate_all_scaling_groups_with_domain",
            "mutation { disassociate_all_scaling_groups_with_domain(domain: \"default\") { ok msg } }",
        ),
    ];
    for who in [&DOMAIN_ADMIN, &USER, &MONITOR] {
        for (field, mutation) in mutations {
            let answer = data(&api, who, mutation, Value::Null).await;
            assert_eq!(answer[field]["ok"], false, "{field}");
            assert_eq!(
                answer[field]["msg"],
                format!("no permission to execute {field}")
            );
        }
    }
    let unchanged = sgroups::by_name(&api.cluster.database.connection, "default")
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(
        unchanged.description.as_deref(),
        Some("The default agent scaling group")
    );

    // A frozen manager refuses every mutation, even a superadmin's.
    api.ctx
        .set_manager_status(bai_api::ManagerStatus::Frozen)
        .await
        .unwrap();
    for (field, mutation) in mutations {
        let answer = ask(&api, &SUPERADMIN, mutation, Value::Null).await;
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
    assert!(
        sgroups::by_name(&api.cluster.database.connection, "x")
            .await
            .unwrap()
            .is_none()
    );
}

/// Runs a `(scaling_group(s), target)` mutation and returns its `{ok, msg}`.
async fn link(api: &Api, field: &str, args: &str) -> Value {
    let answer = data(
        api,
        &SUPERADMIN,
        &format!("mutation {{ {field}({args}) {{ ok msg }} }}"),
        Value::Null,
    )
    .await;
    answer[field].clone()
}

fn ok() -> Value {
    json!({"ok": true, "msg": "success"})
}

fn refused(msg: &str) -> Value {
    json!({"ok": false, "msg": msg})
}

async fn associated(api: &Api, with: Associate) -> Vec<String> {
    sgroups::list(&api.cluster.database.connection, Some(&with), None)
        .await
        .expect("listing")
        .into_iter()
        .map(|group| group.name)
        .collect()
}

#[tokio::test]
async fn associations_with_domains_projects_and_keypairs() {
    let api = Api::start("gql_sgroups_links").await;
    for name in ["a", "b"] {
        assert_eq!(
            create(&api, name, json!({"driver": "static", "scheduler": "fifo"})).await["ok"],
            true
        );
    }
    let project: Uuid = DEFAULT_PROJECT.parse().unwrap();
    let domain = || Associate::Domain("default".into());
    let keypair = || Associate::Keypair(USER.access_key.into());

    // Domains.
    assert_eq!(
        link(
            &api,
            "associate_scaling_group_with_domain",
            "scaling_group: \"a\", domain: \"default\""
        )
        .await,
        ok()
    );
    assert_eq!(
        link(
            &api,
            "associate_scaling_group_with_domain",
            "scaling_group: \"a\", domain: \"default\""
        )
        .await,
        refused("scaling group \"a\" is already associated with domain \"default\"")
    );
    assert_eq!(
        link(
            &api,
            "associate_scaling_group_with_domain",
            "scaling_group: \"nowhere\", domain: \"default\""
        )
        .await,
        refused("no such scaling group \"nowhere\"")
    );
    assert_eq!(
        link(
            &api,
            "associate_scaling_group_with_domain",
            "scaling_group: \"b\", domain: \"nowhere\""
        )
        .await,
        refused("no such domain \"nowhere\"")
    );
    // One unknown name: none of the list is associated.
    assert_eq!(
        link(
            &api,
            "associate_scaling_groups_with_domain",
            "scaling_groups: [\"b\", \"nowhere\"], domain: \"default\""
        )
        .await,
        refused("no such scaling group \"nowhere\"")
    );
    assert_eq!(associated(&api, domain()).await, ["a", "default"]);
    assert_eq!(
        link(
            &api,
            "associate_scaling_groups_with_domain",
            "scaling_groups: [\"b\"], domain: \"default\""
        )
        .await,
        ok()
    );
    assert_eq!(associated(&api, domain()).await, ["a", "b", "default"]);
    assert_eq!(
        link(
            &api,
            "disassociate_scaling_group_with_domain",
            "scaling_group: \"a\", domain: \"default\""
        )
        .await,
        ok()
    );
    assert_eq!(
        link(
            &api,
            "disassociate_scaling_group_with_domain",
            "scaling_group: \"a\", domain: \"default\""
        )
        .await,
        refused("scaling group \"a\" is not associated with domain \"default\"")
    );
    assert_eq!(
        link(
            &api,
            "disassociate_scaling_groups_with_domain",
            "scaling_groups: [\"b\", \"default\"], domain: \"default\""
        )
        .await,
        ok()
    );
    assert!(associated(&api, domain()).await.is_empty());
    assert_eq!(
        link(
            &api,
            "disassociate_all_scaling_groups_with_domain",
            "domain: \"default\""
        )
        .await,
        refused("no scaling group is associated with domain \"default\"")
    );
    link(
        &api,
        "associate_scaling_groups_with_domain",
        "scaling_groups: [\"a\", \"b\"], domain: \"default\"",
    )
    .await;
    assert_eq!(
        link(
            &api,
            "disassociate_all_scaling_groups_with_domain",
            "domain: \"default\""
        )
        .await,
        ok()
    );
    assert!(associated(&api, domain()).await.is_empty());
    assert_eq!(
        link(
            &api,
            "disassociate_all_scaling_groups_with_domain",
            "domain: \"nowhere\""
        )
        .await,
        refused("no such domain \"nowhere\"")
    );

    // Projects (user groups).
    let group = format!("user_group: \"{DEFAULT_PROJECT}\"");
    assert_eq!(
        link(
            &api,
            "associate_scaling_group_with_user_group",
            &format!("scaling_group: \"a\", {group}")
        )
        .await,
        ok()
    );
    assert_eq!(
        link(
            &api,
            "associate_scaling_groups_with_user_group",
            &format!("scaling_groups: [\"b\", \"a\"], {group}")
        )
        .await,
        refused(&format!(
            "scaling group \"a\" is already associated with project {DEFAULT_PROJECT}"
        ))
    );
    let unknown = Uuid::new_v4();
    assert_eq!(
        link(
            &api,
            "associate_scaling_group_with_user_group",
            &format!("scaling_group: \"a\", user_group: \"{unknown}\"")
        )
        .await,
        refused(&format!("no such project {unknown}"))
    );
    assert_eq!(
        link(
            &api,
            "associate_scaling_groups_with_user_group",
            &format!("scaling_groups: [\"b\"], {group}")
        )
        .await,
        ok()
    );
    assert_eq!(
        associated(&api, Associate::Project(project)).await,
        ["a", "b"]
    );
    assert_eq!(
        link(
            &api,
            "disassociate_scaling_group_with_user_group",
            &format!("scaling_group: \"a\", {group}")
        )
        .await,
        ok()
    );
    assert_eq!(
        link(
            &api,
            "disassociate_scaling_groups_with_user_group",
            &format!("scaling_groups: [\"a\", \"b\"], {group}")
        )
        .await,
        refused(&format!(
            "scaling group \"a\" is not associated with project {DEFAULT_PROJECT}"
        ))
    );
    assert_eq!(associated(&api, Associate::Project(project)).await, ["b"]);
    assert_eq!(
        link(&api, "disassociate_all_scaling_groups_with_group", &group).await,
        ok()
    );
    assert!(
        associated(&api, Associate::Project(project))
            .await
            .is_empty()
    );
    let answer = ask(
        &api,
        &SUPERADMIN,
        "mutation { disassociate_all_scaling_groups_with_group(user_group: \"default\") { ok } }",
        Value::Null,
    )
    .await;
    assert!(
        answer.json["errors"][0]["message"]
            .as_str()
            .expect("an error")
            .contains("UUID"),
        "{}",
        answer.text
    );

    // Keypairs.
    let ak = format!("access_key: \"{}\"", USER.access_key);
    assert_eq!(
        link(
            &api,
            "associate_scaling_group_with_keypair",
            &format!("scaling_group: \"a\", {ak}")
        )
        .await,
        ok()
    );
    assert_eq!(
        link(
            &api,
            "associate_scaling_groups_with_keypair",
            &format!("scaling_groups: [\"b\", \"default\"], {ak}")
        )
        .await,
        ok()
    );
    assert_eq!(
        link(
            &api,
            "associate_scaling_group_with_keypair",
            "scaling_group: \"a\", access_key: \"AKIANOSUCHKEY\""
        )
        .await,
        refused("no such keypair \"AKIANOSUCHKEY\"")
    );
    assert_eq!(associated(&api, keypair()).await, ["a", "b", "default"]);
    assert_eq!(
        link(
            &api,
            "disassociate_scaling_group_with_keypair",
            &format!("scaling_group: \"default\", {ak}")
        )
        .await,
        ok()
    );
    assert_eq!(
        link(
            &api,
            "disassociate_scaling_groups_with_keypair",
            &format!("scaling_groups: [\"a\", \"b\"], {ak}")
        )
        .await,
        ok()
    );
    assert!(associated(&api, keypair()).await.is_empty());
    assert_eq!(
        link(
            &api,
            "disassociate_scaling_groups_with_keypair",
            &format!("scaling_groups: [], {ak}")
        )
        .await,
        refused("no scaling groups given")
    );
}
