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

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bai_agent_rpc::{AgentConnection, AgentMethod, RpcClient, RpcError};
use bai_agents::{AgentRpcCache, AgentRpcError};
use bai_config::{BinarySize, LoadOptions, ManagerSection};
use bai_db_models::entities::enums::AgentStatus;
use bai_db_models::entities::{ResourceSlot, agents};
use bai_db_models::queries::agent_listing::{
    self, AGENT_STATUSES, AgentScope, AgentView, status_by_name,
};
use bai_etcd_store::shared_config::RedisConfig;
use bai_redis::{AgentLastSeen, LiveDb};
use clap::Subcommand;
use sea_orm::prelude::{DateTimeUtc, DateTimeWithTimeZone};
use sea_orm::{ActiveEnum, DatabaseConnection};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// List the agents, sorted by id, with their slots and when each was last seen.
    List {
        /// Only agents with this status (ALIVE, LOST, RESTARTING, TERMINATED; any case);
        /// repeat it or separate statuses with commas. Default: every status.
        #[arg(
            short,
            long,
            value_name = "STATUS",
            value_delimiter = ',',
            value_parser = parse_status
        )]
        status: Vec<AgentStatus>,
        /// Print the rows as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show every column of one agent and when it was last seen.
    Info {
        id: String,
        /// Print the row as a JSON object instead.
        #[arg(long)]
        json: bool,
    },
    /// Call the agent's `ping` over RPC and print the round trip time.
    ///
    /// Connects to the address (and CURVE public key) of the agent's row with the manager keypair
    /// of `[manager] rpc-auth-manager-keypair`; exits 1 when the agent does not answer in time.
    Ping {
        id: String,
        /// Seconds to wait for the connection and for the answer, each.
        #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = parse_timeout)]
        timeout: f64,
    },
    /// Call the agent's `gather_hwinfo` over RPC and print what it reports as JSON.
    Hwinfo {
        id: String,
        /// Seconds to wait for the connection and for the answer, each.
        #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = parse_timeout)]
        timeout: f64,
    },
}

/// A `--timeout` value: positive seconds.
fn parse_timeout(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 => Ok(secs),
        _ => Err(format!(
            "{text:?} is not a number of seconds between 0 and 86400"
        )),
    }
}

pub fn run(command: AgentCommand, options: &LoadOptions) -> anyhow::Result<ExitCode> {
    let Some(loaded) = crate::load_config(options) else {
        return Ok(ExitCode::FAILURE);
    };
    let config = loaded.config;
    crate::block_on(async move {
        let db = bai_db_models::connect(&config.db).await?;
        match command {
            AgentCommand::Ping { id, timeout } => {
                let timeout = Duration::from_secs_f64(timeout);
                let result = rpc_ping(&db, &config.manager, &id, timeout).await;
                db.close().await.ok();
                let elapsed = result?;
                println!(
                    "agent {id}: ping answered in {:.3} ms",
                    elapsed.as_secs_f64() * 1000.0
                );
                return Ok(ExitCode::SUCCESS);
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

/// A connection to agent `id` (its row's address and public key), with the manager keypair when
/// it loads: an agent without a public key needs none.
async fn rpc_connection(
    db: &DatabaseConnection,
    manager: &ManagerSection,
    id: &str,
    timeout: Duration,
) -> anyhow::Result<Arc<AgentConnection>> {
    let keypair = bai_rpc_keys::load_keypair(&manager.rpc_auth_manager_keypair);
    let (keypair, keypair_error) = match keypair {
        Ok(keypair) => (Some(keypair), None),
        Err(error) => (None, Some(error)),
    };
    let client = RpcClient::new(keypair).with_handshake_timeout(timeout);
    let cache = AgentRpcCache::new(db.clone(), client);
    match cache.get(id).await {
        Ok(connection) => Ok(connection),
        Err(AgentRpcError::UnknownAgent(_)) => anyhow::bail!("no agent {id:?}"),
        Err(AgentRpcError::Rpc(RpcError::NoManagerKeypair { .. })) => {
            let reason = keypair_error.map_or_else(String::new, |error| format!(": {error}"));
            anyhow::bail!(
                "agent {id} requires CURVE, and the manager keypair \
                 ([manager] rpc-auth-manager-keypair = {}) cannot be loaded{reason}",
                manager.rpc_auth_manager_keypair.display()
            )
        }
        Err(error) => Err(error.into()),
    }
}

/// `ping` on agent `id`: the round trip time of the call (the connection made before it).
async fn rpc_ping(
    db: &DatabaseConnection,
    manager: &ManagerSection,
    id: &str,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let connection = rpc_connection(db, manager, id, timeout).await?;
    let started = Instant::now();
    let answer = connection.ping(id, Some(timeout)).await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        answer == id,
        "agent {id}: ping answered {answer:?}, not the {id:?} it was sent"
    );
    Ok(elapsed)
}

/// `gather_hwinfo` on agent `id`, as JSON.
async fn rpc_hwinfo(
    db: &DatabaseConnection,
    manager: &ManagerSection,
    id: &str,
    timeout: Duration,
) -> anyhow::Result<Value> {
    let connection = rpc_connection(db, manager, id, timeout).await?;
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

/// A `--status` value: a member name of `AgentStatus` in any case.
fn parse_status(text: &str) -> Result<AgentStatus, String> {
    status_by_name(&text.to_ascii_uppercase()).ok_or_else(|| {
        let allowed: Vec<&str> = AGENT_STATUSES.iter().map(|(name, _)| *name).collect();
        format!(
            "unknown agent status {text:?} (the statuses are {})",
            allowed.join(", ")
        )
    })
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
