//! `redlock`: the key `str(lock_id)` of Redis database 5 set to a random token when absent, with
//! the expiry `min(2 × hint, hint + 30 s)`; tried every second, as redis-py's `Lock` polls.
//! Unlike the reference, the holder renews the expiry every third of it while it holds the lock,
//! so that a hold longer than the hint keeps the lock; a holder that dies loses it one expiry
//! later at the latest. A renewal that finds the key gone or someone else's is logged as lost
//! ownership.

use std::time::{Duration, Instant};

use bai_redis::{LockDb, RedisError};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::renewal::{Renew, Renewal};
use crate::{LockError, LockGuard, LockId};

/// redis-py's `Lock` polls this often.
const POLL_EVERY: Duration = Duration::from_secs(1);

pub(crate) async fn attempt(
    db: &LockDb,
    id: LockId,
    ttl: Duration,
    wait: Duration,
) -> Result<Option<LockGuard>, LockError> {
    let name = id.to_string();
    let token = uuid::Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    loop {
        if db.try_take(&name, &token, ttl).await? {
            break;
        }
        if started.elapsed() >= wait {
            return Ok(None);
        }
        tokio::time::sleep(POLL_EVERY.min(wait.saturating_sub(started.elapsed()))).await;
    }
    let lost = CancellationToken::new();
    let (release, released) = oneshot::channel();
    let keeper = tokio::spawn(keep(db.clone(), id, token, ttl, released, lost.clone()));
    Ok(Some(LockGuard::kept(id, lost, release, keeper)))
}

async fn keep(
    db: LockDb,
    id: LockId,
    token: String,
    ttl: Duration,
    released: oneshot::Receiver<()>,
    lost: CancellationToken,
) {
    let name = id.to_string();
    let renewal = Renewal {
        id,
        backend: "redlock",
        gone: "its key expired or was taken over",
        every: ttl / 3,
        ttl,
    };
    renewal
        .until_released(
            released,
            &lost,
            &mut KeyHold {
                db: &db,
                name: &name,
                token: &token,
                ttl,
            },
        )
        .await;
    match db.release(&name, &token).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!("lock {id} (redlock) was no longer owned at release"),
        Err(error) => tracing::warn!(
            "lock {id} (redlock): release failed, it expires within {} s ({error})",
            ttl.as_secs()
        ),
    }
}

/// The key of a lock held, renewed by setting its expiry again while it holds our token.
struct KeyHold<'a> {
    db: &'a LockDb,
    name: &'a str,
    token: &'a str,
    ttl: Duration,
}

impl Renew for KeyHold<'_> {
    type Error = RedisError;

    async fn renew(&mut self) -> Result<bool, RedisError> {
        self.db.renew(self.name, self.token, self.ttl).await
    }
}
