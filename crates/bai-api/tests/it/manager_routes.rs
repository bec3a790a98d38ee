//! `/manager/status`, `/manager/announcement` and `/spec/openapi/spec.json` on the real router
//! against the halfstack, each test with its own database and etcd namespace.

use crate::common::Api;
use bai_api::testing::{SUPERADMIN, USER, anonymous_request, signed_request};
use bai_etcd_store::Scope;
use http::Method;
use serde_json::json;

#[tokio::test]
async fn status_is_public_and_freezing_needs_a_superadmin() {
    let api = Api::start("api_mgr_status").await;
    let answer = api
        .send(anonymous_request(Method::GET, "/manager/status"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["status"], "running");
    assert_eq!(answer.json["active_sessions"], 0);
    let node = &answer.json["nodes"][0];
    assert_eq!(node["num_proc"], 1);
    assert_eq!(node["service_addr"], "127.0.0.1:8081");
    assert_eq!(node["heartbeat_timeout"], 40.0);
    assert_eq!(node["ssl_enabled"], false);
    assert_eq!(node["version"], "24.03.11");
    assert_eq!(
        node["api_version"],
        json!([5, "20191215"]),
        "no version header means v5"
    );

    let freeze = json!({"status": "frozen", "force_kill": false});
    api.send(signed_request(
        Method::PUT,
        "/manager/status",
        Some(&freeze),
        &USER,
    ))
    .await
    .assert_problem(401, "auth-failed", Some("Unauthorized access"));
    let answer = api
        .send(signed_request(
            Method::PUT,
            "/manager/status",
            Some(&freeze),
            &SUPERADMIN,
        ))
        .await;
    assert_eq!(answer.status, 204, "{}", answer.text);
    let stored = api
        .cluster
        .namespace
        .store()
        .await
        .get("manager/status", Scope::Global)
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some("frozen"));
    let answer = api
        .send(anonymous_request(Method::GET, "/manager/status"))
        .await;
    assert_eq!(answer.json["status"], "frozen");

    let bogus = json!({"status": "sleeping"});
    let answer = api
        .send(signed_request(
            Method::PUT,
            "/manager/status",
            Some(&bogus),
            &SUPERADMIN,
        ))
        .await;
    answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
    assert!(answer.json["data"]["status"].is_string(), "{}", answer.text);

    let unfreeze = json!({"status": "running", "force_kill": true});
    let answer = api
        .send(signed_request(
            Method::PUT,
            "/manager/status",
            Some(&unfreeze),
            &SUPERADMIN,
        ))
        .await;
    assert_eq!(
        answer.status, 204,
        "nothing runs, so there is nothing to kill"
    );
    let answer = api
        .send(anonymous_request(Method::GET, "/manager/status"))
        .await;
    assert_eq!(answer.json["status"], "running");
}

#[tokio::test]
async fn announcement_round_trip() {
    let api = Api::start("api_mgr_announce").await;
    let answer = api
        .send(anonymous_request(Method::GET, "/manager/announcement"))
        .await;
    assert_eq!(answer.text, r#"{"enabled": false, "message": ""}"#);

    let post = |body: serde_json::Value, user| {
        signed_request(Method::POST, "/manager/announcement", Some(&body), user)
    };
    api.send(post(
        json!({"enabled": true, "message": "maintenance at 10:00"}),
        &USER,
    ))
    .await
    .assert_problem(401, "auth-failed", Some("Unauthorized access"));
    api.send(post(json!({"enabled": true}), &SUPERADMIN))
        .await
        .assert_problem(400, "invalid-api-params", None);
    let answer = api
        .send(post(
            json!({"enabled": true, "message": "maintenance at 10:00"}),
            &SUPERADMIN,
        ))
        .await;
    assert_eq!(answer.status, 204);
    let answer = api
        .send(anonymous_request(Method::GET, "/manager/announcement"))
        .await;
    assert_eq!(
        answer.json,
        json!({"enabled": true, "message": "maintenance at 10:00"})
    );

    let answer = api.send(post(json!({"enabled": false}), &SUPERADMIN)).await;
    assert_eq!(answer.status, 204);
    let answer = api
        .send(anonymous_request(Method::GET, "/manager/announcement"))
        .await;
    assert_eq!(answer.json["enabled"], false);
}

#[tokio::test]
async fn the_openapi_document_describes_the_served_routes() {
    let api = Api::start("api_openapi").await;
    let answer = api
        .send(signed_request(
            Method::GET,
            "/spec/openapi/spec.json",
            None,
            &SUPERADMIN,
        ))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["openapi"], "3.1.0");
    assert!(answer.json["paths"]["/auth/test"]["get"].is_object());
    assert!(answer.json["paths"]["/manager/status"]["put"]["requestBody"].is_object());

    api.send(signed_request(
        Method::GET,
        "/spec/openapi/spec.json",
        None,
        &USER,
    ))
    .await
    .assert_problem(403, "generic-forbidden", None);
}

/// The names of the events on the cluster's stream.
async fn event_names(api: &Api) -> Vec<String> {
    api.ctx
        .redis()
        .stream
        .read_after(
            bai_redis::EntryId::ZERO,
            1000,
            std::time::Duration::from_millis(10),
        )
        .await
        .expect("reading the event stream")
        .iter()
        .filter_map(|entry| entry.field("name"))
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect()
}

#[tokio::test]
async fn scheduler_triggers_and_operations_are_for_superadmins() {
    use sea_orm::{ConnectionTrait, EntityTrait};

    let api = Api::start("api_mgr_scheduler").await;
    let trigger = |event: &str| json!({ "event": event });
    api.send(signed_request(
        Method::POST,
        "/manager/scheduler/trigger",
        Some(&trigger("schedule")),
        &USER,
    ))
    .await
    .assert_problem(401, "auth-failed", Some("Unauthorized access"));
    for event in ["schedule", "prepare", "scale_services"] {
        let answer = api
            .send(signed_request(
                Method::POST,
                "/manager/scheduler/trigger",
                Some(&trigger(event)),
                &SUPERADMIN,
            ))
            .await;
        assert_eq!(answer.status, 204, "{}", answer.text);
    }
    let answer = api
        .send(signed_request(
            Method::POST,
            "/manager/scheduler/trigger",
            Some(&trigger("bogus")),
            &SUPERADMIN,
        ))
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(
        event_names(&api).await,
        ["do_schedule", "do_prepare", "do_scale"]
    );

    let db = &api.cluster.database.connection;
    db.execute_unprepared(
        "INSERT INTO agents (id, status, region, scaling_group, schedulable, available_slots, \
         occupied_slots, addr, version, architecture, compute_plugins) VALUES ('i-op', 'ALIVE', \
         'local', 'default', true, '{}', '{}', 'tcp://127.0.0.1:6001', '24.03.11', 'x86_64', '{}')",
    )
    .await
    .expect("agent row");
    let schedulable = || async {
        bai_db_models::entities::agents::Entity::find_by_id("i-op".to_owned())
            .one(db)
            .await
            .expect("query")
            .expect("agent")
            .schedulable
    };
    let operation = |op: &str, args: &[&str]| json!({ "op": op, "args": args });
    // One unknown agent: nothing changes.
    api.send(signed_request(
        Method::POST,
        "/manager/scheduler/operation",
        Some(&operation("exclude-agents", &["i-op", "i-nobody"])),
        &SUPERADMIN,
    ))
    .await
    .assert_problem(404, "object-not-found", None);
    assert!(schedulable().await);
    for (op, expected) in [("exclude-agents", false), ("include-agents", true)] {
        let answer = api
            .send(signed_request(
                Method::POST,
                "/manager/scheduler/operation",
                Some(&operation(op, &["i-op"])),
                &SUPERADMIN,
            ))
            .await;
        assert_eq!(answer.status, 204, "{}", answer.text);
        assert_eq!(schedulable().await, expected, "{op}");
    }
    // Including agents asks for a round.
    assert_eq!(
        event_names(&api).await.last().map(String::as_str),
        Some("do_schedule")
    );
}
