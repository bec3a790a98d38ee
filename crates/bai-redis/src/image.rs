//! Database 3, images: one set per image canonical name, holding the ids of the agents that have
//! the image (the agents write it with their heartbeats).

use bai_etcd_store::shared_config::RedisConfig;
use fred::prelude::{Client, ClientLike, SetsInterface};
use fred::types::{ClusterHash, CustomCommand, Value};

use crate::connect::DbConnection;
use crate::{RedisConnectError, RedisDb, RedisError};

const DB: RedisDb = RedisDb::Image;

/// Database 3.
#[derive(Clone, Debug)]
pub struct ImageDb {
    connection: DbConnection,
}

impl ImageDb {
    pub async fn connect(config: &RedisConfig) -> Result<ImageDb, RedisConnectError> {
        Ok(ImageDb::over(DbConnection::connect(config, DB).await?))
    }

    pub(crate) fn over(connection: DbConnection) -> ImageDb {
        ImageDb { connection }
    }

    pub(crate) fn client(&self) -> Client {
        self.connection.current()
    }

    pub(crate) fn connection(&self) -> &DbConnection {
        &self.connection
    }

    /// Closes the connection.
    pub async fn close(&self) {
        self.connection.close().await;
    }

    /// For each image canonical name, the ids of the agents that hold it, sorted; in one round trip.
    pub async fn agents_holding<S: AsRef<str>>(
        &self,
        canonical_names: &[S],
    ) -> Result<Vec<Vec<String>>, RedisError> {
        if canonical_names.is_empty() {
            return Ok(Vec::new());
        }
        let pipeline = self.client().pipeline();
        for name in canonical_names {
            let _: () = pipeline
                .smembers(name.as_ref())
                .await
                .map_err(RedisError::in_db(DB))?;
        }
        let mut found = Vec::with_capacity(canonical_names.len());
        for members in pipeline.try_all::<Vec<String>>().await {
            let mut agents = members.map_err(RedisError::in_db(DB))?;
            agents.sort();
            found.push(agents);
        }
        Ok(found)
    }

    /// Records that `agent_id` holds each image of `canonical_names`, in one round trip.
    pub async fn add_agent_images(
        &self,
        agent_id: &str,
        canonical_names: &[String],
    ) -> Result<(), RedisError> {
        if canonical_names.is_empty() {
            return Ok(());
        }
        let pipeline = self.client().pipeline();
        for name in canonical_names {
            let _: () = pipeline
                .sadd(name.as_str(), agent_id)
                .await
                .map_err(RedisError::in_db(DB))?;
        }
        for added in pipeline.try_all::<i64>().await {
            added.map_err(RedisError::in_db(DB))?;
        }
        Ok(())
    }

    /// Removes `agent_id` from the holders of every image (the agent is gone): every key of the
    /// database is visited, as the reference does, in pages of `SCAN`.
    pub async fn remove_agent_everywhere(&self, agent_id: &str) -> Result<(), RedisError> {
        let mut cursor = "0".to_owned();
        loop {
            let answer: Value = self
                .client()
                .custom(
                    CustomCommand::new_static("SCAN", ClusterHash::Random, false),
                    vec![cursor.clone(), "COUNT".to_owned(), "1000".to_owned()],
                )
                .await
                .map_err(RedisError::in_db(DB))?;
            let Value::Array(mut parts) = answer else {
                return Err(scan_answer_error());
            };
            let (Some(keys), Some(next)) = (parts.pop(), parts.pop()) else {
                return Err(scan_answer_error());
            };
            let keys: Vec<String> = keys
                .into_array()
                .into_iter()
                .filter_map(|key| key.as_string())
                .collect();
            if !keys.is_empty() {
                let pipeline = self.client().pipeline();
                for key in &keys {
                    let _: () = pipeline
                        .srem(key.as_str(), agent_id)
                        .await
                        .map_err(RedisError::in_db(DB))?;
                }
                for removed in pipeline.try_all::<i64>().await {
                    removed.map_err(RedisError::in_db(DB))?;
                }
            }
            cursor = next.as_string().ok_or_else(scan_answer_error)?;
            if cursor == "0" {
                return Ok(());
            }
        }
    }
}

fn scan_answer_error() -> RedisError {
    RedisError {
        db: DB,
        source: fred::error::Error::new(fred::error::ErrorKind::Parse, "unexpected SCAN answer"),
    }
}
