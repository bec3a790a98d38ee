//! Database 2, liveness: when each agent was last heard from (`agent.last_seen`), and what app
//! proxies say about what runs right now.

use std::sync::Arc;

use bai_etcd_store::shared_config::RedisConfig;
use fred::prelude::{Client, HashesInterface, KeysInterface};
use fred::types::scripts::Script;
use uuid::Uuid;

use crate::connect::DbConnection;
use crate::{RedisConnectError, RedisDb, RedisError};

const DB: RedisDb = RedisDb::Live;
/// The hash agent id -> when a manager last received its heartbeat (Unix seconds, fraction).
const AGENT_LAST_SEEN_KEY: &str = "agent.last_seen";

/// KEYS[1] = the hash, ARGV = [agent id, the time read before]. Removes the agent's entry only if
/// no heartbeat replaced that time since: of several checkers that saw it go stale, one wins.
const TAKE_STALE_LUA: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
    return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
";

/// One entry of `agent.last_seen`.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentLastSeen {
    pub agent_id: String,
    /// Unix time in seconds; the entries the reference's agents never parse as a number are NaN.
    pub at: f64,
    /// The value as stored, for [`LiveDb::take_stale_agent`].
    pub raw: String,
}

/// What the app proxy counted for an inference session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InferenceMetrics {
    pub requests: i64,
    pub last_response_ms: i64,
}

/// Database 2.
#[derive(Clone, Debug)]
pub struct LiveDb {
    connection: DbConnection,
    take_stale: Arc<Script>,
}

impl LiveDb {
    pub async fn connect(config: &RedisConfig) -> Result<LiveDb, RedisConnectError> {
        Ok(LiveDb::over(DbConnection::connect(config, DB).await?))
    }

    pub(crate) fn over(connection: DbConnection) -> LiveDb {
        LiveDb {
            connection,
            take_stale: Arc::new(Script::from_lua(TAKE_STALE_LUA)),
        }
    }

    /// Records that a heartbeat of `agent_id` arrived at `at` (Unix seconds).
    pub async fn record_agent_seen(&self, agent_id: &str, at: f64) -> Result<(), RedisError> {
        self.client()
            .hset::<(), _, _>(AGENT_LAST_SEEN_KEY, (agent_id, format!("{at:.6}")))
            .await
            .map_err(RedisError::in_db(DB))
    }

    /// Every agent's last heartbeat.
    pub async fn agents_last_seen(&self) -> Result<Vec<AgentLastSeen>, RedisError> {
        let entries: std::collections::HashMap<String, String> = self
            .client()
            .hgetall(AGENT_LAST_SEEN_KEY)
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(entries
            .into_iter()
            .map(|(agent_id, raw)| AgentLastSeen {
                agent_id,
                at: raw.parse().unwrap_or(f64::NAN),
                raw,
            })
            .collect())
    }

    /// Removes `seen` from `agent.last_seen` unless a newer heartbeat replaced it; true if this
    /// call removed it (the caller then owns reporting the agent lost).
    pub async fn take_stale_agent(&self, seen: &AgentLastSeen) -> Result<bool, RedisError> {
        let removed: i64 = self
            .take_stale
            .evalsha_with_reload(
                &self.client(),
                vec![AGENT_LAST_SEEN_KEY.to_owned()],
                vec![seen.agent_id.clone(), seen.raw.clone()],
            )
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(removed == 1)
    }

    /// Forgets when `agent_id` was last seen (it stopped or was found lost).
    pub async fn forget_agent_seen(&self, agent_id: &str) -> Result<(), RedisError> {
        self.client()
            .hdel::<(), _, _>(AGENT_LAST_SEEN_KEY, agent_id)
            .await
            .map_err(RedisError::in_db(DB))
    }

    pub(crate) fn client(&self) -> Client {
        self.connection.current()
    }

    pub(crate) fn connection(&self) -> &DbConnection {
        &self.connection
    }

    /// Requests served and the last response time of an inference session
    /// (`session.{id}.requests`, `session.{id}.last_response_time`); zeros unless both are recorded.
    pub async fn inference_metrics(
        &self,
        session_id: Uuid,
    ) -> Result<InferenceMetrics, RedisError> {
        let keys = vec![
            format!("session.{session_id}.requests"),
            format!("session.{session_id}.last_response_time"),
        ];
        let values: Vec<Option<String>> = self
            .client()
            .mget(keys)
            .await
            .map_err(RedisError::in_db(DB))?;
        let number = |index: usize| {
            values
                .get(index)
                .cloned()
                .flatten()
                .and_then(|value| value.parse::<i64>().ok())
        };
        Ok(match (number(0), number(1)) {
            (Some(requests), Some(last_response_ms)) => InferenceMetrics {
                requests,
                last_response_ms,
            },
            _ => InferenceMetrics::default(),
        })
    }
}
