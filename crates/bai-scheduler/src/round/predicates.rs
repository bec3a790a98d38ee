//! The scheduler's predicates (`scheduler/predicates.py`) evaluated in memory, in the
//! reference's order and with its names and messages, against quota counters that the round
//! keeps current: concurrency (the reference's Redis counters), pending sessions of each access
//! key, and the occupancy of access keys, users, projects and domains.
//!
//! Pure computation on the snapshot: no I/O.

use bai_db_models::entities::enums::{
    DefaultForUnspecified, SessionResult, SessionStatus, SessionType,
};
use bai_db_models::entities::{ResourceSlot, SlotAmount};
use chrono::{DateTime, Utc};

use crate::round::agents::{add_into, sub_amounts};
use crate::round::dense::{self, SlotSpace};
use crate::round::format::{humanized_listing, jsonb_order};
use crate::round::snapshot::{KeypairQuota, PendingSession, ResourcePolicy, ScopeQuota, UserQuota};
use crate::slots::KnownSlots;

pub const RESERVED_TIME: &str = "reserved_time";
pub const DEPENDENCIES: &str = "dependencies";
pub const CONCURRENCY: &str = "concurrency";
pub const PENDING_SESSION_RESOURCE_LIMIT: &str = "pending_session_resource_limit";
pub const PENDING_SESSION_COUNT_LIMIT: &str = "pending_session_count_limit";
pub const KEYPAIR_RESOURCE_LIMIT: &str = "keypair_resource_limit";
pub const USER_RESOURCE_LIMIT: &str = "user_resource_limit";
pub const USER_GROUP_RESOURCE_LIMIT: &str = "user_group_resource_limit";
pub const DOMAIN_RESOURCE_LIMIT: &str = "domain_resource_limit";

/// A predicate that did not pass (`status_data.scheduler.failed_predicates[]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedPredicate {
    pub name: &'static str,
    pub msg: String,
}

/// The outcome of every predicate of one session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PredicateResults {
    pub(crate) passed: Vec<&'static str>,
    pub(crate) failed: Vec<FailedPredicate>,
    /// Whether `concurrency` counted the session (to be taken back unless it is scheduled).
    pub(crate) counted: bool,
}

impl PredicateResults {
    fn record(&mut self, name: &'static str, failure: Option<String>) {
        match failure {
            None => self.passed.push(name),
            Some(msg) => self.failed.push(FailedPredicate { name, msg }),
        }
    }
}

/// Which quota entries a session's predicates read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Owner {
    pub(crate) keypair: usize,
    pub(crate) user: usize,
    pub(crate) group: usize,
    pub(crate) domain: usize,
}

/// `ResourceSlot.from_policy` of a policy's slots: the known slots of `total` normalised, the
/// other known slots 0 or infinite.
pub(crate) fn limit_slots(
    known: &KnownSlots,
    total: &ResourceSlot,
    unspecified: DefaultForUnspecified,
) -> ResourceSlot {
    ResourceSlot::from(&known.limits(total, unspecified))
}

/// The quota counters of a round.
#[derive(Debug)]
pub(crate) struct Quotas<'a> {
    known: &'a KnownSlots,
    keypairs: Vec<KeypairCounters<'a>>,
    users: Vec<UserCounters<'a>>,
    groups: Vec<ScopeCounters<'a>>,
    domains: Vec<ScopeCounters<'a>>,
}

#[derive(Debug)]
struct KeypairCounters<'a> {
    policy: &'a ResourcePolicy,
    limits: Vec<i128>,
    occupied: Vec<i128>,
    concurrency_used: u64,
    sftp_concurrency_used: u64,
    pending_count: i64,
    pending_slots: ResourceSlot,
}

#[derive(Debug)]
struct UserCounters<'a> {
    policy: Option<&'a ResourcePolicy>,
    limits: Vec<i128>,
    occupied: Vec<i128>,
}

#[derive(Debug)]
struct ScopeCounters<'a> {
    total: &'a ResourceSlot,
    limits: Vec<i128>,
    occupied: Vec<i128>,
}

/// The decimal inputs of [`Quotas::new`]: each entry with its normalised limits.
pub(crate) struct QuotaInputs<'a> {
    pub(crate) keypairs: Vec<(&'a KeypairQuota, ResourceSlot)>,
    pub(crate) users: Vec<(&'a UserQuota, ResourceSlot)>,
    pub(crate) groups: Vec<(&'a ScopeQuota, ResourceSlot)>,
    pub(crate) domains: Vec<(&'a ScopeQuota, ResourceSlot)>,
}

impl<'a> Quotas<'a> {
    pub(crate) fn new(known: &'a KnownSlots, space: &SlotSpace, inputs: QuotaInputs<'a>) -> Self {
        // The occupancy queries drop slots that are no longer known.
        let occupancy = |slots: &ResourceSlot| {
            let mut dense = space.encode(slots);
            for (slot, amount) in dense.iter_mut().enumerate() {
                if !space.is_known(slot) {
                    *amount = 0;
                }
            }
            dense
        };
        Quotas {
            known,
            keypairs: inputs
                .keypairs
                .into_iter()
                .map(|(quota, limits)| KeypairCounters {
                    policy: &quota.policy,
                    limits: space.encode(&limits),
                    occupied: occupancy(&quota.occupied),
                    concurrency_used: quota.concurrency_used,
                    sftp_concurrency_used: quota.sftp_concurrency_used,
                    pending_count: i64::try_from(quota.pending_count).unwrap_or(i64::MAX),
                    pending_slots: quota.pending_slots.clone(),
                })
                .collect(),
            users: inputs
                .users
                .into_iter()
                .map(|(quota, limits)| UserCounters {
                    policy: quota.main_keypair_policy.as_ref(),
                    limits: space.encode(&limits),
                    occupied: occupancy(&quota.occupied),
                })
                .collect(),
            groups: scopes(space, inputs.groups, occupancy),
            domains: scopes(space, inputs.domains, occupancy),
        }
    }

    /// Runs the predicates of `session` in the reference's order. `requested` is the session's
    /// `requested_slots` in dense form.
    pub(crate) fn check(
        &mut self,
        session: &PendingSession,
        owner: Owner,
        requested: &[i128],
        now: DateTime<Utc>,
    ) -> PredicateResults {
        let mut results = PredicateResults::default();
        results.record(RESERVED_TIME, reserved_time(session, now));
        results.record(DEPENDENCIES, dependencies(session));
        let concurrency = self.concurrency(session, owner);
        results.counted = concurrency.is_none();
        results.record(CONCURRENCY, concurrency);
        if session.is_private() {
            return results;
        }
        results.record(
            PENDING_SESSION_RESOURCE_LIMIT,
            self.pending_resource_limit(owner),
        );
        results.record(PENDING_SESSION_COUNT_LIMIT, self.pending_count_limit(owner));
        let keypair = &self.keypairs[owner.keypair];
        let failure = exceeds(&keypair.occupied, requested, &keypair.limits).then(|| {
            let listing = self.policy_listing(
                &keypair.policy.total_resource_slots,
                keypair.policy.default_for_unspecified,
            );
            format!("Your keypair resource quota is exceeded. ({listing})")
        });
        results.record(KEYPAIR_RESOURCE_LIMIT, failure);
        let user = &self.users[owner.user];
        let failure = match user.policy {
            None => Some(format!(
                "User has no main-keypair or the main-keypair has no keypair resource policy (uid: {})",
                session.user_uuid
            )),
            Some(policy) => exceeds(&user.occupied, requested, &user.limits).then(|| {
                let listing = self
                    .policy_listing(&policy.total_resource_slots, policy.default_for_unspecified);
                format!("Your main-keypair resource quota is exceeded. ({listing})")
            }),
        };
        results.record(USER_RESOURCE_LIMIT, failure);
        let group = &self.groups[owner.group];
        let failure = exceeds(&group.occupied, requested, &group.limits).then(|| {
            let listing = self.policy_listing(group.total, DefaultForUnspecified::Unlimited);
            format!("Your group resource quota is exceeded. ({listing})")
        });
        results.record(USER_GROUP_RESOURCE_LIMIT, failure);
        let domain = &self.domains[owner.domain];
        let failure = exceeds(&domain.occupied, requested, &domain.limits).then(|| {
            let listing = self.policy_listing(domain.total, DefaultForUnspecified::Unlimited);
            format!("Your domain resource quota is exceeded. ({listing})")
        });
        results.record(DOMAIN_RESOURCE_LIMIT, failure);
        results
    }

    /// The reference's Lua script: fail at the limit, else count the session.
    fn concurrency(&mut self, session: &PendingSession, owner: Owner) -> Option<String> {
        let keypair = &mut self.keypairs[owner.keypair];
        let (limit, used) = if session.is_private() {
            (
                keypair.policy.max_concurrent_sftp_sessions,
                &mut keypair.sftp_concurrency_used,
            )
        } else {
            (
                keypair.policy.max_concurrent_sessions,
                &mut keypair.concurrency_used,
            )
        };
        if limit > 0 && i128::from(*used) >= i128::from(limit) {
            return Some(format!(
                "You cannot run more than {limit} concurrent sessions"
            ));
        }
        *used += 1;
        None
    }

    /// Takes back the count of a session that passed `concurrency` but is not scheduled (what
    /// the reference's recalculation after a failure amounts to).
    pub(crate) fn uncount(&mut self, session: &PendingSession, owner: Owner) {
        let keypair = &mut self.keypairs[owner.keypair];
        let used = if session.is_private() {
            &mut keypair.sftp_concurrency_used
        } else {
            &mut keypair.concurrency_used
        };
        *used = used.saturating_sub(1);
    }

    /// `Σ requested_slots of the access key's PENDING sessions >= max_pending_session_resource_slots`
    /// (ResourceSlot `>=`: every slot of either side reached).
    fn pending_resource_limit(&self, owner: Owner) -> Option<String> {
        let keypair = &self.keypairs[owner.keypair];
        let limit = keypair
            .policy
            .max_pending_session_resource_slots
            .as_ref()
            .filter(|limit| !limit.as_map().is_empty())?;
        let zero = SlotAmount::from(0i64);
        let pending = &keypair.pending_slots;
        let reached = pending
            .iter()
            .map(|(slot, _)| slot)
            .chain(limit.iter().map(|(slot, _)| slot))
            .all(|slot| pending.get(slot).unwrap_or(zero) >= limit.get(slot).unwrap_or(zero));
        if !reached {
            return None;
        }
        // The reference's sum is ordered by Python set iteration (arbitrary); known slots first
        // here, in their order, then the rest by name.
        let ordered = self
            .known
            .names()
            .filter_map(|slot| pending.get(slot).map(|amount| (slot, amount)))
            .chain(
                pending
                    .iter()
                    .filter(|(slot, _)| !self.known.contains(slot)),
            );
        Some(match humanized_listing(self.known, ordered) {
            Ok(listing) => format!("Your pending session quota is exceeded. ({listing})"),
            Err(error) => error,
        })
    }

    fn pending_count_limit(&self, owner: Owner) -> Option<String> {
        let keypair = &self.keypairs[owner.keypair];
        let limit = keypair.policy.max_pending_session_count?;
        (keypair.pending_count >= limit)
            .then(|| format!("You cannot create more than {limit} pending session(s)."))
    }

    /// `to_humanized` of `from_policy(total)`: the policy's known slots in jsonb key order, then
    /// the other known slots.
    fn policy_listing(&self, total: &ResourceSlot, unspecified: DefaultForUnspecified) -> String {
        let limits = self.known.limits(total, unspecified);
        let listed = jsonb_order(
            total
                .iter()
                .map(|(slot, _)| slot)
                .filter(|slot| self.known.contains(slot)),
        );
        let rest = self.known.names().filter(|slot| !listed.contains(slot));
        let ordered = listed
            .iter()
            .copied()
            .chain(rest)
            .filter_map(|slot| limits.get(slot).map(|amount| (slot, amount)));
        // Every slot here is known, so the listing cannot fail.
        humanized_listing(self.known, ordered).unwrap_or_default()
    }

    /// A session left PENDING (scheduled or cancelled): it no longer counts against the access
    /// key's pending limits.
    pub(crate) fn leave_pending(&mut self, owner: Owner, requested: &ResourceSlot) {
        let keypair = &mut self.keypairs[owner.keypair];
        keypair.pending_count -= 1;
        for (slot, amount) in requested.iter() {
            let left = sub_amounts(
                keypair
                    .pending_slots
                    .get(slot)
                    .unwrap_or(SlotAmount::from(0i64)),
                amount,
            );
            keypair.pending_slots.insert(slot, left);
        }
    }

    /// A scheduled session's kernels now occupy `kernel_slots` (dense, known slots only) of its
    /// access key, user, project and domain.
    pub(crate) fn occupy(&mut self, owner: Owner, kernel_slots: &[i128]) {
        for occupied in [
            &mut self.keypairs[owner.keypair].occupied,
            &mut self.users[owner.user].occupied,
            &mut self.groups[owner.group].occupied,
            &mut self.domains[owner.domain].occupied,
        ] {
            for (total, &more) in occupied.iter_mut().zip(kernel_slots) {
                *total = dense::add(*total, more);
            }
        }
    }
}

fn scopes<'a>(
    space: &SlotSpace,
    inputs: Vec<(&'a ScopeQuota, ResourceSlot)>,
    occupancy: impl Fn(&ResourceSlot) -> Vec<i128>,
) -> Vec<ScopeCounters<'a>> {
    inputs
        .into_iter()
        .map(|(quota, limits)| ScopeCounters {
            total: &quota.total_resource_slots,
            limits: space.encode(&limits),
            occupied: occupancy(&quota.occupied),
        })
        .collect()
}

/// `not (occupied + requested <= allowed)` on every slot.
fn exceeds(occupied: &[i128], requested: &[i128], allowed: &[i128]) -> bool {
    occupied
        .iter()
        .zip(requested)
        .zip(allowed)
        .any(|((&used, &wanted), &limit)| dense::add(used, wanted) > limit)
}

/// A batch session waits for its `starts_at`.
fn reserved_time(session: &PendingSession, now: DateTime<Utc>) -> Option<String> {
    let waiting = session.session_type == SessionType::Batch
        && session.starts_at.is_some_and(|starts_at| now < starts_at);
    waiting.then(|| "Before start time".to_owned())
}

/// Every dependency must have terminated with success.
fn dependencies(session: &PendingSession) -> Option<String> {
    let waiting: Vec<String> = session
        .dependencies
        .iter()
        .filter(|dependency| {
            dependency.result != SessionResult::Success
                || dependency.status != SessionStatus::Terminated
        })
        .map(|dependency| format!("{} ({})", dependency.name, dependency.id))
        .collect();
    (!waiting.is_empty()).then(|| {
        format!(
            "Waiting dependency sessions to finish as success. ({})",
            waiting.join(", ")
        )
    })
}

/// The sum of a session's kernels' `requested_slots` (their `occupied_slots` once scheduled),
/// known slots only, as the quota predicates' occupancy counts them.
pub(crate) fn kernel_occupancy(space: &SlotSpace, session: &PendingSession) -> Vec<i128> {
    let mut sum = ResourceSlot::new();
    for kernel in &session.kernels {
        add_into(&mut sum, &kernel.requested_slots);
    }
    let mut dense = space.encode(&sum);
    for (slot, amount) in dense.iter_mut().enumerate() {
        if !space.is_known(slot) {
            *amount = 0;
        }
    }
    dense
}
