//! The manager's stores, connected: etcd (with the shared configuration read from it and kept
//! current from its watch), the PostgreSQL pool and the Redis connections (moved to another server
//! when etcd `config/redis` changes), as one [`Stores`] value that every long-lived part of a
//! manager node (the HTTP API, event consumers, the scheduler) is built from. It also owns what a
//! node writes about itself in etcd: the cluster-wide manager status (`manager/status`) and the
//! node's registration (`nodes/manager/{node id}`, bound to a lease the node keeps alive).
//!
//! It must not know HTTP or the API's wire formats, must not read manager.toml or the environment
//! (it is handed a `ManagerConfig`), and talks to each store only through that store's crate
//! (`bai-etcd-store`, `bai-db-models`, `bai-redis`). It never logs connection strings or passwords.

mod node;
mod stores;
mod unavailable;

pub use node::{
    MANAGER_ANNOUNCEMENT_KEY, MANAGER_STATUS_KEY, ManagerStatus, NODE_LEASE_TTL, NodeLease,
    node_key, read_manager_status, register_node, register_node_with_lease, unregister_node,
    write_manager_status,
};
pub use stores::{Stores, StoresError};
pub use unavailable::{UnavailableStore, is_store_outage};
