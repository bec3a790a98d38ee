//! Users as the GraphQL admin API lists them (`user`, `user_from_uuid`, `users`, `user_list`):
//! the scope arguments, the `filter`/`order` mini-language fields, pages and counts, and each
//! user's projects.

use std::collections::HashMap;

use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Expr, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use crate::entities::enums::UserStatus;
use crate::entities::{association_groups_users, groups, users};
use crate::error::DbError;
use crate::minilang::{Field, FieldMap, Kind, MinilangError};

/// A list query's failure: a bad `filter`/`order` (the caller's) or the database (ours).
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Invalid(#[from] MinilangError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The arguments that narrow a user list, as the reference applies them: `status` wins over
/// `is_active` (active: `active`; inactive: `inactive`, `deleted`, `before-verification`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserScope {
    pub domain_name: Option<String>,
    pub group_id: Option<Uuid>,
    pub status: Option<UserStatus>,
    pub is_active: Option<bool>,
}

/// `UserStatus` member names and stored values, as filters may name them.
pub const USER_STATUSES: &[(&str, &str)] = &[
    ("ACTIVE", "active"),
    ("INACTIVE", "inactive"),
    ("DELETED", "deleted"),
    ("BEFORE_VERIFICATION", "before-verification"),
];

/// `UserRole` member names and stored values.
pub const USER_ROLES: &[(&str, &str)] = &[
    ("SUPERADMIN", "superadmin"),
    ("ADMIN", "admin"),
    ("USER", "user"),
    ("MONITOR", "monitor"),
];

/// A `UserStatus` given by its stored value (`active`), as the `status` argument takes it.
pub fn status_from_value(value: &str) -> Option<UserStatus> {
    Some(match value {
        "active" => UserStatus::Active,
        "inactive" => UserStatus::Inactive,
        "deleted" => UserStatus::Deleted,
        "before-verification" => UserStatus::BeforeVerification,
        _ => return None,
    })
}

fn column(column: users::Column) -> SimpleExpr {
    Expr::col((users::Entity, column)).into()
}

/// The fields `filter` and `order` may name (the reference's `User` field spec; `description` can
/// filter but not order).
pub fn field_map() -> FieldMap {
    let field = |name, col, kind| Field {
        name,
        column: column(col),
        kind,
        orderable: true,
    };
    let mut fields = vec![
        field("uuid", users::Column::Uuid, Kind::Uuid),
        field("username", users::Column::Username, Kind::Text),
        field("email", users::Column::Email, Kind::Text),
        field(
            "need_password_change",
            users::Column::NeedPasswordChange,
            Kind::Bool,
        ),
        field("full_name", users::Column::FullName, Kind::Text),
        field("description", users::Column::Description, Kind::Text),
        field("status", users::Column::Status, Kind::Enum(USER_STATUSES)),
        field("status_info", users::Column::StatusInfo, Kind::Text),
        field("created_at", users::Column::CreatedAt, Kind::Timestamp),
        field("modified_at", users::Column::ModifiedAt, Kind::Timestamp),
        field("domain_name", users::Column::DomainName, Kind::Text),
        field("role", users::Column::Role, Kind::Enum(USER_ROLES)),
    ];
    if let Some(description) = fields.iter_mut().find(|f| f.name == "description") {
        description.orderable = false;
    }
    FieldMap(fields)
}

fn scope_condition(scope: &UserScope) -> Condition {
    let mut condition = Condition::all();
    if let Some(domain) = &scope.domain_name {
        condition = condition.add(users::Column::DomainName.eq(domain.as_str()));
    }
    if let Some(group) = scope.group_id {
        condition = condition.add(
            users::Column::Uuid.in_subquery(
                Query::select()
                    .column(association_groups_users::Column::UserId)
                    .from(association_groups_users::Entity)
                    .and_where(association_groups_users::Column::GroupId.eq(group))
                    .to_owned(),
            ),
        );
    }
    if let Some(status) = scope.status {
        condition = condition.add(users::Column::Status.eq(status));
    } else if let Some(active) = scope.is_active {
        condition = condition.add(if active {
            users::Column::Status.eq(UserStatus::Active)
        } else {
            users::Column::Status.is_in([
                UserStatus::Inactive,
                UserStatus::Deleted,
                UserStatus::BeforeVerification,
            ])
        });
    }
    condition
}

/// The user with `email`, if it is in `scope` (the scope's domain and status arguments).
pub async fn by_email(
    db: &impl ConnectionTrait,
    email: &str,
    scope: &UserScope,
) -> Result<Option<users::Model>, DbError> {
    users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .filter(scope_condition(scope))
        .one(db)
        .await
        .map_err(DbError::query(format!("reading user {email:?}")))
}

/// The user `uuid`, if it is in `scope`.
pub async fn by_uuid(
    db: &impl ConnectionTrait,
    uuid: Uuid,
    scope: &UserScope,
) -> Result<Option<users::Model>, DbError> {
    users::Entity::find_by_id(uuid)
        .filter(scope_condition(scope))
        .one(db)
        .await
        .map_err(DbError::query(format!("reading user {uuid}")))
}

/// The users in `scope` matching `filter`, ordered by `order` (default: newest first; ties by
/// uuid), the page `limit`/`offset` when given.
pub async fn list(
    db: &impl ConnectionTrait,
    scope: &UserScope,
    filter: Option<&str>,
    order: Option<&str>,
    page: Option<(u64, u64)>,
) -> Result<Vec<users::Model>, ListError> {
    let fields = field_map();
    let mut query = users::Entity::find().filter(scope_condition(scope));
    if let Some(filter) = filter {
        query = query.filter(fields.filter(filter)?);
    }
    let order = match order {
        Some(order) => fields.order(order)?,
        None => Vec::new(),
    };
    if order.is_empty() {
        query = query.order_by_desc(users::Column::CreatedAt);
    }
    for (expr, direction) in order {
        query = query.order_by(expr, direction);
    }
    query = query.order_by(users::Column::Uuid, Order::Asc);
    if let Some((limit, offset)) = page {
        query = query.limit(limit).offset(offset);
    }
    Ok(query
        .all(db)
        .await
        .map_err(DbError::query("listing users".to_owned()))?)
}

/// How many users `list` would find without a page.
pub async fn count(
    db: &impl ConnectionTrait,
    scope: &UserScope,
    filter: Option<&str>,
) -> Result<u64, ListError> {
    let mut query = users::Entity::find().filter(scope_condition(scope));
    if let Some(filter) = filter {
        query = query.filter(field_map().filter(filter)?);
    }
    Ok(query
        .count(db)
        .await
        .map_err(DbError::query("counting users".to_owned()))?)
}

/// A project a user belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserGroup {
    pub id: Uuid,
    pub name: String,
}

/// The projects of each of `users`, by name; users without projects are absent.
pub async fn groups_of(
    db: &impl ConnectionTrait,
    users: &[Uuid],
) -> Result<HashMap<Uuid, Vec<UserGroup>>, DbError> {
    let mut found: HashMap<Uuid, Vec<UserGroup>> = HashMap::new();
    if users.is_empty() {
        return Ok(found);
    }
    let rows = association_groups_users::Entity::find()
        .filter(association_groups_users::Column::UserId.is_in(users.iter().copied()))
        .find_also_related(groups::Entity)
        .order_by_asc(groups::Column::Name)
        .order_by_asc(groups::Column::Id)
        .all(db)
        .await
        .map_err(DbError::query("reading the projects of users".to_owned()))?;
    for (membership, group) in rows {
        if let Some(group) = group {
            found
                .entry(membership.user_id)
                .or_default()
                .push(UserGroup {
                    id: group.id,
                    name: group.name,
                });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveModelTrait, Set};

    use super::{ListError, UserScope};
    use crate::entities::association_groups_users;
    use crate::entities::enums::UserStatus;
    use crate::queries::test_rows::{self, Rows};

    #[tokio::test]
    async fn lists_filters_orders_and_counts() {
        let (test, rows) = test_rows::database("q_user_listing").await;
        let db = &test.connection;
        let second = test_rows::user(db, "kim@lablup.com").await;
        let third = test_rows::user(db, "lee@lablup.com").await;
        association_groups_users::ActiveModel {
            id: Set(uuid::Uuid::new_v4()),
            user_id: Set(second.uuid),
            group_id: Set(rows.group.id),
        }
        .insert(db)
        .await
        .expect("membership");
        let everyone = UserScope::default();
        let emails = |users: Vec<crate::entities::users::Model>| {
            users.into_iter().map(|user| user.email).collect::<Vec<_>>()
        };

        let all = super::list(db, &everyone, None, Some("+email"), None)
            .await
            .expect("list");
        assert_eq!(
            emails(all),
            ["kim@lablup.com", "lee@lablup.com", Rows::EMAIL]
        );
        assert_eq!(super::count(db, &everyone, None).await.expect("count"), 3);
        let page = super::list(db, &everyone, None, Some("-email"), Some((1, 1)))
            .await
            .expect("page");
        assert_eq!(emails(page), ["lee@lablup.com"]);

        let filter = r#"email ilike "%K%" | email == "lee@lablup.com""#;
        let found = super::list(db, &everyone, Some(filter), Some("email"), None)
            .await
            .expect("filtered");
        assert_eq!(emails(found), ["kim@lablup.com", "lee@lablup.com"]);
        assert_eq!(
            super::count(db, &everyone, Some(filter))
                .await
                .expect("count"),
            2
        );
        let by_status = super::list(db, &everyone, Some(r#"status == "ACTIVE""#), None, None)
            .await
            .expect("status filter");
        assert_eq!(by_status.len(), 3);
        assert!(matches!(
            super::list(db, &everyone, Some("nope == 1"), None, None).await,
            Err(ListError::Invalid(_))
        ));
        assert!(matches!(
            super::count(db, &everyone, Some("email ==")).await,
            Err(ListError::Invalid(_))
        ));

        let in_group = UserScope {
            group_id: Some(rows.group.id),
            ..UserScope::default()
        };
        assert_eq!(
            emails(
                super::list(db, &in_group, None, None, None)
                    .await
                    .expect("group")
            ),
            ["kim@lablup.com"]
        );
        let inactive = UserScope {
            is_active: Some(false),
            ..UserScope::default()
        };
        assert_eq!(super::count(db, &inactive, None).await.expect("count"), 0);
        let elsewhere = UserScope {
            domain_name: Some("other".into()),
            ..UserScope::default()
        };
        assert_eq!(super::count(db, &elsewhere, None).await.expect("count"), 0);
        assert_eq!(
            super::by_email(db, "lee@lablup.com", &elsewhere)
                .await
                .expect("by email"),
            None
        );
        let active = UserScope {
            status: Some(UserStatus::Active),
            is_active: Some(false),
            ..UserScope::default()
        };
        assert_eq!(
            super::by_uuid(db, third.uuid, &active)
                .await
                .expect("by uuid")
                .map(|user| user.email),
            Some("lee@lablup.com".to_owned())
        );

        let groups = super::groups_of(db, &[second.uuid, third.uuid])
            .await
            .expect("groups");
        assert_eq!(groups[&second.uuid][0].name, "default");
        assert!(!groups.contains_key(&third.uuid));
    }
}
