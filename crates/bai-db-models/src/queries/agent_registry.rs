//! The agent registry's writes to `agents`: a heartbeat inserts, updates or revives the agent's row
//! under a row lock (the reference's `handle_heartbeat`), lifecycle events change its status
//! (`mark_agent_terminated` and friends). Each runs in its own transaction.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveEnum, ActiveValue, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QuerySelect, TransactionTrait,
};

use crate::entities::enums::AgentStatus;
use crate::entities::{ResourceSlot, agents};
use crate::error::DbError;

/// What a heartbeat says about its agent, in the columns it sets.
#[derive(Clone, Debug, PartialEq)]
pub struct HeartbeatRow {
    pub id: String,
    pub region: String,
    pub scaling_group: String,
    pub available_slots: ResourceSlot,
    pub addr: String,
    pub public_host: Option<String>,
    pub public_key: Option<String>,
    pub version: String,
    pub compute_plugins: serde_json::Value,
    pub architecture: String,
    pub auto_terminate_abusing_kernel: bool,
}

/// What a heartbeat did to the agent's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    /// The agent is new: inserted `ALIVE`.
    Inserted,
    /// `ALIVE` already; these columns changed.
    Updated(Vec<&'static str>),
    /// `ALIVE` already, nothing changed.
    Unchanged,
    /// It was `LOST` or `TERMINATED` and is `ALIVE` again.
    Revived { previous: AgentStatus },
    /// The heartbeat was sent before the agent was marked `LOST` or `TERMINATED` (it was
    /// delivered late, e.g. again after a manager restart): it revives nothing.
    Stale,
    /// `RESTARTING` agents wait for `agent_started`; the heartbeat changed nothing.
    Restarting,
    /// The agent's resource group does not exist; nothing was written.
    UnknownScalingGroup,
}

fn is_foreign_key_violation(error: &sea_orm::DbErr) -> bool {
    matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
    )
}

/// Applies one heartbeat of `row.id`, sent at `sent_at` (the stream entry's time).
pub async fn apply_heartbeat(
    db: &DatabaseConnection,
    row: &HeartbeatRow,
    sent_at: DateTime<Utc>,
) -> Result<HeartbeatOutcome, DbError> {
    let context = || format!("recording the heartbeat of agent {:?}", row.id);
    // A concurrent first heartbeat of the same agent may insert the row between our read and our
    // insert; the second round then finds it.
    for _ in 0..3 {
        let txn = db.begin().await.map_err(DbError::query(context()))?;
        let current = agents::Entity::find_by_id(row.id.clone())
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(DbError::query(context()))?;
        let outcome = match current {
            None => {
                let inserted = agents::Entity::insert(new_row(row))
                    .on_conflict(
                        OnConflict::column(agents::Column::Id)
                            .do_nothing()
                            .to_owned(),
                    )
                    .exec_without_returning(&txn)
                    .await;
                match inserted {
                    Ok(0) => continue,
                    Ok(_) => HeartbeatOutcome::Inserted,
                    Err(error) if is_foreign_key_violation(&error) => {
                        return Ok(HeartbeatOutcome::UnknownScalingGroup);
                    }
                    Err(error) => return Err(DbError::query(context())(error)),
                }
            }
            Some(current) => match current.status {
                AgentStatus::Alive => {
                    let (update, changed) = changed_columns(&current, row);
                    if changed.is_empty() {
                        HeartbeatOutcome::Unchanged
                    } else {
                        match agents::Entity::update(update).exec(&txn).await {
                            Ok(_) => HeartbeatOutcome::Updated(changed),
                            Err(error) if is_foreign_key_violation(&error) => {
                                return Ok(HeartbeatOutcome::UnknownScalingGroup);
                            }
                            Err(error) => return Err(DbError::query(context())(error)),
                        }
                    }
                }
                AgentStatus::Lost | AgentStatus::Terminated => {
                    let marked_at = current.status_changed.map(|at| at.with_timezone(&Utc));
                    if marked_at.is_some_and(|marked_at| sent_at < marked_at) {
                        HeartbeatOutcome::Stale
                    } else {
                        let mut revived = new_row(row);
                        revived.first_contact = ActiveValue::NotSet;
                        revived.occupied_slots = ActiveValue::NotSet;
                        match agents::Entity::update(revived).exec(&txn).await {
                            Ok(_) => HeartbeatOutcome::Revived {
                                previous: current.status,
                            },
                            Err(error) if is_foreign_key_violation(&error) => {
                                return Ok(HeartbeatOutcome::UnknownScalingGroup);
                            }
                            Err(error) => return Err(DbError::query(context())(error)),
                        }
                    }
                }
                AgentStatus::Restarting => HeartbeatOutcome::Restarting,
            },
        };
        txn.commit().await.map_err(DbError::query(context()))?;
        return Ok(outcome);
    }
    Err(DbError::query(context())(sea_orm::DbErr::Custom(
        "the row kept appearing and disappearing".to_owned(),
    )))
}

/// The full row of a live agent as the heartbeat describes it (also what a revival writes).
fn new_row(row: &HeartbeatRow) -> agents::ActiveModel {
    agents::ActiveModel {
        id: ActiveValue::Set(row.id.clone()),
        status: ActiveValue::Set(AgentStatus::Alive),
        status_changed: ActiveValue::Set(Some(Utc::now().into())),
        region: ActiveValue::Set(row.region.clone()),
        scaling_group: ActiveValue::Set(row.scaling_group.clone()),
        schedulable: ActiveValue::NotSet,
        available_slots: ActiveValue::Set(row.available_slots.clone()),
        occupied_slots: ActiveValue::Set(ResourceSlot::new()),
        addr: ActiveValue::Set(row.addr.clone()),
        public_host: ActiveValue::Set(row.public_host.clone()),
        public_key: ActiveValue::Set(row.public_key.clone()),
        first_contact: ActiveValue::Set(Some(Utc::now().into())),
        lost_at: ActiveValue::Set(None),
        version: ActiveValue::Set(row.version.clone()),
        architecture: ActiveValue::Set(row.architecture.clone()),
        compute_plugins: ActiveValue::Set(row.compute_plugins.clone()),
        auto_terminate_abusing_kernel: ActiveValue::Set(row.auto_terminate_abusing_kernel),
    }
}

/// The update of a live agent's row: only the columns whose value the heartbeat changes
/// (`occupied_slots` is never one of them), and their names.
fn changed_columns(
    current: &agents::Model,
    row: &HeartbeatRow,
) -> (agents::ActiveModel, Vec<&'static str>) {
    let mut update = agents::ActiveModel {
        id: ActiveValue::Unchanged(current.id.clone()),
        ..Default::default()
    };
    let mut changed = Vec::new();
    macro_rules! diff {
        ($field:ident, $name:literal) => {
            if current.$field != row.$field {
                update.$field = ActiveValue::Set(row.$field.clone());
                changed.push($name);
            }
        };
    }
    diff!(available_slots, "available_slots");
    diff!(scaling_group, "scaling_group");
    diff!(addr, "addr");
    diff!(public_host, "public_host");
    diff!(public_key, "public_key");
    diff!(version, "version");
    diff!(compute_plugins, "compute_plugins");
    diff!(architecture, "architecture");
    diff!(
        auto_terminate_abusing_kernel,
        "auto_terminate_abusing_kernel"
    );
    (update, changed)
}

/// Marks the agent `LOST` or `TERMINATED` (`status_changed` and `lost_at` now), unless it has no
/// row or is already lost or terminated. Returns the status it had, `None` without a row.
pub async fn mark_agent_terminated(
    db: &DatabaseConnection,
    agent_id: &str,
    status: AgentStatus,
) -> Result<Option<AgentStatus>, DbError> {
    let context = || format!("marking agent {agent_id:?} {status:?}");
    let txn = db.begin().await.map_err(DbError::query(context()))?;
    let previous: Option<AgentStatus> = agents::Entity::find_by_id(agent_id.to_owned())
        .select_only()
        .column(agents::Column::Status)
        .lock_exclusive()
        .into_tuple()
        .one(&txn)
        .await
        .map_err(DbError::query(context()))?;
    if matches!(previous, Some(AgentStatus::Alive | AgentStatus::Restarting)) {
        agents::Entity::update_many()
            .col_expr(agents::Column::Status, status.as_enum())
            .col_expr(
                agents::Column::StatusChanged,
                Expr::current_timestamp().into(),
            )
            .col_expr(agents::Column::LostAt, Expr::current_timestamp().into())
            .filter(agents::Column::Id.eq(agent_id))
            .exec(&txn)
            .await
            .map_err(DbError::query(context()))?;
    }
    txn.commit().await.map_err(DbError::query(context()))?;
    Ok(previous)
}

/// Sets the agent's status (`agent_started`: `ALIVE`; `agent_terminated("agent-restart")`:
/// `RESTARTING`) if it has a row, without touching `status_changed`, as the reference does.
/// Returns whether it has one.
pub async fn set_agent_status(
    db: &DatabaseConnection,
    agent_id: &str,
    status: AgentStatus,
) -> Result<bool, DbError> {
    let result = agents::Entity::update_many()
        .col_expr(agents::Column::Status, status.as_enum())
        .filter(agents::Column::Id.eq(agent_id))
        .exec(db)
        .await
        .map_err(DbError::query(format!(
            "setting agent {agent_id:?} {status:?}"
        )))?;
    Ok(result.rows_affected > 0)
}

/// Sets `schedulable` of the agents `ids` (the reference's scheduler operations
/// `include-agents` / `exclude-agents`), all or none: `false`, and nothing changed, when some id
/// names no agent.
pub async fn set_schedulable(
    db: &DatabaseConnection,
    ids: &[String],
    schedulable: bool,
) -> Result<bool, DbError> {
    let context = || format!("setting agents {ids:?} schedulable = {schedulable}");
    let txn = db.begin().await.map_err(DbError::query(context()))?;
    let updated = agents::Entity::update_many()
        .col_expr(agents::Column::Schedulable, Expr::value(schedulable))
        .filter(agents::Column::Id.is_in(ids.iter().cloned()))
        .exec(&txn)
        .await
        .map_err(DbError::query(context()))?;
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    if updated.rows_affected < distinct.len() as u64 {
        return Ok(false);
    }
    txn.commit().await.map_err(DbError::query(context()))?;
    Ok(true)
}
