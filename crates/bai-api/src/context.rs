//! What a worker's request handlers share: configuration, the etcd, PostgreSQL and Redis
//! connections, and small per-worker caches.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bai_config::ManagerConfig;
use bai_db_models::DbError;
use bai_etcd_store::{
    EtcdError, EtcdStore, EtcdTarget, Scope, ScopePrefixes, SharedConfig, SharedConfigError,
};
use sea_orm::DatabaseConnection;

use crate::ratelimit::RateLimiter;
use crate::redis::{RedisClients, RedisConnectError};

/// How long a worker trusts the manager status it read from etcd (the reference: 2 s).
const STATUS_CACHE_TTL: Duration = Duration::from_secs(2);
/// The etcd key of the manager status (`running`, `frozen`, ...).
pub const MANAGER_STATUS_KEY: &str = "manager/status";

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("etcd: {0}")]
    Etcd(#[from] EtcdError),
    #[error(transparent)]
    SharedConfig(#[from] SharedConfigError),
    #[error("database: {0}")]
    Database(#[from] DbError),
    #[error(transparent)]
    Redis(#[from] RedisConnectError),
}

/// The manager status in etcd `manager/status`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ManagerStatus {
    Terminated,
    Preparing,
    Running,
    Frozen,
}

impl ManagerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Terminated => "terminated",
            Self::Preparing => "preparing",
            Self::Running => "running",
            Self::Frozen => "frozen",
        }
    }

    pub fn parse(value: &str) -> Option<ManagerStatus> {
        match value {
            "terminated" => Some(Self::Terminated),
            "preparing" => Some(Self::Preparing),
            "running" => Some(Self::Running),
            "frozen" => Some(Self::Frozen),
            _ => None,
        }
    }
}

/// Which worker of the process this context belongs to. Worker 0 does the once-per-node duties
/// (node registration, repairing the manager status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerIndex(pub usize);

/// The shared state of one worker's handlers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiContext {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Arc<ManagerConfig>,
    worker: WorkerIndex,
    etcd: EtcdStore,
    shared_config: SharedConfig,
    db: DatabaseConnection,
    redis: RedisClients,
    rate_limiter: RateLimiter,
    status_cache: Mutex<Option<(Instant, ManagerStatus)>>,
    gql_schema: OnceLock<crate::gql::GqlSchema>,
}

impl ApiContext {
    /// Connects to etcd (and reads the shared configuration), PostgreSQL and Redis.
    pub async fn connect(
        config: Arc<ManagerConfig>,
        worker: WorkerIndex,
    ) -> Result<ApiContext, StartupError> {
        let etcd = EtcdStore::connect(
            EtcdTarget::from_config(&config.etcd),
            ScopePrefixes::default(),
        )
        .await?;
        let shared_config = SharedConfig::load(&etcd).await?;
        for warning in &shared_config.warnings {
            tracing::warn!(target: "bai_api", "etcd {}: {}", warning.key, warning.message);
        }
        let db = bai_db_models::connect(&config.db).await?;
        let redis = RedisClients::connect(&shared_config.redis).await?;
        Ok(ApiContext {
            inner: Arc::new(Inner {
                config,
                worker,
                etcd,
                shared_config,
                db,
                redis,
                rate_limiter: RateLimiter::default(),
                status_cache: Mutex::new(None),
                gql_schema: OnceLock::new(),
            }),
        })
    }

    /// Closes the database pool and the Redis connections.
    pub async fn close(&self) {
        self.inner.redis.close().await;
        if let Err(error) = self.inner.db.clone().close().await {
            tracing::warn!(target: "bai_api", "closing the database pool: {error}");
        }
    }

    pub fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }

    pub fn worker(&self) -> WorkerIndex {
        self.inner.worker
    }

    pub fn etcd(&self) -> &EtcdStore {
        &self.inner.etcd
    }

    pub fn shared_config(&self) -> &SharedConfig {
        &self.inner.shared_config
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    pub fn redis(&self) -> &RedisClients {
        &self.inner.redis
    }

    /// The GraphQL schema, built on first use (introspection as etcd allows it).
    pub fn gql_schema(&self) -> &crate::gql::AdminSchema {
        &self
            .inner
            .gql_schema
            .get_or_init(|| {
                crate::gql::schema(
                    self.inner
                        .shared_config
                        .api
                        .allow_graphql_schema_introspection,
                )
            })
            .0
    }

    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.inner.rate_limiter
    }

    /// The manager status, from a per-worker cache refreshed every 2 s. A missing or unknown value
    /// reads as `terminated`, like the reference.
    pub async fn manager_status(&self) -> Result<ManagerStatus, EtcdError> {
        if let Some((read_at, status)) = *self.lock_status_cache() {
            if read_at.elapsed() < STATUS_CACHE_TTL {
                return Ok(status);
            }
        }
        let status = self
            .inner
            .etcd
            .get(MANAGER_STATUS_KEY, Scope::Global)
            .await?
            .as_deref()
            .and_then(ManagerStatus::parse)
            .unwrap_or(ManagerStatus::Terminated);
        *self.lock_status_cache() = Some((Instant::now(), status));
        Ok(status)
    }

    /// Writes the manager status and makes this worker see it at once.
    pub async fn set_manager_status(&self, status: ManagerStatus) -> Result<(), EtcdError> {
        self.inner
            .etcd
            .put(MANAGER_STATUS_KEY, status.as_str(), Scope::Global)
            .await?;
        *self.lock_status_cache() = Some((Instant::now(), status));
        Ok(())
    }

    fn lock_status_cache(&self) -> std::sync::MutexGuard<'_, Option<(Instant, ManagerStatus)>> {
        // The cache holds plain values; a panic elsewhere cannot leave it inconsistent.
        self.inner
            .status_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
