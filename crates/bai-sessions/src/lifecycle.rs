//! What the agents' kernel events do to sessions (spec §4.9, §4.10): `kernel_pulling` and
//! `kernel_creating` move a kernel on, `kernel_started` makes it RUNNING with what the agent
//! allocated, `kernel_terminated` releases its slots; after each, the session's status is
//! recomputed from its kernels, and `session_started` / `session_terminated` announce the two
//! ends.
//!
//! Unlike the reference, a session's status only ever moves by the transition map: a late
//! `kernel_pulling` does not pull a session back from TERMINATING, and a `kernel_started`
//! delivered twice adds its allocation to the session once. A kernel that starts when it is over
//! already (its session was destroyed or cancelled while the agent created it) is destroyed on
//! its agent, which would otherwise keep its container and slots for nobody.
//!
//! When an agent is lost (`agent_terminated("agent-lost")`), the sessions it was starting are
//! cancelled as failed to start, and the kernels it was destroying are terminated: neither would
//! ever hear from it again. Its RUNNING kernels are left alone, as the reference leaves them: the
//! agent may come back with its containers, and a user can still destroy them.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use bai_agents::AgentRpcCache;
use bai_db_models::DbError;
use bai_db_models::entities::ResourceSlot;
use bai_db_models::entities::enums::{KernelStatus, SessionStatus};
use bai_db_models::queries::kernels;
use bai_db_models::queries::scheduling::{self, PendingRows};
use bai_db_models::queries::session_faults;
use bai_db_models::queries::session_lifecycle::{
    self, KernelContainer, KernelStatuses, StartedKernel,
};
use bai_events::{
    Event, EventProducer, HandlerError, Handlers, KernelCreation, KernelTermination, Received,
    SessionCreation, SessionTermination,
};
use bai_redis::{EntryId, RedisError, StartClaims, StatDb, StreamDb};
use bai_scheduler::Slots;
use sea_orm::DatabaseConnection;
use sea_orm::prelude::Uuid;

use crate::start::local_network_name;
use crate::status::{kernel_may_go, session_may_go, session_status_from_kernels};

/// Why a kernel event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Db(Box<DbError>),
    #[error("kernel {kernel_id}: kernel_started carries an unusable creation_info: {detail}")]
    CreationInfo { kernel_id: Uuid, detail: String },
    #[error("announcing {event} of session {session_id}: {source}")]
    Produce {
        event: &'static str,
        session_id: Uuid,
        source: bai_redis::RedisError,
    },
    #[error("noting that the agent received session {session_id}'s start: {source}")]
    NoteReceived {
        session_id: Uuid,
        source: bai_redis::RedisError,
    },
}

impl From<DbError> for LifecycleError {
    fn from(error: DbError) -> Self {
        LifecycleError::Db(Box::new(error))
    }
}

/// The reason of the kernels a lost agent was destroying and had no reason recorded.
const AGENT_TERMINATION: &str = "agent-termination";
/// The reason a kernel that started too late is destroyed with on its agent.
const ALREADY_TERMINATED: &str = "already-terminated";

/// Applies kernel events to the database and announces session-level changes.
#[derive(Debug)]
pub struct Lifecycle {
    db: DatabaseConnection,
    producer: EventProducer,
    stat: StatDb,
    /// Where kernels that must go are destroyed; without it they are only logged.
    rpc: Option<Arc<AgentRpcCache>>,
    /// The event stream, read back when an entry is handled again (see [`Lifecycle::with_stream`]).
    stream: Option<StreamDb>,
    /// Where `kernel_preparing` is noted (see [`Lifecycle::with_start_claims`]).
    claims: Option<StartClaims>,
}

impl Lifecycle {
    /// `stat` (Redis database 0) holds the kernels' last statistics, kept on termination.
    pub fn new(db: DatabaseConnection, producer: EventProducer, stat: StatDb) -> Lifecycle {
        Lifecycle {
            db,
            producer,
            stat,
            rpc: None,
            stream: None,
            claims: None,
        }
    }

    /// Reads the stream back when a `kernel_started` is handled again for a session already
    /// RUNNING (the node that handled it first died after the session's commit): the session's
    /// `session_started` is announced unless the first run announced it.
    pub fn with_stream(mut self, stream: StreamDb) -> Lifecycle {
        self.stream = Some(stream);
        self
    }

    /// Notes every `kernel_preparing` (the agent received the session's start), so that no
    /// node's starter ever sends that session again (see the starter's recovery of stalled starts).
    pub fn with_start_claims(mut self, claims: StartClaims) -> Lifecycle {
        self.claims = Some(claims);
        self
    }

    /// Destroys, through `rpc`, the kernels that started for sessions already over and the
    /// kernels of a session a lost agent was starting that did start elsewhere.
    pub fn with_rpc_cache(mut self, rpc: Arc<AgentRpcCache>) -> Lifecycle {
        self.rpc = Some(rpc);
        self
    }

    /// `kernel_pulling`: the kernel is PULLING with the image as its `status_info`.
    #[tracing::instrument(name = "kernel_pulling", skip_all, fields(session_id = %event.session_id, kernel_id = %event.kernel_id))]
    pub async fn kernel_pulling(&self, event: &KernelCreation) -> Result<(), LifecycleError> {
        self.move_kernel(event, KernelStatus::Pulling).await
    }

    /// `kernel_creating`: the kernel is PREPARING again after its pull.
    #[tracing::instrument(name = "kernel_creating", skip_all, fields(session_id = %event.session_id, kernel_id = %event.kernel_id))]
    pub async fn kernel_creating(&self, event: &KernelCreation) -> Result<(), LifecycleError> {
        self.move_kernel(event, KernelStatus::Preparing).await
    }

    async fn move_kernel(
        &self,
        event: &KernelCreation,
        to: KernelStatus,
    ) -> Result<(), LifecycleError> {
        let reason = (!event.reason.is_empty()).then_some(event.reason.as_str());
        let moved =
            session_lifecycle::set_kernel_status(&self.db, event.kernel_id, to, reason, |from| {
                kernel_may_go(from, to)
            })
            .await?;
        if moved {
            // Only `kernel_started`'s recompute takes a session to RUNNING, because it is the one
            // that announces `session_started` (and finds a missing one when handled again). The
            // kernel moved here may have been started since, by another node's `kernel_started`
            // that has yet to recompute: taking the session to RUNNING here would leave that
            // recompute nothing to move, and the session RUNNING unannounced.
            session_lifecycle::recompute_session_status(
                &self.db,
                event.session_id,
                None,
                |status, kernels| {
                    derive_session_status(status, kernels)
                        .filter(|derived| *derived != SessionStatus::Running)
                },
            )
            .await?;
        }
        Ok(())
    }

    /// `kernel_started` from agent `agent_id`: the kernel is RUNNING with its ports, container
    /// and actual allocation, which the session's `occupying_slots` gains; when the session
    /// becomes RUNNING, `session_started` is announced and a batch session's command is started
    /// on a 24.03 agent ([`trigger_batch`](crate::trigger_batch)). A kernel that is over already (TERMINATED,
    /// CANCELLED, ERROR) stays so and is destroyed on the agent.
    #[tracing::instrument(
        name = "kernel_started",
        skip_all,
        fields(session_id = %event.session_id, kernel_id = %event.kernel_id, agent_id = %agent_id)
    )]
    pub async fn kernel_started(
        &self,
        agent_id: &str,
        event: &KernelCreation,
    ) -> Result<(), LifecycleError> {
        self.kernel_started_entry(agent_id, event, None).await
    }

    /// [`Lifecycle::kernel_started`] of stream entry `entry`.
    async fn kernel_started_entry(
        &self,
        agent_id: &str,
        event: &KernelCreation,
        entry: Option<EntryId>,
    ) -> Result<(), LifecycleError> {
        let started = started_kernel(event)?;
        let found = OnceLock::new();
        let moved = session_lifecycle::start_kernel(
            &self.db,
            event.session_id,
            event.kernel_id,
            &started,
            |from| {
                let _ = found.set(from);
                // A restarting kernel is RUNNING again by the restart's own answer; the agent's
                // `kernel_started` must not add its allocation to the session a second time.
                from != KernelStatus::Restarting && kernel_may_go(from, KernelStatus::Running)
            },
            add_slots,
        )
        .await?;
        if !moved {
            match found.get().copied() {
                Some(
                    status @ (KernelStatus::Terminated
                    | KernelStatus::Cancelled
                    | KernelStatus::Error),
                ) => {
                    tracing::info!(kernel.id = %event.kernel_id, agent.id = agent_id, "a kernel started when it was {status:?} already: destroying it on its agent");
                    self.destroy_on_agent(
                        agent_id,
                        event.kernel_id,
                        event.session_id,
                        ALREADY_TERMINATED,
                    )
                    .await;
                    return Ok(());
                }
                // The event again (a node died after the kernel's commit: another node took the
                // entry over): the session's status is recomputed below, which announces it if
                // that is what moves it to RUNNING, or if the first run's announcement is missing.
                Some(KernelStatus::Running) => {}
                _ => return Ok(()),
            }
        }
        let current = OnceLock::new();
        let moved_to = session_lifecycle::recompute_session_status(
            &self.db,
            event.session_id,
            None,
            |status, kernels| {
                let _ = current.set(status);
                derive_session_status(status, kernels)
            },
        )
        .await?;
        let announce = match moved_to {
            Some(status) => status == SessionStatus::Running,
            None => {
                !moved
                    && current.get() == Some(&SessionStatus::Running)
                    && self.unannounced_start(event.session_id, entry).await
            }
        };
        if announce {
            let creation_id = session_lifecycle::creation_id(&self.db, event.session_id).await?;
            self.announce(Event::SessionStarted(SessionCreation {
                session_id: event.session_id,
                creation_id: creation_id.unwrap_or_default(),
                reason: String::new(),
            }))
            .await?;
            // After `session_started`, as the reference orders them.
            crate::batch::start_batch_after_running(
                &self.db,
                self.rpc.as_deref(),
                event.session_id,
            )
            .await;
        }
        Ok(())
    }

    /// `kernel_terminated`: the kernel is TERMINATED with its exit code and last statistics, its
    /// agent's occupancy recomputed; when the session is over, `session_terminated` is announced.
    #[tracing::instrument(name = "kernel_terminated", skip_all, fields(session_id = %event.session_id, kernel_id = %event.kernel_id))]
    pub async fn kernel_terminated(&self, event: &KernelTermination) -> Result<(), LifecycleError> {
        // Statistics are a nicety: a Redis hiccup must not keep the kernel alive in the database.
        let last_stat = match self.stat.live_stat(&event.kernel_id.to_string()).await {
            Ok(stat) => stat,
            Err(error) => {
                tracing::warn!(kernel.id = %event.kernel_id, "cannot read the kernel's last statistics: {error}");
                None
            }
        };
        // A kernel already terminated (its destroyer did it) still has its session looked at,
        // as the reference's `check_session_terminated` does.
        let terminated = session_lifecycle::terminate_kernel(
            &self.db,
            event.kernel_id,
            &event.reason,
            Some(event.exit_code),
            last_stat,
            sum_slots,
        )
        .await?;
        if let Some(access_key) = terminated.and_then(|kernel| kernel.access_key) {
            sync_concurrency(&self.db, &self.stat, [access_key]).await;
        }
        let over = self
            .recompute(event.session_id, Some(&event.reason))
            .await?;
        if matches!(
            over,
            Some(SessionStatus::Terminated | SessionStatus::Cancelled)
        ) {
            self.announce(Event::SessionTerminated(SessionTermination {
                session_id: event.session_id,
                reason: event.reason.clone(),
            }))
            .await?;
        }
        Ok(())
    }

    /// Agent `agent_id` is lost: the sessions it was starting are cancelled as failed to start
    /// (their slots released, their kernels that did start on other agents destroyed), and the
    /// kernels it was destroying are terminated with the reason they were destroyed for.
    #[tracing::instrument(name = "agent_lost", skip_all, fields(agent_id = %agent_id))]
    pub async fn agent_lost(&self, agent_id: &str) -> Result<(), LifecycleError> {
        for rows in session_faults::sessions_starting_on(&self.db, agent_id).await? {
            let session = &rows.session;
            let repr = format!("agent {agent_id} was lost while it created the session's kernels");
            if !cancel_failed_start(&self.db, &self.stat, &rows, "AgentError", &repr).await? {
                continue;
            }
            tracing::warn!(session.id = %session.id, agent.id = agent_id, "the agent of a starting session is lost: the session is cancelled");
            for kernel in &rows.kernels {
                if let Some(agent) = kernel.agent.as_deref()
                    && agent != agent_id
                    && kernel.container_id.is_some()
                {
                    self.destroy_on_agent(agent, kernel.id, session.id, "failed-to-start")
                        .await;
                }
            }
            self.announce(Event::SessionCancelled(SessionCreation {
                session_id: session.id,
                creation_id: session.creation_id.clone().unwrap_or_default(),
                reason: "failed-to-start".to_owned(),
            }))
            .await?;
        }
        for kernel in session_faults::kernels_terminating_on(&self.db, agent_id).await? {
            let reason = kernel
                .status_info
                .filter(|reason| !reason.is_empty())
                .unwrap_or_else(|| AGENT_TERMINATION.to_owned());
            tracing::warn!(kernel.id = %kernel.id, agent.id = agent_id, "the agent destroying a kernel is lost: the kernel is terminated");
            self.kernel_terminated(&KernelTermination {
                kernel_id: kernel.id,
                session_id: kernel.session_id,
                reason,
                exit_code: -1,
            })
            .await?;
        }
        Ok(())
    }

    /// `session_terminated`: the session's local cluster network is removed from the agent that
    /// holds it, as the reference's `clean_session` does; a failure is logged (the agent may be
    /// gone, and the network with it).
    pub async fn clean_session(&self, session_id: Uuid) -> Result<(), LifecycleError> {
        let Some(agent_id) = kernels::local_network_agent(&self.db, session_id).await? else {
            return Ok(());
        };
        let name = local_network_name(session_id);
        let Some(rpc) = &self.rpc else {
            tracing::warn!(session.id = %session_id, agent.id = agent_id, "the network {name} stays on its agent: no agent connections here");
            return Ok(());
        };
        let outcome = rpc
            .call(&agent_id, |connection| async move {
                connection.destroy_local_network(&name).await
            })
            .await;
        if let Err(error) = outcome {
            tracing::warn!(session.id = %session_id, agent.id = agent_id, "cannot remove the session's network from its agent: {error}");
        }
        Ok(())
    }

    /// `destroy_kernel` on `agent_id`. The agent's `kernel_terminated` changes nothing here (the
    /// kernel is over already) but records that the agent let it go; a failure is logged: the
    /// agent may be gone with the kernel.
    async fn destroy_on_agent(
        &self,
        agent_id: &str,
        kernel_id: Uuid,
        session_id: Uuid,
        reason: &str,
    ) {
        let Some(rpc) = &self.rpc else {
            tracing::warn!(kernel.id = %kernel_id, agent.id = agent_id, "a kernel that should be destroyed stays on its agent: no agent connections here");
            return;
        };
        let (kernel, session) = (kernel_id.to_string(), session_id.to_string());
        let outcome = rpc
            .call(agent_id, |connection| async move {
                connection
                    .destroy_kernel(&kernel, &session, Some(reason), false)
                    .await
            })
            .await;
        if let Err(error) = outcome {
            tracing::warn!(kernel.id = %kernel_id, agent.id = agent_id, "cannot destroy the kernel on its agent: {error}");
        }
    }

    /// The session's status from its kernels, written when the transition map allows it.
    /// Whether session `session_id` (RUNNING, its `kernel_started` entry `entry` handled again)
    /// was never announced started: no `session_started` of it follows the entry in the stream.
    /// Without the stream or the entry, or when the stream cannot be read, it counts as announced
    /// (the first run's announcement is the likely case; a second one would start a batch twice).
    async fn unannounced_start(&self, session_id: Uuid, entry: Option<EntryId>) -> bool {
        let (Some(stream), Some(entry)) = (&self.stream, entry) else {
            return false;
        };
        let announced = bai_events::added_after(stream, entry, |event| {
            matches!(event, Event::SessionStarted(creation) if creation.session_id == session_id)
        })
        .await;
        match announced {
            Ok(announced) => {
                if !announced {
                    tracing::warn!(session.id = %session_id, "session RUNNING without session_started (its first handler died): announcing it");
                }
                !announced
            }
            Err(error) => {
                tracing::warn!(session.id = %session_id, "cannot read the stream back: {error}");
                false
            }
        }
    }

    async fn recompute(
        &self,
        session_id: Uuid,
        status_info: Option<&str>,
    ) -> Result<Option<SessionStatus>, DbError> {
        session_lifecycle::recompute_session_status(
            &self.db,
            session_id,
            status_info,
            derive_session_status,
        )
        .await
    }

    async fn announce(&self, event: Event) -> Result<(), LifecycleError> {
        let session_id = match &event {
            Event::SessionStarted(creation) | Event::SessionCancelled(creation) => {
                creation.session_id
            }
            Event::SessionTerminated(termination) => termination.session_id,
            _ => Uuid::nil(),
        };
        self.producer
            .produce(&event, "manager")
            .await
            .map_err(|source| LifecycleError::Produce {
                event: event.name(),
                session_id,
                source,
            })?;
        Ok(())
    }
}

/// The new status of a session in `current` with `kernels`, if it differs and may be taken.
fn derive_session_status(
    current: SessionStatus,
    kernels: &KernelStatuses,
) -> Option<SessionStatus> {
    let main = kernels.main?;
    let derived = session_status_from_kernels(main, kernels.siblings.iter().copied());
    (derived != current && session_may_go(current, derived)).then_some(derived)
}

/// The columns `kernel_started`'s `creation_info` sets.
fn started_kernel(event: &KernelCreation) -> Result<StartedKernel, LifecycleError> {
    let info = &event.creation_info;
    let bad = |detail: String| LifecycleError::CreationInfo {
        kernel_id: event.kernel_id,
        detail,
    };
    let allocations = &info["resource_spec"]["allocations"];
    let allocated = bai_scheduler::allocated_slots(allocations).map_err(bad)?;
    let text = |name: &str| info[name].as_str().map(str::to_owned);
    let agent_host = text("agent_addr").and_then(|addr| host_of(&addr));
    Ok(StartedKernel {
        occupied_slots: ResourceSlot::from(&allocated),
        scaling_group: text("scaling_group"),
        attached_devices: match &info["attached_devices"] {
            serde_json::Value::Null => serde_json::json!({}),
            devices => devices.clone(),
        },
        kernel_host: text("kernel_host").or(agent_host),
        container: kernel_container(info).map_err(bad)?,
    })
}

/// The container id and ports of an agent's report of a kernel it started or restarted
/// (`kernel_started`'s `creation_info`, `restart_kernel`'s answer); `service_ports` default to
/// none.
pub(crate) fn kernel_container(info: &serde_json::Value) -> Result<KernelContainer, String> {
    let port = |name: &str| {
        info[name]
            .as_i64()
            .and_then(|port| i32::try_from(port).ok())
            .ok_or_else(|| format!("{name} is not a port: {}", info[name]))
    };
    Ok(KernelContainer {
        container_id: info["container_id"].as_str().map(str::to_owned),
        repl_in_port: port("repl_in_port")?,
        repl_out_port: port("repl_out_port")?,
        stdin_port: port("stdin_port")?,
        stdout_port: port("stdout_port")?,
        service_ports: match &info["service_ports"] {
            serde_json::Value::Null => serde_json::json!([]),
            ports => ports.clone(),
        },
    })
}

/// The host of `tcp://host:port`.
fn host_of(addr: &str) -> Option<String> {
    let rest = addr.split_once("://").map_or(addr, |(_, rest)| rest);
    let host = rest.rsplit_once(':').map_or(rest, |(host, _)| host);
    (!host.is_empty()).then(|| host.trim_matches(['[', ']']).to_owned())
}

fn add_slots(a: &ResourceSlot, b: &ResourceSlot) -> ResourceSlot {
    ResourceSlot::from(&Slots::from(a).add(&mut Slots::from(b)))
}

/// Cancels a session that failed to start (`failed-to-start`, `status_data.error` of
/// `error_name` and `error_repr`), its agents' occupancy recomputed and its keypair's concurrency
/// written; `false` when the session was no longer starting, and nothing changed.
pub(crate) async fn cancel_failed_start(
    db: &DatabaseConnection,
    stat: &StatDb,
    rows: &PendingRows,
    error_name: &str,
    error_repr: &str,
) -> Result<bool, DbError> {
    let status_data = serde_json::json!({
        "error": {"src": "other", "name": error_name, "repr": error_repr}
    });
    let agents: Vec<String> = rows
        .kernels
        .iter()
        .filter_map(|kernel| kernel.agent.clone())
        .collect();
    let cancelled =
        scheduling::cancel_failed_start(db, rows.session.id, &status_data, &agents, sum_slots)
            .await?;
    if cancelled {
        sync_concurrency(db, stat, rows.session.access_key.clone()).await;
    }
    Ok(cancelled)
}

pub(crate) fn sum_slots(held: &[ResourceSlot]) -> ResourceSlot {
    let mut total = Slots::default();
    for slots in held {
        total.add_assign(&mut Slots::from(slots));
    }
    ResourceSlot::from(&total)
}

/// Writes the Redis counters of running sessions (`keypair.concurrency_used.{ak}` and the SFTP
/// one) of `access_keys` from the rows, for the admin API and older tools that read them; the
/// scheduler itself counts from the rows. A failure is logged: the next change writes them again.
pub(crate) async fn sync_concurrency(
    db: &DatabaseConnection,
    stat: &StatDb,
    access_keys: impl IntoIterator<Item = String>,
) {
    let keys: BTreeSet<String> = access_keys.into_iter().collect();
    if keys.is_empty() {
        return;
    }
    let counts = match scheduling::concurrency_used(db, &keys).await {
        Ok(counts) => counts,
        Err(error) => {
            tracing::warn!("cannot count the running sessions of {keys:?}: {error}");
            return;
        }
    };
    if let Err(error) = write_concurrency(stat, &counts).await {
        tracing::warn!("cannot record the concurrency of keypairs {keys:?}: {error}");
    }
}

/// Writes `counts` (access key -> `(others, SYSTEM)`) to the keypairs' Redis counters.
async fn write_concurrency(
    stat: &StatDb,
    counts: &HashMap<String, (u64, u64)>,
) -> Result<(), RedisError> {
    for (key, (used, sftp_used)) in counts {
        stat.set_keypair_concurrency(key, *used, *sftp_used).await?;
    }
    Ok(())
}

/// Sets every agent's `occupied_slots` to what its kernels hold: what a manager does when it
/// starts, so that occupancy is derived from the kernels whatever happened before. Returns how
/// many agents there are.
pub async fn recompute_agent_occupancy(db: &DatabaseConnection) -> Result<usize, DbError> {
    scheduling::recompute_all_agent_occupancy(db, sum_slots).await
}

/// What [`recalculate_usage`] set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageRecalculation {
    /// Agents whose occupied slots were recomputed (all of them).
    pub agents: usize,
    /// Access keys whose session counters were written.
    pub access_keys: usize,
}

/// Why the usage could not be recalculated.
#[derive(Debug, thiserror::Error)]
pub enum RecalculateError {
    #[error(transparent)]
    Db(Box<DbError>),
    #[error("writing the keypairs' session counters: {0}")]
    Redis(#[from] RedisError),
}

impl From<DbError> for RecalculateError {
    fn from(error: DbError) -> Self {
        RecalculateError::Db(Box::new(error))
    }
}

/// The usage derived from the kernels again (`POST /resource/recalculate-usage`): every agent's
/// occupied slots, and the session counters of every access key that has running sessions or a
/// counter in Redis, the latter going back to 0 when its sessions are gone.
pub async fn recalculate_usage(
    db: &DatabaseConnection,
    stat: &StatDb,
) -> Result<UsageRecalculation, RecalculateError> {
    let agents = recompute_agent_occupancy(db).await?;
    let mut counts = scheduling::concurrency_used_by_all(db).await?;
    for access_key in stat.keypairs_with_concurrency_counters().await? {
        counts.entry(access_key).or_default();
    }
    write_concurrency(stat, &counts).await?;
    Ok(UsageRecalculation {
        agents,
        access_keys: counts.len(),
    })
}

/// The lifecycle's event handlers, for a consumer of `bai-events` (one manager process handles
/// each event): the kernel events, `agent_terminated("agent-lost")`, and `session_terminated`
/// (the session's network removed).
pub fn handlers(lifecycle: &Arc<Lifecycle>, into: &mut Handlers) {
    for (event, handler) in [
        ("kernel_preparing", "note_start_received"),
        ("kernel_pulling", "handle_kernel_pulling"),
        ("kernel_creating", "handle_kernel_creating"),
        ("kernel_started", "handle_kernel_started"),
        ("kernel_terminated", "handle_kernel_terminated"),
        ("agent_terminated", "handle_agent_lost_sessions"),
        ("session_terminated", "clean_session"),
    ] {
        let lifecycle = Arc::clone(lifecycle);
        into.on(event, handler, move |received| {
            let lifecycle = Arc::clone(&lifecycle);
            async move { lifecycle.handle(&received).await }
        });
    }
}

impl Lifecycle {
    async fn handle(&self, received: &Received) -> Result<(), HandlerError> {
        let outcome = match &received.event {
            Event::KernelPreparing(event) => match &self.claims {
                Some(claims) => claims
                    .mark_received(event.session_id)
                    .await
                    .map_err(|source| LifecycleError::NoteReceived {
                        session_id: event.session_id,
                        source,
                    }),
                None => Ok(()),
            },
            Event::KernelPulling(event) => self.kernel_pulling(event).await,
            Event::KernelCreating(event) => self.kernel_creating(event).await,
            Event::KernelStarted(event) => {
                self.kernel_started_entry(&received.source, event, Some(received.id))
                    .await
            }
            Event::KernelTerminated(event) => self.kernel_terminated(event).await,
            Event::AgentTerminated { reason } if reason == "agent-lost" => {
                self.agent_lost(&received.source).await
            }
            Event::SessionTerminated(event) => self.clean_session(event.session_id).await,
            _ => Ok(()),
        };
        outcome.map_err(HandlerError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_read_from_agent_addresses() {
        assert_eq!(host_of("tcp://10.0.0.5:6001").as_deref(), Some("10.0.0.5"));
        assert_eq!(host_of("tcp://[::1]:6001").as_deref(), Some("::1"));
        assert_eq!(host_of("tcp://:6001"), None);
    }

    #[test]
    fn a_session_moves_only_where_the_map_allows() {
        let kernels = |main, siblings: &[KernelStatus]| KernelStatuses {
            main: Some(main),
            siblings: siblings.to_vec(),
        };
        assert_eq!(
            derive_session_status(
                SessionStatus::Preparing,
                &kernels(KernelStatus::Running, &[KernelStatus::Running])
            ),
            Some(SessionStatus::Running)
        );
        // Still waiting for a sibling.
        assert_eq!(
            derive_session_status(
                SessionStatus::Preparing,
                &kernels(KernelStatus::Running, &[KernelStatus::Preparing])
            ),
            None
        );
        // A late pull does not bring a terminating session back.
        assert_eq!(
            derive_session_status(
                SessionStatus::Terminating,
                &kernels(KernelStatus::Pulling, &[])
            ),
            None
        );
        assert_eq!(
            derive_session_status(
                SessionStatus::Terminating,
                &KernelStatuses {
                    main: None,
                    siblings: vec![KernelStatus::Terminated]
                }
            ),
            None
        );
    }
}
