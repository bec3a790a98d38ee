//! Agents registering with `manager-server` over the event stream: simulated agents
//! (`bai-agent-sim`, in this process) and the real Backend.AI 24.3.11 agent in dummy mode (from
//! `.venvs/agent`), each test with its own database, etcd namespace and Redis. They check the
//! `agents` rows the heartbeats make, what the official client lists, the lost check, revival,
//! an unknown resource group, and a manager restart while agents heartbeat.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bai_agent_rpc::testing::{AgentSetup, RealAgent, free_ports};
use bai_agent_sim::{AgentBehaviour, AgentToml, RpcOptions, SimAgent, SimError, SimOptions};
use bai_db_models::entities::agents;
use bai_db_models::entities::enums::AgentStatus;
use bai_events::MANAGER_GROUP;
use bai_redis::StreamDb;
use nix::sys::signal::Signal;
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support::{CLIENT_24_03, Server, Settings, Stack, free_port, workspace_file};

/// Heartbeat timeout of the managers of these tests, in seconds.
const HEARTBEAT_TIMEOUT: f64 = 3.0;

pub(crate) fn settings(port: u16, num_proc: u32) -> Settings {
    let mut settings = Settings::new(port);
    settings.num_proc = num_proc;
    settings.manager_extra = format!("heartbeat-timeout = {HEARTBEAT_TIMEOUT}");
    settings
}

/// An agent.toml for the stack: the repository's dummy-agent template with this test's etcd
/// namespace, agent id, resource group and heartbeat interval, and RPC ports for `agents`
/// simulated agents (consecutive from the configured one).
pub(crate) fn agent_toml(
    stack: &Stack,
    dir: &Path,
    id: &str,
    group: &str,
    interval: f64,
    agents: u16,
) -> PathBuf {
    let template = fs::read_to_string(workspace_file("configs/agent/dummy-agent.toml"))
        .expect("configs/agent/dummy-agent.toml");
    let replacements = [
        (
            "namespace = \"local\"",
            format!("namespace = {:?}", stack.etcd.name),
        ),
        ("id = \"i-dummy-1\"", format!("id = {id:?}")),
        ("port = 6001", format!("port = {}", free_ports(agents))),
        (
            "scaling-group = \"default\"",
            format!("scaling-group = {group:?}"),
        ),
        (
            "aiomonitor-termui-port = 48200",
            format!("aiomonitor-termui-port = {}", free_port()),
        ),
        (
            "aiomonitor-webui-port = 49200",
            format!("aiomonitor-webui-port = {}", free_port()),
        ),
        (
            "heartbeat-interval = 3.0",
            format!("heartbeat-interval = {interval:?}"),
        ),
    ];
    let mut text = template;
    for (from, to) in replacements {
        assert!(text.contains(from), "the template lost {from:?}");
        text = text.replace(from, &to);
    }
    fs::create_dir_all(dir).expect("agent dir");
    let path = dir.join("agent.toml");
    fs::write(&path, text).expect("write agent.toml");
    path
}

/// `agents` simulated agents (`None`: as the config says) of 8 cores and 16 GiB each.
fn sim_options(agents: Option<usize>) -> SimOptions {
    SimOptions {
        agents,
        cpu: 8,
        mem: 16 << 30,
        stamp_version: false,
    }
}

/// Simulated agents running in this process.
pub(crate) struct Simulated {
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), SimError>>,
}

impl Simulated {
    pub(crate) fn start(config: &Path, agents: Option<usize>) -> Simulated {
        Simulated::start_serving(config, agents, None)
    }

    /// Agents that also serve RPC (`create_kernels` and friends) as `rpc` says; `None`: only
    /// heartbeats.
    pub(crate) fn start_serving(
        config: &Path,
        agents: Option<usize>,
        rpc: Option<RpcOptions>,
    ) -> Simulated {
        let config = AgentToml::load(config).expect("agent.toml");
        let options = sim_options(agents);
        let agents = match rpc {
            Some(rpc) => bai_agent_sim::agents_with_rpc(&config, &options, rpc),
            None => bai_agent_sim::agents(&config, &options),
        }
        .expect("agents");
        Simulated::run(config, agents)
    }

    /// One agent serving RPC with `behaviour` (its code runner and the release it says it is).
    pub(crate) fn start_behaving(config: &Path, behaviour: &AgentBehaviour) -> Simulated {
        let config = AgentToml::load(config).expect("agent.toml");
        let agents = bai_agent_sim::agents_with_behaviour(
            &config,
            &sim_options(None),
            RpcOptions::default(),
            behaviour,
        )
        .expect("agents");
        Simulated::run(config, agents)
    }

    fn run(config: AgentToml, agents: Vec<SimAgent>) -> Simulated {
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move { bai_agent_sim::run(&config, agents, token).await });
        Simulated { shutdown, task }
    }

    /// Stops them as SIGTERM stops them: each sends `agent_terminated("shutdown")`.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("join").expect("agents");
    }
}

/// The real agent 24.3.11 in dummy mode of `stack`'s namespace, heartbeating every second, in its
/// own directory and process group.
pub(crate) fn real_agent(stack: &Stack, id: &str, group: &str) -> RealAgent {
    RealAgent::start_with(&AgentSetup {
        scaling_group: group,
        heartbeat_interval: 1.0,
        ..AgentSetup::new(&stack.etcd.name, id)
    })
}

async fn agent_rows(stack: &Stack) -> Vec<agents::Model> {
    agents::Entity::find()
        .order_by_asc(agents::Column::Id)
        .all(&stack.db.connection)
        .await
        .expect("agents")
}

/// Polls `probe` until it returns `Some` or `limit` passes (then panics with `what`).
pub(crate) async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the agents `ids` all have `status`; returns their rows.
async fn wait_for_status(
    stack: &Stack,
    ids: &[String],
    status: AgentStatus,
    limit: Duration,
) -> Vec<agents::Model> {
    wait_for(&format!("{ids:?} to be {status:?}"), limit, || async {
        let rows = agent_rows(stack).await;
        let matching: Vec<_> = rows
            .into_iter()
            .filter(|row| ids.contains(&row.id) && row.status == status)
            .collect();
        (matching.len() == ids.len()).then_some(matching)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_agents_join_are_listed_by_the_official_client_and_leave() {
    let stack = Stack::with_install_guide_keypairs("agents_sim").await;
    let port = free_port();
    let config = stack.config("manager.toml", &settings(port, 2));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    let agent_config = agent_toml(&stack, &stack.path("sim"), "i-sim", "default", 0.5, 3);
    let agents = Simulated::start(&agent_config, Some(3));
    let ids: Vec<String> = (0..3).map(|i| format!("i-sim-{i}")).collect();
    let rows = wait_for_status(&stack, &ids, AgentStatus::Alive, Duration::from_secs(10)).await;
    for row in &rows {
        assert_eq!(
            row.available_slots.to_json(),
            json!({"cpu": "7", "mem": "16106127360"})
        );
        assert_eq!(row.version, "24.03.11");
        assert_eq!(row.scaling_group, "default");
        assert!(row.addr.starts_with("tcp://127.0.0.1:"), "{}", row.addr);
        assert!(row.first_contact.is_some());
        assert_eq!(row.lost_at, None);
    }
    let slots = stack
        .store
        .get_prefix("config/resource_slots", bai_etcd_store::Scope::Global)
        .await
        .expect("etcd");
    assert_eq!(
        slots.get("mem").and_then(|node| node.as_value()),
        Some("bytes")
    );

    let listed = CLIENT_24_03.cli_json(&stack, port, &["admin", "agent", "list"]);
    let listed_ids: Vec<&str> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_str().expect("id"))
        .collect();
    assert_eq!(listed_ids, ["i-sim-0", "i-sim-1", "i-sim-2"]);
    assert_eq!(
        listed["items"][0]["available_slots"],
        json!({"cpu": "7", "mem": "16106127360"})
    );

    agents.stop().await;
    let rows = wait_for_status(
        &stack,
        &ids,
        AgentStatus::Terminated,
        Duration::from_secs(10),
    )
    .await;
    assert!(rows.iter().all(|row| row.lost_at.is_some()));
    server.stop(Signal::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_silent_past_the_timeout_is_lost_once_and_its_next_heartbeat_revives_it() {
    let stack = Stack::with_install_guide_keypairs("agents_lost").await;
    let port = free_port();
    let config = stack.config("manager.toml", &settings(port, 2));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    // Heartbeats every 5 s against a 3 s timeout: lost between two heartbeats, as behind a
    // network partition, then back without restarting (no agent_started of its own).
    let agent_config = agent_toml(&stack, &stack.path("sim"), "i-slow", "default", 5.0, 1);
    let ids = vec!["i-slow".to_owned()];
    let agent = Simulated::start(&agent_config, None);
    wait_for_status(&stack, &ids, AgentStatus::Alive, Duration::from_secs(10)).await;
    let alive_since = Instant::now();
    let lost = wait_for_status(&stack, &ids, AgentStatus::Lost, Duration::from_secs(6)).await;
    assert!(
        alive_since.elapsed() <= Duration::from_secs_f64(HEARTBEAT_TIMEOUT + 2.0),
        "LOST after {:?}",
        alive_since.elapsed()
    );
    assert!(lost[0].lost_at.is_some());
    let revived = wait_for_status(&stack, &ids, AgentStatus::Alive, Duration::from_secs(6)).await;
    assert_eq!(revived[0].lost_at, None);

    let stream = StreamDb::connect(&stack.redis.config())
        .await
        .expect("redis");
    // The lost check reported the loss once, not once per second per worker.
    assert_eq!(stream_events(&stream, "agent_terminated").await, 1);
    // The agent's own agent_started, and the manager's "revived" one.
    assert_eq!(stream_events(&stream, "agent_started").await, 2);
    agent.stop().await;
    server.stop(Signal::SIGTERM).await;
}

/// How many entries called `name` the stream holds.
async fn stream_events(stream: &StreamDb, name: &str) -> usize {
    stream_events_from(stream, name, None).await
}

/// How many entries called `name` (and from `source`, if given) the stream holds.
async fn stream_events_from(stream: &StreamDb, name: &str, source: Option<&str>) -> usize {
    let mut count = 0;
    let mut after = bai_redis::EntryId::ZERO;
    loop {
        let entries = stream
            .read_after(after, 1000, Duration::from_millis(1))
            .await
            .expect("XREAD");
        let Some(last) = entries.last() else {
            return count;
        };
        after = last.id;
        count += entries
            .iter()
            .filter(|entry| entry.field("name") == Some(name.as_bytes()))
            .filter(|entry| {
                source.is_none_or(|source| entry.field("source") == Some(source.as_bytes()))
            })
            .count();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_killed_and_restarted_while_agents_heartbeat_changes_no_agent_wrongly() {
    let stack = Stack::with_install_guide_keypairs("agents_restart").await;
    let port = free_port();
    let config = stack.config("manager.toml", &settings(port, 2));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    let agent_config = agent_toml(&stack, &stack.path("sim"), "i-busy", "default", 0.2, 20);
    let agents = Simulated::start(&agent_config, Some(20));
    let ids: Vec<String> = (0..20).map(|i| format!("i-busy-{i}")).collect();
    let before = wait_for_status(&stack, &ids, AgentStatus::Alive, Duration::from_secs(10)).await;

    // A crash: entries read and not yet acknowledged stay pending for the restarted workers.
    server.signal(Signal::SIGKILL);
    server.wait_exit(Duration::from_secs(5)).await;
    // Down for longer than the heartbeat timeout: the heartbeats sent meanwhile wait in the
    // stream, and the agents must not be declared lost before they are handled.
    tokio::time::sleep(Duration::from_secs_f64(HEARTBEAT_TIMEOUT + 1.0)).await;
    let mut server = Server::start(&stack, &config, "server-again");
    server.wait_ready(port).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let after = agent_rows(&stack).await;
    assert_eq!(after.len(), 20);
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(new.status, AgentStatus::Alive, "{}", new.id);
        assert_eq!(new.lost_at, None, "{}", new.id);
        assert_eq!(new.status_changed, old.status_changed, "{}", new.id);
        assert_eq!(new.first_contact, old.first_contact, "{}", new.id);
    }
    let stream = StreamDb::connect(&stack.redis.config())
        .await
        .expect("redis");
    // Every heartbeat was handled and acknowledged: the group has nothing left pending.
    wait_for("no pending entries", Duration::from_secs(5), || async {
        (stream.pending_count(MANAGER_GROUP).await.expect("XPENDING") == 0).then_some(())
    })
    .await;
    assert_eq!(stream_events(&stream, "agent_terminated").await, 0);
    agents.stop().await;
    server.stop(Signal::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_dummy_agent_registers_is_lost_when_killed_and_comes_back() {
    let stack = Stack::with_install_guide_keypairs("agents_real").await;
    let port = free_port();
    let config = stack.config("manager.toml", &settings(port, 2));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    let ids = vec!["i-real-dummy".to_owned()];
    let mut agent = real_agent(&stack, &ids[0], "default");
    let started = Instant::now();
    let rows = wait_for_status(&stack, &ids, AgentStatus::Alive, Duration::from_secs(60)).await;
    println!("the real agent registered after {:?}", started.elapsed());
    // agent.dummy.toml: 5 cores and 32 GiB, minus the default reserved 1 core and 1 GiB.
    assert_eq!(
        rows[0].available_slots.to_json(),
        json!({"cpu": "4", "mem": "33285996544"}),
        "agent log:\n{}",
        agent.log()
    );
    assert_eq!(rows[0].version, "24.03.11");
    assert_eq!(rows[0].public_key, None);
    assert_eq!(rows[0].public_host.as_deref(), Some("127.0.0.1"));

    let listed = CLIENT_24_03.cli_json(&stack, port, &["admin", "agent", "list"]);
    assert_eq!(listed["items"][0]["id"], json!("i-real-dummy"));
    assert_eq!(listed["items"][0]["status"], json!("ALIVE"));

    agent.kill();
    let killed = Instant::now();
    wait_for_status(
        &stack,
        &ids,
        AgentStatus::Lost,
        Duration::from_secs_f64(HEARTBEAT_TIMEOUT + 5.0),
    )
    .await;
    assert!(
        killed.elapsed() <= Duration::from_secs_f64(HEARTBEAT_TIMEOUT + 2.0),
        "LOST after {:?}",
        killed.elapsed()
    );

    let _agent = real_agent(&stack, &ids[0], "default");
    // ALIVE again: by its agent_started, or by its first heartbeat if that comes first.
    wait_for_status(&stack, &ids, AgentStatus::Alive, Duration::from_secs(60)).await;

    // An agent of a resource group that does not exist: one warning, no row.
    let stranger = real_agent(&stack, "i-stranger", "nowhere");
    wait_for(
        "the stranger's heartbeats",
        Duration::from_secs(60),
        || async {
            let stream = StreamDb::connect(&stack.redis.config()).await.ok()?;
            let beats = stream_events_from(&stream, "agent_heartbeat", Some("i-stranger")).await;
            (beats >= 3).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        agent_rows(&stack)
            .await
            .iter()
            .all(|row| row.id != "i-stranger"),
        "agent log:\n{}",
        stranger.log()
    );
    let warnings: Vec<String> = server
        .stderr()
        .lines()
        .filter(|line| line.contains("i-stranger") && line.contains("WARNING"))
        .map(str::to_owned)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("\"nowhere\""), "{}", warnings[0]);
    server.stop(Signal::SIGTERM).await;
}
