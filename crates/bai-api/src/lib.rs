//! The manager's HTTP API, wire-compatible with Backend.AI 24.03: the middleware chain in the
//! reference's order (problem+json errors, `X-BackendAI-Version`, HMAC-SHA256 request signatures,
//! per-keypair rate limits in Redis, the manager-status gate, CORS, `Server: BackendAI`) and the
//! REST routes, built as an axum `Router` over one worker's [`ApiContext`]. Agents are called over
//! RPC only through the worker's `bai_agents::AgentRpcCache` the embedder hands the context.
//!
//! It must not write SQL (every query lives in `bai-db-models`), must not read manager.toml or the
//! environment (it is handed a `ManagerConfig`), must not bind sockets or manage processes (that is
//! `bai-server`), and must never put a secret (secret keys, passwords, connection strings) into a
//! log line or an error body.

pub mod auth;
pub mod cache;
pub mod context;
pub mod error;
pub mod gql;
pub mod json;
pub mod params;
pub mod routes;
#[cfg(feature = "testing")]
pub mod testing;
pub mod version;

pub use bai_stores::ManagerStatus;
pub use cache::ApiCaches;
pub use context::ApiContext;
pub use error::{ApiError, ErrorKind};
pub use routes::spec::openapi_document;
pub use routes::{Access, Route, StatusGate, router, routes};
