//! The call statistics of successful authentications (`kp:{AK}:num_queries`,
//! `kp:{AK}:last_call_time` in database 0, 30 days), counted in memory and written in batches: one
//! pipeline per interval for all the keypairs that called, instead of one script per request.
//!
//! What readers see lags by at most one interval. The time written is the manager's clock at the
//! keypair's last call (the reference writes the Redis server's clock at each call).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fred::prelude::{Expiration, KeysInterface};

use crate::stat::{CALL_STATS_TTL_SECONDS, last_call_time_key, num_queries_key};
use crate::{RedisDb, RedisError, StatDb};

/// Calls not written yet, by access key.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Pending {
    calls: u64,
    /// Seconds since the epoch.
    last_call: f64,
}

/// Successful authentications not written to Redis yet. Cheap to clone: clones share the counts;
/// every worker of a process records into one, and one task writes it ([`CallStats::run`]).
#[derive(Clone, Debug, Default)]
pub struct CallStats {
    pending: Arc<Mutex<HashMap<String, Pending>>>,
}

impl CallStats {
    pub fn new() -> CallStats {
        CallStats::default()
    }

    /// Counts one successful authentication of `access_key`, now.
    pub fn record(&self, access_key: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let mut pending = self.lock();
        match pending.get_mut(access_key) {
            Some(entry) => {
                entry.calls += 1;
                entry.last_call = entry.last_call.max(now);
            }
            None => {
                pending.insert(
                    access_key.to_owned(),
                    Pending {
                        calls: 1,
                        last_call: now,
                    },
                );
            }
        }
    }

    /// Writes what was counted in one pipeline; the number of keypairs written. On failure the
    /// counts are kept for the next attempt.
    pub async fn flush(&self, stat: &StatDb) -> Result<usize, RedisError> {
        let batch = std::mem::take(&mut *self.lock());
        if batch.is_empty() {
            return Ok(0);
        }
        let pipeline = stat.client().pipeline();
        for (access_key, pending) in &batch {
            let num_queries = num_queries_key(access_key);
            let calls = i64::try_from(pending.calls).unwrap_or(i64::MAX);
            let ttl = CALL_STATS_TTL_SECONDS as i64;
            let _: () = pipeline
                .incr_by(&num_queries, calls)
                .await
                .map_err(db_error)?;
            let _: () = pipeline
                .expire(&num_queries, ttl, None)
                .await
                .map_err(db_error)?;
            let _: () = pipeline
                .set(
                    last_call_time_key(access_key),
                    format!("{:.6}", pending.last_call),
                    Some(Expiration::EX(ttl)),
                    None,
                    false,
                )
                .await
                .map_err(db_error)?;
        }
        match pipeline.all::<()>().await {
            Ok(()) => Ok(batch.len()),
            Err(error) => {
                self.merge_back(batch);
                Err(db_error(error))
            }
        }
    }

    /// Writes the counts every `every` until `shutdown` resolves, then once more. A failed write is
    /// logged and retried at the next interval with everything counted since.
    pub async fn run(self, stat: StatDb, every: Duration, shutdown: impl Future<Output = ()>) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = ticks.tick() => {}
            }
            match self.flush(&stat).await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!(target: "bai_redis", "call statistics written again");
                }
                Ok(_) => {}
                // Once per outage: the counts wait in memory.
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(
                        target: "bai_redis",
                        "cannot write the keypairs' call statistics, kept for later: {error}"
                    );
                }
                Err(_) => {}
            }
        }
        if let Err(error) = self.flush(&stat).await {
            tracing::warn!(
                target: "bai_redis",
                "the last call statistics could not be written before stopping: {error}"
            );
        }
    }

    fn merge_back(&self, batch: HashMap<String, Pending>) {
        let mut pending = self.lock();
        for (access_key, unwritten) in batch {
            let entry = pending.entry(access_key).or_insert(Pending {
                calls: 0,
                last_call: 0.0,
            });
            entry.calls += unwritten.calls;
            entry.last_call = entry.last_call.max(unwritten.last_call);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Pending>> {
        // Plain counters: a panic elsewhere cannot leave them inconsistent.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn db_error(error: fred::error::Error) -> RedisError {
    RedisError::in_db(RedisDb::Stat)(error)
}
