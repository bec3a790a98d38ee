//! `cargo xtask bench rpc`: agent RPC `ping` round trips per second and their latency, over one
//! connection with many calls in flight (what the manager's `AgentRpcCache` does) against a
//! connection per call (what the reference does for every agent call: a ZeroMQ context, a DEALER
//! and the PING/PONG handshake, closed after the answer), with and without CURVE.
//!
//! Both patterns are run by our own client, `manager-cli agent ping ID --count N --in-flight K
//! [--connect-per-call] --json`, against `agent-sim`, one after the other in the same run: the
//! baseline is the reference's pattern, not the reference's code (whose Python client would add
//! its own costs on top). The steps: a database and an etcd namespace of the halfstack (as
//! `bench server` makes them) with a Redis of their own, `manager-server` until two agent-sim
//! agents are `ALIVE` in the `agents` table (one with the NULL mechanism, one with a CURVE keypair
//! of its own that accepts the deployment's manager key), then the server is stopped (RPC goes
//! from manager-cli to the agents directly; the server would only add noise) and each agent is
//! pinged in both patterns. One table compares them.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::peers::{AgentCurve, AgentSim, AgentToml, PrivateRedis, agent_config};
use super::server::{Deployment, RunningServer, Server, free_ports};
use super::{Scratch, build_release};
use crate::{apt, cmd, sys};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pings over one connection, per agent.
    #[arg(long, value_name = "N", default_value_t = 200_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    count: u64,
    /// Pings with a connection each, per agent (each pays for a ZeroMQ context, a socket and the
    /// handshake, so fewer of them take as long).
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    per_call_count: u64,
    /// Pings outstanding at once, in both patterns.
    #[arg(long, value_name = "K", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    in_flight: u64,
}

/// Names the database, the etcd namespace and the scratch files of the run.
const LABEL: &str = "rpc";
/// The server's port (`bench server` uses 8090 and 8091, `bench agents` 8092 and 8093).
const SERVER_PORT: u16 = 8094;
/// Seconds between two heartbeats of an agent; only the first one matters here.
const HEARTBEAT_INTERVAL: f64 = 3.0;
/// How long the agents may take to be `ALIVE`, and then to answer a first ping.
const ALIVE_TIMEOUT: Duration = Duration::from_secs(60);
const REACHABLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The security mechanism of an agent's RPC, and so of the agent-sim process that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    Null,
    Curve,
}

impl Mechanism {
    const ALL: [Mechanism; 2] = [Mechanism::Null, Mechanism::Curve];

    fn name(self) -> &'static str {
        match self {
            Mechanism::Null => "NULL",
            Mechanism::Curve => "CURVE",
        }
    }

    /// `[agent] id` of its agent-sim; run with `--agents 1`, the agent is `{prefix}-0`.
    fn prefix(self) -> &'static str {
        match self {
            Mechanism::Null => "i-rpc-null",
            Mechanism::Curve => "i-rpc-curve",
        }
    }

    fn agent_id(self) -> String {
        format!("{}-0", self.prefix())
    }
}

/// What `manager-cli agent ping --json` prints, the part we read.
#[derive(Debug, Clone, Deserialize)]
struct PingReport {
    count: u64,
    connect_per_call: bool,
    /// Whether the agent's row has a public key.
    curve: bool,
    ok: u64,
    errors: u64,
    per_second: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
    first_error: Option<String>,
}

/// Both patterns against one agent.
#[derive(Debug)]
struct Comparison {
    mechanism: Mechanism,
    one_connection: PingReport,
    per_call: PingReport,
}

pub fn run(args: Args) -> Result<()> {
    apt::ensure(&["redis-server"])?;
    let binaries = build_release(&["manager-cli", "manager-server", "agent-sim"])?;
    let (cli, agent_sim) = (&binaries[0], &binaries[2]);
    if let Some(listener) = sys::tcp_listener(SERVER_PORT) {
        bail!(
            "port {SERVER_PORT} is taken by {}; the server of the run needs it",
            listener.describe()
        );
    }
    let started = Instant::now();
    let scratch = Scratch::new()?;
    let server = Server {
        label: LABEL,
        program: binaries[1].clone(),
        args: Vec::new(),
        env: Vec::new(),
        port: SERVER_PORT,
        listeners: 1,
    };
    // Dropped in reverse order on any error: agent-sims, server, database and namespace, Redis.
    let redis =
        PrivateRedis::start(&scratch, LABEL).context("step: start the private redis-server")?;
    let deployment = Deployment::prepare(&scratch, cli, &server, 1)
        .context("step: prepare the database and the etcd namespace")?;
    let config = &deployment.config;
    redis
        .serve_deployment(cli, config, LABEL)
        .context("step: point config/redis at the private Redis")?;
    let mut running =
        RunningServer::start(&scratch, &server, config).context("step: start the server")?;
    running.wait_ready().context("step: wait for the server")?;

    let curve = agent_curve(&scratch, cli).context("step: the CURVE agent's keypair")?;
    let first_port = free_ports(Mechanism::ALL.len())?;
    let mut sims = Vec::new();
    for (mechanism, rpc_port) in Mechanism::ALL.into_iter().zip(first_port..) {
        let agent = AgentToml {
            namespace: &deployment.namespace,
            prefix: mechanism.prefix(),
            rpc_port,
            interval: HEARTBEAT_INTERVAL,
            curve: (mechanism == Mechanism::Curve).then_some(&curve),
        };
        let agent_config = agent_config(&scratch, LABEL, &agent)?;
        println!(
            "==> agent-sim: {} on port {rpc_port} ({})",
            mechanism.agent_id(),
            mechanism.name()
        );
        sims.push(
            AgentSim::start(
                &scratch,
                agent_sim,
                LABEL,
                mechanism.prefix(),
                &agent_config,
                1,
                &[],
            )
            .with_context(|| format!("step: start agent-sim ({})", mechanism.name()))?,
        );
    }
    wait_alive(cli, config, &mut sims).context("step: wait for the agents to be ALIVE")?;
    running.stop().context("step: stop the server")?;

    let mut comparisons = Vec::new();
    for mechanism in Mechanism::ALL {
        let id = mechanism.agent_id();
        wait_reachable(cli, config, &id).with_context(|| format!("step: a first ping of {id}"))?;
        let report = |count, connect_per_call| {
            let report = ping(cli, config, &id, count, args.in_flight, connect_per_call)?;
            if report.curve != (mechanism == Mechanism::Curve) {
                bail!(
                    "agent {id}: the ping says curve = {}, expected {}",
                    report.curve,
                    mechanism.name()
                );
            }
            Ok(report)
        };
        comparisons.push(Comparison {
            mechanism,
            one_connection: report(args.count, false)?,
            per_call: report(args.per_call_count, true)?,
        });
        for sim in &mut sims {
            sim.check_running().context("step: pinging the agents")?;
        }
    }
    for mut sim in sims {
        sim.stop()?;
    }
    drop(running);
    drop(deployment);
    drop(redis);

    println!();
    print!("{}", table(&title(&args), &comparisons));
    println!(
        "(the whole run took {:.0} s)",
        started.elapsed().as_secs_f64()
    );
    let failed: Vec<String> = comparisons
        .iter()
        .flat_map(|c| [&c.one_connection, &c.per_call])
        .filter_map(|report| report.first_error.clone())
        .collect();
    if !failed.is_empty() {
        bail!(
            "some pings failed; the first error of each failing run:\n{}",
            failed.join("\n")
        );
    }
    Ok(())
}

fn title(args: &Args) -> String {
    format!(
        "Agent RPC ping against agent-sim, {} calls in flight: one connection ({} pings) vs. a \
         connection per call ({} pings), the reference's pattern run by our own client in the \
         same go",
        args.in_flight, args.count, args.per_call_count
    )
}

/// The CURVE agent's keypair, generated into the scratch folder by `manager-cli`, and the public
/// half of the deployment's manager keypair, which `bench_config` generated next to it.
fn agent_curve(scratch: &Scratch, cli: &Path) -> Result<AgentCurve> {
    cmd::run(
        Command::new(cli)
            .arg("generate-rpc-keypair")
            .arg(&scratch.0)
            .arg("agent-curve"),
    )?;
    let curve = AgentCurve {
        keypair: scratch.0.join("agent-curve.key_secret"),
        manager_public_key: scratch.0.join("manager.key"),
    };
    for file in [&curve.keypair, &curve.manager_public_key] {
        if !file.is_file() {
            bail!("{} is missing", file.display());
        }
    }
    Ok(curve)
}

/// Waits until every agent's row is `ALIVE` (`manager-cli agent list --status ALIVE --json`).
fn wait_alive(cli: &Path, config: &Path, sims: &mut [AgentSim]) -> Result<()> {
    let wanted: Vec<String> = Mechanism::ALL.map(Mechanism::agent_id).to_vec();
    let alive = sys::wait_until(ALIVE_TIMEOUT, || {
        for sim in sims.iter_mut() {
            sim.check_running()?;
        }
        let listed = cmd::run(
            Command::new(cli)
                .arg("-f")
                .arg(config)
                .args(["agent", "list", "--status", "ALIVE", "--json"]),
        )?;
        let ids = alive_ids(&listed)?;
        Ok(wanted.iter().all(|id| ids.contains(id)))
    })?;
    if !alive {
        bail!(
            "{} not all ALIVE within {ALIVE_TIMEOUT:?}",
            wanted.join(" and ")
        );
    }
    println!(
        "==> {} are ALIVE; stopping the server",
        wanted.join(" and ")
    );
    Ok(())
}

/// The ids in `agent list --json`.
fn alive_ids(listed: &str) -> Result<Vec<String>> {
    let rows: Vec<serde_json::Value> = serde_json::from_str(listed)
        .with_context(|| format!("agent list --json: not a JSON array: {listed:.300}"))?;
    Ok(rows
        .iter()
        .filter_map(|row| row["id"].as_str().map(str::to_owned))
        .collect())
}

/// Pings agent `id` once until it answers: its RPC socket may start after its first heartbeat.
fn wait_reachable(cli: &Path, config: &Path, id: &str) -> Result<()> {
    let mut last_error = String::new();
    let answered = sys::wait_until(REACHABLE_TIMEOUT, || {
        let output = Command::new(cli)
            .arg("-f")
            .arg(config)
            .args(["agent", "ping", id, "--timeout", "2"])
            .output()
            .with_context(|| format!("cannot run {}", cli.display()))?;
        last_error = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Ok(output.status.success())
    })?;
    if !answered {
        bail!("agent {id} did not answer a ping within {REACHABLE_TIMEOUT:?}: {last_error}");
    }
    Ok(())
}

/// `manager-cli agent ping ID --count N --in-flight K [--connect-per-call] --json`. A run with
/// failed pings still prints its report (and exits 1): the table shows the errors.
fn ping(
    cli: &Path,
    config: &Path,
    id: &str,
    count: u64,
    in_flight: u64,
    connect_per_call: bool,
) -> Result<PingReport> {
    let mut command = Command::new(cli);
    command
        .arg("-f")
        .arg(config)
        .args(["agent", "ping", id, "--json"])
        .args(["--count", &count.to_string()])
        .args(["--in-flight", &in_flight.to_string()]);
    if connect_per_call {
        command.arg("--connect-per-call");
    }
    println!("==> {}", cmd::display(&command));
    let output = command
        .output()
        .with_context(|| format!("cannot run `{}`", cmd::display(&command)))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = parse_report(&stdout).with_context(|| {
        format!(
            "`{}` ({}) printed no report; stderr: {}",
            cmd::display(&command),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })?;
    println!(
        "    {} ok, {} errors: {:.0}/s, p50 {} ms, p99 {} ms, max {} ms",
        report.ok,
        report.errors,
        report.per_second,
        optional(report.p50_ms),
        optional(report.p99_ms),
        optional(report.max_ms)
    );
    if let Some(error) = &report.first_error {
        println!("    first error: {error}");
    }
    if report.connect_per_call != connect_per_call || report.count != count {
        bail!(
            "`{}` reported another run: {stdout}",
            cmd::display(&command)
        );
    }
    Ok(report)
}

fn parse_report(text: &str) -> Result<PingReport> {
    Ok(serde_json::from_str(text.trim())?)
}

/// `12.34`, or `-` for nothing.
fn optional(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.2}"))
}

/// Which way a row of the table is better, for its ratio.
#[derive(Debug, Clone, Copy)]
enum Better {
    Higher,
    Lower,
    /// No ratio: errors are a count to look at, not to divide.
    Unrated,
}

/// Width of the table's first column and of the others.
const NAME_WIDTH: usize = 12;
const COLUMN_WIDTH: usize = 16;
const RATIO_WIDTH: usize = 7;

/// Rows: the figures; per agent a column of each pattern and how many times better one connection
/// is (rate: one connection / per call; latencies: per call / one connection).
fn table(title: &str, comparisons: &[Comparison]) -> String {
    let mut out = format!("{title}\n{:<NAME_WIDTH$}", "");
    for c in comparisons {
        let name = c.mechanism.name();
        out.push_str(&format!(
            " {:>COLUMN_WIDTH$} {:>COLUMN_WIDTH$} {:>RATIO_WIDTH$}",
            format!("{name} one conn"),
            format!("{name} per call"),
            "x"
        ));
    }
    out.push('\n');
    type Pick = fn(&PingReport) -> Option<f64>;
    let rows: [(&str, Pick, usize, Better); 5] = [
        ("pings/s", |r| Some(r.per_second), 0, Better::Higher),
        ("p50 [ms]", |r| r.p50_ms, 2, Better::Lower),
        ("p99 [ms]", |r| r.p99_ms, 2, Better::Lower),
        ("max [ms]", |r| r.max_ms, 2, Better::Lower),
        ("errors", |r| Some(r.errors as f64), 0, Better::Unrated),
    ];
    for (name, pick, decimals, better) in rows {
        out.push_str(&format!("{name:<NAME_WIDTH$}"));
        for c in comparisons {
            let (one, per_call) = (pick(&c.one_connection), pick(&c.per_call));
            let ratio = match (one, per_call, better) {
                (Some(one), Some(per_call), Better::Higher) => Some(one / per_call),
                (Some(one), Some(per_call), Better::Lower) => Some(per_call / one),
                _ => None,
            };
            let cell = |value: Option<f64>| {
                value.map_or_else(|| "-".to_owned(), |value| format!("{value:.decimals$}"))
            };
            let ratio = ratio
                .filter(|ratio| ratio.is_finite())
                .map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.1}"));
            out.push_str(&format!(
                " {:>COLUMN_WIDTH$} {:>COLUMN_WIDTH$} {ratio:>RATIO_WIDTH$}",
                cell(one),
                cell(per_call)
            ));
        }
        out.push('\n');
    }
    out.push_str(
        "one conn: all calls on one connection (ours); per call: a ZeroMQ context, socket and \
         PING/PONG handshake per call, latency including them (the reference's pattern)\n\
         x: how many times better one connection is (rate: one conn / per call; latencies: per \
         call / one conn)\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(connect_per_call: bool, per_second: f64, p99: f64, errors: u64) -> PingReport {
        parse_report(&format!(
            r#"{{"agent": "i-rpc-null-0", "count": 1000, "in_flight": 64,
                "connect_per_call": {connect_per_call}, "curve": false, "ok": {ok}, "errors": {errors},
                "seconds": 0.5, "per_second": {per_second}, "p50_ms": {p50}, "p99_ms": {p99},
                "max_ms": {max}, "first_error": null}}"#,
            ok = 1000 - errors,
            p50 = p99 / 2.0,
            max = p99 * 2.0,
        ))
        .unwrap()
    }

    #[test]
    fn reads_the_report_of_manager_cli() {
        let report = report(true, 2000.0, 4.0, 3);
        assert!(report.connect_per_call && !report.curve);
        assert_eq!((report.ok, report.errors), (997, 3));
        assert_eq!(report.p99_ms, Some(4.0));
        let failed = parse_report(
            r#"{"count": 2, "in_flight": 1, "connect_per_call": false, "curve": true, "ok": 0,
                "errors": 2, "seconds": 2.0, "per_second": 0.0, "p50_ms": null, "p99_ms": null,
                "max_ms": null, "first_error": "agent x did not answer"}"#,
        )
        .unwrap();
        assert_eq!(failed.p50_ms, None);
        assert_eq!(
            failed.first_error.as_deref(),
            Some("agent x did not answer")
        );
        assert!(parse_report("error: no agent").is_err());
    }

    #[test]
    fn table_says_how_many_times_better_one_connection_is() {
        let comparisons = [
            Comparison {
                mechanism: Mechanism::Null,
                one_connection: report(false, 30_000.0, 4.0, 0),
                per_call: report(true, 3_000.0, 40.0, 0),
            },
            Comparison {
                mechanism: Mechanism::Curve,
                one_connection: report(false, 20_000.0, 5.0, 0),
                per_call: report(true, 1_000.0, 100.0, 2),
            },
        ];
        let table = table("t", &comparisons);
        let cells = |start: &str| -> Vec<String> {
            table
                .lines()
                .find(|line| line.starts_with(start))
                .unwrap_or_else(|| panic!("no line {start} in\n{table}"))
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        };
        assert!(
            cells("  ")
                .join(" ")
                .starts_with("NULL one conn NULL per call x CURVE one conn"),
            "{table}"
        );
        assert_eq!(
            cells("pings/s"),
            ["pings/s", "30000", "3000", "10.0", "20000", "1000", "20.0"]
        );
        assert_eq!(
            cells("p99 [ms]"),
            [
                "p99", "[ms]", "4.00", "40.00", "10.0", "5.00", "100.00", "20.0"
            ]
        );
        assert_eq!(cells("errors"), ["errors", "0", "0", "-", "0", "2", "-"]);
    }

    #[test]
    fn agents_have_their_own_ids() {
        assert_eq!(Mechanism::Null.agent_id(), "i-rpc-null-0");
        assert_eq!(Mechanism::Curve.agent_id(), "i-rpc-curve-0");
        assert_eq!(
            alive_ids(r#"[{"id": "i-rpc-null-0", "status": "ALIVE"}, {"id": "i-other"}]"#).unwrap(),
            ["i-rpc-null-0", "i-other"]
        );
        assert!(alive_ids("There are no agents.").is_err());
    }
}
