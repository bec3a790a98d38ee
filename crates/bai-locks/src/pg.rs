//! `pg_advisory`: a session advisory lock on a connection opened for it (never one of the API's
//! pool), released with `pg_advisory_unlock` or by the connection's end. With `[db]
//! lock-conn-timeout`, as in 24.03, the wait and the hold together last at most that long: the
//! keeper then unlocks, closes the connection and reports the lock lost.

use std::time::{Duration, Instant};

use bai_config::DbConfig;
use bai_db_models::advisory::AdvisoryLockConnection;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::{LockError, LockGuard, LockId};

/// How often a held lock's connection is checked: a broken connection means the lock is gone.
const CHECK_EVERY: Duration = Duration::from_secs(10);

pub(crate) async fn attempt(
    db: &DbConfig,
    conn_timeout: Option<Duration>,
    id: LockId,
    wait: Duration,
) -> Result<Option<LockGuard>, LockError> {
    let started = Instant::now();
    let deadline = conn_timeout.map(|timeout| started + timeout);
    let mut connection = AdvisoryLockConnection::connect(db).await?;
    let wait = match conn_timeout {
        Some(timeout) => wait.min(timeout.saturating_sub(started.elapsed())),
        None => wait,
    };
    match connection.lock(id.0, Some(wait)).await {
        Ok(true) => {}
        Ok(false) => {
            connection.close().await;
            if let Some(timeout) = conn_timeout
                && started.elapsed() >= timeout
            {
                tracing::warn!(
                    "lock {id} (pg_advisory): not taken within lock-conn-timeout ({} s), retrying",
                    timeout.as_secs_f64()
                );
            }
            return Ok(None);
        }
        Err(error) => {
            connection.close().await;
            return Err(error.into());
        }
    }
    let lost = CancellationToken::new();
    let (release, released) = oneshot::channel();
    let keeper = tokio::spawn(keep(connection, id, deadline, released, lost.clone()));
    Ok(Some(LockGuard::kept(id, lost, release, keeper)))
}

/// Holds the lock until released (or the guard dropped), the deadline of `lock-conn-timeout`, or
/// the connection's end.
async fn keep(
    mut connection: AdvisoryLockConnection,
    id: LockId,
    deadline: Option<Instant>,
    mut released: oneshot::Receiver<()>,
    lost: CancellationToken,
) {
    let mut checks = tokio::time::interval(CHECK_EVERY);
    checks.tick().await;
    let expiry = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            _ = &mut released => break,
            () = &mut expiry => {
                tracing::warn!(
                    "lock {id} (pg_advisory) held past lock-conn-timeout: released"
                );
                lost.cancel();
                break;
            }
            _ = checks.tick() => {
                if let Err(error) = connection.ping().await {
                    // PostgreSQL going away is an outage the timers ride out (they lock again
                    // once it is back); anything else is unexpected.
                    if error.is_unavailable() {
                        tracing::warn!(
                            "lock {id} (pg_advisory) lost: PostgreSQL is unavailable ({error})"
                        );
                    } else {
                        tracing::error!(
                            "lock {id} (pg_advisory) lost: its connection ended ({error})"
                        );
                    }
                    lost.cancel();
                    connection.close().await;
                    return;
                }
            }
        }
    }
    match connection.unlock(id.0).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!("lock {id} (pg_advisory) was no longer held at release"),
        // Closing the connection below releases it all the same.
        Err(error) => tracing::warn!("lock {id} (pg_advisory): unlock failed ({error})"),
    }
    connection.close().await;
}
