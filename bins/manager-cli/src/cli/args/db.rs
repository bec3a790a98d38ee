//! `manager-cli schema ...` and `manager-cli fixture ...`.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Create the 24.03 schema on an empty database (or apply pending migrations to ours).
    ///
    /// Refuses a database holding tables bai-manager did not create.
    Oneshot,
    /// Show the applied and pending migrations and the Alembic revision the reference sees.
    Show {
        /// Print `{"database", "state", "applied", "pending", "alembic_revision", "tables"}` as
        /// JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Apply every pending migration.
    Migrate,
}

#[derive(Debug, Subcommand)]
pub enum FixtureCommand {
    /// Load a fixture file (`{table: [rows...]}`, `"__mode": "insert"|"update"`) in one
    /// transaction: every row or none. Existing rows are skipped (insert) or updated (update).
    Populate {
        /// The JSON fixture file.
        file: PathBuf,
    },
    /// Write TABLEs as a fixture file that `fixture populate` loads back (to stdout, or -o FILE).
    Export {
        /// Tables in the order to write them (parents before children, as populate needs).
        #[arg(required = true)]
        tables: Vec<String>,
        /// Write here instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}
