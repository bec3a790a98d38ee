//! Several manager nodes (issue 17), CI-sized: `cargo xtask cluster` with 100 sessions once per
//! lock backend. Two nodes of this build (`num-proc = 2` each) share one database, etcd namespace
//! and Redis; node A is SIGKILLed halfway through the burst of creations and started again; every
//! session must reach RUNNING exactly once, nothing may be left behind after the deletes, and both
//! nodes' `/metrics` must agree with the database. The harness is the xtask's (one implementation,
//! see xtask/src/cluster.rs); this test runs it on the binaries of the build under test.

use std::path::Path;
use std::process::Command;

use crate::support::SERVER;

/// Sessions per backend: enough for node A to die with starts and requests in flight.
const SESSIONS: &str = "100";

#[test]
fn no_session_is_lost_or_doubled_when_a_node_is_killed() {
    let binaries = Path::new(SERVER).parent().expect("the server's directory");
    let cargo = env!("CARGO");
    // The peers of the run, from the same build as the server under test.
    let built = Command::new(cargo)
        .args(["build", "--quiet", "-p", "manager-cli", "-p", "agent-sim"])
        .args(profile_args(binaries))
        .status()
        .expect("run cargo build");
    assert!(
        built.success(),
        "cargo build of manager-cli and agent-sim: {built}"
    );
    let run = Command::new(cargo)
        .args(["run", "--quiet", "-p", "xtask", "--", "cluster"])
        .args(["--sessions", SESSIONS, "--lock", "all", "--kill-at", "0.5"])
        .arg("--binaries")
        .arg(binaries)
        .status()
        .expect("run cargo xtask cluster");
    assert!(run.success(), "cargo xtask cluster: {run}");
}

/// `--release` when the server under test is a release build.
fn profile_args(binaries: &Path) -> &'static [&'static str] {
    if binaries.file_name().is_some_and(|name| name == "release") {
        &["--release"]
    } else {
        &[]
    }
}
