//! Database 0, statistics: what keypairs did (call counts, running sessions), what agents report
//! about themselves and their kernels (live statistics, container counts, accelerator metadata),
//! and abuse reports.

use std::collections::{BTreeSet, HashMap};

use bai_etcd_store::shared_config::RedisConfig;
use fred::prelude::{Client, HashesInterface, KeysInterface};
use fred::types::Key;
use futures_util::TryStreamExt;

use crate::connect::DbConnection;
use crate::{RedisConnectError, RedisDb, RedisError};

const DB: RedisDb = RedisDb::Stat;

/// How long the per-keypair call statistics live (30 days).
pub(crate) const CALL_STATS_TTL_SECONDS: u64 = 2_592_000;
/// The hash of accelerator metadata agents report, slot name -> JSON.
const REPORTED_SLOT_METADATA_KEY: &str = "computer.metadata";
/// The hash of abuse reports, kernel id -> report.
const ABUSE_REPORTS_KEY: &str = "abuse_report";

pub(crate) fn num_queries_key(access_key: &str) -> String {
    format!("kp:{access_key}:num_queries")
}

pub(crate) fn last_call_time_key(access_key: &str) -> String {
    format!("kp:{access_key}:last_call_time")
}

const CONCURRENCY_USED_PREFIX: &str = "keypair.concurrency_used.";
const SFTP_CONCURRENCY_USED_PREFIX: &str = "keypair.sftp_concurrency_used.";

fn concurrency_used_key(access_key: &str) -> String {
    format!("{CONCURRENCY_USED_PREFIX}{access_key}")
}

fn sftp_concurrency_used_key(access_key: &str) -> String {
    format!("{SFTP_CONCURRENCY_USED_PREFIX}{access_key}")
}

fn container_count_key(agent_id: &str) -> String {
    format!("container_count.{agent_id}")
}

/// How many keys one `MGET` of live statistics asks for.
const LIVE_STATS_PER_ROUND_TRIP: usize = 1_000;

/// Live statistics as agents write them (msgpack); `None`, logged, when they cannot be decoded.
fn decode_live_stat(key: &str, bytes: &[u8]) -> Option<serde_json::Value> {
    match rmp_serde::from_slice(bytes) {
        Ok(stats) => Some(stats),
        Err(error) => {
            tracing::warn!(key, %error, "unreadable live statistics in Redis");
            None
        }
    }
}

/// Database 0.
#[derive(Clone, Debug)]
pub struct StatDb {
    connection: DbConnection,
}

impl StatDb {
    pub async fn connect(config: &RedisConfig) -> Result<StatDb, RedisConnectError> {
        Ok(StatDb::over(DbConnection::connect(config, DB).await?))
    }

    pub(crate) fn over(connection: DbConnection) -> StatDb {
        StatDb { connection }
    }

    pub(crate) fn client(&self) -> Client {
        self.connection.current()
    }

    pub(crate) fn connection(&self) -> &DbConnection {
        &self.connection
    }

    /// Successful requests signed with `access_key` in the last 30 days; 0 when unrecorded.
    pub async fn keypair_num_queries(&self, access_key: &str) -> Result<i64, RedisError> {
        Ok(self.number(num_queries_key(access_key)).await?.unwrap_or(0))
    }

    /// When `access_key` last signed a successful request, in seconds since the epoch.
    pub async fn keypair_last_call_time(
        &self,
        access_key: &str,
    ) -> Result<Option<f64>, RedisError> {
        self.number(last_call_time_key(access_key)).await
    }

    /// How many sessions of `access_key` run; 0 when unrecorded.
    pub async fn keypair_concurrency_used(&self, access_key: &str) -> Result<i64, RedisError> {
        Ok(self
            .number(concurrency_used_key(access_key))
            .await?
            .unwrap_or(0))
    }

    /// Records how many sessions of `access_key` run (`keypair.concurrency_used.{ak}`) and how
    /// many of them are SFTP sessions (`keypair.sftp_concurrency_used.{ak}`).
    pub async fn set_keypair_concurrency(
        &self,
        access_key: &str,
        used: u64,
        sftp_used: u64,
    ) -> Result<(), RedisError> {
        let pairs = vec![
            (concurrency_used_key(access_key), used),
            (sftp_concurrency_used_key(access_key), sftp_used),
        ];
        let () = self
            .client()
            .mset(pairs)
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(())
    }

    /// The access keys that have a session counter (`keypair.concurrency_used.{ak}` or the SFTP
    /// one), whatever its value: what a recalculation must also set, so that the counters of keys
    /// whose sessions are all gone go back to 0.
    pub async fn keypairs_with_concurrency_counters(&self) -> Result<BTreeSet<String>, RedisError> {
        let mut access_keys = BTreeSet::new();
        for prefix in [CONCURRENCY_USED_PREFIX, SFTP_CONCURRENCY_USED_PREFIX] {
            let keys: Vec<Key> = self
                .client()
                .scan_buffered(format!("{prefix}*"), Some(1_000), None)
                .try_collect()
                .await
                .map_err(RedisError::in_db(DB))?;
            access_keys.extend(keys.iter().filter_map(|key| {
                key.as_str()
                    .and_then(|key| key.strip_prefix(prefix))
                    .map(str::to_owned)
            }));
        }
        Ok(access_keys)
    }

    /// Forgets the session counters of keypairs that are gone.
    pub async fn forget_keypair_counters(&self, access_keys: &[String]) -> Result<(), RedisError> {
        if access_keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = access_keys
            .iter()
            .flat_map(|key| [concurrency_used_key(key), sftp_concurrency_used_key(key)])
            .collect();
        let _: i64 = self
            .client()
            .del(keys)
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(())
    }

    /// The live statistics an agent last wrote for itself or one of its kernels (key = the agent
    /// or kernel id, msgpack). `None` when there are none, or when they cannot be decoded (logged).
    pub async fn live_stat(&self, id: &str) -> Result<Option<serde_json::Value>, RedisError> {
        let packed: Option<Vec<u8>> = self.client().get(id).await.map_err(RedisError::in_db(DB))?;
        Ok(packed.and_then(|bytes| decode_live_stat(id, &bytes)))
    }

    /// [`live_stat`](Self::live_stat) of each of `ids`, in their order, in one round trip per
    /// thousand keys (the usage reports read them for every kernel of a period).
    pub async fn live_stats(
        &self,
        ids: &[String],
    ) -> Result<Vec<Option<serde_json::Value>>, RedisError> {
        let mut stats = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(LIVE_STATS_PER_ROUND_TRIP) {
            let packed: Vec<fred::types::Value> = self
                .client()
                .mget(chunk.to_vec())
                .await
                .map_err(RedisError::in_db(DB))?;
            stats.extend(chunk.iter().zip(packed).map(|(id, value)| {
                value
                    .as_bytes()
                    .and_then(|bytes| decode_live_stat(id, bytes))
            }));
        }
        Ok(stats)
    }

    /// How many containers an agent runs (`container_count.{agent}`); 0 when unset.
    pub async fn container_count(&self, agent_id: &str) -> Result<i64, RedisError> {
        Ok(self
            .number(container_count_key(agent_id))
            .await?
            .unwrap_or(0))
    }

    /// How many containers each of `agent_ids` runs, as [`container_count`](Self::container_count)
    /// reads them, in one round trip.
    pub async fn container_counts(&self, agent_ids: &[&str]) -> Result<Vec<i64>, RedisError> {
        if agent_ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = agent_ids.iter().map(|id| container_count_key(id)).collect();
        let values: Vec<Option<String>> = self
            .client()
            .mget(keys)
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(values
            .into_iter()
            .map(|value| value.and_then(|text| text.parse().ok()).unwrap_or(0))
            .collect())
    }

    /// The abuse report of a kernel, if any.
    pub async fn abuse_report(&self, kernel_id: &str) -> Result<Option<String>, RedisError> {
        self.client()
            .hget(ABUSE_REPORTS_KEY, kernel_id)
            .await
            .map_err(RedisError::in_db(DB))
    }

    /// The accelerator metadata agents reported (`computer.metadata`): slot name -> JSON text.
    pub async fn reported_slot_metadata(&self) -> Result<HashMap<String, String>, RedisError> {
        self.client()
            .hgetall(REPORTED_SLOT_METADATA_KEY)
            .await
            .map_err(RedisError::in_db(DB))
    }

    /// A number stored as text; `None` when the key is missing or does not hold a number.
    async fn number<T: std::str::FromStr>(&self, key: String) -> Result<Option<T>, RedisError> {
        let text: Option<String> = self
            .client()
            .get(key)
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(text.and_then(|text| text.parse().ok()))
    }
}
