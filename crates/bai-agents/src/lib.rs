//! The agent registry: what the manager knows about its agents and keeps true from the event bus.
//! Heartbeats insert, update or revive an agent's row under a row lock and record when it was last
//! seen (Redis `agent.last_seen`), the slot units it reports (etcd `config/resource_slots`) and the
//! images it holds (Redis database 3); `agent_started` and `agent_terminated` change its status;
//! the lost check reports agents whose heartbeats stopped, once per loss.
//!
//! [`AgentRpcCache`] keeps one RPC connection (`bai-agent-rpc`) per agent, made from its row on
//! first use and shared by all callers; a registry given the cache ([`AgentRegistry::with_rpc_cache`])
//! drops an agent's connection when a heartbeat changes its address, public key or version, and
//! when the agent restarts, terminates or is lost.
//!
//! [`ErrorLogCleaner`] deletes the error logs older than etcd `config/logs/error/retention` on
//! `do_log_cleanup` ([`error_log_handlers`]); [`AgentErrorCollector`] files the agents'
//! `agent_error` events as error logs ([`agent_error_handlers`]).
//!
//! It must not know HTTP or manager.toml (it is handed the heartbeat timeout), and it spawns no
//! tasks: [`handlers`] go into a consumer of `bai-events`, [`run_lost_check`] is a future the
//! server runs. SQL goes through `bai-db-models`, Redis through `bai-redis`.

mod error_logs;
mod registry;
mod rpc_cache;

pub use error_logs::{
    AgentErrorCollector, AgentErrorLogError, DEFAULT_RETENTION, ErrorLogCleaner,
    ErrorLogCleanupError, RETENTION_KEY, Retention, agent_error_handlers, error_log_handlers,
};
pub use registry::{AgentRegistry, UnknownGroupWarnings, handlers, run_lost_check};
pub use rpc_cache::{AgentRpcCache, AgentRpcError, DEFAULT_REVALIDATE_AFTER};
