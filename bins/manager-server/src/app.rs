//! What each worker of the server is: one `bai_api::ApiContext` (its own etcd, PostgreSQL and
//! Redis connections, like one worker process of the reference) and the router over it. Worker 0
//! also registers the node in etcd and removes the registration when it stops.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::middleware::AddExtension;
use bai_api::{ApiContext, StartupError, WorkerIndex, lifecycle};
use bai_config::ManagerConfig;
use bai_server::Tasks;
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
            instance_id: lifecycle::instance_id(),
        }
    }
}

/// One worker's state.
#[derive(Debug)]
pub struct Worker {
    index: usize,
    ctx: ApiContext,
    router: Router,
}

impl bai_server::App for Manager {
    type Worker = Worker;
    type Body = axum::body::Body;
    type Service = AddExtension<Router, ConnectInfo<SocketAddr>>;
    type Error = StartupError;

    async fn start(&self, index: usize, _tasks: &Tasks) -> Result<Worker, StartupError> {
        let ctx = ApiContext::connect(Arc::clone(&self.config), WorkerIndex(index)).await?;
        if index == 0 {
            match lifecycle::start_node(&ctx, &self.instance_id).await {
                Ok(status) => tracing::info!("Manager status: {}", status.as_str()),
                Err(error) => {
                    ctx.close().await;
                    return Err(StartupError::Etcd(error));
                }
            }
        }
        let router = bai_api::router(ctx.clone());
        Ok(Worker { index, ctx, router })
    }

    fn service(&self, worker: &Worker, peer: SocketAddr) -> Self::Service {
        // What `into_make_service_with_connect_info` does, for every connection we accept
        // ourselves (plain or TLS): handlers see the peer address.
        axum::Extension(ConnectInfo(peer)).layer(worker.router.clone())
    }

    async fn stop(&self, worker: Worker) {
        if worker.index == 0 {
            if let Err(error) = lifecycle::stop_node(&worker.ctx, &self.instance_id).await {
                tracing::warn!(
                    "cannot remove nodes/manager/{} from etcd: {error}",
                    self.instance_id
                );
            }
        }
        worker.ctx.close().await;
    }
}
