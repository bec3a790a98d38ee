//! What can go wrong taking a lock, each variant naming the backend's store.

use std::path::PathBuf;

/// A store failed while a lock was being taken (waiting for a lock held elsewhere is no error).
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("PostgreSQL advisory lock: {0}")]
    Postgres(#[from] bai_db_models::DbError),
    #[error("lock file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Redis lock: {0}")]
    Redis(#[from] bai_redis::RedisError),
    #[error("cannot connect to the Redis lock database: {0}")]
    RedisConnect(#[from] bai_redis::RedisConnectError),
    #[error("etcd lock: {0}")]
    Etcd(#[from] bai_etcd_store::EtcdError),
}
