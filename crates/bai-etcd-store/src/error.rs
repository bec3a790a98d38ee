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
    #[error("keys at {key:?} kept changing while they were being replaced; nothing was written")]
    ReplaceConflict { key: String },
    #[error("no {scope} scope is configured for this client")]
    ScopeNotConfigured { scope: &'static str },
    #[error("the merged scope is for reading; write to the global, scaling-group or node scope")]
    MergedWrite,
}

/// gRPC status codes (a stable part of the gRPC spec) that mean etcd did not serve the request
/// because it is down, unreachable or overloaded, not because the request was wrong.
const GRPC_CANCELLED: i32 = 1;
const GRPC_DEADLINE_EXCEEDED: i32 = 4;
const GRPC_UNAVAILABLE: i32 = 14;

impl EtcdError {
    /// True when etcd could not be reached or did not answer in time (a transport failure, gRPC
    /// `Unavailable`, a deadline exceeded), as opposed to a refused or conflicting request.
    pub fn is_unavailable(&self) -> bool {
        match self {
            EtcdError::Timeout { .. } => true,
            EtcdError::Unreachable { source, .. }
            | EtcdError::Request { source, .. }
            | EtcdError::Transaction { source, .. }
            | EtcdError::WatchBroken { source } => client_error_unavailable(source),
            EtcdError::Conflict { .. }
            | EtcdError::ReplaceConflict { .. }
            | EtcdError::ScopeNotConfigured { .. }
            | EtcdError::MergedWrite => false,
        }
    }
}

/// The same question about the etcd client's own error.
pub fn client_error_unavailable(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code() as i32,
            GRPC_CANCELLED | GRPC_DEADLINE_EXCEEDED | GRPC_UNAVAILABLE
        ),
        _ => false,
    }
}

/// True when some error in `error`'s source chain (itself included) is an etcd error of the kind
/// [`EtcdError::is_unavailable`] means.
pub fn unavailable_in_chain(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |error| error.source()).any(|error| {
        if let Some(error) = error.downcast_ref::<EtcdError>() {
            error.is_unavailable()
        } else if let Some(error) = error.downcast_ref::<etcd_client::Error>() {
            client_error_unavailable(error)
        } else {
            false
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_told_from_refusals() {
        assert!(
            EtcdError::Timeout {
                endpoints: "x".into()
            }
            .is_unavailable()
        );
        let refused = etcd_client::Error::IoError(std::io::ErrorKind::ConnectionRefused.into());
        assert!(client_error_unavailable(&refused));
        let conflict = EtcdError::Conflict { key: "k".into() };
        assert!(!conflict.is_unavailable());
        assert!(!unavailable_in_chain(&conflict));
        let request = EtcdError::Request {
            operation: "get",
            key: "k".into(),
            endpoints: "x".into(),
            source: etcd_client::Error::InvalidArgs("bad".into()),
        };
        assert!(!request.is_unavailable());
    }
}
