//! The process: what the main thread does from start to exit, and what each worker thread does.
//!
//! The main thread takes the pid file, loads the TLS files, binds `num-proc` listeners, drops
//! privileges and starts one worker thread per listener. Each worker runs its own current-thread
//! tokio runtime: it asks the [`App`] for its state (connections to etcd, the database, Redis),
//! letting it spawn background tasks on that runtime ([`Tasks`]), and serves its listener while
//! the tasks run beside it. The main thread meanwhile waits for signals and for the workers'
//! reports: SIGTERM or SIGINT, a worker that fails or an essential task that dies cancels the
//! shutdown token every worker and task holds; a second signal exits at once.
//!
//! On shutdown each worker drains its connections and lets its tasks return at the same time,
//! each within its budget ([`ShutdownBudget`]), aborts the tasks still running, and then hands its
//! state back to the [`App`] ([`App::stop`]); the main thread exits when every worker has stopped
//! or the total budget is spent.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bai_config::{HostPort, ManagerSection, UnixAccount};
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::limits::{ConnectionLimits, raise_open_files_limit};
use crate::listener::{BindError, bind_listeners, resolve};
use crate::pidfile::{PidFile, PidFileError};
use crate::privileges::{PrivilegeError, drop_privileges};
use crate::tasks::{TaskFailure, Tasks, supervised};
use crate::tls::{TlsError, TlsFiles, load_tls_config};
use crate::{error_chain, serve};

type BoxError = Box<dyn StdError + Send + Sync>;

/// What the runtime asks of the application, once per worker.
pub trait App: Send + Sync + 'static {
    /// The state one worker holds (its connections); created and dropped on the worker's thread.
    type Worker;
    /// The response body of [`App::Service`].
    type Body: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static;
    /// What serves one connection's requests.
    type Service: tower::Service<
            Request<Incoming>,
            Response = Response<Self::Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static;
    /// Why a worker could not start.
    type Error: StdError + Send + Sync + 'static;

    /// Connects what worker `index` needs (0 is the first worker, which does once-per-node duties)
    /// and spawns its background tasks on `tasks`: on worker 0 only for once-per-node work (a
    /// scheduler), on every worker for once-per-worker work (event consumers).
    /// [`Tasks::shutdown`] is the shutdown signal for anything else that must stop with the server.
    fn start(
        &self,
        index: usize,
        tasks: &Tasks,
    ) -> impl Future<Output = Result<Self::Worker, Self::Error>>;

    /// The service for one connection from `peer`.
    fn service(&self, worker: &Self::Worker, peer: SocketAddr) -> Self::Service;

    /// Releases what [`App::start`] connected, once the worker's connections are drained and its
    /// tasks have returned or been aborted. Bounded by [`ShutdownBudget::stop`].
    fn stop(&self, worker: Self::Worker) -> impl Future<Output = ()>;
}

/// How the process runs: the `[manager]` keys that concern the runtime.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub service_addr: HostPort,
    pub workers: usize,
    /// Empty: no pid file.
    pub pid_file: PathBuf,
    pub user: Option<UnixAccount>,
    pub group: Option<UnixAccount>,
    pub tls: Option<TlsFiles>,
    pub budget: ShutdownBudget,
    pub limits: ConnectionLimits,
}

impl ServerOptions {
    pub fn from_config(manager: &ManagerSection) -> ServerOptions {
        let tls = match (&manager.ssl_cert, &manager.ssl_privkey) {
            (Some(cert), Some(key)) if manager.ssl_enabled => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        ServerOptions {
            service_addr: manager.service_addr.clone(),
            workers: usize::try_from(manager.num_proc.max(1)).unwrap_or(1),
            pid_file: manager.pid_file.clone(),
            user: manager.user.clone(),
            group: manager.group.clone(),
            tls,
            budget: ShutdownBudget::default(),
            limits: ConnectionLimits::from_config(manager),
        }
    }
}

/// How the shutdown fits into systemd's `TimeoutStopSec=5` (after which systemd kills the process).
///
/// At the signal the shutdown token is cancelled; connections drain and background tasks return
/// at the same time, each within its own budget; then [`App::stop`] gets `stop`. So
/// `max(drain, tasks) + stop` must fit in `total`, and `total` stays under systemd's 5 s: by
/// default 3 s + 1 s of 4.5 s, the rest being slack for the exit itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownBudget {
    /// How long open connections may take to finish their requests.
    pub drain: Duration,
    /// How long background tasks may take to return; those still running then are aborted.
    pub tasks: Duration,
    /// How long each worker may take to close its connections to the stores afterwards.
    pub stop: Duration,
    /// From the signal to exit, whatever happens: workers still busy then are abandoned.
    pub total: Duration,
}

impl Default for ShutdownBudget {
    fn default() -> Self {
        ShutdownBudget {
            drain: Duration::from_millis(3000),
            tasks: Duration::from_millis(3000),
            stop: Duration::from_millis(1000),
            total: Duration::from_millis(4500),
        }
    }
}

/// Why the server stopped other than by a signal.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    PidFile(#[from] PidFileError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    #[error("cannot set up {what}: {source}")]
    Setup {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("worker-{worker} failed to start: {message}")]
    WorkerFailed { worker: usize, message: String },
    #[error("worker-{worker} stopped unexpectedly (it panicked)")]
    WorkerDied { worker: usize },
    #[error("worker-{worker}: essential task {task} {failure}")]
    TaskFailed {
        worker: usize,
        task: String,
        failure: TaskFailure,
    },
    #[error(
        "{pending} of {workers} workers did not stop within {seconds:.1} s; exiting without them"
    )]
    ShutdownTimeout {
        pending: usize,
        workers: usize,
        seconds: f64,
    },
    #[error("a second {signal} during shutdown: exiting at once")]
    Interrupted { signal: &'static str },
}

/// Runs the server until SIGTERM or SIGINT (then `Ok`) or until it cannot go on (then `Err`).
/// Every error it returns has been logged already; the caller only turns it into an exit status.
pub fn run<A: App>(options: ServerOptions, app: A) -> Result<(), ServerError> {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| {
            Failure::from(ServerError::Setup {
                what: "the main thread's runtime",
                source,
            })
        })
        .and_then(|runtime| {
            let result = runtime.block_on(supervise(options, Arc::new(app)));
            // Tasks that may still block (name lookups) must not hold up the exit.
            runtime.shutdown_background();
            result
        });
    let result = result.map_err(|failure| {
        if !failure.logged {
            tracing::error!("{}", error_chain(&failure.error));
        }
        failure.error
    });
    tracing::info!("terminated.");
    result
}

/// An error and whether it was logged when it happened (worker failures are, so that the log
/// shows them before the shutdown they cause).
struct Failure {
    error: ServerError,
    logged: bool,
}

impl<E: Into<ServerError>> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure {
            error: error.into(),
            logged: false,
        }
    }
}

/// What a worker thread tells the main thread.
#[derive(Debug)]
pub(crate) enum Report {
    Started(usize),
    Failed(usize, String),
    /// An essential task died before shutdown (the worker has logged it).
    TaskFailed {
        worker: usize,
        task: String,
        failure: TaskFailure,
    },
    /// Sent exactly once per worker, when its thread ends.
    Exited {
        worker: usize,
        panicked: bool,
    },
}

async fn supervise<A: App>(options: ServerOptions, app: Arc<A>) -> Result<(), Failure> {
    // Signals first: from here on SIGTERM is a graceful stop, never the default sudden death.
    let mut signals = Signals::new()?;
    let pid_file = PidFile::acquire(&options.pid_file)?;
    let tls = options
        .tls
        .as_ref()
        .map(load_tls_config)
        .transpose()?
        .map(TlsAcceptor::from);
    raise_open_files_limit(options.limits.descriptors_needed(options.workers)).map_err(
        |source| ServerError::Setup {
            what: "the open files limit",
            source,
        },
    )?;
    let listeners = bind_listeners(resolve(&options.service_addr)?, options.workers)?;
    let local_addr = listeners
        .first()
        .and_then(|listener| listener.local_addr().ok());
    if let Some((uid, gid)) = drop_privileges(options.user.as_ref(), options.group.as_ref())? {
        tracing::info!("changed process uid and gid to {uid}:{gid}");
    }

    let workers = listeners.len();
    let shutdown = CancellationToken::new();
    let (reports, mut inbox) = mpsc::unbounded_channel();
    for (index, listener) in listeners.into_iter().enumerate() {
        let worker = Worker {
            index,
            app: Arc::clone(&app),
            tls: tls.clone(),
            shutdown: shutdown.child_token(),
            reports: reports.clone(),
            budget: options.budget,
            limits: options.limits,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("worker-{index}"))
            .spawn(move || worker.run(listener));
        if let Err(source) = spawned {
            shutdown.cancel();
            return Err(ServerError::Setup {
                what: "a worker thread",
                source,
            }
            .into());
        }
    }
    drop(reports);

    let mut started = 0;
    let mut exited = 0;
    let mut failure: Option<ServerError> = None;
    // The first failure is logged when it happens; later ones are consequences or repeats.
    let fail = |failure: &mut Option<ServerError>, error: ServerError| {
        if failure.is_none() {
            tracing::error!("{}", error_chain(&error));
            *failure = Some(error);
        } else {
            tracing::warn!("{}", error_chain(&error));
        }
    };
    let mut deadline: Option<Instant> = None;
    let begin_shutdown = |deadline: &mut Option<Instant>| {
        if deadline.is_none() {
            *deadline = Some(Instant::now() + options.budget.total);
            shutdown.cancel();
        }
    };
    while exited < workers {
        let far_future = Instant::now() + Duration::from_secs(86_400);
        tokio::select! {
            signal = signals.recv() => {
                if deadline.is_some() {
                    return Err(ServerError::Interrupted { signal }.into());
                }
                tracing::info!("shutting down... ({signal})");
                begin_shutdown(&mut deadline);
            }
            report = inbox.recv() => match report {
                Some(Report::Started(index)) => {
                    tracing::debug!("worker-{index} is serving");
                    started += 1;
                    if started == workers && deadline.is_none() {
                        let addr = local_addr.map_or_else(
                            || options.service_addr.to_string(),
                            |addr| addr.to_string(),
                        );
                        tracing::info!("started handling API requests at {addr}");
                    }
                }
                Some(Report::Failed(worker, message)) => {
                    fail(&mut failure, ServerError::WorkerFailed { worker, message });
                    begin_shutdown(&mut deadline);
                }
                Some(Report::TaskFailed { worker, task, failure: cause }) => {
                    if failure.is_none() {
                        failure = Some(ServerError::TaskFailed { worker, task, failure: cause });
                    }
                    begin_shutdown(&mut deadline);
                }
                Some(Report::Exited { worker, panicked }) => {
                    exited += 1;
                    tracing::debug!("worker-{worker} has stopped");
                    if panicked || (deadline.is_none() && failure.is_none()) {
                        fail(&mut failure, ServerError::WorkerDied { worker });
                    }
                    begin_shutdown(&mut deadline);
                }
                None => break,
            },
            () = tokio::time::sleep_until(deadline.unwrap_or(far_future)), if deadline.is_some() => {
                return Err(ServerError::ShutdownTimeout {
                    pending: workers - exited,
                    workers,
                    seconds: options.budget.total.as_secs_f64(),
                }
                .into());
            }
        }
    }
    pid_file.release();
    match failure {
        Some(error) => Err(Failure {
            error,
            logged: true,
        }),
        None => Ok(()),
    }
}

/// SIGTERM (systemd's stop) and SIGINT (Ctrl-C).
struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    fn new() -> Result<Signals, ServerError> {
        let listen = |kind| {
            signal(kind).map_err(|source| ServerError::Setup {
                what: "signal handling",
                source,
            })
        };
        Ok(Signals {
            terminate: listen(SignalKind::terminate())?,
            interrupt: listen(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// One worker thread.
struct Worker<A> {
    index: usize,
    app: Arc<A>,
    tls: Option<TlsAcceptor>,
    /// A child of the process's token: cancelled with it, or alone when this worker cannot go on.
    shutdown: CancellationToken,
    reports: mpsc::UnboundedSender<Report>,
    budget: ShutdownBudget,
    limits: ConnectionLimits,
}

/// Tells the main thread that the worker's thread ended, also when it panicked.
struct ExitReport {
    index: usize,
    reports: mpsc::UnboundedSender<Report>,
}

impl Drop for ExitReport {
    fn drop(&mut self) {
        let _ = self.reports.send(Report::Exited {
            worker: self.index,
            panicked: std::thread::panicking(),
        });
    }
}

impl<A: App> Worker<A> {
    fn run(self, listener: std::net::TcpListener) {
        let _exit_report = ExitReport {
            index: self.index,
            reports: self.reports.clone(),
        };
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                self.fail(format!("cannot start its runtime: {error}"));
                return;
            }
        };
        runtime.block_on(self.serve(listener));
        runtime.shutdown_background();
    }

    /// Tells the main thread, and stops this worker's tasks without waiting for it.
    fn fail(&self, message: String) {
        let _ = self.reports.send(Report::Failed(self.index, message));
        self.shutdown.cancel();
    }

    async fn serve(&self, listener: std::net::TcpListener) {
        let (tasks, supervisor) =
            supervised(self.index, self.shutdown.clone(), self.reports.clone());
        // The tasks start as the app spawns them, and stop while the connections drain.
        let (state, ()) = tokio::join!(
            self.start_and_serve(listener, &tasks),
            supervisor.run(self.budget.tasks)
        );
        let Some(state) = state else {
            return;
        };
        if tokio::time::timeout(self.budget.stop, self.app.stop(state))
            .await
            .is_err()
        {
            tracing::warn!(
                "worker-{}: closing its connections took longer than {:.1} s; left to the exit",
                self.index,
                self.budget.stop.as_secs_f64()
            );
        }
    }

    /// The app's state once the listener is drained; `None` when the app did not start.
    async fn start_and_serve(
        &self,
        listener: std::net::TcpListener,
        tasks: &Tasks,
    ) -> Option<A::Worker> {
        let started = tokio::select! {
            started = self.app.start(self.index, tasks) => started,
            () = self.shutdown.cancelled() => return None,
        };
        let state = match started {
            Ok(state) => state,
            Err(error) => {
                self.fail(error_chain(&error));
                return None;
            }
        };
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => {
                let _ = self.reports.send(Report::Started(self.index));
                serve(
                    listener,
                    self.tls.clone(),
                    |peer| self.app.service(&state, peer),
                    self.shutdown.cancelled(),
                    self.budget.drain,
                    self.limits,
                )
                .await;
            }
            Err(error) => self.fail(format!("cannot use its listener: {error}")),
        }
        Some(state)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::ShutdownBudget;

    /// systemd's `TimeoutStopSec` in the install guide's unit.
    const SYSTEMD_STOP_TIMEOUT: Duration = Duration::from_secs(5);

    #[test]
    fn the_default_budget_fits_in_systemds_stop_timeout() {
        let budget = ShutdownBudget::default();
        assert!(budget.drain.max(budget.tasks) + budget.stop <= budget.total);
        assert!(budget.total < SYSTEMD_STOP_TIMEOUT);
    }
}
