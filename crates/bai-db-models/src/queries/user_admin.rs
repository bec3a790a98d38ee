//! The admin API's user writes: creating a user with its main keypair and projects, modifying
//! one (its keypairs follow a role change), marking one deleted, and purging one with what refers
//! to it. Each runs in one transaction: a refusal or failure part-way leaves nothing written.

use sea_orm::prelude::{IpNetwork, Uuid};
use sea_orm::sea_query::{Expr, NullOrdering};
use sea_orm::{
    ActiveEnum, ActiveValue, ColumnTrait, DatabaseTransaction, EntityTrait, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use super::keypair_admin::{
    self, DEFAULT_KEYPAIR_RATE_LIMIT, DEFAULT_KEYPAIR_RESOURCE_POLICY, KeypairSecrets, NewKeypair,
    no_such_user,
};
use crate::entities::enums::{ProjectType, UserRole, UserStatus};
use crate::entities::{
    association_groups_users, domains, endpoint_tokens, endpoints, error_logs, groups, kernels,
    keypairs, sessions, user_resource_policies, users, vfolder_permissions, vfolders,
};
use crate::error::{ConstraintViolation, DbError, WriteError};
use crate::queries::require_named;

/// What `status_info` says of a status an administrator set.
const ADMIN_REQUESTED: &str = "admin-requested";

/// A new user. `password_hash` is already hashed ([`crate::password::hash`]).
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    pub email: String,
    pub username: String,
    pub password_hash: String,
    pub need_password_change: bool,
    pub full_name: Option<String>,
    pub description: Option<String>,
    pub status: UserStatus,
    pub domain_name: String,
    pub role: UserRole,
    /// Projects to join, all in `domain_name`.
    pub group_ids: Vec<Uuid>,
    /// None: any address.
    pub allowed_client_ip: Option<Vec<IpNetwork>>,
    pub totp_activated: bool,
    pub resource_policy: String,
    pub sudo_session_enabled: bool,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("email", &self.email)
            .field("domain_name", &self.domain_name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The changes to a user; `None` leaves a column as it is (`Some(None)` sets it null).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    pub username: Option<Option<String>>,
    /// Already hashed.
    pub password_hash: Option<String>,
    pub need_password_change: Option<bool>,
    pub full_name: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub status: Option<UserStatus>,
    pub domain_name: Option<String>,
    pub role: Option<UserRole>,
    /// Replaces every membership with these projects (of the user's domain after the change).
    pub group_ids: Option<Vec<Uuid>>,
    pub allowed_client_ip: Option<Option<Vec<IpNetwork>>>,
    pub totp_activated: Option<bool>,
    pub resource_policy: Option<String>,
    pub sudo_session_enabled: Option<bool>,
    /// One of the user's own keypairs.
    pub main_access_key: Option<String>,
}

impl std::fmt::Debug for UserChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserChanges")
            .field("status", &self.status)
            .field("domain_name", &self.domain_name)
            .field("role", &self.role)
            .field("password_changed", &self.password_hash.is_some())
            .finish_non_exhaustive()
    }
}

/// Creates the user, its main keypair (`secrets`; active when the user is, admin when its role
/// is, the default keypair resource policy and rate limit) and its memberships: `group_ids` and
/// the domain's model-store project, as the reference joins every new user to it.
pub async fn create(
    db: &impl TransactionTrait,
    new: NewUser,
    secrets: KeypairSecrets,
) -> Result<users::Model, WriteError> {
    let email = new.email.clone();
    let context = format!("creating user {email:?}");
    let txn = db.begin().await.map_err(DbError::query(context.clone()))?;
    require_named::<domains::Entity>(&txn, &new.domain_name, "domain").await?;
    require_named::<user_resource_policies::Entity>(
        &txn,
        &new.resource_policy,
        "user resource policy",
    )
    .await?;
    let taken = users::Entity::find()
        .filter(
            users::Column::Email
                .eq(email.as_str())
                .or(users::Column::Username.eq(new.username.as_str())),
        )
        .one(&txn)
        .await
        .map_err(DbError::query(format!("reading user {email:?}")))?;
    if let Some(existing) = taken {
        return Err(WriteError::Rejected(if existing.email == email {
            format!("user {email:?} already exists")
        } else {
            format!("username {:?} is taken", new.username)
        }));
    }
    let row = users::ActiveModel {
        uuid: ActiveValue::Set(Uuid::new_v4()),
        username: ActiveValue::Set(Some(new.username.clone())),
        email: ActiveValue::Set(email.clone()),
        password: ActiveValue::Set(Some(new.password_hash)),
        need_password_change: ActiveValue::Set(Some(new.need_password_change)),
        password_changed_at: ActiveValue::NotSet,
        full_name: ActiveValue::Set(new.full_name),
        description: ActiveValue::Set(new.description),
        status: ActiveValue::Set(new.status),
        status_info: ActiveValue::Set(Some(ADMIN_REQUESTED.to_owned())),
        created_at: ActiveValue::NotSet,
        modified_at: ActiveValue::NotSet,
        integration_id: ActiveValue::Set(None),
        domain_name: ActiveValue::Set(Some(new.domain_name.clone())),
        role: ActiveValue::Set(Some(new.role)),
        allowed_client_ip: ActiveValue::Set(new.allowed_client_ip),
        totp_key: ActiveValue::Set(None),
        totp_activated: ActiveValue::Set(Some(new.totp_activated)),
        totp_activated_at: ActiveValue::Set(None),
        resource_policy: ActiveValue::Set(new.resource_policy),
        sudo_session_enabled: ActiveValue::Set(new.sudo_session_enabled),
        main_access_key: ActiveValue::Set(None),
    };
    let user = users::Entity::insert(row)
        .exec_with_returning(&txn)
        .await
        .map_err(WriteError::from_statement(context.clone(), |_| {
            format!(
                "user {email:?} or username {:?} already exists",
                new.username
            )
        }))?;
    let main = NewKeypair {
        is_active: new.status == UserStatus::Active,
        is_admin: is_admin_role(new.role),
        resource_policy: DEFAULT_KEYPAIR_RESOURCE_POLICY.to_owned(),
        rate_limit: DEFAULT_KEYPAIR_RATE_LIMIT,
    };
    let keypair = keypair_admin::insert(&txn, &user, &main, secrets).await?;
    let user = set_main_access_key(&txn, &user, &keypair.access_key).await?;
    let mut joined = new.group_ids;
    let model_store = groups::Entity::find()
        .filter(groups::Column::DomainName.eq(new.domain_name.as_str()))
        .filter(groups::Column::Type.eq(ProjectType::ModelStore))
        .order_by_asc(groups::Column::Name)
        .one(&txn)
        .await
        .map_err(DbError::query(format!(
            "reading the model-store project of domain {:?}",
            new.domain_name
        )))?;
    if let Some(project) = model_store
        && !joined.contains(&project.id)
    {
        joined.push(project.id);
    }
    join_projects(&txn, &user, &joined).await?;
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(user)
}

/// Applies `changes` to the user `email`. A role change makes the user's keypairs follow it as
/// the reference does; a domain change without `group_ids` leaves every project.
pub async fn modify(
    db: &impl TransactionTrait,
    email: &str,
    changes: UserChanges,
) -> Result<users::Model, WriteError> {
    let context = format!("modifying user {email:?}");
    let txn = db.begin().await.map_err(DbError::query(context.clone()))?;
    let before = lock_by_email(&txn, email).await?;
    if let Some(domain) = &changes.domain_name {
        require_named::<domains::Entity>(&txn, domain, "domain").await?;
    }
    if let Some(policy) = &changes.resource_policy {
        require_named::<user_resource_policies::Entity>(&txn, policy, "user resource policy")
            .await?;
    }
    if let Some(main) = &changes.main_access_key {
        let keypair = keypairs::Entity::find_by_id(main.as_str())
            .one(&txn)
            .await
            .map_err(DbError::query(format!("reading keypair {main:?}")))?;
        match keypair {
            None => {
                return Err(WriteError::Rejected(
                    "Cannot set non-existing access key as the main access key.".to_owned(),
                ));
            }
            Some(keypair) if keypair.user != before.uuid => {
                return Err(WriteError::Rejected(
                    "Cannot set another user's access key as the main access key.".to_owned(),
                ));
            }
            Some(_) => {}
        }
    }

    let mut update = users::Entity::update_many()
        .filter(users::Column::Uuid.eq(before.uuid))
        .col_expr(users::Column::ModifiedAt, Expr::current_timestamp().into());
    if let Some(username) = &changes.username {
        update = update.col_expr(users::Column::Username, Expr::value(username.clone()));
    }
    if let Some(hash) = changes.password_hash {
        update = update
            .col_expr(users::Column::Password, Expr::value(hash))
            .col_expr(
                users::Column::PasswordChangedAt,
                Expr::current_timestamp().into(),
            );
    }
    if let Some(need) = changes.need_password_change {
        update = update.col_expr(users::Column::NeedPasswordChange, Expr::value(need));
    }
    if let Some(full_name) = changes.full_name {
        update = update.col_expr(users::Column::FullName, Expr::value(full_name));
    }
    if let Some(description) = changes.description {
        update = update.col_expr(users::Column::Description, Expr::value(description));
    }
    if let Some(status) = changes.status {
        update = update.col_expr(users::Column::Status, status.as_enum());
        if status != before.status {
            update = update.col_expr(users::Column::StatusInfo, Expr::value(ADMIN_REQUESTED));
        }
    }
    if let Some(domain) = &changes.domain_name {
        update = update.col_expr(users::Column::DomainName, Expr::value(domain.clone()));
    }
    if let Some(role) = changes.role {
        update = update.col_expr(users::Column::Role, role.as_enum());
    }
    if let Some(networks) = changes.allowed_client_ip {
        update = update.col_expr(users::Column::AllowedClientIp, Expr::value(networks));
    }
    if let Some(totp) = changes.totp_activated {
        update = update.col_expr(users::Column::TotpActivated, Expr::value(totp));
    }
    if let Some(policy) = changes.resource_policy {
        update = update.col_expr(users::Column::ResourcePolicy, Expr::value(policy));
    }
    if let Some(sudo) = changes.sudo_session_enabled {
        update = update.col_expr(users::Column::SudoSessionEnabled, Expr::value(sudo));
    }
    if let Some(main) = changes.main_access_key {
        update = update.col_expr(users::Column::MainAccessKey, Expr::value(main));
    }
    let username = changes.username.flatten();
    let after = update
        .exec_with_returning(&txn)
        .await
        .map_err(WriteError::from_statement(
            context.clone(),
            |violation| match violation {
                ConstraintViolation::Unique => {
                    format!("username {:?} is taken", username.unwrap_or_default())
                }
                ConstraintViolation::ForeignKey => {
                    format!("the domain or resource policy of user {email:?} no longer exists")
                }
            },
        ))?
        .into_iter()
        .next()
        .ok_or_else(|| WriteError::Rejected(no_such_user(email)))?;

    if let Some(role) = changes.role
        && Some(role) != before.role
    {
        follow_role(&txn, &after, role).await?;
    }
    let groups = changes.group_ids.filter(|ids| !ids.is_empty());
    if groups.is_some() || after.domain_name != before.domain_name {
        association_groups_users::Entity::delete_many()
            .filter(association_groups_users::Column::UserId.eq(after.uuid))
            .exec(&txn)
            .await
            .map_err(DbError::query(format!(
                "leaving the projects of user {email:?}"
            )))?;
    }
    if let Some(ids) = groups {
        join_projects(&txn, &after, &ids).await?;
    }
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(after)
}

/// Marks the user `email` deleted and its keypairs inactive (the reference's `delete_user`).
pub async fn delete(db: &impl TransactionTrait, email: &str) -> Result<(), WriteError> {
    let context = format!("deleting user {email:?}");
    let txn = db.begin().await.map_err(DbError::query(context.clone()))?;
    keypairs::Entity::update_many()
        .filter(keypairs::Column::UserId.eq(email))
        .col_expr(keypairs::Column::IsActive, Expr::value(false))
        .col_expr(
            keypairs::Column::ModifiedAt,
            Expr::current_timestamp().into(),
        )
        .exec(&txn)
        .await
        .map_err(DbError::query(format!(
            "deactivating the keypairs of user {email:?}"
        )))?;
    let marked = users::Entity::update_many()
        .filter(users::Column::Email.eq(email))
        .col_expr(users::Column::Status, UserStatus::Deleted.as_enum())
        .col_expr(users::Column::StatusInfo, Expr::value(ADMIN_REQUESTED))
        .col_expr(users::Column::ModifiedAt, Expr::current_timestamp().into())
        .exec(&txn)
        .await
        .map_err(DbError::query(context.clone()))?;
    if marked.rows_affected == 0 {
        return Err(WriteError::Rejected(no_such_user(email)));
    }
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(())
}

/// Deletes the user `email` with its keypairs, memberships, sessions, kernels, endpoints, error
/// logs and permissions on others' vfolders; returns the deleted keypairs' access keys. Refused
/// while the user has active kernels, or owns vfolders (deleting their data needs the storage
/// proxy).
pub async fn purge(db: &impl TransactionTrait, email: &str) -> Result<Vec<String>, WriteError> {
    let context = format!("purging user {email:?}");
    let txn = db.begin().await.map_err(DbError::query(context.clone()))?;
    let user = lock_by_email(&txn, email).await?;
    let uuid = user.uuid;
    let active_kernels = crate::queries::kernels::count_agent_occupying(
        &txn,
        sea_orm::Condition::all().add(kernels::Column::UserUuid.eq(uuid)),
        &format!("user {email:?}"),
    )
    .await?;
    if active_kernels > 0 {
        return Err(WriteError::Rejected(format!(
            "user {email:?} has {active_kernels} active kernel(s); terminate them first"
        )));
    }
    let owned_vfolders = vfolders::Entity::find()
        .filter(vfolders::Column::User.eq(uuid))
        .count(&txn)
        .await
        .map_err(DbError::query(format!(
            "counting the vfolders of user {email:?}"
        )))?;
    if owned_vfolders > 0 {
        return Err(WriteError::Rejected(format!(
            "user {email:?} owns {owned_vfolders} vfolder(s); purging needs the storage \
             proxy, which this manager does not use yet: delete them first"
        )));
    }
    vfolder_permissions::Entity::delete_many()
        .filter(vfolder_permissions::Column::User.eq(uuid))
        .exec(&txn)
        .await
        .map_err(DbError::query(format!(
            "deleting the vfolder permissions of user {email:?}"
        )))?;
    error_logs::Entity::delete_many()
        .filter(error_logs::Column::User.eq(uuid))
        .exec(&txn)
        .await
        .map_err(DbError::query(format!(
            "deleting the error logs of user {email:?}"
        )))?;
    endpoint_tokens::Entity::delete_many()
        .filter(endpoint_tokens::Column::SessionOwner.eq(uuid))
        .exec(&txn)
        .await
        .map_err(DbError::query(format!(
            "deleting the endpoint tokens of user {email:?}"
        )))?;
    endpoints::Entity::delete_many()
        .filter(endpoints::Column::SessionOwner.eq(uuid))
        .exec(&txn)
        .await
        .map_err(WriteError::from_statement(
            format!("deleting the endpoints of user {email:?}"),
            |_| format!("the endpoints of user {email:?} are still referred to by other rows"),
        ))?;
    kernels::Entity::delete_many()
        .filter(kernels::Column::UserUuid.eq(uuid))
        .exec(&txn)
        .await
        .map_err(DbError::query(format!(
            "deleting the kernels of user {email:?}"
        )))?;
    sessions::Entity::delete_many()
        .filter(sessions::Column::UserUuid.eq(uuid))
        .exec(&txn)
        .await
        .map_err(WriteError::from_statement(
            format!("deleting the sessions of user {email:?}"),
            |_| format!("the sessions of user {email:?} are still referred to by other rows"),
        ))?;
    let access_keys: Vec<String> = keypairs::Entity::find()
        .select_only()
        .column(keypairs::Column::AccessKey)
        .filter(keypairs::Column::User.eq(uuid))
        .into_tuple()
        .all(&txn)
        .await
        .map_err(DbError::query(format!(
            "reading the keypairs of user {email:?}"
        )))?;
    keypairs::Entity::delete_many()
        .filter(keypairs::Column::User.eq(uuid))
        .exec(&txn)
        .await
        .map_err(WriteError::from_statement(
            format!("deleting the keypairs of user {email:?}"),
            |_| {
                format!(
                    "the keypairs of user {email:?} are still referred to by other users' \
                     sessions or kernels"
                )
            },
        ))?;
    users::Entity::delete_by_id(uuid)
        .exec(&txn)
        .await
        .map_err(WriteError::from_statement(context.clone(), |_| {
            format!("user {email:?} is still referred to by session templates, endpoints or routes")
        }))?;
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(access_keys)
}

fn is_admin_role(role: UserRole) -> bool {
    matches!(role, UserRole::Superadmin | UserRole::Admin)
}

async fn lock_by_email(txn: &DatabaseTransaction, email: &str) -> Result<users::Model, WriteError> {
    users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .lock_exclusive()
        .one(txn)
        .await
        .map_err(DbError::query(format!("locking user {email:?}")))?
        .ok_or_else(|| WriteError::Rejected(no_such_user(email)))
}

async fn set_main_access_key(
    txn: &DatabaseTransaction,
    user: &users::Model,
    access_key: &str,
) -> Result<users::Model, WriteError> {
    let rows = users::Entity::update_many()
        .filter(users::Column::Uuid.eq(user.uuid))
        .col_expr(users::Column::MainAccessKey, Expr::value(access_key))
        .exec_with_returning(txn)
        .await
        .map_err(DbError::query(format!(
            "setting the main access key of user {:?}",
            user.email
        )))?;
    rows.into_iter()
        .next()
        .ok_or_else(|| WriteError::Rejected(no_such_user(&user.email)))
}

/// Adds `user` to the projects `ids`, which must exist in the user's domain.
async fn join_projects(
    txn: &DatabaseTransaction,
    user: &users::Model,
    ids: &[Uuid],
) -> Result<(), WriteError> {
    if ids.is_empty() {
        return Ok(());
    }
    let found = groups::Entity::find()
        .filter(groups::Column::Id.is_in(ids.iter().copied()))
        .all(txn)
        .await
        .map_err(DbError::query(format!(
            "reading the projects of user {:?}",
            user.email
        )))?;
    let domain = user.domain_name.as_deref().unwrap_or_default();
    let mut unique: Vec<Uuid> = Vec::with_capacity(ids.len());
    for id in ids {
        if unique.contains(id) {
            continue;
        }
        match found.iter().find(|group| group.id == *id) {
            None => return Err(WriteError::Rejected(format!("no such project {id}"))),
            Some(group) if group.domain_name != domain => {
                return Err(WriteError::Rejected(format!(
                    "project {:?} ({id}) is not in domain {domain:?} of user {:?}",
                    group.name, user.email
                )));
            }
            Some(_) => unique.push(*id),
        }
    }
    let rows = unique
        .into_iter()
        .map(|group_id| association_groups_users::ActiveModel {
            id: ActiveValue::Set(Uuid::new_v4()),
            user_id: ActiveValue::Set(user.uuid),
            group_id: ActiveValue::Set(group_id),
        });
    association_groups_users::Entity::insert_many(rows)
        .exec(txn)
        .await
        .map_err(DbError::query(format!(
            "adding user {:?} to its projects",
            user.email
        )))?;
    Ok(())
}

/// The reference's keypair rule on a role change. Keypairs are taken admin first, then active
/// (then the main keypair, then the oldest). Becoming an admin: when the first is not an active
/// admin, every keypair gets what it lacks. Becoming a non-admin: the first loses its admin flag
/// and every other active admin keypair is deactivated.
async fn follow_role(
    txn: &DatabaseTransaction,
    user: &users::Model,
    role: UserRole,
) -> Result<(), WriteError> {
    let mut query = keypairs::Entity::find()
        .filter(keypairs::Column::User.eq(user.uuid))
        .order_by_with_nulls(keypairs::Column::IsAdmin, Order::Desc, NullOrdering::Last)
        .order_by_with_nulls(keypairs::Column::IsActive, Order::Desc, NullOrdering::Last);
    if let Some(main) = &user.main_access_key {
        query = query.order_by(
            Expr::col((keypairs::Entity, keypairs::Column::AccessKey)).eq(main.as_str()),
            Order::Desc,
        );
    }
    let owned = query
        .order_by_asc(keypairs::Column::CreatedAt)
        .order_by_asc(keypairs::Column::AccessKey)
        .all(txn)
        .await
        .map_err(DbError::query(format!(
            "reading the keypairs of user {:?}",
            user.email
        )))?;
    let Some(first) = owned.first() else {
        return Ok(());
    };
    let context = || format!("updating the keypairs of user {:?}", user.email);
    let now = || Expr::current_timestamp().into();
    if is_admin_role(role) {
        let mut update = keypairs::Entity::update_many()
            .filter(keypairs::Column::User.eq(user.uuid))
            .col_expr(keypairs::Column::ModifiedAt, now());
        let mut lacking = false;
        if first.is_admin != Some(true) {
            update = update.col_expr(keypairs::Column::IsAdmin, Expr::value(true));
            lacking = true;
        }
        if first.is_active != Some(true) {
            update = update.col_expr(keypairs::Column::IsActive, Expr::value(true));
            lacking = true;
        }
        if lacking {
            update.exec(txn).await.map_err(DbError::query(context()))?;
        }
        return Ok(());
    }
    keypairs::Entity::update_many()
        .filter(keypairs::Column::AccessKey.eq(first.access_key.as_str()))
        .col_expr(keypairs::Column::IsAdmin, Expr::value(false))
        .col_expr(keypairs::Column::ModifiedAt, now())
        .exec(txn)
        .await
        .map_err(DbError::query(context()))?;
    let other_active_admins: Vec<&str> = owned[1..]
        .iter()
        .filter(|keypair| keypair.is_admin == Some(true) && keypair.is_active == Some(true))
        .map(|keypair| keypair.access_key.as_str())
        .collect();
    if !other_active_admins.is_empty() {
        keypairs::Entity::update_many()
            .filter(keypairs::Column::AccessKey.is_in(other_active_admins))
            .col_expr(keypairs::Column::IsActive, Expr::value(false))
            .col_expr(keypairs::Column::ModifiedAt, now())
            .exec(txn)
            .await
            .map_err(DbError::query(context()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};

    use super::{NewUser, UserChanges};
    use crate::WriteError;
    use crate::entities::enums::{
        ProjectType, UserRole, UserStatus, VFolderOperationStatus, VFolderOwnershipType,
        VFolderPermission, VFolderUsageMode,
    };
    use crate::entities::{
        EMPTY_DOTFILES, ResourceSlot, VFolderHostPermissions, association_groups_users, groups,
        keypairs, users, vfolders,
    };
    use crate::queries::keypair_admin::KeypairSecrets;
    use crate::queries::test_rows::{self, Rows};

    fn new_user(email: &str, group: uuid::Uuid) -> NewUser {
        NewUser {
            email: email.to_owned(),
            username: email.to_owned(),
            password_hash: "$2b$12$cwNwL5zb8GkEbnIMjyU5Xe5X0wCp0Fqzds4/gj20DIpwIjkXUCKKe".into(),
            need_password_change: false,
            full_name: Some("Kim".into()),
            description: Some(String::new()),
            status: UserStatus::Active,
            domain_name: Rows::DOMAIN.into(),
            role: UserRole::Admin,
            group_ids: vec![group],
            allowed_client_ip: None,
            totp_activated: false,
            resource_policy: "default".into(),
            sudo_session_enabled: false,
        }
    }

    fn refused<T: std::fmt::Debug>(result: Result<T, WriteError>) -> String {
        match result {
            Err(WriteError::Rejected(msg)) => msg,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn create_modify_delete_and_purge() {
        let (test, rows) = test_rows::database("q_user_admin").await;
        let db = &test.connection;
        let store = groups::ActiveModel {
            name: Set("model-store".to_owned()),
            description: Set(None),
            is_active: Set(Some(true)),
            integration_id: Set(None),
            domain_name: Set(Rows::DOMAIN.to_owned()),
            total_resource_slots: Set(Some(ResourceSlot::new())),
            allowed_vfolder_hosts: Set(VFolderHostPermissions::new()),
            dotfiles: Set(EMPTY_DOTFILES.to_vec()),
            resource_policy: Set("default".to_owned()),
            r#type: Set(ProjectType::ModelStore),
            container_registry: Set(None),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("model-store project");
        let secrets = KeypairSecrets::generate().expect("generate");

        let created = super::create(
            db,
            new_user("kim@lablup.com", rows.group.id),
            secrets.clone(),
        )
        .await
        .expect("create");
        assert_eq!(
            created.main_access_key.as_deref(),
            Some(secrets.access_key.as_str())
        );
        assert_eq!(created.status_info.as_deref(), Some("admin-requested"));
        let main = keypairs::Entity::find_by_id(secrets.access_key.as_str())
            .one(db)
            .await
            .expect("read")
            .expect("the main keypair");
        assert_eq!(main.is_admin, Some(true));
        assert_eq!(main.is_active, Some(true));
        assert_eq!(main.rate_limit, Some(10_000));
        assert_eq!(main.resource_policy, "default");
        assert_eq!(main.user_id.as_deref(), Some("kim@lablup.com"));
        let memberships = association_groups_users::Entity::find()
            .filter(association_groups_users::Column::UserId.eq(created.uuid))
            .all(db)
            .await
            .expect("memberships");
        let mut joined: Vec<_> = memberships.iter().map(|row| row.group_id).collect();
        joined.sort();
        let mut expected = vec![rows.group.id, store.id];
        expected.sort();
        assert_eq!(joined, expected);

        let fresh = || KeypairSecrets::generate().expect("generate");
        assert_eq!(
            refused(super::create(db, new_user("kim@lablup.com", rows.group.id), fresh()).await),
            "user \"kim@lablup.com\" already exists"
        );
        let mut elsewhere = new_user("lee@lablup.com", rows.group.id);
        elsewhere.domain_name = "nowhere".into();
        assert_eq!(
            refused(super::create(db, elsewhere, fresh()).await),
            "no such domain \"nowhere\""
        );
        let unknown_group = uuid::Uuid::new_v4();
        assert_eq!(
            refused(super::create(db, new_user("lee@lablup.com", unknown_group), fresh()).await),
            format!("no such project {unknown_group}")
        );
        assert_eq!(
            users::Entity::find()
                .filter(users::Column::Email.eq("lee@lablup.com"))
                .count(db)
                .await
                .expect("count"),
            0,
            "the refused creation left no user"
        );

        let demoted = super::modify(
            db,
            "kim@lablup.com",
            UserChanges {
                role: Some(UserRole::User),
                full_name: Some(None),
                group_ids: Some(vec![store.id]),
                ..UserChanges::default()
            },
        )
        .await
        .expect("modify");
        assert_eq!(demoted.role, Some(UserRole::User));
        assert_eq!(demoted.full_name, None);
        let main = keypairs::Entity::find_by_id(secrets.access_key.as_str())
            .one(db)
            .await
            .expect("read")
            .expect("the main keypair");
        assert_eq!(main.is_admin, Some(false));
        assert_eq!(main.is_active, Some(true));
        let memberships = association_groups_users::Entity::find()
            .filter(association_groups_users::Column::UserId.eq(created.uuid))
            .all(db)
            .await
            .expect("memberships");
        assert_eq!(memberships.len(), 1);
        assert_eq!(memberships[0].group_id, store.id);
        assert_eq!(
            refused(
                super::modify(
                    db,
                    "kim@lablup.com",
                    UserChanges {
                        main_access_key: Some(Rows::ACCESS_KEY.into()),
                        ..UserChanges::default()
                    },
                )
                .await
            ),
            "Cannot set another user's access key as the main access key."
        );

        super::delete(db, "kim@lablup.com").await.expect("delete");
        let deleted = users::Entity::find_by_id(created.uuid)
            .one(db)
            .await
            .expect("read")
            .expect("still there");
        assert_eq!(deleted.status, UserStatus::Deleted);
        let main = keypairs::Entity::find_by_id(secrets.access_key.as_str())
            .one(db)
            .await
            .expect("read")
            .expect("the main keypair");
        assert_eq!(main.is_active, Some(false));

        let vfolder = vfolders::ActiveModel {
            id: Set(uuid::Uuid::new_v4()),
            host: Set("local:volume1".to_owned()),
            quota_scope_id: Set(format!("user:{}", created.uuid.simple())),
            name: Set("mydata".to_owned()),
            usage_mode: Set(VFolderUsageMode::General),
            permission: Set(Some(VFolderPermission::ReadWrite)),
            ownership_type: Set(VFolderOwnershipType::User),
            user: Set(Some(created.uuid)),
            cloneable: Set(false),
            status: Set(VFolderOperationStatus::Ready),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("vfolder");
        assert_eq!(
            refused(super::purge(db, "kim@lablup.com").await),
            "user \"kim@lablup.com\" owns 1 vfolder(s); purging needs the storage proxy, which \
             this manager does not use yet: delete them first"
        );
        vfolders::Entity::delete_by_id(vfolder.id)
            .exec(db)
            .await
            .expect("delete the vfolder");
        let purged = super::purge(db, "kim@lablup.com").await.expect("purge");
        assert_eq!(purged, std::slice::from_ref(&secrets.access_key));
        assert_eq!(
            users::Entity::find_by_id(created.uuid)
                .count(db)
                .await
                .expect("count"),
            0
        );
        assert_eq!(
            keypairs::Entity::find_by_id(secrets.access_key.as_str())
                .count(db)
                .await
                .expect("count"),
            0
        );
        assert_eq!(
            refused(super::purge(db, "kim@lablup.com").await),
            "no such user \"kim@lablup.com\""
        );
        assert_eq!(
            groups::Entity::find_by_id(store.id)
                .count(db)
                .await
                .expect("count"),
            1,
            "projects stay"
        );
    }
}
