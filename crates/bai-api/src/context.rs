//! What a worker's request handlers share: the configuration, the connected stores, the agent RPC
//! connections (`bai-agents`), the process's caches (`cache`) and the runner of background tasks
//! (`bai-events`).

use std::sync::{Arc, OnceLock};

use bai_agents::AgentRpcCache;
use bai_config::ManagerConfig;
use bai_etcd_store::{EtcdError, EtcdStore, SharedConfig};
use bai_events::BackgroundTasks;
use bai_redis::Redis;
use bai_storage_proxy::{StorageError, StorageProxies};
use bai_stores::{ManagerStatus, Stores};
use indexmap::IndexMap;

use crate::cache::ApiCaches;
use sea_orm::DatabaseConnection;

/// The shared state of one worker's handlers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiContext {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Arc<ManagerConfig>,
    stores: Stores,
    caches: ApiCaches,
    /// The worker's RPC connections to agents, when the embedder gave them.
    agent_rpc: OnceLock<Arc<AgentRpcCache>>,
    /// The worker's background tasks (`rescan_images`), when the embedder gave a runner.
    background_tasks: OnceLock<BackgroundTasks>,
}

impl ApiContext {
    /// The API over `stores`, with caches of its own; whoever connected the stores closes them.
    pub fn new(config: Arc<ManagerConfig>, stores: Stores) -> ApiContext {
        ApiContext::with_caches(config, stores, ApiCaches::new())
    }

    /// The API over `stores` with `caches`, which the other workers of the process share.
    pub fn with_caches(
        config: Arc<ManagerConfig>,
        stores: Stores,
        caches: ApiCaches,
    ) -> ApiContext {
        ApiContext {
            inner: Arc::new(Inner {
                config,
                stores,
                caches,
                agent_rpc: OnceLock::new(),
                background_tasks: OnceLock::new(),
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

    /// Runs background tasks with `tasks`, whose shutdown token and waiting the embedder owns;
    /// without it, a runner of the context's own is made at the first task (its tasks end with
    /// the runtime, without recording how). Only the first call counts.
    pub fn with_background_tasks(self, tasks: BackgroundTasks) -> ApiContext {
        let _ = self.inner.background_tasks.set(tasks);
        self
    }

    /// The runner of background tasks.
    pub fn background_tasks(&self) -> &BackgroundTasks {
        self.inner
            .background_tasks
            .get_or_init(|| BackgroundTasks::unsupervised(self.inner.stores.redis.stream.clone()))
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

    /// Clients for the storage proxies of etcd `volumes/proxies` in effect now (none when
    /// `volumes/` is empty), made per request: the routes that call proxies are called rarely.
    pub fn storage_proxies(&self) -> Result<StorageProxies, StorageError> {
        let config = self.shared_config();
        match config.volumes.as_ref() {
            Some(volumes) => StorageProxies::new(&volumes.proxies),
            None => StorageProxies::new(&IndexMap::new()),
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.stores.db
    }

    pub fn redis(&self) -> &Redis {
        &self.inner.stores.redis
    }

    pub fn caches(&self) -> &ApiCaches {
        &self.inner.caches
    }

    /// The manager status (from memory, kept current by etcd's watch).
    pub async fn manager_status(&self) -> Result<ManagerStatus, EtcdError> {
        self.inner.stores.manager_status().await
    }

    /// Writes the manager status; this process sees it at once.
    pub async fn set_manager_status(&self, status: ManagerStatus) -> Result<(), EtcdError> {
        self.inner.stores.set_manager_status(status).await
    }
}
