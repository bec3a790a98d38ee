//! The input of one scheduling round: everything the reference's `_schedule_in_sgroup` reads from
//! PostgreSQL, etcd and Redis for one resource group, loaded once by the caller. The round decides
//! from this snapshot alone; nothing here reads a store or the clock.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use bai_db_models::entities::ResourceSlot;
use bai_db_models::entities::enums::{
    DefaultForUnspecified, SessionResult, SessionStatus, SessionType,
};
use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::slots::KnownSlots;

/// The manager's `agent-selection-resource-priority` when manager.toml does not set it.
pub const DEFAULT_RESOURCE_PRIORITY: [&str; 5] = ["cuda", "rocm", "tpu", "cpu", "mem"];

/// One resource group (scaling group) at the start of a round.
#[derive(Clone, Debug)]
pub struct GroupSnapshot {
    /// `scaling_groups.name`.
    pub name: String,
    pub scheduler: SchedulerKind,
    pub opts: SchedulerOpts,
    /// The manager's `agent-selection-resource-priority`, as configured.
    pub resource_priority: Vec<String>,
    /// etcd `config/resource_slots` with the intrinsic `cpu` and `mem`.
    pub known_slots: KnownSlots,
    /// The candidates: ALIVE and schedulable agents of this group, in the order the database
    /// returned them (ties between equally good agents go to the first).
    pub agents: Vec<AgentSnapshot>,
    /// Agents that pending kernels designate (superadmin `agent_list`) and that are not among
    /// `agents` (another group, not schedulable, not ALIVE): the reference reserves on them anyway.
    pub designated_agents: Vec<AgentSnapshot>,
    /// etcd `config/agent/max-container-count`.
    pub max_container_count: Option<u64>,
    /// This group's PENDING sessions, oldest `created_at` first, including those the pending
    /// timeout is about to cancel.
    pub pending: Vec<PendingSession>,
    /// This group's agent-resource-occupying sessions (every status but PENDING, TERMINATED and
    /// CANCELLED), for DRF's dominant shares.
    pub existing: Vec<ExistingSession>,
    pub quotas: QuotaSnapshot,
    /// etcd `roundrobin_states` of this group: architecture -> state.
    pub roundrobin: BTreeMap<String, RoundRobinState>,
    /// The time of the round: pending timeouts, batch start times and `last_try` use it.
    pub now: DateTime<Utc>,
}

/// `scaling_groups.scheduler`, with its configuration (etcd `plugins/scheduler/{name}` merged
/// with `scheduler_opts.config`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedulerKind {
    /// `fifo`; `num_retries_to_skip` 0 is strict FIFO.
    Fifo {
        num_retries_to_skip: u64,
    },
    Lifo,
    Drf,
    Mof,
}

impl SchedulerKind {
    /// The scheduler named `name` with its merged `config` object, as the reference's entry
    /// points and `config_iv` trafarets read them (`num_retries_to_skip`: an integer >= 0, or a
    /// string holding one).
    pub fn from_config(
        name: &str,
        config: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<SchedulerKind, SnapshotError> {
        match name {
            "fifo" => {
                let num_retries_to_skip = match config.get("num_retries_to_skip") {
                    None => 0,
                    Some(value) => value
                        .as_u64()
                        .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
                        .ok_or_else(|| SnapshotError::InvalidSchedulerConfig {
                            key: "num_retries_to_skip",
                            value: value.to_string(),
                        })?,
                };
                Ok(SchedulerKind::Fifo {
                    num_retries_to_skip,
                })
            }
            "lifo" => Ok(SchedulerKind::Lifo),
            "drf" => Ok(SchedulerKind::Drf),
            "mof" => Ok(SchedulerKind::Mof),
            other => Err(SnapshotError::UnknownScheduler(other.to_owned())),
        }
    }
}

/// The parts of `scaling_groups.scheduler_opts` a round uses (`allowed_session_types` is checked
/// at enqueue time, `config` went into [`SchedulerKind`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedulerOpts {
    pub agent_selection_strategy: AgentSelectionStrategy,
    pub roundrobin: bool,
    /// Zero never cancels.
    pub pending_timeout: TimeDelta,
}

/// `scheduler_opts.agent_selection_strategy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AgentSelectionStrategy {
    /// The agent with the most remaining slots.
    #[default]
    Dispersed,
    /// The agent with the fewest remaining slots that still fit.
    Concentrated,
    /// The agent with the largest total (`available_slots`).
    Legacy,
}

impl FromStr for AgentSelectionStrategy {
    type Err = SnapshotError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "dispersed" => Ok(AgentSelectionStrategy::Dispersed),
            "concentrated" => Ok(AgentSelectionStrategy::Concentrated),
            "legacy" => Ok(AgentSelectionStrategy::Legacy),
            other => Err(SnapshotError::UnknownAgentSelectionStrategy(
                other.to_owned(),
            )),
        }
    }
}

/// An agent row and its Redis `container_count.{id}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSnapshot {
    pub id: String,
    pub architecture: String,
    pub available_slots: ResourceSlot,
    pub occupied_slots: ResourceSlot,
    /// Redis DB 0 `container_count.{id}` (0 when missing).
    pub container_count: u64,
}

/// `sessions.cluster_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterMode {
    /// One agent hosts every kernel; the session's `requested_slots` are reserved there.
    SingleNode,
    /// Each kernel goes to its own choice of agent; all or none are reserved.
    MultiNode,
}

impl FromStr for ClusterMode {
    type Err = SnapshotError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "single-node" => Ok(ClusterMode::SingleNode),
            "multi-node" => Ok(ClusterMode::MultiNode),
            other => Err(SnapshotError::UnknownClusterMode(other.to_owned())),
        }
    }
}

/// A PENDING session with its kernels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingSession {
    pub id: Uuid,
    pub creation_id: String,
    pub name: String,
    pub access_key: String,
    pub user_uuid: Uuid,
    pub group_id: Uuid,
    pub domain_name: String,
    pub session_type: SessionType,
    pub cluster_mode: ClusterMode,
    pub requested_slots: ResourceSlot,
    /// The main kernel first (its image names the session in messages, its designated agent is
    /// the session's).
    pub kernels: Vec<PendingKernel>,
    pub created_at: DateTime<Utc>,
    /// `sessions.starts_at` (batch sessions may wait for it).
    pub starts_at: Option<DateTime<Utc>>,
    /// `status_data.scheduler.retries` (0 when missing).
    pub retries: u64,
    /// The sessions this one depends on (`session_dependencies`), in the database's order.
    pub dependencies: Vec<Dependency>,
}

impl PendingSession {
    /// SYSTEM sessions (SFTP) are "private": fewer predicates, their own concurrency limit, and
    /// cancelled when a predicate fails.
    pub fn is_private(&self) -> bool {
        self.session_type == SessionType::System
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingKernel {
    pub id: Uuid,
    pub architecture: String,
    /// The image's canonical reference, for messages.
    pub image_ref: String,
    pub requested_slots: ResourceSlot,
    /// `kernels.agent` preset by a superadmin's `agent_list`.
    pub designated_agent: Option<String>,
}

/// A session another one waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    pub id: Uuid,
    pub name: String,
    pub status: SessionStatus,
    pub result: SessionResult,
}

/// An agent-resource-occupying session of the group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingSession {
    pub access_key: String,
    pub occupying_slots: ResourceSlot,
}

/// What the quota predicates read, for every access key, user, project and domain that a pending
/// session of the group names. Occupancies sum `kernels.occupied_slots` of kernels in
/// user-occupying statuses (all but PENDING, TERMINATING, TERMINATED, CANCELLED) of non-SYSTEM
/// sessions, in every resource group; pending counts and sums cover every PENDING session of the
/// access key in every group, including this group's (the round subtracts those it schedules or
/// cancels).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuotaSnapshot {
    pub keypairs: HashMap<String, KeypairQuota>,
    pub users: HashMap<Uuid, UserQuota>,
    /// `groups.total_resource_slots` (NULL read as `{}`) and the project's occupancy.
    pub groups: HashMap<Uuid, ScopeQuota>,
    /// `domains.total_resource_slots` (NULL read as `{}`) and the domain's occupancy.
    pub domains: HashMap<String, ScopeQuota>,
}

/// An access key: its resource policy and what it uses now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeypairQuota {
    pub policy: ResourcePolicy,
    /// Redis `keypair.concurrency_used.{ak}`.
    pub concurrency_used: u64,
    /// Redis `keypair.sftp_concurrency_used.{ak}`.
    pub sftp_concurrency_used: u64,
    pub occupied: ResourceSlot,
    /// PENDING sessions of the access key.
    pub pending_count: u64,
    /// Σ `requested_slots` of those sessions.
    pub pending_slots: ResourceSlot,
}

/// The columns of `keypair_resource_policies` the predicates read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePolicy {
    pub total_resource_slots: ResourceSlot,
    pub default_for_unspecified: DefaultForUnspecified,
    pub max_concurrent_sessions: i64,
    pub max_concurrent_sftp_sessions: i64,
    pub max_pending_session_count: Option<i64>,
    pub max_pending_session_resource_slots: Option<ResourceSlot>,
}

/// A user: the policy of the user's main access key (if the user has one with a policy) and the
/// user's occupancy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserQuota {
    pub main_keypair_policy: Option<ResourcePolicy>,
    pub occupied: ResourceSlot,
}

/// A project or a domain: its limits (unspecified slots are unlimited) and its occupancy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeQuota {
    pub total_resource_slots: ResourceSlot,
    pub occupied: ResourceSlot,
}

/// etcd `roundrobin_states/{group}/{architecture}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundRobinState {
    /// The md5 of the group's compatible agent ids joined by `#`: the state is only valid for the
    /// same set of agents.
    pub schedulable_group_id: String,
    pub next_index: usize,
}

/// A snapshot the round cannot decide from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("unknown scheduler {0:?} (fifo, lifo, drf and mof exist)")]
    UnknownScheduler(String),
    #[error("invalid scheduler config {key}: {value}")]
    InvalidSchedulerConfig { key: &'static str, value: String },
    #[error("unknown agent selection strategy {0:?}")]
    UnknownAgentSelectionStrategy(String),
    #[error("unknown cluster mode {0:?}")]
    UnknownClusterMode(String),
    #[error("the snapshot has no quota of access key {0:?}")]
    MissingKeypair(String),
    #[error("the snapshot has no quota of user {0}")]
    MissingUser(Uuid),
    #[error("the snapshot has no quota of project {0}")]
    MissingGroup(Uuid),
    #[error("the snapshot has no quota of domain {0:?}")]
    MissingDomain(String),
    #[error("kernel {kernel} designates agent {agent:?}, which the snapshot lacks")]
    MissingDesignatedAgent { kernel: Uuid, agent: String },
}
