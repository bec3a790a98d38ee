//! Sessions whose start shows no progress: PREPARING, every kernel still PREPARING (no agent
//! reported pulling, creating or started) since before a given time. The starter of another node
//! re-sends their `create_kernels` when the node that took them died (see `bai-sessions`' start).

use chrono::{DateTime, Utc};
use sea_orm::prelude::Uuid;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    Statement,
};

use super::scheduling::PendingRows;
use crate::entities::enums::KernelStatus;
use crate::entities::{kernels, sessions};
use crate::error::DbError;

/// At most this many stalled sessions per call: the rest come at the next call.
const LIMIT: i64 = 256;

#[derive(FromQueryResult)]
struct SessionId {
    id: Uuid,
}

/// The sessions PREPARING whose kernels are all PREPARING since before `before`, oldest first,
/// with their kernels (the main kernel first).
pub async fn stalled_starts(
    db: &impl ConnectionTrait,
    before: DateTime<Utc>,
) -> Result<Vec<PendingRows>, DbError> {
    let context = || "reading sessions PREPARING without progress".to_owned();
    let ids: Vec<Uuid> = SessionId::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT s.id FROM sessions AS s \
         WHERE s.status = 'PREPARING' \
         AND EXISTS (SELECT 1 FROM kernels AS k WHERE k.session_id = s.id) \
         AND NOT EXISTS (SELECT 1 FROM kernels AS k WHERE k.session_id = s.id \
             AND (k.status <> 'PREPARING' OR k.status_changed IS NULL OR k.status_changed >= $1)) \
         ORDER BY s.created_at LIMIT $2",
        [before.into(), LIMIT.into()],
    ))
    .all(db)
    .await
    .map_err(DbError::query(context()))?
    .into_iter()
    .map(|row| row.id)
    .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sessions = sessions::Entity::find()
        .filter(sessions::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(sessions::Column::CreatedAt)
        .all(db)
        .await
        .map_err(DbError::query(context()))?;
    let kernels = kernels::Entity::find()
        .filter(kernels::Column::SessionId.is_in(ids.iter().copied()))
        .filter(kernels::Column::Status.eq(KernelStatus::Preparing))
        .order_by_asc(kernels::Column::ClusterIdx)
        .all(db)
        .await
        .map_err(DbError::query(context()))?;
    Ok(PendingRows::group(sessions, kernels))
}
