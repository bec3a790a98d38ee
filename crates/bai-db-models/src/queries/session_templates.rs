//! Session templates (`session_templates`): task templates that sessions are created from, and
//! cluster templates that name task templates per role. A template is never deleted: deleting one
//! clears `is_active`, and every read here skips inactive rows.
//!
//! Listings are ordered by `created_at`, then `id`, so that templates created in the same
//! transaction (one `created_at`) still come in a stable order.
//!
//! Unlike the reference, which checks no ownership on reads and writes by id, a template is read
//! only by those who may list it, and changed or deactivated only by its owner, a domain admin
//! of its project's domain or a superadmin, each checked in the statement's own `WHERE`.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use sea_orm::prelude::{Json, Uuid};
use sea_orm::sea_query::{Expr, Query, SelectStatement};
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use crate::entities::enums::TemplateType;
use crate::entities::{association_groups_users, groups, session_templates, users};
use crate::error::{DbError, WriteError};

/// What a requester's role lets it reach beyond its own templates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authority {
    /// Every template, and any owner for one.
    Superadmin,
    /// The templates of the projects of this domain, and its users and projects as owners.
    DomainAdmin(String),
    /// The templates of the projects the requester belongs to (to read, not to change).
    User,
}

/// Who reads or changes templates: the user whose templates are its own (the acting owner when
/// changing on behalf of someone), and the requester's authority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requester {
    pub user_uuid: Uuid,
    pub authority: Authority,
}

/// The requester a listing is for and which of what it may see it lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListScope {
    pub requester: Requester,
    /// Every active template, whoever owns it (a superadmin's `all`).
    pub all: bool,
    /// Only templates of this project.
    pub group_id: Option<Uuid>,
}

/// One listed template, with the owner's e-mail and the project's name where the reference
/// shows them.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedTemplate {
    pub row: session_templates::Model,
    pub is_owner: bool,
    pub user_email: Option<String>,
    pub group_name: Option<String>,
}

/// The active templates of `kind` that `scope` may see. With `all`: every one, ordered by
/// `created_at` then `id`, the owner flag set for the requester's own. Otherwise the reference's
/// `query_accessible_session_templates`: the requester's own templates first (owner's e-mail, no
/// project name), then the other users' templates of the visible projects (project name, no
/// e-mail; owner flag for a domain admin), each part ordered by `created_at` then `id`.
pub async fn list(
    db: &impl ConnectionTrait,
    kind: TemplateType,
    scope: &ListScope,
) -> Result<Vec<ListedTemplate>, DbError> {
    let requester = &scope.requester;
    let mut query = session_templates::Entity::find()
        .filter(session_templates::Column::IsActive.eq(true))
        .filter(session_templates::Column::Type.eq(kind))
        .filter(visible(requester, scope.all))
        .order_by_asc(session_templates::Column::CreatedAt)
        .order_by_asc(session_templates::Column::Id);
    if let Some(group_id) = scope.group_id.filter(|_| !scope.all) {
        query = query.filter(session_templates::Column::GroupId.eq(group_id));
    }
    let rows = query
        .all(db)
        .await
        .map_err(DbError::query("listing session templates"))?;
    if scope.all {
        let emails = user_emails(db, &rows).await?;
        let names = group_names(db, &rows).await?;
        return Ok(rows
            .into_iter()
            .map(|row| ListedTemplate {
                is_owner: row.user_uuid == requester.user_uuid,
                user_email: emails.get(&row.user_uuid).cloned(),
                group_name: row.group_id.and_then(|id| names.get(&id).cloned()),
                row,
            })
            .collect());
    }

    let (own, shared): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|row| row.user_uuid == requester.user_uuid);
    let emails = user_emails(db, &own).await?;
    let names = group_names(db, &shared).await?;
    let mut listed: Vec<ListedTemplate> = own
        .into_iter()
        .map(|row| ListedTemplate {
            is_owner: true,
            user_email: emails.get(&row.user_uuid).cloned(),
            group_name: None,
            row,
        })
        .collect();
    let domain_admin = matches!(requester.authority, Authority::DomainAdmin(_));
    listed.extend(shared.into_iter().map(|row| ListedTemplate {
        is_owner: domain_admin,
        user_email: None,
        group_name: row.group_id.and_then(|id| names.get(&id).cloned()),
        row,
    }));
    Ok(listed)
}

/// The templates `requester` may see: its own and those of [`reachable_projects`], or with
/// `everything` all of them. Listings and reads by id share it, so that a template one cannot
/// list one cannot read either.
fn visible(requester: &Requester, everything: bool) -> Condition {
    if everything {
        return Condition::all();
    }
    Condition::any()
        .add(session_templates::Column::UserUuid.eq(requester.user_uuid))
        .add(session_templates::Column::GroupId.in_subquery(reachable_projects(requester)))
}

/// The templates `requester` may change or deactivate: its own, a domain admin's those of its
/// domain's projects, a superadmin's all. A project member may read, not change, the others.
fn changeable(requester: &Requester) -> Condition {
    match requester.authority {
        Authority::Superadmin => Condition::all(),
        Authority::DomainAdmin(_) => visible(requester, false),
        Authority::User => {
            Condition::all().add(session_templates::Column::UserUuid.eq(requester.user_uuid))
        }
    }
}

/// The ids of the projects whose templates `requester` sees and which it may give a template
/// to: a domain admin's, every project of its domain; anyone else's, the projects it belongs to
/// (the reference lists a superadmin's as a member's unless it asks for `all`).
fn reachable_projects(requester: &Requester) -> SelectStatement {
    match &requester.authority {
        Authority::DomainAdmin(domain_name) => Query::select()
            .column(groups::Column::Id)
            .from(groups::Entity)
            .and_where(groups::Column::DomainName.eq(domain_name.as_str()))
            .to_owned(),
        Authority::Superadmin | Authority::User => Query::select()
            .column(association_groups_users::Column::GroupId)
            .from(association_groups_users::Entity)
            .and_where(association_groups_users::Column::UserId.eq(requester.user_uuid))
            .to_owned(),
    }
}

async fn user_emails(
    db: &impl ConnectionTrait,
    rows: &[session_templates::Model],
) -> Result<HashMap<Uuid, String>, DbError> {
    let ids: HashSet<Uuid> = rows.iter().map(|row| row.user_uuid).collect();
    let pairs: Vec<(Uuid, Option<String>)> = users::Entity::find()
        .select_only()
        .column(users::Column::Uuid)
        .column(users::Column::Email)
        .filter(users::Column::Uuid.is_in(ids))
        .into_tuple()
        .all(db)
        .await
        .map_err(DbError::query("reading the templates' owners"))?;
    Ok(pairs
        .into_iter()
        .filter_map(|(id, email)| email.map(|email| (id, email)))
        .collect())
}

async fn group_names(
    db: &impl ConnectionTrait,
    rows: &[session_templates::Model],
) -> Result<HashMap<Uuid, String>, DbError> {
    let ids: HashSet<Uuid> = rows.iter().filter_map(|row| row.group_id).collect();
    let pairs: Vec<(Uuid, String)> = groups::Entity::find()
        .select_only()
        .column(groups::Column::Id)
        .column(groups::Column::Name)
        .filter(groups::Column::Id.is_in(ids))
        .into_tuple()
        .all(db)
        .await
        .map_err(DbError::query("reading the templates' projects"))?;
    Ok(pairs.into_iter().collect())
}

/// The active template `id`, of `kind` when given (`create-from-template` takes any kind), if
/// `requester` may see it (a superadmin: any).
pub async fn visible_active(
    db: &impl ConnectionTrait,
    id: Uuid,
    kind: Option<TemplateType>,
    requester: &Requester,
) -> Result<Option<session_templates::Model>, DbError> {
    let everything = requester.authority == Authority::Superadmin;
    let mut query = session_templates::Entity::find_by_id(id)
        .filter(session_templates::Column::IsActive.eq(true))
        .filter(visible(requester, everything));
    if let Some(kind) = kind {
        query = query.filter(session_templates::Column::Type.eq(kind));
    }
    query
        .one(db)
        .await
        .map_err(DbError::query(format!("reading session template {id}")))
}

/// The name of project `group_id` in `domain_name`, if it is there.
pub async fn project_name(
    db: &impl ConnectionTrait,
    domain_name: &str,
    group_id: Uuid,
) -> Result<Option<String>, DbError> {
    groups::Entity::find_by_id(group_id)
        .select_only()
        .column(groups::Column::Name)
        .filter(groups::Column::DomainName.eq(domain_name))
        .into_tuple()
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading the name of project {group_id}"
        )))
}

/// A template to store.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTemplate {
    pub kind: TemplateType,
    pub domain_name: String,
    pub group_id: Option<Uuid>,
    pub user_uuid: Uuid,
    pub name: String,
    pub template: Json,
}

/// What became of a creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The new templates' ids, in order.
    Created(Vec<Uuid>),
    /// A template would belong to a user or project beyond the requester's reach; nothing was
    /// written.
    OwnerOutOfReach,
}

/// Stores `templates` in one transaction (all or none) if every owner is within `requester`'s
/// reach (as for [`update`]). A domain, project or user that does not exist is refused.
pub async fn create(
    db: &impl TransactionTrait,
    requester: &Requester,
    templates: Vec<NewTemplate>,
) -> Result<CreateOutcome, WriteError> {
    let context = "creating session templates";
    let txn = db.begin().await.map_err(DbError::query(context))?;
    let now = Utc::now().fixed_offset();
    let mut ids = Vec::with_capacity(templates.len());
    for template in templates {
        let owner = TemplateOwner {
            group_id: template.group_id,
            user_uuid: template.user_uuid,
        };
        if !within_reach(&txn, requester, owner).await? {
            return Ok(CreateOutcome::OwnerOutOfReach);
        }
        let id = Uuid::new_v4();
        let row = session_templates::ActiveModel {
            id: ActiveValue::Set(id),
            created_at: ActiveValue::Set(Some(now)),
            is_active: ActiveValue::Set(Some(true)),
            domain_name: ActiveValue::Set(template.domain_name),
            group_id: ActiveValue::Set(template.group_id),
            user_uuid: ActiveValue::Set(template.user_uuid),
            r#type: ActiveValue::Set(template.kind),
            name: ActiveValue::Set(Some(template.name)),
            template: ActiveValue::Set(template.template),
        };
        session_templates::Entity::insert(row)
            .exec_without_returning(&txn)
            .await
            .map_err(WriteError::from_statement(context, |_| {
                "no such domain, project or user for the session template".to_owned()
            }))?;
        ids.push(id);
    }
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(CreateOutcome::Created(ids))
}

/// Who a template belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateOwner {
    pub group_id: Option<Uuid>,
    pub user_uuid: Uuid,
}

/// What an update writes over an active template.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateUpdate {
    /// `None`: the owner stays.
    pub owner: Option<TemplateOwner>,
    pub name: String,
    pub template: Json,
}

/// What became of an update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    Updated,
    /// No active template `id` of the kind that the requester may change.
    NotFound,
    /// An update gives the template to a user or project beyond the requester's reach; nothing
    /// was written.
    OwnerOutOfReach,
}

/// Rewrites the active template `id` of `kind` with each of `updates` in turn (the reference
/// applies every entry of the payload to the same row; the last one stays), in one transaction,
/// if `requester` may change it and every new owner is within its reach: a user may keep a
/// template only for itself in its own projects, a domain admin give it to the users and
/// projects of its domain, a superadmin to anyone.
pub async fn update(
    db: &impl TransactionTrait,
    id: Uuid,
    kind: TemplateType,
    requester: &Requester,
    updates: Vec<TemplateUpdate>,
) -> Result<UpdateOutcome, WriteError> {
    let context = format!("updating session template {id}");
    let txn = db.begin().await.map_err(DbError::query(context.clone()))?;
    // The row stays locked, and so changeable, until the transaction ends.
    let locked = session_templates::Entity::find_by_id(id)
        .select_only()
        .column(session_templates::Column::Id)
        .filter(session_templates::Column::IsActive.eq(true))
        .filter(session_templates::Column::Type.eq(kind))
        .filter(changeable(requester))
        .lock_exclusive()
        .into_tuple::<Uuid>()
        .one(&txn)
        .await
        .map_err(DbError::query(context.clone()))?;
    if locked.is_none() {
        return Ok(UpdateOutcome::NotFound);
    }
    for update in updates {
        let mut statement = session_templates::Entity::update_many();
        if let Some(owner) = update.owner {
            if !within_reach(&txn, requester, owner).await? {
                return Ok(UpdateOutcome::OwnerOutOfReach);
            }
            statement = statement
                .col_expr(
                    session_templates::Column::GroupId,
                    Expr::value(owner.group_id),
                )
                .col_expr(
                    session_templates::Column::UserUuid,
                    Expr::value(owner.user_uuid),
                );
        }
        statement
            .col_expr(session_templates::Column::Name, Expr::value(update.name))
            .col_expr(
                session_templates::Column::Template,
                Expr::value(update.template),
            )
            .filter(session_templates::Column::Id.eq(id))
            .exec(&txn)
            .await
            .map_err(WriteError::from_statement(context.clone(), |_| {
                "no such project or user for the session template".to_owned()
            }))?;
    }
    txn.commit().await.map_err(DbError::query(context))?;
    Ok(UpdateOutcome::Updated)
}

/// Whether `requester` may give a template to `owner`: a superadmin to anyone; a domain admin to
/// a user of its domain in one of its domain's projects; a user only to itself in one of its
/// projects.
async fn within_reach(
    db: &impl ConnectionTrait,
    requester: &Requester,
    owner: TemplateOwner,
) -> Result<bool, DbError> {
    let mut query = users::Entity::find().filter(users::Column::Uuid.eq(owner.user_uuid));
    match &requester.authority {
        Authority::Superadmin => return Ok(true),
        Authority::DomainAdmin(domain_name) => {
            query = query.filter(users::Column::DomainName.eq(domain_name.as_str()));
        }
        Authority::User if owner.user_uuid != requester.user_uuid => return Ok(false),
        Authority::User => {}
    }
    if let Some(group_id) = owner.group_id {
        query = query.filter(Expr::val(group_id).in_subquery(reachable_projects(requester)));
    }
    let found = query
        .count(db)
        .await
        .map_err(DbError::query("checking a session template's new owner"))?;
    Ok(found == 1)
}

/// Deactivates the active template `id` of `kind` if `requester` may change it; `Ok(false)`:
/// there is no such template it may change.
pub async fn deactivate(
    db: &impl ConnectionTrait,
    id: Uuid,
    kind: TemplateType,
    requester: &Requester,
) -> Result<bool, DbError> {
    let result = session_templates::Entity::update_many()
        .col_expr(session_templates::Column::IsActive, Expr::value(false))
        .filter(
            Condition::all()
                .add(session_templates::Column::Id.eq(id))
                .add(session_templates::Column::IsActive.eq(true))
                .add(session_templates::Column::Type.eq(kind))
                .add(changeable(requester)),
        )
        .exec(db)
        .await
        .map_err(DbError::query(format!("deleting session template {id}")))?;
    Ok(result.rows_affected == 1)
}
