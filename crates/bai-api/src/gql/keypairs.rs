//! Keypairs: `keypair` (the caller's own unless a superadmin names another).

use async_graphql::{Context, Object, SimpleObject};
use bai_db_models::entities::keypairs;
use bai_db_models::queries;
use chrono::{DateTime, FixedOffset};

use super::common::{forbidden, gql, internal};

#[derive(Debug, Default)]
pub struct KeypairQuery;

/// A keypair as the reference's `KeyPair` type shows it.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(name = "KeyPair", rename_fields = "snake_case")]
pub struct KeyPair {
    pub user_id: Option<String>,
    pub access_key: String,
    /// Only to the keypair's owner and superadmins.
    pub secret_key: Option<String>,
    pub is_active: Option<bool>,
    pub is_admin: Option<bool>,
    pub resource_policy: String,
    pub created_at: Option<DateTime<FixedOffset>>,
    pub modified_at: Option<DateTime<FixedOffset>>,
    pub last_used: Option<DateTime<FixedOffset>>,
    pub rate_limit: Option<i32>,
    pub num_queries: Option<i32>,
    pub ssh_public_key: Option<String>,
    pub user_info: UserInfo,
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
    pub fn from_row(
        row: keypairs::Model,
        full_name: Option<String>,
        viewer_may_see_secret: bool,
    ) -> KeyPair {
        KeyPair {
            user_info: UserInfo {
                email: row.user_id.clone(),
                full_name,
            },
            user_id: row.user_id,
            secret_key: row.secret_key.filter(|_| viewer_may_see_secret),
            access_key: row.access_key,
            is_active: row.is_active,
            is_admin: row.is_admin,
            resource_policy: row.resource_policy,
            created_at: row.created_at,
            modified_at: row.modified_at,
            last_used: row.last_used,
            rate_limit: row.rate_limit,
            num_queries: row.num_queries,
            ssh_public_key: row.ssh_public_key,
        }
    }
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
        let Some(found) = queries::keypairs::by_access_key(context.api.db(), &access_key)
            .await
            .map_err(|source| internal("reading a keypair", &source))?
        else {
            return Ok(None);
        };
        let owner = queries::users::by_email(
            context.api.db(),
            found.keypair.user_id.as_deref().unwrap_or(""),
        )
        .await
        .map_err(|source| internal("reading a keypair's owner", &source))?;
        if let Some(domain) = &domain_name {
            if owner.as_ref().and_then(|user| user.domain_name.as_ref()) != Some(domain) {
                return Ok(None);
            }
        }
        Ok(Some(KeyPair::from_row(
            found.keypair,
            owner.and_then(|user| user.full_name),
            true,
        )))
    }
}
