//! `manager-cli start-server`: replaces this process with the `manager-server` binary installed
//! next to `manager-cli`, handing it `-f`, `--log-level` and `--debug` as given here.
//!
//! Unlike the reference, whose `start-server` has its own `-f` and ignores `backend.ai mgr -f`,
//! the one `-f`/`--config` of manager-cli is what the server gets.

use std::io::ErrorKind;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use crate::cli::args::server::StartServerArgs;
use anyhow::Context;
use bai_config::LoadOptions;

/// The `manager-server` binary beside this executable.
fn server_binary() -> anyhow::Result<PathBuf> {
    let this = std::env::current_exe().context("cannot find where manager-cli is installed")?;
    Ok(this.with_file_name("manager-server"))
}

/// Execs the server; returns only when that fails.
pub fn run(args: StartServerArgs, options: &LoadOptions) -> anyhow::Result<ExitCode> {
    let binary = server_binary()?;
    let mut command = Command::new(&binary);
    if let Some(config) = &options.explicit_path {
        command.arg("--config").arg(config);
    }
    if let Some(level) = options.log_level {
        command.arg("--log-level").arg(level.to_string());
    }
    if args.debug {
        command.arg("--debug");
    }
    let error = command.exec();
    if error.kind() == ErrorKind::NotFound {
        anyhow::bail!(
            "{}: no manager-server binary next to manager-cli; install both from the same build \
             (`cargo build --release -p manager-server -p manager-cli`)",
            binary.display()
        );
    }
    Err(error).with_context(|| format!("cannot run {}", binary.display()))
}
