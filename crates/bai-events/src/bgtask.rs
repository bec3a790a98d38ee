//! Background tasks as the reference's `BackgroundTaskManager` runs them: a request starts one and
//! gets its id at once; the work goes on in a task of its own, reporting progress into the tracker
//! `bgtask.{id}` (through `bai-redis`) and onto the bus as `bgtask_updated`, and ends with
//! `bgtask_done`, `bgtask_failed` (the error's message) or `bgtask_cancelled` (the process shut
//! down). `GET /events/background-task` follows a task from any node: the tracker tells how an
//! ended task ended, the bus what a running one does.
//!
//! The one place this crate spawns: a task outlives the request that started it, by design. The
//! runner's owner gives it a shutdown token and waits for it ([`BackgroundTasks::wait`]), so every
//! task records how it ended before the process exits.

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bai_redis::{BgtaskEnding, RedisError, StreamDb};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

use crate::bus::EventProducer;
use crate::catalogue::{BgtaskEnd, BgtaskProgress, Event};

/// How long after its start a task's first progress report waits. The official CLI follows a
/// task it started (`admin image rescan`) with a spinner that it stops at the first
/// `bgtask_updated`; an update that reaches it before the spinner ran once makes it crash
/// (`CancelledError`). Clients subscribe within milliseconds of the answer that named the task.
pub const FIRST_REPORT_AFTER: Duration = Duration::from_secs(1);

/// What a task's work returns: a message for the tracker (empty for none), or why it failed.
pub type BgtaskResult = Result<String, Box<dyn StdError + Send + Sync>>;

/// Why a task was not started.
#[derive(Debug, thiserror::Error)]
pub enum BgtaskStartError {
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("cannot create the background task's tracker: {0}")]
    Tracker(#[from] RedisError),
}

/// The runner of one process (or worker): cheap to clone.
#[derive(Clone, Debug)]
pub struct BackgroundTasks {
    stream: StreamDb,
    shutdown: CancellationToken,
    running: TaskTracker,
}

impl BackgroundTasks {
    /// Tasks whose trackers and events go to `stream`; cancelling `shutdown` cancels every task
    /// (each records `cancelled`) and refuses new ones.
    pub fn new(stream: StreamDb, shutdown: CancellationToken) -> BackgroundTasks {
        BackgroundTasks {
            stream,
            shutdown,
            running: TaskTracker::new(),
        }
    }

    /// Tasks without a shutdown signal, for embedders that have none: they run until they end or
    /// the runtime stops (then their trackers stay `started` until they expire).
    pub fn unsupervised(stream: StreamDb) -> BackgroundTasks {
        BackgroundTasks::new(stream, CancellationToken::new())
    }

    /// Creates the tracker of a new task, starts `work` with its reporter and returns the task's
    /// id; `name` is how log lines call it.
    pub async fn start<F, Fut>(&self, name: &'static str, work: F) -> Result<Uuid, BgtaskStartError>
    where
        F: FnOnce(ProgressReporter) -> Fut,
        Fut: Future<Output = BgtaskResult> + Send + 'static,
    {
        if self.shutdown.is_cancelled() || self.running.is_closed() {
            return Err(BgtaskStartError::ShuttingDown);
        }
        let task_id = Uuid::new_v4();
        self.stream.start_bgtask_tracker(task_id).await?;
        let reporter = ProgressReporter {
            task_id,
            stream: self.stream.clone(),
            progress: Arc::new(Progress::default()),
            first_report: tokio::time::Instant::now() + FIRST_REPORT_AFTER,
        };
        let work = work(reporter);
        let stream = self.stream.clone();
        let shutdown = self.shutdown.clone();
        let span = tracing::info_span!("bgtask", bgtask.id = %task_id, bgtask.name = name);
        self.running.spawn(
            async move {
                let (ending, message) = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => (BgtaskEnding::Cancelled, String::new()),
                    result = work => match result {
                        Ok(message) => (BgtaskEnding::Done, message),
                        Err(error) => {
                            tracing::error!("background task {name} failed: {error}");
                            (BgtaskEnding::Failed, error.to_string())
                        }
                    },
                };
                record_end(&stream, task_id, ending, message).await;
                tracing::info!("background task {name}: {}", ending.as_str());
            }
            .instrument(span),
        );
        Ok(task_id)
    }

    /// Refuses new tasks and waits until every task has recorded how it ended (they end soon
    /// after the shutdown token is cancelled).
    pub async fn wait(&self) {
        self.running.close();
        self.running.wait().await;
    }
}

/// The tracker's end and the event saying it; a failure is logged (nobody is left to tell).
async fn record_end(stream: &StreamDb, task_id: Uuid, ending: BgtaskEnding, message: String) {
    if let Err(error) = stream.end_bgtask_tracker(task_id, ending, &message).await {
        tracing::warn!("cannot record the end of background task {task_id}: {error}");
    }
    let end = BgtaskEnd {
        task_id,
        message: Some(message),
    };
    let event = match ending {
        BgtaskEnding::Done => Event::BgtaskDone(end),
        BgtaskEnding::Cancelled => Event::BgtaskCancelled(end),
        BgtaskEnding::Failed => Event::BgtaskFailed(end),
    };
    if let Err(error) = EventProducer::new(stream.clone())
        .produce(&event, "manager")
        .await
    {
        tracing::warn!("cannot announce the end of background task {task_id}: {error}");
    }
}

/// A task's progress: how many steps of how many are done. Clones report into the same task.
#[derive(Clone, Debug)]
pub struct ProgressReporter {
    task_id: Uuid,
    stream: StreamDb,
    progress: Arc<Progress>,
    /// No report is written or announced before then ([`FIRST_REPORT_AFTER`]).
    first_report: tokio::time::Instant,
}

#[derive(Debug, Default)]
struct Progress {
    current: AtomicU64,
    total: AtomicU64,
}

impl ProgressReporter {
    pub fn task_id(&self) -> Uuid {
        self.task_id
    }

    /// `steps` more steps to do; told with the next [`update`](Self::update).
    pub fn add_total(&self, steps: u64) {
        self.progress.total.fetch_add(steps, Ordering::Relaxed);
    }

    /// `increment` more steps done, with `message` (e.g. what was done): written into the tracker
    /// and announced as `bgtask_updated` (not before [`FIRST_REPORT_AFTER`] from the start).
    pub async fn update(&self, increment: u64, message: Option<&str>) -> Result<(), RedisError> {
        tokio::time::sleep_until(self.first_report).await;
        // Read together, as the reference does, before anything else interleaves.
        let current = self
            .progress
            .current
            .fetch_add(increment, Ordering::Relaxed)
            + increment;
        let total = self.progress.total.load(Ordering::Relaxed);
        self.stream
            .update_bgtask_tracker(self.task_id, current, total, message)
            .await?;
        let event = Event::BgtaskUpdated(BgtaskProgress {
            task_id: self.task_id,
            current: current as f64,
            total: total as f64,
            message: message.map(str::to_owned),
        });
        EventProducer::new(self.stream.clone())
            .produce(&event, "manager")
            .await?;
        Ok(())
    }
}
