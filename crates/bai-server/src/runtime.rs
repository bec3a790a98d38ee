//! The process: what the main thread does from start to exit, and what each worker thread does.
//!
//! The main thread takes the pid file, loads the TLS files, binds `num-proc` listeners, drops
//! privileges and starts one worker thread per listener. Each worker runs its own current-thread
//! tokio runtime: it asks the [`App`] for its state (connections to etcd, the database, Redis),
//! serves its listener, and on shutdown drains its connections and hands the state back to the
//! [`App`]. The main thread meanwhile waits for signals and for the workers' reports: SIGTERM or
//! SIGINT, or a worker that fails, stops every worker; a second signal exits at once.

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
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::listener::{BindError, bind_listeners, resolve};
use crate::pidfile::{PidFile, PidFileError};
use crate::privileges::{PrivilegeError, drop_privileges};
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

    /// Connects what worker `index` needs (0 is the first worker, which does once-per-node duties).
    fn start(&self, index: usize) -> impl Future<Output = Result<Self::Worker, Self::Error>>;

    /// The service for one connection from `peer`.
    fn service(&self, worker: &Self::Worker, peer: SocketAddr) -> Self::Service;

    /// Releases what [`App::start`] connected. Bounded by [`ShutdownBudget::stop`].
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
        }
    }
}

/// How the shutdown fits into systemd's `TimeoutStopSec=5` (after which systemd kills the process).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownBudget {
    /// How long open connections may take to finish their requests.
    pub drain: Duration,
    /// How long each worker may take to close its connections to the stores afterwards.
    pub stop: Duration,
    /// From the signal to exit, whatever happens: workers still busy then are abandoned.
    pub total: Duration,
}

impl Default for ShutdownBudget {
    fn default() -> Self {
        ShutdownBudget {
            drain: Duration::from_millis(3000),
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
enum Report {
    Started(usize),
    Failed(usize, String),
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
    let listeners = bind_listeners(resolve(&options.service_addr)?, options.workers)?;
    let local_addr = listeners
        .first()
        .and_then(|listener| listener.local_addr().ok());
    if let Some((uid, gid)) = drop_privileges(options.user.as_ref(), options.group.as_ref())? {
        tracing::info!("changed process uid and gid to {uid}:{gid}");
    }

    let workers = listeners.len();
    let (stop, stopped) = watch::channel(false);
    let (reports, mut inbox) = mpsc::unbounded_channel();
    for (index, listener) in listeners.into_iter().enumerate() {
        let worker = Worker {
            index,
            app: Arc::clone(&app),
            tls: tls.clone(),
            stop: stopped.clone(),
            reports: reports.clone(),
            budget: options.budget,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("worker-{index}"))
            .spawn(move || worker.run(listener));
        if let Err(source) = spawned {
            let _ = stop.send(true);
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
            let _ = stop.send(true);
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
    stop: watch::Receiver<bool>,
    reports: mpsc::UnboundedSender<Report>,
    budget: ShutdownBudget,
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

    fn fail(&self, message: String) {
        let _ = self.reports.send(Report::Failed(self.index, message));
    }

    async fn serve(&self, listener: std::net::TcpListener) {
        let mut stop = self.stop.clone();
        let started = tokio::select! {
            started = self.app.start(self.index) => started,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        let state = match started {
            Ok(state) => state,
            Err(error) => {
                self.fail(error_chain(&error));
                return;
            }
        };
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => {
                let _ = self.reports.send(Report::Started(self.index));
                let shutdown = async {
                    let _ = stop.wait_for(|stop| *stop).await;
                };
                serve(
                    listener,
                    self.tls.clone(),
                    |peer| self.app.service(&state, peer),
                    shutdown,
                    self.budget.drain,
                )
                .await;
            }
            Err(error) => self.fail(format!("cannot use its listener: {error}")),
        }
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
}
