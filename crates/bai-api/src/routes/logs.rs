//! `/logs/error`: error reports (the reference's `api/logs.py`). Anyone files reports under
//! their own name; a superadmin lists and clears every report, a domain admin those of the
//! members of the projects of their domain, anyone else their own (cleared ones hidden).

use axum::extract::State;
use bai_db_models::entities::enums::{ErrorLogSeverity, UserRole};
use bai_db_models::entities::error_logs;
use bai_db_models::queries::error_logs::{
    ErrorLogReach, NewErrorLog, clear_error_log, insert_error_log, list_error_logs,
};
use http::Method;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Access, Authenticated, Route, StatusGate};
use crate::auth::Caller;
use crate::context::ApiContext;
use crate::error::ApiError;
use crate::json::PyJson;
use crate::params::{Params, Path, lenient, non_blank};

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::POST, "/logs/error", "logs.append", append)
            .access(Access::User)
            .gate(StatusGate::ReadAllowed)
            .params::<AppendParams>()
            .summary("Files an error report under the caller's name."),
        Route::new(Method::GET, "/logs/error", "logs.list_logs", list_logs)
            .access(Access::User)
            .gate(StatusGate::ReadAllowed)
            .params::<ListParams>()
            .summary(
                "The error reports the caller may see, newest first, a page at a time, with how \
                 many there are; `mark_read` marks the listed ones read.",
            ),
        Route::new(
            Method::POST,
            "/logs/error/{log_id}/clear",
            "logs.mark_cleared",
            mark_cleared,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .summary("Marks an error report the caller may see as cleared."),
    ]
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct AppendParams {
    /// `CRITICAL`, `ERROR` or `WARNING` (the 23.09 lowercase forms too).
    #[serde(deserialize_with = "severity")]
    #[schemars(with = "String")]
    severity: ErrorLogSeverity,
    #[serde(deserialize_with = "non_blank")]
    source: String,
    #[serde(deserialize_with = "non_blank")]
    message: String,
    #[serde(deserialize_with = "non_blank")]
    context_lang: String,
    /// A JSON document, as a string.
    #[serde(deserialize_with = "json_string")]
    #[schemars(with = "String")]
    context_env: Value,
    #[serde(default, deserialize_with = "optional_non_blank")]
    request_url: Option<String>,
    #[serde(default)]
    request_status: Option<i32>,
    #[serde(default, deserialize_with = "optional_non_blank")]
    traceback: Option<String>,
}

/// trafaret `tx.Enum(LogSeverity)`: 24.03 spells the severities in capitals, 23.09 in lowercase.
/// `INFO` and `DEBUG` are severities too, but `error_logs` cannot hold them (the reference
/// accepts them and fails on the insert).
fn severity<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ErrorLogSeverity, D::Error> {
    let text = String::deserialize(deserializer)?;
    match text.as_str() {
        "CRITICAL" | "critical" => Ok(ErrorLogSeverity::Critical),
        "ERROR" | "error" => Ok(ErrorLogSeverity::Error),
        "WARNING" | "warning" => Ok(ErrorLogSeverity::Warning),
        "INFO" | "info" | "DEBUG" | "debug" => Err(D::Error::custom(
            "error logs are of severity CRITICAL, ERROR or WARNING",
        )),
        _ => Err(D::Error::custom(
            "value is not a valid member of LogSeverity",
        )),
    }
}

/// `tx.JSONString`: a string holding a JSON document.
fn json_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    let text = String::deserialize(deserializer)?;
    serde_json::from_str(&text).map_err(|_| D::Error::custom("value is not a valid JSON string"))
}

/// `t.Null | t.String`: absent, null or a non-empty string.
fn optional_non_blank<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        Some(text) if text.is_empty() => Err(D::Error::custom("blank value is not allowed")),
        other => Ok(other),
    }
}

#[derive(Debug, Serialize)]
struct Success {
    success: bool,
}

async fn append(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<AppendParams>,
) -> Result<PyJson<Success>, ApiError> {
    tracing::info!(target: "bai_api", "CREATE (ak:{}/*)", caller.access_key());
    insert_error_log(
        ctx.db(),
        NewErrorLog {
            severity: params.severity,
            source: params.source,
            user: Some(caller.user.uuid),
            message: params.message,
            context_lang: params.context_lang,
            context_env: params.context_env,
            request_url: params.request_url,
            request_status: params.request_status,
            traceback: params.traceback,
        },
    )
    .await
    .map_err(|error| ApiError::internal("filing an error log", &error))?;
    Ok(PyJson(Success { success: true }))
}

/// The largest page (`t.ToInt(lt=101)`).
const MAX_PAGE_SIZE: i64 = 100;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// Mark the listed reports read.
    #[serde(default, deserialize_with = "lenient::bool")]
    mark_read: bool,
    /// How many reports a page holds, at most 100 (default 20).
    #[serde(default = "default_page_size", deserialize_with = "page_size")]
    #[schemars(with = "Option<u64>")]
    page_size: u64,
    /// Which page, from 1 (default 1).
    #[serde(default = "first_page", deserialize_with = "to_int")]
    #[schemars(with = "Option<i64>")]
    page_no: i64,
}

fn default_page_size() -> u64 {
    20
}

fn first_page() -> i64 {
    1
}

/// trafaret `ToInt`: an integer or a string of one.
fn to_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let unreadable = || D::Error::custom("value can't be converted to int");
    match Value::deserialize(deserializer)? {
        Value::Number(number) => number.as_i64().ok_or_else(unreadable),
        Value::String(text) => text.trim().parse().map_err(|_| unreadable()),
        _ => Err(unreadable()),
    }
}

/// `t.ToInt(lt=101)`; a negative size is refused too (the reference hands it to PostgreSQL,
/// which refuses a negative `LIMIT`).
fn page_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let size = to_int(deserializer)?;
    if size > MAX_PAGE_SIZE {
        return Err(D::Error::custom("value should be less than 101"));
    }
    u64::try_from(size).map_err(|_| D::Error::custom("value is less than 0"))
}

/// The reports a caller reaches: by the user's role, as the reference decides.
fn reach(caller: &Caller) -> ErrorLogReach<'_> {
    match caller.role() {
        UserRole::Superadmin => ErrorLogReach::Everything,
        UserRole::Admin => ErrorLogReach::DomainMembers(caller.user.domain_name.as_deref()),
        _ => ErrorLogReach::Own(caller.user.uuid),
    }
}

#[derive(Debug, Serialize)]
struct LogPage {
    logs: Vec<Map<String, Value>>,
    count: u64,
}

fn severity_name(severity: ErrorLogSeverity) -> &'static str {
    match severity {
        ErrorLogSeverity::Critical => "critical",
        ErrorLogSeverity::Error => "error",
        ErrorLogSeverity::Warning => "warning",
    }
}

/// A report as the reference lists it; admins also see whether it was cleared.
fn log_item(log: error_logs::Model, with_cleared: bool) -> Map<String, Value> {
    let mut item = Map::new();
    item.insert("log_id".into(), Value::String(log.id.to_string()));
    item.insert(
        "created_at".into(),
        log.created_at
            .map(|at| Value::from(at.timestamp_micros() as f64 / 1_000_000.0))
            .unwrap_or(Value::Null),
    );
    item.insert(
        "severity".into(),
        log.severity
            .map(|severity| Value::from(severity_name(severity)))
            .unwrap_or(Value::Null),
    );
    item.insert("source".into(), Value::from(log.source));
    item.insert(
        "user".into(),
        Value::from(log.user.map(|user| user.to_string())),
    );
    item.insert("is_read".into(), Value::from(log.is_read));
    item.insert("message".into(), Value::from(log.message));
    item.insert("context_lang".into(), Value::from(log.context_lang));
    item.insert("context_env".into(), log.context_env.unwrap_or(Value::Null));
    item.insert("request_url".into(), Value::from(log.request_url));
    item.insert("request_status".into(), Value::from(log.request_status));
    item.insert("traceback".into(), Value::from(log.traceback));
    if with_cleared {
        item.insert("is_cleared".into(), Value::from(log.is_cleared));
    }
    item
}

async fn list_logs(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<ListParams>,
) -> Result<PyJson<LogPage>, ApiError> {
    tracing::info!(target: "bai_api", "LIST (ak:{}/*)", caller.access_key());
    let reach = reach(&caller);
    // Pages before the first are the first.
    let skipped_pages = u64::try_from(params.page_no.saturating_sub(1)).unwrap_or(0);
    let page = list_error_logs(
        ctx.db(),
        reach,
        params.page_size,
        skipped_pages.saturating_mul(params.page_size),
        params.mark_read,
    )
    .await
    .map_err(|error| ApiError::internal("listing error logs", &error))?;
    let with_cleared = !matches!(reach, ErrorLogReach::Own(_));
    Ok(PyJson(LogPage {
        logs: page
            .logs
            .into_iter()
            .map(|log| log_item(log, with_cleared))
            .collect(),
        count: page.total,
    }))
}

async fn mark_cleared(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(log_id): Path<String>,
) -> Result<PyJson<Success>, ApiError> {
    tracing::info!(target: "bai_api", "CLEAR");
    let log_id = Uuid::parse_str(&log_id).map_err(|_| {
        ApiError::invalid_params("Input validation error").data(serde_json::json!({
            "log_id": "badly formed hexadecimal UUID string"
        }))
    })?;
    let cleared = clear_error_log(ctx.db(), reach(&caller), log_id)
        .await
        .map_err(|error| ApiError::internal("clearing an error log", &error))?;
    if !cleared {
        return Err(ApiError::not_found("error log"));
    }
    Ok(PyJson(Success { success: true }))
}
