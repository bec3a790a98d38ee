//! The process-wide recorder and `GET /metrics`.
//!
//! [`install`] makes the `metrics-exporter-prometheus` recorder the global one (once per process:
//! every worker thread of a node records into it, so one scrape sees the whole node) and describes
//! the catalogue. [`router`] answers `GET /metrics` with the Prometheus text exposition format
//! (0.0.4); before rendering it runs the embedder's [`Sampler`], which reads what is cheaper to
//! read when asked than to track (agents by status, consumer groups, database pools). [`serve`]
//! runs the router on a listener the embedder bound.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::{CATALOGUE, Kind};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bucket bounds (seconds) of every `*_seconds` histogram: from a cached answer to a slow agent call.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How long a scrape waits for the sampler: a store that hangs must not hang the scrape, the
/// previous samples are served instead.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the recorder could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot install the metrics recorder: {0}")]
    Install(#[from] BuildError),
}

/// What reads the sampled metrics before each scrape (records them with [`crate::record`]).
pub type Sampler = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The installed recorder, to render from.
#[derive(Clone, Debug)]
pub struct MetricsHandle {
    prometheus: PrometheusHandle,
}

impl MetricsHandle {
    /// The text exposition of every metric recorded so far.
    pub fn render(&self) -> String {
        self.prometheus.run_upkeep();
        self.prometheus.render()
    }

    /// Drains the histograms' recent samples every `every` until `shutdown`: without scrapes they
    /// would pile up in memory.
    pub async fn run_upkeep(&self, every: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => self.prometheus.run_upkeep(),
            }
        }
    }
}

/// Installs the process-wide recorder and describes the catalogue. Fails when a recorder is
/// installed already.
pub fn install() -> Result<MetricsHandle, MetricsError> {
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)?
        .install_recorder()?;
    for metric in CATALOGUE {
        match metric.kind {
            Kind::Counter => describe_counter!(metric.name, metric.help),
            Kind::Gauge => describe_gauge!(metric.name, metric.help),
            Kind::Histogram => describe_histogram!(metric.name, Unit::Seconds, metric.help),
        }
    }
    Ok(MetricsHandle { prometheus })
}

#[derive(Clone)]
struct Exporter {
    handle: MetricsHandle,
    sampler: Sampler,
}

/// `GET /metrics`; other paths answer 404.
pub fn router(handle: MetricsHandle, sampler: Sampler) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Exporter { handle, sampler })
}

async fn scrape(State(exporter): State<Exporter>) -> Response {
    if tokio::time::timeout(SAMPLE_TIMEOUT, (exporter.sampler)())
        .await
        .is_err()
    {
        tracing::warn!(
            "metrics: sampling the stores took over {SAMPLE_TIMEOUT:?}; serving the last samples"
        );
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        exporter.handle.render(),
    )
        .into_response()
}

/// Serves `router` on `listener` until `shutdown`.
pub async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
