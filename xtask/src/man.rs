//! `cargo xtask man [--out DIR]`: the man pages of manager-cli, rendered by its own `man-pages`
//! command (clap_mangen over the clap definition it parses with), so that xtask neither repeats
//! the CLI nor links the product crates.

use std::path::PathBuf;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the pages (one `.1` file per command); relative to the workspace root.
    #[arg(long, value_name = "DIR", default_value = "target/man")]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let out = crate::workspace_root().join(&args.out);
    let status = crate::cargo()
        .args(["run", "--quiet", "-p", "manager-cli", "--", "man-pages"])
        .arg(&out)
        .status()
        .context("cannot run cargo")?;
    anyhow::ensure!(status.success(), "manager-cli man-pages failed ({status})");
    println!("Man pages in {}", out.display());
    Ok(())
}
