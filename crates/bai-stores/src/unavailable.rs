//! Which store, if any, an error says is down or unreachable: each store's crate decides for its
//! own errors; this is the one place that asks all three.

/// A store that an error says is down or unreachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnavailableStore {
    PostgreSql,
    Redis,
    Etcd,
}

impl UnavailableStore {
    /// The store that some error in `error`'s source chain (itself included) says is unavailable.
    pub fn of(error: &(dyn std::error::Error + 'static)) -> Option<UnavailableStore> {
        if bai_db_models::unavailable_in_chain(error) {
            Some(UnavailableStore::PostgreSql)
        } else if bai_redis::unavailable_in_chain(error) {
            Some(UnavailableStore::Redis)
        } else if bai_etcd_store::unavailable_in_chain(error) {
            Some(UnavailableStore::Etcd)
        } else {
            None
        }
    }
}

/// Whether `error` says some store is unavailable, as a plain function (the event consumer's
/// `is_outage`).
pub fn is_store_outage(error: &(dyn std::error::Error + 'static)) -> bool {
    UnavailableStore::of(error).is_some()
}

impl std::fmt::Display for UnavailableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UnavailableStore::PostgreSql => "PostgreSQL",
            UnavailableStore::Redis => "Redis",
            UnavailableStore::Etcd => "etcd",
        })
    }
}
