//! What a manager node writes about itself in etcd, as the reference does: the cluster-wide manager
//! status and the node's registration. Unlike the reference, whose `nodes/manager/{id}` outlives a
//! killed node, the server binds its registration to an etcd lease it keeps alive
//! ([`register_node_with_lease`]): a node that dies without cleaning up leaves `nodes/manager/`
//! within [`NODE_LEASE_TTL`].

use std::time::Duration;

use bai_etcd_store::{EtcdError, EtcdStore, LeaseId, Scope};
use tokio_util::sync::CancellationToken;

/// How long a node's registration outlives its last renewal.
pub const NODE_LEASE_TTL: Duration = Duration::from_secs(10);
/// How often a live node renews its lease: three renewals fit in one TTL.
const NODE_LEASE_RENEW_EVERY: Duration = Duration::from_secs(3);

/// The etcd key of the manager status (`running`, `frozen`, ...), shared by every node.
pub const MANAGER_STATUS_KEY: &str = "manager/status";

/// The etcd key of the announcement shown to every user; absent when there is none.
pub const MANAGER_ANNOUNCEMENT_KEY: &str = "manager/announcement";

/// The manager status in etcd `manager/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManagerStatus {
    Terminated,
    Preparing,
    Running,
    Frozen,
}

impl ManagerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Terminated => "terminated",
            Self::Preparing => "preparing",
            Self::Running => "running",
            Self::Frozen => "frozen",
        }
    }

    pub fn parse(value: &str) -> Option<ManagerStatus> {
        match value {
            "terminated" => Some(Self::Terminated),
            "preparing" => Some(Self::Preparing),
            "running" => Some(Self::Running),
            "frozen" => Some(Self::Frozen),
            _ => None,
        }
    }

    /// The status a value of `manager/status` stands for: a missing or unknown value reads as
    /// `terminated`, like the reference.
    pub fn from_etcd(value: Option<&str>) -> ManagerStatus {
        value
            .and_then(ManagerStatus::parse)
            .unwrap_or(ManagerStatus::Terminated)
    }
}

/// The manager status as etcd holds it; a missing or unknown value reads as `terminated`, like the
/// reference.
pub async fn read_manager_status(etcd: &EtcdStore) -> Result<ManagerStatus, EtcdError> {
    Ok(ManagerStatus::from_etcd(
        etcd.get(MANAGER_STATUS_KEY, Scope::Global)
            .await?
            .as_deref(),
    ))
}

/// Writes the manager status for every node.
pub async fn write_manager_status(
    etcd: &EtcdStore,
    status: ManagerStatus,
) -> Result<(), EtcdError> {
    etcd.put(MANAGER_STATUS_KEY, status.as_str(), Scope::Global)
        .await
}

/// The etcd key that says a node is up: `nodes/manager/{node_id}`.
pub fn node_key(node_id: &str) -> String {
    format!("nodes/manager/{node_id}")
}

/// What a node does once when it starts: sets a missing or legacy manager status to `running` (a
/// `frozen` one survives restarts) and registers the node. Returns the status the node starts in.
pub async fn register_node(etcd: &EtcdStore, node_id: &str) -> Result<ManagerStatus, EtcdError> {
    let status = start_status(etcd).await?;
    etcd.put(&node_key(node_id), "up", Scope::Global).await?;
    Ok(status)
}

/// A missing or legacy manager status set to `running`; a `frozen` one kept.
async fn start_status(etcd: &EtcdStore) -> Result<ManagerStatus, EtcdError> {
    let current = etcd
        .get(MANAGER_STATUS_KEY, Scope::Global)
        .await?
        .as_deref()
        .and_then(ManagerStatus::parse);
    let status = match current {
        Some(status @ (ManagerStatus::Running | ManagerStatus::Frozen)) => status,
        _ => {
            write_manager_status(etcd, ManagerStatus::Running).await?;
            ManagerStatus::Running
        }
    };
    Ok(status)
}

/// Removes the node's registration.
pub async fn unregister_node(etcd: &EtcdStore, node_id: &str) -> Result<(), EtcdError> {
    etcd.delete(&node_key(node_id), Scope::Global)
        .await
        .map(|_| ())
}

/// A node's registration bound to an etcd lease.
#[derive(Debug)]
pub struct NodeLease {
    key: String,
    lease: tokio::sync::Mutex<LeaseId>,
}

/// [`register_node`] with the key bound to a fresh lease of [`NODE_LEASE_TTL`]; the node keeps it
/// with [`NodeLease::keep_alive`] and removes it with [`NodeLease::release`].
pub async fn register_node_with_lease(
    etcd: &EtcdStore,
    node_id: &str,
) -> Result<(ManagerStatus, NodeLease), EtcdError> {
    let status = start_status(etcd).await?;
    let key = node_key(node_id);
    let lease = put_leased(etcd, &key).await?;
    Ok((
        status,
        NodeLease {
            key,
            lease: tokio::sync::Mutex::new(lease),
        },
    ))
}

async fn put_leased(etcd: &EtcdStore, key: &str) -> Result<LeaseId, EtcdError> {
    let lease = etcd.grant_lease(key, NODE_LEASE_TTL).await?;
    etcd.put_with_lease(key, "up", Scope::Global, lease).await?;
    Ok(lease)
}

impl NodeLease {
    /// The registration's etcd key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Renews the lease every few seconds until `shutdown`; a lease that expired meanwhile (etcd
    /// unreachable for longer than the TTL) is replaced and the key written again.
    pub async fn keep_alive(&self, etcd: &EtcdStore, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(NODE_LEASE_RENEW_EVERY) => {}
            }
            let mut lease = self.lease.lock().await;
            match etcd.keep_lease_alive(&self.key, *lease).await {
                Ok(true) => continue,
                Ok(false) => match put_leased(etcd, &self.key).await {
                    Ok(renewed) => {
                        tracing::warn!("the lease of {} had expired; registered again", self.key);
                        *lease = renewed;
                    }
                    Err(error) => tracing::warn!("cannot register {} again: {error}", self.key),
                },
                Err(error) => tracing::warn!("cannot renew the lease of {}: {error}", self.key),
            }
        }
    }

    /// Revokes the lease, which removes the registration at once.
    pub async fn release(&self, etcd: &EtcdStore) -> Result<(), EtcdError> {
        let lease = *self.lease.lock().await;
        etcd.revoke_lease(&self.key, lease).await
    }
}
