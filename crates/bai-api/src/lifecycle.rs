//! What a manager node does once when it starts and stops (worker 0 only): repair the manager
//! status and register the node in etcd, as the reference does.

use bai_etcd_store::{EtcdError, Scope};

use crate::context::{ApiContext, MANAGER_STATUS_KEY, ManagerStatus};

/// The etcd key that says this node is up: `nodes/manager/{instance_id}`.
pub fn node_key(instance_id: &str) -> String {
    format!("nodes/manager/{instance_id}")
}

/// The instance id the node registers under: `i-{hostname}` (the reference asks the cloud metadata
/// service first; this server does not, see docs/compat.md).
pub fn instance_id() -> String {
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("i-{hostname}")
}

/// Sets a missing or legacy manager status to `running` (a `frozen` one survives restarts) and
/// registers the node. Returns the status the node starts in.
pub async fn start_node(ctx: &ApiContext, instance_id: &str) -> Result<ManagerStatus, EtcdError> {
    let etcd = ctx.etcd();
    let current = etcd
        .get(MANAGER_STATUS_KEY, Scope::Global)
        .await?
        .as_deref()
        .and_then(ManagerStatus::parse);
    let status = match current {
        Some(status @ (ManagerStatus::Running | ManagerStatus::Frozen)) => status,
        _ => {
            ctx.set_manager_status(ManagerStatus::Running).await?;
            ManagerStatus::Running
        }
    };
    etcd.put(&node_key(instance_id), "up", Scope::Global)
        .await?;
    Ok(status)
}

/// Removes the node's registration.
pub async fn stop_node(ctx: &ApiContext, instance_id: &str) -> Result<(), EtcdError> {
    ctx.etcd()
        .delete(&node_key(instance_id), Scope::Global)
        .await
        .map(|_| ())
}
