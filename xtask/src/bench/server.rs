//! `cargo xtask bench server`: the HTTP server under load. For ours (`manager-server` of this
//! workspace) and the reference manager (`--reference-server PYTHON`), one after the other, each
//! on a database and an etcd namespace of the halfstack made for it (schema, the install guide's
//! fixtures and etcd keys, all written by our `manager-cli`, whose DDL is the reference's): start
//! the server, wait until `GET /` answers on every worker, load each route with wrk (a warm-up run,
//! then the measured one), read the memory of the process tree, stop it with SIGTERM. One table
//! compares the two.
//!
//! The routes: `GET /`, `GET /auth/test`, `GET /resource/presets` and the official client's
//! `keypair_list` query (`POST /admin/gql`) for a page of 50 keypairs, 45 of them added to each
//! benchmark database for it. The authenticated routes are signed with the example superadmin
//! keypair ([`sign`]); wrk sends the same headers on every request, which the server accepts for
//! 15 minutes after signing, so they are made again before each wrk run. The keypairs' rate limit
//! is raised in the benchmark database, so that the limiter (30,000 requests per 15 minutes in the
//! fixtures) does not answer 429 in the middle of a run: the servers still run the limiter, it
//! just never trips.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::FileTypeExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::sign::{self, EXAMPLE_SUPERADMIN};
use super::{Scratch, bench_config, build_release};
use crate::halfstack::etcd;
use crate::{apt, cmd, consts, sys};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Python of a venv holding the reference manager (e.g. after
    /// `pip install backend.ai-manager==24.3.11`), started as
    /// `PYTHON -m ai.backend.manager.server -f CONFIG`.
    #[arg(long, value_name = "PYTHON")]
    reference_server: Option<PathBuf>,
    /// Seconds of measured load per route.
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    duration: u64,
    /// Connections wrk keeps open (over two threads).
    #[arg(long, value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    connections: u64,
    /// Seconds of unmeasured load per route before the measured run (0: none).
    #[arg(long, value_name = "SECS", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(0..=60))]
    warmup: u64,
}

/// What wrk requests, in the order of the table.
const ROUTES: [Route; 4] = [
    Route {
        name: "GET /",
        method: "GET",
        path: "/",
        body: None,
        signed: false,
    },
    Route {
        name: "GET /auth/test?echo=x",
        method: "GET",
        path: "/auth/test?echo=x",
        body: None,
        signed: true,
    },
    Route {
        name: "GET /resource/presets",
        method: "GET",
        path: "/resource/presets",
        body: None,
        signed: true,
    },
    Route {
        name: "POST /admin/gql keypair_list(50)",
        method: "POST",
        path: "/admin/gql",
        body: Some(KEYPAIR_LIST),
        signed: true,
    },
];

/// `backend.ai admin keypair list`'s query (api-auth-client.md §6.3) for a page of 50, which is
/// every keypair of a benchmark database ([`BENCH_KEYPAIRS`] plus the install guide's 5).
const KEYPAIR_LIST: &str = r#"{"query": "query($limit: Int!, $offset: Int!, $is_active: Boolean, $domain_name: String, $filter: String, $order: String) { keypair_list(limit: $limit, offset: $offset, is_active: $is_active, domain_name: $domain_name, filter: $filter, order: $order) { items { user_id projects user_info { full_name } access_key secret_key is_active is_admin created_at last_used resource_policy rate_limit concurrency_used } total_count } }", "variables": {"limit": 50, "offset": 0, "is_active": null, "domain_name": null, "filter": null, "order": null}}"#;
/// Keypairs of the superadmin added to each benchmark database, so that `keypair_list` has 50.
const BENCH_KEYPAIRS: u32 = 45;
/// How many items [`KEYPAIR_LIST`] must answer.
const KEYPAIR_LIST_ITEMS: usize = 50;

/// Ports of the servers under test (the halfstack's manager.toml uses 8081).
const OURS_PORT: u16 = 8090;
const REFERENCE_PORT: u16 = 8091;
/// How long wrk waits for one response before counting a timeout.
const WRK_TIMEOUT_SECS: u64 = 30;
/// Width of the table's first column: the longest route name and unit.
const NAME_WIDTH: usize = 42;
/// wrk threads; two is what the issue asks for (and this machine class has two cores).
const WRK_THREADS: u64 = 2;
/// The worker processes each server runs, at most (the reference rejects more than the cores).
const MAX_NUM_PROC: usize = 2;
/// `keypairs.rate_limit` in the benchmark databases: far above any run's request count.
const RATE_LIMIT: u32 = 2_000_000_000;
/// How long a server may take from start to answering `GET /` on all its workers.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the listening sockets must stay as they are before the load starts.
const SETTLE: Duration = Duration::from_secs(1);
/// How long a server may take to exit after SIGTERM (the reference gives workers 5 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

pub fn run(args: Args) -> Result<()> {
    apt::ensure(&["wrk"])?;
    let reference = reference_python(args.reference_server.as_deref())?;
    let binaries = build_release(&["manager-cli", "manager-server"])?;
    let (cli, ours) = (&binaries[0], &binaries[1]);
    let scratch = Scratch::new()?;
    let num_proc = std::thread::available_parallelism()
        .map_or(1, |cores| cores.get())
        .min(MAX_NUM_PROC);
    let load = Load {
        duration: args.duration,
        warmup: args.warmup,
        connections: args.connections,
        threads: WRK_THREADS.min(args.connections),
    };

    let mut servers = vec![Server {
        label: "ours",
        program: ours.clone(),
        args: Vec::new(),
        env: Vec::new(),
        port: OURS_PORT,
        // bai-server binds its num-proc SO_REUSEPORT listeners before it answers anything;
        // asking for one keeps the wait correct whatever it binds, the settle time does the rest.
        listeners: 1,
    }];
    if let Some(python) = reference {
        servers.push(reference_server(python, REFERENCE_PORT, num_proc));
    }
    let mut results = Vec::new();
    for server in &servers {
        results.push(measure(&scratch, cli, server, num_proc, &load)?);
    }
    println!();
    print!("{}", table(&load.title(num_proc), &results));
    Ok(())
}

/// A server under test: a program started with `ARGS -f CONFIG`.
#[derive(Debug)]
pub(super) struct Server {
    pub(super) label: &'static str,
    pub(super) program: PathBuf,
    pub(super) args: Vec<String>,
    pub(super) env: Vec<(&'static str, String)>,
    pub(super) port: u16,
    /// Listening sockets on `port` once every worker is up.
    pub(super) listeners: usize,
}

#[derive(Debug, Clone, Copy)]
struct Route {
    /// How the table and the log name it.
    name: &'static str,
    method: &'static str,
    /// Path and query, as requested and signed.
    path: &'static str,
    /// A JSON body (sent as `application/json`).
    body: Option<&'static str>,
    signed: bool,
}

impl Route {
    /// The media type sent and signed: the official client sends `text/plain` without a body.
    fn content_type(&self) -> &'static str {
        if self.body.is_some() {
            "application/json"
        } else {
            "text/plain"
        }
    }
}

/// How wrk loads each route.
#[derive(Debug)]
struct Load {
    duration: u64,
    warmup: u64,
    connections: u64,
    threads: u64,
}

impl Load {
    fn title(&self, num_proc: usize) -> String {
        format!(
            "HTTP server (num-proc = {num_proc}): wrk, {} threads, {} connections, {} s per route \
             after {} s of warm-up",
            self.threads, self.connections, self.duration, self.warmup
        )
    }
}

/// What one server did.
#[derive(Debug)]
struct ServerResult {
    label: &'static str,
    /// One per entry of [`ROUTES`].
    routes: Vec<WrkReport>,
    /// Sums over the server's process tree after the load, KiB.
    rss_kib: u64,
    pss_kib: u64,
}

/// The reference manager's server run by `python` on `port` with `num_proc` workers.
pub(super) fn reference_server(python: PathBuf, port: u16, num_proc: usize) -> Server {
    Server {
        label: "reference",
        program: python,
        args: vec!["-m".into(), "ai.backend.manager.server".into()],
        env: reference_env(),
        port,
        // aiotools forks num-proc workers, each binding the port with SO_REUSEPORT.
        listeners: num_proc,
    }
}

/// The aiodocker client the reference makes at start-up (agent registry) insists on `DOCKER_HOST`
/// or a Docker socket, although it talks to Docker only for the overlay networks of multi-node
/// sessions. Without either, every worker dies at start-up ("Missing valid docker_host"), so on a
/// machine without Docker it gets the conventional address, which nothing here connects to.
fn reference_env() -> Vec<(&'static str, String)> {
    let socket = ["/run/docker.sock", "/var/run/docker.sock"]
        .iter()
        .any(|path| std::fs::metadata(path).is_ok_and(|meta| meta.file_type().is_socket()));
    if socket || std::env::var_os("DOCKER_HOST").is_some() {
        Vec::new()
    } else {
        vec![("DOCKER_HOST", "unix:///var/run/docker.sock".to_owned())]
    }
}

/// Prepares a deployment for `server`, runs it, loads every route and stops it.
fn measure(
    scratch: &Scratch,
    cli: &Path,
    server: &Server,
    num_proc: usize,
    load: &Load,
) -> Result<ServerResult> {
    if let Some(listener) = sys::tcp_listener(server.port) {
        bail!(
            "port {} is taken by {}; the {} server needs it",
            server.port,
            listener.describe(),
            server.label
        );
    }
    let deployment = Deployment::prepare(scratch, cli, server, num_proc)?;
    let mut running = RunningServer::start(scratch, server, &deployment.config)?;
    running.wait_ready()?;
    running.check_routes()?;

    let mut routes = Vec::new();
    for (index, route) in ROUTES.into_iter().enumerate() {
        let script = scratch.0.join(format!("route-{index}.lua"));
        std::fs::write(&script, wrk_script(route))
            .with_context(|| format!("cannot write {}", script.display()))?;
        if load.warmup > 0 {
            println!(
                "==> {}: warm-up, {} for {} s",
                server.label, route.name, load.warmup
            );
            wrk(server.port, route, &script, load.warmup, load)?;
        }
        println!(
            "==> {}: {} for {} s",
            server.label, route.name, load.duration
        );
        let (report, output) = wrk(server.port, route, &script, load.duration, load)?;
        for line in output.lines() {
            println!("    {line}");
        }
        if report.requests == 0 {
            bail!(
                "{}: wrk completed no request to {}",
                server.label,
                route.name
            );
        }
        if report.non_2xx > 0 {
            bail!(
                "{}: {} of {} responses to {} were errors (rate limit? expired Date?)\n{}",
                server.label,
                report.non_2xx,
                report.requests,
                route.name,
                cmd::log_tail(&running.log)
            );
        }
        routes.push(report);
    }
    let (rss_kib, pss_kib) = running.memory_kib();
    running.stop()?;
    Ok(ServerResult {
        label: server.label,
        routes,
        rss_kib,
        pss_kib,
    })
}

/// A database and an etcd namespace of the halfstack for one server, with its manager.toml;
/// both are deleted on drop.
#[derive(Debug)]
pub(super) struct Deployment {
    pub(super) database: String,
    pub(super) namespace: String,
    pub(super) config: PathBuf,
}

/// The Python of `--reference-server`, checked, made absolute (the servers run in the scratch
/// folder) but not canonical: the venv's `python` is a symlink, and what it points at would run
/// outside the venv.
pub(super) fn reference_python(python: Option<&Path>) -> Result<Option<PathBuf>> {
    match python {
        Some(python) if !python.is_file() => {
            bail!("--reference-server {}: no such file", python.display())
        }
        Some(python) => {
            Ok(Some(std::path::absolute(python).with_context(|| {
                format!("--reference-server {}", python.display())
            })?))
        }
        None => Ok(None),
    }
}

/// Sets `[manager] aiomonitor-termui-port` and `aiomonitor-webui-port` of `config` to the first
/// of `num_proc` free ports each (each worker of the reference adds its index), and
/// `metrics-addr` (ours; the reference ignores it) to a free port. At the defaults (48100, 49100,
/// 9464) a server whose port is taken, by any other process on the machine (such as `cargo xtask
/// up`'s server), never starts: a worker of the reference waits forever for its dead monitor
/// thread, ours refuses to start.
///
/// The ports are chosen apart from each other and from `service_port`: a port whose probing
/// listener closed may be handed out again.
fn listener_ports(config: &Path, service_port: u16, num_proc: usize) -> Result<()> {
    let width = u16::try_from(num_proc).context("too many workers")?;
    // Half-open port ranges `(start, end)` already chosen.
    let mut taken: Vec<(u16, u16)> = vec![(service_port, service_port.saturating_add(1))];
    let mut choose = |count: u16| -> Result<u16> {
        for _ in 0..100 {
            let first = free_ports(usize::from(count))?;
            let end = first.saturating_add(count);
            if taken
                .iter()
                .all(|&(start, other_end)| end <= start || other_end <= first)
            {
                taken.push((first, end));
                return Ok(first);
            }
        }
        bail!("found no {count} free ports apart from the server's other listeners")
    };
    let termui = choose(width)?;
    let webui = choose(width)?;
    let metrics = choose(1)?;
    add_to_manager_table(
        config,
        &format!(
            "{}\naiomonitor-termui-port = {termui}\naiomonitor-webui-port = {webui}\n",
            metrics_addr_line(metrics)
        ),
    )
}

/// The `[manager] metrics-addr` line for `port` of the halfstack host.
pub(super) fn metrics_addr_line(port: u16) -> String {
    format!(
        "metrics-addr = {{ host = \"{}\", port = {port} }}",
        consts::HOST
    )
}

/// Puts `lines` (each ending with a newline) first in `config`'s single `[manager]` table.
pub(super) fn add_to_manager_table(config: &Path, lines: &str) -> Result<()> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    if text.matches("[manager]\n").count() != 1 {
        bail!("{} has no single [manager] table", config.display());
    }
    let text = text.replace("[manager]\n", &format!("[manager]\n{lines}"));
    std::fs::write(config, text).with_context(|| format!("cannot write {}", config.display()))
}

/// The first of `count` consecutive TCP ports of the halfstack host that are free now (the
/// listeners that proved it are closed again).
pub(super) fn free_ports(count: usize) -> Result<u16> {
    for _ in 0..100 {
        let first = TcpListener::bind((consts::HOST, 0)).context("cannot find a free port")?;
        let base = first.local_addr()?.port();
        let rest: Option<Vec<TcpListener>> = (1..count)
            .map(|offset| {
                let port = base.checked_add(u16::try_from(offset).ok()?)?;
                TcpListener::bind((consts::HOST, port)).ok()
            })
            .collect();
        if rest.is_some() {
            return Ok(base);
        }
    }
    bail!("found no {count} consecutive free ports")
}

impl Deployment {
    /// The install guide's steps, with our CLI: schema oneshot, the four fixture files, the etcd
    /// keys (Redis, the container registry, the storage proxy); then the raised rate limit.
    pub(super) fn prepare(
        scratch: &Scratch,
        cli: &Path,
        server: &Server,
        num_proc: usize,
    ) -> Result<Self> {
        let pid = std::process::id();
        let database = format!("bench_server_{}_{pid}", server.label);
        let namespace = format!("bench-server-{}-{pid}", server.label);
        let pid_file = scratch.0.join(format!("{}.pid", server.label));
        let config = bench_config(
            scratch,
            cli,
            &format!("{}.toml", server.label),
            &[
                (
                    &format!("namespace = \"{}\"", consts::ETCD_NAMESPACE),
                    &format!("namespace = \"{namespace}\""),
                ),
                (
                    &format!("name = \"{}\"", consts::PG_DATABASE),
                    &format!("name = \"{database}\""),
                ),
                ("num-proc = 2", &format!("num-proc = {num_proc}")),
                (
                    "service-addr = { host = \"0.0.0.0\", port = 8081 }",
                    &format!(
                        "service-addr = {{ host = \"127.0.0.1\", port = {} }}",
                        server.port
                    ),
                ),
                (
                    "pid-file = \"./manager.pid\"",
                    &format!("pid-file = \"{}\"", pid_file.display()),
                ),
                ("colored = true", "colored = false"),
            ],
        )?;
        listener_ports(&config, server.port, num_proc)?;
        // From here on, drop cleans up whatever was made.
        let deployment = Deployment {
            database,
            namespace,
            config,
        };
        println!(
            "==> {}: database {} and etcd namespace {} (schema, fixtures, etcd keys)",
            server.label, deployment.database, deployment.namespace
        );
        cmd::run(
            Command::new("psql")
                .arg(consts::pg_url("postgres"))
                .args(["-v", "ON_ERROR_STOP=1", "-qc"])
                .arg(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    deployment.database
                ))
                .arg("-c")
                .arg(format!("CREATE DATABASE {}", deployment.database)),
        )?;
        let with_config = |args: &[&str]| {
            let mut command = Command::new(cli);
            command.arg("-f").arg(&deployment.config).args(args);
            command
        };
        cmd::run(&mut with_config(&["schema", "oneshot"]))?;
        for file in crate::db::INSTALL_GUIDE_FIXTURES {
            let path = crate::workspace_root().join(file);
            let path = path.to_string_lossy();
            cmd::run(&mut with_config(&["fixture", "populate", &path]))?;
        }
        cmd::run(
            Command::new("psql")
                .arg(consts::pg_url(&deployment.database))
                .args(["-v", "ON_ERROR_STOP=1", "-qc"])
                .arg(format!(
                    "INSERT INTO keypairs (user_id, access_key, secret_key, is_active, is_admin, \
                     rate_limit, num_queries, \"user\", resource_policy, dotfiles, \
                     bootstrap_script) \
                     SELECT email, 'AKIABENCH' || lpad(n::text, 11, '0'), \
                     substr(md5(n::text) || md5(email), 1, 40), true, false, 1000, 0, uuid, \
                     'default', '\\x90', '' \
                     FROM users, generate_series(1, {BENCH_KEYPAIRS}) AS n \
                     WHERE email = 'admin@lablup.com'"
                ))
                .arg("-c")
                .arg(format!("UPDATE keypairs SET rate_limit = {RATE_LIMIT}")),
        )?;
        let tree = scratch.0.join(format!("{}-etcd.json", server.label));
        std::fs::write(
            &tree,
            serde_json::to_string(&install_guide_etcd(consts::REDIS_PORT))?,
        )
        .with_context(|| format!("cannot write {}", tree.display()))?;
        cmd::run(&mut with_config(&[
            "etcd",
            "put-json",
            "",
            &tree.to_string_lossy(),
        ]))?;
        Ok(deployment)
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = cmd::run(
            Command::new("psql")
                .arg(consts::pg_url("postgres"))
                .arg("-qc")
                .arg(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.database
                )),
        );
        let _ = cmd::run(etcd::etcdctl().args([
            "del",
            "--prefix",
            &format!("/sorna/{}/", self.namespace),
        ]));
    }
}

/// The install guide's `etcd put`s, as one tree for `etcd put-json ""`: Redis (the halfstack's,
/// or another on `redis_port`), the container registry and the storage proxy (which the server
/// validates at start-up but does not call for these routes).
pub(super) fn install_guide_etcd(redis_port: u16) -> serde_json::Value {
    serde_json::json!({
        "config": {
            "redis": {
                "addr": format!("{}:{}", consts::HOST, redis_port),
                "password": consts::REDIS_PASSWORD,
            },
            "docker": {
                "image": {"auto_pull": "tag"},
                "registry": {
                    "cr.backend.ai": {"": "https://cr.backend.ai", "type": "harbor2", "project": "stable"},
                },
            },
        },
        "volumes": {
            "_types": {"group": "", "user": ""},
            "default_host": "bai-m1:local",
            "proxies": {
                "bai-m1": {
                    "client_api": "http://127.0.0.1:6021",
                    "manager_api": "http://127.0.0.1:6022",
                    "secret": "secure-token-to-authenticate-manager-request",
                    "ssl_verify": "false",
                },
            },
        },
    })
}

/// A server process we started, with its output in a log file. Stopped on drop if
/// [`RunningServer::stop`] was not called (an error on the way).
#[derive(Debug)]
pub(super) struct RunningServer {
    label: &'static str,
    port: u16,
    listeners: usize,
    child: Child,
    pub(super) log: PathBuf,
    stopped: bool,
}

impl RunningServer {
    pub(super) fn start(scratch: &Scratch, server: &Server, config: &Path) -> Result<Self> {
        let log = scratch.0.join(format!("{}.log", server.label));
        let (stdout, stderr) = cmd::log_files(&log)?;
        let mut command = Command::new(&server.program);
        command
            .args(&server.args)
            .arg("-f")
            .arg(config)
            .envs(server.env.iter().map(|(key, value)| (*key, value)))
            .current_dir(&scratch.0)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        println!(
            "==> starting the {} server on port {}: {}",
            server.label,
            server.port,
            cmd::display(&command)
        );
        let child = command
            .spawn()
            .with_context(|| format!("cannot start `{}`", cmd::display(&command)))?;
        Ok(RunningServer {
            label: server.label,
            port: server.port,
            listeners: server.listeners,
            child,
            log,
            stopped: false,
        })
    }

    /// Waits until `GET /` answers 200 and as many sockets listen on the port as the server has
    /// workers, unchanged for [`SETTLE`]: with `SO_REUSEPORT` the kernel spreads connections over
    /// the sockets that exist when they connect, so a load started early would miss a worker.
    pub(super) fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut settled: Option<(usize, Instant)> = None;
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.stopped = true;
                bail!(
                    "the {} server exited ({status}) before it answered\n{}",
                    self.label,
                    cmd::log_tail(&self.log)
                );
            }
            let answers = http_request(self.port, "GET", "/", None, &[])
                .is_ok_and(|response| response.status == 200);
            let sockets = sys::tcp_listen_count(self.port);
            if answers && sockets >= self.listeners {
                match settled {
                    Some((count, since)) if count == sockets => {
                        if since.elapsed() >= SETTLE {
                            return Ok(());
                        }
                    }
                    _ => settled = Some((sockets, Instant::now())),
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "the {} server did not answer GET / on {} listening socket(s) within {:?} \
                     ({sockets} listening)\n{}",
                    self.label,
                    self.listeners,
                    READY_TIMEOUT,
                    cmd::log_tail(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// One request per route before the load, so that a refused signature or a missing fixture
    /// shows up as the server's own answer instead of a count of wrk's non-2xx responses.
    fn check_routes(&self) -> Result<()> {
        for route in ROUTES {
            let response = http_request(
                self.port,
                route.method,
                route.path,
                route.body,
                &route_headers(route, self.port),
            )?;
            if response.status != 200 {
                bail!(
                    "the {} server answered {} with {}: {}\n{}",
                    self.label,
                    route.name,
                    response.status,
                    response.body.trim(),
                    cmd::log_tail(&self.log)
                );
            }
            if route.body == Some(KEYPAIR_LIST) {
                check_keypair_list(&response.body).with_context(|| {
                    format!("the {} server's answer to {}", self.label, route.name)
                })?;
            }
        }
        Ok(())
    }

    /// The pid of the server's main process.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sums of VmRSS and Pss over the server's process tree (parent and workers), KiB.
    fn memory_kib(&self) -> (u64, u64) {
        sys::process_tree(self.child.id())
            .into_iter()
            .filter_map(sys::memory_kib)
            .fold((0, 0), |(rss, pss), (r, p)| (rss + r, pss + p))
    }

    /// SIGTERM to the server (the parent, which stops its workers), SIGKILL after
    /// [`STOP_TIMEOUT`]; workers left behind by a killed parent are killed by pid.
    pub(super) fn stop(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let pid = self.child.id();
        let tree = sys::process_tree(pid);
        println!(
            "==> stopping the {} server (SIGTERM to pid {pid})",
            self.label
        );
        let result = sys::terminate(pid, &format!("the {} server", self.label), STOP_TIMEOUT);
        let _ = self.child.wait();
        for orphan in tree.into_iter().skip(1).filter(|pid| sys::pid_alive(*pid)) {
            eprintln!(
                "worker pid {orphan} of the {} server outlived it; killing it",
                self.label
            );
            let _ = Command::new("kill")
                .args(["-KILL", &orphan.to_string()])
                .status();
        }
        result
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The headers wrk and the readiness check send for `route`: the Host the signature covers, and
/// for the authenticated routes the signed headers (valid for 15 minutes from now).
fn route_headers(route: Route, port: u16) -> Vec<(&'static str, String)> {
    if route.signed {
        signed_headers(port, route.method, route.path, route.content_type())
    } else {
        vec![("Host", format!("{}:{port}", consts::HOST))]
    }
}

/// The headers of a request of the example superadmin to a server on `port` of the halfstack
/// host: the Host the signature covers and the signed headers (valid for 15 minutes from now).
pub(super) fn signed_headers(
    port: u16,
    method: &str,
    path: &str,
    content_type: &str,
) -> Vec<(&'static str, String)> {
    let host = format!("{}:{port}", consts::HOST);
    let request = sign::Request {
        method,
        path,
        host: &host,
        content_type,
        api_version: sign::API_VERSION,
    };
    let mut headers = sign::headers(EXAMPLE_SUPERADMIN, &request, chrono::Utc::now());
    headers.insert(0, ("Host", host));
    headers
}

/// A response of [`http_request`].
#[derive(Debug)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) body: String,
}

/// One request over a fresh connection to the halfstack host, enough HTTP/1.1 for a readiness
/// check, an error message or a JSON answer (the body is returned raw, chunked or not).
pub(super) fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, String)],
) -> Result<Response> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        request.push_str(&format!("Host: {}:{port}\r\n", consts::HOST));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or_default());
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("{method} {path}: not an HTTP response: {:.200}", text))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    Ok(Response { status, body })
}

/// The wrk script that gives `route` its method and body (headers come from the command line).
fn wrk_script(route: Route) -> String {
    let mut script = format!("wrk.method = \"{}\"\n", route.method);
    if let Some(body) = route.body {
        script.push_str(&format!("wrk.body = [==[{body}]==]\n"));
    }
    script
}

/// That a `keypair_list` answer holds every keypair and no error.
fn check_keypair_list(body: &str) -> Result<()> {
    let answer: serde_json::Value =
        serde_json::from_str(body).with_context(|| format!("not JSON: {body:.300}"))?;
    if let Some(errors) = answer.get("errors") {
        bail!("GraphQL errors: {errors}");
    }
    let items = answer["data"]["keypair_list"]["items"]
        .as_array()
        .map_or(0, Vec::len);
    if items != KEYPAIR_LIST_ITEMS {
        bail!("{items} items instead of {KEYPAIR_LIST_ITEMS}: {body:.300}");
    }
    Ok(())
}

/// Runs wrk on `route` (its `script`) for `seconds` and returns its report and output.
fn wrk(
    port: u16,
    route: Route,
    script: &Path,
    seconds: u64,
    load: &Load,
) -> Result<(WrkReport, String)> {
    let mut command = Command::new("wrk");
    command
        .arg("--script")
        .arg(script)
        .args(["--threads", &load.threads.to_string()])
        .args(["--connections", &load.connections.to_string()])
        .args(["--duration", &format!("{seconds}s")])
        .arg("--latency")
        // wrk's default of 2 s would drop the reference's slow GraphQL answers as socket errors
        // and leave them out of the latency figures.
        .args(["--timeout", &format!("{WRK_TIMEOUT_SECS}s")]);
    for (name, value) in route_headers(route, port) {
        command.arg("--header").arg(format!("{name}: {value}"));
    }
    command.arg(format!("http://{}:{port}{}", consts::HOST, route.path));
    let output = cmd::run(&mut command)?;
    let report =
        parse_wrk(&output).with_context(|| format!("cannot read wrk's output:\n{output}"))?;
    Ok((report, output))
}

/// What we read from wrk's `--latency` output.
#[derive(Debug, PartialEq)]
struct WrkReport {
    requests: u64,
    requests_per_sec: f64,
    p99_ms: f64,
    /// "Non-2xx or 3xx responses" (absent when there were none).
    non_2xx: u64,
    /// connect + read + write + timeout of "Socket errors" (absent when there were none).
    socket_errors: u64,
}

fn parse_wrk(output: &str) -> Result<WrkReport> {
    let mut requests = None;
    let mut requests_per_sec = None;
    let mut p99_ms = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;
    for line in output.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("Requests/sec:") {
            requests_per_sec = Some(value.trim().parse::<f64>()?);
        } else if let Some(value) = line.strip_prefix("99%") {
            p99_ms = Some(wrk_duration_ms(value.trim())?);
        } else if let Some(value) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = value.trim().parse()?;
        } else if let Some(value) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 5"
            for part in value.split(',') {
                if let Some((_, count)) = part.trim().rsplit_once(' ') {
                    socket_errors += count.parse::<u64>()?;
                }
            }
        } else if let Some((count, _)) = line.split_once(" requests in ") {
            requests = Some(count.trim().parse()?);
        }
    }
    Ok(WrkReport {
        requests: requests.context("no `N requests in` line")?,
        requests_per_sec: requests_per_sec.context("no `Requests/sec:` line")?,
        p99_ms: p99_ms.context("no `99%` line (was --latency given?)")?,
        non_2xx,
        socket_errors,
    })
}

/// A wrk duration (`812.00us`, `18.67ms`, `1.20s`, `2.00m`) in milliseconds.
fn wrk_duration_ms(text: &str) -> Result<f64> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in `{text}`"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse()?;
    let factor = match unit {
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        "h" => 3600e3,
        other => bail!("unknown unit `{other}` in `{text}`"),
    };
    Ok(number * factor)
}

/// One row per route and measure, one column per server; with ours and a second server, a ratio
/// column that is above 1 where ours is better (more requests per second, less latency, less
/// memory).
fn table(title: &str, results: &[ServerResult]) -> String {
    let compare = results.len() == 2 && results[0].label == "ours";
    let mut out = format!("{title}\n{:<NAME_WIDTH$}", "");
    for result in results {
        out.push_str(&format!(" {:>12}", result.label));
    }
    if compare {
        out.push_str(&format!(" {:>9}", "ratio"));
    }
    out.push('\n');
    let mut row = |name: String, values: Vec<f64>, decimals: usize, higher_is_better: bool| {
        out.push_str(&format!("{name:<NAME_WIDTH$}"));
        for value in &values {
            out.push_str(&format!(" {value:>12.decimals$}"));
        }
        if compare {
            let (ours, theirs) = (values[0], values[1]);
            let ratio = if higher_is_better {
                ours / theirs
            } else {
                theirs / ours
            };
            if ratio.is_finite() {
                out.push_str(&format!(" {:>9}", format!("{ratio:.2}")));
            } else {
                out.push_str(&format!(" {:>9}", "-"));
            }
        }
        out.push('\n');
    };
    for (index, route) in ROUTES.iter().enumerate() {
        let values = |pick: fn(&WrkReport) -> f64| -> Vec<f64> {
            results
                .iter()
                .map(|result| pick(&result.routes[index]))
                .collect()
        };
        row(
            format!("{} [req/s]", route.name),
            values(|r| r.requests_per_sec),
            1,
            true,
        );
        row(
            format!("{} p99 [ms]", route.name),
            values(|r| r.p99_ms),
            2,
            false,
        );
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    row(
        "RSS after load, sum [MiB]".into(),
        results.iter().map(|result| mib(result.rss_kib)).collect(),
        1,
        false,
    );
    row(
        "PSS after load, sum [MiB]".into(),
        results.iter().map(|result| mib(result.pss_kib)).collect(),
        1,
        false,
    );
    if compare {
        out.push_str(
            "ratio: how many times better ours is (req/s: ours / reference; p99 and memory: \
             reference / ours)\n",
        );
    }
    for result in results {
        for (route, report) in ROUTES.iter().zip(&result.routes) {
            if report.socket_errors > 0 {
                out.push_str(&format!(
                    "note: {} {}: {} socket errors (connect, read, write or timeout)\n",
                    result.label, route.name, report.socket_errors
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wrk 4.1.0's output for the reference's `GET /auth/test?echo=x`, with the error lines a
    /// failing run adds.
    const WRK_OUTPUT: &str = "Running 10s test @ http://127.0.0.1:8091/auth/test?echo=x
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    92.80ms   64.34ms 497.90ms   89.51%
    Req/Sec   194.29     67.23   282.00     73.71%
  Latency Distribution
     50%   71.41ms
     75%   93.41ms
     90%  161.87ms
     99%  392.00ms
  3778 requests in 10.05s, 0.96MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:    376.00
Transfer/sec:     98.04KB
";

    #[test]
    fn reads_wrk_output() {
        assert_eq!(
            parse_wrk(WRK_OUTPUT).unwrap(),
            WrkReport {
                requests: 3778,
                requests_per_sec: 376.0,
                p99_ms: 392.0,
                non_2xx: 7,
                socket_errors: 3,
            }
        );
        assert!(parse_wrk("Running 10s test @ http://x/\n").is_err());
    }

    #[test]
    fn converts_wrk_durations() {
        assert_eq!(wrk_duration_ms("812.00us").unwrap(), 0.812);
        assert_eq!(wrk_duration_ms("18.67ms").unwrap(), 18.67);
        assert_eq!(wrk_duration_ms("1.20s").unwrap(), 1200.0);
        assert!(wrk_duration_ms("3.0").is_err());
    }

    fn result(label: &'static str, rps: f64, p99: f64, rss_mib: u64) -> ServerResult {
        let report = |rps: f64| WrkReport {
            requests: 1000,
            requests_per_sec: rps,
            p99_ms: p99,
            non_2xx: 0,
            socket_errors: 0,
        };
        ServerResult {
            label,
            routes: vec![
                report(rps),
                report(rps / 10.0),
                report(rps / 20.0),
                report(rps / 100.0),
            ],
            rss_kib: rss_mib * 1024,
            pss_kib: rss_mib * 512,
        }
    }

    #[test]
    fn table_says_how_many_times_better_ours_is() {
        let table = table(
            "t",
            &[
                result("ours", 20_000.0, 2.0, 20),
                result("reference", 5_000.0, 20.0, 400),
            ],
        );
        let line = |start: &str| {
            table
                .lines()
                .find(|line| line.starts_with(start))
                .unwrap_or_else(|| panic!("no line {start} in\n{table}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(line("GET / [req/s]")[3..], ["20000.0", "5000.0", "4.00"]);
        assert_eq!(line("GET / p99 [ms]")[4..], ["2.00", "20.00", "10.00"]);
        assert_eq!(
            line("GET /resource/presets [req/s]")[3..],
            ["1000.0", "250.0", "4.00"]
        );
        assert_eq!(
            line("POST /admin/gql keypair_list(50) [req/s]")[4..],
            ["200.0", "50.0", "4.00"]
        );
        assert_eq!(line("RSS after load")[5..], ["20.0", "400.0", "20.00"]);
        assert_eq!(line("PSS after load")[5..], ["10.0", "200.0", "20.00"]);
    }

    #[test]
    fn table_of_one_server_has_no_ratio() {
        let table = table("t", &[result("reference", 5_000.0, 20.0, 400)]);
        assert!(!table.contains("ratio"), "{table}");
        assert!(
            table
                .lines()
                .any(|line| line.starts_with("GET / [req/s]") && line.ends_with("5000.0")),
            "{table}"
        );
    }

    #[test]
    fn signed_routes_carry_host_and_signature() {
        let headers = route_headers(ROUTES[1], 8091);
        let names: Vec<&str> = headers.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "Host",
                "Date",
                "X-BackendAI-Version",
                "Content-Type",
                "Authorization"
            ]
        );
        assert_eq!(headers[0].1, "127.0.0.1:8091");
        let plain = route_headers(ROUTES[0], 8091);
        assert_eq!(plain, [("Host", "127.0.0.1:8091".to_owned())]);
        let gql = route_headers(ROUTES[3], 8091);
        assert_eq!(gql[3], ("Content-Type", "application/json".to_owned()));
    }

    #[test]
    fn scripts_carry_the_method_and_the_body() {
        assert_eq!(wrk_script(ROUTES[0]), "wrk.method = \"GET\"\n");
        let script = wrk_script(ROUTES[3]);
        assert!(script.starts_with("wrk.method = \"POST\"\nwrk.body = [==[{\"query\""));
        let body: serde_json::Value = serde_json::from_str(KEYPAIR_LIST).expect("JSON");
        assert_eq!(body["variables"]["limit"], 50);
    }

    #[test]
    fn keypair_list_answers_are_checked() {
        let items = vec![serde_json::json!({"access_key": "AKIA"}); KEYPAIR_LIST_ITEMS];
        let good =
            serde_json::json!({"data": {"keypair_list": {"items": items, "total_count": 50}}});
        assert!(check_keypair_list(&good.to_string()).is_ok());
        let short = serde_json::json!({"data": {"keypair_list": {"items": [], "total_count": 0}}});
        assert!(check_keypair_list(&short.to_string()).is_err());
        let failed = serde_json::json!({"data": null, "errors": [{"message": "no"}]});
        assert!(check_keypair_list(&failed.to_string()).is_err());
    }
}
