//! `GET /metrics` on its own listener, parsed as Prometheus text, against what the requests did and
//! the database holds; `GET /health/live` and `GET /health/ready` without signatures, readiness
//! naming the store that stopped.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::Method;
use bai_api::testing::{ExampleUser, SUPERADMIN, USER, signed_request};
use bai_db_models::entities::enums::SessionStatus;
use bai_db_models::entities::sessions;
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};
use sea_orm::EntityTrait;
use serde_json::{Value as Json, json};

use crate::agents::settings;
use crate::session_support::{local_runner_agent, stack_with_test_image};
use crate::support::{PYTHON_IMAGE, Server, Stack, free_port, http_client};

/// A server of `stack` on free ports, once it answers: the server, its API port and its metrics
/// port.
async fn serve(stack: &Stack) -> (Server, u16, u16) {
    let port = free_port();
    let settings = settings(port, 1);
    let metrics_port = settings.metrics_port;
    let config = stack.config("manager.toml", &settings);
    let mut server = Server::start(stack, &config, "server");
    server.wait_ready(port).await;
    (server, port, metrics_port)
}

/// What a request answered: status, content type and body.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Json {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.body))
    }
}

/// Sends `request` (signed for the test host, which the `Host` header keeps) to the server.
async fn send(
    port: u16,
    request: axum::http::Request<axum::body::Body>,
    body: Option<&Json>,
) -> Answer {
    let (parts, _) = request.into_parts();
    let url = format!(
        "http://127.0.0.1:{port}{}",
        parts.uri.path_and_query().expect("a path")
    );
    let mut builder = http_client()
        .request(parts.method, url)
        .headers(parts.headers)
        .timeout(Duration::from_secs(20));
    if let Some(body) = body {
        builder = builder.body(body.to_string());
    }
    answer(builder.send().await.expect("the request")).await
}

async fn signed(
    port: u16,
    method: Method,
    path: &str,
    body: Option<&Json>,
    who: &ExampleUser,
) -> Answer {
    send(port, signed_request(method, path, body, who), body).await
}

async fn anonymous(port: u16, path: &str) -> Answer {
    let response = http_client()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("the request");
    answer(response).await
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.expect("the body");
    Answer {
        status,
        content_type,
        body,
    }
}

type Exposition = MetricsExposition<PrometheusType, PrometheusValue>;

/// `GET /metrics`, parsed.
async fn scrape(metrics_port: u16) -> Exposition {
    let answer = anonymous(metrics_port, "/metrics").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        answer.content_type
    );
    openmetrics_parser::prometheus::parse_prometheus(&answer.body).unwrap_or_else(|error| {
        panic!(
            "not the text exposition format ({error:?}):\n{}",
            answer.body
        )
    })
}

/// Every sample of `metric`: its labels and value.
fn samples<'a>(
    scraped: &'a Exposition,
    metric: &str,
) -> Vec<(HashMap<String, String>, &'a PrometheusValue)> {
    let Some(family) = scraped.families.get(metric) else {
        return Vec::new();
    };
    family
        .iter_samples()
        .map(|sample| {
            let labels = sample
                .get_labelset()
                .expect("a label set")
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            (labels, &sample.value)
        })
        .collect()
}

/// The value of the sample of `metric` whose labels include `labels` (0 without one).
fn value(scraped: &Exposition, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<&PrometheusValue> = samples(scraped, metric)
        .into_iter()
        .filter(|(have, _)| {
            labels
                .iter()
                .all(|(name, value)| have.get(*name).map(String::as_str) == Some(*value))
        })
        .map(|(_, value)| value)
        .collect();
    assert!(
        matching.len() <= 1,
        "{metric} {labels:?}: {} samples",
        matching.len()
    );
    matching.first().map_or(0.0, |value| match value {
        PrometheusValue::Counter(counter) => counter.value.as_f64(),
        PrometheusValue::Gauge(value) | PrometheusValue::Unknown(value) => value.as_f64(),
        other => panic!("{metric}: not a plain value: {other:?}"),
    })
}

/// The body `session create --enqueue-only` of the 23.09 client sends, for session `name`.
fn create_body(name: &str) -> Json {
    json!({"tag": null, "name": name,
        "config": {"mounts": [], "environ": {}, "resources": {"cpu": "1", "mem": "512m"},
                   "resource_opts": {}, "scalingGroup": null, "mount_map": {}, "preopen_ports": null},
        "dependencies": [], "callback_url": null, "architecture": "x86_64", "clusterSize": 1,
        "clusterMode": "single-node", "starts_at": null, "bootstrap_script": null,
        "owner_access_key": null, "domain": "default", "group": "default", "type": "interactive",
        "enqueueOnly": true, "maxWaitSeconds": 0, "reuseIfExists": true, "startupCommand": null,
        "image": PYTHON_IMAGE})
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_the_requests_and_sessions_the_database_holds() {
    let stack = stack_with_test_image("metrics").await;
    let (mut server, port, metrics_port) = serve(&stack).await;
    let (_agent, _runner) = local_runner_agent(&stack, "i-metrics", None).await;

    // Probes need no signature.
    let live = anonymous(port, "/health/live").await;
    assert_eq!(live.status, 200, "{}", live.body);
    assert_eq!(live.json(), json!({"status": "ok"}));
    let ready = anonymous(port, "/health/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(
        ready.json(),
        json!({"postgresql": "ok", "redis": "ok", "etcd": "ok"})
    );

    for name in ["metrics01", "metrics02"] {
        let created = signed(
            port,
            Method::POST,
            "/session",
            Some(&create_body(name)),
            &USER,
        )
        .await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    // A path with a session name in it, and a path no route has.
    let missing = signed(
        port,
        Method::GET,
        "/session/no-such-session-7f3a",
        None,
        &SUPERADMIN,
    )
    .await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(anonymous(port, "/no/such/path").await.status, 404);

    // Both sessions run on the agent.
    let db = stack.db.connection.clone();
    server
        .wait_until(|| {
            let db = db.clone();
            async move {
                let rows = sessions::Entity::find().all(&db).await.expect("sessions");
                (rows.len() == 2 && rows.iter().all(|row| row.status == SessionStatus::Running))
                    .then_some(())
            }
        })
        .await;
    let rows = sessions::Entity::find().all(&db).await.expect("sessions");
    let scheduled_in_db = rows
        .iter()
        .filter(|row| {
            row.status_history
                .as_ref()
                .is_some_and(|history| history.get("SCHEDULED").is_some())
        })
        .count();
    assert_eq!(scheduled_in_db, 2, "{rows:?}");

    // The scheduler counts its decisions right after committing them, and an agent call is
    // counted when its answer is read (the kernel may have started before): poll briefly.
    let scraped = server
        .wait_until(|| async move {
            let scraped = scrape(metrics_port).await;
            let scheduled = value(
                &scraped,
                "backendai_manager_scheduler_decisions_total",
                &[("decision", "scheduled")],
            );
            let calls = value(
                &scraped,
                "backendai_manager_agent_rpc_calls_total",
                &[("method", "create_kernels")],
            );
            (scheduled == 2.0 && calls >= 1.0).then_some(scraped)
        })
        .await;

    assert_eq!(
        value(&scraped, "backendai_manager_sessions_created_total", &[]),
        rows.len() as f64
    );
    let requests = "backendai_manager_http_requests_total";
    assert_eq!(
        value(
            &scraped,
            requests,
            &[("method", "POST"), ("route", "/session"), ("status", "201")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &scraped,
            requests,
            &[
                ("method", "GET"),
                ("route", "/health/live"),
                ("status", "200")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &scraped,
            requests,
            &[
                ("method", "GET"),
                ("route", "/health/ready"),
                ("status", "200")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &scraped,
            requests,
            &[("method", "GET"), ("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    // Route templates only: no label holds what a client put in a path.
    let counted = samples(&scraped, requests);
    let routes: Vec<&str> = counted
        .iter()
        .filter_map(|(labels, _)| labels.get("route").map(String::as_str))
        .collect();
    assert!(
        routes.iter().all(|route| !route.contains("no-such")),
        "{routes:?}"
    );
    assert_eq!(
        value(
            &scraped,
            requests,
            &[
                ("method", "GET"),
                ("route", "/session/{session_name}"),
                ("status", "404")
            ]
        ),
        1.0,
        "{routes:?}"
    );
    // The latency histogram has its buckets.
    let latencies = samples(&scraped, "backendai_manager_http_request_duration_seconds");
    assert!(
        latencies.iter().any(|(labels, value)| {
            labels.get("route").map(String::as_str) == Some("/session")
                && matches!(value, PrometheusValue::Histogram(histogram)
                    if histogram.count == Some(2) && !histogram.buckets.is_empty())
        }),
        "{latencies:?}"
    );

    // Sampled at scrape time.
    assert_eq!(
        value(&scraped, "backendai_manager_agents", &[("status", "ALIVE")]),
        1.0
    );
    assert_eq!(
        value(&scraped, "backendai_manager_agents", &[("status", "LOST")]),
        0.0
    );
    assert!(
        value(
            &scraped,
            "backendai_manager_db_pool_max_connections",
            &[("worker", "0")]
        ) >= 1.0
    );
    assert!(
        samples(&scraped, "backendai_manager_event_group_pending")
            .iter()
            .any(|(labels, _)| labels.get("group").map(String::as_str) == Some("manager"))
    );
    assert_eq!(
        value(
            &scraped,
            "backendai_manager_scheduler_pending_sessions",
            &[("scaling_group", "default")]
        ),
        0.0
    );
    // The agent registry handled heartbeats; the starter called the agent.
    assert!(
        value(
            &scraped,
            "backendai_manager_events_handled_total",
            &[("event", "agent_heartbeat")]
        ) >= 1.0
    );
    assert!(
        value(
            &scraped,
            "backendai_manager_agent_rpc_calls_total",
            &[("method", "create_kernels")]
        ) >= 1.0
    );
    // Each metric has the help text of the catalogue.
    for metric in bai_metrics::CATALOGUE {
        if let Some(family) = scraped.families.get(metric.name) {
            assert_eq!(family.help, metric.help, "{}", metric.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_names_the_store_that_stopped() {
    let stack = Stack::new("readiness").await;
    let (_server, port, _) = serve(&stack).await;
    let ready = anonymous(port, "/health/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.body);

    // The test's own Redis stops; PostgreSQL and etcd stay.
    let Stack {
        db,
        etcd,
        store,
        redis,
        dir,
    } = stack;
    drop(redis);
    let not_ready = anonymous(port, "/health/ready").await;
    assert_eq!(not_ready.status, 503, "{}", not_ready.body);
    assert!(
        not_ready
            .content_type
            .starts_with("application/problem+json"),
        "{}",
        not_ready.content_type
    );
    let problem = not_ready.json();
    assert_eq!(
        problem["type"],
        "https://api.backend.ai/probs/service-unavailable"
    );
    assert_eq!(problem["msg"], "not ready: redis", "{problem}");
    assert_eq!(problem["data"]["postgresql"], "ok", "{problem}");
    assert_eq!(problem["data"]["etcd"], "ok", "{problem}");
    assert_ne!(problem["data"]["redis"], "ok", "{problem}");
    // Alive all the same.
    assert_eq!(anonymous(port, "/health/live").await.status, 200);
    drop((db, etcd, store, dir));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_metrics_address_stops_the_start_naming_the_key() {
    let stack = Stack::new("metrics-busy").await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let mut settings = settings(free_port(), 1);
    settings.metrics_port = taken.local_addr().expect("its address").port();
    let config = stack.config("manager.toml", &settings);
    let mut server = Server::start(&stack, &config, "server");
    let status = server.wait_exit(Duration::from_secs(30)).await;
    assert!(!status.success(), "{status}");
    let stderr = server.stderr();
    assert!(
        stderr.contains(&format!(
            "[manager] metrics-addr: cannot listen on 127.0.0.1:{}",
            settings.metrics_port
        )),
        "{stderr}"
    );
}
