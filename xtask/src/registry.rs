//! `cargo xtask registry push-test-images [ARGS]`: pushes Backend.AI test images into the
//! halfstack's registry (127.0.0.1:8130) with the `push-test-images` example of
//! bai-registry-scanner, through the registry's HTTP API (no Docker engine).
//!
//! Without ARGS it pushes the sample set (multi- and single-arch, Docker and OCI, one image without
//! the kernelspec label, one broken); `--repositories N --tags M` pushes a benchmark set instead.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::{cmd, consts, halfstack};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Push test images into the halfstack's registry (start it with `cargo xtask halfstack up`).
    PushTestImages {
        /// Passed to the example: `--repositories N --tags M`, `--prefix PATH`,
        /// `--platforms amd64,arm64`, `--concurrency C`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Runs the `push-test-images` example of bai-registry-scanner against the halfstack's registry
/// with `args` (none: the sample set).
pub fn push_test_images(args: &[String]) -> Result<()> {
    let example = [
        "run",
        "--quiet",
        "-p",
        "bai-registry-scanner",
        "--features",
        "testing",
        "--example",
        "push-test-images",
        "--",
    ];
    cmd::run_inherit(
        crate::cargo()
            .args(example)
            .arg(consts::registry_url())
            .args(args),
    )
}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.action {
        Action::PushTestImages { args } => {
            if !halfstack::registry_answers() {
                bail!(
                    "the halfstack's registry does not answer on {}; start it with `cargo xtask halfstack up`",
                    consts::registry_url()
                );
            }
            push_test_images(&args)?;
            println!(
                "Scan them with `manager-cli image rescan {}` (registry `{}` in etcd, written by `cargo xtask up`).",
                consts::REGISTRY_NAME,
                consts::REGISTRY_NAME
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
