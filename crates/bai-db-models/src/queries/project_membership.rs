//! Projects (groups) by the users that belong to them (`association_groups_users`).

use sea_orm::prelude::Uuid;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect,
    RelationTrait,
};

use crate::entities::enums::ProjectType;
use crate::entities::{association_groups_users, groups};
use crate::error::DbError;

/// The project called `name` in `domain` that the user `user_uuid` is a member of, active or not
/// (the lookup of the reference's `check_presets`). `None` when there is no such project or the
/// user is not in it.
pub async fn member_project_by_name(
    db: &impl ConnectionTrait,
    user_uuid: Uuid,
    domain: &str,
    name: &str,
) -> Result<Option<groups::Model>, DbError> {
    groups::Entity::find()
        .join(
            JoinType::InnerJoin,
            groups::Relation::AssociationGroupsUsers.def(),
        )
        .filter(association_groups_users::Column::UserId.eq(user_uuid))
        .filter(groups::Column::Name.eq(name))
        .filter(groups::Column::DomainName.eq(domain))
        .order_by_asc(groups::Column::Id)
        .limit(1)
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading project {name:?} of domain {domain:?} for member {user_uuid}"
        )))
}

/// The projects of the given types that the user `user_uuid` is a member of, by domain and name.
pub async fn member_projects(
    db: &impl ConnectionTrait,
    user_uuid: Uuid,
    types: &[ProjectType],
) -> Result<Vec<groups::Model>, DbError> {
    groups::Entity::find()
        .join(
            JoinType::InnerJoin,
            groups::Relation::AssociationGroupsUsers.def(),
        )
        .filter(association_groups_users::Column::UserId.eq(user_uuid))
        .filter(groups::Column::Type.is_in(types.iter().copied()))
        .order_by_asc(groups::Column::DomainName)
        .order_by_asc(groups::Column::Name)
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "reading the projects of member {user_uuid}"
        )))
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveModelTrait, Set};

    use super::member_project_by_name;
    use crate::entities::association_groups_users;
    use crate::queries::test_rows::{self, Rows};

    #[tokio::test]
    async fn only_a_member_finds_the_project_by_name_and_domain() {
        let (test, rows) = test_rows::database("q_project_membership").await;
        let db = &test.connection;
        let found = member_project_by_name(db, rows.user.uuid, Rows::DOMAIN, "default")
            .await
            .expect("query");
        assert_eq!(found, None, "not a member yet");

        association_groups_users::ActiveModel {
            user_id: Set(rows.user.uuid),
            group_id: Set(rows.group.id),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("membership");
        let found = member_project_by_name(db, rows.user.uuid, Rows::DOMAIN, "default")
            .await
            .expect("query");
        assert_eq!(found.as_ref(), Some(&rows.group));
        for (domain, name) in [(Rows::DOMAIN, "other"), ("elsewhere", "default")] {
            assert_eq!(
                member_project_by_name(db, rows.user.uuid, domain, name)
                    .await
                    .expect("query"),
                None,
                "{domain}/{name}"
            );
        }
        let stranger = test_rows::user(db, "stranger@example.com").await;
        assert_eq!(
            member_project_by_name(db, stranger.uuid, Rows::DOMAIN, "default")
                .await
                .expect("query"),
            None
        );
    }
}
