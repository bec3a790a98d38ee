//! `manager-server`: the manager's API server, what `python -m ai.backend.manager.server` (or
//! `backend.ai mgr start-server`) is in the reference. It parses the reference's options, loads
//! manager.toml, sets up logging and hands the process to `bai-server` with the API of `bai-api`.

mod app;
mod metrics;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bai_config::{Environment, LoadOptions, LoadedConfig, LogLevel};
use bai_server::ServerOptions;
use clap::{Parser, ValueEnum};

/// Each worker runs a runtime of its own; mimalloc gives memory freed after a burst of requests
/// back to the system, where glibc's per-thread arenas would keep it. Built without transparent
/// huge pages (feature `no_thp`: the process opts out of them), which would otherwise back every
/// touched 2 MiB of the heap with a whole huge page.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (libmimalloc-sys names only some).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory a worker frees goes back to the system at once: with mimalloc's default delay (10 ms)
/// the purge is left to the thread's next allocations, which an idle worker never makes, so what
/// a burst of requests used would stay resident.
fn purge_freed_memory_at_once() {
    // SAFETY: sets a plain integer option; mimalloc reads options atomically.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

#[derive(Debug, Parser)]
#[command(
    name = "manager-server",
    version,
    about = "Run the Backend.AI manager's API server until SIGTERM or SIGINT"
)]
struct Cli {
    /// The manager.toml to use (default: $BACKEND_CONFIG_FILE, ./manager.toml,
    /// ~/.config/backend.ai/manager.toml, /etc/backend.ai/manager.toml, the first that exists).
    #[arg(
        short = 'f',
        long = "config",
        alias = "config-path",
        value_name = "PATH"
    )]
    config: Option<PathBuf>,

    /// The same as --log-level DEBUG.
    #[arg(long)]
    debug: bool,

    /// Overrides `[logging] level` and the `pkg-ns` levels of `ai.backend` and `aiohttp`.
    #[arg(long, value_enum, ignore_case = true, value_name = "LEVEL")]
    log_level: Option<CliLogLevel>,
}

/// The reference's `--log-level` choices.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum CliLogLevel {
    #[value(name = "CRITICAL")]
    Critical,
    #[value(name = "ERROR")]
    Error,
    #[value(name = "WARNING")]
    Warning,
    #[value(name = "INFO")]
    Info,
    #[value(name = "DEBUG")]
    Debug,
}

impl From<CliLogLevel> for LogLevel {
    fn from(level: CliLogLevel) -> LogLevel {
        match level {
            CliLogLevel::Critical => LogLevel::Critical,
            CliLogLevel::Error => LogLevel::Error,
            CliLogLevel::Warning => LogLevel::Warning,
            CliLogLevel::Info => LogLevel::Info,
            CliLogLevel::Debug => LogLevel::Debug,
        }
    }
}

fn main() -> ExitCode {
    purge_freed_memory_at_once();
    let cli = Cli::parse();
    let log_level = if cli.debug {
        Some(LogLevel::Debug)
    } else {
        cli.log_level.map(LogLevel::from)
    };
    let env = Environment::capture();
    let options = LoadOptions {
        explicit_path: cli.config,
        log_level,
    };
    // Until logging is set up, problems go to stderr as they are: one line each, naming the file
    // or variable and the key.
    let loaded = match bai_config::load(&options, &env).and_then(|loaded| {
        loaded.check_files(&env)?;
        Ok(loaded)
    }) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = bai_server::logging::init(&loaded.config.logging) {
        eprintln!(
            "{}: {}",
            loaded.source.display(),
            bai_server::error_chain(&error)
        );
        return ExitCode::FAILURE;
    }
    match run(loaded) {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(loaded: LoadedConfig) -> anyhow::Result<ExitCode> {
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        "bai-manager {} (compatible with Backend.AI Manager {})",
        env!("CARGO_PKG_VERSION"),
        bai_api::version::COMPATIBLE_MANAGER_VERSION
    );
    tracing::info!("configuration: {}", loaded.source.display());
    if loaded.config.debug.enabled {
        tracing::debug!("debug mode enabled.");
        // Passwords and the secret are masked; never log the configuration any other way.
        tracing::debug!(
            "== Manager configuration ==\n{}",
            loaded.to_masked_toml().trim_end()
        );
    }

    let manager = &loaded.config.manager;
    // The reference refuses to start without a usable keypair; so do we, before binding anything.
    let manager_keypair = bai_rpc_keys::load_keypair(&manager.rpc_auth_manager_keypair)
        .with_context(|| {
            format!(
                "{}: [manager] rpc-auth-manager-keypair",
                loaded.source.display()
            )
        })?;
    std::fs::create_dir_all(&manager.ipc_base_path).with_context(|| {
        format!(
            "{}: [manager] ipc-base-path: cannot create {}",
            loaded.source.display(),
            manager.ipc_base_path.display()
        )
    })?;

    // Bound here, like the API's listeners before privileges are dropped; a busy address stops
    // the server before anything else starts.
    let metrics = if manager.metrics_enabled {
        let listener =
            std::net::TcpListener::bind(manager.metrics_addr.to_string()).with_context(|| {
                format!(
                    "{}: [manager] metrics-addr: cannot listen on {}",
                    loaded.source.display(),
                    manager.metrics_addr
                )
            })?;
        let handle = bai_metrics::exporter::install()?;
        tracing::info!("metrics: serving GET /metrics on {}", manager.metrics_addr);
        Some(metrics::MetricsExport::new(handle, listener))
    } else {
        None
    };

    let options = ServerOptions::from_config(manager);
    let config = Arc::new(loaded.config);
    let mut manager = app::Manager::new(config, manager_keypair);
    if let Some(export) = metrics {
        manager = manager.with_metrics(export);
    }
    // bai-server logs why it stopped; only the exit status is left to say.
    Ok(match bai_server::run(options, manager) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    })
}
