//! Idle checks in `manager-server` with a session on a simulated agent: the reports as the
//! official 24.03 client reads them (`idleChecks` of `GET /session/{name}` through the SDK's
//! `get_info`, `idle_checks` of `session info` through GraphQL), a `do_idle_check` on the bus
//! running a check, and an idle session with a 5 s timeout ended with `idle-timeout` by the
//! server's own 15 s timer.

use std::time::{Duration, Instant};

use bai_agent_sim::RpcOptions;
use bai_db_models::entities::enums::SessionStatus;
use bai_etcd_store::Scope;
use bai_events::{Event, EventProducer};
use bai_redis::StreamDb;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::agents::{Simulated, agent_toml, wait_for};
use crate::session_support::{
    create_session, ready_session_id, session_row, stack_with_server, wait_for_agent,
};
use crate::support::{CLIENT_24_03, Client, Stack};

/// Prints the SDK's `ComputeSession(name).get_info()` as JSON (key order kept).
const GET_INFO: &str = r"
import json, sys
from ai.backend.client.session import Session

with Session() as session:
    print(json.dumps(session.ComputeSession(sys.argv[1]).get_info()))
";

/// `idleChecks` of the session's `GET /session/{name}`, through the SDK; as printed, to check the
/// key order too.
fn idle_checks_text(client: &Client, stack: &Stack, port: u16, name: &str) -> String {
    let output = client.run(stack, port, "python", &["-c", GET_INFO, name]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "get_info failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let start = stdout
        .find("\"idleChecks\": ")
        .expect("idleChecks in the answer")
        + 14;
    let info: Value = serde_json::from_str(&stdout).expect("JSON");
    let checks = serde_json::to_string(&info["idleChecks"]).expect("JSON");
    assert!(stdout[start..].starts_with('{'), "{stdout}");
    // The printed text from `idleChecks` on, up to its closing brace.
    let mut depth = 0;
    let mut end = start;
    for (offset, c) in stdout[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = start + offset + 1;
                    break;
                }
            }
            _ => {}
        }
    }
    let text = stdout[start..end].to_owned();
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("JSON"),
        serde_json::from_str::<Value>(&checks).expect("JSON")
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_reported_and_ended_with_idle_timeout_by_the_timer() {
    let (stack, mut server, port) = stack_with_server("idle_sim").await;
    let config = agent_toml(
        &stack,
        &stack.path("agent"),
        "i-sim-idle",
        "default",
        1.0,
        1,
    );
    let agents = Simulated::start_serving(&config, None, Some(RpcOptions::default()));
    wait_for_agent(&stack, "i-sim-idle").await;
    stack
        .store
        .put("config/idle/enabled", "network_timeout", Scope::Global)
        .await
        .expect("etcd put");
    stack
        .db
        .connection
        .execute_unprepared(
            "UPDATE keypair_resource_policies SET idle_timeout = 3600, \
             max_session_lifetime = 7200 WHERE name = 'default'",
        )
        .await
        .expect("the policy");

    let printed = create_session(&CLIENT_24_03, &stack, port, "idle01", &[]);
    let session_id = ready_session_id(&printed);
    // A `do_idle_check` on the bus runs a check, as the reference's timer's event does.
    let stream = StreamDb::connect(&stack.redis.config())
        .await
        .expect("Redis");
    EventProducer::new(stream.clone())
        .produce(&Event::DoIdleCheck, "manager")
        .await
        .expect("XADD");
    let text = wait_for(
        "both checkers reported",
        Duration::from_secs(20),
        || async {
            let text = idle_checks_text(&CLIENT_24_03, &stack, port, "idle01");
            let checks: Value = serde_json::from_str(&text).expect("JSON");
            (checks["network_timeout"]["remaining"].is_f64()
                && checks["session_lifetime"]["remaining"].is_f64())
            .then_some(text)
        },
    )
    .await;
    let checks: Value = serde_json::from_str(&text).expect("JSON");
    let lifetime = checks["session_lifetime"]["remaining"]
        .as_f64()
        .expect("f64");
    let timeout = checks["network_timeout"]["remaining"]
        .as_f64()
        .expect("f64");
    assert!(lifetime > 7000.0 && lifetime <= 7200.0, "{text}");
    assert!(timeout > 3400.0 && timeout <= 3600.0, "{text}");
    // The reference's order: `session_lifetime` first, then the enabled checkers; in each,
    // `remaining`, `remaining_time_type`, `extra`.
    assert_eq!(
        text,
        format!(
            "{{\"session_lifetime\": {{\"remaining\": {}, \"remaining_time_type\": \"expire_after\", \
             \"extra\": null}}, \"network_timeout\": {{\"remaining\": {}, \"remaining_time_type\": \
             \"expire_after\", \"extra\": null}}}}",
            python_float(lifetime),
            python_float(timeout),
        )
    );
    // GraphQL `idle_checks` (what `session info` asks for) says the same.
    let info = CLIENT_24_03.cli_json(&stack, port, &["session", "info", &session_id]);
    let gql = &info["items"][0]["idle_checks"];
    let gql: Value = match gql.as_str() {
        Some(text) => serde_json::from_str(text).expect("idle_checks JSON"),
        None => gql.clone(),
    };
    assert_eq!(
        gql["network_timeout"]["remaining_time_type"],
        json!("expire_after"),
        "{gql}"
    );
    assert!(
        gql["network_timeout"]["remaining"].as_f64().is_some(),
        "{gql}"
    );
    assert_eq!(gql["session_lifetime"]["extra"], Value::Null, "{gql}");

    // A 5 s timeout (the policy's, read at each check): the server's 15 s timer ends it.
    stack
        .db
        .connection
        .execute_unprepared(
            "UPDATE keypair_resource_policies SET idle_timeout = 5 WHERE name = 'default'",
        )
        .await
        .expect("the policy");
    let configured = Instant::now();
    wait_for("the session ended", Duration::from_secs(30), || async {
        let row = session_row(&stack, &session_id).await;
        matches!(
            row.status,
            SessionStatus::Terminating | SessionStatus::Terminated
        )
        .then_some(())
    })
    .await;
    let took = configured.elapsed();
    assert!(
        took <= Duration::from_secs(15 + 3),
        "ended {took:?} after the timeout was set"
    );
    let row = session_row(&stack, &session_id).await;
    assert_eq!(row.status_info.as_deref(), Some("idle-timeout"));
    wait_for(
        "the session TERMINATED",
        Duration::from_secs(30),
        || async {
            (session_row(&stack, &session_id).await.status == SessionStatus::Terminated)
                .then_some(())
        },
    )
    .await;
    stream.close().await;
    agents.stop().await;
    server.stop(nix::sys::signal::Signal::SIGTERM).await;
}

/// Python's `repr` of a float, as `json.dumps` writes it (shortest round-trip digits).
fn python_float(value: f64) -> String {
    let text = format!("{value:?}");
    if text.contains('.') || text.contains('e') {
        text
    } else {
        format!("{text}.0")
    }
}
