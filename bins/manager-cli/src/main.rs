//! `manager-cli`: the operator's tool for one manager node, mirroring the reference's `backend.ai mgr`
//! command tree (`backend.ai mgr X` becomes `manager-cli X`). It only parses arguments and calls the
//! library crates; every message for people is made here.

mod agent;
mod db;
mod etcd;
mod image;
mod image_rescan;
mod progress;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use bai_config::{ConfigError, Environment, LoadOptions, LoadedConfig, LogLevel};
use bai_etcd_store::shared_config::RedisConfig;
use bai_etcd_store::{EtcdStore, EtcdTarget, ScopePrefixes, SharedConfig};
use bai_rpc_keys::{CertificatePaths, CurveKeypair, Overwrite};
use clap::{Parser, Subcommand};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Parser)]
#[command(
    name = "manager-cli",
    version,
    about = "Manage a Backend.AI manager node"
)]
struct Cli {
    /// The manager.toml to use (default: $BACKEND_CONFIG_FILE, ./manager.toml,
    /// ~/.config/backend.ai/manager.toml, /etc/backend.ai/manager.toml, the first that exists).
    #[arg(
        short = 'f',
        long = "config",
        alias = "config-path",
        global = true,
        value_name = "PATH"
    )]
    config: Option<PathBuf>,

    /// Log level of this command; also overrides `[logging] level` (and the `pkg-ns` levels of
    /// `ai.backend` and `aiohttp`) of the loaded configuration.
    #[arg(long, global = true, value_name = "LEVEL", value_parser = parse_log_level)]
    log_level: Option<LogLevel>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate the CURVE keypair that authenticates the manager to agents over RPC.
    ///
    /// Writes DIR/NAME.key (public) and DIR/NAME.key_secret (both keys, mode 0600) in pyzmq's
    /// certificate format; point `[manager] rpc-auth-manager-keypair` at the .key_secret file.
    GenerateRpcKeypair {
        /// An existing directory to write the two files into.
        dir: PathBuf,
        /// The base name of the files.
        name: String,
        /// Replace an existing keypair of that name.
        #[arg(long)]
        force: bool,
    },
    /// Inspect the local configuration (manager.toml).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Read and write the cluster configuration in etcd (`/sorna/{namespace}/...`).
    #[command(subcommand)]
    Etcd(etcd::EtcdCommand),
    /// Create, inspect and migrate the database schema (`[db]` of manager.toml).
    #[command(subcommand)]
    Schema(db::SchemaCommand),
    /// Load and export fixture files (rows of several tables in JSON).
    #[command(subcommand)]
    Fixture(db::FixtureCommand),
    /// Show and edit the image catalogue (images and their aliases) in the database.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Show the agents the manager knows (the database) and when each was last heard from (Redis).
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Open psql on the configured database; ARGS are passed to psql.
    Dbshell {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        psql_args: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the resolved configuration (file, defaults and environment overrides), secrets masked.
    Show,
    /// Validate the configuration and the files it names; exit 0 if usable, 1 if not.
    Check,
}

fn parse_log_level(text: &str) -> Result<LogLevel, String> {
    text.parse()
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
        Command::Config(ConfigCommand::Show) => Ok(with_config(&options, |loaded| {
            print!("# {}\n{}", loaded.source.display(), loaded.to_masked_toml());
            Ok(ExitCode::SUCCESS)
        })),
        Command::Config(ConfigCommand::Check) => Ok(with_config(&options, |loaded| {
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
        })),
        Command::Etcd(command) => etcd::run(command, &options),
        Command::Schema(command) => db::run_schema(command, &options),
        Command::Fixture(command) => db::run_fixture(command, &options),
        Command::Image(command) => image::run(command, &options),
        Command::Agent(command) => agent::run(command, &options),
        Command::Dbshell { psql_args } => db::dbshell(&options, &psql_args),
    }
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
