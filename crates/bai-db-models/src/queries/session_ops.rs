//! The writes of the per-session operations of `/session/{name}`: renaming a running session
//! (`rename_session`), and restarting one (`restart_session`): the session and its kernels marked
//! RESTARTING together, then each kernel RUNNING again with what its agent answered.
//!
//! Each write is one transaction under row locks, session first, then kernels, as in
//! [`session_lifecycle`](super::session_lifecycle). The rules (which statuses may be restarted,
//! which transitions are allowed) are the caller's, passed in as functions.

use chrono::Utc;
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

use crate::entities::enums::{KernelStatus, SessionStatus};
use crate::entities::{kernels, sessions};
use crate::error::DbError;
use crate::queries::session_lifecycle::{
    KernelContainer, history_with, locked_columns, running_in, update_kernel_if,
};

/// What [`rename_session`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenameOutcome {
    Renamed,
    /// The session is not RUNNING (its status): nothing changed.
    NotRunning(SessionStatus),
    /// Another active session of the owner has that name (the unique index
    /// `ix_kernels_unique_sess_token` would refuse it): nothing changed.
    NameTaken,
    /// The session does not exist (any more).
    Gone,
}

/// Renames session `session_id` and its kernels' `session_name` to `new_name` if the session is
/// RUNNING, read under its row lock, and no other active session of its owner has that name.
pub async fn rename_session(
    db: &DatabaseConnection,
    session_id: Uuid,
    new_name: &str,
) -> Result<RenameOutcome, DbError> {
    let context = || format!("renaming session {session_id} to {new_name:?}");
    let txn = db.begin().await.map_err(DbError::query(context()))?;
    let current: Option<(SessionStatus, Option<String>)> = locked_columns::<sessions::Entity, _>(
        &txn,
        session_id,
        &[sessions::Column::Status, sessions::Column::AccessKey],
    )
    .await
    .map_err(DbError::query(context()))?;
    let Some((current, access_key)) = current else {
        return Ok(RenameOutcome::Gone);
    };
    if current != SessionStatus::Running {
        return Ok(RenameOutcome::NotRunning(current));
    }
    let taken: Option<Uuid> = kernels::Entity::find()
        .select_only()
        .column(kernels::Column::Id)
        .filter(kernels::Column::AccessKey.eq(access_key))
        .filter(kernels::Column::SessionName.eq(new_name))
        .filter(kernels::Column::ClusterRole.eq("main"))
        .filter(
            kernels::Column::Status.is_not_in([KernelStatus::Terminated, KernelStatus::Cancelled]),
        )
        .filter(kernels::Column::SessionId.ne(session_id))
        .into_tuple()
        .one(&txn)
        .await
        .map_err(DbError::query(context()))?;
    if taken.is_some() {
        return Ok(RenameOutcome::NameTaken);
    }
    sessions::Entity::update_many()
        .col_expr(sessions::Column::Name, Expr::value(new_name))
        .filter(sessions::Column::Id.eq(session_id))
        .exec(&txn)
        .await
        .map_err(DbError::query(context()))?;
    kernels::Entity::update_many()
        .col_expr(kernels::Column::SessionName, Expr::value(new_name))
        .filter(kernels::Column::SessionId.eq(session_id))
        .exec(&txn)
        .await
        .map_err(DbError::query(context()))?;
    txn.commit().await.map_err(DbError::query(context()))?;
    Ok(RenameOutcome::Renamed)
}

/// A kernel of a session being restarted, as the restart needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartingKernel {
    pub id: Uuid,
    pub agent: Option<String>,
    /// Whether it was marked RESTARTING (its status allowed it); the others are left alone.
    pub restarting: bool,
}

/// What [`begin_restart`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestartStart {
    /// The session is RESTARTING; its kernels, main first.
    Restarting(Vec<RestartingKernel>),
    /// `may_restart` refused the session's status (given): nothing changed.
    Refused(SessionStatus),
    Gone,
}

/// Marks session `session_id` RESTARTING if `may_restart(status)`, and each of its kernels whose
/// `kernel_may_restart(status)` allows it, with their `status_history`, in one transaction under
/// the session's and the kernels' row locks.
pub async fn begin_restart(
    db: &DatabaseConnection,
    session_id: Uuid,
    may_restart: impl Fn(SessionStatus) -> bool,
    kernel_may_restart: impl Fn(KernelStatus) -> bool,
) -> Result<RestartStart, DbError> {
    let context = || format!("marking session {session_id} RESTARTING");
    let txn = db.begin().await.map_err(DbError::query(context()))?;
    let current: Option<SessionStatus> =
        locked_columns::<sessions::Entity, _>(&txn, session_id, &[sessions::Column::Status])
            .await
            .map_err(DbError::query(context()))?;
    let Some(current) = current else {
        return Ok(RestartStart::Gone);
    };
    if !may_restart(current) {
        return Ok(RestartStart::Refused(current));
    }
    let now = Utc::now();
    let restarting = SessionStatus::Restarting;
    sessions::Entity::update_many()
        .col_expr(sessions::Column::Status, Expr::value(restarting.as_enum()))
        .col_expr(
            sessions::Column::StatusHistory,
            history_with("status_history", &restarting.to_value(), now),
        )
        .filter(sessions::Column::Id.eq(session_id))
        .exec(&txn)
        .await
        .map_err(DbError::query(context()))?;
    let rows: Vec<(Uuid, Option<String>, KernelStatus)> = kernels::Entity::find()
        .select_only()
        .column(kernels::Column::Id)
        .column(kernels::Column::Agent)
        .column(kernels::Column::Status)
        .filter(kernels::Column::SessionId.eq(session_id))
        .order_by_asc(kernels::Column::ClusterRole)
        .order_by_asc(kernels::Column::ClusterIdx)
        .lock_exclusive()
        .into_tuple()
        .all(&txn)
        .await
        .map_err(DbError::query(context()))?;
    let kernels: Vec<RestartingKernel> = rows
        .into_iter()
        .map(|(id, agent, status)| RestartingKernel {
            id,
            agent,
            restarting: kernel_may_restart(status),
        })
        .collect();
    let marked: Vec<Uuid> = kernels
        .iter()
        .filter(|kernel| kernel.restarting)
        .map(|kernel| kernel.id)
        .collect();
    if !marked.is_empty() {
        let kernel_restarting = KernelStatus::Restarting;
        kernels::Entity::update_many()
            .col_expr(
                kernels::Column::Status,
                Expr::value(kernel_restarting.as_enum()),
            )
            .col_expr(kernels::Column::StatusChanged, Expr::value(now))
            .col_expr(
                kernels::Column::StatusHistory,
                history_with("status_history", &kernel_restarting.to_value(), now),
            )
            .filter(kernels::Column::Id.is_in(marked))
            .exec(&txn)
            .await
            .map_err(DbError::query(context()))?;
    }
    txn.commit().await.map_err(DbError::query(context()))?;
    Ok(RestartStart::Restarting(kernels))
}

/// Marks kernel `kernel_id` RUNNING with its new container and ports if `may_go(status)` allows
/// it, under its row lock; `false` when it did not change (or does not exist).
pub async fn kernel_restarted(
    db: &DatabaseConnection,
    kernel_id: Uuid,
    restarted: &KernelContainer,
    may_go: impl Fn(KernelStatus) -> bool,
) -> Result<bool, DbError> {
    let context = format!("marking restarted kernel {kernel_id} RUNNING");
    let update = running_in(kernel_id, restarted, Utc::now());
    update_kernel_if(db, kernel_id, may_go, update, &context).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::queries::test_rows::{self, Rows, TestKernel, TestSession, kernel_row, session_row};

    /// A session named `name` of two kernels (main, sub) in `status`; returns its id and kernels.
    async fn session(
        db: &DatabaseConnection,
        rows: &Rows,
        name: &str,
        status: SessionStatus,
    ) -> (Uuid, [Uuid; 2]) {
        let kernel = |role| TestKernel {
            role,
            session_name: Some(name.to_owned()),
            ports: [2000, 2001, 2002, 2003],
            ..TestKernel::default()
        };
        let session = TestSession {
            name: Some(name.to_owned()),
            status,
            cluster_size: 2,
            kernels: vec![kernel("main"), kernel("sub")],
            ..TestSession::default()
        };
        session.insert(db, rows).await;
        (session.id, [session.kernels[0].id, session.kernels[1].id])
    }

    #[tokio::test]
    async fn a_running_session_is_renamed_unless_the_name_is_taken() {
        let (test, rows) = test_rows::database("q_session_ops_rename").await;
        let db = &test.connection;
        let (first, [main, sub]) = session(db, &rows, "first", SessionStatus::Running).await;
        let (second, _) = session(db, &rows, "second", SessionStatus::Running).await;
        let (over, _) = session(db, &rows, "over", SessionStatus::Terminated).await;

        assert_eq!(
            rename_session(db, first, "renamed").await.expect("query"),
            RenameOutcome::Renamed
        );
        let row = session_row(db, first).await;
        assert_eq!(row.name.as_deref(), Some("renamed"));
        for id in [main, sub] {
            assert_eq!(
                kernel_row(db, id).await.session_name.as_deref(),
                Some("renamed")
            );
        }
        assert_eq!(
            rename_session(db, second, "renamed").await.expect("query"),
            RenameOutcome::NameTaken
        );
        // A session that is over holds no name.
        assert_eq!(
            rename_session(db, second, "over").await.expect("query"),
            RenameOutcome::Renamed
        );
        assert_eq!(
            rename_session(db, over, "again").await.expect("query"),
            RenameOutcome::NotRunning(SessionStatus::Terminated)
        );
        assert_eq!(
            rename_session(db, Uuid::new_v4(), "nobody")
                .await
                .expect("query"),
            RenameOutcome::Gone
        );
    }

    #[tokio::test]
    async fn a_restart_marks_the_session_and_kernels_and_writes_the_new_ports() {
        let (test, rows) = test_rows::database("q_session_ops_restart").await;
        let db = &test.connection;
        let (session_id, [main, sub]) = session(db, &rows, "running", SessionStatus::Running).await;
        let (pending, _) = session(db, &rows, "pending", SessionStatus::Pending).await;

        let running = |status| status == SessionStatus::Running;
        let from_running = |status| status == KernelStatus::Running;
        assert_eq!(
            begin_restart(db, pending, running, from_running)
                .await
                .expect("query"),
            RestartStart::Refused(SessionStatus::Pending)
        );
        assert_eq!(
            begin_restart(db, Uuid::new_v4(), running, from_running)
                .await
                .expect("query"),
            RestartStart::Gone
        );
        let RestartStart::Restarting(kernels) =
            begin_restart(db, session_id, running, from_running)
                .await
                .expect("query")
        else {
            panic!("the running session restarts");
        };
        assert_eq!(
            kernels.iter().map(|kernel| kernel.id).collect::<Vec<_>>(),
            vec![main, sub]
        );
        assert!(kernels.iter().all(|kernel| kernel.restarting));
        let row = session_row(db, session_id).await;
        assert_eq!(row.status, SessionStatus::Restarting);
        assert!(row.status_history.expect("history")["RESTARTING"].is_string());
        assert_eq!(kernel_row(db, sub).await.status, KernelStatus::Restarting);

        let restarted = KernelContainer {
            container_id: Some("c0ffee".to_owned()),
            repl_in_port: 3000,
            repl_out_port: 3001,
            stdin_port: 3002,
            stdout_port: 3003,
            service_ports: json!([{"name": "jupyter"}]),
        };
        let from_restarting = |status| status == KernelStatus::Restarting;
        assert!(
            kernel_restarted(db, main, &restarted, from_restarting)
                .await
                .expect("query")
        );
        let row = kernel_row(db, main).await;
        assert_eq!(row.status, KernelStatus::Running);
        assert_eq!(row.container_id.as_deref(), Some("c0ffee"));
        assert_eq!(
            (
                row.repl_in_port,
                row.repl_out_port,
                row.stdin_port,
                row.stdout_port
            ),
            (3000, 3001, 3002, 3003)
        );
        assert_eq!(row.service_ports, Some(json!([{"name": "jupyter"}])));
        let history = row.status_history.expect("history");
        assert!(history["RESTARTING"].is_string() && history["RUNNING"].is_string());
        // Only a RESTARTING kernel takes an answer.
        assert!(
            !kernel_restarted(db, main, &restarted, from_restarting)
                .await
                .expect("query")
        );
    }
}
