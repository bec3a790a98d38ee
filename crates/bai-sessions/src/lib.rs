//! The session lifecycle (spec `scheduler-agent-rpc.md` §4): what moves a compute session from
//! PENDING to RUNNING and through termination.
//!
//! [`status`] holds the reference's status rules: the allowed transitions of sessions and kernels
//! and the status a session derives from its kernels. [`Lifecycle`] applies the agents' kernel
//! events (`kernel_pulling`, `kernel_creating`, `kernel_started`, `kernel_terminated`) under
//! those rules and announces `session_started` and `session_terminated`; its [`handlers`] go
//! into a consumer of `bai-events`.
//!
//! [`Scheduler`] runs the scheduling rounds: per resource group, one transaction under the
//! cluster-wide scheduling lock reads the agents and pending sessions, `bai_scheduler::round`
//! decides in memory, and the decisions are written in the same transaction. [`Starter`] moves
//! the scheduled sessions to PREPARING and calls `create_kernels` on their agents; a session that
//! cannot start is cancelled with its slots released. [`run_dispatcher`] runs both on the
//! [`trigger_handlers`]' events (`do_schedule`/`do_prepare` come from the global timers of
//! `bai-locks`; local timers only for a process that runs alone). [`Destroyer`] destroys a session as the reference
//! allows in each status, through `destroy_kernel` on its agents; [`HangScanner`] destroys the
//! sessions that stayed PREPARING or TERMINATING longer than etcd's hang tolerance allows.
//! [`Restarter`] restarts a running session's kernels through `restart_kernel` on their agents.
//! [`IdleChecker`] ends the sessions its checkers find idle (network timeout, session lifetime,
//! utilization; etcd `config/idle`), through `do_terminate_session` and the [`Destroyer`], and
//! [`idle_check_report`] reads back what they reported.
//! A BATCH session's command is started on its agent when it becomes RUNNING ([`trigger_batch`],
//! 24.03 agents only); [`BatchResults`] records how it ended and destroys the session.
//! [`Scaler`] keeps each model-service endpoint's number of INFERENCE sessions on `do_scale`
//! (routes created and their sessions enqueued, extra sessions destroyed, endpoints being
//! destroyed marked DESTROYED once their sessions are gone) and moves the routes with their
//! sessions' events and the agents' health reports.
//! [`pending`] makes the rows of a new PENDING session, for `POST /session` and the [`Scaler`].
//! [`feed`] carries the bus's session, kernel and background-task events to the API's
//! server-sent-event clients: each session's labels read once, one bounded ring per worker.
//!
//! No session waits for good on an agent that failed it: a failed or timed-out `create_kernels`
//! cancels the session, a lost agent cancels the sessions it was starting and ends the kernels it
//! was destroying, and a kernel that starts for a session already over is destroyed on its agent.
//!
//! It must not know HTTP or manager.toml. SQL goes through `bai-db-models`, Redis through
//! `bai-redis`, agents are called through `bai-agents`' RPC cache; decisions about slots and
//! placement are `bai-scheduler`'s.

mod batch;
mod destroy;
mod dispatch;
pub mod feed;
mod hang;
mod idle;
mod lifecycle;
pub mod pending;
mod restart;
mod scale;
mod schedule;
mod start;
pub mod status;

pub use batch::{
    BatchError, BatchResults, BatchTrigger, TASK_FINISHED, batch_handlers, trigger_batch,
};
pub use destroy::{DestroyError, DestroyRequest, Destroyer, FORCE_TERMINATED, USER_REQUESTED};
pub use dispatch::{
    Bursts, PREPARE_INTERVAL, SCHEDULE_INTERVAL, Triggers, run_dispatcher, trigger_handlers,
    triggers,
};
pub use feed::{EventFeed, Feeder, Notice, event_feed};
pub use hang::{HANG_TIMEOUT, HangError, HangScanner, run_hang_scanner};
pub use idle::{
    CHECK_INTERVAL, IDLE_SESSION_LIFETIME, IDLE_TIMEOUT, IDLE_UTILIZATION, IdleCheckReport,
    IdleChecker, IdleError, IdleVerdict, KILLED_BY_EVENT, idle_check_report, idle_handlers,
    idle_triggers, run_idle_checker,
};
pub use lifecycle::{
    Lifecycle, LifecycleError, RecalculateError, UsageRecalculation, handlers, recalculate_usage,
    recompute_agent_occupancy,
};
pub use restart::{KernelRestart, RestartError, RestartReport, Restarter};
pub use scale::{
    CreationFailure, SERVICE_MAX_RETRIES, SERVICE_SCALED_DOWN, ScaleError, ScaleRound, Scaler,
    run_scaler, scale_handlers, scale_triggers,
};
pub use schedule::{ScheduleError, ScheduleReport, Scheduler};
pub use start::{CLAIM_TTL, DEFAULT_CREATE_TIMEOUT, STALL_GRACE, StartError, Starter};
