//! `cargo xtask bench agents`: the agent heartbeat load. For ours (`manager-server`) and the
//! reference manager (`--reference-server PYTHON`), one after the other, each on a database and an
//! etcd namespace of the halfstack made for it (as `bench server` makes them) and on a Redis of
//! its own: start the server, start `agent-sim` with `--agents` agents heartbeating every
//! `--interval` seconds as the load and a second `agent-sim` with `--probes` agents whose every
//! heartbeat carries its send time in `version` (`--stamp-version`), wait until every agent's row
//! is `ALIVE` (a server that does not get there within the warm-up timeout is measured as it is),
//! then measure for `--duration` seconds:
//!
//! - heartbeats handled per second: `entries-read` of the `manager` consumer group of the stream
//!   `events` (Redis DB 4) at the start and the end of the window, next to `entries-added` (what
//!   the agents sent); the group's `lag` (entries not read yet) and pending count at the end;
//!   since a server may read entries into a queue of its own faster than it stores them, also
//!   the share of the probes' heartbeats seen stored and the agents `ALIVE` at the end;
//! - lag from XADD to the database: one PostgreSQL connection polls the probes' `version` every
//!   [`POLL_EVERY`]; each change is a sample of now − the send time it carries (p50, p99, max);
//! - the server's CPU (utime + stime of its process tree, all threads) in cores over the window,
//!   its VmRSS and VmHWM at the end; agent-sim's and the Redis server's CPU for context.
//!
//! The Redis is private ([`PrivateRedis`]): another manager on the halfstack's Redis would take a
//! share of the heartbeats. One table compares the two servers; without a reference it holds ours
//! alone, and every server is checked against the targets of the issue (p99 lag under 100 ms,
//! less than one core, the group keeping up).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use super::peers::{AgentSim, AgentToml, PrivateRedis, agent_config};
use super::server::{Deployment, RunningServer, Server, reference_python, reference_server};
use super::{Scratch, build_release};
use crate::{apt, cmd, consts, sys};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Python of a venv holding the reference manager (e.g. after
    /// `pip install backend.ai-manager==24.3.11`), started as
    /// `PYTHON -m ai.backend.manager.server -f CONFIG`: the baseline of the ratio column.
    #[arg(long, value_name = "PYTHON")]
    reference_server: Option<PathBuf>,
    /// Workers of each server (`[manager] num-proc`; the reference accepts at most the cores).
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    num_proc: u64,
    /// Agents of the load.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=20_000))]
    agents: u64,
    /// Probe agents, whose heartbeats carry their send time (on top of the load).
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=1_000))]
    probes: u64,
    /// Seconds between two heartbeats of one agent (`[debug] heartbeat-interval`).
    #[arg(long, value_name = "SECS", default_value_t = 3.0, value_parser = parse_interval)]
    interval: f64,
    /// Seconds of measurement, after the warm-up.
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(5..=3600))]
    duration: u64,
}

fn parse_interval(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if (0.1..=60.0).contains(&secs) => Ok(secs),
        _ => Err(format!(
            "{text:?} is not a number of seconds from 0.1 to 60"
        )),
    }
}

/// Ports of the servers under test (`bench server` uses 8090 and 8091, the halfstack's 8081).
const OURS_PORT: u16 = 8092;
const REFERENCE_PORT: u16 = 8093;
/// Agent ids are `{prefix}-{i}`; the probes' prefix is what the lag query selects.
const LOAD_PREFIX: &str = "i-load";
const PROBE_PREFIX: &str = "i-probe";
/// First RPC port of the load agents and of the probes; agent-sim listens on one port per agent,
/// counting up from these.
const LOAD_RPC_PORT: u16 = 20_000;
const PROBE_RPC_PORT: u16 = 42_000;
/// How often the lag poller reads the probes' rows.
const POLL_EVERY: Duration = Duration::from_millis(2);
/// How long every agent may take to be `ALIVE` in the database after agent-sim started: at least
/// this long, and at least [`WARMUP_INTERVALS`] heartbeat intervals. A server that is not there by
/// then is measured anyway (it is saturated: that is a result, not a failed step), and the table
/// says how many agents it had made ALIVE.
const WARMUP_TIMEOUT: Duration = Duration::from_secs(60);
const WARMUP_INTERVALS: f64 = 20.0;
/// The targets: p99 lag in ms and server CPU in cores.
const TARGET_P99_MS: f64 = 100.0;
const TARGET_CORES: f64 = 1.0;
/// A server keeps up when its group read at least this share of what was added during the
/// window and it stored at least this share of the probes' heartbeats (and every agent is ALIVE).
const TARGET_KEEP_UP_SHARE: f64 = 0.98;

pub fn run(args: Args) -> Result<()> {
    let reference = reference_python(args.reference_server.as_deref())?;
    apt::ensure(&["redis-server"])?;
    let binaries = build_release(&["manager-cli", "manager-server", "agent-sim"])?;
    let tools = Tools {
        cli: binaries[0].clone(),
        agent_sim: binaries[2].clone(),
        clk_tck: clock_ticks_per_second()?,
    };
    let num_proc = usize::try_from(args.num_proc)?;
    if reference.is_some() {
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        if num_proc > cores {
            bail!("--num-proc {num_proc}: the reference manager accepts at most {cores} here");
        }
    }
    let scratch = Scratch::new()?;
    let mut servers = vec![Server {
        label: "ours",
        program: binaries[1].clone(),
        args: Vec::new(),
        env: Vec::new(),
        port: OURS_PORT,
        // Ours binds its listeners before it answers; one is enough to wait for.
        listeners: 1,
    }];
    if let Some(python) = reference {
        servers.push(reference_server(python, REFERENCE_PORT, num_proc));
    }
    let started = Instant::now();
    let mut figures = Vec::new();
    let mut failures = Vec::new();
    for server in &servers {
        match measure(&scratch, &tools, server, num_proc, &args) {
            Ok(result) => figures.push(result),
            Err(error) => {
                eprintln!("==> {}: FAILED: {error:#}", server.label);
                failures.push(format!("{}: {error:#}", server.label));
            }
        }
    }
    println!();
    if !figures.is_empty() {
        print!("{}", table(&title(&args, num_proc), &figures));
        print!("{}", target_checks(&figures));
    }
    println!(
        "(the whole run took {:.0} s)",
        started.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        bail!("bench agents failed:\n{}", failures.join("\n"));
    }
    Ok(())
}

fn title(args: &Args, num_proc: usize) -> String {
    format!(
        "Agent heartbeats (num-proc = {num_proc}): {} agents + {} probes, one heartbeat every \
         {} s each, measured for {} s after all were ALIVE",
        args.agents, args.probes, args.interval, args.duration
    )
}

/// The programs a run needs besides the server.
#[derive(Debug)]
struct Tools {
    cli: PathBuf,
    agent_sim: PathBuf,
    /// `getconf CLK_TCK`: the unit of utime and stime in `/proc/PID/stat`.
    clk_tck: f64,
}

/// What one server did during the window.
#[derive(Debug, Clone)]
struct Figures {
    label: &'static str,
    /// From starting agent-sim to every agent `ALIVE` (`None`: not within the warm-up timeout).
    warmup_secs: Option<f64>,
    /// Agents (load and probes) and how many of them were `ALIVE` at the end of the window.
    agents: u64,
    alive_at_end: u64,
    /// `entries-added` of the stream per second: what the agents (and the server) sent.
    sent_per_sec: f64,
    /// `entries-read` of the `manager` group per second. A server that reads entries into its own
    /// queue faster than it stores them counts them here; the probes' stored share tells.
    handled_per_sec: f64,
    /// Entries of the stream the group had not read at the end (`None`: Redis cannot tell).
    group_lag: Option<u64>,
    /// Entries delivered to the group and not acknowledged at the end.
    pending: u64,
    lag: LagStats,
    /// CPU seconds of the server's process tree per wall second.
    server_cores: f64,
    /// Sums over the server's process tree at the end, KiB.
    rss_kib: u64,
    hwm_kib: u64,
    /// CPU of both agent-sim processes and of the private Redis, cores.
    sim_cores: f64,
    redis_cores: f64,
}

/// The probes' heartbeats seen in the database during the window.
#[derive(Debug, Clone, Default, PartialEq)]
struct LagStats {
    /// Lags in ms, sorted.
    samples: Vec<f64>,
    /// Probe heartbeats sent in the window whose update was never seen: a later one replaced an
    /// earlier one's send time by more than one interval (dropped, or stored too late to be seen),
    /// or the probe's row did not change during the whole window.
    missed: u64,
    /// Probes × window / interval: about how many samples a server that stores every heartbeat gives.
    expected: u64,
}

impl LagStats {
    /// The nearest-rank percentile `p` (0-100) of the samples.
    fn percentile(&self, p: f64) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        let rank = (p / 100.0 * self.samples.len() as f64).ceil() as usize;
        Some(self.samples[rank.clamp(1, self.samples.len()) - 1])
    }

    fn max(&self) -> Option<f64> {
        self.samples.last().copied()
    }

    /// The share of the probes' heartbeats that were seen stored, in percent.
    fn stored_percent(&self) -> Option<f64> {
        let seen = self.samples.len() as f64;
        let all = seen + self.missed as f64;
        (all > 0.0).then(|| 100.0 * seen / all)
    }
}

/// Prepares everything for `server`, runs it under the load, measures and stops it all.
fn measure(
    scratch: &Scratch,
    tools: &Tools,
    server: &Server,
    num_proc: usize,
    args: &Args,
) -> Result<Figures> {
    if let Some(listener) = sys::tcp_listener(server.port) {
        bail!(
            "port {} is taken by {}; the {} server needs it",
            server.port,
            listener.describe(),
            server.label
        );
    }
    // Dropped in reverse order on any error: agent-sims, server, database and namespace, Redis.
    let redis = PrivateRedis::start(scratch, server.label)
        .context("step: start the private redis-server")?;
    let deployment = Deployment::prepare(scratch, &tools.cli, server, num_proc)
        .context("step: prepare the database and the etcd namespace")?;
    redis
        .serve_deployment(&tools.cli, &deployment.config, server.label)
        .context("step: point config/redis at the private Redis")?;

    let mut running = RunningServer::start(scratch, server, &deployment.config)
        .context("step: start the server")?;
    running.wait_ready().context("step: wait for the server")?;
    let server_pid = running.pid();

    let url = consts::pg_url(&deployment.database);
    let mut db = postgres::Client::connect(&url, postgres::NoTls)
        .with_context(|| format!("step: connect to {url}"))?;

    let namespace = &deployment.namespace;
    let agent_toml = |prefix, rpc_port| AgentToml {
        namespace,
        prefix,
        rpc_port,
        interval: args.interval,
        curve: None,
    };
    let load_config = agent_config(
        scratch,
        server.label,
        &agent_toml(LOAD_PREFIX, LOAD_RPC_PORT),
    )?;
    let probe_config = agent_config(
        scratch,
        server.label,
        &agent_toml(PROBE_PREFIX, PROBE_RPC_PORT),
    )?;
    let total = args.agents + args.probes;
    println!(
        "==> {}: agent-sim: {} agents ({LOAD_PREFIX}-*) and {} probes ({PROBE_PREFIX}-*, \
         --stamp-version), one heartbeat every {} s each",
        server.label, args.agents, args.probes, args.interval
    );
    let warmup_started = Instant::now();
    let mut load = AgentSim::start(
        scratch,
        &tools.agent_sim,
        server.label,
        "load",
        &load_config,
        args.agents,
        &[],
    )
    .context("step: start agent-sim (load)")?;
    let mut probes = AgentSim::start(
        scratch,
        &tools.agent_sim,
        server.label,
        "probes",
        &probe_config,
        args.probes,
        &["--stamp-version"],
    )
    .context("step: start agent-sim (probes)")?;

    let alive_query = format!(
        "SELECT count(*) FROM agents WHERE status = 'ALIVE' \
         AND (id LIKE '{LOAD_PREFIX}-%' OR id LIKE '{PROBE_PREFIX}-%')"
    );
    let count_alive = |db: &mut postgres::Client| -> Result<u64> {
        let count: i64 = db.query_one(alive_query.as_str(), &[])?.get(0);
        Ok(u64::try_from(count).unwrap_or(0))
    };
    let warmup_timeout =
        WARMUP_TIMEOUT.max(Duration::from_secs_f64(args.interval * WARMUP_INTERVALS));
    let warmup_secs = loop {
        for sim in [&mut load, &mut probes] {
            sim.check_running()
                .context("step: warm-up (agents becoming ALIVE)")?;
        }
        if !sys::pid_alive(server_pid) {
            bail!(
                "step: warm-up: the {} server exited\n{}",
                server.label,
                cmd::log_tail(&running.log)
            );
        }
        let alive = count_alive(&mut db).context("step: warm-up: counting ALIVE agents")?;
        if alive >= total {
            let secs = warmup_started.elapsed().as_secs_f64();
            println!(
                "==> {}: all {total} agents ALIVE {secs:.1} s after agent-sim started; \
                 settling for one interval",
                server.label
            );
            std::thread::sleep(Duration::from_secs_f64(args.interval));
            break Some(secs);
        }
        if warmup_started.elapsed() > warmup_timeout {
            println!(
                "==> {}: only {alive} of {total} agents ALIVE after {:.0} s: the server does \
                 not keep up; measuring it as it is",
                server.label,
                warmup_timeout.as_secs_f64()
            );
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };

    println!(
        "==> {}: measuring for {} s (probe rows polled every {} ms)",
        server.label,
        args.duration,
        POLL_EVERY.as_millis()
    );
    let server_tree = sys::process_tree(server_pid);
    let sim_pids = [load.child.id(), probes.child.id()];
    let redis_pid = [redis.child.id()];
    let before = Reading::take(redis.port, &server_tree, &sim_pids, &redis_pid)
        .context("step: readings at the start of the window")?;
    let lag = poll_lag(
        &mut db,
        Duration::from_secs(args.duration),
        args.interval,
        args.probes,
    )
    .context("step: polling the probes' rows")?;
    let after = Reading::take(redis.port, &server_tree, &sim_pids, &redis_pid)
        .context("step: readings at the end of the window")?;
    for sim in [&mut load, &mut probes] {
        sim.check_running()
            .context("step: measurement (agent-sim)")?;
    }
    if !sys::pid_alive(server_pid) {
        bail!(
            "step: measurement: the {} server exited\n{}",
            server.label,
            cmd::log_tail(&running.log)
        );
    }
    let alive_at_end = count_alive(&mut db).context("step: counting ALIVE agents at the end")?;
    let (rss_kib, hwm_kib) = server_tree
        .iter()
        .filter_map(|pid| rss_hwm_kib(*pid))
        .fold((0, 0), |(rss, hwm), (r, h)| (rss + r, hwm + h));

    let wall = after.at.duration_since(before.at).as_secs_f64();
    let cores = |from: u64, to: u64| to.saturating_sub(from) as f64 / tools.clk_tck / wall;
    let handled = match (before.entries_read, after.entries_read) {
        (Some(from), Some(to)) => to.saturating_sub(from) as f64 / wall,
        _ => bail!(
            "step: readings: Redis does not know the manager group's entries-read \
             (start {:?}, end {:?})",
            before.entries_read,
            after.entries_read
        ),
    };
    let figures = Figures {
        label: server.label,
        warmup_secs,
        agents: total,
        alive_at_end,
        sent_per_sec: after.entries_added.saturating_sub(before.entries_added) as f64 / wall,
        handled_per_sec: handled,
        group_lag: after.group_lag,
        pending: after.pending,
        lag,
        server_cores: cores(before.server_ticks, after.server_ticks),
        rss_kib,
        hwm_kib,
        sim_cores: cores(before.sim_ticks, after.sim_ticks),
        redis_cores: cores(before.redis_ticks, after.redis_ticks),
    };
    println!(
        "    added {:.1}/s, read {:.1}/s, lag p50 {} ms, p99 {} ms ({} samples), server {:.3} cores",
        figures.sent_per_sec,
        figures.handled_per_sec,
        optional(figures.lag.percentile(50.0), 1),
        optional(figures.lag.percentile(99.0), 1),
        figures.lag.samples.len(),
        figures.server_cores
    );

    probes.stop()?;
    load.stop()?;
    running.stop()?;
    drop(deployment);
    drop(redis);
    Ok(figures)
}

/// What is read at both ends of the window.
#[derive(Debug)]
struct Reading {
    at: Instant,
    entries_added: u64,
    entries_read: Option<u64>,
    group_lag: Option<u64>,
    pending: u64,
    server_ticks: u64,
    sim_ticks: u64,
    redis_ticks: u64,
}

impl Reading {
    fn take(redis_port: u16, server: &[u32], sims: &[u32], redis: &[u32]) -> Result<Self> {
        // The CPU counters first and together with the clock, then Redis (a few ms of redis-cli).
        let at = Instant::now();
        let (server_ticks, sim_ticks, redis_ticks) =
            (cpu_ticks(server), cpu_ticks(sims), cpu_ticks(redis));
        let stream = redis_json(redis_port, &["XINFO", "STREAM", "events"])?;
        let groups = redis_json(redis_port, &["XINFO", "GROUPS", "events"])?;
        let group = manager_group(&groups)?;
        Ok(Reading {
            at,
            entries_added: stream["entries-added"]
                .as_u64()
                .with_context(|| format!("XINFO STREAM events: no entries-added in {stream}"))?,
            entries_read: group["entries-read"].as_u64(),
            group_lag: group["lag"].as_u64(),
            pending: group["pending"].as_u64().unwrap_or(0),
            server_ticks,
            sim_ticks,
            redis_ticks,
        })
    }
}

/// The `manager` group in `XINFO GROUPS events` (redis-cli --json: a list of objects).
fn manager_group(groups: &serde_json::Value) -> Result<&serde_json::Value> {
    groups
        .as_array()
        .and_then(|groups| groups.iter().find(|group| group["name"] == "manager"))
        .with_context(|| format!("XINFO GROUPS events: no group `manager` in {groups}"))
}

/// A command on the stream database (4) of the private Redis, its answer as JSON.
fn redis_json(port: u16, command: &[&str]) -> Result<serde_json::Value> {
    let output = cmd::run(
        Command::new("redis-cli")
            .args([
                "-h",
                consts::HOST,
                "-p",
                &port.to_string(),
                "-n",
                "4",
                "--json",
            ])
            .args(command),
    )?;
    serde_json::from_str(&output)
        .with_context(|| format!("redis-cli {}: not JSON: {output:.300}", command.join(" ")))
}

/// Polls the probes' `version` for `window`; every change is a sample of the time from its send
/// (the `+t{unix ms}` it carries) to now.
fn poll_lag(
    db: &mut postgres::Client,
    window: Duration,
    interval: f64,
    probes: u64,
) -> Result<LagStats> {
    let statement = db.prepare("SELECT id, version FROM agents WHERE id LIKE $1")?;
    let pattern = format!("{PROBE_PREFIX}-%");
    let mut last: HashMap<String, Option<u64>> = HashMap::new();
    let mut changed: HashSet<String> = HashSet::new();
    let mut stats = LagStats {
        expected: (probes as f64 * window.as_secs_f64() / interval).round() as u64,
        ..LagStats::default()
    };
    let interval_ms = interval * 1000.0;
    let started = Instant::now();
    let mut first = true;
    let mut next = started;
    while started.elapsed() < window {
        let rows = db.query(&statement, &[&pattern])?;
        let now = unix_ms();
        for row in rows {
            let id: String = row.get(0);
            let version: Option<String> = row.get(1);
            let sent = version.as_deref().and_then(stamp_ms);
            let previous = last.insert(id.clone(), sent);
            if first {
                continue;
            }
            match (sent, previous.flatten()) {
                (Some(sent), Some(previous)) if sent != previous => {
                    stats.samples.push(now.saturating_sub(sent) as f64);
                    let gap = sent.saturating_sub(previous) as f64;
                    stats.missed += ((gap / interval_ms).round() as u64).saturating_sub(1);
                    changed.insert(id);
                }
                // A probe whose row appeared during the window.
                (Some(sent), None) if !changed.contains(&id) => {
                    stats.samples.push(now.saturating_sub(sent) as f64);
                    changed.insert(id);
                }
                _ => {}
            }
        }
        first = false;
        next += POLL_EVERY;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    let unchanged = probes.saturating_sub(changed.len() as u64);
    stats.missed += unchanged * (window.as_secs_f64() / interval).floor() as u64;
    stats.samples.sort_by(f64::total_cmp);
    Ok(stats)
}

/// The send time in `24.03.11+t{unix ms}`, the version of agent-sim's `--stamp-version`.
fn stamp_ms(version: &str) -> Option<u64> {
    version.rsplit_once("+t")?.1.parse().ok()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// utime + stime of every pid in `pids` (all threads of each), in clock ticks; a pid that is
/// gone counts 0.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| stat_cpu_ticks(&stat))
        .sum()
}

/// Fields 14 and 15 (utime, stime) of a `/proc/PID/stat` line; comm (field 2) may hold spaces.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS and VmHWM of `pid` in KiB.
fn rss_hwm_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((
        status_kib(&status, "VmRSS:")?,
        status_kib(&status, "VmHWM:")?,
    ))
}

fn status_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn clock_ticks_per_second() -> Result<f64> {
    let output = cmd::run(Command::new("getconf").arg("CLK_TCK"))?;
    output
        .trim()
        .parse()
        .with_context(|| format!("getconf CLK_TCK: {output:?} is not a number"))
}

/// `12.3`, or `-` for nothing.
pub(super) fn optional(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.decimals$}"))
}

/// Width of the table's first column.
const NAME_WIDTH: usize = 40;

/// One row per figure, one column per server; with ours and the reference a column of
/// ours / reference.
fn table(title: &str, figures: &[Figures]) -> String {
    let compare = figures.len() == 2 && figures[0].label == "ours";
    let mut out = format!("{title}\n{:<NAME_WIDTH$}", "");
    for result in figures {
        out.push_str(&format!(" {:>12}", result.label));
    }
    if compare {
        out.push_str(&format!(" {:>10}", "ours/ref"));
    }
    out.push('\n');
    let mut row = |name: &str, values: Vec<Option<f64>>, decimals: usize| {
        out.push_str(&format!("{name:<NAME_WIDTH$}"));
        for value in &values {
            out.push_str(&format!(" {:>12}", optional(*value, decimals)));
        }
        if compare {
            let ratio = match (values[0], values[1]) {
                (Some(ours), Some(theirs)) if theirs != 0.0 => Some(ours / theirs),
                _ => None,
            };
            out.push_str(&format!(
                " {:>10}",
                optional(ratio.filter(|ratio| ratio.is_finite()), 2)
            ));
        }
        out.push('\n');
    };
    let each = |pick: &dyn Fn(&Figures) -> Option<f64>| -> Vec<Option<f64>> {
        figures.iter().map(pick).collect()
    };
    let mib = |kib: u64| Some(kib as f64 / 1024.0);
    row(
        "stream entries added [/s]",
        each(&|f| Some(f.sent_per_sec)),
        1,
    );
    row(
        "entries read by group manager [/s]",
        each(&|f| Some(f.handled_per_sec)),
        1,
    );
    row(
        "group lag at end [entries]",
        each(&|f| f.group_lag.map(|lag| lag as f64)),
        0,
    );
    row(
        "pending at end [entries]",
        each(&|f| Some(f.pending as f64)),
        0,
    );
    row(
        "XADD -> DB lag p50 [ms]",
        each(&|f| f.lag.percentile(50.0)),
        1,
    );
    row(
        "XADD -> DB lag p99 [ms]",
        each(&|f| f.lag.percentile(99.0)),
        1,
    );
    row("XADD -> DB lag max [ms]", each(&|f| f.lag.max()), 1);
    row(
        "lag samples",
        each(&|f| Some(f.lag.samples.len() as f64)),
        0,
    );
    row(
        "probe heartbeats seen stored [%]",
        each(&|f| f.lag.stored_percent()),
        1,
    );
    row("server CPU [cores]", each(&|f| Some(f.server_cores)), 3);
    row("server RSS at end [MiB]", each(&|f| mib(f.rss_kib)), 1);
    row(
        "server peak RSS (VmHWM) [MiB]",
        each(&|f| mib(f.hwm_kib)),
        1,
    );
    row(
        "agent-sim CPU, both [cores]",
        each(&|f| Some(f.sim_cores)),
        3,
    );
    row(
        "private Redis CPU [cores]",
        each(&|f| Some(f.redis_cores)),
        3,
    );
    row("warm-up to all ALIVE [s]", each(&|f| f.warmup_secs), 1);
    row(
        "agents ALIVE at end",
        each(&|f| Some(f.alive_at_end as f64)),
        0,
    );
    if let Some(first) = figures.first() {
        out.push_str(&format!(
            "lag: now - the send time a probe put into its version, at the poll that saw the \
             row change (polled every {} ms, which adds up to ~{} ms); about {} samples \
             expected\n",
            POLL_EVERY.as_millis(),
            POLL_EVERY.as_millis(),
            first.lag.expected
        ));
    }
    for f in figures {
        if f.warmup_secs.is_none() {
            out.push_str(&format!(
                "{}: not every agent was ALIVE within the warm-up timeout; measured as it was\n",
                f.label
            ));
        }
    }
    if compare {
        out.push_str("ours/ref: ours divided by the reference's (lower is better except for /s)\n");
    } else {
        out.push_str(
            "no reference given (--reference-server PYTHON): the baseline is the targets below\n",
        );
    }
    out
}

/// The targets, per server: p99 lag, CPU, and keeping up with the agents (the group
/// reads what is added, the probes' heartbeats are stored, every agent is ALIVE).
fn target_checks(figures: &[Figures]) -> String {
    let mut out = String::from("targets:\n");
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    for f in figures {
        let p99 = f.lag.percentile(99.0);
        let read = if f.sent_per_sec > 0.0 {
            100.0 * f.handled_per_sec / f.sent_per_sec
        } else {
            0.0
        };
        let stored = f.lag.stored_percent().unwrap_or(0.0);
        let share = TARGET_KEEP_UP_SHARE * 100.0;
        let keeps_up = read >= share && stored >= share && f.alive_at_end >= f.agents;
        out.push_str(&format!(
            "  {:<10} p99 lag < {TARGET_P99_MS} ms: {} ({} ms); CPU < {TARGET_CORES} core: {} \
             ({:.3} cores); keeps up: {} (read {read:.1}% of added, {stored:.1}% of probe \
             heartbeats stored, {} of {} agents ALIVE)\n",
            f.label,
            verdict(p99.is_some_and(|p99| p99 < TARGET_P99_MS)),
            optional(p99, 1),
            verdict(f.server_cores < TARGET_CORES),
            f.server_cores,
            verdict(keeps_up),
            f.alive_at_end,
            f.agents,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_send_time_of_a_stamped_version() {
        assert_eq!(stamp_ms("24.03.11+t1712345678901"), Some(1_712_345_678_901));
        assert_eq!(stamp_ms("24.03.11"), None);
        assert_eq!(stamp_ms("24.03.11+tx"), None);
    }

    #[test]
    fn reads_cpu_ticks_and_memory() {
        let stat = "4242 (manager server) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3";
        assert_eq!(stat_cpu_ticks(stat), Some(325));
        let status = "Name:\tmanager-server\nVmHWM:\t   31748 kB\nVmRSS:\t   21120 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(21_120));
        assert_eq!(status_kib(status, "VmHWM:"), Some(31_748));
        let me = std::process::id();
        assert!(cpu_ticks(&[me]) < u64::MAX);
        let (rss, hwm) = rss_hwm_kib(me).expect("our own memory is readable");
        assert!(rss > 0 && hwm >= rss, "rss {rss} hwm {hwm}");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let stats = LagStats {
            samples: (1..=200).map(f64::from).collect(),
            ..LagStats::default()
        };
        assert_eq!(stats.percentile(50.0), Some(100.0));
        assert_eq!(stats.percentile(99.0), Some(198.0));
        assert_eq!(stats.max(), Some(200.0));
        assert_eq!(LagStats::default().percentile(99.0), None);
    }

    #[test]
    fn finds_the_manager_group() {
        let groups = serde_json::json!([
            {"name": "agent", "entries-read": 1},
            {"name": "manager", "consumers": 2, "pending": 0, "entries-read": 42, "lag": null}
        ]);
        let group = manager_group(&groups).unwrap();
        assert_eq!(group["entries-read"].as_u64(), Some(42));
        assert_eq!(group["lag"].as_u64(), None);
        assert!(manager_group(&serde_json::json!([])).is_err());
    }

    fn figures(label: &'static str, handled: f64, p99: f64, cores: f64) -> Figures {
        Figures {
            label,
            warmup_secs: Some(4.0),
            agents: 1020,
            alive_at_end: 1020,
            sent_per_sec: 340.0,
            handled_per_sec: handled,
            group_lag: Some(0),
            pending: 0,
            lag: LagStats {
                samples: vec![p99 / 2.0, p99],
                missed: 0,
                expected: 2,
            },
            server_cores: cores,
            rss_kib: 20 * 1024,
            hwm_kib: 30 * 1024,
            sim_cores: 0.1,
            redis_cores: 0.05,
        }
    }

    #[test]
    fn table_divides_ours_by_the_reference() {
        let table = table(
            "t",
            &[
                figures("ours", 340.0, 10.0, 0.1),
                figures("reference", 170.0, 1000.0, 0.8),
            ],
        );
        let line = |start: &str| {
            table
                .lines()
                .find(|line| line.starts_with(start))
                .unwrap_or_else(|| panic!("no line {start} in\n{table}"))
                .split_whitespace()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
        };
        assert_eq!(line("entries read by group"), ["2.00", "170.0", "340.0"]);
        assert_eq!(line("XADD -> DB lag p99"), ["0.01", "1000.0", "10.0"]);
        assert_eq!(line("server CPU"), ["0.12", "0.800", "0.100"]);
        let checks = target_checks(&[
            figures("ours", 340.0, 10.0, 0.1),
            figures("reference", 170.0, 1000.0, 0.8),
        ]);
        let lines: Vec<&str> = checks.lines().collect();
        assert!(!lines[1].contains("MISSED"), "{checks}");
        assert!(lines[2].contains("p99 lag < 100 ms: MISSED"), "{checks}");
        assert!(
            lines[2].contains("keeps up: MISSED (read 50.0% of added"),
            "{checks}"
        );
    }

    #[test]
    fn table_of_ours_alone_names_the_baseline() {
        let table = table("t", &[figures("ours", 340.0, 10.0, 0.1)]);
        assert!(!table.contains("ours/ref"), "{table}");
        assert!(table.contains("no reference given"), "{table}");
    }
}
