//! Destroying a session (spec §4.10) as one transaction: the session and its kernels are locked,
//! the caller's rules decide what becomes of each ([`DestroyPlan`]), and the plan is written with
//! the occupancy of the agents concerned recomputed. Calling the agents and announcing the events
//! is the caller's, after the commit.

use chrono::{SecondsFormat, Utc};
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

use crate::entities::enums::{KernelStatus, SessionStatus};
use crate::entities::{ResourceSlot, kernels, sessions};
use crate::error::DbError;
use crate::queries::session_lifecycle::recompute_agent_occupancy;

/// What destroying does to the session and each kernel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DestroyPlan {
    /// The session's new status and `status_info`; `None` leaves it.
    pub session: Option<(SessionStatus, String)>,
    /// Each kernel's new status, `status_info` and, when given, `status_data`.
    pub kernels: Vec<KernelChange>,
    /// Agents whose occupancy is recomputed afterwards.
    pub agents: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct KernelChange {
    pub kernel_id: Uuid,
    pub status: KernelStatus,
    pub status_info: String,
    pub status_data: Option<serde_json::Value>,
}

/// A session as it was before [`destroy_session`] wrote its plan.
#[derive(Clone, Debug)]
pub struct Destroyed {
    pub session: sessions::Model,
    pub kernels: Vec<kernels::Model>,
    pub plan: DestroyPlan,
}

/// Locks session `session_id` and its kernels, asks `decide` for the plan (or its refusal `E`),
/// writes the plan and recomputes the occupancy of its agents (`sum` adds slot maps). `Ok(None)`
/// when the session does not exist.
pub async fn destroy_session<E>(
    db: &DatabaseConnection,
    session_id: Uuid,
    decide: impl FnOnce(&sessions::Model, &[kernels::Model]) -> Result<DestroyPlan, E>,
    sum: impl Fn(&[ResourceSlot]) -> ResourceSlot,
) -> Result<Option<Result<Destroyed, E>>, DbError> {
    let context = || format!("destroying session {session_id}");
    let txn = db.begin().await.map_err(DbError::query(context()))?;
    let Some(session) = sessions::Entity::find_by_id(session_id)
        .lock_exclusive()
        .one(&txn)
        .await
        .map_err(DbError::query(context()))?
    else {
        return Ok(None);
    };
    let kernels = kernels::Entity::find()
        .filter(kernels::Column::SessionId.eq(session_id))
        .order_by_asc(kernels::Column::ClusterIdx)
        .lock_exclusive()
        .all(&txn)
        .await
        .map_err(DbError::query(context()))?;
    let plan = match decide(&session, &kernels) {
        Ok(plan) => plan,
        Err(refusal) => return Ok(Some(Err(refusal))),
    };
    let now = Utc::now();
    let at = now.to_rfc3339_opts(SecondsFormat::Micros, false);
    let history = |status: &str| {
        Expr::cust_with_values(
            "COALESCE(\"status_history\", '{}'::jsonb) || $1",
            [serde_json::json!({ status: at })],
        )
    };
    for change in &plan.kernels {
        let ended = matches!(
            change.status,
            KernelStatus::Terminated | KernelStatus::Cancelled
        );
        let mut update = kernels::Entity::update_many()
            .col_expr(
                kernels::Column::Status,
                Expr::value(change.status.as_enum()),
            )
            .col_expr(
                kernels::Column::StatusInfo,
                Expr::value(change.status_info.clone()),
            )
            .col_expr(kernels::Column::StatusChanged, Expr::value(now))
            .col_expr(
                kernels::Column::StatusHistory,
                history(&change.status.to_value()),
            );
        if let Some(data) = &change.status_data {
            update = update.col_expr(kernels::Column::StatusData, Expr::value(data.clone()));
        }
        if ended {
            update = update.col_expr(kernels::Column::TerminatedAt, Expr::value(now));
        }
        update
            .filter(kernels::Column::Id.eq(change.kernel_id))
            .exec(&txn)
            .await
            .map_err(DbError::query(context()))?;
    }
    if let Some((status, info)) = &plan.session {
        let mut update = sessions::Entity::update_many()
            .col_expr(sessions::Column::Status, Expr::value(status.as_enum()))
            .col_expr(sessions::Column::StatusInfo, Expr::value(info.clone()))
            .col_expr(sessions::Column::StatusHistory, history(&status.to_value()));
        if matches!(status, SessionStatus::Terminated | SessionStatus::Cancelled) {
            update = update.col_expr(sessions::Column::TerminatedAt, Expr::value(now));
        }
        update
            .filter(sessions::Column::Id.eq(session_id))
            .exec(&txn)
            .await
            .map_err(DbError::query(context()))?;
    }
    let mut agents = plan.agents.clone();
    agents.sort();
    agents.dedup();
    for agent in &agents {
        recompute_agent_occupancy(&txn, agent, &sum)
            .await
            .map_err(DbError::query(context()))?;
    }
    txn.commit().await.map_err(DbError::query(context()))?;
    Ok(Some(Ok(Destroyed {
        session,
        kernels,
        plan,
    })))
}
