//! `cargo xtask ci`: run every check and test, the way CI does (`.ci/run` calls this).
//!
//! Setup steps (packages, toolchain components, halfstack, venvs) stop the run when they fail;
//! the check steps (fmt, clippy, tests) all run, so one CI run reports every kind of failure.
//! Halfstack services that this run started are stopped at the end, also after a failure;
//! those that answered before (from this folder or another) are left running.

use std::process::{Command, ExitCode};

use anyhow::Result;

use crate::halfstack::{self, Layout};
use crate::{apt, cmd, consts, venv};

pub fn run(dir: halfstack::Dir) -> Result<ExitCode> {
    let layout = Layout::new(dir)?;
    let mut failed = Vec::new();
    let mut started = Vec::new();
    if setup(&layout, &mut started, &mut failed) {
        let checks: [&[&str]; 3] = [
            &["fmt", "--all", "--check"],
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
            &["test", "--workspace"],
        ];
        for args in checks {
            step(&format!("cargo {}", args.join(" ")), &mut failed, || {
                // A CI run compiles every workspace crate afresh: incremental caches would only
                // cost time and gigabytes of disk.
                cmd::run_inherit(crate::cargo().args(args).env("CARGO_INCREMENTAL", "0"))
            });
        }
    }

    // The WebUI test (manager-server tests/it/webui.rs) keeps a screenshot of every page it
    // visited, also when it failed; CI uploads the folder as an artifact.
    let screenshots = crate::target_dir().join("tmp").join("webui-screenshots");
    if screenshots.is_dir() {
        println!("==> WebUI screenshots: {}", screenshots.display());
    }

    if started.is_empty() {
        println!("==> halfstack: leaving it running (this run started none of it)");
    } else {
        let names: Vec<&str> = started.iter().map(|s| s.name()).collect();
        step(
            &format!("halfstack down {} (started by this run)", names.join(" ")),
            &mut failed,
            || halfstack::down(&layout, &started),
        );
    }

    if failed.is_empty() {
        println!("==> ci passed");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("==> ci FAILED in: {}", failed.join("; "));
        Ok(ExitCode::FAILURE)
    }
}

/// The steps every later step depends on; false (with the step recorded) when one fails.
/// Halfstack services it starts go to `started`.
fn setup(layout: &Layout, started: &mut Vec<halfstack::Service>, failed: &mut Vec<String>) -> bool {
    let packages: Vec<&str> = consts::BUILD_PACKAGES
        .iter()
        .chain(consts::HALFSTACK_PACKAGES)
        .chain(consts::TEST_PACKAGES)
        .copied()
        .collect();
    step("Debian packages", failed, || apt::ensure(&packages))
        && step("rustfmt and clippy", failed, toolchain_components)
        && step("halfstack up", failed, || halfstack::up(layout, started))
        && step("venv", failed, || {
            venv::VENVS.iter().try_for_each(venv::ensure)
        })
}

/// Prints `==> name`, runs `body`, records `name` in `failed` when it fails; true on success.
fn step(name: &str, failed: &mut Vec<String>, body: impl FnOnce() -> Result<()>) -> bool {
    println!("==> {name}");
    match body() {
        Ok(()) => true,
        Err(err) => {
            eprintln!("step `{name}` failed: {err:#}");
            failed.push(name.to_owned());
            false
        }
    }
}

/// `rustup component add` for whichever of rustfmt and clippy cargo cannot run.
fn toolchain_components() -> Result<()> {
    let missing: Vec<&str> = [("fmt", "rustfmt"), ("clippy", "clippy")]
        .into_iter()
        .filter(|(subcommand, _)| {
            let mut version = crate::cargo();
            version.args([subcommand, "--version"]);
            cmd::probe(&mut version, std::time::Duration::from_secs(60)).is_none()
        })
        .map(|(_, component)| component)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    cmd::run_inherit(
        Command::new("rustup")
            .args(["component", "add"])
            .args(&missing),
    )
}
