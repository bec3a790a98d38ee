//! `etcd` (and 24.03's `etcetra`): a lease of `min(2 × hint, hint + 30 s)` (whole seconds, as the
//! reference truncates it), renewed every third of it from the grant on, and etcd's lock `str(lock_id)`
//! taken with it; released by unlocking and revoking the lease. A holder that dies stops renewing:
//! etcd ends the lease, and with it the lock, one time to live later at the latest.

use std::time::{Duration, Instant};

use bai_etcd_store::EtcdError;
use bai_etcd_store::lock::{EtcdLease, EtcdLocks};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::renewal::{Renew, Renewal};
use crate::{LockError, LockGuard, LockId};

pub(crate) async fn attempt(
    locks: &EtcdLocks,
    id: LockId,
    ttl: Duration,
    wait: Duration,
) -> Result<Option<LockGuard>, LockError> {
    let name = id.to_string();
    let ttl_seconds = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
    let renew_every = Duration::from_secs_f64(ttl_seconds as f64 / 3.0);
    let mut lease = locks.grant(&name, ttl_seconds).await?;
    let started = Instant::now();
    let taking = locks.lock(&name, lease.id(), wait);
    tokio::pin!(taking);
    let mut renewals = tokio::time::interval(renew_every);
    renewals.tick().await;
    let taken = loop {
        tokio::select! {
            taken = &mut taking => break taken,
            _ = renewals.tick() => {
                if let Err(error) = locks.keep_alive(&name, &mut lease).await {
                    tracing::warn!(
                        "lock {id} (etcd): lease renewal failed while waiting, {:.0} s into the wait ({error})",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }
    };
    let key = match taken {
        Ok(Some(key)) => key,
        Ok(None) => {
            locks.revoke(&name, lease).await?;
            return Ok(None);
        }
        Err(error) => {
            if let Err(revoking) = locks.revoke(&name, lease).await {
                tracing::warn!("lock {id} (etcd): cannot revoke the lease ({revoking})");
            }
            return Err(error.into());
        }
    };
    let lost = CancellationToken::new();
    let (release, released) = oneshot::channel();
    let held = Held {
        locks: locks.clone(),
        id,
        key,
        lease,
        ttl,
        renew_every,
    };
    let keeper = tokio::spawn(keep(held, released, lost.clone()));
    Ok(Some(LockGuard::kept(id, lost, release, keeper)))
}

/// A lock taken: its etcd key, its lease and how the lease is kept.
struct Held {
    locks: EtcdLocks,
    id: LockId,
    key: Vec<u8>,
    lease: EtcdLease,
    ttl: Duration,
    renew_every: Duration,
}

/// Renews the lease of `held` until the guard is released (then unlocks), cancelling `lost`
/// when the lease ended meanwhile.
async fn keep(held: Held, released: oneshot::Receiver<()>, lost: CancellationToken) {
    let Held {
        locks,
        id,
        key,
        mut lease,
        ttl,
        renew_every,
    } = held;
    let name = id.to_string();
    let renewal = Renewal {
        id,
        backend: "etcd",
        gone: "its lease had expired",
        every: renew_every,
        ttl,
    };
    renewal
        .until_released(
            released,
            &lost,
            &mut LeaseHold {
                locks: &locks,
                name: &name,
                lease: &mut lease,
            },
        )
        .await;
    if let Err(error) = locks.unlock(&name, key, lease).await {
        tracing::warn!(
            "lock {id} (etcd): release failed, it ends with its lease within {} s ({error})",
            ttl.as_secs()
        );
    }
}

/// The lease of a lock held, renewed by a keep-alive.
struct LeaseHold<'a> {
    locks: &'a EtcdLocks,
    name: &'a str,
    lease: &'a mut EtcdLease,
}

impl Renew for LeaseHold<'_> {
    type Error = EtcdError;

    async fn renew(&mut self) -> Result<bool, EtcdError> {
        let remaining = self.locks.keep_alive(self.name, self.lease).await?;
        Ok(remaining > 0)
    }
}
