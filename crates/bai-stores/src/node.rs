//! What a manager node writes about itself in etcd, as the reference does: the cluster-wide manager
//! status and the node's registration.

use bai_etcd_store::{EtcdError, EtcdStore, Scope};

/// The etcd key of the manager status (`running`, `frozen`, ...), shared by every node.
pub const MANAGER_STATUS_KEY: &str = "manager/status";

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
}

/// The manager status as etcd holds it; a missing or unknown value reads as `terminated`, like the
/// reference.
pub async fn read_manager_status(etcd: &EtcdStore) -> Result<ManagerStatus, EtcdError> {
    Ok(etcd
        .get(MANAGER_STATUS_KEY, Scope::Global)
        .await?
        .as_deref()
        .and_then(ManagerStatus::parse)
        .unwrap_or(ManagerStatus::Terminated))
}

/// Writes the manager status for every node.
pub async fn write_manager_status(
    etcd: &EtcdStore,
    status: ManagerStatus,
) -> Result<(), EtcdError> {
    etcd.put(MANAGER_STATUS_KEY, status.as_str(), Scope::Global)
        .await
}

/// The etcd key that says a node is up: `nodes/manager/{instance_id}`.
pub fn node_key(instance_id: &str) -> String {
    format!("nodes/manager/{instance_id}")
}

/// The instance id a node registers under: `i-{hostname}` (the reference asks the cloud metadata
/// service first; this server does not, see docs/compat.md).
pub fn instance_id() -> String {
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("i-{hostname}")
}

/// What a node does once when it starts: sets a missing or legacy manager status to `running` (a
/// `frozen` one survives restarts) and registers the node. Returns the status the node starts in.
pub async fn register_node(
    etcd: &EtcdStore,
    instance_id: &str,
) -> Result<ManagerStatus, EtcdError> {
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
    etcd.put(&node_key(instance_id), "up", Scope::Global)
        .await?;
    Ok(status)
}

/// Removes the node's registration.
pub async fn unregister_node(etcd: &EtcdStore, instance_id: &str) -> Result<(), EtcdError> {
    etcd.delete(&node_key(instance_id), Scope::Global)
        .await
        .map(|_| ())
}
