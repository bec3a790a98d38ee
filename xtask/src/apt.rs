//! Debian packages the tasks need: checked with `dpkg-query`, installed with `apt-get` when we are
//! root, otherwise the exact `sudo apt-get install` line is printed for the developer to run.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

use crate::{cmd, sys};

/// `apt-get update` runs at most once per xtask run, before the first install.
static UPDATED: AtomicBool = AtomicBool::new(false);

/// Makes sure every package in `packages` is installed.
pub fn ensure(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|package| !installed(package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let install_args = ["install", "-y", "--no-install-recommends"];
    if !sys::is_root() {
        bail!(
            "missing Debian packages: {}; install them with:\n    sudo apt-get {} {}",
            missing.join(" "),
            install_args.join(" "),
            missing.join(" ")
        );
    }
    if !UPDATED.swap(true, Ordering::SeqCst) {
        println!("==> apt-get update");
        cmd::run(Command::new("apt-get").arg("update"))?;
    }
    println!("==> apt-get install {}", missing.join(" "));
    // Installing postgresql-15 or redis-server may create and start Debian's own service on
    // 5432 / 6379; we leave those alone, the halfstack uses other ports.
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(install_args)
            .args(&missing),
    )?;
    Ok(())
}

fn installed(package: &str) -> bool {
    cmd::probe(
        Command::new("dpkg-query").args(["-W", "-f=${Status}", package]),
        std::time::Duration::from_secs(30),
    )
    .is_some_and(|status| status == "install ok installed")
}
