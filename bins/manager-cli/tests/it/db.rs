//! `manager-cli schema` and `dbshell` against the halfstack's real PostgreSQL, each test on a
//! database of its own.

use std::path::Path;

use crate::support::{manager_cli, text};
use bai_db_models::testing::TestDatabase;
use sea_orm::ConnectionTrait;

const HALFSTACK_TOML: &str = include_str!("../../../../configs/manager/halfstack.toml");

/// A manager.toml in `dir` whose `[db]` names `database`.
fn write_config(dir: &Path, database: &str) {
    let original = "name = \"backend\"";
    assert!(HALFSTACK_TOML.contains(original), "halfstack.toml changed");
    let text = HALFSTACK_TOML.replace(original, &format!("name = \"{database}\""));
    std::fs::write(dir.join("manager.toml"), text).expect("write manager.toml");
}

#[tokio::test]
async fn oneshot_creates_then_reports_current_and_show_lists_the_migrations() {
    let test = TestDatabase::create("cli_oneshot").await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &test.config.name);
    let place = format!("database '{}' at localhost:8100", test.config.name);

    let created = manager_cli(dir.path(), &["schema", "oneshot"]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert_eq!(
        text(&created.stdout),
        format!(
            "Created the Backend.AI 24.03 schema in {place} (migrations: m0001_schema_24_03; alembic_version 3596bc12ec09).\n"
        )
    );
    assert_eq!(text(&created.stderr), "", "libraries stay quiet");

    let again = manager_cli(dir.path(), &["schema", "oneshot"]);
    assert!(again.status.success());
    assert_eq!(
        text(&again.stdout),
        format!("The schema of {place} is current; nothing to do.\n")
    );

    let shown = manager_cli(dir.path(), &["schema", "show"]);
    assert_eq!(
        text(&shown.stdout),
        format!(
            "Database: {place}\nApplied migrations: m0001_schema_24_03\nPending migrations: none\n\
             Alembic revision (what the reference's tooling sees): 3596bc12ec09\n"
        )
    );
    let migrated = manager_cli(dir.path(), &["schema", "migrate"]);
    assert_eq!(
        text(&migrated.stdout),
        format!("No pending migrations in {place}.\n")
    );

    let tables = manager_cli(
        dir.path(),
        &[
            "dbshell",
            "-At",
            "-c",
            "select count(*) from pg_tables where schemaname = 'public'",
        ],
    );
    assert!(tables.status.success(), "{}", text(&tables.stderr));
    assert_eq!(
        text(&tables.stdout),
        "30\n",
        "28 model tables, alembic_version, seaql_migrations"
    );
}

#[tokio::test]
async fn oneshot_refuses_a_database_with_foreign_tables_and_exits_1() {
    let test = TestDatabase::create("cli_foreign").await;
    test.connection
        .execute_unprepared("CREATE TABLE legacy (id int)")
        .await
        .expect("foreign table");
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &test.config.name);
    let refused = manager_cli(dir.path(), &["schema", "oneshot"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        text(&refused.stderr),
        "error: the database already holds tables that bai-manager did not create (legacy); refusing to touch \
         them. Use an empty database, or drop these tables first\n"
    );
    let migrate = manager_cli(dir.path(), &["schema", "migrate"]);
    assert_eq!(migrate.status.code(), Some(1));
}

#[test]
fn an_unreachable_database_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text_config = HALFSTACK_TOML.replace("port = 8100", "port = 1");
    std::fs::write(dir.path().join("manager.toml"), text_config).expect("write");
    let started = std::time::Instant::now();
    let output = manager_cli(dir.path(), &["schema", "show"]);
    assert_eq!(output.status.code(), Some(1));
    let message = text(&output.stderr);
    assert!(
        message.starts_with(
            "error: cannot connect to PostgreSQL at localhost:1 (database \"backend\", user \"postgres\")"
        ),
        "{message}"
    );
    assert!(
        !message.contains("develove"),
        "never print the password: {message}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
