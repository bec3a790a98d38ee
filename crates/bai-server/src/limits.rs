//! Limits against hostile or broken clients, at the connection level (request bodies are the
//! application's: it knows which routes take large ones).
//!
//! - A connection with no request in flight is closed `keepalive_timeout` after its last response
//!   ended (or after it was accepted): idle keep-alive connections, connections that never send a
//!   byte, HTTP/2 connections without streams.
//! - Once a client has sent the first byte of a request head on an idle connection, the head must
//!   be complete within `header_read_timeout` (slowloris), whatever the protocol.
//! - HTTP/1 request heads are at most [`MAX_HEADER_SIZE`] bytes and [`MAX_HEADERS`] fields (hyper
//!   answers 431 and closes the connection); HTTP/2 header lists at most [`H2_MAX_HEADER_LIST_SIZE`],
//!   at most [`H2_MAX_CONCURRENT_STREAMS`] streams at once, and a peer that does not answer a
//!   keep-alive ping sent after [`H2_KEEPALIVE_INTERVAL`] of silence within
//!   [`H2_KEEPALIVE_TIMEOUT`] is dropped.
//! - Each worker holds at most `max_connections` connections; at the limit it stops accepting
//!   (backpressure: new connections wait in the kernel's backlog) until one closes.

use std::time::Duration;

use bai_config::ManagerSection;
use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// The largest HTTP/1 request head (request line and header fields), in bytes.
pub const MAX_HEADER_SIZE: usize = 64 * 1024;
/// The most header fields of an HTTP/1 request (hyper's default).
pub const MAX_HEADERS: usize = 100;
/// The largest HTTP/2 header list (decoded), in bytes.
pub const H2_MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;
/// The most HTTP/2 streams one connection may have open at once.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 128;
/// How long an HTTP/2 connection may be silent before the server pings it.
pub const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// How long the server waits for the answer to its ping before dropping the connection.
pub const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Descriptors a worker needs besides its clients' connections: its stores, agents, log files.
pub const DESCRIPTORS_PER_WORKER: u64 = 1024;

/// The per-connection and per-worker limits (`[manager]` keys `keepalive-timeout`,
/// `header-read-timeout`, `max-connections-per-worker`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a connection may stay open with no request in flight.
    pub keepalive_timeout: Duration,
    /// How long a client may take to send a request head from its first byte.
    pub header_read_timeout: Duration,
    /// The most connections one worker holds open.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits::from_config(&ManagerSection::default())
    }
}

impl ConnectionLimits {
    /// The limits the (validated) `[manager]` section sets.
    pub fn from_config(manager: &ManagerSection) -> ConnectionLimits {
        ConnectionLimits {
            keepalive_timeout: Duration::from_secs_f64(manager.keepalive_timeout),
            header_read_timeout: Duration::from_secs_f64(manager.header_read_timeout),
            max_connections: usize::try_from(manager.max_connections_per_worker.max(1))
                .unwrap_or(usize::MAX),
        }
    }

    /// The open files `workers` workers may need: every connection they may hold, and what each
    /// needs besides.
    pub fn descriptors_needed(&self, workers: usize) -> u64 {
        let workers = u64::try_from(workers).unwrap_or(u64::MAX);
        let connections = u64::try_from(self.max_connections).unwrap_or(u64::MAX);
        workers.saturating_mul(connections.saturating_add(DESCRIPTORS_PER_WORKER))
    }
}

/// The open-files limit (`RLIMIT_NOFILE`) after [`raise_open_files_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFilesLimit {
    pub before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft open-files limit to the hard limit (the default soft limit, often 1024, would
/// stop a worker far below its connection limit), logs the result, and warns when it is still
/// below `needed`.
pub fn raise_open_files_limit(needed: u64) -> std::io::Result<OpenFilesLimit> {
    let (before, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    if before < hard
        && let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!("cannot raise the open files limit from {before} to {hard}: {error}");
    }
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    if soft > before {
        tracing::info!("raised the open files limit from {before} to {soft} (the hard limit)");
    } else {
        tracing::info!("open files limit: {soft} (hard limit {hard})");
    }
    if soft < needed {
        tracing::warn!(
            "the open files limit {soft} is below the {needed} the workers may need \
             (max-connections-per-worker and {DESCRIPTORS_PER_WORKER} more per worker); \
             raise the hard limit (systemd: LimitNOFILE=) or lower max-connections-per-worker"
        );
    }
    Ok(OpenFilesLimit { before, soft, hard })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_config_defaults() {
        let limits = ConnectionLimits::default();
        assert_eq!(limits.keepalive_timeout, Duration::from_secs(30));
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.max_connections, 16_384);
        assert_eq!(limits.descriptors_needed(2), 2 * (16_384 + 1024));
    }

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let limit = raise_open_files_limit(0).expect("getrlimit");
        assert_eq!(limit.soft, limit.hard);
        assert!(limit.soft >= limit.before);
    }
}
