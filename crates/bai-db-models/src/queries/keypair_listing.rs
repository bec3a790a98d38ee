//! Keypairs as the GraphQL admin API lists them (`keypair`, `keypairs`, `keypair_list`): with the
//! owner's email and name and the owner's project names, narrowed by the owner's domain, the
//! owner's email and activity, the `filter`/`order` mini-language, pages and counts.

use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, JoinType, Order, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, RelationTrait,
};

use super::user_listing::{ListError, groups_of};
use crate::entities::{keypairs, users};
use crate::error::DbError;
use crate::minilang::{Field, FieldMap, Kind};

/// The arguments that narrow a keypair list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeypairScope {
    /// The owner's domain.
    pub domain_name: Option<String>,
    /// The owner's email (`keypairs.user_id`).
    pub email: Option<String>,
    pub is_active: Option<bool>,
    pub access_key: Option<String>,
}

/// A keypair with what the `KeyPair` type shows of its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeypairRow {
    pub keypair: keypairs::Model,
    pub owner: Option<users::Model>,
    /// The owner's project names, by name.
    pub projects: Vec<String>,
}

/// The fields `filter` and `order` may name (the reference's `KeyPair` field spec, where
/// `user_id` is the owner's uuid; `ssh_public_key` can filter but not order).
pub fn field_map() -> FieldMap {
    let keypair = |name, column: keypairs::Column, kind| Field {
        name,
        column: SimpleExpr::from(Expr::col((keypairs::Entity, column))),
        kind,
        orderable: true,
    };
    let owner = |name, column: users::Column, kind, orderable| Field {
        name,
        column: SimpleExpr::from(Expr::col((users::Entity, column))),
        kind,
        orderable,
    };
    let mut ssh_public_key = keypair("ssh_public_key", keypairs::Column::SshPublicKey, Kind::Text);
    ssh_public_key.orderable = false;
    FieldMap(vec![
        keypair("access_key", keypairs::Column::AccessKey, Kind::Text),
        owner("user_id", users::Column::Uuid, Kind::Uuid, false),
        owner("email", users::Column::Email, Kind::Text, true),
        owner("full_name", users::Column::FullName, Kind::Text, true),
        keypair("is_active", keypairs::Column::IsActive, Kind::Bool),
        keypair("is_admin", keypairs::Column::IsAdmin, Kind::Bool),
        keypair(
            "resource_policy",
            keypairs::Column::ResourcePolicy,
            Kind::Text,
        ),
        keypair("created_at", keypairs::Column::CreatedAt, Kind::Timestamp),
        keypair("last_used", keypairs::Column::LastUsed, Kind::Timestamp),
        keypair("rate_limit", keypairs::Column::RateLimit, Kind::Integer),
        keypair("num_queries", keypairs::Column::NumQueries, Kind::Integer),
        ssh_public_key,
    ])
}

fn scope_condition(scope: &KeypairScope) -> Condition {
    let mut condition = Condition::all();
    if let Some(domain) = &scope.domain_name {
        condition = condition.add(users::Column::DomainName.eq(domain.as_str()));
    }
    if let Some(email) = &scope.email {
        condition = condition.add(keypairs::Column::UserId.eq(email.as_str()));
    }
    if let Some(active) = scope.is_active {
        condition = condition.add(keypairs::Column::IsActive.eq(active));
    }
    if let Some(access_key) = &scope.access_key {
        condition = condition.add(keypairs::Column::AccessKey.eq(access_key.as_str()));
    }
    condition
}

/// The keypairs in `scope` matching `filter`, ordered by `order` (default: newest first; ties by
/// access key), the page `limit`/`offset` when given.
pub async fn list(
    db: &impl ConnectionTrait,
    scope: &KeypairScope,
    filter: Option<&str>,
    order: Option<&str>,
    page: Option<(u64, u64)>,
) -> Result<Vec<KeypairRow>, ListError> {
    let fields = field_map();
    let mut query = keypairs::Entity::find()
        .find_also_related(users::Entity)
        .filter(scope_condition(scope));
    if let Some(filter) = filter {
        query = query.filter(fields.filter(filter)?);
    }
    let order = match order {
        Some(order) => fields.order(order)?,
        None => Vec::new(),
    };
    if order.is_empty() {
        query = query.order_by_desc(keypairs::Column::CreatedAt);
    }
    for (expr, direction) in order {
        query = query.order_by(expr, direction);
    }
    query = query.order_by(keypairs::Column::AccessKey, Order::Asc);
    if let Some((limit, offset)) = page {
        query = query.limit(limit).offset(offset);
    }
    let rows = query
        .all(db)
        .await
        .map_err(DbError::query("listing keypairs".to_owned()))?;
    let owners: Vec<_> = rows.iter().map(|(keypair, _)| keypair.user).collect();
    let mut projects = groups_of(db, &owners).await?;
    Ok(rows
        .into_iter()
        .map(|(keypair, owner)| KeypairRow {
            projects: projects
                .get_mut(&keypair.user)
                .map(|groups| groups.iter().map(|group| group.name.clone()).collect())
                .unwrap_or_default(),
            keypair,
            owner,
        })
        .collect())
}

/// How many keypairs `list` would find without a page.
pub async fn count(
    db: &impl ConnectionTrait,
    scope: &KeypairScope,
    filter: Option<&str>,
) -> Result<u64, ListError> {
    let mut query = keypairs::Entity::find()
        .join(JoinType::LeftJoin, keypairs::Relation::User.def())
        .filter(scope_condition(scope));
    if let Some(filter) = filter {
        query = query.filter(field_map().filter(filter)?);
    }
    Ok(query
        .count(db)
        .await
        .map_err(DbError::query("counting keypairs".to_owned()))?)
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveModelTrait, Set};

    use super::{KeypairScope, ListError};
    use crate::entities::association_groups_users;
    use crate::queries::test_rows::{self, Rows};

    #[tokio::test]
    async fn lists_with_owners_and_projects() {
        let (test, rows) = test_rows::database("q_keypair_listing").await;
        let db = &test.connection;
        let kim = test_rows::user(db, "kim@lablup.com").await;
        let mut admin = test_rows::keypair(&kim, "AKIAKIMKIMKIMEXAMPLE", Rows::KEYPAIR_POLICY);
        admin.is_admin = Set(Some(true));
        admin.insert(db).await.expect("keypair");
        let mut inactive = test_rows::keypair(&kim, "AKIAKIMINACTEXAMPLE", Rows::KEYPAIR_POLICY);
        inactive.is_active = Set(Some(false));
        inactive.insert(db).await.expect("keypair");
        association_groups_users::ActiveModel {
            id: Set(uuid::Uuid::new_v4()),
            user_id: Set(kim.uuid),
            group_id: Set(rows.group.id),
        }
        .insert(db)
        .await
        .expect("membership");
        let keys = |found: Vec<super::KeypairRow>| {
            found
                .into_iter()
                .map(|row| row.keypair.access_key)
                .collect::<Vec<_>>()
        };
        let everyone = KeypairScope::default();

        let all = super::list(db, &everyone, None, Some("access_key"), None)
            .await
            .expect("list");
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].keypair.access_key, "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(all[0].owner.as_ref().map(|u| u.uuid), Some(rows.user.uuid));
        assert!(all[0].projects.is_empty());
        assert_eq!(all[1].projects, ["default"]);
        assert_eq!(
            all[1].owner.as_ref().map(|u| u.email.as_str()),
            Some("kim@lablup.com")
        );
        assert_eq!(super::count(db, &everyone, None).await.expect("count"), 3);

        let kims = KeypairScope {
            email: Some("kim@lablup.com".into()),
            is_active: Some(true),
            ..KeypairScope::default()
        };
        assert_eq!(
            keys(super::list(db, &kims, None, None, None).await.expect("kim")),
            ["AKIAKIMKIMKIMEXAMPLE"]
        );
        let filter = r#"email == "kim@lablup.com" & is_admin == false"#;
        assert_eq!(
            keys(
                super::list(db, &everyone, Some(filter), None, None)
                    .await
                    .expect("filtered")
            ),
            ["AKIAKIMINACTEXAMPLE"]
        );
        assert_eq!(
            super::count(db, &everyone, Some(filter))
                .await
                .expect("count"),
            1
        );
        let page = super::list(db, &everyone, None, Some("-access_key"), Some((2, 1)))
            .await
            .expect("page");
        assert_eq!(keys(page), ["AKIAKIMINACTEXAMPLE", "AKIAIOSFODNN7EXAMPLE"]);
        let elsewhere = KeypairScope {
            domain_name: Some("other".into()),
            ..KeypairScope::default()
        };
        assert_eq!(super::count(db, &elsewhere, None).await.expect("count"), 0);
        let one = KeypairScope {
            access_key: Some(Rows::ACCESS_KEY.into()),
            domain_name: Some(Rows::DOMAIN.into()),
            ..KeypairScope::default()
        };
        assert_eq!(
            keys(super::list(db, &one, None, None, None).await.expect("one")),
            [Rows::ACCESS_KEY]
        );
        assert!(matches!(
            super::list(db, &everyone, None, Some("projects"), None).await,
            Err(ListError::Invalid(_))
        ));
    }
}
