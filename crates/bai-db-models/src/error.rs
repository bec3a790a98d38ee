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
