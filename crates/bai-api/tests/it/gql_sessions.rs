//! The GraphQL session queries on the real router: `compute_session_list` empty (no agents, so no
//! sessions) and over session and kernel rows loaded as a fixture, scoped by role, narrowed by
//! status, filter and order; and `compute_session` with its containers and dependencies.

use crate::common::{Api, ask, data};
use bai_api::testing::{DOMAIN_ADMIN, ExampleUser, MONITOR, SUPERADMIN, USER};
use bai_db_models::fixtures::{self, FixtureFile};
use serde_json::{Value, json};

const GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const ADMIN_UUID: &str = "f38dea23-50fa-42a0-b5ae-338f5f4693f4";
const USER_UUID: &str = "dfa9da54-4b28-432f-be29-c0d680c7a412";
const RUNNING_SESSION: &str = "5b0b7ab4-3d0c-4bd8-8d8b-2b6a6b1d0a01";
const DONE_SESSION: &str = "5b0b7ab4-3d0c-4bd8-8d8b-2b6a6b1d0a02";
const MAIN_KERNEL: &str = "7c1c8bc5-4e1d-4ce9-9e9c-3c7b7c2e1b01";
const SUB_KERNEL: &str = "7c1c8bc5-4e1d-4ce9-9e9c-3c7b7c2e1b02";
const DONE_KERNEL: &str = "7c1c8bc5-4e1d-4ce9-9e9c-3c7b7c2e1b03";

/// A running two-container session of `user@lablup.com` that depends on a terminated one of
/// `admin@lablup.com`, on two (lost) agents the kernels refer to.
fn sessions_fixture() -> String {
    let session = |id: &str, name: &str, owner: &str, access_key: &str, status: &str| {
        json!({
            "id": id, "name": name, "session_type": "interactive", "cluster_mode": "single-node",
            "cluster_size": 1, "domain_name": "default", "group_id": GROUP, "user_uuid": owner,
            "access_key": access_key, "images": ["cr.backend.ai/stable/python:3.9-ubuntu20.04"],
            "agent_ids": ["i-node1"], "scaling_group_name": "default", "tag": "nightly",
            "occupying_slots": {"cpu": "2", "mem": "4294967296"},
            "requested_slots": {"cpu": "2", "mem": "4294967296"},
            "vfolder_mounts": [{"name": "data", "vfid": "local:volume1/abc", "vfsubpath": ".",
                                "host_path": "/vfroot/data", "kernel_path": "/home/work/data",
                                "mount_perm": "rw", "usage_mode": "general"}],
            "use_host_network": false, "status": status, "result": "UNDEFINED",
        })
    };
    let mut running = session(
        RUNNING_SESSION,
        "train",
        USER_UUID,
        "AKIANABBDUSEREXAMPLE",
        "RUNNING",
    );
    running["created_at"] = json!("2024-05-01T10:00:00+00:00");
    running["status_history"] = json!({"PENDING": "2024-05-01T10:00:00+00:00",
        "SCHEDULED": "2024-05-01T10:00:05+00:00", "RUNNING": "2024-05-01T10:01:00+00:00"});
    let mut done = session(
        DONE_SESSION,
        "prepare",
        ADMIN_UUID,
        "AKIAIOSFODNN7EXAMPLE",
        "TERMINATED",
    );
    done["images"] = json!(["cr.backend.ai/stable/pytorch:2.1"]);
    done["agent_ids"] = json!(["i-node2"]);
    done["created_at"] = json!("2024-04-01T09:00:00+00:00");
    done["terminated_at"] = json!("2024-04-01T09:30:00+00:00");
    done["status_history"] = json!({"TERMINATED": "2024-04-01T09:30:00+00:00"});
    let kernel = |id: &str, session: &Value, role: &str, idx: i32, status: &str| {
        json!({
            "id": id, "session_id": session["id"], "session_name": session["name"],
            "session_type": "interactive", "cluster_mode": "single-node", "cluster_size": 1,
            "cluster_role": role, "cluster_idx": idx, "local_rank": idx - 1,
            "cluster_hostname": format!("{role}{idx}"), "domain_name": "default",
            "group_id": GROUP, "user_uuid": session["user_uuid"],
            "access_key": session["access_key"], "image": session["images"][0],
            "architecture": "x86_64", "registry": "cr.backend.ai", "agent": session["agent_ids"][0],
            "agent_addr": "tcp://10.0.0.1:6001", "container_id": format!("c0ffee{idx}"),
            "occupied_slots": {"cpu": "1", "mem": "2147483648"},
            "requested_slots": {"cpu": "1", "mem": "2147483648"}, "occupied_shares": {},
            "resource_opts": {"shmem": "64m"},
            "service_ports": [{"name": "jupyter", "protocol": "http", "container_ports": [8080], "host_ports": [30001]}],
            "preopen_ports": [], "repl_in_port": 2000, "repl_out_port": 2001,
            "stdin_port": 2002, "stdout_port": 2003, "use_host_network": false,
            "status": status, "status_changed": "2024-05-01T10:01:00+00:00",
            "status_history": {"SCHEDULED": "2024-05-01T10:00:05+00:00"}, "result": "UNDEFINED",
        })
    };
    let agent = |id: &str| {
        json!({
            "id": id, "status": "LOST", "region": "local", "scaling_group": "default",
            "available_slots": {"cpu": "8", "mem": "17179869184"}, "occupied_slots": {},
            "addr": "tcp://10.0.0.1:6001", "version": "24.03.11", "architecture": "x86_64",
        })
    };
    let kernels = json!([
        kernel(MAIN_KERNEL, &running, "main", 1, "RUNNING"),
        kernel(SUB_KERNEL, &running, "sub", 2, "RUNNING"),
        kernel(DONE_KERNEL, &done, "main", 1, "TERMINATED"),
    ]);
    let dependencies = json!([{"session_id": RUNNING_SESSION, "depends_on": DONE_SESSION}]);
    // Written by hand: the loader takes tables in file order, and `json!` sorts keys.
    format!(
        r#"{{"agents": {}, "sessions": {}, "kernels": {kernels}, "session_dependencies": {dependencies}}}"#,
        json!([agent("i-node1"), agent("i-node2")]),
        json!([running, done]),
    )
}

const LIST: &str = "query($limit: Int!, $offset: Int!, $status: String, $access_key: String, $filter: String, $order: String) { compute_session_list(limit: $limit, offset: $offset, status: $status, access_key: $access_key, filter: $filter, order: $order) { items { name id session_id access_key group_name main_kernel_id image type status status_info status_changed result tag created_at occupying_slots } total_count } }";

/// The statuses `backend.ai ps` asks for by default.
const ACTIVE: &str =
    "PENDING,SCHEDULED,PULLING,PREPARING,RUNNING,RUNNING_DEGRADED,TERMINATING,ERROR";

async fn list(api: &Api, who: &ExampleUser, variables: Value) -> Value {
    let mut all = json!({"limit": 20, "offset": 0});
    for (key, value) in variables.as_object().expect("variables") {
        all[key] = value.clone();
    }
    data(api, who, LIST, all).await["compute_session_list"].clone()
}

fn names(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["name"].as_str().expect("a name"))
        .collect()
}

#[tokio::test]
async fn session_lists_by_role_status_filter_and_order() {
    let api = Api::start("gql_sessions").await;
    let empty = list(&api, &SUPERADMIN, json!({"status": ACTIVE})).await;
    assert_eq!(empty, json!({"items": [], "total_count": 0}));

    let file = FixtureFile::parse("sessions.json", &sessions_fixture()).expect("fixture");
    fixtures::populate(&api.cluster.database.connection, &file)
        .await
        .expect("loading the sessions");

    let active = list(&api, &SUPERADMIN, json!({"status": ACTIVE})).await;
    assert_eq!(active["total_count"], 1);
    assert_eq!(
        active["items"][0],
        json!({
            "name": "train", "id": RUNNING_SESSION, "session_id": RUNNING_SESSION,
            "access_key": "AKIANABBDUSEREXAMPLE", "group_name": "default",
            "main_kernel_id": MAIN_KERNEL, "image": "cr.backend.ai/stable/python:3.9-ubuntu20.04",
            "type": "INTERACTIVE", "status": "RUNNING", "status_info": null,
            "status_changed": "2024-05-01T10:01:00+00:00", "result": "UNDEFINED",
            "tag": "nightly", "created_at": "2024-05-01T10:00:00+00:00",
            "occupying_slots": "{\"cpu\": \"2\", \"mem\": \"4294967296\"}",
        })
    );
    // Default order: the latest of creation and termination first.
    let every = list(&api, &SUPERADMIN, json!({})).await;
    assert_eq!(names(&every), ["train", "prepare"]);
    assert_eq!(every["total_count"], 2);
    assert_eq!(
        names(&list(&api, &DOMAIN_ADMIN, json!({"order": "name"})).await),
        ["prepare", "train"]
    );
    // Users see their own sessions only, whatever access key they name.
    assert_eq!(names(&list(&api, &USER, json!({})).await), ["train"]);
    let answer = ask(
        &api,
        &USER,
        LIST,
        json!({"limit": 20, "offset": 0, "access_key": "AKIAIOSFODNN7EXAMPLE"}),
    )
    .await;
    assert_eq!(
        answer.json["errors"][0]["message"], "Forbidden operation.",
        "{}",
        answer.text
    );
    let monitor = ask(&api, &MONITOR, LIST, json!({"limit": 20, "offset": 0})).await;
    assert_eq!(
        monitor.json["errors"][0]["message"],
        "Missing or invalid API parameters. (Unknown client role)"
    );
    let by_owner = list(
        &api,
        &SUPERADMIN,
        json!({"access_key": "AKIAIOSFODNN7EXAMPLE"}),
    )
    .await;
    assert_eq!(names(&by_owner), ["prepare"]);

    for (filter, expected) in [
        (r#"image ilike "%pytorch%""#, vec!["prepare"]),
        (r#"agent_id == "i-node1""#, vec!["train"]),
        (r#"user_email == "user@lablup.com""#, vec!["train"]),
        (
            r#"group_name == "default" & status == "TERMINATED""#,
            vec!["prepare"],
        ),
        (r#"scheduled_at > "2024-05-01""#, vec!["train"]),
        (
            r#"type == "interactive" & cluster_mode == "SINGLE_NODE""#,
            vec!["train", "prepare"],
        ),
    ] {
        let found = list(&api, &SUPERADMIN, json!({"filter": filter})).await;
        assert_eq!(names(&found), expected, "{filter}");
        assert_eq!(found["total_count"], expected.len(), "{filter}");
    }
    let page = list(
        &api,
        &SUPERADMIN,
        json!({"order": "-created_at", "limit": 1, "offset": 1}),
    )
    .await;
    assert_eq!(names(&page), ["prepare"]);
    assert_eq!(page["total_count"], 2);
    for (variables, message) in [
        (
            json!({"status": "RUNNING,GONE"}),
            "Missing or invalid API parameters. (\"GONE\" is not a valid SessionStatus)",
        ),
        (
            json!({"filter": "nope == 1"}),
            "Unknown/unsupported field name: nope",
        ),
        (
            json!({"order": "startup_command"}),
            "Unknown/unsupported field name: startup_command",
        ),
    ] {
        let mut all = json!({"limit": 20, "offset": 0});
        for (key, value) in variables.as_object().unwrap() {
            all[key] = value.clone();
        }
        let answer = ask(&api, &SUPERADMIN, LIST, all).await;
        assert_eq!(
            answer.json["errors"][0]["message"], message,
            "{}",
            answer.text
        );
    }
}

/// What `backend.ai session info` asks (API v8).
const INFO: &str = "query($id: UUID!) { compute_session(id: $id) { name id main_kernel_id image tag created_at terminated_at status status_info status_data occupying_slots idle_checks containers { id cluster_role cluster_idx cluster_hostname session_id image registry status status_info status_data status_changed agent container_id resource_opts occupied_slots preopen_ports live_stat last_stat } dependencies { name id } } }";

#[tokio::test]
async fn compute_session_with_containers_and_dependencies() {
    let api = Api::start("gql_session").await;
    let file = FixtureFile::parse("sessions.json", &sessions_fixture()).expect("fixture");
    fixtures::populate(&api.cluster.database.connection, &file)
        .await
        .expect("loading the sessions");

    let info = data(&api, &USER, INFO, json!({"id": RUNNING_SESSION})).await;
    let container = |id: &str, role: &str, idx: i32| {
        json!({
            "id": id, "cluster_role": role, "cluster_idx": idx,
            "cluster_hostname": format!("{role}{idx}"), "session_id": RUNNING_SESSION,
            "image": "cr.backend.ai/stable/python:3.9-ubuntu20.04", "registry": "cr.backend.ai",
            "status": "RUNNING", "status_info": null, "status_data": null,
            "status_changed": "2024-05-01T10:01:00+00:00", "agent": "i-node1",
            "container_id": format!("c0ffee{idx}"), "resource_opts": "{\"shmem\": \"64m\"}",
            "occupied_slots": "{\"cpu\": \"1\", \"mem\": \"2147483648\"}", "preopen_ports": [],
            "live_stat": null, "last_stat": null,
        })
    };
    assert_eq!(
        info["compute_session"],
        json!({
            "name": "train", "id": RUNNING_SESSION, "main_kernel_id": MAIN_KERNEL,
            "image": "cr.backend.ai/stable/python:3.9-ubuntu20.04", "tag": "nightly",
            "created_at": "2024-05-01T10:00:00+00:00", "terminated_at": null,
            "status": "RUNNING", "status_info": null, "status_data": null,
            "occupying_slots": "{\"cpu\": \"2\", \"mem\": \"4294967296\"}",
            "idle_checks": "{\"session_lifetime\": {\"extra\": null, \"remaining\": null, \"remaining_time_type\": \"expire_after\"}}",
            "containers": [container(MAIN_KERNEL, "main", 1), container(SUB_KERNEL, "sub", 2)],
            // The user may not see the superadmin's session it depends on.
            "dependencies": [],
        })
    );
    let as_admin = data(&api, &SUPERADMIN, INFO, json!({"id": RUNNING_SESSION})).await;
    assert_eq!(
        as_admin["compute_session"]["dependencies"],
        json!([{"name": "prepare", "id": DONE_SESSION}])
    );
    let extras = data(
        &api,
        &SUPERADMIN,
        "query($id: UUID!) { compute_session(id: $id) { mounts vfolder_mounts resource_opts service_ports scheduled_at status_history agent_ids architecture abusing_reports inference_metrics commit_status containers { image_object { name row_id } scheduled_at } } }",
        json!({"id": RUNNING_SESSION}),
    )
    .await["compute_session"]
        .clone();
    assert_eq!(extras["mounts"], json!(["data"]));
    assert_eq!(extras["vfolder_mounts"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        extras["resource_opts"],
        "{\"main1\": {\"shmem\": \"64m\"}, \"sub2\": {\"shmem\": \"64m\"}}"
    );
    assert_eq!(extras["scheduled_at"], "2024-05-01T10:00:05+00:00");
    assert_eq!(extras["agent_ids"], json!(["i-node1"]));
    assert_eq!(extras["architecture"], "x86_64");
    assert_eq!(extras["abusing_reports"], json!([null, null]));
    assert_eq!(
        extras["inference_metrics"],
        "{\"last_response_ms\": 0, \"requests\": 0}"
    );
    assert_eq!(extras["commit_status"], Value::Null);
    // The image is not in `images`, so the kernel has no image object.
    assert_eq!(
        extras["containers"][0],
        json!({"image_object": null, "scheduled_at": "2024-05-01T10:00:05+00:00"})
    );

    let others = data(&api, &USER, INFO, json!({"id": DONE_SESSION})).await;
    assert_eq!(others["compute_session"], Value::Null);
    let missing = data(
        &api,
        &SUPERADMIN,
        INFO,
        json!({"id": "00000000-0000-0000-0000-000000000000"}),
    )
    .await;
    assert_eq!(missing["compute_session"], Value::Null);
}

const CONTAINER: &str = "query($id: UUID!) { compute_container(id: $id) { id kernel_id session_id cluster_role cluster_idx agent status occupied_slots live_stat } }";
const CONTAINER_LIST: &str = "query($limit: Int!, $offset: Int!, $session_id: ID!, $role: String, $filter: String, $order: String) { compute_container_list(limit: $limit, offset: $offset, session_id: $session_id, role: $role, filter: $filter, order: $order) { items { id cluster_role cluster_hostname } total_count } }";

async fn container_list(api: &Api, who: &ExampleUser, variables: Value) -> Value {
    let mut all = json!({"limit": 20, "offset": 0});
    for (key, value) in variables.as_object().expect("variables") {
        all[key] = value.clone();
    }
    data(api, who, CONTAINER_LIST, all).await["compute_container_list"].clone()
}

fn ids(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_str().expect("an id"))
        .collect()
}

#[tokio::test]
async fn compute_containers_are_scoped_like_their_sessions() {
    let api = Api::start("gql_containers").await;
    let file = FixtureFile::parse("sessions.json", &sessions_fixture()).expect("fixture");
    fixtures::populate(&api.cluster.database.connection, &file)
        .await
        .expect("loading the sessions");

    // The user's own kernel, in full.
    let own = data(&api, &USER, CONTAINER, json!({"id": SUB_KERNEL})).await;
    assert_eq!(
        own["compute_container"],
        json!({
            "id": SUB_KERNEL, "kernel_id": SUB_KERNEL, "session_id": RUNNING_SESSION,
            "cluster_role": "sub", "cluster_idx": 2, "agent": "i-node1", "status": "RUNNING",
            "occupied_slots": "{\"cpu\": \"1\", \"mem\": \"2147483648\"}", "live_stat": null,
        })
    );
    // Another user's kernel is not found for a user; a domain admin and a superadmin see it.
    let others = data(&api, &USER, CONTAINER, json!({"id": DONE_KERNEL})).await;
    assert_eq!(others["compute_container"], Value::Null);
    for who in [&DOMAIN_ADMIN, &SUPERADMIN] {
        let found = data(&api, who, CONTAINER, json!({"id": DONE_KERNEL})).await;
        assert_eq!(found["compute_container"]["session_id"], DONE_SESSION);
    }
    let monitor = ask(&api, &MONITOR, CONTAINER, json!({"id": MAIN_KERNEL})).await;
    assert_eq!(
        monitor.json["errors"][0]["message"],
        "Missing or invalid API parameters. (Unknown client role)"
    );

    // A session's kernels, most recently changed first by default (both changed at once: by id).
    let both = container_list(&api, &USER, json!({"session_id": RUNNING_SESSION})).await;
    assert_eq!(ids(&both), [MAIN_KERNEL, SUB_KERNEL]);
    assert_eq!(both["total_count"], 2);
    let mains = container_list(
        &api,
        &USER,
        json!({"session_id": RUNNING_SESSION, "role": "main"}),
    )
    .await;
    assert_eq!(ids(&mains), [MAIN_KERNEL]);
    assert_eq!(mains["total_count"], 1);
    let ordered = container_list(
        &api,
        &USER,
        json!({"session_id": RUNNING_SESSION, "order": "-cluster_idx", "limit": 1}),
    )
    .await;
    assert_eq!(ids(&ordered), [SUB_KERNEL]);
    assert_eq!(ordered["total_count"], 2);
    let filtered = container_list(
        &api,
        &USER,
        json!({"session_id": RUNNING_SESSION, "filter": r#"cluster_hostname == "sub2" & status == "RUNNING""#}),
    )
    .await;
    assert_eq!(ids(&filtered), [SUB_KERNEL]);
    // The user sees none of another user's session; the domain admin and superadmin do.
    let hidden = container_list(&api, &USER, json!({"session_id": DONE_SESSION})).await;
    assert_eq!(hidden, json!({"items": [], "total_count": 0}));
    for who in [&DOMAIN_ADMIN, &SUPERADMIN] {
        let seen = container_list(&api, who, json!({"session_id": DONE_SESSION})).await;
        assert_eq!(ids(&seen), [DONE_KERNEL]);
    }
    for (variables, message) in [
        (
            json!({"session_id": "nope"}),
            "Missing or invalid API parameters. (session_id \"nope\" is not a UUID)",
        ),
        (
            json!({"session_id": RUNNING_SESSION, "filter": "image_object == 1"}),
            "Unknown/unsupported field name: image_object",
        ),
    ] {
        let mut all = json!({"limit": 20, "offset": 0});
        for (key, value) in variables.as_object().unwrap() {
            all[key] = value.clone();
        }
        let answer = ask(&api, &SUPERADMIN, CONTAINER_LIST, all).await;
        assert_eq!(
            answer.json["errors"][0]["message"], message,
            "{}",
            answer.text
        );
    }
}

const AGENT_CONTAINERS: &str = "query($id: String!, $status: String) { agent(agent_id: $id) { id compute_containers(status: $status) { id session_id status } } }";

#[tokio::test]
async fn an_agent_lists_its_containers() {
    let api = Api::start("gql_agent_containers").await;
    let file = FixtureFile::parse("sessions.json", &sessions_fixture()).expect("fixture");
    fixtures::populate(&api.cluster.database.connection, &file)
        .await
        .expect("loading the sessions");
    let containers = |agent: &'static str, status: Option<&'static str>| {
        let api = &api;
        async move {
            data(
                api,
                &SUPERADMIN,
                AGENT_CONTAINERS,
                json!({"id": agent, "status": status}),
            )
            .await["agent"]["compute_containers"]
                .clone()
        }
    };
    // Without a status: the kernels that hold the agent's resources.
    let running = containers("i-node1", None).await;
    assert_eq!(
        running,
        json!([
            {"id": MAIN_KERNEL, "session_id": RUNNING_SESSION, "status": "RUNNING"},
            {"id": SUB_KERNEL, "session_id": RUNNING_SESSION, "status": "RUNNING"},
        ])
    );
    assert_eq!(containers("i-node2", None).await, json!([]));
    assert_eq!(
        containers("i-node2", Some("TERMINATED, CANCELLED")).await,
        json!([{"id": DONE_KERNEL, "session_id": DONE_SESSION, "status": "TERMINATED"}])
    );
    let answer = ask(
        &api,
        &SUPERADMIN,
        AGENT_CONTAINERS,
        json!({"id": "i-node1", "status": "GONE"}),
    )
    .await;
    assert_eq!(
        answer.json["errors"][0]["message"],
        "Missing or invalid API parameters. (\"GONE\" is not a valid KernelStatus)",
        "{}",
        answer.text
    );
}
