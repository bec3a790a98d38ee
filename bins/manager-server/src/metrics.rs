//! `GET /metrics` of the node (`[manager] metrics-enabled`, `metrics-addr`): the listener is bound
//! in `main` before privileges are dropped, the recorder is installed once for the process, and
//! worker 0 serves the listener. What is cheaper to read at scrape time than to track is sampled
//! then: agents by status, the consumer groups' backlog, and every worker's database pool.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bai_db_models::queries::agent_listing::{AGENT_STATUSES, count_by_status, status_by_name};
use bai_metrics::exporter::{MetricsHandle, Sampler};
use bai_metrics::record;
use bai_redis::StreamDb;
use bai_server::{Criticality, Tasks};
use sea_orm::DatabaseConnection;

/// How often histograms are drained between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The recorder and the bound listener, until worker 0 takes the listener.
#[derive(Debug)]
pub struct MetricsExport {
    handle: MetricsHandle,
    listener: Mutex<Option<TcpListener>>,
    /// Every worker's pool, by worker index, sampled at scrape time.
    pools: Arc<Mutex<BTreeMap<usize, DatabaseConnection>>>,
}

impl MetricsExport {
    pub fn new(handle: MetricsHandle, listener: TcpListener) -> MetricsExport {
        MetricsExport {
            handle,
            listener: Mutex::new(Some(listener)),
            pools: Arc::default(),
        }
    }

    /// Worker `index` has connected `db`; worker 0 (`stream`: its stream connection) also serves
    /// the listener, as tasks of `tasks`.
    pub fn start_worker(
        &self,
        index: usize,
        db: &DatabaseConnection,
        stream: &StreamDb,
        tasks: &Tasks,
    ) {
        lock(&self.pools).insert(index, db.clone());
        if index != 0 {
            return;
        }
        let Some(listener) = lock(&self.listener).take() else {
            return;
        };
        let sampler = sampler(db.clone(), stream.clone(), Arc::clone(&self.pools));
        let router = bai_metrics::exporter::router(self.handle.clone(), sampler);
        tasks.spawn("metrics", Criticality::BestEffort, |shutdown| {
            bai_metrics::exporter::serve(listener, router, shutdown)
        });
        let handle = self.handle.clone();
        tasks.spawn(
            "metrics-upkeep",
            Criticality::BestEffort,
            |shutdown| async move {
                handle.run_upkeep(UPKEEP_EVERY, shutdown).await;
                Ok::<(), Infallible>(())
            },
        );
    }
}

fn sampler(
    db: DatabaseConnection,
    stream: StreamDb,
    pools: Arc<Mutex<BTreeMap<usize, DatabaseConnection>>>,
) -> Sampler {
    Arc::new(move || {
        let (db, stream, pools) = (db.clone(), stream.clone(), Arc::clone(&pools));
        Box::pin(async move {
            for (worker, pool) in lock(&pools).iter() {
                let usage = bai_db_models::pool_usage(pool);
                record::db_pool(*worker, usage.in_use, usage.idle, usage.max);
            }
            match count_by_status(&db).await {
                Ok(counts) => {
                    for (name, _) in AGENT_STATUSES {
                        let agents = counts
                            .iter()
                            .find(|(status, _)| Some(*status) == status_by_name(name))
                            .map_or(0, |(_, count)| *count);
                        record::agents(name, agents);
                    }
                }
                Err(error) => tracing::warn!("metrics: cannot count the agents: {error}"),
            }
            match stream.group_backlogs().await {
                Ok(groups) => {
                    for group in groups {
                        record::event_group(&group.name, group.lag, group.pending);
                    }
                }
                Err(error) => {
                    tracing::warn!("metrics: cannot read the event stream's groups: {error}");
                }
            }
        })
    })
}

/// The maps hold plain values: a panic elsewhere cannot leave them half-written.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
