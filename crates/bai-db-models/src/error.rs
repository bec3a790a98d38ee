//! What can go wrong with the database, each variant saying where.

/// A database operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "cannot connect to PostgreSQL at {addr} (database {database:?}, user {user:?}): {source}"
    )]
    Connect {
        addr: String,
        database: String,
        user: String,
        #[source]
        source: sea_orm::DbErr,
    },
    #[error("{context}: {source}")]
    Query {
        context: String,
        #[source]
        source: sea_orm::DbErr,
    },
}

impl DbError {
    /// Wraps a sea-orm error with what we were doing.
    pub fn query(context: impl Into<String>) -> impl FnOnce(sea_orm::DbErr) -> DbError {
        let context = context.into();
        move |source| DbError::Query { context, source }
    }
}

/// Why a create, modify or delete was not done: the caller's request contradicts what is stored
/// (said back to the caller), or the database failed (ours).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The message names the object and the field, e.g. `domain "x" already exists`.
    #[error("{0}")]
    Rejected(String),
    /// Boxed: a sea-orm error is large, and this travels through every write's `Result`.
    #[error(transparent)]
    Db(Box<DbError>),
}

impl From<DbError> for WriteError {
    fn from(error: DbError) -> WriteError {
        WriteError::Db(Box::new(error))
    }
}

impl WriteError {
    /// A failed statement: a unique or foreign-key violation is the caller's (`conflict` says
    /// which object and field, in words), anything else the database's.
    pub fn from_statement(
        context: impl Into<String>,
        conflict: impl FnOnce(ConstraintViolation) -> String,
    ) -> impl FnOnce(sea_orm::DbErr) -> WriteError {
        let context = context.into();
        move |source| match source.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                WriteError::Rejected(conflict(ConstraintViolation::Unique))
            }
            Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => {
                WriteError::Rejected(conflict(ConstraintViolation::ForeignKey))
            }
            _ => WriteError::from(DbError::Query { context, source }),
        }
    }
}

/// Which kind of constraint a rejected statement violated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConstraintViolation {
    /// A row with the same key exists.
    Unique,
    /// A referenced row is missing, or a row still refers to the one being changed.
    ForeignKey,
}
