//! Connections from etcd `config/redis`: a single server (`addr`) or Sentinel (`sentinel`,
//! `service_name`), with the password and the connect timeout of `redis_helper_config`.

use std::time::Duration;

use bai_etcd_store::shared_config::RedisConfig;
use fred::prelude::{Builder, Client, ClientLike, Config, ReconnectPolicy, Server, ServerConfig};

use crate::{ImageDb, LiveDb, RateLimitDb, RedisDb, StatDb, StreamDb};

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

/// The databases a manager worker uses, one connection each. Cheap to clone (the clones share the
/// connections).
#[derive(Clone, Debug)]
pub struct Redis {
    pub stat: StatDb,
    pub rate_limit: RateLimitDb,
    pub live: LiveDb,
    pub image: ImageDb,
    /// For short stream commands (adding, acknowledging); blocking readers open their own.
    pub stream: StreamDb,
}

impl Redis {
    /// Connects to every database the manager uses; fails on the first that does not answer.
    pub async fn connect(config: &RedisConfig) -> Result<Redis, RedisConnectError> {
        Ok(Redis {
            stat: StatDb::connect(config).await?,
            rate_limit: RateLimitDb::connect(config).await?,
            live: LiveDb::connect(config).await?,
            image: ImageDb::connect(config).await?,
            stream: StreamDb::connect(config).await?,
        })
    }

    /// Closes the connections (those that broke already have nothing left to close).
    pub async fn close(&self) {
        for client in [
            self.stat.client(),
            self.rate_limit.client(),
            self.live.client(),
            self.image.client(),
            self.stream.client(),
        ] {
            quit(client).await;
        }
    }
}

pub(crate) async fn quit(client: &Client) {
    // QUIT on a connection that already broke has nothing left to do.
    let _ = client.quit().await;
}

/// Where `config` points, for messages (never the password).
fn describe(config: &RedisConfig) -> String {
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
        (None, None) => "(none)".to_owned(),
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
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build()
        .map_err(|source| RedisConnectError::Connect {
            target: describe(config),
            db,
            source,
        })?;
    let seconds = connect_timeout.as_secs_f64() + 1.0;
    match tokio::time::timeout(Duration::from_secs_f64(seconds), client.init()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(source)) => Err(RedisConnectError::Connect {
            target: describe(config),
            db,
            source,
        }),
        Err(_) => {
            quit(&client).await;
            Err(RedisConnectError::Timeout {
                target: describe(config),
                db,
                seconds,
            })
        }
    }
}
