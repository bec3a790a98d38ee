//! Keypair, user and project resource policies.
//!
//! Queries, with the reference's role rules: a policy named by `name` is shown to anyone; without
//! a name, `keypair_resource_policy` and `user_resource_policy` are the caller's own. The lists
//! are whole for superadmins and domain admins; a user sees the policies of their own keypairs
//! (resp. their own user policy); monitors (and users, for project policies) are refused with
//! "Unknown client role".
//!
//! Mutations (superadmins): `create_`/`modify_`/`delete_` `keypair_`/`user_`/`project_`
//! `resource_policy`. A modify changes only the fields given; a delete is refused while keypairs,
//! users or projects still have the policy.

use async_graphql::{ComplexObject, Context, InputObject, MaybeUndefined, Object, SimpleObject};
use bai_db_models::entities::enums::{DefaultForUnspecified, UserRole};
use bai_db_models::entities::{
    keypair_resource_policies, project_resource_policies, user_resource_policies,
};
use bai_db_models::queries::resource_policies::{
    self, KeypairPolicyChanges, NewKeypairPolicy, NewProjectPolicy, NewUserPolicy,
    ProjectPolicyChanges, UserPolicyChanges,
};
use bai_db_models::{DbError, WriteError};
use chrono::{DateTime, FixedOffset};

use super::common::{
    Allowed, BigInt, JsonString, Outcome, change, gql, internal, mutation_guard, resource_slots,
    vfolder_host_permissions,
};
use super::users::unknown_role;

#[derive(Debug, Default)]
pub struct ResourcePolicyQuery;

#[derive(Debug, Default)]
pub struct ResourcePolicyMutation;

/// A keypair resource policy as the reference's `KeyPairResourcePolicy` type shows it.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(name = "KeyPairResourcePolicy", rename_fields = "snake_case")]
pub struct KeyPairResourcePolicy {
    pub name: Option<String>,
    pub created_at: Option<DateTime<FixedOffset>>,
    /// `LIMITED` or `UNLIMITED`.
    pub default_for_unspecified: Option<String>,
    pub total_resource_slots: Option<JsonString>,
    pub max_session_lifetime: Option<i32>,
    pub max_concurrent_sessions: Option<i32>,
    pub max_containers_per_session: Option<i32>,
    pub idle_timeout: Option<BigInt>,
    pub allowed_vfolder_hosts: Option<JsonString>,
    /// Always null: moved to the user and project policies.
    #[graphql(deprecation = "Deprecated since 23.09.4.")]
    pub max_vfolder_count: Option<i32>,
    /// Always null.
    #[graphql(deprecation = "Deprecated since 23.09.4.")]
    pub max_vfolder_size: Option<BigInt>,
    /// Always null: moved to the user and project policies.
    #[graphql(deprecation = "Deprecated since 23.09.6.")]
    pub max_quota_scope_size: Option<BigInt>,
    /// Added in 23.03.3.
    pub max_concurrent_sftp_sessions: Option<i32>,
    /// Added in 24.03.4.
    pub max_pending_session_count: Option<i32>,
    /// Added in 24.03.4.
    pub max_pending_session_resource_slots: Option<JsonString>,
}

impl KeyPairResourcePolicy {
    fn from_row(row: keypair_resource_policies::Model) -> KeyPairResourcePolicy {
        KeyPairResourcePolicy {
            name: Some(row.name),
            created_at: row.created_at,
            default_for_unspecified: Some(
                default_for_unspecified_name(row.default_for_unspecified).to_owned(),
            ),
            total_resource_slots: Some(JsonString(row.total_resource_slots.to_json())),
            max_session_lifetime: Some(row.max_session_lifetime),
            max_concurrent_sessions: Some(row.max_concurrent_sessions),
            max_containers_per_session: Some(row.max_containers_per_session),
            idle_timeout: Some(BigInt(row.idle_timeout)),
            allowed_vfolder_hosts: Some(JsonString(
                serde_json::to_value(&row.allowed_vfolder_hosts).unwrap_or_default(),
            )),
            max_vfolder_count: None,
            max_vfolder_size: None,
            max_quota_scope_size: None,
            max_concurrent_sftp_sessions: Some(row.max_concurrent_sftp_sessions),
            max_pending_session_count: row.max_pending_session_count,
            max_pending_session_resource_slots: row
                .max_pending_session_resource_slots
                .map(|slots| JsonString(slots.to_json())),
        }
    }
}

/// A user resource policy as the reference's `UserResourcePolicy` type shows it.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(complex, rename_fields = "snake_case")]
pub struct UserResourcePolicy {
    /// `UserResourcePolicy:<name>`.
    pub id: async_graphql::ID,
    pub name: String,
    #[graphql(skip)]
    pub stored_created_at: Option<DateTime<FixedOffset>>,
    /// Added in 24.03.1 and 23.09.6. Limitation of the number of user vfolders.
    pub max_vfolder_count: Option<i32>,
    /// Added in 24.03.1 and 23.09.2. Limitation of the quota size of user vfolders.
    pub max_quota_scope_size: Option<BigInt>,
    /// Always null: replaced by `max_quota_scope_size`.
    #[graphql(deprecation = "Deprecated since 23.09.2.")]
    pub max_vfolder_size: Option<BigInt>,
    /// Added in 24.03.1 and 23.09.10. Maximum available number of sessions per single model
    /// service which the user is in charge of.
    pub max_session_count_per_model_session: Option<i32>,
    /// Added in 24.03.0. Maximum available number of customized images one can publish to.
    pub max_customized_image_count: Option<i32>,
}

#[ComplexObject(rename_fields = "snake_case")]
impl UserResourcePolicy {
    async fn created_at(&self) -> async_graphql::Result<DateTime<FixedOffset>> {
        required_created_at(self.stored_created_at)
    }
}

impl UserResourcePolicy {
    fn from_row(row: user_resource_policies::Model) -> UserResourcePolicy {
        UserResourcePolicy {
            id: format!("UserResourcePolicy:{}", row.name).into(),
            name: row.name,
            stored_created_at: row.created_at,
            max_vfolder_count: Some(row.max_vfolder_count),
            max_quota_scope_size: Some(BigInt(row.max_quota_scope_size)),
            max_vfolder_size: None,
            max_session_count_per_model_session: Some(row.max_session_count_per_model_session),
            max_customized_image_count: Some(row.max_customized_image_count),
        }
    }
}

/// A project resource policy as the reference's `ProjectResourcePolicy` type shows it.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(complex, rename_fields = "snake_case")]
pub struct ProjectResourcePolicy {
    /// `ProjectResourcePolicy:<name>`.
    pub id: async_graphql::ID,
    pub name: String,
    #[graphql(skip)]
    pub stored_created_at: Option<DateTime<FixedOffset>>,
    /// Added in 24.03.1 and 23.09.6. Limitation of the number of project vfolders.
    pub max_vfolder_count: Option<i32>,
    /// Added in 24.03.1 and 23.09.2. Limitation of the quota size of project vfolders.
    pub max_quota_scope_size: Option<BigInt>,
    /// The same as `max_quota_scope_size`, as in the reference.
    #[graphql(deprecation = "Deprecated since 23.09.2.")]
    pub max_vfolder_size: Option<BigInt>,
}

#[ComplexObject(rename_fields = "snake_case")]
impl ProjectResourcePolicy {
    async fn created_at(&self) -> async_graphql::Result<DateTime<FixedOffset>> {
        required_created_at(self.stored_created_at)
    }
}

impl ProjectResourcePolicy {
    fn from_row(row: project_resource_policies::Model) -> ProjectResourcePolicy {
        ProjectResourcePolicy {
            id: format!("ProjectResourcePolicy:{}", row.name).into(),
            name: row.name,
            stored_created_at: row.created_at,
            max_vfolder_count: Some(row.max_vfolder_count),
            max_quota_scope_size: Some(BigInt(row.max_quota_scope_size)),
            max_vfolder_size: Some(BigInt(row.max_quota_scope_size)),
        }
    }
}

/// `created_at` is non-null in the schema but nullable in the table (its default fills it).
fn required_created_at(
    created_at: Option<DateTime<FixedOffset>>,
) -> async_graphql::Result<DateTime<FixedOffset>> {
    created_at.ok_or_else(|| async_graphql::Error::new("the policy has no created_at"))
}

fn default_for_unspecified_name(value: DefaultForUnspecified) -> &'static str {
    match value {
        DefaultForUnspecified::Limited => "LIMITED",
        DefaultForUnspecified::Unlimited => "UNLIMITED",
    }
}

fn read_error(context: &str) -> impl FnOnce(DbError) -> async_graphql::Error + '_ {
    move |source| internal(context, &source)
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ResourcePolicyQuery {
    /// The keypair resource policy `name`, or the caller's keypair's when absent.
    async fn keypair_resource_policy(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
    ) -> async_graphql::Result<Option<KeyPairResourcePolicy>> {
        let context = gql(ctx);
        let name = name.unwrap_or_else(|| context.caller.keypair.resource_policy.clone());
        let row = resource_policies::keypair_policy(context.api.db(), &name)
            .await
            .map_err(read_error("reading a keypair resource policy"))?;
        Ok(row.map(KeyPairResourcePolicy::from_row))
    }

    /// Every keypair resource policy (superadmins and domain admins), or those of the caller's
    /// keypairs (users).
    async fn keypair_resource_policies(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<KeyPairResourcePolicy>> {
        let context = gql(ctx);
        let db = context.api.db();
        let rows = match context.caller.role() {
            UserRole::Superadmin | UserRole::Admin => resource_policies::keypair_policies(db).await,
            UserRole::User => {
                resource_policies::keypair_policies_of_user(db, context.caller.user.uuid).await
            }
            UserRole::Monitor => return Err(unknown_role()),
        }
        .map_err(read_error("listing keypair resource policies"))?;
        Ok(rows
            .into_iter()
            .map(KeyPairResourcePolicy::from_row)
            .collect())
    }

    /// The user resource policy `name`, or the caller's when absent.
    async fn user_resource_policy(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
    ) -> async_graphql::Result<Option<UserResourcePolicy>> {
        let context = gql(ctx);
        let db = context.api.db();
        let row = match name {
            Some(name) => resource_policies::user_policy(db, &name).await,
            None => resource_policies::user_policy_of_user(db, context.caller.user.uuid).await,
        }
        .map_err(read_error("reading a user resource policy"))?;
        Ok(row.map(UserResourcePolicy::from_row))
    }

    /// Every user resource policy (superadmins and domain admins), or the caller's own (users).
    async fn user_resource_policies(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<UserResourcePolicy>> {
        let context = gql(ctx);
        let db = context.api.db();
        let rows = match context.caller.role() {
            UserRole::Superadmin | UserRole::Admin => resource_policies::user_policies(db).await,
            UserRole::User => resource_policies::user_policy_of_user(db, context.caller.user.uuid)
                .await
                .map(|own| own.into_iter().collect()),
            UserRole::Monitor => return Err(unknown_role()),
        }
        .map_err(read_error("listing user resource policies"))?;
        Ok(rows.into_iter().map(UserResourcePolicy::from_row).collect())
    }

    /// The project resource policy `name`.
    async fn project_resource_policy(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Option<ProjectResourcePolicy>> {
        let row = resource_policies::project_policy(gql(ctx).api.db(), &name)
            .await
            .map_err(read_error("reading a project resource policy"))?;
        Ok(row.map(ProjectResourcePolicy::from_row))
    }

    /// Every project resource policy (superadmins and domain admins only).
    async fn project_resource_policies(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<ProjectResourcePolicy>> {
        let context = gql(ctx);
        if !matches!(
            context.caller.role(),
            UserRole::Superadmin | UserRole::Admin
        ) {
            return Err(unknown_role());
        }
        let rows = resource_policies::project_policies(context.api.db())
            .await
            .map_err(read_error("listing project resource policies"))?;
        Ok(rows
            .into_iter()
            .map(ProjectResourcePolicy::from_row)
            .collect())
    }
}

/// `CreateKeyPairResourcePolicyInput`, with the reference's defaults.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct CreateKeyPairResourcePolicyInput {
    /// `LIMITED` or `UNLIMITED`.
    pub default_for_unspecified: String,
    #[graphql(default_with = "Some(JsonString(serde_json::json!({})))")]
    pub total_resource_slots: Option<JsonString>,
    #[graphql(default_with = "Some(0)")]
    pub max_session_lifetime: Option<i32>,
    pub max_concurrent_sessions: i32,
    /// Without it, `max_concurrent_sessions`, as the reference stores (which ignores a given one).
    pub max_concurrent_sftp_sessions: Option<i32>,
    pub max_containers_per_session: i32,
    pub idle_timeout: BigInt,
    pub allowed_vfolder_hosts: Option<JsonString>,
    /// Ignored.
    #[graphql(deprecation = "Deprecated since 23.09.4.")]
    pub max_vfolder_count: Option<i32>,
    /// Ignored.
    #[graphql(deprecation = "Deprecated since 23.09.4.")]
    pub max_vfolder_size: Option<BigInt>,
    /// Ignored.
    #[graphql(deprecation = "Deprecated since 23.09.6.")]
    pub max_quota_scope_size: Option<BigInt>,
    /// Added in 24.03.4.
    pub max_pending_session_count: Option<i32>,
    /// Added in 24.03.4.
    pub max_pending_session_resource_slots: Option<JsonString>,
}

/// `ModifyKeyPairResourcePolicyInput`: only the fields given change; the pending-session limits
/// may be set to null (no limit).
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyKeyPairResourcePolicyInput {
    pub default_for_unspecified: Option<String>,
    pub total_resource_slots: Option<JsonString>,
    pub max_session_lifetime: Option<i32>,
    pub max_concurrent_sessions: Option<i32>,
    pub max_concurrent_sftp_sessions: Option<i32>,
    pub max_containers_per_session: Option<i32>,
    pub idle_timeout: Option<BigInt>,
    pub allowed_vfolder_hosts: Option<JsonString>,
    /// Ignored.
    #[graphql(deprecation = "Deprecated since 23.09.4.")]
    pub max_vfolder_count: Option<i32>,
    /// Ignored.
    #[graphql(deprecation = "Deprecated since 23.09.4.")]
    pub max_vfolder_size: Option<BigInt>,
    /// Ignored.
    #[graphql(deprecation = "Deprecated since 23.09.6.")]
    pub max_quota_scope_size: Option<BigInt>,
    /// Added in 24.03.4.
    pub max_pending_session_count: MaybeUndefined<i32>,
    /// Added in 24.03.4.
    pub max_pending_session_resource_slots: MaybeUndefined<JsonString>,
}

/// `CreateUserResourcePolicyInput`: every limit but `max_customized_image_count` (3 when absent)
/// must be given.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct CreateUserResourcePolicyInput {
    /// Added in 24.03.1 and 23.09.6. Limitation of the number of user vfolders.
    pub max_vfolder_count: Option<i32>,
    /// Added in 24.03.1 and 23.09.2. Limitation of the quota size of user vfolders.
    pub max_quota_scope_size: Option<BigInt>,
    /// Added in 24.03.1 and 23.09.10. Maximum available number of sessions per single model
    /// service which the user is in charge of.
    pub max_session_count_per_model_session: Option<i32>,
    /// Ignored.
    #[graphql(deprecation = "Deprecated since 23.09.2.")]
    pub max_vfolder_size: Option<BigInt>,
    /// Added in 24.03.0. Maximum available number of customized images one can publish to.
    pub max_customized_image_count: Option<i32>,
}

/// `ModifyUserResourcePolicyInput`: only the fields given change.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyUserResourcePolicyInput {
    /// Added in 24.03.1 and 23.09.6. Limitation of the number of user vfolders.
    pub max_vfolder_count: Option<i32>,
    /// Added in 24.03.1 and 23.09.2. Limitation of the quota size of user vfolders.
    pub max_quota_scope_size: Option<BigInt>,
    /// Added in 24.03.1 and 23.09.10. Maximum available number of sessions per single model
    /// service which the user is in charge of.
    pub max_session_count_per_model_session: Option<i32>,
    /// Added in 24.03.0. Maximum available number of customized images one can publish to.
    pub max_customized_image_count: Option<i32>,
}

/// `CreateProjectResourcePolicyInput`: both limits must be given.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct CreateProjectResourcePolicyInput {
    /// Added in 24.03.1 and 23.09.6. Limitation of the number of project vfolders.
    pub max_vfolder_count: Option<i32>,
    /// Added in 24.03.1 and 23.09.2. Limitation of the quota size of project vfolders.
    pub max_quota_scope_size: Option<BigInt>,
    /// Ignored.
    #[graphql(deprecation = "Deprecated since 23.09.2.")]
    pub max_vfolder_size: Option<BigInt>,
}

/// `ModifyProjectResourcePolicyInput`: only the fields given change.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyProjectResourcePolicyInput {
    /// Added in 24.03.1 and 23.09.6. Limitation of the number of project vfolders.
    pub max_vfolder_count: Option<i32>,
    /// Added in 24.03.1 and 23.09.2. Limitation of the quota size of project vfolders.
    pub max_quota_scope_size: Option<BigInt>,
    /// Ignored.
    #[graphql(deprecation = "Deprecated since 23.09.2.")]
    pub max_vfolder_size: Option<BigInt>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct CreateKeyPairResourcePolicy {
    pub ok: Option<bool>,
    pub msg: Option<String>,
    pub resource_policy: Option<KeyPairResourcePolicy>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyKeyPairResourcePolicy {
    pub ok: Option<bool>,
    pub msg: Option<String>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct DeleteKeyPairResourcePolicy {
    pub ok: Option<bool>,
    pub msg: Option<String>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct CreateUserResourcePolicy {
    pub ok: Option<bool>,
    pub msg: Option<String>,
    pub resource_policy: Option<UserResourcePolicy>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyUserResourcePolicy {
    pub ok: Option<bool>,
    pub msg: Option<String>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct DeleteUserResourcePolicy {
    pub ok: Option<bool>,
    pub msg: Option<String>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct CreateProjectResourcePolicy {
    pub ok: Option<bool>,
    pub msg: Option<String>,
    pub resource_policy: Option<ProjectResourcePolicy>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyProjectResourcePolicy {
    pub ok: Option<bool>,
    pub msg: Option<String>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct DeleteProjectResourcePolicy {
    pub ok: Option<bool>,
    pub msg: Option<String>,
}

/// The reference reads the name as a `DefaultForUnspecified` member name.
fn parse_default_for_unspecified(value: &str) -> Result<DefaultForUnspecified, String> {
    match value {
        "LIMITED" => Ok(DefaultForUnspecified::Limited),
        "UNLIMITED" => Ok(DefaultForUnspecified::Unlimited),
        other => Err(format!(
            "default_for_unspecified: {other:?} is neither LIMITED nor UNLIMITED"
        )),
    }
}

fn required<T>(field: &str, value: Option<T>) -> Result<T, String> {
    value.ok_or_else(|| format!("{field}: required"))
}

impl CreateKeyPairResourcePolicyInput {
    fn into_new_policy(self) -> Result<NewKeypairPolicy, String> {
        Ok(NewKeypairPolicy {
            default_for_unspecified: parse_default_for_unspecified(&self.default_for_unspecified)?,
            total_resource_slots: self
                .total_resource_slots
                .map(|slots| resource_slots("total_resource_slots", &slots))
                .transpose()?
                .unwrap_or_default(),
            max_session_lifetime: self.max_session_lifetime.unwrap_or(0),
            max_concurrent_sessions: self.max_concurrent_sessions,
            max_concurrent_sftp_sessions: self
                .max_concurrent_sftp_sessions
                .unwrap_or(self.max_concurrent_sessions),
            max_containers_per_session: self.max_containers_per_session,
            idle_timeout: self.idle_timeout.0,
            allowed_vfolder_hosts: self
                .allowed_vfolder_hosts
                .map(|hosts| vfolder_host_permissions("allowed_vfolder_hosts", &hosts))
                .transpose()?
                .unwrap_or_default(),
            max_pending_session_count: self.max_pending_session_count,
            max_pending_session_resource_slots: self
                .max_pending_session_resource_slots
                .map(|slots| resource_slots("max_pending_session_resource_slots", &slots))
                .transpose()?,
        })
    }
}

impl ModifyKeyPairResourcePolicyInput {
    fn into_changes(self) -> Result<KeypairPolicyChanges, String> {
        Ok(KeypairPolicyChanges {
            default_for_unspecified: self
                .default_for_unspecified
                .as_deref()
                .map(parse_default_for_unspecified)
                .transpose()?,
            total_resource_slots: self
                .total_resource_slots
                .map(|slots| resource_slots("total_resource_slots", &slots))
                .transpose()?,
            max_session_lifetime: self.max_session_lifetime,
            max_concurrent_sessions: self.max_concurrent_sessions,
            max_concurrent_sftp_sessions: self.max_concurrent_sftp_sessions,
            max_containers_per_session: self.max_containers_per_session,
            idle_timeout: self.idle_timeout.map(|timeout| timeout.0),
            allowed_vfolder_hosts: self
                .allowed_vfolder_hosts
                .map(|hosts| vfolder_host_permissions("allowed_vfolder_hosts", &hosts))
                .transpose()?,
            max_pending_session_count: change(self.max_pending_session_count),
            max_pending_session_resource_slots: change(self.max_pending_session_resource_slots)
                .map(|slots| {
                    slots
                        .map(|slots| resource_slots("max_pending_session_resource_slots", &slots))
                        .transpose()
                })
                .transpose()?,
        })
    }
}

impl CreateUserResourcePolicyInput {
    fn into_new_policy(self) -> Result<NewUserPolicy, String> {
        Ok(NewUserPolicy {
            max_vfolder_count: required("max_vfolder_count", self.max_vfolder_count)?,
            max_quota_scope_size: required("max_quota_scope_size", self.max_quota_scope_size)?.0,
            max_session_count_per_model_session: required(
                "max_session_count_per_model_session",
                self.max_session_count_per_model_session,
            )?,
            max_customized_image_count: self.max_customized_image_count.unwrap_or(3),
        })
    }
}

impl ModifyUserResourcePolicyInput {
    fn into_changes(self) -> UserPolicyChanges {
        UserPolicyChanges {
            max_vfolder_count: self.max_vfolder_count,
            max_quota_scope_size: self.max_quota_scope_size.map(|size| size.0),
            max_session_count_per_model_session: self.max_session_count_per_model_session,
            max_customized_image_count: self.max_customized_image_count,
        }
    }
}

impl CreateProjectResourcePolicyInput {
    fn into_new_policy(self) -> Result<NewProjectPolicy, String> {
        Ok(NewProjectPolicy {
            max_vfolder_count: required("max_vfolder_count", self.max_vfolder_count)?,
            max_quota_scope_size: required("max_quota_scope_size", self.max_quota_scope_size)?.0,
        })
    }
}

impl ModifyProjectResourcePolicyInput {
    fn into_changes(self) -> ProjectPolicyChanges {
        ProjectPolicyChanges {
            max_vfolder_count: self.max_vfolder_count,
            max_quota_scope_size: self.max_quota_scope_size.map(|size| size.0),
        }
    }
}

/// A modify's or delete's result: done when the `kind` policy `name` was there, refused naming
/// it otherwise.
fn found_or_refused(
    result: Result<bool, WriteError>,
    kind: &str,
    name: &str,
    context: &str,
) -> async_graphql::Result<Outcome<()>> {
    Ok(match Outcome::of(result, context)? {
        Outcome::Done(true) => Outcome::Done(()),
        Outcome::Done(false) => {
            Outcome::Refused(format!("no such {kind} resource policy {name:?}"))
        }
        Outcome::Refused(reason) => Outcome::Refused(reason),
    })
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ResourcePolicyMutation {
    async fn create_keypair_resource_policy(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: CreateKeyPairResourcePolicyInput,
    ) -> async_graphql::Result<CreateKeyPairResourcePolicy> {
        let field = "create_keypair_resource_policy";
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, field).await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => match props.into_new_policy() {
                Err(reason) => Outcome::Refused(reason),
                Ok(policy) => Outcome::of(
                    resource_policies::create_keypair_policy(gql(ctx).api.db(), &name, policy)
                        .await,
                    "creating a keypair resource policy",
                )?,
            },
        };
        Ok(CreateKeyPairResourcePolicy {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
            resource_policy: outcome.into_item().map(KeyPairResourcePolicy::from_row),
        })
    }

    async fn modify_keypair_resource_policy(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: ModifyKeyPairResourcePolicyInput,
    ) -> async_graphql::Result<ModifyKeyPairResourcePolicy> {
        let field = "modify_keypair_resource_policy";
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, field).await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => match props.into_changes() {
                Err(reason) => Outcome::Refused(reason),
                Ok(changes) => {
                    let modified =
                        resource_policies::modify_keypair_policy(gql(ctx).api.db(), &name, changes)
                            .await;
                    found_or_refused(
                        modified,
                        "keypair",
                        &name,
                        "modifying a keypair resource policy",
                    )?
                }
            },
        };
        Ok(ModifyKeyPairResourcePolicy {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
        })
    }

    async fn delete_keypair_resource_policy(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<DeleteKeyPairResourcePolicy> {
        let field = "delete_keypair_resource_policy";
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, field).await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => {
                let deleted =
                    resource_policies::delete_keypair_policy(gql(ctx).api.db(), &name).await;
                found_or_refused(
                    deleted,
                    "keypair",
                    &name,
                    "deleting a keypair resource policy",
                )?
            }
        };
        Ok(DeleteKeyPairResourcePolicy {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
        })
    }

    async fn create_user_resource_policy(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: CreateUserResourcePolicyInput,
    ) -> async_graphql::Result<CreateUserResourcePolicy> {
        let field = "create_user_resource_policy";
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, field).await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => match props.into_new_policy() {
                Err(reason) => Outcome::Refused(reason),
                Ok(policy) => Outcome::of(
                    resource_policies::create_user_policy(gql(ctx).api.db(), &name, policy).await,
                    "creating a user resource policy",
                )?,
            },
        };
        Ok(CreateUserResourcePolicy {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
            resource_policy: outcome.into_item().map(UserResourcePolicy::from_row),
        })
    }

    async fn modify_user_resource_policy(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: ModifyUserResourcePolicyInput,
    ) -> async_graphql::Result<ModifyUserResourcePolicy> {
        let field = "modify_user_resource_policy";
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, field).await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => {
                let modified = resource_policies::modify_user_policy(
                    gql(ctx).api.db(),
                    &name,
                    props.into_changes(),
                )
                .await;
                found_or_refused(modified, "user", &name, "modifying a user resource policy")?
            }
        };
        Ok(ModifyUserResourcePolicy {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
        })
    }

    async fn delete_user_resource_policy(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<DeleteUserResourcePolicy> {
        let field = "delete_user_resource_policy";
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, field).await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => {
                let deleted = resource_policies::delete_user_policy(gql(ctx).api.db(), &name).await;
                found_or_refused(deleted, "user", &name, "deleting a user resource policy")?
            }
        };
        Ok(DeleteUserResourcePolicy {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
        })
    }

    async fn create_project_resource_policy(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: CreateProjectResourcePolicyInput,
    ) -> async_graphql::Result<CreateProjectResourcePolicy> {
        let field = "create_project_resource_policy";
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, field).await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => match props.into_new_policy() {
                Err(reason) => Outcome::Refused(reason),
                Ok(policy) => Outcome::of(
                    resource_policies::create_project_policy(gql(ctx).api.db(), &name, policy)
                        .await,
                    "creating a project resource policy",
                )?,
            },
        };
        Ok(CreateProjectResourcePolicy {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
            resource_policy: outcome.into_item().map(ProjectResourcePolicy::from_row),
        })
    }

    async fn modify_project_resource_policy(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: ModifyProjectResourcePolicyInput,
    ) -> async_graphql::Result<ModifyProjectResourcePolicy> {
        let field = "modify_project_resource_policy";
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, field).await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => {
                let modified = resource_policies::modify_project_policy(
                    gql(ctx).api.db(),
                    &name,
                    props.into_changes(),
                )
                .await;
                found_or_refused(
                    modified,
                    "project",
                    &name,
                    "modifying a project resource policy",
                )?
            }
        };
        Ok(ModifyProjectResourcePolicy {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
        })
    }

    async fn delete_project_resource_policy(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<DeleteProjectResourcePolicy> {
        let field = "delete_project_resource_policy";
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, field).await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => {
                let deleted =
                    resource_policies::delete_project_policy(gql(ctx).api.db(), &name).await;
                found_or_refused(
                    deleted,
                    "project",
                    &name,
                    "deleting a project resource policy",
                )?
            }
        };
        Ok(DeleteProjectResourcePolicy {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
        })
    }
}
