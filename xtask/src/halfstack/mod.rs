//! `cargo xtask halfstack up|down|status`: the reference project's "halfstack" (PostgreSQL 15,
//! Redis 7, etcd 3) as local processes from Debian packages instead of Docker containers, on the
//! ports and credentials of `configs/manager/halfstack.toml` (see [`crate::consts`]), plus a
//! container registry (CNCF distribution) for test images.
//!
//! Everything lives in one folder (see [`Layout`]): `postgres/`, `redis/`, `etcd/`, `registry/`
//! hold data, `logs/` the service logs, `run/` sockets and pid files. A service is ours when the
//! pid in its pid file is alive and runs the expected program, and running when it answers with
//! real authentication (the registry: anonymously). One that answers on its port but is not
//! ours, e.g. the halfstack of another checkout, is used as it is and never stopped. `up` and
//! `down` are idempotent.

pub mod etcd;
mod postgres;
mod redis;
mod registry;

use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::sys;
use crate::{apt, cmd, consts, workspace_root};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    dir: Dir,
}

/// The halfstack folder option, shared by every task that uses the halfstack.
#[derive(Debug, clap::Args)]
pub struct Dir {
    /// Folder for data, logs and sockets [default: <workspace>/.halfstack, or
    /// /var/tmp/bai-halfstack-HASH when we are root and the OS user postgres cannot get there]
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Install missing packages, start the services that do not answer, wait until they do.
    Up,
    /// Stop the services of this folder (those already stopped are fine).
    Down {
        /// Also remove the data folder.
        #[arg(long)]
        purge: bool,
    },
    /// One line per service; exits 0 when all answer, 1 otherwise.
    Status,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let layout = Layout::new(args.dir)?;
    match args.action {
        Action::Up => up(&layout, &mut Vec::new())?,
        Action::Down { purge } => {
            down(&layout, &Service::ALL)?;
            if purge {
                layout.purge()?;
            }
        }
        Action::Status => {
            if !status(&layout) {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the halfstack keeps its files (every path is derived from `root`) and the ports its
/// services listen on.
#[derive(Debug)]
pub struct Layout {
    pub root: PathBuf,
    pub ports: Ports,
}

/// The TCP ports of the services (the registry always uses [`consts::REGISTRY_PORT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub postgres: u16,
    pub redis: u16,
    pub etcd_client: u16,
    pub etcd_peer: u16,
}

impl Ports {
    /// The shared halfstack's, those of `configs/manager/halfstack.toml`.
    pub const HALFSTACK: Ports = Ports {
        postgres: consts::PG_PORT,
        redis: consts::REDIS_PORT,
        etcd_client: consts::ETCD_CLIENT_PORT,
        etcd_peer: consts::ETCD_PEER_PORT,
    };

    /// `http://127.0.0.1:{etcd_client}`.
    pub fn etcd_client_url(self) -> String {
        format!("http://{}:{}", consts::HOST, self.etcd_client)
    }

    pub fn etcd_peer_url(self) -> String {
        format!("http://{}:{}", consts::HOST, self.etcd_peer)
    }

    /// The URL of `database` with real password authentication over TCP.
    pub fn pg_url(self, database: &str) -> String {
        format!(
            "postgresql://{}:{}@{}:{}/{database}",
            consts::PG_USER,
            consts::PG_PASSWORD,
            consts::HOST,
            self.postgres
        )
    }
}

/// A file in the root that marks the folder as ours, so `down --purge` never removes a folder
/// that a mistyped `--dir` pointed at.
const MARKER: &str = ".xtask-halfstack";

impl Layout {
    /// `--dir`, made absolute (the paths end up in service configs), or [`default_root`].
    pub fn new(dir: Dir) -> Result<Self> {
        let root = match dir.dir {
            Some(dir) => std::path::absolute(dir).context("cannot read the current directory")?,
            None => default_root(),
        };
        Ok(Self {
            root,
            ports: Ports::HALFSTACK,
        })
    }

    /// A halfstack of its own in `root` on `ports` (a test's private stores, which it may stop
    /// and start without disturbing the shared halfstack).
    pub fn private(root: PathBuf, ports: Ports) -> Self {
        Self { root, ports }
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    fn run(&self) -> PathBuf {
        self.root.join("run")
    }

    fn data(&self, service: Service) -> PathBuf {
        self.root.join(service.name())
    }

    fn log(&self, service: Service) -> PathBuf {
        self.logs().join(format!("{}.log", service.name()))
    }

    fn create(&self) -> Result<()> {
        let data = Service::ALL.map(|service| self.data(service));
        for dir in [self.logs(), self.run()].iter().chain(&data) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let marker = self.root.join(MARKER);
        if !marker.exists() {
            std::fs::write(
                &marker,
                "Data of `cargo xtask halfstack`; remove with `cargo xtask halfstack down --purge`.\n",
            )
            .with_context(|| format!("cannot write {}", marker.display()))?;
        }
        Ok(())
    }

    fn purge(&self) -> Result<()> {
        if !self.root.exists() {
            println!("{} does not exist; nothing to purge", self.root.display());
            return Ok(());
        }
        if !self.root.join(MARKER).exists() {
            bail!(
                "refusing to remove {}: it has no {MARKER} file, so it was not made by `cargo xtask halfstack up`",
                self.root.display()
            );
        }
        std::fs::remove_dir_all(&self.root)
            .with_context(|| format!("cannot remove {}", self.root.display()))?;
        println!("removed {}", self.root.display());
        Ok(())
    }
}

/// `<workspace>/.halfstack`, unless we are root and the OS user PostgreSQL runs as cannot get
/// there (a checkout in a 0700 folder such as `mktemp -d`, or below `/root`): then a folder in
/// `/var/tmp` named after the workspace path, so that each checkout still has its own.
fn default_root() -> PathBuf {
    let root = workspace_root().join(consts::HALFSTACK_DIR);
    let deepest = if root.exists() {
        &root
    } else {
        workspace_root()
    };
    if !sys::is_root() || sys::others_can_enter(deepest) {
        return root;
    }
    let hash = fnv1a(workspace_root().as_os_str().as_bytes());
    let fallback = PathBuf::from(format!("/var/tmp/bai-halfstack-{hash:016x}"));
    println!(
        "halfstack: the OS user {} cannot enter {}; using {} (choose with --dir)",
        consts::PG_OS_USER,
        root.display(),
        fallback.display()
    );
    fallback
}

/// 64-bit FNV-1a: a hash that stays the same across Rust versions (std's `DefaultHasher` may not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The halfstack services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Postgres,
    Redis,
    Etcd,
    Registry,
}

/// What a service is doing right now.
#[derive(Debug)]
enum State {
    /// Ours, and it answers.
    Running(u32),
    /// Ours, alive but not answering (still starting, or wedged).
    Unresponsive(u32),
    /// Not ours, but it answers on our port with our credentials: another folder's halfstack
    /// (with the pid on the port, when `/proc` shows it).
    Elsewhere(Option<u32>),
    /// Nothing answers.
    Stopped,
}

impl Service {
    const ALL: [Service; 4] = [
        Service::Postgres,
        Service::Redis,
        Service::Etcd,
        Service::Registry,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Redis => "redis",
            Service::Etcd => "etcd",
            Service::Registry => "registry",
        }
    }

    /// Every port the service binds, the one clients use first; all must be free to start it.
    fn ports(self, layout: &Layout) -> Vec<u16> {
        let ports = layout.ports;
        match self {
            Service::Postgres => vec![ports.postgres],
            Service::Redis => vec![ports.redis],
            Service::Etcd => vec![ports.etcd_client, ports.etcd_peer],
            Service::Registry => vec![consts::REGISTRY_PORT],
        }
    }

    fn address(self, layout: &Layout) -> String {
        format!("{}:{}", consts::HOST, self.ports(layout)[0])
    }

    fn pid_file(self, layout: &Layout) -> PathBuf {
        match self {
            Service::Postgres => layout.data(self).join("postmaster.pid"),
            Service::Redis | Service::Etcd | Service::Registry => {
                layout.run().join(format!("{}.pid", self.name()))
            }
        }
    }

    /// The pid in the service's pid file, if that process is alive and runs the right program
    /// (`/proc/PID/comm`, to tell it from a recycled pid).
    fn pid(self, layout: &Layout) -> Option<u32> {
        let comm = match self {
            Service::Postgres => "postgres",
            Service::Redis => "redis-server",
            Service::Etcd => "etcd",
            // `/proc/PID/comm` holds at most 15 characters, exactly this name's length.
            Service::Registry => "docker-registry",
        };
        sys::read_pid_file(&self.pid_file(layout))
            .filter(|&pid| sys::pid_alive(pid) && sys::pid_comm(pid).as_deref() == Some(comm))
    }

    /// A real request with real credentials succeeds.
    fn answers(self, ports: Ports) -> bool {
        match self {
            Service::Postgres => postgres::answers(ports),
            Service::Redis => redis::answers(ports),
            Service::Etcd => etcd::answers(ports),
            Service::Registry => registry::answers(),
        }
    }

    fn state(self, layout: &Layout) -> State {
        match self.pid(layout) {
            Some(pid) if self.answers(layout.ports) => State::Running(pid),
            Some(pid) => State::Unresponsive(pid),
            None if self.answers(layout.ports) => {
                State::Elsewhere(sys::tcp_listener(self.ports(layout)[0]).and_then(|l| l.pid))
            }
            None => State::Stopped,
        }
    }

    /// Starts the service in `layout`, unless something else holds one of its ports.
    fn start(self, layout: &Layout) -> Result<()> {
        for port in self.ports(layout) {
            if let Some(listener) = sys::tcp_listener(port) {
                bail!(
                    "port {port} is already taken by {}, which does not answer as the halfstack's {}",
                    listener.describe(),
                    self.name()
                );
            }
        }
        layout.create()?;
        match self {
            Service::Postgres => postgres::start(layout),
            Service::Redis => redis::start(layout),
            Service::Etcd => etcd::start(layout),
            Service::Registry => registry::start(layout),
        }
    }

    /// Waits until the service answers; fails early when the process of its pid file is gone.
    fn wait_ready(self, layout: &Layout) -> Result<u32> {
        let (name, log, pid_file) = (self.name(), layout.log(self), self.pid_file(layout));
        let timeout = Duration::from_secs(consts::READY_TIMEOUT_SECS);
        let answered = sys::wait_until(timeout, || match sys::read_pid_file(&pid_file) {
            Some(pid) if !sys::pid_alive(pid) => {
                bail!("{name} (pid {pid}) exited; {}", cmd::log_tail(&log))
            }
            _ => Ok(self.answers(layout.ports)),
        })?;
        if !answered {
            bail!(
                "{name} did not answer on {} within {timeout:?}; {}",
                self.address(layout),
                cmd::log_tail(&log)
            );
        }
        let no_pid = || format!("{name} answers but {} has no live pid", pid_file.display());
        self.pid(layout).with_context(no_pid)
    }

    fn stop(self, layout: &Layout, pid: u32) -> Result<()> {
        match self {
            Service::Postgres => postgres::stop(layout),
            Service::Redis | Service::Etcd | Service::Registry => sys::terminate(
                pid,
                self.name(),
                Duration::from_secs(consts::READY_TIMEOUT_SECS),
            ),
        }
    }
}

/// `pid N, data in DIR` of a running service, as far as `/proc` shows it.
fn whereabouts(pid: Option<u32>) -> String {
    let Some(pid) = pid else {
        return "pid unknown".to_owned();
    };
    match sys::pid_cwd(pid) {
        Some(dir) => format!("pid {pid}, data in {}", dir.display()),
        None => format!("pid {pid}"),
    }
}

/// Installs missing packages and brings every service up, using one that already answers (ours
/// or another folder's) as it is. Each service it starts goes to `started` before it starts, so
/// that a caller can stop exactly those, also when `up` fails halfway.
pub fn up(layout: &Layout, started: &mut Vec<Service>) -> Result<()> {
    apt::ensure(consts::HALFSTACK_PACKAGES)?;
    for service in Service::ALL {
        let (name, address) = (service.name(), service.address(layout));
        let pid = match service.state(layout) {
            State::Running(pid) => Some(pid),
            State::Elsewhere(pid) => pid,
            State::Unresponsive(pid) => Some(service.wait_ready(layout).with_context(|| {
                format!("{name} (pid {pid}) is alive but does not answer; `cargo xtask halfstack down` stops it")
            })?),
            State::Stopped => {
                started.push(service);
                let pid = service
                    .start(layout)
                    .and_then(|()| service.wait_ready(layout))
                    .with_context(|| format!("starting {name} failed"))?;
                println!("{name} started on {address} ({})", whereabouts(Some(pid)));
                continue;
            }
        };
        println!("{name} already running on {address} ({})", whereabouts(pid));
    }
    // Also when postgres ran already: someone may have dropped the database since.
    postgres::ensure_database(layout.ports)
}

/// Starts `service` of a private halfstack (see [`Layout::private`]) and waits until it answers;
/// returns its pid.
pub fn start_service(layout: &Layout, service: Service) -> Result<u32> {
    service
        .start(layout)
        .and_then(|()| service.wait_ready(layout))
        .with_context(|| format!("starting {} failed", service.name()))
}

/// Stops `service` of `layout` the way `down` does (PostgreSQL `pg_ctl stop -m fast`, the others
/// SIGTERM); an error when it is not running as ours.
pub fn stop_service(layout: &Layout, service: Service) -> Result<()> {
    let pid = service.pid(layout).with_context(|| {
        format!(
            "{} of {} is not running",
            service.name(),
            layout.root.display()
        )
    })?;
    service.stop(layout, pid)
}

/// The pid of `service` of `layout` when it runs as ours.
pub fn service_pid(layout: &Layout, service: Service) -> Option<u32> {
    service.pid(layout)
}

/// Stops `services` of the halfstack in `layout`; stopped ones and those of another folder are
/// left as they are.
pub fn down(layout: &Layout, services: &[Service]) -> Result<()> {
    let mut failures = Vec::new();
    // Reverse order of `up`, so nothing is left half-configured if a stop fails.
    for &service in services.iter().rev() {
        let name = service.name();
        let port = service.ports(layout)[0];
        if let Some(pid) = service.pid(layout) {
            match service.stop(layout, pid) {
                Ok(()) => println!("{name} stopped (was pid {pid})"),
                Err(err) => failures.push(format!("stopping {name} failed: {err:#}")),
            }
        } else if let Some(listener) = sys::tcp_listener(port) {
            let owner = match listener.pid.and_then(sys::pid_cwd) {
                Some(dir) => format!("{} in {}", listener.describe(), dir.display()),
                None => listener.describe(),
            };
            println!("{name} on :{port} belongs to {owner}; not stopping it");
        } else {
            println!("{name} already stopped");
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        bail!(failures.join("\n"))
    }
}

/// Whether the registry on the halfstack's port answers (ours or another folder's).
pub fn registry_answers() -> bool {
    Service::Registry.answers(Ports::HALFSTACK)
}

/// Prints one line per service; true when all of them answer.
pub fn status(layout: &Layout) -> bool {
    let mut all_running = true;
    for service in Service::ALL {
        let ours = layout.data(service).display().to_string();
        let (state, pid, data) = match service.state(layout) {
            State::Running(pid) => ("running", Some(pid), ours),
            State::Unresponsive(pid) => ("not answering", Some(pid), ours),
            State::Elsewhere(pid) => {
                let data = pid.and_then(sys::pid_cwd);
                let data = data.map_or("an unknown folder".into(), |dir| dir.display().to_string());
                ("running", pid, format!("{data} (not this halfstack)"))
            }
            State::Stopped => ("stopped", None, ours),
        };
        all_running &= state == "running";
        let pid = pid.map_or("-".to_owned(), |pid| pid.to_string());
        let address = service.address(layout);
        println!(
            "{:<9} {state:<13} {address:<15} pid {pid:<8} {data}",
            service.name()
        );
    }
    all_running
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
