//! Per-keypair rate limiting and call statistics in Redis, in the reference's layout so that every
//! manager node (ours or the reference's) counts into the same windows (api-auth-client.md §5).

use std::time::{SystemTime, UNIX_EPOCH};

use fred::prelude::Client;
use fred::types::scripts::Script;

/// The rolling window, in seconds.
pub const WINDOW_SECONDS: u64 = 900;
/// What unauthenticated responses claim in the `X-RateLimit-*` headers.
pub const ANONYMOUS_LIMIT: i64 = 1000;
/// How long the per-keypair call statistics live (30 days).
const STAT_TTL_SECONDS: u64 = 2_592_000;

/// KEYS[1] = access key (a sorted set of request ids scored by time), ARGV = [now, window].
/// Returns how many requests the key made within the window, this one included.
const RATE_LIMIT_LUA: &str = r"
local access_key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local request_id = redis.call('INCR', '__request_id')
if request_id >= 1e12 then
    redis.call('SET', '__request_id', 1)
end
if redis.call('EXISTS', access_key) == 1 then
    redis.call('ZREMRANGEBYSCORE', access_key, 0, now - window)
end
redis.call('ZADD', access_key, now, tostring(request_id))
redis.call('EXPIRE', access_key, window)
return redis.call('ZCARD', access_key)
";

/// KEYS[1] = `kp:{AK}:num_queries`, KEYS[2] = `kp:{AK}:last_call_time`, ARGV[1] = TTL. The time is
/// the Redis server's, as seconds with a fraction, like the reference writes it.
const CALL_STATS_LUA: &str = r"
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
local now = redis.call('TIME')
redis.call('SET', KEYS[2], string.format('%d.%06d', tonumber(now[1]), tonumber(now[2])), 'EX', ARGV[1])
return 1
";

/// The verdict on one authenticated request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitVerdict {
    pub limit: i64,
    pub count: i64,
}

impl RateLimitVerdict {
    pub fn exceeded(&self) -> bool {
        self.count > self.limit
    }

    pub fn remaining(&self) -> i64 {
        self.limit - self.count
    }
}

/// The scripts, loaded on first use and reloaded if Redis forgot them (`NOSCRIPT`).
#[derive(Debug)]
pub struct RateLimiter {
    rate_limit: Script,
    call_stats: Script,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self {
            rate_limit: Script::from_lua(RATE_LIMIT_LUA),
            call_stats: Script::from_lua(CALL_STATS_LUA),
        }
    }
}

impl RateLimiter {
    /// Counts one request of `access_key` into its window (in the rate-limit database).
    pub async fn hit(
        &self,
        rate_limit_db: &Client,
        access_key: &str,
        limit: i64,
    ) -> Result<RateLimitVerdict, fred::error::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let count: i64 = self
            .rate_limit
            .evalsha_with_reload(
                rate_limit_db,
                vec![access_key.to_owned()],
                vec![format!("{now:.3}"), WINDOW_SECONDS.to_string()],
            )
            .await?;
        Ok(RateLimitVerdict { limit, count })
    }

    /// Records a successful authentication of `access_key` (in the statistics database).
    pub async fn record_call(
        &self,
        stat_db: &Client,
        access_key: &str,
    ) -> Result<(), fred::error::Error> {
        let _: i64 = self
            .call_stats
            .evalsha_with_reload(
                stat_db,
                vec![
                    format!("kp:{access_key}:num_queries"),
                    format!("kp:{access_key}:last_call_time"),
                ],
                vec![STAT_TTL_SECONDS.to_string()],
            )
            .await?;
        Ok(())
    }
}
