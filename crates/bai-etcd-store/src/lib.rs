//! The cluster-wide configuration in etcd, in exactly the reference's layout: every key under
//! `/sorna/{namespace}/`, optional scope prefixes (scaling group, node), percent-quoted key pieces,
//! values stored as the text Python's `str()` gives, and the "value at a node" under the empty key.
//! [`EtcdStore`] reads and writes it; [`tree`] converts between flat keys and nested trees.
//! [`SharedConfig`] is the typed, validated view of the manager's `config/...` and `volumes/...`;
//! [`SharedConfigWatcher`] keeps it current ([`LiveSharedConfig`]) from etcd's watch events.
//!
//! This crate must not know manager.toml beyond `[etcd]` (it takes a [`EtcdTarget`]), decide what
//! keys outside the shared configuration's schema mean (that is for the crates that read them),
//! print, or log values: etcd holds passwords.

mod error;
mod live;
pub mod lock;
mod quote;
pub mod shared_config;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tree;

pub use error::{EtcdError, client_error_unavailable, unavailable_in_chain};
pub use live::{KeysWatcher, LiveKeys, LiveSharedConfig, SharedConfigWatcher};
pub use quote::{quote, unquote};
pub use shared_config::{Severity, SharedConfig, SharedConfigError, SharedConfigProblem};
pub use store::{
    EtcdStore, EtcdTarget, LeaseId, MAX_TXN_OPS, NodeCondition, Scope, ScopePrefixes, WatchEvent,
};
pub use tree::{ConfigNode, ConfigTree};
