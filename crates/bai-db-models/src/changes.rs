//! Telling every manager process that data it may keep in memory changed: the keypairs, users,
//! projects, domains, resource policies, presets and resource groups that the API caches. A writer
//! of ours calls [`announce`] after its write committed (`NOTIFY` on [`CHANNEL`]); every process
//! follows the channel with a [`ChangeListener`] on a connection of its own.
//!
//! PostgreSQL delivers a notification to every session listening when it is sent, and to no one
//! else: a listener that lost its connection cannot know what it missed, so [`ChangeListener::next`]
//! reports the reconnection itself as a change ([`Change::Reconnected`]).

use std::time::Duration;

use bai_config::DbConfig;
use sea_orm::sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::connect::database_url;
use crate::error::DbError;

/// The notification channel; the payload names what changed, for logs only.
pub const CHANNEL: &str = "bai_manager_changes";
/// The longest payload sent: PostgreSQL refuses payloads of 8,000 bytes and more.
const MAX_PAYLOAD: usize = 200;
/// How long the listener waits for PostgreSQL before saying it cannot be reached.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Announces that `what` (e.g. `"keypairs"`) changed, to every process listening. Inside a
/// transaction the announcement goes out when it commits, and not at all if it rolls back.
pub async fn announce(db: &impl ConnectionTrait, what: &str) -> Result<(), DbError> {
    notify(db, what)
        .await
        .map_err(DbError::query(format!("announcing a change of {what}")))
}

pub(crate) async fn notify(db: &impl ConnectionTrait, what: &str) -> Result<(), sea_orm::DbErr> {
    let payload: String = what.chars().take(MAX_PAYLOAD).collect();
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [CHANNEL.into(), payload.into()],
    ))
    .await
    .map(drop)
}

/// What [`ChangeListener::next`] learnt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A writer announced a change of the named data.
    Announced(String),
    /// The connection was lost and is back: announcements may have been missed meanwhile.
    Reconnected,
}

/// A session listening on [`CHANNEL`], on a connection of its own (never one of the API pool).
pub struct ChangeListener {
    /// Opens the listening connection; one slot for the listener, one for its replacement.
    pool: PgPool,
    listener: PgListener,
    /// Whether the last call failed, so the next one listens afresh and reports a reconnection.
    lost: bool,
}

impl std::fmt::Debug for ChangeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeListener")
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

impl ChangeListener {
    /// Connects to the database of `[db]` and listens.
    pub async fn connect(db: &DbConfig) -> Result<ChangeListener, DbError> {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy(&database_url(db))
            .map_err(|source| DbError::Connect {
                addr: db.addr.to_string(),
                database: db.name.clone(),
                user: db.user.clone(),
                source: sqlx_error(source),
            })?;
        let listener = listen(&pool).await?;
        Ok(ChangeListener {
            pool,
            listener,
            lost: false,
        })
    }

    /// Waits for the next change. After an error (PostgreSQL unreachable) the caller waits a while
    /// and calls again: the listener connects and listens afresh, and reports that as
    /// [`Change::Reconnected`].
    pub async fn next(&mut self) -> Result<Change, DbError> {
        if self.lost {
            self.listener = listen(&self.pool).await?;
            self.lost = false;
            return Ok(Change::Reconnected);
        }
        match self.listener.try_recv().await {
            Ok(Some(notification)) => Ok(Change::Announced(notification.payload().to_owned())),
            // The connection was lost, and opened and listening again already.
            Ok(None) => Ok(Change::Reconnected),
            Err(error) => {
                self.lost = true;
                Err(DbError::query(format!("listening on {CHANNEL}"))(
                    sqlx_error(error),
                ))
            }
        }
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, DbError> {
    let context = || format!("listening on {CHANNEL}");
    let mut listener = PgListener::connect_with(pool)
        .await
        .map_err(|error| DbError::query(context())(sqlx_error(error)))?;
    listener
        .listen(CHANNEL)
        .await
        .map_err(|error| DbError::query(context())(sqlx_error(error)))?;
    Ok(listener)
}

fn sqlx_error(error: sea_orm::sqlx::Error) -> sea_orm::DbErr {
    sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(error))
}

#[cfg(test)]
mod tests {
    use super::{Change, ChangeListener, announce};

    #[tokio::test]
    async fn listeners_hear_announcements() {
        let database = crate::testing::TestDatabase::create("changes_listen").await;
        let mut listener = ChangeListener::connect(&database.config).await.unwrap();
        announce(&database.connection, "keypairs").await.unwrap();
        let change = tokio::time::timeout(std::time::Duration::from_secs(10), listener.next())
            .await
            .expect("a notification within 10 s")
            .unwrap();
        assert_eq!(change, Change::Announced("keypairs".to_owned()));
    }
}
