//! What each worker of the server is: its own connected `bai_stores::Stores` (etcd, PostgreSQL,
//! Redis, like one worker process of the reference) and the API router over them. Worker 0 also
//! registers the node in etcd and removes the registration when it stops.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::middleware::AddExtension;
use bai_api::ApiContext;
use bai_config::ManagerConfig;
use bai_server::Tasks;
use bai_stores::{Stores, StoresError};
use tower::Layer;

/// The manager as the runtime sees it.
#[derive(Debug)]
pub struct Manager {
    config: Arc<ManagerConfig>,
    /// The name the node registers under in etcd (`nodes/manager/{instance_id}`).
    instance_id: String,
}

impl Manager {
    pub fn new(config: Arc<ManagerConfig>) -> Manager {
        Manager {
            config,
            instance_id: bai_stores::instance_id(),
        }
    }
}

/// One worker's state.
#[derive(Debug)]
pub struct Worker {
    index: usize,
    stores: Stores,
    router: Router,
}

impl bai_server::App for Manager {
    type Worker = Worker;
    type Body = axum::body::Body;
    type Service = AddExtension<Router, ConnectInfo<SocketAddr>>;
    type Error = StoresError;

    async fn start(&self, index: usize, _tasks: &Tasks) -> Result<Worker, StoresError> {
        let stores = Stores::connect(&self.config).await?;
        if index == 0 {
            match bai_stores::register_node(&stores.etcd, &self.instance_id).await {
                Ok(status) => tracing::info!("Manager status: {}", status.as_str()),
                Err(error) => {
                    stores.close().await;
                    return Err(StoresError::Etcd(error));
                }
            }
        }
        let router = bai_api::router(ApiContext::new(Arc::clone(&self.config), stores.clone()));
        Ok(Worker {
            index,
            stores,
            router,
        })
    }

    fn service(&self, worker: &Worker, peer: SocketAddr) -> Self::Service {
        // What `into_make_service_with_connect_info` does, for every connection we accept
        // ourselves (plain or TLS): handlers see the peer address.
        axum::Extension(ConnectInfo(peer)).layer(worker.router.clone())
    }

    async fn stop(&self, worker: Worker) {
        if worker.index == 0
            && let Err(error) =
                bai_stores::unregister_node(&worker.stores.etcd, &self.instance_id).await
        {
            tracing::warn!(
                "cannot remove nodes/manager/{} from etcd: {error}",
                self.instance_id
            );
        }
        worker.stores.close().await;
    }
}
