//! The Redis connections of a worker, from etcd `config/redis` (single server or Sentinel), one per
//! logical database the reference uses.

use std::time::Duration;

use bai_etcd_store::shared_config::RedisConfig;
use fred::prelude::{Builder, Client, ClientLike, Config, ReconnectPolicy, Server, ServerConfig};

/// The logical databases (`common/defs.py` of the reference).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedisDb {
    /// Per-keypair call statistics (`kp:{AK}:num_queries`, `kp:{AK}:last_call_time`).
    Stat = 0,
    /// Rate-limit windows, one sorted set per access key.
    RateLimit = 1,
    /// Agent liveness and scheduler marks.
    Live = 2,
    /// Which agents hold which image (image canonical name -> set of agent ids).
    Image = 3,
}

impl RedisDb {
    fn name(self) -> &'static str {
        match self {
            Self::Stat => "stat",
            Self::RateLimit => "ratelimit",
            Self::Live => "live",
            Self::Image => "image",
        }
    }
}

/// Why Redis could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum RedisConnectError {
    #[error(
        "etcd config/redis names no Redis server (set config/redis/addr or config/redis/sentinel)"
    )]
    NotConfigured,
    #[error("Redis {target} (database {db}, {name}): {source}")]
    Connect {
        target: String,
        db: u8,
        name: &'static str,
        #[source]
        source: fred::error::Error,
    },
    #[error("Redis {target} (database {db}, {name}) did not answer within {seconds} s")]
    Timeout {
        target: String,
        db: u8,
        name: &'static str,
        seconds: f64,
    },
}

/// The connections one worker holds.
#[derive(Clone, Debug)]
pub struct RedisClients {
    pub stat: Client,
    pub rate_limit: Client,
    pub live: Client,
    pub image: Client,
}

impl RedisClients {
    pub async fn connect(config: &RedisConfig) -> Result<RedisClients, RedisConnectError> {
        Ok(RedisClients {
            stat: connect_one(config, RedisDb::Stat).await?,
            rate_limit: connect_one(config, RedisDb::RateLimit).await?,
            live: connect_one(config, RedisDb::Live).await?,
            image: connect_one(config, RedisDb::Image).await?,
        })
    }

    pub async fn close(&self) {
        for client in [&self.stat, &self.rate_limit, &self.live, &self.image] {
            // Closing a connection that already broke has nothing left to do.
            let _ = client.quit().await;
        }
    }
}

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

async fn connect_one(config: &RedisConfig, db: RedisDb) -> Result<Client, RedisConnectError> {
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
        database: Some(db as u8),
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
            db: db as u8,
            name: db.name(),
            source,
        })?;
    let seconds = connect_timeout.as_secs_f64() + 1.0;
    match tokio::time::timeout(Duration::from_secs_f64(seconds), client.init()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(source)) => Err(RedisConnectError::Connect {
            target: describe(config),
            db: db as u8,
            name: db.name(),
            source,
        }),
        Err(_) => {
            let _ = client.quit().await;
            Err(RedisConnectError::Timeout {
                target: describe(config),
                db: db as u8,
                name: db.name(),
                seconds,
            })
        }
    }
}
