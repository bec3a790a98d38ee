//! Destroying a session (spec §4.10, the reference's `destroy_session`): what may be destroyed in
//! which status, written in one transaction with the agents' occupancy recomputed, then
//! `destroy_kernel` on each agent that holds a kernel, and the lifecycle events. The agents'
//! `kernel_terminated` (and ours, sent after each agent answered, as the reference sends it) take
//! the kernels to TERMINATED through [`Lifecycle`](crate::Lifecycle), and the session with them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bai_agents::AgentRpcCache;
use bai_db_models::DbError;
use bai_db_models::entities::enums::{KernelStatus, SessionStatus};
use bai_db_models::entities::{kernels, sessions};
use bai_db_models::queries::session_destroy::{self, DestroyPlan, Destroyed, KernelChange};
use bai_events::{
    Event, EventProducer, KernelCreation, KernelTermination, SessionCreation, SessionTermination,
};
use bai_redis::StatDb;
use sea_orm::DatabaseConnection;
use sea_orm::prelude::Uuid;
use serde_json::{Value, json};
use tokio::task::JoinSet;

/// The reasons of a destroy the caller did not name (`KernelLifecycleEventReason`).
pub const USER_REQUESTED: &str = "user-requested";
pub const FORCE_TERMINATED: &str = "force-terminated";
/// How long one `destroy_kernel` may take (the agent answers once the container is gone).
const DESTROY_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Why a session was not destroyed.
#[derive(Debug, thiserror::Error)]
pub enum DestroyError {
    #[error(transparent)]
    Db(Box<DbError>),
    #[error("session {0} does not exist")]
    NotFound(Uuid),
    /// The reference's `GenericForbidden`, with its message.
    #[error("{0}")]
    Forbidden(&'static str),
}

impl From<DbError> for DestroyError {
    fn from(error: DbError) -> Self {
        DestroyError::Db(Box::new(error))
    }
}

/// Who asks, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestroyRequest<'a> {
    pub forced: bool,
    /// `None`: `force-terminated` when forced, else `user-requested`.
    pub reason: Option<&'a str>,
    /// The caller's role is `superadmin`.
    pub superadmin: bool,
}

/// Destroys sessions.
#[derive(Clone, Debug)]
pub struct Destroyer {
    db: DatabaseConnection,
    producer: EventProducer,
    stat: StatDb,
    rpc: Arc<AgentRpcCache>,
}

impl Destroyer {
    pub fn new(
        db: DatabaseConnection,
        producer: EventProducer,
        stat: StatDb,
        rpc: Arc<AgentRpcCache>,
    ) -> Destroyer {
        Destroyer {
            db,
            producer,
            stat,
            rpc,
        }
    }

    /// Destroys session `session_id`; returns the reference's answer (`stats`): the main
    /// kernel's last statistics with `"status"`, or `{}` when a superadmin's force only changed
    /// the database.
    #[tracing::instrument(name = "destroy_session", skip_all, fields(session_id = %session_id))]
    pub async fn destroy(
        &self,
        session_id: Uuid,
        request: DestroyRequest<'_>,
    ) -> Result<Value, DestroyError> {
        let reason = request.reason.unwrap_or(if request.forced {
            FORCE_TERMINATED
        } else {
            USER_REQUESTED
        });
        let mut effects = Effects::default();
        let outcome = session_destroy::destroy_session(
            &self.db,
            session_id,
            |session, kernels| {
                let (plan, decided) = plan_destroy(session, kernels, request, reason)?;
                effects = decided;
                Ok(plan)
            },
            crate::lifecycle::sum_slots,
        )
        .await?;
        let destroyed: Destroyed = match outcome {
            None => return Err(DestroyError::NotFound(session_id)),
            Some(Err(message)) => return Err(DestroyError::Forbidden(message)),
            Some(Ok(destroyed)) => destroyed,
        };
        crate::lifecycle::sync_concurrency(
            &self.db,
            &self.stat,
            destroyed.session.access_key.clone(),
        )
        .await;
        for event in &effects.events {
            self.announce(event).await;
        }
        let mut calls = JoinSet::new();
        for (agent, kernel_ids) in &effects.destroy_on {
            for kernel_id in kernel_ids {
                let rpc = Arc::clone(&self.rpc);
                let (agent, kernel_id, reason) = (agent.clone(), *kernel_id, reason.to_owned());
                calls.spawn(async move {
                    let outcome = rpc
                        .call(&agent, |connection| async move {
                            connection
                                .invoke_with_timeout(
                                    bai_agent_rpc::AgentMethod::DestroyKernel,
                                    vec![
                                        rmpv::Value::from(kernel_id.to_string()),
                                        rmpv::Value::from(session_id.to_string()),
                                        rmpv::Value::from(reason.as_str()),
                                    ],
                                    Vec::new(),
                                    Some(DESTROY_TIMEOUT),
                                )
                                .await
                        })
                        .await;
                    if let Err(error) = outcome {
                        tracing::warn!(kernel.id = %kernel_id, agent.id = agent, "destroy_kernel failed; the kernel is marked terminated anyway: {error}");
                    }
                });
            }
        }
        while calls.join_next().await.is_some() {}
        for kernel_id in effects.destroy_on.values().flatten() {
            self.announce(&Event::KernelTerminated(KernelTermination {
                kernel_id: *kernel_id,
                session_id,
                reason: reason.to_owned(),
                exit_code: -1,
            }))
            .await;
        }
        Ok(match effects.stat {
            MainStat::Empty => json!({}),
            MainStat::Cancelled => json!({"status": "cancelled"}),
            MainStat::Terminated => {
                let main = destroyed
                    .kernels
                    .iter()
                    .find(|kernel| kernel.cluster_role == "main");
                let mut stat = match main {
                    Some(main) => self
                        .stat
                        .live_stat(&main.id.to_string())
                        .await
                        .ok()
                        .flatten()
                        .and_then(|stat| stat.as_object().cloned())
                        .map(|mut stat| {
                            stat.insert("version".to_owned(), json!(2));
                            stat
                        })
                        .unwrap_or_default(),
                    None => serde_json::Map::new(),
                };
                stat.insert("status".to_owned(), json!("terminated"));
                Value::Object(stat)
            }
        })
    }

    /// Events are how other processes learn; a lost one is logged, not fatal to the destroy.
    async fn announce(&self, event: &Event) {
        if let Err(error) = self.producer.produce(event, "manager").await {
            tracing::warn!("announcing {}: {error}", event.name());
        }
    }
}

/// What the destroy does after its transaction.
#[derive(Debug, Default)]
struct Effects {
    events: Vec<Event>,
    /// `destroy_kernel` per agent.
    destroy_on: BTreeMap<String, Vec<Uuid>>,
    stat: MainStat,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum MainStat {
    #[default]
    Empty,
    Cancelled,
    Terminated,
}

/// The reference's rules: which statuses may be destroyed, how, and what follows.
fn plan_destroy(
    session: &sessions::Model,
    kernels: &[kernels::Model],
    request: DestroyRequest<'_>,
    reason: &str,
) -> Result<(DestroyPlan, Effects), &'static str> {
    let mut plan = DestroyPlan::default();
    let mut effects = Effects::default();
    let agents_of = || {
        kernels
            .iter()
            .filter_map(|kernel| kernel.agent.clone())
            .collect::<Vec<_>>()
    };
    // A superadmin's force that only changes the database.
    let database_only = |status: SessionStatus, kernel_status: KernelStatus| DestroyPlan {
        session: Some((status, FORCE_TERMINATED.to_owned())),
        kernels: kernels
            .iter()
            .map(|kernel| KernelChange {
                kernel_id: kernel.id,
                status: kernel_status,
                status_info: FORCE_TERMINATED.to_owned(),
                status_data: None,
            })
            .collect(),
        agents: agents_of(),
    };
    match session.status {
        SessionStatus::Pending => {
            plan.session = Some((SessionStatus::Cancelled, reason.to_owned()));
        }
        SessionStatus::Pulling => {
            if request.forced && request.superadmin {
                return Ok((
                    database_only(SessionStatus::Cancelled, KernelStatus::Cancelled),
                    effects,
                ));
            }
            return Err("Cannot destroy sessions in pulling status");
        }
        SessionStatus::Scheduled
        | SessionStatus::Preparing
        | SessionStatus::Terminating
        | SessionStatus::Error => {
            if !request.forced {
                return Err(
                    "Cannot destroy sessions in scheduled/preparing/terminating/error status",
                );
            }
            if request.superadmin {
                return Ok((
                    database_only(SessionStatus::Terminated, KernelStatus::Terminated),
                    effects,
                ));
            }
            plan.session = Some((SessionStatus::Terminating, reason.to_owned()));
        }
        SessionStatus::Terminated => {
            return Err("Cannot destroy sessions that has already been already terminated");
        }
        SessionStatus::Cancelled => {
            return Err("Cannot destroy sessions that has already been already cancelled");
        }
        _ => plan.session = Some((SessionStatus::Terminating, reason.to_owned())),
    }
    if plan.session.as_ref().map(|(status, _)| *status) == Some(SessionStatus::Terminating) {
        effects
            .events
            .push(Event::SessionTerminating(SessionTermination {
                session_id: session.id,
                reason: reason.to_owned(),
            }));
    }
    let creation = |kernel: &kernels::Model| KernelCreation {
        kernel_id: kernel.id,
        session_id: session.id,
        reason: reason.to_owned(),
        creation_info: json!({}),
    };
    for kernel in kernels {
        let main = kernel.cluster_role == "main";
        let change = |status, status_data| KernelChange {
            kernel_id: kernel.id,
            status,
            status_info: reason.to_owned(),
            status_data,
        };
        let mut on_agent = kernel.status != KernelStatus::Scheduled;
        match kernel.status {
            KernelStatus::Pending => {
                plan.kernels.push(change(KernelStatus::Cancelled, None));
                effects
                    .events
                    .push(Event::KernelCancelled(creation(kernel)));
                if main {
                    effects.stat = MainStat::Cancelled;
                    plan.session = Some((SessionStatus::Cancelled, reason.to_owned()));
                    effects
                        .events
                        .push(Event::SessionCancelled(SessionCreation {
                            session_id: session.id,
                            creation_id: session.creation_id.clone().unwrap_or_default(),
                            reason: reason.to_owned(),
                        }));
                }
                on_agent = false;
            }
            KernelStatus::Pulling => return Err("Cannot destroy kernels in pulling status"),
            KernelStatus::Scheduled
            | KernelStatus::Preparing
            | KernelStatus::Terminating
            | KernelStatus::Error => {
                if !request.forced {
                    return Err(
                        "Cannot destroy kernels in scheduled/preparing/terminating/error status",
                    );
                }
                plan.kernels.push(change(KernelStatus::Terminated, None));
                plan.agents.extend(kernel.agent.clone());
                // A kernel without a container has nothing for its agent to remove.
                on_agent &= kernel.container_id.is_some();
                if !on_agent {
                    effects
                        .events
                        .push(Event::KernelTerminated(KernelTermination {
                            kernel_id: kernel.id,
                            session_id: session.id,
                            reason: reason.to_owned(),
                            exit_code: -1,
                        }));
                }
            }
            _ => {
                plan.kernels.push(change(
                    KernelStatus::Terminating,
                    Some(json!({"kernel": {"exit_code": null}, "session": {"status": "terminating"}})),
                ));
                effects
                    .events
                    .push(Event::KernelTerminating(KernelTermination {
                        kernel_id: kernel.id,
                        session_id: session.id,
                        reason: reason.to_owned(),
                        exit_code: -1,
                    }));
            }
        }
        if kernel.status == KernelStatus::Pending {
            continue;
        }
        match (&kernel.agent, &kernel.agent_addr) {
            (Some(agent), Some(_)) if on_agent => {
                effects
                    .destroy_on
                    .entry(agent.clone())
                    .or_default()
                    .push(kernel.id);
                if main && effects.stat == MainStat::Empty {
                    effects.stat = MainStat::Terminated;
                }
            }
            (_, None) => {
                // Never placed: nothing to ask an agent, it ends here (unless ended above).
                let ended = plan.kernels.last().is_some_and(|change| {
                    change.kernel_id == kernel.id && change.status == KernelStatus::Terminated
                });
                if !ended {
                    plan.kernels.push(KernelChange {
                        kernel_id: kernel.id,
                        status: KernelStatus::Terminated,
                        status_info: "missing-agent-allocation".to_owned(),
                        status_data: None,
                    });
                    // The reference sends nothing here and leaves the session TERMINATING.
                    effects
                        .events
                        .push(Event::KernelTerminated(KernelTermination {
                            kernel_id: kernel.id,
                            session_id: session.id,
                            reason: "missing-agent-allocation".to_owned(),
                            exit_code: -1,
                        }));
                }
                if main {
                    effects.stat = MainStat::Terminated;
                }
            }
            _ => {}
        }
    }
    Ok((plan, effects))
}
