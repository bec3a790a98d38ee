//! `manager-cli agent ...`: the agents in the database `[db]` names (`agents`, as their heartbeats
//! left them) and when the manager last heard from each (Redis database 2, found through etcd
//! `config/redis`).
//!
//! The reference has no such `backend.ai mgr` command (its operators use `backend.ai admin agent`
//! over the API); these read the stores directly, so they work while no manager serves.
//!
//! `agent ping` and `agent hwinfo` call the agent over RPC (`bai-agent-rpc`, through the agent
//! RPC cache of `bai-agents`) at the address and public key of its row, with the manager keypair
//! of `[manager] rpc-auth-manager-keypair` (as the reference's `backend.ai mgr agent ping`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cli::args::agent::AgentCommand;
use anyhow::Context;
use bai_agent_rpc::{AgentConnection, AgentMethod, AgentTarget, AgentVersion, RpcClient, RpcError};
use bai_agents::{AgentRpcCache, AgentRpcError};
use bai_config::{BinarySize, LoadOptions, ManagerSection};
use bai_db_models::entities::{ResourceSlot, agents};
use bai_db_models::queries::agent_listing::{self, AgentScope, AgentView};
use bai_etcd_store::shared_config::RedisConfig;
use bai_redis::{AgentLastSeen, LiveDb};
use bai_rpc_keys::{CurveKeypair, PublicKey, RpcKeyError};
use sea_orm::prelude::{DateTimeUtc, DateTimeWithTimeZone};
use sea_orm::{ActiveEnum, DatabaseConnection};
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinSet;

pub fn run(command: AgentCommand, options: &LoadOptions) -> anyhow::Result<ExitCode> {
    let Some(loaded) = crate::load_config(options) else {
        return Ok(ExitCode::FAILURE);
    };
    let config = loaded.config;
    crate::block_on(async move {
        let db = bai_db_models::connect(&config.db).await?;
        match command {
            AgentCommand::Ping {
                id,
                timeout,
                count,
                in_flight,
                connect_per_call,
                json,
            } => {
                let load = PingLoad {
                    count,
                    in_flight,
                    connect_per_call,
                    timeout: Duration::from_secs_f64(timeout),
                };
                let result = ping_load(&db, &config.manager, &id, &load).await;
                db.close().await.ok();
                return print_pings(&id, &load, &result?, json);
            }
            AgentCommand::Hwinfo { id, timeout } => {
                let timeout = Duration::from_secs_f64(timeout);
                let result = rpc_hwinfo(&db, &config.manager, &id, timeout).await;
                db.close().await.ok();
                println!("{}", serde_json::to_string_pretty(&result?)?);
                return Ok(ExitCode::SUCCESS);
            }
            AgentCommand::List { status, json } => {
                let scope = AgentScope {
                    statuses: (!status.is_empty()).then_some(status),
                    ..AgentScope::default()
                };
                let mut rows =
                    agent_listing::list(&db, AgentView::Full, &scope, None, None, None).await?;
                // The query's own order puts the status first; operators look agents up by id.
                rows.sort_by(|a, b| a.id.cmp(&b.id));
                let redis = crate::redis_config(&config.etcd).await?;
                let seen = last_seen(&redis).await?;
                let now = unix_now();
                if json {
                    let rows: Vec<AgentJson> =
                        rows.iter().map(|row| AgentJson::new(row, &seen)).collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    print_list(&rows, &seen, now, &scope);
                }
            }
            AgentCommand::Info { id, json } => {
                let row = agent_listing::by_id(&db, &id, &AgentScope::default())
                    .await?
                    .with_context(|| format!("no agent {id:?}"))?;
                let redis = crate::redis_config(&config.etcd).await?;
                let seen = last_seen(&redis).await?;
                if json {
                    let row = AgentJson::new(&row, &seen);
                    println!("{}", serde_json::to_string_pretty(&row)?);
                } else {
                    print_info(&row, &seen, unix_now());
                }
            }
        }
        db.close()
            .await
            .context("closing the database connection")?;
        Ok(ExitCode::SUCCESS)
    })?
}

/// The manager keypair of `[manager] rpc-auth-manager-keypair`, or why it did not load: only an
/// agent with a public key needs it.
struct ManagerKeys {
    keypair: Option<CurveKeypair>,
    error: Option<RpcKeyError>,
    path: PathBuf,
}

impl ManagerKeys {
    fn load(manager: &ManagerSection) -> ManagerKeys {
        let path = manager.rpc_auth_manager_keypair.clone();
        match bai_rpc_keys::load_keypair(&path) {
            Ok(keypair) => ManagerKeys {
                keypair: Some(keypair),
                error: None,
                path,
            },
            Err(error) => ManagerKeys {
                keypair: None,
                error: Some(error),
                path,
            },
        }
    }

    /// A client of its own: a ZeroMQ context, the keypair and the handshake timeout.
    fn client(&self, timeout: Duration) -> RpcClient {
        RpcClient::new(self.keypair.clone()).with_handshake_timeout(timeout)
    }

    /// `error` for people: an unknown agent by its id, a CURVE agent without a usable manager
    /// keypair with the keypair's file and why it did not load.
    fn explain(&self, id: &str, error: AgentRpcError) -> anyhow::Error {
        match error {
            AgentRpcError::UnknownAgent(_) => anyhow::anyhow!("no agent {id:?}"),
            AgentRpcError::Rpc(RpcError::NoManagerKeypair { .. }) => {
                let reason = self
                    .error
                    .as_ref()
                    .map_or_else(String::new, |error| format!(": {error}"));
                anyhow::anyhow!(
                    "agent {id} requires CURVE, and the manager keypair \
                     ([manager] rpc-auth-manager-keypair = {}) cannot be loaded{reason}",
                    self.path.display()
                )
            }
            error => error.into(),
        }
    }
}

/// A connection to agent `id` through the RPC cache (its row's address and public key), as the
/// manager makes them.
async fn rpc_connection(
    db: &DatabaseConnection,
    keys: &ManagerKeys,
    id: &str,
    timeout: Duration,
) -> anyhow::Result<Arc<AgentConnection>> {
    let cache = AgentRpcCache::new(db.clone(), keys.client(timeout));
    cache.get(id).await.map_err(|error| keys.explain(id, error))
}

/// What `agent ping` sends.
#[derive(Debug)]
struct PingLoad {
    count: u64,
    in_flight: u64,
    connect_per_call: bool,
    /// For the connection and for the answer, each.
    timeout: Duration,
}

/// What a [`PingLoad`] measured.
#[derive(Debug, Serialize)]
struct PingReport {
    agent: String,
    count: u64,
    in_flight: u64,
    connect_per_call: bool,
    /// Whether the agent's row has a public key (the connections use CURVE).
    curve: bool,
    ok: u64,
    errors: u64,
    /// From the first call to the last answer.
    seconds: f64,
    /// Answered pings per second.
    per_second: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
    first_error: Option<String>,
}

/// How each ping of a load reaches the agent.
enum Pinger {
    /// On the one connection of the RPC cache, shared by every call, as the manager calls agents.
    Shared(Arc<AgentConnection>),
    /// On a connection of its own (client, socket and handshake), made from the agent's row and
    /// closed after the answer, as the reference calls agents.
    PerCall {
        keys: Box<ManagerKeys>,
        target: AgentTarget,
        version: AgentVersion,
    },
}

impl Pinger {
    /// One `ping` of agent `id`, which echoes the id: the time from just before the call (or its
    /// connection) to the answer.
    async fn ping(&self, id: &str, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let answer = match self {
            Pinger::Shared(connection) => connection.ping(id, Some(timeout)).await?,
            Pinger::PerCall {
                keys,
                target,
                version,
            } => {
                let connection = keys
                    .client(timeout)
                    .connect(target)
                    .await
                    .map_err(|error| keys.explain(id, error.into()))?;
                AgentConnection::new(connection, version.clone())
                    .ping(id, Some(timeout))
                    .await?
            }
        };
        let elapsed = started.elapsed();
        anyhow::ensure!(
            answer == id,
            "agent {id}: ping answered {answer:?}, not the {id:?} it was sent"
        );
        Ok(elapsed)
    }
}

/// Sends `load.count` pings to agent `id`, `load.in_flight` outstanding at once: that many workers
/// each send their next ping when the previous one is answered.
async fn ping_load(
    db: &DatabaseConnection,
    manager: &ManagerSection,
    id: &str,
    load: &PingLoad,
) -> anyhow::Result<PingReport> {
    let row = agent_listing::by_id(db, id, &AgentScope::default())
        .await?
        .with_context(|| format!("no agent {id:?}"))?;
    let curve = row.public_key.as_deref().is_some_and(|key| !key.is_empty());
    let keys = ManagerKeys::load(manager);
    let pinger = if load.connect_per_call {
        let public_key =
            match row.public_key.as_deref() {
                None | Some("") => None,
                Some(text) => Some(PublicKey::from_z85(text).map_err(|source| {
                    AgentRpcError::BadPublicKey {
                        agent: id.to_owned(),
                        source,
                    }
                })?),
            };
        Pinger::PerCall {
            keys: Box::new(keys),
            target: AgentTarget {
                agent_id: id.to_owned(),
                addr: row.addr,
                public_key,
            },
            version: AgentVersion::parse(&row.version),
        }
    } else {
        Pinger::Shared(rpc_connection(db, &keys, id, load.timeout).await?)
    };
    let pinger = Arc::new(pinger);
    let next = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(OnceLock::new());
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..load.in_flight.min(load.count) {
        let (pinger, next, first_error) = (pinger.clone(), next.clone(), first_error.clone());
        let (id, count, timeout) = (id.to_owned(), load.count, load.timeout);
        workers.spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0);
            while next.fetch_add(1, Ordering::Relaxed) < count {
                match pinger.ping(&id, timeout).await {
                    Ok(latency) => latencies.push(latency.as_secs_f64() * 1000.0),
                    Err(error) => {
                        errors += 1;
                        // Only the first one is kept.
                        let _ = first_error.set(format!("{error:#}"));
                    }
                }
            }
            (latencies, errors)
        });
    }
    let (mut latencies, mut errors) = (Vec::new(), 0);
    while let Some(done) = workers.join_next().await {
        let (more, failed) = done.context("a ping worker died")?;
        latencies.extend(more);
        errors += failed;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let ok = latencies.len() as u64;
    Ok(PingReport {
        agent: id.to_owned(),
        count: load.count,
        in_flight: load.in_flight,
        connect_per_call: load.connect_per_call,
        curve,
        ok,
        errors,
        seconds,
        per_second: if seconds > 0.0 {
            ok as f64 / seconds
        } else {
            0.0
        },
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().copied(),
        first_error: Arc::into_inner(first_error).and_then(OnceLock::into_inner),
    })
}

/// The nearest-rank percentile `p` (0-100) of `sorted`.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Prints `report`: one ping as before (`ping answered in`), a load as one summary line, or JSON;
/// the first error, if any, becomes the command's error (exit 1).
fn print_pings(
    id: &str,
    load: &PingLoad,
    report: &PingReport,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else if load.count == 1 {
        if let Some(latency) = report.max_ms {
            println!("agent {id}: ping answered in {latency:.3} ms");
        }
    } else {
        println!("{}", summary(report));
    }
    match &report.first_error {
        Some(error) => anyhow::bail!("{error}"),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// `agent X: 10000 pings, 64 in flight, one connection: 25310/s, p50 2.10 ms, ...`.
fn summary(report: &PingReport) -> String {
    let ms = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.2} ms"));
    format!(
        "agent {}: {} pings, {} in flight, {}: {:.0}/s, p50 {}, p99 {}, max {}, {} error{}",
        report.agent,
        report.count,
        report.in_flight,
        if report.connect_per_call {
            "a connection per call"
        } else {
            "one connection"
        },
        report.per_second,
        ms(report.p50_ms),
        ms(report.p99_ms),
        ms(report.max_ms),
        report.errors,
        if report.errors == 1 { "" } else { "s" },
    )
}

/// `gather_hwinfo` on agent `id`, as JSON.
async fn rpc_hwinfo(
    db: &DatabaseConnection,
    manager: &ManagerSection,
    id: &str,
    timeout: Duration,
) -> anyhow::Result<Value> {
    let connection = rpc_connection(db, &ManagerKeys::load(manager), id, timeout).await?;
    let hwinfo = connection
        .invoke_with_timeout(
            AgentMethod::GatherHwinfo,
            Vec::new(),
            Vec::new(),
            Some(timeout),
        )
        .await?;
    Ok(bai_events::to_json(&hwinfo))
}

/// Every agent's last heartbeat, as the manager recorded it in Redis database 2.
async fn last_seen(config: &RedisConfig) -> anyhow::Result<Vec<AgentLastSeen>> {
    let redis = LiveDb::connect(config)
        .await
        .context("connecting to Redis for when agents were last seen")?;
    redis
        .agents_last_seen()
        .await
        .context("reading when agents were last seen")
}

fn seen_of<'a>(seen: &'a [AgentLastSeen], id: &str) -> Option<&'a AgentLastSeen> {
    seen.iter().find(|entry| entry.agent_id == id)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

fn print_list(rows: &[agents::Model], seen: &[AgentLastSeen], now: f64, scope: &AgentScope) {
    if rows.is_empty() {
        match &scope.statuses {
            Some(statuses) => {
                let names: Vec<String> = statuses.iter().map(ActiveEnum::to_value).collect();
                println!("There are no agents with status {}.", names.join(" or "));
            }
            None => println!("There are no agents."),
        }
        return;
    }
    let header = [
        "ID",
        "STATUS",
        "RESOURCE GROUP",
        "ADDR",
        "AVAILABLE",
        "OCCUPIED",
        "VERSION",
        "LAST SEEN",
        "LOST AT",
    ];
    let mut table = vec![header.map(str::to_owned).to_vec()];
    for row in rows {
        table.push(vec![
            row.id.clone(),
            row.status.to_value(),
            row.scaling_group.clone(),
            row.addr.clone(),
            slots(&row.available_slots),
            slots(&row.occupied_slots),
            row.version.clone(),
            seen_ago(seen_of(seen, &row.id), now),
            timestamp(row.lost_at.as_ref()),
        ]);
    }
    crate::print_table(&table);
}

fn print_info(row: &agents::Model, seen: &[AgentLastSeen], now: f64) {
    let yes_no = |flag: bool| if flag { "yes" } else { "no" }.to_owned();
    let optional = |text: &Option<String>| text.clone().unwrap_or_else(|| "-".to_owned());
    let last_seen = match seen_of(seen, &row.id) {
        Some(entry) if entry.at.is_finite() => {
            let at = DateTimeUtc::from_timestamp_micros((entry.at * 1e6) as i64)
                .map(|at| format!(" ({})", at.format(TIME_FORMAT)))
                .unwrap_or_default();
            format!("{}{at}", seen_ago(Some(entry), now))
        }
        entry => seen_ago(entry, now),
    };
    let lines = [
        ("ID", row.id.clone()),
        ("Status", row.status.to_value()),
        ("Status changed", timestamp(row.status_changed.as_ref())),
        ("Region", row.region.clone()),
        ("Resource group", row.scaling_group.clone()),
        ("Schedulable", yes_no(row.schedulable)),
        ("Available slots", slots(&row.available_slots)),
        ("Occupied slots", slots(&row.occupied_slots)),
        ("Address", row.addr.clone()),
        ("Public host", optional(&row.public_host)),
        ("Public key", optional(&row.public_key)),
        ("First contact", timestamp(row.first_contact.as_ref())),
        ("Lost at", timestamp(row.lost_at.as_ref())),
        ("Version", row.version.clone()),
        ("Architecture", row.architecture.clone()),
        ("Compute plugins", row.compute_plugins.to_string()),
        (
            "Auto-terminate abusing kernel",
            yes_no(row.auto_terminate_abusing_kernel),
        ),
        ("Last seen", last_seen),
    ];
    let table: Vec<Vec<String>> = lines
        .into_iter()
        .map(|(label, value)| vec![format!("{label}:"), value])
        .collect();
    crate::print_table(&table);
}

/// Timestamps to the second, in the offset the database gave.
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S%:z";

fn timestamp(at: Option<&DateTimeWithTimeZone>) -> String {
    at.map_or_else(|| "-".to_owned(), |at| at.format(TIME_FORMAT).to_string())
}

/// `12s ago`; `-` for an agent not in the hash, `?` for an entry that is not a number.
fn seen_ago(entry: Option<&AgentLastSeen>, now: f64) -> String {
    match entry {
        None => "-".to_owned(),
        Some(entry) if !entry.at.is_finite() => "?".to_owned(),
        // A clock ahead of ours reads as just now, not as the future.
        Some(entry) => format!("{:.0}s ago", (now - entry.at).max(0.0)),
    }
}

/// `cpu=4 mem=31G`: the amounts as stored, byte amounts (slots named like `mem`, as the reference
/// reads them) in the largest binary unit that spells them exactly; `-` for no slots.
fn slots(slots: &ResourceSlot) -> String {
    if slots.is_empty() {
        return "-".to_owned();
    }
    slots
        .iter()
        .map(|(name, amount)| {
            let text = amount.to_string();
            let bytes = name.contains("mem").then(|| text.parse::<u64>().ok());
            match bytes.flatten() {
                Some(bytes) => format!("{name}={}", BinarySize(bytes)),
                None => format!("{name}={text}"),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One agent for `--json`: the columns of `agents` under their names (slots as the decimal strings
/// they are stored as, timestamps in RFC 3339), and `last_seen` in Unix seconds or null.
#[derive(Serialize)]
struct AgentJson<'a> {
    id: &'a str,
    status: String,
    status_changed: Option<String>,
    region: &'a str,
    scaling_group: &'a str,
    schedulable: bool,
    available_slots: &'a ResourceSlot,
    occupied_slots: &'a ResourceSlot,
    addr: &'a str,
    public_host: Option<&'a str>,
    public_key: Option<&'a str>,
    first_contact: Option<String>,
    lost_at: Option<String>,
    version: &'a str,
    architecture: &'a str,
    compute_plugins: &'a Value,
    auto_terminate_abusing_kernel: bool,
    last_seen: Option<f64>,
}

impl<'a> AgentJson<'a> {
    fn new(row: &'a agents::Model, seen: &[AgentLastSeen]) -> AgentJson<'a> {
        let rfc3339 = |at: &Option<DateTimeWithTimeZone>| at.map(|at| at.to_rfc3339());
        AgentJson {
            id: &row.id,
            status: row.status.to_value(),
            status_changed: rfc3339(&row.status_changed),
            region: &row.region,
            scaling_group: &row.scaling_group,
            schedulable: row.schedulable,
            available_slots: &row.available_slots,
            occupied_slots: &row.occupied_slots,
            addr: &row.addr,
            public_host: row.public_host.as_deref(),
            public_key: row.public_key.as_deref(),
            first_contact: rfc3339(&row.first_contact),
            lost_at: rfc3339(&row.lost_at),
            version: &row.version,
            architecture: &row.architecture,
            compute_plugins: &row.compute_plugins,
            auto_terminate_abusing_kernel: row.auto_terminate_abusing_kernel,
            last_seen: seen_of(seen, &row.id)
                .map(|entry| entry.at)
                .filter(|at| at.is_finite()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(100.0));
        assert_eq!(percentile(&sorted, 99.0), Some(198.0));
        assert_eq!(percentile(&sorted, 100.0), Some(200.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summary_names_the_pattern_and_the_figures() {
        let mut report = PingReport {
            agent: "i-a".to_owned(),
            count: 10_000,
            in_flight: 64,
            connect_per_call: false,
            curve: false,
            ok: 10_000,
            errors: 0,
            seconds: 0.4,
            per_second: 25_310.4,
            p50_ms: Some(2.1),
            p99_ms: Some(4.0),
            max_ms: Some(9.84),
            first_error: None,
        };
        assert_eq!(
            summary(&report),
            "agent i-a: 10000 pings, 64 in flight, one connection: 25310/s, p50 2.10 ms, \
             p99 4.00 ms, max 9.84 ms, 0 errors"
        );
        report.connect_per_call = true;
        report.errors = 1;
        (report.p50_ms, report.p99_ms, report.max_ms) = (None, None, None);
        assert_eq!(
            summary(&report),
            "agent i-a: 10000 pings, 64 in flight, a connection per call: 25310/s, p50 -, \
             p99 -, max -, 1 error"
        );
    }
}
