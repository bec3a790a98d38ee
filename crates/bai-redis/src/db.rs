//! The logical databases of the reference (`common/defs.py`: `REDIS_STAT_DB` ... `REDIS_STREAM_LOCK`).

use std::fmt;

/// A logical database, numbered as the reference numbers it: every process of a cluster (managers,
/// agents, storage proxies) agrees on these numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RedisDb {
    /// Statistics: keypair call counts and concurrency, agents' and kernels' live statistics,
    /// `container_count.{agent}`, `computer.metadata`, abuse reports.
    Stat = 0,
    /// Rate-limit windows, one sorted set per access key.
    RateLimit = 1,
    /// Agent liveness (`agent.last_seen`), scheduler marks, inference metrics of sessions.
    Live = 2,
    /// Which agents hold which image: one set per image canonical name.
    Image = 3,
    /// The `events` stream and container log lists.
    Stream = 4,
    /// Distributed-lock keys.
    Lock = 5,
}

impl RedisDb {
    /// The reference's name for the database's handle (`redis_stat`, ... without the prefix).
    pub fn name(self) -> &'static str {
        match self {
            Self::Stat => "stat",
            Self::RateLimit => "ratelimit",
            Self::Live => "live",
            Self::Image => "image",
            Self::Stream => "stream",
            Self::Lock => "lock",
        }
    }

    /// The database number.
    pub fn index(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for RedisDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.index(), self.name())
    }
}
