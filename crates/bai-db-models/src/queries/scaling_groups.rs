//! Resource groups (scaling groups) and who may use them.

use std::collections::BTreeSet;

use sea_orm::prelude::Uuid;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entities::{
    scaling_groups, sgroups_for_domains, sgroups_for_groups, sgroups_for_keypairs,
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
    let context = || {
        format!(
            "reading the resource groups allowed for domain {domain:?}, project {group_id}, access key {access_key:?}"
        )
    };
    let mut names: BTreeSet<String> = BTreeSet::new();
    names.extend(
        sgroups_for_domains::Entity::find()
            .select_only()
            .column(sgroups_for_domains::Column::ScalingGroup)
            .filter(sgroups_for_domains::Column::Domain.eq(domain))
            .into_tuple::<String>()
            .all(db)
            .await
            .map_err(DbError::query(context()))?,
    );
    names.extend(
        sgroups_for_groups::Entity::find()
            .select_only()
            .column(sgroups_for_groups::Column::ScalingGroup)
            .filter(sgroups_for_groups::Column::Group.eq(group_id))
            .into_tuple::<String>()
            .all(db)
            .await
            .map_err(DbError::query(context()))?,
    );
    names.extend(
        sgroups_for_keypairs::Entity::find()
            .select_only()
            .column(sgroups_for_keypairs::Column::ScalingGroup)
            .filter(sgroups_for_keypairs::Column::AccessKey.eq(access_key))
            .into_tuple::<String>()
            .all(db)
            .await
            .map_err(DbError::query(context()))?,
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
        .map_err(DbError::query(context()))
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveModelTrait, Set};

    use crate::entities::{sgroups_for_domains, sgroups_for_groups, sgroups_for_keypairs};
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
}
