//! The keeping of a lock whose hold expires unless renewed (etcd's lease, redlock's key expiry):
//! renewed at a fixed period until the guard is released, and reported lost when a renewal finds
//! the hold gone or no renewal succeeded for a whole time to live.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::LockId;

/// One renewal of a backend's hold.
pub(crate) trait Renew {
    type Error: Display;

    /// Renews the hold once: whether it was still there.
    fn renew(&mut self) -> impl Future<Output = Result<bool, Self::Error>> + Send;
}

/// When a lock of one backend is renewed, and what its messages call it.
pub(crate) struct Renewal<'a> {
    pub(crate) id: LockId,
    /// The backend's name in messages: `etcd`, `redlock`.
    pub(crate) backend: &'a str,
    /// Why a renewal that found the hold gone means the lock is lost.
    pub(crate) gone: &'a str,
    pub(crate) every: Duration,
    pub(crate) ttl: Duration,
}

impl Renewal<'_> {
    /// Renews `hold` every period (the first one period from now) until `released` fires. A hold
    /// gone, or failures for a whole time to live, cancel `lost` and end the renewals; the wait for
    /// the release goes on.
    pub(crate) async fn until_released(
        &self,
        mut released: oneshot::Receiver<()>,
        lost: &CancellationToken,
        hold: &mut (impl Renew + Send),
    ) {
        let Renewal {
            id,
            backend,
            gone,
            every,
            ttl,
        } = *self;
        let mut renewals = tokio::time::interval(every);
        renewals.tick().await;
        let mut renewed_at = Instant::now();
        loop {
            tokio::select! {
                _ = &mut released => break,
                _ = renewals.tick(), if !lost.is_cancelled() => {
                    match hold.renew().await {
                        Ok(true) => renewed_at = Instant::now(),
                        Ok(false) => {
                            tracing::error!("lock {id} ({backend}) lost: {gone}");
                            lost.cancel();
                        }
                        Err(error) if renewed_at.elapsed() >= ttl => {
                            tracing::error!(
                                "lock {id} ({backend}) lost: no renewal for its whole time to live ({error})"
                            );
                            lost.cancel();
                        }
                        Err(error) => {
                            tracing::warn!("lock {id} ({backend}): renewal failed, retrying ({error})");
                        }
                    }
                }
            }
        }
    }
}
