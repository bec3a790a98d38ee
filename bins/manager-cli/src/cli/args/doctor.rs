//! `manager-cli doctor`.

use clap::Args;

/// The options of `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Seconds each network check may take (connecting and the answer together).
    #[arg(long, value_name = "SECS", default_value_t = 2.0, value_parser = crate::cli::parse_seconds)]
    pub timeout: f64,
    /// The largest difference, in seconds, between this host's clock and PostgreSQL's that passes.
    #[arg(long, value_name = "SECS", default_value_t = 2.0, value_parser = crate::cli::parse_seconds)]
    pub max_clock_skew: f64,
    /// Print a JSON array of `{"check", "ok", "detail"}` instead of lines.
    #[arg(long)]
    pub json: bool,
}
