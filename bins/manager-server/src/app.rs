//! What each worker of the server is: its own connected `bai_stores::Stores` (etcd, PostgreSQL,
//! Redis, like one worker process of the reference), the API router over them, and its consumer of
//! the event stream (one of the `manager` group). Worker 0 also registers the node in etcd (and
//! removes the registration when it stops), checks for lost agents, trims the stream and runs the
//! timers (scheduling, hang tolerance, idle checks). Each worker keeps its own agent RPC
//! connections (`AgentRpcCache`), shared by its registry and API, and its own event feed for the
//! API's server-sent events (a subscriber of the bus).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::middleware::AddExtension;
use bai_agent_rpc::RpcClient;
use bai_agents::{AgentRegistry, AgentRpcCache, UnknownGroupWarnings};
use bai_api::ApiContext;
use bai_config::ManagerConfig;
use bai_events::{ConsumerOptions, EventProducer, Handlers, MANAGER_GROUP};
use bai_redis::{SchedulerStatus, StreamDb};
use bai_rpc_keys::CurveKeypair;
use bai_server::{Criticality, Tasks};
use bai_sessions::{Lifecycle, Scheduler, Starter};
use bai_stores::{Stores, StoresError};
use tower::Layer;

/// The installation part of consumer names: it must not change across restarts, so that a
/// restarted worker finds the entries it left pending under its name.
const INSTALLATION: &str = "bai-manager";
/// How often worker 0 trims the entries every consumer group is done with.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// The manager as the runtime sees it.
#[derive(Debug)]
pub struct Manager {
    config: Arc<ManagerConfig>,
    /// The name the node registers under in etcd (`nodes/manager/{instance_id}`).
    instance_id: String,
    /// Shared by the workers' agent registries: one warning per node.
    unknown_group_warnings: Arc<UnknownGroupWarnings>,
    /// Opens agent RPC connections with the manager keypair (`rpc-auth-manager-keypair`).
    rpc_client: RpcClient,
}

impl Manager {
    pub fn new(config: Arc<ManagerConfig>, manager_keypair: CurveKeypair) -> Manager {
        Manager {
            config,
            instance_id: bai_stores::instance_id(),
            unknown_group_warnings: Arc::default(),
            rpc_client: RpcClient::new(Some(manager_keypair)),
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

    async fn start(&self, index: usize, tasks: &Tasks) -> Result<Worker, StoresError> {
        let stores = Stores::connect(&self.config).await?;
        // The consumer's reads block: it gets a connection of its own.
        let consumer_stream = match StreamDb::connect(&stores.shared_config.redis).await {
            Ok(stream) => stream,
            Err(error) => {
                stores.close().await;
                return Err(StoresError::Redis(error));
            }
        };
        if index == 0 {
            match bai_stores::register_node(&stores.etcd, &self.instance_id).await {
                Ok(status) => tracing::info!("Manager status: {}", status.as_str()),
                Err(error) => {
                    consumer_stream.close().await;
                    stores.close().await;
                    return Err(StoresError::Etcd(error));
                }
            }
            // Occupancy follows the kernels, whatever a previous process left behind.
            match bai_sessions::recompute_agent_occupancy(&stores.db).await {
                Ok(agents) => tracing::debug!("recomputed the occupancy of {agents} agents"),
                Err(error) => tracing::warn!("cannot recompute the agents' occupancy: {error}"),
            }
        }
        // The worker's agent RPC connections: its registry drops those of agents that moved.
        let agent_rpc = Arc::new(AgentRpcCache::new(
            stores.db.clone(),
            self.rpc_client.clone(),
        ));
        let registry = Arc::new(
            AgentRegistry::new(&stores, Arc::clone(&self.unknown_group_warnings))
                .with_rpc_cache(Arc::clone(&agent_rpc)),
        );
        let lifecycle = Arc::new(
            Lifecycle::new(
                stores.db.clone(),
                EventProducer::new(stores.redis.stream.clone()),
                stores.redis.stat.clone(),
            )
            .with_rpc_cache(Arc::clone(&agent_rpc)),
        );
        let (triggers, bursts) = bai_sessions::triggers();
        let mut handlers = Handlers::default();
        bai_agents::handlers(&registry, &mut handlers);
        bai_sessions::handlers(&lifecycle, &mut handlers);
        bai_sessions::trigger_handlers(&triggers, &mut handlers);
        // Batch sessions end when their agent reports how the command ended.
        let batch_results = Arc::new(bai_sessions::BatchResults::new(
            stores.db.clone(),
            bai_sessions::Destroyer::new(
                stores.db.clone(),
                EventProducer::new(stores.redis.stream.clone()),
                stores.redis.stat.clone(),
                Arc::clone(&agent_rpc),
            ),
        ));
        bai_sessions::batch_handlers(&batch_results, &mut handlers);
        // Idle checks: every worker checks on a consumed `do_idle_check`; worker 0 also on its timer.
        let idle_checker = bai_sessions::IdleChecker::new(
            stores.db.clone(),
            stores.etcd.clone(),
            &stores.redis.live,
            stores.redis.stat.clone(),
            EventProducer::new(stores.redis.stream.clone()),
        );
        let (idle_trigger, idle_bursts) = bai_sessions::idle_triggers();
        bai_sessions::idle_handlers(
            &idle_checker,
            &bai_sessions::Destroyer::new(
                stores.db.clone(),
                EventProducer::new(stores.redis.stream.clone()),
                stores.redis.stat.clone(),
                Arc::clone(&agent_rpc),
            ),
            &idle_trigger,
            &mut handlers,
        );
        let idle_timer = index == 0;
        tasks.spawn(
            "idle-checker",
            Criticality::Essential,
            move |shutdown| async move {
                bai_sessions::run_idle_checker(idle_checker, idle_bursts, idle_timer, shutdown)
                    .await;
                Ok::<(), Infallible>(())
            },
        );
        let producer = EventProducer::new(stores.redis.stream.clone());
        let scheduler_status =
            SchedulerStatus::new(stores.redis.live.clone(), self.config.manager.id.clone());
        let scheduler = Scheduler::new(
            stores.db.clone(),
            stores.etcd.clone(),
            stores.redis.stat.clone(),
            producer.clone(),
            self.config
                .manager
                .agent_selection_resource_priority
                .clone(),
            scheduler_status.clone(),
        );
        let starter = Starter::new(
            stores.db.clone(),
            stores.etcd.clone(),
            producer,
            stores.redis.stat.clone(),
            Arc::clone(&agent_rpc),
            scheduler_status,
        );
        // Worker 0 keeps the timers (one per node); every worker runs rounds on its events.
        let timers = index == 0;
        tasks.spawn(
            "session-dispatcher",
            Criticality::Essential,
            move |shutdown| async move {
                bai_sessions::run_dispatcher(scheduler, starter, bursts, timers, shutdown).await;
                Ok::<(), Infallible>(())
            },
        );
        let options = ConsumerOptions::new(
            MANAGER_GROUP,
            bai_events::consumer_name(&self.config.manager.id, INSTALLATION, index),
        );
        tasks.spawn(
            "event-consumer",
            Criticality::Essential,
            |shutdown| async move {
                bai_events::run_consumer(consumer_stream.clone(), handlers, options, shutdown)
                    .await;
                consumer_stream.close().await;
                Ok::<(), Infallible>(())
            },
        );
        if index == 0 {
            let timeout = Duration::from_secs_f64(self.config.manager.heartbeat_timeout);
            tasks.spawn(
                "agent-lost-check",
                Criticality::Essential,
                |shutdown| async move {
                    bai_agents::run_lost_check(registry, timeout, shutdown).await;
                    Ok::<(), Infallible>(())
                },
            );
            let stream = stores.redis.stream.clone();
            tasks.spawn(
                "event-stream-trim",
                Criticality::BestEffort,
                |shutdown| async move {
                    bai_events::run_trimmer(stream, TRIM_EVERY, shutdown).await;
                    Ok::<(), Infallible>(())
                },
            );
        }
        // The feed of the SSE clients (`/events/...`): a subscriber with a reader of its own.
        let (event_feed, feeder) = bai_sessions::event_feed(stores.db.clone());
        let redis_config = stores.shared_config.redis.clone();
        tasks.spawn(
            "event-feed",
            Criticality::BestEffort,
            |shutdown| async move {
                let stream = StreamDb::connect(&redis_config).await?;
                feeder.run(stream.clone(), shutdown).await;
                stream.close().await;
                Ok::<(), bai_redis::RedisConnectError>(())
            },
        );
        let router = bai_api::router(
            ApiContext::new(Arc::clone(&self.config), stores.clone()).with_agent_rpc(agent_rpc),
        )
        .layer(axum::Extension(event_feed));
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
