//! `cargo xtask up`: bring it all up for a developer, what the reference `install-dev.sh` and the
//! install guide do for the parts this project has so far: Debian packages, the halfstack, the
//! manager's RPC keypair, a local `manager.toml`, a config check, the shared configuration in
//! etcd, the database schema and the example fixtures (all with our own manager CLI), and finally
//! the manager server in the foreground.

use anyhow::{Context, Result, bail};

use crate::halfstack::{self, Layout};
use crate::{apt, consts, manager_cli, workspace_root};

/// Where `up` puts the RPC keypair and under which name (as the reference `install-dev.sh`).
const KEY_DIR: &str = "fixtures/manager";
const KEY_NAME: &str = "manager";
const CONFIG_TEMPLATE: &str = "configs/manager/halfstack.toml";
pub const CONFIG: &str = "manager.toml";

/// The install guide's "Global configuration" for the halfstack: Redis, and the halfstack's
/// registry as a plain Docker registry (the guide configures `cr.backend.ai` the same way, with
/// type `harbor2`).
fn etcd_config() -> [(String, String); 4] {
    // The registry name is one key segment, URL-quoted as the reference quotes it (`:` is the
    // only character of it that needs quoting).
    let registry = format!(
        "config/docker/registry/{}",
        consts::REGISTRY_NAME.replace(':', "%3A")
    );
    [
        (
            "config/redis/addr".to_owned(),
            format!("{}:{}", consts::HOST, consts::REDIS_PORT),
        ),
        (
            "config/redis/password".to_owned(),
            consts::REDIS_PASSWORD.to_owned(),
        ),
        (registry.clone(), consts::registry_url()),
        (format!("{registry}/type"), "docker".to_owned()),
    ]
}

/// The storage volumes (vfolder types, default host, storage proxy), as `install-dev.sh` loads them.
const ETCD_VOLUMES: &str = "configs/manager/halfstack.etcd.volumes.json";

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    dir: halfstack::Dir,
    /// Stop when everything is prepared instead of running the manager server.
    #[arg(long)]
    no_server: bool,
}

pub fn run(args: Args) -> Result<()> {
    let root = workspace_root();
    let layout = Layout::new(args.dir)?;

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
    for (key, value) in etcd_config() {
        println!("==> manager-cli -f {CONFIG} etcd put {key} {value:?}");
        manager_cli(&["-f", CONFIG, "etcd", "put", &key, &value])?;
    }
    println!("==> manager-cli -f {CONFIG} etcd put-json volumes {ETCD_VOLUMES}");
    manager_cli(&["-f", CONFIG, "etcd", "put-json", "volumes", ETCD_VOLUMES])?;
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
        "  registry  {} (anonymous; registry `{}`: `cargo xtask registry push-test-images`, then \
         `manager-cli image rescan {}`)",
        consts::registry_url(),
        consts::REGISTRY_NAME,
        consts::REGISTRY_NAME
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
    if args.no_server {
        println!("Start the server with `cargo run -p manager-server -- -f {CONFIG}`.");
        return Ok(());
    }
    run_server()
}

/// Builds the server and replaces this process with it, so that Ctrl-C reaches it directly.
fn run_server() -> Result<()> {
    use std::os::unix::process::CommandExt;

    println!();
    println!("==> building manager-server");
    crate::cmd::run_inherit(crate::cargo().args(["build", "--quiet", "-p", "manager-server"]))?;
    let binary = crate::target_dir().join("debug").join("manager-server");
    println!(
        "==> {} -f {CONFIG} (http://127.0.0.1:8081; Ctrl-C stops it)",
        binary.display()
    );
    let error = std::process::Command::new(&binary)
        .args(["-f", CONFIG])
        .current_dir(workspace_root())
        .exec();
    Err(error).with_context(|| format!("cannot run {}", binary.display()))
}
