//! The Backend.AI manager for Rust services that embed it: every library crate of the workspace,
//! re-exported under one name, in its layer. Depend on this crate alone and reach the parts you
//! need through it; the layers say what may use what (a lower layer never knows a higher one):
//!
//! ```text
//! foundation   config      manager.toml: typed, validated (bai-config)
//!              rpc_keys    CURVE keypairs for agent RPC (bai-rpc-keys)
//! stores       etcd        the /sorna/{namespace}/ layout and the shared config (bai-etcd-store)
//!              db          PostgreSQL: entities, the 24.03 schema, typed queries (bai-db-models)
//!              redis       Redis: the reference's databases and keys, typed (bai-redis)
//!              stores      all three connected as one `Stores`, node registration (bai-stores)
//!              cache       per-process caches kept coherent through PostgreSQL NOTIFY (bai-cache)
//! bus          events      the Redis stream `events`: msgpack, catalogue, consume/subscribe (bai-events)
//!              locks       distributed locks (pg_advisory, filelock, redlock, etcd), global timers (bai-locks)
//!              agent_rpc   Callosum RPC to agents over ZeroMQ, with CURVE (bai-agent-rpc)
//!              storage_proxy  the manager's client of the storage proxies (bai-storage-proxy)
//!              metrics     Prometheus metrics: catalogue, recording, /metrics (bai-metrics)
//! services     registry    container-registry scanner (bai-registry-scanner)
//!              scheduler   resource slots, quota headroom (bai-scheduler)
//!              agents      the agent registry: heartbeats, status, lost check (bai-agents)
//!              sessions    the session lifecycle: kernel events, status rules (bai-sessions)
//! peers        agent_sim   simulated agents for tests and load (bai-agent-sim)
//! api          api         the HTTP API as an axum `Router` over an `ApiContext` (bai-api)
//! runtime      server      the manager's process runtime: workers, signals, TLS (bai-server)
//! ```
//!
//! A service that serves the manager API inside its own axum app connects its own
//! [`stores::Stores`], builds an [`api::ApiContext`] over them and merges [`api::router`] into its
//! app; `examples/embed_api.rs` does exactly that, and `examples/list_users.rs` reads the shared
//! config and the user database without any HTTP.
//!
//! This crate must not hold logic of its own: it only re-exports, so that embedders and our own
//! binaries use the very same code.

pub use bai_agent_rpc as agent_rpc;
pub use bai_agent_sim as agent_sim;
pub use bai_agents as agents;
pub use bai_api as api;
pub use bai_cache as cache;
pub use bai_config as config;
pub use bai_db_models as db;
pub use bai_etcd_store as etcd;
pub use bai_events as events;
pub use bai_locks as locks;
pub use bai_metrics as metrics;
pub use bai_redis as redis;
pub use bai_registry_scanner as registry;
pub use bai_rpc_keys as rpc_keys;
pub use bai_scheduler as scheduler;
pub use bai_server as server;
pub use bai_sessions as sessions;
pub use bai_storage_proxy as storage_proxy;
pub use bai_stores as stores;
