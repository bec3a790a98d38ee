//! For tests of the crates above: the real Backend.AI 24.3.11 agent in dummy mode (from the
//! workspace's `.venvs/agent`, made by `cargo xtask venv agent`), with RPC auth off or CURVE, in a directory
//! of its own, on free ports, registered in a given etcd namespace (whose `config/redis/addr` the
//! caller has set, and where a manager must be marked up: [`MANAGER_UP_KEY`]).

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use bai_rpc_keys::{CurveKeypair, Overwrite, write_certificates};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The agent waits until some manager is up: put `"up"` at this etcd key (global scope) first.
pub const MANAGER_UP_KEY: &str = "nodes/manager/i-test";

/// The agent process, stopped (its whole process group: its worker outlives a SIGKILL of the
/// main process) when dropped.
#[derive(Debug)]
pub struct RealAgent {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

/// How to start one: its namespace and id, and what tests vary.
#[derive(Clone, Copy, Debug)]
pub struct AgentSetup<'a> {
    pub namespace: &'a str,
    pub agent_id: &'a str,
    pub scaling_group: &'a str,
    /// Seconds between heartbeats.
    pub heartbeat_interval: f64,
    /// CURVE on: the agent's keypair (`rpc-auth-agent-keypair`) and the manager's (whose public
    /// key it accepts, `rpc-auth-manager-public-key`).
    pub curve: Option<(&'a CurveKeypair, &'a CurveKeypair)>,
}

impl<'a> AgentSetup<'a> {
    /// Group `default`, heartbeats every 3 s, RPC auth off.
    pub fn new(namespace: &'a str, agent_id: &'a str) -> AgentSetup<'a> {
        AgentSetup {
            namespace,
            agent_id,
            scaling_group: "default",
            heartbeat_interval: 3.0,
            curve: None,
        }
    }
}

impl RealAgent {
    /// Starts agent `agent_id` of etcd namespace `namespace`, RPC auth off. It answers RPC a few
    /// seconds later.
    pub fn start(namespace: &str, agent_id: &str) -> RealAgent {
        RealAgent::start_with(&AgentSetup::new(namespace, agent_id))
    }

    /// [`start`](Self::start) with CURVE on.
    pub fn start_with_curve(
        namespace: &str,
        agent_id: &str,
        agent: &CurveKeypair,
        manager: &CurveKeypair,
    ) -> RealAgent {
        RealAgent::start_with(&AgentSetup {
            curve: Some((agent, manager)),
            ..AgentSetup::new(namespace, agent_id)
        })
    }

    /// Starts the agent `setup` describes.
    pub fn start_with(setup: &AgentSetup<'_>) -> RealAgent {
        let python = workspace_file(".venvs/agent/bin/python");
        assert!(
            python.exists(),
            "{} is missing: make the venv with `cargo xtask venv agent`",
            python.display()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut replacements = vec![
            (
                "namespace = \"local\"".to_owned(),
                format!("namespace = {:?}", setup.namespace),
            ),
            (
                "id = \"i-dummy-1\"".to_owned(),
                format!("id = {:?}", setup.agent_id),
            ),
            ("port = 6001".to_owned(), format!("port = {port}")),
            (
                "scaling-group = \"default\"".to_owned(),
                format!("scaling-group = {:?}", setup.scaling_group),
            ),
            (
                "aiomonitor-termui-port = 48200".to_owned(),
                format!("aiomonitor-termui-port = {}", free_port()),
            ),
            (
                "aiomonitor-webui-port = 49200".to_owned(),
                format!("aiomonitor-webui-port = {}", free_port()),
            ),
            (
                "heartbeat-interval = 3.0".to_owned(),
                format!("heartbeat-interval = {:?}", setup.heartbeat_interval),
            ),
        ];
        if let Some((agent, manager)) = setup.curve {
            let keys = dir.path().join("keys");
            fs::create_dir(&keys).expect("mkdir");
            let agent = write_certificates(&keys, "agent", agent, Overwrite::Refuse)
                .expect("agent certificates");
            let manager = write_certificates(&keys, "manager", manager, Overwrite::Refuse)
                .expect("manager certificates");
            replacements.push((
                "mode = \"dummy\"".to_owned(),
                format!(
                    "mode = \"dummy\"\nrpc-auth-agent-keypair = {:?}\n\
                     rpc-auth-manager-public-key = {:?}",
                    agent.secret, manager.public
                ),
            ));
        }
        let mut text = fs::read_to_string(workspace_file("configs/agent/dummy-agent.toml"))
            .expect("configs/agent/dummy-agent.toml");
        for (from, to) in replacements {
            assert!(text.contains(&from), "the template lost {from:?}");
            text = text.replace(&from, &to);
        }
        fs::write(dir.path().join("agent.toml"), text).expect("agent.toml");
        fs::copy(
            workspace_file("configs/agent/agent.dummy.toml"),
            dir.path().join("agent.dummy.toml"),
        )
        .expect("agent.dummy.toml");
        let log = fs::File::create(dir.path().join("agent.log")).expect("log file");
        let child = Command::new(python)
            .args(["-m", "ai.backend.agent.server", "-f", "agent.toml"])
            .current_dir(dir.path())
            // Without a Docker socket the agent would report an error every 5 s (spec §5.2).
            .env("DOCKER_HOST", "unix:///nonexistent.sock")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start the real agent");
        RealAgent { child, dir, port }
    }

    /// The RPC port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `tcp://127.0.0.1:{port}`, as its heartbeat's `addr` would be.
    pub fn addr(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// What the agent logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// Kills the whole process group (no goodbye, as a crash) and waits for the main process.
    pub fn kill(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for RealAgent {
    fn drop(&mut self) {
        self.kill();
    }
}

fn workspace_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// A TCP port of 127.0.0.1 nothing listens on at the moment ([`free_ports`] of one).
pub fn free_port() -> u16 {
    free_ports(1)
}

/// The first of `count` consecutive TCP ports of 127.0.0.1 that nothing listens on at the moment,
/// below Linux's ephemeral range (32768 and up): the operating system hands ephemeral ports to
/// outgoing connections (to PostgreSQL, etcd, Redis…), which could take one of a test's ports
/// between this check and the agent's bind. Each call starts the search elsewhere (process id and
/// a counter), so test binaries running at once rarely try the same ports.
pub fn free_ports(count: u16) -> u16 {
    const LOW: u32 = 20_000;
    const HIGH: u32 = 32_768;
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let count = u32::from(count.max(1));
    let starts = HIGH - LOW - count;
    for _ in 0..1_000 {
        let call = CALLS.fetch_add(1, Ordering::Relaxed);
        let spread = std::process::id()
            .wrapping_mul(7_919)
            .wrapping_add(call.wrapping_mul(count + 97));
        let first = LOW + spread % starts;
        let all_free = (first..first + count).all(|port| {
            u16::try_from(port).is_ok_and(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        });
        if all_free {
            return u16::try_from(first).expect("below 32768");
        }
    }
    panic!("found no {count} consecutive free ports between {LOW} and {HIGH}");
}
