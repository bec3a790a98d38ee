//! Session-level advisory locks of PostgreSQL (`pg_advisory_lock`), the reference's
//! `pg_advisory` distributed lock: each lock is held by one connection of its own, opened for it
//! and never taken from the API's pool, so that a process waiting for a lock never holds back a
//! request.
//!
//! A lock lives as long as the backend that took it: `pg_advisory_unlock` releases it, and so does
//! the end of the connection. A holder killed outright has its socket closed by its kernel, and
//! PostgreSQL ends the backend (and releases the lock) at once. A holder whose host vanishes is
//! found out by the server's TCP keepalives set on the connection ([`KEEPALIVE_IDLE`], then
//! [`KEEPALIVE_COUNT`] probes [`KEEPALIVE_INTERVAL`] apart: [`DEAD_PEER_BOUND`] in all), after which
//! PostgreSQL ends the backend; a backend that is waiting for a lock checks its client every
//! [`CLIENT_CHECK_INTERVAL`] (PostgreSQL 14 and later).

use std::time::Duration;

use bai_config::DbConfig;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::{self, Connection};

use crate::error::DbError;

/// Idle time before the server probes a silent lock connection.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// Time between the server's probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Unanswered probes after which the server drops the connection.
pub const KEEPALIVE_COUNT: u32 = 3;
/// How long a lock of a holder whose host vanished outlives it, at most: the server's keepalives
/// give up after this long without an answer (`KEEPALIVE_IDLE + KEEPALIVE_COUNT × KEEPALIVE_INTERVAL`).
pub const DEAD_PEER_BOUND: Duration = Duration::from_secs(25);
/// How often a backend waiting for a lock checks that its client is still there.
pub const CLIENT_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// How long to wait for PostgreSQL before saying it cannot be reached.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLSTATE `lock_not_available`: the wait for the lock ran past `lock_timeout`.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// One connection to the database of `[db]`, for advisory locks only.
#[derive(Debug)]
pub struct AdvisoryLockConnection {
    connection: PgConnection,
}

impl AdvisoryLockConnection {
    /// Opens the connection with the server-side keepalives above.
    pub async fn connect(db: &DbConfig) -> Result<AdvisoryLockConnection, DbError> {
        let millis = |duration: Duration| duration.as_millis().to_string();
        let options = PgConnectOptions::new()
            .host(&db.addr.host)
            .port(db.addr.port)
            .username(&db.user)
            .password(&db.password)
            .database(&db.name)
            .application_name("bai-manager lock")
            .options([
                ("tcp_keepalives_idle", KEEPALIVE_IDLE.as_secs().to_string()),
                (
                    "tcp_keepalives_interval",
                    KEEPALIVE_INTERVAL.as_secs().to_string(),
                ),
                ("tcp_keepalives_count", KEEPALIVE_COUNT.to_string()),
                // Unacknowledged data gives up on a dead peer as fast as the probes do.
                ("tcp_user_timeout", millis(DEAD_PEER_BOUND)),
            ]);
        let connecting = PgConnection::connect_with(&options);
        let connect_error = |source: sea_orm::RuntimeErr| DbError::Connect {
            addr: db.addr.to_string(),
            database: db.name.clone(),
            user: db.user.clone(),
            source: sea_orm::DbErr::Conn(source),
        };
        let mut connection = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| {
                connect_error(sea_orm::RuntimeErr::Internal(format!(
                    "no answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )))
            })?
            .map_err(|source| connect_error(sea_orm::RuntimeErr::SqlxError(source)))?;
        // `client_connection_check_interval` exists from PostgreSQL 14 on.
        sqlx::query(
            "SELECT set_config('client_connection_check_interval', $1, false) \
             WHERE current_setting('server_version_num')::int >= 140000",
        )
        .bind(format!("{}ms", CLIENT_CHECK_INTERVAL.as_millis()))
        .execute(&mut connection)
        .await
        .map_err(query_error("setting up an advisory-lock connection"))?;
        Ok(AdvisoryLockConnection { connection })
    }

    /// `pg_advisory_lock(lock_id)`, waiting at most `wait` (PostgreSQL's `lock_timeout`; none when
    /// `None`): `true` once held, `false` when another backend still held it after `wait`.
    pub async fn lock(&mut self, lock_id: i64, wait: Option<Duration>) -> Result<bool, DbError> {
        let context = format!("taking advisory lock {lock_id}");
        let lock_timeout = wait.map_or_else(
            || "0".to_owned(),
            |wait| format!("{}ms", wait.as_millis().max(1)),
        );
        sqlx::query("SELECT set_config('lock_timeout', $1, false)")
            .bind(lock_timeout)
            .execute(&mut self.connection)
            .await
            .map_err(query_error(context.clone()))?;
        match sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(lock_id)
            .execute(&mut self.connection)
            .await
        {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(error))
                if error.code().as_deref() == Some(LOCK_NOT_AVAILABLE) =>
            {
                Ok(false)
            }
            Err(error) => Err(query_error(context)(error)),
        }
    }

    /// `pg_advisory_unlock(lock_id)`: `false` when this connection did not hold it.
    pub async fn unlock(&mut self, lock_id: i64) -> Result<bool, DbError> {
        sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
            .bind(lock_id)
            .fetch_one(&mut self.connection)
            .await
            .map_err(query_error(format!("releasing advisory lock {lock_id}")))
    }

    /// Whether the connection still answers (a lock it held is gone when it does not).
    pub async fn ping(&mut self) -> Result<(), DbError> {
        self.connection
            .ping()
            .await
            .map_err(query_error("checking an advisory-lock connection"))
    }

    /// Ends the connection (PostgreSQL releases whatever locks it still held).
    pub async fn close(self) {
        // A connection that broke already has nothing left to close.
        let _ = self.connection.close().await;
    }
}

fn query_error(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> DbError {
    let context = context.into();
    move |source| DbError::Query {
        context,
        source: sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(source)),
    }
}

/// Ends the backends that hold advisory lock `lock_id` in the database of `db` (as an operator's
/// `pg_terminate_backend` would): how many were ended.
#[cfg(feature = "testing")]
pub async fn terminate_lock_holders(
    db: &sea_orm::DatabaseConnection,
    lock_id: i64,
) -> Result<u64, DbError> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    // A bigint key is stored as classid = high 32 bits, objid = low 32 bits, objsubid = 1.
    let rows = db
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_terminate_backend(pid) FROM pg_locks \
             WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND ((classid::bigint << 32) | objid::bigint) = $1",
            [lock_id.into()],
        ))
        .await
        .map_err(DbError::query(format!(
            "ending the holders of advisory lock {lock_id}"
        )))?;
    Ok(rows.len() as u64)
}
