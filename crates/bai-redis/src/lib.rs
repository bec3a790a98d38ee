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
mod call_stats;
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

pub use bgtask::{BGTASK_TRACKER_TTL_SECONDS, BgtaskEnding, BgtaskTracker};
pub use call_stats::CallStats;
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
    /// True when Redis could not be reached or did not answer in time (connection refused, reset
    /// or closed, a command timed out or was dropped while reconnecting, the server still loading
    /// its data), as opposed to a command Redis refused.
    pub fn is_unavailable(&self) -> bool {
        fred_error_unavailable(&self.source)
    }

    pub(crate) fn in_db(db: RedisDb) -> impl FnOnce(fred::error::Error) -> RedisError {
        move |source| RedisError { db, source }
    }
}

/// The same question as [`RedisError::is_unavailable`] about fred's own error.
pub(crate) fn fred_error_unavailable(error: &fred::error::Error) -> bool {
    use fred::error::ErrorKind;
    match error.kind() {
        ErrorKind::IO | ErrorKind::Timeout | ErrorKind::Canceled | ErrorKind::Backpressure => true,
        // A server that restarted answers `LOADING` until its data is read back; a replica
        // without its master answers `MASTERDOWN`.
        _ => ["LOADING", "MASTERDOWN"]
            .iter()
            .any(|prefix| error.details().starts_with(prefix)),
    }
}

/// True when some error in `error`'s source chain (itself included) is a Redis error of the kind
/// [`RedisError::is_unavailable`] means.
pub fn unavailable_in_chain(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |error| error.source()).any(|error| {
        if let Some(error) = error.downcast_ref::<RedisError>() {
            error.is_unavailable()
        } else if let Some(error) = error.downcast_ref::<RedisConnectError>() {
            error.is_unavailable()
        } else if let Some(error) = error.downcast_ref::<fred::error::Error>() {
            fred_error_unavailable(error)
        } else {
            false
        }
    })
}

#[cfg(test)]
mod unavailable_tests {
    use fred::error::{Error, ErrorKind};

    use super::*;

    #[test]
    fn outages_are_told_from_refused_commands() {
        let timeout = RedisError {
            db: RedisDb::Stat,
            source: Error::new(ErrorKind::Timeout, "Request timed out."),
        };
        assert!(timeout.is_unavailable());
        assert!(unavailable_in_chain(&timeout));
        let loading = Error::new(ErrorKind::Unknown, "LOADING Redis is loading the dataset");
        assert!(fred_error_unavailable(&loading));
        let wrong_type = RedisError {
            db: RedisDb::Stat,
            source: Error::new(ErrorKind::InvalidArgument, "WRONGTYPE"),
        };
        assert!(!wrong_type.is_unavailable());
        assert!(!unavailable_in_chain(&wrong_type));
    }
}
