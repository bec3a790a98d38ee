//! What the test modules share: running the built `manager-cli` in a test's directory.

use std::path::Path;
use std::process::{Command, Output};

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
