//! Keypair mutations (superadmins): `create_keypair` for a user named by email,
//! `modify_keypair` and `delete_keypair` (refused for a user's main access key).

use async_graphql::{Context, InputObject, Object, SimpleObject};
use bai_db_models::queries::keypair_admin::{self, KeypairChanges, NewKeypair};
use bai_db_models::queries::keypair_listing::{self, KeypairScope};

use super::common::{Allowed, Outcome, gql, mutation_guard};
use super::keypairs::KeyPair;
use super::user_mutations::{forget_counters, new_secrets};
use super::users::list_error;

#[derive(Debug, Default)]
pub struct KeypairMutation;

/// `KeyPairInput`: a new keypair's properties.
#[derive(Debug, InputObject)]
#[graphql(name = "KeyPairInput", rename_fields = "snake_case")]
pub struct KeyPairInput {
    #[graphql(default_with = "Some(true)")]
    pub is_active: Option<bool>,
    #[graphql(default_with = "Some(false)")]
    pub is_admin: Option<bool>,
    pub resource_policy: String,
    /// Deprecated and ignored, as in the reference (see the resource policy's
    /// `max_concurrent_sessions`).
    pub concurrency_limit: Option<i32>,
    pub rate_limit: i32,
}

/// `ModifyKeyPairInput`: only the fields given change; a null leaves a field as it is (the
/// official client's `keypair activate` and `deactivate` send nulls for the others).
#[derive(Debug, InputObject)]
#[graphql(name = "ModifyKeyPairInput", rename_fields = "snake_case")]
pub struct ModifyKeyPairInput {
    pub is_active: Option<bool>,
    pub is_admin: Option<bool>,
    pub resource_policy: Option<String>,
    /// Deprecated and ignored, as in the reference.
    pub concurrency_limit: Option<i32>,
    pub rate_limit: Option<i32>,
}

#[derive(Debug, SimpleObject)]
#[graphql(name = "CreateKeyPair", rename_fields = "snake_case")]
pub struct CreateKeyPair {
    pub ok: Option<bool>,
    pub msg: Option<String>,
    pub keypair: Option<KeyPair>,
}

#[derive(Debug, SimpleObject)]
#[graphql(name = "ModifyKeyPair", rename_fields = "snake_case")]
pub struct ModifyKeyPair {
    pub ok: Option<bool>,
    pub msg: Option<String>,
}

#[derive(Debug, SimpleObject)]
#[graphql(name = "DeleteKeyPair", rename_fields = "snake_case")]
pub struct DeleteKeyPair {
    pub ok: Option<bool>,
    pub msg: Option<String>,
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl KeypairMutation {
    /// A new keypair of the user whose email is `user_id` (the keypairs' legacy name for it).
    async fn create_keypair(
        &self,
        ctx: &Context<'_>,
        props: KeyPairInput,
        user_id: String,
    ) -> async_graphql::Result<Option<CreateKeyPair>> {
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, "create_keypair").await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => {
                let settings = NewKeypair {
                    is_active: props.is_active.unwrap_or(true),
                    is_admin: props.is_admin.unwrap_or(false),
                    resource_policy: props.resource_policy,
                    rate_limit: props.rate_limit,
                };
                let secrets = new_secrets().await?;
                Outcome::of(
                    keypair_admin::create(gql(ctx).api.db(), &user_id, &settings, secrets).await,
                    "creating a keypair",
                )?
            }
        };
        let ok = outcome.ok();
        let msg = outcome.msg();
        let keypair = match outcome.into_item() {
            Some(created) => {
                let scope = KeypairScope {
                    access_key: Some(created.access_key),
                    ..KeypairScope::default()
                };
                keypair_listing::list(gql(ctx).api.db(), &scope, None, None, None)
                    .await
                    .map_err(|failure| list_error("reading the new keypair", failure))?
                    .into_iter()
                    .next()
                    .map(|row| KeyPair::from_row(row, true))
            }
            None => None,
        };
        Ok(Some(CreateKeyPair {
            ok: Some(ok),
            msg: Some(msg),
            keypair,
        }))
    }

    async fn modify_keypair(
        &self,
        ctx: &Context<'_>,
        access_key: String,
        props: ModifyKeyPairInput,
    ) -> async_graphql::Result<Option<ModifyKeyPair>> {
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, "modify_keypair").await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => {
                let changes = KeypairChanges {
                    is_active: props.is_active,
                    is_admin: props.is_admin,
                    resource_policy: props.resource_policy,
                    rate_limit: props.rate_limit,
                };
                Outcome::of(
                    keypair_admin::modify(gql(ctx).api.db(), &access_key, changes).await,
                    "modifying a keypair",
                )?
            }
        };
        Ok(Some(ModifyKeyPair {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
        }))
    }

    async fn delete_keypair(
        &self,
        ctx: &Context<'_>,
        access_key: String,
    ) -> async_graphql::Result<Option<DeleteKeyPair>> {
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, "delete_keypair").await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => Outcome::of(
                keypair_admin::delete(gql(ctx).api.db(), &access_key).await,
                "deleting a keypair",
            )?,
        };
        if outcome.ok() {
            forget_counters(ctx, std::slice::from_ref(&access_key)).await;
        }
        Ok(Some(DeleteKeyPair {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
        }))
    }
}
