//! `cargo xtask up`: bring it all up for a developer, what the reference `install-dev.sh` does
//! for the parts this project has so far: Debian packages, the halfstack, the manager's RPC
//! keypair, a local `manager.toml`, a config check, the database schema and the example fixtures,
//! all with our own manager CLI.

use anyhow::{Context, Result, bail};

use crate::halfstack::{self, Layout};
use crate::{apt, consts, manager_cli, workspace_root};

/// Where `up` puts the RPC keypair and under which name (as the reference `install-dev.sh`).
const KEY_DIR: &str = "fixtures/manager";
const KEY_NAME: &str = "manager";
const CONFIG_TEMPLATE: &str = "configs/manager/halfstack.toml";
pub const CONFIG: &str = "manager.toml";

pub fn run(dir: halfstack::Dir) -> Result<()> {
    let root = workspace_root();
    let layout = Layout::new(dir)?;

    println!("==> Debian packages the build needs");
    apt::ensure(consts::BUILD_PACKAGES)?;

    println!("==> halfstack up (and its Debian packages)");
    halfstack::up(&layout, &mut Vec::new())?;

    let mut generated = Vec::new();
    let secret = root.join(KEY_DIR).join(format!("{KEY_NAME}.key_secret"));
    if secret.exists() {
        println!("==> RPC keypair {} exists; keeping it", secret.display());
    } else {
        println!("==> generating the manager's RPC keypair in {KEY_DIR}");
        let key_dir = root.join(KEY_DIR);
        std::fs::create_dir_all(&key_dir)
            .with_context(|| format!("cannot create {}", key_dir.display()))?;
        manager_cli(&["generate-rpc-keypair", KEY_DIR, KEY_NAME])?;
        generated.push(format!(
            "{KEY_DIR}/{KEY_NAME}.key, {KEY_DIR}/{KEY_NAME}.key_secret (manager RPC keypair)"
        ));
    }

    let config = root.join(CONFIG);
    if config.exists() {
        println!("==> {CONFIG} exists; keeping it");
    } else {
        let template = root.join(CONFIG_TEMPLATE);
        if !template.exists() {
            bail!("{} is missing; cannot make {CONFIG}", template.display());
        }
        std::fs::copy(&template, &config).with_context(|| {
            format!("cannot copy {} to {}", template.display(), config.display())
        })?;
        println!("==> copied {CONFIG_TEMPLATE} to {CONFIG}");
        generated.push(format!("{CONFIG} (copy of {CONFIG_TEMPLATE})"));
    }

    println!("==> manager-cli -f {CONFIG} config check");
    manager_cli(&["-f", CONFIG, "config", "check"])?;
    crate::db::schema_and_fixtures()?;

    println!();
    println!("Everything is up. Halfstack ({}):", layout.root.display());
    halfstack::status(&layout);
    println!();
    println!("Connect with:");
    println!("  postgres  {}", consts::pg_url(consts::PG_DATABASE));
    println!(
        "  redis     redis://:{}@{}:{}",
        consts::REDIS_PASSWORD,
        consts::HOST,
        consts::REDIS_PORT
    );
    println!(
        "  etcd      {} (no auth; manager namespace `{}`)",
        consts::etcd_client_url(),
        consts::ETCD_NAMESPACE
    );
    println!(
        "Logs of the services this folder runs are in {}.",
        layout.logs().display()
    );
    if generated.is_empty() {
        println!("Nothing was generated: keypair and {CONFIG} existed already.");
    } else {
        println!("Generated:");
        for item in generated {
            println!("  {item}");
        }
    }
    println!("Stop the services with `cargo xtask halfstack down`.");
    Ok(())
}
