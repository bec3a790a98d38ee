//! Keys bound to an etcd lease: they live while their owner keeps the lease alive and vanish
//! within the lease's TTL when the owner dies without cleaning up (a SIGKILLed manager node).

use std::time::Duration;

use etcd_client::PutOptions;

use super::{EtcdStore, Scope};
use crate::error::EtcdError;

/// A lease granted by etcd, by its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseId(pub i64);

impl EtcdStore {
    /// Grants a lease of `ttl` (whole seconds, at least one); `key` only names the lease in errors.
    pub async fn grant_lease(&self, key: &str, ttl: Duration) -> Result<LeaseId, EtcdError> {
        let seconds = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let response = self
            .client
            .lease_client()
            .grant(seconds, None)
            .await
            .map_err(|source| self.failed("lease grant", key, source))?;
        Ok(LeaseId(response.id()))
    }

    /// Writes `key` bound to `lease`: it is deleted when the lease expires or is revoked.
    pub async fn put_with_lease(
        &self,
        key: &str,
        value: &str,
        scope: Scope,
        lease: LeaseId,
    ) -> Result<(), EtcdError> {
        let raw = self.raw_key(key, self.write_scope(scope)?)?;
        self.client
            .kv_client()
            .put(raw, value, Some(PutOptions::new().with_lease(lease.0)))
            .await
            .map_err(|source| self.failed("put", key, source))?;
        Ok(())
    }

    /// Renews `lease` once; false when it had expired already (the keys bound to it are gone).
    pub async fn keep_lease_alive(&self, key: &str, lease: LeaseId) -> Result<bool, EtcdError> {
        // Opening the keep-alive stream sends one renewal and reads its answer; an expired lease
        // is answered with a TTL of 0, which the client reports as a keep-alive error.
        match self.client.lease_client().keep_alive(lease.0).await {
            Ok(_) => Ok(true),
            Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(false),
            Err(source) => Err(self.failed("lease keep-alive", key, source)),
        }
    }

    /// Revokes `lease`, deleting the keys bound to it.
    pub async fn revoke_lease(&self, key: &str, lease: LeaseId) -> Result<(), EtcdError> {
        self.client
            .lease_client()
            .revoke(lease.0)
            .await
            .map_err(|source| self.failed("lease revoke", key, source))?;
        Ok(())
    }
}
