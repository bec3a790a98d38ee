//! Whether a registry of etcd `config/docker/registry` answers its API root (`GET /v2/`) with its
//! credentials, a bearer token fetched when it asks for one: the reachability check of
//! `manager-cli doctor`. It reads nothing else from the registry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bai_etcd_store::shared_config::ContainerRegistry;
use tokio::sync::Semaphore;

use crate::client::{Credentials, RegistryClient};

/// What `GET /v2/` answered with: the registry is reachable and accepts its credentials.
#[derive(Clone, Debug)]
pub struct ProbeReply {
    /// The URL asked.
    pub url: String,
    pub status: u16,
    /// From sending the request (token included) to the answer.
    pub elapsed: Duration,
}

/// Why a registry's `/v2/` could not be read; the message names the URL and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(String);

/// `GET /v2/` of `registry`, authenticated as a scan would be; every request may take `timeout`.
pub async fn probe(
    registry: &ContainerRegistry,
    timeout: Duration,
) -> Result<ProbeReply, ProbeError> {
    let credentials = match (&registry.username, &registry.password) {
        (Some(username), Some(password)) if !username.is_empty() => Some(Credentials {
            username: username.clone(),
            password: password.clone(),
        }),
        _ => None,
    };
    let client = RegistryClient::new(
        &registry.url,
        credentials,
        registry.ssl_verify,
        timeout,
        Arc::new(Semaphore::new(1)),
    )
    .map_err(ProbeError)?;
    let url = client.url("v2/");
    let started = Instant::now();
    client.learn_scheme().await;
    // The API root needs no repository: a token for the empty scope is what `docker login` asks.
    let reply = client
        .get_ok(&url, "application/json", Some(""))
        .await
        .map_err(|error| ProbeError(error.to_string()))?;
    Ok(ProbeReply {
        url: url.to_string(),
        status: reply.status.as_u16(),
        elapsed: started.elapsed(),
    })
}
