//! One scheduling round of one resource group, decided in memory: the reference's
//! `_schedule_in_sgroup` loop (pending timeout, pick, predicates, single-node or multi-node
//! placement, failure bookkeeping) run against a [`GroupSnapshot`], producing a [`RoundPlan`] the
//! caller commits. Reservations and quota counters are updated as the round goes, so every
//! decision sees the ones before it.
//!
//! Pure and deterministic: no I/O, no clock (the snapshot's `now` is the round's time).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use bai_db_models::entities::enums::DefaultForUnspecified;
use bai_db_models::entities::{ResourceSlot, SlotAmount};
use chrono::TimeDelta;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::round::agents::{
    AgentTable, DenseRequest, Preference, add_into, priority_order, sub_amounts,
};
use crate::round::dense::SlotSpace;
use crate::round::format::jsonb_order;
use crate::round::pickers::Picker;
use crate::round::predicates::{
    FailedPredicate, Owner, QuotaInputs, Quotas, kernel_occupancy, limit_slots,
};
use crate::round::snapshot::{
    ClusterMode, GroupSnapshot, PendingSession, RoundRobinState, SchedulerKind, ScopeQuota,
    SnapshotError,
};
use crate::slots::KnownSlots;

/// What a round decided. The caller commits it in one transaction: agents' `occupied_slots`
/// grow by `agent_reservations`, sessions and kernels change as listed, the round-robin state is
/// written back, and `do_prepare` follows when [`RoundPlan::any_scheduled`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundPlan {
    /// `last_try` of every session this round tried (the snapshot's `now` in Python's
    /// `isoformat()`).
    pub last_try: String,
    /// Sessions pending for `pending_timeout` or longer: kernels and session become CANCELLED
    /// with `status_info = "pending-timeout"`, and `session_cancelled(id, creation_id,
    /// "pending-timeout")` is emitted. The round did not try them.
    pub timed_out: Vec<CancelledSession>,
    /// Sessions (and all their kernels) that become SCHEDULED, in the order they were decided.
    pub scheduled: Vec<ScheduledSession>,
    /// Sessions that stay PENDING (or are cancelled, see [`Failure::cancels`]), in the order
    /// they were tried.
    pub failed: Vec<FailedSession>,
    /// Σ of the round's reservations per agent, by agent id (lock them in this order).
    pub agent_reservations: BTreeMap<String, ResourceSlot>,
    /// The group's round-robin states after the round (architecture -> state).
    pub roundrobin: BTreeMap<String, RoundRobinState>,
}

impl RoundPlan {
    /// Whether the caller emits `do_prepare`.
    pub fn any_scheduled(&self) -> bool {
        !self.scheduled.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelledSession {
    pub session_id: Uuid,
    pub creation_id: String,
}

/// A session placed on agents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledSession {
    pub session_id: Uuid,
    pub creation_id: String,
    /// Every kernel with its agent (single-node: all on one).
    pub kernels: Vec<KernelPlacement>,
    /// `sessions.agent_ids`: the single agent, or each kernel's agent in kernel order.
    pub agent_ids: Vec<String>,
    /// What the session reserves on each agent, in reservation order (single-node: the
    /// session's `requested_slots`; multi-node: each kernel's).
    pub reservations: Vec<(String, ResourceSlot)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelPlacement {
    pub kernel_id: Uuid,
    pub agent_id: String,
}

/// A session the round could not schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedSession {
    pub session_id: Uuid,
    pub creation_id: String,
    pub failure: Failure,
}

/// Why a session was not scheduled, with what the reference writes for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Session `status_info = "predicate-checks-failed"`; `status_data.scheduler` merged with
    /// [`Failure::predicate_update`] and `retries` incremented. A SYSTEM session is then
    /// cancelled (see [`Failure::cancels`]).
    PredicateChecksFailed {
        passed: Vec<&'static str>,
        failed: Vec<FailedPredicate>,
        /// SYSTEM session.
        cancelled: bool,
    },
    /// The predicates passed (session and kernels get [`Failure::predicate_update`] merged
    /// into `status_data.scheduler`), then no agent could take it: the session (single-node) or
    /// the kernel `kernel_id` (multi-node) gets `status_info = "no-available-instances"`,
    /// [`Failure::no_instance_update`] merged into `status_data.scheduler` and `retries`
    /// incremented.
    NoAvailableInstances {
        passed: Vec<&'static str>,
        kernel_id: Option<Uuid>,
        msg: String,
    },
    /// The predicates passed (merged as above), then the reference raised `GenericBadRequest`
    /// (kernels of several architectures, or none, in a single-node session): the session gets
    /// `status_info = "scheduler-error"` and `status_data` = [`Failure::error_status_data`]
    /// (replaced, not merged).
    SchedulerError {
        passed: Vec<&'static str>,
        name: &'static str,
        repr: String,
    },
}

impl Failure {
    /// The session's (or kernel's) final `status_info`.
    pub fn status_info(&self) -> &'static str {
        match self {
            Failure::PredicateChecksFailed {
                cancelled: true, ..
            } => "pending-timeout",
            Failure::PredicateChecksFailed { .. } => "predicate-checks-failed",
            Failure::NoAvailableInstances { .. } => "no-available-instances",
            Failure::SchedulerError { .. } => "scheduler-error",
        }
    }

    /// A SYSTEM session that failed a predicate: after the predicate update, kernels and session
    /// become CANCELLED with `status_info = "pending-timeout"` and `session_cancelled(...,
    /// "pending-timeout")` is emitted.
    pub fn cancels(&self) -> bool {
        matches!(
            self,
            Failure::PredicateChecksFailed {
                cancelled: true,
                ..
            }
        )
    }

    /// `{"last_try", "failed_predicates": [{"name", "msg"}], "passed_predicates": [{"name"}]}`.
    pub fn predicate_update(&self, last_try: &str) -> Value {
        let (passed, failed): (&[&str], &[FailedPredicate]) = match self {
            Failure::PredicateChecksFailed { passed, failed, .. } => (passed, failed),
            Failure::NoAvailableInstances { passed, .. }
            | Failure::SchedulerError { passed, .. } => (passed, &[]),
        };
        json!({
            "last_try": last_try,
            "failed_predicates": failed
                .iter()
                .map(|failure| json!({"name": failure.name, "msg": failure.msg}))
                .collect::<Vec<_>>(),
            "passed_predicates": passed
                .iter()
                .map(|name| json!({"name": name}))
                .collect::<Vec<_>>(),
        })
    }

    /// `{"last_try", "msg"}` of a session or kernel no agent could take.
    pub fn no_instance_update(&self, last_try: &str) -> Option<Value> {
        match self {
            Failure::NoAvailableInstances { msg, .. } => {
                Some(json!({"last_try": last_try, "msg": msg}))
            }
            _ => None,
        }
    }

    /// `convert_to_status_data(e)` of a scheduler error.
    pub fn error_status_data(&self) -> Option<Value> {
        match self {
            Failure::SchedulerError { name, repr, .. } => {
                Some(json!({"error": {"src": "other", "name": name, "repr": repr}}))
            }
            _ => None,
        }
    }
}

/// Decides one round of `snapshot`'s group.
pub fn plan_round(snapshot: &GroupSnapshot) -> Result<RoundPlan, SnapshotError> {
    Ok(Round::new(snapshot)?.run())
}

/// A session that passed its predicates but could not be placed.
enum PlacementError {
    NoInstance {
        kernel_id: Option<Uuid>,
        msg: String,
    },
    BadRequest(String),
}

/// A session's placement: kernel -> agent, and the reservations made.
struct Placement {
    kernels: Vec<KernelPlacement>,
    agent_ids: Vec<String>,
    reservations: Vec<(String, ResourceSlot)>,
}

/// The state of a round in progress.
struct Round<'a> {
    snapshot: &'a GroupSnapshot,
    /// The sessions the round tries, oldest first.
    pending: Vec<&'a PendingSession>,
    owners: Vec<Owner>,
    requests: Vec<DenseRequest>,
    kernel_requests: Vec<Vec<DenseRequest>>,
    occupancies: Vec<Vec<i128>>,
    agents: AgentTable,
    quotas: Quotas<'a>,
    picker: Picker,
    preference: Preference,
    roundrobin: BTreeMap<String, RoundRobinState>,
    plan: RoundPlan,
}

impl<'a> Round<'a> {
    fn new(snapshot: &'a GroupSnapshot) -> Result<Round<'a>, SnapshotError> {
        let timeout = snapshot.opts.pending_timeout;
        let expired: Vec<bool> = snapshot
            .pending
            .iter()
            .map(|session| {
                timeout > TimeDelta::zero() && snapshot.now - session.created_at >= timeout
            })
            .collect();
        let known = &snapshot.known_slots;
        let quotas = &snapshot.quotas;

        let mut keypairs = HashMap::new();
        let mut users = HashMap::new();
        let mut groups = HashMap::new();
        let mut domains = HashMap::new();
        let mut inputs = QuotaInputs {
            keypairs: Vec::new(),
            users: Vec::new(),
            groups: Vec::new(),
            domains: Vec::new(),
        };
        let mut owners = Vec::with_capacity(snapshot.pending.len());
        for session in &snapshot.pending {
            let access_key = session.access_key.as_str();
            let keypair = position_of(&mut keypairs, &mut inputs.keypairs, access_key, || {
                let quota = quotas
                    .keypairs
                    .get(access_key)
                    .ok_or_else(|| SnapshotError::MissingKeypair(access_key.to_owned()))?;
                let policy = &quota.policy;
                let limits = limit_slots(
                    known,
                    &policy.total_resource_slots,
                    policy.default_for_unspecified,
                );
                Ok((quota, limits))
            })?;
            let user = position_of(&mut users, &mut inputs.users, session.user_uuid, || {
                let quota = quotas
                    .users
                    .get(&session.user_uuid)
                    .ok_or(SnapshotError::MissingUser(session.user_uuid))?;
                let limits = quota
                    .main_keypair_policy
                    .as_ref()
                    .map(|policy| {
                        limit_slots(
                            known,
                            &policy.total_resource_slots,
                            policy.default_for_unspecified,
                        )
                    })
                    .unwrap_or_default();
                Ok((quota, limits))
            })?;
            let group = position_of(&mut groups, &mut inputs.groups, session.group_id, || {
                let quota = quotas
                    .groups
                    .get(&session.group_id)
                    .ok_or(SnapshotError::MissingGroup(session.group_id))?;
                Ok((quota, scope_limits(known, quota)))
            })?;
            let domain_name = session.domain_name.as_str();
            let domain = position_of(&mut domains, &mut inputs.domains, domain_name, || {
                let quota = quotas
                    .domains
                    .get(domain_name)
                    .ok_or_else(|| SnapshotError::MissingDomain(domain_name.to_owned()))?;
                Ok((quota, scope_limits(known, quota)))
            })?;
            owners.push(Owner {
                keypair,
                user,
                group,
                domain,
            });
        }

        let agent_rows = snapshot.agents.iter().chain(&snapshot.designated_agents);
        let space = SlotSpace::new(
            known,
            agent_rows
                .flat_map(|agent| [&agent.available_slots, &agent.occupied_slots])
                .chain(snapshot.pending.iter().flat_map(|session| {
                    std::iter::once(&session.requested_slots)
                        .chain(session.kernels.iter().map(|kernel| &kernel.requested_slots))
                }))
                .chain(
                    inputs
                        .keypairs
                        .iter()
                        .flat_map(|(quota, limits)| [&quota.occupied, limits]),
                )
                .chain(
                    inputs
                        .users
                        .iter()
                        .flat_map(|(quota, limits)| [&quota.occupied, limits]),
                )
                .chain(
                    inputs
                        .groups
                        .iter()
                        .chain(&inputs.domains)
                        .flat_map(|(quota, limits)| [&quota.occupied, limits]),
                ),
        );
        let agents = AgentTable::new(
            &space,
            priority_order(&space, &snapshot.resource_priority),
            &snapshot.agents,
            &snapshot.designated_agents,
            snapshot.max_container_count,
        );
        for kernel in snapshot.pending.iter().flat_map(|session| &session.kernels) {
            if let Some(agent) = &kernel.designated_agent
                && agents.agent(agent).is_none()
            {
                return Err(SnapshotError::MissingDesignatedAgent {
                    kernel: kernel.id,
                    agent: agent.clone(),
                });
            }
        }
        let mut quotas = Quotas::new(known, &space, inputs);

        let mut plan = RoundPlan {
            last_try: bai_pyjson::datetime::isoformat(&snapshot.now),
            timed_out: Vec::new(),
            scheduled: Vec::new(),
            failed: Vec::new(),
            agent_reservations: BTreeMap::new(),
            roundrobin: BTreeMap::new(),
        };
        let mut pending = Vec::with_capacity(snapshot.pending.len());
        let mut tried_owners = Vec::with_capacity(snapshot.pending.len());
        for ((session, owner), expired) in snapshot.pending.iter().zip(owners).zip(expired) {
            if expired {
                quotas.leave_pending(owner, &session.requested_slots);
                plan.timed_out.push(CancelledSession {
                    session_id: session.id,
                    creation_id: session.creation_id.clone(),
                });
            } else {
                pending.push(session);
                tried_owners.push(owner);
            }
        }

        let mut capacity = ResourceSlot::new();
        for agent in &snapshot.agents {
            add_into(&mut capacity, &agent.available_slots);
        }
        let strategy = snapshot.opts.agent_selection_strategy;
        let preference = match snapshot.scheduler {
            SchedulerKind::Fifo { .. } | SchedulerKind::Lifo => Preference::Ranked {
                strategy,
                penalize_extras: true,
            },
            SchedulerKind::Drf => Preference::Ranked {
                strategy,
                penalize_extras: false,
            },
            SchedulerKind::Mof => Preference::LeastOccupied,
        };
        Ok(Round {
            snapshot,
            requests: pending
                .iter()
                .map(|session| DenseRequest::new(&space, &session.requested_slots))
                .collect(),
            kernel_requests: pending
                .iter()
                .map(|session| {
                    session
                        .kernels
                        .iter()
                        .map(|kernel| DenseRequest::new(&space, &kernel.requested_slots))
                        .collect()
                })
                .collect(),
            occupancies: pending
                .iter()
                .map(|session| kernel_occupancy(&space, session))
                .collect(),
            picker: Picker::new(snapshot.scheduler, &pending, &snapshot.existing, capacity),
            pending,
            owners: tried_owners,
            agents,
            quotas,
            preference,
            roundrobin: snapshot.roundrobin.clone(),
            plan,
        })
    }

    fn run(mut self) -> RoundPlan {
        while let Some(position) = self.picker.pick() {
            self.try_session(position);
        }
        self.plan.roundrobin = self.roundrobin;
        self.plan
    }

    fn try_session(&mut self, position: usize) {
        let session = self.pending[position];
        let owner = self.owners[position];
        let results = self.quotas.check(
            session,
            owner,
            &self.requests[position].amounts,
            self.snapshot.now,
        );
        if !results.failed.is_empty() {
            if results.counted {
                self.quotas.uncount(session, owner);
            }
            let cancelled = session.is_private();
            if cancelled {
                self.quotas.leave_pending(owner, &session.requested_slots);
            }
            self.fail(
                session,
                Failure::PredicateChecksFailed {
                    passed: results.passed,
                    failed: results.failed,
                    cancelled,
                },
            );
            return;
        }
        let placement = match session.cluster_mode {
            ClusterMode::SingleNode => self.place_single_node(position),
            ClusterMode::MultiNode => self.place_multi_node(position),
        };
        match placement {
            Ok(placement) => {
                self.quotas.leave_pending(owner, &session.requested_slots);
                if !session.is_private() {
                    self.quotas.occupy(owner, &self.occupancies[position]);
                }
                for (agent, slots) in &placement.reservations {
                    add_into(
                        self.plan
                            .agent_reservations
                            .entry(agent.clone())
                            .or_default(),
                        slots,
                    );
                }
                self.plan.scheduled.push(ScheduledSession {
                    session_id: session.id,
                    creation_id: session.creation_id.clone(),
                    kernels: placement.kernels,
                    agent_ids: placement.agent_ids,
                    reservations: placement.reservations,
                });
            }
            Err(error) => {
                if results.counted {
                    self.quotas.uncount(session, owner);
                }
                let failure = match error {
                    PlacementError::NoInstance { kernel_id, msg } => {
                        Failure::NoAvailableInstances {
                            passed: results.passed,
                            kernel_id,
                            msg,
                        }
                    }
                    PlacementError::BadRequest(message) => Failure::SchedulerError {
                        passed: results.passed,
                        name: "GenericBadRequest",
                        repr: format!("<GenericBadRequest(400): Bad request. ({message})>"),
                    },
                };
                self.fail(session, failure);
            }
        }
    }

    fn fail(&mut self, session: &PendingSession, failure: Failure) {
        self.plan.failed.push(FailedSession {
            session_id: session.id,
            creation_id: session.creation_id.clone(),
            failure,
        });
    }

    /// `_schedule_single_node_session`: one agent for the session's `requested_slots`.
    fn place_single_node(&mut self, position: usize) -> Result<Placement, PlacementError> {
        let session = self.pending[position];
        let group = &self.snapshot.name;
        let mut architectures: Vec<&str> = session
            .kernels
            .iter()
            .map(|kernel| kernel.architecture.as_str())
            .collect();
        architectures.sort_unstable();
        architectures.dedup();
        if architectures.len() > 1 {
            return Err(PlacementError::BadRequest(
                "Cannot assign multiple kernels with different architectures' single node session"
                    .to_owned(),
            ));
        }
        let (Some(main), Some(&architecture)) = (session.kernels.first(), architectures.first())
        else {
            return Err(PlacementError::BadRequest(format!(
                "The session UUID('{}') does not have any child kernel.",
                session.id
            )));
        };
        self.check_candidates(architecture, &main.image_ref, "image[0]")?;
        let request = &self.requests[position];
        let agent = if let Some(designated) = &main.designated_agent {
            let agent = self.designated(designated);
            self.check_designated(agent, &session.requested_slots, &session.requested_slots)?;
            agent
        } else {
            let architecture_group = self
                .agents
                .architecture(architecture)
                .expect("compatible agents exist");
            let from_ring = if self.snapshot.opts.roundrobin {
                self.roundrobin
                    .get(architecture)
                    .and_then(|state| self.agents.next_in_ring(architecture_group, state, request))
            } else {
                None
            };
            match from_ring {
                Some((agent, state)) => {
                    self.roundrobin.insert(architecture.to_owned(), state);
                    agent
                }
                None => {
                    // Single-node picks among all compatible agents, capped ones included (the
                    // reference only uses the capped list to decide whether any is left).
                    let agent = self
                        .agents
                        .choose(&architecture_group.compatible, request, self.preference)
                        .ok_or_else(|| PlacementError::NoInstance {
                            kernel_id: None,
                            msg: format!(
                                "Could not find a contiguous resource region in any agent big enough to host the session (id: {}, resource group: {group})",
                                session.id
                            ),
                        })?;
                    self.picker.assigned(position, &session.requested_slots);
                    if self.snapshot.opts.roundrobin {
                        let state = self.agents.ring_state_after(architecture_group, agent);
                        self.roundrobin.insert(architecture.to_owned(), state);
                    }
                    agent
                }
            }
        };
        self.agents
            .reserve(agent, &self.requests[position], &session.requested_slots);
        let agent_id = self.agents.id(agent).to_owned();
        Ok(Placement {
            kernels: session
                .kernels
                .iter()
                .map(|kernel| KernelPlacement {
                    kernel_id: kernel.id,
                    agent_id: agent_id.clone(),
                })
                .collect(),
            agent_ids: vec![agent_id.clone()],
            reservations: vec![(agent_id, session.requested_slots.clone())],
        })
    }

    /// `_schedule_multi_node_session`: an agent per kernel, each seeing the reservations of the
    /// kernels before it; all or nothing.
    fn place_multi_node(&mut self, position: usize) -> Result<Placement, PlacementError> {
        let session = self.pending[position];
        let mut undos = Vec::new();
        let mut placement = Placement {
            kernels: Vec::new(),
            agent_ids: Vec::new(),
            reservations: Vec::new(),
        };
        for (index, kernel) in session.kernels.iter().enumerate() {
            match self.choose_for_kernel(position, index) {
                Ok(agent) => {
                    let request = &self.kernel_requests[position][index];
                    undos.push((
                        index,
                        self.agents.reserve(agent, request, &kernel.requested_slots),
                    ));
                    let agent_id = self.agents.id(agent).to_owned();
                    placement.kernels.push(KernelPlacement {
                        kernel_id: kernel.id,
                        agent_id: agent_id.clone(),
                    });
                    placement.agent_ids.push(agent_id.clone());
                    placement
                        .reservations
                        .push((agent_id, kernel.requested_slots.clone()));
                }
                Err(msg) => {
                    for (reserved, undo) in undos.into_iter().rev() {
                        self.agents
                            .unreserve(undo, &self.kernel_requests[position][reserved]);
                    }
                    return Err(PlacementError::NoInstance {
                        kernel_id: Some(kernel.id),
                        msg,
                    });
                }
            }
        }
        Ok(placement)
    }

    /// The agent of one kernel of a multi-node session, or the reason there is none.
    fn choose_for_kernel(&mut self, position: usize, index: usize) -> Result<usize, String> {
        let session = self.pending[position];
        let kernel = &session.kernels[index];
        if let Some(designated) = &kernel.designated_agent {
            let agent = self.designated(designated);
            self.check_designated(agent, &kernel.requested_slots, &session.requested_slots)
                .map_err(no_instance_msg)?;
            return Ok(agent);
        }
        self.check_candidates(&kernel.architecture, &kernel.image_ref, "image")
            .map_err(no_instance_msg)?;
        let uncapped = &self
            .agents
            .architecture(&kernel.architecture)
            .expect("compatible agents exist")
            .uncapped;
        let agent = self
            .agents
            .choose(uncapped, &self.kernel_requests[position][index], self.preference)
            .ok_or_else(|| {
                format!(
                    "Could not find a contiguous resource region in any agent big enough to host a kernel in the session (id: {}, resource group: {})",
                    session.id, self.snapshot.name
                )
            })?;
        self.picker.assigned(position, &kernel.requested_slots);
        Ok(agent)
    }

    /// The reference's checks that there are candidates, compatible ones (of `architecture`),
    /// and compatible ones below the container cap.
    fn check_candidates(
        &self,
        architecture: &str,
        image_ref: &str,
        image_label: &str,
    ) -> Result<(), PlacementError> {
        let no_instance = |msg: String| PlacementError::NoInstance {
            kernel_id: None,
            msg,
        };
        if !self.agents.has_candidates() {
            return Err(no_instance(
                "No agents are available for scheduling".to_owned(),
            ));
        }
        let Some(group) = self.agents.architecture(architecture) else {
            return Err(no_instance(format!(
                "No agents found to be compatible with the image architecture ({image_label}: {image_ref}, arch: {architecture})"
            )));
        };
        if group.uncapped.is_empty() {
            return Err(no_instance(
                "No agents found to be available because all agents have reached the hard limit of the number of containers."
                    .to_owned(),
            ));
        }
        Ok(())
    }

    fn designated(&self, id: &str) -> usize {
        self.agents
            .agent(id)
            .expect("Round::new checked that designated agents are in the snapshot")
    }

    /// The designated agent's capacity check: for each slot of its `available_slots` (in jsonb
    /// order), `available - occupied >= wanted`; the message quotes the session's request.
    fn check_designated(
        &self,
        agent: usize,
        wanted: &ResourceSlot,
        quoted: &ResourceSlot,
    ) -> Result<(), PlacementError> {
        let zero = SlotAmount::from(0i64);
        let available = self.agents.available_slots(agent);
        let occupied = self.agents.occupied_slots(agent);
        for slot in jsonb_order(available.iter().map(|(slot, _)| slot)) {
            let remaining = sub_amounts(
                available.get(slot).unwrap_or(zero),
                occupied.get(slot).unwrap_or(zero),
            );
            if remaining < wanted.get(slot).unwrap_or(zero) {
                return Err(PlacementError::NoInstance {
                    kernel_id: None,
                    msg: format!(
                        "The designated agent ({}) does not have the enough remaining capacity ({slot}, requested: {}, remaining: {remaining}).",
                        self.agents.id(agent),
                        quoted.get(slot).unwrap_or(zero),
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The position of `key` among `entries`, adding the entry `make` builds on first sight.
fn position_of<K: Hash + Eq, V>(
    positions: &mut HashMap<K, usize>,
    entries: &mut Vec<V>,
    key: K,
    make: impl FnOnce() -> Result<V, SnapshotError>,
) -> Result<usize, SnapshotError> {
    if let Some(&position) = positions.get(&key) {
        return Ok(position);
    }
    entries.push(make()?);
    positions.insert(key, entries.len() - 1);
    Ok(entries.len() - 1)
}

/// A project's or domain's limits: unspecified slots are unlimited.
fn scope_limits(known: &KnownSlots, quota: &ScopeQuota) -> ResourceSlot {
    limit_slots(
        known,
        &quota.total_resource_slots,
        DefaultForUnspecified::Unlimited,
    )
}

/// The message of a multi-node kernel's failure (the kernel row takes it); only the
/// single-node checks raise `GenericBadRequest`.
fn no_instance_msg(error: PlacementError) -> String {
    match error {
        PlacementError::NoInstance { msg, .. } | PlacementError::BadRequest(msg) => msg,
    }
}
