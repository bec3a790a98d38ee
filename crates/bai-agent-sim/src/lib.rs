//! Simulated Backend.AI agents: each does on etcd and the event stream what the real agent does
//! (registration under `nodes/agents/{id}/`, `agent_started`, `agent_heartbeat` with the real
//! `agent_info` map, `agent_terminated` on stop), configured by the real agent's `agent.toml` so
//! that one file drives either. Many run in one process, for tests and load.
//!
//! Each agent also serves the agent RPC (Callosum 1.0.3 over a ZeroMQ ROUTER, CURVE with a ZAP
//! handler when `rpc-auth-agent-keypair` is set): the methods the manager's scheduler calls, with
//! the dummy backend's behaviour (no containers, fake ports), slots allocated from the agent's
//! capacity, the kernel lifecycle events a real agent emits, configurable delays, and fault
//! injection ([`Faults`]) for the manager's error paths.
//!
//! With [`CodeRunner::Local`] (`--runner local`, development only) `execute` and the file
//! methods really run users' code on this host (`runner`).
//!
//! It is a peer of the manager, not a part of it: it must not use the manager's crates above the
//! stores and the event bus (the registry, the API). It spawns tasks only inside [`run`].

mod agent;
mod config;
mod methods;
mod rpc;
mod runner;

use std::sync::Arc;
use std::time::Duration;

use bai_etcd_store::{EtcdError, EtcdStore, EtcdTarget, Scope, ScopePrefixes, SharedConfig};
use bai_events::{AgentInfo, EventProducer, SlotCapacity};
use bai_redis::StreamDb;
use tokio_util::sync::CancellationToken;

pub use agent::SimAgent;
pub use config::{AgentToml, HostPortSpec};
pub use rpc::Faults;
pub use runner::{CodeRunner, LocalRunnerOptions, OUTPUT_CAP, check_root, scratch_folder};

/// The agent version the simulator speaks the protocol of.
pub const AGENT_VERSION: &str = "24.03.11";

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{path}: {message}")]
    Config { path: String, message: String },
    #[error("{0}")]
    Options(String),
    #[error("etcd ({what}): {source}")]
    Etcd {
        what: &'static str,
        #[source]
        source: EtcdError,
    },
    #[error("reading the shared configuration (config/redis) from etcd: {0}")]
    SharedConfig(#[from] bai_etcd_store::SharedConfigError),
    #[error("connecting to Redis: {0}")]
    Redis(#[from] bai_redis::RedisConnectError),
    #[error("agent {agent}: sending {event}: {source}")]
    Produce {
        agent: String,
        event: &'static str,
        #[source]
        source: bai_redis::RedisError,
    },
    #[error("RPC: {0}")]
    Rpc(String),
    #[error("{0} agent(s) failed")]
    Agents(usize),
}

/// How many agents, and how big.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// `None`: one agent with the configured id; `Some(n)`: ids `{id}-{i}` and RPC ports
    /// `port + i`, i from 0.
    pub agents: Option<usize>,
    /// CPU cores of each agent, before `resource.reserved-cpu`.
    pub cpu: u64,
    /// Memory of each agent in bytes, before `resource.reserved-mem`.
    pub mem: u64,
    /// Each heartbeat's `version` carries its send time (`24.03.11+t{unix ms}`), so that a
    /// benchmark can see how long the manager takes to store a heartbeat. For probes only: every
    /// heartbeat then changes the agent's row.
    pub stamp_version: bool,
}

/// How the agents' RPC methods behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RpcOptions {
    /// How long `create_kernels`, `destroy_kernel` and `restart_kernel` take.
    pub delay: Duration,
    pub faults: Faults,
}

impl Default for RpcOptions {
    fn default() -> RpcOptions {
        RpcOptions {
            delay: Duration::from_millis(50),
            faults: Faults::default(),
        }
    }
}

/// The agents `config` and `options` describe, with the default [`RpcOptions`].
pub fn agents(config: &AgentToml, options: &SimOptions) -> Result<Vec<SimAgent>, SimError> {
    agents_with_rpc(config, options, RpcOptions::default())
}

/// What the agents run and which release they say they are; apart from [`SimOptions`] and
/// [`RpcOptions`], which callers build field by field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentBehaviour {
    /// What runs the code of `execute` (the dummy agent's answers by default).
    pub runner: CodeRunner,
    /// The release the heartbeats say (`version`). Before 24.03 (e.g. `23.09.10`) an agent has
    /// no `trigger_batch_execution` and starts a batch session's command itself, as the 23.09
    /// agent does.
    pub version: String,
}

impl Default for AgentBehaviour {
    fn default() -> AgentBehaviour {
        AgentBehaviour {
            runner: CodeRunner::Dummy,
            version: AGENT_VERSION.to_owned(),
        }
    }
}

/// The agents `config` and `options` describe, their RPC methods behaving as `rpc` says.
pub fn agents_with_rpc(
    config: &AgentToml,
    options: &SimOptions,
    rpc: RpcOptions,
) -> Result<Vec<SimAgent>, SimError> {
    agents_with_behaviour(config, options, rpc, &AgentBehaviour::default())
}

/// The agents `config` and `options` describe, their RPC methods behaving as `rpc` and
/// `behaviour` say. The local runner is refused to root unless `allow_root` ([`check_root`]).
pub fn agents_with_behaviour(
    config: &AgentToml,
    options: &SimOptions,
    rpc: RpcOptions,
    behaviour: &AgentBehaviour,
) -> Result<Vec<SimAgent>, SimError> {
    if let CodeRunner::Local(local) = &behaviour.runner {
        check_root(nix::unistd::getuid().as_raw(), local.allow_root).map_err(SimError::Options)?;
    }
    let bad = |message: String| SimError::Config {
        path: config.path.clone(),
        message,
    };
    let base_id =
        config.agent.id.clone().ok_or_else(|| {
            bad("agent.id is required (the simulator does not make one up)".into())
        })?;
    let (listen_host, base_port) = config
        .agent
        .rpc_listen_addr
        .split()
        .map_err(|error| bad(format!("agent.rpc-listen-addr: {error}")))?;
    let advertised = config
        .agent
        .advertised_rpc_addr
        .as_ref()
        .map(|addr| {
            addr.split()
                .map_err(|error| bad(format!("agent.advertised-rpc-addr: {error}")))
        })
        .transpose()?;
    let cpu = options.cpu.saturating_sub(config.resource.reserved_cpu);
    let mem = options
        .mem
        .saturating_sub(config.reserved_mem_bytes().map_err(bad)?);
    let public_key = config
        .agent
        .rpc_auth_agent_keypair
        .as_ref()
        .map(|path| {
            bai_rpc_keys::load_keypair(path)
                .map(|keypair| keypair.public_key().to_z85())
                .map_err(|error| {
                    bad(format!(
                        "agent.rpc-auth-agent-keypair {}: {error}",
                        path.display()
                    ))
                })
        })
        .transpose()?;
    let count = options.agents.unwrap_or(1);
    if count == 0 {
        return Err(SimError::Options("--agents must be at least 1".to_owned()));
    }
    let interval = Duration::from_secs_f64(config.debug.heartbeat_interval);
    let plugin = serde_json::json!({"version": behaviour.version});
    (0..count)
        .map(|index| {
            let id = match options.agents {
                Some(_) => format!("{base_id}-{index}"),
                None => base_id.clone(),
            };
            let offset = u16::try_from(index)
                .map_err(|_| SimError::Options("too many agents".to_owned()))?;
            let port_of = |base: u16| {
                base.checked_add(offset).ok_or_else(|| {
                    SimError::Options("the agents' RPC ports would run past 65535".to_owned())
                })
            };
            let bind_host = match listen_host.as_str() {
                "" => "0.0.0.0",
                host => host,
            };
            let rpc_bind_addr = tcp_addr(bind_host, port_of(base_port)?);
            let (host, port) = match &advertised {
                Some((host, port)) => (host.clone(), port_of(*port)?),
                None => (listen_host.clone(), port_of(base_port)?),
            };
            let host = if host.is_empty() {
                "0.0.0.0".to_owned()
            } else {
                host
            };
            let addr = tcp_addr(&host, port);
            let public_host = config
                .agent
                .public_host
                .clone()
                .or_else(|| config.container.advertised_host.clone())
                .or_else(|| config.container.bind_host.clone());
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
                    version: behaviour.version.clone(),
                    compute_plugins: serde_json::json!({"cpu": plugin, "mem": plugin}),
                    images: Vec::new(),
                    architecture: std::env::consts::ARCH.to_owned(),
                    auto_terminate_abusing_kernel: config.agent.force_terminate_abusing_containers,
                },
                id,
                stamp_version: options.stamp_version,
                heartbeat_interval: interval,
                // Spread over one interval, as independently started agents would be.
                start_delay: interval.mul_f64(index as f64 / count as f64),
                rpc_bind_addr,
                rpc,
                runner: behaviour.runner.clone(),
            })
        })
        .collect()
}

fn tcp_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("tcp://[{host}]:{port}")
    } else {
        format!("tcp://{host}:{port}")
    }
}

/// CURVE for the RPC servers: on iff `rpc-auth-agent-keypair` is set, and then the manager's
/// public key is required too.
fn rpc_curve(config: &AgentToml) -> Result<Option<rpc::Curve>, SimError> {
    let bad = |message: String| SimError::Config {
        path: config.path.clone(),
        message,
    };
    let Some(keypair) = &config.agent.rpc_auth_agent_keypair else {
        return Ok(None);
    };
    let agent = bai_rpc_keys::load_keypair(keypair).map_err(|error| {
        bad(format!(
            "agent.rpc-auth-agent-keypair {}: {error}",
            keypair.display()
        ))
    })?;
    let manager = config
        .agent
        .rpc_auth_manager_public_key
        .as_ref()
        .ok_or_else(|| {
            bad("agent.rpc-auth-manager-public-key is required with rpc-auth-agent-keypair".into())
        })?;
    let manager = bai_rpc_keys::load_certificate(manager)
        .map_err(|error| {
            bad(format!(
                "agent.rpc-auth-manager-public-key {}: {error}",
                manager.display()
            ))
        })?
        .public;
    Ok(Some(rpc::Curve { agent, manager }))
}

/// Runs `agents` until `shutdown`: connects to etcd, waits for a manager (unless the config skips
/// that), reads `config/redis`, then runs every agent; each says goodbye when stopped.
pub async fn run(
    config: &AgentToml,
    agents: Vec<SimAgent>,
    shutdown: CancellationToken,
) -> Result<(), SimError> {
    let (etcd_host, etcd_port) = config.etcd.addr.split().map_err(|error| SimError::Config {
        path: config.path.clone(),
        message: format!("etcd.addr: {error}"),
    })?;
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
    .map_err(|source| SimError::Etcd {
        what: "connecting",
        source,
    })?;
    if !config.agent.skip_manager_detection && !wait_for_manager(&etcd, &shutdown).await? {
        return Ok(());
    }
    let rpc = Arc::new(rpc::RpcContext::new(rpc_curve(config)?)?);
    let shared = SharedConfig::load(&etcd).await?;
    let stream = StreamDb::connect(&shared.redis).await?;
    let producer = EventProducer::new(stream.clone());
    tracing::info!(
        "{} agent(s) starting, heartbeats every {:.1} s",
        agents.len(),
        config.debug.heartbeat_interval
    );
    let etcd = Arc::new(etcd);
    // A JoinSet: when this future is dropped (a test killing the agents), the agents stop too,
    // without a goodbye.
    let mut running = tokio::task::JoinSet::new();
    for agent in agents {
        let (etcd, producer, shutdown) = (Arc::clone(&etcd), producer.clone(), shutdown.clone());
        let rpc = Arc::clone(&rpc);
        running.spawn(async move { agent.run(&etcd, &producer, &rpc, &shutdown).await });
    }
    let mut failures = 0;
    while let Some(outcome) = running.join_next().await {
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!("{error}");
                failures += 1;
            }
            Err(error) => {
                tracing::error!("an agent task died: {error}");
                failures += 1;
            }
        }
    }
    stream.close().await;
    if let Ok(rpc) = Arc::try_unwrap(rpc) {
        let _ = tokio::task::spawn_blocking(move || rpc.stop()).await;
    }
    if failures > 0 {
        return Err(SimError::Agents(failures));
    }
    Ok(())
}

/// Waits until some manager registered under `nodes/manager/` (as the real agent does); false if
/// stopped meanwhile.
async fn wait_for_manager(
    etcd: &EtcdStore,
    shutdown: &CancellationToken,
) -> Result<bool, SimError> {
    let mut announced = false;
    loop {
        let managers = etcd
            .get_prefix("nodes/manager", Scope::Global)
            .await
            .map_err(|source| SimError::Etcd {
                what: "looking for a manager under nodes/manager",
                source,
            })?;
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
