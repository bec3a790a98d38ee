//! What the agent benchmarks run beside the manager: a Redis of their own, `agent-sim`
//! processes with the agent.toml each reads, and the real Backend.AI agent in dummy mode.
//!
//! The Redis is private (a `redis-server` on a free port, no password, no persistence) because the
//! stream key and the database numbers are fixed by the protocol: another manager on the
//! halfstack's Redis would take a share of the agents' events.

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::Scratch;
use crate::{cmd, consts, sys, venv};

/// How long the private Redis may take to answer `PING`.
const REDIS_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long agent-sim and Redis may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The CURVE files of an agent (`[agent] rpc-auth-agent-keypair`, its `.key_secret`) and the
/// manager's public certificate it accepts (`rpc-auth-manager-public-key`, a `.key` file).
#[derive(Debug)]
pub(super) struct AgentCurve {
    pub(super) keypair: PathBuf,
    pub(super) manager_public_key: PathBuf,
}

/// What one agent-sim process is told in its agent.toml.
#[derive(Debug)]
pub(super) struct AgentToml<'a> {
    /// The etcd namespace of the deployment.
    pub(super) namespace: &'a str,
    /// `[agent] id`: with `--agents N`, the agents are `{prefix}-{i}`.
    pub(super) prefix: &'a str,
    /// The RPC port of the first agent; the others count up from it.
    pub(super) rpc_port: u16,
    /// Seconds between two heartbeats of one agent.
    pub(super) interval: f64,
    /// CURVE for the agents' RPC; NULL without.
    pub(super) curve: Option<&'a AgentCurve>,
}

/// Writes `scratch/{label}-{prefix}.toml`, the agent.toml of one agent-sim process.
pub(super) fn agent_config(scratch: &Scratch, label: &str, agent: &AgentToml) -> Result<PathBuf> {
    let template = crate::workspace_root().join("configs/agent/dummy-agent.toml");
    let text = std::fs::read_to_string(&template)
        .with_context(|| format!("cannot read {}", template.display()))?;
    let text = agent_toml(&text, agent)
        .with_context(|| format!("{}: update the benchmark", template.display()))?;
    let config = scratch.0.join(format!("{label}-{}.toml", agent.prefix));
    std::fs::write(&config, text).with_context(|| format!("cannot write {}", config.display()))?;
    Ok(config)
}

/// configs/agent/dummy-agent.toml (`template`) with the benchmark's namespace, id prefix, RPC port,
/// heartbeat interval and CURVE files. A line the template no longer holds is an error: the
/// agents would otherwise join the developer's own namespace.
fn agent_toml(template: &str, agent: &AgentToml) -> Result<String> {
    let mut replacements = vec![
        (
            "namespace = \"local\"".to_owned(),
            format!("namespace = \"{}\"", agent.namespace),
        ),
        (
            "id = \"i-dummy-1\"".to_owned(),
            format!("id = \"{}\"", agent.prefix),
        ),
        (
            "rpc-listen-addr = { host = \"127.0.0.1\", port = 6001 }".to_owned(),
            format!(
                "rpc-listen-addr = {{ host = \"127.0.0.1\", port = {} }}",
                agent.rpc_port
            ),
        ),
        (
            "heartbeat-interval = 3.0".to_owned(),
            format!("heartbeat-interval = {:?}", agent.interval),
        ),
    ];
    if let Some(curve) = agent.curve {
        if template.matches("\n[agent]\n").count() != 1 {
            bail!("no single [agent] table");
        }
        // A JSON string is a TOML basic string.
        let quoted = |path: &Path| serde_json::to_string(&path.to_string_lossy());
        replacements.push((
            "\n[agent]\n".to_owned(),
            format!(
                "\n[agent]\nrpc-auth-agent-keypair = {}\nrpc-auth-manager-public-key = {}\n",
                quoted(&curve.keypair)?,
                quoted(&curve.manager_public_key)?
            ),
        ));
    }
    let mut text = template.to_owned();
    for (from, to) in &replacements {
        if !text.contains(from.as_str()) {
            bail!("the template no longer holds `{}`", from.trim());
        }
        text = text.replace(from.as_str(), to);
    }
    Ok(text)
}

/// An agent-sim process, its output in a log file; stopped on drop.
#[derive(Debug)]
pub(super) struct AgentSim {
    what: String,
    pub(super) child: Child,
    log: PathBuf,
    stopped: bool,
}

impl AgentSim {
    /// `program -f config --agents agents [extra]`, run in the scratch folder; `label` and `role`
    /// name its log file and it in messages.
    pub(super) fn start(
        scratch: &Scratch,
        program: &Path,
        label: &str,
        role: &str,
        config: &Path,
        agents: u64,
        extra: &[&str],
    ) -> Result<Self> {
        let log = scratch.0.join(format!("{label}-agent-sim-{role}.log"));
        let (stdout, stderr) = cmd::log_files(&log)?;
        let mut command = Command::new(program);
        command
            .arg("-f")
            .arg(config)
            .args(["--agents", &agents.to_string()])
            .args(extra)
            .current_dir(&scratch.0)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start `{}`", cmd::display(&command)))?;
        Ok(AgentSim {
            what: format!("agent-sim ({role}) of the {label} run"),
            child,
            log,
            stopped: false,
        })
    }

    /// An error with its log when it has exited.
    pub(super) fn check_running(&mut self) -> Result<()> {
        check_running(&mut self.child, &mut self.stopped, &self.what, &self.log)
    }

    /// SIGTERM (each agent says goodbye), SIGKILL after [`STOP_TIMEOUT`].
    pub(super) fn stop(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let result = sys::terminate(self.child.id(), &self.what, STOP_TIMEOUT);
        let _ = self.child.wait();
        result
    }
}

impl Drop for AgentSim {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// An error with `what`'s log when its process has exited (then it counts as `stopped`).
fn check_running(child: &mut Child, stopped: &mut bool, what: &str, log: &Path) -> Result<()> {
    if let Some(status) = child.try_wait()? {
        *stopped = true;
        bail!("{what} exited ({status})\n{}", cmd::log_tail(log));
    }
    Ok(())
}

/// The real Backend.AI agent 24.3.11 in dummy mode (`.venvs/agent`, made by `cargo xtask venv
/// agent`): no containers, kernels "created" after the delays of its agent.dummy.toml. It runs in
/// a folder of its own (the dummy backend reads `./agent.dummy.toml`, and its `ipc` and `var`
/// folders are relative) in a process group of its own; stopped on drop.
#[derive(Debug)]
pub(super) struct DummyAgent {
    what: String,
    child: Child,
    log: PathBuf,
    stopped: bool,
}

/// The slots the dummy backend reserves for itself (agent.toml's `[resource]` defaults): one core
/// and 1 GiB are subtracted from its cores and memory in the heartbeat.
const DUMMY_RESERVED_CPU: u64 = 1;
const DUMMY_RESERVED_MEM: u64 = 1 << 30;

impl DummyAgent {
    /// Starts the agent `agent` describes (its agent.toml made by [`agent_config`], its id is
    /// `agent.prefix`) with `(cpu, mem)` cores and bytes to offer in its heartbeat, and `delay`
    /// seconds for every delay step of configs/agent/agent.dummy.toml (its 0.1 s; the dummy
    /// backend's defaults are 0.5 to 2 s).
    pub(super) fn start(
        scratch: &Scratch,
        label: &str,
        agent: &AgentToml,
        (cpu, mem): (u64, u64),
        delay: f64,
    ) -> Result<Self> {
        let venv = venv::by_name("agent");
        venv::ensure(venv)?;
        let dir = scratch.0.join(format!("{label}-{}", agent.prefix));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let config = agent_config(scratch, label, agent)?;
        let template = crate::workspace_root().join("configs/agent/agent.dummy.toml");
        let text = std::fs::read_to_string(&template)
            .with_context(|| format!("cannot read {}", template.display()))?;
        let text = dummy_toml(&text, cpu, mem, delay)
            .with_context(|| format!("{}: update the benchmark", template.display()))?;
        let dummy = dir.join("agent.dummy.toml");
        std::fs::write(&dummy, text)
            .with_context(|| format!("cannot write {}", dummy.display()))?;
        let log = scratch.0.join(format!("{label}-{}.log", agent.prefix));
        let (stdout, stderr) = cmd::log_files(&log)?;
        let mut command = Command::new(venv.python_bin());
        command
            .args(["-m", "ai.backend.agent.server", "-f"])
            .arg(&config)
            .current_dir(&dir)
            // Without a Docker socket the agent would report an error every 5 s.
            .env("DOCKER_HOST", "unix:///nonexistent.sock")
            // Its worker is a child that keeps heartbeating when only the main process dies.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        println!(
            "==> {label}: the real dummy agent {} ({cpu} cores, {mem} bytes): {}",
            agent.prefix,
            cmd::display(&command)
        );
        let child = command
            .spawn()
            .with_context(|| format!("cannot start `{}`", cmd::display(&command)))?;
        Ok(DummyAgent {
            what: format!("the dummy agent {} of the {label} run", agent.prefix),
            child,
            log,
            stopped: false,
        })
    }

    /// An error with its log when it has exited (a bad agent.dummy.toml ends it with status 0).
    pub(super) fn check_running(&mut self) -> Result<()> {
        check_running(&mut self.child, &mut self.stopped, &self.what, &self.log)
    }

    /// SIGTERM to the main process (it says goodbye and stops its worker), SIGKILL after
    /// [`STOP_TIMEOUT`]; then SIGKILL to whatever is left of its process group.
    pub(super) fn stop(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let pid = self.child.id();
        let result = sys::terminate(pid, &self.what, STOP_TIMEOUT);
        let _ = self.child.wait();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        result
    }
}

impl Drop for DummyAgent {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// configs/agent/agent.dummy.toml (`template`) with enough cores and memory that the heartbeat
/// offers `cpu` cores and `mem` bytes after the reserved slots.
fn dummy_toml(template: &str, cpu: u64, mem: u64, delay: f64) -> Result<String> {
    let cores: Vec<String> = (0..cpu + DUMMY_RESERVED_CPU)
        .map(|core| core.to_string())
        .collect();
    let replacements = [
        (
            "core-indexes = [0, 1, 2, 3, 4]".to_owned(),
            format!("core-indexes = [{}]", cores.join(", ")),
        ),
        (
            "size = 34359738368".to_owned(),
            format!("size = {}", mem + DUMMY_RESERVED_MEM),
        ),
    ];
    let mut text = template.to_owned();
    for (from, to) in &replacements {
        if !text.contains(from.as_str()) {
            bail!("the template no longer holds `{from}`");
        }
        text = text.replace(from.as_str(), to);
    }
    // Every delay step of the template is 0.1 s.
    if !text.contains(" = 0.1\n") {
        bail!("the template no longer holds delays of `0.1`");
    }
    Ok(text.replace(" = 0.1\n", &format!(" = {delay:?}\n")))
}

/// A `redis-server` of the benchmark alone: a free port on the halfstack host, no password, no
/// persistence; stopped on drop.
#[derive(Debug)]
pub(super) struct PrivateRedis {
    pub(super) port: u16,
    pub(super) child: Child,
    stopped: bool,
}

impl PrivateRedis {
    pub(super) fn start(scratch: &Scratch, label: &str) -> Result<Self> {
        let port = TcpListener::bind((consts::HOST, 0))
            .and_then(|listener| listener.local_addr())
            .context("cannot find a free port")?
            .port();
        let dir = scratch.0.join(format!("{label}-redis"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let log = scratch.0.join(format!("{label}-redis.log"));
        let (stdout, stderr) = cmd::log_files(&log)?;
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string()])
            .args(["--bind", consts::HOST])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        println!("==> {label}: private Redis: {}", cmd::display(&command));
        let child = command
            .spawn()
            .with_context(|| format!("cannot start `{}`", cmd::display(&command)))?;
        let mut redis = PrivateRedis {
            port,
            child,
            stopped: false,
        };
        let ready = sys::wait_until(REDIS_READY_TIMEOUT, || {
            if let Some(status) = redis.child.try_wait()? {
                redis.stopped = true;
                bail!("redis-server exited ({status})\n{}", cmd::log_tail(&log));
            }
            Ok(cmd::probe(
                Command::new("redis-cli").args([
                    "-h",
                    consts::HOST,
                    "-p",
                    &port.to_string(),
                    "ping",
                ]),
                Duration::from_secs(2),
            )
            .is_some_and(|out| out.trim() == "PONG"))
        })?;
        if !ready {
            bail!(
                "redis-server on port {port} did not answer PING within {REDIS_READY_TIMEOUT:?}\n{}",
                cmd::log_tail(&log)
            );
        }
        Ok(redis)
    }

    /// Points etcd `config/redis` of the deployment `config` (a manager.toml) at this Redis,
    /// which has no password.
    pub(super) fn serve_deployment(&self, cli: &Path, config: &Path, label: &str) -> Result<()> {
        let addr = format!("{}:{}", consts::HOST, self.port);
        let etcd = |args: &[&str]| {
            cmd::run(
                Command::new(cli)
                    .arg("-f")
                    .arg(config)
                    .arg("etcd")
                    .args(args),
            )
        };
        etcd(&["put", "config/redis/addr", &addr])
            .and_then(|_| etcd(&["delete", "config/redis/password"]))?;
        println!(
            "==> {label}: config/redis/addr = {addr} (private redis-server, pid {})",
            self.child.id()
        );
        Ok(())
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            let _ = sys::terminate(self.child.id(), "the private redis-server", STOP_TIMEOUT);
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../../configs/agent/dummy-agent.toml");

    fn agent<'a>(curve: Option<&'a AgentCurve>) -> AgentToml<'a> {
        AgentToml {
            namespace: "bench-ns",
            prefix: "i-rpc",
            rpc_port: 23_456,
            interval: 3.0,
            curve,
        }
    }

    #[test]
    fn agent_toml_points_at_the_benchmark() {
        let text = agent_toml(TEMPLATE, &agent(None)).unwrap();
        for line in [
            "namespace = \"bench-ns\"",
            "id = \"i-rpc\"",
            "rpc-listen-addr = { host = \"127.0.0.1\", port = 23456 }",
            "heartbeat-interval = 3.0",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("rpc-auth"), "{text}");
    }

    #[test]
    fn agent_toml_with_curve_names_both_files_in_the_agent_table() {
        let curve = AgentCurve {
            keypair: "/tmp/x/agent.key_secret".into(),
            manager_public_key: "/tmp/x/manager.key".into(),
        };
        let text = agent_toml(TEMPLATE, &agent(Some(&curve))).unwrap();
        let agent_table = text
            .split_once("\n[agent]\n")
            .and_then(|(_, rest)| rest.split_once("\n["))
            .map(|(table, _)| table)
            .unwrap_or_else(|| panic!("no [agent] table followed by another in\n{text}"));
        for line in [
            "rpc-auth-agent-keypair = \"/tmp/x/agent.key_secret\"",
            "rpc-auth-manager-public-key = \"/tmp/x/manager.key\"",
            "id = \"i-rpc\"",
        ] {
            assert!(
                agent_table.contains(line),
                "{line} missing in\n{agent_table}"
            );
        }
    }

    #[test]
    fn dummy_toml_offers_the_slots_asked_for() {
        let template = include_str!("../../../configs/agent/agent.dummy.toml");
        let text = dummy_toml(template, 3, 4 << 30, 0.01).unwrap();
        assert!(text.contains("core-indexes = [0, 1, 2, 3]\n"), "{text}");
        assert!(text.contains("spawn = 0.01\n"), "{text}");
        assert!(!text.contains(" = 0.1\n"), "{text}");
        assert!(
            text.contains(&format!("size = {}\n", 5_u64 << 30)),
            "{text}"
        );
        assert!(dummy_toml("[agent.resource.cpu]\n", 3, 1, 0.01).is_err());
    }

    #[test]
    fn agent_toml_refuses_a_template_without_the_namespace() {
        let template = TEMPLATE.replace("namespace = \"local\"", "namespace = \"other\"");
        let error = agent_toml(&template, &agent(None)).unwrap_err();
        assert!(error.to_string().contains("namespace"), "{error}");
    }
}
