//! Whether a database error means PostgreSQL cannot be reached or is not serving right now (down,
//! restarting, shutting down, the pool waiting in vain for a connection), as opposed to a failed
//! statement. The API answers the first kind 503 naming PostgreSQL instead of 500.

use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr, sqlx};

use crate::error::{DbError, WriteError};

/// SQLSTATEs of a server that is going away or not accepting connections yet: `57P01`
/// admin_shutdown (`pg_ctl stop -m fast`), `57P02` crash_shutdown, `57P03` cannot_connect_now
/// (starting up, shutting down, recovering).
const SHUTDOWN_STATES: [&str; 3] = ["57P01", "57P02", "57P03"];
/// SQLSTATE class `08`: connection exceptions.
const CONNECTION_EXCEPTION_CLASS: &str = "08";

/// True when `error` says PostgreSQL is unreachable or unavailable: no connection within the
/// pool's acquire timeout, a connection refused, reset or closed, or the server shutting down or
/// starting up.
pub fn unavailable(error: &DbErr) -> bool {
    match error {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout | ConnAcquireErr::ConnectionClosed) => {
            true
        }
        DbErr::Conn(RuntimeErr::SqlxError(error))
        | DbErr::Exec(RuntimeErr::SqlxError(error))
        | DbErr::Query(RuntimeErr::SqlxError(error)) => sqlx_unavailable(error),
        _ => false,
    }
}

/// The same question about sqlx's own error, as sea-orm wraps it.
pub fn sqlx_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(error) => error.code().is_some_and(|code| {
            SHUTDOWN_STATES.contains(&code.as_ref()) || code.starts_with(CONNECTION_EXCEPTION_CLASS)
        }),
        _ => false,
    }
}

impl DbError {
    /// See [`unavailable`].
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Connect { source, .. } | DbError::Query { source, .. } => unavailable(source),
        }
    }
}

impl WriteError {
    /// See [`unavailable`]; a rejected write is the caller's, never an outage.
    pub fn is_unavailable(&self) -> bool {
        match self {
            WriteError::Rejected(_) => false,
            WriteError::Db(error) => error.is_unavailable(),
        }
    }
}

/// True when some error in `error`'s source chain (itself included) is a database error of the
/// kind [`unavailable`] means.
pub fn unavailable_in_chain(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |error| error.source()).any(|error| {
        if let Some(error) = error.downcast_ref::<DbErr>() {
            unavailable(error)
        } else if let Some(error) = error.downcast_ref::<sqlx::Error>() {
            sqlx_unavailable(error)
        } else {
            false
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_told_from_failed_statements() {
        assert!(unavailable(&DbErr::ConnectionAcquire(
            ConnAcquireErr::Timeout
        )));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(unavailable(&DbErr::Conn(RuntimeErr::SqlxError(
            sqlx::Error::Io(refused)
        ))));
        assert!(!unavailable(&DbErr::RecordNotFound("x".into())));
        assert!(!unavailable(&DbErr::Query(RuntimeErr::SqlxError(
            sqlx::Error::RowNotFound
        ))));
        let wrapped = DbError::Query {
            context: "select".into(),
            source: DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        };
        assert!(wrapped.is_unavailable());
        assert!(unavailable_in_chain(&WriteError::from(wrapped)));
        assert!(!WriteError::Rejected("taken".into()).is_unavailable());
    }
}
