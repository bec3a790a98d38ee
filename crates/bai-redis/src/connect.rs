//! Connections from etcd `config/redis`: a single server (`addr`) or Sentinel (`sentinel`,
//! `service_name`), with the password and the connect timeout of `redis_helper_config`.
//!
//! Every handle's connection sits in a [`DbConnection`] whose client can be replaced while the
//! handle is in use: when `config/redis` changes, [`Redis::switch_to`] connects to the new server
//! and puts the new clients in, so every clone of every handle sends its next command there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use bai_etcd_store::shared_config::RedisConfig;
use fred::prelude::{Builder, Client, ClientLike, Config, ReconnectPolicy, Server, ServerConfig};

use crate::{ImageDb, LiveDb, LockDb, RateLimitDb, RedisDb, StatDb, StreamDb};

/// Why Redis could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum RedisConnectError {
    #[error(
        "etcd config/redis names no Redis server (set config/redis/addr or config/redis/sentinel)"
    )]
    NotConfigured,
    #[error("Redis {target} (database {db}): {source}")]
    Connect {
        target: String,
        db: RedisDb,
        #[source]
        source: fred::error::Error,
    },
    #[error("Redis {target} (database {db}) did not answer within {seconds} s")]
    Timeout {
        target: String,
        db: RedisDb,
        seconds: f64,
    },
}

impl RedisConnectError {
    /// True when the server could not be reached in time (not when it is not configured, or
    /// refused the password).
    pub fn is_unavailable(&self) -> bool {
        match self {
            RedisConnectError::NotConfigured => false,
            RedisConnectError::Connect { source, .. } => crate::fred_error_unavailable(source),
            RedisConnectError::Timeout { .. } => true,
        }
    }
}

/// How long a command may take, queueing while the connection is re-established included: while
/// Redis is down, callers (API requests among them) hear so within this bound instead of waiting
/// for it to come back. Blocking reads get their `BLOCK` time on top
/// ([`crate::StreamDb`]).
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnecting after a connection broke: at once, then doubling from 100 ms up to 2 s between
/// attempts, forever (0 attempts: no limit), so that service resumes within 2 s of Redis's
/// return.
const RECONNECT_MIN_DELAY_MS: u32 = 100;
const RECONNECT_MAX_DELAY_MS: u32 = 2_000;

/// How long a replaced client stays open after a switch, so that the commands already handed to it
/// are answered before it is closed.
const SWITCH_GRACE: Duration = Duration::from_secs(5);

/// The databases a manager worker uses, one connection each. Cheap to clone (the clones share the
/// connections, and a switch to another server reaches every clone).
#[derive(Clone, Debug)]
pub struct Redis {
    pub stat: StatDb,
    pub rate_limit: RateLimitDb,
    pub live: LiveDb,
    pub image: ImageDb,
    /// For short stream commands (adding, acknowledging); blocking readers open their own
    /// ([`Redis::dedicated_stream`]).
    pub stream: StreamDb,
    switch: Arc<Switch>,
}

/// What a switch needs besides the five handles: the server in use (its settings), the
/// connections of the dedicated streams, and a lock so that two switches never interleave.
#[derive(Debug)]
struct Switch {
    config: Mutex<RedisConfig>,
    dedicated: Mutex<Vec<Weak<Slot>>>,
    in_progress: tokio::sync::Mutex<()>,
}

impl Redis {
    /// Connects to every database the manager uses; fails on the first that does not answer
    /// (closing those that did).
    pub async fn connect(config: &RedisConfig) -> Result<Redis, RedisConnectError> {
        let mut connected = Vec::new();
        let mut connect = async |db| {
            let connection = DbConnection::connect(config, db).await?;
            connected.push(connection.clone());
            Ok::<_, RedisConnectError>(connection)
        };
        let connecting = async {
            Ok::<_, RedisConnectError>(Redis {
                stat: StatDb::over(connect(RedisDb::Stat).await?),
                rate_limit: RateLimitDb::over(connect(RedisDb::RateLimit).await?),
                live: LiveDb::over(connect(RedisDb::Live).await?),
                image: ImageDb::over(connect(RedisDb::Image).await?),
                stream: StreamDb::over(connect(RedisDb::Stream).await?),
                switch: Arc::new(Switch {
                    config: Mutex::new(config.clone()),
                    dedicated: Mutex::default(),
                    in_progress: tokio::sync::Mutex::default(),
                }),
            })
        };
        let result = connecting.await;
        if result.is_err() {
            for connection in &connected {
                connection.close().await;
            }
        }
        result
    }

    /// The settings of the server in use (the last switch's, or those connected with).
    pub fn config(&self) -> RedisConfig {
        self.switch
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A stream connection of its own, for a blocking reader, on the server in use; it follows
    /// this value's switches.
    pub async fn dedicated_stream(&self) -> Result<StreamDb, RedisConnectError> {
        Ok(StreamDb::over(self.dedicated(RedisDb::Stream).await?))
    }

    /// The lock database on a connection of its own, on the server in use; it follows this
    /// value's switches.
    pub async fn dedicated_lock(&self) -> Result<LockDb, RedisConnectError> {
        Ok(LockDb::over(self.dedicated(RedisDb::Lock).await?))
    }

    /// A connection of its own to `db`, registered to follow switches while it is in use.
    async fn dedicated(&self, db: RedisDb) -> Result<DbConnection, RedisConnectError> {
        let _no_switch_meanwhile = self.switch.in_progress.lock().await;
        let connection = DbConnection::connect(&self.config(), db).await?;
        let mut dedicated = self
            .switch
            .dedicated
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        dedicated.retain(|slot| slot.strong_count() > 0);
        dedicated.push(Arc::downgrade(&connection.slot));
        Ok(connection)
    }

    /// Moves every handle (and every clone of it, and the dedicated streams still in use) to the
    /// server `config` names. All new connections are made first: when one fails, nothing is
    /// switched and the old server stays in use. The old clients are closed a few seconds after the
    /// switch, when the commands already sent to them have been answered.
    pub async fn switch_to(&self, config: &RedisConfig) -> Result<(), RedisConnectError> {
        let _one_at_a_time = self.switch.in_progress.lock().await;
        let mut targets = vec![
            self.stat.connection().clone(),
            self.rate_limit.connection().clone(),
            self.live.connection().clone(),
            self.image.connection().clone(),
            self.stream.connection().clone(),
        ];
        targets.extend(
            self.switch
                .dedicated
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .filter_map(Weak::upgrade)
                .map(|slot| DbConnection { slot }),
        );
        targets.retain(|target| !target.slot.closed.load(Ordering::Acquire));
        let mut fresh = Vec::with_capacity(targets.len());
        for target in &targets {
            match connect_db(config, target.slot.db).await {
                Ok(client) => fresh.push(client),
                Err(error) => {
                    for client in &fresh {
                        quit(client).await;
                    }
                    return Err(error);
                }
            }
        }
        let replaced: Vec<Client> = targets
            .iter()
            .zip(fresh)
            .map(|(target, client)| target.replace(client))
            .collect();
        *self
            .switch
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = config.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SWITCH_GRACE).await;
            for client in &replaced {
                quit(client).await;
            }
        });
        Ok(())
    }

    /// Closes the connections (those that broke already have nothing left to close).
    pub async fn close(&self) {
        for connection in [
            self.stat.connection(),
            self.rate_limit.connection(),
            self.live.connection(),
            self.image.connection(),
            self.stream.connection(),
        ] {
            connection.close().await;
        }
    }
}

/// The connection of one handle to one database; its client is replaced by a switch. Clones share
/// it.
#[derive(Clone, Debug)]
pub(crate) struct DbConnection {
    slot: Arc<Slot>,
}

#[derive(Debug)]
struct Slot {
    db: RedisDb,
    client: RwLock<Client>,
    /// Closed on purpose: a switch leaves it closed.
    closed: AtomicBool,
}

impl DbConnection {
    pub(crate) async fn connect(
        config: &RedisConfig,
        db: RedisDb,
    ) -> Result<DbConnection, RedisConnectError> {
        Ok(DbConnection {
            slot: Arc::new(Slot {
                db,
                client: RwLock::new(connect_db(config, db).await?),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// The client to send the next command with (a cheap clone: fred's clients share their
    /// connection). A command sent with it finishes there even if a switch comes meanwhile.
    pub(crate) fn current(&self) -> Client {
        self.slot
            .client
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, client: Client) -> Client {
        let mut current = self
            .slot
            .client
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *current, client)
    }

    pub(crate) async fn close(&self) {
        self.slot.closed.store(true, Ordering::Release);
        quit(&self.current()).await;
    }
}

pub(crate) async fn quit(client: &Client) {
    // QUIT on a connection that already broke has nothing left to do.
    let _ = client.quit().await;
}

/// Where `config` points, for messages (never the password): the address of the single server, or
/// the Sentinels and the service name.
pub fn describe_target(config: &RedisConfig) -> String {
    match (&config.addr, &config.sentinel) {
        (_, Some(sentinels)) => format!(
            "Sentinel {} (service {})",
            sentinels
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            config.service_name.as_deref().unwrap_or("")
        ),
        (Some(addr), None) => addr.to_string(),
        (None, None) => "(no address in etcd config/redis)".to_owned(),
    }
}

/// One connection to database `db`, reconnecting with backoff when it breaks later.
pub(crate) async fn connect_db(
    config: &RedisConfig,
    db: RedisDb,
) -> Result<Client, RedisConnectError> {
    let server = match (&config.addr, &config.sentinel) {
        (_, Some(sentinels)) => ServerConfig::Sentinel {
            hosts: sentinels
                .iter()
                .map(|hp| Server::new(hp.host.as_str(), hp.port))
                .collect(),
            service_name: config.service_name.clone().unwrap_or_default(),
        },
        (Some(addr), None) => ServerConfig::new_centralized(addr.host.as_str(), addr.port),
        (None, None) => return Err(RedisConnectError::NotConfigured),
    };
    let fred_config = Config {
        server,
        password: config.password.clone().filter(|p| !p.is_empty()),
        database: Some(db.index()),
        ..Config::default()
    };
    let connect_timeout = Duration::from_secs_f64(config.helper.socket_connect_timeout.max(0.1));
    let client = Builder::from_config(fred_config)
        .with_connection_config(|connection| {
            connection.connection_timeout = connect_timeout;
            connection.internal_command_timeout = COMMAND_TIMEOUT;
        })
        .with_performance_config(|performance| {
            performance.default_command_timeout = COMMAND_TIMEOUT;
        })
        .set_policy(ReconnectPolicy::new_exponential(
            0,
            RECONNECT_MIN_DELAY_MS,
            RECONNECT_MAX_DELAY_MS,
            2,
        ))
        .build()
        .map_err(|source| RedisConnectError::Connect {
            target: describe_target(config),
            db,
            source,
        })?;
    let seconds = connect_timeout.as_secs_f64() + 1.0;
    match tokio::time::timeout(Duration::from_secs_f64(seconds), client.init()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(source)) => Err(RedisConnectError::Connect {
            target: describe_target(config),
            db,
            source,
        }),
        Err(_) => {
            quit(&client).await;
            Err(RedisConnectError::Timeout {
                target: describe_target(config),
                db,
                seconds,
            })
        }
    }
}
