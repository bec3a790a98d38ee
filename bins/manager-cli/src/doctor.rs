//! `manager-cli doctor`: whether this node can run a manager, one line per check (name, ok or
//! FAIL, detail) and exit 1 when any failed: manager.toml, the RPC keypair file, etcd and its
//! shared configuration, the database and its schema, Redis, each container registry, the agents,
//! and the clock against PostgreSQL's.
//!
//! The reference has no such command. Every network check has its own short timeout
//! (`--timeout`), and the checks that do not depend on each other run at once, so that a store
//! that does not answer costs one timeout, not a hang.

use std::future::Future;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cli::args::doctor::DoctorArgs;
use bai_config::{Environment, LoadOptions, ManagerConfig};
use bai_db_models::entities::enums::AgentStatus;
use bai_db_models::queries::{agent_listing, idle};
use bai_db_models::schema::{self, SchemaState};
use bai_etcd_store::shared_config::RedisConfig;
use bai_etcd_store::{EtcdStore, EtcdTarget, ScopePrefixes, SharedConfig, SharedConfigError};
use bai_redis::{AgentLastSeen, LiveDb};
use sea_orm::DatabaseConnection;
use serde::Serialize;

use crate::redis::{describe_redis, ping_live};

/// One line of the report.
#[derive(Clone, Debug, Serialize)]
struct Check {
    check: String,
    ok: bool,
    detail: String,
}

impl Check {
    fn pass(check: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            check: check.into(),
            ok: true,
            detail: detail.into(),
        }
    }

    fn fail(check: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            check: check.into(),
            ok: false,
            detail: detail.into(),
        }
    }
}

/// Runs the checks and prints them; exit 1 when any failed.
pub fn run(args: DoctorArgs, options: &LoadOptions) -> anyhow::Result<ExitCode> {
    let mut checks = Vec::new();
    match bai_config::load(options, &Environment::capture()) {
        Err(error) => checks.push(Check::fail("config", error.to_string())),
        Ok(loaded) => {
            let source = loaded.source.display().to_string();
            checks.push(match loaded.check_files(&Environment::capture()) {
                Err(error) => Check::fail("config", error.to_string()),
                Ok(()) if loaded.warnings.is_empty() => {
                    Check::pass("config", format!("{source}: valid"))
                }
                Ok(()) => Check::pass(
                    "config",
                    format!(
                        "{source}: valid; warnings: {}",
                        loaded
                            .warnings
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                ),
            });
            checks.push(rpc_keypair(&loaded.config));
            let timeout = Duration::from_secs_f64(args.timeout);
            let max_skew = args.max_clock_skew;
            let config = loaded.config;
            checks.extend(crate::block_on(stores(&config, timeout, max_skew))?);
        }
    }
    print(&checks, args.json)?;
    Ok(if checks.iter().all(|check| check.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print(checks: &[Check], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(checks)?);
        return Ok(());
    }
    let width = checks
        .iter()
        .map(|check| check.check.chars().count())
        .max()
        .unwrap_or(0);
    for check in checks {
        let verdict = if check.ok { "ok" } else { "FAIL" };
        println!("{:<width$}  {verdict:<4}  {}", check.check, check.detail);
    }
    Ok(())
}

fn rpc_keypair(config: &ManagerConfig) -> Check {
    let path = &config.manager.rpc_auth_manager_keypair;
    match bai_rpc_keys::load_keypair(path) {
        Ok(keypair) => Check::pass(
            "rpc-keypair",
            format!(
                "{}: public key {}",
                path.display(),
                keypair.public_key().to_z85()
            ),
        ),
        Err(error) => Check::fail("rpc-keypair", format!("{}: {error}", path.display())),
    }
}

/// `work` within `timeout`, its error or the timeout as text.
async fn within<T, E: std::fmt::Display>(
    timeout: Duration,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {:.1} s", timeout.as_secs_f64())),
    }
}

/// The checks of the stores: etcd and the database at once, then what etcd names (Redis, the
/// registries) and what needs both (agents), each bounded by `timeout`.
async fn stores(config: &ManagerConfig, timeout: Duration, max_skew: f64) -> Vec<Check> {
    let (etcd, db) = tokio::join!(etcd(config, timeout), database(config, timeout));
    let (etcd_check, shared) = etcd;
    let (db_checks, db) = db;
    let mut checks = vec![etcd_check];
    checks.extend(db_checks);
    let Some(shared) = shared else {
        for name in ["redis", "registries"] {
            checks.push(Check::fail(
                name,
                "not checked: its address is in etcd, which failed",
            ));
        }
        checks.push(agents(db.as_ref(), None, config, timeout).await);
        checks.push(clock(db.as_ref(), timeout, max_skew).await);
        close(db).await;
        return checks;
    };
    let registries = shared
        .docker
        .registries
        .iter()
        .map(|(name, registry)| async move {
            let check = format!("registry {name}");
            match bai_registry_scanner::probe(registry, timeout).await {
                Ok(reply) => Check::pass(
                    check,
                    format!(
                        "{}: HTTP {} in {:.0} ms",
                        reply.url,
                        reply.status,
                        reply.elapsed.as_secs_f64() * 1000.0
                    ),
                ),
                Err(error) => Check::fail(check, error.to_string()),
            }
        });
    let (redis, registries) = tokio::join!(
        redis(&shared.redis, timeout),
        futures_util::future::join_all(registries)
    );
    let (redis_check, live) = redis;
    checks.push(redis_check);
    if registries.is_empty() {
        checks.push(Check::pass(
            "registries",
            "none configured in etcd config/docker/registry",
        ));
    }
    checks.extend(registries);
    checks.push(agents(db.as_ref(), live.as_ref(), config, timeout).await);
    checks.push(clock(db.as_ref(), timeout, max_skew).await);
    close(db).await;
    checks
}

async fn close(db: Option<DatabaseConnection>) {
    if let Some(db) = db {
        // Closing only returns the pool's connections; a failure changes no verdict.
        let _ = db.close().await;
    }
}

async fn etcd(config: &ManagerConfig, timeout: Duration) -> (Check, Option<SharedConfig>) {
    let target = EtcdTarget::from_config(&config.etcd);
    let place = format!(
        "namespace '{}' at {}",
        target.namespace,
        target.endpoints.join(", ")
    );
    let loaded = within(timeout, async {
        let store = EtcdStore::connect(target, ScopePrefixes::default())
            .await
            .map_err(|error| error.to_string())?;
        match SharedConfig::load(&store).await {
            Ok(shared) => Ok(shared),
            Err(SharedConfigError::Invalid(problems)) => Err(format!(
                "the shared configuration is invalid: {}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            Err(SharedConfigError::Etcd(error)) => Err(error.to_string()),
        }
    })
    .await;
    match loaded {
        Ok(shared) => {
            let detail = if shared.warnings.is_empty() {
                format!("{place}: the shared configuration is valid")
            } else {
                format!(
                    "{place}: the shared configuration is valid; warnings: {}",
                    shared
                        .warnings
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            };
            (Check::pass("etcd", detail), Some(shared))
        }
        Err(error) => (Check::fail("etcd", format!("{place}: {error}")), None),
    }
}

async fn database(
    config: &ManagerConfig,
    timeout: Duration,
) -> (Vec<Check>, Option<DatabaseConnection>) {
    let place = format!("database '{}' at {}", config.db.name, config.db.addr);
    let connected = within(timeout, bai_db_models::connect(&config.db)).await;
    let db = match connected {
        Ok(db) => db,
        Err(error) => {
            return (
                vec![
                    Check::fail("database", error),
                    Check::fail("schema", "not checked: the database is unreachable"),
                ],
                None,
            );
        }
    };
    let reachable = Check::pass("database", format!("{place}: reachable"));
    let schema = match within(timeout, schema::state(&db)).await {
        Ok(SchemaState::Managed {
            pending,
            alembic_revision,
            applied,
        }) => {
            let alembic = alembic_revision.as_deref().unwrap_or("none");
            if pending.is_empty() {
                Check::pass(
                    "schema",
                    format!(
                        "current: {} migrations applied, alembic_version {alembic}",
                        applied.len()
                    ),
                )
            } else {
                Check::fail(
                    "schema",
                    format!(
                        "pending migrations: {} (apply them with `manager-cli schema migrate`)",
                        pending.join(", ")
                    ),
                )
            }
        }
        Ok(SchemaState::Empty) => Check::fail(
            "schema",
            "no tables (create them with `manager-cli schema oneshot`)",
        ),
        Ok(SchemaState::Foreign {
            alembic_revision, ..
        }) => Check::fail(
            "schema",
            format!(
                "not created by bai-manager (no migration ledger; alembic_version {})",
                alembic_revision.as_deref().unwrap_or("none")
            ),
        ),
        Err(error) => Check::fail("schema", error),
    };
    (vec![reachable, schema], Some(db))
}

async fn redis(config: &RedisConfig, timeout: Duration) -> (Check, Option<LiveDb>) {
    let place = describe_redis(config);
    match within(timeout, ping_live(config)).await {
        Ok((live, round_trip)) => (
            Check::pass(
                "redis",
                format!(
                    "{place}: PONG in {:.1} ms",
                    round_trip.as_secs_f64() * 1000.0
                ),
            ),
            Some(live),
        ),
        Err(error) => (Check::fail("redis", format!("{place}: {error}")), None),
    }
}

/// ALIVE agents in the database, and how many of them sent a heartbeat within the heartbeat
/// timeout (Redis `agent.last_seen`). Having no agent is not a failure: a new cluster has none.
async fn agents(
    db: Option<&DatabaseConnection>,
    live: Option<&LiveDb>,
    config: &ManagerConfig,
    timeout: Duration,
) -> Check {
    let Some(db) = db else {
        return Check::fail("agents", "not checked: the database is unreachable");
    };
    let counts = match within(timeout, agent_listing::count_by_status(db)).await {
        Ok(counts) => counts,
        Err(error) => return Check::fail("agents", error),
    };
    let alive = counts
        .iter()
        .find(|(status, _)| *status == AgentStatus::Alive)
        .map_or(0, |(_, count)| *count);
    let Some(live) = live else {
        return Check::pass(
            "agents",
            format!("{alive} ALIVE in the database; heartbeats unknown (Redis failed)"),
        );
    };
    let seen: Vec<AgentLastSeen> = match within(timeout, live.agents_last_seen()).await {
        Ok(seen) => seen,
        Err(error) => return Check::fail("agents", format!("reading agent.last_seen: {error}")),
    };
    let now = unix_now();
    let heartbeat_timeout = config.manager.heartbeat_timeout;
    let fresh = seen
        .iter()
        .filter(|entry| now - entry.at <= heartbeat_timeout)
        .count();
    Check::pass(
        "agents",
        format!(
            "{alive} ALIVE in the database; {fresh} sent a heartbeat within the last {heartbeat_timeout} s"
        ),
    )
}

/// This host's clock against PostgreSQL's `now()`, half the query's round trip allowed for.
async fn clock(db: Option<&DatabaseConnection>, timeout: Duration, max_skew: f64) -> Check {
    let Some(db) = db else {
        return Check::fail("clock", "not checked: the database is unreachable");
    };
    let before = unix_now();
    let started = Instant::now();
    let database_now = match within(timeout, idle::database_now(db)).await {
        Ok(now) => now,
        Err(error) => return Check::fail("clock", error),
    };
    let local = before + started.elapsed().as_secs_f64() / 2.0;
    let database = database_now.timestamp_micros() as f64 / 1e6;
    let skew = local - database;
    let detail = format!(
        "this host is {:.3} s {} PostgreSQL (at most {max_skew} s passes)",
        skew.abs(),
        if skew >= 0.0 { "ahead of" } else { "behind" }
    );
    if skew.abs() <= max_skew {
        Check::pass("clock", detail)
    } else {
        Check::fail("clock", detail)
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}
