//! `cargo xtask bench conns`: `--connections` (10,000) idle connections held by `manager-server`
//! (release build, `--num-proc` workers, default limits), on a database and etcd namespace of the
//! halfstack made as `bench server` makes them. Every other connection has sent part of a request
//! head, the others nothing. Measured and checked:
//!
//! - every connection is accepted and held (none closed before the header timeout);
//! - `GET /` (anonymous) on a fresh connection answers in under [`LATENCY_LIMIT`] while they are
//!   held (the slowest of [`PROBES`] requests);
//! - the server's resident memory before, while holding them (and per connection), and after
//!   they are closed;
//! - the connections are closed by the server at the stated timeouts: those with a partial head
//!   at `header-read-timeout` (10 s), the silent ones at `keepalive-timeout` (30 s), each within
//!   [`CLOSE_SLACK`].

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::scheduler::port_is_free;
use super::server::{Deployment, RunningServer, Server, http_request};
use super::{Scratch, build_release};
use crate::{consts, sys};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Idle connections to open [default: 10000].
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    connections: u64,
    /// The server's `num-proc`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    num_proc: u64,
    /// Where the figures are written as JSON [default: TARGET_DIR/bench-conns.json].
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

const PORT: u16 = 8099;
/// The defaults of `[manager] header-read-timeout` and `keepalive-timeout`.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(30);
/// How far from its timeout a connection may be closed (timer granularity, a loaded machine).
const CLOSE_SLACK: Duration = Duration::from_secs(3);
/// `GET /` requests timed while the connections are held.
const PROBES: usize = 20;
const LATENCY_LIMIT: Duration = Duration::from_millis(100);
/// What a connection with a partial head has sent.
const PARTIAL_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench-conns\r\n";

/// Everything a run found, as written to the JSON file.
#[derive(Debug, Serialize)]
struct Figures {
    connections: u64,
    num_proc: u64,
    open_seconds: f64,
    rss_before_kib: u64,
    rss_held_kib: u64,
    rss_after_kib: u64,
    /// (held − before) / connections.
    bytes_per_connection: f64,
    probe_p50_ms: f64,
    probe_max_ms: f64,
    /// Seconds from opening to the server's close: min, median, max, per group.
    partial_head_closed: Spread,
    silent_closed: Spread,
    failures: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
struct Spread {
    count: usize,
    min: f64,
    median: f64,
    max: f64,
}

impl Spread {
    fn of(mut seconds: Vec<f64>) -> Spread {
        if seconds.is_empty() {
            return Spread::default();
        }
        seconds.sort_by(f64::total_cmp);
        Spread {
            count: seconds.len(),
            min: seconds[0],
            median: seconds[seconds.len() / 2],
            max: seconds[seconds.len() - 1],
        }
    }
}

/// One held connection.
struct Held {
    stream: TcpStream,
    opened: Instant,
    partial_head: bool,
    closed_after: Option<Duration>,
}

pub fn run(args: Args) -> Result<()> {
    let needed = args.connections + 256;
    let soft = open_files_soft_limit()?;
    if soft < needed {
        bail!(
            "this process may open {soft} files, the benchmark needs {needed}; raise it \
             (ulimit -n {needed}) and run again"
        );
    }
    let binaries = build_release(&["manager-cli", "manager-server"])?;
    let (cli, ours) = (&binaries[0], &binaries[1]);
    let scratch = Scratch::new()?;
    let server = Server {
        label: "conns",
        program: ours.clone(),
        args: Vec::new(),
        env: Vec::new(),
        port: PORT,
        listeners: 1,
    };
    port_is_free(&server)?;
    let num_proc = usize::try_from(args.num_proc)?;
    let deployment = Deployment::prepare(&scratch, cli, &server, num_proc)
        .context("step: prepare the database and the etcd namespace")?;
    let mut running = RunningServer::start(&scratch, &server, &deployment.config)
        .context("step: start the server")?;
    running.wait_ready().context("step: wait for the server")?;
    let figures = measure(&running, &args)?;
    running.stop()?;
    drop(deployment);

    println!();
    print!("{}", table(&figures));
    let json = args
        .json
        .unwrap_or_else(|| crate::target_dir().join("bench-conns.json"));
    std::fs::write(&json, serde_json::to_string_pretty(&figures)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    println!("figures as JSON: {}", json.display());
    if !figures.failures.is_empty() {
        bail!("{}", figures.failures.join("\n"));
    }
    Ok(())
}

fn measure(running: &RunningServer, args: &Args) -> Result<Figures> {
    let pid = running.pid();
    let rss = || sys::memory_kib(pid).map(|(rss, _)| rss).unwrap_or(0);
    let mut failures = Vec::new();
    // Warm the allocator and the connection paths the way the probes will.
    probe_latencies(5)?;
    let rss_before_kib = rss();

    println!(
        "==> opening {} connections (every other one with a partial request head)",
        args.connections
    );
    let address = SocketAddr::from(([127, 0, 0, 1], PORT));
    let started = Instant::now();
    let mut held = Vec::new();
    for index in 0..args.connections {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))
            .with_context(|| format!("connection {index} of {}", args.connections))?;
        let partial_head = index % 2 == 1;
        if partial_head {
            stream.write_all(PARTIAL_HEAD)?;
        }
        stream.set_nonblocking(true)?;
        held.push(Held {
            stream,
            opened: Instant::now(),
            partial_head,
            closed_after: None,
        });
    }
    let open_seconds = started.elapsed().as_secs_f64();
    // Let the server accept the backlog and settle.
    std::thread::sleep(Duration::from_secs(1));
    poll_closed(&mut held);
    let early = held
        .iter()
        .filter(|conn| conn.closed_after.is_some())
        .count();
    if early > 0 {
        failures.push(format!(
            "{early} connections were closed before the header timeout"
        ));
    }
    let rss_held_kib = rss();
    let latencies = probe_latencies(PROBES)?;
    let probe_p50_ms = latencies[latencies.len() / 2].as_secs_f64() * 1e3;
    let probe_max = latencies[latencies.len() - 1];
    if probe_max >= LATENCY_LIMIT {
        failures.push(format!(
            "GET / took {:.1} ms while the connections were held (limit {} ms)",
            probe_max.as_secs_f64() * 1e3,
            LATENCY_LIMIT.as_millis()
        ));
    }
    println!(
        "==> held: RSS {rss_before_kib} KiB -> {rss_held_kib} KiB; GET / p50 {probe_p50_ms:.2} ms, \
         max {:.2} ms; waiting for the server to close them",
        probe_max.as_secs_f64() * 1e3
    );

    let deadline = Instant::now() + KEEPALIVE_TIMEOUT + CLOSE_SLACK * 2;
    while held.iter().any(|conn| conn.closed_after.is_none()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        poll_closed(&mut held);
    }
    let still_open = held
        .iter()
        .filter(|conn| conn.closed_after.is_none())
        .count();
    if still_open > 0 {
        failures.push(format!(
            "{still_open} connections were still open {:.0} s after they were opened",
            (KEEPALIVE_TIMEOUT + CLOSE_SLACK * 2).as_secs_f64()
        ));
    }
    let closed = |partial: bool| -> Vec<f64> {
        held.iter()
            .filter(|conn| conn.partial_head == partial)
            .filter_map(|conn| conn.closed_after.map(|after| after.as_secs_f64()))
            .collect()
    };
    let partial_head_closed = Spread::of(closed(true));
    let silent_closed = Spread::of(closed(false));
    for (name, spread, timeout) in [
        (
            "with a partial head",
            &partial_head_closed,
            HEADER_READ_TIMEOUT,
        ),
        ("silent", &silent_closed, KEEPALIVE_TIMEOUT),
    ] {
        let (low, high) = (
            timeout.saturating_sub(CLOSE_SLACK).as_secs_f64(),
            (timeout + CLOSE_SLACK).as_secs_f64(),
        );
        if spread.count > 0 && (spread.min < low || spread.max > high) {
            failures.push(format!(
                "connections {name} were closed after {:.1}..{:.1} s, not {:.0} s ± {:.0} s",
                spread.min,
                spread.max,
                timeout.as_secs_f64(),
                CLOSE_SLACK.as_secs_f64()
            ));
        }
    }
    drop(held);
    std::thread::sleep(Duration::from_secs(1));
    let rss_after_kib = rss();
    let connections = args.connections;
    Ok(Figures {
        connections,
        num_proc: args.num_proc,
        open_seconds,
        rss_before_kib,
        rss_held_kib,
        rss_after_kib,
        bytes_per_connection: (rss_held_kib.saturating_sub(rss_before_kib) * 1024) as f64
            / connections as f64,
        probe_p50_ms,
        probe_max_ms: probe_max.as_secs_f64() * 1e3,
        partial_head_closed,
        silent_closed,
        failures,
    })
}

/// Notes the connections the server has closed (EOF or reset) since the last look.
fn poll_closed(held: &mut [Held]) {
    let mut buf = [0_u8; 512];
    for conn in held.iter_mut().filter(|conn| conn.closed_after.is_none()) {
        let closed = match conn.stream.read(&mut buf) {
            Ok(0) => true,
            // The server answers nothing to an idle connection; anything it sends is a refusal
            // before the close.
            Ok(_) => false,
            Err(error) => error.kind() != ErrorKind::WouldBlock,
        };
        if closed {
            conn.closed_after = Some(conn.opened.elapsed());
        }
    }
}

/// `count` anonymous `GET /` on fresh connections, sorted.
fn probe_latencies(count: usize) -> Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let response = http_request(PORT, "GET", "/", None, &[])?;
        latencies.push(started.elapsed());
        if response.status != 200 {
            bail!("GET / answered {}: {}", response.status, response.body);
        }
    }
    latencies.sort();
    Ok(latencies)
}

/// This process's soft `RLIMIT_NOFILE`, from `/proc/self/limits`.
fn open_files_soft_limit() -> Result<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").context("/proc/self/limits")?;
    limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .context("no open files limit in /proc/self/limits")
}

fn table(figures: &Figures) -> String {
    let spread = |spread: &Spread| {
        format!(
            "{} closed after {:.1} / {:.1} / {:.1} s (min / median / max)",
            spread.count, spread.min, spread.median, spread.max
        )
    };
    format!(
        "{connections} idle connections to manager-server (num-proc = {num_proc}, {host})\n\
         opened in                {open:.2} s\n\
         RSS before               {before:.1} MiB\n\
         RSS holding them         {held:.1} MiB ({per:.0} bytes per connection)\n\
         RSS after they closed    {after:.1} MiB\n\
         GET / while held         p50 {p50:.2} ms, max {max:.2} ms (limit {limit} ms)\n\
         partial head             {partial} [header-read-timeout {header} s]\n\
         silent                   {silent} [keepalive-timeout {keepalive} s]\n",
        connections = figures.connections,
        num_proc = figures.num_proc,
        host = consts::HOST,
        open = figures.open_seconds,
        before = figures.rss_before_kib as f64 / 1024.0,
        held = figures.rss_held_kib as f64 / 1024.0,
        per = figures.bytes_per_connection,
        after = figures.rss_after_kib as f64 / 1024.0,
        p50 = figures.probe_p50_ms,
        max = figures.probe_max_ms,
        limit = LATENCY_LIMIT.as_millis(),
        partial = spread(&figures.partial_head_closed),
        header = HEADER_READ_TIMEOUT.as_secs(),
        silent = spread(&figures.silent_closed),
        keepalive = KEEPALIVE_TIMEOUT.as_secs(),
    )
}
