//! What a worker's request handlers share: the configuration, the connected stores, the agent RPC
//! connections (`bai-agents`) and the HTTP layer's own per-worker state (the cached manager
//! status).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bai_agents::AgentRpcCache;
use bai_config::ManagerConfig;
use bai_etcd_store::{EtcdError, EtcdStore, SharedConfig};
use bai_redis::Redis;
use bai_stores::{ManagerStatus, Stores};
use sea_orm::DatabaseConnection;

/// How long a worker trusts the manager status it read from etcd (the reference: 2 s).
const STATUS_CACHE_TTL: Duration = Duration::from_secs(2);

/// The shared state of one worker's handlers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiContext {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Arc<ManagerConfig>,
    stores: Stores,
    status_cache: Mutex<Option<(Instant, ManagerStatus)>>,
    /// The worker's RPC connections to agents, when the embedder gave them.
    agent_rpc: OnceLock<Arc<AgentRpcCache>>,
}

impl ApiContext {
    /// The API over `stores`; whoever connected them closes them.
    pub fn new(config: Arc<ManagerConfig>, stores: Stores) -> ApiContext {
        ApiContext {
            inner: Arc::new(Inner {
                config,
                stores,
                status_cache: Mutex::new(None),
                agent_rpc: OnceLock::new(),
            }),
        }
    }

    /// Lets the handlers call agents (`Agent.hardware_metadata`) through `cache`; without it,
    /// what needs an agent RPC answers as for an agent that is not alive. Only the first call
    /// counts.
    pub fn with_agent_rpc(self, cache: Arc<AgentRpcCache>) -> ApiContext {
        let _ = self.inner.agent_rpc.set(cache);
        self
    }

    /// The agent RPC connections, if given.
    pub fn agent_rpc(&self) -> Option<&Arc<AgentRpcCache>> {
        self.inner.agent_rpc.get()
    }

    pub fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }

    pub fn stores(&self) -> &Stores {
        &self.inner.stores
    }

    pub fn etcd(&self) -> &EtcdStore {
        &self.inner.stores.etcd
    }

    /// The shared configuration in effect now (it follows etcd): read it per request.
    pub fn shared_config(&self) -> Arc<SharedConfig> {
        self.inner.stores.shared_config.current()
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.stores.db
    }

    pub fn redis(&self) -> &Redis {
        &self.inner.stores.redis
    }

    /// The manager status, from a per-worker cache refreshed every 2 s.
    pub async fn manager_status(&self) -> Result<ManagerStatus, EtcdError> {
        if let Some((read_at, status)) = *self.lock_status_cache()
            && read_at.elapsed() < STATUS_CACHE_TTL
        {
            return Ok(status);
        }
        let status = bai_stores::read_manager_status(self.etcd()).await?;
        *self.lock_status_cache() = Some((Instant::now(), status));
        Ok(status)
    }

    /// Writes the manager status and makes this worker see it at once.
    pub async fn set_manager_status(&self, status: ManagerStatus) -> Result<(), EtcdError> {
        bai_stores::write_manager_status(self.etcd(), status).await?;
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
