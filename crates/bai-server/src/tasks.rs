//! Background tasks: long-lived work beside a worker's HTTP service (event consumers, a scheduler,
//! timers). The [`App`](crate::App) spawns them in [`App::start`](crate::App::start) through
//! [`Tasks`]; each runs on that worker's runtime, so a task spawned on worker 0 only runs once per
//! node and one spawned on every worker runs once per worker.
//!
//! Each worker supervises its own tasks. While the server runs, a task that ends is reported: `Ok`
//! at DEBUG (one-shot work), an error or a panic as one ERROR line naming the worker and the task;
//! a [`Criticality::Essential`] task's failure also stops the server, which then exits non-zero.
//! On shutdown the token every task holds is cancelled at once, the worker waits up to
//! [`ShutdownBudget::tasks`](crate::ShutdownBudget::tasks) for its tasks to return (while its
//! connections drain), then aborts the ones still running with one WARN line naming them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error_chain;
use crate::runtime::Report;

type BoxError = Box<dyn StdError + Send + Sync>;
type TaskFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// What a background task's failure (an error or a panic before shutdown) does to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Criticality {
    /// The server cannot do its job without the task: it shuts down and exits non-zero.
    Essential,
    /// The failure is logged and the server goes on without the task.
    BestEffort,
}

/// How a background task died.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskFailure {
    /// It returned this error (with its causes).
    Error(String),
    /// It panicked with this message.
    Panic(String),
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskFailure::Error(message) => write!(f, "failed: {message}"),
            TaskFailure::Panic(message) => write!(f, "panicked: {message}"),
        }
    }
}

/// Where the [`App`](crate::App) spawns one worker's background tasks. A clone is another handle
/// on the same worker (an app may keep one to spawn tasks later, timers for instance).
///
/// ```
/// use std::time::Duration;
///
/// use bai_server::{Criticality, Tasks};
/// use tokio_util::sync::CancellationToken;
///
/// async fn check_lost_agents(shutdown: CancellationToken) -> Result<(), std::io::Error> {
///     let mut rounds = tokio::time::interval(Duration::from_secs(10));
///     loop {
///         tokio::select! {
///             () = shutdown.cancelled() => return Ok(()),
///             _ = rounds.tick() => {}
///         }
///     }
/// }
///
/// // In `App::start(&self, index, tasks)`: worker 0 does once-per-node work.
/// fn spawn_tasks(index: usize, tasks: &Tasks) {
///     if index == 0 {
///         tasks.spawn("lost-agent-check", Criticality::BestEffort, check_lost_agents);
///     }
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Tasks {
    worker: usize,
    shutdown: CancellationToken,
    spawned: mpsc::UnboundedSender<Spawned>,
}

impl Tasks {
    /// The shutdown signal: cancelled at once on SIGTERM or SIGINT, when an essential task fails,
    /// or when this worker cannot start. Cancelling the token returned here stops nothing else.
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.child_token()
    }

    /// Starts the future `task` makes on this worker's runtime; `name` is how log lines call it.
    ///
    /// `task` gets the shutdown token and should return soon after it is cancelled: the worker
    /// waits [`ShutdownBudget::tasks`](crate::ShutdownBudget::tasks) for it, then aborts it.
    /// Returning `Ok` before shutdown is fine (one-shot work); an error or a panic is logged, and
    /// stops the server when `criticality` is [`Criticality::Essential`]. Once the worker is
    /// shutting down, new tasks are not started.
    pub fn spawn<F, Fut, E>(
        &self,
        name: impl Into<Cow<'static, str>>,
        criticality: Criticality,
        task: F,
    ) where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: StdError + Send + Sync + 'static,
    {
        let name = name.into();
        if self.shutdown.is_cancelled() || self.spawned.is_closed() {
            tracing::debug!(
                "worker-{}: task {name} not started: shutting down",
                self.worker
            );
            return;
        }
        let span = tracing::info_span!("task", task.name = %name, worker = self.worker);
        let work = task(self.shutdown.child_token());
        let future: TaskFuture = Box::pin(
            async move { work.await.map_err(|error| Box::new(error) as BoxError) }.instrument(span),
        );
        let spawned = Spawned {
            name,
            criticality,
            future,
        };
        if let Err(refused) = self.spawned.send(spawned) {
            tracing::debug!(
                "worker-{}: task {} not started: shutting down",
                self.worker,
                refused.0.name
            );
        }
    }
}

/// A task on its way from [`Tasks::spawn`] to the worker's supervisor.
struct Spawned {
    name: Cow<'static, str>,
    criticality: Criticality,
    future: TaskFuture,
}

impl fmt::Debug for Spawned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawned")
            .field("name", &self.name)
            .field("criticality", &self.criticality)
            .finish_non_exhaustive()
    }
}

/// One worker's [`Tasks`] handle and the supervisor that runs what is spawned through it.
/// `shutdown` is the worker's token; `reports` reaches the main thread.
pub(crate) fn supervised(
    worker: usize,
    shutdown: CancellationToken,
    reports: mpsc::UnboundedSender<Report>,
) -> (Tasks, Supervisor) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let tasks = Tasks {
        worker,
        shutdown: shutdown.clone(),
        spawned: sender,
    };
    let supervisor = Supervisor {
        worker,
        shutdown,
        spawned: receiver,
        reports,
        running: JoinSet::new(),
        names: HashMap::new(),
    };
    (tasks, supervisor)
}

/// Runs one worker's tasks on its runtime and reports how they end.
pub(crate) struct Supervisor {
    worker: usize,
    shutdown: CancellationToken,
    spawned: mpsc::UnboundedReceiver<Spawned>,
    reports: mpsc::UnboundedSender<Report>,
    running: JoinSet<Result<(), BoxError>>,
    names: HashMap<Id, (Cow<'static, str>, Criticality)>,
}

impl Supervisor {
    /// Starts and watches tasks until the worker's shutdown token is cancelled, then gives them
    /// `budget` to return and aborts the rest.
    pub(crate) async fn run(mut self, budget: Duration) {
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                Some(spawned) = self.spawned.recv() => self.start(spawned),
                Some(ended) = self.running.join_next_with_id(), if !self.running.is_empty() => {
                    self.ended(ended);
                }
            }
        }
        self.spawned.close();
        while let Ok(spawned) = self.spawned.try_recv() {
            tracing::debug!(
                "worker-{}: task {} not started: shutting down",
                self.worker,
                spawned.name
            );
        }

        let deadline = tokio::time::sleep(budget);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                ended = self.running.join_next_with_id() => match ended {
                    Some(ended) => self.ended(ended),
                    None => return,
                },
                () = &mut deadline => break,
            }
        }
        let mut still_running: Vec<&str> = self.names.values().map(|(name, _)| &**name).collect();
        still_running.sort_unstable();
        tracing::warn!(
            "worker-{}: tasks still running {:.1} s into the shutdown, aborted: {}",
            self.worker,
            budget.as_secs_f64(),
            still_running.join(", ")
        );
        self.running.shutdown().await;
    }

    fn start(&mut self, spawned: Spawned) {
        let task = self.running.spawn(spawned.future);
        tracing::debug!("worker-{}: task {} started", self.worker, spawned.name);
        self.names
            .insert(task.id(), (spawned.name, spawned.criticality));
    }

    fn ended(&mut self, ended: Result<(Id, Result<(), BoxError>), JoinError>) {
        let (id, failure) = match ended {
            Ok((id, Ok(()))) => (id, None),
            Ok((id, Err(error))) => (id, Some(TaskFailure::Error(error_chain(&*error)))),
            Err(error) => {
                let id = error.id();
                match error.try_into_panic() {
                    Ok(payload) => (id, Some(TaskFailure::Panic(panic_message(&*payload)))),
                    // Only an abort cancels a task, and only `run` aborts, after its last report.
                    Err(_) => (id, None),
                }
            }
        };
        let Some((name, criticality)) = self.names.remove(&id) else {
            return;
        };
        let worker = self.worker;
        // A failure during shutdown is logged, but the shutdown is under way already.
        let running = !self.shutdown.is_cancelled();
        match failure {
            None if running => {
                tracing::debug!("worker-{worker}: task {name} finished")
            }
            None => tracing::debug!("worker-{worker}: task {name} stopped"),
            Some(failure) if running && criticality == Criticality::Essential => {
                tracing::error!(
                    "worker-{worker}: essential task {name} {failure}; stopping the server"
                );
                let _ = self.reports.send(Report::TaskFailed {
                    worker,
                    task: name.into_owned(),
                    failure,
                });
            }
            Some(failure) => tracing::error!("worker-{worker}: task {name} {failure}"),
        }
    }
}

/// What `panic!` was given, when it is text.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}
