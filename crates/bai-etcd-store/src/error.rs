//! What can go wrong talking to etcd, each variant saying which endpoint, key or scope.

/// An etcd operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("cannot reach etcd at {endpoints}: {source}")]
    Unreachable {
        endpoints: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd at {endpoints} did not answer in time")]
    Timeout { endpoints: String },
    #[error("etcd {operation} of {key:?} failed (etcd at {endpoints}): {source}")]
    Request {
        operation: &'static str,
        key: String,
        endpoints: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd transaction in namespace {namespace:?} failed: {source}")]
    Transaction {
        namespace: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("the etcd watch broke: {source}")]
    WatchBroken {
        #[source]
        source: etcd_client::Error,
    },
    #[error("keys below {key:?} changed while they were being moved; nothing was moved")]
    Conflict { key: String },
    #[error("no {scope} scope is configured for this client")]
    ScopeNotConfigured { scope: &'static str },
    #[error("the merged scope is for reading; write to the global, scaling-group or node scope")]
    MergedWrite,
}
