//! Keypairs: `keypair` (the caller's own unless a superadmin names another), `keypairs(domain_name,
//! email, is_active)` and `keypair_list(...)` (scoped by the owner's email: users see their own,
//! domain admins their domain's, superadmins all).
//!
//! A secret key is shown only to its owner and to superadmins (the reference shows it to domain
//! admins too, including their domain's superadmins' keys).

use async_graphql::{ComplexObject, Context, Object, SimpleObject};
use bai_db_models::entities::enums::UserRole;
use bai_db_models::queries::keypair_listing::{self, KeypairRow, KeypairScope};
use chrono::{DateTime, FixedOffset, Utc};
use uuid::Uuid;

use super::common::{forbidden, gql, internal};
use super::users::{list_error, page, scoped};

#[derive(Debug, Default)]
pub struct KeypairQuery;

/// A keypair as the reference's `KeyPair` type shows it.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(name = "KeyPair", complex, rename_fields = "snake_case")]
pub struct KeyPair {
    pub id: Option<String>,
    /// The owner's email (a legacy name).
    pub user_id: Option<String>,
    /// The owner's full name.
    pub full_name: Option<String>,
    pub access_key: Option<String>,
    /// Only to the keypair's owner and superadmins.
    pub secret_key: Option<String>,
    pub is_active: Option<bool>,
    pub is_admin: Option<bool>,
    pub resource_policy: Option<String>,
    pub created_at: Option<DateTime<FixedOffset>>,
    pub modified_at: Option<DateTime<FixedOffset>>,
    pub rate_limit: Option<i32>,
    /// The owner's uuid.
    pub user: Option<Uuid>,
    /// The owner's project names.
    pub projects: Option<Vec<Option<String>>>,
    pub ssh_public_key: Option<String>,
    pub user_info: Option<UserInfo>,
    /// Deprecated: always 0 (moved to the resource policy's `max_concurrent_sessions`).
    pub concurrency_limit: Option<i32>,
}

/// The owner's name, as `KeyPair.user_info`.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct UserInfo {
    pub email: Option<String>,
    pub full_name: Option<String>,
}

impl KeyPair {
    /// `row` as `viewer_may_see_secret` allows.
    pub fn from_row(row: KeypairRow, viewer_may_see_secret: bool) -> KeyPair {
        let keypair = row.keypair;
        let full_name = row.owner.as_ref().and_then(|owner| owner.full_name.clone());
        KeyPair {
            id: Some(keypair.access_key.clone()),
            user_info: row.owner.as_ref().map(|owner| UserInfo {
                email: Some(owner.email.clone()),
                full_name: full_name.clone(),
            }),
            full_name,
            user_id: keypair.user_id,
            secret_key: keypair.secret_key.filter(|_| viewer_may_see_secret),
            access_key: Some(keypair.access_key),
            is_active: keypair.is_active,
            is_admin: keypair.is_admin,
            resource_policy: Some(keypair.resource_policy),
            created_at: keypair.created_at,
            modified_at: keypair.modified_at,
            rate_limit: keypair.rate_limit,
            user: Some(keypair.user),
            projects: Some(row.projects.into_iter().map(Some).collect()),
            ssh_public_key: keypair.ssh_public_key,
            concurrency_limit: Some(0),
        }
    }

    fn access_key_text(&self) -> &str {
        self.access_key.as_deref().unwrap_or("")
    }
}

#[ComplexObject(rename_fields = "snake_case")]
impl KeyPair {
    /// Successful requests signed with this keypair in the last 30 days (Redis call statistics).
    async fn num_queries(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<i64>> {
        let count = gql(ctx)
            .api
            .redis()
            .stat
            .keypair_num_queries(self.access_key_text())
            .await
            .map_err(|source| internal("reading keypair statistics", &source))?;
        Ok(Some(count))
    }

    /// The last successful request (Redis call statistics); null when none is recorded.
    async fn last_used(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<DateTime<FixedOffset>>> {
        let seconds = gql(ctx)
            .api
            .redis()
            .stat
            .keypair_last_call_time(self.access_key_text())
            .await
            .map_err(|source| internal("reading keypair statistics", &source))?;
        Ok(seconds
            .and_then(|seconds| {
                let micros = (seconds * 1_000_000.0).round() as i64;
                DateTime::<Utc>::from_timestamp_micros(micros)
            })
            .map(|at| at.fixed_offset()))
    }

    /// The keypair's running sessions (Redis); 0 when unset.
    async fn concurrency_used(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<i64>> {
        let used = gql(ctx)
            .api
            .redis()
            .stat
            .keypair_concurrency_used(self.access_key_text())
            .await
            .map_err(|source| internal("reading keypair statistics", &source))?;
        Ok(Some(used))
    }
}

/// One page of keypairs and how many there are in all.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(name = "KeyPairList", rename_fields = "snake_case")]
pub struct KeyPairList {
    pub items: Vec<Option<KeyPair>>,
    pub total_count: i64,
}

/// The caller's keypair list scope (`scoped_query(user_key="email")`).
fn list_scope(
    ctx: &Context<'_>,
    domain_name: Option<String>,
    email: Option<String>,
    is_active: Option<bool>,
) -> async_graphql::Result<KeypairScope> {
    let caller = &gql(ctx).caller;
    let scoped = scoped(
        ctx,
        domain_name,
        email,
        &caller.user.email,
        |a, b| a == b,
        false,
    )?;
    Ok(KeypairScope {
        domain_name: scoped.domain_name,
        email: scoped.key,
        is_active,
        access_key: None,
    })
}

/// `rows` as the caller may see them.
fn visible(ctx: &Context<'_>, rows: Vec<KeypairRow>) -> Vec<Option<KeyPair>> {
    let caller = &gql(ctx).caller;
    let superadmin = caller.role() == UserRole::Superadmin;
    rows.into_iter()
        .map(|row| {
            let own = row.keypair.user == caller.user.uuid;
            Some(KeyPair::from_row(row, superadmin || own))
        })
        .collect()
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl KeypairQuery {
    /// The caller's keypair, or (superadmins only) the one named by `access_key`.
    async fn keypair(
        &self,
        ctx: &Context<'_>,
        domain_name: Option<String>,
        access_key: Option<String>,
    ) -> async_graphql::Result<Option<KeyPair>> {
        let context = gql(ctx);
        let caller = &context.caller;
        let access_key = access_key.unwrap_or_else(|| caller.access_key().to_owned());
        if access_key != caller.access_key() && !caller.is_superadmin() {
            return Err(forbidden("you can query only your own keypair"));
        }
        let scope = KeypairScope {
            domain_name,
            access_key: Some(access_key),
            ..KeypairScope::default()
        };
        let rows = keypair_listing::list(context.api.db(), &scope, None, None, Some((1, 0)))
            .await
            .map_err(|failure| list_error("reading a keypair", failure))?;
        Ok(rows
            .into_iter()
            .next()
            .map(|row| KeyPair::from_row(row, true)))
    }

    /// Every keypair in scope (users: their own; domain admins: their domain's), newest first.
    async fn keypairs(
        &self,
        ctx: &Context<'_>,
        domain_name: Option<String>,
        email: Option<String>,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Option<Vec<Option<KeyPair>>>> {
        let scope = list_scope(ctx, domain_name, email, is_active)?;
        let rows = keypair_listing::list(gql(ctx).api.db(), &scope, None, None, None)
            .await
            .map_err(|failure| list_error("listing keypairs", failure))?;
        Ok(Some(visible(ctx, rows)))
    }

    /// One page of the keypairs in scope matching `filter`, ordered by `order`.
    #[allow(clippy::too_many_arguments)]
    async fn keypair_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        domain_name: Option<String>,
        email: Option<String>,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Option<KeyPairList>> {
        let scope = list_scope(ctx, domain_name, email, is_active)?;
        let page = page(limit, offset)?;
        let db = gql(ctx).api.db();
        let total_count = keypair_listing::count(db, &scope, filter.as_deref())
            .await
            .map_err(|failure| list_error("counting keypairs", failure))?;
        let rows =
            keypair_listing::list(db, &scope, filter.as_deref(), order.as_deref(), Some(page))
                .await
                .map_err(|failure| list_error("listing keypairs", failure))?;
        Ok(Some(KeyPairList {
            items: visible(ctx, rows),
            total_count: i64::try_from(total_count).unwrap_or(i64::MAX),
        }))
    }
}
