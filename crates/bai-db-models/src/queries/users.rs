//! Users, looked up by email (sign-in, `/auth/*`) or by the access key they sign requests with.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::entities::{keypairs, user_resource_policies, users};
use crate::error::DbError;

/// A user and its main keypair (`users.main_access_key`), which is `None` until one is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserWithMainKeypair {
    pub user: users::Model,
    pub main_keypair: Option<keypairs::Model>,
}

/// A user and its resource policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserWithPolicy {
    pub user: users::Model,
    pub resource_policy: user_resource_policies::Model,
}

/// The user with this email (emails are unique), whatever its status.
pub async fn by_email(
    db: &impl ConnectionTrait,
    email: &str,
) -> Result<Option<users::Model>, DbError> {
    users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(db)
        .await
        .map_err(DbError::query(format!("reading user {email:?}")))
}

/// The user with this email together with its main keypair, in one query.
pub async fn with_main_keypair(
    db: &impl ConnectionTrait,
    email: &str,
) -> Result<Option<UserWithMainKeypair>, DbError> {
    let row = users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .find_also_related(keypairs::Entity)
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading user {email:?} with its main keypair"
        )))?;
    Ok(row.map(|(user, main_keypair)| UserWithMainKeypair { user, main_keypair }))
}

/// The user whose main keypair is `access_key`, with its resource policy: what request
/// authentication loads after the keypair (api-auth-client.md, "Load credentials").
pub async fn by_main_access_key(
    db: &impl ConnectionTrait,
    access_key: &str,
) -> Result<Option<UserWithPolicy>, DbError> {
    let context = || format!("reading the user of main access key {access_key:?}");
    let row = users::Entity::find()
        .filter(users::Column::MainAccessKey.eq(access_key))
        .find_also_related(user_resource_policies::Entity)
        .one(db)
        .await
        .map_err(DbError::query(context()))?;
    match row {
        None => Ok(None),
        Some((user, Some(resource_policy))) => Ok(Some(UserWithPolicy {
            user,
            resource_policy,
        })),
        // users.resource_policy is a NOT NULL foreign key, so the join always finds the policy.
        Some((user, None)) => Err(DbError::Query {
            context: context(),
            source: sea_orm::DbErr::RecordNotFound(format!(
                "user resource policy {:?}",
                user.resource_policy
            )),
        }),
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    use crate::entities::enums::{UserRole, UserStatus};
    use crate::entities::users;
    use crate::queries::test_rows::{self, Rows};

    #[tokio::test]
    async fn by_email_finds_the_user() {
        let (test, rows) = test_rows::database("q_users_email").await;
        let db = &test.connection;
        let user = super::by_email(db, Rows::EMAIL)
            .await
            .expect("query")
            .expect("found");
        assert_eq!(user.uuid, rows.user.uuid);
        assert_eq!(user.role, Some(UserRole::User));
        assert_eq!(user.status, UserStatus::Active);
        assert_eq!(user.totp_activated, Some(false));
        assert_eq!(
            super::by_email(db, "nobody@example.com")
                .await
                .expect("query"),
            None
        );
    }

    #[tokio::test]
    async fn with_main_keypair_follows_main_access_key() {
        let (test, rows) = test_rows::database("q_users_main_kp").await;
        let db = &test.connection;
        // The fixture order of the reference: user first without a main keypair, then the keypair.
        let before = super::with_main_keypair(db, Rows::EMAIL)
            .await
            .expect("query")
            .expect("found");
        assert_eq!(before.main_keypair, None);

        users::Entity::update_many()
            .col_expr(users::Column::MainAccessKey, Expr::value(Rows::ACCESS_KEY))
            .col_expr(users::Column::ModifiedAt, Expr::current_timestamp().into())
            .filter(users::Column::Uuid.eq(rows.user.uuid))
            .exec(db)
            .await
            .expect("set main access key");
        let after = super::with_main_keypair(db, Rows::EMAIL)
            .await
            .expect("query")
            .expect("found");
        assert_eq!(
            after.user.main_access_key.as_deref(),
            Some(Rows::ACCESS_KEY)
        );
        assert_eq!(after.main_keypair, Some(rows.keypair.clone()));
        assert_eq!(
            super::with_main_keypair(db, "x@y.z").await.expect("query"),
            None
        );

        let by_key = super::by_main_access_key(db, Rows::ACCESS_KEY)
            .await
            .expect("query")
            .expect("found");
        assert_eq!(by_key.user.uuid, rows.user.uuid);
        assert_eq!(by_key.resource_policy, rows.user_policy);
        assert_eq!(
            super::by_main_access_key(db, "AKIANOTHING")
                .await
                .expect("query"),
            None
        );
    }
}
