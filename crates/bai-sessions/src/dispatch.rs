//! What sets the scheduler going (spec §4.1): events first — `session_enqueued`,
//! `session_terminated`, `agent_started` and `do_schedule` trigger a scheduling round, `do_prepare`
//! starts the scheduled sessions — coalesced so that a burst of triggers is one run. The server
//! produces `do_schedule` and `do_prepare` with the reference's global timers (`bai-locks`: about
//! one event per interval cluster-wide); local timers stand in for them in a process that runs
//! alone (tests, embedders without a lock backend).
//!
//! Rounds of different processes exclude each other by the scheduling lock of the database, and
//! a scheduled session is taken for starting by one process only (row locks), so every worker
//! may run these loops; the timers run where the server says (one worker per node), as does the
//! hang-tolerance scanner ([`run_hang_scanner`](crate::run_hang_scanner)), which callers run on
//! their own.

use std::time::Duration;

use bai_events::{Coalesced, Handlers, Trigger, coalescing};
use tokio_util::sync::CancellationToken;

use crate::{Scheduler, Starter};

/// The reference's coalescing rate of scheduler triggers: at most one run every 0.5 s (a lone
/// trigger runs at once), 32 piled-up triggers at once.
const COALESCE_WAIT: Duration = Duration::from_millis(500);
const COALESCE_BATCH: usize = 32;
/// The events the timers stand for, and that ask for a run on the bus.
const SCHEDULE_EVENT: &str = "do_schedule";
const PREPARE_EVENT: &str = "do_prepare";
/// The reference's `do_schedule` and `do_prepare` timers.
pub const SCHEDULE_INTERVAL: Duration = Duration::from_secs(10);
pub const PREPARE_INTERVAL: Duration = Duration::from_secs(10);

/// The triggers of one process's scheduling loops.
#[derive(Clone, Debug)]
pub struct Triggers {
    schedule: Trigger,
    prepare: Trigger,
}

/// The receiving ends, for [`run_dispatcher`].
#[derive(Debug)]
pub struct Bursts {
    schedule: Coalesced,
    prepare: Coalesced,
}

/// A pair of triggers and the bursts they make.
pub fn triggers() -> (Triggers, Bursts) {
    let (schedule, schedule_bursts) = coalescing(COALESCE_WAIT, COALESCE_BATCH);
    let (prepare, prepare_bursts) = coalescing(COALESCE_WAIT, COALESCE_BATCH);
    (
        Triggers { schedule, prepare },
        Bursts {
            schedule: schedule_bursts,
            prepare: prepare_bursts,
        },
    )
}

impl Triggers {
    /// Asks for a scheduling round because of event `cause`.
    pub fn schedule(&self, cause: &'static str) {
        self.schedule.fire(cause);
    }

    /// Asks for the scheduled sessions to be started because of event `cause`.
    pub fn prepare(&self, cause: &'static str) {
        self.prepare.fire(cause);
    }
}

/// The event handlers that trigger the loops.
pub fn trigger_handlers(triggers: &Triggers, into: &mut Handlers) {
    for event in [
        "session_enqueued",
        "session_terminated",
        "agent_started",
        SCHEDULE_EVENT,
    ] {
        let triggers = triggers.clone();
        into.on(event, "dispatcher.schedule", move |_| {
            triggers.schedule(event);
            async { Ok(()) }
        });
    }
    let triggers = triggers.clone();
    into.on(PREPARE_EVENT, "dispatcher.prepare", move |_| {
        triggers.prepare(PREPARE_EVENT);
        async { Ok(()) }
    });
}

/// Runs a scheduling round for every burst of schedule triggers and starts the scheduled
/// sessions for every burst of prepare triggers, until `shutdown`; with `timers` (a process that
/// runs alone: the server leaves them off and runs the global timers itself), also every
/// [`SCHEDULE_INTERVAL`] and [`PREPARE_INTERVAL`].
pub async fn run_dispatcher(
    scheduler: Scheduler,
    starter: Starter,
    bursts: Bursts,
    timers: bool,
    shutdown: CancellationToken,
) {
    let Bursts { schedule, prepare } = bursts;
    let (scheduler, starter) = (&scheduler, &starter);
    let scheduling = run_loop(
        schedule,
        timers.then_some((SCHEDULE_INTERVAL, SCHEDULE_EVENT)),
        &shutdown,
        |cause| async move {
            if let Err(error) = scheduler.schedule_for(cause).await {
                tracing::error!("scheduling round: {error}");
            }
        },
    );
    let preparing = run_loop(
        prepare,
        timers.then_some((PREPARE_INTERVAL, PREPARE_EVENT)),
        &shutdown,
        |cause| async move {
            if let Err(error) = starter.prepare_for(cause).await {
                tracing::error!("starting scheduled sessions: {error}");
            }
        },
    );
    tokio::join!(scheduling, preparing);
}

/// Runs `work` for every burst (with the burst's latest cause) and every tick of `timer` (with
/// the timer's event), one at a time, until `shutdown`.
async fn run_loop<F, Fut>(
    mut bursts: Coalesced,
    timer: Option<(Duration, &'static str)>,
    shutdown: &CancellationToken,
    work: F,
) where
    F: Fn(&'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticks = timer.map(|(every, _)| {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    let timer_event = timer.map_or("", |(_, event)| event);
    loop {
        let cause = tokio::select! {
            () = shutdown.cancelled() => return,
            burst = bursts.next() => match burst {
                Some(burst) => burst.cause,
                None => return,
            },
            () = tick(&mut ticks) => timer_event,
        };
        work(cause).await;
    }
}

/// The next tick, or never without a timer.
async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}
