//! One RPC connection per agent, shared by every caller (spec §3.4, without the reference's
//! connection per call).
//!
//! The first call for an agent reads its `agents` row (`addr`, `public_key`, `version`) and
//! connects; later calls reuse the connection, which carries many calls at once. The registry
//! forgets an agent's connection when a heartbeat changes its address, public key or version, and
//! when the agent restarts, terminates or is lost; the next call connects anew. Callers that see
//! the connection break ([`AgentRpcCache::forget_if_broken`]) make the next call reconnect too.
//! Since one manager process of all handles each heartbeat, every cache also reads a connection's
//! row again after [`DEFAULT_REVALIDATE_AFTER`] of use and reconnects when it changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bai_agent_rpc::{AgentConnection, AgentTarget, AgentVersion, RpcClient, RpcError};
use bai_db_models::DbError;
use bai_db_models::queries::agent_listing::{self, AgentScope};
use bai_rpc_keys::{PublicKey, RpcKeyError};
use sea_orm::DatabaseConnection;

/// Why no connection to an agent could be had.
#[derive(Debug, thiserror::Error)]
pub enum AgentRpcError {
    #[error("agent {0} does not exist")]
    UnknownAgent(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("agent {agent}: its public key in the agents table is not a CURVE key: {source}")]
    BadPublicKey { agent: String, source: RpcKeyError },
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

/// How long a connection is used before the agent's row is read again to see whether the agent
/// moved: heartbeats are handled by one manager process of all, whose registry drops its own
/// connection at once; the other processes (and workers) notice by this check.
pub const DEFAULT_REVALIDATE_AFTER: Duration = Duration::from_secs(5);

/// A connection and what it was made from.
#[derive(Debug)]
struct Cached {
    connection: Arc<AgentConnection>,
    /// `(addr, public_key, version)` of the row.
    made_from: (String, Option<String>, String),
    checked_at: Instant,
}

/// An agent's slot: its connection once made. The lock serialises connecting, so that concurrent
/// first callers share one connection.
type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// The connections to agents of one manager process (or worker).
#[derive(Debug)]
pub struct AgentRpcCache {
    db: DatabaseConnection,
    client: RpcClient,
    revalidate_after: Duration,
    slots: Mutex<HashMap<String, Slot>>,
}

impl AgentRpcCache {
    /// `client` holds the manager keypair (`rpc-auth-manager-keypair`) and the handshake timeout.
    pub fn new(db: DatabaseConnection, client: RpcClient) -> AgentRpcCache {
        AgentRpcCache {
            db,
            client,
            revalidate_after: DEFAULT_REVALIDATE_AFTER,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Reads an agent's row again after `after` of use (default [`DEFAULT_REVALIDATE_AFTER`]).
    pub fn with_revalidate_after(mut self, after: Duration) -> AgentRpcCache {
        self.revalidate_after = after;
        self
    }

    fn slot(&self, agent_id: &str) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(slots.entry(agent_id.to_owned()).or_default())
    }

    /// The connection to `agent_id`, made from its `agents` row on first use, and again when the
    /// row (read at most every `revalidate_after`) names another address, key or version.
    pub async fn get(&self, agent_id: &str) -> Result<Arc<AgentConnection>, AgentRpcError> {
        let slot = self.slot(agent_id);
        let mut held = slot.lock().await;
        if let Some(cached) = held.as_ref()
            && cached.checked_at.elapsed() < self.revalidate_after
        {
            return Ok(Arc::clone(&cached.connection));
        }
        let Some(row) = agent_listing::by_id(&self.db, agent_id, &AgentScope::default()).await?
        else {
            *held = None;
            return Err(AgentRpcError::UnknownAgent(agent_id.to_owned()));
        };
        let made_from = (
            row.addr.clone(),
            row.public_key.clone(),
            row.version.clone(),
        );
        if let Some(cached) = held.as_mut()
            && cached.made_from == made_from
        {
            cached.checked_at = Instant::now();
            return Ok(Arc::clone(&cached.connection));
        }
        // A new agent, or one that moved: the old connection closes once its callers are done.
        *held = None;
        let public_key =
            match row.public_key.as_deref() {
                None | Some("") => None,
                Some(text) => Some(PublicKey::from_z85(text).map_err(|source| {
                    AgentRpcError::BadPublicKey {
                        agent: agent_id.to_owned(),
                        source,
                    }
                })?),
            };
        let target = AgentTarget {
            agent_id: agent_id.to_owned(),
            addr: row.addr,
            public_key,
        };
        let connection = self.client.connect(&target).await?;
        let connection = Arc::new(AgentConnection::new(
            connection,
            AgentVersion::parse(&row.version),
        ));
        *held = Some(Cached {
            connection: Arc::clone(&connection),
            made_from,
            checked_at: Instant::now(),
        });
        Ok(connection)
    }

    /// Drops the cached connection to `agent_id` (it closes once its last caller is done); the
    /// next [`get`](Self::get) reads the row again and reconnects.
    pub fn forget(&self, agent_id: &str) {
        let removed = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(agent_id);
        if removed.is_some() {
            tracing::debug!(agent.id = %agent_id, "agent RPC connection dropped");
        }
    }

    /// Runs `call` on the connection to `agent_id`; an error that broke the connection makes the
    /// next call reconnect ([`forget_if_broken`](Self::forget_if_broken)).
    pub async fn call<T, F, Fut>(&self, agent_id: &str, call: F) -> Result<T, AgentRpcError>
    where
        F: FnOnce(Arc<AgentConnection>) -> Fut,
        Fut: Future<Output = Result<T, RpcError>>,
    {
        let connection = self.get(agent_id).await?;
        call(connection).await.map_err(|error| {
            self.forget_if_broken(agent_id, &error);
            AgentRpcError::from(error)
        })
    }

    /// Forgets the connection when `error` says it is broken (its socket failed or closed), so
    /// that the next call reconnects; timeouts and the agent's own errors keep it.
    pub fn forget_if_broken(&self, agent_id: &str, error: &RpcError) {
        if matches!(
            error,
            RpcError::Closed { .. } | RpcError::Send { .. } | RpcError::Socket { .. }
        ) {
            self.forget(agent_id);
        }
    }

    /// Whether a connection to `agent_id` is cached (made and not forgotten).
    pub fn is_connected(&self, agent_id: &str) -> bool {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(agent_id)
            .cloned();
        slot.is_some_and(|slot| slot.try_lock().is_ok_and(|held| held.is_some()))
    }
}
