//! `manager-cli agent ...`.

use bai_db_models::entities::enums::AgentStatus;
use bai_db_models::queries::agent_listing::{AGENT_STATUSES, status_by_name};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// List the agents, sorted by id, with their slots and when each was last seen.
    List {
        /// Only agents with this status (ALIVE, LOST, RESTARTING, TERMINATED; any case);
        /// repeat it or separate statuses with commas. Default: every status.
        #[arg(
            short,
            long,
            value_name = "STATUS",
            value_delimiter = ',',
            value_parser = parse_status
        )]
        status: Vec<AgentStatus>,
        /// Print the rows as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show every column of one agent and when it was last seen.
    Info {
        id: String,
        /// Print the row as a JSON object instead.
        #[arg(long)]
        json: bool,
    },
    /// Call the agent's `ping` over RPC and print the round trip time.
    ///
    /// Connects to the address (and CURVE public key) of the agent's row with the manager keypair
    /// of `[manager] rpc-auth-manager-keypair`; exits 1 when the agent does not answer in time.
    /// With `--count`, a load: the pings' rate and latencies (from just before a call starts to
    /// its answer; with `--connect-per-call` including the connection and its handshake), and
    /// exit 1 when any failed.
    Ping {
        id: String,
        /// Seconds to wait for the connection and for the answer, each.
        #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = crate::cli::parse_seconds)]
        timeout: f64,
        /// Pings to send.
        #[arg(long, value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        count: u64,
        /// Pings outstanding at once.
        #[arg(long, value_name = "K", default_value_t = 1,
              value_parser = clap::value_parser!(u64).range(1..=4096))]
        in_flight: u64,
        /// Open a connection of its own for every ping (a ZeroMQ context, a socket and the
        /// PING/PONG handshake) and close it after the answer, as the reference does for every
        /// agent call; by default all pings share one connection.
        #[arg(long)]
        connect_per_call: bool,
        /// Print one JSON object with the counts, the rate and the latencies instead.
        #[arg(long)]
        json: bool,
    },
    /// Call the agent's `gather_hwinfo` over RPC and print what it reports as JSON.
    Hwinfo {
        id: String,
        /// Seconds to wait for the connection and for the answer, each.
        #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = crate::cli::parse_seconds)]
        timeout: f64,
    },
}

/// A `--status` value: a member name of `AgentStatus` in any case.
pub fn parse_status(text: &str) -> Result<AgentStatus, String> {
    status_by_name(&text.to_ascii_uppercase()).ok_or_else(|| {
        let allowed: Vec<&str> = AGENT_STATUSES.iter().map(|(name, _)| *name).collect();
        format!(
            "unknown agent status {text:?} (the statuses are {})",
            allowed.join(", ")
        )
    })
}
