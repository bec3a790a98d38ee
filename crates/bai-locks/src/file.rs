//! `filelock`: `flock(LOCK_EX | LOCK_NB)` on a file of `[manager] ipc-base-path`, retried with the
//! reference's exponential backoff (0.02 s doubling up to 1 s, plus up to 0.05 s of jitter). It
//! excludes the processes of one host that share the manager id; the kernel releases it when
//! the holder's file is closed, also when the holder dies.

use std::fs::OpenOptions;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::{LockError, LockGuard, LockId};

const FIRST_PAUSE: Duration = Duration::from_millis(20);
const MAX_PAUSE: Duration = Duration::from_secs(1);
const MAX_JITTER_MS: u64 = 50;

pub(crate) async fn attempt(
    path: &Path,
    id: LockId,
    wait: Duration,
) -> Result<Option<LockGuard>, LockError> {
    let file_error = |source| LockError::File {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        // `ipc-base-path` is made when missing, as the reference's configuration makes it.
        std::fs::create_dir_all(dir).map_err(file_error)?;
    }
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(file_error)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(Some(LockGuard::file(id, lock))),
            Err((_, Errno::EWOULDBLOCK)) => {}
            Err((_, errno)) => return Err(file_error(errno.into())),
        }
        if started.elapsed() >= wait {
            return Ok(None);
        }
        let jitter = Duration::from_millis(fastrand::u64(0..=MAX_JITTER_MS));
        tokio::time::sleep(pause + jitter).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}
