//! `cargo xtask db reset`: the halfstack's `backend` database dropped and made again with our CLI
//! (`schema oneshot`, then the install guide's fixture files), and the same schema-and-fixtures
//! step that `cargo xtask up` runs on a database that may already hold them.

use std::process::Command;

use anyhow::Result;

use crate::{cmd, consts};

/// The install guide's `fixture populate` files, in its order.
pub const INSTALL_GUIDE_FIXTURES: [&str; 4] = [
    "fixtures/manager/example-users.json",
    "fixtures/manager/example-keypairs.json",
    "fixtures/manager/example-resource-presets.json",
    "fixtures/manager/example-set-user-main-access-keys.json",
];

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Drop the `backend` database, create it again, run `schema oneshot` and load the example
    /// fixtures (uses ./manager.toml; run `cargo xtask up` first).
    Reset,
}

pub fn run(args: Args) -> Result<()> {
    match args.action {
        Action::Reset => {
            println!("==> recreating database {}", consts::PG_DATABASE);
            let database = consts::PG_DATABASE;
            cmd::run(
                Command::new("psql")
                    .arg(consts::pg_url("postgres"))
                    .args(["-v", "ON_ERROR_STOP=1", "-qc"])
                    .arg(format!(
                        "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                    ))
                    .arg("-c")
                    .arg(format!("CREATE DATABASE \"{database}\"")),
            )?;
            schema_and_fixtures()
        }
    }
}

/// `schema oneshot` and the install guide's fixtures through our CLI; both are idempotent, so this
/// also suits a database that has them already.
pub fn schema_and_fixtures() -> Result<()> {
    println!("==> manager-cli schema oneshot");
    crate::manager_cli(&["-f", crate::up::CONFIG, "schema", "oneshot"])?;
    for file in INSTALL_GUIDE_FIXTURES {
        println!("==> manager-cli fixture populate {file}");
        crate::manager_cli(&["-f", crate::up::CONFIG, "fixture", "populate", file])?;
    }
    Ok(())
}
