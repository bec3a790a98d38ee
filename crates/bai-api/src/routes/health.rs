//! `GET /health/live` and `GET /health/ready`: probes for orchestrators and load balancers, not in
//! the reference. Both are anonymous and ungated like `GET /`: no signature, no rate limit, and
//! they answer whatever the manager status is.
//!
//! Liveness says only that the worker serves requests. Readiness asks each store one cheap
//! question at the same time, each bounded by [`CHECK_TIMEOUT`]: PostgreSQL `SELECT 1`, Redis
//! `PING`, an etcd read of `manager/status`. All answered: 200 with `{"postgresql": "ok", ...}`;
//! otherwise 503 `service-unavailable` naming the stores that failed, each store's verdict in
//! `data`.

use std::future::Future;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bai_etcd_store::Scope;
use bai_stores::MANAGER_STATUS_KEY;
use http::Method;
use serde_json::{Map, Value};

use super::Route;
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorKind};
use crate::json::PyJson;

/// How long readiness waits for each store.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What a healthy store reports.
const OK: &str = "ok";

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/health/live", "health.live", live)
            .summary("200 while the process serves requests (not in the reference)."),
        Route::new(Method::GET, "/health/ready", "health.ready", ready).summary(
            "200 when PostgreSQL, Redis and etcd answer, 503 naming those that do not (not in \
             the reference).",
        ),
    ]
}

async fn live() -> impl IntoResponse {
    PyJson(serde_json::json!({ "status": OK }))
}

async fn ready(State(ctx): State<ApiContext>) -> Response {
    let (postgresql, redis, etcd) = futures_util::future::join3(
        check(bai_db_models::ping(ctx.db())),
        check(ctx.redis().stat.ping()),
        check(async {
            ctx.etcd()
                .get(MANAGER_STATUS_KEY, Scope::Global)
                .await
                .map(drop)
        }),
    )
    .await;
    let verdicts = [("postgresql", postgresql), ("redis", redis), ("etcd", etcd)];
    let failing: Vec<&str> = verdicts
        .iter()
        .filter(|(_, verdict)| verdict != OK)
        .map(|(store, _)| *store)
        .collect();
    let stores: Map<String, Value> = verdicts
        .iter()
        .map(|(store, verdict)| ((*store).to_owned(), Value::String(verdict.clone())))
        .collect();
    if failing.is_empty() {
        return PyJson(Value::Object(stores)).into_response();
    }
    for (store, verdict) in verdicts.iter().filter(|(_, verdict)| verdict != OK) {
        tracing::warn!("readiness: {store} is not ready: {verdict}");
    }
    ApiError::with_msg(
        ErrorKind::ServiceUnavailable,
        format!("not ready: {}", failing.join(", ")),
    )
    .data(Value::Object(stores))
    .into_response()
}

/// `ok`, or why the store did not answer in time.
async fn check<E: std::fmt::Display>(probe: impl Future<Output = Result<(), E>>) -> String {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => OK.to_owned(),
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("no answer within {CHECK_TIMEOUT:?}"),
    }
}
