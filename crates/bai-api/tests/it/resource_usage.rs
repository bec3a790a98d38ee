//! `/resource/usage/month`, `/resource/usage/period` and `/resource/stats/{user,admin}/month` on
//! the real router against the halfstack: `kernels` rows (and their sessions) inserted by the test,
//! statistics in `last_stat` or in Redis, and the numbers and spellings of the answers checked.

use bai_api::testing::TestCluster;
use bai_api::testing::{SUPERADMIN, USER, signed_request};
use bai_etcd_store::Scope;
use chrono::{DateTime, Duration, Utc};
use http::Method;
use sea_orm::ConnectionTrait;
use sea_orm::prelude::Uuid;
use serde_json::{Value, json};

use crate::common::{Answer, Api};

const DEFAULT_GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const MODEL_STORE_GROUP: &str = "8e32dd28-d319-4e3b-8851-ea37837699a5";
const USER_UUID: &str = "dfa9da54-4b28-432f-be29-c0d680c7a412";
const ADMIN_UUID: &str = "f38dea23-50fa-42a0-b5ae-338f5f4693f4";

/// A kernel row to insert (with a session of its own unless `session` is given).
struct Kernel {
    id: Uuid,
    session: Uuid,
    session_name: &'static str,
    group: &'static str,
    user: &'static str,
    access_key: &'static str,
    status: &'static str,
    created_at: String,
    terminated_at: Option<String>,
    occupied_slots: Value,
    last_stat: Option<Value>,
    attached_devices: Option<Value>,
    vfolder_mounts: Option<Value>,
    resource_opts: Option<Value>,
    status_history: Option<Value>,
    agent: &'static str,
}

impl Kernel {
    fn new(status: &'static str, created_at: &str, terminated_at: Option<&str>) -> Kernel {
        Kernel {
            id: Uuid::new_v4(),
            session: Uuid::new_v4(),
            session_name: "sess",
            group: DEFAULT_GROUP,
            user: USER_UUID,
            access_key: USER.access_key,
            status,
            created_at: created_at.to_owned(),
            terminated_at: terminated_at.map(str::to_owned),
            occupied_slots: json!({"cpu": "1", "mem": "1073741824"}),
            last_stat: None,
            attached_devices: None,
            vfolder_mounts: None,
            resource_opts: None,
            status_history: None,
            agent: "i-agent-a",
        }
    }

    async fn insert(&self, api: &Api, with_session: bool) {
        let db = &api.cluster.database.connection;
        let json = |value: &Option<Value>| {
            value
                .as_ref()
                .map_or("NULL".to_owned(), |value| format!("'{value}'"))
        };
        let terminated = self
            .terminated_at
            .as_ref()
            .map_or("NULL".to_owned(), |at| format!("'{at}'"));
        db.execute_unprepared(&format!(
            "INSERT INTO agents (id, status, region, scaling_group, schedulable, available_slots, \
             occupied_slots, addr, version, architecture, compute_plugins) VALUES ('{agent}', \
             'LOST', 'local', 'default', false, '{{}}', '{{}}', 'tcp://127.0.0.1:6001', '24.03.11', \
             'x86_64', '{{}}') ON CONFLICT (id) DO NOTHING",
            agent = self.agent,
        ))
        .await
        .expect("agent row");
        if with_session {
            db.execute_unprepared(&format!(
                "INSERT INTO sessions (id, name, cluster_size, domain_name, group_id, user_uuid, \
                 access_key, occupying_slots, requested_slots, use_host_network, status) \
                 VALUES ('{id}', '{name}', 1, 'default', '{group}', '{user}', '{ak}', '{{}}', \
                 '{{}}', false, '{status}')",
                id = self.session,
                name = self.session_name,
                group = self.group,
                user = self.user,
                ak = self.access_key,
                status = self.status,
            ))
            .await
            .expect("session row");
        }
        db.execute_unprepared(&format!(
            "INSERT INTO kernels (id, session_id, session_name, cluster_size, cluster_role, \
             cluster_idx, local_rank, cluster_hostname, domain_name, group_id, user_uuid, \
             access_key, image, agent, container_id, occupied_slots, requested_slots, \
             occupied_shares, repl_in_port, repl_out_port, stdin_port, stdout_port, \
             use_host_network, status, created_at, terminated_at, status_changed, last_stat, \
             attached_devices, vfolder_mounts, resource_opts, status_history) VALUES \
             ('{id}', '{session}', '{name}', 1, 'main', 0, 0, 'main1', 'default', '{group}', \
             '{user}', '{ak}', 'cr.backend.ai/stable/python:3.9', '{agent}', 'c-{id}', \
             '{slots}', '{{}}', '{{}}', 0, 0, 0, 0, false, '{status}', '{created}', \
             {terminated}, {terminated}, {last_stat}, {devices}, {mounts}, {opts}, {history})",
            id = self.id,
            session = self.session,
            name = self.session_name,
            group = self.group,
            user = self.user,
            ak = self.access_key,
            agent = self.agent,
            slots = self.occupied_slots,
            status = self.status,
            created = self.created_at,
            last_stat = json(&self.last_stat),
            devices = json(&self.attached_devices),
            mounts = json(&self.vfolder_mounts),
            opts = json(&self.resource_opts),
            history = json(&self.status_history),
        ))
        .await
        .expect("kernel row");
    }
}

async fn get(api: &Api, path: &str, who: &bai_api::testing::ExampleUser) -> Answer {
    api.send(signed_request(Method::GET, path, None, who)).await
}

/// Live statistics as an agent writes them to Redis (msgpack, numbers as strings).
async fn put_live_stat(api: &Api, kernel: Uuid, stat: &Value) {
    api.ctx
        .redis()
        .stat
        .raw()
        .set(
            &kernel.to_string(),
            rmp_serde::to_vec_named(stat).expect("msgpack"),
        )
        .await
        .expect("redis set");
}

/// The March 2024 data set: a terminated kernel with full statistics in `last_stat`, a running one
/// whose statistics are only in Redis, a terminated one without statistics anywhere, one of
/// February and one of another project.
struct March {
    full: Kernel,
    running: Kernel,
    no_stats: Kernel,
    february: Kernel,
    other_project: Kernel,
}

async fn march(api: &Api) -> March {
    let mut full = Kernel::new(
        "TERMINATED",
        "2024-03-10 10:00:00+00",
        Some("2024-03-11 12:30:00.5+00"),
    );
    full.session_name = "full-sess";
    full.occupied_slots = json!({"cpu": "2", "mem": "2147483648", "cuda.shares": "0.5"});
    full.last_stat = Some(json!({
        "cpu_used": {"current": "1500.5", "capacity": null},
        "mem": {"current": "1000", "capacity": "536870912"},
        "io_read": {"current": "100"},
        "io_write": {"current": "200"},
        "io_scratch_size": {"current": "1", "stats.max": "4096"},
    }));
    full.attached_devices = Some(json!({"cuda": [
        {"model_name": "A100", "data": {"smp": 108, "mem": 42949672960_i64}},
        {"model_name": "A100", "data": {"smp": 108, "mem": "42949672960"}},
    ]}));
    full.vfolder_mounts = Some(json!([
        {"name": "b", "host_path": "/data/b"},
        {"name": "a", "host_path": "/data/a"},
    ]));
    full.resource_opts = Some(json!({"shmem": 67108864}));
    full.status_history = Some(json!({
        "PENDING": "2024-03-10T09:59:00+00:00",
        "SCHEDULED": "2024-03-10T09:59:30+00:00",
        "TERMINATED": "2024-03-11T12:30:00.500000+00:00",
    }));
    full.insert(api, true).await;

    let mut running = Kernel::new("RUNNING", "2024-03-20 00:00:00+00", None);
    running.session_name = "running-sess";
    running.agent = "i-agent-b";
    running.insert(api, true).await;
    put_live_stat(
        api,
        running.id,
        &json!({"cpu_used": {"current": "10"}, "mem": {"capacity": "1024"},
                "io_read": {"current": "5"}, "io_write": {"current": "6"}}),
    )
    .await;

    let no_stats = Kernel::new(
        "TERMINATED",
        "2024-03-05 00:00:00+00",
        Some("2024-03-05 01:00:00+00"),
    );
    no_stats.insert(api, true).await;

    let mut february = Kernel::new(
        "TERMINATED",
        "2024-02-01 00:00:00+00",
        Some("2024-02-02 00:00:00+00"),
    );
    february.last_stat = Some(json!({"cpu_used": {"current": "1"}}));
    february.insert(api, true).await;

    let mut other_project = Kernel::new(
        "TERMINATED",
        "2024-03-15 00:00:00+00",
        Some("2024-03-15 00:05:00+00"),
    );
    other_project.group = MODEL_STORE_GROUP;
    other_project.last_stat = Some(json!({"cpu_used": {"current": "3"}}));
    other_project.insert(api, true).await;
    March {
        full,
        running,
        no_stats,
        february,
        other_project,
    }
}

#[tokio::test]
async fn monthly_usage_lists_a_projects_kernels_with_their_statistics() {
    let api = Api::start("res_usage_month").await;
    let data = march(&api).await;
    let path = format!("/resource/usage/month?month=202403&group_ids={DEFAULT_GROUP}");
    let answer = get(&api, &path, &SUPERADMIN).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let projects = answer.json.as_array().expect("a list");
    assert_eq!(projects.len(), 1, "{}", answer.text);
    let project = &projects[0];
    // Terminated kernels first (earliest termination first), the running one last; the kernel
    // without statistics is left out, as are February's and the other project's.
    let ids: Vec<&str> = project["c_infos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|info| info["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [data.full.id.to_string(), data.running.id.to_string()],
        "{}",
        answer.text
    );
    let full = format!(
        "{{\"id\": \"{id}\", \"session_id\": \"{session}\", \"container_id\": \"c-{id}\", \
         \"domain_name\": \"default\", \"group_id\": \"{DEFAULT_GROUP}\", \"group_name\": \"default\", \
         \"name\": \"full-sess\", \"access_key\": \"AKIANABBDUSEREXAMPLE\", \"email\": \"user@lablup.com\", \
         \"full_name\": \"User Lablup\", \"agent\": \"i-agent-a\", \"cpu_allocated\": 2.0, \
         \"cpu_used\": 1500.5, \"mem_allocated\": 2147483648, \"mem_used\": 536870912, \
         \"shared_memory\": 67108864, \"disk_allocated\": 0, \"disk_used\": 4096, \"io_read\": 100, \
         \"io_write\": 200, \"used_time\": \"1 day, 2:30:00.500000\", \"used_days\": 2, \
         \"device_type\": [\"A100\"], \"smp\": 216.0, \"gpu_mem_allocated\": 85899345920.0, \
         \"gpu_allocated\": 0.5, \"nfs\": [\"/data/a\", \"/data/b\"], \
         \"image_id\": \"cr.backend.ai/stable/python:3.9\", \
         \"image_name\": \"cr.backend.ai/stable/python:3.9\", \
         \"created_at\": \"2024-03-10 10:00:00+00:00\", \
         \"terminated_at\": \"2024-03-11 12:30:00.500000+00:00\", \"status\": \"TERMINATED\", \
         \"status_info\": null, \"status_changed\": \"2024-03-11 12:30:00.500000+00:00\", \
         \"status_history\": {{\"PENDING\": \"2024-03-10T09:59:00+00:00\", \
         \"SCHEDULED\": \"2024-03-10T09:59:30+00:00\", \
         \"TERMINATED\": \"2024-03-11T12:30:00.500000+00:00\"}}, \"cluster_mode\": \"SINGLE_NODE\"}}",
        id = data.full.id,
        session = data.full.session,
    );
    assert!(answer.text.contains(&full), "{}\n{full}", answer.text);
    let running = &project["c_infos"][1];
    assert_eq!(running["terminated_at"], "None");
    assert_eq!(running["used_time"], Value::Null);
    assert_eq!(running["used_days"], Value::Null);
    assert_eq!(running["nfs"], Value::Null);
    assert_eq!(running["cpu_used"], 10.0);
    assert_eq!(running["mem_used"], 1024);
    assert_eq!(running["status_history"], json!({}));
    assert!(
        answer.text.starts_with(&format!(
            "[{{\"domain_name\": \"default\", \"g_id\": \"{DEFAULT_GROUP}\", \"g_name\": \"default\", \
             \"g_cpu_allocated\": 3.0, \"g_cpu_used\": 1510.5, \"g_mem_allocated\": 3221225472, \
             \"g_mem_used\": 536871936, \"g_shared_memory\": 67108864, \"g_disk_allocated\": 0, \
             \"g_disk_used\": 4096, \"g_io_read\": 105, \"g_io_write\": 206, \
             \"g_device_type\": [\"A100\"], \"g_smp\": 216.0, \"g_gpu_mem_allocated\": 85899345920.0, \
             \"g_gpu_allocated\": 0.5, \"c_infos\": ["
        )),
        "{}",
        answer.text
    );

    // Another project's month; a project without kernels.
    let path = format!("/resource/usage/month?month=202403&group_ids={MODEL_STORE_GROUP}");
    let answer = get(&api, &path, &SUPERADMIN).await;
    assert_eq!(
        answer.json[0]["c_infos"][0]["id"],
        data.other_project.id.to_string()
    );
    let path = format!("/resource/usage/month?month=202402&group_ids={MODEL_STORE_GROUP}");
    assert_eq!(get(&api, &path, &SUPERADMIN).await.json, json!([]));
    let path = format!("/resource/usage/month?month=202402&group_ids={DEFAULT_GROUP}");
    let answer = get(&api, &path, &SUPERADMIN).await;
    assert_eq!(
        answer.json[0]["c_infos"][0]["id"],
        data.february.id.to_string()
    );
    assert!(!answer.text.contains(&data.no_stats.id.to_string()));
}

#[tokio::test]
async fn monthly_usage_refuses_bad_parameters_and_non_superadmins() {
    let api = Api::start("res_usage_month_params").await;
    let cases = [
        ("month=202403", json!({"group_ids": "is required"})),
        (
            "group_ids=x&month=202403",
            json!({"group_ids": "cannot convert value to UUID"}),
        ),
        (
            &format!("group_ids={DEFAULT_GROUP}&month=2024-3") as &str,
            json!({"month": "does not match pattern ^\\d{6}"}),
        ),
        (
            &format!("group_ids={DEFAULT_GROUP}&month=202403&x=1"),
            json!({"x": "x is not allowed key"}),
        ),
    ];
    for (query, data) in cases {
        let answer = get(&api, &format!("/resource/usage/month?{query}"), &SUPERADMIN).await;
        answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
        assert_eq!(answer.json["data"], data, "{query}");
    }
    for month in ["202413", "2024031", "000001"] {
        let path = format!("/resource/usage/month?group_ids={DEFAULT_GROUP}&month={month}");
        get(&api, &path, &SUPERADMIN).await.assert_problem(
            400,
            "invalid-api-params",
            Some("Invalid date values"),
        );
    }
    let path = format!("/resource/usage/month?group_ids={DEFAULT_GROUP}&month=202403");
    get(&api, &path, &USER)
        .await
        .assert_problem(401, "auth-failed", Some("Unauthorized access"));
}

#[tokio::test]
async fn period_usage_nests_projects_sessions_and_kernels() {
    let api = Api::start("res_usage_period").await;
    let data = march(&api).await;
    // A second kernel in the full kernel's session, without statistics.
    let mut sibling = Kernel::new(
        "TERMINATED",
        "2024-03-10 11:00:00+00",
        Some("2024-03-10 11:30:00+00"),
    );
    sibling.session = data.full.session;
    sibling.agent = "i-agent-c";
    sibling.last_stat = Some(json!({}));
    sibling.insert(&api, false).await;

    let answer = get(
        &api,
        "/resource/usage/period?start_date=20240301&end_date=20240331",
        &SUPERADMIN,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let projects = answer.json.as_array().expect("a list");
    // By the creation of their first kernel: the default project (5 March) first.
    let project_ids: Vec<&str> = projects
        .iter()
        .map(|project| project["project_id"].as_str().unwrap())
        .collect();
    assert_eq!(project_ids, [DEFAULT_GROUP, MODEL_STORE_GROUP]);
    let project = &projects[0];
    assert_eq!(project["group_unit"], "project");
    // The project is named after its first kernel (the one without statistics).
    assert_eq!(project["kernel_id"], data.no_stats.id.to_string());
    assert_eq!(project["full_name"], Value::Null);
    assert_eq!(project["status"], Value::Null);
    assert_eq!(project["terminated_at"], Value::Null);
    assert_eq!(project["extra_info"], json!({}));
    assert_eq!(
        project["images"],
        json!(["cr.backend.ai/stable/python:3.9"])
    );
    assert_eq!(
        project["agents"],
        json!(["i-agent-a", "i-agent-b", "i-agent-c"])
    );
    // Only kernels with statistics count: the full one and the running one (Redis).
    assert_eq!(project["total_usage"]["cpu_allocated"], 3.0);
    assert_eq!(project["total_usage"]["cpu_used"], 1510.5);
    assert_eq!(project["total_usage"]["mem_used"], 536871936);
    assert_eq!(project["total_usage"]["io_read"], 105);
    assert_eq!(project["total_usage"]["nfs"], json!(["/data/a", "/data/b"]));
    let sessions = project["sessions"].as_object().unwrap();
    assert_eq!(sessions.len(), 3);
    let session = &sessions[&data.full.session.to_string()];
    assert_eq!(session["group_unit"], "session");
    assert_eq!(session["session_name"], "full-sess");
    assert_eq!(session["kernel_id"], data.full.id.to_string());
    assert_eq!(session["status"], "TERMINATED");
    assert_eq!(session["scheduled_at"], "2024-03-10T09:59:30+00:00");
    assert_eq!(
        session["status_history"],
        "{'PENDING': '2024-03-10T09:59:00+00:00', 'SCHEDULED': '2024-03-10T09:59:30+00:00', \
         'TERMINATED': '2024-03-11T12:30:00.500000+00:00'}"
    );
    assert_eq!(session["agents"], json!(["i-agent-a", "i-agent-c"]));
    // Python's sets, listed sorted.
    let mut containers = [format!("c-{}", data.full.id), format!("c-{}", sibling.id)];
    containers.sort();
    assert_eq!(session["container_ids"], json!(containers));
    assert_eq!(session["total_usage"]["gpu_allocated"], 0.5);
    let kernels = session["kernels"].as_object().unwrap();
    assert_eq!(kernels.len(), 2);
    let kernel = &kernels[&sibling.id.to_string()];
    assert_eq!(kernel["group_unit"], "kernel");
    assert_eq!(kernel["agent"], "i-agent-c");
    assert_eq!(kernel["last_stat"], json!({}));
    assert_eq!(kernel["used_time"], "0:30:00");
    assert_eq!(kernel["used_days"], 1);
    assert_eq!(
        kernel["total_usage"],
        json!({"nfs": [], "cpu_allocated": 0.0, "cpu_used": 0.0, "mem_allocated": 0,
               "mem_used": 0, "shared_memory": 0, "disk_allocated": 0, "disk_used": 0,
               "io_read": 0, "io_write": 0, "device_type": [], "smp": 0.0,
               "gpu_mem_allocated": 0.0, "gpu_allocated": 0.0})
    );
    // Key order: the base fields, then the level's own.
    let text = &answer.text;
    let kernel_start = text
        .find(&format!("\"{}\": {{\"created_at\"", data.full.id))
        .expect("the full kernel");
    assert!(
        text[kernel_start..].contains(
            "\"gpu_mem_allocated\": 85899345920.0, \"gpu_allocated\": 0.5}, \"agent\": \"i-agent-a\", \"group_unit\": \"kernel\"}"
        ),
        "{text}"
    );
    assert!(
        text.starts_with("[{\"created_at\": \"2024-03-05 00:00:00+00:00\", \"used_time\": \"1:00:00\", \"used_days\": 1, \"user_id\": \"dfa9da54-4b28-432f-be29-c0d680c7a412\", \"user_email\": \"user@lablup.com\", \"access_key\": \"AKIANABBDUSEREXAMPLE\", \"project_id\": \"2de2b969-1d04-48a6-af16-0bc8adb3c831\", \"project_name\": \"default\", "),
        "{text}"
    );

    // One project, by `project_id` or its alias `group_id`.
    for key in ["project_id", "group_id"] {
        let path = format!(
            "/resource/usage/period?start_date=20240301&end_date=20240331&{key}={MODEL_STORE_GROUP}"
        );
        let answer = get(&api, &path, &SUPERADMIN).await;
        assert_eq!(answer.json.as_array().unwrap().len(), 1, "{}", answer.text);
        assert_eq!(
            answer.json[0]["kernel_id"],
            data.other_project.id.to_string()
        );
    }
    // The running kernel counts in any later period; February's only in February.
    let answer = get(
        &api,
        "/resource/usage/period?start_date=20240401&end_date=20240401",
        &SUPERADMIN,
    )
    .await;
    assert_eq!(answer.json[0]["kernel_id"], data.running.id.to_string());
    assert_eq!(answer.json[0]["sessions"].as_object().unwrap().len(), 1);
    let answer = get(
        &api,
        "/resource/usage/period?start_date=20240201&end_date=20240201",
        &SUPERADMIN,
    )
    .await;
    assert_eq!(answer.json[0]["kernel_id"], data.february.id.to_string());
}

#[tokio::test]
async fn period_usage_refuses_bad_parameters_and_non_superadmins() {
    let api = Api::start("res_usage_period_params").await;
    let invalid = |answer: Answer, msg: &str| {
        answer.assert_problem(400, "invalid-api-params", Some(msg));
    };
    let path = |query: &str| format!("/resource/usage/period?{query}");
    invalid(
        get(
            &api,
            &path("start_date=20240101&end_date=20240410"),
            &SUPERADMIN,
        )
        .await,
        "Cannot query more than 100 days",
    );
    // 100 days, both ends counted.
    let answer = get(
        &api,
        &path("start_date=20240101&end_date=20240409"),
        &SUPERADMIN,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    invalid(
        get(
            &api,
            &path("start_date=20240102&end_date=20240101"),
            &SUPERADMIN,
        )
        .await,
        "end_date must be later than start_date.",
    );
    invalid(
        get(
            &api,
            &path("start_date=20230229&end_date=20230301"),
            &SUPERADMIN,
        )
        .await,
        "Invalid date values",
    );
    invalid(
        get(
            &api,
            &path("start_date=99991231&end_date=99991231"),
            &SUPERADMIN,
        )
        .await,
        "Invalid date values",
    );
    let cases = [
        ("end_date=20240101", json!({"start_date": "is required"})),
        (
            "start_date=2024010&end_date=20240101",
            json!({"start_date": "does not match pattern ^\\d{8}$"}),
        ),
        (
            "start_date=20240101&end_date=20240101&project_id=nope",
            json!({"project_id": "cannot convert value to UUID"}),
        ),
        (
            "start_date=20240101&end_date=20240101&group_id=",
            json!({"group_id": "blank value is not allowed"}),
        ),
    ];
    for (query, data) in cases {
        let answer = get(&api, &path(query), &SUPERADMIN).await;
        answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
        assert_eq!(answer.json["data"], data, "{query}");
    }
    get(&api, &path("start_date=20240101&end_date=20240101"), &USER)
        .await
        .assert_problem(401, "auth-failed", Some("Unauthorized access"));
}

#[tokio::test]
async fn a_period_is_read_in_the_configured_time_zone() {
    let cluster = TestCluster::start("res_usage_tz").await;
    cluster
        .namespace
        .store()
        .await
        .put("config/system/timezone", "Asia/Seoul", Scope::Global)
        .await
        .expect("etcd put");
    let api = Api::on(cluster).await;
    // 23:30 on 29 February in UTC is 08:30 on 1 March in Seoul; it ran into 2 March there.
    let mut kernel = Kernel::new(
        "TERMINATED",
        "2024-02-29 23:30:00+00",
        Some("2024-03-01 15:30:00+00"),
    );
    kernel.last_stat = Some(json!({"cpu_used": {"current": "1"}}));
    kernel.insert(&api, true).await;
    let month =
        |month: &str| format!("/resource/usage/month?group_ids={DEFAULT_GROUP}&month={month}");
    let answer = get(&api, &month("202403"), &SUPERADMIN).await;
    assert_eq!(
        answer.json[0]["c_infos"][0]["used_days"], 2,
        "{}",
        answer.text
    );
    let answer = get(&api, &month("202402"), &SUPERADMIN).await;
    assert_eq!(answer.json, json!([]), "{}", answer.text);
    let period = |day: &str| format!("/resource/usage/period?start_date={day}&end_date={day}");
    let answer = get(&api, &period("20240229"), &SUPERADMIN).await;
    assert_eq!(answer.json, json!([]), "{}", answer.text);
    let answer = get(&api, &period("20240302"), &SUPERADMIN).await;
    assert_eq!(answer.json[0]["kernel_id"], kernel.id.to_string());
}

fn at(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

/// The indexes of the bins with at least one session.
fn busy_bins(bins: &[Value]) -> Vec<usize> {
    bins.iter()
        .enumerate()
        .filter(|(_, bin)| bin["num_sessions"]["value"] != 0)
        .map(|(index, _)| index)
        .collect()
}

#[tokio::test]
async fn monthly_statistics_bin_the_kernels_of_the_last_30_days() {
    let api = Api::start("res_stats_month").await;
    let now = Utc::now();
    let mut mine = Kernel::new(
        "TERMINATED",
        &at(now - Duration::minutes(130)),
        Some(&at(now - Duration::minutes(70))),
    );
    mine.occupied_slots = json!({"cpu": "2", "mem": "1073741824", "cuda.devices": "1"});
    mine.insert(&api, true).await;
    put_live_stat(
        &api,
        mine.id,
        &json!({"io_read": {"current": "123"}, "io_write": {"current": "456"},
                "io_scratch_size": {"stats.max": "789"}}),
    )
    .await;
    let mut admins = Kernel::new(
        "TERMINATED",
        &at(now - Duration::minutes(100)),
        Some(&at(now - Duration::minutes(40))),
    );
    admins.user = ADMIN_UUID;
    admins.access_key = SUPERADMIN.access_key;
    admins.occupied_slots = json!({"cpu": "1.5", "mem": "1024", "cuda.shares": "0.25"});
    admins.insert(&api, true).await;
    // Out of the window, or not counted: ended 31 days ago, still running, cancelled.
    Kernel::new(
        "TERMINATED",
        &at(now - Duration::days(32)),
        Some(&at(now - Duration::days(31))),
    )
    .insert(&api, true)
    .await;
    Kernel::new("RUNNING", &at(now - Duration::hours(1)), None)
        .insert(&api, true)
        .await;
    Kernel::new(
        "CANCELLED",
        &at(now - Duration::hours(1)),
        Some(&at(now - Duration::minutes(50))),
    )
    .insert(&api, true)
    .await;

    let answer = get(&api, "/resource/stats/user/month", &USER).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let bins = answer.json.as_array().expect("a list");
    assert_eq!(bins.len(), 2880);
    assert!(
        answer.text.starts_with("[{\"date\": "),
        "{}",
        &answer.text[..200]
    );
    assert!(
        answer.text.contains(", \"num_sessions\": {\"value\": 0, \"unit_hint\": \"count\"}, \"cpu_allocated\": {\"value\": 0, \"unit_hint\": \"count\"}, \"mem_allocated\": {\"value\": 0, \"unit_hint\": \"bytes\"}, \"gpu_allocated\": {\"value\": 0.0, \"unit_hint\": \"count\"}, \"io_read_bytes\": {\"value\": 0, \"unit_hint\": \"bytes\"}, \"io_write_bytes\": {\"value\": 0, \"unit_hint\": \"bytes\"}, \"disk_used\": {\"value\": 0, \"unit_hint\": \"bytes\"}}"),
        "{}",
        &answer.text[..400]
    );
    // 15 minutes apart, the first 30 days ago.
    let first = bins[0]["date"].as_f64().unwrap();
    let expected_first = (now - Duration::days(30)).timestamp_micros() as f64 / 1e6;
    assert!(
        (first - expected_first).abs() < 60.0,
        "{first} {expected_first}"
    );
    assert_eq!(bins[1]["date"].as_f64().unwrap() - first, 900.0);
    // An hour of use spans 4 or 5 bins, ending about 70 minutes before the last bin's end.
    let busy = busy_bins(bins);
    assert!((4..=5).contains(&busy.len()), "{busy:?}");
    assert!(
        busy.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "{busy:?}"
    );
    assert!((2870..=2876).contains(busy.last().unwrap()), "{busy:?}");
    let bin = &bins[busy[0]];
    assert_eq!(bin["num_sessions"]["value"], 1);
    assert_eq!(bin["cpu_allocated"]["value"], 2);
    assert_eq!(bin["mem_allocated"]["value"], 1073741824);
    assert_eq!(
        bin["gpu_allocated"],
        json!({"value": 1.0, "unit_hint": "count"})
    );
    assert_eq!(bin["io_read_bytes"]["value"], 123);
    assert_eq!(bin["io_write_bytes"]["value"], 456);
    // The reference reads the scratch size under a key agents never write.
    assert_eq!(bin["disk_used"]["value"], 0);

    // Everyone's: the admin's kernel (1.5 CPUs count as 1) overlaps the user's.
    let answer = get(&api, "/resource/stats/admin/month", &SUPERADMIN).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let bins = answer.json.as_array().expect("a list");
    let both: Vec<&Value> = bins
        .iter()
        .filter(|bin| bin["num_sessions"]["value"] == 2)
        .collect();
    assert!(!both.is_empty(), "{}", answer.text);
    assert_eq!(both[0]["cpu_allocated"]["value"], 3);
    assert_eq!(both[0]["mem_allocated"]["value"], 1073742848);
    assert_eq!(both[0]["gpu_allocated"]["value"], 1.25);
    get(&api, "/resource/stats/admin/month", &USER)
        .await
        .assert_problem(401, "auth-failed", Some("Unauthorized access"));

    // The superadmin's own statistics hold only the superadmin's kernel.
    let answer = get(&api, "/resource/stats/user/month", &SUPERADMIN).await;
    let bins = answer.json.as_array().expect("a list");
    let busy = busy_bins(bins);
    assert!((4..=5).contains(&busy.len()), "{busy:?}");
    assert_eq!(bins[busy[0]]["io_read_bytes"]["value"], 0);
    assert_eq!(bins[busy[0]]["gpu_allocated"]["value"], 0.25);
}

#[tokio::test]
async fn hostile_parameters_get_a_400_naming_the_field() {
    let api = Api::start("res_usage_hostile").await;
    let group = format!("group_ids={DEFAULT_GROUP}");
    let hostile = [
        "",
        "%00",
        "%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%94%EF%BC%90%EF%BC%93",
        "-1",
        "99999999999999999999",
        "00000000",
        "000000",
        "99991299",
        "%F0%9F%92%A5",
    ];
    for value in hostile {
        for (path, field) in [
            (
                format!("/resource/usage/month?{group}&month={value}"),
                "month",
            ),
            (
                format!("/resource/usage/month?month=202403&group_ids={value}"),
                "group_ids",
            ),
            (
                format!("/resource/usage/period?start_date={value}&end_date=20240101"),
                "start_date",
            ),
            (
                format!("/resource/usage/period?start_date=20240101&end_date={value}"),
                "end_date",
            ),
            (
                format!(
                    "/resource/usage/period?start_date=20240101&end_date=20240101&project_id={value}"
                ),
                "project_id",
            ),
        ] {
            let answer = get(&api, &path, &SUPERADMIN).await;
            answer.assert_problem(400, "invalid-api-params", None);
            let named = answer.json["data"].get(field).is_some()
                || answer.json["msg"] == "Invalid date values";
            assert!(named, "{path}: {}", answer.text);
        }
    }
}
