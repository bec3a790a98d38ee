//! `manager-cli schema ...` and `manager-cli dbshell`: the database `[db]` of manager.toml names.
//!
//! Unlike the reference, whose `schema` commands read an Alembic ini file, these use manager.toml,
//! like every other command.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use anyhow::Context;
use bai_config::{DbConfig, LoadOptions};
use bai_db_models::schema::{self, OneshotOutcome, SchemaState};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Create the 24.03 schema on an empty database (or apply pending migrations to ours).
    ///
    /// Refuses a database holding tables bai-manager did not create.
    Oneshot,
    /// Show the applied and pending migrations and the Alembic revision the reference sees.
    Show,
    /// Apply every pending migration.
    Migrate,
}

pub fn run_schema(command: SchemaCommand, options: &LoadOptions) -> anyhow::Result<ExitCode> {
    let Some(loaded) = crate::load_config(options) else {
        return Ok(ExitCode::FAILURE);
    };
    let db = loaded.config.db;
    crate::block_on(async move {
        let connection = bai_db_models::connect(&db).await?;
        let place = format!("database '{}' at {}", db.name, db.addr);
        match command {
            SchemaCommand::Oneshot => match schema::oneshot(&connection).await? {
                OneshotOutcome::Created { applied } => println!(
                    "Created the Backend.AI 24.03 schema in {place} (migrations: {}; alembic_version {}).",
                    applied.join(", "),
                    bai_db_models::migration::ALEMBIC_HEAD
                ),
                OneshotOutcome::Upgraded { applied } => {
                    println!("Applied to {place}: {}.", applied.join(", "));
                }
                OneshotOutcome::AlreadyCurrent => {
                    println!("The schema of {place} is current; nothing to do.");
                }
            },
            SchemaCommand::Show => show(&place, schema::state(&connection).await?),
            SchemaCommand::Migrate => match schema::state(&connection).await? {
                SchemaState::Managed { pending, .. } if pending.is_empty() => {
                    println!("No pending migrations in {place}.");
                }
                SchemaState::Managed { .. } => {
                    let applied = schema::migrate(&connection).await?;
                    println!("Applied to {place}: {}.", applied.join(", "));
                }
                SchemaState::Empty | SchemaState::Foreign { .. } => {
                    anyhow::bail!(
                        "{place} has no bai-manager schema to migrate; create it with `manager-cli schema oneshot`"
                    );
                }
            },
        }
        Ok(ExitCode::SUCCESS)
    })?
}

fn show(place: &str, state: SchemaState) {
    println!("Database: {place}");
    match state {
        SchemaState::Empty => {
            println!("No tables; create the schema with `manager-cli schema oneshot`.")
        }
        SchemaState::Managed {
            applied,
            pending,
            alembic_revision,
        } => {
            println!("Applied migrations: {}", list(&applied));
            println!("Pending migrations: {}", list(&pending));
            println!(
                "Alembic revision (what the reference's tooling sees): {}",
                alembic_revision.as_deref().unwrap_or("none")
            );
        }
        SchemaState::Foreign {
            tables,
            alembic_revision,
        } => {
            println!(
                "Not created by bai-manager: {} tables, no migration ledger.",
                tables.len()
            );
            println!(
                "Alembic revision: {}",
                alembic_revision.as_deref().unwrap_or("none")
            );
        }
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Replaces this process with `psql` connected to `[db]`; ARGS go to psql as they are. The
/// password travels in the environment, never on the command line where `ps` would show it.
pub fn dbshell(options: &LoadOptions, psql_args: &[String]) -> anyhow::Result<ExitCode> {
    let Some(loaded) = crate::load_config(options) else {
        return Ok(ExitCode::FAILURE);
    };
    let error = psql_command(&loaded.config.db).args(psql_args).exec();
    Err(error).context("cannot run psql (install the postgresql-client package)")
}

fn psql_command(db: &DbConfig) -> Command {
    let mut command = Command::new("psql");
    command
        .args(["-h", &db.addr.host])
        .args(["-p", &db.addr.port.to_string()])
        .args(["-U", &db.user])
        .args(["-d", &db.name])
        .env("PGPASSWORD", &db.password);
    command
}
