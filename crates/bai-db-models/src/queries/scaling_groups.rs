//! Resource groups (scaling groups): who may use them, the admin API's listings and writes
//! (create, modify, delete), and their associations with domains, projects and keypairs.

use std::collections::BTreeSet;

use sea_orm::prelude::Uuid;
use sea_orm::sea_query::{Expr, Query, SelectStatement, SimpleExpr};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use crate::entities::{
    association_groups_users, domains, groups, keypairs, scaling_groups, sgroups_for_domains,
    sgroups_for_groups, sgroups_for_keypairs, users,
};
use crate::error::{DbError, WriteError};

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
    allowed_union(db, Some(domain), &[group_id], access_key, context).await
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
    allowed_union(db, domain, group_id.as_slice(), access_key, context).await
}

async fn allowed_union(
    db: &impl ConnectionTrait,
    domain: Option<&str>,
    group_ids: &[Uuid],
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
    if !group_ids.is_empty() {
        names.extend(
            sgroups_for_groups::Entity::find()
                .select_only()
                .column(sgroups_for_groups::Column::ScalingGroup)
                .filter(sgroups_for_groups::Column::Group.is_in(group_ids.iter().copied()))
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

/// The active resource groups the keypair `access_key` may use, as the reference's agent summaries
/// see them: those of `domain` (its owner's domain when absent), of its owner's projects in that
/// domain, and of the keypair itself. An unknown keypair may use none.
pub async fn allowed_for_keypair(
    db: &impl ConnectionTrait,
    access_key: &str,
    domain: Option<&str>,
) -> Result<Vec<scaling_groups::Model>, DbError> {
    let context = format!("reading the resource groups allowed for access key {access_key:?}");
    let owner = keypairs::Entity::find_by_id(access_key)
        .find_also_related(users::Entity)
        .one(db)
        .await
        .map_err(DbError::query(context.clone()))?
        .and_then(|(_, owner)| owner);
    let Some(owner) = owner else {
        return Ok(Vec::new());
    };
    let Some(domain) = domain.map(str::to_owned).or(owner.domain_name) else {
        return Ok(Vec::new());
    };
    let group_ids = association_groups_users::Entity::find()
        .select_only()
        .column(association_groups_users::Column::GroupId)
        .inner_join(groups::Entity)
        .filter(association_groups_users::Column::UserId.eq(owner.uuid))
        .filter(groups::Column::DomainName.eq(domain.as_str()))
        .into_tuple::<Uuid>()
        .all(db)
        .await
        .map_err(DbError::query(context.clone()))?;
    allowed_union(db, Some(&domain), &group_ids, access_key, context).await
}

/// The resource group called `name`, active or not.
pub async fn by_name(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<scaling_groups::Model>, DbError> {
    scaling_groups::Entity::find_by_id(name)
        .one(db)
        .await
        .map_err(DbError::query(format!("reading resource group {name:?}")))
}

/// What a resource group can be associated with: each has its own association table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Associate {
    Domain(String),
    /// A project, by id.
    Project(Uuid),
    /// A keypair, by access key.
    Keypair(String),
}

impl std::fmt::Display for Associate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Associate::Domain(name) => write!(f, "domain {name:?}"),
            Associate::Project(id) => write!(f, "project {id}"),
            Associate::Keypair(access_key) => write!(f, "keypair {access_key:?}"),
        }
    }
}

/// The names of the resource groups associated with `with`, as a subquery.
fn associated_names(with: &Associate) -> SelectStatement {
    match with {
        Associate::Domain(domain) => Query::select()
            .column(sgroups_for_domains::Column::ScalingGroup)
            .from(sgroups_for_domains::Entity)
            .and_where(sgroups_for_domains::Column::Domain.eq(domain.as_str()))
            .to_owned(),
        Associate::Project(group) => Query::select()
            .column(sgroups_for_groups::Column::ScalingGroup)
            .from(sgroups_for_groups::Entity)
            .and_where(sgroups_for_groups::Column::Group.eq(*group))
            .to_owned(),
        Associate::Keypair(access_key) => Query::select()
            .column(sgroups_for_keypairs::Column::ScalingGroup)
            .from(sgroups_for_keypairs::Entity)
            .and_where(sgroups_for_keypairs::Column::AccessKey.eq(access_key.as_str()))
            .to_owned(),
    }
}

/// Every resource group, or only those associated with `associated_with`, narrowed by
/// `is_active`; by name.
pub async fn list(
    db: &impl ConnectionTrait,
    associated_with: Option<&Associate>,
    is_active: Option<bool>,
) -> Result<Vec<scaling_groups::Model>, DbError> {
    let mut query = scaling_groups::Entity::find().order_by_asc(scaling_groups::Column::Name);
    if let Some(with) = associated_with {
        query = query.filter(scaling_groups::Column::Name.in_subquery(associated_names(with)));
    }
    if let Some(is_active) = is_active {
        query = query.filter(scaling_groups::Column::IsActive.eq(is_active));
    }
    let context = match associated_with {
        Some(with) => format!("listing the resource groups of {with}"),
        None => "listing resource groups".to_owned(),
    };
    query.all(db).await.map_err(DbError::query(context))
}

/// What a new resource group holds besides its name. `scheduler_opts` is checked and completed
/// with the defaults of the reference's `ScalingGroupOpts`.
#[derive(Clone, Debug, PartialEq)]
pub struct NewScalingGroup {
    pub description: Option<String>,
    pub is_active: bool,
    pub is_public: bool,
    pub wsproxy_addr: Option<String>,
    pub wsproxy_api_token: Option<String>,
    pub driver: String,
    pub driver_opts: serde_json::Value,
    pub scheduler: String,
    pub scheduler_opts: serde_json::Value,
    pub use_host_network: bool,
}

/// The changes to a resource group; `None` leaves a column as it is, `Some(None)` clears a
/// nullable one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScalingGroupChanges {
    pub description: Option<Option<String>>,
    pub is_active: Option<Option<bool>>,
    pub is_public: Option<bool>,
    pub wsproxy_addr: Option<Option<String>>,
    pub wsproxy_api_token: Option<Option<String>>,
    pub driver: Option<String>,
    pub driver_opts: Option<serde_json::Value>,
    pub scheduler: Option<String>,
    pub scheduler_opts: Option<serde_json::Value>,
    pub use_host_network: Option<bool>,
}

/// `scheduler_opts` as the reference stores it (`ScalingGroupOpts.from_json(...).to_json()`), or
/// why it is not valid.
pub fn normalize_scheduler_opts(value: &serde_json::Value) -> Result<serde_json::Value, String> {
    crate::fixtures::scheduler_opts(value).map_err(|reason| format!("scheduler_opts: {reason}"))
}

/// Creates the resource group `name`.
pub async fn create(
    db: &impl ConnectionTrait,
    name: &str,
    group: NewScalingGroup,
) -> Result<scaling_groups::Model, WriteError> {
    let scheduler_opts =
        normalize_scheduler_opts(&group.scheduler_opts).map_err(WriteError::Rejected)?;
    let row = scaling_groups::ActiveModel {
        name: ActiveValue::Set(name.to_owned()),
        description: ActiveValue::Set(group.description),
        is_active: ActiveValue::Set(Some(group.is_active)),
        is_public: ActiveValue::Set(group.is_public),
        created_at: ActiveValue::NotSet,
        wsproxy_addr: ActiveValue::Set(group.wsproxy_addr),
        wsproxy_api_token: ActiveValue::Set(group.wsproxy_api_token),
        driver: ActiveValue::Set(group.driver),
        driver_opts: ActiveValue::Set(group.driver_opts),
        scheduler: ActiveValue::Set(group.scheduler),
        use_host_network: ActiveValue::Set(group.use_host_network),
        scheduler_opts: ActiveValue::Set(scheduler_opts),
    };
    scaling_groups::Entity::insert(row)
        .exec_with_returning(db)
        .await
        .map_err(WriteError::from_statement(
            format!("creating resource group {name:?}"),
            |_| format!("scaling group {name:?} already exists"),
        ))
}

/// Applies `changes` to the resource group `name`; `None` when there is no such group.
pub async fn modify(
    db: &impl ConnectionTrait,
    name: &str,
    changes: ScalingGroupChanges,
) -> Result<Option<scaling_groups::Model>, WriteError> {
    use scaling_groups::Column;

    let mut values: Vec<(Column, SimpleExpr)> = Vec::new();
    if let Some(description) = changes.description {
        values.push((Column::Description, Expr::value(description)));
    }
    if let Some(is_active) = changes.is_active {
        values.push((Column::IsActive, Expr::value(is_active)));
    }
    if let Some(is_public) = changes.is_public {
        values.push((Column::IsPublic, Expr::value(is_public)));
    }
    if let Some(addr) = changes.wsproxy_addr {
        values.push((Column::WsproxyAddr, Expr::value(addr)));
    }
    if let Some(token) = changes.wsproxy_api_token {
        values.push((Column::WsproxyApiToken, Expr::value(token)));
    }
    if let Some(driver) = changes.driver {
        values.push((Column::Driver, Expr::value(driver)));
    }
    if let Some(opts) = changes.driver_opts {
        values.push((Column::DriverOpts, Expr::value(opts)));
    }
    if let Some(scheduler) = changes.scheduler {
        values.push((Column::Scheduler, Expr::value(scheduler)));
    }
    if let Some(opts) = changes.scheduler_opts {
        let opts = normalize_scheduler_opts(&opts).map_err(WriteError::Rejected)?;
        values.push((Column::SchedulerOpts, Expr::value(opts)));
    }
    if let Some(use_host_network) = changes.use_host_network {
        values.push((Column::UseHostNetwork, Expr::value(use_host_network)));
    }
    if values.is_empty() {
        return by_name(db, name).await.map_err(WriteError::from);
    }
    let mut update = scaling_groups::Entity::update_many().filter(Column::Name.eq(name));
    for (column, value) in values {
        update = update.col_expr(column, value);
    }
    let context = format!("modifying resource group {name:?}");
    let rows = update
        .exec_with_returning(db)
        .await
        .map_err(WriteError::from_statement(context, |_| {
            format!("scaling group {name:?}: the change conflicts with stored rows")
        }))?;
    Ok(rows.into_iter().next())
}

/// Deletes the resource group `name` with its associations; false when there is none. Refused
/// while agents, sessions, kernels or endpoints belong to it.
pub async fn delete(db: &impl ConnectionTrait, name: &str) -> Result<bool, WriteError> {
    let deleted = scaling_groups::Entity::delete_many()
        .filter(scaling_groups::Column::Name.eq(name))
        .exec(db)
        .await
        .map_err(WriteError::from_statement(
            format!("deleting resource group {name:?}"),
            |_| {
                format!(
                    "scaling group {name:?} still has agents, sessions, kernels or endpoints; \
                     move or remove them first"
                )
            },
        ))?;
    Ok(deleted.rows_affected > 0)
}

/// Associates each of the resource groups `names` with `with`, all or none, in one transaction.
/// Refused when a name or `with` does not exist, or an association already does.
pub async fn associate(
    db: &impl TransactionTrait,
    names: &[String],
    with: &Associate,
) -> Result<(), WriteError> {
    let context = format!("associating resource groups {names:?} with {with}");
    let txn = db.begin().await.map_err(DbError::query(context.clone()))?;
    require_existing(&txn, names, with, &context).await?;
    let already = associated_among(&txn, names, with, &context).await?;
    if let Some(name) = already.first() {
        return Err(WriteError::Rejected(format!(
            "scaling group {name:?} is already associated with {with}"
        )));
    }
    if names.is_empty() {
        return Err(WriteError::Rejected("no scaling groups given".to_owned()));
    }
    let conflict = |_| format!("scaling groups {names:?} cannot be associated with {with}");
    match with {
        Associate::Domain(domain) => {
            sgroups_for_domains::Entity::insert_many(names.iter().map(|name| {
                sgroups_for_domains::ActiveModel {
                    id: ActiveValue::Set(Uuid::new_v4()),
                    scaling_group: ActiveValue::Set(name.clone()),
                    domain: ActiveValue::Set(domain.clone()),
                }
            }))
            .exec(&txn)
            .await
            .map_err(WriteError::from_statement(context.clone(), conflict))?;
        }
        Associate::Project(group) => {
            sgroups_for_groups::Entity::insert_many(names.iter().map(|name| {
                sgroups_for_groups::ActiveModel {
                    id: ActiveValue::Set(Uuid::new_v4()),
                    scaling_group: ActiveValue::Set(name.clone()),
                    group: ActiveValue::Set(*group),
                }
            }))
            .exec(&txn)
            .await
            .map_err(WriteError::from_statement(context.clone(), conflict))?;
        }
        Associate::Keypair(access_key) => {
            sgroups_for_keypairs::Entity::insert_many(names.iter().map(|name| {
                sgroups_for_keypairs::ActiveModel {
                    id: ActiveValue::Set(Uuid::new_v4()),
                    scaling_group: ActiveValue::Set(name.clone()),
                    access_key: ActiveValue::Set(access_key.clone()),
                }
            }))
            .exec(&txn)
            .await
            .map_err(WriteError::from_statement(context.clone(), conflict))?;
        }
    }
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(())
}

/// Removes the associations of the resource groups `names` with `with`, all or none, in one
/// transaction. Refused when a name or `with` does not exist, or a name is not associated.
pub async fn disassociate(
    db: &impl TransactionTrait,
    names: &[String],
    with: &Associate,
) -> Result<(), WriteError> {
    let context = format!("disassociating resource groups {names:?} from {with}");
    let txn = db.begin().await.map_err(DbError::query(context.clone()))?;
    require_existing(&txn, names, with, &context).await?;
    let associated = associated_among(&txn, names, with, &context).await?;
    if let Some(name) = names.iter().find(|name| !associated.contains(name)) {
        return Err(WriteError::Rejected(format!(
            "scaling group {name:?} is not associated with {with}"
        )));
    }
    if names.is_empty() {
        return Err(WriteError::Rejected("no scaling groups given".to_owned()));
    }
    delete_associations(&txn, Some(names), with, &context).await?;
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(())
}

/// Removes every association of `with` (a domain or a project); refused when it does not exist
/// or has none.
pub async fn disassociate_all(
    db: &impl TransactionTrait,
    with: &Associate,
) -> Result<(), WriteError> {
    let context = format!("disassociating every resource group from {with}");
    let txn = db.begin().await.map_err(DbError::query(context.clone()))?;
    require_existing(&txn, &[], with, &context).await?;
    if delete_associations(&txn, None, with, &context).await? == 0 {
        return Err(WriteError::Rejected(format!(
            "no scaling group is associated with {with}"
        )));
    }
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(())
}

/// Refuses, naming it, the first of `names` or `with` that does not exist.
async fn require_existing(
    db: &impl ConnectionTrait,
    names: &[String],
    with: &Associate,
    context: &str,
) -> Result<(), WriteError> {
    let found: Vec<String> = scaling_groups::Entity::find()
        .select_only()
        .column(scaling_groups::Column::Name)
        .filter(scaling_groups::Column::Name.is_in(names.iter().map(String::as_str)))
        .into_tuple()
        .all(db)
        .await
        .map_err(DbError::query(context.to_owned()))?;
    if let Some(missing) = names.iter().find(|name| !found.contains(name)) {
        return Err(WriteError::Rejected(format!(
            "no such scaling group {missing:?}"
        )));
    }
    let exists = match with {
        Associate::Domain(domain) => domains::Entity::find_by_id(domain.as_str())
            .count(db)
            .await
            .map(|count| count > 0),
        Associate::Project(group) => groups::Entity::find_by_id(*group)
            .count(db)
            .await
            .map(|count| count > 0),
        Associate::Keypair(access_key) => keypairs::Entity::find_by_id(access_key.as_str())
            .count(db)
            .await
            .map(|count| count > 0),
    }
    .map_err(DbError::query(context.to_owned()))?;
    if exists {
        Ok(())
    } else {
        Err(WriteError::Rejected(format!("no such {with}")))
    }
}

/// Which of `names` are associated with `with`.
async fn associated_among(
    db: &impl ConnectionTrait,
    names: &[String],
    with: &Associate,
    context: &str,
) -> Result<Vec<String>, DbError> {
    scaling_groups::Entity::find()
        .select_only()
        .column(scaling_groups::Column::Name)
        .filter(scaling_groups::Column::Name.is_in(names.iter().map(String::as_str)))
        .filter(scaling_groups::Column::Name.in_subquery(associated_names(with)))
        .order_by_asc(scaling_groups::Column::Name)
        .into_tuple()
        .all(db)
        .await
        .map_err(DbError::query(context.to_owned()))
}

/// Deletes the associations of `with`: those of `names`, or all; returns how many.
async fn delete_associations(
    db: &impl ConnectionTrait,
    names: Option<&[String]>,
    with: &Associate,
    context: &str,
) -> Result<u64, DbError> {
    let deleted = match with {
        Associate::Domain(domain) => {
            let mut delete = sgroups_for_domains::Entity::delete_many()
                .filter(sgroups_for_domains::Column::Domain.eq(domain.as_str()));
            if let Some(names) = names {
                delete = delete.filter(
                    sgroups_for_domains::Column::ScalingGroup
                        .is_in(names.iter().map(String::as_str)),
                );
            }
            delete.exec(db).await
        }
        Associate::Project(group) => {
            let mut delete = sgroups_for_groups::Entity::delete_many()
                .filter(sgroups_for_groups::Column::Group.eq(*group));
            if let Some(names) = names {
                delete = delete.filter(
                    sgroups_for_groups::Column::ScalingGroup
                        .is_in(names.iter().map(String::as_str)),
                );
            }
            delete.exec(db).await
        }
        Associate::Keypair(access_key) => {
            let mut delete = sgroups_for_keypairs::Entity::delete_many()
                .filter(sgroups_for_keypairs::Column::AccessKey.eq(access_key.as_str()));
            if let Some(names) = names {
                delete = delete.filter(
                    sgroups_for_keypairs::Column::ScalingGroup
                        .is_in(names.iter().map(String::as_str)),
                );
            }
            delete.exec(db).await
        }
    }
    .map_err(DbError::query(context.to_owned()))?;
    Ok(deleted.rows_affected)
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
