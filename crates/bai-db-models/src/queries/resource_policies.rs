//! Keypair, user and project resource policies: look-ups by name, by the keypair or user they
//! govern, and the admin API's writes (create, modify, delete).
//!
//! A policy that keypairs, users or projects still refer to cannot be deleted (the schema's
//! foreign keys do not cascade): the delete is refused with a message saying how many rows refer
//! to it.

use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ActiveEnum, ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use crate::entities::enums::DefaultForUnspecified;
use crate::entities::{
    ResourceSlot, VFolderHostPermissions, groups, keypair_resource_policies, keypairs,
    project_resource_policies, user_resource_policies, users,
};
use crate::error::{DbError, WriteError};

/// The keypair resource policy called `name`.
pub async fn keypair_policy(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<keypair_resource_policies::Model>, DbError> {
    keypair_resource_policies::Entity::find_by_id(name)
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading keypair resource policy {name:?}"
        )))
}

/// Every keypair resource policy, by name.
pub async fn keypair_policies(
    db: &impl ConnectionTrait,
) -> Result<Vec<keypair_resource_policies::Model>, DbError> {
    keypair_resource_policies::Entity::find()
        .order_by_asc(keypair_resource_policies::Column::Name)
        .all(db)
        .await
        .map_err(DbError::query("listing keypair resource policies"))
}

/// The policies of the keypairs of the user `user`, each once, by name.
pub async fn keypair_policies_of_user(
    db: &impl ConnectionTrait,
    user: Uuid,
) -> Result<Vec<keypair_resource_policies::Model>, DbError> {
    let names = keypairs::Entity::find()
        .select_only()
        .column(keypairs::Column::ResourcePolicy)
        .filter(keypairs::Column::User.eq(user))
        .distinct()
        .into_tuple::<String>()
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "reading the keypair policies of user {user}"
        )))?;
    keypair_resource_policies::Entity::find()
        .filter(keypair_resource_policies::Column::Name.is_in(names))
        .order_by_asc(keypair_resource_policies::Column::Name)
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "reading the keypair policies of user {user}"
        )))
}

/// What a new keypair resource policy holds besides its name.
#[derive(Clone, Debug, PartialEq)]
pub struct NewKeypairPolicy {
    pub default_for_unspecified: DefaultForUnspecified,
    pub total_resource_slots: ResourceSlot,
    pub max_session_lifetime: i32,
    pub max_concurrent_sessions: i32,
    pub max_concurrent_sftp_sessions: i32,
    pub max_containers_per_session: i32,
    pub idle_timeout: i64,
    pub allowed_vfolder_hosts: VFolderHostPermissions,
    pub max_pending_session_count: Option<i32>,
    pub max_pending_session_resource_slots: Option<ResourceSlot>,
}

/// The changes to a keypair resource policy; `None` leaves a column as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeypairPolicyChanges {
    pub default_for_unspecified: Option<DefaultForUnspecified>,
    pub total_resource_slots: Option<ResourceSlot>,
    pub max_session_lifetime: Option<i32>,
    pub max_concurrent_sessions: Option<i32>,
    pub max_concurrent_sftp_sessions: Option<i32>,
    pub max_containers_per_session: Option<i32>,
    pub idle_timeout: Option<i64>,
    pub allowed_vfolder_hosts: Option<VFolderHostPermissions>,
    pub max_pending_session_count: Option<Option<i32>>,
    pub max_pending_session_resource_slots: Option<Option<ResourceSlot>>,
}

/// Creates the keypair resource policy `name`.
pub async fn create_keypair_policy(
    db: &impl ConnectionTrait,
    name: &str,
    policy: NewKeypairPolicy,
) -> Result<keypair_resource_policies::Model, WriteError> {
    let row = keypair_resource_policies::ActiveModel {
        name: ActiveValue::Set(name.to_owned()),
        created_at: ActiveValue::NotSet,
        default_for_unspecified: ActiveValue::Set(policy.default_for_unspecified),
        total_resource_slots: ActiveValue::Set(policy.total_resource_slots),
        max_session_lifetime: ActiveValue::Set(policy.max_session_lifetime),
        max_concurrent_sessions: ActiveValue::Set(policy.max_concurrent_sessions),
        max_pending_session_count: ActiveValue::Set(policy.max_pending_session_count),
        max_pending_session_resource_slots: ActiveValue::Set(
            policy.max_pending_session_resource_slots,
        ),
        max_concurrent_sftp_sessions: ActiveValue::Set(policy.max_concurrent_sftp_sessions),
        max_containers_per_session: ActiveValue::Set(policy.max_containers_per_session),
        idle_timeout: ActiveValue::Set(policy.idle_timeout),
        allowed_vfolder_hosts: ActiveValue::Set(policy.allowed_vfolder_hosts),
    };
    keypair_resource_policies::Entity::insert(row)
        .exec_with_returning(db)
        .await
        .map_err(WriteError::from_statement(
            format!("creating keypair resource policy {name:?}"),
            |_| format!("keypair resource policy {name:?} already exists"),
        ))
}

/// Applies `changes` to the keypair resource policy `name`; false when there is no such policy.
pub async fn modify_keypair_policy(
    db: &impl ConnectionTrait,
    name: &str,
    changes: KeypairPolicyChanges,
) -> Result<bool, WriteError> {
    use keypair_resource_policies::Column;
    let mut values: Vec<(Column, SimpleExpr)> = Vec::new();
    if let Some(default) = changes.default_for_unspecified {
        values.push((Column::DefaultForUnspecified, default.as_enum()));
    }
    if let Some(slots) = changes.total_resource_slots {
        values.push((Column::TotalResourceSlots, Expr::value(slots)));
    }
    if let Some(lifetime) = changes.max_session_lifetime {
        values.push((Column::MaxSessionLifetime, Expr::value(lifetime)));
    }
    if let Some(sessions) = changes.max_concurrent_sessions {
        values.push((Column::MaxConcurrentSessions, Expr::value(sessions)));
    }
    if let Some(sessions) = changes.max_concurrent_sftp_sessions {
        values.push((Column::MaxConcurrentSftpSessions, Expr::value(sessions)));
    }
    if let Some(containers) = changes.max_containers_per_session {
        values.push((Column::MaxContainersPerSession, Expr::value(containers)));
    }
    if let Some(timeout) = changes.idle_timeout {
        values.push((Column::IdleTimeout, Expr::value(timeout)));
    }
    if let Some(hosts) = changes.allowed_vfolder_hosts {
        values.push((Column::AllowedVfolderHosts, Expr::value(hosts)));
    }
    if let Some(count) = changes.max_pending_session_count {
        values.push((Column::MaxPendingSessionCount, Expr::value(count)));
    }
    if let Some(slots) = changes.max_pending_session_resource_slots {
        values.push((Column::MaxPendingSessionResourceSlots, Expr::value(slots)));
    }
    let context = format!("modifying keypair resource policy {name:?}");
    if values.is_empty() {
        return Ok(keypair_policy(db, name).await?.is_some());
    }
    let mut update = keypair_resource_policies::Entity::update_many().filter(Column::Name.eq(name));
    for (column, value) in values {
        update = update.col_expr(column, value);
    }
    let result = update.exec(db).await.map_err(DbError::query(context))?;
    Ok(result.rows_affected > 0)
}

/// Deletes the keypair resource policy `name` unless keypairs still use it; false when there is
/// no such policy.
pub async fn delete_keypair_policy(
    db: &impl TransactionTrait,
    name: &str,
) -> Result<bool, WriteError> {
    let context = format!("deleting keypair resource policy {name:?}");
    let txn = db.begin().await.map_err(DbError::query(context.clone()))?;
    let users_of_policy = keypairs::Entity::find()
        .filter(keypairs::Column::ResourcePolicy.eq(name))
        .count(&txn)
        .await
        .map_err(DbError::query(format!(
            "counting the keypairs of keypair resource policy {name:?}"
        )))?;
    if users_of_policy > 0 {
        return Err(still_used("keypair", name, users_of_policy, "keypairs"));
    }
    let deleted = keypair_resource_policies::Entity::delete_by_id(name)
        .exec(&txn)
        .await
        .map_err(WriteError::from_statement(context.clone(), |_| {
            still_used_message("keypair", name, "keypairs")
        }))?;
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(deleted.rows_affected > 0)
}

/// The user resource policy called `name`.
pub async fn user_policy(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<user_resource_policies::Model>, DbError> {
    user_resource_policies::Entity::find_by_id(name)
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading user resource policy {name:?}"
        )))
}

/// Every user resource policy, by name.
pub async fn user_policies(
    db: &impl ConnectionTrait,
) -> Result<Vec<user_resource_policies::Model>, DbError> {
    user_resource_policies::Entity::find()
        .order_by_asc(user_resource_policies::Column::Name)
        .all(db)
        .await
        .map_err(DbError::query("listing user resource policies"))
}

/// The policy of the user `user` (none when there is no such user).
pub async fn user_policy_of_user(
    db: &impl ConnectionTrait,
    user: Uuid,
) -> Result<Option<user_resource_policies::Model>, DbError> {
    let name = users::Entity::find_by_id(user)
        .select_only()
        .column(users::Column::ResourcePolicy)
        .into_tuple::<String>()
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading the resource policy of user {user}"
        )))?;
    match name {
        Some(name) => user_policy(db, &name).await,
        None => Ok(None),
    }
}

/// What a new user resource policy holds besides its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUserPolicy {
    pub max_vfolder_count: i32,
    pub max_quota_scope_size: i64,
    pub max_session_count_per_model_session: i32,
    pub max_customized_image_count: i32,
}

/// The changes to a user resource policy; `None` leaves a column as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserPolicyChanges {
    pub max_vfolder_count: Option<i32>,
    pub max_quota_scope_size: Option<i64>,
    pub max_session_count_per_model_session: Option<i32>,
    pub max_customized_image_count: Option<i32>,
}

/// Creates the user resource policy `name`.
pub async fn create_user_policy(
    db: &impl ConnectionTrait,
    name: &str,
    policy: NewUserPolicy,
) -> Result<user_resource_policies::Model, WriteError> {
    let row = user_resource_policies::ActiveModel {
        name: ActiveValue::Set(name.to_owned()),
        created_at: ActiveValue::NotSet,
        max_vfolder_count: ActiveValue::Set(policy.max_vfolder_count),
        max_quota_scope_size: ActiveValue::Set(policy.max_quota_scope_size),
        max_session_count_per_model_session: ActiveValue::Set(
            policy.max_session_count_per_model_session,
        ),
        max_customized_image_count: ActiveValue::Set(policy.max_customized_image_count),
    };
    user_resource_policies::Entity::insert(row)
        .exec_with_returning(db)
        .await
        .map_err(WriteError::from_statement(
            format!("creating user resource policy {name:?}"),
            |_| format!("user resource policy {name:?} already exists"),
        ))
}

/// Applies `changes` to the user resource policy `name`; false when there is no such policy.
pub async fn modify_user_policy(
    db: &impl ConnectionTrait,
    name: &str,
    changes: UserPolicyChanges,
) -> Result<bool, WriteError> {
    use user_resource_policies::Column;
    let values: Vec<(Column, SimpleExpr)> = [
        (
            Column::MaxVfolderCount,
            changes.max_vfolder_count.map(Expr::value),
        ),
        (
            Column::MaxQuotaScopeSize,
            changes.max_quota_scope_size.map(Expr::value),
        ),
        (
            Column::MaxSessionCountPerModelSession,
            changes.max_session_count_per_model_session.map(Expr::value),
        ),
        (
            Column::MaxCustomizedImageCount,
            changes.max_customized_image_count.map(Expr::value),
        ),
    ]
    .into_iter()
    .filter_map(|(column, value)| value.map(|value| (column, value)))
    .collect();
    if values.is_empty() {
        return Ok(user_policy(db, name).await?.is_some());
    }
    let mut update = user_resource_policies::Entity::update_many().filter(Column::Name.eq(name));
    for (column, value) in values {
        update = update.col_expr(column, value);
    }
    let result = update.exec(db).await.map_err(DbError::query(format!(
        "modifying user resource policy {name:?}"
    )))?;
    Ok(result.rows_affected > 0)
}

/// Deletes the user resource policy `name` unless users still have it; false when there is no
/// such policy.
pub async fn delete_user_policy(
    db: &impl TransactionTrait,
    name: &str,
) -> Result<bool, WriteError> {
    let context = format!("deleting user resource policy {name:?}");
    let txn = db.begin().await.map_err(DbError::query(context.clone()))?;
    let users_of_policy = users::Entity::find()
        .filter(users::Column::ResourcePolicy.eq(name))
        .count(&txn)
        .await
        .map_err(DbError::query(format!(
            "counting the users of user resource policy {name:?}"
        )))?;
    if users_of_policy > 0 {
        return Err(still_used("user", name, users_of_policy, "users"));
    }
    let deleted = user_resource_policies::Entity::delete_by_id(name)
        .exec(&txn)
        .await
        .map_err(WriteError::from_statement(context.clone(), |_| {
            still_used_message("user", name, "users")
        }))?;
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(deleted.rows_affected > 0)
}

/// The project resource policy called `name`.
pub async fn project_policy(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<project_resource_policies::Model>, DbError> {
    project_resource_policies::Entity::find_by_id(name)
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading project resource policy {name:?}"
        )))
}

/// Every project resource policy, by name.
pub async fn project_policies(
    db: &impl ConnectionTrait,
) -> Result<Vec<project_resource_policies::Model>, DbError> {
    project_resource_policies::Entity::find()
        .order_by_asc(project_resource_policies::Column::Name)
        .all(db)
        .await
        .map_err(DbError::query("listing project resource policies"))
}

/// What a new project resource policy holds besides its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewProjectPolicy {
    pub max_vfolder_count: i32,
    pub max_quota_scope_size: i64,
}

/// The changes to a project resource policy; `None` leaves a column as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProjectPolicyChanges {
    pub max_vfolder_count: Option<i32>,
    pub max_quota_scope_size: Option<i64>,
}

/// Creates the project resource policy `name`.
pub async fn create_project_policy(
    db: &impl ConnectionTrait,
    name: &str,
    policy: NewProjectPolicy,
) -> Result<project_resource_policies::Model, WriteError> {
    let row = project_resource_policies::ActiveModel {
        name: ActiveValue::Set(name.to_owned()),
        created_at: ActiveValue::NotSet,
        max_vfolder_count: ActiveValue::Set(policy.max_vfolder_count),
        max_quota_scope_size: ActiveValue::Set(policy.max_quota_scope_size),
    };
    project_resource_policies::Entity::insert(row)
        .exec_with_returning(db)
        .await
        .map_err(WriteError::from_statement(
            format!("creating project resource policy {name:?}"),
            |_| format!("project resource policy {name:?} already exists"),
        ))
}

/// Applies `changes` to the project resource policy `name`; false when there is no such policy.
pub async fn modify_project_policy(
    db: &impl ConnectionTrait,
    name: &str,
    changes: ProjectPolicyChanges,
) -> Result<bool, WriteError> {
    use project_resource_policies::Column;
    let values: Vec<(Column, SimpleExpr)> = [
        (
            Column::MaxVfolderCount,
            changes.max_vfolder_count.map(Expr::value),
        ),
        (
            Column::MaxQuotaScopeSize,
            changes.max_quota_scope_size.map(Expr::value),
        ),
    ]
    .into_iter()
    .filter_map(|(column, value)| value.map(|value| (column, value)))
    .collect();
    if values.is_empty() {
        return Ok(project_policy(db, name).await?.is_some());
    }
    let mut update = project_resource_policies::Entity::update_many().filter(Column::Name.eq(name));
    for (column, value) in values {
        update = update.col_expr(column, value);
    }
    let result = update.exec(db).await.map_err(DbError::query(format!(
        "modifying project resource policy {name:?}"
    )))?;
    Ok(result.rows_affected > 0)
}

/// Deletes the project resource policy `name` unless projects still have it; false when there is
/// no such policy.
pub async fn delete_project_policy(
    db: &impl TransactionTrait,
    name: &str,
) -> Result<bool, WriteError> {
    let context = format!("deleting project resource policy {name:?}");
    let txn = db.begin().await.map_err(DbError::query(context.clone()))?;
    let projects_of_policy = groups::Entity::find()
        .filter(groups::Column::ResourcePolicy.eq(name))
        .count(&txn)
        .await
        .map_err(DbError::query(format!(
            "counting the projects of project resource policy {name:?}"
        )))?;
    if projects_of_policy > 0 {
        return Err(still_used("project", name, projects_of_policy, "projects"));
    }
    let deleted = project_resource_policies::Entity::delete_by_id(name)
        .exec(&txn)
        .await
        .map_err(WriteError::from_statement(context.clone(), |_| {
            still_used_message("project", name, "projects")
        }))?;
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(deleted.rows_affected > 0)
}

/// The refusal of deleting the `kind` resource policy `name` that `count` `holders` still have.
fn still_used(kind: &str, name: &str, count: u64, holders: &str) -> WriteError {
    WriteError::Rejected(format!(
        "{kind} resource policy {name:?} is used by {count} {holders}; give them another policy first"
    ))
}

/// The same refusal when the rows appeared between the count and the delete.
fn still_used_message(kind: &str, name: &str, holders: &str) -> String {
    format!("{kind} resource policy {name:?} is used by {holders}; give them another policy first")
}

#[cfg(test)]
mod tests {
    use crate::entities::enums::DefaultForUnspecified;
    use crate::entities::{ResourceSlot, VFolderHostPermissions};
    use crate::error::WriteError;
    use crate::queries::test_rows::{self, Rows};

    fn new_keypair_policy() -> super::NewKeypairPolicy {
        super::NewKeypairPolicy {
            default_for_unspecified: DefaultForUnspecified::Limited,
            total_resource_slots: ResourceSlot::new(),
            max_session_lifetime: 0,
            max_concurrent_sessions: 3,
            max_concurrent_sftp_sessions: 2,
            max_containers_per_session: 1,
            idle_timeout: 1800,
            allowed_vfolder_hosts: VFolderHostPermissions::new(),
            max_pending_session_count: None,
            max_pending_session_resource_slots: None,
        }
    }

    #[tokio::test]
    async fn keypair_policies_are_created_modified_and_deleted_unless_used() {
        let (test, rows) = test_rows::database("q_kp_policies").await;
        let db = &test.connection;
        let created = super::create_keypair_policy(db, "small", new_keypair_policy())
            .await
            .expect("created");
        assert_eq!(created.max_concurrent_sftp_sessions, 2);
        assert!(created.created_at.is_some(), "server default now()");
        let duplicate = super::create_keypair_policy(db, "small", new_keypair_policy()).await;
        assert!(
            matches!(&duplicate, Err(WriteError::Rejected(msg)) if msg == "keypair resource policy \"small\" already exists"),
            "{duplicate:?}"
        );

        let changes = super::KeypairPolicyChanges {
            idle_timeout: Some(60),
            max_pending_session_count: Some(Some(4)),
            ..Default::default()
        };
        assert!(
            super::modify_keypair_policy(db, "small", changes.clone())
                .await
                .expect("modified")
        );
        let modified = super::keypair_policy(db, "small")
            .await
            .expect("read")
            .expect("found");
        assert_eq!(
            (modified.idle_timeout, modified.max_pending_session_count),
            (60, Some(4))
        );
        assert_eq!(modified.max_concurrent_sessions, 3, "left as it was");
        assert!(
            !super::modify_keypair_policy(db, "nowhere", changes)
                .await
                .expect("no row")
        );
        assert!(
            super::modify_keypair_policy(db, "small", Default::default())
                .await
                .expect("nothing to change")
        );

        let of_user = super::keypair_policies_of_user(db, rows.user.uuid)
            .await
            .expect("read");
        let names: Vec<&str> = of_user.iter().map(|policy| policy.name.as_str()).collect();
        assert_eq!(names, [Rows::KEYPAIR_POLICY]);

        let used = super::delete_keypair_policy(db, Rows::KEYPAIR_POLICY).await;
        assert!(
            matches!(&used, Err(WriteError::Rejected(msg)) if msg == "keypair resource policy \"default\" is used by 1 keypairs; give them another policy first"),
            "{used:?}"
        );
        assert!(
            super::delete_keypair_policy(db, "small")
                .await
                .expect("deleted")
        );
        assert!(
            !super::delete_keypair_policy(db, "small")
                .await
                .expect("gone")
        );
        let names: Vec<String> = super::keypair_policies(db)
            .await
            .expect("listed")
            .into_iter()
            .map(|policy| policy.name)
            .collect();
        assert_eq!(names, [Rows::KEYPAIR_POLICY]);
    }

    #[tokio::test]
    async fn user_and_project_policies_are_created_modified_and_deleted_unless_used() {
        let (test, rows) = test_rows::database("q_user_project_policies").await;
        let db = &test.connection;
        let policy = super::NewUserPolicy {
            max_vfolder_count: 5,
            max_quota_scope_size: 1 << 40,
            max_session_count_per_model_session: 2,
            max_customized_image_count: 3,
        };
        let created = super::create_user_policy(db, "big", policy.clone())
            .await
            .expect("created");
        assert_eq!(created.max_quota_scope_size, 1 << 40);
        assert!(matches!(
            super::create_user_policy(db, "big", policy).await,
            Err(WriteError::Rejected(_))
        ));
        let changes = super::UserPolicyChanges {
            max_vfolder_count: Some(7),
            ..Default::default()
        };
        assert!(
            super::modify_user_policy(db, "big", changes)
                .await
                .expect("modified")
        );
        let modified = super::user_policy(db, "big")
            .await
            .expect("read")
            .expect("found");
        assert_eq!(
            (
                modified.max_vfolder_count,
                modified.max_session_count_per_model_session
            ),
            (7, 2)
        );
        let own = super::user_policy_of_user(db, rows.user.uuid)
            .await
            .expect("read")
            .expect("found");
        assert_eq!(own, rows.user_policy);
        assert!(matches!(
            super::delete_user_policy(db, &rows.user_policy.name).await,
            Err(WriteError::Rejected(msg)) if msg.contains("is used by 1 users")
        ));
        assert!(super::delete_user_policy(db, "big").await.expect("deleted"));
        assert_eq!(super::user_policy(db, "big").await.expect("read"), None);

        let project = super::NewProjectPolicy {
            max_vfolder_count: 1,
            max_quota_scope_size: -1,
        };
        super::create_project_policy(db, "team", project)
            .await
            .expect("created");
        let changes = super::ProjectPolicyChanges {
            max_quota_scope_size: Some(1024),
            ..Default::default()
        };
        assert!(
            super::modify_project_policy(db, "team", changes)
                .await
                .expect("modified")
        );
        let modified = super::project_policy(db, "team")
            .await
            .expect("read")
            .expect("found");
        assert_eq!(
            (modified.max_vfolder_count, modified.max_quota_scope_size),
            (1, 1024)
        );
        assert!(matches!(
            super::delete_project_policy(db, &rows.group.resource_policy).await,
            Err(WriteError::Rejected(msg)) if msg.contains("is used by 1 projects")
        ));
        assert!(
            super::delete_project_policy(db, "team")
                .await
                .expect("deleted")
        );
        let names: Vec<String> = super::project_policies(db)
            .await
            .expect("listed")
            .into_iter()
            .map(|policy| policy.name)
            .collect();
        assert_eq!(names, std::slice::from_ref(&rows.group.resource_policy));
    }
}
