//! Database 2, liveness: what agents and app proxies say about what runs right now.

use bai_etcd_store::shared_config::RedisConfig;
use fred::prelude::{Client, KeysInterface};
use uuid::Uuid;

use crate::connect::connect_db;
use crate::{RedisConnectError, RedisDb, RedisError};

const DB: RedisDb = RedisDb::Live;

/// What the app proxy counted for an inference session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InferenceMetrics {
    pub requests: i64,
    pub last_response_ms: i64,
}

/// Database 2.
#[derive(Clone, Debug)]
pub struct LiveDb {
    client: Client,
}

impl LiveDb {
    pub async fn connect(config: &RedisConfig) -> Result<LiveDb, RedisConnectError> {
        Ok(LiveDb {
            client: connect_db(config, DB).await?,
        })
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
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
            .client
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
