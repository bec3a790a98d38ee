//! The pid file (`[manager] pid-file`): our pid, written when the server starts and removed when it
//! exits, so that systemd (`PIDFile=`) and operators can find the process, and so that a second
//! server started with the same file refuses instead of fighting the first one for the port.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// Why the pid file could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    #[error(
        "[manager] pid-file {path}: process {pid} is running and holds it; stop that server first \
         (or point pid-file elsewhere)"
    )]
    Held { path: PathBuf, pid: i32 },
    #[error("[manager] pid-file {path}: cannot {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

/// A pid file this process holds. [`PidFile::release`] removes it; so does dropping it.
#[derive(Debug)]
pub struct PidFile {
    /// `None` when no file is kept (empty path, or a device such as the default `/dev/null`).
    path: Option<PathBuf>,
    pid: i32,
}

/// What the pid file holds before we write ours.
enum Holder {
    Nobody,
    Stale,
    Alive(i32),
}

impl PidFile {
    /// Writes our pid to `path`. Refuses when the file names a live process other than this one;
    /// a stale file (dead process, garbage) is replaced. An empty path keeps no file; a path that is
    /// not a regular file (the default `/dev/null`) is written to like the reference does, and
    /// never removed or replaced.
    pub fn acquire(path: &Path) -> Result<PidFile, PidFileError> {
        let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        if path.as_os_str().is_empty() {
            return Ok(PidFile { path: None, pid });
        }
        let io_error = |action: &'static str| {
            move |source| PidFileError::Io {
                path: path.to_owned(),
                action,
                source,
            }
        };
        match fs::metadata(path) {
            Ok(meta) if !meta.is_file() => {
                // Non-blocking, so that a FIFO without a reader is an error, not a hang.
                fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
                    .open(path)
                    .and_then(|mut file| file.write_all(format!("{pid}\n").as_bytes()))
                    .map_err(io_error("write to it"))?;
                return Ok(PidFile { path: None, pid });
            }
            _ => {}
        }
        // Two attempts: a concurrent start may create the file between our look and our link.
        for _ in 0..2 {
            match holder(path, pid).map_err(io_error("read it"))? {
                Holder::Alive(other) => {
                    return Err(PidFileError::Held {
                        path: path.to_owned(),
                        pid: other,
                    });
                }
                Holder::Stale => {
                    tracing::warn!(
                        "replacing the stale pid file {} (its process is gone)",
                        path.display()
                    );
                    write_atomically(path, pid, Replace::Yes).map_err(io_error("write it"))?;
                    return Ok(PidFile {
                        path: Some(path.to_owned()),
                        pid,
                    });
                }
                Holder::Nobody => match write_atomically(path, pid, Replace::No) {
                    Ok(()) => {
                        return Ok(PidFile {
                            path: Some(path.to_owned()),
                            pid,
                        });
                    }
                    Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(error) => return Err(io_error("write it")(error)),
                },
            }
        }
        Err(io_error("write it")(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "another process keeps creating it",
        )))
    }

    /// The file this process holds, if it keeps one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Removes the file if it is still a regular file holding our pid.
    pub fn release(mut self) {
        self.remove();
    }

    fn remove(&mut self) {
        let Some(path) = self.path.take() else {
            return;
        };
        let ours = fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_file())
            && read_pid(&path).is_ok_and(|pid| pid == Some(self.pid));
        if !ours {
            return;
        }
        if let Err(error) = fs::remove_file(&path) {
            tracing::warn!("cannot remove the pid file {}: {error}", path.display());
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        self.remove();
    }
}

fn holder(path: &Path, our_pid: i32) -> io::Result<Holder> {
    let pid = match read_pid(path) {
        Ok(Some(pid)) => pid,
        Ok(None) => return Ok(Holder::Stale),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Holder::Nobody),
        Err(error) => return Err(error),
    };
    if pid == our_pid || pid <= 0 {
        return Ok(Holder::Stale);
    }
    let alive = match kill(Pid::from_raw(pid), None) {
        Ok(()) => true,
        // It exists but belongs to another user.
        Err(Errno::EPERM) => true,
        Err(_) => false,
    };
    if alive && !same_program(pid) {
        tracing::warn!(
            "the pid file {} names process {pid}, which is not a {}; treating the file as stale",
            path.display(),
            program_name().unwrap_or_default()
        );
        return Ok(Holder::Stale);
    }
    Ok(if alive {
        Holder::Alive(pid)
    } else {
        Holder::Stale
    })
}

/// The pid in the file; `None` when the file holds something else.
fn read_pid(path: &Path) -> io::Result<Option<i32>> {
    let text = fs::read_to_string(path)?;
    Ok(text.trim().parse().ok())
}

/// Whether process `pid` runs the same program as we do (by `/proc/PID/comm`). A pid left in a
/// stale file may have been reused by an unrelated process after a crash or reboot; such a file
/// must not block a restart. When it cannot be told, the process counts as the same program.
fn same_program(pid: i32) -> bool {
    let theirs = fs::read_to_string(format!("/proc/{pid}/comm"));
    match (theirs, program_name()) {
        (Ok(theirs), Some(ours)) => theirs.trim() == ours,
        _ => true,
    }
}

fn program_name() -> Option<String> {
    fs::read_to_string("/proc/self/comm")
        .ok()
        .map(|name| name.trim().to_owned())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Replace {
    Yes,
    No,
}

/// Writes the pid to a temporary file beside `path` and moves it into place, so that a reader
/// never sees a half-written file. Without `Replace::Yes` it fails with `AlreadyExists` when the
/// file appeared meanwhile (a hard link never replaces).
fn write_atomically(path: &Path, pid: i32, replace: Replace) -> io::Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{pid}.tmp"));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        file.write_all(format!("{pid}\n").as_bytes())?;
        file.sync_all()?;
        match replace {
            Replace::Yes => fs::rename(&temp, path),
            Replace::No => match fs::hard_link(&temp, path) {
                Ok(()) => Ok(()),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Err(error),
                // Filesystems without hard links: a rename (which could replace a file created
                // in the last microseconds) is the best there is.
                Err(_) => fs::rename(&temp, path),
            },
        }
    })();
    let _ = fs::remove_file(&temp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn our_pid() -> i32 {
        i32::try_from(std::process::id()).expect("pid fits")
    }

    #[test]
    fn writes_our_pid_and_removes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("manager.pid");
        let pid_file = PidFile::acquire(&path).expect("acquire");
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            format!("{}\n", our_pid())
        );
        assert_eq!(pid_file.path(), Some(path.as_path()));
        pid_file.release();
        assert!(!path.exists());
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 0);
    }

    #[test]
    fn refuses_a_file_held_by_a_live_process() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("manager.pid");
        // A live process that runs "the same program" as this test: `sleep` started through a
        // link named like us (the kernel names a process after the path it was started from).
        let link = dir.path().join(program_name().expect("/proc/self/comm"));
        std::os::unix::fs::symlink("/bin/sleep", &link).expect("symlink");
        let mut child = std::process::Command::new(&link)
            .arg("30")
            .spawn()
            .expect("spawn");
        // The kernel renames the process a moment after `spawn` returns.
        let comm = format!("/proc/{}/comm", child.id());
        for _ in 0..100 {
            if fs::read_to_string(&comm)
                .ok()
                .map(|name| name.trim().to_owned())
                == program_name()
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        fs::write(&path, format!("{}\n", child.id())).expect("write");
        let error = PidFile::acquire(&path).expect_err("must refuse");
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            matches!(error, PidFileError::Held { pid, .. } if u32::try_from(pid).ok() == Some(child.id())),
            "{error}"
        );
        assert!(error.to_string().contains(&path.display().to_string()));
        // The file was left alone.
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            format!("{}\n", child.id())
        );
    }

    #[test]
    fn replaces_a_stale_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("manager.pid");
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead = child.id();
        child.wait().expect("wait");
        for stale in [format!("{dead}\n"), "garbage".to_owned(), String::new()] {
            fs::write(&path, stale).expect("write");
            let pid_file = PidFile::acquire(&path).expect("acquire");
            assert_eq!(
                fs::read_to_string(&path).expect("read"),
                format!("{}\n", our_pid())
            );
            drop(pid_file);
            assert!(!path.exists());
        }
    }

    #[test]
    fn a_device_is_written_but_never_removed() {
        let pid_file = PidFile::acquire(Path::new("/dev/null")).expect("acquire");
        assert_eq!(pid_file.path(), None);
        pid_file.release();
        assert!(Path::new("/dev/null").exists());
    }

    #[test]
    fn an_empty_path_keeps_no_file() {
        let pid_file = PidFile::acquire(Path::new("")).expect("acquire");
        assert_eq!(pid_file.path(), None);
    }

    #[test]
    fn a_file_someone_else_rewrote_is_not_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("manager.pid");
        let pid_file = PidFile::acquire(&path).expect("acquire");
        fs::write(&path, "1\n").expect("write");
        pid_file.release();
        assert_eq!(fs::read_to_string(&path).expect("read"), "1\n");
    }
}
