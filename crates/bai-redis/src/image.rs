//! Database 3, images: one set per image canonical name, holding the ids of the agents that have
//! the image (the agents write it with their heartbeats).

use bai_etcd_store::shared_config::RedisConfig;
use fred::prelude::{Client, SetsInterface};

use crate::connect::connect_db;
use crate::{RedisConnectError, RedisDb, RedisError};

const DB: RedisDb = RedisDb::Image;

/// Database 3.
#[derive(Clone, Debug)]
pub struct ImageDb {
    client: Client,
}

impl ImageDb {
    pub async fn connect(config: &RedisConfig) -> Result<ImageDb, RedisConnectError> {
        Ok(ImageDb {
            client: connect_db(config, DB).await?,
        })
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Closes the connection.
    pub async fn close(&self) {
        crate::connect::quit(&self.client).await;
    }

    /// For each image canonical name, the ids of the agents that hold it, sorted; in one round trip.
    pub async fn agents_holding<S: AsRef<str>>(
        &self,
        canonical_names: &[S],
    ) -> Result<Vec<Vec<String>>, RedisError> {
        if canonical_names.is_empty() {
            return Ok(Vec::new());
        }
        let pipeline = self.client.pipeline();
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
}
