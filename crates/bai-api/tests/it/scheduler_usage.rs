//! `GET /manager/scheduler/status` after a real scheduling round (`bai_sessions::Scheduler` on
//! the test cluster's rows and Redis), and `POST /resource/recalculate-usage` repairing agents'
//! occupied slots and keypairs' session counters that were deliberately corrupted, on the real
//! router against the halfstack.

use std::collections::BTreeSet;

use crate::common::{Answer, Api};
use bai_api::testing::{DOMAIN_ADMIN, ExampleUser, SUPERADMIN, USER, signed_request};
use bai_db_models::entities::agents;
use bai_db_models::fixtures::{self, FixtureFile};
use bai_events::EventProducer;
use bai_redis::SchedulerStatus;
use bai_sessions::Scheduler;
use http::Method;
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::{Value, json};
use uuid::Uuid;

const GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const GIB: u64 = 1 << 30;

fn agent(id: &str, cpu: u64) -> Value {
    json!({
        "id": id, "status": "ALIVE", "region": "local", "scaling_group": "default",
        "schedulable": true, "available_slots": {"cpu": cpu.to_string(), "mem": (8 * GIB).to_string()},
        "occupied_slots": {}, "addr": format!("tcp://{id}:6001"), "version": "24.03.11",
        "architecture": "x86_64", "compute_plugins": {},
    })
}

/// A single-node session of `owner` with one kernel per entry of `agents` (one core and 1 GiB
/// each), all in `status`.
fn session(
    id: &str,
    owner: &ExampleUser,
    session_type: &str,
    status: &str,
    agents: &[&str],
) -> (Value, Vec<Value>) {
    let user_uuid = match owner.access_key {
        key if key == USER.access_key => "dfa9da54-4b28-432f-be29-c0d680c7a412",
        key if key == DOMAIN_ADMIN.access_key => "4f13d193-f646-425a-a340-270c4d2b9860",
        _ => "f38dea23-50fa-42a0-b5ae-338f5f4693f4",
    };
    let size = agents.len();
    let each = json!({"cpu": "1", "mem": GIB.to_string()});
    let total = json!({"cpu": size.to_string(), "mem": (GIB * size as u64).to_string()});
    let placed = status != "PENDING";
    let row = json!({
        "id": id, "creation_id": format!("c-{}", &id[32..]), "name": format!("s-{}", &id[32..]),
        "session_type": session_type, "cluster_mode": "single-node", "cluster_size": size,
        "domain_name": "default", "group_id": GROUP, "user_uuid": user_uuid,
        "access_key": owner.access_key, "images": ["cr.backend.ai/stable/python:3.9-ubuntu20.04"],
        "scaling_group_name": "default", "agent_ids": if placed { json!(agents) } else { Value::Null },
        "occupying_slots": if placed { total.clone() } else { json!({}) },
        "requested_slots": total, "use_host_network": false, "environ": {},
        "status": status, "status_history": {}, "result": "UNDEFINED",
    });
    let kernels = agents
        .iter()
        .enumerate()
        .map(|(index, agent)| {
            let role = if index == 0 { "main" } else { "sub" };
            json!({
                "id": Uuid::new_v4(), "session_id": id,
                "session_creation_id": row["creation_id"], "session_name": row["name"],
                "session_type": session_type, "cluster_mode": "single-node",
                "cluster_size": size, "cluster_role": role, "cluster_idx": index + 1,
                "local_rank": index, "cluster_hostname": format!("{role}{}", index + 1),
                "scaling_group": "default", "domain_name": "default", "group_id": GROUP,
                "user_uuid": user_uuid, "access_key": owner.access_key,
                "image": "cr.backend.ai/stable/python:3.9-ubuntu20.04", "architecture": "x86_64",
                "registry": "cr.backend.ai",
                "agent": if placed { json!(agent) } else { Value::Null },
                "occupied_slots": if placed { each.clone() } else { json!({}) },
                "requested_slots": each, "occupied_shares": {}, "repl_in_port": 0,
                "repl_out_port": 0, "stdin_port": 0, "stdout_port": 0,
                "use_host_network": false, "status": status, "result": "UNDEFINED",
            })
        })
        .collect();
    (row, kernels)
}

async fn load(api: &Api, agents: &[Value], sessions: &[(Value, Vec<Value>)]) {
    let kernels: Vec<&Value> = sessions.iter().flat_map(|(_, kernels)| kernels).collect();
    let rows: Vec<&Value> = sessions.iter().map(|(row, _)| row).collect();
    // Written by hand: the loader takes tables in file order, and `json!` sorts keys.
    let text = format!(
        r#"{{"agents": {}, "sessions": {}, "kernels": {}}}"#,
        json!(agents),
        json!(rows),
        json!(kernels)
    );
    let file = FixtureFile::parse("rows.json", &text).expect("fixture");
    fixtures::populate(&api.cluster.database.connection, &file)
        .await
        .expect("loading the rows");
}

async fn scheduler_status(api: &Api, who: &ExampleUser) -> Answer {
    api.send(signed_request(
        Method::GET,
        "/manager/scheduler/status",
        None,
        who,
    ))
    .await
}

#[tokio::test]
async fn scheduler_status_shows_the_last_round_of_this_manager() {
    let api = Api::start("api_sched_status").await;
    let answer = scheduler_status(&api, &SUPERADMIN).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.text,
        r#"{"schedule": {}, "prepare": {}, "scale_services": {}}"#
    );
    scheduler_status(&api, &USER).await.assert_problem(
        401,
        "auth-failed",
        Some("Unauthorized access"),
    );

    load(
        &api,
        &[agent("i-a", 4)],
        &[session(
            "0a6e4b7c-59a1-4c3b-9e55-1f0d4f3c0001",
            &SUPERADMIN,
            "interactive",
            "PENDING",
            &["i-a"],
        )],
    )
    .await;
    let stores = &api.ctx;
    let manager_id = &api.ctx.config().manager.id;
    let scheduler = Scheduler::new(
        stores.db().clone(),
        stores.etcd().clone(),
        stores.redis().stat.clone(),
        EventProducer::new(stores.redis().stream.clone()),
        ["cpu", "mem"].map(str::to_owned).to_vec(),
        SchedulerStatus::new(stores.redis().live.clone(), manager_id.clone()),
    );
    let report = scheduler.schedule().await.expect("a round");
    assert_eq!(report.scheduled, 1);

    let answer = scheduler_status(&api, &SUPERADMIN).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let schedule = &answer.json["schedule"];
    let fields: BTreeSet<&str> = schedule
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "execution_time",
            "finish_time",
            "resource_group",
            "trigger_event"
        ]),
        "{}",
        answer.text
    );
    assert_eq!(schedule["trigger_event"], "do_schedule");
    assert_eq!(schedule["resource_group"], "default");
    let time = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(schedule[field].as_str().expect("a time"))
            .expect("ISO 8601")
    };
    assert!(time("execution_time") <= time("finish_time"));
    // The wire order is the dispatcher's.
    assert!(
        answer
            .text
            .starts_with(r#"{"schedule": {"trigger_event": "do_schedule", "execution_time": ""#),
        "{}",
        answer.text
    );
    assert_eq!(answer.json["prepare"], json!({}));
    assert_eq!(answer.json["scale_services"], json!({}));

    // Another manager's runs are its own.
    let other = SchedulerStatus::new(api.ctx.redis().live.clone(), "i-elsewhere");
    let theirs = other.read().await.expect("HGETALL");
    assert!(theirs.iter().all(|(_, fields)| fields.is_empty()));
}

async fn occupied(api: &Api, agent: &str) -> Value {
    agents::Entity::find_by_id(agent.to_owned())
        .one(&api.cluster.database.connection)
        .await
        .expect("query")
        .expect("agent")
        .occupied_slots
        .to_json()
}

async fn counters(api: &Api, who: &ExampleUser) -> (Option<String>, Option<String>) {
    let raw = api.ctx.redis().stat.raw();
    let key = who.access_key;
    (
        raw.get(&format!("keypair.concurrency_used.{key}"))
            .await
            .expect("GET"),
        raw.get(&format!("keypair.sftp_concurrency_used.{key}"))
            .await
            .expect("GET"),
    )
}

#[tokio::test]
async fn recalculate_usage_derives_occupancy_and_counters_from_the_kernels() {
    let api = Api::start("api_recalc_usage").await;
    load(
        &api,
        &[agent("i-a", 8), agent("i-b", 8), agent("i-idle", 8)],
        &[
            // The user's two-container session on i-a and an SFTP session on i-b.
            session(
                "0a6e4b7c-59a1-4c3b-9e55-1f0d4f3c0011",
                &USER,
                "interactive",
                "RUNNING",
                &["i-a", "i-a"],
            ),
            session(
                "0a6e4b7c-59a1-4c3b-9e55-1f0d4f3c0012",
                &USER,
                "system",
                "RUNNING",
                &["i-b"],
            ),
            // The superadmin's batch session on i-b.
            session(
                "0a6e4b7c-59a1-4c3b-9e55-1f0d4f3c0013",
                &SUPERADMIN,
                "batch",
                "RUNNING",
                &["i-b"],
            ),
            // The domain admin's sessions are over: nothing of them counts.
            session(
                "0a6e4b7c-59a1-4c3b-9e55-1f0d4f3c0014",
                &DOMAIN_ADMIN,
                "interactive",
                "TERMINATED",
                &["i-a"],
            ),
        ],
    )
    .await;
    // Corrupted on purpose: slots no kernel holds, counters no session makes.
    api.cluster
        .database
        .connection
        .execute_unprepared(r#"UPDATE agents SET occupied_slots = '{"cpu": "7", "mem": "1"}'"#)
        .await
        .expect("UPDATE agents");
    let stat = &api.ctx.redis().stat;
    stat.set_keypair_concurrency(USER.access_key, 9, 9)
        .await
        .expect("MSET");
    stat.set_keypair_concurrency(DOMAIN_ADMIN.access_key, 4, 2)
        .await
        .expect("MSET");

    let refused = api
        .send(signed_request(
            Method::POST,
            "/resource/recalculate-usage",
            None,
            &USER,
        ))
        .await;
    refused.assert_problem(401, "auth-failed", Some("Unauthorized access"));
    assert_eq!(occupied(&api, "i-a").await, json!({"cpu": "7", "mem": "1"}));

    let answer = api
        .send(signed_request(
            Method::POST,
            "/resource/recalculate-usage",
            None,
            &SUPERADMIN,
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.text, "{}");

    let two = (2 * GIB).to_string();
    assert_eq!(occupied(&api, "i-a").await, json!({"cpu": "2", "mem": two}));
    assert_eq!(occupied(&api, "i-b").await, json!({"cpu": "2", "mem": two}));
    assert_eq!(occupied(&api, "i-idle").await, json!({}));
    let count = |used: &str, sftp: &str| (Some(used.to_owned()), Some(sftp.to_owned()));
    assert_eq!(counters(&api, &USER).await, count("1", "1"));
    assert_eq!(counters(&api, &SUPERADMIN).await, count("1", "0"));
    // Its sessions are gone, so its counters go back to 0.
    assert_eq!(counters(&api, &DOMAIN_ADMIN).await, count("0", "0"));
}
