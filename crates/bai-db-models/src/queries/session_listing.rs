//! Compute sessions as the GraphQL admin API lists them (`compute_session_list`,
//! `compute_session`): each session with its project's name, its owner and its kernels, narrowed
//! by domain, project, access key and status, the `filter`/`order` mini-language, pages and
//! counts; and the sessions a session depends on (`session_dependencies`).
//!
//! The array fields of the reference's field spec (`image`, `agent_ids`, `agent_id`, `agents`)
//! match a row when any item of the array satisfies the comparison, as in the reference.

use std::collections::HashMap;

use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Alias, Expr, Func, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, JoinType, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, RelationTrait, Select,
};

use super::user_listing::ListError;
use crate::entities::enums::SessionStatus;
use crate::entities::{groups, kernels, session_dependencies, sessions, users};
use crate::error::DbError;
use crate::minilang::{Field, FieldMap, Filter, Kind, MinilangError, parse_filter};

/// The arguments that narrow a session list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionScope {
    pub domain_name: Option<String>,
    /// The session's project.
    pub group_id: Option<Uuid>,
    /// The owner's access key.
    pub access_key: Option<String>,
    /// Any of these statuses; all when `None`.
    pub statuses: Option<Vec<SessionStatus>>,
}

/// A session with what the `ComputeSession` type shows of its project, owner and kernels.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRow {
    pub session: sessions::Model,
    pub group_name: Option<String>,
    pub owner: Option<users::Model>,
    /// Every kernel of the session, by cluster index.
    pub kernels: Vec<kernels::Model>,
}

impl SessionRow {
    /// The kernel whose cluster role is `main`.
    pub fn main_kernel(&self) -> Option<&kernels::Model> {
        self.kernels
            .iter()
            .find(|kernel| kernel.cluster_role == MAIN_ROLE)
    }
}

/// The cluster role of a session's main kernel (the reference's `DEFAULT_ROLE`).
pub const MAIN_ROLE: &str = "main";

/// `SessionStatus` names (its values are integers, so the reference accepts names only).
const SESSION_STATUSES: &[(&str, &str)] = &[
    ("PENDING", "PENDING"),
    ("SCHEDULED", "SCHEDULED"),
    ("PULLING", "PULLING"),
    ("PREPARING", "PREPARING"),
    ("RUNNING", "RUNNING"),
    ("RESTARTING", "RESTARTING"),
    ("RUNNING_DEGRADED", "RUNNING_DEGRADED"),
    ("TERMINATING", "TERMINATING"),
    ("TERMINATED", "TERMINATED"),
    ("ERROR", "ERROR"),
    ("CANCELLED", "CANCELLED"),
];

/// `SessionTypes` values and the names the column stores; either spelling is accepted.
const SESSION_TYPES: &[(&str, &str)] = &[
    ("interactive", "INTERACTIVE"),
    ("batch", "BATCH"),
    ("inference", "INFERENCE"),
    ("system", "SYSTEM"),
];

/// `SessionResult` values and the stored names.
const SESSION_RESULTS: &[(&str, &str)] = &[
    ("undefined", "UNDEFINED"),
    ("success", "SUCCESS"),
    ("failure", "FAILURE"),
];

/// `ClusterMode` names and the values the registry stores.
const CLUSTER_MODES: &[(&str, &str)] =
    &[("SINGLE_NODE", "single-node"), ("MULTI_NODE", "multi-node")];

/// The reference's array fields and their columns.
const ARRAY_FIELDS: &[(&str, sessions::Column)] = &[
    ("image", sessions::Column::Images),
    ("agent_ids", sessions::Column::AgentIds),
    ("agent_id", sessions::Column::AgentIds),
    ("agents", sessions::Column::AgentIds),
];

/// `SessionStatus` by name (`RUNNING`), as the `status` argument spells it.
pub fn status_from_name(name: &str) -> Option<SessionStatus> {
    use sea_orm::ActiveEnum;
    use sea_orm::Iterable;
    SessionStatus::iter().find(|status| status.to_value() == name)
}

/// The fields `filter` and `order` may name (the reference's `ComputeSession` field spec). The
/// array fields are ordered by the whole array and filtered item by item.
pub fn field_map() -> FieldMap {
    let session = |name, column: sessions::Column, kind| Field {
        name,
        column: SimpleExpr::from(Expr::col((sessions::Entity, column))),
        kind,
        orderable: true,
    };
    let mut fields = vec![
        session("id", sessions::Column::Id, Kind::Uuid),
        session(
            "type",
            sessions::Column::SessionType,
            Kind::Enum(SESSION_TYPES),
        ),
        session("name", sessions::Column::Name, Kind::Text),
        session("domain_name", sessions::Column::DomainName, Kind::Text),
        Field {
            name: "group_name",
            column: SimpleExpr::from(Expr::col((groups::Entity, groups::Column::Name))),
            kind: Kind::Text,
            orderable: true,
        },
        Field {
            name: "user_email",
            column: SimpleExpr::from(Expr::col((users::Entity, users::Column::Email))),
            kind: Kind::Text,
            orderable: true,
        },
        session("user_id", sessions::Column::UserUuid, Kind::Uuid),
        Field {
            name: "full_name",
            column: SimpleExpr::from(Expr::col((users::Entity, users::Column::FullName))),
            kind: Kind::Text,
            orderable: true,
        },
        session("access_key", sessions::Column::AccessKey, Kind::Text),
        session(
            "scaling_group",
            sessions::Column::ScalingGroupName,
            Kind::Text,
        ),
        session(
            "cluster_mode",
            sessions::Column::ClusterMode,
            Kind::Enum(CLUSTER_MODES),
        ),
        session("cluster_size", sessions::Column::ClusterSize, Kind::Integer),
        session(
            "status",
            sessions::Column::Status,
            Kind::Enum(SESSION_STATUSES),
        ),
        session("status_info", sessions::Column::StatusInfo, Kind::Text),
        session(
            "result",
            sessions::Column::Result,
            Kind::Enum(SESSION_RESULTS),
        ),
        session("created_at", sessions::Column::CreatedAt, Kind::Timestamp),
        session(
            "terminated_at",
            sessions::Column::TerminatedAt,
            Kind::Timestamp,
        ),
        session("starts_at", sessions::Column::StartsAt, Kind::Timestamp),
        Field {
            name: "scheduled_at",
            // The time the session was scheduled, from its status history (ISO 8601 text).
            column: Expr::cust(
                r#"CAST("sessions"."status_history" ->> 'SCHEDULED' AS timestamptz)"#,
            ),
            kind: Kind::Timestamp,
            orderable: true,
        },
    ];
    let mut startup_command = session(
        "startup_command",
        sessions::Column::StartupCommand,
        Kind::Text,
    );
    startup_command.orderable = false;
    fields.push(startup_command);
    fields.extend(
        ARRAY_FIELDS
            .iter()
            .map(|(name, column)| session(name, *column, Kind::Text)),
    );
    FieldMap(fields)
}

/// The condition of a parsed filter: comparisons of array fields hold when any item satisfies
/// them (`EXISTS (SELECT item FROM unnest(column) AS item WHERE ...)`).
fn condition(fields: &FieldMap, filter: &Filter) -> Result<SimpleExpr, MinilangError> {
    Ok(match filter {
        Filter::And(left, right) => condition(fields, left)?.and(condition(fields, right)?),
        Filter::Or(left, right) => condition(fields, left)?.or(condition(fields, right)?),
        Filter::Not(inner) => condition(fields, inner)?.not(),
        Filter::Compare { field, .. } => {
            match ARRAY_FIELDS.iter().find(|(name, _)| name == field) {
                Some((name, column)) => {
                    let items = FieldMap(vec![Field {
                        name,
                        column: SimpleExpr::from(Expr::col(Alias::new("item"))),
                        kind: Kind::Text,
                        orderable: false,
                    }]);
                    let any_item = Query::select()
                        .expr(Expr::col(Alias::new("item")))
                        .from_function(
                            Func::cust(Alias::new("unnest"))
                                .arg(Expr::col((sessions::Entity, *column))),
                            Alias::new("item"),
                        )
                        .and_where(items.condition(filter)?)
                        .to_owned();
                    Expr::exists(any_item)
                }
                None => fields.condition(filter)?,
            }
        }
    })
}

fn scope_condition(scope: &SessionScope) -> Condition {
    let mut condition = Condition::all();
    if let Some(domain) = &scope.domain_name {
        condition = condition.add(sessions::Column::DomainName.eq(domain.as_str()));
    }
    if let Some(group) = scope.group_id {
        condition = condition.add(sessions::Column::GroupId.eq(group));
    }
    if let Some(access_key) = &scope.access_key {
        condition = condition.add(sessions::Column::AccessKey.eq(access_key.as_str()));
    }
    if let Some(statuses) = &scope.statuses {
        condition = condition.add(sessions::Column::Status.is_in(statuses.iter().copied()));
    }
    condition
}

/// The sessions in `scope` matching `filter`, joined with their project and owner (which the
/// filter and order may name).
fn scoped(
    scope: &SessionScope,
    filter: Option<&str>,
) -> Result<Select<sessions::Entity>, MinilangError> {
    let mut query = sessions::Entity::find()
        .join(JoinType::LeftJoin, sessions::Relation::Group.def())
        .join(JoinType::LeftJoin, sessions::Relation::User.def())
        .filter(scope_condition(scope));
    if let Some(filter) = filter {
        let parsed = parse_filter(filter)?;
        query = query.filter(condition(&field_map(), &parsed)?);
    }
    Ok(query)
}

/// The sessions in `scope` matching `filter`, ordered by `order` (default: the latest of
/// creation and termination first, as the reference does; ties by id), the page
/// `limit`/`offset` when given.
pub async fn list(
    db: &impl ConnectionTrait,
    scope: &SessionScope,
    filter: Option<&str>,
    order: Option<&str>,
    page: Option<(u64, u64)>,
) -> Result<Vec<SessionRow>, ListError> {
    let mut query = scoped(scope, filter)?;
    let order = match order {
        Some(order) => field_map().order(order)?,
        None => Vec::new(),
    };
    if order.is_empty() {
        query = query.order_by(
            Expr::cust(r#"GREATEST("sessions"."created_at", "sessions"."terminated_at")"#),
            Order::Desc,
        );
    }
    for (expr, direction) in order {
        query = query.order_by(expr, direction);
    }
    query = query.order_by(sessions::Column::Id, Order::Asc);
    if let Some((limit, offset)) = page {
        query = query.limit(limit).offset(offset);
    }
    let rows = query
        .all(db)
        .await
        .map_err(DbError::query("listing sessions".to_owned()))?;
    Ok(with_details(db, rows).await?)
}

/// How many sessions `list` would find without a page.
pub async fn count(
    db: &impl ConnectionTrait,
    scope: &SessionScope,
    filter: Option<&str>,
) -> Result<u64, ListError> {
    Ok(scoped(scope, filter)?
        .count(db)
        .await
        .map_err(DbError::query("counting sessions".to_owned()))?)
}

/// The sessions `ids` that are in `scope`, in no particular order.
pub async fn by_ids(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    scope: &SessionScope,
) -> Result<Vec<SessionRow>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sessions::Entity::find()
        .filter(sessions::Column::Id.is_in(ids.iter().copied()))
        .filter(scope_condition(scope))
        .order_by_asc(sessions::Column::Id)
        .all(db)
        .await
        .map_err(DbError::query("reading sessions".to_owned()))?;
    with_details(db, rows).await
}

/// For each of `ids`, the sessions it depends on (`session_dependencies.depends_on`).
pub async fn dependencies_of(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Uuid>>, DbError> {
    let mut found: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    if ids.is_empty() {
        return Ok(found);
    }
    let rows = session_dependencies::Entity::find()
        .filter(session_dependencies::Column::SessionId.is_in(ids.iter().copied()))
        .order_by_asc(session_dependencies::Column::DependsOn)
        .all(db)
        .await
        .map_err(DbError::query("reading session dependencies".to_owned()))?;
    for row in rows {
        found
            .entry(row.session_id)
            .or_default()
            .push(row.depends_on);
    }
    Ok(found)
}

/// The sessions with their project names, owners and kernels.
async fn with_details(
    db: &impl ConnectionTrait,
    rows: Vec<sessions::Model>,
) -> Result<Vec<SessionRow>, DbError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let session_ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let group_ids: Vec<Uuid> = rows.iter().map(|row| row.group_id).collect();
    let owner_ids: Vec<Uuid> = rows.iter().map(|row| row.user_uuid).collect();
    let group_names: HashMap<Uuid, String> = groups::Entity::find()
        .filter(groups::Column::Id.is_in(group_ids))
        .all(db)
        .await
        .map_err(DbError::query(
            "reading the projects of sessions".to_owned(),
        ))?
        .into_iter()
        .map(|group| (group.id, group.name))
        .collect();
    let owners: HashMap<Uuid, users::Model> = users::Entity::find()
        .filter(users::Column::Uuid.is_in(owner_ids))
        .all(db)
        .await
        .map_err(DbError::query("reading the owners of sessions".to_owned()))?
        .into_iter()
        .map(|user| (user.uuid, user))
        .collect();
    let mut kernels_of: HashMap<Uuid, Vec<kernels::Model>> = HashMap::new();
    for kernel in kernels::Entity::find()
        .filter(kernels::Column::SessionId.is_in(session_ids))
        .order_by_asc(kernels::Column::ClusterIdx)
        .order_by_asc(kernels::Column::Id)
        .all(db)
        .await
        .map_err(DbError::query("reading the kernels of sessions".to_owned()))?
    {
        kernels_of
            .entry(kernel.session_id)
            .or_default()
            .push(kernel);
    }
    Ok(rows
        .into_iter()
        .map(|session| SessionRow {
            group_name: group_names.get(&session.group_id).cloned(),
            owner: owners.get(&session.user_uuid).cloned(),
            kernels: kernels_of.remove(&session.id).unwrap_or_default(),
            session,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use sea_orm::prelude::Uuid;
    use sea_orm::sea_query::{PostgresQueryBuilder, Query};
    use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};
    use serde_json::json;

    use super::{SessionScope, condition, field_map};
    use crate::entities::enums::{KernelStatus, SessionResult, SessionStatus, SessionType};
    use crate::entities::{ResourceSlot, kernels, session_dependencies, sessions};
    use crate::minilang::{parse_filter, parse_timestamp};
    use crate::queries::test_rows::{self, Rows};

    async fn session(
        db: &DatabaseConnection,
        rows: &Rows,
        name: &str,
        status: SessionStatus,
        created_at: &str,
        image: &str,
    ) -> Uuid {
        let id = Uuid::new_v4();
        sessions::ActiveModel {
            id: Set(id),
            name: Set(Some(name.to_owned())),
            session_type: Set(SessionType::Interactive),
            cluster_mode: Set("single-node".to_owned()),
            cluster_size: Set(1),
            domain_name: Set(Rows::DOMAIN.to_owned()),
            group_id: Set(rows.group.id),
            user_uuid: Set(rows.user.uuid),
            access_key: Set(Some(Rows::ACCESS_KEY.to_owned())),
            images: Set(Some(vec![image.to_owned()])),
            agent_ids: Set(Some(vec!["i-node1".to_owned()])),
            occupying_slots: Set(ResourceSlot::new()),
            requested_slots: Set(ResourceSlot::new()),
            use_host_network: Set(false),
            status: Set(status),
            result: Set(SessionResult::Undefined),
            created_at: Set(parse_timestamp(created_at)),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("session");
        id
    }

    async fn kernel(db: &DatabaseConnection, rows: &Rows, session: Uuid, role: &str, idx: i32) {
        kernels::ActiveModel {
            id: Set(Uuid::new_v4()),
            session_id: Set(session),
            session_type: Set(SessionType::Interactive),
            cluster_mode: Set("single-node".to_owned()),
            cluster_size: Set(2),
            cluster_role: Set(role.to_owned()),
            cluster_idx: Set(idx),
            local_rank: Set(idx - 1),
            cluster_hostname: Set(format!("{role}{idx}")),
            domain_name: Set(Rows::DOMAIN.to_owned()),
            group_id: Set(rows.group.id),
            user_uuid: Set(rows.user.uuid),
            access_key: Set(Some(Rows::ACCESS_KEY.to_owned())),
            occupied_slots: Set(ResourceSlot::new()),
            requested_slots: Set(ResourceSlot::new()),
            occupied_shares: Set(json!({})),
            repl_in_port: Set(2000),
            repl_out_port: Set(2001),
            stdin_port: Set(2002),
            stdout_port: Set(2003),
            use_host_network: Set(false),
            status: Set(KernelStatus::Running),
            result: Set(SessionResult::Undefined),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("kernel");
    }

    #[tokio::test]
    async fn lists_counts_and_reads_sessions_with_kernels() {
        let (test, rows) = test_rows::database("q_session_listing").await;
        let db = &test.connection;
        let running = session(
            db,
            &rows,
            "train",
            SessionStatus::Running,
            "2024-05-01T10:00:00Z",
            "cr.backend.ai/stable/python:3.9",
        )
        .await;
        kernel(db, &rows, running, "sub", 2).await;
        kernel(db, &rows, running, "main", 1).await;
        let done = session(
            db,
            &rows,
            "prepare",
            SessionStatus::Terminated,
            "2024-04-01T10:00:00Z",
            "cr.backend.ai/stable/pytorch:2.1",
        )
        .await;
        session_dependencies::ActiveModel {
            session_id: Set(running),
            depends_on: Set(done),
        }
        .insert(db)
        .await
        .expect("dependency");
        let names = |found: Vec<super::SessionRow>| {
            found
                .into_iter()
                .map(|row| row.session.name.unwrap_or_default())
                .collect::<Vec<_>>()
        };
        let everyone = SessionScope::default();

        let all = super::list(db, &everyone, None, None, None)
            .await
            .expect("list");
        assert_eq!(all[0].session.id, running);
        assert_eq!(all[0].group_name.as_deref(), Some("default"));
        assert_eq!(
            all[0].owner.as_ref().map(|owner| owner.uuid),
            Some(rows.user.uuid)
        );
        let roles: Vec<_> = all[0]
            .kernels
            .iter()
            .map(|kernel| kernel.cluster_role.as_str())
            .collect();
        assert_eq!(roles, ["main", "sub"]);
        assert_eq!(
            all[0].main_kernel().map(|kernel| kernel.cluster_idx),
            Some(1)
        );
        assert!(all[1].kernels.is_empty() && all[1].main_kernel().is_none());
        assert_eq!(super::count(db, &everyone, None).await.expect("count"), 2);

        let running_only = SessionScope {
            statuses: Some(vec![SessionStatus::Running, SessionStatus::Error]),
            ..SessionScope::default()
        };
        assert_eq!(
            names(
                super::list(db, &running_only, None, None, None)
                    .await
                    .expect("running")
            ),
            ["train"]
        );
        let filter = r#"image like "%pytorch%" | name == "nothing""#;
        assert_eq!(
            names(
                super::list(db, &everyone, Some(filter), None, None)
                    .await
                    .expect("filter")
            ),
            ["prepare"]
        );
        assert_eq!(
            super::count(db, &everyone, Some(filter))
                .await
                .expect("count"),
            1
        );
        assert_eq!(
            names(
                super::list(db, &everyone, None, Some("name"), Some((1, 1)))
                    .await
                    .expect("page")
            ),
            ["train"]
        );
        let elsewhere = SessionScope {
            access_key: Some("AKIAOTHER".into()),
            ..SessionScope::default()
        };
        assert_eq!(super::count(db, &elsewhere, None).await.expect("count"), 0);

        let dependencies = super::dependencies_of(db, &[running, done])
            .await
            .expect("dependencies");
        assert_eq!(dependencies.get(&running), Some(&vec![done]));
        assert_eq!(dependencies.get(&done), None);
        let found = super::by_ids(db, &[done, Uuid::new_v4()], &everyone)
            .await
            .expect("by ids");
        assert_eq!(names(found), ["prepare"]);
        assert!(
            super::by_ids(db, &[done], &elsewhere)
                .await
                .expect("scoped")
                .is_empty()
        );
    }

    fn sql(filter: &str) -> String {
        let parsed = parse_filter(filter).expect("parse");
        let condition = condition(&field_map(), &parsed).expect("condition");
        Query::select()
            .column(sessions::Column::Id)
            .from(sessions::Entity)
            .and_where(condition)
            .to_string(PostgresQueryBuilder)
    }

    #[test]
    fn array_fields_match_any_item() {
        assert_eq!(
            sql(r#"image ilike "%python%" & status == "RUNNING""#),
            concat!(
                r#"SELECT "id" FROM "sessions" WHERE EXISTS(SELECT "item" FROM unnest("sessions"."images") AS "item" "#,
                r#"WHERE "item" ILIKE '%python%') AND CAST("sessions"."status" AS text) = 'RUNNING'"#
            )
        );
        assert_eq!(
            sql(r#"!(agents in ["i-a", "i-b"])"#),
            concat!(
                r#"SELECT "id" FROM "sessions" WHERE NOT EXISTS(SELECT "item" FROM unnest("sessions"."agent_ids") AS "item" "#,
                r#"WHERE "item" IN ('i-a', 'i-b'))"#
            )
        );
    }

    #[test]
    fn enums_accept_names_and_values_and_scheduled_at_is_a_time() {
        let base = r#"SELECT "id" FROM "sessions" WHERE "#;
        for (filter, condition) in [
            (
                r#"type == "interactive""#,
                r#"CAST("sessions"."session_type" AS text) = 'INTERACTIVE'"#,
            ),
            (
                r#"result == "SUCCESS""#,
                r#"CAST("sessions"."result" AS text) = 'SUCCESS'"#,
            ),
            (
                r#"cluster_mode == "SINGLE_NODE""#,
                r#"CAST("sessions"."cluster_mode" AS text) = 'single-node'"#,
            ),
            (
                r#"scheduled_at > "2024-01-01""#,
                r#"(CAST("sessions"."status_history" ->> 'SCHEDULED' AS timestamptz)) > '2024-01-01 00:00:00.000000 +00:00'"#,
            ),
        ] {
            assert_eq!(sql(filter), format!("{base}{condition}"), "{filter}");
        }
    }
}
