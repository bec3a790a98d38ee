//! Per-keypair rate limiting in database 1, in the reference's layout so that every manager node
//! (ours or the reference's) counts into the same windows (api-auth-client.md §5).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bai_etcd_store::shared_config::RedisConfig;
use fred::prelude::Client;
use fred::types::scripts::Script;

use crate::connect::DbConnection;
use crate::{RedisConnectError, RedisDb, RedisError};

/// The rolling window, in seconds.
pub const WINDOW_SECONDS: u64 = 900;
/// What unauthenticated responses claim in the `X-RateLimit-*` headers.
pub const ANONYMOUS_LIMIT: i64 = 1000;

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

/// Database 1: one sorted set of request times per access key.
#[derive(Clone, Debug)]
pub struct RateLimitDb {
    connection: DbConnection,
    /// Loaded on first use and reloaded if Redis forgot it (`NOSCRIPT`).
    script: Arc<Script>,
}

impl RateLimitDb {
    pub async fn connect(config: &RedisConfig) -> Result<RateLimitDb, RedisConnectError> {
        Ok(RateLimitDb::over(
            DbConnection::connect(config, RedisDb::RateLimit).await?,
        ))
    }

    pub(crate) fn over(connection: DbConnection) -> RateLimitDb {
        RateLimitDb {
            connection,
            script: Arc::new(Script::from_lua(RATE_LIMIT_LUA)),
        }
    }

    pub(crate) fn client(&self) -> Client {
        self.connection.current()
    }

    pub(crate) fn connection(&self) -> &DbConnection {
        &self.connection
    }

    /// Counts one request of `access_key` into its window.
    pub async fn hit(&self, access_key: &str, limit: i64) -> Result<RateLimitVerdict, RedisError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let count: i64 = self
            .script
            .evalsha_with_reload(
                &self.client(),
                vec![access_key.to_owned()],
                vec![format!("{now:.3}"), WINDOW_SECONDS.to_string()],
            )
            .await
            .map_err(RedisError::in_db(RedisDb::RateLimit))?;
        Ok(RateLimitVerdict { limit, count })
    }
}
