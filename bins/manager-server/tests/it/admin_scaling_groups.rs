//! The official clients' scaling-group admin commands against our server, with `--output json`:
//! `admin scaling-group list|info|add|update|delete|associate-scaling-group|
//! dissociate-scaling-group` of 24.3.11 (Python 3.12) and 23.9.10 (Python 3.11), checked against
//! the expected JSON and the database afterwards. (Neither client has a command for the
//! project or keypair associations.)

use crate::support::{CLIENT_23_09, CLIENT_24_03, Client, Server, Settings, Stack, free_port};
use bai_db_models::entities::scaling_groups;
use bai_db_models::queries::scaling_groups::{self as sgroups, Associate};
use serde_json::{Value, json};

/// A listing with the `created_at` of each item checked and removed.
fn without_created_at(mut listing: Value) -> Value {
    for item in listing["items"].as_array_mut().expect("items") {
        let created_at = item
            .as_object_mut()
            .expect("an item")
            .remove("created_at")
            .expect("created_at");
        assert!(created_at.is_string(), "{created_at}");
    }
    listing
}

async fn stored(stack: &Stack, name: &str) -> Option<scaling_groups::Model> {
    sgroups::by_name(&stack.db.connection, name)
        .await
        .expect("reading the scaling group")
}

async fn of_default_domain(stack: &Stack) -> Vec<String> {
    sgroups::list(
        &stack.db.connection,
        Some(&Associate::Domain("default".into())),
        None,
    )
    .await
    .expect("listing")
    .into_iter()
    .map(|group| group.name)
    .collect()
}

async fn check(client: &Client, label: &str) {
    let stack = Stack::with_install_guide_keypairs(label).await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;
    let cli = |args: &[&str]| client.cli_json(&stack, port, args);
    let cli_failure = |args: &[&str]| client.cli_json_failure(&stack, port, args);

    let listed = cli(&["admin", "scaling-group", "list"]);
    assert_eq!(
        without_created_at(listed),
        json!({"count": 1, "total_count": 1, "items": [{
            "name": "default", "description": "The default agent scaling group",
            "is_active": true, "is_public": true, "driver": "static", "scheduler": "fifo",
            "use_host_network": false, "wsproxy_addr": "http://127.0.0.1:5050",
            "wsproxy_api_token": "v625xZLOgbMHhl0s49VuqQ",
        }]})
    );
    let info = cli(&["admin", "scaling-group", "info", "default"]);
    assert_eq!(
        without_created_at(info),
        json!({"count": 1, "total_count": 1, "items": [{
            "name": "default", "description": "The default agent scaling group",
            "is_active": true, "is_public": true, "driver": "static", "driver_opts": {},
            "scheduler": "fifo",
            "scheduler_opts": {
                "allowed_session_types": ["interactive", "batch"], "pending_timeout": 0.0,
                "config": {}, "agent_selection_strategy": "dispersed", "roundrobin": false,
            },
            "use_host_network": false, "wsproxy_addr": "http://127.0.0.1:5050",
            "wsproxy_api_token": "v625xZLOgbMHhl0s49VuqQ",
        }]})
    );

    let added = cli(&[
        "admin",
        "scaling-group",
        "add",
        "gpu",
        "-d",
        "GPU nodes",
        "--private",
        "--scheduler",
        "drf",
        "--driver-opts",
        "{\"zone\": \"a\"}",
        "--scheduler-opts",
        "{\"roundrobin\": true, \"pending_timeout\": \"1m\"}",
        "--use-host-network",
        "--wsproxy-addr",
        "http://proxy:5050",
    ]);
    assert_eq!(
        added,
        json!({"ok": true, "msg": "success", "scaling_group": {"name": "gpu"}})
    );
    let row = stored(&stack, "gpu").await.expect("created");
    assert_eq!(
        (
            row.description.as_deref(),
            row.is_active,
            row.is_public,
            row.driver.as_str(),
            row.scheduler.as_str(),
            row.use_host_network,
            row.wsproxy_addr.as_deref(),
            row.wsproxy_api_token.as_deref(),
        ),
        (
            Some("GPU nodes"),
            Some(true),
            false,
            "static",
            "drf",
            true,
            Some("http://proxy:5050"),
            None
        )
    );
    assert_eq!(row.driver_opts, json!({"zone": "a"}));
    assert_eq!(
        row.scheduler_opts,
        json!({"allowed_session_types": ["interactive", "batch"], "pending_timeout": 60.0,
               "config": {}, "agent_selection_strategy": "dispersed", "roundrobin": true})
    );
    let again = cli_failure(&["admin", "scaling-group", "add", "gpu"]);
    assert_eq!(
        again,
        json!({"ok": false, "msg": "scaling group \"gpu\" already exists",
               "item_name": "scaling_group", "action_name": "add"})
    );

    let updated = cli(&[
        "admin",
        "scaling-group",
        "update",
        "gpu",
        "--description",
        "GPUs",
        "--active",
        "false",
        "--private",
        "false",
        "--wsproxy-api-token",
        "secret",
    ]);
    assert_eq!(
        updated,
        json!({"ok": true, "msg": "success", "name": "gpu"})
    );
    let row = stored(&stack, "gpu").await.expect("kept");
    assert_eq!(
        (
            row.description.as_deref(),
            row.is_active,
            row.is_public,
            row.scheduler.as_str(),
            row.wsproxy_api_token.as_deref()
        ),
        (Some("GPUs"), Some(false), true, "drf", Some("secret"))
    );
    let unknown = cli_failure(&[
        "admin",
        "scaling-group",
        "update",
        "nowhere",
        "--description",
        "x",
    ]);
    assert_eq!(
        unknown,
        json!({"ok": false, "msg": "no such scaling group \"nowhere\"",
               "item_name": "scaling_group", "action_name": "update"})
    );

    let associated = cli(&[
        "admin",
        "scaling-group",
        "associate-scaling-group",
        "gpu",
        "default",
    ]);
    assert_eq!(
        associated,
        json!({"ok": true, "msg": "success",
               "detail_msg": "Scaling group gpu is associated with domain default."})
    );
    assert_eq!(of_default_domain(&stack).await, ["default", "gpu"]);
    let twice = cli_failure(&[
        "admin",
        "scaling-group",
        "associate-scaling-group",
        "gpu",
        "default",
    ]);
    assert_eq!(
        twice,
        json!({"ok": false,
               "msg": "scaling group \"gpu\" is already associated with domain \"default\"",
               "item_name": "scaling_group", "action_name": "scaling_group_association"})
    );
    let dissociated = cli(&[
        "admin",
        "scaling-group",
        "dissociate-scaling-group",
        "gpu",
        "default",
    ]);
    assert_eq!(
        dissociated,
        json!({"ok": true, "msg": "success",
               "detail_msg": "Scaling group gpu is dissociated from domain default."})
    );
    assert_eq!(of_default_domain(&stack).await, ["default"]);
    let not_associated = cli_failure(&[
        "admin",
        "scaling-group",
        "dissociate-scaling-group",
        "gpu",
        "nowhere",
    ]);
    assert_eq!(
        not_associated,
        json!({"ok": false, "msg": "no such domain \"nowhere\"",
               "item_name": "scaling_group", "action_name": "scaling_group_dissociation"})
    );

    let deleted = cli(&["admin", "scaling-group", "delete", "gpu"]);
    assert_eq!(
        deleted,
        json!({"ok": true, "msg": "success", "name": "gpu"})
    );
    assert_eq!(stored(&stack, "gpu").await, None);
    let gone = cli_failure(&["admin", "scaling-group", "delete", "gpu"]);
    assert_eq!(
        gone,
        json!({"ok": false, "msg": "no such scaling group \"gpu\"",
               "item_name": "scaling_group", "action_name": "deletion"})
    );
    let listed = cli(&["admin", "scaling-group", "list"]);
    assert_eq!(listed["total_count"], 1, "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_scaling_group_commands_of_24_3_11() {
    check(&CLIENT_24_03, "pyadmin_sg2403").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_scaling_group_commands_of_23_9_10() {
    check(&CLIENT_23_09, "pyadmin_sg2309").await;
}
