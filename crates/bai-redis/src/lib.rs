//! The manager's Redis. It connects to the server etcd `config/redis` describes (a single server, or
//! a master found through Sentinel), one connection per logical database of the reference
//! ([`RedisDb`]), and gives typed access to every key the manager reads or writes there, in the
//! reference's layout, so that our nodes, the reference's nodes and the agents share one Redis:
//! rate-limit windows and call statistics of keypairs, the statistics agents report, which agents
//! hold which image, when each agent was last heard from, and the event stream.
//!
//! It is the only crate that talks to Redis (a tidy test keeps `fred` out of every other crate):
//! callers see typed methods per database, never key strings or Redis commands. It must not know
//! HTTP, SQL or manager.toml (it is handed the `config/redis` section), and it never logs the
//! Redis password.

mod bgtask;
mod connect;
mod db;
mod idle;
mod image;
mod live;
mod lock;
mod ping;
mod rate_limit;
mod scheduler_status;
mod start_claims;
mod stat;
mod stream;
#[cfg(feature = "testing")]
pub mod testing;

pub use bgtask::BgtaskTracker;
pub use connect::{Redis, RedisConnectError, describe_target};
pub use db::RedisDb;
pub use idle::{IdleKeys, LastAccess, NetworkActivity, StoredIdleReport, UtilizationCollection};
pub use image::ImageDb;
pub use live::{AgentLastSeen, InferenceMetrics, LiveDb};
pub use lock::LockDb;
pub use rate_limit::{ANONYMOUS_LIMIT, RateLimitDb, RateLimitVerdict, WINDOW_SECONDS};
pub use scheduler_status::{SchedulerStatus, SchedulerTask, SchedulerTaskStatus};
pub use start_claims::StartClaims;
pub use stat::StatDb;
pub use stream::{BadEntryId, ClaimedEntry, EntryId, GroupBacklog, StreamDb, StreamEntry};

/// A Redis command that failed.
#[derive(Debug, thiserror::Error)]
#[error("Redis database {db}: {source}")]
pub struct RedisError {
    pub db: RedisDb,
    #[source]
    pub source: fred::error::Error,
}

impl RedisError {
    pub(crate) fn in_db(db: RedisDb) -> impl FnOnce(fred::error::Error) -> RedisError {
        move |source| RedisError { db, source }
    }
}
