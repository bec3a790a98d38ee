//! etcd 3.4 of Debian's `etcd-server`, a single member on 127.0.0.1, started detached in a session
//! of its own (through util-linux `setsid`) so that it outlives this xtask run; its pid goes to
//! `run/etcd.pid` and its output to `logs/etcd.log`.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use super::{Layout, Ports, Service};
use crate::cmd;
use crate::consts::ETCD_NAME;

/// `etcdctl` (v3 API) with `--endpoints` of the halfstack's member and none of the user's
/// `ETCDCTL_*` variables.
pub fn etcdctl() -> Command {
    etcdctl_of(Ports::HALFSTACK)
}

/// [`etcdctl`] for the member on `ports`.
pub fn etcdctl_of(ports: Ports) -> Command {
    let mut command = Command::new("etcdctl");
    clear_etcdctl_env(&mut command);
    command
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", ports.etcd_client_url()));
    command
}

/// Removes every `ETCDCTL_*` variable from what `command` (and any etcdctl it runs) inherits:
/// etcdctl refuses a flag whose variable is set too (`ETCDCTL_ENDPOINTS` with `--endpoints` is
/// "conflicting environment variable ... is shadowed"), and the others (user, certificates) are
/// meant for the user's own cluster, not the halfstack's.
pub fn clear_etcdctl_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name
            .to_str()
            .is_some_and(|name| name.starts_with("ETCDCTL_"))
        {
            command.env_remove(name);
        }
    }
}

/// `etcdctl endpoint health` reports the member healthy.
pub fn answers(ports: Ports) -> bool {
    cmd::probe(
        etcdctl_of(ports)
            .args(["--dial-timeout=2s", "--command-timeout=3s"])
            .args(["endpoint", "health"]),
        Duration::from_secs(10),
    )
    .is_some()
}

/// Starts the member and writes its pid file.
pub fn start(layout: &Layout) -> Result<()> {
    let data = layout.data(Service::Etcd);
    let (stdout, stderr) = cmd::log_files(&layout.log(Service::Etcd))?;
    let (client, peer) = (layout.ports.etcd_client_url(), layout.ports.etcd_peer_url());
    let mut command = Command::new("setsid");
    command
        .arg("etcd")
        .args(["--name", ETCD_NAME])
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("{ETCD_NAME}={peer}")])
        .args(["--initial-cluster-token", ETCD_NAME])
        .args(["--initial-cluster-state", "new"])
        // As the reference compose file: v2 API on, hourly compaction.
        .args(["--enable-v2=true", "--auto-compaction-retention", "1"])
        // Run in the data folder, as PostgreSQL and Redis do, so `/proc/PID/cwd` tells it.
        .current_dir(&data)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    // Our child is not a process group leader, so `setsid` calls setsid(2) and execs etcd in
    // place: the child's pid is etcd's. When etcd exits, it stays a zombie until we exit, which
    // `Service::wait_ready` sees as dead.
    let child = command
        .spawn()
        .with_context(|| format!("cannot run `{}`", cmd::display(&command)))?;
    let pid_file = Service::Etcd.pid_file(layout);
    std::fs::write(&pid_file, format!("{}\n", child.id()))
        .with_context(|| format!("cannot write {}", pid_file.display()))
}
