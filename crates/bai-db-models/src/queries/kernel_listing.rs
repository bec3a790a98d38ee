//! Kernels (containers) as the GraphQL admin API shows them on their own: `compute_container(id)`,
//! `compute_container_list(session_id, role, filter, order)` narrowed by the caller's domain and
//! access key, and the containers of an agent (`Agent.compute_containers`).

use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Select,
};

use super::occupancy::AGENT_OCCUPYING_STATUSES;
use super::user_listing::ListError;
use crate::entities::enums::KernelStatus;
use crate::entities::kernels;
use crate::error::DbError;
use crate::minilang::{Field, FieldMap, Kind, MinilangError, parse_filter};

/// The caller's bounds: kernels of this domain and of this access key, when given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelScope {
    pub domain_name: Option<String>,
    pub access_key: Option<String>,
}

/// `KernelStatus` names, which are also the stored values.
const KERNEL_STATUSES: &[(&str, &str)] = &[
    ("PENDING", "PENDING"),
    ("SCHEDULED", "SCHEDULED"),
    ("PREPARING", "PREPARING"),
    ("BUILDING", "BUILDING"),
    ("PULLING", "PULLING"),
    ("RUNNING", "RUNNING"),
    ("RESTARTING", "RESTARTING"),
    ("RESIZING", "RESIZING"),
    ("SUSPENDED", "SUSPENDED"),
    ("TERMINATING", "TERMINATING"),
    ("TERMINATED", "TERMINATED"),
    ("ERROR", "ERROR"),
    ("CANCELLED", "CANCELLED"),
];

/// `KernelStatus` by name (`RUNNING`).
pub fn status_by_name(name: &str) -> Option<KernelStatus> {
    use sea_orm::{ActiveEnum, Iterable};
    KernelStatus::iter().find(|status| status.to_value() == name)
}

/// The fields `filter` and `order` may name (the reference's `ComputeContainer` field spec;
/// every one may also be ordered by).
pub fn field_map() -> FieldMap {
    let kernel = |name, column: kernels::Column, kind| Field {
        name,
        column: SimpleExpr::from(Expr::col((kernels::Entity, column))),
        kind,
        orderable: true,
    };
    FieldMap(vec![
        kernel("image", kernels::Column::Image, Kind::Text),
        kernel("architecture", kernels::Column::Architecture, Kind::Text),
        kernel("agent", kernels::Column::Agent, Kind::Text),
        kernel("agent_addr", kernels::Column::AgentAddr, Kind::Text),
        kernel("cluster_idx", kernels::Column::ClusterIdx, Kind::Integer),
        kernel("local_rank", kernels::Column::LocalRank, Kind::Integer),
        kernel("cluster_role", kernels::Column::ClusterRole, Kind::Text),
        kernel(
            "cluster_hostname",
            kernels::Column::ClusterHostname,
            Kind::Text,
        ),
        kernel(
            "status",
            kernels::Column::Status,
            Kind::Enum(KERNEL_STATUSES),
        ),
        kernel("status_info", kernels::Column::StatusInfo, Kind::Text),
        kernel("created_at", kernels::Column::CreatedAt, Kind::Timestamp),
        kernel(
            "status_changed",
            kernels::Column::StatusChanged,
            Kind::Timestamp,
        ),
        kernel(
            "terminated_at",
            kernels::Column::TerminatedAt,
            Kind::Timestamp,
        ),
        Field {
            name: "scheduled_at",
            // The time the kernel was scheduled, from its status history (ISO 8601 text).
            column: Expr::cust(
                r#"CAST("kernels"."status_history" ->> 'SCHEDULED' AS timestamptz)"#,
            ),
            kind: Kind::Timestamp,
            orderable: true,
        },
    ])
}

fn scope_condition(scope: &KernelScope) -> Condition {
    let mut condition = Condition::all();
    if let Some(domain) = &scope.domain_name {
        condition = condition.add(kernels::Column::DomainName.eq(domain.as_str()));
    }
    if let Some(access_key) = &scope.access_key {
        condition = condition.add(kernels::Column::AccessKey.eq(access_key.as_str()));
    }
    condition
}

/// The kernel `id`, if it is in `scope`.
pub async fn by_id(
    db: &impl ConnectionTrait,
    id: Uuid,
    scope: &KernelScope,
) -> Result<Option<kernels::Model>, DbError> {
    kernels::Entity::find_by_id(id)
        .filter(scope_condition(scope))
        .one(db)
        .await
        .map_err(DbError::query(format!("reading kernel {id}")))
}

/// The kernels of `session_id` (of cluster role `role`, when given) in `scope` matching `filter`.
fn of_session(
    session_id: Uuid,
    role: Option<&str>,
    scope: &KernelScope,
    filter: Option<&str>,
) -> Result<Select<kernels::Entity>, MinilangError> {
    let mut query = kernels::Entity::find()
        .filter(kernels::Column::SessionId.eq(session_id))
        .filter(scope_condition(scope));
    if let Some(role) = role {
        query = query.filter(kernels::Column::ClusterRole.eq(role));
    }
    if let Some(filter) = filter {
        query = query.filter(field_map().condition(&parse_filter(filter)?)?);
    }
    Ok(query)
}

/// One page of the kernels of `session_id` (see [`count_of_session`] for the narrowing), ordered
/// by `order` (default: the latest of creation, termination and status change first, as the
/// reference does; ties by id).
pub async fn list_of_session(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    role: Option<&str>,
    scope: &KernelScope,
    filter: Option<&str>,
    order: Option<&str>,
    (limit, offset): (u64, u64),
) -> Result<Vec<kernels::Model>, ListError> {
    let mut query = of_session(session_id, role, scope, filter)?;
    let order = match order {
        Some(order) => field_map().order(order)?,
        None => Vec::new(),
    };
    if order.is_empty() {
        query = query.order_by(
            Expr::cust(
                r#"GREATEST("kernels"."created_at", "kernels"."terminated_at", "kernels"."status_changed")"#,
            ),
            Order::Desc,
        );
    }
    for (expr, direction) in order {
        query = query.order_by(expr, direction);
    }
    Ok(query
        .order_by(kernels::Column::Id, Order::Asc)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "listing the kernels of session {session_id}"
        )))?)
}

/// How many kernels of `session_id` (of cluster role `role`, when given) in `scope` match
/// `filter`.
pub async fn count_of_session(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    role: Option<&str>,
    scope: &KernelScope,
    filter: Option<&str>,
) -> Result<u64, ListError> {
    Ok(of_session(session_id, role, scope, filter)?
        .count(db)
        .await
        .map_err(DbError::query(format!(
            "counting the kernels of session {session_id}"
        )))?)
}

/// The kernels placed on `agent_id` in any of `statuses`, or, without statuses, those that still
/// hold its resources; oldest first.
pub async fn on_agent(
    db: &impl ConnectionTrait,
    agent_id: &str,
    statuses: Option<&[KernelStatus]>,
) -> Result<Vec<kernels::Model>, DbError> {
    let statuses = statuses.unwrap_or(&AGENT_OCCUPYING_STATUSES);
    kernels::Entity::find()
        .filter(kernels::Column::Agent.eq(agent_id))
        .filter(kernels::Column::Status.is_in(statuses.iter().copied()))
        .order_by_asc(kernels::Column::CreatedAt)
        .order_by_asc(kernels::Column::Id)
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "reading the kernels of agent {agent_id}"
        )))
}
