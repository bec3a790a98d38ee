//! Connecting to the database `[db]` of manager.toml names.

use std::time::Duration;

use bai_config::DbConfig;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

use crate::error::DbError;

/// How long a query waits for a pooled connection, (re)connecting included. While PostgreSQL is
/// down the pool keeps trying to connect until then, so this bounds how long a request waits
/// before it hears so (the API answers 503). A busy pool that frees no connection within it
/// fails the same way. (sea-orm's `connect_timeout` sets the same sqlx setting; connecting at
/// start-up is bounded by it too.)
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// The connection URL of `[db]`, user and password percent-encoded.
pub fn database_url(db: &DbConfig) -> String {
    format!(
        "postgres://{}:{}@{}/{}",
        encode(&db.user),
        encode(&db.password),
        db.addr,
        encode(&db.name)
    )
}

/// A connection pool sized by `[db] pool-size` and `max-overflow`.
pub async fn connect(db: &DbConfig) -> Result<DatabaseConnection, DbError> {
    let max = match db.max_overflow {
        -1 => 1024,
        overflow => db.pool_size.saturating_add(overflow.max(0)),
    };
    let mut options = ConnectOptions::new(database_url(db));
    options
        .max_connections(u32::try_from(max).unwrap_or(u32::MAX))
        .min_connections(0)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(db.pool_pre_ping)
        .sqlx_logging(false);
    if db.pool_recycle > 0.0 {
        options.max_lifetime(Duration::from_secs_f64(db.pool_recycle));
    }
    Database::connect(options)
        .await
        .map_err(|source| DbError::Connect {
            addr: db.addr.to_string(),
            database: db.name.clone(),
            user: db.user.clone(),
            source,
        })
}

/// `SELECT 1` on a pooled connection: whether PostgreSQL answers, for the API's readiness check.
pub async fn ping(db: &DatabaseConnection) -> Result<(), DbError> {
    db.execute_unprepared("SELECT 1")
        .await
        .map(drop)
        .map_err(DbError::query("SELECT 1".to_owned()))
}

/// How a pool's connections are used right now, for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections handed out to queries.
    pub in_use: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// The most the pool opens (`pool-size` + `max-overflow`).
    pub max: u32,
}

/// The usage of `db`'s pool; `db` is a pool [`connect`] made (sea-orm panics on a connection that
/// is not PostgreSQL).
pub fn pool_usage(db: &DatabaseConnection) -> PoolUsage {
    let pool = db.get_postgres_connection_pool();
    let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
    PoolUsage {
        in_use: pool.size().saturating_sub(idle),
        idle,
        max: pool.options().get_max_connections(),
    }
}

/// Everything but unreserved URL characters is encoded, so any password works in the URL.
const USERINFO_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(text: &str) -> String {
    utf8_percent_encode(text, USERINFO_SAFE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_password_are_percent_encoded() {
        assert_eq!(encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
        assert_eq!(encode("develove"), "develove");
        assert_eq!(encode("a-b.c_d~e f%é"), "a-b.c_d~e%20f%25%C3%A9");
    }
}
