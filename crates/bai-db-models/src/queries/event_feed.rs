//! What the event feed to clients (`GET /events/session`) needs to know about a session it sees
//! on the bus for the first time: its name, owner, domain, project and its kernels' cluster roles,
//! read once for many sessions at a time (two statements: sessions, then their kernels).
//!
//! Read-only: it takes no lock and writes nothing.

use sea_orm::prelude::Uuid;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entities::{kernels, sessions};
use crate::error::DbError;

/// A session as the event feed filters and labels its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedSession {
    pub id: Uuid,
    pub name: Option<String>,
    pub access_key: Option<String>,
    pub domain_name: String,
    pub group_id: Uuid,
    pub user_uuid: Uuid,
    /// By cluster index.
    pub kernels: Vec<FeedKernel>,
}

/// A kernel of a [`FeedSession`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedKernel {
    pub id: Uuid,
    pub cluster_role: String,
    pub cluster_idx: i32,
}

/// The sessions of `ids` that exist, with their kernels, in no particular order.
pub async fn feed_sessions(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> Result<Vec<FeedSession>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let context = || format!("reading {} sessions for the event feed", ids.len());
    type SessionColumns = (Uuid, Option<String>, Option<String>, String, Uuid, Uuid);
    let rows: Vec<SessionColumns> = sessions::Entity::find()
        .select_only()
        .columns([
            sessions::Column::Id,
            sessions::Column::Name,
            sessions::Column::AccessKey,
            sessions::Column::DomainName,
            sessions::Column::GroupId,
            sessions::Column::UserUuid,
        ])
        .filter(sessions::Column::Id.is_in(ids.iter().copied()))
        .into_tuple()
        .all(db)
        .await
        .map_err(DbError::query(context()))?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let kernel_rows: Vec<(Uuid, Uuid, String, i32)> = kernels::Entity::find()
        .select_only()
        .columns([
            kernels::Column::SessionId,
            kernels::Column::Id,
            kernels::Column::ClusterRole,
            kernels::Column::ClusterIdx,
        ])
        .filter(kernels::Column::SessionId.is_in(rows.iter().map(|row| row.0)))
        .order_by_asc(kernels::Column::ClusterIdx)
        .into_tuple()
        .all(db)
        .await
        .map_err(DbError::query(context()))?;
    let mut found: Vec<FeedSession> = rows
        .into_iter()
        .map(
            |(id, name, access_key, domain_name, group_id, user_uuid)| FeedSession {
                id,
                name,
                access_key,
                domain_name,
                group_id,
                user_uuid,
                kernels: Vec::new(),
            },
        )
        .collect();
    for (session_id, id, cluster_role, cluster_idx) in kernel_rows {
        if let Some(session) = found.iter_mut().find(|session| session.id == session_id) {
            session.kernels.push(FeedKernel {
                id,
                cluster_role,
                cluster_idx,
            });
        }
    }
    Ok(found)
}
