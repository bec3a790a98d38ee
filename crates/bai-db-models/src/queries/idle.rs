//! What the idle checkers read (the reference's `IdleCheckerHost._do_idle_check`): the main
//! kernels of running sessions with their owners' creation times, the keypair resource policies'
//! `max_session_lifetime` and `idle_timeout`, the live kernels of a cluster session, and the
//! database's clock. Reads only.

use std::collections::HashMap;

use sea_orm::prelude::{DateTimeWithTimeZone, Uuid};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement,
};

use crate::entities::enums::{KernelStatus, SessionType};
use crate::entities::{kernels, keypair_resource_policies, keypairs, users};
use crate::error::DbError;

/// A session the idle checkers look at: its main kernel, RUNNING, and when its user was created.
#[derive(Clone, Debug, PartialEq)]
pub struct IdleCandidate {
    pub kernel: kernels::Model,
    pub user_created_at: Option<DateTimeWithTimeZone>,
}

/// The limits of a keypair's resource policy that the idle checkers apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdlePolicy {
    /// Seconds a session may live; 0 or less: forever.
    pub max_session_lifetime: i32,
    /// Seconds a session may stay idle; negative: the checker's own setting, 0: forever.
    pub idle_timeout: i64,
}

/// The main kernels of the sessions that run (RUNNING kernels, inference sessions excluded), with
/// their users' creation times; kernels whose user is gone are left out, as the reference's join
/// leaves them out.
pub async fn running_main_kernels(
    db: &impl ConnectionTrait,
) -> Result<Vec<IdleCandidate>, DbError> {
    let context = "reading the running sessions for the idle checks";
    let main_kernels = kernels::Entity::find()
        .filter(kernels::Column::Status.eq(KernelStatus::Running))
        .filter(kernels::Column::ClusterRole.eq("main"))
        .filter(kernels::Column::SessionType.ne(SessionType::Inference))
        .order_by_asc(kernels::Column::CreatedAt)
        .all(db)
        .await
        .map_err(DbError::query(context))?;
    if main_kernels.is_empty() {
        return Ok(Vec::new());
    }
    let user_ids: Vec<Uuid> = main_kernels.iter().map(|kernel| kernel.user_uuid).collect();
    let created: HashMap<Uuid, Option<DateTimeWithTimeZone>> = users::Entity::find()
        .select_only()
        .column(users::Column::Uuid)
        .column(users::Column::CreatedAt)
        .filter(users::Column::Uuid.is_in(user_ids))
        .into_tuple::<(Uuid, Option<DateTimeWithTimeZone>)>()
        .all(db)
        .await
        .map_err(DbError::query(context))?
        .into_iter()
        .collect();
    Ok(main_kernels
        .into_iter()
        .filter_map(|kernel| {
            let user_created_at = *created.get(&kernel.user_uuid)?;
            Some(IdleCandidate {
                kernel,
                user_created_at,
            })
        })
        .collect())
}

/// The idle limits of `access_key`'s resource policy; `None` when the keypair or its policy is
/// missing.
pub async fn keypair_idle_policy(
    db: &impl ConnectionTrait,
    access_key: &str,
) -> Result<Option<IdlePolicy>, DbError> {
    let context = || format!("reading the resource policy of keypair {access_key}");
    let policy: Option<String> = keypairs::Entity::find_by_id(access_key.to_owned())
        .select_only()
        .column(keypairs::Column::ResourcePolicy)
        .into_tuple()
        .one(db)
        .await
        .map_err(DbError::query(context()))?;
    let Some(policy) = policy else {
        return Ok(None);
    };
    let limits: Option<(i32, i64)> = keypair_resource_policies::Entity::find_by_id(policy)
        .select_only()
        .column(keypair_resource_policies::Column::MaxSessionLifetime)
        .column(keypair_resource_policies::Column::IdleTimeout)
        .into_tuple()
        .one(db)
        .await
        .map_err(DbError::query(context()))?;
    Ok(
        limits.map(|(max_session_lifetime, idle_timeout)| IdlePolicy {
            max_session_lifetime,
            idle_timeout,
        }),
    )
}

/// The RUNNING kernels of session `session_id`.
pub async fn live_kernel_ids(
    db: &impl ConnectionTrait,
    session_id: Uuid,
) -> Result<Vec<Uuid>, DbError> {
    kernels::Entity::find()
        .select_only()
        .column(kernels::Column::Id)
        .filter(kernels::Column::SessionId.eq(session_id))
        .filter(kernels::Column::Status.eq(KernelStatus::Running))
        .order_by_asc(kernels::Column::ClusterIdx)
        .into_tuple()
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "reading the live kernels of session {session_id}"
        )))
}

/// The database's clock (`now()`), which the reference measures lifetimes by.
pub async fn database_now(db: &impl ConnectionTrait) -> Result<DateTimeWithTimeZone, DbError> {
    let context = "reading the database's clock";
    let row = db
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            "SELECT now() AS now",
        ))
        .await
        .map_err(DbError::query(context))?;
    row.map(|row| row.try_get::<DateTimeWithTimeZone>("", "now"))
        .transpose()
        .map_err(DbError::query(context))?
        .ok_or_else(|| DbError::query(context)(sea_orm::DbErr::RecordNotFound("now()".to_owned())))
}
