//! [`Stores`]: the connections of one manager worker (or of an embedding service).

use bai_config::ManagerConfig;
use bai_etcd_store::Scope;

use crate::node::{
    MANAGER_ANNOUNCEMENT_KEY, MANAGER_STATUS_KEY, ManagerStatus, read_manager_status,
    write_manager_status,
};

/// The keys under `manager/` a node reads on every request.
const MANAGER_KEYS: &[&str] = &[MANAGER_STATUS_KEY, MANAGER_ANNOUNCEMENT_KEY];
use bai_db_models::DbError;
use bai_etcd_store::{
    EtcdError, EtcdStore, EtcdTarget, KeysWatcher, LiveKeys, LiveSharedConfig, ScopePrefixes,
    SharedConfigError, SharedConfigWatcher,
};
use bai_redis::{Redis, RedisConnectError};
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

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

/// etcd, the shared configuration kept current from it, the PostgreSQL pool and the Redis
/// connections. Cheap to clone: clones share the connections.
#[derive(Clone, Debug)]
pub struct Stores {
    pub etcd: EtcdStore,
    /// Read it where it is used (`shared_config.current()`, one reference count), never keep a
    /// copy: a change in etcd takes effect without a restart.
    pub shared_config: LiveSharedConfig,
    pub db: DatabaseConnection,
    pub redis: Redis,
    /// The manager status and the announcement, kept current from etcd's watch; `None` when the
    /// caller made the parts itself (they are then read from etcd when asked).
    manager_keys: Option<LiveKeys>,
    /// Stops following etcd (the configuration and the Redis it names); `None` when the caller
    /// made the parts itself.
    following: Option<CancellationToken>,
}

impl Stores {
    /// Connects to etcd and reads the shared configuration (its warnings are logged), then
    /// connects PostgreSQL (`[db]`) and the Redis that etcd `config/redis` names. What was
    /// connected before a failure is closed again.
    ///
    /// Until [`Stores::close`] (or the end of the runtime), two tasks on the caller's runtime
    /// follow etcd: the shared configuration's watcher (a section with a bad value keeps its
    /// previous settings, logged with the key) and the Redis switch (a change of `config/redis`
    /// moves every Redis handle to the new server; one it cannot reach leaves them where they are).
    pub async fn connect(config: &ManagerConfig) -> Result<Stores, StoresError> {
        let etcd = EtcdStore::connect(
            EtcdTarget::from_config(&config.etcd),
            ScopePrefixes::default(),
        )
        .await?;
        let (shared_config, watcher) = SharedConfigWatcher::load(etcd.clone()).await?;
        let (manager_keys, manager_watcher) =
            KeysWatcher::load(etcd.clone(), "manager/", MANAGER_KEYS).await?;
        for warning in &shared_config.current().warnings {
            tracing::warn!(target: "bai_stores", "etcd {}: {}", warning.key, warning.message);
        }
        let db = bai_db_models::connect(&config.db).await?;
        let redis = match Redis::connect(&shared_config.current().redis).await {
            Ok(redis) => redis,
            Err(error) => {
                close_db(db).await;
                return Err(error.into());
            }
        };
        let following = CancellationToken::new();
        tokio::spawn(watcher.run(following.clone().cancelled_owned()));
        tokio::spawn(manager_watcher.run(following.clone().cancelled_owned()));
        tokio::spawn(
            following
                .clone()
                .run_until_cancelled_owned(follow_redis(shared_config.clone(), redis.clone())),
        );
        Ok(Stores {
            etcd,
            shared_config,
            db,
            redis,
            manager_keys: Some(manager_keys),
            following: Some(following),
        })
    }

    /// Stores from connections the caller made itself (an embedding service with its own pool).
    /// A fixed `SharedConfig` never changes; a [`LiveSharedConfig`] is followed by whoever made
    /// it (this value switches no Redis).
    pub fn from_parts(
        etcd: EtcdStore,
        shared_config: impl Into<LiveSharedConfig>,
        db: DatabaseConnection,
        redis: Redis,
    ) -> Stores {
        Stores {
            etcd,
            shared_config: shared_config.into(),
            db,
            redis,
            manager_keys: None,
            following: None,
        }
    }

    /// The manager status in etcd `manager/status` (a missing or unknown value reads as
    /// `terminated`, like the reference), from memory when etcd is followed.
    pub async fn manager_status(&self) -> Result<ManagerStatus, EtcdError> {
        match &self.manager_keys {
            Some(keys) => Ok(ManagerStatus::from_etcd(
                keys.get(MANAGER_STATUS_KEY).as_deref(),
            )),
            None => read_manager_status(&self.etcd).await,
        }
    }

    /// Writes the manager status for every node; this process sees it at once.
    pub async fn set_manager_status(&self, status: ManagerStatus) -> Result<(), EtcdError> {
        write_manager_status(&self.etcd, status).await?;
        self.note_manager_status(status);
        Ok(())
    }

    /// Takes a manager status this process wrote to etcd by other means (the node's registration)
    /// at once, without waiting for the watch to bring it back.
    pub fn note_manager_status(&self, status: ManagerStatus) {
        if let Some(keys) = &self.manager_keys {
            keys.note(MANAGER_STATUS_KEY, Some(status.as_str().to_owned()));
        }
    }

    /// Enables the announcement with `message`, or disables it (`None`); this process sees it at
    /// once.
    pub async fn set_announcement(&self, message: Option<&str>) -> Result<(), EtcdError> {
        match message {
            Some(message) => {
                self.etcd
                    .put(MANAGER_ANNOUNCEMENT_KEY, message, Scope::Global)
                    .await?
            }
            None => self
                .etcd
                .delete(MANAGER_ANNOUNCEMENT_KEY, Scope::Global)
                .await
                .map(drop)?,
        }
        if let Some(keys) = &self.manager_keys {
            keys.note(MANAGER_ANNOUNCEMENT_KEY, message.map(str::to_owned));
        }
        Ok(())
    }

    /// The announcement shown to every user (etcd `manager/announcement`), if one is enabled,
    /// from memory when etcd is followed.
    pub async fn announcement(&self) -> Result<Option<String>, EtcdError> {
        match &self.manager_keys {
            Some(keys) => Ok(keys.get(MANAGER_ANNOUNCEMENT_KEY)),
            None => self.etcd.get(MANAGER_ANNOUNCEMENT_KEY, Scope::Global).await,
        }
    }

    /// Stops following etcd, closes the Redis connections and the database pool (etcd's channel
    /// closes when the last clone is dropped).
    pub async fn close(&self) {
        if let Some(following) = &self.following {
            following.cancel();
        }
        self.redis.close().await;
        close_db(self.db.clone()).await;
    }
}

/// Moves `redis` to the server each change of `config/redis` names. When the new server cannot be
/// reached the old one stays in use, and the next change of the configuration tries again.
async fn follow_redis(mut shared_config: LiveSharedConfig, redis: Redis) {
    let mut in_use = shared_config.current().redis.clone();
    while let Some(changed) = shared_config.changed().await {
        if changed.redis == in_use {
            continue;
        }
        match redis.switch_to(&changed.redis).await {
            Ok(()) => {
                tracing::info!(target: "bai_stores", "etcd config/redis changed: Redis switched");
                in_use = changed.redis.clone();
            }
            Err(error) => tracing::error!(
                target: "bai_stores",
                "etcd config/redis changed, but {error}; the previous Redis stays in use"
            ),
        }
    }
}

async fn close_db(db: DatabaseConnection) {
    if let Err(error) = db.close().await {
        tracing::warn!(target: "bai_stores", "closing the database pool: {error}");
    }
}
