//! Heartbeats, status transitions and the lost check (spec §2.2–§2.4).

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bai_db_models::entities::ResourceSlot;
use bai_db_models::entities::enums::AgentStatus;
use bai_db_models::image_ref::{ImageRef, KnownRegistries};
use bai_db_models::queries::agent_registry::{self, HeartbeatOutcome, HeartbeatRow};
use bai_etcd_store::{EtcdStore, LiveSharedConfig, Scope};
use bai_events::{
    AgentInfo, Event, EventProducer, HandlerError, Handlers, MANAGER_GROUP, Received,
};
use bai_redis::Redis;
use bai_stores::Stores;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::rpc_cache::AgentRpcCache;

/// How far behind the event consumers may be before the lost check waits for them.
const BACKLOG_TOLERANCE: Duration = Duration::from_secs(1);

/// Where the reference keeps the unit of every slot type agents report.
const RESOURCE_SLOTS_PREFIX: &str = "config/resource_slots";

/// The agent registry of one worker.
#[derive(Debug)]
pub struct AgentRegistry {
    db: DatabaseConnection,
    etcd: EtcdStore,
    redis: Redis,
    producer: EventProducer,
    /// Registry names that count as such in image references (etcd `config/docker/registry`, as
    /// it is now).
    shared_config: LiveSharedConfig,
    warned_unknown_groups: Arc<UnknownGroupWarnings>,
    /// The RPC connections to forget when an agent moves, changes its key or goes away.
    rpc_cache: Option<Arc<AgentRpcCache>>,
}

/// The heartbeat columns whose change makes a cached RPC connection stale.
const RPC_COLUMNS: [&str; 3] = ["addr", "public_key", "version"];

/// The `(agent, resource group)` pairs a node already warned about: one warning per missing
/// group, not one per heartbeat or per worker. The registries of one node's workers share it.
#[derive(Debug, Default)]
pub struct UnknownGroupWarnings(Mutex<HashSet<(String, String)>>);

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl AgentRegistry {
    pub fn new(stores: &Stores, warned_unknown_groups: Arc<UnknownGroupWarnings>) -> AgentRegistry {
        AgentRegistry {
            db: stores.db.clone(),
            etcd: stores.etcd.clone(),
            redis: stores.redis.clone(),
            producer: EventProducer::new(stores.redis.stream.clone()),
            shared_config: stores.shared_config.clone(),
            warned_unknown_groups,
            rpc_cache: None,
        }
    }

    /// Keeps `cache` true: an agent's connection is dropped when a heartbeat changes its address,
    /// public key or version, and when it restarts, terminates or is lost.
    pub fn with_rpc_cache(mut self, cache: Arc<AgentRpcCache>) -> AgentRegistry {
        self.rpc_cache = Some(cache);
        self
    }

    fn forget_connection(&self, agent_id: &str) {
        if let Some(cache) = &self.rpc_cache {
            cache.forget(agent_id);
        }
    }

    /// `agent_heartbeat` from `agent_id`, added to the stream at `sent_at`.
    #[tracing::instrument(name = "agent_heartbeat", skip_all, fields(agent_id = %agent_id))]
    pub async fn handle_heartbeat(
        &self,
        agent_id: &str,
        info: &AgentInfo,
        sent_at: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        let received_at = unix_now();
        let mut available_slots = ResourceSlot::new();
        for slot in &info.resource_slots {
            match Decimal::from_str(&slot.amount) {
                Ok(amount) => available_slots.insert(slot.slot.clone(), amount),
                Err(_) => {
                    tracing::warn!(
                        "agent {agent_id}: heartbeat dropped: slot {} has amount {:?}, not a \
                         decimal",
                        slot.slot,
                        slot.amount
                    );
                    return Ok(());
                }
            }
        }
        let row = HeartbeatRow {
            id: agent_id.to_owned(),
            region: info.region.clone(),
            scaling_group: info.scaling_group.clone(),
            available_slots,
            addr: info.addr.clone(),
            public_host: info.public_host.clone(),
            public_key: info.public_key.clone(),
            version: info.version.clone(),
            compute_plugins: info.compute_plugins.clone(),
            architecture: info.architecture.clone(),
            auto_terminate_abusing_kernel: info.auto_terminate_abusing_kernel,
        };
        let outcome = agent_registry::apply_heartbeat(&self.db, &row, sent_at).await?;
        let group_key = (agent_id.to_owned(), info.scaling_group.clone());
        match &outcome {
            HeartbeatOutcome::UnknownScalingGroup => {
                let first = self
                    .warned_unknown_groups
                    .0
                    .lock()
                    .is_ok_and(|mut warned| warned.insert(group_key));
                if first {
                    tracing::warn!(
                        "agent {agent_id}: resource group (scaling group) {:?} does not exist; \
                         its heartbeats are dropped until the group is created",
                        info.scaling_group
                    );
                }
                return Ok(());
            }
            HeartbeatOutcome::Stale => {
                tracing::debug!(
                    "agent {agent_id}: heartbeat sent before the agent was marked gone; ignored"
                );
                return Ok(());
            }
            HeartbeatOutcome::Restarting => {
                tracing::debug!("agent {agent_id}: RESTARTING; waiting for agent_started");
            }
            HeartbeatOutcome::Inserted => {
                tracing::info!(
                    "agent {agent_id} joined: {} in resource group {}",
                    info.addr,
                    info.scaling_group
                );
            }
            HeartbeatOutcome::Revived { previous } => {
                tracing::info!("agent {agent_id} is back (it was {previous:?})");
                self.forget_connection(agent_id);
            }
            HeartbeatOutcome::Updated(columns) => {
                tracing::debug!("agent {agent_id}: heartbeat changed {}", columns.join(", "));
                if columns.iter().any(|column| RPC_COLUMNS.contains(column)) {
                    self.forget_connection(agent_id);
                }
            }
            HeartbeatOutcome::Unchanged => {}
        }
        if let Ok(mut warned) = self.warned_unknown_groups.0.lock() {
            warned.remove(&group_key);
        }
        self.redis
            .live
            .record_agent_seen(agent_id, received_at)
            .await?;
        if matches!(
            outcome,
            HeartbeatOutcome::Inserted | HeartbeatOutcome::Revived { .. }
        ) {
            self.record_slot_units(info).await?;
        }
        self.record_images(agent_id, info).await?;
        if matches!(outcome, HeartbeatOutcome::Revived { .. }) {
            self.producer
                .produce(
                    &Event::AgentStarted {
                        reason: "revived".to_owned(),
                    },
                    agent_id,
                )
                .await?;
        }
        Ok(())
    }

    /// Writes the unit of every slot type the agent reports that etcd lacks or spells otherwise.
    async fn record_slot_units(&self, info: &AgentInfo) -> Result<(), HandlerError> {
        let known = self
            .etcd
            .get_prefix(RESOURCE_SLOTS_PREFIX, Scope::Global)
            .await?;
        for slot in &info.resource_slots {
            let current = known.get(&slot.slot).and_then(|node| node.as_value());
            if current != Some(slot.slot_type.as_str()) {
                self.etcd
                    .put(
                        &format!("{RESOURCE_SLOTS_PREFIX}/{}", slot.slot),
                        &slot.slot_type,
                        Scope::Global,
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Adds the agent to the holders of each image it reports; references that do not parse are
    /// skipped, as the 24.03 reference does.
    async fn record_images(&self, agent_id: &str, info: &AgentInfo) -> Result<(), HandlerError> {
        if info.images.is_empty() {
            return Ok(());
        }
        let shared_config = self.shared_config.current();
        let registries: Vec<&str> = shared_config
            .docker
            .registries
            .keys()
            .map(String::as_str)
            .collect();
        let canonical_names: Vec<String> = info
            .images
            .iter()
            .filter_map(|(tag, _digest)| {
                ImageRef::parse(
                    tag,
                    KnownRegistries::Listed(&registries),
                    &info.architecture,
                )
                .ok()
                .map(|image| image.canonical())
            })
            .collect();
        self.redis
            .image
            .add_agent_images(agent_id, &canonical_names)
            .await?;
        Ok(())
    }

    /// `agent_started`: the agent is `ALIVE` (if it has a row; its heartbeat inserts it).
    #[tracing::instrument(name = "agent_started", skip_all, fields(agent_id = %agent_id))]
    pub async fn handle_started(&self, agent_id: &str, reason: &str) -> Result<(), HandlerError> {
        if agent_registry::set_agent_status(&self.db, agent_id, AgentStatus::Alive).await? {
            tracing::info!("agent {agent_id} started ({reason})");
        }
        Ok(())
    }

    /// `agent_terminated`: `agent-lost` makes it `LOST`, `agent-restart` `RESTARTING`, anything
    /// else (`shutdown`) `TERMINATED`.
    #[tracing::instrument(name = "agent_terminated", skip_all, fields(agent_id = %agent_id, reason = %reason))]
    pub async fn handle_terminated(
        &self,
        agent_id: &str,
        reason: &str,
    ) -> Result<(), HandlerError> {
        self.forget_connection(agent_id);
        if reason == "agent-restart" {
            agent_registry::set_agent_status(&self.db, agent_id, AgentStatus::Restarting).await?;
            return Ok(());
        }
        let status = if reason == "agent-lost" {
            AgentStatus::Lost
        } else {
            AgentStatus::Terminated
        };
        self.redis.live.forget_agent_seen(agent_id).await?;
        self.redis.image.remove_agent_everywhere(agent_id).await?;
        let previous = agent_registry::mark_agent_terminated(&self.db, agent_id, status).await?;
        if matches!(previous, Some(AgentStatus::Alive | AgentStatus::Restarting)) {
            match status {
                AgentStatus::Lost => tracing::warn!("agent {agent_id} is lost"),
                _ => tracing::info!("agent {agent_id} terminated ({reason})"),
            }
        }
        Ok(())
    }

    /// The registry's part of an event: heartbeats and lifecycle events of agents.
    async fn handle_event(self: Arc<Self>, received: Arc<Received>) -> Result<(), HandlerError> {
        match &received.event {
            Event::AgentHeartbeat(info) => {
                let sent_at = DateTime::<Utc>::from_timestamp_millis(
                    i64::try_from(received.id.millis).unwrap_or(i64::MAX),
                )
                .unwrap_or_else(Utc::now);
                self.handle_heartbeat(&received.source, info, sent_at).await
            }
            Event::AgentStarted { reason } => self.handle_started(&received.source, reason).await,
            Event::AgentTerminated { reason } => {
                self.handle_terminated(&received.source, reason).await
            }
            _ => Ok(()),
        }
    }

    /// One round of the lost check: every agent not heard from for `timeout` is reported with
    /// `agent_terminated("agent-lost")`, once: of all the processes that see it stale, the one that
    /// removes its `agent.last_seen` entry reports it.
    pub async fn check_lost(&self, timeout: Duration) -> Result<usize, HandlerError> {
        // Heartbeats waiting in the stream are not lost: while the manager group is behind (a
        // restart, an outage), `agent.last_seen` is old news and the check waits for the backlog.
        if let Some(age) = self
            .redis
            .stream
            .oldest_unhandled_age(MANAGER_GROUP)
            .await?
            && age > BACKLOG_TOLERANCE
        {
            tracing::debug!(
                "agent lost check waits: the oldest unhandled event is {:.1} s old",
                age.as_secs_f64()
            );
            return Ok(0);
        }
        let now = unix_now();
        let mut reported = 0;
        for seen in self.redis.live.agents_last_seen().await? {
            // An entry that is not a number counts as stale.
            let age = now - seen.at;
            let stale = age.is_nan() || age > timeout.as_secs_f64();
            if !stale || !self.redis.live.take_stale_agent(&seen).await? {
                continue;
            }
            let lost = Event::AgentTerminated {
                reason: "agent-lost".to_owned(),
            };
            if let Err(error) = self.producer.produce(&lost, &seen.agent_id).await {
                // Put the entry back so that the next round reports the agent.
                let restored = self
                    .redis
                    .live
                    .record_agent_seen(&seen.agent_id, seen.at)
                    .await;
                if let Err(restore_error) = restored {
                    tracing::error!(
                        "agent {}: cannot report it lost ({error}) nor keep it for the next \
                         check ({restore_error})",
                        seen.agent_id
                    );
                }
                return Err(error.into());
            }
            tracing::info!(
                "agent {}: no heartbeat for {:.1} s; reporting it lost",
                seen.agent_id,
                now - seen.at
            );
            reported += 1;
        }
        Ok(reported)
    }
}

/// The registry's event handlers: heartbeats, `agent_started`, `agent_terminated`.
pub fn handlers(registry: &Arc<AgentRegistry>, into: &mut Handlers) {
    for (event, handler) in [
        ("agent_heartbeat", "handle_heartbeat"),
        ("agent_started", "handle_agent_started"),
        ("agent_terminated", "handle_agent_terminated"),
    ] {
        let registry = Arc::clone(registry);
        into.on(event, handler, move |received| {
            Arc::clone(&registry).handle_event(received)
        });
    }
}

/// Runs the lost check every second until `shutdown`.
pub async fn run_lost_check(
    registry: Arc<AgentRegistry>,
    timeout: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match registry.check_lost(timeout).await {
            Ok(_) => failing = false,
            Err(error) if !failing => {
                failing = true;
                tracing::warn!("agent lost check failed, retrying every second: {error}");
            }
            Err(_) => {}
        }
    }
}
