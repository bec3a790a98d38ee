//! [`Stores`]: the connections of one manager worker (or of an embedding service).

use bai_config::ManagerConfig;
use bai_db_models::DbError;
use bai_etcd_store::{
    EtcdError, EtcdStore, EtcdTarget, ScopePrefixes, SharedConfig, SharedConfigError,
};
use bai_redis::{Redis, RedisConnectError};
use sea_orm::DatabaseConnection;

/// Why the stores could not be connected.
#[derive(Debug, thiserror::Error)]
pub enum StoresError {
    #[error("etcd: {0}")]
    Etcd(#[from] EtcdError),
    #[error(transparent)]
    SharedConfig(#[from] SharedConfigError),
    #[error("database: {0}")]
    Database(#[from] DbError),
    #[error(transparent)]
    Redis(#[from] RedisConnectError),
}

/// etcd, the shared configuration read from it at connect time, the PostgreSQL pool and the Redis
/// connections. Cheap to clone: clones share the connections.
#[derive(Clone, Debug)]
pub struct Stores {
    pub etcd: EtcdStore,
    pub shared_config: SharedConfig,
    pub db: DatabaseConnection,
    pub redis: Redis,
}

impl Stores {
    /// Connects to etcd and reads the shared configuration (its warnings are logged), then
    /// connects PostgreSQL (`[db]`) and the Redis that etcd `config/redis` names. What was
    /// connected before a failure is closed again.
    pub async fn connect(config: &ManagerConfig) -> Result<Stores, StoresError> {
        let etcd = EtcdStore::connect(
            EtcdTarget::from_config(&config.etcd),
            ScopePrefixes::default(),
        )
        .await?;
        let shared_config = SharedConfig::load(&etcd).await?;
        for warning in &shared_config.warnings {
            tracing::warn!(target: "bai_stores", "etcd {}: {}", warning.key, warning.message);
        }
        let db = bai_db_models::connect(&config.db).await?;
        let redis = match Redis::connect(&shared_config.redis).await {
            Ok(redis) => redis,
            Err(error) => {
                close_db(db).await;
                return Err(error.into());
            }
        };
        Ok(Stores {
            etcd,
            shared_config,
            db,
            redis,
        })
    }

    /// Stores from connections the caller made itself (an embedding service with its own pool).
    pub fn from_parts(
        etcd: EtcdStore,
        shared_config: SharedConfig,
        db: DatabaseConnection,
        redis: Redis,
    ) -> Stores {
        Stores {
            etcd,
            shared_config,
            db,
            redis,
        }
    }

    /// Closes the Redis connections and the database pool (etcd's channel closes when the last
    /// clone is dropped).
    pub async fn close(&self) {
        self.redis.close().await;
        close_db(self.db.clone()).await;
    }
}

async fn close_db(db: DatabaseConnection) {
    if let Err(error) = db.close().await {
        tracing::warn!(target: "bai_stores", "closing the database pool: {error}");
    }
}
