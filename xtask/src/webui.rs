//! `cargo xtask webui`: the Backend.AI WebUI 24.03 in front of the halfstack's manager. Runs the
//! real `backend.ai-webserver` 24.3.11 (venv `webui`, whose wheel bundles the WebUI) in the
//! foreground with `configs/webserver/halfstack.conf`: http://127.0.0.1:8090, forwarding to the
//! server `cargo xtask up` runs on :8081. Ctrl-C stops it.

use std::process::Command;

use anyhow::{Context, Result};

use crate::{cmd, venv, workspace_root};

/// The web server's configuration, relative to the workspace root.
const CONFIG: &str = "configs/webserver/halfstack.conf";

pub fn run() -> Result<()> {
    let webui = venv::by_name("webui");
    venv::ensure(webui)?;
    let root = workspace_root();
    // The web server writes its runtime files into its working directory: the git-ignored
    // halfstack folder, not the checkout.
    let runtime = root.join(".halfstack").join("webserver");
    std::fs::create_dir_all(&runtime).with_context(|| format!("creating {}", runtime.display()))?;
    println!("==> backend.ai-webserver on http://127.0.0.1:8090 (forwarding to 127.0.0.1:8081)");
    println!("    log in as admin@lablup.com / wJalrXUt or user@lablup.com / C8qnIo29");
    cmd::run_inherit(
        Command::new(webui.python_bin())
            .args(["-m", "ai.backend.web.server", "-f"])
            .arg(root.join(CONFIG))
            .current_dir(&runtime),
    )
}
