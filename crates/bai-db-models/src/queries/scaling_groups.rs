//! Resource groups (scaling groups) and who may use them.

use std::collections::BTreeSet;

use sea_orm::prelude::Uuid;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entities::{
    groups, scaling_groups, sgroups_for_domains, sgroups_for_groups, sgroups_for_keypairs,
};
use crate::error::DbError;

/// The active resource groups a request may use, ordered by name: those associated with the
/// domain, with the project `group_id`, or with the keypair `access_key` (the union of the three
/// association tables, as the reference's `query_allowed_sgroups`). Whether a non-admin may see
/// non-public ones is the caller's decision.
pub async fn allowed_for(
    db: &impl ConnectionTrait,
    domain: &str,
    group_id: Uuid,
    access_key: &str,
) -> Result<Vec<scaling_groups::Model>, DbError> {
    let context = format!(
        "reading the resource groups allowed for domain {domain:?}, project {group_id}, access key {access_key:?}"
    );
    allowed_union(db, Some(domain), Some(group_id), access_key, context).await
}

/// How a request names a project: by id or by name. Both are looked up within the caller's domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectRef<'a> {
    Id(Uuid),
    Name(&'a str),
}

/// [`allowed_for`] with the project given by id or name, as `GET /scaling-groups` takes it. The
/// project is resolved within `domain` (the reference's `resolve_group_name_or_id`); one that does
/// not exist there, or a user without a domain, contributes no resource groups but is not an error.
pub async fn allowed_for_project(
    db: &impl ConnectionTrait,
    domain: Option<&str>,
    project: ProjectRef<'_>,
    access_key: &str,
) -> Result<Vec<scaling_groups::Model>, DbError> {
    let context = format!(
        "reading the resource groups allowed for domain {domain:?}, project {project:?}, access key {access_key:?}"
    );
    let group_id = match domain {
        None => None,
        Some(domain) => {
            let query = groups::Entity::find()
                .select_only()
                .column(groups::Column::Id)
                .filter(groups::Column::DomainName.eq(domain));
            let query = match project {
                ProjectRef::Id(id) => query.filter(groups::Column::Id.eq(id)),
                ProjectRef::Name(name) => query.filter(groups::Column::Name.eq(name)),
            };
            query
                .into_tuple::<Uuid>()
                .one(db)
                .await
                .map_err(DbError::query(context.clone()))?
        }
    };
    allowed_union(db, domain, group_id, access_key, context).await
}

async fn allowed_union(
    db: &impl ConnectionTrait,
    domain: Option<&str>,
    group_id: Option<Uuid>,
    access_key: &str,
    context: String,
) -> Result<Vec<scaling_groups::Model>, DbError> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    if let Some(domain) = domain {
        names.extend(
            sgroups_for_domains::Entity::find()
                .select_only()
                .column(sgroups_for_domains::Column::ScalingGroup)
                .filter(sgroups_for_domains::Column::Domain.eq(domain))
                .into_tuple::<String>()
                .all(db)
                .await
                .map_err(DbError::query(context.clone()))?,
        );
    }
    if let Some(group_id) = group_id {
        names.extend(
            sgroups_for_groups::Entity::find()
                .select_only()
                .column(sgroups_for_groups::Column::ScalingGroup)
                .filter(sgroups_for_groups::Column::Group.eq(group_id))
                .into_tuple::<String>()
                .all(db)
                .await
                .map_err(DbError::query(context.clone()))?,
        );
    }
    names.extend(
        sgroups_for_keypairs::Entity::find()
            .select_only()
            .column(sgroups_for_keypairs::Column::ScalingGroup)
            .filter(sgroups_for_keypairs::Column::AccessKey.eq(access_key))
            .into_tuple::<String>()
            .all(db)
            .await
            .map_err(DbError::query(context.clone()))?,
    );
    if names.is_empty() {
        return Ok(Vec::new());
    }
    scaling_groups::Entity::find()
        .filter(scaling_groups::Column::Name.is_in(names))
        .filter(scaling_groups::Column::IsActive.eq(true))
        .order_by_asc(scaling_groups::Column::Name)
        .all(db)
        .await
        .map_err(DbError::query(context))
}

#[cfg(test)]
mod tests {
    use sea_orm::prelude::Uuid;
    use sea_orm::{ActiveModelTrait, Set};

    use super::ProjectRef;
    use crate::entities::enums::ProjectType;
    use crate::entities::{
        EMPTY_DOTFILES, VFolderHostPermissions, domains, groups, sgroups_for_domains,
        sgroups_for_groups, sgroups_for_keypairs,
    };
    use crate::queries::test_rows::{self, Rows};

    #[tokio::test]
    async fn allowed_for_is_the_union_of_the_three_associations() {
        let (test, rows) = test_rows::database("q_sgroups").await;
        let db = &test.connection;
        for (name, active) in [
            ("by-domain", true),
            ("by-group", true),
            ("by-keypair", true),
            ("inactive", false),
            ("unrelated", true),
        ] {
            test_rows::scaling_group(name, active)
                .insert(db)
                .await
                .expect("scaling group");
        }
        let none = super::allowed_for(db, Rows::DOMAIN, rows.group.id, Rows::ACCESS_KEY)
            .await
            .expect("query");
        assert!(none.is_empty(), "{none:?}");

        for sgroup in ["by-domain", "inactive"] {
            sgroups_for_domains::ActiveModel {
                scaling_group: Set(sgroup.to_owned()),
                domain: Set(Rows::DOMAIN.to_owned()),
                ..Default::default()
            }
            .insert(db)
            .await
            .expect("domain association");
        }
        sgroups_for_groups::ActiveModel {
            scaling_group: Set("by-group".to_owned()),
            group: Set(rows.group.id),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("group association");
        // Associated twice (domain and keypair): listed once.
        for sgroup in ["by-keypair", "by-domain"] {
            sgroups_for_keypairs::ActiveModel {
                scaling_group: Set(sgroup.to_owned()),
                access_key: Set(Rows::ACCESS_KEY.to_owned()),
                ..Default::default()
            }
            .insert(db)
            .await
            .expect("keypair association");
        }

        let allowed = super::allowed_for(db, Rows::DOMAIN, rows.group.id, Rows::ACCESS_KEY)
            .await
            .expect("query");
        let names: Vec<&str> = allowed.iter().map(|sg| sg.name.as_str()).collect();
        assert_eq!(names, ["by-domain", "by-group", "by-keypair"]);
        assert!(allowed.iter().all(|sg| sg.is_public), "server default true");

        let other_project = super::allowed_for(
            db,
            Rows::DOMAIN,
            sea_orm::prelude::Uuid::nil(),
            "AKIANOTHING",
        )
        .await
        .expect("query");
        let names: Vec<&str> = other_project.iter().map(|sg| sg.name.as_str()).collect();
        assert_eq!(names, ["by-domain"]);
    }

    #[tokio::test]
    async fn allowed_for_project_resolves_ids_and_names_within_the_domain() {
        let (test, rows) = test_rows::database("q_sgroups_project").await;
        let db = &test.connection;
        for name in ["by-domain", "by-group", "by-keypair", "other-project"] {
            test_rows::scaling_group(name, true)
                .insert(db)
                .await
                .expect("scaling group");
        }
        sgroups_for_domains::ActiveModel {
            scaling_group: Set("by-domain".to_owned()),
            domain: Set(Rows::DOMAIN.to_owned()),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("domain association");
        sgroups_for_groups::ActiveModel {
            scaling_group: Set("by-group".to_owned()),
            group: Set(rows.group.id),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("group association");
        sgroups_for_keypairs::ActiveModel {
            scaling_group: Set("by-keypair".to_owned()),
            access_key: Set(Rows::ACCESS_KEY.to_owned()),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("keypair association");
        // A project of the same name in another domain, with a resource group of its own.
        domains::ActiveModel {
            name: Set("other".to_owned()),
            allowed_vfolder_hosts: Set(VFolderHostPermissions::new()),
            allowed_docker_registries: Set(Vec::new()),
            dotfiles: Set(EMPTY_DOTFILES.to_vec()),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("other domain");
        let elsewhere = groups::ActiveModel {
            id: Set(Uuid::new_v4()),
            name: Set(rows.group.name.clone()),
            domain_name: Set("other".to_owned()),
            allowed_vfolder_hosts: Set(VFolderHostPermissions::new()),
            dotfiles: Set(EMPTY_DOTFILES.to_vec()),
            resource_policy: Set("default".to_owned()),
            r#type: Set(ProjectType::General),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("project elsewhere");
        sgroups_for_groups::ActiveModel {
            scaling_group: Set("other-project".to_owned()),
            group: Set(elsewhere.id),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("other project association");

        let names = |project| async move {
            super::allowed_for_project(db, Some(Rows::DOMAIN), project, Rows::ACCESS_KEY)
                .await
                .expect("query")
                .into_iter()
                .map(|sg| sg.name)
                .collect::<Vec<_>>()
        };
        let all = ["by-domain", "by-group", "by-keypair"];
        assert_eq!(names(ProjectRef::Id(rows.group.id)).await, all);
        assert_eq!(names(ProjectRef::Name(&rows.group.name)).await, all);
        for unknown in [
            ProjectRef::Name("nowhere"),
            ProjectRef::Id(Uuid::nil()),
            ProjectRef::Id(elsewhere.id),
        ] {
            assert_eq!(
                names(unknown).await,
                ["by-domain", "by-keypair"],
                "{unknown:?} contributes nothing"
            );
        }
        let without_domain =
            super::allowed_for_project(db, None, ProjectRef::Id(rows.group.id), Rows::ACCESS_KEY)
                .await
                .expect("query");
        let names: Vec<&str> = without_domain.iter().map(|sg| sg.name.as_str()).collect();
        assert_eq!(names, ["by-keypair"]);
    }
}
