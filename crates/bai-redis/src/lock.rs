//! Database 5, distributed locks (the reference's `redlock` backend, redis-py's `Lock`): a lock
//! is the key `str(lock_id)` holding the holder's random token, set only when absent and with an
//! expiry, so that a holder that dies loses it after the expiry at the latest. Only the holder's
//! token may extend or delete it.

use std::sync::Arc;
use std::time::Duration;

use bai_etcd_store::shared_config::RedisConfig;
use fred::prelude::KeysInterface;
use fred::types::scripts::Script;
use fred::types::{Expiration, SetOptions};

use crate::connect::DbConnection;
use crate::{RedisConnectError, RedisDb, RedisError};

const DB: RedisDb = RedisDb::Lock;

/// KEYS[1] = the lock, ARGV = [token]. Deletes the lock only if the token still holds it.
const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
";

/// KEYS[1] = the lock, ARGV = [token, expiry in ms]. Sets a new expiry only if the token still
/// holds the lock.
const RENEW_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// The lock database, on a connection of its own.
#[derive(Clone, Debug)]
pub struct LockDb {
    connection: DbConnection,
    release: Arc<Script>,
    renew: Arc<Script>,
}

impl LockDb {
    pub async fn connect(config: &RedisConfig) -> Result<LockDb, RedisConnectError> {
        Ok(LockDb::over(DbConnection::connect(config, DB).await?))
    }

    pub(crate) fn over(connection: DbConnection) -> LockDb {
        LockDb {
            connection,
            release: Arc::new(Script::from_lua(RELEASE_LUA)),
            renew: Arc::new(Script::from_lua(RENEW_LUA)),
        }
    }

    /// Takes lock `name` for `token` if no one holds it (`SET name token NX PX ttl`): whether
    /// it was taken.
    pub async fn try_take(
        &self,
        name: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, RedisError> {
        let answer: Option<String> = self
            .connection
            .current()
            .set(
                name,
                token,
                Some(Expiration::PX(millis(ttl))),
                Some(SetOptions::NX),
                false,
            )
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(answer.is_some())
    }

    /// Gives lock `name` a new expiry of `ttl` if `token` still holds it: whether it did.
    pub async fn renew(&self, name: &str, token: &str, ttl: Duration) -> Result<bool, RedisError> {
        let renewed: i64 = self
            .renew
            .evalsha_with_reload(
                &self.connection.current(),
                vec![name.to_owned()],
                vec![token.to_owned(), millis(ttl).to_string()],
            )
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(renewed == 1)
    }

    /// Deletes lock `name` if `token` still holds it: whether it did (`false`: the lock had
    /// expired, and perhaps someone else holds it now).
    pub async fn release(&self, name: &str, token: &str) -> Result<bool, RedisError> {
        let deleted: i64 = self
            .release
            .evalsha_with_reload(
                &self.connection.current(),
                vec![name.to_owned()],
                vec![token.to_owned()],
            )
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(deleted == 1)
    }

    /// The lock's remaining time to live: `None` when no one holds it.
    pub async fn remaining(&self, name: &str) -> Result<Option<Duration>, RedisError> {
        let ttl: i64 = self
            .connection
            .current()
            .pttl(name)
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(u64::try_from(ttl).ok().map(Duration::from_millis))
    }

    /// Closes the connection.
    pub async fn close(&self) {
        self.connection.close().await;
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}
