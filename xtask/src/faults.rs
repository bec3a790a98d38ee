//! `cargo xtask faults` (issue 18): the stores stopped and started under load. PostgreSQL, Redis
//! and etcd run as a private halfstack ([`halfstack::Layout::private`]: the halfstack's own
//! binaries and setup, its own folder and the ports [`PORTS`]; the shared halfstack is never
//! touched), with a database and an etcd namespace prepared as the benchmarks prepare theirs
//! (schema, install-guide fixtures, etcd keys) and a persistent Redis (the halfstack's: append-only
//! file, `appendfsync everysec`). On them run `manager-server` (`num-proc = 2`) and one agent-sim
//! agent.
//!
//! [`CLIENTS`] threads send a steady load of signed requests of the example superadmin, in turn:
//! `GET /auth/test`, a GraphQL query, and a GraphQL write (`create_keypair_resource_policy` with a
//! unique name, acknowledged when it answers `ok: true`). Meanwhile PostgreSQL is stopped
//! (`pg_ctl stop -m fast`) and started again, then Redis (SIGTERM, start), then etcd (SIGKILL,
//! start), each down for `--outage` seconds, with [`SETTLE`] of normal service between them.
//!
//! Checked: no answer other than 2xx and 503 (no 500, no request without an answer); every 503 is
//! problem+json `service-unavailable` naming a store; no request took longer than
//! [`LATENCY_BOUND`]; after each store is back, a run of [`RECOVERY_RUN`] successes starts within
//! [`RECOVERY_BOUND`]; every acknowledged write is in the database at the end; the background
//! tasks resumed: a session created after the faults becomes RUNNING and the agent is ALIVE.
//! A table per phase (requests, 2xx, 503, other, max latency, recovery time); any violation
//! makes the command fail.
//!
//! `--binaries DIR` uses the `manager-server`, `manager-cli` and `agent-sim` already built in `DIR`
//! (the integration test passes its debug build); by default they are built in release mode.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Scratch;
use super::bench_config;
use super::peers::{AgentSim, AgentToml, agent_config};
use super::scheduler::{Tools, session_body, statuses, wait_for_agents};
use super::server::{
    RunningServer, Server, add_to_manager_table, free_ports, http_request, install_guide_etcd,
    metrics_addr_line, signed_headers,
};
use crate::halfstack::{self, Layout, Ports, Service};
use crate::{apt, cmd, consts, sys};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds each store stays down.
    #[arg(long, value_name = "SECS", default_value_t = 6,
          value_parser = clap::value_parser!(u64).range(1..=60))]
    outage: u64,
    /// Use the binaries built in DIR instead of building them in release mode.
    #[arg(long, value_name = "DIR")]
    binaries: Option<PathBuf>,
}

/// The private stores' ports (the shared halfstack's plus 100).
const PORTS: Ports = Ports {
    postgres: 8200,
    redis: 8210,
    etcd_client: 8220,
    etcd_peer: 8221,
};
const DATABASE: &str = "faults";
const NAMESPACE: &str = "faults";
/// Concurrent clients of the load.
const CLIENTS: usize = 6;
/// Normal service before the first fault and after each store's return.
const SETTLE: Duration = Duration::from_secs(8);
/// The longest any request may take: each store call gives up within 2 s while its store is down
/// (PostgreSQL pool acquire, Redis command, etcd request), and a request meets at most a few of
/// them.
const LATENCY_BOUND: Duration = Duration::from_secs(5);
/// Consecutive successes that count as full service again, and how soon after a store's return
/// they must begin.
const RECOVERY_RUN: usize = 20;
const RECOVERY_BOUND: Duration = Duration::from_secs(5);
const HEARTBEAT: f64 = 2.0;
const AGENT_PREFIX: &str = "i-faults";
const SESSION_NAME: &str = "faults-after";
const SESSION_TIMEOUT: Duration = Duration::from_secs(60);
const WRITE_PREFIX: &str = "faults-policy-";
const GQL_QUERY: &str = r#"{"query": "query { keypair_resource_policies { name } }"}"#;

pub fn run(args: Args) -> Result<()> {
    apt::ensure(consts::HALFSTACK_PACKAGES)?;
    let tools = match &args.binaries {
        Some(dir) => Tools::built_in(dir)?,
        None => Tools::build()?,
    };
    let scratch = Scratch::new()?;
    let stores = PrivateStores::start(&scratch)?;
    let port = free_ports(1)?;
    let config = prepare(&scratch, &tools.cli, port)?;
    let server = Server {
        label: "faults",
        program: tools.server.clone(),
        args: Vec::new(),
        env: Vec::new(),
        port,
        listeners: 2,
    };
    let mut running = RunningServer::start(&scratch, &server, &config)?;
    running
        .wait_ready()
        .context("step: wait for manager-server")?;
    let agent_config = agent_config(
        &scratch,
        "faults",
        &AgentToml {
            namespace: NAMESPACE,
            prefix: AGENT_PREFIX,
            rpc_port: free_ports(1)?,
            interval: HEARTBEAT,
            curve: None,
        },
    )?;
    point_at_private_etcd(&agent_config)?;
    let mut sim = AgentSim::start(
        &scratch,
        &tools.agent_sim,
        "faults",
        "agent",
        &agent_config,
        1,
        &["--cpu", "4", "--mem", "8g"],
    )?;
    let mut db = connect_db()?;
    wait_for_agents(
        &mut db,
        AGENT_PREFIX,
        1,
        Duration::from_secs(60),
        &mut || sim.check_running(),
    )
    .context("step: wait for the agent")?;
    drop(db);

    let load = Load::new(port);
    let mut phases = Vec::new();
    std::thread::scope(|scope| -> Result<()> {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let load = &load;
                scope.spawn(move || load.client(client))
            })
            .collect();
        let result = faults(
            &stores,
            &load,
            Duration::from_secs(args.outage),
            &mut phases,
        );
        load.over.store(true, Ordering::SeqCst);
        for client in clients {
            client.join().expect("a load client panicked");
        }
        result
    })?;
    let samples = load.samples.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut violations = check_samples(&samples, &mut phases);
    let acknowledged: Vec<String> = samples
        .iter()
        .filter_map(|sample| sample.acknowledged.clone())
        .collect();
    let mut db = connect_db()?;
    violations.extend(check_writes(&mut db, &acknowledged)?);
    violations.extend(check_resumed(&mut db, port, &mut sim, &mut running));
    print!("{}", table(&phases));
    println!(
        "{} writes acknowledged; bounds: latency {LATENCY_BOUND:?}, recovery {RECOVERY_BOUND:?} \
         (a run of {RECOVERY_RUN} successes)",
        acknowledged.len()
    );
    sim.stop()?;
    running.stop()?;
    print!("{}", error_lines(&running.log));
    drop(stores);
    if !violations.is_empty() {
        bail!("faults run found violations:\n{}", violations.join("\n"));
    }
    Ok(())
}

/// The private halfstack; its services are stopped on drop.
struct PrivateStores {
    layout: Layout,
}

impl PrivateStores {
    fn start(scratch: &Scratch) -> Result<Self> {
        let root = scratch.0.join("stores");
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        let stores = PrivateStores {
            layout: Layout::private(root, PORTS),
        };
        for service in [Service::Postgres, Service::Redis, Service::Etcd] {
            let pid = halfstack::start_service(&stores.layout, service)?;
            println!(
                "==> private {} on port {} (pid {pid})",
                service.name(),
                stores.port(service)
            );
        }
        Ok(stores)
    }

    fn port(&self, service: Service) -> u16 {
        match service {
            Service::Postgres => PORTS.postgres,
            Service::Redis => PORTS.redis,
            _ => PORTS.etcd_client,
        }
    }

    /// PostgreSQL `pg_ctl stop -m fast`, Redis SIGTERM, etcd SIGKILL.
    fn stop(&self, service: Service) -> Result<()> {
        match service {
            Service::Etcd => {
                let pid = halfstack::service_pid(&self.layout, service)
                    .context("the private etcd is not running")?;
                cmd::run(Command::new("kill").args(["-KILL", &pid.to_string()]))?;
                sys::wait_until(Duration::from_secs(10), || Ok(!sys::pid_alive(pid)))?;
                Ok(())
            }
            _ => halfstack::stop_service(&self.layout, service),
        }
    }
}

impl Drop for PrivateStores {
    fn drop(&mut self) {
        for service in [Service::Etcd, Service::Redis, Service::Postgres] {
            if halfstack::service_pid(&self.layout, service).is_some() {
                let _ = halfstack::stop_service(&self.layout, service);
            }
        }
    }
}

/// The database (schema, install-guide fixtures, an image, raised limits) and the etcd keys;
/// returns the manager.toml.
fn prepare(scratch: &Scratch, cli: &Path, port: u16) -> Result<PathBuf> {
    let pid_file = scratch.0.join("faults.pid");
    let config = bench_config(
        scratch,
        cli,
        "faults.toml",
        &[
            (
                &format!("namespace = \"{}\"", consts::ETCD_NAMESPACE),
                &format!("namespace = \"{NAMESPACE}\""),
            ),
            (
                &format!("name = \"{}\"", consts::PG_DATABASE),
                &format!("name = \"{DATABASE}\""),
            ),
            (
                "addr = { host = \"127.0.0.1\", port = 8120 }",
                &format!(
                    "addr = {{ host = \"127.0.0.1\", port = {} }}",
                    PORTS.etcd_client
                ),
            ),
            (
                "addr = { host = \"localhost\", port = 8100 }",
                &format!(
                    "addr = {{ host = \"localhost\", port = {} }}",
                    PORTS.postgres
                ),
            ),
            (
                "service-addr = { host = \"0.0.0.0\", port = 8081 }",
                &format!("service-addr = {{ host = \"127.0.0.1\", port = {port} }}"),
            ),
            (
                "pid-file = \"./manager.pid\"",
                &format!("pid-file = \"{}\"", pid_file.display()),
            ),
            ("colored = true", "colored = false"),
        ],
    )?;
    // The metrics listener on a free port (the default one may be another server's).
    add_to_manager_table(&config, &format!("{}\n", metrics_addr_line(free_ports(1)?)))?;
    println!("==> database {DATABASE} and etcd namespace {NAMESPACE} of the private stores");
    cmd::run(
        Command::new("psql")
            .arg(PORTS.pg_url("postgres"))
            .args(["-v", "ON_ERROR_STOP=1", "-qc"])
            .arg(format!("CREATE DATABASE {DATABASE}")),
    )?;
    let with_config = |args: &[&str]| {
        let mut command = Command::new(cli);
        command.arg("-f").arg(&config).args(args);
        command
    };
    cmd::run(&mut with_config(&["schema", "oneshot"]))?;
    let images = scratch.0.join("faults-images.json");
    std::fs::write(&images, image_fixture().to_string())
        .with_context(|| format!("cannot write {}", images.display()))?;
    let fixtures = crate::db::INSTALL_GUIDE_FIXTURES
        .iter()
        .map(|file| crate::workspace_root().join(file))
        .chain([images]);
    for file in fixtures {
        cmd::run(&mut with_config(&[
            "fixture",
            "populate",
            &file.to_string_lossy(),
        ]))?;
    }
    cmd::run(
        Command::new("psql")
            .arg(PORTS.pg_url(DATABASE))
            .args(["-v", "ON_ERROR_STOP=1", "-qc"])
            .arg("UPDATE keypairs SET rate_limit = 1000000")
            .arg("-c")
            .arg("UPDATE keypair_resource_policies SET max_concurrent_sessions = 100"),
    )?;
    let tree = scratch.0.join("faults-etcd.json");
    std::fs::write(&tree, install_guide_etcd(PORTS.redis).to_string())
        .with_context(|| format!("cannot write {}", tree.display()))?;
    cmd::run(&mut with_config(&[
        "etcd",
        "put-json",
        "",
        &tree.to_string_lossy(),
    ]))?;
    Ok(config)
}

/// The image of `session_body`'s sessions.
fn image_fixture() -> serde_json::Value {
    serde_json::json!({"images": [{
        "id": "0e0b7ab4-3d0c-4bd8-8d8b-2b6a6b1d0a11",
        "name": "cr.backend.ai/stable/python:3.9-ubuntu20.04", "image": "stable/python",
        "tag": "3.9-ubuntu20.04", "registry": "cr.backend.ai", "architecture": "x86_64",
        "config_digest": format!("sha256:{:064x}", 7), "size_bytes": 123_456_789,
        "type": "COMPUTE", "labels": {"ai.backend.service-ports": "jupyter:http:8080"},
        "resources": {"cpu": {"min": "1", "max": null}, "mem": {"min": "256m", "max": null}},
    }]})
}

/// The agent's etcd: the private one.
fn point_at_private_etcd(agent_config: &Path) -> Result<()> {
    let text = std::fs::read_to_string(agent_config)
        .with_context(|| format!("cannot read {}", agent_config.display()))?;
    let from = "addr = { host = \"127.0.0.1\", port = 8120 }";
    if !text.contains(from) {
        bail!("{} no longer holds `{from}`", agent_config.display());
    }
    let text = text.replace(
        from,
        &format!(
            "addr = {{ host = \"127.0.0.1\", port = {} }}",
            PORTS.etcd_client
        ),
    );
    std::fs::write(agent_config, text)
        .with_context(|| format!("cannot write {}", agent_config.display()))
}

fn connect_db() -> Result<postgres::Client> {
    let url = PORTS.pg_url(DATABASE);
    postgres::Client::connect(&url, postgres::NoTls)
        .with_context(|| format!("cannot connect to {url}"))
}

/// What the clients send, in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AuthTest,
    Query,
    Write,
}

/// One request's outcome.
#[derive(Debug)]
struct Sample {
    kind: Kind,
    /// Since the load began.
    sent: Duration,
    latency: Duration,
    /// None: no answer (connection refused or reset, or no answer within the client's timeout).
    status: Option<u16>,
    /// A 2xx whose body says the operation succeeded (GraphQL answers 200 with `errors`).
    success: bool,
    /// What is wrong with it beyond its status (a 503 body not naming a store).
    problem: Option<String>,
    /// A failure's `msg` (or body, or GraphQL errors), for the summary.
    detail: Option<String>,
    /// The policy a write created, when acknowledged.
    acknowledged: Option<String>,
}

struct Load {
    port: u16,
    started: Instant,
    over: AtomicBool,
    next_write: AtomicU64,
    samples: Mutex<Vec<Sample>>,
}

impl Load {
    fn new(port: u16) -> Self {
        Load {
            port,
            started: Instant::now(),
            over: AtomicBool::new(false),
            next_write: AtomicU64::new(0),
            samples: Mutex::new(Vec::new()),
        }
    }

    fn client(&self, client: usize) {
        let kinds = [Kind::AuthTest, Kind::Query, Kind::Write];
        let mut turn = client;
        while !self.over.load(Ordering::SeqCst) {
            let sample = self.request(kinds[turn % kinds.len()]);
            turn += 1;
            let failed = !sample.success;
            self.samples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(sample);
            if failed {
                // A steady load, not a tight loop against a server that refuses.
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn request(&self, kind: Kind) -> Sample {
        let (method, path, body, name) = match kind {
            Kind::AuthTest => ("GET", "/auth/test?echo=faults", None, None),
            Kind::Query => ("POST", "/admin/gql", Some(GQL_QUERY.to_owned()), None),
            Kind::Write => {
                let name = format!(
                    "{WRITE_PREFIX}{}",
                    self.next_write.fetch_add(1, Ordering::SeqCst)
                );
                ("POST", "/admin/gql", Some(create_policy(&name)), Some(name))
            }
        };
        let content_type = if body.is_some() {
            "application/json"
        } else {
            "text/plain"
        };
        let headers = signed_headers(self.port, method, path, content_type);
        let sent = self.started.elapsed();
        let begun = Instant::now();
        let answer = http_request(self.port, method, path, body.as_deref(), &headers);
        let latency = begun.elapsed();
        let mut sample = Sample {
            kind,
            sent,
            latency,
            status: None,
            success: false,
            problem: None,
            detail: None,
            acknowledged: None,
        };
        let response = match answer {
            Ok(response) => response,
            Err(error) => {
                sample.detail = Some(format!("no answer: {error:#}"));
                return sample;
            }
        };
        sample.status = Some(response.status);
        let json: Option<serde_json::Value> = serde_json::from_str(response.body.trim()).ok();
        match response.status {
            200..=299 => {
                sample.success = match kind {
                    Kind::AuthTest => true,
                    Kind::Query => json.as_ref().is_some_and(|j| j.get("errors").is_none()),
                    Kind::Write => json.as_ref().is_some_and(|j| {
                        j["data"]["create_keypair_resource_policy"]["ok"] == serde_json::json!(true)
                    }),
                };
                if kind == Kind::Write && sample.success {
                    sample.acknowledged = name;
                }
            }
            503 => sample.problem = unavailable_problem(json.as_ref(), &response.body),
            _ => {}
        }
        if !sample.success {
            let detail = json
                .as_ref()
                .and_then(|j| j.get("msg").or_else(|| j.get("errors")).cloned())
                .map_or_else(|| response.body.trim().to_owned(), |v| v.to_string());
            let mut detail = format!("{} {detail}", response.status);
            detail.truncate(160);
            sample.detail = Some(detail);
        }
        sample
    }
}

fn create_policy(name: &str) -> String {
    let query = format!(
        "mutation {{ create_keypair_resource_policy(name: \"{name}\", props: {{ \
         default_for_unspecified: \"UNLIMITED\", max_concurrent_sessions: 1, \
         max_containers_per_session: 1, idle_timeout: 0 }}) {{ ok msg }} }}"
    );
    serde_json::json!({ "query": query }).to_string()
}

/// Why a 503 body is not the problem document naming a store, if it is not.
fn unavailable_problem(json: Option<&serde_json::Value>, body: &str) -> Option<String> {
    let Some(json) = json else {
        return Some(format!("503 without a JSON body: {:.200}", body.trim()));
    };
    let type_ok = json["type"] == "https://api.backend.ai/probs/service-unavailable";
    let msg = json["msg"].as_str().unwrap_or_default();
    let names_store = ["PostgreSQL", "Redis", "etcd"]
        .iter()
        .any(|store| msg.contains(store));
    (!(type_ok && names_store))
        .then(|| format!("503 body not naming a store: {:.200}", body.trim()))
}

/// One phase of the run: the store stopped in it (none: the baseline), when it began and ended
/// (since the load began), when the store was back, and what its requests found.
#[derive(Debug, Default)]
struct Phase {
    name: &'static str,
    begun: Duration,
    ended: Duration,
    back_at: Option<Duration>,
    requests: u64,
    ok: u64,
    unavailable: u64,
    other: u64,
    max_latency: Duration,
    recovery: Option<Duration>,
    /// Failures by kind of request and detail.
    failures: std::collections::BTreeMap<String, u64>,
}

/// Baseline, then each store down for `outage` and back, with [`SETTLE`] after each.
fn faults(
    stores: &PrivateStores,
    load: &Load,
    outage: Duration,
    phases: &mut Vec<Phase>,
) -> Result<()> {
    let begun = load.started.elapsed();
    std::thread::sleep(SETTLE);
    phases.push(Phase {
        name: "baseline",
        begun,
        ended: load.started.elapsed(),
        ..Phase::default()
    });
    for (name, service) in [
        ("postgresql", Service::Postgres),
        ("redis", Service::Redis),
        ("etcd", Service::Etcd),
    ] {
        let begun = load.started.elapsed();
        println!("==> {name}: stopping it for {outage:?}");
        stores.stop(service)?;
        std::thread::sleep(outage);
        halfstack::start_service(&stores.layout, service)?;
        let back_at = load.started.elapsed();
        println!(
            "==> {name}: back after {:.1} s",
            (back_at - begun).as_secs_f64()
        );
        std::thread::sleep(SETTLE);
        phases.push(Phase {
            name,
            begun,
            ended: load.started.elapsed(),
            back_at: Some(back_at),
            ..Phase::default()
        });
    }
    Ok(())
}

/// Fills the phases' figures from the samples; returns the violations.
fn check_samples(samples: &[Sample], phases: &mut [Phase]) -> Vec<String> {
    let mut violations = Vec::new();
    for phase in phases.iter_mut() {
        let mut in_phase: Vec<&Sample> = samples
            .iter()
            // By when the answer came: a request sent just before a stop and answered during the
            // outage tells of the outage.
            .filter(|s| (s.sent + s.latency) >= phase.begun && (s.sent + s.latency) < phase.ended)
            .collect();
        in_phase.sort_by_key(|s| s.sent);
        for sample in &in_phase {
            phase.requests += 1;
            phase.max_latency = phase.max_latency.max(sample.latency);
            if let Some(detail) = &sample.detail {
                *phase
                    .failures
                    .entry(format!("{:?}: {detail}", sample.kind))
                    .or_default() += 1;
            }
            match sample.status {
                Some(200..=299) => phase.ok += 1,
                Some(503) => phase.unavailable += 1,
                _ => phase.other += 1,
            }
            let at = format!(
                "{} at {:.1} s, {:?}",
                phase.name,
                sample.sent.as_secs_f64(),
                sample.kind
            );
            match sample.status {
                Some(200..=299 | 503) => {}
                Some(status) => violations.push(format!("{at}: answered {status}")),
                None => violations.push(format!(
                    "{at}: no answer (after {:.1} s)",
                    sample.latency.as_secs_f64()
                )),
            }
            if let Some(problem) = &sample.problem {
                violations.push(format!("{at}: {problem}"));
            }
            if sample.latency > LATENCY_BOUND {
                violations.push(format!(
                    "{at}: took {:.1} s (bound {LATENCY_BOUND:?})",
                    sample.latency.as_secs_f64()
                ));
            }
        }
        if let Some(back_at) = phase.back_at {
            let after: Vec<&&Sample> = in_phase.iter().filter(|s| s.sent >= back_at).collect();
            phase.recovery = after
                .windows(RECOVERY_RUN)
                .find(|run| run.iter().all(|s| s.success))
                .map(|run| run[0].sent.saturating_sub(back_at));
            match phase.recovery {
                Some(recovery) if recovery <= RECOVERY_BOUND => {}
                Some(recovery) => violations.push(format!(
                    "{}: full service only {:.1} s after its return (bound {RECOVERY_BOUND:?})",
                    phase.name,
                    recovery.as_secs_f64()
                )),
                None => violations.push(format!(
                    "{}: no run of {RECOVERY_RUN} successes after its return",
                    phase.name
                )),
            }
        } else if phase.ok != phase.requests {
            violations.push(format!(
                "{}: {} of {} requests failed before any fault",
                phase.name,
                phase.requests - phase.ok,
                phase.requests
            ));
        }
    }
    violations
}

/// Every acknowledged write is in the database.
fn check_writes(db: &mut postgres::Client, acknowledged: &[String]) -> Result<Vec<String>> {
    let rows = db.query(
        "SELECT name FROM keypair_resource_policies WHERE name LIKE $1",
        &[&format!("{WRITE_PREFIX}%")],
    )?;
    let stored: std::collections::HashSet<String> = rows.iter().map(|row| row.get(0)).collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|name| !stored.contains(*name))
        .collect();
    Ok(if lost.is_empty() {
        Vec::new()
    } else {
        vec![format!("{} acknowledged writes lost: {lost:?}", lost.len())]
    })
}

/// After the faults: a new session becomes RUNNING (consumer, dispatcher, global timers) and the
/// agent is ALIVE (heartbeats handled, no false loss).
fn check_resumed(
    db: &mut postgres::Client,
    port: u16,
    sim: &mut AgentSim,
    server: &mut RunningServer,
) -> Vec<String> {
    let mut violations = Vec::new();
    let path = "/session";
    let headers = signed_headers(port, "POST", path, "application/json");
    match http_request(
        port,
        "POST",
        path,
        Some(&session_body(SESSION_NAME)),
        &headers,
    ) {
        Ok(response) if (200..300).contains(&response.status) => {}
        Ok(response) => violations.push(format!(
            "POST /session after the faults answered {}: {:.300}",
            response.status,
            response.body.trim()
        )),
        Err(error) => violations.push(format!("POST /session after the faults: {error:#}")),
    }
    let started = Instant::now();
    let running = loop {
        match statuses(db, SESSION_NAME) {
            Ok(counts) if counts.get("RUNNING").is_some_and(|n| *n > 0) => break true,
            Ok(_) | Err(_) if started.elapsed() >= SESSION_TIMEOUT => break false,
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    };
    if running {
        println!(
            "==> session {SESSION_NAME} RUNNING {:.1} s after it was created",
            started.elapsed().as_secs_f64()
        );
    } else {
        violations.push(format!(
            "session {SESSION_NAME} not RUNNING within {SESSION_TIMEOUT:?} after the faults ({:?}); \
             server log:\n{}",
            statuses(db, SESSION_NAME).ok(),
            cmd::log_tail(&server.log)
        ));
    }
    match db.query_one(
        "SELECT status::text FROM agents WHERE id LIKE $1",
        &[&format!("{AGENT_PREFIX}%")],
    ) {
        Ok(row) if row.get::<_, String>(0) == "ALIVE" => {}
        Ok(row) => violations.push(format!(
            "the agent is {} after the faults",
            row.get::<_, String>(0)
        )),
        Err(error) => violations.push(format!("the agent's row: {error}")),
    }
    if let Err(error) = sim.check_running() {
        violations.push(format!("{error:#}"));
    }
    violations
}

fn table(phases: &[Phase]) -> String {
    let mut out = format!(
        "\n{:<11} {:>8} {:>7} {:>7} {:>7} {:>12} {:>10}\n",
        "phase", "requests", "2xx", "503", "other", "max latency", "recovery"
    );
    for phase in phases {
        out.push_str(&format!(
            "{:<11} {:>8} {:>7} {:>7} {:>7} {:>10.2} s {:>10}\n",
            phase.name,
            phase.requests,
            phase.ok,
            phase.unavailable,
            phase.other,
            phase.max_latency.as_secs_f64(),
            phase
                .recovery
                .map_or("-".to_owned(), |r| format!("{:.2} s", r.as_secs_f64())),
        ));
    }
    for phase in phases {
        for (failure, count) in &phase.failures {
            out.push_str(&format!("  {}: {count} × {failure}\n", phase.name));
        }
    }
    out
}

/// The server's ERROR lines, each distinct message once with its count (timestamps and pids cut
/// off), for the operator: an outage should show as warnings, not errors.
fn error_lines(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut errors: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for line in text.lines().filter(|line| line.contains(" ERROR ")) {
        let message = line.split_once(" ERROR ").map_or(line, |(_, rest)| rest);
        let message = match message.split_once("] ") {
            Some((_, rest)) => rest,
            None => message,
        };
        let mut message = message.to_owned();
        message.truncate(200);
        *errors.entry(message).or_default() += 1;
    }
    let mut out = format!(
        "server log: {} ERROR line(s)\n",
        errors.values().sum::<u64>()
    );
    for (message, count) in errors {
        out.push_str(&format!("  {count} × {message}\n"));
    }
    out
}
