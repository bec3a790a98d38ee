//! The admin API's keypair writes: new credentials as the reference makes them (`generate_keypair`,
//! `generate_ssh_keypair`), and creating, modifying and deleting keypairs.
//!
//! A keypair's secret key and SSH private key are stored in plaintext (request signing and the
//! agents need them); [`KeypairSecrets`] never shows them in its `Debug` output.

use data_encoding::{BASE32, BASE64URL_NOPAD};
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use rsa::rand_core::{OsRng, RngCore};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    TransactionTrait,
};

use crate::entities::{EMPTY_DOTFILES, keypair_resource_policies, keypairs, users};
use crate::error::{ConstraintViolation, DbError, WriteError};
use crate::queries::require_named;

/// The keypair resource policy of a user's main keypair (`DEFAULT_KEYPAIR_RESOURCE_POLICY_NAME`).
pub const DEFAULT_KEYPAIR_RESOURCE_POLICY: &str = "default";
/// The API rate limit of a user's main keypair (`DEFAULT_KEYPAIR_RATE_LIMIT`).
pub const DEFAULT_KEYPAIR_RATE_LIMIT: i32 = 10_000;
/// The size of a new keypair's SSH RSA key, as the reference makes it.
const SSH_RSA_BITS: usize = 2048;

/// Why new credentials could not be made (the system's random source or the key encoders).
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("generating the SSH RSA key: {0}")]
    Rsa(#[from] rsa::Error),
    #[error("encoding the SSH private key as PEM: {0}")]
    Pem(#[from] rsa::pkcs1::Error),
    #[error("encoding the SSH public key for OpenSSH: {0}")]
    OpenSsh(#[from] ssh_key::Error),
}

/// The generated columns of a new keypair.
#[derive(Clone, PartialEq, Eq)]
pub struct KeypairSecrets {
    /// `AKIA` and 16 characters of base32 (upper-case letters and the digits 2 to 7).
    pub access_key: String,
    /// 40 characters of URL-safe base64.
    pub secret_key: String,
    /// `ssh-rsa AAAA...` and a newline.
    pub ssh_public_key: String,
    /// PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`) and a newline.
    pub ssh_private_key: String,
}

impl std::fmt::Debug for KeypairSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeypairSecrets")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

impl KeypairSecrets {
    /// Fresh credentials from the system's random source. The RSA key takes a noticeable time
    /// (tens of milliseconds to a second): async callers run this on a blocking thread.
    pub fn generate() -> Result<KeypairSecrets, KeygenError> {
        let mut access = [0u8; 10];
        OsRng.fill_bytes(&mut access);
        let mut secret = [0u8; 30];
        OsRng.fill_bytes(&mut secret);
        let (ssh_public_key, ssh_private_key) = generate_ssh_keypair()?;
        Ok(KeypairSecrets {
            access_key: format!("AKIA{}", BASE32.encode(&access)),
            secret_key: BASE64URL_NOPAD.encode(&secret),
            ssh_public_key,
            ssh_private_key,
        })
    }
}

/// A fresh RSA SSH keypair as the reference's `generate_ssh_keypair` makes it: `ssh-rsa AAAA...`
/// and PKCS#1 PEM, each with a newline. Takes tens of milliseconds to a second: async callers
/// run it on a blocking thread.
pub fn generate_ssh_keypair() -> Result<(String, String), KeygenError> {
    let private = RsaPrivateKey::new(&mut OsRng, SSH_RSA_BITS)?;
    let public = ssh_key::public::RsaPublicKey::try_from(RsaPublicKey::from(&private))?;
    let public = ssh_key::PublicKey::new(ssh_key::public::KeyData::Rsa(public), "");
    Ok((
        format!("{}\n", public.to_openssh()?.trim_end()),
        format!("{}\n", private.to_pkcs1_pem(LineEnding::LF)?.trim_end()),
    ))
}

/// The chosen settings of a new keypair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewKeypair {
    pub is_active: bool,
    pub is_admin: bool,
    pub resource_policy: String,
    pub rate_limit: i32,
}

/// The changes to a keypair; `None` leaves a column as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeypairChanges {
    pub is_active: Option<bool>,
    pub is_admin: Option<bool>,
    pub resource_policy: Option<String>,
    pub rate_limit: Option<i32>,
}

/// Creates a keypair for the user `email`, in one transaction.
pub async fn create(
    db: &impl TransactionTrait,
    email: &str,
    keypair: &NewKeypair,
    secrets: KeypairSecrets,
) -> Result<keypairs::Model, WriteError> {
    let context = format!("creating a keypair for user {email:?}");
    let txn = db.begin().await.map_err(DbError::query(context.clone()))?;
    let owner = users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(&txn)
        .await
        .map_err(DbError::query(format!("reading user {email:?}")))?
        .ok_or_else(|| WriteError::Rejected(no_such_user(email)))?;
    let created = insert(&txn, &owner, keypair, secrets).await?;
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(created)
}

/// Inserts a keypair of `owner` (the caller's transaction decides when it counts).
pub(crate) async fn insert(
    db: &impl ConnectionTrait,
    owner: &users::Model,
    keypair: &NewKeypair,
    secrets: KeypairSecrets,
) -> Result<keypairs::Model, WriteError> {
    require_named::<keypair_resource_policies::Entity>(
        db,
        &keypair.resource_policy,
        "keypair resource policy",
    )
    .await?;
    let access_key = secrets.access_key.clone();
    let row = keypairs::ActiveModel {
        user_id: ActiveValue::Set(Some(owner.email.clone())),
        access_key: ActiveValue::Set(secrets.access_key),
        secret_key: ActiveValue::Set(Some(secrets.secret_key)),
        is_active: ActiveValue::Set(Some(keypair.is_active)),
        is_admin: ActiveValue::Set(Some(keypair.is_admin)),
        created_at: ActiveValue::NotSet,
        modified_at: ActiveValue::NotSet,
        last_used: ActiveValue::Set(None),
        rate_limit: ActiveValue::Set(Some(keypair.rate_limit)),
        num_queries: ActiveValue::Set(Some(0)),
        ssh_public_key: ActiveValue::Set(Some(secrets.ssh_public_key)),
        ssh_private_key: ActiveValue::Set(Some(secrets.ssh_private_key)),
        user: ActiveValue::Set(owner.uuid),
        resource_policy: ActiveValue::Set(keypair.resource_policy.clone()),
        dotfiles: ActiveValue::Set(EMPTY_DOTFILES.to_vec()),
        bootstrap_script: ActiveValue::Set(String::new()),
    };
    keypairs::Entity::insert(row)
        .exec_with_returning(db)
        .await
        .map_err(WriteError::from_statement(
            format!("creating keypair {access_key:?}"),
            |violation| match violation {
                ConstraintViolation::Unique => format!("keypair {access_key:?} already exists"),
                ConstraintViolation::ForeignKey => format!(
                    "the owner or the resource policy of keypair {access_key:?} no longer exists"
                ),
            },
        ))
}

/// Applies `changes` to the keypair `access_key`.
pub async fn modify(
    db: &impl ConnectionTrait,
    access_key: &str,
    changes: KeypairChanges,
) -> Result<keypairs::Model, WriteError> {
    if let Some(policy) = &changes.resource_policy {
        require_named::<keypair_resource_policies::Entity>(db, policy, "keypair resource policy")
            .await?;
    }
    let mut update = keypairs::Entity::update_many()
        .filter(keypairs::Column::AccessKey.eq(access_key))
        .col_expr(
            keypairs::Column::ModifiedAt,
            Expr::current_timestamp().into(),
        );
    if let Some(is_active) = changes.is_active {
        update = update.col_expr(keypairs::Column::IsActive, Expr::value(is_active));
    }
    if let Some(is_admin) = changes.is_admin {
        update = update.col_expr(keypairs::Column::IsAdmin, Expr::value(is_admin));
    }
    if let Some(policy) = changes.resource_policy {
        update = update.col_expr(keypairs::Column::ResourcePolicy, Expr::value(policy));
    }
    if let Some(rate_limit) = changes.rate_limit {
        update = update.col_expr(keypairs::Column::RateLimit, Expr::value(rate_limit));
    }
    let rows = update
        .exec_with_returning(db)
        .await
        .map_err(WriteError::from_statement(
            format!("modifying keypair {access_key:?}"),
            |_| format!("the resource policy of keypair {access_key:?} no longer exists"),
        ))?;
    rows.into_iter()
        .next()
        .ok_or_else(|| WriteError::Rejected(no_such_keypair(access_key)))
}

/// Deletes the keypair `access_key`, in one transaction. Refused while it is a user's main access
/// key (with the reference's words) or while sessions or kernels refer to it.
pub async fn delete(db: &impl TransactionTrait, access_key: &str) -> Result<(), WriteError> {
    let context = format!("deleting keypair {access_key:?}");
    let txn = db.begin().await.map_err(DbError::query(context.clone()))?;
    let main_of = users::Entity::find()
        .filter(users::Column::MainAccessKey.eq(access_key))
        .count(&txn)
        .await
        .map_err(DbError::query(format!(
            "counting the users whose main access key is {access_key:?}"
        )))?;
    if main_of > 0 {
        return Err(WriteError::Rejected(
            "the keypair is used as main access key by any user".to_owned(),
        ));
    }
    let deleted = keypairs::Entity::delete_by_id(access_key)
        .exec(&txn)
        .await
        .map_err(WriteError::from_statement(context.clone(), |_| {
            format!("keypair {access_key:?} is still referred to by sessions or kernels")
        }))?;
    if deleted.rows_affected == 0 {
        return Err(WriteError::Rejected(no_such_keypair(access_key)));
    }
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(())
}

pub(crate) fn no_such_user(email: &str) -> String {
    format!("no such user {email:?}")
}

fn no_such_keypair(access_key: &str) -> String {
    format!("no such keypair {access_key:?}")
}

#[cfg(test)]
mod tests {
    use super::{KeypairChanges, KeypairSecrets, NewKeypair};
    use crate::WriteError;
    use crate::queries::test_rows::{self, Rows};

    #[test]
    fn secrets_have_the_reference_formats() {
        let secrets = KeypairSecrets::generate().expect("generate");
        let key = &secrets.access_key;
        assert_eq!(key.len(), 20, "{key}");
        assert!(key.starts_with("AKIA"), "{key}");
        assert!(
            key[4..]
                .bytes()
                .all(|byte| byte.is_ascii_uppercase() || (b'2'..=b'7').contains(&byte)),
            "{key}"
        );
        assert_eq!(secrets.secret_key.len(), 40);
        assert!(
            secrets
                .secret_key
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        );
        assert!(secrets.ssh_public_key.starts_with("ssh-rsa AAAA"));
        assert!(secrets.ssh_public_key.ends_with('\n'));
        assert_eq!(secrets.ssh_public_key.matches(' ').count(), 1, "no comment");
        assert!(
            secrets
                .ssh_private_key
                .starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
        );
        assert!(
            secrets
                .ssh_private_key
                .ends_with("-----END RSA PRIVATE KEY-----\n")
        );
        let shown = format!("{secrets:?}");
        assert!(!shown.contains(&secrets.secret_key), "{shown}");
        assert_ne!(
            KeypairSecrets::generate().expect("generate").access_key,
            secrets.access_key
        );
    }

    fn refused<T: std::fmt::Debug>(result: Result<T, WriteError>) -> String {
        match result {
            Err(WriteError::Rejected(msg)) => msg,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn create_modify_and_delete() {
        let (test, rows) = test_rows::database("q_keypair_admin").await;
        let db = &test.connection;
        let settings = NewKeypair {
            is_active: true,
            is_admin: false,
            resource_policy: Rows::KEYPAIR_POLICY.to_owned(),
            rate_limit: 500,
        };
        let secrets = KeypairSecrets::generate().expect("generate");
        let created = super::create(db, Rows::EMAIL, &settings, secrets.clone())
            .await
            .expect("create");
        assert_eq!(created.user, rows.user.uuid);
        assert_eq!(created.user_id.as_deref(), Some(Rows::EMAIL));
        assert_eq!(created.secret_key, Some(secrets.secret_key));
        assert_eq!(created.rate_limit, Some(500));
        assert_eq!(created.num_queries, Some(0));

        let fresh = || KeypairSecrets::generate().expect("generate");
        assert_eq!(
            refused(super::create(db, "nobody@lablup.com", &settings, fresh()).await),
            "no such user \"nobody@lablup.com\""
        );
        let unknown_policy = NewKeypair {
            resource_policy: "gold".into(),
            ..settings.clone()
        };
        assert_eq!(
            refused(super::create(db, Rows::EMAIL, &unknown_policy, fresh()).await),
            "no such keypair resource policy \"gold\""
        );

        let modified = super::modify(
            db,
            &created.access_key,
            KeypairChanges {
                is_active: Some(false),
                rate_limit: Some(7),
                ..KeypairChanges::default()
            },
        )
        .await
        .expect("modify");
        assert_eq!(modified.is_active, Some(false));
        assert_eq!(modified.rate_limit, Some(7));
        assert_eq!(modified.is_admin, Some(false));
        assert!(modified.modified_at >= created.modified_at);
        assert_eq!(
            refused(super::modify(db, "AKIANOSUCHKEY", KeypairChanges::default()).await),
            "no such keypair \"AKIANOSUCHKEY\""
        );

        super::delete(db, &created.access_key)
            .await
            .expect("delete");
        assert_eq!(
            refused(super::delete(db, &created.access_key).await),
            format!("no such keypair {:?}", created.access_key)
        );
    }
}
