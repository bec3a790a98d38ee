//! `manager-cli schema ...` and `manager-cli dbshell`: the database `[db]` of manager.toml names.
//!
//! Unlike the reference, whose `schema` commands read an Alembic ini file, these use manager.toml,
//! like every other command.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use crate::cli::args::db::{FixtureCommand, SchemaCommand};
use anyhow::Context;
use bai_config::{DbConfig, LoadOptions};
use bai_db_models::fixtures::{self, FixtureFile};
use bai_db_models::schema::{self, OneshotOutcome, SchemaState};
use sea_orm::DatabaseConnection;

pub fn run_schema(command: SchemaCommand, options: &LoadOptions) -> anyhow::Result<ExitCode> {
    with_db(options, |connection, place| async move {
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
            SchemaCommand::Show { json: false } => {
                show(&place, schema::state(&connection).await?);
            }
            SchemaCommand::Show { json: true } => {
                let shown = show_json(&place, schema::state(&connection).await?);
                println!("{}", serde_json::to_string_pretty(&shown)?);
            }
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
    })
}

/// Loads the configuration, connects to `[db]` and runs `work` with the connection and a phrase
/// naming the database for messages.
fn with_db<F, W>(options: &LoadOptions, work: W) -> anyhow::Result<ExitCode>
where
    W: FnOnce(DatabaseConnection, String) -> F,
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    let Some(loaded) = crate::load_config(options) else {
        return Ok(ExitCode::FAILURE);
    };
    let db = loaded.config.db;
    crate::block_on(async move {
        let connection = bai_db_models::connect(&db).await?;
        work(connection, format!("database '{}' at {}", db.name, db.addr)).await
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

/// `schema show --json`: the state as one object; the fields a state lacks are empty or null.
fn show_json(place: &str, state: SchemaState) -> serde_json::Value {
    let (kind, applied, pending, alembic_revision, tables) = match state {
        SchemaState::Empty => ("empty", Vec::new(), Vec::new(), None, Vec::new()),
        SchemaState::Managed {
            applied,
            pending,
            alembic_revision,
        } => ("managed", applied, pending, alembic_revision, Vec::new()),
        SchemaState::Foreign {
            tables,
            alembic_revision,
        } => ("foreign", Vec::new(), Vec::new(), alembic_revision, tables),
    };
    serde_json::json!({
        "database": place,
        "state": kind,
        "applied": applied,
        "pending": pending,
        "alembic_revision": alembic_revision,
        "tables": tables,
    })
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

pub fn run_fixture(command: FixtureCommand, options: &LoadOptions) -> anyhow::Result<ExitCode> {
    match command {
        FixtureCommand::Populate { file } => {
            // A bad file is reported before anything connects.
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let fixture = FixtureFile::parse(&file.display().to_string(), &text)?;
            with_db(options, |connection, place| async move {
                let report = fixtures::populate(&connection, &fixture).await?;
                for table in &report.tables {
                    eprintln!(
                        "{}: {} of {} rows written",
                        table.table, table.rows_written, table.rows_given
                    );
                }
                eprintln!("Loaded {} into {place}.", file.display());
                Ok(ExitCode::SUCCESS)
            })
        }
        FixtureCommand::Export { tables, output } => with_db(options, |connection, _| async move {
            let names: Vec<&str> = tables.iter().map(String::as_str).collect();
            let exported = fixtures::export(&connection, &names).await?;
            let text = serde_json::to_string_pretty(&exported)? + "\n";
            match output {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => std::io::stdout().write_all(text.as_bytes())?,
            }
            Ok(ExitCode::SUCCESS)
        }),
    }
}
