//! What state a database's schema is in, and bringing it to the current one: the logic behind
//! `manager-cli schema oneshot|show|migrate`.

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use sea_orm_migration::MigratorTrait;

use crate::error::DbError;
use crate::migration::Migrator;

/// The state of the `public` schema of a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// No tables at all: `oneshot` creates the schema.
    Empty,
    /// Created by our migrations; `pending` lists the ones not yet applied (oldest first).
    Managed {
        applied: Vec<String>,
        pending: Vec<String>,
        alembic_revision: Option<String>,
    },
    /// Tables exist but our migration ledger does not: created by something else (the reference's
    /// own tooling, or by hand). Nothing is touched.
    Foreign {
        tables: Vec<String>,
        alembic_revision: Option<String>,
    },
}

/// What [`oneshot`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneshotOutcome {
    Created { applied: Vec<String> },
    Upgraded { applied: Vec<String> },
    AlreadyCurrent,
}

/// Why [`oneshot`] refused.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the database already holds tables that bai-manager did not create ({}){}; refusing to touch them. \
         Use an empty database, or drop these tables first",
        preview(.tables),
        alembic_note(.alembic_revision.as_deref())
    )]
    Foreign {
        tables: Vec<String>,
        alembic_revision: Option<String>,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Reads the schema state.
pub async fn state(db: &DatabaseConnection) -> Result<SchemaState, DbError> {
    let tables = public_tables(db).await?;
    if tables.is_empty() {
        return Ok(SchemaState::Empty);
    }
    let alembic_revision = if tables.iter().any(|t| t == "alembic_version") {
        alembic_revision(db).await?
    } else {
        None
    };
    if !tables.iter().any(|t| t == "seaql_migrations") {
        return Ok(SchemaState::Foreign {
            tables,
            alembic_revision,
        });
    }
    let mut applied = Vec::new();
    let mut pending = Vec::new();
    let migrations = Migrator::get_migration_with_status(db)
        .await
        .map_err(DbError::query("reading the migration ledger"))?;
    for migration in migrations {
        let name = migration.name().to_owned();
        match migration.status() {
            sea_orm_migration::MigrationStatus::Applied => applied.push(name),
            sea_orm_migration::MigrationStatus::Pending => pending.push(name),
        }
    }
    Ok(SchemaState::Managed {
        applied,
        pending,
        alembic_revision,
    })
}

/// Creates the schema on an empty database, or applies pending migrations to one of ours; refuses
/// a database with tables of unknown origin. Everything happens in one transaction per migration.
pub async fn oneshot(db: &DatabaseConnection) -> Result<OneshotOutcome, SchemaError> {
    match state(db).await? {
        SchemaState::Empty => Ok(OneshotOutcome::Created {
            applied: migrate(db).await?,
        }),
        SchemaState::Managed { pending, .. } if pending.is_empty() => {
            Ok(OneshotOutcome::AlreadyCurrent)
        }
        SchemaState::Managed { .. } => Ok(OneshotOutcome::Upgraded {
            applied: migrate(db).await?,
        }),
        SchemaState::Foreign {
            tables,
            alembic_revision,
        } => Err(SchemaError::Foreign {
            tables,
            alembic_revision,
        }),
    }
}

/// Applies every pending migration; returns their names.
pub async fn migrate(db: &DatabaseConnection) -> Result<Vec<String>, DbError> {
    let pending: Vec<String> = Migrator::get_pending_migrations(db)
        .await
        .map_err(DbError::query("reading the migration ledger"))?
        .iter()
        .map(|migration| migration.name().to_owned())
        .collect();
    Migrator::up(db, None)
        .await
        .map_err(DbError::query("applying migrations"))?;
    Ok(pending)
}

async fn public_tables(db: &DatabaseConnection) -> Result<Vec<String>, DbError> {
    let rows = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = 'public' ORDER BY tablename",
        ))
        .await
        .map_err(DbError::query("listing tables"))?;
    rows.iter()
        .map(|row| row.try_get::<String>("", "tablename"))
        .collect::<Result<_, _>>()
        .map_err(DbError::query("listing tables"))
}

async fn alembic_revision(db: &DatabaseConnection) -> Result<Option<String>, DbError> {
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT version_num FROM public.alembic_version LIMIT 1",
        ))
        .await
        .map_err(DbError::query("reading alembic_version"))?;
    row.map(|row| row.try_get::<String>("", "version_num"))
        .transpose()
        .map_err(DbError::query("reading alembic_version"))
}

fn preview(tables: &[String]) -> String {
    let shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
    let more = tables.len().saturating_sub(shown.len());
    if more == 0 {
        shown.join(", ")
    } else {
        format!("{}, and {more} more", shown.join(", "))
    }
}

fn alembic_note(revision: Option<&str>) -> String {
    match revision {
        Some(revision) => {
            format!(" (alembic_version says {revision}: made by the reference's tooling?)")
        }
        None => String::new(),
    }
}
