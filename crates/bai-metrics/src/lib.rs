//! The manager's Prometheus metrics, all named `backendai_manager_*` and described in one place
//! ([`CATALOGUE`]), and the typed functions every crate records them with ([`record`]): HTTP
//! requests, scheduling rounds and decisions, the event consumer, agent RPC calls, agents, the
//! database pools, sessions created. Recording goes through the `metrics` facade, so a crate that
//! records needs no registry handed to it and costs nothing when no recorder is installed (tests,
//! `manager-cli`).
//!
//! With the feature `exporter` (the server binary only), [`exporter`] installs the process-wide
//! recorder (every worker thread of a node records into it) and serves `GET /metrics` in the
//! Prometheus text exposition format as an axum `Router` on a listener of its own.
//!
//! It must not know the stores, the API's routes or the wire formats of Backend.AI: values come in
//! through the [`record`] functions, and every label takes its values from a bounded set (route
//! templates, never raw paths; method, event and status names of fixed catalogues) so that no
//! request can make a new time series. It never records a secret or a call's arguments.

#[cfg(feature = "exporter")]
pub mod exporter;
pub mod record;

/// What kind of value a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric of the catalogue.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

pub const HTTP_REQUESTS: &str = "backendai_manager_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "backendai_manager_http_request_duration_seconds";
pub const SCHEDULER_ROUNDS: &str = "backendai_manager_scheduler_rounds_total";
pub const SCHEDULER_DECISIONS: &str = "backendai_manager_scheduler_decisions_total";
pub const SCHEDULER_PENDING_SESSIONS: &str = "backendai_manager_scheduler_pending_sessions";
pub const SESSIONS_CREATED: &str = "backendai_manager_sessions_created_total";
pub const AGENTS: &str = "backendai_manager_agents";
pub const EVENTS_HANDLED: &str = "backendai_manager_events_handled_total";
pub const EVENT_HANDLER_FAILURES: &str = "backendai_manager_event_handler_failures_total";
pub const EVENTS_REDELIVERED: &str = "backendai_manager_events_redelivered_total";
pub const EVENT_GROUP_LAG: &str = "backendai_manager_event_group_lag";
pub const EVENT_GROUP_PENDING: &str = "backendai_manager_event_group_pending";
pub const AGENT_RPC_CALLS: &str = "backendai_manager_agent_rpc_calls_total";
pub const AGENT_RPC_ERRORS: &str = "backendai_manager_agent_rpc_errors_total";
pub const AGENT_RPC_DURATION: &str = "backendai_manager_agent_rpc_duration_seconds";
pub const DB_POOL_CONNECTIONS: &str = "backendai_manager_db_pool_connections";
pub const DB_POOL_MAX_CONNECTIONS: &str = "backendai_manager_db_pool_max_connections";

/// Every metric the manager records, with its labels and help text.
pub const CATALOGUE: &[Metric] = &[
    Metric {
        name: HTTP_REQUESTS,
        kind: Kind::Counter,
        labels: &["method", "route", "status"],
        help: "API requests answered, by method, route template (`unmatched` for unknown paths) \
               and status code.",
    },
    Metric {
        name: HTTP_REQUEST_DURATION,
        kind: Kind::Histogram,
        labels: &["method", "route"],
        help: "How long API requests took until their response head, by method and route template.",
    },
    Metric {
        name: SCHEDULER_ROUNDS,
        kind: Kind::Counter,
        labels: &["outcome"],
        help: "Scheduling rounds of one resource group: `scheduled` (sessions were scheduled), \
               `unchanged` (nothing could be scheduled), `error` (the round failed).",
    },
    Metric {
        name: SCHEDULER_DECISIONS,
        kind: Kind::Counter,
        labels: &["decision"],
        help: "What scheduling rounds decided for pending sessions: `scheduled`, \
               `failed_predicate` (left pending), `cancelled` (pending timeout or a failure that \
               cancels).",
    },
    Metric {
        name: SCHEDULER_PENDING_SESSIONS,
        kind: Kind::Gauge,
        labels: &["scaling_group"],
        help: "Sessions left PENDING in a resource group after its last scheduling round.",
    },
    Metric {
        name: SESSIONS_CREATED,
        kind: Kind::Counter,
        labels: &[],
        help: "Sessions enqueued through `POST /session` (and its aliases).",
    },
    Metric {
        name: AGENTS,
        kind: Kind::Gauge,
        labels: &["status"],
        help: "Agents in the database by status, read when /metrics is scraped.",
    },
    Metric {
        name: EVENTS_HANDLED,
        kind: Kind::Counter,
        labels: &["event", "handler"],
        help: "Consumed events a handler finished successfully, by event and handler.",
    },
    Metric {
        name: EVENT_HANDLER_FAILURES,
        kind: Kind::Counter,
        labels: &["event", "handler"],
        help: "Failed runs of an event handler (each retry counts), by event and handler.",
    },
    Metric {
        name: EVENTS_REDELIVERED,
        kind: Kind::Counter,
        labels: &["how"],
        help: "Entries delivered again: `own_pending` (left pending by this consumer before a \
               restart) or `claimed` (taken over from an idle consumer).",
    },
    Metric {
        name: EVENT_GROUP_LAG,
        kind: Kind::Gauge,
        labels: &["group"],
        help: "Entries of the event stream a consumer group has not read yet (XINFO GROUPS \
               `lag`), read when /metrics is scraped.",
    },
    Metric {
        name: EVENT_GROUP_PENDING,
        kind: Kind::Gauge,
        labels: &["group"],
        help: "Entries a consumer group has read and not acknowledged (XINFO GROUPS `pending`), \
               read when /metrics is scraped.",
    },
    Metric {
        name: AGENT_RPC_CALLS,
        kind: Kind::Counter,
        labels: &["method"],
        help: "Agent RPC calls made, by method.",
    },
    Metric {
        name: AGENT_RPC_ERRORS,
        kind: Kind::Counter,
        labels: &["method", "error"],
        help: "Agent RPC calls that failed, by method and kind of failure.",
    },
    Metric {
        name: AGENT_RPC_DURATION,
        kind: Kind::Histogram,
        labels: &["method"],
        help: "How long agent RPC calls took, answered or not, by method.",
    },
    Metric {
        name: DB_POOL_CONNECTIONS,
        kind: Kind::Gauge,
        labels: &["worker", "state"],
        help: "PostgreSQL connections of a worker's pool: `in_use` or `idle`, read when /metrics \
               is scraped.",
    },
    Metric {
        name: DB_POOL_MAX_CONNECTIONS,
        kind: Kind::Gauge,
        labels: &["worker"],
        help: "The most connections a worker's PostgreSQL pool opens (pool-size + max-overflow).",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_unique_and_suffixed_by_kind() {
        let mut names: Vec<&str> = CATALOGUE.iter().map(|metric| metric.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len(), "duplicate metric names");
        for metric in CATALOGUE {
            assert!(
                metric.name.starts_with("backendai_manager_"),
                "{}",
                metric.name
            );
            assert_eq!(
                metric.name.ends_with("_total"),
                metric.kind == Kind::Counter,
                "{}: counters, and only counters, end in _total",
                metric.name
            );
            if metric.kind == Kind::Histogram {
                assert!(metric.name.ends_with("_seconds"), "{}", metric.name);
            }
            assert!(!metric.help.is_empty());
        }
    }
}
