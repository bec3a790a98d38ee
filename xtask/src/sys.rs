//! What we need to know about this machine without libc bindings: are we root, where is a
//! program, is a pid alive, who listens on a port. Everything is read from `/proc` or `PATH`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::cmd;

/// True when our effective user id is 0 (second field of the `Uid:` line of `/proc/self/status`).
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .is_some_and(|euid| euid == "0")
}

/// The first `name` in `PATH` that is a file, like `command -v`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// True when `pid` exists and is not a zombie (a killed child not yet reaped is dead to us).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Format: `pid (comm) STATE ...`; comm may hold spaces and parentheses, so split at the last `)`.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, None | Some("Z" | "X" | "x"))
}

/// The short name of the program `pid` runs (`/proc/PID/comm`).
pub fn pid_comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|comm| comm.trim().to_owned())
}

/// The working directory of `pid`; servers such as PostgreSQL and Redis run in their data folder.
pub fn pid_cwd(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// True when every folder from `/` down to `dir` lets other users (such as the OS user
/// `postgres`) pass through: the `x` bit for others. False when `dir` does not exist.
pub fn others_can_enter(dir: &Path) -> bool {
    dir.ancestors().all(|dir| {
        dir.metadata()
            .is_ok_and(|meta| meta.permissions().mode() & 0o001 != 0)
    })
}

/// The pid on the first line of a pid file, if the file exists and holds one.
pub fn read_pid_file(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Something listening on a TCP port.
#[derive(Debug)]
pub struct Listener {
    /// The owning process, when `/proc` lets us see it.
    pub pid: Option<u32>,
}

impl Listener {
    /// `pid 123 (postgres)`, or `a process we cannot see`.
    pub fn describe(&self) -> String {
        match self.pid {
            Some(pid) => match pid_comm(pid) {
                Some(comm) => format!("pid {pid} ({comm})"),
                None => format!("pid {pid}"),
            },
            None => "a process we cannot see".to_owned(),
        }
    }
}

/// Who listens on TCP `port` on any address, from `/proc/net/tcp{,6}` and the sockets in
/// `/proc/*/fd`. `None` when the port is free.
pub fn tcp_listener(port: u16) -> Option<Listener> {
    let wanted: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .map(|inode| format!("socket:[{inode}]"))
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let pid = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .any(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
        });
    Some(Listener { pid })
}

/// How many sockets listen on TCP `port` (a server whose workers each bind the port with
/// `SO_REUSEPORT` has one per worker).
pub fn tcp_listen_count(port: u16) -> usize {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .map(|table| listening_inodes(&table, port).len())
        .sum()
}

/// `pid` and all its descendants (children, their children, ...), parents before children, from
/// the parent pid field of `/proc/*/stat`.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            Some((child, parent_pid(&stat)?))
        })
        .collect();
    let mut tree = vec![pid];
    let mut next = 0;
    while next < tree.len() {
        let parent = tree[next];
        tree.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(child, _)| *child),
        );
        next += 1;
    }
    tree
}

/// Resident memory of `pid` in KiB: `VmRSS` (every page the process maps, shared ones included)
/// and the proportional set size `Pss` (shared pages divided among the processes sharing them, so
/// a sum over forked workers does not count inherited pages twice). `None` once it has exited.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    Some((kib_field(&status, "VmRSS:")?, kib_field(&rollup, "Pss:")?))
}

/// The number of a `Name:   1234 kB` line.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The parent pid in a `/proc/PID/stat` line (`pid (comm) state ppid ...`).
fn parent_pid(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Socket inodes in a `/proc/net/tcp` table that listen (state `0A`) on `port`.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    let port_hex = format!("{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit_once(':')?.1;
            (local_port == port_hex && *fields.get(3)? == "0A")
                .then(|| fields.get(9).map(|s| (*s).to_owned()))?
        })
        .collect()
}

/// Sends SIGTERM to `pid` with the `kill` command and waits up to `timeout` for it to exit;
/// escalates to SIGKILL after that, saying so.
pub fn terminate(pid: u32, what: &str, timeout: Duration) -> Result<()> {
    let kill = |signal: &str| cmd::run(Command::new("kill").args([signal, &pid.to_string()]));
    let exited = || wait_until(timeout, || Ok(!pid_alive(pid)));
    if !pid_alive(pid) {
        return Ok(());
    }
    kill("-TERM")?;
    if exited()? {
        return Ok(());
    }
    eprintln!("{what} (pid {pid}) did not exit {timeout:?} after SIGTERM; sending SIGKILL");
    let _ = kill("-KILL");
    if exited()? {
        Ok(())
    } else {
        bail!("{what} (pid {pid}) is still alive after SIGKILL")
    }
}

/// Polls `check` every 200 ms until it returns true or `timeout` passes. `check` may fail fast
/// (e.g. when the process it waits for has died) by returning an error.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> Result<bool>) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if check()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_listening_sockets_by_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1FA4 00000000:0000 0A 00000000:00000000 00:00000000 00000000   104        0 31337 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1FA4 0100007F:9C40 01 00000000:00000000 00:00000000 00000000   104        0 424242 1 0000000000000000 20 4 30 10 -1";
        assert_eq!(listening_inodes(table, 8100), vec!["31337".to_owned()]);
        assert!(listening_inodes(table, 8110).is_empty());
    }

    #[test]
    fn reads_process_tree_and_memory() {
        let stat = "4242 (backend.ai: man) S 4200 4242 4242 0 -1 4194560";
        assert_eq!(parent_pid(stat), Some(4200));
        let status = "Name:\tpython\nVmHWM:\t  131748 kB\nVmRSS:\t  121120 kB\n";
        assert_eq!(kib_field(status, "VmRSS:"), Some(121_120));
        assert_eq!(kib_field(status, "VmSwap:"), None);
        let me = std::process::id();
        assert_eq!(process_tree(me).first(), Some(&me));
        let (rss, pss) = memory_kib(me).expect("our own memory is readable");
        assert!(rss > 0 && pss > 0 && pss <= rss, "rss {rss} pss {pss}");
    }

    #[test]
    fn we_are_alive() {
        assert!(pid_alive(std::process::id()));
        assert!(pid_comm(std::process::id()).is_some());
    }
}
