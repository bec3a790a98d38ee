//! Groups (projects) for the admin API: look-ups by id, name and domain, the scaling groups each
//! may use, and the writes (create, modify with membership changes, deactivate, purge), each
//! write in one transaction so that a refusal part-way leaves nothing written.

use std::collections::HashMap;

use sea_orm::prelude::{Json, Uuid};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use crate::entities::enums::ProjectType;
use crate::entities::{
    EMPTY_DOTFILES, ResourceSlot, VFolderHostPermissions, association_groups_users, domains,
    groups, kernels, project_resource_policies, sessions, sgroups_for_groups, users, vfolders,
};
use crate::error::{ConstraintViolation, DbError, WriteError};
use crate::queries::require_named;

/// What a refused write says of a group id that matches nothing.
pub fn no_such_group(id: Uuid) -> String {
    format!("no such group {id}")
}

/// The group `id`, only if it is in `domain` when one is given.
pub async fn by_id(
    db: &impl ConnectionTrait,
    id: Uuid,
    domain: Option<&str>,
) -> Result<Option<groups::Model>, DbError> {
    let mut query = groups::Entity::find_by_id(id);
    if let Some(domain) = domain {
        query = query.filter(groups::Column::DomainName.eq(domain));
    }
    query
        .one(db)
        .await
        .map_err(DbError::query(format!("reading group {id}")))
}

/// The groups called `name` (one per domain), only those of `domain` when one is given; by
/// domain.
pub async fn by_name(
    db: &impl ConnectionTrait,
    name: &str,
    domain: Option<&str>,
) -> Result<Vec<groups::Model>, DbError> {
    let mut query = groups::Entity::find()
        .filter(groups::Column::Name.eq(name))
        .order_by_asc(groups::Column::DomainName);
    if let Some(domain) = domain {
        query = query.filter(groups::Column::DomainName.eq(domain));
    }
    query.all(db).await.map_err(DbError::query(format!(
        "reading the groups called {name:?}"
    )))
}

/// The groups of the given types, only those of `domain` and with `is_active` when given; by
/// domain and name.
pub async fn list(
    db: &impl ConnectionTrait,
    domain: Option<&str>,
    is_active: Option<bool>,
    types: &[ProjectType],
) -> Result<Vec<groups::Model>, DbError> {
    let mut query = groups::Entity::find()
        .filter(groups::Column::Type.is_in(types.iter().copied()))
        .order_by_asc(groups::Column::DomainName)
        .order_by_asc(groups::Column::Name);
    if let Some(domain) = domain {
        query = query.filter(groups::Column::DomainName.eq(domain));
    }
    if let Some(is_active) = is_active {
        query = query.filter(groups::Column::IsActive.eq(is_active));
    }
    query
        .all(db)
        .await
        .map_err(DbError::query("listing groups"))
}

/// The names of the scaling groups associated with each of the groups `ids`, by name; a group
/// without any is absent.
pub async fn scaling_group_names(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<String>>, DbError> {
    let mut names: HashMap<Uuid, Vec<String>> = HashMap::new();
    if ids.is_empty() {
        return Ok(names);
    }
    let rows: Vec<(Uuid, String)> = sgroups_for_groups::Entity::find()
        .select_only()
        .column(sgroups_for_groups::Column::Group)
        .column(sgroups_for_groups::Column::ScalingGroup)
        .filter(sgroups_for_groups::Column::Group.is_in(ids.iter().copied()))
        .order_by_asc(sgroups_for_groups::Column::ScalingGroup)
        .into_tuple()
        .all(db)
        .await
        .map_err(DbError::query("reading the scaling groups of groups"))?;
    for (group, scaling_group) in rows {
        names.entry(group).or_default().push(scaling_group);
    }
    Ok(names)
}

/// What a new group holds besides its name.
#[derive(Clone, Debug, PartialEq)]
pub struct NewGroup {
    pub r#type: ProjectType,
    pub description: Option<String>,
    pub is_active: bool,
    pub domain_name: String,
    pub total_resource_slots: ResourceSlot,
    pub allowed_vfolder_hosts: VFolderHostPermissions,
    pub integration_id: Option<String>,
    pub resource_policy: String,
    /// `{}` or `{"registry": ..., "project": ...}`; None stores NULL.
    pub container_registry: Option<Json>,
}

/// Creates the group `name` in its domain, which must exist, as must its resource policy.
pub async fn create(
    db: &impl TransactionTrait,
    name: &str,
    group: NewGroup,
) -> Result<groups::Model, WriteError> {
    let context = format!("creating group {name:?}");
    let txn = db.begin().await.map_err(DbError::query(context.clone()))?;
    require_named::<domains::Entity>(&txn, &group.domain_name, "domain").await?;
    require_named::<project_resource_policies::Entity>(
        &txn,
        &group.resource_policy,
        "project resource policy",
    )
    .await?;
    let domain = group.domain_name.clone();
    let row = groups::ActiveModel {
        id: ActiveValue::Set(Uuid::new_v4()),
        name: ActiveValue::Set(name.to_owned()),
        description: ActiveValue::Set(group.description),
        is_active: ActiveValue::Set(Some(group.is_active)),
        created_at: ActiveValue::NotSet,
        modified_at: ActiveValue::NotSet,
        integration_id: ActiveValue::Set(group.integration_id),
        domain_name: ActiveValue::Set(group.domain_name),
        total_resource_slots: ActiveValue::Set(Some(group.total_resource_slots)),
        allowed_vfolder_hosts: ActiveValue::Set(group.allowed_vfolder_hosts),
        dotfiles: ActiveValue::Set(EMPTY_DOTFILES.to_vec()),
        resource_policy: ActiveValue::Set(group.resource_policy),
        r#type: ActiveValue::Set(group.r#type),
        container_registry: ActiveValue::Set(group.container_registry),
    };
    let created = groups::Entity::insert(row)
        .exec_with_returning(&txn)
        .await
        .map_err(WriteError::from_statement(context.clone(), |_| {
            format!("group {name:?} already exists in domain {domain:?}")
        }))?;
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(created)
}

/// The changes to a group; `None` leaves a column as it is (`Some(None)` sets it null).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub is_active: Option<bool>,
    pub domain_name: Option<String>,
    pub total_resource_slots: Option<ResourceSlot>,
    pub allowed_vfolder_hosts: Option<VFolderHostPermissions>,
    pub integration_id: Option<Option<String>>,
    pub resource_policy: Option<String>,
    pub container_registry: Option<Option<Json>>,
}

/// Who joins or leaves a group along with a modification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// These users join; each must exist and not be a member yet.
    Add(Vec<Uuid>),
    /// These users leave; those that are not members are passed over.
    Remove(Vec<Uuid>),
}

/// Applies `members` and `changes` to the group `id` (its `modified_at` is always renewed) and
/// returns it as it is afterwards.
pub async fn modify(
    db: &impl TransactionTrait,
    id: Uuid,
    changes: GroupChanges,
    members: Option<MembershipChange>,
) -> Result<groups::Model, WriteError> {
    let context = format!("modifying group {id}");
    let txn = db.begin().await.map_err(DbError::query(context.clone()))?;
    let before = lock(&txn, id).await?;
    if let Some(domain) = &changes.domain_name {
        require_named::<domains::Entity>(&txn, domain, "domain").await?;
    }
    if let Some(policy) = &changes.resource_policy {
        require_named::<project_resource_policies::Entity>(&txn, policy, "project resource policy")
            .await?;
    }
    match members {
        Some(MembershipChange::Add(user_ids)) => add_members(&txn, id, &user_ids).await?,
        Some(MembershipChange::Remove(user_ids)) => {
            association_groups_users::Entity::delete_many()
                .filter(association_groups_users::Column::GroupId.eq(id))
                .filter(association_groups_users::Column::UserId.is_in(user_ids))
                .exec(&txn)
                .await
                .map_err(DbError::query(format!("removing members of group {id}")))?;
        }
        None => {}
    }
    let new_name = changes.name.clone().unwrap_or(before.name);
    let new_domain = changes.domain_name.clone().unwrap_or(before.domain_name);
    let mut update = groups::Entity::update_many()
        .filter(groups::Column::Id.eq(id))
        .col_expr(groups::Column::ModifiedAt, Expr::current_timestamp().into());
    if let Some(name) = changes.name {
        update = update.col_expr(groups::Column::Name, Expr::value(name));
    }
    if let Some(description) = changes.description {
        update = update.col_expr(groups::Column::Description, Expr::value(description));
    }
    if let Some(is_active) = changes.is_active {
        update = update.col_expr(groups::Column::IsActive, Expr::value(is_active));
    }
    if let Some(domain) = changes.domain_name {
        update = update.col_expr(groups::Column::DomainName, Expr::value(domain));
    }
    if let Some(slots) = changes.total_resource_slots {
        update = update.col_expr(groups::Column::TotalResourceSlots, Expr::value(slots));
    }
    if let Some(hosts) = changes.allowed_vfolder_hosts {
        update = update.col_expr(groups::Column::AllowedVfolderHosts, Expr::value(hosts));
    }
    if let Some(integration_id) = changes.integration_id {
        update = update.col_expr(groups::Column::IntegrationId, Expr::value(integration_id));
    }
    if let Some(policy) = changes.resource_policy {
        update = update.col_expr(groups::Column::ResourcePolicy, Expr::value(policy));
    }
    if let Some(registry) = changes.container_registry {
        update = update.col_expr(groups::Column::ContainerRegistry, Expr::value(registry));
    }
    let after = update
        .exec_with_returning(&txn)
        .await
        .map_err(WriteError::from_statement(
            context.clone(),
            |violation| match violation {
                ConstraintViolation::Unique => {
                    format!("group {new_name:?} already exists in domain {new_domain:?}")
                }
                ConstraintViolation::ForeignKey => format!(
                    "domain {new_domain:?} or the resource policy of group {id} no longer exists"
                ),
            },
        ))?
        .into_iter()
        .next()
        .ok_or_else(|| WriteError::Rejected(no_such_group(id)))?;
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(after)
}

/// Marks the group `id` inactive and clears its `integration_id` (the reference's
/// `delete_group`); false when there is no such group.
pub async fn deactivate(db: &impl ConnectionTrait, id: Uuid) -> Result<bool, DbError> {
    let result = groups::Entity::update_many()
        .filter(groups::Column::Id.eq(id))
        .col_expr(groups::Column::IsActive, Expr::value(false))
        .col_expr(groups::Column::IntegrationId, Expr::value(None::<String>))
        .col_expr(groups::Column::ModifiedAt, Expr::current_timestamp().into())
        .exec(db)
        .await
        .map_err(DbError::query(format!("deactivating group {id}")))?;
    Ok(result.rows_affected > 0)
}

/// Deletes the group `id` with its finished sessions and kernels (memberships, scaling-group
/// links and endpoint tokens follow by cascade). Refused while it has active kernels, or owns
/// vfolders (deleting their data needs the storage proxy); false when there is no such group.
pub async fn purge(db: &impl TransactionTrait, id: Uuid) -> Result<bool, WriteError> {
    let context = format!("purging group {id}");
    let txn = db.begin().await.map_err(DbError::query(context.clone()))?;
    let Some(_group) = groups::Entity::find_by_id(id)
        .lock_exclusive()
        .one(&txn)
        .await
        .map_err(DbError::query(format!("locking group {id}")))?
    else {
        return Ok(false);
    };
    let active_kernels = crate::queries::kernels::count_agent_occupying(
        &txn,
        sea_orm::Condition::all().add(kernels::Column::GroupId.eq(id)),
        &format!("group {id}"),
    )
    .await?;
    if active_kernels > 0 {
        return Err(WriteError::Rejected(format!(
            "group {id} has {active_kernels} active kernel(s); terminate its sessions first"
        )));
    }
    let owned_vfolders = vfolders::Entity::find()
        .filter(vfolders::Column::Group.eq(id))
        .count(&txn)
        .await
        .map_err(DbError::query(format!(
            "counting the vfolders of group {id}"
        )))?;
    if owned_vfolders > 0 {
        return Err(WriteError::Rejected(format!(
            "group {id} owns {owned_vfolders} vfolder(s); purging needs the storage proxy, \
             which this manager does not use yet: delete them first"
        )));
    }
    kernels::Entity::delete_many()
        .filter(kernels::Column::GroupId.eq(id))
        .exec(&txn)
        .await
        .map_err(DbError::query(format!(
            "deleting the kernels of group {id}"
        )))?;
    sessions::Entity::delete_many()
        .filter(sessions::Column::GroupId.eq(id))
        .exec(&txn)
        .await
        .map_err(DbError::query(format!(
            "deleting the sessions of group {id}"
        )))?;
    groups::Entity::delete_many()
        .filter(groups::Column::Id.eq(id))
        .exec(&txn)
        .await
        .map_err(WriteError::from_statement(context.clone(), |_| {
            format!(
                "group {id} is still referred to by model-service endpoints or session templates"
            )
        }))?;
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(true)
}

async fn lock(txn: &DatabaseTransaction, id: Uuid) -> Result<groups::Model, WriteError> {
    groups::Entity::find_by_id(id)
        .lock_exclusive()
        .one(txn)
        .await
        .map_err(DbError::query(format!("locking group {id}")))?
        .ok_or_else(|| WriteError::Rejected(no_such_group(id)))
}

/// Makes the users `user_ids` members of the group `id`; each must exist and not be one yet.
async fn add_members(
    txn: &DatabaseTransaction,
    id: Uuid,
    user_ids: &[Uuid],
) -> Result<(), WriteError> {
    let mut unique: Vec<Uuid> = Vec::with_capacity(user_ids.len());
    for user_id in user_ids {
        if !unique.contains(user_id) {
            unique.push(*user_id);
        }
    }
    let existing: Vec<Uuid> = users::Entity::find()
        .select_only()
        .column(users::Column::Uuid)
        .filter(users::Column::Uuid.is_in(unique.iter().copied()))
        .into_tuple()
        .all(txn)
        .await
        .map_err(DbError::query(format!(
            "reading the users to add to group {id}"
        )))?;
    if let Some(missing) = unique.iter().find(|user_id| !existing.contains(user_id)) {
        return Err(WriteError::Rejected(format!("no such user {missing}")));
    }
    let members: Vec<Uuid> = association_groups_users::Entity::find()
        .select_only()
        .column(association_groups_users::Column::UserId)
        .filter(association_groups_users::Column::GroupId.eq(id))
        .filter(association_groups_users::Column::UserId.is_in(unique.iter().copied()))
        .into_tuple()
        .all(txn)
        .await
        .map_err(DbError::query(format!("reading the members of group {id}")))?;
    if let Some(member) = unique.iter().find(|user_id| members.contains(user_id)) {
        return Err(WriteError::Rejected(format!(
            "user {member} is already a member of group {id}"
        )));
    }
    if unique.is_empty() {
        return Ok(());
    }
    let rows = unique
        .into_iter()
        .map(|user_id| association_groups_users::ActiveModel {
            id: ActiveValue::Set(Uuid::new_v4()),
            user_id: ActiveValue::Set(user_id),
            group_id: ActiveValue::Set(id),
        });
    association_groups_users::Entity::insert_many(rows)
        .exec(txn)
        .await
        .map_err(DbError::query(format!("adding members to group {id}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sea_orm::prelude::Uuid;
    use sea_orm::{ActiveModelTrait, Set};

    use super::{GroupChanges, MembershipChange, NewGroup};
    use crate::entities::enums::ProjectType;
    use crate::entities::{ResourceSlot, VFolderHostPermissions, groups, sgroups_for_groups};
    use crate::error::WriteError;
    use crate::queries::project_membership::member_projects;
    use crate::queries::test_rows::{self, Rows};

    const EVERY_TYPE: [ProjectType; 2] = [ProjectType::General, ProjectType::ModelStore];

    fn model_store() -> NewGroup {
        NewGroup {
            r#type: ProjectType::ModelStore,
            description: None,
            is_active: true,
            domain_name: Rows::DOMAIN.to_owned(),
            total_resource_slots: ResourceSlot::new(),
            allowed_vfolder_hosts: VFolderHostPermissions::new(),
            integration_id: None,
            resource_policy: "default".to_owned(),
            container_registry: None,
        }
    }

    fn names(rows: &[groups::Model]) -> Vec<&str> {
        rows.iter().map(|row| row.name.as_str()).collect()
    }

    #[tokio::test]
    async fn lookups_filter_by_domain_type_and_state() {
        let (test, rows) = test_rows::database("q_groups").await;
        let db = &test.connection;
        let store = super::create(db, "store", model_store())
            .await
            .expect("create");
        let general = super::list(db, None, None, &[ProjectType::General])
            .await
            .expect("list");
        assert_eq!(names(&general), ["default"]);
        let every = super::list(db, Some(Rows::DOMAIN), Some(true), &EVERY_TYPE)
            .await
            .expect("list");
        assert_eq!(names(&every), ["default", "store"]);
        for (domain, is_active) in [(Some("elsewhere"), None), (None, Some(false))] {
            let none = super::list(db, domain, is_active, &EVERY_TYPE)
                .await
                .expect("list");
            assert!(none.is_empty(), "{domain:?} {is_active:?}");
        }
        let found = super::by_name(db, "store", Some(Rows::DOMAIN))
            .await
            .expect("by name");
        assert_eq!(found, std::slice::from_ref(&store));
        let elsewhere = super::by_name(db, "store", Some("elsewhere"))
            .await
            .expect("by name");
        assert!(elsewhere.is_empty());
        assert_eq!(
            super::by_id(db, store.id, None).await.expect("by id"),
            Some(store.clone())
        );
        assert_eq!(
            super::by_id(db, store.id, Some("elsewhere"))
                .await
                .expect("by id"),
            None
        );
        assert_eq!(
            super::by_id(db, rows.group.id, Some(Rows::DOMAIN))
                .await
                .expect("by id"),
            Some(rows.group)
        );
    }

    #[tokio::test]
    async fn scaling_groups_and_members_of_groups() {
        let (test, rows) = test_rows::database("q_groups_links").await;
        let db = &test.connection;
        let store = super::create(db, "store", model_store())
            .await
            .expect("create");
        for name in ["sg-b", "sg-a"] {
            test_rows::scaling_group(name, true)
                .insert(db)
                .await
                .expect("scaling group");
            sgroups_for_groups::ActiveModel {
                id: Set(Uuid::new_v4()),
                scaling_group: Set(name.to_owned()),
                group: Set(store.id),
            }
            .insert(db)
            .await
            .expect("association");
        }
        let linked = super::scaling_group_names(db, &[store.id, rows.group.id])
            .await
            .expect("scaling groups");
        assert_eq!(linked.len(), 1);
        assert_eq!(linked[&store.id], ["sg-a", "sg-b"]);

        for group in [store.id, rows.group.id] {
            let add = Some(MembershipChange::Add(vec![rows.user.uuid]));
            super::modify(db, group, GroupChanges::default(), add)
                .await
                .expect("join");
        }
        let general = member_projects(db, rows.user.uuid, &[ProjectType::General])
            .await
            .expect("member projects");
        assert_eq!(names(&general), ["default"]);
        let every = member_projects(db, rows.user.uuid, &EVERY_TYPE)
            .await
            .expect("member projects");
        assert_eq!(names(&every), ["default", "store"]);

        // The rename fails after the new member was inserted: the transaction leaves neither.
        let stranger = test_rows::user(db, "stranger@example.com").await;
        let refused = super::modify(
            db,
            store.id,
            GroupChanges {
                name: Some("default".to_owned()),
                ..GroupChanges::default()
            },
            Some(MembershipChange::Add(vec![stranger.uuid])),
        )
        .await;
        assert!(
            matches!(&refused, Err(WriteError::Rejected(msg))
                if msg == "group \"default\" already exists in domain \"default\""),
            "{refused:?}"
        );
        let joined = member_projects(db, stranger.uuid, &EVERY_TYPE)
            .await
            .expect("member projects");
        assert!(joined.is_empty(), "the new member was rolled back");

        let removed = super::modify(
            db,
            store.id,
            GroupChanges::default(),
            Some(MembershipChange::Remove(vec![rows.user.uuid])),
        )
        .await
        .expect("leave");
        assert_eq!(removed.description, None);
        assert!(removed.modified_at >= store.modified_at);
        let every = member_projects(db, rows.user.uuid, &EVERY_TYPE)
            .await
            .expect("member projects");
        assert_eq!(names(&every), ["default"]);
    }
}
