//! Model-service endpoints, their routes and tokens: the GraphQL lists (`endpoint_list`,
//! `routing_list`, `endpoint_token_list`, narrowed by domain, project and owner, the endpoint list
//! also by the `filter`/`order` mini-language), the `/services` reads and writes, and what the
//! scaler (`do_scale`) and the session events change: routes created, bound to their sessions,
//! marked healthy, failed or terminating, deleted, and endpoints marked destroyed.

use std::collections::HashMap;

use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ActiveEnum, ActiveValue, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel,
    JoinType, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait, Select,
};
use serde_json::Value;

use super::user_listing::ListError;
use crate::entities::enums::{EndpointLifecycle, RouteStatus, SessionStatus};
use crate::entities::{
    endpoint_tokens, endpoints, groups, keypairs, routings, sessions, users, vfolders,
};
use crate::error::DbError;
use crate::minilang::{Field, FieldMap, Kind, MinilangError};

/// The arguments that narrow every list here, as the reference's `scoped_query(user_key=
/// "user_uuid")` fills them in: `None` does not narrow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerScope {
    pub domain_name: Option<String>,
    pub project: Option<Uuid>,
    /// The endpoint's (route's, token's) `session_owner`.
    pub session_owner: Option<Uuid>,
}

impl OwnerScope {
    /// The scope over a table's `domain`, `project` and `session_owner` columns (endpoints,
    /// routes and tokens all have them).
    fn condition<C: ColumnTrait>(&self, domain: C, project: C, session_owner: C) -> Condition {
        let mut condition = Condition::all();
        if let Some(name) = &self.domain_name {
            condition = condition.add(domain.eq(name.as_str()));
        }
        if let Some(id) = self.project {
            condition = condition.add(project.eq(id));
        }
        if let Some(owner) = self.session_owner {
            condition = condition.add(session_owner.eq(owner));
        }
        condition
    }
}

/// An endpoint with what the `Endpoint` type shows of its routes and users.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointRow {
    pub endpoint: endpoints::Model,
    /// Every route of the endpoint, oldest first.
    pub routings: Vec<routings::Model>,
    pub created_user_email: Option<String>,
    pub session_owner_email: Option<String>,
}

/// `EndpointLifecycle` names and values (the column stores values).
const LIFECYCLE_STAGES: &[(&str, &str)] = &[
    ("CREATED", "created"),
    ("DESTROYING", "destroying"),
    ("DESTROYED", "destroyed"),
];

/// The fields `filter` and `order` may name (the reference's `Endpoint` field specs). The
/// creator's email comes from the `users` row joined on `created_user`.
pub fn field_map() -> FieldMap {
    let endpoint = |name, column: endpoints::Column, kind| Field {
        name,
        column: SimpleExpr::from(Expr::col((endpoints::Entity, column))),
        kind,
        orderable: true,
    };
    FieldMap(vec![
        endpoint("name", endpoints::Column::Name, Kind::Text),
        endpoint("model", endpoints::Column::Model, Kind::Uuid),
        endpoint("domain", endpoints::Column::Domain, Kind::Text),
        endpoint("url", endpoints::Column::Url, Kind::Text),
        endpoint(
            "lifecycle_stage",
            endpoints::Column::LifecycleStage,
            Kind::Enum(LIFECYCLE_STAGES),
        ),
        endpoint("created_at", endpoints::Column::CreatedAt, Kind::Timestamp),
        Field {
            name: "created_user_email",
            column: SimpleExpr::from(Expr::col((users::Entity, users::Column::Email))),
            kind: Kind::Text,
            orderable: true,
        },
    ])
}

fn endpoint_scope(scope: &OwnerScope) -> Condition {
    scope.condition(
        endpoints::Column::Domain,
        endpoints::Column::Project,
        endpoints::Column::SessionOwner,
    )
}

fn scoped_endpoints(
    scope: &OwnerScope,
    filter: Option<&str>,
) -> Result<Select<endpoints::Entity>, MinilangError> {
    let mut query = endpoints::Entity::find()
        .join(JoinType::LeftJoin, endpoints::Relation::CreatedUser.def())
        .filter(endpoint_scope(scope));
    if let Some(filter) = filter {
        query = query.filter(field_map().filter(filter)?);
    }
    Ok(query)
}

/// The endpoints in `scope` (of every lifecycle stage) matching `filter`, ordered by `order`
/// (default: newest first), the page `limit`/`offset`.
pub async fn list(
    db: &impl ConnectionTrait,
    scope: &OwnerScope,
    filter: Option<&str>,
    order: Option<&str>,
    (limit, offset): (u64, u64),
) -> Result<Vec<EndpointRow>, ListError> {
    let mut query = scoped_endpoints(scope, filter)?;
    let order = match order {
        Some(order) => field_map().order(order)?,
        None => Vec::new(),
    };
    if order.is_empty() {
        query = query.order_by(endpoints::Column::CreatedAt, Order::Desc);
    }
    for (expr, direction) in order {
        query = query.order_by(expr, direction);
    }
    let rows = query
        .order_by(endpoints::Column::Id, Order::Asc)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await
        .map_err(DbError::query("listing endpoints"))?;
    Ok(with_details(db, rows).await?)
}

/// How many endpoints [`list`] would find without a page.
pub async fn count(
    db: &impl ConnectionTrait,
    scope: &OwnerScope,
    filter: Option<&str>,
) -> Result<u64, ListError> {
    Ok(scoped_endpoints(scope, filter)?
        .count(db)
        .await
        .map_err(DbError::query("counting endpoints"))?)
}

/// Endpoint `id` if it is in `scope`.
pub async fn by_id(
    db: &impl ConnectionTrait,
    id: Uuid,
    scope: &OwnerScope,
) -> Result<Option<EndpointRow>, DbError> {
    let row = endpoints::Entity::find_by_id(id)
        .filter(endpoint_scope(scope))
        .one(db)
        .await
        .map_err(DbError::query(format!("reading endpoint {id}")))?;
    Ok(with_details(db, row.into_iter().collect()).await?.pop())
}

/// The routes and the users' emails of `rows`, in their order.
async fn with_details(
    db: &impl ConnectionTrait,
    rows: Vec<endpoints::Model>,
) -> Result<Vec<EndpointRow>, DbError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let mut routes: HashMap<Uuid, Vec<routings::Model>> = HashMap::new();
    for route in routings::Entity::find()
        .filter(routings::Column::Endpoint.is_in(ids))
        .order_by_asc(routings::Column::CreatedAt)
        .order_by_asc(routings::Column::Id)
        .all(db)
        .await
        .map_err(DbError::query("reading the routes of endpoints"))?
    {
        routes.entry(route.endpoint).or_default().push(route);
    }
    let user_ids: Vec<Uuid> = rows
        .iter()
        .flat_map(|row| [row.created_user, row.session_owner])
        .collect();
    let emails: HashMap<Uuid, String> = users::Entity::find()
        .select_only()
        .column(users::Column::Uuid)
        .column(users::Column::Email)
        .filter(users::Column::Uuid.is_in(user_ids))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await
        .map_err(DbError::query("reading the users of endpoints"))?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(|endpoint| EndpointRow {
            routings: routes.remove(&endpoint.id).unwrap_or_default(),
            created_user_email: emails.get(&endpoint.created_user).cloned(),
            session_owner_email: emails.get(&endpoint.session_owner).cloned(),
            endpoint,
        })
        .collect())
}

/// The CREATED endpoints `owner` owns (named `name`, when given), with their routes: what
/// `GET /services` lists.
pub async fn owned_live(
    db: &impl ConnectionTrait,
    owner: Uuid,
    name: Option<&str>,
) -> Result<Vec<EndpointRow>, DbError> {
    let mut query = endpoints::Entity::find()
        .filter(endpoints::Column::SessionOwner.eq(owner))
        .filter(endpoints::Column::LifecycleStage.eq(EndpointLifecycle::Created));
    if let Some(name) = name {
        query = query.filter(endpoints::Column::Name.eq(name));
    }
    let rows = query
        .order_by_asc(endpoints::Column::CreatedAt)
        .order_by_asc(endpoints::Column::Id)
        .all(db)
        .await
        .map_err(DbError::query("listing the caller's endpoints"))?;
    with_details(db, rows).await
}

/// Whether an endpoint not yet DESTROYED is named `name` (names are unique among them, across
/// every owner, as the reference checks).
pub async fn name_in_use(db: &impl ConnectionTrait, name: &str) -> Result<bool, DbError> {
    Ok(endpoints::Entity::find()
        .filter(endpoints::Column::Name.eq(name))
        .filter(endpoints::Column::LifecycleStage.ne(EndpointLifecycle::Destroyed))
        .count(db)
        .await
        .map_err(DbError::query(format!("looking for endpoint {name:?}")))?
        > 0)
}

/// Inserts `endpoint`; `created_at` is the database's `now()`.
pub async fn insert(db: &impl ConnectionTrait, endpoint: endpoints::Model) -> Result<(), DbError> {
    let id = endpoint.id;
    let mut row = endpoint.into_active_model();
    row.created_at = ActiveValue::NotSet;
    endpoints::Entity::insert(row)
        .exec_without_returning(db)
        .await
        .map_err(DbError::query(format!("inserting endpoint {id}")))?;
    Ok(())
}

/// Sets the number of sessions endpoint `id` should have.
pub async fn set_desired_session_count(
    db: &impl ConnectionTrait,
    id: Uuid,
    count: i32,
) -> Result<(), DbError> {
    endpoints::Entity::update_many()
        .col_expr(endpoints::Column::DesiredSessionCount, Expr::value(count))
        .filter(endpoints::Column::Id.eq(id))
        .exec(db)
        .await
        .map_err(DbError::query(format!("scaling endpoint {id}")))?;
    Ok(())
}

/// `DELETE /services/{id}`: an endpoint without routes is DESTROYED at once; otherwise it is
/// DESTROYING with no session desired, and the scaler ends its sessions.
pub async fn mark_for_removal(
    db: &impl ConnectionTrait,
    id: Uuid,
    has_routes: bool,
) -> Result<(), DbError> {
    let mut update = endpoints::Entity::update_many().filter(endpoints::Column::Id.eq(id));
    update = if has_routes {
        update
            .col_expr(endpoints::Column::DesiredSessionCount, Expr::value(0))
            .col_expr(
                endpoints::Column::LifecycleStage,
                EndpointLifecycle::Destroying.as_enum(),
            )
    } else {
        update.col_expr(
            endpoints::Column::LifecycleStage,
            EndpointLifecycle::Destroyed.as_enum(),
        )
    };
    update
        .exec(db)
        .await
        .map_err(DbError::query(format!("removing endpoint {id}")))?;
    Ok(())
}

/// `POST /services/{id}/errors/clear`: the routes that failed to start are deleted and the
/// endpoint's retries start again from 0.
pub async fn clear_errors(db: &impl ConnectionTrait, id: Uuid) -> Result<(), DbError> {
    let context = || format!("clearing the errors of endpoint {id}");
    routings::Entity::delete_many()
        .filter(routings::Column::Endpoint.eq(id))
        .filter(routings::Column::Status.eq(RouteStatus::FailedToStart))
        .exec(db)
        .await
        .map_err(DbError::query(context()))?;
    endpoints::Entity::update_many()
        .col_expr(endpoints::Column::Retries, Expr::value(0))
        .filter(endpoints::Column::Id.eq(id))
        .exec(db)
        .await
        .map_err(DbError::query(context()))?;
    Ok(())
}

// ----- routes -----

fn route_scope(scope: &OwnerScope) -> Condition {
    scope.condition(
        routings::Column::Domain,
        routings::Column::Project,
        routings::Column::SessionOwner,
    )
}

/// A route with its endpoint's URL (what the `Routing` type shows as `endpoint`).
#[derive(Clone, Debug, PartialEq)]
pub struct RouteRow {
    pub route: routings::Model,
    pub endpoint_url: Option<String>,
}

async fn with_urls(
    db: &impl ConnectionTrait,
    routes: Vec<routings::Model>,
) -> Result<Vec<RouteRow>, DbError> {
    let ids: Vec<Uuid> = routes.iter().map(|route| route.endpoint).collect();
    let urls: HashMap<Uuid, Option<String>> = endpoints::Entity::find()
        .select_only()
        .column(endpoints::Column::Id)
        .column(endpoints::Column::Url)
        .filter(endpoints::Column::Id.is_in(ids))
        .into_tuple::<(Uuid, Option<String>)>()
        .all(db)
        .await
        .map_err(DbError::query("reading the endpoints of routes"))?
        .into_iter()
        .collect();
    Ok(routes
        .into_iter()
        .map(|route| RouteRow {
            endpoint_url: urls.get(&route.endpoint).cloned().flatten(),
            route,
        })
        .collect())
}

/// Route `id` if it is in `scope`.
pub async fn route_by_id(
    db: &impl ConnectionTrait,
    id: Uuid,
    scope: &OwnerScope,
) -> Result<Option<RouteRow>, DbError> {
    let route = routings::Entity::find_by_id(id)
        .filter(route_scope(scope))
        .one(db)
        .await
        .map_err(DbError::query(format!("reading route {id}")))?;
    Ok(with_urls(db, route.into_iter().collect()).await?.pop())
}

fn scoped_routes(endpoint: Option<Uuid>, scope: &OwnerScope) -> Select<routings::Entity> {
    let mut query = routings::Entity::find().filter(route_scope(scope));
    if let Some(endpoint) = endpoint {
        query = query.filter(routings::Column::Endpoint.eq(endpoint));
    }
    query
}

/// The routes in `scope` (of `endpoint`, when given), newest first, the page `limit`/`offset`.
pub async fn routes(
    db: &impl ConnectionTrait,
    endpoint: Option<Uuid>,
    scope: &OwnerScope,
    (limit, offset): (u64, u64),
) -> Result<Vec<RouteRow>, DbError> {
    let routes = scoped_routes(endpoint, scope)
        .order_by_desc(routings::Column::CreatedAt)
        .order_by_asc(routings::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await
        .map_err(DbError::query("listing routes"))?;
    with_urls(db, routes).await
}

/// How many routes [`routes`] would find without a page.
pub async fn route_count(
    db: &impl ConnectionTrait,
    endpoint: Option<Uuid>,
    scope: &OwnerScope,
) -> Result<u64, DbError> {
    scoped_routes(endpoint, scope)
        .count(db)
        .await
        .map_err(DbError::query("counting routes"))
}

// ----- tokens -----

fn token_scope(endpoint: Option<Uuid>, scope: &OwnerScope) -> Select<endpoint_tokens::Entity> {
    let mut query = endpoint_tokens::Entity::find().filter(scope.condition(
        endpoint_tokens::Column::Domain,
        endpoint_tokens::Column::Project,
        endpoint_tokens::Column::SessionOwner,
    ));
    if let Some(endpoint) = endpoint {
        query = query.filter(endpoint_tokens::Column::Endpoint.eq(endpoint));
    }
    query
}

/// The token whose value is `token`, if it is in `scope`.
pub async fn token(
    db: &impl ConnectionTrait,
    token: &str,
    scope: &OwnerScope,
) -> Result<Option<endpoint_tokens::Model>, DbError> {
    token_scope(None, scope)
        .filter(endpoint_tokens::Column::Token.eq(token))
        .one(db)
        .await
        .map_err(DbError::query("reading an endpoint token"))
}

/// The tokens in `scope` (of `endpoint`, when given), newest first, the page `limit`/`offset`.
pub async fn tokens(
    db: &impl ConnectionTrait,
    endpoint: Option<Uuid>,
    scope: &OwnerScope,
    (limit, offset): (u64, u64),
) -> Result<Vec<endpoint_tokens::Model>, DbError> {
    token_scope(endpoint, scope)
        .order_by_desc(endpoint_tokens::Column::CreatedAt)
        .order_by_asc(endpoint_tokens::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await
        .map_err(DbError::query("listing endpoint tokens"))
}

/// How many tokens [`tokens`] would find without a page.
pub async fn token_count(
    db: &impl ConnectionTrait,
    endpoint: Option<Uuid>,
    scope: &OwnerScope,
) -> Result<u64, DbError> {
    token_scope(endpoint, scope)
        .count(db)
        .await
        .map_err(DbError::query("counting endpoint tokens"))
}

// ----- the scaler -----

/// Deletes the routes still PROVISIONING or TERMINATING whose session is TERMINATED or
/// CANCELLED (their end was missed); returns how many.
pub async fn delete_zombie_routes(db: &impl ConnectionTrait) -> Result<u64, DbError> {
    let zombies: Vec<Uuid> = routings::Entity::find()
        .select_only()
        .column(routings::Column::Id)
        .inner_join(sessions::Entity)
        .filter(
            routings::Column::Status.is_in([RouteStatus::Provisioning, RouteStatus::Terminating]),
        )
        .filter(
            sessions::Column::Status.is_in([SessionStatus::Terminated, SessionStatus::Cancelled]),
        )
        .into_tuple::<Uuid>()
        .all(db)
        .await
        .map_err(DbError::query("finding routes of ended sessions"))?;
    if zombies.is_empty() {
        return Ok(0);
    }
    let deleted = routings::Entity::delete_many()
        .filter(routings::Column::Id.is_in(zombies))
        .exec(db)
        .await
        .map_err(DbError::query("deleting routes of ended sessions"))?;
    Ok(deleted.rows_affected)
}

/// The CREATED and DESTROYING endpoints with their routes, newest first: what the scaler
/// looks at.
pub async fn scaling_targets(
    db: &impl ConnectionTrait,
) -> Result<Vec<(endpoints::Model, Vec<routings::Model>)>, DbError> {
    let rows = endpoints::Entity::find()
        .filter(
            endpoints::Column::LifecycleStage
                .is_in([EndpointLifecycle::Created, EndpointLifecycle::Destroying]),
        )
        .order_by_desc(endpoints::Column::CreatedAt)
        .all(db)
        .await
        .map_err(DbError::query("reading the endpoints to scale"))?;
    Ok(with_details(db, rows)
        .await?
        .into_iter()
        .map(|row| (row.endpoint, row.routings))
        .collect())
}

/// Inserts `count` PROVISIONING routes without session for `endpoint` (traffic ratio 1.0);
/// returns their ids.
pub async fn insert_routes(
    db: &impl ConnectionTrait,
    endpoint: &endpoints::Model,
    count: usize,
) -> Result<Vec<Uuid>, DbError> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let id = Uuid::new_v4();
        routings::Entity::insert(routings::ActiveModel {
            id: ActiveValue::Set(id),
            endpoint: ActiveValue::Set(endpoint.id),
            session: ActiveValue::Set(None),
            session_owner: ActiveValue::Set(endpoint.session_owner),
            domain: ActiveValue::Set(endpoint.domain.clone()),
            project: ActiveValue::Set(endpoint.project),
            status: ActiveValue::Set(RouteStatus::Provisioning),
            traffic_ratio: ActiveValue::Set(1.0),
            created_at: ActiveValue::NotSet,
            error_data: ActiveValue::Set(None),
        })
        .exec_without_returning(db)
        .await
        .map_err(DbError::query(format!(
            "creating a route of endpoint {}",
            endpoint.id
        )))?;
        ids.push(id);
    }
    Ok(ids)
}

/// Marks `ids` DESTROYED now.
pub async fn mark_destroyed(db: &impl ConnectionTrait, ids: &[Uuid]) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    endpoints::Entity::update_many()
        .col_expr(
            endpoints::Column::LifecycleStage,
            EndpointLifecycle::Destroyed.as_enum(),
        )
        .col_expr(endpoints::Column::DestroyedAt, Expr::cust("now()"))
        .filter(endpoints::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await
        .map_err(DbError::query("marking endpoints destroyed"))?;
    Ok(())
}

/// Deletes the routes of `sessions` (sessions that were already gone when the scaler destroyed
/// them).
pub async fn delete_routes_of_sessions(
    db: &impl ConnectionTrait,
    sessions: &[Uuid],
) -> Result<(), DbError> {
    if sessions.is_empty() {
        return Ok(());
    }
    routings::Entity::delete_many()
        .filter(routings::Column::Session.is_in(sessions.iter().copied()))
        .exec(db)
        .await
        .map_err(DbError::query("deleting the routes of ended sessions"))?;
    Ok(())
}

/// A route and its endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteOfEndpoint {
    pub route: routings::Model,
    pub endpoint: endpoints::Model,
}

/// Route `id` with its endpoint.
pub async fn route_with_endpoint(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<RouteOfEndpoint>, DbError> {
    let found = routings::Entity::find_by_id(id)
        .find_also_related(endpoints::Entity)
        .one(db)
        .await
        .map_err(DbError::query(format!("reading route {id}")))?;
    Ok(match found {
        Some((route, Some(endpoint))) => Some(RouteOfEndpoint { route, endpoint }),
        _ => None,
    })
}

/// The route of session `session` with its endpoint, if the session serves one.
pub async fn route_of_session(
    db: &impl ConnectionTrait,
    session: Uuid,
) -> Result<Option<RouteOfEndpoint>, DbError> {
    let found = routings::Entity::find()
        .filter(routings::Column::Session.eq(session))
        .find_also_related(endpoints::Entity)
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading the route of session {session}"
        )))?;
    Ok(match found {
        Some((route, Some(endpoint))) => Some(RouteOfEndpoint { route, endpoint }),
        _ => None,
    })
}

/// Binds route `route` to the session created for it.
pub async fn attach_session(
    db: &impl ConnectionTrait,
    route: Uuid,
    session: Uuid,
) -> Result<(), DbError> {
    routings::Entity::update_many()
        .col_expr(routings::Column::Session, Expr::value(session))
        .filter(routings::Column::Id.eq(route))
        .exec(db)
        .await
        .map_err(DbError::query(format!(
            "binding route {route} to its session"
        )))?;
    Ok(())
}

/// Sets the status of route `route`.
pub async fn set_route_status(
    db: &impl ConnectionTrait,
    route: Uuid,
    status: RouteStatus,
) -> Result<(), DbError> {
    routings::Entity::update_many()
        .col_expr(routings::Column::Status, status.as_enum())
        .filter(routings::Column::Id.eq(route))
        .exec(db)
        .await
        .map_err(DbError::query(format!("updating route {route}")))?;
    Ok(())
}

/// Route `route` FAILED_TO_START (with `error_data`, when given), and one more retry counted on
/// its endpoint.
pub async fn route_failed(
    db: &impl ConnectionTrait,
    route: Uuid,
    error_data: Option<Value>,
) -> Result<(), DbError> {
    let context = || format!("marking route {route} failed");
    let Some(found) = routings::Entity::find_by_id(route)
        .one(db)
        .await
        .map_err(DbError::query(context()))?
    else {
        return Ok(());
    };
    let mut update = routings::Entity::update_many()
        .col_expr(
            routings::Column::Status,
            RouteStatus::FailedToStart.as_enum(),
        )
        .filter(routings::Column::Id.eq(route));
    if let Some(error_data) = error_data {
        update = update.col_expr(routings::Column::ErrorData, Expr::value(error_data));
    }
    update.exec(db).await.map_err(DbError::query(context()))?;
    endpoints::Entity::update_many()
        .col_expr(
            endpoints::Column::Retries,
            Expr::col(endpoints::Column::Retries).add(1),
        )
        .filter(endpoints::Column::Id.eq(found.endpoint))
        .exec(db)
        .await
        .map_err(DbError::query(context()))?;
    Ok(())
}

/// Deletes route `route`.
pub async fn delete_route(db: &impl ConnectionTrait, route: Uuid) -> Result<(), DbError> {
    routings::Entity::delete_by_id(route)
        .exec(db)
        .await
        .map_err(DbError::query(format!("deleting route {route}")))?;
    Ok(())
}

/// When as many routes of endpoint `id` are HEALTHY as it should have, its retries start again
/// from 0 and its failed routes are deleted (the reference's `_clear_error`).
pub async fn forget_errors_when_healthy(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<(), DbError> {
    let context = || format!("reading the health of endpoint {id}");
    let Some(endpoint) = endpoints::Entity::find_by_id(id)
        .one(db)
        .await
        .map_err(DbError::query(context()))?
    else {
        return Ok(());
    };
    let healthy = routings::Entity::find()
        .filter(routings::Column::Endpoint.eq(id))
        .filter(routings::Column::Status.eq(RouteStatus::Healthy))
        .count(db)
        .await
        .map_err(DbError::query(context()))?;
    if u64::try_from(endpoint.desired_session_count).ok() == Some(healthy) {
        clear_errors(db, id).await?;
    }
    Ok(())
}

/// The folders `ids` that exist (an endpoint's model folder and extra mounts), each with its
/// owning user's email and owning project's name.
pub async fn folders_with_owners(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<Vec<(vfolders::Model, Option<String>, Option<String>)>, DbError> {
    let context = || "reading the folders of an endpoint".to_owned();
    let folders = vfolders::Entity::find()
        .filter(vfolders::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(vfolders::Column::Name)
        .all(db)
        .await
        .map_err(DbError::query(context()))?;
    let users: Vec<Uuid> = folders.iter().filter_map(|folder| folder.user).collect();
    let groups_of: Vec<Uuid> = folders.iter().filter_map(|folder| folder.group).collect();
    let emails: HashMap<Uuid, String> = users::Entity::find()
        .select_only()
        .column(users::Column::Uuid)
        .column(users::Column::Email)
        .filter(users::Column::Uuid.is_in(users))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await
        .map_err(DbError::query(context()))?
        .into_iter()
        .collect();
    let names: HashMap<Uuid, String> = groups::Entity::find()
        .select_only()
        .column(groups::Column::Id)
        .column(groups::Column::Name)
        .filter(groups::Column::Id.is_in(groups_of))
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await
        .map_err(DbError::query(context()))?
        .into_iter()
        .collect();
    Ok(folders
        .into_iter()
        .map(|folder| {
            let email = folder.user.and_then(|user| emails.get(&user).cloned());
            let name = folder.group.and_then(|group| names.get(&group).cloned());
            (folder, email, name)
        })
        .collect())
}

/// The domain and role of user `id` (`None`: no such user), to check who may act on an
/// endpoint it owns.
pub async fn owner_domain_and_role(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<(Option<String>, Option<crate::entities::enums::UserRole>)>, DbError> {
    users::Entity::find_by_id(id)
        .select_only()
        .column(users::Column::DomainName)
        .column(users::Column::Role)
        .into_tuple()
        .one(db)
        .await
        .map_err(DbError::query(format!("reading user {id}")))
}

/// The project of `domain` named or identified by `name_or_id` (the reference's
/// `resolve_group_name_or_id`: a UUID is an id, anything else a name).
pub async fn project_id(
    db: &impl ConnectionTrait,
    domain: &str,
    name_or_id: &str,
) -> Result<Option<Uuid>, DbError> {
    let mut query = groups::Entity::find()
        .select_only()
        .column(groups::Column::Id)
        .filter(groups::Column::DomainName.eq(domain));
    query = match Uuid::parse_str(name_or_id) {
        Ok(id) => query.filter(groups::Column::Id.eq(id)),
        Err(_) => query.filter(groups::Column::Name.eq(name_or_id)),
    };
    query
        .into_tuple::<Uuid>()
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading project {name_or_id:?} of domain {domain:?}"
        )))
}

/// The access key the sessions of user `id` are created with: the user's main access key, else
/// any keypair of the user (the reference joins `users` with `keypairs` and takes the first row).
pub async fn access_key_of_user(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<String>, DbError> {
    let context = || format!("reading the access key of user {id}");
    let main: Option<Option<String>> = users::Entity::find_by_id(id)
        .select_only()
        .column(users::Column::MainAccessKey)
        .into_tuple()
        .one(db)
        .await
        .map_err(DbError::query(context()))?;
    if let Some(Some(main)) = main {
        return Ok(Some(main));
    }
    keypairs::Entity::find()
        .select_only()
        .column(keypairs::Column::AccessKey)
        .filter(keypairs::Column::User.eq(id))
        .order_by_asc(keypairs::Column::AccessKey)
        .into_tuple::<String>()
        .one(db)
        .await
        .map_err(DbError::query(context()))
}

/// The `status_data` of session `id` (why a cancelled session did not start).
pub async fn session_status_data(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<Value>, DbError> {
    let found: Option<Option<Value>> = sessions::Entity::find_by_id(id)
        .select_only()
        .column(sessions::Column::StatusData)
        .into_tuple()
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading the status data of session {id}"
        )))?;
    Ok(found.flatten())
}
