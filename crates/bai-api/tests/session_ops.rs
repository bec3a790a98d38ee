//! The per-session routes past creation through the real router, with the whole manager around
//! it in this process (the event consumer with the agent registry's and the lifecycle's handlers,
//! the dispatcher) and a simulated agent serving RPC: `POST /session/{name}/rename`,
//! `GET /session/_/match`, `GET /session/{name}/status-history`, `GET /session/{name}/logs` and
//! `PATCH /session/{name}` (restart), their refusals, and what they answer once the agent is gone.
//!
//! On the halfstack's PostgreSQL and etcd (fresh database and namespace) and a private Redis.

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;
mod support;

use std::time::Duration;

use bai_api::testing::{DOMAIN_ADMIN, SUPERADMIN, USER, signed_request};
use bai_db_models::entities::enums::{KernelStatus, SessionStatus};
use common::{Answer, Api};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{
    Stack, assert_agent_timeout, kernel_rows, running_session, session_row, wait_agents_gone,
    wait_until,
};
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(60);

const STACK: Stack = Stack::one_agent("ops", PATIENCE);

async fn call(api: &Api, method: Method, path: &str, body: Option<&Value>) -> Answer {
    api.send(signed_request(method, path, body, &USER)).await
}

/// `GET path` of `USER`.
async fn get(api: &Api, path: &str) -> Answer {
    call(api, Method::GET, path, None).await
}

/// `POST /session/{session}/rename` of `USER` with `body`.
async fn rename(api: &Api, session: impl std::fmt::Display, body: Value) -> Answer {
    call(
        api,
        Method::POST,
        &format!("/session/{session}/rename"),
        Some(&body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_match_and_status_history_follow_the_reference() {
    let (api, _manager) = support::start("session-ops-rename", &STACK).await;
    let first = running_session(&api, &USER, "ops-first").await;

    // Renamed: the session and its kernels carry the new name, and the old one is gone.
    let renamed = rename(&api, "ops-first", json!({"name": "ops-renamed"})).await;
    assert_eq!(renamed.status, StatusCode::NO_CONTENT, "{}", renamed.text);
    assert_eq!(
        session_row(&api, first).await.name.as_deref(),
        Some("ops-renamed")
    );
    for kernel in kernel_rows(&api, first).await {
        assert_eq!(kernel.session_name.as_deref(), Some("ops-renamed"));
    }
    get(&api, "/session/ops-first")
        .await
        .assert_problem(404, "object-not-found", None);
    let info = get(&api, "/session/ops-renamed").await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.text);

    // The name pattern of creation; unknown keys are refused.
    let bad = rename(&api, "ops-renamed", json!({"name": "-x"})).await;
    bad.assert_problem(400, "invalid-api-params", None);
    let extra = rename(
        &api,
        "ops-renamed",
        json!({"name": "ops-other", "owner_access_key": SUPERADMIN.access_key}),
    )
    .await;
    extra.assert_problem(400, "invalid-api-params", None);
    // Another user's session is not found: rename reads no owner_access_key.
    let stranger = api
        .send(signed_request(
            Method::POST,
            "/session/ops-renamed/rename",
            Some(&json!({"name": "ops-stolen"})),
            &DOMAIN_ADMIN,
        ))
        .await;
    stranger.assert_problem(404, "object-not-found", None);
    rename(&api, "ops-nosuch", json!({"name": "ops-other"}))
        .await
        .assert_problem(404, "object-not-found", None);

    // A name another active session of the owner has is refused (the reference's unique index
    // refuses it with a 500); the session's own name is not "another".
    let second = running_session(&api, &USER, "ops-second").await;
    let duplicate = rename(&api, second, json!({"name": "ops-renamed"})).await;
    duplicate.assert_problem(
        400,
        "invalid-api-params",
        Some("Another session of yours is already named ops-renamed"),
    );
    assert_eq!(
        session_row(&api, second).await.name.as_deref(),
        Some("ops-second")
    );
    let same = rename(&api, "ops-second", json!({"name": "ops-second"})).await;
    assert_eq!(same.status, StatusCode::NO_CONTENT, "{}", same.text);

    // _/match: the caller's sessions of that exact name or id.
    let matched = get(&api, "/session/_/match?id=ops-renamed").await;
    assert_eq!(matched.status, StatusCode::OK, "{}", matched.text);
    assert_eq!(
        matched.json,
        json!({"matches": [
            {"id": first.to_string(), "name": "ops-renamed", "status": "RUNNING"},
        ]})
    );
    let by_id = get(&api, &format!("/session/_/match?id={first}")).await;
    assert_eq!(by_id.json["matches"][0]["id"], first.to_string());
    assert_eq!(by_id.json["matches"].as_array().map(Vec::len), Some(1));
    let none = get(&api, "/session/_/match?id=ops-nosuch").await;
    assert_eq!(none.json, json!({"matches": []}));
    let others = api
        .send(signed_request(
            Method::GET,
            "/session/_/match?id=ops-renamed",
            None,
            &DOMAIN_ADMIN,
        ))
        .await;
    assert_eq!(others.json, json!({"matches": []}));
    get(&api, "/session/_/match")
        .await
        .assert_problem(400, "invalid-api-params", None);

    // status-history: every status the session went through, by name.
    let history = get(&api, &format!("/session/{first}/status-history")).await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.text);
    let result = history.json["result"].as_object().expect("a history");
    for status in ["PENDING", "SCHEDULED", "PREPARING", "RUNNING"] {
        assert!(result.contains_key(status), "{}", history.text);
    }
    // An admin reads it for the owner; a user may not act for another.
    let for_owner = api
        .send(signed_request(
            Method::GET,
            &format!(
                "/session/{first}/status-history?owner_access_key={}",
                USER.access_key
            ),
            None,
            &SUPERADMIN,
        ))
        .await;
    assert_eq!(for_owner.json, history.json);
    get(
        &api,
        &format!(
            "/session/{first}/status-history?owner_access_key={}",
            SUPERADMIN.access_key
        ),
    )
    .await
    .assert_problem(403, "generic-forbidden", None);
    get(&api, "/session/ops-nosuch/status-history")
        .await
        .assert_problem(404, "object-not-found", None);

    // A session that is over may not be renamed (it is found: rename looks at stale ones too).
    let destroyed = call(&api, Method::DELETE, &format!("/session/{second}"), None).await;
    assert!(destroyed.status.is_success(), "{}", destroyed.text);
    wait_until("the second session TERMINATED", PATIENCE, || async {
        session_row(&api, second).await.status == SessionStatus::Terminated
    })
    .await;
    let over = rename(&api, second, json!({"name": "ops-again"})).await;
    over.assert_problem(
        400,
        "invalid-api-params",
        Some("Can't change name of not running session"),
    );
    let stale = get(&api, &format!("/session/_/match?id={second}")).await;
    assert_eq!(stale.json["matches"][0]["status"], "TERMINATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_restart_go_through_the_agent() {
    let (api, manager) = support::start("session-ops-agent", &STACK).await;
    let id = running_session(&api, &USER, "ops-agent").await;
    let kernel = kernel_rows(&api, id).await.remove(0);

    // The main kernel's log from its agent (the dummy kernel's), by name or id.
    let logs = get(&api, "/session/ops-agent/logs").await;
    assert_eq!(logs.status, StatusCode::OK, "{}", logs.text);
    assert_eq!(logs.json, json!({"result": {"logs": "my logs"}}));
    let by_kernel = get(&api, &format!("/session/{id}/logs?kernel_id={}", kernel.id)).await;
    assert_eq!(by_kernel.json, logs.json);
    let stranger = Uuid::new_v4();
    get(&api, &format!("/session/{id}/logs?kernelId={stranger}"))
        .await
        .assert_problem(
            404,
            "object-not-found",
            Some(&format!(
                "Session has no such kernel (sid:{id}, kid:{stranger}))"
            )),
        );
    get(&api, "/session/ops-nosuch/logs")
        .await
        .assert_problem(404, "object-not-found", None);

    // Restart: the dummy agent cannot restart a kernel (it fails `restart_kernel`), which, as in
    // the reference, does not fail the restart: 204, and the session and its kernel are RUNNING
    // again after RESTARTING.
    let restarted = call(&api, Method::PATCH, "/session/ops-agent", None).await;
    assert_eq!(
        restarted.status,
        StatusCode::NO_CONTENT,
        "{}",
        restarted.text
    );
    assert!(restarted.text.is_empty());
    let session = session_row(&api, id).await;
    assert_eq!(session.status, SessionStatus::Running);
    let history = session.status_history.expect("a history");
    assert!(history.get("RESTARTING").is_some(), "{history}");
    let restarting_at = history["RESTARTING"].as_str().expect("a time").to_owned();
    let running_at = history["RUNNING"].as_str().expect("a time").to_owned();
    assert!(running_at > restarting_at, "{history}");
    let after = kernel_rows(&api, id).await.remove(0);
    assert_eq!(after.status, KernelStatus::Running);
    let kernel_history = after.status_history.expect("a kernel history");
    assert!(
        kernel_history.get("RESTARTING").is_some(),
        "{kernel_history}"
    );
    assert_eq!(after.repl_in_port, kernel.repl_in_port);
    // The restarted session still works.
    let again = get(&api, "/session/ops-agent/logs").await;
    assert_eq!(again.json, logs.json);
    call(&api, Method::PATCH, "/session/ops-nosuch", None)
        .await
        .assert_problem(404, "object-not-found", None);
    call(
        &api,
        Method::PATCH,
        &format!(
            "/session/ops-agent?owner_access_key={}",
            SUPERADMIN.access_key
        ),
        None,
    )
    .await
    .assert_problem(403, "generic-forbidden", None);

    // The agent vanishes: the logs are the reference's agent error, and a restart still ends
    // with the session RUNNING.
    manager.agent.cancel();
    wait_agents_gone(&api, PATIENCE).await;
    let gone = api
        .send_allowing_500(signed_request(
            Method::GET,
            "/session/ops-agent/logs",
            None,
            &USER,
        ))
        .await;
    assert_agent_timeout(&gone);
    let restarted = call(&api, Method::PATCH, &format!("/session/{id}"), None).await;
    assert_eq!(
        restarted.status,
        StatusCode::NO_CONTENT,
        "{}",
        restarted.text
    );
    assert_eq!(session_row(&api, id).await.status, SessionStatus::Running);
}
