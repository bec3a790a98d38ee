//! The retention of `error_logs` (the reference's `log_cleanup_task`): rows filed before a
//! boundary are deleted.

use sea_orm::prelude::DateTimeWithTimeZone;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::entities::error_logs;
use crate::error::DbError;

/// Deletes the error logs created before `boundary` (in one statement); how many were deleted.
pub async fn delete_error_logs_before(
    db: &impl ConnectionTrait,
    boundary: DateTimeWithTimeZone,
) -> Result<u64, DbError> {
    let deleted = error_logs::Entity::delete_many()
        .filter(error_logs::Column::CreatedAt.lt(boundary))
        .exec(db)
        .await
        .map_err(DbError::query(format!(
            "deleting the error logs filed before {boundary}"
        )))?;
    Ok(deleted.rows_affected)
}
