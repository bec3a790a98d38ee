//! `error_logs`: the reports filed through `/logs/error` and the agents' `agent_error` events
//! (the reference's `api/logs.py` and `plugin/error_monitor.py`), who may see and clear them,
//! and their retention (`log_cleanup_task`: rows filed before a boundary are deleted).

use sea_orm::prelude::{DateTimeWithTimeZone, Json, Uuid};
use sea_orm::sea_query::{Expr, Query, SimpleExpr};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, Order,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use crate::entities::enums::ErrorLogSeverity;
use crate::entities::{association_groups_users, error_logs, groups};
use crate::error::DbError;

/// A report to file.
#[derive(Clone, Debug)]
pub struct NewErrorLog {
    pub severity: ErrorLogSeverity,
    /// `manager`, an agent's id, or what a client says it is (`webui`, ...).
    pub source: String,
    /// The user it is about; none for most agent errors.
    pub user: Option<Uuid>,
    pub message: String,
    pub context_lang: String,
    pub context_env: Json,
    pub request_url: Option<String>,
    pub request_status: Option<i32>,
    pub traceback: Option<String>,
}

/// Files a report, unread and not cleared, timestamped by the database: its id.
pub async fn insert_error_log(
    db: &impl ConnectionTrait,
    log: NewErrorLog,
) -> Result<Uuid, DbError> {
    let id = Uuid::new_v4();
    let row = error_logs::ActiveModel {
        id: ActiveValue::Set(id),
        severity: ActiveValue::Set(Some(log.severity)),
        source: ActiveValue::Set(Some(log.source)),
        user: ActiveValue::Set(log.user),
        is_read: ActiveValue::Set(Some(false)),
        is_cleared: ActiveValue::Set(Some(false)),
        message: ActiveValue::Set(Some(log.message)),
        context_lang: ActiveValue::Set(Some(log.context_lang)),
        context_env: ActiveValue::Set(Some(log.context_env)),
        request_url: ActiveValue::Set(log.request_url),
        request_status: ActiveValue::Set(log.request_status),
        traceback: ActiveValue::Set(log.traceback),
        created_at: ActiveValue::NotSet,
    };
    error_logs::Entity::insert(row)
        .exec_without_returning(db)
        .await
        .map_err(DbError::query("filing an error log"))?;
    Ok(id)
}

/// Whose reports a caller reaches (the reference's branches on the caller's role).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorLogReach<'a> {
    /// A superadmin: every report, those of no user included.
    Everything,
    /// A domain admin: the reports of the members of the projects of this domain (none without a
    /// domain).
    DomainMembers(Option<&'a str>),
    /// Anyone else: their own reports.
    Own(Uuid),
}

impl ErrorLogReach<'_> {
    fn condition(self) -> SimpleExpr {
        match self {
            ErrorLogReach::Everything => Expr::value(true),
            ErrorLogReach::DomainMembers(None) => Expr::value(false),
            ErrorLogReach::DomainMembers(Some(domain)) => error_logs::Column::User.in_subquery(
                Query::select()
                    .column((
                        association_groups_users::Entity,
                        association_groups_users::Column::UserId,
                    ))
                    .from(association_groups_users::Entity)
                    .inner_join(
                        groups::Entity,
                        Expr::col((groups::Entity, groups::Column::Id)).equals((
                            association_groups_users::Entity,
                            association_groups_users::Column::GroupId,
                        )),
                    )
                    .and_where(Expr::col((groups::Entity, groups::Column::DomainName)).eq(domain))
                    .to_owned(),
            ),
            ErrorLogReach::Own(user) => error_logs::Column::User.eq(user),
        }
    }
}

/// One page of reports, newest first, and how many there are in all.
#[derive(Clone, Debug)]
pub struct ErrorLogPage {
    pub logs: Vec<error_logs::Model>,
    pub total: u64,
}

/// The reports `reach` covers, `limit` of them after skipping `offset`, newest first; a user
/// (`ErrorLogReach::Own`) does not see the reports they cleared. With `mark_read`, the listed
/// reports are marked read (they are returned as they were before), in the same transaction.
pub async fn list_error_logs(
    db: &DatabaseConnection,
    reach: ErrorLogReach<'_>,
    limit: u64,
    offset: u64,
    mark_read: bool,
) -> Result<ErrorLogPage, DbError> {
    let context = "listing error logs";
    let mut condition = reach.condition();
    if let ErrorLogReach::Own(_) = reach {
        condition = condition.and(Expr::col(error_logs::Column::IsCleared).not());
    }
    let txn = db.begin().await.map_err(DbError::query(context))?;
    let logs = error_logs::Entity::find()
        .filter(condition.clone())
        .order_by(error_logs::Column::CreatedAt, Order::Desc)
        // Reports filed in the same instant still page in one order.
        .order_by(error_logs::Column::Id, Order::Desc)
        .limit(limit)
        // PostgreSQL's OFFSET is a bigint: anything past it skips every row all the same.
        .offset(offset.min(i64::MAX.unsigned_abs()))
        .all(&txn)
        .await
        .map_err(DbError::query(context))?;
    let total = error_logs::Entity::find()
        .filter(condition)
        .count(&txn)
        .await
        .map_err(DbError::query(context))?;
    if mark_read && !logs.is_empty() {
        error_logs::Entity::update_many()
            .col_expr(error_logs::Column::IsRead, Expr::value(true))
            .filter(error_logs::Column::Id.is_in(logs.iter().map(|log| log.id)))
            .exec(&txn)
            .await
            .map_err(DbError::query("marking error logs read"))?;
    }
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(ErrorLogPage { logs, total })
}

/// Marks the report `id` cleared if `reach` covers it: whether it did.
pub async fn clear_error_log(
    db: &impl ConnectionTrait,
    reach: ErrorLogReach<'_>,
    id: Uuid,
) -> Result<bool, DbError> {
    let updated = error_logs::Entity::update_many()
        .col_expr(error_logs::Column::IsCleared, Expr::value(true))
        .filter(error_logs::Column::Id.eq(id))
        .filter(reach.condition())
        .exec(db)
        .await
        .map_err(DbError::query(format!("clearing the error log {id}")))?;
    Ok(updated.rows_affected == 1)
}

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
