//! Raw reads and writes of keys, for tests that play the part of agents and other writers. Product
//! code never uses these: it goes through the typed methods.

use fred::prelude::{Client, HashesInterface, KeysInterface, SetsInterface};

use crate::{ImageDb, LiveDb, RateLimitDb, RedisDb, RedisError, StatDb};

/// Raw access to one database.
#[derive(Debug)]
pub struct RawDb<'a> {
    client: &'a Client,
    db: RedisDb,
}

impl RawDb<'_> {
    /// `SET key value`.
    pub async fn set(&self, key: &str, value: impl Into<Vec<u8>>) -> Result<(), RedisError> {
        let value: Vec<u8> = value.into();
        self.client
            .set(key, value.as_slice(), None, None, false)
            .await
            .map_err(RedisError::in_db(self.db))
    }

    /// `GET key` as text.
    pub async fn get(&self, key: &str) -> Result<Option<String>, RedisError> {
        self.client
            .get(key)
            .await
            .map_err(RedisError::in_db(self.db))
    }

    /// `HSET key field value ...`.
    pub async fn hset(&self, key: &str, fields: &[(&str, &str)]) -> Result<(), RedisError> {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(field, value)| ((*field).to_owned(), (*value).to_owned()))
            .collect();
        let _: i64 = self
            .client
            .hset(key, fields)
            .await
            .map_err(RedisError::in_db(self.db))?;
        Ok(())
    }

    /// `HDEL key field ...`.
    pub async fn hdel(&self, key: &str, fields: &[&str]) -> Result<(), RedisError> {
        let fields: Vec<String> = fields.iter().map(|field| (*field).to_owned()).collect();
        let _: i64 = self
            .client
            .hdel(key, fields)
            .await
            .map_err(RedisError::in_db(self.db))?;
        Ok(())
    }

    /// `SADD key member ...`.
    pub async fn sadd(&self, key: &str, members: &[&str]) -> Result<(), RedisError> {
        let members: Vec<String> = members.iter().map(|member| (*member).to_owned()).collect();
        let _: i64 = self
            .client
            .sadd(key, members)
            .await
            .map_err(RedisError::in_db(self.db))?;
        Ok(())
    }

    /// `DEL key ...`.
    pub async fn del(&self, keys: &[&str]) -> Result<(), RedisError> {
        let keys: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
        let _: i64 = self
            .client
            .del(keys)
            .await
            .map_err(RedisError::in_db(self.db))?;
        Ok(())
    }
}

macro_rules! raw_access {
    ($($handle:ty => $db:expr),* $(,)?) => {$(
        impl $handle {
            /// Raw access to this database, for tests.
            pub fn raw(&self) -> RawDb<'_> {
                RawDb { client: self.client(), db: $db }
            }
        }
    )*};
}

raw_access! {
    StatDb => RedisDb::Stat,
    RateLimitDb => RedisDb::RateLimit,
    LiveDb => RedisDb::Live,
    ImageDb => RedisDb::Image,
}
