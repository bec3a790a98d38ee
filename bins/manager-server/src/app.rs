//! What each worker of the server is: its own connected `bai_stores::Stores` (etcd, PostgreSQL,
//! Redis, like one worker process of the reference), the API router over them, and its consumer of
//! the event stream (one of the `manager` group). Worker 0 also registers the node in etcd under
//! `[manager] id`, bound to a lease it keeps alive (and revokes when it stops), checks for lost
//! agents, trims the stream, scans for hung sessions, runs the global timers (`bai-locks`:
//! `do_schedule`, `do_prepare`, `do_scale`, `do_idle_check`, `do_log_cleanup`), follows the
//! changes other processes announce for the API's caches (shared by the workers) and writes the
//! call statistics the workers count. Each worker keeps its own agent RPC connections
//! (`AgentRpcCache`), shared by its registry and API, and its own event feed for the API's
//! server-sent events (a subscriber of the bus).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::middleware::AddExtension;
use bai_agent_rpc::RpcClient;
use bai_agents::{AgentRegistry, AgentRpcCache, UnknownGroupWarnings};
use bai_api::{ApiCaches, ApiContext};
use bai_config::ManagerConfig;
use bai_events::{ConsumerOptions, EventProducer, Handlers, MANAGER_GROUP};
use bai_redis::SchedulerStatus;
use bai_rpc_keys::CurveKeypair;
use bai_server::{Criticality, Tasks};
use bai_sessions::{Lifecycle, Scheduler, Starter};
use bai_stores::{Stores, StoresError};
use tower::Layer;

use crate::metrics::MetricsExport;

/// The installation part of consumer names: it must not change across restarts, so that a
/// restarted worker finds the entries it left pending under its name.
const INSTALLATION: &str = "bai-manager";
/// How often worker 0 trims the entries every consumer group is done with.
const TRIM_EVERY: Duration = Duration::from_secs(10);
/// How often worker 0 writes the keypairs' call statistics the workers counted.
const CALL_STATS_EVERY: Duration = Duration::from_secs(1);

/// The manager as the runtime sees it.
#[derive(Debug)]
pub struct Manager {
    config: Arc<ManagerConfig>,
    /// Shared by the workers' agent registries: one warning per node.
    unknown_group_warnings: Arc<UnknownGroupWarnings>,
    /// Opens agent RPC connections with the manager keypair (`rpc-auth-manager-keypair`).
    rpc_client: RpcClient,
    /// `GET /metrics`, when `[manager] metrics-enabled`.
    metrics: Option<MetricsExport>,
    /// The API's caches, shared by every worker of the process: worker 0 follows the changes
    /// other processes announce and writes the call statistics they count.
    api_caches: ApiCaches,
}

impl Manager {
    pub fn new(config: Arc<ManagerConfig>, manager_keypair: CurveKeypair) -> Manager {
        Manager {
            config,
            unknown_group_warnings: Arc::default(),
            rpc_client: RpcClient::new(Some(manager_keypair)),
            metrics: None,
            api_caches: ApiCaches::new(),
        }
    }

    /// Worker 0 serves `export`'s listener; every worker's pool is sampled in it.
    pub fn with_metrics(mut self, export: MetricsExport) -> Manager {
        self.metrics = Some(export);
        self
    }
}

/// One worker's state.
#[derive(Debug)]
pub struct Worker {
    stores: Stores,
    /// Worker 0's registration of the node (`nodes/manager/{[manager] id}`), bound to a lease.
    node_lease: Option<Arc<bai_stores::NodeLease>>,
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
        let consumer_stream = match stores.redis.dedicated_stream().await {
            Ok(stream) => stream,
            Err(error) => {
                stores.close().await;
                return Err(StoresError::Redis(error));
            }
        };
        let mut node_lease = None;
        if index == 0 {
            // Registered under `[manager] id`, so that nodes sharing a host do not collide.
            match bai_stores::register_node_with_lease(&stores.etcd, &self.config.manager.id).await
            {
                Ok((status, lease)) => {
                    tracing::info!("Manager status: {}", status.as_str());
                    stores.note_manager_status(status);
                    let lease = Arc::new(lease);
                    let (etcd, keeper) = (stores.etcd.clone(), Arc::clone(&lease));
                    tasks.spawn(
                        "node-lease",
                        Criticality::BestEffort,
                        |shutdown| async move {
                            keeper.keep_alive(&etcd, shutdown).await;
                            Ok::<(), Infallible>(())
                        },
                    );
                    node_lease = Some(lease);
                }
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
        // Which node starts which session, and which starts the agents received.
        let start_claims =
            bai_redis::StartClaims::new(stores.redis.live.clone(), self.config.manager.id.clone());
        let lifecycle = Arc::new(
            Lifecycle::new(
                stores.db.clone(),
                EventProducer::new(stores.redis.stream.clone()),
                stores.redis.stat.clone(),
            )
            .with_rpc_cache(Arc::clone(&agent_rpc))
            .with_stream(stores.redis.stream.clone())
            .with_start_claims(start_claims.clone()),
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
        // Error logs past their retention are deleted on `do_log_cleanup`.
        bai_agents::error_log_handlers(
            &Arc::new(bai_agents::ErrorLogCleaner::new(
                stores.db.clone(),
                stores.etcd.clone(),
            )),
            &mut handlers,
        );
        // The agents' `agent_error` events become error logs (the reference's error monitor).
        bai_agents::agent_error_handlers(
            &Arc::new(bai_agents::AgentErrorCollector::new(stores.db.clone())),
            &mut handlers,
        );
        // Idle checks: a worker checks on a consumed `do_idle_check` (the global timer's event).
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
        tasks.spawn(
            "idle-checker",
            Criticality::Essential,
            move |shutdown| async move {
                // No local timer: worker 0's global timer produces `do_idle_check`.
                bai_sessions::run_idle_checker(idle_checker, idle_bursts, false, shutdown).await;
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
        )
        .with_shared_config(stores.shared_config.clone())
        // Sessions a dead node was starting are started again by the others.
        .with_start_claims(start_claims.clone(), stores.redis.stream.clone());
        // Every worker runs rounds on its events (no local timers: worker 0's global timers
        // produce `do_schedule` and `do_prepare`). Worker 0 of every node scans for hung sessions,
        // as every process of the reference does.
        if index == 0 {
            let hang_scanner = starter.hang_scanner();
            tasks.spawn(
                "hang-scanner",
                Criticality::Essential,
                |shutdown| async move {
                    bai_sessions::run_hang_scanner(hang_scanner, shutdown).await;
                    Ok::<(), Infallible>(())
                },
            );
        }
        // Model services: every worker creates the sessions of the routes it consumes; the
        // rounds run on the `do_scale` it consumes (worker 0's global timer produces them).
        let scaler = Arc::new(bai_sessions::Scaler::new(
            stores.db.clone(),
            stores.etcd.clone(),
            EventProducer::new(stores.redis.stream.clone()),
            bai_sessions::Destroyer::new(
                stores.db.clone(),
                EventProducer::new(stores.redis.stream.clone()),
                stores.redis.stat.clone(),
                Arc::clone(&agent_rpc),
            ),
        ));
        let (scale_trigger, scale_bursts) = bai_sessions::scale_triggers();
        bai_sessions::scale_handlers(&scaler, &scale_trigger, &mut handlers);
        tasks.spawn(
            "scaler",
            Criticality::Essential,
            move |shutdown| async move {
                bai_sessions::run_scaler(scaler, scale_bursts, shutdown).await;
                Ok::<(), Infallible>(())
            },
        );
        tasks.spawn(
            "session-dispatcher",
            Criticality::Essential,
            move |shutdown| async move {
                bai_sessions::run_dispatcher(scheduler, starter, bursts, false, shutdown).await;
                Ok::<(), Infallible>(())
            },
        );
        let options = ConsumerOptions {
            // A handler failing because a store is down runs again until it is back.
            is_outage: bai_stores::is_store_outage,
            ..ConsumerOptions::new(
                MANAGER_GROUP,
                bai_events::consumer_name(&self.config.manager.id, INSTALLATION, index),
            )
        };
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
            // Writes of other processes (and of psql, within the caches' age bounds) reach the
            // API's caches.
            let (caches, db) = (self.api_caches.invalidation(), self.config.db.clone());
            tasks.spawn(
                "cache-invalidation",
                Criticality::BestEffort,
                |shutdown| async move {
                    bai_cache::follow_changes(caches, db, shutdown.cancelled_owned()).await;
                    Ok::<(), Infallible>(())
                },
            );
            let (call_stats, stat) = (
                self.api_caches.call_stats().clone(),
                stores.redis.stat.clone(),
            );
            tasks.spawn(
                "call-statistics",
                Criticality::BestEffort,
                |shutdown| async move {
                    call_stats
                        .run(stat, CALL_STATS_EVERY, shutdown.cancelled_owned())
                        .await;
                    Ok::<(), Infallible>(())
                },
            );
            // The reference's global timers, on worker 0 of every node: their locks
            // (`[manager] distributed-lock`) let about one event per interval through cluster-wide.
            let config = Arc::clone(&self.config);
            let redis = stores.redis.clone();
            let producer = EventProducer::new(stores.redis.stream.clone());
            tasks.spawn(
                "global-timers",
                Criticality::Essential,
                |shutdown| async move {
                    let locks = bai_locks::LockFactory::connect(&config, &redis).await?;
                    let timers = bai_locks::manager_timers(&locks, &producer);
                    bai_locks::run_timers(timers, shutdown).await;
                    Ok::<(), bai_locks::LockError>(())
                },
            );
        }
        // The feed of the SSE clients (`/events/...`): a subscriber with a reader of its own.
        let (event_feed, feeder) = bai_sessions::event_feed(stores.db.clone());
        let redis = stores.redis.clone();
        tasks.spawn(
            "event-feed",
            Criticality::BestEffort,
            |shutdown| async move {
                let stream = redis.dedicated_stream().await?;
                feeder.run(stream.clone(), shutdown).await;
                stream.close().await;
                Ok::<(), bai_redis::RedisConnectError>(())
            },
        );
        if let Some(metrics) = &self.metrics {
            metrics.start_worker(index, &stores.db, &stores.redis.stream, tasks);
        }
        // Background tasks (`rescan_images`) end with the worker: each records `cancelled`
        // before the worker stops.
        let background_tasks =
            bai_events::BackgroundTasks::new(stores.redis.stream.clone(), tasks.shutdown());
        let supervised = background_tasks.clone();
        tasks.spawn(
            "background-tasks",
            Criticality::BestEffort,
            |shutdown| async move {
                shutdown.cancelled().await;
                supervised.wait().await;
                Ok::<(), std::convert::Infallible>(())
            },
        );
        let router = bai_api::router(
            ApiContext::with_caches(
                Arc::clone(&self.config),
                stores.clone(),
                self.api_caches.clone(),
            )
            .with_agent_rpc(agent_rpc)
            .with_background_tasks(background_tasks),
        )
        .layer(axum::Extension(event_feed));
        Ok(Worker {
            stores,
            node_lease,
            router,
        })
    }

    fn service(&self, worker: &Worker, peer: SocketAddr) -> Self::Service {
        // What `into_make_service_with_connect_info` does, for every connection we accept
        // ourselves (plain or TLS): handlers see the peer address.
        axum::Extension(ConnectInfo(peer)).layer(worker.router.clone())
    }

    async fn stop(&self, worker: Worker) {
        if let Some(lease) = &worker.node_lease
            && let Err(error) = lease.release(&worker.stores.etcd).await
        {
            tracing::warn!("cannot remove {} from etcd: {error}", lease.key());
        }
        worker.stores.close().await;
    }
}
