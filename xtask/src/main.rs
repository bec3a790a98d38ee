//! `cargo xtask`: the developer tasks of this workspace, as subcommands of one binary
//! (the cargo-xtask convention: no Makefiles, no loose shell scripts).
//!
//! - `halfstack up|down|status`: PostgreSQL, Redis, etcd and a container registry as local
//!   processes (no Docker).
//! - `registry push-test-images`: Backend.AI test images pushed into the halfstack's registry.
//! - `venv`: the Python virtualenvs used by compatibility tests and benchmarks.
//! - `up`: bring everything up for a developer (halfstack, RPC keypair, `manager.toml`, schema,
//!   example fixtures).
//! - `db reset`: the halfstack's database made again from scratch.
//! - `ci`: run every check and test; this is what `.ci/run` calls.
//! - `bench`: benchmarks against the reference implementation in the same run: wall times of CLI
//!   commands with hyperfine, the HTTP server under load with wrk.
//! - `man`: the man pages of manager-cli, rendered from its clap definition.
//! - `cluster`: two manager nodes, one killed mid-burst, checked for lost or doubled sessions.
//! - `faults`: PostgreSQL, Redis and etcd stopped and started under load: 503s, no hang, recovery.
//! - `fuzz`: schemathesis against every REST operation and random GraphQL documents; no 5xx.

// xtask is an edge tool, not library code: it legitimately reads a few process-level variables
// (PATH to find programs, CARGO and CARGO_TARGET_DIR to call the same cargo and find its output).
// The workspace rule "configuration only through bai-config" is for the manager's own crates.
#![allow(clippy::disallowed_methods)]

mod apt;
mod bench;
mod ci;
mod cmd;
mod consts;
mod db;
mod halfstack;
mod man;
mod registry;
mod sys;
mod up;
mod venv;
mod webui;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Developer tasks of the Backend.AI manager workspace"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Local PostgreSQL, Redis, etcd and container registry for development and tests (no Docker).
    Halfstack(halfstack::Args),
    /// The halfstack's container registry: `push-test-images` fills it with labelled test images.
    Registry(registry::Args),
    /// Create or update the Python virtualenvs under `.venvs/` (all of them by default).
    Venv(venv::Args),
    /// Bring it all up: packages, halfstack, RPC keypair, `manager.toml`, etcd, schema, fixtures,
    /// then the manager server in the foreground.
    Up(up::Args),
    /// The halfstack's database: `reset` drops it and loads schema and example fixtures again.
    Db(db::Args),
    /// Run every check and test (fmt, clippy, tests against the halfstack); used by `.ci/run`.
    Ci(halfstack::Dir),
    /// Benchmarks, ours against the reference implementation: CLI wall times (hyperfine), the
    /// HTTP server under load (wrk).
    Bench(bench::Args),
    /// Two manager nodes on one halfstack, one SIGKILLed mid-burst: every session RUNNING
    /// exactly once, nothing left behind, `/metrics` agreeing with the database.
    Cluster(bench::cluster::Args),
    /// Private PostgreSQL, Redis and etcd stopped and started in turn under a steady load of
    /// signed requests: no 500, no hang, service back within 5 s, no acknowledged write lost.
    Faults(bench::faults::Args),
    /// The man pages of manager-cli (`--out DIR`, default `target/man`).
    Man(man::Args),
    /// Fuzz every REST operation (all methods) and random GraphQL documents, signed, against one
    /// manager-server: no 5xx, every error a problem+json of the reference's types.
    Fuzz(bench::fuzz::Args),
    /// The WebUI 24.03 (backend.ai-webserver) on :8090 in front of the server `up` runs on :8081.
    Webui,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Halfstack(args) => halfstack::run(args),
        Task::Registry(args) => registry::run(args),
        Task::Venv(args) => venv::run(args).map(|()| ExitCode::SUCCESS),
        Task::Up(args) => up::run(args).map(|()| ExitCode::SUCCESS),
        Task::Db(args) => db::run(args).map(|()| ExitCode::SUCCESS),
        Task::Ci(args) => ci::run(args),
        Task::Bench(args) => bench::run(args).map(|()| ExitCode::SUCCESS),
        Task::Cluster(args) => bench::cluster::run(args).map(|()| ExitCode::SUCCESS),
        Task::Faults(args) => bench::faults::run(args).map(|()| ExitCode::SUCCESS),
        Task::Man(args) => man::run(args).map(|()| ExitCode::SUCCESS),
        Task::Fuzz(args) => bench::fuzz::run(args).map(|()| ExitCode::SUCCESS),
        Task::Webui => webui::run().map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask always lives directly below it. Taken from `CARGO_MANIFEST_DIR` at
/// run time (`cargo run` sets it), not at build time: with a target folder shared by several
/// checkouts (as `.ci/run` does), cargo may run a binary that was built in another checkout.
pub(crate) fn workspace_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let xtask = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
        let root = xtask.parent().expect("xtask/ has a parent directory");
        root.to_owned()
    })
}

/// The cargo that runs us (so toolchain overrides carry over), or `cargo` from PATH.
pub(crate) fn cargo() -> std::process::Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(program);
    command.current_dir(workspace_root());
    command
}

/// Where cargo puts build output: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// `cargo run -p manager-cli -- ARGS` in the workspace root, output on the terminal.
pub(crate) fn manager_cli(args: &[&str]) -> anyhow::Result<()> {
    let run = ["run", "--quiet", "-p", "manager-cli", "--"];
    cmd::run_inherit(cargo().args(run).args(args))
}
