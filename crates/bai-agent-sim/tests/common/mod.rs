//! What agent-sim's tests share: one simulated agent (or several) in this process on a fresh
//! etcd namespace and a private Redis, reached with the manager's RPC client, its events read
//! from the stream with timeouts, and the argument lists of the methods as the manager sends
//! them.

// Each test binary compiles this module on its own and uses a different part of it.
#![allow(dead_code)]

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bai_agent_rpc::testing::free_ports;
use bai_agent_rpc::{AgentTarget, Connection, RpcClient, RpcError};
use bai_agent_sim::{
    AgentBehaviour, AgentToml, CodeRunner, Faults, LocalRunnerOptions, RpcOptions, SimError,
    SimOptions,
};
use bai_etcd_store::Scope;
use bai_etcd_store::testing::TestNamespace;
use bai_events::Event;
use bai_redis::testing::PrivateRedis;
use bai_redis::{EntryId, StreamDb, StreamEntry};
use bai_rpc_keys::{CurveKeypair, Overwrite, PublicKey, write_certificates};
use rmpv::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a call, an awaited event or the agents' shutdown may take.
pub const CALL: Option<Duration> = Some(Duration::from_secs(20));
const WAIT: Duration = Duration::from_secs(20);

/// The keys of a CURVE test: the agent's pair and the manager's public key it accepts.
pub struct Curve {
    pub agent: CurveKeypair,
    pub manager: CurveKeypair,
}

/// How the agents of a test run; the default is one agent answering as the dummy agent.
#[derive(Default)]
pub struct Setup<'a> {
    /// How many agents, on consecutive ports (`None`: one, with the configured id).
    pub agents: Option<usize>,
    pub curve: Option<&'a Curve>,
    pub rpc: RpcOptions,
    /// `execute` runs the code with the local runner in [`Sim::scratch`].
    pub local_runner: bool,
    /// The release the agents say they are (`None`: agent-sim's own).
    pub version: Option<&'a str>,
}

/// Simulated agents of 4 cores and 8 GiB (after the reserve) and their stores.
pub struct Sim {
    pub id: String,
    pub addr: String,
    pub public_key: Option<PublicKey>,
    /// The local runner's scratch root.
    pub scratch: PathBuf,
    stream: StreamDb,
    config_path: PathBuf,
    options: SimOptions,
    rpc: RpcOptions,
    behaviour: AgentBehaviour,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), SimError>>>,
    _dir: tempfile::TempDir,
    _etcd: TestNamespace,
    _redis: PrivateRedis,
}

impl Sim {
    /// Starts the agents; `label` names the etcd namespace and the agent id, unique per test.
    pub async fn start(label: &str, setup: Setup<'_>) -> Sim {
        let etcd = TestNamespace::new(&format!("sim-{label}"));
        let redis = PrivateRedis::start();
        let store = etcd.store().await;
        store
            .put("config/redis/addr", &redis.addr(), Scope::Global)
            .await
            .expect("etcd put");
        store
            .put("nodes/manager/x", "up", Scope::Global)
            .await
            .expect("etcd put");
        let dir = tempfile::tempdir().expect("tempdir");
        let scratch = dir.path().join("scratch");
        fs::create_dir(&scratch).expect("scratch folder");
        // Room for the two agents of the test that starts two.
        let port = free_ports(2);
        let id = format!("i-sim-{label}");
        let mut auth = String::new();
        if let Some(curve) = setup.curve {
            let agent = write_certificates(dir.path(), "agent", &curve.agent, Overwrite::Refuse)
                .expect("agent certificates");
            let manager =
                write_certificates(dir.path(), "manager", &curve.manager, Overwrite::Refuse)
                    .expect("manager certificates");
            auth = format!(
                "rpc-auth-agent-keypair = {:?}\nrpc-auth-manager-public-key = {:?}\n",
                agent.secret, manager.public
            );
        }
        let text = format!(
            "[etcd]\nnamespace = {:?}\naddr = {{ host = \"127.0.0.1\", port = 8120 }}\n\n\
             [agent]\nid = {id:?}\nrpc-listen-addr = {{ host = \"127.0.0.1\", port = {port} }}\n\
             {auth}\n[debug]\nheartbeat-interval = 1.0\n",
            etcd.name
        );
        let config_path = dir.path().join("agent.toml");
        fs::write(&config_path, text).expect("agent.toml");
        let mut behaviour = AgentBehaviour::default();
        if setup.local_runner {
            behaviour.runner = CodeRunner::Local(LocalRunnerOptions {
                scratch_root: scratch.clone(),
                // CI and this machine run the tests as root.
                allow_root: true,
            });
        }
        if let Some(version) = setup.version {
            behaviour.version = version.to_owned();
        }
        let stream = StreamDb::connect(&redis.config())
            .await
            .expect("redis stream");
        let mut sim = Sim {
            id,
            addr: format!("tcp://127.0.0.1:{port}"),
            public_key: setup.curve.map(|curve| *curve.agent.public_key()),
            scratch,
            stream,
            config_path,
            options: SimOptions {
                agents: setup.agents,
                cpu: 5,
                mem: 9 << 30,
                stamp_version: false,
            },
            rpc: setup.rpc,
            behaviour,
            shutdown: CancellationToken::new(),
            task: None,
            _dir: dir,
            _etcd: etcd,
            _redis: redis,
        };
        sim.spawn_agents();
        sim
    }

    /// Runs the agents of the agent.toml until `shutdown`.
    fn spawn_agents(&mut self) {
        let config = AgentToml::load(&self.config_path).expect("agent.toml loads");
        let agents =
            bai_agent_sim::agents_with_behaviour(&config, &self.options, self.rpc, &self.behaviour)
                .expect("agents");
        let token = self.shutdown.clone();
        self.task = Some(tokio::spawn(async move {
            bai_agent_sim::run(&config, agents, token).await
        }));
    }

    pub fn target(&self) -> AgentTarget {
        AgentTarget {
            agent_id: self.id.clone(),
            addr: self.addr.clone(),
            public_key: self.public_key,
        }
    }

    pub async fn connect(&self, client: &RpcClient) -> Connection {
        connect_to(client, &self.target()).await
    }

    /// The first event called `name` after `after` on the stream, which this agent sent.
    pub async fn wait_for(&self, name: &str, after: &mut EntryId) -> Event {
        let found = self
            .scan(after, |entry| {
                let (Some(event_name), Some(args)) = (entry.field("name"), entry.field("args"))
                else {
                    return None;
                };
                (event_name == name.as_bytes()).then(|| {
                    assert_eq!(entry.field("source"), Some(self.id.as_bytes()));
                    Event::decode(event_name, args).expect("event decodes")
                })
            })
            .await;
        found.unwrap_or_else(|| panic!("no {name} within {WAIT:?}"))
    }

    /// The names of the events after `after` up to the first called `name`.
    pub async fn names_until(&self, name: &str, after: &mut EntryId) -> Vec<String> {
        let mut names = Vec::new();
        let found = self
            .scan(after, |entry| {
                let event_name = String::from_utf8_lossy(entry.field("name")?).into_owned();
                let done = event_name == name;
                names.push(event_name);
                done.then_some(())
            })
            .await;
        match found {
            Some(()) => names,
            None => panic!("no {name} within {WAIT:?}; saw {names:?}"),
        }
    }

    /// Reads the stream after `after` (moving it on) until `take` gives something, for at most
    /// [`WAIT`].
    async fn scan<T>(
        &self,
        after: &mut EntryId,
        mut take: impl FnMut(&StreamEntry) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let entries = self
                .stream
                .read_after(*after, 64, Duration::from_millis(500))
                .await
                .expect("XREAD");
            for entry in entries {
                *after = entry.id;
                if let Some(found) = take(&entry) {
                    return Some(found);
                }
            }
        }
        None
    }

    pub async fn stop(mut self) {
        self.stop_agents().await;
    }

    pub async fn stop_agents(&mut self) {
        self.shutdown.cancel();
        let task = self.task.take().expect("running");
        tokio::time::timeout(WAIT, task)
            .await
            .expect("the agents stop in time")
            .expect("join")
            .expect("the agents ran");
    }

    /// Stops the agents and starts them again on the same ports, with `faults`: an agent
    /// restarting.
    pub async fn restart(&mut self, faults: Faults) {
        self.stop_agents().await;
        self.shutdown = CancellationToken::new();
        self.rpc.faults = faults;
        self.spawn_agents();
    }
}

/// Connects once the agent serves (it starts after finding the manager in etcd).
pub async fn connect_to(client: &RpcClient, target: &AgentTarget) -> Connection {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client.connect(target).await {
            Ok(connection) => return connection,
            Err(RpcError::NoAnswer { .. } | RpcError::CurveHandshake { .. })
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("connecting to agent-sim: {error}"),
        }
    }
}

pub fn client(keypair: Option<CurveKeypair>) -> RpcClient {
    RpcClient::new(keypair).with_handshake_timeout(Duration::from_secs(1))
}

pub fn map_get<'a>(map: &'a Value, key: &str) -> &'a Value {
    map.as_map()
        .expect("a map")
        .iter()
        .find(|(name, _)| name.as_str() == Some(key))
        .map(|(_, value)| value)
        .unwrap_or_else(|| panic!("no {key:?} in {map}"))
}

/// A msgpack map of string keys.
pub fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(key, value)| (Value::from(*key), value.clone()))
            .collect(),
    )
}

/// The arguments of `create_kernels` of `kernels` of `session`, one config each.
pub fn create_args(session: Uuid, kernels: &[Uuid], configs: Vec<Value>) -> Vec<Value> {
    vec![
        Value::from(session.to_string()),
        Value::Array(
            kernels
                .iter()
                .map(|kernel| Value::from(kernel.to_string()))
                .collect(),
        ),
        Value::Array(configs),
        map(&[("mode", Value::from("single-node"))]),
    ]
}

/// A kernel of a session on the sim.
pub struct Kernel {
    pub session: Uuid,
    pub kernel: Uuid,
}

impl Kernel {
    /// The arguments of `execute` on this kernel as the manager sends them.
    pub fn execute_args(
        &self,
        api_version: i64,
        run_id: &str,
        mode: &str,
        code: &str,
        opts: Value,
        flush_timeout: Value,
    ) -> Vec<Value> {
        vec![
            Value::from(self.session.to_string()),
            Value::from(self.kernel.to_string()),
            Value::from(api_version),
            Value::from(run_id),
            Value::from(mode),
            Value::from(code),
            opts,
            flush_timeout,
        ]
    }

    /// `destroy_kernel` as a user asks it.
    pub async fn destroy(&self, connection: &Connection) {
        connection
            .call(
                "destroy_kernel",
                vec![
                    Value::from(self.kernel.to_string()),
                    Value::from(self.session.to_string()),
                    Value::from("user-requested"),
                ],
                vec![],
                CALL,
            )
            .await
            .expect("destroy_kernel");
    }
}
