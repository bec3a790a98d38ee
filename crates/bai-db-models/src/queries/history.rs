//! Clearing old history (`manager-cli clear-history`): sessions that terminated before a cutoff,
//! with their kernels, and error logs created before it, counted or deleted in one transaction.
//!
//! A session that a model-service routing still names (`routings.session`, `ON DELETE RESTRICT`)
//! is kept, and counted apart, rather than failing the whole deletion as the reference's would.

use sea_orm::prelude::DateTimeWithTimeZone;
use sea_orm::sea_query::{Condition, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    TransactionTrait,
};

use crate::entities::{error_logs, kernels, routings, sessions};
use crate::error::DbError;

/// The rows older than the cutoff: deleted by [`clear_history`], or that would be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryCounts {
    /// Sessions with `terminated_at` before the cutoff.
    pub sessions: u64,
    /// The kernels of those sessions.
    pub kernels: u64,
    /// Error logs with `created_at` before the cutoff.
    pub error_logs: u64,
    /// Sessions terminated before the cutoff that are kept because a routing names them.
    pub kept_for_routings: u64,
}

fn routed_sessions() -> SelectStatement {
    Query::select()
        .column(routings::Column::Session)
        .from(routings::Entity)
        .and_where(routings::Column::Session.is_not_null())
        .to_owned()
}

fn terminated_before(cutoff: DateTimeWithTimeZone) -> Condition {
    Condition::all().add(sessions::Column::TerminatedAt.lt(cutoff))
}

fn old_sessions(cutoff: DateTimeWithTimeZone) -> Condition {
    terminated_before(cutoff).add(sessions::Column::Id.not_in_subquery(routed_sessions()))
}

fn old_session_ids(cutoff: DateTimeWithTimeZone) -> SelectStatement {
    Query::select()
        .column(sessions::Column::Id)
        .from(sessions::Entity)
        .cond_where(old_sessions(cutoff))
        .to_owned()
}

fn old_kernels(cutoff: DateTimeWithTimeZone) -> Condition {
    Condition::all().add(kernels::Column::SessionId.in_subquery(old_session_ids(cutoff)))
}

fn old_error_logs(cutoff: DateTimeWithTimeZone) -> Condition {
    Condition::all().add(error_logs::Column::CreatedAt.lt(cutoff))
}

fn context(cutoff: DateTimeWithTimeZone) -> String {
    format!("clearing the history older than {cutoff}")
}

/// How many rows [`clear_history`] would delete with this cutoff; nothing is changed.
pub async fn count_history(
    db: &impl ConnectionTrait,
    cutoff: DateTimeWithTimeZone,
) -> Result<HistoryCounts, DbError> {
    let error = || DbError::query(context(cutoff));
    let sessions = sessions::Entity::find()
        .filter(old_sessions(cutoff))
        .count(db)
        .await
        .map_err(error())?;
    let terminated = sessions::Entity::find()
        .filter(terminated_before(cutoff))
        .count(db)
        .await
        .map_err(error())?;
    let kernels = kernels::Entity::find()
        .filter(old_kernels(cutoff))
        .count(db)
        .await
        .map_err(error())?;
    let error_logs = error_logs::Entity::find()
        .filter(old_error_logs(cutoff))
        .count(db)
        .await
        .map_err(error())?;
    Ok(HistoryCounts {
        sessions,
        kernels,
        error_logs,
        kept_for_routings: terminated - sessions,
    })
}

/// Deletes, in one transaction, the sessions terminated before `cutoff` (except those a routing
/// names) with their kernels, and the error logs created before it; returns what was deleted.
pub async fn clear_history(
    db: &DatabaseConnection,
    cutoff: DateTimeWithTimeZone,
) -> Result<HistoryCounts, DbError> {
    let error = || DbError::query(context(cutoff));
    let txn = db.begin().await.map_err(error())?;
    let terminated = sessions::Entity::find()
        .filter(terminated_before(cutoff))
        .count(&txn)
        .await
        .map_err(error())?;
    // Kernels first: `kernels.session_id` refers to the sessions without a cascade.
    let kernels = kernels::Entity::delete_many()
        .filter(old_kernels(cutoff))
        .exec(&txn)
        .await
        .map_err(error())?
        .rows_affected;
    let sessions = sessions::Entity::delete_many()
        .filter(old_sessions(cutoff))
        .exec(&txn)
        .await
        .map_err(error())?
        .rows_affected;
    let error_logs = error_logs::Entity::delete_many()
        .filter(old_error_logs(cutoff))
        .exec(&txn)
        .await
        .map_err(error())?
        .rows_affected;
    txn.commit().await.map_err(error())?;
    Ok(HistoryCounts {
        sessions,
        kernels,
        error_logs,
        kept_for_routings: terminated - sessions,
    })
}
