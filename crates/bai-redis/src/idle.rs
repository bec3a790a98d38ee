//! Database 2, what the idle checkers of the reference (`manager/idle.py`) keep per session:
//! `session.{id}.last_access` (when the session was last used: Unix seconds with six decimals, or
//! `"0"` while code runs in it), `session.{id}.active_app_connections` (a sorted set the app
//! streaming proxy keeps), the checkers' reports `session.{id}.{checker}.report` and extra
//! information `session.{id}.{extra key}` (both in Backend.AI's msgpack, which the caller encodes
//! and decodes: this crate does not know that flavour), and the utilization checker's window
//! (`session.{id}.util_series`, `util_first_collected`, `util_last_collected`).
//!
//! Times are the Redis server's (`TIME`), as the reference reads them, so that every manager of a
//! cluster agrees on them.

use std::sync::Arc;
use std::time::Duration;

use fred::prelude::KeysInterface;
use fred::types::scripts::Script;
use fred::types::{Expiration, SetOptions};
use uuid::Uuid;

use crate::{LiveDb, RedisDb, RedisError};

const DB: RedisDb = RedisDb::Live;

/// KEYS[1] = `session.{id}.last_access`, ARGV[1] = TTL in seconds. The server's time, written as
/// the reference writes it (`f"{t:.06f}"`).
const TOUCH_LUA: &str = r"
local now = redis.call('TIME')
local at = string.format('%d.%06d', tonumber(now[1]), tonumber(now[2]))
redis.call('SET', KEYS[1], at, 'EX', ARGV[1])
return at
";

/// KEYS[1] = `session.{id}.last_access`, KEYS[2] = `session.{id}.active_app_connections`.
/// Returns {seconds, microseconds, connections, last access or false}.
const NETWORK_STATE_LUA: &str = r"
local now = redis.call('TIME')
local connections = redis.call('ZCOUNT', KEYS[2], '-inf', '+inf')
local last = redis.call('GET', KEYS[1])
return {now[1], now[2], connections, last}
";

/// The server's time: {seconds, microseconds}.
const TIME_LUA: &str = r"
return redis.call('TIME')
";

/// When a session was last used, as `session.{id}.last_access` says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LastAccess {
    /// Code runs in it right now (`"0"`): it is in use.
    Executing,
    /// Unix time in seconds.
    At(f64),
}

/// What the network-timeout checker reads of a session, at one instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetworkActivity {
    /// The Redis server's time, Unix seconds.
    pub now: f64,
    /// Open app connections (`ZCOUNT session.{id}.active_app_connections`).
    pub app_connections: u64,
    /// `None` when the key is missing (never started, or expired).
    pub last_access: Option<LastAccess>,
}

/// The utilization checker's collection times of a session, Unix seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UtilizationCollection {
    pub first: Option<f64>,
    pub last: Option<f64>,
}

/// The stored reports of one checker about one session, as msgpack bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredIdleReport {
    /// `session.{id}.{checker}.report`: the remaining time.
    pub remaining: Option<Vec<u8>>,
    /// `session.{id}.{extra key}`, for checkers that have one.
    pub extra: Option<Vec<u8>>,
}

/// The idle checkers' keys in database 2, through [`LiveDb::idle`].
#[derive(Clone, Debug)]
pub struct IdleKeys {
    live: LiveDb,
    touch: Arc<Script>,
    network_state: Arc<Script>,
    time: Arc<Script>,
}

fn last_access_key(session_id: Uuid) -> String {
    format!("session.{session_id}.last_access")
}

fn app_connections_key(session_id: Uuid) -> String {
    format!("session.{session_id}.active_app_connections")
}

fn report_key(session_id: Uuid, checker: &str) -> String {
    format!("session.{session_id}.{checker}.report")
}

fn extra_key(session_id: Uuid, extra: &str) -> String {
    format!("session.{session_id}.{extra}")
}

fn util_series_key(session_id: Uuid) -> String {
    format!("session.{session_id}.util_series")
}

fn util_first_key(session_id: Uuid) -> String {
    format!("session.{session_id}.util_first_collected")
}

fn util_last_key(session_id: Uuid) -> String {
    format!("session.{session_id}.util_last_collected")
}

/// Whole seconds, at least one (`SET ... EX 0` is an error).
fn expiry(ttl: Duration) -> Expiration {
    Expiration::EX(i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX))
}

/// `{seconds, microseconds}` as Unix seconds.
fn seconds(seconds: i64, micros: i64) -> f64 {
    // Unix seconds fit an f64 exactly for the next few million years.
    #[allow(clippy::cast_precision_loss)]
    let seconds = seconds as f64 + micros as f64 / 1e6;
    seconds
}

/// A time the reference wrote (`f"{t:.06f}"`); `None` (logged) for anything else.
fn parse_time(key: &str, text: &str) -> Option<f64> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() => Some(value),
        _ => {
            tracing::warn!(key, "not a time in Redis, ignored: {text:?}");
            None
        }
    }
}

impl LiveDb {
    /// The idle checkers' keys.
    pub fn idle(&self) -> IdleKeys {
        IdleKeys {
            live: self.clone(),
            touch: Arc::new(Script::from_lua(TOUCH_LUA)),
            network_state: Arc::new(Script::from_lua(NETWORK_STATE_LUA)),
            time: Arc::new(Script::from_lua(TIME_LUA)),
        }
    }
}

impl IdleKeys {
    /// The Redis server's time, Unix seconds.
    pub async fn server_time(&self) -> Result<f64, RedisError> {
        let (secs, micros): (i64, i64) = self
            .time
            .evalsha_with_reload(
                &self.live.client(),
                Vec::<String>::new(),
                Vec::<String>::new(),
            )
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(seconds(secs, micros))
    }

    /// Records that session `session_id` is used now (the server's time), for `ttl`.
    pub async fn touch_last_access(
        &self,
        session_id: Uuid,
        ttl: Duration,
    ) -> Result<(), RedisError> {
        let ttl = ttl.as_secs().max(1);
        let _: String = self
            .touch
            .evalsha_with_reload(
                &self.live.client(),
                vec![last_access_key(session_id)],
                vec![ttl.to_string()],
            )
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(())
    }

    /// Records that code runs in session `session_id` (`"0"`), if its last access is recorded.
    pub async fn mark_executing(&self, session_id: Uuid) -> Result<(), RedisError> {
        let _: Option<String> = self
            .live
            .client()
            .set(
                last_access_key(session_id),
                "0",
                None,
                Some(SetOptions::XX),
                false,
            )
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(())
    }

    /// The time, the session's open app connections and its last access, in one round trip.
    pub async fn network_activity(&self, session_id: Uuid) -> Result<NetworkActivity, RedisError> {
        let key = last_access_key(session_id);
        let (secs, micros, app_connections, last): (i64, i64, u64, Option<String>) = self
            .network_state
            .evalsha_with_reload(
                &self.live.client(),
                vec![key.clone(), app_connections_key(session_id)],
                Vec::<String>::new(),
            )
            .await
            .map_err(RedisError::in_db(DB))?;
        let last_access = last.and_then(|text| {
            if text == "0" {
                Some(LastAccess::Executing)
            } else {
                parse_time(&key, &text).map(LastAccess::At)
            }
        });
        Ok(NetworkActivity {
            now: seconds(secs, micros),
            app_connections,
            last_access,
        })
    }

    /// Stores the remaining time `packed` (msgpack) that `checker` reported about the session.
    pub async fn set_report(
        &self,
        session_id: Uuid,
        checker: &str,
        packed: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), RedisError> {
        self.set_bytes(report_key(session_id, checker), packed, ttl)
            .await
    }

    /// Stores a checker's extra information `packed` (msgpack) under the session's `extra` key.
    pub async fn set_extra(
        &self,
        session_id: Uuid,
        extra: &str,
        packed: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), RedisError> {
        self.set_bytes(extra_key(session_id, extra), packed, ttl)
            .await
    }

    /// The stored reports of `checkers` (name, extra key if it has one) about the session, in
    /// their order, in one round trip.
    pub async fn reports(
        &self,
        session_id: Uuid,
        checkers: &[(&str, Option<&str>)],
    ) -> Result<Vec<StoredIdleReport>, RedisError> {
        let mut keys = Vec::new();
        for (checker, extra) in checkers {
            keys.push(report_key(session_id, checker));
            if let Some(extra) = extra {
                keys.push(extra_key(session_id, extra));
            }
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut values: std::vec::IntoIter<Option<Vec<u8>>> = self
            .live
            .client()
            .mget::<Vec<Option<Vec<u8>>>, _>(keys)
            .await
            .map_err(RedisError::in_db(DB))?
            .into_iter();
        Ok(checkers
            .iter()
            .map(|(_, extra)| StoredIdleReport {
                remaining: values.next().flatten(),
                extra: extra.and_then(|_| values.next().flatten()),
            })
            .collect())
    }

    /// When the utilization checker first and last collected the session's utilization.
    pub async fn utilization_collection(
        &self,
        session_id: Uuid,
    ) -> Result<UtilizationCollection, RedisError> {
        let keys = vec![util_first_key(session_id), util_last_key(session_id)];
        let values: Vec<Option<String>> = self
            .live
            .client()
            .mget(keys.clone())
            .await
            .map_err(RedisError::in_db(DB))?;
        let time = |index: usize| {
            values
                .get(index)
                .cloned()
                .flatten()
                .and_then(|text| parse_time(&keys[index], &text))
        };
        Ok(UtilizationCollection {
            first: time(0),
            last: time(1),
        })
    }

    /// Records when the utilization checker first collected the session's utilization.
    pub async fn set_utilization_first_collected(
        &self,
        session_id: Uuid,
        at: f64,
        ttl: Duration,
    ) -> Result<(), RedisError> {
        self.set_bytes(
            util_first_key(session_id),
            format!("{at:.6}").into_bytes(),
            ttl,
        )
        .await
    }

    /// The session's utilization series (msgpack), if stored.
    pub async fn utilization_series(
        &self,
        session_id: Uuid,
    ) -> Result<Option<Vec<u8>>, RedisError> {
        self.live
            .client()
            .get(util_series_key(session_id))
            .await
            .map_err(RedisError::in_db(DB))
    }

    /// Stores the session's utilization series `packed` (msgpack), collected at `at`.
    pub async fn set_utilization_series(
        &self,
        session_id: Uuid,
        packed: Vec<u8>,
        at: f64,
        ttl: Duration,
    ) -> Result<(), RedisError> {
        self.set_bytes(util_series_key(session_id), packed, ttl)
            .await?;
        self.set_bytes(
            util_last_key(session_id),
            format!("{at:.6}").into_bytes(),
            ttl,
        )
        .await
    }

    async fn set_bytes(
        &self,
        key: String,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), RedisError> {
        let () = self
            .live
            .client()
            .set(key, value.as_slice(), Some(expiry(ttl)), None, false)
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_seconds_with_a_fraction() {
        assert!((seconds(1_700_000_000, 250_000) - 1_700_000_000.25).abs() < 1e-6);
        assert_eq!(parse_time("k", "1700000000.250000"), Some(1_700_000_000.25));
        assert_eq!(parse_time("k", "soon"), None);
        assert_eq!(expiry(Duration::ZERO), Expiration::EX(1));
    }
}
