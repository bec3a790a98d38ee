//! The lock factory of `[manager] distributed-lock`, and what a held lock is.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bai_config::{DbConfig, DistributedLock, ManagerConfig};
use bai_etcd_store::EtcdTarget;
use bai_etcd_store::lock::EtcdLocks;
use bai_redis::{LockDb, Redis};
use nix::fcntl::Flock;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{LockError, LockId, etcd, file, pg, redlock};

/// How long one attempt waits before the wait is logged again.
const WAIT_SLICE: Duration = Duration::from_secs(60);
/// A wait longer than this is logged (at info) every time it grows by as much again.
const LONG_WAIT: Duration = Duration::from_secs(300);
/// The first and the longest pause after a store failed.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The reference's lifetime of a lock with `lifetime_hint`: `min(2 × hint, hint + 30 s)` (the
/// expiry of a `redlock` key and the lease of an `etcd` lock).
pub fn lock_ttl(lifetime_hint: Duration) -> Duration {
    (lifetime_hint * 2).min(lifetime_hint + Duration::from_secs(30))
}

/// Makes locks of the configured backend. Cheap to clone.
#[derive(Clone, Debug)]
pub struct LockFactory {
    backend: Arc<Backend>,
}

#[derive(Debug)]
pub(crate) enum Backend {
    PgAdvisory {
        db: DbConfig,
        /// `[db] lock-conn-timeout`: the bound of a wait and hold together; none when 0.
        conn_timeout: Option<Duration>,
    },
    File {
        dir: PathBuf,
        manager_id: String,
    },
    Redis(LockDb),
    /// Boxed: an etcd client is large.
    Etcd(Box<EtcdLocks>),
}

impl LockFactory {
    /// The factory `[manager] distributed-lock` asks for: `redlock` connects to database 5 of the
    /// server `redis` uses (and follows it when etcd `config/redis` moves it), `etcd` and
    /// `etcetra` to `[etcd]`.
    pub async fn connect(config: &ManagerConfig, redis: &Redis) -> Result<LockFactory, LockError> {
        let backend = match config.manager.distributed_lock {
            DistributedLock::PgAdvisory => Backend::PgAdvisory {
                db: config.db.clone(),
                conn_timeout: (config.db.lock_conn_timeout > 0.0)
                    .then(|| Duration::from_secs_f64(config.db.lock_conn_timeout)),
            },
            DistributedLock::Filelock => Backend::File {
                dir: config.manager.ipc_base_path.clone(),
                manager_id: config.manager.id.clone(),
            },
            DistributedLock::Redlock => Backend::Redis(redis.dedicated_lock().await?),
            DistributedLock::Etcd | DistributedLock::Etcetra => Backend::Etcd(Box::new(
                EtcdLocks::connect(&EtcdTarget::from_config(&config.etcd)).await?,
            )),
        };
        tracing::debug!("using {} as the distributed lock backend", backend.name());
        Ok(LockFactory {
            backend: Arc::new(backend),
        })
    }

    /// `pg_advisory` on the database of `db`; `conn_timeout` as `[db] lock-conn-timeout`.
    pub fn pg_advisory(db: DbConfig, conn_timeout: Option<Duration>) -> LockFactory {
        LockFactory::from(Backend::PgAdvisory { db, conn_timeout })
    }

    /// `filelock` in `dir` for the manager `manager_id`.
    pub fn file(dir: PathBuf, manager_id: String) -> LockFactory {
        LockFactory::from(Backend::File { dir, manager_id })
    }

    /// `redlock` on `db`.
    pub fn redlock(db: LockDb) -> LockFactory {
        LockFactory::from(Backend::Redis(db))
    }

    /// `etcd` on `locks`.
    pub fn etcd(locks: EtcdLocks) -> LockFactory {
        LockFactory::from(Backend::Etcd(Box::new(locks)))
    }

    /// The backend's name in manager.toml.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Takes lock `id`, waiting as long as it is held elsewhere (logged at debug when the wait
    /// starts, then at info every few minutes) and retrying with backoff while the store fails
    /// (each failure logged). `lifetime_hint` is how long the caller means to hold it. Dropping
    /// the future gives up the wait.
    pub async fn lock(&self, id: LockId, lifetime_hint: Duration) -> LockGuard {
        let started = Instant::now();
        let mut waiting = false;
        let mut next_report = LONG_WAIT;
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.try_lock_for(id, lifetime_hint, WAIT_SLICE).await {
                Ok(Some(guard)) => {
                    if waiting {
                        tracing::debug!(
                            "lock {id} ({}) taken after {:.1} s",
                            self.backend_name(),
                            started.elapsed().as_secs_f64()
                        );
                    }
                    return guard;
                }
                Ok(None) => {
                    backoff = FIRST_BACKOFF;
                    if !waiting {
                        waiting = true;
                        tracing::debug!(
                            "lock {id} ({}) is held elsewhere: waiting",
                            self.backend_name()
                        );
                    }
                    if started.elapsed() >= next_report {
                        next_report += LONG_WAIT;
                        tracing::info!(
                            "still waiting for lock {id} ({}) after {} s",
                            self.backend_name(),
                            started.elapsed().as_secs()
                        );
                    }
                }
                Err(error) => {
                    tracing::warn!(
                        "cannot take lock {id} ({}), retrying in {} s: {error}",
                        self.backend_name(),
                        backoff.as_secs()
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One attempt at lock `id` that waits at most `wait` (and, with `pg_advisory`, at most
    /// `lock-conn-timeout`): the held lock, or `None` when it was still held elsewhere.
    pub async fn try_lock_for(
        &self,
        id: LockId,
        lifetime_hint: Duration,
        wait: Duration,
    ) -> Result<Option<LockGuard>, LockError> {
        match &*self.backend {
            Backend::PgAdvisory { db, conn_timeout } => {
                pg::attempt(db, *conn_timeout, id, wait).await
            }
            Backend::File { dir, manager_id } => {
                file::attempt(&dir.join(format!("{manager_id}.{id}.lock")), id, wait).await
            }
            Backend::Redis(db) => redlock::attempt(db, id, lock_ttl(lifetime_hint), wait).await,
            Backend::Etcd(locks) => etcd::attempt(locks, id, lock_ttl(lifetime_hint), wait).await,
        }
    }
}

impl From<Backend> for LockFactory {
    fn from(backend: Backend) -> LockFactory {
        LockFactory {
            backend: Arc::new(backend),
        }
    }
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::PgAdvisory { .. } => "pg_advisory",
            Backend::File { .. } => "filelock",
            Backend::Redis(_) => "redlock",
            Backend::Etcd(_) => "etcd",
        }
    }
}

/// A held lock. [`LockGuard::release`] gives it back; dropping it does too, in the background.
#[derive(Debug)]
pub struct LockGuard {
    id: LockId,
    /// Cancelled when the lock was lost while held (a lease or expiry that could not be renewed,
    /// a connection that ended, `lock-conn-timeout` reached).
    lost: CancellationToken,
    holding: Holding,
}

#[derive(Debug)]
enum Holding {
    /// A task keeps the lock; it releases it when the sender is used or dropped.
    Kept {
        release: Option<oneshot::Sender<()>>,
        keeper: Option<JoinHandle<()>>,
    },
    /// The lock is the open file's `flock`, released when the file is closed.
    File(Option<Flock<std::fs::File>>),
}

impl LockGuard {
    /// A lock kept by `keeper`, which releases it when `release` fires or is dropped and cancels
    /// `lost` when it loses the lock first.
    pub(crate) fn kept(
        id: LockId,
        lost: CancellationToken,
        release: oneshot::Sender<()>,
        keeper: JoinHandle<()>,
    ) -> LockGuard {
        LockGuard {
            id,
            lost,
            holding: Holding::Kept {
                release: Some(release),
                keeper: Some(keeper),
            },
        }
    }

    pub(crate) fn file(id: LockId, lock: Flock<std::fs::File>) -> LockGuard {
        LockGuard {
            id,
            lost: CancellationToken::new(),
            holding: Holding::File(Some(lock)),
        }
    }

    pub fn id(&self) -> LockId {
        self.id
    }

    /// Completes when the lock is lost while held (never for a file lock: it lasts as long as
    /// the process).
    pub async fn lost(&self) {
        self.lost.cancelled().await;
    }

    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Gives the lock back and waits until it is.
    pub async fn release(mut self) {
        match &mut self.holding {
            Holding::Kept { release, keeper } => {
                if let Some(release) = release.take() {
                    // A keeper that ended already has released what it could.
                    let _ = release.send(());
                }
                if let Some(keeper) = keeper.take() {
                    let _ = keeper.await;
                }
            }
            Holding::File(lock) => drop(lock.take()),
        }
    }
}
