//! The dotfiles of a keypair, a domain or a project (group): a msgpack list of
//! `{path, perm, data}` maps in the `dotfiles` column of `keypairs`, `domains` or `groups`, as the
//! reference's `userconfig`, `domainconfig` and `groupconfig` APIs keep them. The list's encoding
//! and rules are the caller's; here it is read, and rewritten under the row's lock so that two
//! clients adding dotfiles at once do not lose one.

use chrono::Utc;
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, TransactionTrait,
};

use crate::entities::{association_groups_users, domains, groups, keypairs};
use crate::error::DbError;

/// Whose dotfiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DotfileOwner<'a> {
    /// The keypair with this access key (`keypairs.dotfiles`).
    Keypair(&'a str),
    /// The domain with this name (`domains.dotfiles`).
    Domain(&'a str),
    /// The project (group) with this id (`groups.dotfiles`).
    Project(Uuid),
}

impl std::fmt::Display for DotfileOwner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DotfileOwner::Keypair(access_key) => write!(f, "keypair {access_key}"),
            DotfileOwner::Domain(name) => write!(f, "domain {name:?}"),
            DotfileOwner::Project(id) => write!(f, "project {id}"),
        }
    }
}

/// What [`rewrite`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Rewrite<E> {
    /// The new list is stored.
    Written,
    /// The owner's row does not exist.
    OwnerMissing,
    /// The edit refused; nothing was written.
    Refused(E),
}

/// The owner's stored (packed) dotfiles; `None` when the owner's row does not exist.
pub async fn stored(
    db: &impl ConnectionTrait,
    owner: DotfileOwner<'_>,
) -> Result<Option<Vec<u8>>, DbError> {
    read(db, owner, false)
        .await
        .map_err(DbError::query(format!("reading the dotfiles of {owner}")))
}

/// Replaces the owner's packed dotfiles with what `edit` makes of them, in one transaction that
/// holds the owner's row lock from the read to the write.
pub async fn rewrite<E>(
    db: &impl TransactionTrait,
    owner: DotfileOwner<'_>,
    edit: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<Rewrite<E>, DbError> {
    let context = format!("rewriting the dotfiles of {owner}");
    let txn = db.begin().await.map_err(DbError::query(context.clone()))?;
    let Some(current) = read(&txn, owner, true)
        .await
        .map_err(DbError::query(context.clone()))?
    else {
        return Ok(Rewrite::OwnerMissing);
    };
    let packed = match edit(&current) {
        Ok(packed) => packed,
        Err(refusal) => return Ok(Rewrite::Refused(refusal)),
    };
    // The reference's tables set `modified_at` on every UPDATE (SQLAlchemy `onupdate`).
    let now = Utc::now();
    let result = match owner {
        DotfileOwner::Keypair(access_key) => {
            keypairs::Entity::update_many()
                .col_expr(keypairs::Column::Dotfiles, Expr::value(packed))
                .col_expr(keypairs::Column::ModifiedAt, Expr::value(now))
                .filter(keypairs::Column::AccessKey.eq(access_key))
                .exec(&txn)
                .await
        }
        DotfileOwner::Domain(name) => {
            domains::Entity::update_many()
                .col_expr(domains::Column::Dotfiles, Expr::value(packed))
                .col_expr(domains::Column::ModifiedAt, Expr::value(now))
                .filter(domains::Column::Name.eq(name))
                .exec(&txn)
                .await
        }
        DotfileOwner::Project(id) => {
            groups::Entity::update_many()
                .col_expr(groups::Column::Dotfiles, Expr::value(packed))
                .col_expr(groups::Column::ModifiedAt, Expr::value(now))
                .filter(groups::Column::Id.eq(id))
                .exec(&txn)
                .await
        }
    };
    result.map_err(DbError::query(context.clone()))?;
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(Rewrite::Written)
}

/// The keypair's bootstrap script; `None` when there is no such keypair.
pub async fn bootstrap_script(
    db: &impl ConnectionTrait,
    access_key: &str,
) -> Result<Option<String>, DbError> {
    keypairs::Entity::find_by_id(access_key)
        .select_only()
        .column(keypairs::Column::BootstrapScript)
        .into_tuple()
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading the bootstrap script of keypair {access_key}"
        )))
}

/// Stores the keypair's bootstrap script; `false` when there is no such keypair.
pub async fn set_bootstrap_script(
    db: &impl ConnectionTrait,
    access_key: &str,
    script: &str,
) -> Result<bool, DbError> {
    let result = keypairs::Entity::update_many()
        .col_expr(keypairs::Column::BootstrapScript, Expr::value(script))
        .col_expr(keypairs::Column::ModifiedAt, Expr::value(Utc::now()))
        .filter(keypairs::Column::AccessKey.eq(access_key))
        .exec(db)
        .await
        .map_err(DbError::query(format!(
            "storing the bootstrap script of keypair {access_key}"
        )))?;
    Ok(result.rows_affected > 0)
}

async fn read(
    db: &impl ConnectionTrait,
    owner: DotfileOwner<'_>,
    locked: bool,
) -> Result<Option<Vec<u8>>, sea_orm::DbErr> {
    match owner {
        DotfileOwner::Keypair(access_key) => {
            let select = keypairs::Entity::find_by_id(access_key)
                .select_only()
                .column(keypairs::Column::Dotfiles);
            let select = if locked {
                select.lock_exclusive()
            } else {
                select
            };
            select.into_tuple().one(db).await
        }
        DotfileOwner::Domain(name) => {
            let select = domains::Entity::find_by_id(name)
                .select_only()
                .column(domains::Column::Dotfiles);
            let select = if locked {
                select.lock_exclusive()
            } else {
                select
            };
            select.into_tuple().one(db).await
        }
        DotfileOwner::Project(id) => {
            let select = groups::Entity::find_by_id(id)
                .select_only()
                .column(groups::Column::Dotfiles);
            let select = if locked {
                select.lock_exclusive()
            } else {
                select
            };
            select.into_tuple().one(db).await
        }
    }
}

/// Whether the user `user_uuid` is a member of the project `project`
/// (`association_groups_users`), as `groupconfig.list_or_get` checks it for plain users.
pub async fn is_project_member(
    db: &impl ConnectionTrait,
    user_uuid: Uuid,
    project: Uuid,
) -> Result<bool, DbError> {
    let found = association_groups_users::Entity::find()
        .filter(association_groups_users::Column::UserId.eq(user_uuid))
        .filter(association_groups_users::Column::GroupId.eq(project))
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "checking whether user {user_uuid} is a member of project {project}"
        )))?;
    Ok(found.is_some())
}
