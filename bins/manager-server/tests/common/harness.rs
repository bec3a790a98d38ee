//! Runs one of the xtask harnesses (`cluster`, `faults`, `fuzz`: one implementation each, in
//! xtask/) on the binaries of the build under test, after building the peers it needs from the
//! same build.

use std::path::Path;
use std::process::Command;

const SERVER: &str = env!("CARGO_BIN_EXE_manager-server");

/// Builds `peers` (packages) like the server under test, then runs `cargo xtask TASK...
/// --binaries DIR` and asserts that it succeeded.
pub fn run_xtask(peers: &[&str], task: &[&str]) {
    let binaries = Path::new(SERVER).parent().expect("the server's directory");
    let cargo = env!("CARGO");
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet"]);
    for peer in peers {
        build.args(["-p", peer]);
    }
    let built = build
        .args(profile_args(binaries))
        .status()
        .expect("run cargo build");
    assert!(built.success(), "cargo build of {peers:?}: {built}");
    let run = Command::new(cargo)
        .args(["run", "--quiet", "-p", "xtask", "--"])
        .args(task)
        .arg("--binaries")
        .arg(binaries)
        .status()
        .expect("run cargo xtask");
    assert!(run.success(), "cargo xtask {}: {run}", task.join(" "));
}

/// `--release` when the server under test is a release build.
fn profile_args(binaries: &Path) -> &'static [&'static str] {
    if binaries.file_name().is_some_and(|name| name == "release") {
        &["--release"]
    } else {
        &[]
    }
}
