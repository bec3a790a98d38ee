//! Agents as the GraphQL admin API lists them (`agent`, `agents`, `agent_list`, `agent_summary`,
//! `agent_summary_list`, and a resource group's agent count and agents' slots): narrowed by resource
//! group and status, the `filter`/`order` mini-language, pages and counts.

use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::user_listing::ListError;
use crate::entities::enums::AgentStatus;
use crate::entities::{ResourceSlot, agents};
use crate::error::DbError;
use crate::minilang::{Field, FieldMap, Kind};

/// `AgentStatus` member names, which are also the stored values.
pub const AGENT_STATUSES: &[(&str, &str)] = &[
    ("ALIVE", "ALIVE"),
    ("LOST", "LOST"),
    ("RESTARTING", "RESTARTING"),
    ("TERMINATED", "TERMINATED"),
];

/// The `AgentStatus` member called `name` (`ALIVE`).
pub fn status_by_name(name: &str) -> Option<AgentStatus> {
    Some(match name {
        "ALIVE" => AgentStatus::Alive,
        "LOST" => AgentStatus::Lost,
        "RESTARTING" => AgentStatus::Restarting,
        "TERMINATED" => AgentStatus::Terminated,
        _ => return None,
    })
}

/// Which type the list is for: the superadmin's `Agent` or everyone's `AgentSummary`, whose
/// `filter` and `order` know fewer fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentView {
    Full,
    Summary,
}

/// The arguments that narrow an agent list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentScope {
    pub scaling_group: Option<String>,
    /// Any of these statuses; all statuses when `None`.
    pub statuses: Option<Vec<AgentStatus>>,
    /// Only agents of these resource groups (those the caller may use); any when `None`.
    pub allowed_scaling_groups: Option<Vec<String>>,
}

fn column(column: agents::Column) -> SimpleExpr {
    Expr::col((agents::Entity, column)).into()
}

/// The fields `filter` may name (the reference's `_queryfilter_fieldspec` of `Agent` or
/// `AgentSummary`).
pub fn filter_fields(view: AgentView) -> FieldMap {
    let field = |name, col, kind| Field {
        name,
        column: column(col),
        kind,
        orderable: false,
    };
    let mut fields = vec![
        field("id", agents::Column::Id, Kind::Text),
        field("status", agents::Column::Status, Kind::Enum(AGENT_STATUSES)),
        field("scaling_group", agents::Column::ScalingGroup, Kind::Text),
        field("schedulable", agents::Column::Schedulable, Kind::Bool),
    ];
    if view == AgentView::Full {
        fields.extend([
            field(
                "status_changed",
                agents::Column::StatusChanged,
                Kind::Timestamp,
            ),
            field("region", agents::Column::Region, Kind::Text),
            field("addr", agents::Column::Addr, Kind::Text),
            field(
                "first_contact",
                agents::Column::FirstContact,
                Kind::Timestamp,
            ),
            field("lost_at", agents::Column::LostAt, Kind::Timestamp),
            field("version", agents::Column::Version, Kind::Text),
        ]);
    }
    FieldMap(fields)
}

/// The fields `order` may name (the reference's `_queryorder_colmap`; the slot maps order as
/// JSONB does).
pub fn order_fields(view: AgentView) -> FieldMap {
    let field = |name, col| Field {
        name,
        column: column(col),
        kind: Kind::Text,
        orderable: true,
    };
    let mut fields = vec![
        field("id", agents::Column::Id),
        field("status", agents::Column::Status),
        field("scaling_group", agents::Column::ScalingGroup),
        field("schedulable", agents::Column::Schedulable),
        field("available_slots", agents::Column::AvailableSlots),
        field("occupied_slots", agents::Column::OccupiedSlots),
    ];
    if view == AgentView::Full {
        fields.extend([
            field("status_changed", agents::Column::StatusChanged),
            field("region", agents::Column::Region),
            field("first_contact", agents::Column::FirstContact),
            field("lost_at", agents::Column::LostAt),
            field("version", agents::Column::Version),
        ]);
    }
    FieldMap(fields)
}

fn scope_condition(scope: &AgentScope) -> Condition {
    let mut condition = Condition::all();
    if let Some(scaling_group) = &scope.scaling_group {
        condition = condition.add(agents::Column::ScalingGroup.eq(scaling_group.as_str()));
    }
    if let Some(statuses) = &scope.statuses {
        condition = condition.add(agents::Column::Status.is_in(statuses.iter().copied()));
    }
    if let Some(allowed) = &scope.allowed_scaling_groups {
        condition =
            condition.add(agents::Column::ScalingGroup.is_in(allowed.iter().map(String::as_str)));
    }
    condition
}

/// The agent `id`, if it is in `scope`.
pub async fn by_id(
    db: &impl ConnectionTrait,
    id: &str,
    scope: &AgentScope,
) -> Result<Option<agents::Model>, DbError> {
    agents::Entity::find_by_id(id)
        .filter(scope_condition(scope))
        .one(db)
        .await
        .map_err(DbError::query(format!("reading agent {id:?}")))
}

/// The agents in `scope` matching `filter`, ordered by `order` (default: by status, resource
/// group and id; ties by id), the page `limit`/`offset` when given.
pub async fn list(
    db: &impl ConnectionTrait,
    view: AgentView,
    scope: &AgentScope,
    filter: Option<&str>,
    order: Option<&str>,
    page: Option<(u64, u64)>,
) -> Result<Vec<agents::Model>, ListError> {
    let mut query = agents::Entity::find().filter(scope_condition(scope));
    if let Some(filter) = filter {
        query = query.filter(filter_fields(view).filter(filter)?);
    }
    let order = match order {
        Some(order) => order_fields(view).order(order)?,
        None => Vec::new(),
    };
    if order.is_empty() {
        query = query
            .order_by_asc(agents::Column::Status)
            .order_by_asc(agents::Column::ScalingGroup);
    }
    for (expr, direction) in order {
        query = query.order_by(expr, direction);
    }
    query = query.order_by(agents::Column::Id, Order::Asc);
    if let Some((limit, offset)) = page {
        query = query.limit(limit).offset(offset);
    }
    Ok(query
        .all(db)
        .await
        .map_err(DbError::query("listing agents".to_owned()))?)
}

/// How many agents `list` would find without a page.
pub async fn count(
    db: &impl ConnectionTrait,
    view: AgentView,
    scope: &AgentScope,
    filter: Option<&str>,
) -> Result<u64, ListError> {
    let mut query = agents::Entity::find().filter(scope_condition(scope));
    if let Some(filter) = filter {
        query = query.filter(filter_fields(view).filter(filter)?);
    }
    Ok(query
        .count(db)
        .await
        .map_err(DbError::query("counting agents".to_owned()))?)
}

/// How many agents there are in each status (statuses without agents are left out), for the
/// metrics.
pub async fn count_by_status(
    db: &impl ConnectionTrait,
) -> Result<Vec<(AgentStatus, u64)>, DbError> {
    let rows: Vec<(AgentStatus, i64)> = agents::Entity::find()
        .select_only()
        .column(agents::Column::Status)
        .column_as(agents::Column::Id.count(), "count")
        .group_by(agents::Column::Status)
        .into_tuple()
        .all(db)
        .await
        .map_err(DbError::query("counting agents by status".to_owned()))?;
    Ok(rows
        .into_iter()
        .map(|(status, count)| (status, u64::try_from(count).unwrap_or(0)))
        .collect())
}

/// What one agent holds and has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentCapacity {
    pub occupied_slots: ResourceSlot,
    pub available_slots: ResourceSlot,
}

/// The occupied and available slots of every agent in `scope`, in no particular order (adding them
/// up is `bai-scheduler`'s job).
pub async fn capacities(
    db: &impl ConnectionTrait,
    scope: &AgentScope,
) -> Result<Vec<AgentCapacity>, DbError> {
    let rows = agents::Entity::find()
        .select_only()
        .columns([
            agents::Column::OccupiedSlots,
            agents::Column::AvailableSlots,
        ])
        .filter(scope_condition(scope))
        .into_tuple::<(ResourceSlot, ResourceSlot)>()
        .all(db)
        .await
        .map_err(DbError::query("reading the slots of agents".to_owned()))?;
    Ok(rows
        .into_iter()
        .map(|(occupied_slots, available_slots)| AgentCapacity {
            occupied_slots,
            available_slots,
        })
        .collect())
}
