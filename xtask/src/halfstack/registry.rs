//! A container registry of Debian's `docker-registry` (CNCF distribution 2.x), anonymous, on
//! 127.0.0.1, for the test images `cargo xtask registry push-test-images` pushes and `image
//! rescan` reads. Its configuration and blobs live in `registry/`; it is started detached in a
//! session of its own (as etcd is), its pid in `run/registry.pid`, its output in
//! `logs/registry.log`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use super::{Layout, Service};
use crate::cmd;
use crate::consts::{HOST, REGISTRY_PORT};

/// `GET /v2/` answers 200: the registry speaks the v2 API without asking for credentials.
pub fn answers() -> bool {
    let Ok(address) = format!("{HOST}:{REGISTRY_PORT}").parse() else {
        return false;
    };
    let timeout = Duration::from_secs(2);
    let Ok(mut stream) = TcpStream::connect_timeout(&address, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: {HOST}:{REGISTRY_PORT}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut status_line = [0u8; 12];
    stream.read_exact(&mut status_line).is_ok() && status_line.ends_with(b" 200")
}

/// Writes the configuration and starts the registry.
pub fn start(layout: &Layout) -> Result<()> {
    let data = layout.data(Service::Registry);
    let storage = data.join("storage");
    std::fs::create_dir_all(&storage)
        .with_context(|| format!("cannot create {}", storage.display()))?;
    let config = data.join("config.yml");
    std::fs::write(&config, config_yaml(&storage.display().to_string()))
        .with_context(|| format!("cannot write {}", config.display()))?;
    let (stdout, stderr) = cmd::log_files(&layout.log(Service::Registry))?;
    let mut command = Command::new("setsid");
    command
        .args(["docker-registry", "serve"])
        .arg(&config)
        .current_dir(&data)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    // As for etcd: `setsid` execs the registry in place, so the child's pid is the registry's.
    let child = command
        .spawn()
        .with_context(|| format!("cannot run `{}`", cmd::display(&command)))?;
    let pid_file = Service::Registry.pid_file(layout);
    std::fs::write(&pid_file, format!("{}\n", child.id()))
        .with_context(|| format!("cannot write {}", pid_file.display()))
}

/// Filesystem storage with deletes allowed (so images can be removed again), no auth, no
/// access log (a rescan makes thousands of requests).
fn config_yaml(storage: &str) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
         http:\n  addr: {HOST}:{REGISTRY_PORT}\n  headers:\n    X-Content-Type-Options: [nosniff]\n"
    )
}
