//! Error logs from the bus. The agents' `agent_error` events are filed as rows of `error_logs`
//! (the reference's `plugin/error_monitor.py` `handle_agent_error`), with the agent as their
//! source. Their retention (the reference's `api/logs.py` `log_cleanup_task`): on
//! `do_log_cleanup`, the rows of `error_logs` created longer ago than etcd
//! `config/logs/error/retention` (default `90d`) are deleted. A retention that does not parse is
//! logged and the default applies, as in the reference.

use std::sync::Arc;
use std::time::Duration;

use bai_db_models::DbError;
use bai_db_models::entities::enums::ErrorLogSeverity;
use bai_db_models::queries::error_logs::{NewErrorLog, delete_error_logs_before, insert_error_log};
use bai_etcd_store::shared_config::parse_time_duration;
use bai_etcd_store::{EtcdError, EtcdStore, Scope};
use bai_events::{Event, Received};
use bai_events::{HandlerError, Handlers};
use chrono::{DateTime, Months, Utc};
use sea_orm::DatabaseConnection;
use sea_orm::prelude::{Json, Uuid};

/// Where the retention is set, and its default.
pub const RETENTION_KEY: &str = "config/logs/error/retention";
pub const DEFAULT_RETENTION: &str = "90d";

/// What stopped a cleanup.
#[derive(Debug, thiserror::Error)]
pub enum ErrorLogCleanupError {
    #[error("reading {RETENTION_KEY}: {0}")]
    Etcd(#[from] EtcdError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// How long error logs are kept: the reference's `TimeDuration`, whose years and months are
/// calendar ones (`relativedelta`) and whose other units are fixed lengths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    Months(u32),
    Fixed(Duration),
}

impl Retention {
    /// Parses a `TimeDuration` such as `90d`, `12h`, `1.5w`, `3mo`, `1yr` or `3600` (seconds).
    pub fn parse(text: &str) -> Result<Retention, String> {
        let calendar = |count: &str, months_per_unit: u32| {
            count
                .parse::<u32>()
                .ok()
                .and_then(|count| count.checked_mul(months_per_unit))
                .map(Retention::Months)
                .ok_or_else(|| {
                    format!("expected a whole number of years or months, found {text:?}")
                })
        };
        if let Some(years) = text.strip_suffix("yr") {
            calendar(years, 12)
        } else if let Some(months) = text.strip_suffix("mo") {
            calendar(months, 1)
        } else {
            parse_time_duration(text).map(Retention::Fixed)
        }
    }

    /// The moment `now` minus this retention; none for a retention that reaches before the
    /// start of the calendar.
    pub fn before(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Retention::Months(months) => now.checked_sub_months(Months::new(months)),
            Retention::Fixed(duration) => chrono::Duration::from_std(duration)
                .ok()
                .and_then(|duration| now.checked_sub_signed(duration)),
        }
    }
}

/// Deletes expired error logs.
#[derive(Clone, Debug)]
pub struct ErrorLogCleaner {
    db: DatabaseConnection,
    etcd: EtcdStore,
}

impl ErrorLogCleaner {
    pub fn new(db: DatabaseConnection, etcd: EtcdStore) -> ErrorLogCleaner {
        ErrorLogCleaner { db, etcd }
    }

    /// Deletes the error logs older than the retention: how many were deleted.
    pub async fn clean(&self) -> Result<u64, ErrorLogCleanupError> {
        let raw = self.etcd.get(RETENTION_KEY, Scope::Global).await?;
        let raw = raw.as_deref().unwrap_or(DEFAULT_RETENTION);
        let retention = Retention::parse(raw).unwrap_or_else(|problem| {
            tracing::warn!(
                "cannot read the error log retention in {RETENTION_KEY} ({problem}); falling back to 90 days"
            );
            Retention::Fixed(Duration::from_secs(90 * 86_400))
        });
        // A retention longer than the calendar keeps everything.
        let boundary = retention
            .before(Utc::now())
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let deleted = delete_error_logs_before(&self.db, boundary.fixed_offset()).await?;
        if deleted > 0 {
            tracing::info!("Cleaned up {deleted} log(s) filed before {boundary}");
        }
        Ok(deleted)
    }
}

/// The handler of `do_log_cleanup`.
pub fn error_log_handlers(cleaner: &Arc<ErrorLogCleaner>, into: &mut Handlers) {
    let cleaner = Arc::clone(cleaner);
    into.on("do_log_cleanup", "log_cleanup_task", move |_| {
        let cleaner = Arc::clone(&cleaner);
        async move {
            cleaner.clean().await.map_err(HandlerError::from)?;
            Ok(())
        }
    });
}

/// What stopped an `agent_error` from being filed.
#[derive(Debug, thiserror::Error)]
pub enum AgentErrorLogError {
    /// `error_logs.severity` holds `critical`, `error` and `warning` only (the reference's insert
    /// fails on the others too).
    #[error("agent {agent}: cannot file an error log of severity {severity:?}")]
    Severity { agent: String, severity: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Files the agents' `agent_error` events as error logs.
#[derive(Clone, Debug)]
pub struct AgentErrorCollector {
    db: DatabaseConnection,
}

impl AgentErrorCollector {
    pub fn new(db: DatabaseConnection) -> AgentErrorCollector {
        AgentErrorCollector { db }
    }

    /// Files one `agent_error` of `agent`: the new row's id.
    pub async fn collect(
        &self,
        agent: &str,
        message: &str,
        traceback: Option<&str>,
        user: &Json,
        context_env: &Json,
        severity: &str,
    ) -> Result<Uuid, AgentErrorLogError> {
        // 24.03 agents send `ERROR`, 23.09 ones `error`; the column keeps the lowercase form.
        let stored_severity = match severity.to_ascii_lowercase().as_str() {
            "critical" => ErrorLogSeverity::Critical,
            "error" => ErrorLogSeverity::Error,
            "warning" => ErrorLogSeverity::Warning,
            _ => {
                return Err(AgentErrorLogError::Severity {
                    agent: agent.to_owned(),
                    severity: severity.to_owned(),
                });
            }
        };
        let user = match user {
            Json::Null => None,
            Json::String(text) => match Uuid::parse_str(text) {
                Ok(user) => Some(user),
                Err(_) => {
                    // The report matters more than whom it names.
                    tracing::warn!(
                        "agent {agent} reported an error about user {text:?}, which is not a user id; filing it without a user"
                    );
                    None
                }
            },
            other => {
                tracing::warn!(
                    "agent {agent} reported an error about user {other}, which is not a user id; filing it without a user"
                );
                None
            }
        };
        let id = insert_error_log(
            &self.db,
            NewErrorLog {
                severity: stored_severity,
                source: agent.to_owned(),
                user,
                message: message.to_owned(),
                context_lang: "python".to_owned(),
                context_env: context_env.clone(),
                request_url: None,
                request_status: None,
                traceback: traceback.map(str::to_owned),
            },
        )
        .await?;
        tracing::debug!("collected an error log [{severity}] {message:?} from agent:{agent}");
        Ok(id)
    }

    async fn handle(self: Arc<Self>, received: Arc<Received>) -> Result<(), HandlerError> {
        if let Event::AgentError {
            message,
            traceback,
            user,
            context_env,
            severity,
        } = &received.event
        {
            self.collect(
                &received.source,
                message,
                traceback.as_deref(),
                user,
                context_env,
                severity,
            )
            .await?;
        }
        Ok(())
    }
}

/// The handler of `agent_error`.
pub fn agent_error_handlers(collector: &Arc<AgentErrorCollector>, into: &mut Handlers) {
    let collector = Arc::clone(collector);
    into.on("agent_error", "handle_agent_error", move |received| {
        Arc::clone(&collector).handle(received)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_in_calendar_and_fixed_units() {
        assert_eq!(Retention::parse("3mo"), Ok(Retention::Months(3)));
        assert_eq!(Retention::parse("2yr"), Ok(Retention::Months(24)));
        assert_eq!(
            Retention::parse("90d"),
            Ok(Retention::Fixed(Duration::from_secs(90 * 86_400)))
        );
        assert_eq!(
            Retention::parse("3600"),
            Ok(Retention::Fixed(Duration::from_secs(3600)))
        );
        assert!(Retention::parse("1.5mo").is_err());
        assert!(Retention::parse("-1d").is_err());
        assert!(Retention::parse("forever").is_err());
    }

    #[test]
    fn a_month_back_keeps_the_day_or_the_month_end() {
        let at = |text: &str| text.parse::<DateTime<Utc>>().expect("a time");
        assert_eq!(
            Retention::Months(1).before(at("2024-03-31T12:00:00Z")),
            Some(at("2024-02-29T12:00:00Z"))
        );
        assert_eq!(
            Retention::Months(12).before(at("2024-02-29T00:00:00Z")),
            Some(at("2023-02-28T00:00:00Z"))
        );
        assert_eq!(
            Retention::Fixed(Duration::from_secs(86_400)).before(at("2024-03-01T00:00:00Z")),
            Some(at("2024-02-29T00:00:00Z"))
        );
    }
}
