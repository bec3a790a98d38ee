//! What `POST /session` reads and writes, and the reads and cancellation of `GET`/`DELETE
//! /session/{name}`: the owner of an access key and the project a session goes to
//! (`query_userinfo`), the sessions a name or id refers to (`SessionRow.match_sessions`), the
//! insertion of a PENDING session with its kernels and dependencies in one transaction, and the
//! cancellation of a PENDING session.

use sea_orm::prelude::{DateTimeWithTimeZone, Uuid};
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ActiveEnum, ActiveValue, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use crate::entities::enums::{KernelStatus, SessionStatus};
use crate::entities::{
    agents, association_groups_users, domains, groups, kernels, keypair_resource_policies,
    keypairs, session_dependencies, sessions, users,
};
use crate::error::DbError;

/// How many sessions a name or id may match before the reference stops looking.
const MAX_MATCHES: u64 = 10;

/// The keypair `access_key` with its owner and its resource policy.
#[derive(Clone, Debug, PartialEq)]
pub struct KeypairOwner {
    pub keypair: keypairs::Model,
    pub user: users::Model,
    pub policy: keypair_resource_policies::Model,
}

/// The keypair `access_key`, its user and resource policy; `None` when there is no such keypair
/// (or it has no user).
pub async fn keypair_owner(
    db: &impl ConnectionTrait,
    access_key: &str,
) -> Result<Option<KeypairOwner>, DbError> {
    let context = || format!("reading the owner of access key {access_key:?}");
    let Some((keypair, Some(user))) = keypairs::Entity::find_by_id(access_key)
        .find_also_related(users::Entity)
        .one(db)
        .await
        .map_err(DbError::query(context()))?
    else {
        return Ok(None);
    };
    let policy = keypair_resource_policies::Entity::find_by_id(keypair.resource_policy.clone())
        .one(db)
        .await
        .map_err(DbError::query(context()))?;
    Ok(policy.map(|policy| KeypairOwner {
        keypair,
        user,
        policy,
    }))
}

/// Whether the domain `name` exists and is active.
pub async fn is_active_domain(db: &impl ConnectionTrait, name: &str) -> Result<bool, DbError> {
    let count = domains::Entity::find()
        .filter(domains::Column::Name.eq(name))
        .filter(domains::Column::IsActive.eq(true))
        .count(db)
        .await
        .map_err(DbError::query(format!("reading domain {name:?}")))?;
    Ok(count > 0)
}

/// The id of the active project `name` of `domain`; with `member`, only if that user belongs to
/// it (what a user who is not an admin may use).
pub async fn active_project_id(
    db: &impl ConnectionTrait,
    domain: &str,
    name: &str,
    member: Option<Uuid>,
) -> Result<Option<Uuid>, DbError> {
    let mut query = groups::Entity::find()
        .select_only()
        .column(groups::Column::Id)
        .filter(groups::Column::DomainName.eq(domain))
        .filter(groups::Column::Name.eq(name))
        .filter(groups::Column::IsActive.eq(true));
    if let Some(user) = member {
        query = query
            .inner_join(association_groups_users::Entity)
            .filter(association_groups_users::Column::UserId.eq(user));
    }
    query
        .into_tuple::<Uuid>()
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading project {name:?} of domain {domain:?}"
        )))
}

/// The registries the domain `name` may pull from (`None`: no such domain).
pub async fn allowed_docker_registries(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<Vec<String>>, DbError> {
    domains::Entity::find_by_id(name)
        .select_only()
        .column(domains::Column::AllowedDockerRegistries)
        .into_tuple::<Vec<String>>()
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading the allowed registries of domain {name:?}"
        )))
}

/// The dotfiles (msgpack, as stored) of a project and of a domain.
pub async fn project_and_domain_dotfiles(
    db: &impl ConnectionTrait,
    project: Uuid,
    domain: &str,
) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>), DbError> {
    let context = format!("reading the dotfiles of project {project} and domain {domain:?}");
    let project_dotfiles = groups::Entity::find_by_id(project)
        .select_only()
        .column(groups::Column::Dotfiles)
        .into_tuple::<Vec<u8>>()
        .one(db)
        .await
        .map_err(DbError::query(context.clone()))?;
    let domain_dotfiles = domains::Entity::find_by_id(domain)
        .select_only()
        .column(domains::Column::Dotfiles)
        .into_tuple::<Vec<u8>>()
        .one(db)
        .await
        .map_err(DbError::query(context))?;
    Ok((project_dotfiles, domain_dotfiles))
}

/// The sessions `reference` names, as `SessionRow.match_sessions` finds them: when it reads as a
/// UUID, the session with that id (and, with `allow_prefix`, ids starting with it) first; else
/// (or when none has that id) the sessions of that name (with `allow_prefix`, names starting with
/// it). Only sessions of `access_key` when given; terminated and cancelled ones only with
/// `allow_stale`. Newest first, at most 10.
pub async fn match_sessions(
    db: &impl ConnectionTrait,
    reference: &str,
    access_key: Option<&str>,
    allow_stale: bool,
    allow_prefix: bool,
) -> Result<Vec<sessions::Model>, DbError> {
    let mut conditions: Vec<SimpleExpr> = Vec::new();
    if let Ok(id) = Uuid::parse_str(reference) {
        if allow_prefix {
            conditions.push(Expr::cust_with_values(
                "CAST(sessions.id AS VARCHAR) LIKE $1",
                [like_prefix(reference)],
            ));
        }
        conditions.push(sessions::Column::Id.eq(id));
    }
    conditions.push(if allow_prefix {
        Expr::cust_with_values(
            "CAST(sessions.name AS VARCHAR) LIKE $1",
            [like_prefix(reference)],
        )
    } else {
        sessions::Column::Name.eq(reference)
    });
    for condition in conditions {
        let mut query = sessions::Entity::find().filter(condition);
        if let Some(access_key) = access_key {
            query = query.filter(sessions::Column::AccessKey.eq(access_key));
        }
        if !allow_stale {
            query = query.filter(
                sessions::Column::Status
                    .is_not_in([SessionStatus::Cancelled, SessionStatus::Terminated]),
            );
        }
        let rows = query
            .order_by_desc(sessions::Column::CreatedAt)
            .limit(MAX_MATCHES)
            .all(db)
            .await
            .map_err(DbError::query(format!(
                "finding the sessions named {reference:?}"
            )))?;
        if !rows.is_empty() {
            return Ok(rows);
        }
    }
    Ok(Vec::new())
}

/// `text%` for LIKE, as the reference builds it (`%` and `_` in `text` are not escaped there
/// either).
fn like_prefix(text: &str) -> String {
    format!("{text}%")
}

/// The kernels of a session, the main one first, then by role and index.
pub async fn kernels_of(
    db: &impl ConnectionTrait,
    session_id: Uuid,
) -> Result<Vec<kernels::Model>, DbError> {
    kernels::Entity::find()
        .filter(kernels::Column::SessionId.eq(session_id))
        .order_by_asc(kernels::Column::ClusterRole)
        .order_by_asc(kernels::Column::ClusterIdx)
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "reading the kernels of session {session_id}"
        )))
}

/// A session to insert with status PENDING.
#[derive(Clone, Debug, PartialEq)]
pub struct NewSession {
    pub session: sessions::Model,
    /// The main kernel first.
    pub kernels: Vec<kernels::Model>,
    /// Session ids or names among the owner's sessions (of any status).
    pub dependencies: Vec<String>,
}

/// Why a session was not inserted.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueWriteError {
    /// A dependency names no session of the owner.
    #[error("Unknown session ID or name in the dependency list")]
    UnknownDependency(String),
    /// A dependency names more than one session of the owner.
    #[error("too many sessions match {reference:?}")]
    AmbiguousDependency {
        reference: String,
        matches: Vec<sessions::Model>,
    },
    /// A kernel is assigned to an agent that does not exist.
    #[error("No such agent: {0}")]
    NoSuchAgent(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Inserts the session, its kernels and its dependencies in one transaction. Dependencies are
/// resolved inside it (as the reference's `_enqueue` does), among the owner's sessions of any
/// status; `created_at` is the database's `now()`.
pub async fn enqueue<C: TransactionTrait>(
    db: &C,
    new: NewSession,
) -> Result<(), EnqueueWriteError> {
    let session_id = new.session.id;
    let context = || format!("enqueueing session {session_id}");
    let txn = db.begin().await.map_err(DbError::query(context()))?;
    let owner = new.session.access_key.clone();
    let mut depends_on = Vec::new();
    for reference in &new.dependencies {
        let mut matches = match_sessions(&txn, reference, owner.as_deref(), true, false).await?;
        match matches.len() {
            0 => return Err(EnqueueWriteError::UnknownDependency(reference.clone())),
            1 => depends_on.push(matches.remove(0).id),
            _ => {
                return Err(EnqueueWriteError::AmbiguousDependency {
                    reference: reference.clone(),
                    matches,
                });
            }
        }
    }
    for agent in new
        .kernels
        .iter()
        .filter_map(|kernel| kernel.agent.as_deref())
    {
        let found = agents::Entity::find_by_id(agent)
            .count(&txn)
            .await
            .map_err(DbError::query(context()))?;
        if found == 0 {
            return Err(EnqueueWriteError::NoSuchAgent(agent.to_owned()));
        }
    }
    let mut session = new.session.into_active_model();
    session.created_at = ActiveValue::NotSet;
    sessions::Entity::insert(session)
        .exec_without_returning(&txn)
        .await
        .map_err(DbError::query(context()))?;
    for kernel in new.kernels {
        let mut kernel = kernel.into_active_model();
        kernel.created_at = ActiveValue::NotSet;
        kernels::Entity::insert(kernel)
            .exec_without_returning(&txn)
            .await
            .map_err(DbError::query(context()))?;
    }
    depends_on.dedup();
    for depends_on in depends_on {
        session_dependencies::Entity::insert(session_dependencies::ActiveModel {
            session_id: ActiveValue::Set(session_id),
            depends_on: ActiveValue::Set(depends_on),
        })
        .on_conflict(
            sea_orm::sea_query::OnConflict::columns([
                session_dependencies::Column::SessionId,
                session_dependencies::Column::DependsOn,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&txn)
        .await
        .map_err(DbError::query(context()))?;
    }
    txn.commit().await.map_err(DbError::query(context()))?;
    Ok(())
}

/// What [`cancel_pending`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The session and these kernels (those that were PENDING) are now CANCELLED.
    Cancelled {
        creation_id: Option<String>,
        kernel_ids: Vec<Uuid>,
    },
    /// The session had left PENDING meanwhile; nothing was changed.
    NotPending(SessionStatus),
    /// The session no longer exists.
    Gone,
}

/// Cancels a PENDING session and its PENDING kernels in one transaction (the reference's
/// `destroy_session` for a PENDING session): status CANCELLED, `status_info` = `reason`,
/// `terminated_at` and `status_changed` (kernels) = `now`, `status_history.CANCELLED` = `now`.
pub async fn cancel_pending<C: TransactionTrait>(
    db: &C,
    session_id: Uuid,
    reason: &str,
    now: DateTimeWithTimeZone,
) -> Result<CancelOutcome, DbError> {
    let context = || format!("cancelling session {session_id}");
    let txn = db.begin().await.map_err(DbError::query(context()))?;
    let Some(session) = sessions::Entity::find_by_id(session_id)
        .lock_exclusive()
        .one(&txn)
        .await
        .map_err(DbError::query(context()))?
    else {
        return Ok(CancelOutcome::Gone);
    };
    if session.status != SessionStatus::Pending {
        return Ok(CancelOutcome::NotPending(session.status));
    }
    let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    let entry = serde_json::json!({ "CANCELLED": stamp });
    let history = |column: &str| {
        Expr::cust_with_values(
            format!("COALESCE({column}, '{{}}'::jsonb) || $1"),
            [entry.clone()],
        )
    };
    sessions::Entity::update_many()
        .col_expr(
            sessions::Column::Status,
            Expr::value(SessionStatus::Cancelled.as_enum()),
        )
        .col_expr(sessions::Column::StatusInfo, Expr::value(reason))
        .col_expr(sessions::Column::TerminatedAt, Expr::value(now))
        .col_expr(
            sessions::Column::StatusHistory,
            history("sessions.status_history"),
        )
        .filter(sessions::Column::Id.eq(session_id))
        .exec(&txn)
        .await
        .map_err(DbError::query(context()))?;
    let kernel_ids: Vec<Uuid> = kernels::Entity::find()
        .select_only()
        .column(kernels::Column::Id)
        .filter(
            Condition::all()
                .add(kernels::Column::SessionId.eq(session_id))
                .add(kernels::Column::Status.eq(KernelStatus::Pending)),
        )
        .order_by_asc(kernels::Column::ClusterRole)
        .order_by_asc(kernels::Column::ClusterIdx)
        .into_tuple()
        .all(&txn)
        .await
        .map_err(DbError::query(context()))?;
    kernels::Entity::update_many()
        .col_expr(
            kernels::Column::Status,
            Expr::value(KernelStatus::Cancelled.as_enum()),
        )
        .col_expr(kernels::Column::StatusInfo, Expr::value(reason))
        .col_expr(kernels::Column::StatusChanged, Expr::value(now))
        .col_expr(kernels::Column::TerminatedAt, Expr::value(now))
        .col_expr(
            kernels::Column::StatusHistory,
            history("kernels.status_history"),
        )
        .filter(kernels::Column::Id.is_in(kernel_ids.clone()))
        .exec(&txn)
        .await
        .map_err(DbError::query(context()))?;
    txn.commit().await.map_err(DbError::query(context()))?;
    Ok(CancelOutcome::Cancelled {
        creation_id: session.creation_id,
        kernel_ids,
    })
}

/// The sessions that depend on `session_id`, directly or through others
/// (`find_dependent_sessions`), ordered by id.
pub async fn dependents_of(
    db: &impl ConnectionTrait,
    session_id: Uuid,
) -> Result<Vec<Uuid>, DbError> {
    let mut found: Vec<Uuid> = Vec::new();
    let mut frontier = vec![session_id];
    while !frontier.is_empty() {
        let next: Vec<Uuid> = session_dependencies::Entity::find()
            .select_only()
            .column(session_dependencies::Column::SessionId)
            .filter(session_dependencies::Column::DependsOn.is_in(frontier.clone()))
            .into_tuple()
            .all(db)
            .await
            .map_err(DbError::query(format!(
                "reading the sessions that depend on {session_id}"
            )))?;
        frontier = next
            .into_iter()
            .filter(|id| *id != session_id && !found.contains(id))
            .collect();
        frontier.sort();
        frontier.dedup();
        found.extend(frontier.iter().copied());
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use sea_orm::{DatabaseConnection, EntityTrait};
    use serde_json::json;

    use super::*;
    use crate::queries::test_rows::{self, Rows, TestKernel, TestSession};

    /// A session named `name` of [`Rows::ACCESS_KEY`] in `status`, created `minutes_ago`, with a
    /// main kernel in the same status.
    async fn session(
        db: &DatabaseConnection,
        rows: &Rows,
        name: &str,
        status: SessionStatus,
        minutes_ago: i64,
    ) -> Uuid {
        let id = Uuid::new_v4();
        TestSession {
            id,
            creation_id: Some(creation_id(id)),
            name: Some(name.to_owned()),
            status,
            status_history: Some(json!({"PENDING": "2024-01-01T00:00:00+00:00"})),
            created_at: Some(
                (chrono::Utc::now() - chrono::Duration::minutes(minutes_ago)).fixed_offset(),
            ),
            kernels: vec![TestKernel::default()],
            ..TestSession::default()
        }
        .insert(db, rows)
        .await;
        id
    }

    /// A creation id (at most 32 characters) of the session `id`.
    fn creation_id(id: Uuid) -> String {
        id.simple().to_string()[..22].to_owned()
    }

    fn ids(sessions: &[sessions::Model]) -> Vec<Uuid> {
        sessions.iter().map(|session| session.id).collect()
    }

    #[tokio::test]
    async fn sessions_match_by_whole_id_or_exact_name_of_the_owner() {
        let (test, rows) = test_rows::database("session_enqueue_match").await;
        let db = &test.connection;
        let old = session(db, &rows, "train", SessionStatus::Terminated, 10).await;
        let newer = session(db, &rows, "train", SessionStatus::Pending, 5).await;
        let newest = session(db, &rows, "train", SessionStatus::Running, 1).await;
        let other = session(db, &rows, "trainer", SessionStatus::Pending, 1).await;
        let key = Some(Rows::ACCESS_KEY);

        let live = match_sessions(db, "train", key, false, false)
            .await
            .unwrap();
        assert_eq!(ids(&live), [newest, newer]);
        let all = match_sessions(db, "train", key, true, false).await.unwrap();
        assert_eq!(ids(&all), [newest, newer, old]);
        let prefixed = match_sessions(db, "trai", key, false, true).await.unwrap();
        assert_eq!(ids(&prefixed).len(), 3);
        assert!(
            match_sessions(db, "trai", key, false, false)
                .await
                .unwrap()
                .is_empty()
        );

        let by_id = match_sessions(db, &other.to_string(), key, false, false)
            .await
            .unwrap();
        assert_eq!(ids(&by_id), [other]);
        let short = &other.to_string()[..8];
        assert!(
            match_sessions(db, short, key, false, false)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            match_sessions(db, "train", Some("AKIANOBODYEXAMPLE000"), true, false)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            ids(&match_sessions(db, "train", None, false, false)
                .await
                .unwrap()),
            [newest, newer]
        );
    }

    #[tokio::test]
    async fn only_a_pending_session_is_cancelled_and_all_at_once() {
        let (test, rows) = test_rows::database("session_enqueue_cancel").await;
        let db = &test.connection;
        let pending = session(db, &rows, "wait", SessionStatus::Pending, 1).await;
        let running = session(db, &rows, "busy", SessionStatus::Running, 1).await;
        let now = chrono::Utc::now().fixed_offset();

        let outcome = cancel_pending(db, pending, "user-requested", now)
            .await
            .unwrap();
        let CancelOutcome::Cancelled {
            creation_id,
            kernel_ids,
        } = outcome
        else {
            panic!("not cancelled: {outcome:?}");
        };
        assert_eq!(creation_id, Some(super::tests::creation_id(pending)));
        assert_eq!(kernel_ids.len(), 1);
        let row = sessions::Entity::find_by_id(pending)
            .one(db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, SessionStatus::Cancelled);
        assert_eq!(row.status_info.as_deref(), Some("user-requested"));
        assert!(row.terminated_at.is_some());
        let history = row.status_history.unwrap();
        assert_eq!(history["PENDING"], "2024-01-01T00:00:00+00:00");
        assert!(history["CANCELLED"].is_string());
        let kernel = kernels::Entity::find_by_id(kernel_ids[0])
            .one(db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kernel.status, KernelStatus::Cancelled);
        assert!(kernel.status_changed.is_some() && kernel.terminated_at.is_some());
        assert!(kernel.status_history.unwrap()["CANCELLED"].is_string());

        assert_eq!(
            cancel_pending(db, running, "user-requested", now)
                .await
                .unwrap(),
            CancelOutcome::NotPending(SessionStatus::Running)
        );
        let row = sessions::Entity::find_by_id(running)
            .one(db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (row.status, row.status_info),
            (SessionStatus::Running, None)
        );
        assert_eq!(
            cancel_pending(db, Uuid::new_v4(), "user-requested", now)
                .await
                .unwrap(),
            CancelOutcome::Gone
        );
    }

    #[tokio::test]
    async fn an_unknown_dependency_leaves_no_rows() {
        let (test, rows) = test_rows::database("session_enqueue_rollback").await;
        let db = &test.connection;
        let first = session(db, &rows, "first", SessionStatus::Pending, 1).await;
        let mut template = sessions::Entity::find_by_id(first)
            .one(db)
            .await
            .unwrap()
            .unwrap();
        template.id = Uuid::new_v4();
        template.name = Some("second".to_owned());
        let mut kernel = kernels::Entity::find()
            .filter(kernels::Column::SessionId.eq(first))
            .one(db)
            .await
            .unwrap()
            .unwrap();
        kernel.id = Uuid::new_v4();
        kernel.session_id = template.id;
        let new = |dependencies: Vec<String>| NewSession {
            session: template.clone(),
            kernels: vec![kernel.clone()],
            dependencies,
        };
        let error = enqueue(db, new(vec!["first".to_owned(), "nope".to_owned()]))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, EnqueueWriteError::UnknownDependency(r) if r == "nope"),
            "{error}"
        );
        assert!(
            sessions::Entity::find_by_id(template.id)
                .one(db)
                .await
                .unwrap()
                .is_none()
        );

        enqueue(db, new(vec!["first".to_owned(), first.to_string()]))
            .await
            .unwrap();
        let dependencies = session_dependencies::Entity::find()
            .filter(session_dependencies::Column::SessionId.eq(template.id))
            .all(db)
            .await
            .unwrap();
        assert_eq!(dependencies.len(), 1);
        assert_eq!(dependents_of(db, first).await.unwrap(), [template.id]);
    }
}
