//! The reference's `GlobalTimer` (`common/distributed.py`): every process runs one loop per
//! timer — sleep the initial delay, then forever: take the timer's lock, produce the event, keep
//! the lock for the interval, release it. Whoever holds the lock produces; the others wait for it,
//! so the cluster produces about one event per interval.

use std::time::Duration;

use bai_events::{Event, EventProducer};
use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::{LockFactory, LockId};

/// The reference's `do_schedule` timer (`SchedulerDispatcher`): lock 191, every 10 s.
pub const SCHEDULE_EVERY: Duration = Duration::from_secs(10);
/// `do_prepare`: lock 192, every 10 s after 5 s.
pub const PREPARE_EVERY: Duration = Duration::from_secs(10);
pub const PREPARE_AFTER: Duration = Duration::from_secs(5);
/// `do_scale` (`SchedulerDispatcher`): lock 193, every 10 s after 7 s.
pub const SCALE_EVERY: Duration = Duration::from_secs(10);
pub const SCALE_AFTER: Duration = Duration::from_secs(7);
/// `do_idle_check` (`IdleCheckerHost`): lock 196, every 15 s.
pub const IDLE_CHECK_EVERY: Duration = Duration::from_secs(15);
/// `do_log_cleanup` (`api/logs.py`): lock 195, every 20 s after 17 s.
pub const LOG_CLEANUP_EVERY: Duration = Duration::from_secs(20);
pub const LOG_CLEANUP_AFTER: Duration = Duration::from_secs(17);

/// The source of the events the timers produce, as the reference's producer names the manager.
const SOURCE: &str = "manager";

/// A timer producing `event` about once per interval cluster-wide.
#[derive(Debug)]
pub struct GlobalTimer {
    locks: LockFactory,
    lock_id: LockId,
    producer: EventProducer,
    event: Event,
    interval: Duration,
    initial_delay: Duration,
}

impl GlobalTimer {
    /// A timer on lock `lock_id` (taken with the interval as its lifetime hint), without initial
    /// delay.
    pub fn new(
        locks: LockFactory,
        lock_id: LockId,
        producer: EventProducer,
        event: Event,
        interval: Duration,
    ) -> GlobalTimer {
        GlobalTimer {
            locks,
            lock_id,
            producer,
            event,
            interval,
            initial_delay: Duration::ZERO,
        }
    }

    pub fn with_initial_delay(mut self, initial_delay: Duration) -> GlobalTimer {
        self.initial_delay = initial_delay;
        self
    }

    /// Runs until `shutdown`, which it notices at once, whether waiting for the lock or holding
    /// it (then released before this returns).
    pub async fn run(self, shutdown: CancellationToken) {
        let name = self.event.name();
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(self.initial_delay) => {}
        }
        loop {
            let guard = tokio::select! {
                () = shutdown.cancelled() => return,
                guard = self.locks.lock(self.lock_id, self.interval) => guard,
            };
            if let Err(error) = self.producer.produce(&self.event, SOURCE).await {
                tracing::warn!("timer {name}: cannot produce the event ({error})");
            }
            tokio::select! {
                () = shutdown.cancelled() => {
                    guard.release().await;
                    return;
                }
                () = guard.lost() => {
                    tracing::warn!("timer {name}: lock {} lost during the interval", self.lock_id);
                }
                () = tokio::time::sleep(self.interval) => {}
            }
            guard.release().await;
        }
    }
}

/// The manager's global timers, as the reference runs them in every process: `do_schedule`,
/// `do_prepare`, `do_scale`, `do_idle_check` and `do_log_cleanup`, each on its lock.
pub fn manager_timers(locks: &LockFactory, producer: &EventProducer) -> Vec<GlobalTimer> {
    let timer = |lock_id, event, interval| {
        GlobalTimer::new(locks.clone(), lock_id, producer.clone(), event, interval)
    };
    vec![
        timer(LockId::SCHEDULE_TIMER, Event::DoSchedule, SCHEDULE_EVERY),
        timer(LockId::PREPARE_TIMER, Event::DoPrepare, PREPARE_EVERY)
            .with_initial_delay(PREPARE_AFTER),
        timer(LockId::SCALE_TIMER, Event::DoScale, SCALE_EVERY).with_initial_delay(SCALE_AFTER),
        timer(
            LockId::IDLE_CHECK_TIMER,
            Event::DoIdleCheck,
            IDLE_CHECK_EVERY,
        ),
        timer(
            LockId::LOG_CLEANUP_TIMER,
            Event::DoLogCleanup,
            LOG_CLEANUP_EVERY,
        )
        .with_initial_delay(LOG_CLEANUP_AFTER),
    ]
}

/// Runs `timers` together until `shutdown` (each releases its lock before this returns).
pub async fn run_timers(timers: Vec<GlobalTimer>, shutdown: CancellationToken) {
    join_all(timers.into_iter().map(|timer| timer.run(shutdown.clone()))).await;
}
