//! Batch sessions (spec §4.9, §3.6): a BATCH session runs its startup command once it is RUNNING
//! and ends on its own when the command does.
//!
//! When a BATCH session becomes RUNNING, [`trigger_batch`] asks the main kernel's agent to run
//! the command (`trigger_batch_execution`) — on 24.03 agents only: a 23.09 agent has no such
//! method and starts the command itself at the end of `create_kernel`, so it is never sent one.
//! The agent reports the command's end as `session_success` or `session_failure`;
//! [`BatchResults`] records the session's `result` and destroys the session (`task-finished`)
//! through the [`Destroyer`], as the reference's `handle_batch_result` does.
//!
//! Dependencies between sessions need nothing here: the scheduler's `dependencies` predicate
//! holds a dependent session until its dependencies are TERMINATED with SUCCESS, and the
//! `session_terminated` that ends a dependency triggers a scheduling round.
//!
//! It must not decide placement or know HTTP; the database is reached through
//! `bai_db_models::queries::session_batch`.

use std::sync::Arc;

use bai_agents::{AgentRpcCache, AgentRpcError};
use bai_db_models::DbError;
use bai_db_models::entities::enums::{SessionResult, SessionType};
use bai_db_models::queries::session_batch;
use bai_events::{Event, HandlerError, Handlers, Received};
use sea_orm::DatabaseConnection;
use sea_orm::prelude::Uuid;

use crate::{DestroyError, DestroyRequest, Destroyer};

/// The reason a finished batch session is destroyed with (`KernelLifecycleEventReason`).
pub const TASK_FINISHED: &str = "task-finished";

/// Why a batch could not be started or its end recorded.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Db(Box<DbError>),
    #[error("session {session_id}: its main kernel has no agent to run the batch on")]
    NoAgent { session_id: Uuid },
    #[error("session {session_id}: trigger_batch_execution: {source}")]
    Agent {
        session_id: Uuid,
        source: AgentRpcError,
    },
}

impl From<DbError> for BatchError {
    fn from(error: DbError) -> Self {
        BatchError::Db(Box::new(error))
    }
}

/// What [`trigger_batch`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchTrigger {
    /// The session is not a batch session (or has no main kernel): nothing to start.
    NotBatch,
    /// `trigger_batch_execution` was sent to the agent and accepted.
    Sent { agent: String },
    /// The agent is older than 24.03: it started the command itself, nothing was sent.
    StartedByAgent { agent: String, version: String },
}

/// Starts the batch of session `session_id` (just RUNNING) on its main kernel's agent, as the
/// reference's `trigger_batch_execution`: `(session id, main kernel id, startup command or "")`.
pub async fn trigger_batch(
    db: &DatabaseConnection,
    rpc: &AgentRpcCache,
    session_id: Uuid,
) -> Result<BatchTrigger, BatchError> {
    let Some(launch) = session_batch::batch_launch(db, session_id).await? else {
        return Ok(BatchTrigger::NotBatch);
    };
    if launch.session_type != SessionType::Batch {
        return Ok(BatchTrigger::NotBatch);
    }
    let agent = launch.agent.ok_or(BatchError::NoAgent { session_id })?;
    let (session, kernel) = (session_id.to_string(), launch.kernel_id.to_string());
    let command = launch.startup_command.unwrap_or_default();
    let older = rpc
        .call(&agent, |connection| async move {
            // The version comes from the agent's row: a 23.09 agent runs the command on its own
            // and must not be asked (its method table lacks the call).
            let version = connection.version();
            if !version.is_24_03_or_newer() {
                return Ok(Some(version.as_str().to_owned()));
            }
            connection
                .trigger_batch_execution(&session, &kernel, &command)
                .await
                .map(|_| None)
        })
        .await
        .map_err(|source| BatchError::Agent { session_id, source })?;
    Ok(match older {
        None => BatchTrigger::Sent { agent },
        Some(version) => BatchTrigger::StartedByAgent { agent, version },
    })
}

/// [`trigger_batch`] for a session that just became RUNNING, its outcome logged: a failure
/// leaves the session RUNNING, as the reference leaves it (its `trigger_batch_execution` raises
/// into the event handler, which logs it).
pub(crate) async fn start_batch_after_running(
    db: &DatabaseConnection,
    rpc: Option<&AgentRpcCache>,
    session_id: Uuid,
) {
    let Some(rpc) = rpc else {
        match session_batch::batch_launch(db, session_id).await {
            Ok(Some(launch)) if launch.session_type == SessionType::Batch => {
                tracing::warn!(session.id = %session_id, "a batch session is RUNNING but its batch is not started: no agent connections here");
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(session.id = %session_id, "cannot read whether the session is a batch: {error}");
            }
        }
        return;
    };
    match trigger_batch(db, rpc, session_id).await {
        Ok(BatchTrigger::NotBatch) => {}
        Ok(BatchTrigger::Sent { agent }) => {
            tracing::debug!(session.id = %session_id, agent.id = agent, "the batch is started on its agent");
        }
        Ok(BatchTrigger::StartedByAgent { agent, version }) => {
            tracing::debug!(session.id = %session_id, agent.id = agent, agent.version = version, "the agent starts the batch itself");
        }
        Err(error) => {
            tracing::error!(session.id = %session_id, "the batch of a RUNNING session was not started: {error}");
        }
    }
}

/// Records how batches ended and ends their sessions.
#[derive(Clone, Debug)]
pub struct BatchResults {
    db: DatabaseConnection,
    destroyer: Destroyer,
}

impl BatchResults {
    pub fn new(db: DatabaseConnection, destroyer: Destroyer) -> BatchResults {
        BatchResults { db, destroyer }
    }

    /// `session_success` (`succeeded`) or `session_failure` of session `session_id`: its `result`
    /// is SUCCESS or FAILURE, and the session is destroyed (`task-finished`). The exit code is
    /// not stored, as the reference does not store it. A session already over keeps its end; a
    /// session that may not be destroyed now is logged.
    pub async fn batch_finished(
        &self,
        session_id: Uuid,
        succeeded: bool,
    ) -> Result<(), BatchError> {
        let result = if succeeded {
            SessionResult::Success
        } else {
            SessionResult::Failure
        };
        if !session_batch::set_session_result(&self.db, session_id, result).await? {
            tracing::debug!(session.id = %session_id, "a batch result for a session that does not exist");
            return Ok(());
        }
        let request = DestroyRequest {
            forced: false,
            reason: Some(TASK_FINISHED),
            superadmin: false,
        };
        match self.destroyer.destroy(session_id, request).await {
            Ok(_) | Err(DestroyError::NotFound(_)) => Ok(()),
            Err(DestroyError::Forbidden(message)) => {
                tracing::info!(session.id = %session_id, "a finished batch session is not destroyed: {message}");
                Ok(())
            }
            Err(DestroyError::Db(error)) => Err(BatchError::Db(error)),
        }
    }

    async fn handle(&self, received: &Received) -> Result<(), HandlerError> {
        let outcome = match &received.event {
            Event::SessionSuccess(event) => self.batch_finished(event.session_id, true).await,
            Event::SessionFailure(event) => self.batch_finished(event.session_id, false).await,
            _ => Ok(()),
        };
        outcome.map_err(HandlerError::from)
    }
}

/// The handlers of `session_success` and `session_failure` (the reference's
/// `handle_batch_result`), for a consumer of `bai-events`: one manager process handles each.
pub fn batch_handlers(results: &Arc<BatchResults>, into: &mut Handlers) {
    for event in ["session_success", "session_failure"] {
        let results = Arc::clone(results);
        into.on(event, "handle_batch_result", move |received| {
            let results = Arc::clone(&results);
            async move { results.handle(&received).await }
        });
    }
}
