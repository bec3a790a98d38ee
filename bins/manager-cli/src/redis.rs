//! `manager-cli redis ping`: the Redis of etcd `config/redis`, each database the manager uses
//! (statistics 0, live 2, image 3, stream 4, as the reference pings them) connected and sent one
//! `PING`, with the address and the round trip.
//!
//! Unlike the reference, which logs failures and always prints `Redis is healthy`, a database that
//! does not answer is printed as failed and the exit code is 1.

use std::future::Future;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::args::redis::RedisCommand;
use bai_config::LoadOptions;
use bai_etcd_store::shared_config::RedisConfig;
use bai_redis::{ImageDb, LiveDb, RedisDb, StatDb, StreamDb};
use serde::Serialize;

/// Where `config` points, for messages (never the password).
pub fn describe_redis(config: &RedisConfig) -> String {
    format!("Redis {}", bai_redis::describe_target(config))
}

/// Connects to database 2 and times one `PING` on the new connection.
pub async fn ping_live(config: &RedisConfig) -> anyhow::Result<(LiveDb, Duration)> {
    let live = LiveDb::connect(config).await?;
    let started = Instant::now();
    live.ping().await?;
    Ok((live, started.elapsed()))
}

#[derive(Debug, Serialize)]
struct Report {
    address: String,
    ok: bool,
    databases: Vec<DatabasePing>,
}

#[derive(Debug, Serialize)]
struct DatabasePing {
    db: u8,
    name: &'static str,
    ok: bool,
    /// Milliseconds of the `PING` alone, after connecting.
    round_trip_ms: Option<f64>,
    error: Option<String>,
}

pub fn run(command: RedisCommand, options: &LoadOptions) -> anyhow::Result<ExitCode> {
    let RedisCommand::Ping { timeout, json } = command;
    let Some(loaded) = crate::load_config(options) else {
        return Ok(ExitCode::FAILURE);
    };
    let timeout = Duration::from_secs_f64(timeout);
    let report = crate::block_on(async move {
        let config = crate::redis_config(&loaded.config.etcd).await?;
        let (stat, live, image, stream) = tokio::join!(
            timed(RedisDb::Stat, timeout, async {
                let db = StatDb::connect(&config).await?;
                let started = Instant::now();
                db.ping().await?;
                Ok(started.elapsed())
            }),
            timed(RedisDb::Live, timeout, async {
                let db = LiveDb::connect(&config).await?;
                let started = Instant::now();
                db.ping().await?;
                Ok(started.elapsed())
            }),
            timed(RedisDb::Image, timeout, async {
                let db = ImageDb::connect(&config).await?;
                let started = Instant::now();
                db.ping().await?;
                Ok(started.elapsed())
            }),
            timed(RedisDb::Stream, timeout, async {
                let db = StreamDb::connect(&config).await?;
                let started = Instant::now();
                db.ping().await?;
                Ok(started.elapsed())
            }),
        );
        let databases = vec![stat, live, image, stream];
        anyhow::Ok(Report {
            address: describe_redis(&config),
            ok: databases.iter().all(|db| db.ok),
            databases,
        })
    })??;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.address);
        for db in &report.databases {
            match (&db.round_trip_ms, &db.error) {
                (Some(ms), _) => println!("  database {} ({}): PONG in {ms:.1} ms", db.db, db.name),
                (None, error) => println!(
                    "  database {} ({}): FAIL {}",
                    db.db,
                    db.name,
                    error.as_deref().unwrap_or("")
                ),
            }
        }
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs `connect_and_ping` (which returns the round trip of its `PING`) within `timeout`.
async fn timed(
    db: RedisDb,
    timeout: Duration,
    connect_and_ping: impl Future<Output = anyhow::Result<Duration>>,
) -> DatabasePing {
    let outcome = tokio::time::timeout(timeout, connect_and_ping).await;
    let (round_trip_ms, error) = match outcome {
        Ok(Ok(elapsed)) => (Some(elapsed.as_secs_f64() * 1000.0), None),
        Ok(Err(error)) => (None, Some(error.to_string())),
        Err(_) => (
            None,
            Some(format!("no answer within {:.1} s", timeout.as_secs_f64())),
        ),
    };
    DatabasePing {
        db: db.index(),
        name: db.name(),
        ok: error.is_none(),
        round_trip_ms,
        error,
    }
}
