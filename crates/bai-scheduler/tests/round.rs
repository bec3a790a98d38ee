//! `plan_round` on small hand-made resource groups whose right answers follow from the reference
//! by hand: every picker, every agent selection strategy, round-robin, the container cap, the
//! architecture filter, designated agents, multi-node all-or-nothing, each predicate's message,
//! the pending timeout, and that a busy round never over-commits an agent.

use std::collections::{BTreeMap, HashMap};

use bai_db_models::entities::enums::{
    DefaultForUnspecified, SessionResult, SessionStatus, SessionType,
};
use bai_db_models::entities::{ResourceSlot, SlotAmount};
use bai_etcd_store::{ConfigNode, ConfigTree};
use bai_scheduler::KnownSlots;
use bai_scheduler::round::{
    AgentSelectionStrategy, AgentSnapshot, ClusterMode, DEFAULT_RESOURCE_PRIORITY, Dependency,
    ExistingSession, FailedPredicate, Failure, GroupSnapshot, KeypairQuota, PendingKernel,
    PendingSession, QuotaSnapshot, ResourcePolicy, RoundPlan, RoundRobinState, SchedulerKind,
    SchedulerOpts, ScopeQuota, SnapshotError, UserQuota, plan_round,
};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

const GIB: i64 = 1 << 30;
const GROUP_ID: Uuid = Uuid::from_u128(0xfeed);
const GROUP: &str = "default";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
}

fn slots(value: Value) -> ResourceSlot {
    ResourceSlot::from_json(&value).expect("slots")
}

fn cpu_mem(cpu: i64, mem_gib: i64) -> ResourceSlot {
    slots(json!({"cpu": cpu.to_string(), "mem": (mem_gib * GIB).to_string()}))
}

fn known(extra: &[&str]) -> KnownSlots {
    let mut configured = ConfigTree::new();
    for slot in extra {
        configured.insert(
            (*slot).to_owned(),
            ConfigNode::Value(
                if slot.ends_with("mem") {
                    "bytes"
                } else {
                    "count"
                }
                .to_owned(),
            ),
        );
    }
    KnownSlots::from_configured(configured)
}

fn agent(id: &str, available: ResourceSlot, occupied: ResourceSlot) -> AgentSnapshot {
    AgentSnapshot {
        id: id.to_owned(),
        architecture: "x86_64".to_owned(),
        available_slots: available,
        occupied_slots: occupied,
        container_count: 0,
    }
}

fn unlimited_policy() -> ResourcePolicy {
    ResourcePolicy {
        total_resource_slots: ResourceSlot::new(),
        default_for_unspecified: DefaultForUnspecified::Unlimited,
        max_concurrent_sessions: 0,
        max_concurrent_sftp_sessions: 1,
        max_pending_session_count: None,
        max_pending_session_resource_slots: None,
    }
}

fn user_of(access_key: &str) -> Uuid {
    Uuid::from_u128(
        access_key
            .bytes()
            .fold(0u128, |hash, byte| hash * 131 + u128::from(byte)),
    )
}

/// A single-node interactive session `name` of `access_key` with one x86_64 kernel; `number`
/// orders `created_at` and makes the ids.
fn session(number: u128, access_key: &str, requested: ResourceSlot) -> PendingSession {
    PendingSession {
        id: Uuid::from_u128(number),
        creation_id: format!("c{number}"),
        name: format!("s{number}"),
        access_key: access_key.to_owned(),
        user_uuid: user_of(access_key),
        group_id: GROUP_ID,
        domain_name: "default".to_owned(),
        session_type: SessionType::Interactive,
        cluster_mode: ClusterMode::SingleNode,
        requested_slots: requested.clone(),
        kernels: vec![PendingKernel {
            id: Uuid::from_u128((number << 16) | 1),
            architecture: "x86_64".to_owned(),
            image_ref: "cr.backend.ai/stable/python:3.9".to_owned(),
            requested_slots: requested,
            designated_agent: None,
        }],
        created_at: now() - TimeDelta::minutes(10) + TimeDelta::seconds(number as i64),
        starts_at: None,
        retries: 0,
        dependencies: Vec::new(),
    }
}

/// A multi-node session with one kernel per entry of `kernels`.
fn multi_node(number: u128, access_key: &str, kernels: &[ResourceSlot]) -> PendingSession {
    let mut session = session(number, access_key, ResourceSlot::new());
    session.cluster_mode = ClusterMode::MultiNode;
    session.kernels = kernels
        .iter()
        .enumerate()
        .map(|(index, requested)| PendingKernel {
            id: Uuid::from_u128((number << 16) | (index as u128 + 1)),
            architecture: "x86_64".to_owned(),
            image_ref: "cr.backend.ai/stable/python:3.9".to_owned(),
            requested_slots: requested.clone(),
            designated_agent: None,
        })
        .collect();
    let mut total: BTreeMap<String, Decimal> = BTreeMap::new();
    for requested in kernels {
        for (slot, amount) in requested.iter() {
            *total.entry(slot.to_owned()).or_default() += amount.as_decimal().expect("finite");
        }
    }
    session.requested_slots = total
        .into_iter()
        .map(|(slot, value)| (slot, SlotAmount::Finite(value)))
        .collect();
    session
}

/// A group of `agents` and `pending` sessions with unlimited quotas for every access key.
fn group(
    scheduler: SchedulerKind,
    agents: Vec<AgentSnapshot>,
    pending: Vec<PendingSession>,
) -> GroupSnapshot {
    let mut quotas = QuotaSnapshot::default();
    for session in &pending {
        let keypair = quotas
            .keypairs
            .entry(session.access_key.clone())
            .or_insert_with(|| KeypairQuota {
                policy: unlimited_policy(),
                concurrency_used: 0,
                sftp_concurrency_used: 0,
                occupied: ResourceSlot::new(),
                pending_count: 0,
                pending_slots: ResourceSlot::new(),
            });
        keypair.pending_count += 1;
        quotas.users.insert(
            session.user_uuid,
            UserQuota {
                main_keypair_policy: Some(unlimited_policy()),
                occupied: ResourceSlot::new(),
            },
        );
    }
    quotas.groups.insert(GROUP_ID, ScopeQuota::default());
    quotas
        .domains
        .insert("default".to_owned(), ScopeQuota::default());
    GroupSnapshot {
        name: GROUP.to_owned(),
        scheduler,
        opts: SchedulerOpts::default(),
        resource_priority: DEFAULT_RESOURCE_PRIORITY.map(str::to_owned).to_vec(),
        known_slots: known(&["cuda.device"]),
        agents,
        designated_agents: Vec::new(),
        max_container_count: None,
        pending,
        existing: Vec::new(),
        quotas,
        roundrobin: BTreeMap::new(),
        now: now(),
    }
}

const FIFO: SchedulerKind = SchedulerKind::Fifo {
    num_retries_to_skip: 0,
};

fn decide(snapshot: &GroupSnapshot) -> RoundPlan {
    plan_round(snapshot).expect("plan")
}

/// (session name, agent of its first kernel) in decision order.
fn placements(snapshot: &GroupSnapshot, plan: &RoundPlan) -> Vec<(String, String)> {
    let names: HashMap<Uuid, &str> = snapshot
        .pending
        .iter()
        .map(|session| (session.id, session.name.as_str()))
        .collect();
    plan.scheduled
        .iter()
        .map(|scheduled| {
            (
                names[&scheduled.session_id].to_owned(),
                scheduled.kernels[0].agent_id.clone(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(session, agent)| ((*session).to_owned(), (*agent).to_owned()))
        .collect()
}

/// The only failure of `plan`.
fn only_failure(plan: &RoundPlan) -> &Failure {
    assert_eq!(plan.failed.len(), 1, "{plan:#?}");
    &plan.failed[0].failure
}

fn failed_predicates(failure: &Failure) -> &[FailedPredicate] {
    match failure {
        Failure::PredicateChecksFailed { failed, .. } => failed,
        other => panic!("not a predicate failure: {other:?}"),
    }
}

fn no_instance_msg(failure: &Failure) -> &str {
    match failure {
        Failure::NoAvailableInstances { msg, .. } => msg,
        other => panic!("not a no-available-instances failure: {other:?}"),
    }
}

/// Three agents and three identical small sessions.
fn three_agents(strategy: AgentSelectionStrategy) -> GroupSnapshot {
    let agents = vec![
        agent("a1", cpu_mem(8, 16), cpu_mem(2, 0)),
        agent("a2", cpu_mem(8, 16), cpu_mem(0, 2)),
        agent("a3", cpu_mem(4, 8), ResourceSlot::new()),
    ];
    let pending = (1..=3).map(|n| session(n, "AK", cpu_mem(1, 1))).collect();
    let mut snapshot = group(FIFO, agents, pending);
    snapshot.opts.agent_selection_strategy = strategy;
    snapshot
}

#[test]
fn dispersed_takes_the_most_remaining_by_priority() {
    // cpu first: a2 has 8 left, then 7 (a1 has 6); at 6 against 6 the tie goes to mem: a1 has
    // 16 GiB left, a2 12 GiB.
    let snapshot = three_agents(AgentSelectionStrategy::Dispersed);
    let plan = decide(&snapshot);
    assert_eq!(
        placements(&snapshot, &plan),
        pairs(&[("s1", "a2"), ("s2", "a2"), ("s3", "a1")])
    );
}

#[test]
fn concentrated_takes_the_least_remaining_that_fits() {
    let snapshot = three_agents(AgentSelectionStrategy::Concentrated);
    let plan = decide(&snapshot);
    assert_eq!(
        placements(&snapshot, &plan),
        pairs(&[("s1", "a3"), ("s2", "a3"), ("s3", "a3")])
    );
}

#[test]
fn legacy_takes_the_largest_total_and_ties_go_to_the_first() {
    let snapshot = three_agents(AgentSelectionStrategy::Legacy);
    let plan = decide(&snapshot);
    assert_eq!(
        placements(&snapshot, &plan),
        pairs(&[("s1", "a1"), ("s2", "a1"), ("s3", "a1")])
    );
}

#[test]
fn agents_with_idle_accelerators_come_last_except_for_drf() {
    let gpu = slots(json!({"cpu": "16", "mem": (64 * GIB).to_string(), "cuda.device": "4"}));
    let agents = vec![
        agent("gpu", gpu, ResourceSlot::new()),
        agent("cpu", cpu_mem(4, 8), ResourceSlot::new()),
    ];
    let cpu_only = slots(json!({"cpu": "1", "mem": GIB.to_string(), "cuda.device": "0"}));
    let one_gpu = slots(json!({"cpu": "1", "mem": GIB.to_string(), "cuda.device": "1"}));
    let pending = vec![
        session(1, "AK", cpu_only.clone()),
        session(2, "AK", one_gpu),
    ];
    let snapshot = group(FIFO, agents.clone(), pending.clone());
    let plan = decide(&snapshot);
    assert_eq!(
        placements(&snapshot, &plan),
        pairs(&[("s1", "cpu"), ("s2", "gpu")])
    );
    // DRF ranks without num_extras: cuda.device comes first in the priority, and the CPU agent
    // lacks the slot altogether.
    let snapshot = group(SchedulerKind::Drf, agents, vec![session(1, "AK", cpu_only)]);
    let plan = decide(&snapshot);
    assert_eq!(placements(&snapshot, &plan), pairs(&[("s1", "gpu")]));
}

#[test]
fn accelerator_subslots_rank_right_after_their_device() {
    // cuda.shares is not listed, cuda is: it ranks before cpu, so the agent with more shares
    // left wins although it has less cpu left.
    let agents = vec![
        agent(
            "more-cpu",
            slots(json!({"cpu": "32", "mem": (64 * GIB).to_string(), "cuda.shares": "1"})),
            ResourceSlot::new(),
        ),
        agent(
            "more-shares",
            slots(json!({"cpu": "8", "mem": (64 * GIB).to_string(), "cuda.shares": "4"})),
            ResourceSlot::new(),
        ),
    ];
    let request = slots(json!({"cpu": "1", "mem": GIB.to_string(), "cuda.shares": "0.5"}));
    let mut snapshot = group(FIFO, agents, vec![session(1, "AK", request)]);
    snapshot.known_slots = known(&["cuda.shares"]);
    let plan = decide(&snapshot);
    assert_eq!(
        placements(&snapshot, &plan),
        pairs(&[("s1", "more-shares")])
    );
}

/// One agent with room for one session; the sessions' retries are 3, 0 and 2.
fn one_slot_and_retries(scheduler: SchedulerKind) -> GroupSnapshot {
    let agents = vec![agent("a1", cpu_mem(1, 1), ResourceSlot::new())];
    let pending = [3, 0, 2]
        .into_iter()
        .enumerate()
        .map(|(index, retries)| {
            let mut session = session(index as u128 + 1, "AK", cpu_mem(1, 1));
            session.retries = retries;
            session
        })
        .collect();
    group(scheduler, agents, pending)
}

fn tried_order(snapshot: &GroupSnapshot, plan: &RoundPlan) -> (Vec<String>, Vec<String>) {
    let name = |id: Uuid| {
        snapshot
            .pending
            .iter()
            .find(|session| session.id == id)
            .map(|session| session.name.clone())
            .expect("session")
    };
    (
        plan.scheduled.iter().map(|s| name(s.session_id)).collect(),
        plan.failed.iter().map(|s| name(s.session_id)).collect(),
    )
}

#[test]
fn fifo_lifo_and_retries_to_skip() {
    let snapshot = one_slot_and_retries(FIFO);
    let (scheduled, failed) = tried_order(&snapshot, &decide(&snapshot));
    assert_eq!(
        (scheduled, failed),
        (vec!["s1".into()], vec!["s2".into(), "s3".into()])
    );

    let snapshot = one_slot_and_retries(SchedulerKind::Lifo);
    let (scheduled, failed) = tried_order(&snapshot, &decide(&snapshot));
    assert_eq!(
        (scheduled, failed),
        (vec!["s3".into()], vec!["s2".into(), "s1".into()])
    );

    // Skip sessions that failed twice or more: s2 first; then only skipped ones are left and
    // they go oldest first.
    let snapshot = one_slot_and_retries(SchedulerKind::Fifo {
        num_retries_to_skip: 2,
    });
    let plan = decide(&snapshot);
    let (scheduled, failed) = tried_order(&snapshot, &plan);
    assert_eq!(
        (scheduled, failed),
        (vec!["s2".into()], vec!["s1".into(), "s3".into()])
    );
    assert_eq!(
        no_instance_msg(&plan.failed[0].failure),
        format!(
            "Could not find a contiguous resource region in any agent big enough to host the session (id: {}, resource group: default)",
            Uuid::from_u128(1)
        )
    );
}

#[test]
fn scheduler_config_is_read_like_the_reference() {
    let config = |value: Value| value.as_object().cloned().expect("object");
    assert_eq!(
        SchedulerKind::from_config("fifo", &config(json!({"num_retries_to_skip": "3"}))),
        Ok(SchedulerKind::Fifo {
            num_retries_to_skip: 3
        })
    );
    assert_eq!(
        SchedulerKind::from_config("fifo", &config(json!({}))),
        Ok(FIFO)
    );
    assert!(
        SchedulerKind::from_config("fifo", &config(json!({"num_retries_to_skip": -1}))).is_err()
    );
    assert_eq!(
        SchedulerKind::from_config("mof", &config(json!({"x": 1}))),
        Ok(SchedulerKind::Mof)
    );
    assert_eq!(
        SchedulerKind::from_config("round", &config(json!({}))),
        Err(SnapshotError::UnknownScheduler("round".to_owned()))
    );
}

/// DRF over 40 cpus: A holds 10 (share 0.25), B 2 (0.05), C nothing.
fn drf_group(b_first_cpu: i64) -> GroupSnapshot {
    let agents = vec![
        agent("a1", cpu_mem(20, 64), ResourceSlot::new()),
        agent("a2", cpu_mem(20, 64), ResourceSlot::new()),
    ];
    let pending = vec![
        session(1, "A", cpu_mem(1, 1)),
        session(2, "A", cpu_mem(1, 1)),
        session(3, "B", cpu_mem(b_first_cpu, 1)),
        session(4, "B", cpu_mem(1, 1)),
        session(5, "C", cpu_mem(1, 1)),
    ];
    let mut snapshot = group(SchedulerKind::Drf, agents, pending);
    snapshot.existing = vec![
        ExistingSession {
            access_key: "A".to_owned(),
            occupying_slots: cpu_mem(10, 0),
        },
        ExistingSession {
            access_key: "B".to_owned(),
            occupying_slots: cpu_mem(2, 0),
        },
    ];
    snapshot
}

#[test]
fn drf_picks_the_least_dominant_share_and_bumps_it() {
    // C (0) first; B's 8-cpu session lifts B to 0.2, still below A's 0.25.
    let snapshot = drf_group(8);
    let (scheduled, _) = tried_order(&snapshot, &decide(&snapshot));
    assert_eq!(scheduled, ["s5", "s3", "s4", "s1", "s2"]);
    // A 12-cpu session lifts B to 0.3, above A: A's sessions go before B's second.
    let snapshot = drf_group(12);
    let (scheduled, _) = tried_order(&snapshot, &decide(&snapshot));
    assert_eq!(scheduled, ["s5", "s3", "s1", "s2", "s4"]);
}

#[test]
fn mof_takes_the_least_occupied_agent() {
    let agents = vec![
        agent("a1", cpu_mem(16, 32), cpu_mem(4, 4)),
        agent("a2", cpu_mem(16, 32), cpu_mem(2, 8)),
        agent("a3", cpu_mem(16, 32), cpu_mem(2, 2)),
    ];
    let pending = vec![
        session(1, "AK", cpu_mem(1, 1)),
        session(2, "AK", cpu_mem(1, 1)),
    ];
    let mut snapshot = group(SchedulerKind::Mof, agents, pending);
    // MOF ignores the strategy.
    snapshot.opts.agent_selection_strategy = AgentSelectionStrategy::Concentrated;
    let plan = decide(&snapshot);
    // a3 is below both others; then a3 {3, 3g} and a2 {2, 8g} are incomparable and the
    // lexicographically least (cpu first) wins.
    assert_eq!(
        placements(&snapshot, &plan),
        pairs(&[("s1", "a3"), ("s2", "a2")])
    );
}

#[test]
fn round_robin_walks_the_ring_sorted_by_id() {
    let agents = vec![
        agent("b", cpu_mem(8, 16), ResourceSlot::new()),
        agent("a", cpu_mem(8, 16), ResourceSlot::new()),
        agent("c", cpu_mem(8, 16), ResourceSlot::new()),
    ];
    let pending = (1..=4).map(|n| session(n, "AK", cpu_mem(1, 1))).collect();
    let mut snapshot = group(FIFO, agents, pending);
    snapshot.opts.roundrobin = true;
    let ring_id = "fc71d97201ecc449e30f31a2deff6195"; // md5("a#b#c")
    // No state yet: the fallback picks b (all equal, first in input order) and stores b's ring
    // position + 1; then the ring goes on from there.
    let plan = decide(&snapshot);
    assert_eq!(
        placements(&snapshot, &plan),
        pairs(&[("s1", "b"), ("s2", "c"), ("s3", "a"), ("s4", "b")])
    );
    assert_eq!(
        plan.roundrobin,
        BTreeMap::from([(
            "x86_64".to_owned(),
            RoundRobinState {
                schedulable_group_id: ring_id.to_owned(),
                next_index: 2
            }
        )])
    );
    // A stored state of the same ring is followed; an agent with exactly the request left has
    // no room to spare (`>`) and is passed over.
    snapshot.agents[2].available_slots = cpu_mem(1, 1);
    snapshot.roundrobin = BTreeMap::from([(
        "x86_64".to_owned(),
        RoundRobinState {
            schedulable_group_id: ring_id.to_owned(),
            next_index: 2,
        },
    )]);
    snapshot.pending.truncate(2);
    let plan = decide(&snapshot);
    assert_eq!(
        placements(&snapshot, &plan),
        pairs(&[("s1", "a"), ("s2", "b")])
    );
    assert_eq!(plan.roundrobin["x86_64"].next_index, 2);
    // A state of another ring is ignored (dispersed fallback: a and b tie, b comes first).
    snapshot.roundrobin.insert(
        "x86_64".to_owned(),
        RoundRobinState {
            schedulable_group_id: "stale".to_owned(),
            next_index: 0,
        },
    );
    snapshot.pending.truncate(1);
    let plan = decide(&snapshot);
    assert_eq!(placements(&snapshot, &plan), pairs(&[("s1", "b")]));
    assert_eq!(plan.roundrobin["x86_64"].schedulable_group_id, ring_id);
    assert_eq!(plan.roundrobin["x86_64"].next_index, 2);
}

#[test]
fn architectures_filter_the_candidates() {
    let mut arm = agent("arm", cpu_mem(64, 128), ResourceSlot::new());
    arm.architecture = "aarch64".to_owned();
    let agents = vec![agent("x86", cpu_mem(8, 16), ResourceSlot::new()), arm];
    let mut on_arm = session(1, "AK", cpu_mem(1, 1));
    on_arm.kernels[0].architecture = "aarch64".to_owned();
    let mut on_riscv = session(2, "AK", cpu_mem(1, 1));
    on_riscv.kernels[0].architecture = "riscv64".to_owned();
    let on_x86 = session(3, "AK", cpu_mem(1, 1));
    let snapshot = group(FIFO, agents, vec![on_arm, on_riscv, on_x86]);
    let plan = decide(&snapshot);
    assert_eq!(
        placements(&snapshot, &plan),
        pairs(&[("s1", "arm"), ("s3", "x86")])
    );
    assert_eq!(
        no_instance_msg(only_failure(&plan)),
        "No agents found to be compatible with the image architecture (image[0]: cr.backend.ai/stable/python:3.9, arch: riscv64)"
    );
}

#[test]
fn the_container_cap_and_its_single_node_quirk() {
    let mut full = agent("full", cpu_mem(64, 128), ResourceSlot::new());
    full.container_count = 10;
    let mut spare = agent("spare", cpu_mem(8, 16), ResourceSlot::new());
    spare.container_count = 3;
    let single = session(1, "AK", cpu_mem(1, 1));
    let multi = multi_node(2, "AK", &[cpu_mem(1, 1)]);
    let mut snapshot = group(FIFO, vec![full, spare], vec![single, multi]);
    snapshot.max_container_count = Some(10);
    let plan = decide(&snapshot);
    // Single-node only checks that some agent is below the cap, then picks among all.
    assert_eq!(
        placements(&snapshot, &plan),
        pairs(&[("s1", "full"), ("s2", "spare")])
    );
    snapshot.agents[1].container_count = 11;
    let plan = decide(&snapshot);
    assert_eq!(plan.failed.len(), 2);
    for failed in &plan.failed {
        assert_eq!(
            no_instance_msg(&failed.failure),
            "No agents found to be available because all agents have reached the hard limit of the number of containers."
        );
    }
}

#[test]
fn a_group_without_candidates() {
    let snapshot = group(FIFO, Vec::new(), vec![session(1, "AK", cpu_mem(1, 1))]);
    let plan = decide(&snapshot);
    assert_eq!(
        no_instance_msg(only_failure(&plan)),
        "No agents are available for scheduling"
    );
    assert!(!plan.any_scheduled());
}

#[test]
fn a_designated_agent_is_only_checked_for_capacity() {
    let agents = vec![
        agent("big", cpu_mem(64, 128), ResourceSlot::new()),
        agent("small", cpu_mem(4, 8), cpu_mem(3, 0)),
    ];
    let mut too_big = session(1, "AK", cpu_mem(2, 1));
    too_big.kernels[0].designated_agent = Some("small".to_owned());
    let mut fits = session(2, "AK", cpu_mem(1, 1));
    fits.kernels[0].designated_agent = Some("small".to_owned());
    let mut elsewhere = session(3, "AK", cpu_mem(1, 1));
    elsewhere.kernels[0].designated_agent = Some("outside".to_owned());
    let mut snapshot = group(FIFO, agents, vec![too_big, fits, elsewhere]);
    assert_eq!(
        plan_round(&snapshot),
        Err(SnapshotError::MissingDesignatedAgent {
            kernel: snapshot.pending[2].kernels[0].id,
            agent: "outside".to_owned()
        })
    );
    // An agent of another group (or not schedulable) may be designated too.
    snapshot.designated_agents = vec![agent("outside", cpu_mem(2, 2), ResourceSlot::new())];
    let plan = decide(&snapshot);
    assert_eq!(
        placements(&snapshot, &plan),
        pairs(&[("s2", "small"), ("s3", "outside")])
    );
    assert_eq!(
        no_instance_msg(only_failure(&plan)),
        "The designated agent (small) does not have the enough remaining capacity (cpu, requested: 2, remaining: 1)."
    );
    assert_eq!(plan.agent_reservations["outside"], cpu_mem(1, 1));
}

#[test]
fn multi_node_sessions_are_all_or_nothing() {
    let agents = vec![
        agent("a1", cpu_mem(4, 8), ResourceSlot::new()),
        agent("a2", cpu_mem(4, 8), ResourceSlot::new()),
    ];
    let three = multi_node(1, "AK", &[cpu_mem(3, 1), cpu_mem(3, 1), cpu_mem(3, 1)]);
    let two = multi_node(2, "AK", &[cpu_mem(3, 1), cpu_mem(3, 1)]);
    let whole = session(3, "AK", cpu_mem(1, 1));
    let snapshot = group(FIFO, agents, vec![three, two, whole]);
    let plan = decide(&snapshot);
    // The third kernel of s1 finds no room: its reservations are rolled back, and s2's kernels
    // then spread over both agents (the second sees the first's reservation).
    let failed = only_failure(&plan);
    assert_eq!(
        failed,
        &Failure::NoAvailableInstances {
            passed: vec![
                "reserved_time",
                "dependencies",
                "concurrency",
                "pending_session_resource_limit",
                "pending_session_count_limit",
                "keypair_resource_limit",
                "user_resource_limit",
                "user_group_resource_limit",
                "domain_resource_limit",
            ],
            kernel_id: Some(snapshot.pending[0].kernels[2].id),
            msg: format!(
                "Could not find a contiguous resource region in any agent big enough to host a kernel in the session (id: {}, resource group: default)",
                Uuid::from_u128(1)
            ),
        }
    );
    let s2 = &plan.scheduled[0];
    let agents_of_s2: Vec<&str> = s2.kernels.iter().map(|k| k.agent_id.as_str()).collect();
    assert_eq!(agents_of_s2, ["a1", "a2"]);
    assert_eq!(s2.agent_ids, ["a1", "a2"]);
    assert_eq!(
        placements(&snapshot, &plan)[1],
        ("s3".to_owned(), "a1".to_owned())
    );
    assert_eq!(plan.agent_reservations["a1"], cpu_mem(4, 2));
    assert_eq!(plan.agent_reservations["a2"], cpu_mem(3, 1));
}

#[test]
fn a_single_node_session_with_mixed_architectures_is_a_scheduler_error() {
    let mut mixed = multi_node(1, "AK", &[cpu_mem(1, 1), cpu_mem(1, 1)]);
    mixed.cluster_mode = ClusterMode::SingleNode;
    mixed.kernels[1].architecture = "aarch64".to_owned();
    let snapshot = group(
        FIFO,
        vec![agent("a1", cpu_mem(8, 8), ResourceSlot::new())],
        vec![mixed],
    );
    let plan = decide(&snapshot);
    let failure = only_failure(&plan);
    assert_eq!(failure.status_info(), "scheduler-error");
    assert_eq!(
        failure.error_status_data(),
        Some(json!({"error": {
            "src": "other",
            "name": "GenericBadRequest",
            "repr": "<GenericBadRequest(400): Bad request. (Cannot assign multiple kernels with different architectures' single node session)>"
        }}))
    );
}

/// One roomy agent and the given sessions of access key "AK".
fn predicate_group(pending: Vec<PendingSession>) -> GroupSnapshot {
    group(
        FIFO,
        vec![agent("a1", cpu_mem(64, 256), ResourceSlot::new())],
        pending,
    )
}

fn limited(total: Value) -> ResourcePolicy {
    ResourcePolicy {
        total_resource_slots: slots(total),
        default_for_unspecified: DefaultForUnspecified::Limited,
        ..unlimited_policy()
    }
}

#[test]
fn reserved_time_and_dependencies() {
    let mut batch = session(1, "AK", cpu_mem(1, 1));
    batch.session_type = SessionType::Batch;
    batch.starts_at = Some(now() + TimeDelta::minutes(5));
    let mut waiting = session(2, "AK", cpu_mem(1, 1));
    let dependency = |id: u128, name: &str, status, result| Dependency {
        id: Uuid::from_u128(id),
        name: name.to_owned(),
        status,
        result,
    };
    waiting.dependencies = vec![
        dependency(7, "done", SessionStatus::Terminated, SessionResult::Success),
        dependency(
            8,
            "running",
            SessionStatus::Running,
            SessionResult::Undefined,
        ),
        dependency(
            9,
            "failed",
            SessionStatus::Terminated,
            SessionResult::Failure,
        ),
    ];
    let plan = decide(&predicate_group(vec![batch, waiting]));
    assert_eq!(
        failed_predicates(&plan.failed[0].failure),
        [FailedPredicate {
            name: "reserved_time",
            msg: "Before start time".to_owned()
        }]
    );
    assert_eq!(
        failed_predicates(&plan.failed[1].failure),
        [FailedPredicate {
            name: "dependencies",
            msg: format!(
                "Waiting dependency sessions to finish as success. (running ({}), failed ({}))",
                Uuid::from_u128(8),
                Uuid::from_u128(9)
            )
        }]
    );
    assert_eq!(
        plan.failed[1].failure.status_info(),
        "predicate-checks-failed"
    );
}

#[test]
fn concurrency_counts_in_the_round_and_is_taken_back_on_failure() {
    // s1 passes concurrency (1 -> 2 of 3) but fails the keypair quota, so its count is taken
    // back; s2 and s3 pass, s4 finds 3 of 3.
    let mut s1 = session(1, "AK", cpu_mem(8, 1));
    s1.name = "too-big".to_owned();
    let pending = vec![
        s1,
        session(2, "AK", cpu_mem(1, 1)),
        session(3, "AK", cpu_mem(1, 1)),
        session(4, "AK", cpu_mem(1, 1)),
    ];
    let mut snapshot = predicate_group(pending);
    let keypair = snapshot.quotas.keypairs.get_mut("AK").unwrap();
    keypair.policy = ResourcePolicy {
        max_concurrent_sessions: 3,
        ..limited(json!({"cpu": "4", "mem": (8 * GIB).to_string()}))
    };
    keypair.concurrency_used = 1;
    let plan = decide(&snapshot);
    assert_eq!(plan.scheduled.len(), 2);
    assert_eq!(
        failed_predicates(&plan.failed[0].failure),
        [FailedPredicate {
            name: "keypair_resource_limit",
            msg: "Your keypair resource quota is exceeded. (cpu=4 mem=8g cuda.device=0)".to_owned()
        }]
    );
    assert_eq!(
        failed_predicates(&plan.failed[1].failure),
        [FailedPredicate {
            name: "concurrency",
            msg: "You cannot run more than 3 concurrent sessions".to_owned()
        }]
    );
}

#[test]
fn pending_session_limits_count_the_session_itself() {
    let mut snapshot = predicate_group(vec![session(1, "AK", cpu_mem(1, 1))]);
    let keypair = snapshot.quotas.keypairs.get_mut("AK").unwrap();
    keypair.pending_count = 2;
    keypair.pending_slots = cpu_mem(4, 2);
    keypair.policy.max_pending_session_count = Some(2);
    keypair.policy.max_pending_session_resource_slots = Some(slots(json!({"cpu": "4"})));
    let plan = decide(&snapshot);
    assert_eq!(
        failed_predicates(only_failure(&plan)),
        [
            FailedPredicate {
                name: "pending_session_resource_limit",
                msg: "Your pending session quota is exceeded. (cpu=4 mem=2g)".to_owned()
            },
            FailedPredicate {
                name: "pending_session_count_limit",
                msg: "You cannot create more than 2 pending session(s).".to_owned()
            }
        ]
    );
    // One slot below the limit passes (`>=` needs every slot reached), and so does a count of 3.
    let keypair = snapshot.quotas.keypairs.get_mut("AK").unwrap();
    keypair.policy.max_pending_session_resource_slots =
        Some(slots(json!({"cpu": "4", "mem": (3 * GIB).to_string()})));
    keypair.policy.max_pending_session_count = Some(3);
    assert!(plan_round(&snapshot).unwrap().any_scheduled());
}

#[test]
fn a_pending_count_at_the_limit_blocks_every_session() {
    // Three pending sessions and a limit of 3: the first fails (3 >= 3) and stays pending, so
    // the others fail too; with a limit of 3 and two sessions, both pass in turn. (That the
    // count drops when a session leaves PENDING shows in the pending-timeout test.)
    let pending = (1..=3).map(|n| session(n, "AK", cpu_mem(1, 1))).collect();
    let mut snapshot = predicate_group(pending);
    snapshot
        .quotas
        .keypairs
        .get_mut("AK")
        .unwrap()
        .policy
        .max_pending_session_count = Some(3);
    assert_eq!(decide(&snapshot).failed.len(), 3);
    snapshot.pending.truncate(2);
    snapshot
        .quotas
        .keypairs
        .get_mut("AK")
        .unwrap()
        .pending_count = 2;
    assert_eq!(decide(&snapshot).scheduled.len(), 2);
}

#[test]
fn resource_quota_messages_list_the_limits() {
    let request = slots(json!({"cpu": "2", "mem": GIB.to_string(), "cuda.device": "1"}));
    let mut snapshot = predicate_group(vec![session(1, "AK", request)]);
    snapshot.known_slots = known(&["cuda.device", "cuda.shares"]);
    snapshot.agents[0].available_slots =
        slots(json!({"cpu": "64", "mem": (256 * GIB).to_string(), "cuda.device": "8"}));
    let user = user_of("AK");
    let keypair = snapshot.quotas.keypairs.get_mut("AK").unwrap();
    keypair.policy = ResourcePolicy {
        default_for_unspecified: DefaultForUnspecified::Unlimited,
        ..limited(json!({"cpu": "10.0000", "mem": (1536 << 20).to_string(), "cuda.device": "1"}))
    };
    keypair.occupied = slots(json!({"cuda.device": "1"}));
    snapshot
        .quotas
        .users
        .get_mut(&user)
        .unwrap()
        .main_keypair_policy = None;
    snapshot
        .quotas
        .groups
        .get_mut(&GROUP_ID)
        .unwrap()
        .total_resource_slots = slots(json!({"cpu": "1.5"}));
    let domain = snapshot.quotas.domains.get_mut("default").unwrap();
    domain.total_resource_slots = slots(json!({"mem": GIB.to_string()}));
    domain.occupied = slots(json!({"mem": "1"}));
    let plan = decide(&snapshot);
    let failure = only_failure(&plan);
    assert_eq!(
        failed_predicates(failure),
        [
            FailedPredicate {
                name: "keypair_resource_limit",
                // jsonb key order, counts normalised, bytes humanised, unspecified unlimited.
                msg: "Your keypair resource quota is exceeded. (cpu=10 mem=1.5g cuda.device=1 cuda.shares=Infinity)".to_owned()
            },
            FailedPredicate {
                name: "user_resource_limit",
                msg: format!(
                    "User has no main-keypair or the main-keypair has no keypair resource policy (uid: {user})"
                )
            },
            FailedPredicate {
                name: "user_group_resource_limit",
                msg: "Your group resource quota is exceeded. (cpu=1.5 mem=Infinity cuda.device=Infinity cuda.shares=Infinity)".to_owned()
            },
            FailedPredicate {
                name: "domain_resource_limit",
                msg: "Your domain resource quota is exceeded. (mem=1g cpu=Infinity cuda.device=Infinity cuda.shares=Infinity)".to_owned()
            },
        ]
    );
    assert_eq!(
        failure.predicate_update(&plan.last_try),
        json!({
            "last_try": "2024-05-01T12:00:00+00:00",
            "failed_predicates": failed_predicates(failure)
                .iter()
                .map(|f| json!({"name": f.name, "msg": f.msg}))
                .collect::<Vec<_>>(),
            "passed_predicates": [
                {"name": "reserved_time"},
                {"name": "dependencies"},
                {"name": "concurrency"},
                {"name": "pending_session_resource_limit"},
                {"name": "pending_session_count_limit"},
            ],
        })
    );
}

#[test]
fn quotas_see_the_rounds_earlier_sessions() {
    // The user's main keypair allows 3 cpus: two 1-cpu sessions fit, a third 2-cpu one does not
    // after them.
    let pending = vec![
        session(1, "AK", cpu_mem(1, 1)),
        session(2, "AK", cpu_mem(1, 1)),
        session(3, "AK", cpu_mem(2, 1)),
    ];
    let mut snapshot = predicate_group(pending);
    snapshot
        .quotas
        .users
        .get_mut(&user_of("AK"))
        .unwrap()
        .main_keypair_policy = Some(ResourcePolicy {
        default_for_unspecified: DefaultForUnspecified::Unlimited,
        ..limited(json!({"cpu": "3"}))
    });
    let plan = decide(&snapshot);
    assert_eq!(plan.scheduled.len(), 2);
    assert_eq!(
        failed_predicates(only_failure(&plan)),
        [FailedPredicate {
            name: "user_resource_limit",
            msg: "Your main-keypair resource quota is exceeded. (cpu=3 mem=Infinity cuda.device=Infinity)".to_owned()
        }]
    );
}

#[test]
fn system_sessions_check_fewer_predicates_and_are_cancelled_on_failure() {
    let mut sftp = session(1, "AK", cpu_mem(1, 1));
    sftp.session_type = SessionType::System;
    let mut second = session(2, "AK", cpu_mem(1, 1));
    second.session_type = SessionType::System;
    let mut snapshot = predicate_group(vec![sftp, second]);
    // Quotas do not apply to SYSTEM sessions; the SFTP concurrency limit (1) does.
    snapshot.quotas.keypairs.get_mut("AK").unwrap().policy = ResourcePolicy {
        max_concurrent_sftp_sessions: 1,
        ..limited(json!({}))
    };
    let plan = decide(&snapshot);
    assert_eq!(plan.scheduled.len(), 1);
    let failure = only_failure(&plan);
    assert_eq!(
        failure,
        &Failure::PredicateChecksFailed {
            passed: vec!["reserved_time", "dependencies"],
            failed: vec![FailedPredicate {
                name: "concurrency",
                msg: "You cannot run more than 1 concurrent sessions".to_owned()
            }],
            cancelled: true,
        }
    );
    assert!(failure.cancels());
    assert_eq!(failure.status_info(), "pending-timeout");
}

#[test]
fn pending_timeout_cancels_before_the_round() {
    let old = session(1, "AK", cpu_mem(1, 1));
    let mut young = session(2, "AK", cpu_mem(1, 1));
    young.created_at = now() - TimeDelta::seconds(30);
    let mut snapshot = predicate_group(vec![old, young]);
    // The old one's pending count no longer counts once it is cancelled.
    snapshot
        .quotas
        .keypairs
        .get_mut("AK")
        .unwrap()
        .policy
        .max_pending_session_count = Some(2);
    snapshot.opts.pending_timeout = TimeDelta::seconds(60);
    let plan = decide(&snapshot);
    assert_eq!(plan.timed_out.len(), 1);
    assert_eq!(plan.timed_out[0].session_id, Uuid::from_u128(1));
    assert_eq!(plan.timed_out[0].creation_id, "c1");
    assert_eq!(placements(&snapshot, &plan), pairs(&[("s2", "a1")]));
    snapshot.opts.pending_timeout = TimeDelta::zero();
    assert!(plan_round(&snapshot).unwrap().timed_out.is_empty());
}

#[test]
fn a_busy_round_never_over_commits_an_agent() {
    let mut state = 7u64;
    let mut next = |below: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % below
    };
    let agents: Vec<AgentSnapshot> = (0..40)
        .map(|index| {
            agent(
                &format!("i-{index:02}"),
                slots(json!({
                    "cpu": (4 + next(12)).to_string(),
                    "mem": ((4 + next(28)) * GIB as u64).to_string(),
                    "cuda.device": (next(3)).to_string(),
                })),
                cpu_mem(next(3) as i64, next(3) as i64),
            )
        })
        .collect();
    let pending: Vec<PendingSession> = (1..=2000u128)
        .map(|number| {
            let request = slots(json!({
                "cpu": format!("{}.{}", next(3), next(10)),
                "mem": ((1 + next(6)) * GIB as u64).to_string(),
                "cuda.device": u64::from(next(8) == 0).to_string(),
            }));
            if number % 9 == 0 {
                multi_node(
                    number,
                    &format!("AK{}", number % 13),
                    &[request.clone(), request],
                )
            } else {
                session(number, &format!("AK{}", number % 13), request)
            }
        })
        .collect();
    for scheduler in [
        FIFO,
        SchedulerKind::Lifo,
        SchedulerKind::Drf,
        SchedulerKind::Mof,
    ] {
        for strategy in [
            AgentSelectionStrategy::Dispersed,
            AgentSelectionStrategy::Concentrated,
            AgentSelectionStrategy::Legacy,
        ] {
            let mut snapshot = group(scheduler, agents.clone(), pending.clone());
            snapshot.opts.agent_selection_strategy = strategy;
            let plan = decide(&snapshot);
            assert!(plan.any_scheduled() && !plan.failed.is_empty());
            assert_eq!(plan.scheduled.len() + plan.failed.len(), pending.len());
            for candidate in &snapshot.agents {
                let Some(reserved) = plan.agent_reservations.get(&candidate.id) else {
                    continue;
                };
                for (slot, total) in candidate.available_slots.iter() {
                    let used = [&candidate.occupied_slots, reserved]
                        .iter()
                        .filter_map(|slots| slots.get(slot))
                        .map(|amount| amount.as_decimal().expect("finite"))
                        .sum::<Decimal>();
                    assert!(
                        SlotAmount::Finite(used) <= total,
                        "{scheduler:?} {strategy:?}: {} over-committed on {slot}",
                        candidate.id
                    );
                }
            }
        }
    }
}
