//! `PING` on a database's connection: one round trip that health checks (`manager-cli doctor`,
//! `manager-cli redis ping`) measure.

use fred::prelude::{Client, ClientLike};

use crate::{ImageDb, LiveDb, RedisDb, RedisError, StatDb, StreamDb};

async fn ping(client: &Client, db: RedisDb) -> Result<(), RedisError> {
    client.ping::<()>(None).await.map_err(RedisError::in_db(db))
}

impl StatDb {
    /// One `PING` on the connection to database 0.
    pub async fn ping(&self) -> Result<(), RedisError> {
        ping(&self.client(), RedisDb::Stat).await
    }
}

impl LiveDb {
    /// One `PING` on the connection to database 2.
    pub async fn ping(&self) -> Result<(), RedisError> {
        ping(&self.client(), RedisDb::Live).await
    }
}

impl ImageDb {
    /// One `PING` on the connection to database 3.
    pub async fn ping(&self) -> Result<(), RedisError> {
        ping(&self.client(), RedisDb::Image).await
    }
}

impl StreamDb {
    /// One `PING` on the connection to database 4.
    pub async fn ping(&self) -> Result<(), RedisError> {
        ping(&self.client(), RedisDb::Stream).await
    }
}
