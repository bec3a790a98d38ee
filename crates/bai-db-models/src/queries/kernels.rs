//! Kernels (the containers of compute sessions).

use sea_orm::prelude::Uuid;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};

use crate::queries::occupancy::AGENT_OCCUPYING_STATUSES;

use crate::entities::enums::KernelStatus;
use crate::entities::kernels;
use crate::error::DbError;

/// How many sessions are active, counted the reference's way for `/manager/status`: main kernels
/// (`cluster_role = 'main'`) that are not pending, cancelled or terminated.
pub async fn count_active_sessions(db: &impl ConnectionTrait) -> Result<u64, DbError> {
    kernels::Entity::find()
        .filter(kernels::Column::ClusterRole.eq("main"))
        .filter(kernels::Column::Status.is_not_in([
            KernelStatus::Terminated,
            KernelStatus::Pending,
            KernelStatus::Cancelled,
        ]))
        .count(db)
        .await
        .map_err(DbError::query("counting active sessions"))
}

/// How many kernels matching `owner` (a domain, project or user) still hold agent resources:
/// what a purge must wait for. `what` names the owner in the error.
pub async fn count_agent_occupying(
    db: &impl ConnectionTrait,
    owner: sea_orm::Condition,
    what: &str,
) -> Result<u64, DbError> {
    kernels::Entity::find()
        .filter(owner)
        .filter(kernels::Column::Status.is_in(AGENT_OCCUPYING_STATUSES))
        .count(db)
        .await
        .map_err(DbError::query(format!(
            "counting the active kernels of {what}"
        )))
}

/// The agent of session `session_id`'s main kernel when the session has a local cluster network
/// there: a single-node cluster (more than one kernel) without host networking. `None` for any
/// other session, or when there is no such session or agent.
pub async fn local_network_agent(
    db: &impl ConnectionTrait,
    session_id: Uuid,
) -> Result<Option<String>, DbError> {
    let main: Option<(String, i32, bool, Option<String>)> = kernels::Entity::find()
        .filter(kernels::Column::SessionId.eq(session_id))
        .filter(kernels::Column::ClusterRole.eq("main"))
        .select_only()
        .column(kernels::Column::ClusterMode)
        .column(kernels::Column::ClusterSize)
        .column(kernels::Column::UseHostNetwork)
        .column(kernels::Column::Agent)
        .into_tuple()
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading the cluster network of session {session_id}"
        )))?;
    Ok(main.and_then(|(mode, size, host_network, agent)| {
        (mode == "single-node" && size > 1 && !host_network)
            .then_some(agent)
            .flatten()
    }))
}

#[cfg(test)]
mod tests {
    use sea_orm::prelude::Uuid;

    use crate::entities::enums::KernelStatus;
    use crate::queries::test_rows::{self, TestKernel, TestSession};

    #[tokio::test]
    async fn counts_main_kernels_that_are_neither_pending_nor_over() {
        let (test, rows) = test_rows::database("q_kernels_active").await;
        let db = &test.connection;
        assert_eq!(super::count_active_sessions(db).await.expect("query"), 0);

        let kernels = [
            ("main", KernelStatus::Running),
            ("sub", KernelStatus::Running),
            ("main", KernelStatus::Pending),
            ("main", KernelStatus::Terminated),
            ("main", KernelStatus::Cancelled),
            ("main", KernelStatus::Preparing),
        ];
        TestSession {
            id: Uuid::parse_str("9a3f5e4c-7b1d-4c59-9a47-3c0b2f1e8d01").expect("uuid"),
            access_key: None,
            cluster_size: 2,
            kernels: kernels
                .into_iter()
                .map(|(role, status)| TestKernel {
                    role,
                    status: Some(status),
                    ..TestKernel::default()
                })
                .collect(),
            ..TestSession::default()
        }
        .insert(db, &rows)
        .await;
        assert_eq!(
            super::count_active_sessions(db).await.expect("query"),
            2,
            "RUNNING and PREPARING main kernels"
        );
    }
}
