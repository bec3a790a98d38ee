//! What `/auth/*` reads and writes: the user a sign-in names, the keypair a sign-in hands out,
//! project membership for roles, and password changes. Password hashes are compared and made with
//! [`crate::password`], outside these functions: the callers decide on which thread.

use sea_orm::prelude::{DateTimeWithTimeZone, Uuid};
use sea_orm::sea_query::{Alias, Expr, NullOrdering, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::entities::{association_groups_users, keypairs, users};
use crate::error::DbError;

/// The user `email` of `domain`, whatever its status: the row the reference's `check_credential`
/// checks a sign-in password against. Status and password are the caller's to judge.
pub async fn user_in_domain(
    db: &impl ConnectionTrait,
    domain: &str,
    email: &str,
) -> Result<Option<users::Model>, DbError> {
    users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .filter(users::Column::DomainName.eq(domain))
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading user {email:?} of domain {domain:?}"
        )))
}

/// The user `uuid`, locked (`FOR UPDATE`) until the surrounding transaction ends, so that two
/// password changes of one user cannot interleave.
pub async fn lock_user(
    db: &impl ConnectionTrait,
    uuid: Uuid,
) -> Result<Option<users::Model>, DbError> {
    users::Entity::find_by_id(uuid)
        .lock_exclusive()
        .one(db)
        .await
        .map_err(DbError::query(format!("locking user {uuid}")))
}

/// The keypair a sign-in hands out: one of the user's active keypairs, admin keypairs first (the
/// reference's `ORDER BY is_admin DESC`). The reference leaves the order among equals to the
/// table; here the user's main keypair comes first among equals (it is the one requests can be
/// signed with), then the oldest.
pub async fn sign_in_keypair(
    db: &impl ConnectionTrait,
    user: &users::Model,
) -> Result<Option<keypairs::Model>, DbError> {
    let mut query = keypairs::Entity::find()
        .filter(keypairs::Column::User.eq(user.uuid))
        .filter(keypairs::Column::IsActive.eq(true))
        .order_by_with_nulls(keypairs::Column::IsAdmin, Order::Desc, NullOrdering::Last);
    if let Some(main) = &user.main_access_key {
        query = query.order_by(
            Expr::col((keypairs::Entity, keypairs::Column::AccessKey)).eq(main.as_str()),
            Order::Desc,
        );
    }
    query
        .order_by_with_nulls(keypairs::Column::CreatedAt, Order::Asc, NullOrdering::Last)
        .order_by_asc(keypairs::Column::AccessKey)
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading the sign-in keypair of user {}",
            user.uuid
        )))
}

/// Whether user `user_uuid` is a member of project `group_id` (`association_groups_users`).
pub async fn is_project_member(
    db: &impl ConnectionTrait,
    group_id: Uuid,
    user_uuid: Uuid,
) -> Result<bool, DbError> {
    let rows = association_groups_users::Entity::find()
        .filter(association_groups_users::Column::GroupId.eq(group_id))
        .filter(association_groups_users::Column::UserId.eq(user_uuid))
        .count(db)
        .await
        .map_err(DbError::query(format!(
            "checking whether user {user_uuid} is a member of project {group_id}"
        )))?;
    Ok(rows > 0)
}

/// Stores a new password hash for user `uuid` as the reference's `/auth/update-password` does:
/// `need_password_change` false, `password_changed_at` and `modified_at` the transaction's time.
/// Whether a row was updated.
pub async fn set_password_hash(
    db: &impl ConnectionTrait,
    uuid: Uuid,
    password_hash: &str,
) -> Result<bool, DbError> {
    let result = users::Entity::update_many()
        .col_expr(users::Column::Password, Expr::value(password_hash))
        .col_expr(users::Column::NeedPasswordChange, Expr::value(false))
        .col_expr(
            users::Column::PasswordChangedAt,
            Expr::current_timestamp().into(),
        )
        .col_expr(users::Column::ModifiedAt, Expr::current_timestamp().into())
        .filter(users::Column::Uuid.eq(uuid))
        .exec(db)
        .await
        .map_err(DbError::query(format!(
            "storing the new password of user {uuid}"
        )))?;
    Ok(result.rows_affected > 0)
}

/// The database's clock (`now()`): password ages are measured against it, as in the reference, so
/// that a manager host with a skewed clock judges them like every other.
pub async fn database_now(db: &impl ConnectionTrait) -> Result<DateTimeWithTimeZone, DbError> {
    let context = "reading the database's clock";
    let statement = db
        .get_database_backend()
        .build(Query::select().expr_as(Expr::current_timestamp(), Alias::new("now")));
    let row = db
        .query_one(statement)
        .await
        .map_err(DbError::query(context))?
        .ok_or_else(|| DbError::Query {
            context: context.to_owned(),
            source: sea_orm::DbErr::RecordNotFound(
                "SELECT CURRENT_TIMESTAMP returned no row".into(),
            ),
        })?;
    row.try_get::<DateTimeWithTimeZone>("", "now")
        .map_err(DbError::query(context))
}

#[cfg(test)]
mod tests {
    use sea_orm::prelude::Uuid;
    use sea_orm::sea_query::Expr;
    use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};

    use crate::entities::{association_groups_users, domains, keypairs, users};
    use crate::queries::test_rows::{self, Rows};

    #[tokio::test]
    async fn user_in_domain_needs_both_email_and_domain() {
        let (test, rows) = test_rows::database("q_auth_user").await;
        let db = &test.connection;
        let found = super::user_in_domain(db, Rows::DOMAIN, Rows::EMAIL)
            .await
            .expect("query")
            .expect("found");
        assert_eq!(found.uuid, rows.user.uuid);
        domains::ActiveModel {
            name: Set("other".to_owned()),
            dotfiles: Set(crate::entities::EMPTY_DOTFILES.to_vec()),
            allowed_vfolder_hosts: Set(crate::entities::VFolderHostPermissions::new()),
            allowed_docker_registries: Set(Vec::new()),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("other domain");
        for (domain, email) in [("other", Rows::EMAIL), (Rows::DOMAIN, "USER@lablup.com")] {
            assert_eq!(
                super::user_in_domain(db, domain, email)
                    .await
                    .expect("query"),
                None,
                "{domain} {email}"
            );
        }

        let txn = db.begin().await.expect("transaction");
        let locked = super::lock_user(&txn, rows.user.uuid)
            .await
            .expect("query")
            .expect("found");
        assert_eq!(locked.email, Rows::EMAIL);
        assert_eq!(
            super::lock_user(&txn, Uuid::nil()).await.expect("query"),
            None
        );
        txn.commit().await.expect("commit");
    }

    #[tokio::test]
    async fn sign_in_keypair_prefers_admin_then_main_then_oldest_active() {
        let (test, rows) = test_rows::database("q_auth_keypair").await;
        let db = &test.connection;
        let user = rows.user.clone();
        // Only the non-admin keypair of test_rows, no main key yet.
        let first = super::sign_in_keypair(db, &user)
            .await
            .expect("query")
            .expect("found");
        assert_eq!(first.access_key, Rows::ACCESS_KEY);

        let mut newer = test_rows::keypair(&user, "AKIANEWER00000000000", Rows::KEYPAIR_POLICY);
        newer.created_at = Set(Some(
            (chrono::Utc::now() + chrono::TimeDelta::hours(1)).fixed_offset(),
        ));
        newer.insert(db).await.expect("newer keypair");
        let picked = super::sign_in_keypair(db, &user).await.expect("query");
        assert_eq!(
            picked.map(|k| k.access_key).as_deref(),
            Some(Rows::ACCESS_KEY),
            "the oldest among equals"
        );

        let main_user = users::ActiveModel {
            uuid: Set(user.uuid),
            main_access_key: Set(Some("AKIANEWER00000000000".to_owned())),
            ..Default::default()
        }
        .update(db)
        .await
        .expect("set main key");
        let picked = super::sign_in_keypair(db, &main_user).await.expect("query");
        assert_eq!(
            picked.map(|k| k.access_key).as_deref(),
            Some("AKIANEWER00000000000"),
            "the main keypair among equals"
        );

        let mut inactive_admin =
            test_rows::keypair(&user, "AKIAINACTIVEADMIN000", Rows::KEYPAIR_POLICY);
        inactive_admin.is_admin = Set(Some(true));
        inactive_admin.is_active = Set(Some(false));
        inactive_admin.insert(db).await.expect("inactive admin");
        let mut admin = test_rows::keypair(&user, "AKIAADMIN00000000000", Rows::KEYPAIR_POLICY);
        admin.is_admin = Set(Some(true));
        admin.insert(db).await.expect("admin keypair");
        let picked = super::sign_in_keypair(db, &main_user).await.expect("query");
        assert_eq!(
            picked.map(|k| k.access_key).as_deref(),
            Some("AKIAADMIN00000000000"),
            "active admin keypairs first"
        );

        keypairs::Entity::update_many()
            .col_expr(keypairs::Column::IsActive, Expr::value(false))
            .filter(keypairs::Column::User.eq(user.uuid))
            .exec(db)
            .await
            .expect("deactivate all");
        assert_eq!(
            super::sign_in_keypair(db, &main_user).await.expect("query"),
            None
        );
    }

    #[tokio::test]
    async fn membership_is_per_project_and_user() {
        let (test, rows) = test_rows::database("q_auth_member").await;
        let db = &test.connection;
        assert!(
            !super::is_project_member(db, rows.group.id, rows.user.uuid)
                .await
                .expect("query")
        );
        association_groups_users::ActiveModel {
            id: Set(Uuid::new_v4()),
            user_id: Set(rows.user.uuid),
            group_id: Set(rows.group.id),
        }
        .insert(db)
        .await
        .expect("membership");
        assert!(
            super::is_project_member(db, rows.group.id, rows.user.uuid)
                .await
                .expect("query")
        );
        assert!(
            !super::is_project_member(db, Uuid::nil(), rows.user.uuid)
                .await
                .expect("query")
        );
        assert!(
            !super::is_project_member(db, rows.group.id, Uuid::nil())
                .await
                .expect("query")
        );
    }

    #[tokio::test]
    async fn set_password_hash_stamps_the_change() {
        let (test, rows) = test_rows::database("q_auth_password").await;
        let db = &test.connection;
        users::ActiveModel {
            uuid: Set(rows.user.uuid),
            need_password_change: Set(Some(true)),
            password_changed_at: Set(Some(
                chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").expect("date"),
            )),
            ..Default::default()
        }
        .update(db)
        .await
        .expect("old password state");

        let txn = db.begin().await.expect("transaction");
        let now = super::database_now(&txn).await.expect("now");
        assert!(
            super::set_password_hash(&txn, rows.user.uuid, "$2b$12$new")
                .await
                .expect("update")
        );
        txn.commit().await.expect("commit");
        let drift = (now.to_utc() - chrono::Utc::now()).num_seconds().abs();
        assert!(drift < 60, "database clock {now} is far from ours");

        let user = users::Entity::find_by_id(rows.user.uuid)
            .one(db)
            .await
            .expect("query")
            .expect("found");
        assert_eq!(user.password.as_deref(), Some("$2b$12$new"));
        assert_eq!(user.need_password_change, Some(false));
        assert_eq!(
            user.password_changed_at,
            Some(now),
            "the transaction's time"
        );
        assert_eq!(user.modified_at, Some(now));
        assert!(
            !super::set_password_hash(db, Uuid::nil(), "x")
                .await
                .expect("update")
        );
    }
}
