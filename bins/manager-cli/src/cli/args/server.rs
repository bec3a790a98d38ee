//! `manager-cli start-server`.

use clap::Args;

/// The options of `start-server` (besides the global `-f` and `--log-level`).
#[derive(Debug, Args)]
pub struct StartServerArgs {
    /// The same as --log-level DEBUG.
    #[arg(long)]
    pub debug: bool,
}
