//! `agent-sim`: simulated Backend.AI agents for tests and load. They read the real agent's
//! `agent.toml` and speak the real protocol on etcd and the event stream, many in one process.

mod agent;
mod config;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bai_etcd_store::{EtcdStore, EtcdTarget, Scope, ScopePrefixes, SharedConfig};
use bai_events::{AgentInfo, EventProducer, SlotCapacity};
use bai_redis::StreamDb;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::agent::SimAgent;
use crate::config::AgentToml;

/// The agent version the simulator speaks the protocol of.
const AGENT_VERSION: &str = "24.03.11";

/// Simulated Backend.AI agents: etcd registration, agent_started, heartbeats and
/// agent_terminated, as the real agent sends them.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The real agent's configuration file ([etcd], [agent] id, rpc-listen-addr, scaling-group,
    /// rpc-auth-agent-keypair, [resource], [debug] heartbeat-interval).
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("agent-sim: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agent-sim: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let config = AgentToml::load(&args.config)?;
    let agents = agents(&args, &config)?;

    let (etcd_host, etcd_port) = config.etcd.addr.split().context("etcd.addr")?;
    let etcd = EtcdStore::connect(
        EtcdTarget {
            endpoints: vec![format!("http://{etcd_host}:{etcd_port}")],
            namespace: config.etcd.namespace.clone(),
            credentials: (!config.etcd.user.is_empty())
                .then(|| (config.etcd.user.clone(), config.etcd.password.clone())),
        },
        ScopePrefixes::default(),
    )
    .await
    .context("connecting to etcd")?;
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;
    if !config.agent.skip_manager_detection && !wait_for_manager(&etcd, &shutdown).await? {
        return Ok(());
    }
    let shared = SharedConfig::load(&etcd)
        .await
        .context("reading the shared configuration (config/redis) from etcd")?;
    let stream = StreamDb::connect(&shared.redis)
        .await
        .context("connecting to Redis")?;
    let producer = EventProducer::new(stream.clone());
    tracing::info!(
        "{} agent(s) starting, heartbeats every {:.1} s",
        agents.len(),
        config.debug.heartbeat_interval
    );
    let etcd = Arc::new(etcd);
    let running: Vec<_> = agents
        .into_iter()
        .map(|agent| {
            let (etcd, producer, shutdown) =
                (Arc::clone(&etcd), producer.clone(), shutdown.clone());
            tokio::spawn(async move { agent.run(&etcd, &producer, &shutdown).await })
        })
        .collect();
    let mut failures = 0;
    for outcome in futures_util::future::join_all(running).await {
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!("{error:#}");
                failures += 1;
            }
            Err(error) => {
                tracing::error!("an agent task died: {error}");
                failures += 1;
            }
        }
    }
    stream.close().await;
    if failures > 0 {
        bail!("{failures} agent(s) failed");
    }
    Ok(())
}

/// SIGTERM or SIGINT stops every agent.
fn spawn_signal_handler(shutdown: CancellationToken) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("stopping");
        shutdown.cancel();
    });
    Ok(())
}

/// Waits until some manager registered under `nodes/manager/` (as the real agent does); false if
/// stopped meanwhile.
async fn wait_for_manager(etcd: &EtcdStore, shutdown: &CancellationToken) -> Result<bool> {
    let mut announced = false;
    loop {
        let managers = etcd
            .get_prefix("nodes/manager", Scope::Global)
            .await
            .context("looking for a manager in etcd (nodes/manager)")?;
        if !managers.is_empty() {
            return Ok(true);
        }
        if !announced {
            tracing::info!("waiting for a manager to register under nodes/manager");
            announced = true;
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(false),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// The agents `args` and `config` describe.
fn agents(args: &Args, config: &AgentToml) -> Result<Vec<SimAgent>> {
    let base_id = config
        .agent
        .id
        .clone()
        .context("agent.id is required (the simulator does not make one up)")?;
    let (listen_host, base_port) = config
        .agent
        .rpc_listen_addr
        .split()
        .context("agent.rpc-listen-addr")?;
    let advertised = config
        .agent
        .advertised_rpc_addr
        .as_ref()
        .map(|addr| addr.split().context("agent.advertised-rpc-addr"))
        .transpose()?;
    let mem = match bai_config::parse_binary_size(&args.mem).context("--mem")? {
        bai_config::BinarySizeValue::Bytes(bytes) => {
            u64::try_from(bytes).context("--mem is out of range")?
        }
        bai_config::BinarySizeValue::Infinite => bail!("--mem cannot be infinite"),
    };
    let cpu = args.cpu.saturating_sub(config.resource.reserved_cpu);
    let mem = mem.saturating_sub(config.reserved_mem_bytes()?);
    let public_key = config
        .agent
        .rpc_auth_agent_keypair
        .as_ref()
        .map(|path| {
            bai_rpc_keys::load_keypair(path)
                .map(|keypair| keypair.public_key().to_z85())
                .with_context(|| format!("agent.rpc-auth-agent-keypair {}", path.display()))
        })
        .transpose()?;
    let count = args.agents.unwrap_or(1);
    if count == 0 {
        bail!("--agents must be at least 1");
    }
    let interval = Duration::from_secs_f64(config.debug.heartbeat_interval);
    (0..count)
        .map(|index| {
            let id = match args.agents {
                Some(_) => format!("{base_id}-{index}"),
                None => base_id.clone(),
            };
            let offset = u16::try_from(index)
                .ok()
                .and_then(|offset| base_port.checked_add(offset))
                .context("--agents: the RPC ports would run past 65535")?;
            let (host, port) = match &advertised {
                Some((host, port)) => (host.clone(), port + (offset - base_port)),
                None => (listen_host.clone(), offset),
            };
            let host = if host.is_empty() {
                "0.0.0.0".to_owned()
            } else {
                host
            };
            let addr = if host.contains(':') {
                format!("tcp://[{host}]:{port}")
            } else {
                format!("tcp://{host}:{port}")
            };
            let public_host = config
                .agent
                .public_host
                .clone()
                .or_else(|| config.container.advertised_host.clone())
                .or_else(|| config.container.bind_host.clone());
            let plugin = serde_json::json!({"version": AGENT_VERSION});
            Ok(SimAgent {
                info: AgentInfo {
                    ip: host,
                    region: config
                        .agent
                        .region
                        .clone()
                        .unwrap_or_else(|| "local".to_owned()),
                    scaling_group: config.agent.scaling_group.clone(),
                    addr,
                    public_key: public_key.clone(),
                    public_host,
                    resource_slots: vec![
                        SlotCapacity {
                            slot: "cpu".to_owned(),
                            slot_type: "count".to_owned(),
                            amount: cpu.to_string(),
                        },
                        SlotCapacity {
                            slot: "mem".to_owned(),
                            slot_type: "bytes".to_owned(),
                            amount: mem.to_string(),
                        },
                    ],
                    version: AGENT_VERSION.to_owned(),
                    compute_plugins: serde_json::json!({"cpu": plugin, "mem": plugin}),
                    images: Vec::new(),
                    architecture: std::env::consts::ARCH.to_owned(),
                    auto_terminate_abusing_kernel: config.agent.force_terminate_abusing_containers,
                },
                id,
                heartbeat_interval: interval,
                // Spread over one interval, as independently started agents would be.
                start_delay: interval.mul_f64(index as f64 / count as f64),
            })
        })
        .collect()
}
