//! `/resource/presets` and `/resource/check-presets` on the real router against the halfstack, with
//! the install guide's fixtures (no agents, no sessions) and with agents and kernels added. Each
//! test has its own database and etcd namespace.

use crate::common::{Answer, Api};
use bai_api::ManagerStatus;
use bai_api::testing::{MONITOR, SUPERADMIN, USER, signed_request};
use bai_db_models::fixtures::{self, FixtureFile};
use bai_etcd_store::Scope;
use http::Method;
use serde_json::{Value, json};

const VISIBILITY_KEY: &str = "config/api/resources/group_resource_visibility";

/// A request with a valid Date but no Authorization: anonymous, so refused by user routes.
fn unsigned(method: Method, path: &str) -> http::Request<axum::body::Body> {
    let mut request = signed_request(method, path, None, &USER);
    request.headers_mut().remove("authorization");
    request
}

async fn check_presets(api: &Api, body: Option<Value>) -> Answer {
    api.send(signed_request(
        Method::POST,
        "/resource/check-presets",
        body.as_ref(),
        &USER,
    ))
    .await
}

/// The install guide's presets as `check-presets` lists them when only `cpu` and `mem` are known
/// (the `cuda.*` slots of the cuda presets are not known slots, so they are dropped).
fn fixture_presets(allocatable: [bool; 6]) -> Value {
    let presets = [
        ("cpu01-small", "1", "1073741824", None),
        ("cpu02-medium", "4", "8589934592", Some("1073741824")),
        ("cpu03-large", "8", "17179869184", Some("2147483648")),
        ("cuda01-small", "1", "4294967296", None),
        ("cuda02-medium", "4", "17179869184", Some("1073741824")),
        ("cuda03-large", "8", "34359738368", Some("2147483648")),
    ];
    Value::Array(
        presets
            .iter()
            .zip(allocatable)
            .map(|((name, cpu, mem, shm), allocatable)| {
                json!({"name": name, "resource_slots": {"cpu": cpu, "mem": mem},
                       "shared_memory": shm, "allocatable": allocatable})
            })
            .collect(),
    )
}

#[tokio::test]
async fn presets_are_listed_with_known_slots_only() {
    let api = Api::start("res_presets").await;
    let answer = api
        .send(signed_request(
            Method::GET,
            "/resource/presets",
            None,
            &USER,
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer.text.starts_with(
            r#"{"presets": [{"name": "cpu01-small", "shared_memory": null, "resource_slots": {"cpu": "1", "mem": "1073741824"}}, {"name": "cpu02-medium", "shared_memory": "1073741824", "resource_slots": {"cpu": "4", "mem": "8589934592"}}"#
        ),
        "{}",
        answer.text
    );
    let expected: Vec<Value> = fixture_presets([false; 6])
        .as_array()
        .unwrap()
        .iter()
        .map(|preset| {
            json!({"name": preset["name"], "shared_memory": preset["shared_memory"],
                   "resource_slots": preset["resource_slots"]})
        })
        .collect();
    assert_eq!(answer.json, json!({"presets": expected}));
    assert!(answer.header("x-ratelimit-remaining").is_some());

    // Once the cuda slots are known, every preset lists them (zero where it has none).
    let store = api.cluster.namespace.store().await;
    for slot in ["cuda.device", "cuda.shares"] {
        store
            .put(
                &format!("config/resource_slots/{slot}"),
                "count",
                Scope::Global,
            )
            .await
            .expect("etcd put");
    }
    // The list is the same for every caller and served from the answer cache: a change in etcd
    // shows once the cached answer is older than its bound.
    tokio::time::sleep(bai_api::cache::ANSWER_MAX_AGE).await;
    // Not gated: a frozen manager still lists presets.
    api.ctx
        .set_manager_status(ManagerStatus::Frozen)
        .await
        .expect("freeze");
    let answer = api
        .send(signed_request(
            Method::GET,
            "/resource/presets",
            None,
            &SUPERADMIN,
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.json["presets"][0],
        json!({"name": "cpu01-small", "shared_memory": null,
               "resource_slots": {"cpu": "1", "mem": "1073741824", "cuda.device": "0", "cuda.shares": "0"}})
    );
    assert_eq!(
        answer.json["presets"][4],
        json!({"name": "cuda02-medium", "shared_memory": "1073741824",
               "resource_slots": {"cpu": "4", "cuda.device": "2", "cuda.shares": "2.0", "mem": "17179869184"}})
    );

    api.send(unsigned(Method::GET, "/resource/presets"))
        .await
        .assert_problem(401, "auth-failed", Some("Unauthorized access"));
}

#[tokio::test]
async fn check_presets_with_an_empty_body_reads_the_query_and_defaults() {
    let api = Api::start("res_check_empty").await;
    // What the 23.09 SDK sends: an empty POST (text/plain), so the query string (here none) is read.
    let answer = check_presets(&api, None).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let nan = json!({"cpu": "NaN", "mem": "NaN"});
    let zero = json!({"cpu": "0", "mem": "0"});
    let unlimited = json!({"cpu": "Infinity", "mem": "Infinity"});
    assert_eq!(
        answer.json,
        json!({
            "keypair_limits": unlimited,
            "keypair_using": zero,
            "keypair_remaining": unlimited,
            "group_limits": nan,
            "group_using": nan,
            "group_remaining": nan,
            "scaling_group_remaining": zero,
            "scaling_groups": {"default": {"using": zero, "remaining": zero}},
            "presets": fixture_presets([false; 6]),
        })
    );
    assert!(
        answer.text.starts_with(
            r#"{"keypair_limits": {"cpu": "Infinity", "mem": "Infinity"}, "keypair_using": {"cpu": "0", "mem": "0"}, "keypair_remaining": {"cpu": "Infinity", "mem": "Infinity"}, "group_limits": {"cpu": "NaN", "mem": "NaN"}"#
        ),
        "{}",
        answer.text
    );

    // The project from the query string of an empty POST.
    let answer = api
        .send(signed_request(
            Method::POST,
            "/resource/check-presets?group=model-store",
            None,
            &USER,
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["scaling_group_remaining"], zero);
    api.send(signed_request(
        Method::POST,
        "/resource/check-presets?group=nope",
        None,
        &USER,
    ))
    .await
    .assert_problem(
        400,
        "invalid-api-params",
        Some("Unknown project (name: nope)"),
    );
}

#[tokio::test]
async fn check_presets_validates_the_project_and_resource_group() {
    let api = Api::start("res_check_params").await;
    let answer = check_presets(
        &api,
        Some(json!({"group": "default", "scaling_group": null})),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let answer = check_presets(&api, Some(json!({"scaling_group": "default"}))).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.json["scaling_groups"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["default"]
    );
    // Another member of the project.
    let answer = api
        .send(signed_request(
            Method::POST,
            "/resource/check-presets",
            Some(&json!({"group": "model-store"})),
            &MONITOR,
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    check_presets(&api, Some(json!({"group": "nope"})))
        .await
        .assert_problem(
            400,
            "invalid-api-params",
            Some("Unknown project (name: nope)"),
        );
    check_presets(&api, Some(json!({"scaling_group": "nowhere"})))
        .await
        .assert_problem(400, "invalid-api-params", Some("Unknown scaling group"));
    for (body, data) in [
        (
            json!({"group": ""}),
            json!({"group": "blank value is not allowed"}),
        ),
        (
            json!({"group": null}),
            json!({"group": "invalid type: null, expected a string"}),
        ),
        (
            json!({"scaling_group": ""}),
            json!({"scaling_group": "blank value is not allowed"}),
        ),
        (
            json!({"bogus": 1}),
            json!({"bogus": "bogus is not allowed key"}),
        ),
    ] {
        let answer = check_presets(&api, Some(body.clone())).await;
        answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
        assert_eq!(answer.json["data"], data, "{body}");
    }
    api.send(unsigned(Method::POST, "/resource/check-presets"))
        .await
        .assert_problem(401, "auth-failed", Some("Unauthorized access"));

    // Gated READ_ALLOWED: fine while frozen, 503 otherwise.
    api.ctx
        .set_manager_status(ManagerStatus::Frozen)
        .await
        .expect("freeze");
    assert_eq!(check_presets(&api, None).await.status, 200);
    api.ctx
        .set_manager_status(ManagerStatus::Terminated)
        .await
        .expect("status");
    check_presets(&api, None)
        .await
        .assert_problem(503, "service-unavailable", None);
}

#[tokio::test]
async fn group_resource_visibility_shows_the_projects_numbers() {
    let api = Api::start("res_check_visibility").await;
    let store = api.cluster.namespace.store().await;
    let nan = json!({"cpu": "NaN", "mem": "NaN"});
    for (value, visible) in [
        ("true", true),
        ("1", true),
        ("false", false),
        ("maybe", false),
    ] {
        store
            .put(VISIBILITY_KEY, value, Scope::Global)
            .await
            .expect("etcd put");
        let answer = check_presets(&api, None).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        if visible {
            assert_eq!(
                answer.json["group_limits"],
                json!({"cpu": "Infinity", "mem": "Infinity"}),
                "{value}"
            );
            assert_eq!(answer.json["group_using"], json!({"cpu": "0", "mem": "0"}));
            assert_eq!(
                answer.json["group_remaining"],
                json!({"cpu": "Infinity", "mem": "Infinity"})
            );
        } else {
            for key in ["group_limits", "group_using", "group_remaining"] {
                assert_eq!(answer.json[key], nan, "{value} {key}");
            }
        }
    }
}

/// Agents (one alive and schedulable, one not schedulable, one lost), the user's running and
/// terminating kernels, one of another user in the same project, a finished one, and a project
/// limit; `cuda.device` is a known slot.
const CLUSTER: &str = r#"{
  "agents": [
    {"id": "i-ag1", "region": "local", "addr": "tcp://127.0.0.1:6001", "version": "24.03.11",
     "architecture": "x86_64",
     "available_slots": {"cpu": "8", "mem": "17179869184", "cuda.device": "2"},
     "occupied_slots": {"cpu": "3", "mem": "5368709120", "cuda.device": "1"}},
    {"id": "i-ag2", "region": "local", "addr": "tcp://127.0.0.1:6002", "version": "24.03.11",
     "architecture": "x86_64", "schedulable": false,
     "available_slots": {"cpu": "64", "mem": "274877906944", "cuda.device": "8"},
     "occupied_slots": {}},
    {"id": "i-ag3", "region": "local", "addr": "tcp://127.0.0.1:6003", "version": "24.03.11",
     "architecture": "x86_64", "status": "LOST",
     "available_slots": {"cpu": "64", "mem": "274877906944"}, "occupied_slots": {}}
  ],
  "sessions": [
    {"id": "5e55a0e1-0000-4000-8000-000000000001", "name": "mine", "status": "RUNNING",
     "scaling_group_name": "default", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "dfa9da54-4b28-432f-be29-c0d680c7a412", "access_key": "AKIANABBDUSEREXAMPLE",
     "occupying_slots": {"cpu": "2.5", "mem": "4294967296"}, "requested_slots": {}},
    {"id": "5e55a0e1-0000-4000-8000-000000000002", "name": "theirs", "status": "RUNNING",
     "scaling_group_name": "default", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "009fb1a4-487c-4f6e-9b1b-228b94b1d040", "access_key": "AKIANATWOUSEREXAMPLE",
     "occupying_slots": {"cpu": "1", "mem": "1073741824", "cuda.device": "1"}, "requested_slots": {}}
  ],
  "kernels": [
    {"id": "ee000000-0000-4000-8000-000000000001",
     "session_id": "5e55a0e1-0000-4000-8000-000000000001", "status": "RUNNING", "agent": "i-ag1",
     "scaling_group": "default", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "dfa9da54-4b28-432f-be29-c0d680c7a412", "access_key": "AKIANABBDUSEREXAMPLE",
     "occupied_slots": {"cpu": "2", "mem": "4294967296"},
     "repl_in_port": 2000, "repl_out_port": 2001, "stdin_port": 2002, "stdout_port": 2003},
    {"id": "ee000000-0000-4000-8000-000000000002",
     "session_id": "5e55a0e1-0000-4000-8000-000000000001", "status": "TERMINATING",
     "agent": "i-ag1", "cluster_role": "sub", "cluster_idx": 1, "local_rank": 1,
     "scaling_group": "default", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "dfa9da54-4b28-432f-be29-c0d680c7a412", "access_key": "AKIANABBDUSEREXAMPLE",
     "occupied_slots": {"cpu": "0.5"},
     "repl_in_port": 2000, "repl_out_port": 2001, "stdin_port": 2002, "stdout_port": 2003},
    {"id": "ee000000-0000-4000-8000-000000000003",
     "session_id": "5e55a0e1-0000-4000-8000-000000000001", "status": "TERMINATED",
     "agent": "i-ag1", "cluster_role": "sub", "cluster_idx": 2, "local_rank": 2,
     "scaling_group": "default", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "dfa9da54-4b28-432f-be29-c0d680c7a412", "access_key": "AKIANABBDUSEREXAMPLE",
     "occupied_slots": {"cpu": "4"},
     "repl_in_port": 2000, "repl_out_port": 2001, "stdin_port": 2002, "stdout_port": 2003},
    {"id": "ee000000-0000-4000-8000-000000000004",
     "session_id": "5e55a0e1-0000-4000-8000-000000000002", "status": "RUNNING", "agent": "i-ag1",
     "scaling_group": "default", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "009fb1a4-487c-4f6e-9b1b-228b94b1d040", "access_key": "AKIANATWOUSEREXAMPLE",
     "occupied_slots": {"cpu": "1", "mem": "1073741824", "cuda.device": "1"},
     "repl_in_port": 2000, "repl_out_port": 2001, "stdin_port": 2002, "stdout_port": 2003}
  ]
}"#;

const PROJECT_LIMIT: &str = r#"{
  "__mode": "update",
  "groups": [
    {"id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "total_resource_slots": {"cpu": "10", "mem": "34359738368"}}
  ]
}"#;

#[tokio::test]
async fn check_presets_counts_kernels_and_live_agents() {
    let api = Api::start("res_check_cluster").await;
    let db = &api.cluster.database.connection;
    for (name, text) in [
        ("cluster.json", CLUSTER),
        ("project-limit.json", PROJECT_LIMIT),
    ] {
        let file = FixtureFile::parse(name, text).expect("fixture file");
        fixtures::populate(db, &file)
            .await
            .unwrap_or_else(|error| panic!("{name}: {error}"));
    }
    let store = api.cluster.namespace.store().await;
    store
        .put("config/resource_slots/cuda.device", "count", Scope::Global)
        .await
        .expect("etcd put");
    store
        .put(VISIBILITY_KEY, "true", Scope::Global)
        .await
        .expect("etcd put");

    let answer = check_presets(&api, Some(json!({"group": "default"}))).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    // Keypair: unlimited policy; its running kernel (not the terminating or terminated ones).
    assert_eq!(
        answer.json["keypair_limits"],
        json!({"cpu": "Infinity", "mem": "Infinity", "cuda.device": "Infinity"})
    );
    assert_eq!(
        answer.json["keypair_using"],
        json!({"cpu": "2", "mem": "4294967296", "cuda.device": "0"})
    );
    // Project: 10 cpu and 32 GiB, used by both users' running kernels; the keypair's remaining
    // is the least of keypair, project and domain.
    assert_eq!(
        answer.json["group_limits"],
        json!({"cpu": "10", "mem": "34359738368", "cuda.device": "Infinity"})
    );
    assert_eq!(
        answer.json["group_using"],
        json!({"cpu": "3", "mem": "5368709120", "cuda.device": "1"})
    );
    assert_eq!(
        answer.json["group_remaining"],
        json!({"cpu": "7", "mem": "28991029248", "cuda.device": "Infinity"})
    );
    assert_eq!(
        answer.json["keypair_remaining"],
        json!({"cpu": "7", "mem": "28991029248", "cuda.device": "Infinity"})
    );
    // The resource group: the user's kernels still on agents (terminating included), and what the
    // alive, schedulable agent has left (8-3 cpu, 16-5 GiB, 2-1 GPU), capped by the keypair's.
    let agent_left = json!({"cpu": "5", "mem": "11811160064", "cuda.device": "1"});
    assert_eq!(
        answer.json["scaling_groups"],
        json!({"default": {
            "using": {"cpu": "2.5", "mem": "4294967296", "cuda.device": "0"},
            "remaining": agent_left,
        }})
    );
    assert_eq!(answer.json["scaling_group_remaining"], agent_left);
    // Allocatable where the agent's remaining and the keypair's remaining both cover the preset;
    // cuda.shares is not a known slot and is dropped.
    let allocatable: Vec<(&str, bool)> = answer.json["presets"]
        .as_array()
        .expect("presets")
        .iter()
        .map(|preset| {
            (
                preset["name"].as_str().unwrap(),
                preset["allocatable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        allocatable,
        [
            ("cpu01-small", true),
            ("cpu02-medium", true),
            ("cpu03-large", false),
            ("cuda01-small", true),
            ("cuda02-medium", false),
            ("cuda03-large", false),
        ]
    );
    assert_eq!(
        answer.json["presets"][3],
        json!({"name": "cuda01-small", "resource_slots": {"cpu": "1", "cuda.device": "1", "mem": "4294967296"},
               "shared_memory": null, "allocatable": true})
    );
    assert_eq!(
        answer.json["presets"][1]["resource_slots"],
        json!({"cpu": "4", "mem": "8589934592", "cuda.device": "0"})
    );

    // Another user of the project: its own keypair usage, the same project numbers.
    let answer = api
        .send(signed_request(
            Method::POST,
            "/resource/check-presets",
            None,
            &bai_api::testing::ExampleUser {
                email: "user2@lablup.com",
                password: "P7oxTDdz",
                access_key: "AKIANATWOUSEREXAMPLE",
                secret_key: "P7oxTDdzHbEpUSs5v7r7EWj9yKstp8VpZ7SEyA-g",
            },
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.json["keypair_using"],
        json!({"cpu": "1", "mem": "1073741824", "cuda.device": "1"})
    );
    assert_eq!(
        answer.json["group_using"],
        json!({"cpu": "3", "mem": "5368709120", "cuda.device": "1"})
    );
    assert_eq!(
        answer.json["scaling_groups"]["default"]["using"],
        json!({"cpu": "1", "mem": "1073741824", "cuda.device": "1"})
    );
}
