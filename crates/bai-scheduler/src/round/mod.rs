//! One scheduling round of one resource group, decided in memory (issue 15): from a
//! [`GroupSnapshot`] of the group's agents, pending sessions, quotas and round-robin state,
//! [`plan_round`] runs the reference's loop (pending timeout, session picker, predicates,
//! single-node or multi-node placement) and returns a [`RoundPlan`] of reservations, scheduled,
//! failed and cancelled sessions that the caller commits in one transaction.
//!
//! This module must not do I/O of any kind: no database, etcd, Redis, clock or async. It is
//! synchronous and deterministic (the same snapshot gives the same plan); loading the snapshot,
//! committing the plan and emitting events belong to the caller. Slot amounts are converted once
//! into a dense fixed-point form (`dense`), so choosing among a thousand agents is integer work.

mod agents;
mod dense;
mod format;
mod md5;
mod pickers;
mod plan;
mod predicates;
mod snapshot;

pub use plan::{
    CancelledSession, FailedSession, Failure, KernelPlacement, RoundPlan, ScheduledSession,
    plan_round,
};
pub use predicates::{
    CONCURRENCY, DEPENDENCIES, DOMAIN_RESOURCE_LIMIT, FailedPredicate, KEYPAIR_RESOURCE_LIMIT,
    PENDING_SESSION_COUNT_LIMIT, PENDING_SESSION_RESOURCE_LIMIT, RESERVED_TIME,
    USER_GROUP_RESOURCE_LIMIT, USER_RESOURCE_LIMIT,
};
pub use snapshot::{
    AgentSelectionStrategy, AgentSnapshot, ClusterMode, DEFAULT_RESOURCE_PRIORITY, Dependency,
    ExistingSession, GroupSnapshot, KeypairQuota, PendingKernel, PendingSession, QuotaSnapshot,
    ResourcePolicy, RoundRobinState, SchedulerKind, SchedulerOpts, ScopeQuota, SnapshotError,
    UserQuota,
};
