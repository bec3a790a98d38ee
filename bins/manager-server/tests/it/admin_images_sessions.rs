//! The official clients' image and session commands against our server, with `--output json`:
//! `admin image list` (and 24.03's `image list [--customized]`), and `ps` / `session list` /
//! `admin session list` (empty without agents, then over session rows loaded as a fixture),
//! `session info` and `admin session info` (also of a missing session), of 24.3.11 (Python 3.12)
//! and 23.9.10 (Python 3.11).

use crate::support::{CLIENT_23_09, CLIENT_24_03, Client, Server, Settings, Stack, free_port};
use bai_db_models::fixtures::{self, FixtureFile};
use serde_json::{Value, json};

const GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const USER_UUID: &str = "dfa9da54-4b28-432f-be29-c0d680c7a412";
const SESSION: &str = "5b0b7ab4-3d0c-4bd8-8d8b-2b6a6b1d0a01";
const KERNEL: &str = "7c1c8bc5-4e1d-4ce9-9e9c-3c7b7c2e1b01";
const PYTHON: &str = "0e0b7ab4-3d0c-4bd8-8d8b-2b6a6b1d0a11";
const TOOL: &str = "0e0b7ab4-3d0c-4bd8-8d8b-2b6a6b1d0a12";

/// Two images with an alias, an agent, and a running session of `user@lablup.com` on it.
fn fixture(agent: &str) -> String {
    let image = |id: &str, registry: &str, name: &str, tag: &str| {
        json!({
            "id": id, "name": format!("{registry}/{name}:{tag}"), "image": name, "tag": tag,
            "registry": registry, "architecture": "x86_64",
            "config_digest": format!("sha256:{:064x}", 7), "size_bytes": 123_456_789,
            "type": "COMPUTE", "labels": {"ai.backend.kernelspec": "1"},
            "resources": {"cpu": {"min": "1", "max": null}},
        })
    };
    let images = json!([
        image(PYTHON, "cr.backend.ai", "stable/python", "3.9-ubuntu20.04"),
        image(TOOL, "cr.backend.ai", "community/tool", "1.0"),
    ]);
    let aliases =
        json!([{"id": "0e0b7ab4-3d0c-4bd8-8d8b-2b6a6b1d0a21", "alias": "python", "image": PYTHON}]);
    let agents = json!([{
        "id": agent, "status": "LOST", "region": "local", "scaling_group": "default",
        "available_slots": {"cpu": "8", "mem": "17179869184"}, "occupied_slots": {},
        "addr": "tcp://10.0.0.1:6001", "version": "24.03.11", "architecture": "x86_64",
    }]);
    let sessions = json!([{
        "id": SESSION, "name": "train", "session_type": "interactive",
        "cluster_mode": "single-node", "cluster_size": 1, "domain_name": "default",
        "group_id": GROUP, "user_uuid": USER_UUID, "access_key": "AKIANABBDUSEREXAMPLE",
        "images": ["cr.backend.ai/stable/python:3.9-ubuntu20.04"], "agent_ids": [agent],
        "scaling_group_name": "default", "tag": "nightly",
        "occupying_slots": {"cpu": "1", "mem": "2147483648"},
        "requested_slots": {"cpu": "1", "mem": "2147483648"}, "use_host_network": false,
        "status": "RUNNING", "result": "UNDEFINED", "created_at": "2024-05-01T10:00:00+00:00",
        "status_history": {"PENDING": "2024-05-01T10:00:00+00:00",
                           "RUNNING": "2024-05-01T10:01:00+00:00"},
    }]);
    let kernels = json!([{
        "id": KERNEL, "session_id": SESSION, "session_name": "train",
        "session_type": "interactive", "cluster_mode": "single-node", "cluster_size": 1,
        "cluster_role": "main", "cluster_idx": 1, "local_rank": 0, "cluster_hostname": "main1",
        "domain_name": "default", "group_id": GROUP, "user_uuid": USER_UUID,
        "access_key": "AKIANABBDUSEREXAMPLE",
        "image": "cr.backend.ai/stable/python:3.9-ubuntu20.04", "architecture": "x86_64",
        "registry": "cr.backend.ai", "agent": agent, "agent_addr": "tcp://10.0.0.1:6001",
        "container_id": "c0ffee", "occupied_slots": {"cpu": "1", "mem": "2147483648"},
        "requested_slots": {"cpu": "1", "mem": "2147483648"}, "occupied_shares": {},
        "resource_opts": {"shmem": "64m"}, "preopen_ports": [], "repl_in_port": 2000,
        "repl_out_port": 2001, "stdin_port": 2002, "stdout_port": 2003,
        "use_host_network": false, "status": "RUNNING",
        "status_changed": "2024-05-01T10:01:00+00:00", "result": "UNDEFINED",
    }]);
    // Written by hand: the loader takes tables in file order, and `json!` sorts keys.
    format!(
        r#"{{"images": {images}, "image_aliases": {aliases}, "agents": {agents}, "sessions": {sessions}, "kernels": {kernels}}}"#
    )
}

async fn check(client: &Client, label: &str) {
    let stack = Stack::with_install_guide_keypairs(label).await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    let empty = json!({"count": 0, "total_count": 0, "items": []});
    for args in [
        &["admin", "image", "list"][..],
        &["ps"],
        &["session", "list"],
        &["admin", "session", "list"],
        &["admin", "session", "list", "--all"],
    ] {
        assert_eq!(client.cli_json(&stack, port, args), empty, "{args:?}");
    }

    let agent = format!("i-{label}");
    let file = FixtureFile::parse("rows.json", &fixture(&agent)).expect("fixture");
    fixtures::populate(&stack.db.connection, &file)
        .await
        .expect("loading the rows");

    let image = |name: &str, tag: &str, aliases: Value| {
        json!({
            "name": name, "registry": "cr.backend.ai", "architecture": "x86_64", "tag": tag,
            "digest": format!("sha256:{:064x}", 7), "size_bytes": "117.7M", "aliases": aliases,
        })
    };
    assert_eq!(
        client.cli_json(&stack, port, &["admin", "image", "list"]),
        json!({"count": 2, "total_count": 2, "items": [
            image("community/tool", "1.0", json!([])),
            image("stable/python", "3.9-ubuntu20.04", json!(["python"])),
        ]})
    );

    if client.venv == CLIENT_24_03.venv {
        // Only 24.03 has `image list`; `--customized` lists the caller's own (none here).
        assert_eq!(
            client.cli_json(&stack, port, &["image", "list"]),
            client.cli_json(&stack, port, &["admin", "image", "list"])
        );
        assert_eq!(
            client.cli_json(&stack, port, &["image", "list", "--customized"]),
            empty
        );
    }

    let listed = json!({
        "name": "train", "access_key": "AKIANABBDUSEREXAMPLE", "session_id": SESSION,
        "group_name": "default", "main_kernel_id": KERNEL,
        "image": "cr.backend.ai/stable/python:3.9-ubuntu20.04", "type": "INTERACTIVE",
        "status": "RUNNING", "status_info": null, "status_changed": "2024-05-01T10:01:00+00:00",
        "result": "UNDEFINED",
    });
    let one = |item: &Value| json!({"count": 1, "total_count": 1, "items": [item]});
    for args in [
        &["ps"][..],
        &["session", "list"],
        &["admin", "session", "list", "--all"],
        &["admin", "session", "list", "--running"],
    ] {
        assert_eq!(
            client.cli_json(&stack, port, args),
            one(&listed),
            "{args:?}"
        );
    }
    let mut detailed = listed.clone();
    detailed["tag"] = json!("nightly");
    detailed["created_at"] = json!("2024-05-01T10:00:00+00:00");
    detailed["occupying_slots"] = json!({"cpu": "1", "mem": "2147483648"});
    assert_eq!(
        client.cli_json(&stack, port, &["session", "list", "--detail"]),
        one(&detailed)
    );
    assert_eq!(
        client.cli_json(&stack, port, &["admin", "session", "list", "--dead"]),
        empty
    );

    let info = json!({
        "name": "train", "session_id": SESSION, "main_kernel_id": KERNEL,
        "image": "cr.backend.ai/stable/python:3.9-ubuntu20.04", "tag": "nightly",
        "created_at": "2024-05-01T10:00:00+00:00", "terminated_at": null, "status": "RUNNING",
        "status_info": null, "status_data": null,
        "occupying_slots": {"cpu": "1", "mem": "2147483648"},
        // The session-lifetime checker always reports, as the reference's does.
        "idle_checks": "{\"session_lifetime\": {\"extra\": null, \"remaining\": null, \"remaining_time_type\": \"expire_after\"}}",
        "containers": [{
            "kernel_id": KERNEL, "cluster_role": "main", "cluster_idx": 1,
            "cluster_hostname": "main1", "session_id": SESSION,
            "image": "cr.backend.ai/stable/python:3.9-ubuntu20.04", "registry": "cr.backend.ai",
            "status": "RUNNING", "status_info": null, "status_data": null,
            "status_changed": "2024-05-01T10:01:00+00:00", "agent": agent,
            "container_id": "c0ffee", "resource_opts": {"shmem": "64m"},
            "occupied_slots": {"cpu": "1", "mem": "2147483648"}, "preopen_ports": [],
            "live_stat": null, "last_stat": null,
        }],
        "dependencies": [],
    });
    for args in [
        &["session", "info", SESSION][..],
        &["admin", "session", "info", SESSION],
    ] {
        assert_eq!(client.cli_json(&stack, port, args), one(&info), "{args:?}");
    }
    let missing = "00000000-0000-0000-0000-000000000000";
    assert_eq!(
        client.cli_json_failure(&stack, port, &["session", "info", missing]),
        json!({"error": "There is no such compute session."})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn image_and_session_commands_of_24_3_11() {
    check(&CLIENT_24_03, "pyimgsess2403").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn image_and_session_commands_of_23_9_10() {
    check(&CLIENT_23_09, "pyimgsess2309").await;
}
