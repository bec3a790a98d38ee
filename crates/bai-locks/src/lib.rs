//! Distributed locks and global timers of the manager, as the reference has them
//! (`common/lock.py`, `manager/pglock.py`, `common/distributed.py`).
//!
//! [`LockFactory`] takes the lock ids of [`LockId`] with the backend `[manager] distributed-lock`
//! names: `pg_advisory` (a session advisory lock on a PostgreSQL connection of its own, through
//! `bai-db-models`), `filelock` (`flock` on `{ipc-base-path}/{manager id}.{lock id}.lock`: processes
//! of one host only), `redlock` (a key with an expiry in Redis database 5, through `bai-redis`) and
//! `etcd` (etcd's lock service with a lease, through `bai-etcd-store`). Waiting for a lock is
//! logged, never an error; a failing store is retried. A held lock is kept (leases and expiries
//! renewed, connections checked) by a task of its own until it is released or dropped.
//!
//! [`GlobalTimer`] produces an event about once per interval cluster-wide: whoever holds its lock
//! produces the event and keeps the lock for the interval.
//!
//! This crate must not know what the events it produces set going (their consumers live above),
//! HTTP, or any store's commands: SQL is `bai-db-models`', Redis `bai-redis`' and etcd
//! `bai-etcd-store`'s.

mod error;
mod etcd;
mod factory;
mod file;
mod pg;
mod redlock;
mod renewal;
mod timer;

pub use error::LockError;
pub use factory::{LockFactory, LockGuard, lock_ttl};
pub use timer::{
    GlobalTimer, IDLE_CHECK_EVERY, LOG_CLEANUP_AFTER, LOG_CLEANUP_EVERY, PREPARE_AFTER,
    PREPARE_EVERY, SCALE_AFTER, SCALE_EVERY, SCHEDULE_EVERY, manager_timers, run_timers,
};

use std::fmt;

/// A lock of the cluster, numbered as the reference numbers it (`manager/defs.py` `LockID`):
/// our processes and the reference's take the same locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LockId(pub i64);

impl LockId {
    pub const TEST: LockId = LockId(42);
    /// A scheduling round (taken in its transaction by `bai-sessions`).
    pub const SCHEDULE: LockId = LockId(91);
    /// Starting the scheduled sessions.
    pub const PREPARE: LockId = LockId(92);
    /// The `do_schedule` timer.
    pub const SCHEDULE_TIMER: LockId = LockId(191);
    /// The `do_prepare` timer.
    pub const PREPARE_TIMER: LockId = LockId(192);
    /// The `do_scale` timer.
    pub const SCALE_TIMER: LockId = LockId(193);
    /// The `do_log_cleanup` timer.
    pub const LOG_CLEANUP_TIMER: LockId = LockId(195);
    /// The `do_idle_check` timer.
    pub const IDLE_CHECK_TIMER: LockId = LockId(196);
}

impl fmt::Display for LockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
