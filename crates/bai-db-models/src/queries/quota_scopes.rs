//! Quota scopes (`user:<uuid>`, `project:<uuid>`): who may read or change one (the reference's
//! `ensure_quota_scope_accessible_by_user`), and the size limit of its owner's resource policy,
//! which stands in for the storage proxy's limit when the proxy cannot tell.

use sea_orm::prelude::Uuid;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::entities::enums::UserRole;
use crate::entities::{
    association_groups_users, groups, project_resource_policies, user_resource_policies, users,
};
use crate::error::DbError;

/// The parts of the asking user the access rule reads.
#[derive(Clone, Copy, Debug)]
pub struct Asker<'a> {
    pub uuid: Uuid,
    pub role: UserRole,
    pub domain: Option<&'a str>,
}

/// Whether `asker` may reach the quota scope whose id part is `scope_id`, by the reference's
/// rule, which looks the id up as a user first and as a project only when no user has it (the
/// scope's type is not consulted): a superadmin reaches every scope of an existing owner; a
/// domain admin those of its domain's users and projects; anyone else their own user scope and
/// the scopes of the projects they belong to. An id that is neither a user nor a project is
/// reachable by nobody.
pub async fn quota_scope_accessible(
    db: &impl ConnectionTrait,
    scope_id: Uuid,
    asker: Asker<'_>,
) -> Result<bool, DbError> {
    let owner_user = users::Entity::find_by_id(scope_id)
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading user {scope_id} for a quota scope"
        )))?;
    if let Some(owner) = owner_user {
        return Ok(match asker.role {
            UserRole::Superadmin => true,
            UserRole::Admin => owner.domain_name.as_deref() == asker.domain,
            _ => owner.uuid == asker.uuid,
        });
    }
    let owner_project =
        groups::Entity::find_by_id(scope_id)
            .one(db)
            .await
            .map_err(DbError::query(format!(
                "reading project {scope_id} for a quota scope"
            )))?;
    let Some(project) = owner_project else {
        return Ok(false);
    };
    match asker.role {
        UserRole::Superadmin => Ok(true),
        UserRole::Admin => Ok(asker.domain == Some(project.domain_name.as_str())),
        _ => {
            let memberships = association_groups_users::Entity::find()
                .filter(association_groups_users::Column::GroupId.eq(scope_id))
                .filter(association_groups_users::Column::UserId.eq(asker.uuid))
                .count(db)
                .await
                .map_err(DbError::query(format!(
                    "reading whether user {} belongs to project {scope_id}",
                    asker.uuid
                )))?;
            Ok(memberships > 0)
        }
    }
}

/// `max_quota_scope_size` of the resource policy of user `user_uuid`; `None` when there is no
/// such user.
pub async fn user_max_quota_scope_size(
    db: &impl ConnectionTrait,
    user_uuid: Uuid,
) -> Result<Option<i64>, DbError> {
    let found = users::Entity::find_by_id(user_uuid)
        .find_also_related(user_resource_policies::Entity)
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading the resource policy of user {user_uuid}"
        )))?;
    Ok(found
        .and_then(|(_, policy)| policy)
        .map(|policy| policy.max_quota_scope_size))
}

/// `max_quota_scope_size` of the resource policy of project `project_id`; `None` when there is no
/// such project.
pub async fn project_max_quota_scope_size(
    db: &impl ConnectionTrait,
    project_id: Uuid,
) -> Result<Option<i64>, DbError> {
    let found = groups::Entity::find_by_id(project_id)
        .find_also_related(project_resource_policies::Entity)
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading the resource policy of project {project_id}"
        )))?;
    Ok(found
        .and_then(|(_, policy)| policy)
        .map(|policy| policy.max_quota_scope_size))
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveModelTrait, Set};

    use super::{
        Asker, project_max_quota_scope_size, quota_scope_accessible, user_max_quota_scope_size,
    };
    use crate::entities::association_groups_users;
    use crate::entities::enums::UserRole;
    use crate::queries::test_rows::{self, Rows};

    #[tokio::test]
    async fn users_reach_their_own_scope_and_their_projects_admins_their_domain() {
        let (test, rows) = test_rows::database("q_quota_scopes").await;
        let db = &test.connection;
        let other = test_rows::user(db, "other@lablup.com").await;
        let as_user = |uuid, role| Asker {
            uuid,
            role,
            domain: Some(Rows::DOMAIN),
        };
        let user = as_user(rows.user.uuid, UserRole::User);
        let reach = |scope, asker| quota_scope_accessible(db, scope, asker);
        assert!(reach(rows.user.uuid, user).await.expect("query"));
        assert!(!reach(other.uuid, user).await.expect("query"));
        assert!(
            !reach(rows.group.id, user).await.expect("query"),
            "not a member yet"
        );
        association_groups_users::ActiveModel {
            user_id: Set(rows.user.uuid),
            group_id: Set(rows.group.id),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("membership");
        assert!(reach(rows.group.id, user).await.expect("query"));

        let admin = as_user(other.uuid, UserRole::Admin);
        assert!(reach(rows.user.uuid, admin).await.expect("query"));
        assert!(reach(rows.group.id, admin).await.expect("query"));
        let foreign_admin = Asker {
            domain: Some("elsewhere"),
            ..admin
        };
        assert!(!reach(rows.user.uuid, foreign_admin).await.expect("query"));
        assert!(!reach(rows.group.id, foreign_admin).await.expect("query"));
        let superadmin = Asker {
            role: UserRole::Superadmin,
            ..foreign_admin
        };
        assert!(reach(rows.group.id, superadmin).await.expect("query"));
        let nobody = uuid::Uuid::new_v4();
        assert!(!reach(nobody, superadmin).await.expect("query"));

        assert_eq!(
            user_max_quota_scope_size(db, rows.user.uuid)
                .await
                .expect("query"),
            Some(-1)
        );
        assert_eq!(
            project_max_quota_scope_size(db, rows.group.id)
                .await
                .expect("query"),
            Some(-1)
        );
        assert_eq!(
            user_max_quota_scope_size(db, rows.group.id)
                .await
                .expect("query"),
            None
        );
    }
}
