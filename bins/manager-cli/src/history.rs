//! `manager-cli clear-history`: deletes the sessions that terminated longer ago than the retention
//! (with their kernels) and the error logs older than it, in one transaction; `--dry-run` only
//! counts them.
//!
//! Unlike the reference (`backend.ai mgr clear-history`), it leaves Redis alone (the reference
//! deletes the old kernels' statistics keys there and asks for a BGSAVE), deletes old error logs
//! too, keeps sessions a model-service routing still names instead of failing, and prints the
//! counts on stdout. `-v/--vacuum-full` is not offered: the reference parses it and does nothing.

use std::process::ExitCode;

use crate::cli::args::history::ClearHistoryArgs;
use anyhow::Context;
use bai_config::LoadOptions;
use bai_db_models::queries::history::{self, HistoryCounts};
use chrono::{SecondsFormat, Utc};
use serde::Serialize;

#[derive(Debug, Serialize)]
struct Report {
    cutoff: String,
    dry_run: bool,
    sessions: u64,
    kernels: u64,
    error_logs: u64,
    kept_for_routings: u64,
}

pub fn run(args: ClearHistoryArgs, options: &LoadOptions) -> anyhow::Result<ExitCode> {
    let Some(loaded) = crate::load_config(options) else {
        return Ok(ExitCode::FAILURE);
    };
    let cutoff = args
        .retention
        .before(Utc::now())
        .context("the retention reaches before the start of the calendar")?;
    let db_config = loaded.config.db;
    let counts: HistoryCounts = crate::block_on(async move {
        let db = bai_db_models::connect(&db_config).await?;
        let counts = if args.dry_run {
            history::count_history(&db, cutoff.fixed_offset()).await?
        } else {
            tracing::info!("Deleting old records...");
            history::clear_history(&db, cutoff.fixed_offset()).await?
        };
        db.close()
            .await
            .context("closing the database connection")?;
        anyhow::Ok(counts)
    })??;
    let report = Report {
        cutoff: cutoff.to_rfc3339_opts(SecondsFormat::Secs, true),
        dry_run: args.dry_run,
        sessions: counts.sessions,
        kernels: counts.kernels,
        error_logs: counts.error_logs,
        kept_for_routings: counts.kept_for_routings,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if args.dry_run {
        "Would delete"
    } else {
        "Deleted"
    };
    println!(
        "{verb} {} sessions, {} kernels and {} error logs older than {}.",
        report.sessions, report.kernels, report.error_logs, report.cutoff
    );
    if report.kept_for_routings > 0 {
        println!(
            "Kept {} old sessions that model-service routings still name.",
            report.kept_for_routings
        );
    }
    Ok(ExitCode::SUCCESS)
}
