//! `manager-cli redis ...`.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum RedisCommand {
    /// PING each database the manager uses; print the address and the round trips.
    Ping {
        /// Seconds each database may take to connect and answer.
        #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = crate::cli::parse_seconds)]
        timeout: f64,
        /// Print one JSON object `{"address", "ok", "databases": [...]}` instead.
        #[arg(long)]
        json: bool,
    },
}
