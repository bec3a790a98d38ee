//! Times `plan_round` on the target load: 1,000 agents and 10,000 pending sessions in one
//! resource group (a quarter of the agents with GPUs, a tenth of the sessions asking for one, a
//! twentieth multi-node), and prints sessions/s. Run with `cargo bench -p bai-scheduler --bench
//! round`.

use std::collections::BTreeMap;
use std::time::Instant;

use bai_db_models::entities::ResourceSlot;
use bai_db_models::entities::enums::{DefaultForUnspecified, SessionType};
use bai_etcd_store::{ConfigNode, ConfigTree};
use bai_scheduler::KnownSlots;
use bai_scheduler::round::{
    AgentSnapshot, ClusterMode, DEFAULT_RESOURCE_PRIORITY, GroupSnapshot, KeypairQuota,
    PendingKernel, PendingSession, QuotaSnapshot, ResourcePolicy, SchedulerKind, SchedulerOpts,
    ScopeQuota, UserQuota, plan_round,
};
use chrono::{TimeDelta, TimeZone, Utc};
use uuid::Uuid;

const AGENTS: usize = 1_000;
const SESSIONS: usize = 10_000;
const ACCESS_KEYS: usize = 200;
const GIB: u64 = 1 << 30;

fn main() {
    let snapshot = snapshot();
    // One warm-up round, then the best of five.
    let mut best = f64::INFINITY;
    let mut scheduled = 0;
    for _ in 0..6 {
        let started = Instant::now();
        let plan = plan_round(&snapshot).expect("plan");
        let elapsed = started.elapsed().as_secs_f64();
        best = best.min(elapsed);
        scheduled = plan.scheduled.len();
    }
    println!(
        "plan_round: {SESSIONS} pending sessions on {AGENTS} agents in {:.1} ms ({scheduled} scheduled): {:.0} sessions/s",
        best * 1e3,
        SESSIONS as f64 / best
    );
}

/// A deterministic pseudo-random sequence (64-bit LCG).
struct Sequence(u64);

impl Sequence {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn slots(entries: &[(&str, u64)]) -> ResourceSlot {
    let mut slots = ResourceSlot::new();
    for &(slot, amount) in entries {
        slots.insert(slot, i64::try_from(amount).expect("amount"));
    }
    slots
}

fn snapshot() -> GroupSnapshot {
    let mut random = Sequence(15);
    let mut configured = ConfigTree::new();
    configured.insert(
        "cuda.device".to_owned(),
        ConfigNode::Value("count".to_owned()),
    );
    let known_slots = KnownSlots::from_configured(configured);
    let agents = (0..AGENTS)
        .map(|index| {
            let gpus = if index % 4 == 0 { 4 } else { 0 };
            AgentSnapshot {
                id: format!("i-agent-{index:04}"),
                architecture: "x86_64".to_owned(),
                available_slots: slots(&[("cpu", 64), ("mem", 256 * GIB), ("cuda.device", gpus)]),
                occupied_slots: slots(&[("cpu", random.next(8)), ("mem", random.next(16) * GIB)]),
                container_count: random.next(10),
            }
        })
        .collect();
    let policy = ResourcePolicy {
        total_resource_slots: ResourceSlot::new(),
        default_for_unspecified: DefaultForUnspecified::Unlimited,
        max_concurrent_sessions: 0,
        max_concurrent_sftp_sessions: 1,
        max_pending_session_count: None,
        max_pending_session_resource_slots: None,
    };
    let group_id = Uuid::from_u128(1);
    let users: Vec<Uuid> = (0..ACCESS_KEYS as u128)
        .map(|index| Uuid::from_u128(1000 + index))
        .collect();
    let mut quotas = QuotaSnapshot::default();
    for (index, user) in users.iter().enumerate() {
        quotas.keypairs.insert(
            format!("AKIA{index:016}"),
            KeypairQuota {
                policy: policy.clone(),
                concurrency_used: 0,
                sftp_concurrency_used: 0,
                occupied: ResourceSlot::new(),
                pending_count: (SESSIONS / ACCESS_KEYS) as u64,
                pending_slots: ResourceSlot::new(),
            },
        );
        quotas.users.insert(
            *user,
            UserQuota {
                main_keypair_policy: Some(policy.clone()),
                occupied: ResourceSlot::new(),
            },
        );
    }
    quotas.groups.insert(group_id, ScopeQuota::default());
    quotas
        .domains
        .insert("default".to_owned(), ScopeQuota::default());
    let start = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
    let pending = (0..SESSIONS)
        .map(|index| {
            let owner = index % ACCESS_KEYS;
            let gpus = u64::from(random.next(10) == 0);
            let cpus = 1 + random.next(4);
            let mem = (1 + random.next(8)) * GIB;
            let per_kernel = slots(&[("cpu", cpus), ("mem", mem), ("cuda.device", gpus)]);
            let multi_node = random.next(20) == 0;
            let kernel_count: u64 = if multi_node { 2 } else { 1 };
            let kernels: Vec<PendingKernel> = (0..kernel_count)
                .map(|kernel| PendingKernel {
                    id: Uuid::from_u128(((index as u128) << 8) | u128::from(kernel)),
                    architecture: "x86_64".to_owned(),
                    image_ref: "cr.backend.ai/stable/python:3.9-ubuntu20.04".to_owned(),
                    requested_slots: per_kernel.clone(),
                    designated_agent: None,
                })
                .collect();
            let requested = slots(&[
                ("cpu", cpus * kernel_count),
                ("mem", mem * kernel_count),
                ("cuda.device", gpus * kernel_count),
            ]);
            PendingSession {
                id: Uuid::from_u128((1 << 64) | index as u128),
                creation_id: format!("c{index}"),
                name: format!("session-{index}"),
                access_key: format!("AKIA{owner:016}"),
                user_uuid: users[owner],
                group_id,
                domain_name: "default".to_owned(),
                session_type: SessionType::Interactive,
                cluster_mode: if multi_node {
                    ClusterMode::MultiNode
                } else {
                    ClusterMode::SingleNode
                },
                requested_slots: requested,
                kernels,
                created_at: start + TimeDelta::milliseconds(index as i64),
                starts_at: None,
                retries: 0,
                dependencies: Vec::new(),
            }
        })
        .collect();
    GroupSnapshot {
        name: "default".to_owned(),
        scheduler: SchedulerKind::Fifo {
            num_retries_to_skip: 0,
        },
        opts: SchedulerOpts::default(),
        resource_priority: DEFAULT_RESOURCE_PRIORITY.map(str::to_owned).to_vec(),
        known_slots,
        agents,
        designated_agents: Vec::new(),
        max_container_count: Some(64),
        pending,
        existing: Vec::new(),
        quotas,
        roundrobin: BTreeMap::new(),
        now: start + TimeDelta::hours(1),
    }
}
