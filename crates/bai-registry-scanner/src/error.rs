//! Why a scan could not run at all. Problems with one registry, repository, tag or platform do not
//! stop a scan: they are items of its [`ScanSummary`](crate::ScanSummary).

use bai_db_models::DbError;

/// A scan that could not start, or whose results could not be saved. Database errors are boxed:
/// they are large and rare.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(
        "unknown registry {name:?}; the registries in etcd config/docker/registry are: {known}"
    )]
    UnknownRegistry { name: String, known: String },
    #[error("no registry is configured in etcd config/docker/registry")]
    NoRegistries,
    #[error("{argument:?} is not an image reference of registry {registry:?}: {reason}")]
    InvalidReference {
        argument: String,
        registry: String,
        reason: String,
    },
    #[error("reading the image catalogue: {0}")]
    Catalogue(#[source] Box<DbError>),
    #[error("saving the scan of registry {registry:?}: {source}")]
    Save {
        registry: String,
        #[source]
        source: Box<DbError>,
    },
}
