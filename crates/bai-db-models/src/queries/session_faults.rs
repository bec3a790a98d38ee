//! What ends sessions that would otherwise wait for good: the sessions that have hung in a status
//! longer than the hang tolerance allows (the reference's `hanging_session_scanner_ctx`), and the
//! sessions and kernels an agent was working on when it was lost.
//!
//! Reads only: the sessions are ended by the caller (destroying them, or cancelling them with
//! [`scheduling::cancel_failed_start`](crate::queries::scheduling::cancel_failed_start)).

use std::time::Duration;

use sea_orm::prelude::Uuid;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::entities::enums::{KernelStatus, SessionStatus};
use crate::entities::{kernels, sessions};
use crate::error::DbError;
use crate::queries::scheduling::PendingRows;

/// The statuses of a session whose kernels are still being created.
const STARTING_SESSIONS: [SessionStatus; 3] = [
    SessionStatus::Scheduled,
    SessionStatus::Preparing,
    SessionStatus::Pulling,
];
/// The statuses of a kernel its agent has not reported started yet.
const STARTING_KERNELS: [KernelStatus; 4] = [
    KernelStatus::Scheduled,
    KernelStatus::Preparing,
    KernelStatus::Building,
    KernelStatus::Pulling,
];

/// The sessions in `status` that entered it (`status_history[status]`) longer than `threshold`
/// ago by the database's clock, oldest first. A session without that history entry is not
/// hanging, as in the reference's query.
pub async fn hanging_sessions(
    db: &impl ConnectionTrait,
    status: SessionStatus,
    threshold: Duration,
) -> Result<Vec<Uuid>, DbError> {
    let name = status.to_value();
    let older = Expr::cust_with_values(
        "now() - (\"sessions\".\"status_history\" ->> $1)::timestamptz > make_interval(secs => $2)",
        [
            sea_orm::Value::from(name.clone()),
            sea_orm::Value::from(threshold.as_secs_f64()),
        ],
    );
    sessions::Entity::find()
        .select_only()
        .column(sessions::Column::Id)
        .filter(sessions::Column::Status.eq(status))
        .filter(older)
        .order_by_asc(sessions::Column::CreatedAt)
        .into_tuple()
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "finding sessions {name} for longer than {threshold:?}"
        )))
}

/// The sessions still starting (SCHEDULED, PREPARING, PULLING) that wait for agent `agent_id` to
/// start one of their kernels, each with all its kernels, main kernel first.
pub async fn sessions_starting_on(
    db: &impl ConnectionTrait,
    agent_id: &str,
) -> Result<Vec<PendingRows>, DbError> {
    let context = || format!("finding the sessions agent {agent_id} was starting");
    let waiting: Vec<Uuid> = kernels::Entity::find()
        .select_only()
        .column(kernels::Column::SessionId)
        .distinct()
        .filter(kernels::Column::Agent.eq(agent_id))
        .filter(kernels::Column::Status.is_in(STARTING_KERNELS))
        .into_tuple()
        .all(db)
        .await
        .map_err(DbError::query(context()))?;
    if waiting.is_empty() {
        return Ok(Vec::new());
    }
    let sessions = sessions::Entity::find()
        .filter(sessions::Column::Id.is_in(waiting))
        .filter(sessions::Column::Status.is_in(STARTING_SESSIONS))
        .order_by_asc(sessions::Column::CreatedAt)
        .all(db)
        .await
        .map_err(DbError::query(context()))?;
    if sessions.is_empty() {
        return Ok(Vec::new());
    }
    let kernels = kernels::Entity::find()
        .filter(kernels::Column::SessionId.is_in(sessions.iter().map(|session| session.id)))
        .order_by_asc(kernels::Column::ClusterIdx)
        .all(db)
        .await
        .map_err(DbError::query(context()))?;
    Ok(PendingRows::group(sessions, kernels))
}

/// The kernels on agent `agent_id` that are TERMINATING: their agent was asked to destroy them
/// and has not said it did.
pub async fn kernels_terminating_on(
    db: &impl ConnectionTrait,
    agent_id: &str,
) -> Result<Vec<kernels::Model>, DbError> {
    kernels::Entity::find()
        .filter(kernels::Column::Agent.eq(agent_id))
        .filter(kernels::Column::Status.eq(KernelStatus::Terminating))
        .order_by_asc(kernels::Column::SessionId)
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "finding the kernels agent {agent_id} was destroying"
        )))
}

#[cfg(test)]
mod tests {
    use sea_orm::DatabaseConnection;
    use serde_json::json;

    use super::*;
    use crate::queries::test_rows::{self, Rows, TestSession};

    /// A session in `status` whose history says it entered `status` `entered_secs_ago` (none: an
    /// empty history).
    async fn session(
        db: &DatabaseConnection,
        rows: &Rows,
        status: SessionStatus,
        entered_secs_ago: Option<i64>,
    ) -> Uuid {
        let history = match entered_secs_ago {
            Some(ago) => {
                let at = chrono::Utc::now() - chrono::Duration::seconds(ago);
                let at = at.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string();
                json!({ status.to_value(): at })
            }
            None => json!({}),
        };
        let session = TestSession {
            status,
            status_history: Some(history),
            ..TestSession::default()
        };
        session.insert(db, rows).await;
        session.id
    }

    #[tokio::test]
    async fn sessions_hang_once_their_status_is_older_than_the_threshold() {
        let (test, rows) = test_rows::database("q_faults_hanging").await;
        let db = &test.connection;
        let old = session(db, &rows, SessionStatus::Preparing, Some(60)).await;
        session(db, &rows, SessionStatus::Preparing, Some(10)).await;
        session(db, &rows, SessionStatus::Preparing, None).await;
        let terminating = session(db, &rows, SessionStatus::Terminating, Some(120)).await;

        let threshold = Duration::from_secs(30);
        let preparing = hanging_sessions(db, SessionStatus::Preparing, threshold)
            .await
            .expect("query");
        assert_eq!(preparing, [old]);
        let stuck = hanging_sessions(db, SessionStatus::Terminating, threshold)
            .await
            .expect("query");
        assert_eq!(stuck, [terminating]);
        let none = hanging_sessions(db, SessionStatus::Terminating, Duration::from_secs(3600))
            .await
            .expect("query");
        assert!(none.is_empty());
    }
}
