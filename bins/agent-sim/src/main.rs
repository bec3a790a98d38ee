//! `agent-sim`: simulated Backend.AI agents for tests and load (`bai-agent-sim`). It reads the
//! real agent's `agent.toml` and runs until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use bai_agent_sim::{
    AgentBehaviour, AgentToml, CodeRunner, Faults, LocalRunnerOptions, RpcOptions, SimOptions,
};
use clap::{Parser, ValueEnum};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Simulated Backend.AI agents: etcd registration, agent_started, heartbeats and
/// agent_terminated, as the real agent sends them, and the agent RPC (Callosum over ZeroMQ, CURVE
/// when rpc-auth-agent-keypair is set) with kernel lifecycle events.
///
/// With --runner local, execute really runs the code users send, in child processes on this
/// host, without any isolation: for development only.
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
    /// What runs the code of execute: `dummy` answers as the real dummy agent (nothing runs);
    /// `local` runs users' code (python3 for Python images, sh otherwise) in child processes ON
    /// THIS HOST, as this user, without isolation: for development only. It refuses to run as
    /// root unless --allow-root-runner is given.
    #[arg(long, value_enum, default_value_t = Runner::Dummy)]
    runner: Runner,
    /// Where --runner local makes each kernel's scratch folder (its /home/work):
    /// `{scratch-root}/{agent id}/{kernel id}/work`, removed with the kernel [default: a folder
    /// in the system's temporary folder].
    #[arg(long)]
    scratch_root: Option<PathBuf>,
    /// Let --runner local run users' code even as root (uid 0).
    #[arg(long)]
    allow_root_runner: bool,
    /// The agent release the heartbeats say; before 24.03 (e.g. 23.09.10) the agents have no
    /// trigger_batch_execution and start batch sessions themselves, as the 23.09 agent does.
    #[arg(long, default_value = bai_agent_sim::AGENT_VERSION)]
    agent_version: String,
    /// Log level.
    #[arg(long, default_value = "info")]
    log_level: tracing::Level,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Runner {
    Dummy,
    Local,
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
    let runner = match args.runner {
        Runner::Dummy => CodeRunner::Dummy,
        Runner::Local => {
            let mut local = LocalRunnerOptions::in_temp_dir();
            if let Some(root) = args.scratch_root.clone() {
                local.scratch_root = root;
            }
            local.allow_root = args.allow_root_runner;
            tracing::warn!(
                "--runner local: execute runs users' code on this host, without isolation \
                 (scratch folders under {}); for development only",
                local.scratch_root.display()
            );
            CodeRunner::Local(local)
        }
    };
    let behaviour = AgentBehaviour {
        runner,
        version: args.agent_version.clone(),
    };
    let agents = match bai_agent_sim::agents_with_behaviour(&config, &options, rpc, &behaviour) {
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
