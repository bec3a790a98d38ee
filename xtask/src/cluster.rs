//! `cargo xtask cluster`: several manager nodes on one halfstack (issue 17). For each lock
//! backend asked for (`--lock`), on a database, an etcd namespace and a Redis of its own (made as
//! the benchmarks make them): agent-sim agents with room for every session, two `manager-server`
//! nodes A and B (`num-proc = 2` each, their own `[manager] id`, service and metrics ports, the
//! same `distributed-lock`), then `--sessions` sessions created with signed `POST /session`
//! (`enqueueOnly`) alternately through A and B by [`REQUESTERS`] threads. When `--kill-at` of them
//! have been answered, node A is scraped one last time and SIGKILLed, and started again
//! [`RESTART_AFTER`] later.
//!
//! The client is careful: a request that gets no answer (A is dead) is followed by a look-up of
//! the session through B (`GET /session/{name}`), and the session is created through B only if it
//! does not exist. Every answer is recorded per node; only 2xx is accepted, and from A also a 503
//! (the documented answer of a node that is not serving yet) or no answer while it is down.
//!
//! Checked once every session is RUNNING: one session per name; every session RUNNING in the
//! database, and announced `session_started` exactly once, each kernel `kernel_started` exactly
//! once (the harness reads the stream as a consumer group of its own, `cluster-harness`, which
//! also keeps the managers' trimmer from dropping entries it has not read); both nodes' `/metrics`
//! (scraped every second) parse with a Prometheus text-format parser, and their counters of
//! sessions created and sessions scheduled, summed over the three processes (A before the kill, A
//! after, B), agree with the database (within what A may have done between its last scrape and
//! its death). Then every session is deleted, alternately through both nodes, and checked: every
//! kernel over, every agent's `occupied_slots` back to zero. A summary table per backend; any
//! violation makes the command fail.
//!
//! `--binaries DIR` uses the `manager-server`, `manager-cli` and `agent-sim` already built in `DIR`
//! (the integration test passes its debug build); by default they are built in release mode.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Scratch;
use super::peers::{AgentSim, AgentToml, PrivateRedis, agent_config};
use super::scheduler::{Tools, admit_sessions, session_body, statuses, wait_for_agents};
use super::server::{
    Deployment, Response, RunningServer, Server, free_ports, http_request, metrics_addr_line,
    signed_headers,
};
use crate::{apt, cmd, consts, sys};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Sessions created during the run.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(2..=100_000))]
    sessions: u64,
    /// The `[manager] distributed-lock` of both nodes, or `all` (one run per backend).
    #[arg(long, value_name = "BACKEND", default_value = "all", value_parser = ["pg_advisory", "filelock", "redlock", "etcd", "all"])]
    lock: String,
    /// When node A is SIGKILLed: after this share of the sessions were answered.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.5, value_parser = parse_fraction)]
    kill_at: f64,
    /// Use the binaries built in DIR instead of building them in release mode.
    #[arg(long, value_name = "DIR")]
    binaries: Option<PathBuf>,
    /// Seconds every session may take to be RUNNING (and, after the deletes, TERMINATED).
    #[arg(long, value_name = "SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(10..=7_200))]
    cap: u64,
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if share > 0.0 && share < 1.0 => Ok(share),
        _ => Err(format!(
            "{text:?} is not a fraction between 0 and 1 (exclusive)"
        )),
    }
}

/// The backends of `--lock all`, by their `distributed-lock` value.
const BACKENDS: [&str; 4] = ["pg_advisory", "filelock", "redlock", "etcd"];
/// Concurrent requests during the burst.
const REQUESTERS: usize = 16;
/// Sessions per agent-sim agent (each agent has room for all of its share and one more).
const SESSIONS_PER_AGENT: u64 = 100;
/// How long node A stays dead.
const RESTART_AFTER: Duration = Duration::from_secs(3);
/// How often both nodes' `/metrics` are scraped.
const SCRAPE_EVERY: Duration = Duration::from_secs(1);
/// After a request got no answer, how long the client waits before it looks the session up:
/// a commit the dying node had sent is visible by then.
const LOOKUP_AFTER: Duration = Duration::from_millis(500);
const HEARTBEAT: f64 = 3.0;
/// How long after every session is RUNNING all of them may take to be announced: an entry whose
/// handler died is taken over after the consumer's 10 s idle time.
const ANNOUNCEMENTS_TIMEOUT: Duration = Duration::from_secs(30);
const AGENTS_TIMEOUT: Duration = Duration::from_secs(120);
const SESSION_PREFIX: &str = "cluster-";
/// The harness's own consumer group on the stream.
const HARNESS_GROUP: &str = "cluster-harness";
/// Metric names of bai-metrics (the exporter may leave `_total` on or off the sample name).
const CREATED_METRIC: &str = "backendai_manager_sessions_created";
const DECISIONS_METRIC: &str = "backendai_manager_scheduler_decisions";

pub fn run(args: Args) -> Result<()> {
    apt::ensure(&["redis-server"])?;
    let tools = match &args.binaries {
        Some(dir) => Tools::built_in(dir)?,
        None => Tools::build()?,
    };
    let backends: Vec<&'static str> = match args.lock.as_str() {
        "all" => BACKENDS.to_vec(),
        one => BACKENDS
            .iter()
            .copied()
            .filter(|backend| *backend == one)
            .collect(),
    };
    let scratch = Scratch::new()?;
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for backend in backends {
        println!("==> cluster run with distributed-lock = {backend}");
        let outcome = run_backend(&scratch, &tools, backend, &args).unwrap_or_else(|error| {
            eprintln!("==> {backend}: FAILED: {error:#}");
            Outcome::failed(backend, format!("{error:#}"))
        });
        outcomes.push(outcome);
    }
    println!();
    print!("{}", table(&args, &outcomes));
    println!(
        "(the whole run took {:.0} s)",
        started.elapsed().as_secs_f64()
    );
    let violations: Vec<String> = outcomes
        .iter()
        .flat_map(|outcome| {
            outcome
                .violations
                .iter()
                .map(move |violation| format!("{}: {violation}", outcome.backend))
        })
        .collect();
    if !violations.is_empty() {
        bail!("cluster run found violations:\n{}", violations.join("\n"));
    }
    Ok(())
}

/// What one backend's run found.
#[derive(Debug, Default)]
struct Outcome {
    backend: &'static str,
    sessions: u64,
    /// From the first POST to every session RUNNING, and from the first DELETE to all TERMINATED.
    running_secs: Option<f64>,
    terminated_secs: Option<f64>,
    /// Answers per node and status (`none`: no answer).
    answers: BTreeMap<(String, String), u64>,
    /// Requests that got no answer, then found created (look-up 200) or not (created through B).
    found_after_no_answer: u64,
    created_again: u64,
    /// Sessions per name above one, sessions RUNNING, min and max `session_started` per session,
    /// max `kernel_started` per kernel.
    duplicate_names: u64,
    running: u64,
    session_started: Option<(u64, u64)>,
    kernel_started_max: Option<u64>,
    /// Sessions whose start a node sent again after its starter died (from the nodes' logs).
    restarted_starts: u64,
    /// Counters summed over the processes, the database's counts, the tolerance.
    metrics_created: Option<f64>,
    db_created: u64,
    metrics_scheduled: Option<f64>,
    db_scheduled: u64,
    created_tolerance: u64,
    scheduled_tolerance: u64,
    scrapes: u64,
    /// After the deletes: kernels not over, agents with slots still occupied.
    kernels_left: u64,
    agents_occupied: u64,
    violations: Vec<String>,
}

impl Outcome {
    fn failed(backend: &'static str, error: String) -> Outcome {
        Outcome {
            backend,
            violations: vec![error],
            ..Outcome::default()
        }
    }
}

/// One node's server, as started (again).
#[derive(Debug)]
struct Node {
    name: &'static str,
    port: u16,
    metrics_port: u16,
    config: PathBuf,
}

impl Node {
    fn server(&self, tools: &Tools, label: &'static str) -> Server {
        Server {
            label,
            program: tools.server.clone(),
            args: Vec::new(),
            env: Vec::new(),
            port: self.port,
            listeners: 1,
        }
    }
}

/// The counters of one server process's latest scrape.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    created: f64,
    scheduled: f64,
}

/// Scrapes of the node processes: generation 0 of A before the kill, 1 after; B.
#[derive(Debug, Default)]
struct Scrapes {
    a_before: Option<(Counters, chrono::DateTime<chrono::Utc>)>,
    a_after: Option<Counters>,
    b: Option<Counters>,
    count: u64,
    failures: Vec<String>,
}

fn run_backend(
    scratch: &Scratch,
    tools: &Tools,
    backend: &'static str,
    args: &Args,
) -> Result<Outcome> {
    let short = match backend {
        "pg_advisory" => "pg",
        "filelock" => "file",
        "redlock" => "red",
        _ => "etcd",
    };
    let label = |suffix: &str| -> &'static str {
        Box::leak(format!("cluster_{short}_{suffix}").into_boxed_str())
    };
    let ports = free_ports(4)?;
    let node_a = Node {
        name: "A",
        port: ports,
        metrics_port: ports + 1,
        config: PathBuf::new(),
    };
    let redis = PrivateRedis::start(scratch, label("redis"))
        .context("step: start the private redis-server")?;
    let deployment = Deployment::prepare(scratch, &tools.cli, &node_a.server(tools, label("a")), 2)
        .context("step: prepare the database and the etcd namespace")?;
    redis
        .serve_deployment(&tools.cli, &deployment.config, backend)
        .context("step: point config/redis at the private Redis")?;
    let mut db = admit_sessions(scratch, &tools.cli, &deployment, label("x"), args.sessions)
        .context("step: the image and the keypair policy")?;
    let (config_a, config_b) = node_configs(
        scratch,
        &deployment.config,
        backend,
        label("a"),
        label("b"),
        (ports, ports + 1),
        (ports + 2, ports + 3),
    )?;
    let node_a = Node {
        config: config_a,
        ..node_a
    };
    let node_b = Node {
        name: "B",
        port: ports + 2,
        metrics_port: ports + 3,
        config: config_b,
    };
    let mut stream = StreamReader::connect(redis.port)?;

    let agents = args.sessions.div_ceil(SESSIONS_PER_AGENT);
    let per_agent = args.sessions.div_ceil(agents);
    let agent_prefix = format!("i-cluster-{short}");
    let rpc_port = free_ports(usize::try_from(agents)?)?;
    let agent_config = agent_config(
        scratch,
        label("agents"),
        &AgentToml {
            namespace: &deployment.namespace,
            prefix: &agent_prefix,
            rpc_port,
            interval: HEARTBEAT,
            curve: None,
        },
    )?;

    let mut running_a =
        RunningServer::start(scratch, &node_a.server(tools, label("a")), &node_a.config)
            .context("step: start node A")?;
    let mut running_b =
        RunningServer::start(scratch, &node_b.server(tools, label("b")), &node_b.config)
            .context("step: start node B")?;
    running_a.wait_ready().context("step: wait for node A")?;
    running_b.wait_ready().context("step: wait for node B")?;
    let mut sim = AgentSim::start(
        scratch,
        &tools.agent_sim,
        label("sim"),
        "agents",
        &agent_config,
        agents,
        &[
            "--cpu",
            &(per_agent + 1).to_string(),
            "--mem",
            &format!("{}g", per_agent + 1),
        ],
    )
    .context("step: start agent-sim")?;
    wait_for_agents(&mut db, &agent_prefix, agents, AGENTS_TIMEOUT, &mut || {
        sim.check_running()
    })
    .context("step: wait for the agents")?;

    let mut outcome = Outcome {
        backend,
        sessions: args.sessions,
        ..Outcome::default()
    };
    let burst = Burst {
        nodes: [&node_a, &node_b],
        answered: AtomicU64::new(0),
        over: AtomicBool::new(false),
        answers: Mutex::new(BTreeMap::new()),
        found_after_no_answer: AtomicU64::new(0),
        created_again: AtomicU64::new(0),
        violations: Mutex::new(Vec::new()),
    };
    let scrapes = Mutex::new(Scrapes::default());
    let a_generation = AtomicU64::new(0);
    let stop_scraping = AtomicBool::new(false);
    let kill_after = (args.sessions as f64 * args.kill_at).round() as u64;
    let started = Instant::now();
    let mut killed_at = None;
    let restarted: Mutex<Option<RunningServer>> = Mutex::new(None);
    std::thread::scope(|scope| -> Result<()> {
        let scraper = scope.spawn(|| {
            while !stop_scraping.load(Ordering::SeqCst) {
                scrape_into(&scrapes, &node_a, &node_b, &a_generation);
                std::thread::sleep(SCRAPE_EVERY);
            }
        });
        let killer = scope.spawn(|| -> Result<chrono::DateTime<chrono::Utc>> {
            while burst.answered.load(Ordering::SeqCst) < kill_after
                && !burst.over.load(Ordering::SeqCst)
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            // The last scrape of A's first process, as close to its death as can be.
            scrape_a(&scrapes, &node_a, &a_generation);
            a_generation.store(1, Ordering::SeqCst);
            let pid = running_a.pid();
            println!(
                "==> {backend}: {} sessions answered: SIGKILL to node A (pid {pid})",
                burst.answered.load(Ordering::SeqCst)
            );
            cmd::run(Command::new("kill").args(["-KILL", &pid.to_string()]))?;
            let at = chrono::Utc::now();
            running_a.stop()?;
            std::thread::sleep(RESTART_AFTER);
            println!("==> {backend}: starting node A again");
            let mut again =
                RunningServer::start(scratch, &node_a.server(tools, label("a2")), &node_a.config)?;
            again.wait_ready()?;
            *restarted.lock().unwrap_or_else(|e| e.into_inner()) = Some(again);
            Ok(at)
        });
        let created = in_parallel(args.sessions, |index| burst.create(index));
        burst.over.store(true, Ordering::SeqCst);
        let at = killer
            .join()
            .map_err(|_| anyhow::anyhow!("the killer thread panicked"))?
            .context("step: kill and restart node A")?;
        created.context("step: create the sessions")?;
        killed_at = Some(at);
        let waited = wait_all(&mut db, "RUNNING", args.sessions, args.cap, &|| {
            server_running(restarted.lock().unwrap_or_else(|e| e.into_inner()).as_ref())
                .and_then(|()| pid_running(running_b.pid(), "node B"))
        });
        // The counters once everything is scheduled and started.
        scrape_into(&scrapes, &node_a, &node_b, &a_generation);
        stop_scraping.store(true, Ordering::SeqCst);
        scraper
            .join()
            .map_err(|_| anyhow::anyhow!("the scraper thread panicked"))?;
        waited
    })
    .context("step: the burst")?;
    outcome.running_secs = Some(started.elapsed().as_secs_f64());
    outcome.answers = burst.answers.into_inner().unwrap_or_default();
    outcome.found_after_no_answer = burst.found_after_no_answer.load(Ordering::SeqCst);
    outcome.created_again = burst.created_again.load(Ordering::SeqCst);
    outcome
        .violations
        .extend(burst.violations.into_inner().unwrap_or_default());
    println!(
        "    all {} sessions RUNNING after {:.1} s",
        args.sessions,
        outcome.running_secs.unwrap_or_default()
    );

    // A session's RUNNING commit can precede its `session_started` by a take-over of the
    // entry (its first handler died in between): wait for the announcements, within a bound.
    let ids: Vec<String> = db
        .query(
            "SELECT id::text FROM sessions WHERE name LIKE $1",
            &[&format!("{SESSION_PREFIX}%")],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let waiting = Instant::now();
    loop {
        let events = stream.read_all()?;
        let announced = ids.iter().all(|id| {
            events
                .session_started
                .get(id)
                .is_some_and(|count| *count > 0)
        });
        if announced || waiting.elapsed() > ANNOUNCEMENTS_TIMEOUT {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let events = stream.read_all()?;
    check_running(&mut db, events, &mut outcome)?;
    let scrapes = scrapes.into_inner().unwrap_or_default();
    check_metrics(&mut db, &scrapes, killed_at, &mut outcome)?;

    let deleting = Instant::now();
    let mut running_a = restarted
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .context("node A was not started again")?;
    in_parallel(args.sessions, |index| {
        let node = [&node_a, &node_b][usize::try_from(index % 2)?];
        let path = format!("/session/{SESSION_PREFIX}{index}");
        let headers = signed_headers(node.port, "DELETE", &path, "application/json");
        let response = http_request(node.port, "DELETE", &path, None, &headers)
            .with_context(|| format!("DELETE {path} through node {}", node.name))?;
        if response.status != 200 {
            bail!(
                "DELETE {path} through node {} answered {}: {}",
                node.name,
                response.status,
                response.body.trim()
            );
        }
        Ok(())
    })
    .context("step: delete every session")?;
    wait_all(&mut db, "TERMINATED", args.sessions, args.cap, &|| {
        pid_running(running_a.pid(), "node A").and_then(|()| pid_running(running_b.pid(), "node B"))
    })?;
    outcome.terminated_secs = Some(deleting.elapsed().as_secs_f64());
    check_released(&mut db, &agent_prefix, &mut outcome)?;
    outcome.restarted_starts = restarted_starts(scratch, &[label("a"), label("a2"), label("b")]);

    sim.stop()?;
    running_a.stop()?;
    running_b.stop()?;
    drop(deployment);
    drop(redis);
    Ok(outcome)
}

/// Writes the two nodes' manager.toml: the deployment's, with each node's `[manager] id`, service
/// port, metrics address and pid file, and the backend as `distributed-lock`.
fn node_configs(
    scratch: &Scratch,
    deployment: &Path,
    backend: &str,
    label_a: &str,
    label_b: &str,
    (port_a, metrics_a): (u16, u16),
    (port_b, metrics_b): (u16, u16),
) -> Result<(PathBuf, PathBuf)> {
    let text = std::fs::read_to_string(deployment)
        .with_context(|| format!("cannot read {}", deployment.display()))?;
    let lock_line = "distributed-lock = \"pg_advisory\"";
    let service_a = format!("service-addr = {{ host = \"127.0.0.1\", port = {port_a} }}");
    let pid_a = format!("{label_a}.pid\"");
    let Some(metrics_line) = text
        .lines()
        .find(|line| line.starts_with("metrics-addr = "))
    else {
        bail!("{} has no `metrics-addr`", deployment.display());
    };
    for needed in [lock_line, "[manager]\n", service_a.as_str(), pid_a.as_str()] {
        if !text.contains(needed) {
            bail!("{} no longer holds `{needed}`", deployment.display());
        }
    }
    let node = |id: &str, port: u16, metrics: u16, label: &str| {
        text.replace(lock_line, &format!("distributed-lock = \"{backend}\""))
            .replace("[manager]\n", &format!("[manager]\nid = \"{id}\"\n"))
            .replace(metrics_line, &metrics_addr_line(metrics))
            .replace(
                &service_a,
                &format!("service-addr = {{ host = \"127.0.0.1\", port = {port} }}"),
            )
            .replace(&pid_a, &format!("{label}.pid\""))
    };
    let path_a = scratch.0.join(format!("{label_a}-node.toml"));
    let path_b = scratch.0.join(format!("{label_b}-node.toml"));
    for (path, text) in [
        (&path_a, node("i-cluster-a", port_a, metrics_a, label_a)),
        (&path_b, node("i-cluster-b", port_b, metrics_b, label_b)),
    ] {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok((path_a, path_b))
}

/// The burst of creations and what it saw.
struct Burst<'a> {
    nodes: [&'a Node; 2],
    answered: AtomicU64,
    /// Set when every creation was answered (or one failed), so that the killer never waits
    /// for answers that will not come.
    over: AtomicBool,
    answers: Mutex<BTreeMap<(String, String), u64>>,
    found_after_no_answer: AtomicU64,
    created_again: AtomicU64,
    violations: Mutex<Vec<String>>,
}

impl Burst<'_> {
    /// Creates session `index` through node A (even) or B (odd), carefully.
    fn create(&self, index: u64) -> Result<()> {
        let name = format!("{SESSION_PREFIX}{index}");
        let node = self.nodes[usize::try_from(index % 2)?];
        let answer = self.post(node, &name);
        let created = match answer.as_ref().map(|response| response.status) {
            Some(status) if (200..300).contains(&status) => true,
            // The documented answer of a node that is not serving (yet), and no answer at all:
            // from the node that is killed only.
            Some(503) | None if node.name == "A" => false,
            Some(status) => {
                let body = answer.map(|response| response.body).unwrap_or_default();
                self.violation(format!(
                    "POST /session {name} through node {}: {status} {}",
                    node.name,
                    body.trim()
                ));
                false
            }
            None => {
                self.violation(format!("POST /session {name} through node B: no answer"));
                false
            }
        };
        if !created {
            std::thread::sleep(LOOKUP_AFTER);
            let b = self.nodes[1];
            if self.exists(b, &name)? {
                self.found_after_no_answer.fetch_add(1, Ordering::SeqCst);
            } else {
                match self.post(b, &name) {
                    Some(response) if (200..300).contains(&response.status) => {
                        self.created_again.fetch_add(1, Ordering::SeqCst);
                    }
                    Some(response) => self.violation(format!(
                        "POST /session {name} through node B again: {} {}",
                        response.status,
                        response.body.trim()
                    )),
                    None => self.violation(format!(
                        "POST /session {name} through node B again: no answer"
                    )),
                }
            }
        }
        self.answered.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// One POST; its status and body, or `None` without an answer. Recorded per node.
    fn post(&self, node: &Node, name: &str) -> Option<Response> {
        let headers = signed_headers(node.port, "POST", "/session", "application/json");
        let answer = http_request(
            node.port,
            "POST",
            "/session",
            Some(&session_body(name)),
            &headers,
        )
        .ok();
        let status = answer.as_ref().map(|response| response.status);
        let key = (
            node.name.to_owned(),
            status.map_or_else(|| "none".to_owned(), |status| status.to_string()),
        );
        *self
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default() += 1;
        answer
    }

    /// Whether session `name` exists, asked through `node` (which must answer 200 or 404).
    fn exists(&self, node: &Node, name: &str) -> Result<bool> {
        let path = format!("/session/{name}");
        let headers = signed_headers(node.port, "GET", &path, "application/json");
        let response = http_request(node.port, "GET", &path, None, &headers)
            .with_context(|| format!("GET {path} through node {}", node.name))?;
        match response.status {
            200 => Ok(true),
            404 => Ok(false),
            status => bail!(
                "GET {path} through node {} answered {status}: {}",
                node.name,
                response.body.trim()
            ),
        }
    }

    fn violation(&self, text: String) {
        eprintln!("    violation: {text}");
        self.violations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(text);
    }
}

/// Runs `task(0..count)` on [`REQUESTERS`] threads; the first error wins.
fn in_parallel(count: u64, task: impl Fn(u64) -> Result<()> + Sync) -> Result<()> {
    let next = AtomicU64::new(0);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..REQUESTERS {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if index >= count {
                        return;
                    }
                    if let Err(error) = task(index) {
                        first_error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(error);
                        return;
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Scrapes both nodes' `/metrics` once into `scrapes` (A into its current generation).
fn scrape_into(scrapes: &Mutex<Scrapes>, a: &Node, b: &Node, a_generation: &AtomicU64) {
    scrape_a(scrapes, a, a_generation);
    let from_b = scrape(b.metrics_port);
    let mut scrapes = scrapes.lock().unwrap_or_else(|e| e.into_inner());
    scrapes.count += 1;
    match from_b {
        Ok(counters) => scrapes.b = Some(counters),
        Err(error) => scrapes.failures.push(format!("node B: {error:#}")),
    }
}

/// Scrapes node A's `/metrics` once into its current generation.
fn scrape_a(scrapes: &Mutex<Scrapes>, a: &Node, a_generation: &AtomicU64) {
    let generation = a_generation.load(Ordering::SeqCst);
    let from_a = scrape(a.metrics_port);
    let mut scrapes = scrapes.lock().unwrap_or_else(|e| e.into_inner());
    match from_a {
        Ok(counters) if generation == 0 => scrapes.a_before = Some((counters, chrono::Utc::now())),
        Ok(counters) => scrapes.a_after = Some(counters),
        // A is dead, or not serving yet while it restarts: nothing to read.
        Err(_) if generation == 1 || a_generation.load(Ordering::SeqCst) != generation => {}
        Err(error) => scrapes.failures.push(format!("node A: {error:#}")),
    }
}

/// One scrape of `/metrics` on `port`, parsed as the Prometheus text format.
fn scrape(port: u16) -> Result<Counters> {
    let response = http_request(port, "GET", "/metrics", None, &[])?;
    if response.status != 200 {
        bail!("GET /metrics answered {}", response.status);
    }
    let body = dechunk(&response.body);
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|line| Ok(line.to_owned())))
        .context("GET /metrics: not the Prometheus text format")?;
    let mut counters = Counters::default();
    for sample in &parsed.samples {
        let value = match sample.value {
            prometheus_parse::Value::Counter(value) | prometheus_parse::Value::Untyped(value) => {
                value
            }
            _ => continue,
        };
        let name = sample.metric.trim_end_matches("_total");
        if name == CREATED_METRIC {
            counters.created += value;
        } else if name == DECISIONS_METRIC && sample.labels.get("decision") == Some("scheduled") {
            counters.scheduled += value;
        }
    }
    Ok(counters)
}

/// A body as sent with `Transfer-Encoding: chunked` made whole again; any other body as it is.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else {
            return body.to_owned();
        };
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            return body.to_owned();
        };
        if size == 0 {
            return out;
        }
        let Some(chunk) = after.get(..size) else {
            return body.to_owned();
        };
        out.push_str(chunk);
        rest = after
            .get(size..)
            .unwrap_or_default()
            .trim_start_matches("\r\n");
    }
}

fn server_running(server: Option<&RunningServer>) -> Result<()> {
    match server {
        Some(server) => pid_running(server.pid(), "node A"),
        // Still restarting.
        None => Ok(()),
    }
}

fn pid_running(pid: u32, what: &str) -> Result<()> {
    if sys::pid_alive(pid) {
        Ok(())
    } else {
        bail!("{what} (pid {pid}) exited")
    }
}

/// Waits until `count` sessions of the run are `status`.
fn wait_all(
    db: &mut postgres::Client,
    status: &str,
    count: u64,
    cap: u64,
    alive: &dyn Fn() -> Result<()>,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(cap);
    loop {
        alive()?;
        let counts = statuses(db, SESSION_PREFIX)?;
        if counts.get(status).copied().unwrap_or(0) >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not every session {status} within {cap} s: {counts:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// One session per name, every session RUNNING, `session_started` once per session and
/// `kernel_started` once per kernel.
fn check_running(
    db: &mut postgres::Client,
    events: &EventCounts,
    outcome: &mut Outcome,
) -> Result<()> {
    let pattern = format!("{SESSION_PREFIX}%");
    let duplicates: i64 = db
        .query_one(
            "SELECT COALESCE(sum(n - 1), 0)::bigint FROM \
             (SELECT count(*) AS n FROM sessions WHERE name LIKE $1 GROUP BY name) AS names",
            &[&pattern],
        )?
        .get(0);
    outcome.duplicate_names = u64::try_from(duplicates).unwrap_or(0);
    let rows = db.query(
        "SELECT s.id::text, s.status::text, k.id::text FROM sessions AS s \
         JOIN kernels AS k ON k.session_id = s.id WHERE s.name LIKE $1",
        &[&pattern],
    )?;
    let mut per_session: HashMap<String, u64> = HashMap::new();
    let mut kernel_max = 0;
    let mut running = std::collections::HashSet::new();
    for row in &rows {
        let session: String = row.get(0);
        let status: String = row.get(1);
        let kernel: String = row.get(2);
        if status == "RUNNING" {
            running.insert(session.clone());
        }
        per_session.insert(
            session.clone(),
            events.session_started.get(&session).copied().unwrap_or(0),
        );
        let kernel_started = events.kernel_started.get(&kernel).copied().unwrap_or(0);
        kernel_max = kernel_max.max(kernel_started);
        if kernel_started != 1 {
            outcome.violations.push(format!(
                "kernel {kernel} of session {session}: kernel_started {kernel_started} times"
            ));
        }
    }
    outcome.running = running.len() as u64;
    outcome.kernel_started_max = Some(kernel_max);
    let min = per_session.values().copied().min().unwrap_or(0);
    let max = per_session.values().copied().max().unwrap_or(0);
    outcome.session_started = Some((min, max));
    if outcome.duplicate_names > 0 {
        outcome.violations.push(format!(
            "{} sessions more than one per name",
            outcome.duplicate_names
        ));
    }
    if per_session.len() as u64 != outcome.sessions {
        outcome.violations.push(format!(
            "{} sessions in the database instead of {}",
            per_session.len(),
            outcome.sessions
        ));
    }
    if outcome.running != outcome.sessions {
        outcome.violations.push(format!(
            "{} sessions RUNNING instead of {}",
            outcome.running, outcome.sessions
        ));
    }
    for (session, count) in &per_session {
        if *count != 1 {
            outcome
                .violations
                .push(format!("session {session}: session_started {count} times"));
        }
    }
    Ok(())
}

/// The counters of sessions created and scheduled, summed over the three processes, against the
/// database. A's first process may have created or scheduled sessions between its last scrape and
/// its death: at most the requests in flight then, and the sessions its rounds scheduled then.
fn check_metrics(
    db: &mut postgres::Client,
    scrapes: &Scrapes,
    killed_at: Option<chrono::DateTime<chrono::Utc>>,
    outcome: &mut Outcome,
) -> Result<()> {
    outcome.scrapes = scrapes.count;
    for failure in &scrapes.failures {
        outcome.violations.push(format!("/metrics: {failure}"));
    }
    let pattern = format!("{SESSION_PREFIX}%");
    let created: i64 = db
        .query_one(
            "SELECT count(*) FROM sessions WHERE name LIKE $1",
            &[&pattern],
        )?
        .get(0);
    let scheduled: i64 = db
        .query_one(
            "SELECT count(*) FROM sessions WHERE name LIKE $1 AND status_history ? 'SCHEDULED'",
            &[&pattern],
        )?
        .get(0);
    outcome.db_created = u64::try_from(created).unwrap_or(0);
    outcome.db_scheduled = u64::try_from(scheduled).unwrap_or(0);
    let (Some((before, scraped_at)), Some(after), Some(b)) =
        (scrapes.a_before, scrapes.a_after, scrapes.b)
    else {
        outcome
            .violations
            .push("/metrics: not every node process was scraped".to_owned());
        return Ok(());
    };
    let killed_at = killed_at.unwrap_or(scraped_at);
    // A round records the time its snapshot was taken; one that committed in the window may have
    // begun a few seconds before it.
    let window_start = scraped_at - chrono::Duration::seconds(10);
    let in_window: i64 = db
        .query_one(
            "SELECT count(*) FROM sessions WHERE name LIKE $1 \
             AND (status_history->>'SCHEDULED')::timestamptz \
             BETWEEN $2::text::timestamptz AND $3::text::timestamptz",
            &[
                &pattern,
                &window_start.to_rfc3339(),
                &killed_at.to_rfc3339(),
            ],
        )?
        .get(0);
    outcome.created_tolerance = REQUESTERS as u64;
    outcome.scheduled_tolerance = u64::try_from(in_window).unwrap_or(0);
    let metrics_created = before.created + after.created + b.created;
    let metrics_scheduled = before.scheduled + after.scheduled + b.scheduled;
    outcome.metrics_created = Some(metrics_created);
    outcome.metrics_scheduled = Some(metrics_scheduled);
    let agrees = |counted: f64, actual: u64, tolerance: u64| {
        counted <= actual as f64 && counted + tolerance as f64 >= actual as f64
    };
    if !agrees(
        metrics_created,
        outcome.db_created,
        outcome.created_tolerance,
    ) {
        outcome.violations.push(format!(
            "sessions created: counters {metrics_created} vs database {} (tolerance {})",
            outcome.db_created, outcome.created_tolerance
        ));
    }
    if !agrees(
        metrics_scheduled,
        outcome.db_scheduled,
        outcome.scheduled_tolerance,
    ) {
        outcome.violations.push(format!(
            "sessions scheduled: counters {metrics_scheduled} vs database {} (tolerance {})",
            outcome.db_scheduled, outcome.scheduled_tolerance
        ));
    }
    Ok(())
}

/// After the deletes: no kernel of the run left running, no agent with slots occupied.
fn check_released(
    db: &mut postgres::Client,
    agent_prefix: &str,
    outcome: &mut Outcome,
) -> Result<()> {
    let left: i64 = db
        .query_one(
            "SELECT count(*) FROM kernels AS k JOIN sessions AS s ON s.id = k.session_id \
             WHERE s.name LIKE $1 AND k.status NOT IN ('TERMINATED', 'CANCELLED')",
            &[&format!("{SESSION_PREFIX}%")],
        )?
        .get(0);
    outcome.kernels_left = u64::try_from(left).unwrap_or(0);
    let rows = db.query(
        "SELECT id, occupied_slots::text FROM agents WHERE id LIKE $1",
        &[&format!("{agent_prefix}%")],
    )?;
    for row in &rows {
        let id: String = row.get(0);
        let slots: String = row.get(1);
        let value: serde_json::Value = serde_json::from_str(&slots)
            .with_context(|| format!("agent {id}: occupied_slots {slots:?}"))?;
        let busy = value.as_object().is_some_and(|slots| {
            slots.values().any(|amount| {
                let text = amount
                    .as_str()
                    .map_or_else(|| amount.to_string(), str::to_owned);
                text.parse::<f64>() != Ok(0.0)
            })
        });
        if busy {
            outcome.agents_occupied += 1;
            outcome.violations.push(format!(
                "agent {id}: occupied_slots {slots} after the deletes"
            ));
        }
    }
    if outcome.kernels_left > 0 {
        outcome.violations.push(format!(
            "{} kernels not over after the deletes",
            outcome.kernels_left
        ));
    }
    Ok(())
}

/// Sessions whose start a node sent again, as the nodes' logs say.
fn restarted_starts(scratch: &Scratch, labels: &[&str]) -> u64 {
    labels
        .iter()
        .filter_map(|label| std::fs::read_to_string(scratch.0.join(format!("{label}.log"))).ok())
        .map(|log| log.matches("starting it again").count() as u64)
        .sum()
}

/// How often the stream announced each session started and each kernel started.
#[derive(Debug, Default)]
struct EventCounts {
    session_started: HashMap<String, u64>,
    kernel_started: HashMap<String, u64>,
}

/// The harness's reader of the stream `events` (database 4 of the private Redis): a consumer
/// group of its own, created before any node starts, read without acknowledgement.
struct StreamReader {
    connection: Resp,
    counts: EventCounts,
}

impl StreamReader {
    fn connect(port: u16) -> Result<StreamReader> {
        let mut connection = Resp::connect(port)?;
        connection.command(&[b"SELECT", b"4"])?;
        connection.command(&[
            b"XGROUP",
            b"CREATE",
            b"events",
            HARNESS_GROUP.as_bytes(),
            b"0",
            b"MKSTREAM",
        ])?;
        Ok(StreamReader {
            connection,
            counts: EventCounts::default(),
        })
    }

    /// Reads every entry not read yet; returns the counts so far.
    fn read_all(&mut self) -> Result<&EventCounts> {
        loop {
            let reply = self.connection.command(&[
                b"XREADGROUP",
                b"GROUP",
                HARNESS_GROUP.as_bytes(),
                b"reader",
                b"COUNT",
                b"5000",
                b"NOACK",
                b"STREAMS",
                b"events",
                b">",
            ])?;
            let Reply::Array(streams) = reply else {
                return Ok(&self.counts);
            };
            let mut read = 0;
            for stream in streams {
                let Reply::Array(mut parts) = stream else {
                    continue;
                };
                let Some(Reply::Array(entries)) = parts.pop() else {
                    continue;
                };
                for entry in entries {
                    read += 1;
                    self.count(entry);
                }
            }
            if read == 0 {
                return Ok(&self.counts);
            }
        }
    }

    fn count(&mut self, entry: Reply) {
        let Reply::Array(mut parts) = entry else {
            return;
        };
        let Some(Reply::Array(fields)) = parts.pop() else {
            return;
        };
        let mut name = None;
        let mut args = None;
        for pair in fields.chunks(2) {
            if let [Reply::Bulk(field), Reply::Bulk(value)] = pair {
                match field.as_slice() {
                    b"name" => name = Some(value.clone()),
                    b"args" => args = Some(value.clone()),
                    _ => {}
                }
            }
        }
        let (Some(name), Some(args)) = (name, args) else {
            return;
        };
        let map = match name.as_slice() {
            b"session_started" => &mut self.counts.session_started,
            b"kernel_started" => &mut self.counts.kernel_started,
            _ => return,
        };
        // Both events' first argument is the id, a UUID as a msgpack string.
        if let Some(id) = first_uuid(&args) {
            *map.entry(id).or_default() += 1;
        }
    }
}

/// The first 36-byte UUID text in `bytes`.
fn first_uuid(bytes: &[u8]) -> Option<String> {
    bytes.windows(36).find_map(|window| {
        let text = std::str::from_utf8(window).ok()?;
        let shaped = text.char_indices().all(|(index, c)| match index {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
        shaped.then(|| text.to_ascii_lowercase())
    })
}

/// A Redis reply (RESP2).
#[derive(Debug)]
enum Reply {
    /// A status or an integer: nothing the harness reads.
    Status,
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Reply>),
}

/// Enough of a Redis client for the harness: binary-safe commands and replies over one
/// connection (redis-cli would mangle the stream's msgpack values).
struct Resp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Resp {
    fn connect(port: u16) -> Result<Resp> {
        let stream = TcpStream::connect((consts::HOST, port))
            .with_context(|| format!("cannot connect to the private Redis on port {port}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Resp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    fn command(&mut self, args: &[&[u8]]) -> Result<Reply> {
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg);
            request.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&request)?;
        self.reply()
    }

    fn reply(&mut self) -> Result<Reply> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line
            .split_at_checked(1)
            .context("Redis closed the connection")?;
        match kind {
            "+" | ":" => Ok(Reply::Status),
            "-" => bail!("Redis: {rest}"),
            "$" => {
                let length: i64 = rest.parse()?;
                if length < 0 {
                    return Ok(Reply::Nil);
                }
                let mut bulk = vec![0; usize::try_from(length)? + 2];
                self.reader.read_exact(&mut bulk)?;
                bulk.truncate(bulk.len() - 2);
                Ok(Reply::Bulk(bulk))
            }
            "*" => {
                let length: i64 = rest.parse()?;
                if length < 0 {
                    return Ok(Reply::Nil);
                }
                (0..length)
                    .map(|_| self.reply())
                    .collect::<Result<Vec<_>>>()
                    .map(Reply::Array)
            }
            other => bail!("Redis: unexpected reply type {other:?}"),
        }
    }
}

/// The summary: one column per backend.
fn table(args: &Args, outcomes: &[Outcome]) -> String {
    let mut out = format!(
        "Two manager nodes (num-proc = 2 each), {} sessions alternately through both, node A \
         SIGKILLed after {:.0}% and started again {} s later\n{:<44}",
        args.sessions,
        args.kill_at * 100.0,
        RESTART_AFTER.as_secs(),
        ""
    );
    for outcome in outcomes {
        out.push_str(&format!(" {:>12}", outcome.backend));
    }
    out.push('\n');
    let mut row = |name: &str, value: &dyn Fn(&Outcome) -> String| {
        out.push_str(&format!("{name:<44}"));
        for outcome in outcomes {
            out.push_str(&format!(" {:>12}", value(outcome)));
        }
        out.push('\n');
    };
    let secs = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    let number = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
    row("all RUNNING after [s]", &|o| secs(o.running_secs));
    row("all TERMINATED after the deletes [s]", &|o| {
        secs(o.terminated_secs)
    });
    let mut keys: Vec<&(String, String)> = outcomes
        .iter()
        .flat_map(|outcome| outcome.answers.keys())
        .collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        row(&format!("POST answers node {} {}", key.0, key.1), &|o| {
            o.answers.get(key).copied().unwrap_or(0).to_string()
        });
    }
    row("no answer, then found through B", &|o| {
        o.found_after_no_answer.to_string()
    });
    row("no answer, then created through B", &|o| {
        o.created_again.to_string()
    });
    row("sessions RUNNING", &|o| o.running.to_string());
    row("sessions beyond one per name", &|o| {
        o.duplicate_names.to_string()
    });
    row("session_started per session (min-max)", &|o| {
        o.session_started
            .map_or_else(|| "-".to_owned(), |(min, max)| format!("{min}-{max}"))
    });
    row("kernel_started per kernel (max)", &|o| {
        o.kernel_started_max
            .map_or_else(|| "-".to_owned(), |max| max.to_string())
    });
    row("starts sent again (starter died)", &|o| {
        o.restarted_starts.to_string()
    });
    row("created: counters / database", &|o| {
        format!("{}/{}", number(o.metrics_created), o.db_created)
    });
    row("scheduled: counters / database", &|o| {
        format!("{}/{}", number(o.metrics_scheduled), o.db_scheduled)
    });
    row("tolerance created / scheduled", &|o| {
        format!("{}/{}", o.created_tolerance, o.scheduled_tolerance)
    });
    row("/metrics scrapes", &|o| o.scrapes.to_string());
    row("kernels not over after the deletes", &|o| {
        o.kernels_left.to_string()
    });
    row("agents with slots occupied after", &|o| {
        o.agents_occupied.to_string()
    });
    row("violations", &|o| o.violations.len().to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_uuid_of_msgpack_arguments() {
        let mut args = vec![0x93, 0xd9, 36];
        args.extend_from_slice(b"0E0B7AB4-3D0C-4BD8-8D8B-2B6A6B1D0A11");
        args.extend_from_slice(&[0xa0, 0xa0]);
        assert_eq!(
            first_uuid(&args).as_deref(),
            Some("0e0b7ab4-3d0c-4bd8-8d8b-2b6a6b1d0a11")
        );
        assert_eq!(first_uuid(b"no id here"), None);
    }

    #[test]
    fn chunked_bodies_are_made_whole() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
        assert_eq!(dechunk("# HELP x\nx 1\n"), "# HELP x\nx 1\n");
    }
}
