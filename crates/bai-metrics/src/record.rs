//! Recording the metrics of the catalogue. Each function takes what its labels may be, so that a
//! caller cannot make an unbounded label: static names of fixed catalogues, route templates, small
//! enums. Without an installed recorder every call is a no-op.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::{
    AGENT_RPC_CALLS, AGENT_RPC_DURATION, AGENT_RPC_ERRORS, AGENTS, DB_POOL_CONNECTIONS,
    DB_POOL_MAX_CONNECTIONS, EVENT_GROUP_LAG, EVENT_GROUP_PENDING, EVENT_HANDLER_FAILURES,
    EVENTS_HANDLED, EVENTS_REDELIVERED, HTTP_REQUEST_DURATION, HTTP_REQUESTS, SCHEDULER_DECISIONS,
    SCHEDULER_PENDING_SESSIONS, SCHEDULER_ROUNDS, SESSIONS_CREATED,
};

/// The route label of a request no route matched.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The methods that keep their name as a label; any other is `other`.
const KNOWN_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

/// One answered API request. `route` is the route template that matched (`/session/{name}`), never
/// the path the client sent; `None` when no route matched.
pub fn http_request(method: &str, route: Option<&str>, status: u16, elapsed: Duration) {
    let method = KNOWN_METHODS
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("other");
    let route = route.unwrap_or(UNMATCHED_ROUTE).to_owned();
    counter!(
        HTTP_REQUESTS,
        "method" => method,
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    histogram!(HTTP_REQUEST_DURATION, "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
}

/// How one resource group's scheduling round ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundOutcome {
    /// At least one session was scheduled.
    Scheduled,
    /// The round ran and scheduled nothing.
    Unchanged,
    /// The round failed.
    Error,
}

pub fn scheduler_round(outcome: RoundOutcome) {
    let outcome = match outcome {
        RoundOutcome::Scheduled => "scheduled",
        RoundOutcome::Unchanged => "unchanged",
        RoundOutcome::Error => "error",
    };
    counter!(SCHEDULER_ROUNDS, "outcome" => outcome).increment(1);
}

/// What a round decided for a pending session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Scheduled,
    /// A predicate failed: the session stays pending.
    FailedPredicate,
    /// Pending timeout, or a failure that cancels the session.
    Cancelled,
}

pub fn scheduler_decisions(decision: Decision, sessions: usize) {
    if sessions == 0 {
        return;
    }
    let decision = match decision {
        Decision::Scheduled => "scheduled",
        Decision::FailedPredicate => "failed_predicate",
        Decision::Cancelled => "cancelled",
    };
    counter!(SCHEDULER_DECISIONS, "decision" => decision).increment(as_u64(sessions));
}

/// The sessions still pending in `scaling_group` after its round.
pub fn pending_sessions(scaling_group: &str, sessions: usize) {
    gauge!(SCHEDULER_PENDING_SESSIONS, "scaling_group" => scaling_group.to_owned())
        .set(sessions as f64);
}

/// A session enqueued by the API.
pub fn session_created() {
    counter!(SESSIONS_CREATED).increment(1);
}

/// How many agents are in `status` (a name of the agents' status enum).
pub fn agents(status: &'static str, agents: u64) {
    gauge!(AGENTS, "status" => status).set(agents as f64);
}

/// A consumed event's handler finished.
pub fn event_handled(event: &'static str, handler: &'static str) {
    counter!(EVENTS_HANDLED, "event" => event, "handler" => handler).increment(1);
}

/// A consumed event's handler failed once (it may be retried).
pub fn event_handler_failed(event: &'static str, handler: &'static str) {
    counter!(EVENT_HANDLER_FAILURES, "event" => event, "handler" => handler).increment(1);
}

/// How entries came to be delivered again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redelivery {
    /// Left pending by this consumer before it restarted.
    OwnPending,
    /// Taken over from a consumer that held them idle.
    Claimed,
}

pub fn events_redelivered(how: Redelivery, entries: usize) {
    if entries == 0 {
        return;
    }
    let how = match how {
        Redelivery::OwnPending => "own_pending",
        Redelivery::Claimed => "claimed",
    };
    counter!(EVENTS_REDELIVERED, "how" => how).increment(as_u64(entries));
}

/// What `XINFO GROUPS` says of a consumer group; `lag` is `None` when Redis cannot tell.
pub fn event_group(group: &str, lag: Option<u64>, pending: u64) {
    if let Some(lag) = lag {
        gauge!(EVENT_GROUP_LAG, "group" => group.to_owned()).set(lag as f64);
    }
    gauge!(EVENT_GROUP_PENDING, "group" => group.to_owned()).set(pending as f64);
}

/// One agent RPC call of `method`; `error` names the kind of failure of a call that failed.
pub fn agent_rpc_call(method: &'static str, elapsed: Duration, error: Option<&'static str>) {
    counter!(AGENT_RPC_CALLS, "method" => method).increment(1);
    histogram!(AGENT_RPC_DURATION, "method" => method).record(elapsed.as_secs_f64());
    if let Some(error) = error {
        counter!(AGENT_RPC_ERRORS, "method" => method, "error" => error).increment(1);
    }
}

/// The connections of worker `worker`'s PostgreSQL pool.
pub fn db_pool(worker: usize, in_use: u32, idle: u32, max: u32) {
    let worker = worker.to_string();
    gauge!(DB_POOL_CONNECTIONS, "worker" => worker.clone(), "state" => "in_use")
        .set(f64::from(in_use));
    gauge!(DB_POOL_CONNECTIONS, "worker" => worker.clone(), "state" => "idle").set(f64::from(idle));
    gauge!(DB_POOL_MAX_CONNECTIONS, "worker" => worker).set(f64::from(max));
}

fn as_u64(count: usize) -> u64 {
    u64::try_from(count).unwrap_or(u64::MAX)
}
