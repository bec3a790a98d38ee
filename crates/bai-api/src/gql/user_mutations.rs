//! User mutations (superadmins): `create_user` (with its main keypair and projects),
//! `modify_user`, `delete_user` (marks the user deleted and its keypairs inactive) and
//! `purge_user` (deletes the user and what refers to it).
//!
//! Payloads are nullable (`CreateUser`, not `CreateUser!`), as in the reference's schema.

use std::str::FromStr;

use async_graphql::{Context, InputObject, MaybeUndefined, Object, SimpleObject};
use bai_db_models::entities::enums::{UserRole, UserStatus};
use bai_db_models::entities::users;
use bai_db_models::password;
use bai_db_models::queries::keypair_admin::KeypairSecrets;
use bai_db_models::queries::user_admin::{self, NewUser, UserChanges};
use bai_db_models::queries::user_listing::{self, status_from_value};
use sea_orm::prelude::IpNetwork;
use uuid::Uuid;

use super::common::{Allowed, Outcome, gql, internal, mutation_guard};
use super::users::User;

#[derive(Debug, Default)]
pub struct UserMutation;

/// `UserInput`: a new user's properties, with the reference's defaults.
#[derive(InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct UserInput {
    /// Empty: the email.
    pub username: String,
    pub password: String,
    pub need_password_change: bool,
    #[graphql(default_with = "Some(String::new())")]
    pub full_name: Option<String>,
    #[graphql(default_with = "Some(String::new())")]
    pub description: Option<String>,
    /// Used only when `status` is null.
    #[graphql(default_with = "Some(true)")]
    pub is_active: Option<bool>,
    #[graphql(default_with = "Some(\"active\".to_owned())")]
    pub status: Option<String>,
    #[graphql(default_with = "\"default\".to_owned()")]
    pub domain_name: String,
    #[graphql(default_with = "Some(\"user\".to_owned())")]
    pub role: Option<String>,
    pub group_ids: Option<Vec<Option<String>>>,
    #[graphql(default_with = "None")]
    pub allowed_client_ip: Option<Vec<Option<String>>>,
    #[graphql(default_with = "Some(false)")]
    pub totp_activated: Option<bool>,
    #[graphql(default_with = "Some(\"default\".to_owned())")]
    pub resource_policy: Option<String>,
    #[graphql(default_with = "Some(false)")]
    pub sudo_session_enabled: Option<bool>,
}

/// `ModifyUserInput`: only the fields given change. `username`, `full_name`, `description` and
/// `allowed_client_ip` may be set to null; a null elsewhere leaves the field as it is.
#[derive(InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyUserInput {
    pub username: MaybeUndefined<String>,
    pub password: Option<String>,
    pub need_password_change: Option<bool>,
    pub full_name: MaybeUndefined<String>,
    pub description: MaybeUndefined<String>,
    /// Legacy: `status` active or inactive, when `status` is not given.
    pub is_active: Option<bool>,
    pub status: Option<String>,
    pub domain_name: Option<String>,
    pub role: Option<String>,
    /// Replaces every project membership; an empty list changes nothing.
    pub group_ids: Option<Vec<Option<String>>>,
    pub allowed_client_ip: MaybeUndefined<Vec<Option<String>>>,
    pub totp_activated: Option<bool>,
    pub resource_policy: Option<String>,
    pub sudo_session_enabled: Option<bool>,
    pub main_access_key: Option<String>,
}

/// `PurgeUserInput`.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct PurgeUserInput {
    /// Whether vfolders shared with others go too (rather than to the purging admin).
    pub purge_shared_vfolders: Option<bool>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct CreateUser {
    pub ok: Option<bool>,
    pub msg: Option<String>,
    pub user: Option<User>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyUser {
    pub ok: Option<bool>,
    pub msg: Option<String>,
    pub user: Option<User>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct DeleteUser {
    pub ok: Option<bool>,
    pub msg: Option<String>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct PurgeUser {
    pub ok: Option<bool>,
    pub msg: Option<String>,
}

const STATUSES: &str = "active, inactive, deleted, before-verification";
const ROLES: &str = "superadmin, admin, user, monitor";

fn status(value: &str) -> Result<UserStatus, String> {
    status_from_value(value).ok_or_else(|| format!("status: {value:?} is not one of {STATUSES}"))
}

fn role(value: &str) -> Result<UserRole, String> {
    Ok(match value {
        "superadmin" => UserRole::Superadmin,
        "admin" => UserRole::Admin,
        "user" => UserRole::User,
        "monitor" => UserRole::Monitor,
        _ => return Err(format!("role: {value:?} is not one of {ROLES}")),
    })
}

fn group_ids(values: Vec<Option<String>>) -> Result<Vec<Uuid>, String> {
    values
        .into_iter()
        .flatten()
        .map(|value| {
            Uuid::parse_str(&value).map_err(|_| format!("group_ids: {value:?} is not a UUID"))
        })
        .collect()
}

/// Addresses and networks as the reference's `ReadableCIDR` reads them: `10.0.0.1` (one
/// address), `10.0.0.0/8` (no host bits set), `192.168.*.*` (the leading octets).
fn networks(values: Vec<Option<String>>) -> Result<Vec<IpNetwork>, String> {
    values
        .into_iter()
        .flatten()
        .map(|value| network(&value))
        .collect()
}

fn network(value: &str) -> Result<IpNetwork, String> {
    let invalid = || format!("allowed_client_ip: {value:?} is not an IP address or network");
    let (address, prefix) = match value.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (value, None),
    };
    let spelled = if address.contains('*') {
        let zeroed = address.replace('*', "0");
        match prefix {
            Some(prefix) => format!("{zeroed}/{prefix}"),
            None => {
                let leading = address
                    .split('.')
                    .position(|octet| octet == "*")
                    .ok_or_else(invalid)?;
                format!("{zeroed}/{}", leading * 8)
            }
        }
    } else {
        value.to_owned()
    };
    let parsed = IpNetwork::from_str(&spelled).map_err(|_| invalid())?;
    if parsed.network() != parsed.ip() {
        return Err(invalid());
    }
    Ok(parsed)
}

/// The bcrypt hash of `plaintext`, made on a blocking thread.
async fn hash_password(plaintext: String) -> async_graphql::Result<String> {
    tokio::task::spawn_blocking(move || password::hash(&plaintext))
        .await
        .map_err(|error| internal("hashing a password", &error))?
        .map_err(|error| internal("hashing a password", &error))
}

/// A new keypair's credentials, made on a blocking thread (the RSA key takes a while).
pub(super) async fn new_secrets() -> async_graphql::Result<KeypairSecrets> {
    tokio::task::spawn_blocking(KeypairSecrets::generate)
        .await
        .map_err(|error| internal("generating a keypair", &error))?
        .map_err(|error| internal("generating a keypair", &error))
}

/// `row` with its projects, as the payloads show it.
async fn with_groups(ctx: &Context<'_>, row: users::Model) -> async_graphql::Result<User> {
    let mut groups = user_listing::groups_of(gql(ctx).api.db(), &[row.uuid])
        .await
        .map_err(|source| internal("reading the projects of a user", &source))?;
    let own = groups.remove(&row.uuid).unwrap_or_default();
    Ok(User::from_row(row, own))
}

/// Forgets what Redis counts for `access_keys` (running sessions, SFTP sessions). The keypairs
/// are already gone; a failure here only leaves stale counters, so it is logged, not answered.
pub(super) async fn forget_counters(ctx: &Context<'_>, access_keys: &[String]) {
    let forgotten = gql(ctx)
        .api
        .redis()
        .stat
        .forget_keypair_counters(access_keys)
        .await;
    if let Err(error) = forgotten {
        tracing::warn!(%error, "could not delete the Redis counters of deleted keypairs");
    }
}

impl UserInput {
    fn into_new_user(self, email: &str, password_hash: String) -> Result<NewUser, String> {
        let status = match (self.status, self.is_active) {
            (Some(value), _) => status(&value)?,
            (None, Some(false)) => UserStatus::Inactive,
            (None, _) => UserStatus::Active,
        };
        Ok(NewUser {
            email: email.to_owned(),
            username: if self.username.is_empty() {
                email.to_owned()
            } else {
                self.username
            },
            password_hash,
            need_password_change: self.need_password_change,
            full_name: self.full_name,
            description: self.description,
            status,
            domain_name: self.domain_name,
            role: self
                .role
                .as_deref()
                .map(role)
                .transpose()?
                .unwrap_or(UserRole::User),
            group_ids: group_ids(self.group_ids.unwrap_or_default())?,
            allowed_client_ip: self.allowed_client_ip.map(networks).transpose()?,
            totp_activated: self.totp_activated.unwrap_or(false),
            resource_policy: self.resource_policy.unwrap_or_else(|| "default".to_owned()),
            sudo_session_enabled: self.sudo_session_enabled.unwrap_or(false),
        })
    }
}

impl ModifyUserInput {
    fn nothing_given(&self) -> bool {
        self.username.is_undefined()
            && self.password.is_none()
            && self.need_password_change.is_none()
            && self.full_name.is_undefined()
            && self.description.is_undefined()
            && self.is_active.is_none()
            && self.status.is_none()
            && self.domain_name.is_none()
            && self.role.is_none()
            && self.group_ids.as_ref().is_none_or(|ids| ids.is_empty())
            && self.allowed_client_ip.is_undefined()
            && self.totp_activated.is_none()
            && self.resource_policy.is_none()
            && self.sudo_session_enabled.is_none()
            && self.main_access_key.is_none()
    }

    fn into_changes(self, password_hash: Option<String>) -> Result<UserChanges, String> {
        let status = match (self.status, self.is_active) {
            (Some(value), _) => Some(status(&value)?),
            (None, Some(active)) => Some(if active {
                UserStatus::Active
            } else {
                UserStatus::Inactive
            }),
            (None, None) => None,
        };
        Ok(UserChanges {
            username: self.username.into(),
            password_hash,
            need_password_change: self.need_password_change,
            full_name: self.full_name.into(),
            description: self.description.into(),
            status,
            domain_name: self.domain_name,
            role: self.role.as_deref().map(role).transpose()?,
            group_ids: self.group_ids.map(group_ids).transpose()?,
            allowed_client_ip: match self.allowed_client_ip {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(values) => Some(Some(networks(values)?)),
            },
            totp_activated: self.totp_activated,
            resource_policy: self.resource_policy,
            sudo_session_enabled: self.sudo_session_enabled,
            main_access_key: self.main_access_key,
        })
    }
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl UserMutation {
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        email: String,
        props: UserInput,
    ) -> async_graphql::Result<Option<CreateUser>> {
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, "create_user").await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => {
                let password_hash = hash_password(props.password.clone()).await?;
                match props.into_new_user(&email, password_hash) {
                    Err(reason) => Outcome::Refused(reason),
                    Ok(user) => {
                        let secrets = new_secrets().await?;
                        Outcome::of(
                            user_admin::create(gql(ctx).api.db(), user, secrets).await,
                            "creating a user",
                        )?
                    }
                }
            }
        };
        let ok = outcome.ok();
        let msg = outcome.msg();
        let user = match outcome.into_item() {
            Some(row) => Some(with_groups(ctx, row).await?),
            None => None,
        };
        Ok(Some(CreateUser {
            ok: Some(ok),
            msg: Some(msg),
            user,
        }))
    }

    async fn modify_user(
        &self,
        ctx: &Context<'_>,
        email: String,
        props: ModifyUserInput,
    ) -> async_graphql::Result<Option<ModifyUser>> {
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, "modify_user").await? {
            Some(refusal) => Outcome::Refused(refusal),
            None if props.nothing_given() => Outcome::Refused("nothing to update".to_owned()),
            None => {
                let password_hash = match props.password.clone() {
                    Some(plaintext) => Some(hash_password(plaintext).await?),
                    None => None,
                };
                match props.into_changes(password_hash) {
                    Err(reason) => Outcome::Refused(reason),
                    Ok(changes) => Outcome::of(
                        user_admin::modify(gql(ctx).api.db(), &email, changes).await,
                        "modifying a user",
                    )?,
                }
            }
        };
        let ok = outcome.ok();
        let msg = outcome.msg();
        let user = match outcome.into_item() {
            Some(row) => Some(with_groups(ctx, row).await?),
            None => None,
        };
        Ok(Some(ModifyUser {
            ok: Some(ok),
            msg: Some(msg),
            user,
        }))
    }

    /// Marks the user deleted and its keypairs inactive; the rows stay.
    async fn delete_user(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> async_graphql::Result<Option<DeleteUser>> {
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, "delete_user").await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => Outcome::of(
                user_admin::delete(gql(ctx).api.db(), &email).await,
                "deleting a user",
            )?,
        };
        Ok(Some(DeleteUser {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
        }))
    }

    /// Deletes the user with its keypairs, memberships, sessions and the like. `props` changes
    /// nothing yet: a user who owns vfolders is refused whatever it says.
    async fn purge_user(
        &self,
        ctx: &Context<'_>,
        email: String,
        #[graphql(name = "props")] _props: PurgeUserInput,
    ) -> async_graphql::Result<Option<PurgeUser>> {
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, "purge_user").await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => Outcome::of(
                user_admin::purge(gql(ctx).api.db(), &email).await,
                "purging a user",
            )?,
        };
        let ok = outcome.ok();
        let msg = outcome.msg();
        if let Some(access_keys) = outcome.into_item() {
            forget_counters(ctx, &access_keys).await;
        }
        Ok(Some(PurgeUser {
            ok: Some(ok),
            msg: Some(msg),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::network;

    #[test]
    fn networks_as_the_reference_reads_them() {
        for (given, stored) in [
            ("10.0.0.1", "10.0.0.1/32"),
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("192.168.*.*", "192.168.0.0/16"),
            ("10.*.*.*/8", "10.0.0.0/8"),
            ("::1", "::1/128"),
        ] {
            assert_eq!(network(given).expect(given).to_string(), stored);
        }
        for given in ["10.0.0.1/8", "nonsense", "300.0.0.1", "*"] {
            assert!(network(given).is_err(), "{given}");
        }
    }
}
