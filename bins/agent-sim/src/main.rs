//! `agent-sim`: simulated Backend.AI agents for tests and load (`bai-agent-sim`). It reads the
//! real agent's `agent.toml` and runs until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use bai_agent_sim::{AgentToml, Faults, RpcOptions, SimOptions};
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Simulated Backend.AI agents: etcd registration, agent_started, heartbeats and
/// agent_terminated, as the real agent sends them, and the agent RPC (Callosum over ZeroMQ, CURVE
/// when rpc-auth-agent-keypair is set) with kernel lifecycle events.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The real agent's configuration file ([etcd], [agent] id, rpc-listen-addr, scaling-group,
    /// rpc-auth-agent-keypair, rpc-auth-manager-public-key, [resource], [debug]
    /// heartbeat-interval).
    #[arg(short = 'f', long = "config", default_value = "agent.toml")]
    config: PathBuf,
    /// Run this many agents, with ids `{id}-{i}` and RPC ports `port + i` (i from 0).
    #[arg(long)]
    agents: Option<usize>,
    /// CPU cores of each agent (before `resource.reserved-cpu`).
    #[arg(long, default_value_t = 8)]
    cpu: u64,
    /// Memory of each agent (before `resource.reserved-mem`), e.g. 16g.
    #[arg(long, default_value = "16g")]
    mem: String,
    /// Put each heartbeat's send time into its `version` (`24.03.11+t{unix ms}`), for measuring
    /// how long the manager takes to store heartbeats (every heartbeat then changes the row).
    #[arg(long)]
    stamp_version: bool,
    /// Seconds that create_kernels, destroy_kernel and restart_kernel take.
    #[arg(long, default_value_t = 0.05)]
    rpc_delay: f64,
    /// create_kernels answers with a FAILURE.
    #[arg(long)]
    fail_create: bool,
    /// RPC requests are read and never answered.
    #[arg(long)]
    never_answer: bool,
    /// The RPC server stops on receiving create_kernels, without answering.
    #[arg(long)]
    die_mid_call: bool,
    /// Log level.
    #[arg(long, default_value = "info")]
    log_level: tracing::Level,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_max_level(args.log_level)
        .with_target(false)
        .init();
    let mem = match bai_config::parse_binary_size(&args.mem) {
        Ok(bai_config::BinarySizeValue::Bytes(bytes)) if bytes >= 0 => {
            u64::try_from(bytes).unwrap_or(u64::MAX)
        }
        Ok(_) => return fail(&format!("--mem {:?}: not a finite size", args.mem)),
        Err(error) => return fail(&format!("--mem: {error}")),
    };
    let config = match AgentToml::load(&args.config) {
        Ok(config) => config,
        Err(error) => return fail(&error.to_string()),
    };
    let options = SimOptions {
        agents: args.agents,
        cpu: args.cpu,
        mem,
        stamp_version: args.stamp_version,
    };
    if !args.rpc_delay.is_finite() || args.rpc_delay < 0.0 {
        return fail("--rpc-delay must be a number of seconds, 0 or more");
    }
    let rpc = RpcOptions {
        delay: Duration::from_secs_f64(args.rpc_delay),
        faults: Faults {
            fail_create: args.fail_create,
            never_answer: args.never_answer,
            die_mid_call: args.die_mid_call,
        },
    };
    let agents = match bai_agent_sim::agents_with_rpc(&config, &options, rpc) {
        Ok(agents) => agents,
        Err(error) => return fail(&error.to_string()),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the async runtime: {error}")),
    };
    let outcome = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let (Ok(mut terminate), Ok(mut interrupt)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return Err("cannot install the SIGTERM and SIGINT handlers".to_owned());
        };
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            tracing::info!("stopping");
            stop.cancel();
        });
        bai_agent_sim::run(&config, agents, shutdown)
            .await
            .map_err(|error| error.to_string())
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("agent-sim: {message}");
    ExitCode::FAILURE
}
