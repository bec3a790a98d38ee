//! Domains: look-ups, and the admin API's writes (create, modify, deactivate, purge).

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, TransactionTrait,
};

use crate::entities::{
    ResourceSlot, VFolderHostPermissions, domains, groups, kernels, sessions, users,
};
use crate::error::{ConstraintViolation, DbError, WriteError};

/// The domain called `name`, active or not.
pub async fn by_name(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<domains::Model>, DbError> {
    domains::Entity::find_by_id(name)
        .one(db)
        .await
        .map_err(DbError::query(format!("reading domain {name:?}")))
}

/// Every domain (or only those whose `is_active` is `is_active`), by name.
pub async fn list(
    db: &impl ConnectionTrait,
    is_active: Option<bool>,
) -> Result<Vec<domains::Model>, DbError> {
    let mut query = domains::Entity::find().order_by_asc(domains::Column::Name);
    if let Some(is_active) = is_active {
        query = query.filter(domains::Column::IsActive.eq(is_active));
    }
    query
        .all(db)
        .await
        .map_err(DbError::query("listing domains"))
}

/// What a new domain holds besides its name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewDomain {
    pub description: Option<String>,
    pub is_active: bool,
    pub total_resource_slots: ResourceSlot,
    pub allowed_vfolder_hosts: VFolderHostPermissions,
    pub allowed_docker_registries: Vec<String>,
    pub integration_id: Option<String>,
}

/// The changes to a domain; `None` leaves a column as it is. `name` renames it (its projects and
/// scaling-group links follow; users refuse, as their foreign key does not cascade).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DomainChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub is_active: Option<bool>,
    pub total_resource_slots: Option<ResourceSlot>,
    pub allowed_vfolder_hosts: Option<VFolderHostPermissions>,
    pub allowed_docker_registries: Option<Vec<String>>,
    pub integration_id: Option<Option<String>>,
}

/// Creates the domain `name`.
pub async fn create(
    db: &impl ConnectionTrait,
    name: &str,
    domain: NewDomain,
) -> Result<domains::Model, WriteError> {
    let row = domains::ActiveModel {
        name: ActiveValue::Set(name.to_owned()),
        description: ActiveValue::Set(domain.description),
        is_active: ActiveValue::Set(Some(domain.is_active)),
        total_resource_slots: ActiveValue::Set(Some(domain.total_resource_slots)),
        allowed_vfolder_hosts: ActiveValue::Set(domain.allowed_vfolder_hosts),
        allowed_docker_registries: ActiveValue::Set(domain.allowed_docker_registries),
        integration_id: ActiveValue::Set(domain.integration_id),
        dotfiles: ActiveValue::Set(crate::entities::EMPTY_DOTFILES.to_vec()),
        created_at: ActiveValue::NotSet,
        modified_at: ActiveValue::NotSet,
    };
    domains::Entity::insert(row)
        .exec_with_returning(db)
        .await
        .map_err(WriteError::from_statement(
            format!("creating domain {name:?}"),
            |_| format!("domain {name:?} already exists"),
        ))
}

/// Applies `changes` to the domain `name`; `None` when there is no such domain.
pub async fn modify(
    db: &impl ConnectionTrait,
    name: &str,
    changes: DomainChanges,
) -> Result<Option<domains::Model>, WriteError> {
    let mut update = domains::Entity::update_many()
        .filter(domains::Column::Name.eq(name))
        .col_expr(
            domains::Column::ModifiedAt,
            Expr::current_timestamp().into(),
        );
    if let Some(new_name) = &changes.name {
        update = update.col_expr(domains::Column::Name, Expr::value(new_name.clone()));
    }
    if let Some(description) = changes.description {
        update = update.col_expr(domains::Column::Description, Expr::value(description));
    }
    if let Some(is_active) = changes.is_active {
        update = update.col_expr(domains::Column::IsActive, Expr::value(is_active));
    }
    if let Some(slots) = changes.total_resource_slots {
        update = update.col_expr(domains::Column::TotalResourceSlots, Expr::value(slots));
    }
    if let Some(hosts) = changes.allowed_vfolder_hosts {
        update = update.col_expr(domains::Column::AllowedVfolderHosts, Expr::value(hosts));
    }
    if let Some(registries) = changes.allowed_docker_registries {
        update = update.col_expr(
            domains::Column::AllowedDockerRegistries,
            Expr::value(registries),
        );
    }
    if let Some(integration_id) = changes.integration_id {
        update = update.col_expr(domains::Column::IntegrationId, Expr::value(integration_id));
    }
    let new_name = changes.name.as_deref().unwrap_or(name);
    let rows = update
        .exec_with_returning(db)
        .await
        .map_err(WriteError::from_statement(
            format!("modifying domain {name:?}"),
            |violation| match violation {
                ConstraintViolation::Unique => format!("domain {new_name:?} already exists"),
                ConstraintViolation::ForeignKey => format!(
                    "domain {name:?} cannot be renamed while users, sessions or session \
                     templates belong to it"
                ),
            },
        ))?;
    Ok(rows.into_iter().next())
}

/// Marks the domain `name` inactive (the reference's `delete_domain`); false when there is none.
pub async fn deactivate(db: &impl ConnectionTrait, name: &str) -> Result<bool, DbError> {
    let result = domains::Entity::update_many()
        .filter(domains::Column::Name.eq(name))
        .col_expr(domains::Column::IsActive, Expr::value(false))
        .col_expr(
            domains::Column::ModifiedAt,
            Expr::current_timestamp().into(),
        )
        .exec(db)
        .await
        .map_err(DbError::query(format!("deactivating domain {name:?}")))?;
    Ok(result.rows_affected > 0)
}

/// Deletes the domain `name` with its finished sessions and kernels, in one transaction. Refused
/// while it has active kernels, users or projects; false when there is no such domain.
pub async fn purge(db: &impl TransactionTrait, name: &str) -> Result<bool, WriteError> {
    let txn = db
        .begin()
        .await
        .map_err(DbError::query(format!("purging domain {name:?}")))?;
    let active_kernels = crate::queries::kernels::count_agent_occupying(
        &txn,
        sea_orm::Condition::all().add(kernels::Column::DomainName.eq(name)),
        &format!("domain {name:?}"),
    )
    .await?;
    if active_kernels > 0 {
        return Err(WriteError::Rejected(format!(
            "domain {name:?} has {active_kernels} active kernels; terminate them first"
        )));
    }
    let user_count = users::Entity::find()
        .filter(users::Column::DomainName.eq(name))
        .count(&txn)
        .await
        .map_err(DbError::query(format!("counting users of domain {name:?}")))?;
    if user_count > 0 {
        return Err(WriteError::Rejected(format!(
            "domain {name:?} has {user_count} users; remove them first"
        )));
    }
    let group_count = groups::Entity::find()
        .filter(groups::Column::DomainName.eq(name))
        .count(&txn)
        .await
        .map_err(DbError::query(format!(
            "counting projects of domain {name:?}"
        )))?;
    if group_count > 0 {
        return Err(WriteError::Rejected(format!(
            "domain {name:?} has {group_count} projects; remove them first"
        )));
    }
    kernels::Entity::delete_many()
        .filter(kernels::Column::DomainName.eq(name))
        .exec(&txn)
        .await
        .map_err(DbError::query(format!(
            "deleting kernels of domain {name:?}"
        )))?;
    sessions::Entity::delete_many()
        .filter(sessions::Column::DomainName.eq(name))
        .exec(&txn)
        .await
        .map_err(DbError::query(format!(
            "deleting sessions of domain {name:?}"
        )))?;
    let deleted = domains::Entity::delete_many()
        .filter(domains::Column::Name.eq(name))
        .exec(&txn)
        .await
        .map_err(WriteError::from_statement(
            format!("deleting domain {name:?}"),
            |_| format!("domain {name:?} is still referred to by endpoints or session templates"),
        ))?;
    txn.commit()
        .await
        .map_err(DbError::query(format!("purging domain {name:?}")))?;
    Ok(deleted.rows_affected > 0)
}

#[cfg(test)]
mod tests {
    use crate::entities::{ResourceSlot, VFolderHostPermissions};
    use crate::queries::test_rows::{self, Rows};

    #[tokio::test]
    async fn by_name_finds_the_domain_and_nothing_else() {
        let (test, _rows) = test_rows::database("q_domains").await;
        let db = &test.connection;
        let domain = super::by_name(db, Rows::DOMAIN)
            .await
            .expect("query")
            .expect("found");
        assert_eq!(domain.name, Rows::DOMAIN);
        assert_eq!(domain.is_active, Some(true));
        assert_eq!(domain.total_resource_slots, Some(ResourceSlot::new()));
        assert_eq!(domain.allowed_vfolder_hosts, VFolderHostPermissions::new());
        assert!(domain.created_at.is_some(), "server default now()");
        assert_eq!(super::by_name(db, "nowhere").await.expect("query"), None);
    }

    #[tokio::test]
    async fn list_filters_by_is_active() {
        let (test, _rows) = test_rows::database("q_domains_list").await;
        let db = &test.connection;
        let all = super::list(db, None).await.expect("query");
        assert!(all.iter().any(|domain| domain.name == Rows::DOMAIN));
        let active = super::list(db, Some(true)).await.expect("query");
        assert!(active.iter().any(|domain| domain.name == Rows::DOMAIN));
        let inactive = super::list(db, Some(false)).await.expect("query");
        assert!(
            inactive
                .iter()
                .all(|domain| domain.is_active == Some(false))
        );
        assert!(!inactive.iter().any(|domain| domain.name == Rows::DOMAIN));
    }
}
