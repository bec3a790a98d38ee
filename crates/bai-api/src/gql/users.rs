//! Users: `user(domain_name, email)`, `user_from_uuid(domain_name, user_id)` (scoped: a user sees
//! only itself, a domain admin its domain), `users(...)` and `user_list(...)` (superadmins all,
//! domain admins their domain, users refused).

use async_graphql::{Context, ID, Object, SimpleObject};
use bai_db_models::entities::enums::UserRole;
use bai_db_models::entities::users;
use bai_db_models::queries::user_listing::{self, ListError, UserGroup as GroupRow, UserScope};
use chrono::{DateTime, FixedOffset};
use sea_orm::ActiveEnum;
use uuid::Uuid;

use super::common::{error, gql, internal};
use crate::error::{ApiError, ErrorKind};

#[derive(Debug, Default)]
pub struct UserQuery;

/// A project of a user, as `User.groups` shows it.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct UserGroup {
    pub id: Option<Uuid>,
    pub name: Option<String>,
}

/// A user as the reference's `User` type shows it.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct User {
    pub id: ID,
    pub uuid: Option<Uuid>,
    pub username: Option<String>,
    pub email: Option<String>,
    pub need_password_change: Option<bool>,
    pub full_name: Option<String>,
    pub description: Option<String>,
    /// Legacy: whether `status` is `active`.
    pub is_active: Option<bool>,
    pub status: Option<String>,
    pub status_info: Option<String>,
    pub created_at: Option<DateTime<FixedOffset>>,
    pub modified_at: Option<DateTime<FixedOffset>>,
    pub domain_name: Option<String>,
    pub role: Option<String>,
    pub resource_policy: Option<String>,
    pub allowed_client_ip: Option<Vec<Option<String>>>,
    pub totp_activated: Option<bool>,
    pub totp_activated_at: Option<DateTime<FixedOffset>>,
    pub sudo_session_enabled: Option<bool>,
    pub main_access_key: Option<String>,
    pub groups: Option<Vec<Option<UserGroup>>>,
}

impl User {
    pub(super) fn from_row(row: users::Model, groups: Vec<GroupRow>) -> User {
        User {
            id: ID(row.uuid.to_string()),
            uuid: Some(row.uuid),
            username: row.username,
            email: Some(row.email),
            need_password_change: row.need_password_change,
            full_name: row.full_name,
            description: row.description,
            is_active: Some(row.status == bai_db_models::entities::enums::UserStatus::Active),
            status: Some(row.status.to_value()),
            status_info: row.status_info,
            created_at: row.created_at,
            modified_at: row.modified_at,
            domain_name: row.domain_name,
            role: row.role.map(|role| role.to_value()),
            resource_policy: Some(row.resource_policy),
            allowed_client_ip: row.allowed_client_ip.map(|networks| {
                networks
                    .iter()
                    .map(|network| Some(network.to_string()))
                    .collect()
            }),
            totp_activated: row.totp_activated,
            totp_activated_at: row.totp_activated_at,
            sudo_session_enabled: Some(row.sudo_session_enabled),
            main_access_key: row.main_access_key,
            groups: Some(
                groups
                    .into_iter()
                    .map(|group| {
                        Some(UserGroup {
                            id: Some(group.id),
                            name: Some(group.name),
                        })
                    })
                    .collect(),
            ),
        }
    }
}

/// One page of users and how many there are in all.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct UserList {
    pub items: Vec<Option<User>>,
    pub total_count: i64,
}

/// What the reference's `scoped_query` leaves of the scope arguments: the domain (forced to the
/// caller's for domain admins and users) and the user key (forced to the caller's for users;
/// filled with the caller's for others when `autofill`).
pub(super) struct Scoped {
    pub domain_name: Option<String>,
    pub key: Option<String>,
}

/// `scoped_query(autofill_user, user_key)`: a domain admin or user naming another domain, or a
/// user naming another user, is refused with "Forbidden operation."; a monitor with "Unknown
/// client role".
pub(super) fn scoped(
    ctx: &Context<'_>,
    domain_name: Option<String>,
    key: Option<String>,
    own_key: &str,
    same_key: impl Fn(&str, &str) -> bool,
    autofill: bool,
) -> async_graphql::Result<Scoped> {
    let caller = &gql(ctx).caller;
    let own_domain = caller.user.domain_name.clone().unwrap_or_default();
    let role = caller.role();
    match role {
        UserRole::Superadmin => Ok(Scoped {
            domain_name,
            key: key.or_else(|| autofill.then(|| own_key.to_owned())),
        }),
        UserRole::Admin | UserRole::User => {
            if domain_name.as_ref().is_some_and(|name| *name != own_domain) {
                return Err(error(ApiError::new(ErrorKind::GenericForbidden)));
            }
            let key = if role == UserRole::User {
                if key.as_deref().is_some_and(|key| !same_key(key, own_key)) {
                    return Err(error(ApiError::new(ErrorKind::GenericForbidden)));
                }
                // Always the caller's own, even where the reference leaves an absent key absent.
                Some(own_key.to_owned())
            } else {
                key.or_else(|| autofill.then(|| own_key.to_owned()))
            };
            Ok(Scoped {
                domain_name: Some(own_domain),
                key,
            })
        }
        UserRole::Monitor => Err(unknown_role()),
    }
}

pub(super) fn unknown_role() -> async_graphql::Error {
    error(ApiError::with_msg(
        ErrorKind::InvalidApiParameters,
        "Unknown client role",
    ))
}

pub(super) fn invalid(msg: impl Into<String>) -> async_graphql::Error {
    error(ApiError::with_msg(ErrorKind::InvalidApiParameters, msg))
}

/// A list failure: the caller's bad filter or order in the mini-language's words, ours logged.
pub(super) fn list_error(context: &str, failure: ListError) -> async_graphql::Error {
    match failure {
        ListError::Invalid(invalid) => async_graphql::Error::new(invalid.to_string()),
        ListError::Db(source) => internal(context, &source),
    }
}

/// `limit`/`offset` of a list query as a page.
pub(super) fn page(limit: i32, offset: i32) -> async_graphql::Result<(u64, u64)> {
    match (u64::try_from(limit), u64::try_from(offset)) {
        (Ok(limit), Ok(offset)) => Ok((limit, offset)),
        _ => Err(invalid("limit and offset must not be negative")),
    }
}

/// The users' list scope for the caller: superadmins as asked; domain admins in their domain
/// (naming another is refused with "Insufficient privilege."); users refused.
fn list_scope(
    ctx: &Context<'_>,
    domain_name: Option<String>,
    group_id: Option<Uuid>,
    is_active: Option<bool>,
    status: Option<String>,
) -> async_graphql::Result<UserScope> {
    let caller = &gql(ctx).caller;
    let domain_name = match caller.role() {
        UserRole::Superadmin => domain_name,
        UserRole::Admin => {
            let own = caller.user.domain_name.clone().unwrap_or_default();
            if domain_name.as_ref().is_some_and(|name| *name != own) {
                return Err(error(ApiError::new(ErrorKind::InsufficientPrivilege)));
            }
            Some(own)
        }
        UserRole::User => return Err(error(ApiError::new(ErrorKind::InsufficientPrivilege))),
        UserRole::Monitor => return Err(unknown_role()),
    };
    let status = status
        .map(|status| {
            user_listing::status_from_value(&status)
                .ok_or_else(|| invalid(format!("{status:?} is not a valid UserStatus")))
        })
        .transpose()?;
    Ok(UserScope {
        domain_name,
        group_id,
        status,
        is_active,
    })
}

/// `rows` with their projects.
async fn with_groups(
    ctx: &Context<'_>,
    rows: Vec<users::Model>,
) -> async_graphql::Result<Vec<Option<User>>> {
    let ids: Vec<Uuid> = rows.iter().map(|row| row.uuid).collect();
    let mut groups = user_listing::groups_of(gql(ctx).api.db(), &ids)
        .await
        .map_err(|source| internal("reading the projects of users", &source))?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let own = groups.remove(&row.uuid).unwrap_or_default();
            Some(User::from_row(row, own))
        })
        .collect())
}

async fn one(ctx: &Context<'_>, row: Option<users::Model>) -> async_graphql::Result<Option<User>> {
    Ok(match row {
        Some(row) => with_groups(ctx, vec![row]).await?.pop().flatten(),
        None => None,
    })
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl UserQuery {
    /// The user `email` (the caller when absent); users may read only themselves, domain admins
    /// their domain.
    async fn user(
        &self,
        ctx: &Context<'_>,
        domain_name: Option<String>,
        email: Option<String>,
    ) -> async_graphql::Result<Option<User>> {
        let caller = &gql(ctx).caller;
        let scoped = scoped(
            ctx,
            domain_name,
            email,
            &caller.user.email,
            |a, b| a == b,
            true,
        )?;
        let email = scoped.key.unwrap_or_default();
        let scope = UserScope {
            domain_name: scoped.domain_name,
            ..UserScope::default()
        };
        let row = user_listing::by_email(gql(ctx).api.db(), &email, &scope)
            .await
            .map_err(|source| internal("reading a user", &source))?;
        one(ctx, row).await
    }

    /// The user `user_id` (a uuid; the caller when absent), scoped as `user`.
    async fn user_from_uuid(
        &self,
        ctx: &Context<'_>,
        domain_name: Option<String>,
        user_id: Option<ID>,
    ) -> async_graphql::Result<Option<User>> {
        let caller = &gql(ctx).caller;
        let same =
            |given: &str, own: &str| Uuid::parse_str(given).ok() == Uuid::parse_str(own).ok();
        let scoped = scoped(
            ctx,
            domain_name,
            user_id.map(|id| id.0),
            &caller.user.uuid.to_string(),
            same,
            true,
        )?;
        let given = scoped.key.unwrap_or_default();
        let uuid = Uuid::parse_str(&given)
            .map_err(|_| invalid(format!("user_id {given:?} is not a UUID")))?;
        let scope = UserScope {
            domain_name: scoped.domain_name,
            ..UserScope::default()
        };
        let row = user_listing::by_uuid(gql(ctx).api.db(), uuid, &scope)
            .await
            .map_err(|source| internal("reading a user", &source))?;
        one(ctx, row).await
    }

    /// Every user in scope, newest first.
    async fn users(
        &self,
        ctx: &Context<'_>,
        domain_name: Option<String>,
        group_id: Option<Uuid>,
        is_active: Option<bool>,
        status: Option<String>,
    ) -> async_graphql::Result<Option<Vec<Option<User>>>> {
        let scope = list_scope(ctx, domain_name, group_id, is_active, status)?;
        let rows = user_listing::list(gql(ctx).api.db(), &scope, None, None, None)
            .await
            .map_err(|failure| list_error("listing users", failure))?;
        Ok(Some(with_groups(ctx, rows).await?))
    }

    /// One page of the users in scope matching `filter`, ordered by `order`.
    #[allow(clippy::too_many_arguments)]
    async fn user_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        domain_name: Option<String>,
        group_id: Option<Uuid>,
        is_active: Option<bool>,
        status: Option<String>,
    ) -> async_graphql::Result<Option<UserList>> {
        let scope = list_scope(ctx, domain_name, group_id, is_active, status)?;
        let page = page(limit, offset)?;
        let db = gql(ctx).api.db();
        let total_count = user_listing::count(db, &scope, filter.as_deref())
            .await
            .map_err(|failure| list_error("counting users", failure))?;
        let rows = user_listing::list(db, &scope, filter.as_deref(), order.as_deref(), Some(page))
            .await
            .map_err(|failure| list_error("listing users", failure))?;
        Ok(Some(UserList {
            items: with_groups(ctx, rows).await?,
            total_count: i64::try_from(total_count).unwrap_or(i64::MAX),
        }))
    }
}
