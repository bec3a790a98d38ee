//! Restarting a running session (the reference's `restart_session`): the session and its kernels
//! go RESTARTING, each kernel's agent gets `restart_kernel(session_id, kernel_id, {})` (an empty
//! `updated_config`: the agent restarts the kernel with the configuration it stored when it
//! created it), each kernel goes RUNNING again with the container and ports its agent answered,
//! then the session goes RUNNING and `session_started` is announced.
//!
//! As in the reference, a kernel whose agent fails the call does not fail the restart: it is
//! logged, and the kernel is RUNNING again as it was (the reference leaves its row untouched).

use std::sync::Arc;
use std::time::Duration;

use bai_agent_rpc::AgentMethod;
use bai_agents::AgentRpcCache;
use bai_db_models::DbError;
use bai_db_models::entities::enums::{KernelStatus, SessionStatus};
use bai_db_models::queries::session_lifecycle;
use bai_db_models::queries::session_lifecycle::KernelContainer;
use bai_db_models::queries::session_ops::{self, RestartStart, RestartingKernel};
use bai_events::{Event, EventProducer, SessionCreation};
use sea_orm::DatabaseConnection;
use sea_orm::prelude::Uuid;
use tokio::task::JoinSet;

use crate::lifecycle::kernel_container;
use crate::status::{kernel_may_go, session_may_go, session_status_from_kernels};

/// How long one `restart_kernel` may take. The reference waits without limit; the real agent
/// waits up to 60 s for the old container to go, then creates the new one.
const RESTART_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Why a session was not restarted.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    #[error(transparent)]
    Db(Box<DbError>),
    #[error("session {0} does not exist")]
    NotFound(Uuid),
    /// Only a RUNNING session may go RESTARTING (the status transition map).
    #[error("session {session_id} is {status:?}, not RUNNING")]
    NotRunning {
        session_id: Uuid,
        status: SessionStatus,
    },
}

impl From<DbError> for RestartError {
    fn from(error: DbError) -> Self {
        RestartError::Db(Box::new(error))
    }
}

/// How one kernel's restart went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelRestart {
    /// Its agent restarted it; it is RUNNING with the new container and ports.
    Restarted(Uuid),
    /// Its agent could not be reached or failed the call (why); it is RUNNING as before.
    Failed { kernel_id: Uuid, error: String },
}

/// What a restart did: each restarted kernel's outcome, and the session's status at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartReport {
    pub kernels: Vec<KernelRestart>,
    /// `None` when the session changed meanwhile (destroyed while restarting) and was left alone.
    pub session_status: Option<SessionStatus>,
}

/// Restarts sessions through their agents.
#[derive(Clone, Debug)]
pub struct Restarter {
    db: DatabaseConnection,
    producer: EventProducer,
    rpc: Arc<AgentRpcCache>,
}

impl Restarter {
    pub fn new(
        db: DatabaseConnection,
        producer: EventProducer,
        rpc: Arc<AgentRpcCache>,
    ) -> Restarter {
        Restarter { db, producer, rpc }
    }

    /// Restarts session `session_id`; returns once every kernel's agent answered (or failed).
    #[tracing::instrument(name = "session.restart", skip(self), fields(session.id = %session_id))]
    pub async fn restart(&self, session_id: Uuid) -> Result<RestartReport, RestartError> {
        let started = session_ops::begin_restart(
            &self.db,
            session_id,
            |status| session_may_go(status, SessionStatus::Restarting),
            |status| kernel_may_go(status, KernelStatus::Restarting),
        )
        .await?;
        let kernels = match started {
            RestartStart::Restarting(kernels) => kernels,
            RestartStart::Refused(status) => {
                return Err(RestartError::NotRunning { session_id, status });
            }
            RestartStart::Gone => return Err(RestartError::NotFound(session_id)),
        };
        let mut calls = JoinSet::new();
        for kernel in kernels.into_iter().filter(|kernel| kernel.restarting) {
            let this = self.clone();
            calls.spawn(async move { this.restart_kernel(session_id, kernel).await });
        }
        let mut outcomes = Vec::new();
        while let Some(joined) = calls.join_next().await {
            match joined {
                Ok(outcome) => outcomes.push(outcome?),
                Err(error) => tracing::error!("a kernel's restart task failed: {error}"),
            }
        }
        let session_status = session_lifecycle::recompute_session_status(
            &self.db,
            session_id,
            None,
            |current, kernels| {
                if current != SessionStatus::Restarting {
                    return None;
                }
                let derived = kernels.main.map_or(SessionStatus::Running, |main| {
                    session_status_from_kernels(main, kernels.siblings.iter().copied())
                });
                Some(if session_may_go(current, derived) {
                    derived
                } else {
                    SessionStatus::Running
                })
            },
        )
        .await?;
        if session_status == Some(SessionStatus::Running) {
            let creation_id = session_lifecycle::creation_id(&self.db, session_id).await?;
            let event = Event::SessionStarted(SessionCreation {
                session_id,
                creation_id: creation_id.unwrap_or_default(),
                reason: String::new(),
            });
            if let Err(error) = self.producer.produce(&event, "manager").await {
                tracing::warn!("announcing {}: {error}", event.name());
            }
            // A restarted batch session runs its startup command again, as the reference's does.
            crate::batch::start_batch_after_running(&self.db, Some(&self.rpc), session_id).await;
        }
        Ok(RestartReport {
            kernels: outcomes,
            session_status,
        })
    }

    /// One kernel: `restart_kernel` on its agent, then RUNNING with what the agent answered, or
    /// RUNNING as before when the call failed.
    async fn restart_kernel(
        &self,
        session_id: Uuid,
        kernel: RestartingKernel,
    ) -> Result<KernelRestart, DbError> {
        let from_restarting = |status| status == KernelStatus::Restarting;
        match self.call_agent(session_id, &kernel).await {
            Ok(restarted) => {
                session_ops::kernel_restarted(&self.db, kernel.id, &restarted, from_restarting)
                    .await?;
                Ok(KernelRestart::Restarted(kernel.id))
            }
            Err(error) => {
                tracing::warn!(
                    kernel.id = %kernel.id,
                    agent.id = kernel.agent.as_deref().unwrap_or(""),
                    "restart_kernel failed; the kernel is left as it was: {error}"
                );
                session_lifecycle::set_kernel_status(
                    &self.db,
                    kernel.id,
                    KernelStatus::Running,
                    None,
                    from_restarting,
                )
                .await?;
                Ok(KernelRestart::Failed {
                    kernel_id: kernel.id,
                    error,
                })
            }
        }
    }

    async fn call_agent(
        &self,
        session_id: Uuid,
        kernel: &RestartingKernel,
    ) -> Result<KernelContainer, String> {
        let Some(agent) = kernel.agent.as_deref() else {
            return Err("the kernel has no agent".to_owned());
        };
        let arguments = vec![
            rmpv::Value::from(session_id.to_string()),
            rmpv::Value::from(kernel.id.to_string()),
            rmpv::Value::Map(Vec::new()),
        ];
        let answer = self
            .rpc
            .call(agent, |connection| async move {
                connection
                    .invoke_with_timeout(
                        AgentMethod::RestartKernel,
                        arguments,
                        Vec::new(),
                        Some(RESTART_TIMEOUT),
                    )
                    .await
            })
            .await
            .map_err(|error| error.to_string())?;
        restarted_kernel(&bai_events::to_json(&answer))
    }
}

/// The agent's answer to `restart_kernel`: `{container_id, repl_in_port, repl_out_port,
/// stdin_port, stdout_port, service_ports}`.
fn restarted_kernel(answer: &serde_json::Value) -> Result<KernelContainer, String> {
    kernel_container(answer).map_err(|detail| format!("restart_kernel's answer: {detail}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::restarted_kernel;

    #[test]
    fn the_agents_answer_gives_the_new_container_and_ports() {
        let restarted = restarted_kernel(&json!({
            "container_id": "c0ffee", "repl_in_port": 2000, "repl_out_port": 2001,
            "stdin_port": 2002, "stdout_port": 2003,
            "service_ports": [{"name": "jupyter", "protocol": "http"}],
        }))
        .expect("a full answer");
        assert_eq!(restarted.container_id.as_deref(), Some("c0ffee"));
        assert_eq!(
            (
                restarted.repl_in_port,
                restarted.repl_out_port,
                restarted.stdin_port,
                restarted.stdout_port
            ),
            (2000, 2001, 2002, 2003)
        );
        assert_eq!(restarted.service_ports[0]["name"], "jupyter");
        let missing =
            restarted_kernel(&json!({"container_id": "c0ffee"})).expect_err("ports are required");
        assert!(missing.contains("repl_in_port"), "{missing}");
    }
}
