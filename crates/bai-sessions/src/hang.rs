//! The hang-tolerance scanner (spec §4.11, the reference's `hanging_session_scanner_ctx`): etcd
//! `config/session/hang-tolerance/threshold/{PREPARING|TERMINATING}` says how long a session may
//! stay in that status; a session that entered it (`status_history`) longer ago is destroyed,
//! forced, with the reason `hang-timeout`, as a manager (not a superadmin) destroys: the session
//! goes TERMINATING, its kernels TERMINATED (those with a container after `destroy_kernel` on
//! their agent), and the kernels' termination ends the session TERMINATED with its slots and its
//! keypair's concurrency given back.
//!
//! Each configured status has its own timer, every `min(3600 s, 0.4 × threshold)` (years and
//! months: 3600 s). Unlike the reference, which reads the thresholds once when the scanner starts,
//! a scanner that follows the live shared configuration ([`HangScanner::following`]) applies a
//! change of the thresholds at once: a status gains, changes or loses its timer.

use std::time::Duration;

use bai_db_models::DbError;
use bai_db_models::entities::enums::SessionStatus;
use bai_db_models::queries::session_faults;
use bai_etcd_store::shared_config::HangThresholds;
use bai_etcd_store::{EtcdStore, LiveSharedConfig, SharedConfig, SharedConfigError};
use sea_orm::DatabaseConnection;
use sea_orm::prelude::Uuid;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{DestroyRequest, Destroyer};

/// `KernelLifecycleEventReason.HANG_TIMEOUT`.
pub const HANG_TIMEOUT: &str = "hang-timeout";
/// The longest time between two scans of one status.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// The share of the threshold between two scans: less than half, so that a session is caught
/// well before it hung twice as long as allowed.
const INTERVAL_WEIGHT: f64 = 0.4;
/// The shortest time between two scans, whatever the threshold.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// How long to wait before reading the thresholds again when etcd could not be read.
const RETRY_CONFIG: Duration = Duration::from_secs(10);

/// Why a scan failed as a whole (a session that could not be destroyed is logged, not an error).
#[derive(Debug, thiserror::Error)]
pub enum HangError {
    #[error(transparent)]
    Db(Box<DbError>),
    #[error("reading the hang tolerance from etcd: {0}")]
    SharedConfig(#[from] SharedConfigError),
}

impl From<DbError> for HangError {
    fn from(error: DbError) -> Self {
        HangError::Db(Box::new(error))
    }
}

/// Finds hanging sessions and destroys them.
#[derive(Clone, Debug)]
pub struct HangScanner {
    db: DatabaseConnection,
    etcd: EtcdStore,
    destroyer: Destroyer,
    /// Where the thresholds come from when it follows changes; without it they are read from etcd
    /// once.
    shared_config: Option<LiveSharedConfig>,
}

impl HangScanner {
    pub fn new(db: DatabaseConnection, etcd: EtcdStore, destroyer: Destroyer) -> HangScanner {
        HangScanner {
            db,
            etcd,
            destroyer,
            shared_config: None,
        }
    }

    /// Takes the thresholds from `shared_config` and follows its changes.
    pub fn following(mut self, shared_config: LiveSharedConfig) -> HangScanner {
        self.shared_config = Some(shared_config);
        self
    }

    /// The configured thresholds, by status.
    pub async fn thresholds(&self) -> Result<Vec<(SessionStatus, Duration)>, HangError> {
        let hang_tolerance = match &self.shared_config {
            Some(live) => live.current().session.hang_tolerance,
            None => SharedConfig::load(&self.etcd).await?.session.hang_tolerance,
        };
        Ok(by_status(hang_tolerance))
    }

    /// Destroys every session that has been in `status` for longer than `threshold`; returns the
    /// ids of those destroyed. All are destroyed at once; one that cannot be (a kernel still
    /// PULLING, say) is logged and left for the next scan.
    pub async fn scan(
        &self,
        status: SessionStatus,
        threshold: Duration,
    ) -> Result<Vec<Uuid>, HangError> {
        let hanging = session_faults::hanging_sessions(&self.db, status, threshold).await?;
        if !hanging.is_empty() {
            tracing::info!(
                "{} session(s) {status:?} for longer than {threshold:?}: destroying them",
                hanging.len()
            );
        }
        let mut destroying = JoinSet::new();
        for session_id in hanging {
            let destroyer = self.destroyer.clone();
            destroying.spawn(async move {
                let request = DestroyRequest {
                    forced: true,
                    reason: Some(HANG_TIMEOUT),
                    superadmin: false,
                };
                (session_id, destroyer.destroy(session_id, request).await)
            });
        }
        let mut destroyed = Vec::new();
        while let Some(joined) = destroying.join_next().await {
            match joined {
                Ok((session_id, Ok(_))) => destroyed.push(session_id),
                Ok((session_id, Err(error))) => {
                    tracing::error!(session.id = %session_id, "destroying a hanging session: {error}");
                }
                Err(error) => tracing::error!("destroying a hanging session: {error}"),
            }
        }
        Ok(destroyed)
    }
}

/// Scans every configured status on its own timer until `shutdown`; without thresholds it only
/// waits for `shutdown` (or, following the shared configuration, for thresholds to be set).
pub async fn run_hang_scanner(scanner: HangScanner, shutdown: CancellationToken) {
    // A clone taken before the first read: a change made meanwhile is still seen below.
    let mut changes = scanner.shared_config.clone();
    let mut thresholds = loop {
        match scanner.thresholds().await {
            Ok(thresholds) => break thresholds,
            Err(error) => tracing::warn!("hang-tolerance scanner: {error}; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETRY_CONFIG) => {}
        }
    };
    loop {
        let timers_stop = shutdown.child_token();
        let mut timers = spawn_timers(&scanner, &thresholds, &timers_stop);
        let changed = match &mut changes {
            Some(live) => tokio::select! {
                () = shutdown.cancelled() => None,
                changed = next_thresholds(live, &thresholds) => changed,
            },
            None => None,
        };
        if changed.is_none() {
            shutdown.cancelled().await;
        }
        timers_stop.cancel();
        while timers.join_next().await.is_some() {}
        match changed {
            Some(changed) => {
                tracing::info!("hang-tolerance thresholds changed: now {changed:?}");
                thresholds = changed;
            }
            None => return,
        }
    }
}

/// The thresholds of the next change that changes them; `None` when no change will come.
async fn next_thresholds(
    live: &mut LiveSharedConfig,
    thresholds: &[(SessionStatus, Duration)],
) -> Option<Vec<(SessionStatus, Duration)>> {
    loop {
        let config = live.changed().await?;
        let changed = by_status(config.session.hang_tolerance);
        if changed != thresholds {
            return Some(changed);
        }
    }
}

/// One timer per status, each scanning until `shutdown`.
fn spawn_timers(
    scanner: &HangScanner,
    thresholds: &[(SessionStatus, Duration)],
    shutdown: &CancellationToken,
) -> JoinSet<()> {
    let mut timers = JoinSet::new();
    for &(status, threshold) in thresholds {
        let (scanner, shutdown) = (scanner.clone(), shutdown.clone());
        timers.spawn(async move {
            let mut ticks = tokio::time::interval(scan_interval(threshold));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                if let Err(error) = scanner.scan(status, threshold).await {
                    tracing::error!("scanning for sessions hanging in {status:?}: {error}");
                }
            }
        });
    }
    timers
}

/// The statuses that have a threshold.
fn by_status(thresholds: HangThresholds) -> Vec<(SessionStatus, Duration)> {
    [
        (SessionStatus::Preparing, thresholds.preparing),
        (SessionStatus::Terminating, thresholds.terminating),
    ]
    .into_iter()
    .filter_map(|(status, threshold)| threshold.map(|threshold| (status, threshold)))
    .collect()
}

/// `min(3600 s, 0.4 × threshold)`; a threshold of years or months (read as 365 and 30 days) is
/// always above the cap, as the reference's `relativedelta` is.
fn scan_interval(threshold: Duration) -> Duration {
    threshold
        .mul_f64(INTERVAL_WEIGHT)
        .clamp(MIN_INTERVAL, MAX_INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_come_at_four_tenths_of_the_threshold_and_at_least_hourly() {
        assert_eq!(
            scan_interval(Duration::from_secs(600)),
            Duration::from_secs(240)
        );
        assert_eq!(scan_interval(Duration::from_secs(86_400)), MAX_INTERVAL);
        assert_eq!(
            scan_interval(Duration::from_secs(365 * 86_400)),
            MAX_INTERVAL
        );
        assert_eq!(scan_interval(Duration::ZERO), MIN_INTERVAL);
    }

    #[test]
    fn only_configured_statuses_are_scanned() {
        let thresholds = HangThresholds {
            preparing: None,
            terminating: Some(Duration::from_secs(60)),
        };
        assert_eq!(
            by_status(thresholds),
            [(SessionStatus::Terminating, Duration::from_secs(60))]
        );
    }
}
