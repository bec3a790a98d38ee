//! Starting scheduled sessions on their agents (spec §4.8): `prepare()` moves every SCHEDULED
//! session to PREPARING in one transaction and starts each: the kernels' creation configs (image
//! and registry, environment, slots, cluster roles), the cluster info (network, SSH keypair), and
//! one `create_kernels` call per agent. The agents then report `kernel_*` events, which
//! [`Lifecycle`](crate::Lifecycle) follows to RUNNING.
//!
//! A session that cannot start ends CANCELLED (`failed-to-start`) with its slots released and
//! `session_cancelled` announced, and the kernels that did start elsewhere are destroyed. Unlike
//! the reference, whose `create_kernels` waits without limit under a shared 50-s budget that
//! leaves a session PREPARING for good when it runs out, each call here has its own timeout, and
//! an agent that drops the connection fails the call at once.
//!
//! Several manager nodes: a node that dies after taking sessions (PREPARING is committed) and
//! before its `create_kernels` calls reached the agents would leave them PREPARING for good (the
//! reference does). With [`Starter::with_start_claims`], a node claims the sessions it takes in
//! Redis (`session.{id}.starter`, expiring after [`CLAIM_TTL`] unless renewed while the calls are
//! in flight) and every `prepare()` also looks for *stalled* sessions: PREPARING, every kernel
//! still PREPARING for longer than [`STALL_GRACE`], no claim. A live agent that received
//! `create_kernels` reports `kernel_pulling` or `kernel_creating` within moments, which moves the
//! kernel out of PREPARING, so a stalled session's agent never got the call: one node (the one whose
//! `SET NX` claim wins) sends it again. The bound: the agent reports within [`STALL_GRACE`] and
//! the event consumers lag by less than that; an agent slower than that would get the call twice
//! (the real agent would then create a second container for the kernel).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bai_agent_rpc::RpcError;
use bai_agents::{AgentRpcCache, AgentRpcError};
use bai_db_models::DbError;
use bai_db_models::entities::{images, kernels, sessions};
use bai_db_models::queries::scheduling::{self, PendingRows};
use bai_db_models::queries::stalled_starts;
use bai_etcd_store::{EtcdStore, LiveSharedConfig, SharedConfig, SharedConfigError};
use bai_events::{Event, EventProducer, SessionCreation};
use bai_redis::{EntryId, SchedulerStatus, SchedulerTask, StartClaims, StatDb, StreamDb};
use sea_orm::DatabaseConnection;
use sea_orm::prelude::Uuid;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::lifecycle::cancel_failed_start;
use crate::schedule::note_status;
use crate::{Destroyer, HangScanner};

/// How long one agent may take to create a session's kernels (pulling an image included).
pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How many sessions start at once.
const STARTING_AT_ONCE: usize = 64;
/// The trigger a run records in its status hash (the reference's timer and API both send it).
const PREPARE_TRIGGER: &str = "do_prepare";
/// How long a node's claim of a session it starts outlives the node's last renewal.
pub const CLAIM_TTL: Duration = Duration::from_secs(15);
/// How often a node renews the claims of the sessions whose `create_kernels` calls are in flight.
const CLAIM_RENEW_EVERY: Duration = Duration::from_secs(5);
/// The stream's ids are Redis's clock, the kernels' times the database's: a margin for skew.
const STREAM_CLOCK_SLACK_MS: u64 = 60_000;
/// How long a session's kernels stay PREPARING, unclaimed, before its start is sent again.
pub const STALL_GRACE: Duration = Duration::from_secs(30);

/// Why a `prepare()` failed as a whole (a session that fails to start is not an error here: it
/// is cancelled, and the others go on).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(Box<DbError>),
    #[error("reading the shared config from etcd: {0}")]
    SharedConfig(#[from] SharedConfigError),
    #[error("announcing {event}: {source}")]
    Produce {
        event: &'static str,
        source: bai_redis::RedisError,
    },
}

impl From<DbError> for StartError {
    fn from(error: DbError) -> Self {
        StartError::Db(Box::new(error))
    }
}

/// Why one session did not start; its text goes into the session's `status_data`.
#[derive(Debug, thiserror::Error)]
enum SessionStartError {
    #[error("kernel {kernel}: image {image} ({architecture}) is not in the image list")]
    UnknownImage {
        kernel: Uuid,
        image: String,
        architecture: String,
    },
    #[error("registry {0:?} of a non-local image is not configured (etcd config/docker/registry)")]
    UnknownRegistry(String),
    #[error("kernel {0} has no agent")]
    NoAgent(Uuid),
    #[error(transparent)]
    Agent(Box<AgentRpcError>),
    #[error(transparent)]
    Rpc(Box<RpcError>),
    #[error("generating the cluster's SSH keypair: {0}")]
    Keygen(String),
    #[error(transparent)]
    Db(Box<DbError>),
}

impl From<AgentRpcError> for SessionStartError {
    fn from(error: AgentRpcError) -> Self {
        SessionStartError::Agent(Box::new(error))
    }
}
impl From<RpcError> for SessionStartError {
    fn from(error: RpcError) -> Self {
        SessionStartError::Rpc(Box::new(error))
    }
}
impl From<DbError> for SessionStartError {
    fn from(error: DbError) -> Self {
        SessionStartError::Db(Box::new(error))
    }
}

impl SessionStartError {
    /// The exception-like name the reference's `status_data.error.name` carries.
    fn name(&self) -> &'static str {
        match self {
            SessionStartError::UnknownImage { .. } => "ImageNotFound",
            SessionStartError::UnknownRegistry(_) => "UnknownImageRegistry",
            SessionStartError::NoAgent(_) => "InstanceNotAvailable",
            SessionStartError::Agent(_) | SessionStartError::Rpc(_) => "AgentError",
            SessionStartError::Keygen(_) | SessionStartError::Db(_) => "InternalServerError",
        }
    }
}

/// Starts scheduled sessions.
#[derive(Clone, Debug)]
pub struct Starter {
    db: DatabaseConnection,
    etcd: EtcdStore,
    producer: EventProducer,
    /// Redis database 0: the keypairs' concurrency counters.
    stat: StatDb,
    rpc: Arc<AgentRpcCache>,
    create_timeout: Duration,
    status: SchedulerStatus,
    /// Which node starts which session, for the sessions of a dead node to be started again,
    /// and the event stream, read for signs that an agent received a stalled start.
    claims: Option<(StartClaims, StreamDb)>,
    /// The shared configuration in effect (registries); without it each run reads etcd.
    shared_config: Option<LiveSharedConfig>,
}

impl Starter {
    /// `status` is where runs are recorded for `GET /manager/scheduler/status`.
    pub fn new(
        db: DatabaseConnection,
        etcd: EtcdStore,
        producer: EventProducer,
        stat: StatDb,
        rpc: Arc<AgentRpcCache>,
        status: SchedulerStatus,
    ) -> Starter {
        Starter {
            db,
            etcd,
            producer,
            stat,
            rpc,
            create_timeout: DEFAULT_CREATE_TIMEOUT,
            status,
            claims: None,
            shared_config: None,
        }
    }

    /// Takes the registries (and the hang scanner its thresholds) from the live shared
    /// configuration: a change in etcd applies at the next start, and a bad value there leaves
    /// the previous settings in effect instead of failing the run.
    pub fn with_shared_config(mut self, shared_config: LiveSharedConfig) -> Starter {
        self.shared_config = Some(shared_config);
        self
    }

    /// Claims the sessions this node starts, and starts again the stalled sessions no node
    /// claims (their starter died): for several nodes sharing a cluster.
    pub fn with_start_claims(mut self, claims: StartClaims, stream: StreamDb) -> Starter {
        self.claims = Some((claims, stream));
        self
    }

    /// How long one agent may take to create a session's kernels.
    pub fn with_create_timeout(mut self, timeout: Duration) -> Starter {
        self.create_timeout = timeout;
        self
    }

    /// Destroys sessions over the same stores and agent connections.
    pub fn destroyer(&self) -> Destroyer {
        Destroyer::new(
            self.db.clone(),
            self.producer.clone(),
            self.stat.clone(),
            Arc::clone(&self.rpc),
        )
    }

    /// The hang-tolerance scanner over the same stores and agent connections.
    pub fn hang_scanner(&self) -> HangScanner {
        let scanner = HangScanner::new(self.db.clone(), self.etcd.clone(), self.destroyer());
        match &self.shared_config {
            Some(shared_config) => scanner.following(shared_config.clone()),
            None => scanner,
        }
    }

    /// The shared configuration for one run.
    async fn shared_config(&self) -> Result<Arc<SharedConfig>, StartError> {
        Ok(match &self.shared_config {
            Some(live) => live.current(),
            None => Arc::new(SharedConfig::load(&self.etcd).await?),
        })
    }

    /// Starts every SCHEDULED session, as `do_prepare` asks; returns how many were taken.
    pub async fn prepare(&self) -> Result<usize, StartError> {
        self.prepare_for(PREPARE_TRIGGER).await
    }

    /// Moves every SCHEDULED session to PREPARING and starts them, because of event
    /// `trigger_event`; returns how many were taken. Waits until every `create_kernels` call
    /// answered, failed or timed out. The run is recorded in the status hash: its trigger and
    /// start, the resource group of each session taken, and its end.
    pub async fn prepare_for(&self, trigger_event: &str) -> Result<usize, StartError> {
        note_status(
            self.status
                .begin(SchedulerTask::Prepare, trigger_event)
                .await,
        );
        let mut count = self.start_scheduled().await?;
        if self.claims.is_some() {
            count += self.restart_stalled().await?;
        }
        note_status(self.status.finish(SchedulerTask::Prepare).await);
        Ok(count)
    }

    async fn start_scheduled(&self) -> Result<usize, StartError> {
        let taken = scheduling::take_scheduled(&self.db).await?;
        if taken.is_empty() {
            return Ok(0);
        }
        if let Some((claims, _)) = &self.claims {
            let ids: Vec<Uuid> = taken.iter().map(|rows| rows.session.id).collect();
            if let Err(error) = claims.claim_all(&ids, CLAIM_TTL).await {
                // Unclaimed sessions whose start goes well leave PREPARING long before the
                // grace is over; only a stalled one would be sent again.
                tracing::warn!("cannot claim {} sessions being started: {error}", ids.len());
            }
        }
        let shared = self.shared_config().await?;
        let count = taken.len();
        for rows in &taken {
            self.announce(Event::SessionPreparing(creation(&rows.session, "")))
                .await?;
            if let Some(group) = &rows.session.scaling_group_name {
                note_status(self.status.handled(SchedulerTask::Prepare, group).await);
            }
        }
        self.start_all(taken, shared).await;
        Ok(count)
    }

    /// Starts `sessions`, [`STARTING_AT_ONCE`] at a time, until every one is started or failed.
    async fn start_all(&self, sessions: Vec<PendingRows>, shared: Arc<SharedConfig>) {
        let mut running = JoinSet::new();
        for rows in sessions {
            while running.len() >= STARTING_AT_ONCE {
                running.join_next().await;
            }
            let starter = self.clone();
            let shared = Arc::clone(&shared);
            running.spawn(async move { starter.start(rows, &shared).await });
        }
        while let Some(joined) = running.join_next().await {
            if let Ok(Err(error)) = joined {
                tracing::error!("starting a session: {error}");
            }
        }
    }

    /// Sends the start of the stalled sessions again (see the module's documentation): those
    /// PREPARING without progress for [`STALL_GRACE`] that no node claims and this node claims
    /// first. Returns how many.
    async fn restart_stalled(&self) -> Result<usize, StartError> {
        let Some((claims, stream)) = &self.claims else {
            return Ok(0);
        };
        let grace = chrono::Duration::from_std(STALL_GRACE).unwrap_or(chrono::Duration::MAX);
        let stalled = stalled_starts::stalled_starts(&self.db, chrono::Utc::now() - grace).await?;
        if stalled.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = stalled.iter().map(|rows| rows.session.id).collect();
        let unclaimed = match claims.unclaimed(&ids).await {
            Ok(unclaimed) => unclaimed,
            Err(error) => {
                tracing::warn!("cannot read the claims of stalled sessions: {error}");
                return Ok(0);
            }
        };
        // An agent that got the call reported `kernel_preparing` first thing: handled (noted in
        // Redis) or still in the stream (entries stay until every group handled them).
        let received = match claims.received(&unclaimed).await {
            Ok(received) => received,
            Err(error) => {
                tracing::warn!("cannot read which stalled sessions an agent received: {error}");
                return Ok(0);
            }
        };
        let mut unclaimed: Vec<Uuid> = unclaimed
            .into_iter()
            .filter(|session| !received.contains(session))
            .collect();
        let since = stalled
            .iter()
            .filter(|rows| unclaimed.contains(&rows.session.id))
            .flat_map(|rows| rows.kernels.iter())
            .filter_map(|kernel| kernel.status_changed)
            .map(|changed| u64::try_from(changed.timestamp_millis()).unwrap_or(0))
            .min();
        if let Some(millis) = since {
            let after = EntryId {
                millis: millis.saturating_sub(STREAM_CLOCK_SLACK_MS),
                seq: 0,
            };
            let mut reported = Vec::new();
            let scanned = bai_events::added_after(stream, after, |event| {
                if let Event::KernelPreparing(creation)
                | Event::KernelPulling(creation)
                | Event::KernelCreating(creation)
                | Event::KernelStarted(creation) = event
                {
                    reported.push(creation.session_id);
                }
                false
            })
            .await;
            if let Err(error) = scanned {
                tracing::warn!("cannot read the stream for stalled sessions: {error}");
                return Ok(0);
            }
            unclaimed.retain(|session| !reported.contains(session));
        }
        let mut orphans = Vec::new();
        for rows in stalled {
            if !unclaimed.contains(&rows.session.id) {
                continue;
            }
            match claims.try_claim(rows.session.id, CLAIM_TTL).await {
                Ok(true) => {
                    tracing::warn!(
                        session.id = %rows.session.id,
                        "session PREPARING for {}s without progress and no starter: starting it again",
                        STALL_GRACE.as_secs()
                    );
                    orphans.push(rows);
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(session.id = %rows.session.id, "cannot claim a stalled session: {error}")
                }
            }
        }
        let count = orphans.len();
        if count > 0 {
            let shared = self.shared_config().await?;
            self.start_all(orphans, shared).await;
        }
        Ok(count)
    }

    /// Starts one session; a session that cannot start is cancelled. Its claim is renewed while
    /// the calls are in flight and dropped after.
    #[tracing::instrument(name = "start_session", skip_all, fields(session_id = %rows.session.id))]
    async fn start(&self, rows: PendingRows, shared: &SharedConfig) -> Result<(), StartError> {
        let session_id = rows.session.id;
        let outcome = match &self.claims {
            None => self.create_kernels(&rows, shared).await,
            Some((claims, _)) => {
                let creating = self.create_kernels(&rows, shared);
                tokio::pin!(creating);
                let outcome = loop {
                    tokio::select! {
                        outcome = &mut creating => break outcome,
                        () = tokio::time::sleep(CLAIM_RENEW_EVERY) => {
                            if let Err(error) = claims.renew(&[session_id], CLAIM_TTL).await {
                                tracing::warn!(session.id = %session_id, "cannot renew the claim of a session being started: {error}");
                            }
                        }
                    }
                };
                if let Err(error) = claims.release(&[session_id]).await {
                    tracing::warn!(session.id = %session_id, "cannot drop the claim of a started session: {error}");
                }
                outcome
            }
        };
        let Err(failure) = outcome else {
            return Ok(());
        };
        // A database error before any agent was called (an exhausted pool under load) is not the
        // session's fault: with claims, it stays PREPARING, unclaimed, and a later `prepare()`
        // sends it once it has stalled.
        if self.claims.is_some()
            && matches!(failure.error, SessionStartError::Db(_))
            && failure.created_on.is_empty()
        {
            tracing::warn!(session.id = %session_id, "cannot start the session now ({}); it is started again after {}s", failure.error, STALL_GRACE.as_secs());
            return Ok(());
        }
        tracing::warn!(session.id = %session_id, "session failed to start: {}", failure.error);
        let repr = failure.error.to_string();
        if !cancel_failed_start(&self.db, &self.stat, &rows, failure.error.name(), &repr).await? {
            return Ok(());
        }
        // Kernels that did start elsewhere would hold their agents' resources for nothing.
        for kernel in rows.kernels.iter().filter(|kernel| {
            kernel
                .agent
                .as_ref()
                .is_some_and(|agent| failure.created_on.contains(agent))
        }) {
            self.destroy_quietly(kernel).await;
        }
        self.announce(Event::SessionCancelled(creation(
            &rows.session,
            "failed-to-start",
        )))
        .await
    }

    async fn destroy_quietly(&self, kernel: &kernels::Model) {
        let Some(agent) = kernel.agent.as_deref() else {
            return;
        };
        let (kernel_id, session_id) = (kernel.id.to_string(), kernel.session_id.to_string());
        let outcome = self
            .rpc
            .call(agent, |connection| async move {
                connection
                    .destroy_kernel(&kernel_id, &session_id, Some("failed-to-start"), true)
                    .await
            })
            .await;
        if let Err(error) = outcome {
            tracing::warn!(kernel.id = %kernel.id, agent.id = agent, "cannot destroy a kernel of a session that failed to start: {error}");
        }
    }

    /// Everything `create_kernels` needs, then one call per agent, all at once.
    async fn create_kernels(
        &self,
        rows: &PendingRows,
        shared: &SharedConfig,
    ) -> Result<(), StartFailure> {
        let failed = |error: SessionStartError| StartFailure {
            error,
            created_on: Vec::new(),
        };
        let session = &rows.session;
        let images = self.images(&rows.kernels).await.map_err(failed)?;
        let registry = registry_of(&images, shared).map_err(failed)?;
        let (email, username, idle_timeout) = scheduling::session_owner(
            &self.db,
            session.user_uuid,
            session.access_key.as_deref().unwrap_or_default(),
        )
        .await
        .map_err(|error| failed(error.into()))?;
        let mut by_agent: BTreeMap<String, Vec<&kernels::Model>> = BTreeMap::new();
        for kernel in &rows.kernels {
            let agent = kernel
                .agent
                .clone()
                .ok_or(SessionStartError::NoAgent(kernel.id))
                .map_err(failed)?;
            by_agent.entry(agent).or_default().push(kernel);
        }
        let cluster_info = self.cluster_info(rows, &by_agent).await.map_err(failed)?;
        let environ = session_environ(rows, &cluster_info, &email, username.as_deref());
        let main = rows.kernels.first();
        let context = KernelContext {
            session,
            main,
            images: &images,
            registry: &registry,
            environ: &environ,
            idle_timeout,
            auto_pull: shared.docker.auto_pull.to_string(),
        };

        let mut calls = JoinSet::new();
        for (agent_id, kernels) in &by_agent {
            let configs: Vec<rmpv::Value> = kernels
                .iter()
                .map(|kernel| bai_events::to_value(&context.kernel_config(kernel)))
                .collect();
            let kernel_ids: Vec<String> =
                kernels.iter().map(|kernel| kernel.id.to_string()).collect();
            let rpc = Arc::clone(&self.rpc);
            let agent_id = agent_id.clone();
            let session_id = session.id.to_string();
            let cluster_info = bai_events::to_value(&cluster_info);
            let timeout = self.create_timeout;
            calls.spawn(async move {
                let outcome = rpc
                    .call(&agent_id, |connection| async move {
                        connection
                            .create_kernels(
                                &session_id,
                                &kernel_ids,
                                configs,
                                cluster_info,
                                Some(timeout),
                            )
                            .await
                    })
                    .await;
                (agent_id, outcome)
            });
        }
        let mut created_on = Vec::new();
        let mut first_error = None;
        while let Some(joined) = calls.join_next().await {
            let Ok((agent_id, outcome)) = joined else {
                continue;
            };
            match outcome {
                Ok(_) => created_on.push(agent_id),
                Err(error) => {
                    first_error.get_or_insert(SessionStartError::from(error));
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(error) => Err(StartFailure { error, created_on }),
        }
    }

    async fn images(
        &self,
        kernels: &[kernels::Model],
    ) -> Result<HashMap<(String, String), images::Model>, SessionStartError> {
        let wanted: Vec<(String, String)> = kernels.iter().map(kernel_image).collect();
        let found = scheduling::images_by_name(&self.db, &wanted).await?;
        for kernel in kernels {
            let (image, architecture) = kernel_image(kernel);
            if !found.contains_key(&(image.clone(), architecture.clone())) {
                return Err(SessionStartError::UnknownImage {
                    kernel: kernel.id,
                    image,
                    architecture,
                });
            }
        }
        Ok(found)
    }

    /// `ClusterInfo`: the mode, size and replicas, the network (a local network for a
    /// single-node cluster, the host's for host networking with SSH ports assigned per kernel),
    /// and the SSH keypair of a cluster of more than one kernel.
    async fn cluster_info(
        &self,
        rows: &PendingRows,
        by_agent: &BTreeMap<String, Vec<&kernels::Model>>,
    ) -> Result<Value, SessionStartError> {
        let session = &rows.session;
        let mut replicas: BTreeMap<&str, u64> = BTreeMap::new();
        for kernel in &rows.kernels {
            *replicas.entry(kernel.cluster_role.as_str()).or_default() += 1;
        }
        let mut network_name = None;
        let mut ssh_port_mapping = None;
        if session.use_host_network {
            network_name = Some("host".to_owned());
            if session.cluster_size > 1 {
                let mut mapping = serde_json::Map::new();
                for kernel in &rows.kernels {
                    let agent = kernel
                        .agent
                        .as_deref()
                        .ok_or(SessionStartError::NoAgent(kernel.id))?;
                    let port = self.rpc.get(agent).await?.assign_port().await?;
                    let host = kernel
                        .agent_addr
                        .as_deref()
                        .map(|addr| addr.trim_start_matches("tcp://"))
                        .and_then(|addr| addr.split(':').next())
                        .unwrap_or_default();
                    mapping.insert(kernel.cluster_hostname.clone(), json!([host, port]));
                }
                ssh_port_mapping = Some(Value::Object(mapping));
            }
        } else if session.cluster_mode == "single-node" && session.cluster_size > 1 {
            let name = local_network_name(session.id);
            if let Some(agent) = by_agent.keys().next() {
                self.rpc
                    .get(agent)
                    .await?
                    .create_local_network(&name)
                    .await?;
            }
            network_name = Some(name);
        } else if session.cluster_mode == "multi-node" {
            network_name = Some(format!("bai-multinode-{}", session.id));
        }
        let ssh_keypair = if session.cluster_size > 1 {
            let pair = tokio::task::spawn_blocking(cluster_ssh_keypair)
                .await
                .map_err(|error| SessionStartError::Keygen(error.to_string()))??;
            json!({"public_key": pair.0, "private_key": pair.1})
        } else {
            Value::Null
        };
        Ok(json!({
            "mode": session.cluster_mode,
            "size": session.cluster_size,
            "replicas": replicas,
            "network_name": network_name,
            "ssh_keypair": ssh_keypair,
            "cluster_ssh_port_mapping": ssh_port_mapping,
        }))
    }

    async fn announce(&self, event: Event) -> Result<(), StartError> {
        self.producer
            .produce(&event, "manager")
            .await
            .map_err(|source| StartError::Produce {
                event: event.name(),
                source,
            })?;
        Ok(())
    }
}

/// A session that did not start, and the agents that created their kernels anyway.
struct StartFailure {
    error: SessionStartError,
    created_on: Vec<String>,
}

fn creation(session: &sessions::Model, reason: &str) -> SessionCreation {
    SessionCreation {
        session_id: session.id,
        creation_id: session.creation_id.clone().unwrap_or_default(),
        reason: reason.to_owned(),
    }
}

/// A kernel's image and architecture, as its row names them.
fn kernel_image(kernel: &kernels::Model) -> (String, String) {
    (
        kernel.image.clone().unwrap_or_default(),
        kernel
            .architecture
            .clone()
            .unwrap_or_else(|| "x86_64".to_owned()),
    )
}

/// The registry of the session's non-local images: `(name, url, username, password)`; the
/// reference's `http://localhost` when every image is local.
fn registry_of(
    images: &HashMap<(String, String), images::Model>,
    shared: &SharedConfig,
) -> Result<RegistryInfo, SessionStartError> {
    let mut info = RegistryInfo {
        url: "http://localhost".to_owned(),
        username: None,
        password: None,
        all_local: true,
    };
    for image in images.values().filter(|image| !image.is_local) {
        let registry = shared
            .docker
            .registries
            .get(&image.registry)
            .ok_or_else(|| SessionStartError::UnknownRegistry(image.registry.clone()))?;
        info.url = registry.url.clone();
        info.username = registry.username.clone();
        info.password = registry.password.clone();
        info.all_local = false;
    }
    Ok(info)
}

struct RegistryInfo {
    url: String,
    username: Option<String>,
    password: Option<String>,
    all_local: bool,
}

/// The session-wide environment every kernel gets (on top of the session's own `environ`).
fn session_environ(
    rows: &PendingRows,
    cluster_info: &Value,
    email: &str,
    username: Option<&str>,
) -> serde_json::Map<String, Value> {
    let session = &rows.session;
    let mut environ = session
        .environ
        .as_ref()
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let replicas = cluster_info["replicas"]
        .as_object()
        .map(|replicas| {
            replicas
                .iter()
                .map(|(role, count)| format!("{role}:{count}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let hosts = rows
        .kernels
        .iter()
        .map(|kernel| kernel.cluster_hostname.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let preopen = rows
        .kernels
        .first()
        .and_then(|main| main.preopen_ports.as_ref())
        .map(|ports| {
            ports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    for (key, value) in [
        ("BACKENDAI_USER_UUID", session.user_uuid.to_string()),
        ("BACKENDAI_USER_EMAIL", email.to_owned()),
        (
            "BACKENDAI_USER_NAME",
            username.unwrap_or_default().to_owned(),
        ),
        ("BACKENDAI_SESSION_ID", session.id.to_string()),
        (
            "BACKENDAI_SESSION_NAME",
            session.name.clone().unwrap_or_default(),
        ),
        ("BACKENDAI_CLUSTER_SIZE", session.cluster_size.to_string()),
        ("BACKENDAI_CLUSTER_REPLICAS", replicas),
        ("BACKENDAI_CLUSTER_HOSTS", hosts),
        (
            "BACKENDAI_ACCESS_KEY",
            session.access_key.clone().unwrap_or_default(),
        ),
        ("BACKENDAI_PREOPEN_PORTS", preopen),
    ] {
        environ.insert(key.to_owned(), Value::String(value));
    }
    environ
}

/// What every kernel config of one session shares.
struct KernelContext<'a> {
    session: &'a sessions::Model,
    main: Option<&'a kernels::Model>,
    images: &'a HashMap<(String, String), images::Model>,
    registry: &'a RegistryInfo,
    environ: &'a serde_json::Map<String, Value>,
    idle_timeout: i64,
    auto_pull: String,
}

impl KernelContext<'_> {
    /// One kernel's `KernelCreationConfig` (spec §4.8).
    fn kernel_config(&self, kernel: &kernels::Model) -> Value {
        let key = kernel_image(kernel);
        let image = self.images.get(&key);
        let labels = image.map_or_else(|| json!({}), |image| image.labels.clone());
        let mut registry = json!({
            "name": image.map(|image| image.registry.clone()).unwrap_or_default(),
            "url": self.registry.url,
        });
        if let Some(username) = &self.registry.username {
            registry["username"] = json!(username);
        }
        if let Some(password) = &self.registry.password {
            registry["password"] = json!(password);
        }
        let mut environ = self.environ.clone();
        for (name, value) in [
            ("BACKENDAI_KERNEL_ID", kernel.id.to_string()),
            ("BACKENDAI_KERNEL_IMAGE", key.0.clone()),
            ("BACKENDAI_CLUSTER_ROLE", kernel.cluster_role.clone()),
            ("BACKENDAI_CLUSTER_IDX", kernel.cluster_idx.to_string()),
            (
                "BACKENDAI_CLUSTER_LOCAL_RANK",
                kernel.local_rank.to_string(),
            ),
            ("BACKENDAI_CLUSTER_HOST", kernel.cluster_hostname.clone()),
            (
                "BACKENDAI_SERVICE_PORTS",
                // Python's `str()` of the label, `None` when it is missing.
                labels["ai.backend.service-ports"]
                    .as_str()
                    .unwrap_or("None")
                    .to_owned(),
            ),
        ] {
            environ.insert(name.to_owned(), Value::String(value));
        }
        let main = self.main.unwrap_or(kernel);
        json!({
            "image": {
                "registry": registry,
                "digest": image.map(|image| image.config_digest.clone()),
                "repo_digest": null,
                "canonical": key.0,
                "architecture": key.1,
                "labels": labels,
                "is_local": self.registry.all_local,
            },
            "session_type": sea_orm::ActiveEnum::to_value(&self.session.session_type).to_lowercase(),
            "cluster_role": kernel.cluster_role,
            "cluster_idx": kernel.cluster_idx,
            "local_rank": kernel.local_rank,
            "cluster_hostname": kernel.cluster_hostname,
            "idle_timeout": self.idle_timeout,
            "mounts": self.session.vfolder_mounts.clone().unwrap_or_else(|| json!([])),
            "environ": environ,
            "resource_slots": kernel.requested_slots.to_json(),
            "resource_opts": kernel.resource_opts.clone().unwrap_or_else(|| json!({})),
            "bootstrap_script": kernel.bootstrap_script,
            "startup_command": kernel.startup_command,
            "internal_data": main.internal_data,
            "auto_pull": self.auto_pull,
            "preopen_ports": main.preopen_ports.clone().unwrap_or_default(),
            "allocated_host_ports": [],
            "agent_addr": kernel.agent_addr,
            "scaling_group": self.session.scaling_group_name,
        })
    }
}

/// A fresh RSA keypair for the kernels of a cluster to reach each other over SSH: the OpenSSH
/// public key and the PEM private key.
fn cluster_ssh_keypair() -> Result<(String, String), SessionStartError> {
    bai_db_models::queries::keypair_admin::generate_ssh_keypair()
        .map_err(|error| SessionStartError::Keygen(error.to_string()))
}

/// The agent-local network of a single-node cluster, made on its agent before the kernels and
/// removed when the session ends.
pub(crate) fn local_network_name(session_id: Uuid) -> String {
    format!("bai-singlenode-{session_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_references_exception_names() {
        assert_eq!(
            SessionStartError::UnknownRegistry("r".to_owned()).name(),
            "UnknownImageRegistry"
        );
        assert_eq!(
            SessionStartError::NoAgent(Uuid::nil()).name(),
            "InstanceNotAvailable"
        );
    }
}
