//! The command line of `manager-cli` as clap types: every command, option and value parser of the
//! operator's tool (`backend.ai mgr ...` of the reference). `manager-cli` parses with it and renders
//! its completions and man pages from it, so that all three describe one CLI. Nothing here runs a
//! command, connects to a store or prints.

pub mod args {
    pub mod agent;
    pub mod api;
    pub mod db;
    pub mod doctor;
    pub mod etcd;
    pub mod history;
    pub mod image;
    pub mod image_rescan;
    pub mod redis;
    pub mod server;
}

use std::path::PathBuf;

use bai_config::LogLevel;
use clap::{CommandFactory, Parser, Subcommand};

/// The whole command tree, for completions and man pages.
pub fn command() -> clap::Command {
    Cli::command()
}

#[derive(Debug, Parser)]
#[command(
    name = "manager-cli",
    version,
    about = "Manage a Backend.AI manager node"
)]
pub struct Cli {
    /// The manager.toml to use (default: $BACKEND_CONFIG_FILE, ./manager.toml,
    /// ~/.config/backend.ai/manager.toml, /etc/backend.ai/manager.toml, the first that exists).
    #[arg(
        short = 'f',
        long = "config",
        alias = "config-path",
        global = true,
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,

    /// Log level of this command; also overrides `[logging] level` (and the `pkg-ns` levels of
    /// `ai.backend` and `aiohttp`) of the loaded configuration.
    #[arg(long, global = true, value_name = "LEVEL", value_parser = parse_log_level)]
    pub log_level: Option<LogLevel>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
    Etcd(args::etcd::EtcdCommand),
    /// Create, inspect and migrate the database schema (`[db]` of manager.toml).
    #[command(subcommand)]
    Schema(args::db::SchemaCommand),
    /// Load and export fixture files (rows of several tables in JSON).
    #[command(subcommand)]
    Fixture(args::db::FixtureCommand),
    /// Show and edit the image catalogue (images and their aliases) in the database.
    #[command(subcommand)]
    Image(args::image::ImageCommand),
    /// Show the agents the manager knows (the database) and when each was last heard from (Redis).
    #[command(subcommand)]
    Agent(args::agent::AgentCommand),
    /// Open psql on the configured database; ARGS are passed to psql.
    Dbshell {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        psql_args: Vec<String>,
    },
    /// Check everything a manager needs: manager.toml, the RPC keypair, etcd, the database and its
    /// schema, Redis, the registries, the agents and the clock; exit 1 if any check fails.
    Doctor(args::doctor::DoctorArgs),
    /// Print a new API keypair (access key and secret key) for a user's keypair.
    GenerateApiKeypair {
        /// Print one JSON object `{"access_key", "secret_key"}` instead.
        #[arg(long)]
        json: bool,
    },
    /// Delete sessions (with their kernels) and error logs older than the retention.
    ClearHistory(args::history::ClearHistoryArgs),
    /// Run the manager server (the `manager-server` binary installed next to manager-cli) with
    /// this command's `-f` and `--log-level`.
    StartServer(args::server::StartServerArgs),
    /// Check the Redis of etcd `config/redis`.
    #[command(subcommand)]
    Redis(args::redis::RedisCommand),
    /// Print the documents of the API (OpenAPI, GraphQL schema), built without a server.
    #[command(subcommand)]
    Api(args::api::ApiCommand),
    /// The GraphQL API (`gql show` prints its schema).
    #[command(subcommand)]
    Gql(args::api::GqlCommand),
    /// Print a completion script for SHELL; e.g. `manager-cli completions bash >
    /// /etc/bash_completion.d/manager-cli`.
    Completions { shell: clap_complete::Shell },
    /// Write the man pages of manager-cli into DIR, one per command (`manager-cli-etcd-get.1`, ...).
    ManPages {
        /// The directory to write into (created if missing).
        dir: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the resolved configuration (file, defaults and environment overrides), secrets masked.
    Show {
        /// Print `{"source", "config"}` as JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// Validate the configuration and the files it names; exit 0 if usable, 1 if not.
    Check {
        /// Print `{"source", "ok", "problems"}` as JSON instead.
        #[arg(long)]
        json: bool,
    },
}

fn parse_log_level(text: &str) -> Result<LogLevel, String> {
    text.parse()
}

/// A timeout option: positive seconds, at most a day.
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 => Ok(secs),
        _ => Err(format!(
            "{text:?} is not a number of seconds between 0 and 86400"
        )),
    }
}
