//! `cargo xtask bench events`: server-sent events under load. `--clients` clients (200) of the
//! example superadmin hold `GET /events/session` open (every session of every user) while
//! `--sessions` sessions (1,000) are enqueued on agent-sim agents, reach `RUNNING`, are destroyed
//! and reach `TERMINATED`. Checked: every client received every event of every session, in the
//! same order as every other client, and each session's events in lifecycle order. Measured: the
//! server's resident memory before, at its peak (`VmHWM`) and after the clients left, against the
//! same run with no client (the baseline: what the sessions alone cost).
//!
//! The server, its database, etcd namespace and Redis are made as `bench scheduler` makes them;
//! the clients are threads of this process reading the chunked body of their stream.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::peers::{AgentSim, AgentToml, agent_config};
use super::scheduler::{
    Tools, deploy, ours, post_json, server_alive, session_body, statuses, wait_for_agents,
};
use super::server::{RunningServer, http_request, signed_headers};
use super::{Scratch, sizer};
use crate::apt;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// CI-size run: 20 clients, 100 sessions on 2 agents, a cap of 120 s per phase (each option
    /// given explicitly wins).
    #[arg(long)]
    quick: bool,
    /// SSE clients [default: 200].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=2_000))]
    clients: Option<u64>,
    /// Sessions [default: 1000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    sessions: Option<u64>,
    /// agent-sim agents [default: 10].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=300))]
    agents: Option<u64>,
    /// Seconds each phase (all RUNNING, all TERMINATED) may take [default: 600].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=7_200))]
    cap: Option<u64>,
    /// Where the figures are written as JSON [default: TARGET_DIR/bench-events.json].
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

const PORT: u16 = 8098;
const RPC_PORT: u16 = 25_000;
const AGENT: &str = "i-bench-events";
const PREFIX: &str = "bench-events-";
const HEARTBEAT: f64 = 3.0;
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// Concurrent `POST /session` and `DELETE /session/{name}` requests.
const REQUESTERS: u64 = 8;
/// Time for the last events to reach the clients, and for memory to settle after they left.
const SETTLE: Duration = Duration::from_secs(3);

/// One session's events on agent-sim, repeats merged, `kernel_pulling` left out (only the first
/// session on an agent pulls).
const LIFECYCLE: [&str; 10] = [
    "session_enqueued",
    "session_scheduled",
    "kernel_preparing",
    "kernel_creating",
    "kernel_started",
    "session_started",
    "session_terminating",
    "kernel_terminating",
    "kernel_terminated",
    "session_terminated",
];

#[derive(Debug, Clone, Copy, Serialize)]
struct Sizes {
    clients: u64,
    sessions: u64,
    agents: u64,
    cap_secs: u64,
}

impl Sizes {
    fn of(args: &Args) -> Sizes {
        let pick = sizer(args.quick);
        Sizes {
            clients: pick(args.clients, 200, 20),
            sessions: pick(args.sessions, 1_000, 100),
            agents: pick(args.agents, 10, 2),
            cap_secs: pick(args.cap, 600, 120),
        }
    }
}

/// What one run found.
#[derive(Debug, Serialize)]
struct Figures {
    clients: u64,
    sessions: u64,
    /// From the first POST until every session was RUNNING.
    all_running_secs: f64,
    /// From the first DELETE until every session was TERMINATED.
    all_terminated_secs: f64,
    /// Events each client received (the same for all when the check passed).
    events_per_client: u64,
    /// Clients whose events differ from what every session should have shown.
    clients_failed: u64,
    /// The first difference found, for the report.
    first_failure: Option<String>,
    rss_before_mib: f64,
    rss_peak_mib: f64,
    rss_after_mib: f64,
}

pub fn run(args: Args) -> Result<()> {
    let sizes = Sizes::of(&args);
    apt::ensure(&["redis-server"])?;
    let tools = Tools::build()?;
    let scratch = Scratch::new()?;
    let with_clients = measure(&scratch, &tools, &sizes, sizes.clients, "events")?;
    let baseline = measure(&scratch, &tools, &sizes, 0, "eventsbase")?;
    println!();
    print!("{}", table(&with_clients, &baseline));
    let json = args
        .json
        .unwrap_or_else(|| crate::target_dir().join("bench-events.json"));
    let report = serde_json::json!({
        "sizes": sizes, "with_clients": with_clients, "baseline": baseline,
    });
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    println!("figures as JSON: {}", json.display());
    if with_clients.clients_failed > 0 {
        bail!(
            "{} of {} clients missed or reordered events: {}",
            with_clients.clients_failed,
            with_clients.clients,
            with_clients.first_failure.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

fn measure(
    scratch: &Scratch,
    tools: &Tools,
    sizes: &Sizes,
    clients: u64,
    label: &'static str,
) -> Result<Figures> {
    let server = ours(tools, label, PORT);
    let (redis, deployment, mut db, mut running) =
        deploy(scratch, &tools.cli, &server, 1, sizes.sessions)?;

    let per_agent = sizes.sessions.div_ceil(sizes.agents);
    let cpu = (2 * per_agent + 1).to_string();
    let mem = format!("{}g", per_agent + 2);
    let config = agent_config(
        scratch,
        label,
        &AgentToml {
            namespace: &deployment.namespace,
            prefix: AGENT,
            rpc_port: RPC_PORT,
            interval: HEARTBEAT,
            curve: None,
        },
    )?;
    let mut sim = AgentSim::start(
        scratch,
        &tools.agent_sim,
        label,
        "agents",
        &config,
        sizes.agents,
        &["--cpu", &cpu, "--mem", &mem],
    )
    .context("step: start agent-sim")?;
    wait_for_agents(&mut db, AGENT, sizes.agents, READY_TIMEOUT, &mut || {
        sim.check_running().and_then(|()| server_alive(&running))
    })
    .context("step: wait for the agents")?;
    let pid = running.pid();
    let rss_before_mib = memory(pid, "VmRSS")?;

    println!("==> {label}: {clients} SSE clients connecting");
    let stop = Arc::new(AtomicBool::new(false));
    let connected = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for _ in 0..clients {
        let stop = Arc::clone(&stop);
        let connected = Arc::clone(&connected);
        readers.push(std::thread::spawn(move || follow(PORT, &stop, &connected)));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while connected.load(Ordering::SeqCst) < clients as usize {
        if Instant::now() > deadline {
            bail!(
                "only {} of {clients} clients connected",
                connected.load(Ordering::SeqCst)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let cap = Duration::from_secs(sizes.cap_secs);
    println!("==> {label}: enqueueing {} sessions", sizes.sessions);
    let started = Instant::now();
    in_parallel(sizes.sessions, |index| {
        post_json(PORT, "/session", &session_body(&format!("{PREFIX}{index}"))).map(|_| ())
    })?;
    wait_status(&mut db, "RUNNING", sizes.sessions, cap, &running)?;
    let all_running_secs = started.elapsed().as_secs_f64();
    println!("    all RUNNING after {all_running_secs:.1} s; destroying them");
    let started = Instant::now();
    in_parallel(sizes.sessions, |index| {
        let path = format!("/session/{PREFIX}{index}");
        let headers = signed_headers(PORT, "DELETE", &path, "application/json");
        let response = http_request(PORT, "DELETE", &path, None, &headers)?;
        if response.status != 200 {
            bail!(
                "DELETE {path} answered {}: {}",
                response.status,
                response.body.trim()
            );
        }
        Ok(())
    })?;
    wait_status(&mut db, "TERMINATED", sizes.sessions, cap, &running)?;
    let all_terminated_secs = started.elapsed().as_secs_f64();
    println!("    all TERMINATED after {all_terminated_secs:.1} s");
    std::thread::sleep(SETTLE);
    let rss_peak_mib = memory(pid, "VmHWM")?;

    stop.store(true, Ordering::SeqCst);
    let mut seen = Vec::new();
    for reader in readers {
        seen.push(
            reader
                .join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))??,
        );
    }
    std::thread::sleep(SETTLE);
    let rss_after_mib = memory(pid, "VmRSS")?;
    let (clients_failed, first_failure) = check(&seen, sizes.sessions);
    let events_per_client =
        seen.first()
            .map_or(0, |client| client.values().map(Vec::len).sum::<usize>()) as u64;
    println!(
        "    {events_per_client} events per client; {clients_failed} clients failed; RSS \
         {rss_before_mib:.1} MiB before, {rss_peak_mib:.1} MiB at peak, {rss_after_mib:.1} MiB after"
    );
    sim.stop()?;
    running.stop()?;
    drop(deployment);
    drop(redis);
    Ok(Figures {
        clients,
        sessions: sizes.sessions,
        all_running_secs,
        all_terminated_secs,
        events_per_client,
        clients_failed,
        first_failure,
        rss_before_mib,
        rss_peak_mib,
        rss_after_mib,
    })
}

/// `field` (`VmRSS`, `VmHWM`) of process `pid`, in MiB.
fn memory(pid: u32, field: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    Ok(kib / 1024.0)
}

/// Runs `task(0..count)` on [`REQUESTERS`] threads; the first error wins.
fn in_parallel(count: u64, task: impl Fn(u64) -> Result<()> + Sync) -> Result<()> {
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..REQUESTERS {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst) as u64;
                    if index >= count {
                        return;
                    }
                    if let Err(error) = task(index) {
                        let mut first = first_error.lock().unwrap_or_else(|e| e.into_inner());
                        first.get_or_insert(error);
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

fn wait_status(
    db: &mut postgres::Client,
    status: &str,
    count: u64,
    cap: Duration,
    running: &RunningServer,
) -> Result<()> {
    let deadline = Instant::now() + cap;
    loop {
        server_alive(running)?;
        let counts = statuses(db, PREFIX)?;
        if counts.get(status).copied().unwrap_or(0) >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "not every session {status} within {} s: {counts:?}",
                cap.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One client: `GET /events/session` as the example superadmin; the events of each session (by
/// name), in the order received, until `stop`.
fn follow(
    port: u16,
    stop: &AtomicBool,
    connected: &AtomicUsize,
) -> Result<BTreeMap<String, Vec<String>>> {
    let path = "/events/session";
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    for (name, value) in signed_headers(port, "GET", path, "application/json") {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;

    let mut raw: Vec<u8> = Vec::new();
    let mut head_done = false;
    let mut text = String::new();
    let mut events: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut buffer = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => {
                if stop.load(Ordering::SeqCst) {
                    return Ok(events);
                }
                bail!("the server ended the stream");
            }
            Ok(read) => raw.extend_from_slice(&buffer[..read]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::SeqCst) {
                    return Ok(events);
                }
                continue;
            }
            Err(error) => return Err(error.into()),
        }
        if !head_done {
            let Some(end) = find(&raw, b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&raw[..end]).into_owned();
            if !head.starts_with("HTTP/1.1 200") {
                bail!("GET {path}: {head}");
            }
            raw.drain(..end + 4);
            head_done = true;
            connected.fetch_add(1, Ordering::SeqCst);
        }
        // Chunked transfer coding: `SIZE\r\nDATA\r\n`.
        while let Some(line_end) = find(&raw, b"\r\n") {
            let size_text = String::from_utf8_lossy(&raw[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.trim(), 16)
                .with_context(|| format!("bad chunk size {size_text:?}"))?;
            if raw.len() < line_end + 2 + size + 2 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(
                &raw[line_end + 2..line_end + 2 + size],
            ));
            raw.drain(..line_end + 2 + size + 2);
        }
        while let Some(end) = text.find("\r\n\r\n") {
            let block: String = text.drain(..end + 4).collect();
            if block.starts_with(':') {
                continue;
            }
            let mut event = None;
            let mut data = None;
            for line in block.trim_end().split("\r\n") {
                if let Some(value) = line.strip_prefix("event: ") {
                    event = Some(value.to_owned());
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = Some(value.to_owned());
                }
            }
            let (Some(event), Some(data)) = (event, data) else {
                bail!("not an event: {block:?}");
            };
            let data: serde_json::Value = serde_json::from_str(&data)?;
            let name = data["sessionName"].as_str().unwrap_or_default().to_owned();
            events.entry(name).or_default().push(event);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// How many clients' events differ from the first client's or miss a session's lifecycle, and
/// the first difference.
fn check(seen: &[BTreeMap<String, Vec<String>>], sessions: u64) -> (u64, Option<String>) {
    let Some(first) = seen.first() else {
        return (0, None);
    };
    let mut failed = 0;
    let mut first_failure = None;
    for (index, client) in seen.iter().enumerate() {
        let problem = if client.len() as u64 != sessions {
            Some(format!(
                "client {index} saw {} sessions, not {sessions}",
                client.len()
            ))
        } else if client != first {
            let session = client
                .iter()
                .find(|(name, events)| first.get(*name) != Some(events))
                .map_or("", |(name, _)| name.as_str());
            Some(format!(
                "client {index} saw session {session} differently: {:?} vs {:?}",
                client.get(session),
                first.get(session)
            ))
        } else {
            client.iter().find_map(|(name, events)| {
                let mut names: Vec<&str> = events.iter().map(String::as_str).collect();
                names.retain(|name| *name != "kernel_pulling");
                names.dedup();
                (names != LIFECYCLE).then(|| format!("session {name}: {events:?}"))
            })
        };
        if let Some(problem) = problem {
            failed += 1;
            first_failure.get_or_insert(problem);
        }
    }
    (failed, first_failure)
}

fn table(with: &Figures, baseline: &Figures) -> String {
    let row = |figures: &Figures| {
        format!(
            "| {:>7} | {:>8} | {:>10.1} | {:>13.1} | {:>15} | {:>6} | {:>10.1} | {:>8.1} | {:>9.1} |\n",
            figures.clients,
            figures.sessions,
            figures.all_running_secs,
            figures.all_terminated_secs,
            figures.events_per_client,
            figures.clients_failed,
            figures.rss_before_mib,
            figures.rss_peak_mib,
            figures.rss_after_mib,
        )
    };
    let mut text = String::from(
        "| clients | sessions | RUNNING s | TERMINATED s | events/client | failed | RSS before | RSS peak | RSS after |\n\
         |--------:|---------:|----------:|-------------:|--------------:|-------:|-----------:|---------:|----------:|\n",
    );
    text.push_str(&row(with));
    text.push_str(&row(baseline));
    let ratio = |ours: f64, base: f64| if base > 0.0 { ours / base } else { 0.0 };
    text.push_str(&format!(
        "\nRSS with {} clients against none: peak x{:.2} ({:+.1} MiB), after x{:.2} ({:+.1} MiB)\n",
        with.clients,
        ratio(with.rss_peak_mib, baseline.rss_peak_mib),
        with.rss_peak_mib - baseline.rss_peak_mib,
        ratio(with.rss_after_mib, baseline.rss_after_mib),
        with.rss_after_mib - baseline.rss_after_mib,
    ));
    text
}
