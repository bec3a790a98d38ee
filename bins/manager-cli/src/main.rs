//! `manager-cli`: the operator's tool for one manager node, mirroring the reference's `backend.ai mgr`
//! command tree (`backend.ai mgr X` becomes `manager-cli X`). Its arguments are the clap types of
//! `cli/` (also rendered as man pages by `man-pages`); it calls the library crates, and
//! every message for people is made here.

mod agent;
mod api;
mod cli;
mod db;
mod doctor;
mod etcd;
mod history;
mod image;
mod image_rescan;
mod man;
mod progress;
mod redis;
mod server;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use crate::cli::{Cli, Command, ConfigCommand};
use anyhow::Context;
use bai_config::{ConfigError, Environment, LoadOptions, LoadedConfig, LogLevel};
use bai_etcd_store::shared_config::RedisConfig;
use bai_etcd_store::{EtcdStore, EtcdTarget, ScopePrefixes, SharedConfig};
use bai_rpc_keys::{CertificatePaths, CurveKeypair, Overwrite};
use clap::Parser;
use serde::Serialize;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// `config check --json`.
#[derive(Serialize)]
struct ConfigCheck {
    source: Option<String>,
    ok: bool,
    problems: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_level.unwrap_or(LogLevel::Info));
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let options = LoadOptions {
        explicit_path: cli.config,
        log_level: cli.log_level,
    };
    match cli.command {
        Command::GenerateRpcKeypair { dir, name, force } => {
            generate_rpc_keypair(&dir, &name, force)
        }
        Command::Config(ConfigCommand::Show { json: true }) => config_show_json(&options),
        Command::Config(ConfigCommand::Show { json: false }) => {
            Ok(with_config(&options, |loaded| {
                print!("# {}\n{}", loaded.source.display(), loaded.to_masked_toml());
                Ok(ExitCode::SUCCESS)
            }))
        }
        Command::Config(ConfigCommand::Check { json: true }) => config_check_json(&options),
        Command::Config(ConfigCommand::Check { json: false }) => {
            Ok(with_config(&options, |loaded| {
                loaded.check_files(&Environment::capture())?;
                let keypair = &loaded.config.manager.rpc_auth_manager_keypair;
                if let Err(error) = bai_rpc_keys::load_keypair(keypair) {
                    eprintln!(
                        "{}: [manager] rpc-auth-manager-keypair: {error}",
                        loaded.source.display()
                    );
                    return Ok(ExitCode::FAILURE);
                }
                println!("{}: OK", loaded.source.display());
                Ok(ExitCode::SUCCESS)
            }))
        }
        Command::Etcd(command) => etcd::run(command, &options),
        Command::Schema(command) => db::run_schema(command, &options),
        Command::Fixture(command) => db::run_fixture(command, &options),
        Command::Image(command) => image::run(command, &options),
        Command::Agent(command) => agent::run(command, &options),
        Command::Dbshell { psql_args } => db::dbshell(&options, &psql_args),
        Command::Doctor(args) => doctor::run(args, &options),
        Command::GenerateApiKeypair { json } => generate_api_keypair(json),
        Command::ClearHistory(args) => history::run(args, &options),
        Command::StartServer(args) => server::run(args, &options),
        Command::Redis(command) => redis::run(command, &options),
        Command::Api(command) => api::run_api(command),
        Command::Gql(command) => api::run_gql(command),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut cli::command(),
                "manager-cli",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::ManPages { dir } => {
            let count = man::write_pages(&cli::command(), &dir)?;
            eprintln!("Wrote {count} man pages into {}.", dir.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `config show --json`: the file it came from and the resolved configuration, secrets masked,
/// as one JSON object (the same values `config show` prints as TOML).
fn config_show_json(options: &LoadOptions) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load_config(options) else {
        return Ok(ExitCode::FAILURE);
    };
    let config: toml::Value =
        toml::from_str(&loaded.to_masked_toml()).context("rendering the resolved configuration")?;
    let shown = serde_json::json!({
        "source": loaded.source.display().to_string(),
        "config": config,
    });
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(ExitCode::SUCCESS)
}

/// `config check --json`: the configuration's problems (loading, the files it names, the RPC
/// keypair) as one JSON object; exit 1 when there are any.
fn config_check_json(options: &LoadOptions) -> anyhow::Result<ExitCode> {
    let env = Environment::capture();
    let report = match bai_config::load(options, &env) {
        Err(error) => ConfigCheck {
            source: None,
            ok: false,
            problems: error.to_string().lines().map(str::to_owned).collect(),
        },
        Ok(loaded) => {
            let mut problems: Vec<String> = match loaded.check_files(&env) {
                Ok(()) => Vec::new(),
                Err(error) => error.to_string().lines().map(str::to_owned).collect(),
            };
            let keypair = &loaded.config.manager.rpc_auth_manager_keypair;
            if let Err(error) = bai_rpc_keys::load_keypair(keypair) {
                problems.push(format!("[manager] rpc-auth-manager-keypair: {error}"));
            }
            ConfigCheck {
                source: Some(loaded.source.display().to_string()),
                ok: problems.is_empty(),
                problems,
            }
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A new access key and secret key in the reference's shapes (`AKIA` and 16 base32 characters;
/// 40 characters of URL-safe base64), from the credential generator new keypairs get.
fn generate_api_keypair(json: bool) -> anyhow::Result<ExitCode> {
    tracing::info!("Generating a manager API keypair...");
    let secrets = bai_db_models::queries::keypair_admin::KeypairSecrets::generate()
        .context("generating the keypair")?;
    if json {
        let pair = serde_json::json!({
            "access_key": secrets.access_key,
            "secret_key": secrets.secret_key,
        });
        println!("{}", serde_json::to_string_pretty(&pair)?);
    } else {
        println!(
            "Access Key: {} ({} bytes)",
            secrets.access_key,
            secrets.access_key.len()
        );
        println!(
            "Secret Key: {} ({} bytes)",
            secrets.secret_key,
            secrets.secret_key.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs one command's async work on a current-thread runtime: a short-lived command needs no
/// worker threads, only something to drive its connections.
fn block_on<F: Future>(work: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(work))
}

/// Loads the configuration, prints its warnings, and runs `action`; configuration errors are printed
/// one per line, each naming the file or variable and the key, and make the exit code 1.
fn with_config(
    options: &LoadOptions,
    action: impl FnOnce(&LoadedConfig) -> Result<ExitCode, ConfigError>,
) -> ExitCode {
    let Some(loaded) = load_config(options) else {
        return ExitCode::FAILURE;
    };
    match action(&loaded) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the configuration and logs its warnings; on failure prints the errors (one per line,
/// each naming the file or variable and the key) and returns nothing, which means exit code 1.
fn load_config(options: &LoadOptions) -> Option<LoadedConfig> {
    match bai_config::load(options, &Environment::capture()) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            Some(loaded)
        }
        Err(error) => {
            eprintln!("{error}");
            None
        }
    }
}

fn generate_rpc_keypair(dir: &Path, name: &str, force: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        dir.is_dir(),
        "{}: not an existing directory (create it first)",
        dir.display()
    );
    tracing::info!("Generating a RPC keypair...");
    let keypair = CurveKeypair::generate().context("cannot generate a keypair")?;
    let overwrite = if force {
        Overwrite::Replace
    } else {
        Overwrite::Refuse
    };
    let CertificatePaths { public, secret } =
        bai_rpc_keys::write_certificates(dir, name, &keypair, overwrite)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "Public Key: {} (stored at {})",
        keypair.public_key().to_z85(),
        public.display()
    )?;
    writeln!(
        stdout,
        "Secret Key: {} (stored at {})",
        keypair.secret_key().to_z85(),
        secret.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Left-aligned columns two spaces apart, like the reference's `tabulate(tablefmt="plain")`.
pub(crate) fn print_table(table: &[Vec<String>]) {
    let columns = table.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            table
                .iter()
                .filter_map(|cells| cells.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for cells in table {
        let line = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ");
        println!("{}", line.trim_end());
    }
}

/// `config/redis` of the shared configuration in etcd, where the agents' Redis is described.
pub(crate) async fn redis_config(etcd: &bai_config::EtcdConfig) -> anyhow::Result<RedisConfig> {
    let target = EtcdTarget::from_config(etcd);
    let store = EtcdStore::connect(target, ScopePrefixes::default()).await?;
    let shared = SharedConfig::load(&store)
        .await
        .context("reading config/redis from etcd")?;
    Ok(shared.redis)
}

/// Logs go to stderr so that stdout carries only a command's output.
fn init_logging(level: LogLevel) {
    let level = match level {
        LogLevel::Notset | LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warning => LevelFilter::WARN,
        LogLevel::Error | LogLevel::Critical => LevelFilter::ERROR,
    };
    // Our crates log at the chosen level; libraries (sqlx, sea-orm-migration, tonic) only say
    // something when it is a warning, so that a command's output is not buried in their chatter.
    // Targets match by prefix: `bai_` is every library crate of ours, present and future.
    let filter = Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("manager_cli", level)
        .with_target("bai_", level);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(progress::LogWriter)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false),
        )
        .with(filter)
        .init();
}
