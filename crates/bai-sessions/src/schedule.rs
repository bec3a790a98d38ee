//! The scheduling round (spec §4.2): for every resource group with an ALIVE agent, read the
//! group's agents, pending sessions and quotas in one transaction under the scheduling lock,
//! decide the whole round in memory (`bai_scheduler::round`), write the decisions in the same
//! transaction, then announce them (`session_scheduled`, `session_cancelled`, `do_prepare`).
//!
//! Agents' occupancy and keypairs' concurrency are read from the rows (the kernels), never from
//! counters kept in memory or in Redis, so a manager that restarts mid-round loses and doubles
//! nothing: the transaction either committed or did not.

use std::collections::{BTreeMap, HashMap};

use bai_db_models::DbError;
use bai_db_models::entities::ResourceSlot;
use bai_db_models::entities::keypair_resource_policies;
use bai_db_models::queries::scheduling::{
    self, GroupRows, KernelOnAgent, Round, RoundWrites, ScheduledWrite, SchedulerUpdate,
};
use bai_etcd_store::{ConfigTree, EtcdError, EtcdStore, Scope};
use bai_events::{Event, EventProducer, SessionCreation};
use bai_metrics::record::{Decision, RoundOutcome};
use bai_redis::{RedisError, SchedulerStatus, SchedulerTask, StatDb};
use bai_scheduler::round::{
    AgentSelectionStrategy, AgentSnapshot, ClusterMode, Dependency, ExistingSession, Failure,
    GroupSnapshot, KeypairQuota, PendingKernel, PendingSession, QuotaSnapshot, ResourcePolicy,
    RoundPlan, RoundRobinState, SchedulerKind, SchedulerOpts, ScopeQuota, SnapshotError, UserQuota,
    plan_round,
};
use bai_scheduler::{KnownSlots, Slots};
use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::DatabaseConnection;
use sea_orm::prelude::Uuid;

/// The etcd key of the round-robin states of every group (`{group: {arch: state}}`).
const ROUNDROBIN_KEY: &str = "roundrobin_states";
/// etcd `config/agent/max-container-count`.
const MAX_CONTAINER_COUNT_KEY: &str = "config/agent/max-container-count";

/// Why a round of a group failed (the other groups' rounds go on).
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Db(Box<DbError>),
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("resource group {group:?}: {source}")]
    Snapshot {
        group: String,
        source: SnapshotError,
    },
    #[error("resource group {group:?}: {detail}")]
    Config { group: String, detail: String },
    #[error("announcing {event}: {source}")]
    Produce {
        event: &'static str,
        source: bai_redis::RedisError,
    },
}
impl From<DbError> for ScheduleError {
    fn from(error: DbError) -> Self {
        ScheduleError::Db(Box::new(error))
    }
}

/// What one call of [`Scheduler::schedule`] did, over all groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScheduleReport {
    pub scheduled: usize,
    pub failed: usize,
    pub cancelled: usize,
}

/// The trigger a round records in its status hash. The dispatcher's coalesced triggers do not say
/// which event fired, so every round is recorded as the reference records its timer's and the
/// API's rounds.
const SCHEDULE_TRIGGER: &str = "do_schedule";

/// Runs scheduling rounds.
#[derive(Clone, Debug)]
pub struct Scheduler {
    db: DatabaseConnection,
    etcd: EtcdStore,
    stat: StatDb,
    producer: EventProducer,
    resource_priority: Vec<String>,
    status: SchedulerStatus,
}

impl Scheduler {
    /// `resource_priority` is manager.toml's `agent-selection-resource-priority`; `status` is
    /// where rounds are recorded for `GET /manager/scheduler/status`.
    pub fn new(
        db: DatabaseConnection,
        etcd: EtcdStore,
        stat: StatDb,
        producer: EventProducer,
        resource_priority: Vec<String>,
        status: SchedulerStatus,
    ) -> Scheduler {
        Scheduler {
            db,
            etcd,
            stat,
            producer,
            resource_priority,
            status,
        }
    }

    /// One round of every resource group that has an ALIVE agent, as `do_schedule` asks.
    pub async fn schedule(&self) -> Result<ScheduleReport, ScheduleError> {
        self.schedule_for(SCHEDULE_TRIGGER).await
    }

    /// One round of every resource group that has an ALIVE agent, because of event
    /// `trigger_event`. A group whose round fails is logged and left for the next round; the
    /// error of the first such group is returned after the others ran. The round is recorded in
    /// the status hash: its trigger and start, each group whose round went through, and its end
    /// once every group had its turn.
    pub async fn schedule_for(&self, trigger_event: &str) -> Result<ScheduleReport, ScheduleError> {
        note_status(
            self.status
                .begin(SchedulerTask::Schedule, trigger_event)
                .await,
        );
        let alive = scheduling::groups_with_alive_agents(&self.db).await?;
        // Groups without an ALIVE agent still see their pending timeouts (the reference skips
        // them, so their sessions wait there for good).
        let waiting = scheduling::groups_with_pending_sessions(&self.db).await?;
        let groups = alive.iter().map(|group| (group.clone(), true)).chain(
            waiting
                .into_iter()
                .filter(|group| !alive.contains(group))
                .map(|group| (group, false)),
        );
        let mut report = ScheduleReport::default();
        let mut first_error = None;
        let mut any_scheduled = false;
        for (group, has_agents) in groups {
            match self.schedule_group(&group, has_agents).await {
                Ok(plan) => {
                    bai_metrics::record::scheduler_round(match &plan {
                        Some(plan) if !plan.scheduled.is_empty() => RoundOutcome::Scheduled,
                        _ => RoundOutcome::Unchanged,
                    });
                    if let Some(plan) = plan {
                        any_scheduled |= plan.any_scheduled();
                        report.scheduled += plan.scheduled.len();
                        report.failed += plan.failed.len();
                        report.cancelled += plan.timed_out.len()
                            + plan.failed.iter().filter(|f| f.failure.cancels()).count();
                    }
                    note_status(self.status.handled(SchedulerTask::Schedule, &group).await);
                }
                Err(error) => {
                    bai_metrics::record::scheduler_round(RoundOutcome::Error);
                    tracing::error!("scheduling resource group {group:?} failed: {error}");
                    first_error.get_or_insert(error);
                }
            }
        }
        note_status(self.status.finish(SchedulerTask::Schedule).await);
        if any_scheduled {
            self.announce(Event::DoPrepare).await?;
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }

    /// The agents' container cap (etcd `config/agent/max-container-count`), if one is set.
    async fn max_container_count(&self, group: &str) -> Result<Option<u64>, ScheduleError> {
        let Some(text) = self
            .etcd
            .get(MAX_CONTAINER_COUNT_KEY, Scope::Global)
            .await?
        else {
            return Ok(None);
        };
        text.trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| ScheduleError::Config {
                group: group.to_owned(),
                detail: format!("etcd {MAX_CONTAINER_COUNT_KEY} is not a count: {text:?}"),
            })
    }

    /// One round of `group`; without agents, only its pending timeouts are applied.
    #[tracing::instrument(name = "schedule_round", skip_all, fields(scaling_group = %group))]
    async fn schedule_group(
        &self,
        group: &str,
        has_agents: bool,
    ) -> Result<Option<RoundPlan>, ScheduleError> {
        // What does not depend on the group's rows is read before its lock is taken, so that
        // rounds of other processes wait only for the rows and the decisions.
        let known_slots = KnownSlots::load(&self.etcd).await?;
        let max_container_count = self.max_container_count(group).await?;
        let round = Round::begin(&self.db, group).await?;
        let Some(rows) = round.load().await? else {
            return Ok(None);
        };
        if rows.pending.is_empty() {
            bai_metrics::record::pending_sessions(group, 0);
            return Ok(None);
        }
        let plugin_config = self
            .etcd
            .get_prefix(
                &format!("plugins/scheduler/{}", rows.group.scheduler),
                Scope::Global,
            )
            .await?;
        let mut container_counts = HashMap::new();
        if max_container_count.is_some() {
            let agent_ids: Vec<&str> = rows
                .agents
                .iter()
                .chain(&rows.designated_agents)
                .map(|agent| agent.id.as_str())
                .collect();
            // Counts Redis cannot give are read as none: the cap is a guard, not a quota.
            let counts = self
                .stat
                .container_counts(&agent_ids)
                .await
                .unwrap_or_default();
            for (agent_id, count) in agent_ids.into_iter().zip(counts) {
                container_counts.insert(agent_id.to_owned(), u64::try_from(count).unwrap_or(0));
            }
        }
        let roundrobin_all = self.roundrobin_states().await?;
        let inputs = RoundInputs {
            known_slots,
            resource_priority: self.resource_priority.clone(),
            plugin_config,
            max_container_count,
            container_counts,
            roundrobin: roundrobin_all.get(group).cloned().unwrap_or_default(),
            now: Utc::now(),
        };
        let snapshot = group_snapshot(&rows, inputs)?;
        let mut plan = plan_round(&snapshot).map_err(|source| ScheduleError::Snapshot {
            group: group.to_owned(),
            source,
        })?;
        if !has_agents {
            plan = RoundPlan {
                last_try: plan.last_try,
                timed_out: plan.timed_out,
                scheduled: Vec::new(),
                failed: Vec::new(),
                agent_reservations: BTreeMap::new(),
                roundrobin: snapshot.roundrobin.clone(),
            };
            if plan.timed_out.is_empty() {
                bai_metrics::record::pending_sessions(group, rows.pending.len());
                return Ok(None);
            }
        }
        let writes = round_writes(&rows, &plan, snapshot.now);
        round.commit(&writes).await?;
        record_decisions(group, rows.pending.len(), &plan);
        let scheduled_keys = plan.scheduled.iter().filter_map(|scheduled| {
            snapshot
                .pending
                .iter()
                .find(|pending| pending.id == scheduled.session_id)
                .map(|pending| pending.access_key.clone())
        });
        crate::lifecycle::sync_concurrency(&self.db, &self.stat, scheduled_keys).await;
        if plan.roundrobin != snapshot.roundrobin {
            self.store_roundrobin(group, &plan.roundrobin).await?;
        }
        for session in &plan.scheduled {
            self.announce(Event::SessionScheduled(SessionCreation {
                session_id: session.session_id,
                creation_id: session.creation_id.clone(),
                reason: String::new(),
            }))
            .await?;
        }
        let cancelled = plan
            .timed_out
            .iter()
            .map(|session| (session.session_id, session.creation_id.clone()))
            .chain(
                plan.failed
                    .iter()
                    .filter(|failed| failed.failure.cancels())
                    .map(|failed| (failed.session_id, failed.creation_id.clone())),
            );
        for (session_id, creation_id) in cancelled {
            self.announce(Event::SessionCancelled(SessionCreation {
                session_id,
                creation_id,
                reason: "pending-timeout".to_owned(),
            }))
            .await?;
        }
        tracing::debug!(
            resource_group = group,
            scheduled = plan.scheduled.len(),
            failed = plan.failed.len(),
            "scheduling round done"
        );
        Ok(Some(plan))
    }

    async fn roundrobin_states(
        &self,
    ) -> Result<BTreeMap<String, BTreeMap<String, RoundRobinState>>, ScheduleError> {
        let Some(text) = self.etcd.get(ROUNDROBIN_KEY, Scope::Global).await? else {
            return Ok(BTreeMap::new());
        };
        // A state that does not read is as good as none: round-robin starts over.
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let mut states = BTreeMap::new();
        for (group, by_arch) in json.as_object().into_iter().flatten() {
            let mut arches = BTreeMap::new();
            for (arch, state) in by_arch.as_object().into_iter().flatten() {
                if let (Some(id), Some(next)) = (
                    state["schedulable_group_id"].as_str(),
                    state["next_index"].as_u64(),
                ) {
                    arches.insert(
                        arch.clone(),
                        RoundRobinState {
                            schedulable_group_id: id.to_owned(),
                            next_index: usize::try_from(next).unwrap_or(0),
                        },
                    );
                }
            }
            states.insert(group.clone(), arches);
        }
        Ok(states)
    }

    async fn store_roundrobin(
        &self,
        group: &str,
        states: &BTreeMap<String, RoundRobinState>,
    ) -> Result<(), ScheduleError> {
        let text = self
            .etcd
            .get(ROUNDROBIN_KEY, Scope::Global)
            .await?
            .unwrap_or_default();
        let mut all: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).unwrap_or_default();
        let by_arch: serde_json::Map<String, serde_json::Value> = states
            .iter()
            .map(|(arch, state)| {
                (
                    arch.clone(),
                    serde_json::json!({
                        "schedulable_group_id": state.schedulable_group_id,
                        "next_index": state.next_index,
                    }),
                )
            })
            .collect();
        all.insert(group.to_owned(), serde_json::Value::Object(by_arch));
        self.etcd
            .put(
                ROUNDROBIN_KEY,
                &serde_json::Value::Object(all).to_string(),
                Scope::Global,
            )
            .await?;
        Ok(())
    }

    async fn announce(&self, event: Event) -> Result<(), ScheduleError> {
        self.producer
            .produce(&event, "manager")
            .await
            .map_err(|source| ScheduleError::Produce {
                event: event.name(),
                source,
            })?;
        Ok(())
    }
}

/// The committed decisions of `group`'s round, and what it left pending.
fn record_decisions(group: &str, pending: usize, plan: &RoundPlan) {
    let cancelling = plan
        .failed
        .iter()
        .filter(|failed| failed.failure.cancels())
        .count();
    let cancelled = plan.timed_out.len() + cancelling;
    bai_metrics::record::scheduler_decisions(Decision::Scheduled, plan.scheduled.len());
    bai_metrics::record::scheduler_decisions(
        Decision::FailedPredicate,
        plan.failed.len() - cancelling,
    );
    bai_metrics::record::scheduler_decisions(Decision::Cancelled, cancelled);
    bai_metrics::record::pending_sessions(
        group,
        pending.saturating_sub(plan.scheduled.len() + cancelled),
    );
}

/// Logs a status hash that could not be written: it only informs operators, so the round goes on.
pub(crate) fn note_status(written: Result<(), RedisError>) {
    if let Err(error) = written {
        tracing::warn!("cannot record the scheduler's status: {error}");
    }
}

/// What a snapshot needs besides the group's rows.
#[derive(Clone, Debug)]
struct RoundInputs {
    known_slots: KnownSlots,
    resource_priority: Vec<String>,
    /// etcd `plugins/scheduler/{name}`.
    plugin_config: ConfigTree,
    max_container_count: Option<u64>,
    container_counts: HashMap<String, u64>,
    roundrobin: BTreeMap<String, RoundRobinState>,
    now: DateTime<Utc>,
}

/// The round's input from the group's rows.
fn group_snapshot(rows: &GroupRows, inputs: RoundInputs) -> Result<GroupSnapshot, ScheduleError> {
    let group = rows.group.name.clone();
    let opts_json = &rows.group.scheduler_opts;
    let mut config = config_tree_json(&inputs.plugin_config);
    if let Some(overrides) = opts_json
        .get("config")
        .and_then(serde_json::Value::as_object)
    {
        config.extend(overrides.clone());
    }
    let scheduler =
        SchedulerKind::from_config(&rows.group.scheduler, &config).map_err(|source| {
            ScheduleError::Snapshot {
                group: group.clone(),
                source,
            }
        })?;
    let agent_selection_strategy = match opts_json.get("agent_selection_strategy") {
        None | Some(serde_json::Value::Null) => AgentSelectionStrategy::default(),
        Some(value) => value
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|source| ScheduleError::Snapshot {
                group: group.clone(),
                source,
            })?,
    };
    let pending_timeout = opts_json
        .get("pending_timeout")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.0);
    let opts = SchedulerOpts {
        agent_selection_strategy,
        roundrobin: opts_json
            .get("roundrobin")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        pending_timeout: TimeDelta::milliseconds((pending_timeout * 1000.0) as i64),
    };
    let agent = |row: &bai_db_models::entities::agents::Model| AgentSnapshot {
        id: row.id.clone(),
        architecture: row.architecture.clone(),
        available_slots: row.available_slots.clone(),
        occupied_slots: row.occupied_slots.clone(),
        container_count: inputs.container_counts.get(&row.id).copied().unwrap_or(0),
    };

    let mut dependencies: HashMap<Uuid, Vec<Dependency>> = HashMap::new();
    for row in &rows.dependencies {
        dependencies
            .entry(row.session_id)
            .or_default()
            .push(Dependency {
                id: row.id,
                name: row.name.clone(),
                status: row.status,
                result: row.result,
            });
    }
    let mut pending = Vec::with_capacity(rows.pending.len());
    for session_rows in &rows.pending {
        let session = &session_rows.session;
        let Some(access_key) = session.access_key.clone() else {
            tracing::warn!(session.id = %session.id, "pending session without an access key; not scheduled");
            continue;
        };
        if !rows.keypair_policies.contains_key(&access_key) {
            tracing::warn!(session.id = %session.id, access_key, "pending session of an access key without keypair or policy; not scheduled");
            continue;
        }
        let cluster_mode: ClusterMode =
            session
                .cluster_mode
                .parse()
                .map_err(|source| ScheduleError::Snapshot {
                    group: group.clone(),
                    source,
                })?;
        let retries = session
            .status_data
            .as_ref()
            .and_then(|data| data["scheduler"]["retries"].as_u64())
            .unwrap_or(0);
        pending.push(PendingSession {
            id: session.id,
            creation_id: session.creation_id.clone().unwrap_or_default(),
            name: session.name.clone().unwrap_or_default(),
            access_key,
            user_uuid: session.user_uuid,
            group_id: session.group_id,
            domain_name: session.domain_name.clone(),
            session_type: session.session_type,
            cluster_mode,
            requested_slots: session.requested_slots.clone(),
            kernels: session_rows
                .kernels
                .iter()
                .map(|kernel| PendingKernel {
                    id: kernel.id,
                    architecture: kernel
                        .architecture
                        .clone()
                        .unwrap_or_else(|| "x86_64".to_owned()),
                    image_ref: kernel.image.clone().unwrap_or_default(),
                    requested_slots: kernel.requested_slots.clone(),
                    designated_agent: kernel.agent.clone(),
                })
                .collect(),
            created_at: session.created_at.map_or(inputs.now, |at| at.to_utc()),
            starts_at: session.starts_at.map(|at| at.to_utc()),
            retries,
            dependencies: dependencies.remove(&session.id).unwrap_or_default(),
        });
    }

    let quotas = quota_snapshot(rows, &pending);
    Ok(GroupSnapshot {
        name: group.clone(),
        scheduler,
        opts,
        resource_priority: inputs.resource_priority,
        known_slots: inputs.known_slots,
        agents: rows.agents.iter().map(agent).collect(),
        designated_agents: rows.designated_agents.iter().map(agent).collect(),
        max_container_count: inputs.max_container_count,
        pending,
        existing: rows
            .existing
            .iter()
            .map(|(access_key, occupying)| ExistingSession {
                access_key: access_key.clone().unwrap_or_default(),
                occupying_slots: occupying.clone(),
            })
            .collect(),
        quotas,
        roundrobin: inputs.roundrobin,
        now: inputs.now,
    })
}

/// An etcd subtree as a JSON object of strings (and objects).
fn config_tree_json(tree: &ConfigTree) -> serde_json::Map<String, serde_json::Value> {
    tree.iter()
        .map(|(key, node)| {
            let value = match node {
                bai_etcd_store::ConfigNode::Value(text) => serde_json::Value::String(text.clone()),
                bai_etcd_store::ConfigNode::Tree(subtree) => {
                    serde_json::Value::Object(config_tree_json(subtree))
                }
            };
            (key.clone(), value)
        })
        .collect()
}

fn policy(model: &keypair_resource_policies::Model) -> ResourcePolicy {
    ResourcePolicy {
        total_resource_slots: model.total_resource_slots.clone(),
        default_for_unspecified: model.default_for_unspecified,
        max_concurrent_sessions: i64::from(model.max_concurrent_sessions),
        max_concurrent_sftp_sessions: i64::from(model.max_concurrent_sftp_sessions),
        max_pending_session_count: model.max_pending_session_count.map(i64::from),
        max_pending_session_resource_slots: model.max_pending_session_resource_slots.clone(),
    }
}

/// Sums of slot maps by some key.
#[derive(Default)]
struct Totals<K: std::hash::Hash + Eq>(HashMap<K, Slots>);

impl<K: std::hash::Hash + Eq> Totals<K> {
    fn add(&mut self, key: K, slots: &ResourceSlot) {
        self.0
            .entry(key)
            .or_default()
            .add_assign(&mut Slots::from(slots));
    }

    fn take(&mut self, key: &K) -> ResourceSlot {
        self.0
            .remove(key)
            .map_or_else(ResourceSlot::new, |slots| ResourceSlot::from(&slots))
    }
}

fn quota_snapshot(rows: &GroupRows, pending: &[PendingSession]) -> QuotaSnapshot {
    let mut by_key = Totals::default();
    let mut by_user = Totals::default();
    let mut by_group = Totals::default();
    let mut by_domain = Totals::default();
    for kernel in &rows.occupying_kernels {
        if let Some(key) = &kernel.access_key {
            by_key.add(key.clone(), &kernel.occupied_slots);
        }
        by_user.add(kernel.user_uuid, &kernel.occupied_slots);
        by_group.add(kernel.group_id, &kernel.occupied_slots);
        by_domain.add(kernel.domain_name.clone(), &kernel.occupied_slots);
    }
    let mut pending_slots = Totals::default();
    let mut pending_count: HashMap<&str, u64> = HashMap::new();
    for (key, requested) in &rows.pending_of_keys {
        pending_slots.add(key.clone(), requested);
        *pending_count.entry(key.as_str()).or_default() += 1;
    }
    let mut quotas = QuotaSnapshot::default();
    for session in pending {
        if !quotas.keypairs.contains_key(&session.access_key)
            && let Some(model) = rows.keypair_policies.get(&session.access_key)
        {
            let (concurrency_used, sftp_concurrency_used) = rows
                .concurrency
                .get(&session.access_key)
                .copied()
                .unwrap_or_default();
            quotas.keypairs.insert(
                session.access_key.clone(),
                KeypairQuota {
                    policy: policy(model),
                    concurrency_used,
                    sftp_concurrency_used,
                    occupied: by_key.take(&session.access_key),
                    pending_count: pending_count
                        .get(session.access_key.as_str())
                        .copied()
                        .unwrap_or(0),
                    pending_slots: pending_slots.take(&session.access_key),
                },
            );
        }
        quotas
            .users
            .entry(session.user_uuid)
            .or_insert_with(|| UserQuota {
                main_keypair_policy: rows
                    .user_main_policies
                    .get(&session.user_uuid)
                    .cloned()
                    .flatten()
                    .as_ref()
                    .map(policy),
                occupied: by_user.take(&session.user_uuid),
            });
        quotas
            .groups
            .entry(session.group_id)
            .or_insert_with(|| ScopeQuota {
                total_resource_slots: rows
                    .group_limits
                    .get(&session.group_id)
                    .cloned()
                    .flatten()
                    .unwrap_or_default(),
                occupied: by_group.take(&session.group_id),
            });
        quotas
            .domains
            .entry(session.domain_name.clone())
            .or_insert_with(|| ScopeQuota {
                total_resource_slots: rows
                    .domain_limits
                    .get(&session.domain_name)
                    .cloned()
                    .flatten()
                    .unwrap_or_default(),
                occupied: by_domain.take(&session.domain_name),
            });
    }
    quotas
}

/// The rows a plan changes.
fn round_writes(rows: &GroupRows, plan: &RoundPlan, now: DateTime<Utc>) -> RoundWrites {
    let agents: HashMap<&str, &bai_db_models::entities::agents::Model> = rows
        .agents
        .iter()
        .chain(&rows.designated_agents)
        .map(|agent| (agent.id.as_str(), agent))
        .collect();
    let agent_occupied = plan
        .agent_reservations
        .iter()
        .filter_map(|(agent_id, reserved)| {
            let agent = agents.get(agent_id.as_str())?;
            let total = Slots::from(&agent.occupied_slots).add(&mut Slots::from(reserved));
            Some((agent_id.clone(), ResourceSlot::from(&total)))
        })
        .collect();
    let scheduled = plan
        .scheduled
        .iter()
        .map(|session| ScheduledWrite {
            session_id: session.session_id,
            agent_ids: session.agent_ids.clone(),
            kernels: session
                .kernels
                .iter()
                .map(|kernel| KernelOnAgent {
                    kernel_id: kernel.kernel_id,
                    agent_id: kernel.agent_id.clone(),
                    agent_addr: agents
                        .get(kernel.agent_id.as_str())
                        .map(|agent| agent.addr.clone())
                        .unwrap_or_default(),
                })
                .collect(),
        })
        .collect();
    let kernels_of: HashMap<Uuid, Vec<Uuid>> = rows
        .pending
        .iter()
        .map(|pending| {
            (
                pending.session.id,
                pending.kernels.iter().map(|kernel| kernel.id).collect(),
            )
        })
        .collect();
    let mut session_updates = Vec::new();
    let mut kernel_updates = Vec::new();
    let mut cancelled: Vec<(Uuid, String)> = plan
        .timed_out
        .iter()
        .map(|session| (session.session_id, "pending-timeout".to_owned()))
        .collect();
    for failed in &plan.failed {
        let predicates = failed.failure.predicate_update(&plan.last_try);
        let update = |id, status_info: Option<&str>, merge, count_retry, replace| SchedulerUpdate {
            id,
            status_info: status_info.map(str::to_owned),
            scheduler_merge: merge,
            count_retry,
            replace_status_data: replace,
        };
        match &failed.failure {
            Failure::PredicateChecksFailed { .. } => {
                session_updates.push(update(
                    failed.session_id,
                    Some("predicate-checks-failed"),
                    Some(predicates),
                    true,
                    None,
                ));
                if failed.failure.cancels() {
                    cancelled.push((failed.session_id, "pending-timeout".to_owned()));
                }
            }
            Failure::NoAvailableInstances { kernel_id, .. } => {
                let no_instance = failed.failure.no_instance_update(&plan.last_try);
                for kernel in kernels_of.get(&failed.session_id).into_iter().flatten() {
                    if Some(*kernel) != *kernel_id {
                        kernel_updates.push(update(
                            *kernel,
                            None,
                            Some(predicates.clone()),
                            false,
                            None,
                        ));
                    }
                }
                match kernel_id {
                    // Multi-node: the kernel no agent could take carries the failure.
                    Some(kernel) => {
                        session_updates.push(update(
                            failed.session_id,
                            None,
                            Some(predicates.clone()),
                            false,
                            None,
                        ));
                        kernel_updates.push(update(
                            *kernel,
                            Some("no-available-instances"),
                            Some(merged(&predicates, no_instance)),
                            true,
                            None,
                        ));
                    }
                    None => session_updates.push(update(
                        failed.session_id,
                        Some("no-available-instances"),
                        Some(merged(&predicates, no_instance)),
                        true,
                        None,
                    )),
                }
            }
            Failure::SchedulerError { .. } => session_updates.push(update(
                failed.session_id,
                Some("scheduler-error"),
                None,
                false,
                failed.failure.error_status_data(),
            )),
        }
    }
    RoundWrites {
        group: rows.group.name.clone(),
        now,
        agent_occupied,
        scheduled,
        session_updates,
        kernel_updates,
        cancelled,
    }
}

/// `a || b` of two JSON objects (`b` may be absent).
fn merged(a: &serde_json::Value, b: Option<serde_json::Value>) -> serde_json::Value {
    let mut object = a.as_object().cloned().unwrap_or_default();
    if let Some(serde_json::Value::Object(more)) = b {
        object.extend(more);
    }
    serde_json::Value::Object(object)
}
