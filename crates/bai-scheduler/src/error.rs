//! What can go wrong when computing from the stores.

use bai_db_models::DbError;
use bai_etcd_store::EtcdError;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The caller named a project it is not a member of (or none exists by that name).
    #[error("unknown project {0:?} (or the caller is not a member)")]
    UnknownProject(String),
    /// The caller named a resource group it may not use (or none exists by that name).
    #[error("unknown resource group {0:?} (or not one the caller may use)")]
    UnknownScalingGroup(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("reading etcd {key}: {source}")]
    Etcd {
        key: &'static str,
        #[source]
        source: EtcdError,
    },
}

impl SchedulerError {
    pub(crate) fn etcd(key: &'static str) -> impl FnOnce(EtcdError) -> SchedulerError {
        move |source| SchedulerError::Etcd { key, source }
    }
}
