//! API keypairs.

use sea_orm::prelude::Uuid;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::entities::{keypair_resource_policies, keypairs};
use crate::error::DbError;

/// A keypair and its resource policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeypairWithPolicy {
    pub keypair: keypairs::Model,
    pub resource_policy: keypair_resource_policies::Model,
}

/// The keypair `access_key` with its resource policy, in one query. Inactive keypairs are returned
/// too: request authentication must treat `is_active != Some(true)` as "Access key not found".
pub async fn by_access_key(
    db: &impl ConnectionTrait,
    access_key: &str,
) -> Result<Option<KeypairWithPolicy>, DbError> {
    let context = || format!("reading keypair {access_key:?} with its resource policy");
    let row = keypairs::Entity::find_by_id(access_key)
        .find_also_related(keypair_resource_policies::Entity)
        .one(db)
        .await
        .map_err(DbError::query(context()))?;
    match row {
        None => Ok(None),
        Some((keypair, Some(resource_policy))) => Ok(Some(KeypairWithPolicy {
            keypair,
            resource_policy,
        })),
        // keypairs.resource_policy is a NOT NULL foreign key, so the join always finds the policy.
        Some((keypair, None)) => Err(DbError::Query {
            context: context(),
            source: sea_orm::DbErr::RecordNotFound(format!(
                "keypair resource policy {:?}",
                keypair.resource_policy
            )),
        }),
    }
}

/// Every keypair the user `user_uuid` owns (`keypairs.user`), oldest first.
pub async fn of_user(
    db: &impl ConnectionTrait,
    user_uuid: Uuid,
) -> Result<Vec<keypairs::Model>, DbError> {
    keypairs::Entity::find()
        .filter(keypairs::Column::User.eq(user_uuid))
        .order_by_asc(keypairs::Column::CreatedAt)
        .order_by_asc(keypairs::Column::AccessKey)
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "reading the keypairs of user {user_uuid}"
        )))
}

#[cfg(test)]
mod tests {
    use sea_orm::ActiveModelTrait;

    use crate::entities::enums::DefaultForUnspecified;
    use crate::entities::{SlotAmount, keypairs};
    use crate::queries::test_rows::{self, Rows};

    #[tokio::test]
    async fn by_access_key_brings_the_resource_policy() {
        let (test, rows) = test_rows::database("q_keypairs_ak").await;
        let db = &test.connection;
        let found = super::by_access_key(db, Rows::ACCESS_KEY)
            .await
            .expect("query")
            .expect("found");
        assert_eq!(found.keypair, rows.keypair);
        assert_eq!(found.keypair.secret_key.as_deref(), Some(Rows::SECRET_KEY));
        assert_eq!(found.keypair.num_queries, Some(0), "server default");
        assert_eq!(found.resource_policy.name, Rows::KEYPAIR_POLICY);
        assert_eq!(
            found.resource_policy.default_for_unspecified,
            DefaultForUnspecified::Unlimited
        );
        assert_eq!(
            found.resource_policy.total_resource_slots.get("cpu"),
            Some(SlotAmount::from(4))
        );
        assert_eq!(
            found.resource_policy.max_session_lifetime, 0,
            "server default"
        );
        assert_eq!(
            found.resource_policy.max_concurrent_sftp_sessions, 1,
            "server default"
        );
        assert_eq!(
            super::by_access_key(db, "AKIANOTHING")
                .await
                .expect("query"),
            None
        );
    }

    #[tokio::test]
    async fn of_user_lists_only_that_users_keypairs() {
        let (test, rows) = test_rows::database("q_keypairs_user").await;
        let db = &test.connection;
        let second = test_rows::keypair(&rows.user, "AKIASECOND000000000X", Rows::KEYPAIR_POLICY)
            .insert(db)
            .await
            .expect("second keypair");
        let other = test_rows::user(db, "other@example.com").await;
        test_rows::keypair(&other, "AKIAOTHER0000000000X", Rows::KEYPAIR_POLICY)
            .insert(db)
            .await
            .expect("other's keypair");

        let owned = super::of_user(db, rows.user.uuid).await.expect("query");
        let keys: Vec<&str> = owned.iter().map(|k| k.access_key.as_str()).collect();
        assert_eq!(keys, [Rows::ACCESS_KEY, second.access_key.as_str()]);
        assert_eq!(
            super::of_user(db, sea_orm::prelude::Uuid::nil())
                .await
                .expect("query"),
            Vec::<keypairs::Model>::new()
        );
    }
}
