//! What sets the scheduler going (spec §4.1): events first — `session_enqueued`,
//! `session_terminated`, `agent_started` and `do_schedule` trigger a scheduling round, `do_prepare`
//! starts the scheduled sessions — coalesced so that a burst of triggers is one run, and a timer
//! as the safety net the reference's global timers are.
//!
//! Rounds of different processes exclude each other by the scheduling lock of the database, and
//! a scheduled session is taken for starting by one process only (row locks), so every worker
//! may run these loops; the timers run where the server says (one worker per node).

use std::time::Duration;

use bai_events::{Coalesced, Handlers, Trigger, coalescing};
use tokio_util::sync::CancellationToken;

use crate::{Scheduler, Starter};

/// The reference's coalescing of scheduler triggers: one run 0.5 s after a burst began, or at
/// once when 32 piled up.
const COALESCE_WAIT: Duration = Duration::from_millis(500);
const COALESCE_BATCH: usize = 32;
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
    /// Asks for a scheduling round.
    pub fn schedule(&self) {
        self.schedule.fire();
    }

    /// Asks for the scheduled sessions to be started.
    pub fn prepare(&self) {
        self.prepare.fire();
    }
}

/// The event handlers that trigger the loops.
pub fn trigger_handlers(triggers: &Triggers, into: &mut Handlers) {
    for event in [
        "session_enqueued",
        "session_terminated",
        "agent_started",
        "do_schedule",
    ] {
        let triggers = triggers.clone();
        into.on(event, "dispatcher.schedule", move |_| {
            triggers.schedule();
            async { Ok(()) }
        });
    }
    let triggers = triggers.clone();
    into.on("do_prepare", "dispatcher.prepare", move |_| {
        triggers.prepare();
        async { Ok(()) }
    });
}

/// Runs a scheduling round for every burst of schedule triggers and starts the scheduled
/// sessions for every burst of prepare triggers, until `shutdown`; with `timers`, also every
/// [`SCHEDULE_INTERVAL`] and [`PREPARE_INTERVAL`].
pub async fn run_dispatcher(
    scheduler: Scheduler,
    starter: Starter,
    bursts: Bursts,
    timers: bool,
    shutdown: CancellationToken,
) {
    let Bursts { schedule, prepare } = bursts;
    let scheduling = run_loop(
        schedule,
        timers.then_some(SCHEDULE_INTERVAL),
        &shutdown,
        || async {
            if let Err(error) = scheduler.schedule().await {
                tracing::error!("scheduling round: {error}");
            }
        },
    );
    let preparing = run_loop(
        prepare,
        timers.then_some(PREPARE_INTERVAL),
        &shutdown,
        || async {
            if let Err(error) = starter.prepare().await {
                tracing::error!("starting scheduled sessions: {error}");
            }
        },
    );
    tokio::join!(scheduling, preparing);
}

/// Runs `work` for every burst and every tick of `timer`, one at a time, until `shutdown`.
async fn run_loop<F, Fut>(
    mut bursts: Coalesced,
    timer: Option<Duration>,
    shutdown: &CancellationToken,
    work: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticks = timer.map(|every| {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            burst = bursts.next() => if burst.is_none() { return },
            () = tick(&mut ticks) => {}
        }
        work().await;
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
