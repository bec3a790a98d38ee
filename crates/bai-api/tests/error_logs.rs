//! `/logs/error` through the real router: filing reports, who lists and clears which (a
//! superadmin every report, a domain admin those of the members of its domain's projects, a user
//! their own and not the cleared ones), paging with the total count, and `mark_read`.
//!
//! On the halfstack's PostgreSQL and etcd (fresh database and namespace) and a private Redis.

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;

use bai_api::testing::{DOMAIN_ADMIN, ExampleUser, MONITOR, SUPERADMIN, USER, signed_request};
use common::{Answer, Api};
use http::{Method, StatusCode};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use uuid::Uuid;

async fn user_uuid(db: &DatabaseConnection, who: &ExampleUser) -> Uuid {
    bai_db_models::queries::users::by_email(db, who.email)
        .await
        .expect("reading the user")
        .expect("an example user")
        .uuid
}

async fn file(api: &Api, who: &ExampleUser, message: &str) -> Answer {
    api.send(signed_request(
        Method::POST,
        "/logs/error",
        Some(&json!({
            "severity": "ERROR",
            "source": "webui",
            "message": message,
            "context_lang": "js",
            "context_env": "{\"page\": \"/summary\"}",
            "request_url": "/summary",
            "request_status": 500,
        })),
        who,
    ))
    .await
}

async fn list(api: &Api, who: &ExampleUser, query: &str) -> Value {
    let answer = api
        .send(signed_request(
            Method::GET,
            &format!("/logs/error{query}"),
            None,
            who,
        ))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.json
}

fn messages(page: &Value) -> Vec<&str> {
    page["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .map(|log| log["message"].as_str().expect("message"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_filed_and_seen_by_whom_the_reference_lets_see_them() {
    let api = Api::start("error_logs_reach").await;
    let db = &api.cluster.database.connection;
    let user = user_uuid(db, &USER).await;
    // The monitor belongs to no project: its reports are out of the domain admin's reach.
    db.execute_unprepared(&format!(
        "DELETE FROM association_groups_users WHERE user_id = '{}'",
        user_uuid(db, &MONITOR).await
    ))
    .await
    .expect("leaving the projects");

    let answer = file(&api, &USER, "user's report").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json, json!({"success": true}));
    file(&api, &MONITOR, "monitor's report").await;
    // An agent's report names no user: only a superadmin sees it.
    db.execute_unprepared(
        "INSERT INTO error_logs (severity, source, message, context_lang, context_env, is_read, \
         is_cleared) VALUES ('critical', 'i-agent', 'agent report', 'python', '{}', false, false)",
    )
    .await
    .expect("an agent's report");

    let all = list(&api, &SUPERADMIN, "").await;
    assert_eq!(all["count"], 3);
    let mut seen = messages(&all);
    seen.sort_unstable();
    assert_eq!(seen, ["agent report", "monitor's report", "user's report"]);

    let own = list(&api, &USER, "").await;
    assert_eq!(own["count"], 1);
    let log = &own["logs"][0];
    assert_eq!(log["severity"], "error");
    assert_eq!(log["source"], "webui");
    assert_eq!(log["user"], user.to_string());
    assert_eq!(log["is_read"], false);
    assert_eq!(log["context_lang"], "js");
    assert_eq!(log["context_env"], json!({"page": "/summary"}));
    assert_eq!(log["request_url"], "/summary");
    assert_eq!(log["request_status"], 500);
    assert_eq!(log["traceback"], Value::Null);
    assert!(log["created_at"].as_f64().expect("a timestamp") > 1.7e9);
    // Users are not told whether a report was cleared; admins are.
    assert!(log.get("is_cleared").is_none(), "{log}");

    let domain = list(&api, &DOMAIN_ADMIN, "").await;
    assert_eq!(messages(&domain), ["user's report"]);
    assert_eq!(domain["count"], 1);
    assert_eq!(domain["logs"][0]["is_cleared"], false);

    // Clearing: nobody clears what they cannot see; a cleared report leaves the user's list and
    // stays in the admins'.
    let log_id = own["logs"][0]["log_id"]
        .as_str()
        .expect("log_id")
        .to_owned();
    let monitor_log = all["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .find(|log| log["message"] == "monitor's report")
        .expect("the monitor's report")["log_id"]
        .as_str()
        .expect("log_id")
        .to_owned();
    for (who, id) in [(&USER, &monitor_log), (&DOMAIN_ADMIN, &monitor_log)] {
        let refused = api
            .send(signed_request(
                Method::POST,
                &format!("/logs/error/{id}/clear"),
                None,
                who,
            ))
            .await;
        refused.assert_problem(404, "object-not-found", None);
    }
    let malformed = api
        .send(signed_request(
            Method::POST,
            "/logs/error/not-a-uuid/clear",
            None,
            &USER,
        ))
        .await;
    malformed.assert_problem(400, "invalid-api-params", None);
    let cleared = api
        .send(signed_request(
            Method::POST,
            &format!("/logs/error/{log_id}/clear"),
            None,
            &USER,
        ))
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text);
    assert_eq!(cleared.json, json!({"success": true}));
    let own = list(&api, &USER, "").await;
    assert_eq!(own, json!({"logs": [], "count": 0}));
    let domain = list(&api, &DOMAIN_ADMIN, "").await;
    assert_eq!(domain["logs"][0]["is_cleared"], true);
    let by_superadmin = api
        .send(signed_request(
            Method::POST,
            &format!("/logs/error/{monitor_log}/clear"),
            None,
            &SUPERADMIN,
        ))
        .await;
    assert_eq!(
        by_superadmin.status,
        StatusCode::OK,
        "{}",
        by_superadmin.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_come_newest_first_and_mark_read_marks_the_page() {
    let api = Api::start("error_logs_pages").await;
    for n in 1..=5 {
        let answer = file(&api, &USER, &format!("report {n}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    let first = list(&api, &USER, "?mark_read=True&page_size=2&page_no=1").await;
    assert_eq!(first["count"], 5);
    assert_eq!(messages(&first), ["report 5", "report 4"]);
    // Listed as they were: marked read by this very listing.
    assert_eq!(first["logs"][0]["is_read"], false);
    let third = list(&api, &USER, "?page_size=2&page_no=3").await;
    assert_eq!(messages(&third), ["report 1"]);
    let everything = list(&api, &USER, "?mark_read=false").await;
    let read: Vec<bool> = everything["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .map(|log| log["is_read"].as_bool().expect("is_read"))
        .collect();
    assert_eq!(read, [true, true, false, false, false]);
    let far = list(&api, &USER, &format!("?page_size=100&page_no={}", i64::MAX)).await;
    assert_eq!(far, json!({"logs": [], "count": 5}));
    // Before the first page is the first page.
    let zeroth = list(&api, &USER, "?page_size=1&page_no=0").await;
    assert_eq!(messages(&zeroth), ["report 5"]);

    for (query, field) in [
        ("?page_size=101", "page_size"),
        ("?page_size=-1", "page_size"),
        ("?page_no=x", "page_no"),
        ("?mark_read=maybe", "mark_read"),
        ("?bogus=1", "bogus"),
    ] {
        let refused = api
            .send(signed_request(
                Method::GET,
                &format!("/logs/error{query}"),
                None,
                &USER,
            ))
            .await;
        refused.assert_problem(400, "invalid-api-params", None);
        assert!(
            refused.json["data"].get(field).is_some(),
            "{query}: {}",
            refused.text
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_reports_are_refused_by_field() {
    let api = Api::start("error_logs_append").await;
    let valid = json!({
        "severity": "warning",
        "source": "webui",
        "message": "m",
        "context_lang": "js",
        "context_env": "{}",
    });
    let answer = api
        .send(signed_request(
            Method::POST,
            "/logs/error",
            Some(&valid),
            &USER,
        ))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    for (field, value) in [
        ("severity", json!("INFO")),
        ("severity", json!("fatal")),
        ("context_env", json!("{not json")),
        ("context_env", json!({"page": 1})),
        ("source", json!("")),
        ("request_status", json!("x")),
    ] {
        let mut body = valid.clone();
        body[field] = value.clone();
        let refused = api
            .send(signed_request(
                Method::POST,
                "/logs/error",
                Some(&body),
                &USER,
            ))
            .await;
        refused.assert_problem(400, "invalid-api-params", None);
        assert!(
            refused.json["data"].get(field).is_some(),
            "{field}={value}: {}",
            refused.text
        );
    }
    let page = api
        .send(signed_request(Method::GET, "/logs/error", None, &USER))
        .await;
    assert_eq!(page.json["count"], 1);
    assert_eq!(page.json["logs"][0]["severity"], "warning");
}
