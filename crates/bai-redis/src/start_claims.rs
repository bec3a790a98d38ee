//! Database 2, which manager node is starting which session: `session.{id}.starter` holds the
//! node id while that node's `create_kernels` calls for the session are in flight, with an expiry
//! the node keeps renewing. A node that dies loses its claims within the expiry, which is how the
//! others tell a session whose starter died from one still being started. Not in the reference
//! (whose sessions stay PREPARING when the starting node dies). `session.{id}.start_received`
//! notes that an agent reported `kernel_preparing` for the session: it got the call.

use std::sync::Arc;
use std::time::Duration;

use fred::prelude::KeysInterface;
use fred::types::scripts::Script;
use fred::types::{Expiration, SetOptions};
use uuid::Uuid;

use crate::{LiveDb, RedisDb, RedisError};

const DB: RedisDb = RedisDb::Live;

/// KEYS = the claims, ARGV = [node id, expiry in ms]. Sets every claim to the node.
const CLAIM_ALL_LUA: &str = r"
for _, key in ipairs(KEYS) do
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
end
return #KEYS
";

/// KEYS = the claims, ARGV = [node id, expiry in ms]. Renews the node's own claims only.
const RENEW_LUA: &str = r"
local renewed = 0
for _, key in ipairs(KEYS) do
    if redis.call('GET', key) == ARGV[1] then
        renewed = renewed + redis.call('PEXPIRE', key, ARGV[2])
    end
end
return renewed
";

/// KEYS = the claims, ARGV = [node id]. Deletes the node's own claims only.
const RELEASE_LUA: &str = r"
local released = 0
for _, key in ipairs(KEYS) do
    if redis.call('GET', key) == ARGV[1] then
        released = released + redis.call('DEL', key)
    end
end
return released
";

/// The starters' claims of one manager node.
#[derive(Clone, Debug)]
pub struct StartClaims {
    live: LiveDb,
    node_id: String,
    claim_all: Arc<Script>,
    renew: Arc<Script>,
    release: Arc<Script>,
}

impl StartClaims {
    /// The claims of node `node_id` (`[manager] id`).
    pub fn new(live: LiveDb, node_id: impl Into<String>) -> StartClaims {
        StartClaims {
            live,
            node_id: node_id.into(),
            claim_all: Arc::new(Script::from_lua(CLAIM_ALL_LUA)),
            renew: Arc::new(Script::from_lua(RENEW_LUA)),
            release: Arc::new(Script::from_lua(RELEASE_LUA)),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Claims `sessions` (taken for starting by this node under their row locks) for `ttl`.
    pub async fn claim_all(&self, sessions: &[Uuid], ttl: Duration) -> Result<(), RedisError> {
        self.run(
            &self.claim_all,
            sessions,
            vec![self.node_id.clone(), millis(ttl)],
        )
        .await
    }

    /// Claims `session` for `ttl` unless someone holds it (`SET NX PX`): whether this node got it.
    pub async fn try_claim(&self, session: Uuid, ttl: Duration) -> Result<bool, RedisError> {
        let answer: Option<String> = self
            .live
            .client()
            .set(
                claim_key(session),
                self.node_id.as_str(),
                Some(Expiration::PX(
                    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
                )),
                Some(SetOptions::NX),
                false,
            )
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(answer.is_some())
    }

    /// Gives this node's claims of `sessions` a new expiry of `ttl`.
    pub async fn renew(&self, sessions: &[Uuid], ttl: Duration) -> Result<(), RedisError> {
        self.run(
            &self.renew,
            sessions,
            vec![self.node_id.clone(), millis(ttl)],
        )
        .await
    }

    /// Drops this node's claims of `sessions` (their `create_kernels` calls are over).
    pub async fn release(&self, sessions: &[Uuid]) -> Result<(), RedisError> {
        self.run(&self.release, sessions, vec![self.node_id.clone()])
            .await
    }

    /// Notes that an agent received the start of `session` (it reported `kernel_preparing`), for
    /// a day: such a session is never sent again.
    pub async fn mark_received(&self, session: Uuid) -> Result<(), RedisError> {
        self.live
            .client()
            .set::<(), _, _>(
                received_key(session),
                "1",
                Some(Expiration::EX(RECEIVED_FOR_SECS)),
                None,
                false,
            )
            .await
            .map_err(RedisError::in_db(DB))
    }

    /// Which of `sessions` an agent was noted to have received.
    pub async fn received(&self, sessions: &[Uuid]) -> Result<Vec<Uuid>, RedisError> {
        self.with_key(sessions, received_key, true).await
    }

    /// Which of `sessions` no node claims.
    pub async fn unclaimed(&self, sessions: &[Uuid]) -> Result<Vec<Uuid>, RedisError> {
        self.with_key(sessions, claim_key, false).await
    }

    /// The sessions among `sessions` whose key (`key_of`) exists when `exists`, or is absent when
    /// not, in the order of `sessions`.
    async fn with_key(
        &self,
        sessions: &[Uuid],
        key_of: fn(Uuid) -> String,
        exists: bool,
    ) -> Result<Vec<Uuid>, RedisError> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = sessions.iter().copied().map(key_of).collect();
        let values: Vec<Option<String>> = self
            .live
            .client()
            .mget(keys)
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(sessions
            .iter()
            .zip(values)
            .filter(|(_, value)| value.is_some() == exists)
            .map(|(session, _)| *session)
            .collect())
    }

    async fn run(
        &self,
        script: &Script,
        sessions: &[Uuid],
        args: Vec<String>,
    ) -> Result<(), RedisError> {
        if sessions.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = sessions.iter().copied().map(claim_key).collect();
        let _: i64 = script
            .evalsha_with_reload(&self.live.client(), keys, args)
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(())
    }
}

/// How long the note that an agent received a session's start is kept.
const RECEIVED_FOR_SECS: i64 = 24 * 60 * 60;

fn received_key(session: Uuid) -> String {
    format!("session.{session}.start_received")
}

fn claim_key(session: Uuid) -> String {
    format!("session.{session}.starter")
}

fn millis(ttl: Duration) -> String {
    ttl.as_millis().max(1).to_string()
}
