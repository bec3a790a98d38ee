//! `manager-cli image rescan ...`.

use bai_registry_scanner::ScanOptions;
use clap::Args;

/// The arguments of `image rescan`.
#[derive(Debug, Args)]
pub struct RescanArgs {
    /// A registry's name (its key under etcd config/docker/registry), or one image of it as
    /// REGISTRY/IMAGE[:TAG]; every registry when omitted.
    #[arg(value_name = "REGISTRY[/IMAGE[:TAG]]")]
    pub target: Option<String>,
    /// Requests to the registries in flight at once.
    #[arg(long, default_value_t = ScanOptions::default().concurrency)]
    pub concurrency: usize,
    /// Seconds one request to a registry may take.
    #[arg(long, value_name = "SECONDS", default_value_t = ScanOptions::default().request_timeout.as_secs())]
    pub timeout: u64,
}
