//! etcd's lock service with a lease, the reference's `etcd` distributed lock (`etcd-client-py`'s
//! `with_lock`): a lease of the lock's time to live, kept alive while it is wanted, and the lock
//! `name` taken with it. The lock name is used as it is, outside `/sorna/{namespace}/`, as the
//! reference's client uses it, so that every manager of the cluster (ours and the reference's)
//! contends for the same lock. A holder that dies stops keeping its lease alive: etcd deletes the
//! lock's key when the lease expires, one time to live later at the latest.
//!
//! The connection is the caller's own, without the request timeout of [`crate::EtcdStore`]: taking
//! a lock waits as long as the caller allows.

use std::time::Duration;

use etcd_client::{
    Client, ConnectOptions, LeaseKeepAliveStream, LeaseKeeper, LockOptions, LockResponse,
};

use crate::EtcdTarget;
use crate::error::EtcdError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// HTTP/2 pings on the connection: a vanished etcd is noticed within about 15 s.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// gRPC's `NOT_FOUND`: etcd's answer for a lease that expired already.
const GRPC_NOT_FOUND: i32 = 5;
/// A request other than taking the lock that gets no answer within this long has failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to etcd for locks.
#[derive(Clone)]
pub struct EtcdLocks {
    client: Client,
    endpoints: String,
}

impl std::fmt::Debug for EtcdLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdLocks")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// A lease granted for a lock, with the stream that keeps it alive.
pub struct EtcdLease {
    id: i64,
    keeper: LeaseKeeper,
    answers: LeaseKeepAliveStream,
}

impl std::fmt::Debug for EtcdLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdLease")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl EtcdLease {
    pub fn id(&self) -> i64 {
        self.id
    }
}

impl EtcdLocks {
    /// Connects to the endpoints of `target` (its namespace plays no part in lock names).
    pub async fn connect(target: &EtcdTarget) -> Result<EtcdLocks, EtcdError> {
        let endpoints = target.endpoints.join(", ");
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT)
            .with_keep_alive_while_idle(true);
        if let Some((user, password)) = &target.credentials {
            options = options.with_user(user.clone(), password.clone());
        }
        let connecting = Client::connect(target.endpoints.clone(), Some(options));
        let client = tokio::time::timeout(CONNECT_TIMEOUT + REQUEST_TIMEOUT, connecting)
            .await
            .map_err(|_| EtcdError::Timeout {
                endpoints: endpoints.clone(),
            })?
            .map_err(|source| EtcdError::Unreachable {
                endpoints: endpoints.clone(),
                source,
            })?;
        Ok(EtcdLocks { client, endpoints })
    }

    /// Grants a lease of `ttl` seconds for lock `name` and opens its keep-alive stream.
    pub async fn grant(&self, name: &str, ttl: i64) -> Result<EtcdLease, EtcdError> {
        let mut client = self.client.clone();
        let granting = async {
            let id = client.lease_grant(ttl, None).await?.id();
            let (keeper, answers) = client.lease_keep_alive(id).await?;
            Ok::<_, etcd_client::Error>(EtcdLease {
                id,
                keeper,
                answers,
            })
        };
        self.bounded("lease grant", name, granting).await
    }

    /// Takes lock `name` with the lease `lease_id`, waiting at most `wait`: the key that holds it (for
    /// [`EtcdLocks::unlock`]), or `None` when someone else still held it after `wait` (this
    /// request then leaves the queue).
    pub async fn lock(
        &self,
        name: &str,
        lease_id: i64,
        wait: Duration,
    ) -> Result<Option<Vec<u8>>, EtcdError> {
        let mut client = self.client.clone();
        let options = LockOptions::new().with_lease(lease_id);
        match tokio::time::timeout(wait, client.lock(name, Some(options))).await {
            Ok(Ok(response)) => Ok(Some(held_key(&response))),
            Ok(Err(source)) => Err(self.failed("lock", name, source)),
            Err(_) => Ok(None),
        }
    }

    /// Renews `lease`: its remaining time to live in seconds, 0 when it had expired already (the
    /// lock it held is gone).
    pub async fn keep_alive(&self, name: &str, lease: &mut EtcdLease) -> Result<i64, EtcdError> {
        let renewing = async {
            lease.keeper.keep_alive().await?;
            match lease.answers.message().await? {
                Some(answer) => Ok(answer.ttl()),
                None => Err(etcd_client::Error::LeaseKeepAliveError(
                    "the keep-alive stream ended".to_owned(),
                )),
            }
        };
        self.bounded("lease keep-alive", name, renewing).await
    }

    /// Releases the lock held by `key` and revokes `lease` (a lease that expired already is no
    /// error).
    pub async fn unlock(
        &self,
        name: &str,
        key: Vec<u8>,
        lease: EtcdLease,
    ) -> Result<(), EtcdError> {
        let mut client = self.client.clone();
        self.bounded("unlock", name, client.unlock(key)).await?;
        self.revoke(name, lease).await
    }

    /// Revokes `lease` (a lock waited for with it leaves the queue, one held with it is released).
    pub async fn revoke(&self, name: &str, lease: EtcdLease) -> Result<(), EtcdError> {
        let mut client = self.client.clone();
        match self
            .bounded("lease revoke", name, client.lease_revoke(lease.id))
            .await
        {
            Ok(_) => Ok(()),
            Err(EtcdError::Request {
                source: etcd_client::Error::GRpcStatus(status),
                ..
            }) if i32::from(status.code()) == GRPC_NOT_FOUND => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn bounded<T>(
        &self,
        operation: &'static str,
        name: &str,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, EtcdError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(source)) => Err(self.failed(operation, name, source)),
            Err(_) => Err(EtcdError::Timeout {
                endpoints: self.endpoints.clone(),
            }),
        }
    }

    fn failed(&self, operation: &'static str, name: &str, source: etcd_client::Error) -> EtcdError {
        EtcdError::Request {
            operation,
            key: name.to_owned(),
            endpoints: self.endpoints.clone(),
            source,
        }
    }
}

fn held_key(response: &LockResponse) -> Vec<u8> {
    response.key().to_vec()
}
