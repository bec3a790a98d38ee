//! The session lifecycle's writes to `sessions`, `kernels` and `agents`, each in one transaction
//! under row locks: a kernel's status change on an agent's event, a kernel running with what its
//! agent allocated, a kernel terminated with its agent's occupancy recomputed, and a session's
//! status set directly or recomputed from its kernels.
//!
//! The rules (which transitions are allowed, which status a session derives from its kernels, how
//! slot maps add up) are the caller's, passed in as functions: this module only locks, reads and
//! writes. Locks are always taken session first, then kernel, then agent, so that two lifecycle
//! writes never wait for each other in a cycle.

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ActiveEnum, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect,
    TransactionTrait,
};

use crate::entities::enums::{KernelStatus, SessionStatus};
use crate::entities::{ResourceSlot, agents, kernels, sessions};
use crate::error::DbError;
use crate::queries::occupancy::AGENT_OCCUPYING_STATUSES;

/// `status_history || {name: at}`, as the reference's `sql_json_merge` of a status.
pub(crate) fn history_with(column: &str, status: &str, at: DateTime<Utc>) -> SimpleExpr {
    let entry = serde_json::json!({ status: iso(at) });
    Expr::cust_with_values(
        format!("COALESCE(\"{column}\", '{{}}'::jsonb) || $1"),
        [entry],
    )
}

/// Python's `datetime.isoformat()` of an aware UTC time.
fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// `columns` of the row `id` of `E`, read under the row's lock (`SELECT … FOR UPDATE`); `None`
/// when there is no such row.
pub(crate) async fn locked_columns<E, T>(
    db: &impl sea_orm::ConnectionTrait,
    id: <E::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType,
    columns: &[E::Column],
) -> Result<Option<T>, sea_orm::DbErr>
where
    E: EntityTrait,
    T: sea_orm::TryGetableMany,
{
    let mut select = E::find_by_id(id).select_only();
    for column in columns {
        select = select.column(*column);
    }
    select.lock_exclusive().into_tuple().one(db).await
}

/// Sets kernel `kernel_id` to `to` (with `status_info` when given) if `may_go(current)` allows it;
/// `false` when it does not, or when the kernel does not exist.
pub async fn set_kernel_status(
    db: &DatabaseConnection,
    kernel_id: Uuid,
    to: KernelStatus,
    status_info: Option<&str>,
    may_go: impl Fn(KernelStatus) -> bool,
) -> Result<bool, DbError> {
    let context = format!("setting kernel {kernel_id} {}", to.to_value());
    let now = Utc::now();
    let mut update = kernels::Entity::update_many()
        .col_expr(kernels::Column::Status, Expr::value(to.as_enum()))
        .col_expr(kernels::Column::StatusChanged, Expr::value(now))
        .col_expr(
            kernels::Column::StatusHistory,
            history_with("status_history", &to.to_value(), now),
        );
    if let Some(info) = status_info {
        update = update.col_expr(kernels::Column::StatusInfo, Expr::value(info));
    }
    if to == KernelStatus::Cancelled {
        update = update.col_expr(kernels::Column::TerminatedAt, Expr::value(now));
    }
    let update = update.filter(kernels::Column::Id.eq(kernel_id));
    update_kernel_if(db, kernel_id, may_go, update, &context).await
}

/// Runs `update` on kernel `kernel_id` in one transaction if `may_go(its status)`, read under its
/// row lock, allows it; `false` when it does not, or when the kernel does not exist. `context`
/// names the write in errors.
pub(crate) async fn update_kernel_if(
    db: &DatabaseConnection,
    kernel_id: Uuid,
    may_go: impl Fn(KernelStatus) -> bool,
    update: sea_orm::UpdateMany<kernels::Entity>,
    context: &str,
) -> Result<bool, DbError> {
    let txn = db.begin().await.map_err(DbError::query(context))?;
    let current: Option<KernelStatus> =
        locked_columns::<kernels::Entity, _>(&txn, kernel_id, &[kernels::Column::Status])
            .await
            .map_err(DbError::query(context))?;
    if !current.is_some_and(&may_go) {
        return Ok(false);
    }
    update.exec(&txn).await.map_err(DbError::query(context))?;
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(true)
}

/// Sets session `session_id` to `to` without consulting any transition rule (the reference's
/// `set_session_status`): `status_history`, `status_info` when given, `terminated_at` for
/// TERMINATED and CANCELLED. `false` when the session does not exist.
pub async fn set_session_status(
    db: &DatabaseConnection,
    session_id: Uuid,
    to: SessionStatus,
    status_info: Option<&str>,
) -> Result<bool, DbError> {
    let now = Utc::now();
    let updated = session_update(to, status_info, now)
        .filter(sessions::Column::Id.eq(session_id))
        .exec(db)
        .await
        .map_err(DbError::query(format!(
            "setting session {session_id} {}",
            to.to_value()
        )))?;
    Ok(updated.rows_affected > 0)
}

fn session_update(
    to: SessionStatus,
    status_info: Option<&str>,
    now: DateTime<Utc>,
) -> sea_orm::UpdateMany<sessions::Entity> {
    let mut update = sessions::Entity::update_many()
        .col_expr(sessions::Column::Status, Expr::value(to.as_enum()))
        .col_expr(
            sessions::Column::StatusHistory,
            history_with("status_history", &to.to_value(), now),
        );
    if let Some(info) = status_info {
        update = update.col_expr(sessions::Column::StatusInfo, Expr::value(info));
    }
    if matches!(to, SessionStatus::Terminated | SessionStatus::Cancelled) {
        update = update.col_expr(sessions::Column::TerminatedAt, Expr::value(now));
    }
    update
}

/// A session's kernels as its status is derived from them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelStatuses {
    /// The main kernel's status; `None` when the session has no main kernel.
    pub main: Option<KernelStatus>,
    /// Every other kernel's, in no particular order.
    pub siblings: Vec<KernelStatus>,
}

/// Recomputes session `session_id`'s status from its kernels under the session's row lock (the
/// reference's `transit_session_status`): `decide(current, kernels)` returns the new status, or
/// `None` to leave it. Returns the new status when one was written.
pub async fn recompute_session_status(
    db: &DatabaseConnection,
    session_id: Uuid,
    status_info: Option<&str>,
    decide: impl FnOnce(SessionStatus, &KernelStatuses) -> Option<SessionStatus>,
) -> Result<Option<SessionStatus>, DbError> {
    let context = || format!("recomputing the status of session {session_id}");
    let txn = db.begin().await.map_err(DbError::query(context()))?;
    let current: Option<SessionStatus> =
        locked_columns::<sessions::Entity, _>(&txn, session_id, &[sessions::Column::Status])
            .await
            .map_err(DbError::query(context()))?;
    let Some(current) = current else {
        return Ok(None);
    };
    let kernels = kernel_statuses(&txn, session_id)
        .await
        .map_err(DbError::query(context()))?;
    let Some(to) = decide(current, &kernels) else {
        return Ok(None);
    };
    session_update(to, status_info, Utc::now())
        .filter(sessions::Column::Id.eq(session_id))
        .exec(&txn)
        .await
        .map_err(DbError::query(context()))?;
    txn.commit().await.map_err(DbError::query(context()))?;
    Ok(Some(to))
}

async fn kernel_statuses(
    db: &impl sea_orm::ConnectionTrait,
    session_id: Uuid,
) -> Result<KernelStatuses, sea_orm::DbErr> {
    let rows: Vec<(String, KernelStatus)> = kernels::Entity::find()
        .select_only()
        .column(kernels::Column::ClusterRole)
        .column(kernels::Column::Status)
        .filter(kernels::Column::SessionId.eq(session_id))
        .into_tuple()
        .all(db)
        .await?;
    let mut statuses = KernelStatuses {
        main: None,
        siblings: Vec::new(),
    };
    for (role, status) in rows {
        if role == "main" && statuses.main.is_none() {
            statuses.main = Some(status);
        } else {
            statuses.siblings.push(status);
        }
    }
    Ok(statuses)
}

/// Session `session_id`'s `creation_id`: what a client waiting for its start listens for. `None`
/// when the session does not exist or has none.
pub async fn creation_id(
    db: &DatabaseConnection,
    session_id: Uuid,
) -> Result<Option<String>, DbError> {
    let found: Option<Option<String>> = sessions::Entity::find_by_id(session_id)
        .select_only()
        .column(sessions::Column::CreationId)
        .into_tuple()
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading the creation id of session {session_id}"
        )))?;
    Ok(found.flatten())
}

/// What an agent reported of a kernel it started (`kernel_started`'s `creation_info`), in the
/// columns the kernel's row keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct StartedKernel {
    /// What the agent actually allocated (the sum of its `resource_spec.allocations`).
    pub occupied_slots: ResourceSlot,
    pub scaling_group: Option<String>,
    pub attached_devices: serde_json::Value,
    pub kernel_host: Option<String>,
    pub container: KernelContainer,
}

/// A kernel's container as its agent reported it when it started or restarted it: the
/// container's id and the ports the kernel is reached on.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelContainer {
    pub container_id: Option<String>,
    pub repl_in_port: i32,
    pub repl_out_port: i32,
    pub stdin_port: i32,
    pub stdout_port: i32,
    pub service_ports: serde_json::Value,
}

/// The update that makes kernel `kernel_id` RUNNING at `now` in `container`: what a start and a
/// restart both write.
pub(crate) fn running_in(
    kernel_id: Uuid,
    container: &KernelContainer,
    now: DateTime<Utc>,
) -> sea_orm::UpdateMany<kernels::Entity> {
    let running = KernelStatus::Running;
    kernels::Entity::update_many()
        .col_expr(kernels::Column::Status, Expr::value(running.as_enum()))
        .col_expr(kernels::Column::StatusChanged, Expr::value(now))
        .col_expr(
            kernels::Column::StatusHistory,
            history_with("status_history", &running.to_value(), now),
        )
        .col_expr(
            kernels::Column::ContainerId,
            Expr::value(container.container_id.clone()),
        )
        .col_expr(
            kernels::Column::ReplInPort,
            Expr::value(container.repl_in_port),
        )
        .col_expr(
            kernels::Column::ReplOutPort,
            Expr::value(container.repl_out_port),
        )
        .col_expr(
            kernels::Column::StdinPort,
            Expr::value(container.stdin_port),
        )
        .col_expr(
            kernels::Column::StdoutPort,
            Expr::value(container.stdout_port),
        )
        .col_expr(
            kernels::Column::ServicePorts,
            Expr::value(container.service_ports.clone()),
        )
        .filter(kernels::Column::Id.eq(kernel_id))
}

/// Marks kernel `kernel_id` of session `session_id` RUNNING with what its agent reported, if
/// `may_go(current)` allows it, and adds its allocation to the session's `occupying_slots`
/// (`add(occupying, allocated)`), both in one transaction: a `kernel_started` delivered twice
/// counts once. `false` when the kernel did not change.
pub async fn start_kernel(
    db: &DatabaseConnection,
    session_id: Uuid,
    kernel_id: Uuid,
    started: &StartedKernel,
    may_go: impl Fn(KernelStatus) -> bool,
    add: impl FnOnce(&ResourceSlot, &ResourceSlot) -> ResourceSlot,
) -> Result<bool, DbError> {
    let context = || format!("marking kernel {kernel_id} of session {session_id} RUNNING");
    let txn = db.begin().await.map_err(DbError::query(context()))?;
    let occupying: Option<ResourceSlot> = locked_columns::<sessions::Entity, _>(
        &txn,
        session_id,
        &[sessions::Column::OccupyingSlots],
    )
    .await
    .map_err(DbError::query(context()))?;
    let Some(occupying) = occupying else {
        return Ok(false);
    };
    let current: Option<KernelStatus> = kernels::Entity::find_by_id(kernel_id)
        .select_only()
        .column(kernels::Column::Status)
        .filter(kernels::Column::SessionId.eq(session_id))
        .lock_exclusive()
        .into_tuple()
        .one(&txn)
        .await
        .map_err(DbError::query(context()))?;
    if !current.is_some_and(&may_go) {
        return Ok(false);
    }
    running_in(kernel_id, &started.container, Utc::now())
        .col_expr(
            kernels::Column::OccupiedSlots,
            Expr::value(started.occupied_slots.clone()),
        )
        .col_expr(
            kernels::Column::ScalingGroup,
            Expr::value(started.scaling_group.clone()),
        )
        .col_expr(
            kernels::Column::OccupiedShares,
            Expr::value(serde_json::json!({})),
        )
        .col_expr(
            kernels::Column::AttachedDevices,
            Expr::value(started.attached_devices.clone()),
        )
        .col_expr(
            kernels::Column::KernelHost,
            Expr::value(started.kernel_host.clone()),
        )
        .exec(&txn)
        .await
        .map_err(DbError::query(context()))?;
    sessions::Entity::update_many()
        .col_expr(
            sessions::Column::OccupyingSlots,
            Expr::value(add(&occupying, &started.occupied_slots)),
        )
        .filter(sessions::Column::Id.eq(session_id))
        .exec(&txn)
        .await
        .map_err(DbError::query(context()))?;
    txn.commit().await.map_err(DbError::query(context()))?;
    Ok(true)
}

/// A kernel [`terminate_kernel`] marked TERMINATED.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TerminatedKernel {
    pub session_id: Uuid,
    pub access_key: Option<String>,
    pub agent: Option<String>,
}

/// Marks kernel `kernel_id` TERMINATED (the reference's `mark_kernel_terminated`: reason,
/// `status_data.kernel.exit_code`, `last_stat` when given) unless it is CANCELLED, TERMINATED or
/// RESTARTING already, and sets its agent's `occupied_slots` to `sum` of what the agent's
/// occupying kernels hold, in one transaction. `None` when nothing changed.
pub async fn terminate_kernel(
    db: &DatabaseConnection,
    kernel_id: Uuid,
    reason: &str,
    exit_code: Option<i64>,
    last_stat: Option<serde_json::Value>,
    sum: impl FnOnce(&[ResourceSlot]) -> ResourceSlot,
) -> Result<Option<TerminatedKernel>, DbError> {
    let context = || format!("marking kernel {kernel_id} TERMINATED");
    let txn = db.begin().await.map_err(DbError::query(context()))?;
    let current: Option<(Uuid, KernelStatus, Option<String>, Option<String>)> =
        locked_columns::<kernels::Entity, _>(
            &txn,
            kernel_id,
            &[
                kernels::Column::SessionId,
                kernels::Column::Status,
                kernels::Column::AccessKey,
                kernels::Column::Agent,
            ],
        )
        .await
        .map_err(DbError::query(context()))?;
    let Some((session_id, status, access_key, agent)) = current else {
        return Ok(None);
    };
    if matches!(
        status,
        KernelStatus::Cancelled | KernelStatus::Terminated | KernelStatus::Restarting
    ) {
        return Ok(None);
    }
    let now = Utc::now();
    let terminated = KernelStatus::Terminated;
    let mut update = kernels::Entity::update_many()
        .col_expr(kernels::Column::Status, Expr::value(terminated.as_enum()))
        .col_expr(kernels::Column::StatusInfo, Expr::value(reason))
        .col_expr(kernels::Column::StatusChanged, Expr::value(now))
        .col_expr(
            kernels::Column::StatusData,
            Expr::cust_with_values(
                "jsonb_set(COALESCE(\"status_data\", '{}'::jsonb), '{kernel}', \
                 COALESCE(\"status_data\" -> 'kernel', '{}'::jsonb) || $1)",
                [serde_json::json!({ "exit_code": exit_code })],
            ),
        )
        .col_expr(
            kernels::Column::StatusHistory,
            history_with("status_history", &terminated.to_value(), now),
        )
        .col_expr(kernels::Column::TerminatedAt, Expr::value(now));
    if let Some(stat) = last_stat {
        update = update.col_expr(kernels::Column::LastStat, Expr::value(stat));
    }
    update
        .filter(kernels::Column::Id.eq(kernel_id))
        .exec(&txn)
        .await
        .map_err(DbError::query(context()))?;
    if let Some(agent_id) = &agent {
        recompute_agent_occupancy(&txn, agent_id, sum)
            .await
            .map_err(DbError::query(context()))?;
    }
    txn.commit().await.map_err(DbError::query(context()))?;
    Ok(Some(TerminatedKernel {
        session_id,
        access_key,
        agent,
    }))
}

/// Sets agent `agent_id`'s `occupied_slots` to `sum` of the slots its occupying kernels hold,
/// under the agent's row lock.
pub(crate) async fn recompute_agent_occupancy(
    db: &impl sea_orm::ConnectionTrait,
    agent_id: &str,
    sum: impl FnOnce(&[ResourceSlot]) -> ResourceSlot,
) -> Result<(), sea_orm::DbErr> {
    let exists: Option<String> =
        locked_columns::<agents::Entity, _>(db, agent_id.to_owned(), &[agents::Column::Id]).await?;
    if exists.is_none() {
        return Ok(());
    }
    let held: Vec<ResourceSlot> = kernels::Entity::find()
        .select_only()
        .column(kernels::Column::OccupiedSlots)
        .filter(kernels::Column::Agent.eq(agent_id))
        .filter(kernels::Column::Status.is_in(AGENT_OCCUPYING_STATUSES))
        .into_tuple()
        .all(db)
        .await?;
    agents::Entity::update_many()
        .col_expr(agents::Column::OccupiedSlots, Expr::value(sum(&held)))
        .filter(agents::Column::Id.eq(agent_id))
        .exec(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sea_orm::prelude::Uuid;
    use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, Set};
    use serde_json::json;

    use super::*;
    use crate::entities::enums::AgentStatus;
    use crate::queries::test_rows::{self, Rows, TestKernel, TestSession, kernel_row, session_row};

    const AGENT: &str = "i-agent";

    fn slots(json: serde_json::Value) -> ResourceSlot {
        ResourceSlot::from_json(&json).expect("slots")
    }

    /// A session of two kernels (main, sub) on [`AGENT`] in `status`, each holding one core.
    async fn session(
        db: &DatabaseConnection,
        rows: &Rows,
        status: SessionStatus,
    ) -> (Uuid, [Uuid; 2]) {
        let kernel = |role| TestKernel {
            role,
            agent: Some(AGENT.to_owned()),
            occupied_slots: slots(json!({"cpu": "1"})),
            requested_slots: slots(json!({"cpu": "1"})),
            ..TestKernel::default()
        };
        let session = TestSession {
            status,
            status_history: Some(json!({"PENDING": "2024-01-01T00:00:00+00:00"})),
            cluster_size: 2,
            kernels: vec![kernel("main"), kernel("sub")],
            ..TestSession::default()
        };
        session.insert(db, rows).await;
        (session.id, [session.kernels[0].id, session.kernels[1].id])
    }

    async fn agent(db: &DatabaseConnection) {
        test_rows::scaling_group("default", true)
            .insert(db)
            .await
            .expect("scaling group");
        crate::entities::agents::ActiveModel {
            id: Set(AGENT.to_owned()),
            status: Set(AgentStatus::Alive),
            region: Set("local".to_owned()),
            scaling_group: Set("default".to_owned()),
            schedulable: Set(true),
            available_slots: Set(slots(json!({"cpu": "8"}))),
            occupied_slots: Set(slots(json!({"cpu": "2"}))),
            addr: Set("tcp://127.0.0.1:6001".to_owned()),
            version: Set("24.03.11".to_owned()),
            architecture: Set("x86_64".to_owned()),
            compute_plugins: Set(json!({})),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("agent");
    }

    #[tokio::test]
    async fn a_kernel_changes_status_only_where_the_rule_allows() {
        let (test, rows) = test_rows::database("q_lifecycle_kernel_status").await;
        let db = &test.connection;
        agent(db).await;
        let (_, [main, _]) = session(db, &rows, SessionStatus::Preparing).await;
        let changed = set_kernel_status(db, main, KernelStatus::Pulling, Some("img"), |from| {
            from == KernelStatus::Preparing
        })
        .await
        .expect("query");
        assert!(changed);
        let row = kernel_row(db, main).await;
        assert_eq!(row.status, KernelStatus::Pulling);
        assert_eq!(row.status_info.as_deref(), Some("img"));
        assert!(row.status_changed.is_some());
        assert!(row.status_history.expect("history")["PULLING"].is_string());

        let refused = set_kernel_status(db, main, KernelStatus::Pulling, None, |from| {
            from == KernelStatus::Preparing
        })
        .await
        .expect("query");
        assert!(!refused);
        let unknown = set_kernel_status(db, Uuid::new_v4(), KernelStatus::Pulling, None, |_| true)
            .await
            .expect("query");
        assert!(!unknown);
    }

    #[tokio::test]
    async fn a_session_status_is_recomputed_from_its_kernels_under_its_lock() {
        let (test, rows) = test_rows::database("q_lifecycle_recompute").await;
        let db = &test.connection;
        agent(db).await;
        let (session_id, _) = session(db, &rows, SessionStatus::Preparing).await;
        let mut seen = None;
        let new = recompute_session_status(db, session_id, Some("why"), |current, kernels| {
            seen = Some((current, kernels.clone()));
            Some(SessionStatus::Running)
        })
        .await
        .expect("query");
        assert_eq!(new, Some(SessionStatus::Running));
        let (current, kernels) = seen.expect("decided");
        assert_eq!(current, SessionStatus::Preparing);
        assert_eq!(kernels.main, Some(KernelStatus::Preparing));
        assert_eq!(kernels.siblings, vec![KernelStatus::Preparing]);
        let row = session_row(db, session_id).await;
        assert_eq!(row.status, SessionStatus::Running);
        assert_eq!(row.status_info.as_deref(), Some("why"));
        let history = row.status_history.expect("history");
        assert!(history["PENDING"].is_string() && history["RUNNING"].is_string());
        assert!(row.terminated_at.is_none());

        let untouched = recompute_session_status(db, session_id, None, |_, _| None)
            .await
            .expect("query");
        assert_eq!(untouched, None);
        assert!(
            set_session_status(db, session_id, SessionStatus::Cancelled, None)
                .await
                .expect("query")
        );
        assert!(session_row(db, session_id).await.terminated_at.is_some());
    }

    #[tokio::test]
    async fn a_started_kernel_counts_once_in_its_session() {
        let (test, rows) = test_rows::database("q_lifecycle_start").await;
        let db = &test.connection;
        agent(db).await;
        let (session_id, [main, _]) = session(db, &rows, SessionStatus::Preparing).await;
        let started = StartedKernel {
            occupied_slots: slots(json!({"cpu": "1", "mem": "1073741824"})),
            scaling_group: Some("default".to_owned()),
            attached_devices: json!({}),
            kernel_host: Some("127.0.0.1".to_owned()),
            container: KernelContainer {
                container_id: Some(String::new()),
                repl_in_port: 2000,
                repl_out_port: 2001,
                stdin_port: 2002,
                stdout_port: 2003,
                service_ports: json!([]),
            },
        };
        let may_go = |from: KernelStatus| from == KernelStatus::Preparing;
        // The caller's addition; here: the allocation replaces an empty map.
        let add = |occupying: &ResourceSlot, allocated: &ResourceSlot| {
            assert!(occupying.iter().next().is_none());
            allocated.clone()
        };
        assert!(
            start_kernel(db, session_id, main, &started, may_go, add)
                .await
                .expect("query")
        );
        let row = kernel_row(db, main).await;
        assert_eq!(row.status, KernelStatus::Running);
        assert_eq!(row.repl_out_port, 2001);
        assert_eq!(row.occupied_slots, started.occupied_slots);
        assert_eq!(
            session_row(db, session_id).await.occupying_slots,
            started.occupied_slots
        );
        // Delivered again: the kernel is RUNNING, nothing is added.
        let again = start_kernel(db, session_id, main, &started, may_go, |_, _| {
            panic!("must not add twice")
        })
        .await
        .expect("query");
        assert!(!again);
    }

    #[tokio::test]
    async fn a_terminated_kernel_releases_its_slots_on_the_agent() {
        let (test, rows) = test_rows::database("q_lifecycle_terminate").await;
        let db = &test.connection;
        agent(db).await;
        let (session_id, [main, sub]) = session(db, &rows, SessionStatus::Running).await;
        let mut summed = Vec::new();
        let terminated = terminate_kernel(
            db,
            main,
            "user-requested",
            Some(0),
            Some(json!({"cpu_used": {"current": "1"}})),
            |held| {
                summed = held.to_vec();
                slots(json!({"cpu": "1"}))
            },
        )
        .await
        .expect("query")
        .expect("terminated");
        assert_eq!(
            terminated,
            TerminatedKernel {
                session_id,
                access_key: Some(Rows::ACCESS_KEY.to_owned()),
                agent: Some(AGENT.to_owned()),
            }
        );
        // Only the sub kernel still holds its core.
        assert_eq!(summed, vec![slots(json!({"cpu": "1"}))]);
        let agent_row = crate::entities::agents::Entity::find_by_id(AGENT.to_owned())
            .one(db)
            .await
            .expect("query")
            .expect("agent");
        assert_eq!(agent_row.occupied_slots, slots(json!({"cpu": "1"})));
        let row = kernel_row(db, main).await;
        assert_eq!(row.status, KernelStatus::Terminated);
        assert_eq!(row.status_info.as_deref(), Some("user-requested"));
        assert_eq!(row.status_data.expect("data")["kernel"]["exit_code"], 0);
        assert!(row.terminated_at.is_some() && row.last_stat.is_some());
        assert_eq!(kernel_row(db, sub).await.status, KernelStatus::Running);

        let again = terminate_kernel(db, main, "again", None, None, |_| {
            panic!("nothing to recompute")
        })
        .await
        .expect("query");
        assert_eq!(again, None);
    }
}
