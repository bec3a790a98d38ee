//! `manager-cli image rescan [REGISTRY[/IMAGE[:TAG]]]`: reads the registries configured in etcd into
//! the image catalogue, with a progress bar on a terminal and a summary at the end.
//!
//! Unlike the reference, which logs `An error occurred.` and exits 0, every image that could not be
//! read is listed with its reason and the exit code is 1; the images that were read are saved
//! all the same. Without an argument every configured registry is scanned.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::args::image_rescan::RescanArgs;
use bai_config::EtcdConfig;
use bai_etcd_store::{EtcdStore, EtcdTarget, ScopePrefixes, SharedConfig, SharedConfigError};
use bai_registry_scanner::{Outcome, Reporter, ScanOptions, ScanSummary, ScanTarget};
use sea_orm::DatabaseConnection;

use crate::progress::Progress;

/// Runs the scan against `db` with the registries of the etcd `etcd` names; exit code 1 when
/// anything could not be read or the scan could not start.
pub async fn rescan(
    args: RescanArgs,
    etcd: &EtcdConfig,
    db: &DatabaseConnection,
) -> anyhow::Result<ExitCode> {
    let store = EtcdStore::connect(EtcdTarget::from_config(etcd), ScopePrefixes::default()).await?;
    let shared = match SharedConfig::load(&store).await {
        Ok(shared) => shared,
        Err(SharedConfigError::Invalid(problems)) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            return Ok(ExitCode::FAILURE);
        }
        Err(SharedConfigError::Etcd(error)) => return Err(anyhow::anyhow!("{error}")),
    };
    let registries = &shared.docker.registries;
    let target = ScanTarget::parse(args.target.as_deref(), registries)?;
    let options = ScanOptions {
        concurrency: args.concurrency,
        request_timeout: Duration::from_secs(args.timeout),
        ..ScanOptions::default()
    };
    let progress = Progress::on_terminal();
    let summary = bai_registry_scanner::scan(db, registries, &target, &options, &progress).await;
    // The bar leaves the screen before anything else is printed.
    drop(progress);
    let summary = summary?;
    print_summary(&summary)?;
    Ok(if summary.failed() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Added and updated images one per line, skipped and failed ones with their reasons, then the
/// counts.
fn print_summary(summary: &ScanSummary) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for item in &summary.items {
        match &item.outcome {
            Outcome::Added => writeln!(out, "added     {item}")?,
            Outcome::Updated => writeln!(out, "updated   {item}")?,
            Outcome::Unchanged => {}
            Outcome::Skipped(reason) => writeln!(out, "skipped   {item}: {reason}")?,
            Outcome::Failed(reason) => writeln!(out, "failed    {item}: {reason}")?,
        }
    }
    writeln!(out, "{summary}")
}

impl Reporter for Progress {
    fn found(&self, count: usize) {
        self.add(count);
    }

    fn scanned(&self, registry: &str, image: &str, tag: &str) {
        self.done(format!("{registry}/{image}:{tag}"));
    }
}
