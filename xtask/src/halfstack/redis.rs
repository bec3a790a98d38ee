//! Redis 7 of Debian's `redis-server`, daemonized with a password, its pid file in `run/`.
//! Debian's own Redis on 6379, if any, is never touched.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use super::{Layout, Ports, Service};
use crate::cmd;
use crate::consts::{HOST, REDIS_PASSWORD};

/// `PING` with the password answers `PONG`.
pub fn answers(ports: Ports) -> bool {
    cmd::probe(
        Command::new("redis-cli")
            .args(["-h", HOST, "-p", &ports.redis.to_string()])
            .args(["-a", REDIS_PASSWORD, "--no-auth-warning", "ping"]),
        Duration::from_secs(5),
    )
    .is_some_and(|out| out.trim() == "PONG")
}

/// Starts the server; with `daemonize yes` the first process exits once the server forked.
///
/// Persistent: the event stream in database 4 is data (events not yet consumed, consumer groups'
/// positions), so a restarted Redis must come back with it. Every write goes to the append-only
/// file, flushed to disk every second (`appendfsync everysec`): a stop (SIGTERM, which flushes)
/// loses nothing, a crash of the machine at most the last second.
pub fn start(layout: &Layout) -> Result<()> {
    let log = layout.log(Service::Redis);
    let pid_file = Service::Redis.pid_file(layout);
    let _ = std::fs::remove_file(&pid_file);
    // What the first process prints before it forks (config errors) goes to the server's log.
    cmd::run_logged(
        Command::new("redis-server")
            .args(["--port", &layout.ports.redis.to_string()])
            .args(["--bind", HOST, "-::1"])
            .args(["--requirepass", REDIS_PASSWORD])
            .args(["--daemonize", "yes"])
            .args(["--appendonly", "yes"])
            .args(["--appendfsync", "everysec"])
            .arg("--pidfile")
            .arg(&pid_file)
            .arg("--logfile")
            .arg(&log)
            .arg("--dir")
            .arg(layout.data(Service::Redis)),
        &log,
    )
}
