//! What batch sessions need from the database: the main kernel a batch is started on, the
//! session's `result` once the agent reports how the batch ended, the nodes of the dependency
//! graph (`GET /session/{name}/dependency-graph`), and the user's `.logs` folder where the task
//! logs (`GET /session/_/logs`) are kept.
//!
//! Reads, and one single-row write (`result`); deciding what happens to the session is the
//! caller's.

use sea_orm::prelude::{DateTimeWithTimeZone, Uuid};
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::entities::enums::{
    KernelStatus, SessionResult, SessionType, VFolderOperationStatus, VFolderOwnershipType,
};
use crate::entities::{kernels, session_dependencies, sessions, vfolder_permissions, vfolders};
use crate::error::DbError;

/// The reference's `DEFAULT_ROLE`: the cluster role of a session's main kernel.
const MAIN_ROLE: &str = "main";
/// The name of the user folder the task logs are written to.
pub const LOGS_FOLDER: &str = ".logs";

/// What starting a batch needs: the session's type and its main kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchLaunch {
    pub session_type: SessionType,
    pub kernel_id: Uuid,
    /// The agent the main kernel runs on.
    pub agent: Option<String>,
    pub startup_command: Option<String>,
}

/// The session's type and main kernel, or `None` when the session has no main kernel.
pub async fn batch_launch(
    db: &impl ConnectionTrait,
    session_id: Uuid,
) -> Result<Option<BatchLaunch>, DbError> {
    let row: Option<(SessionType, Uuid, Option<String>, Option<String>)> = kernels::Entity::find()
        .select_only()
        .column(kernels::Column::SessionType)
        .column(kernels::Column::Id)
        .column(kernels::Column::Agent)
        .column(kernels::Column::StartupCommand)
        .filter(kernels::Column::SessionId.eq(session_id))
        .filter(kernels::Column::ClusterRole.eq(MAIN_ROLE))
        .into_tuple()
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading the main kernel of session {session_id}"
        )))?;
    Ok(row.map(
        |(session_type, kernel_id, agent, startup_command)| BatchLaunch {
            session_type,
            kernel_id,
            agent,
            startup_command,
        },
    ))
}

/// Sets the session's `result` (the reference's `SessionRow.set_session_result`); `false` when
/// there is no such session.
pub async fn set_session_result(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    result: SessionResult,
) -> Result<bool, DbError> {
    let updated = sessions::Entity::update_many()
        .col_expr(sessions::Column::Result, result.as_enum())
        .filter(sessions::Column::Id.eq(session_id))
        .exec(db)
        .await
        .map_err(DbError::query(format!(
            "setting the result of session {session_id}"
        )))?;
    Ok(updated.rows_affected > 0)
}

/// One node of a dependency graph, without its children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphNode {
    /// The status of the session's main kernel (of any of its kernels when it has no main one),
    /// and when it changed; `None` for a session without kernels.
    pub kernel: Option<(KernelStatus, Option<DateTimeWithTimeZone>)>,
    /// The sessions this one depends on, by id.
    pub depends_on: Vec<Uuid>,
}

/// What the dependency graph shows of session `session_id`.
pub async fn graph_node(db: &impl ConnectionTrait, session_id: Uuid) -> Result<GraphNode, DbError> {
    let kernel: Option<(KernelStatus, Option<DateTimeWithTimeZone>)> = kernels::Entity::find()
        .select_only()
        .column(kernels::Column::Status)
        .column(kernels::Column::StatusChanged)
        .filter(kernels::Column::SessionId.eq(session_id))
        .order_by_desc(kernels::Column::ClusterRole.eq(MAIN_ROLE))
        .order_by_asc(kernels::Column::ClusterIdx)
        .into_tuple()
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading the kernel status of session {session_id}"
        )))?;
    let depends_on: Vec<Uuid> = session_dependencies::Entity::find()
        .select_only()
        .column(session_dependencies::Column::DependsOn)
        .filter(session_dependencies::Column::SessionId.eq(session_id))
        .order_by_asc(session_dependencies::Column::DependsOn)
        .into_tuple()
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "reading the dependencies of session {session_id}"
        )))?;
    Ok(GraphNode { kernel, depends_on })
}

/// Where a user folder lives: the storage host (`proxy:volume`) and the folder's id there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderLocation {
    pub id: Uuid,
    pub host: String,
    pub quota_scope_id: String,
}

/// The `.logs` folder user `user_uuid` may read, as the reference's `query_accessible_vfolders`
/// finds it for user folders: the user's own first, then one shared with the user; folders whose
/// deletion completed are not accessible.
pub async fn logs_folder(
    db: &impl ConnectionTrait,
    user_uuid: Uuid,
) -> Result<Option<FolderLocation>, DbError> {
    let accessible = || {
        vfolders::Entity::find()
            .select_only()
            .column(vfolders::Column::Id)
            .column(vfolders::Column::Host)
            .column(vfolders::Column::QuotaScopeId)
            .filter(vfolders::Column::Name.eq(LOGS_FOLDER))
            .filter(vfolders::Column::Status.ne(VFolderOperationStatus::DeleteComplete))
    };
    let own: Option<(Uuid, String, String)> = accessible()
        .filter(vfolders::Column::User.eq(user_uuid))
        .into_tuple()
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "finding the {LOGS_FOLDER} folder of user {user_uuid}"
        )))?;
    let found = match own {
        Some(own) => Some(own),
        None => accessible()
            .inner_join(vfolder_permissions::Entity)
            .filter(vfolder_permissions::Column::User.eq(user_uuid))
            .filter(vfolders::Column::OwnershipType.eq(VFolderOwnershipType::User))
            .into_tuple()
            .one(db)
            .await
            .map_err(DbError::query(format!(
                "finding a {LOGS_FOLDER} folder shared with user {user_uuid}"
            )))?,
    };
    Ok(found.map(|(id, host, quota_scope_id)| FolderLocation {
        id,
        host,
        quota_scope_id,
    }))
}
