//! What the test modules share: a test's directory with its manager.toml, and running the built
//! `manager-cli` in it.

use std::path::Path;
use std::process::{Command, Output};

use bai_db_models::testing::TestDatabase;
use bai_etcd_store::testing::TestNamespace;

const HALFSTACK_TOML: &str = include_str!("../../../../configs/manager/halfstack.toml");

/// A new directory with a manager.toml: the halfstack's, on database `db` and etcd namespace
/// `etcd`.
pub fn manager_toml_dir(db: &TestDatabase, etcd: &TestNamespace) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db_line, ns_line) = ("name = \"backend\"", "namespace = \"local\"");
    assert!(HALFSTACK_TOML.contains(db_line) && HALFSTACK_TOML.contains(ns_line));
    let toml = HALFSTACK_TOML
        .replace(db_line, &format!("name = \"{}\"", db.config.name))
        .replace(ns_line, &format!("namespace = \"{}\"", etcd.name));
    std::fs::write(dir.path().join("manager.toml"), toml).expect("write manager.toml");
    dir
}

/// `manager-cli ARGS` run in `dir`, where the test's manager.toml is; a developer's
/// `BACKEND_CONFIG_FILE` must not redirect it.
pub fn manager_cli_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_manager-cli"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("BACKEND_CONFIG_FILE");
    command
}

/// [`manager_cli_command`], run to the end.
pub fn manager_cli(dir: &Path, args: &[&str]) -> Output {
    manager_cli_command(dir, args)
        .output()
        .expect("manager-cli runs")
}

/// What a command printed, as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
