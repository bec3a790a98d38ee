//! A server with background tasks chosen on the command line: how an app uses [`Tasks`], and the
//! process the runtime's shutdown tests (`tests/it/background_tasks.rs`) start and signal.
//!
//! ```text
//! background_tasks --port PORT [--workers N] [--every-worker] [--task BEHAVIOUR[:essential]]...
//! ```
//!
//! `GET /` answers `ok`. Each `--task` spawns one task, once per node (on worker 0), or on every
//! worker with `--every-worker`; it is best-effort unless marked `:essential`. A BEHAVIOUR is
//! `cooperative` (ticks until the shutdown token is cancelled, then cleans up), `ignores-shutdown`
//! (never looks at the token), `one-shot` (returns at once), `fails` (returns an error after
//! 300 ms) or `panics` (after 300 ms).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::task::{Context, Poll};
use std::time::Duration;

use bai_config::{HostPort, LogLevel, LoggingConfig};
use bai_server::{App, ConnectionLimits, Criticality, ServerOptions, ShutdownBudget, Tasks};
use http::{Request, Response};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;

const USAGE: &str = "usage: background_tasks --port PORT [--workers N] [--every-worker] \
                     [--task cooperative|ignores-shutdown|one-shot|fails|panics[:essential]]...";

fn main() -> ExitCode {
    let (options, app) = match parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let logging = LoggingConfig {
        level: LogLevel::Debug,
        pkg_ns: BTreeMap::from([
            (String::new(), LogLevel::Warning),
            ("ai.backend".to_owned(), LogLevel::Debug),
            ("background_tasks".to_owned(), LogLevel::Debug),
        ]),
        ..LoggingConfig::default()
    };
    if let Err(error) = bai_server::logging::init(&logging) {
        eprintln!("{error}");
        return ExitCode::FAILURE;
    }
    match bai_server::run(options, app) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<(ServerOptions, Example), String> {
    let mut port = None;
    let mut workers = 1;
    let mut app = Example {
        tasks: Vec::new(),
        every_worker: false,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--port" => port = Some(value()?.parse().map_err(|_| "--port: not a port")?),
            "--workers" => workers = value()?.parse().map_err(|_| "--workers: not a number")?,
            "--every-worker" => app.every_worker = true,
            "--task" => app.tasks.push(TaskSpec::parse(&value()?)?),
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    let port = port.ok_or("--port is required")?;
    let options = ServerOptions {
        service_addr: HostPort::new("127.0.0.1", port),
        workers,
        pid_file: PathBuf::new(),
        user: None,
        group: None,
        tls: None,
        budget: ShutdownBudget::default(),
        // Few connections: the open-files warning of the default limits depends on the machine.
        limits: ConnectionLimits {
            max_connections: 1024,
            ..ConnectionLimits::default()
        },
    };
    Ok((options, app))
}

#[derive(Debug)]
struct Example {
    tasks: Vec<TaskSpec>,
    every_worker: bool,
}

#[derive(Clone, Copy, Debug)]
struct TaskSpec {
    behaviour: Behaviour,
    criticality: Criticality,
}

impl TaskSpec {
    fn parse(text: &str) -> Result<TaskSpec, String> {
        let (behaviour, criticality) = match text.strip_suffix(":essential") {
            Some(behaviour) => (behaviour, Criticality::Essential),
            None => (text, Criticality::BestEffort),
        };
        let behaviour = match behaviour {
            "cooperative" => Behaviour::Cooperative,
            "ignores-shutdown" => Behaviour::IgnoresShutdown,
            "one-shot" => Behaviour::OneShot,
            "fails" => Behaviour::Fails,
            "panics" => Behaviour::Panics,
            _ => return Err(format!("--task: unknown behaviour {behaviour}")),
        };
        Ok(TaskSpec {
            behaviour,
            criticality,
        })
    }
}

#[derive(Clone, Copy, Debug)]
enum Behaviour {
    Cooperative,
    IgnoresShutdown,
    OneShot,
    Fails,
    Panics,
}

impl Behaviour {
    fn name(self) -> &'static str {
        match self {
            Behaviour::Cooperative => "cooperative",
            Behaviour::IgnoresShutdown => "ignores-shutdown",
            Behaviour::OneShot => "one-shot",
            Behaviour::Fails => "fails",
            Behaviour::Panics => "panics",
        }
    }

    async fn run(self, shutdown: CancellationToken) -> Result<(), std::io::Error> {
        match self {
            Behaviour::Cooperative => {
                let mut ticks = 0_u64;
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(50)) => ticks += 1,
                    }
                }
                // Cleanup that takes a moment, like committing a last batch of events.
                tokio::time::sleep(Duration::from_millis(200)).await;
                // The task's span puts its name and worker on the line.
                tracing::info!("cleaned up after {ticks} ticks");
                Ok(())
            }
            Behaviour::IgnoresShutdown => loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
            },
            Behaviour::OneShot => Ok(()),
            Behaviour::Fails => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Err(std::io::Error::other("the event stream closed"))
            }
            Behaviour::Panics => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                panic!("the task's invariant broke");
            }
        }
    }
}

impl App for Example {
    /// The worker's index, for its log lines.
    type Worker = usize;
    type Body = String;
    type Service = Hello;
    type Error = Infallible;

    async fn start(&self, index: usize, tasks: &Tasks) -> Result<usize, Infallible> {
        if index == 0 || self.every_worker {
            for spec in &self.tasks {
                let behaviour = spec.behaviour;
                tasks.spawn(behaviour.name(), spec.criticality, move |shutdown| {
                    behaviour.run(shutdown)
                });
            }
        }
        Ok(index)
    }

    fn service(&self, _worker: &usize, _peer: SocketAddr) -> Hello {
        Hello
    }

    async fn stop(&self, worker: usize) {
        tracing::info!("worker-{worker}: app stopped");
    }
}

/// Answers every request with `ok`.
#[derive(Clone, Copy, Debug)]
struct Hello;

impl tower::Service<Request<Incoming>> for Hello {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<Incoming>) -> Self::Future {
        std::future::ready(Ok(Response::new("ok".to_owned())))
    }
}
