//! `cargo xtask up`: bring it all up for a developer, what the reference `install-dev.sh` and the
//! install guide do for the parts this project has so far: Debian packages, the halfstack, the
//! manager's RPC keypair, a local `manager.toml`, a config check, the shared configuration in
//! etcd, the database schema and the example fixtures (all with our own manager CLI), and finally
//! the manager server in the foreground with [`SIM_AGENTS`] simulated agents beside it (agent-sim,
//! stopped by the same Ctrl-C, with its local code runner), so that `backend.ai session create`
//! and `backend.ai run` work right away.

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
    /// Run the server without the simulated agents (e.g. to start real agents instead).
    #[arg(long)]
    no_agents: bool,
}

/// How many agents `agent-sim` simulates beside the server: `i-dummy-1-0` and `i-dummy-1-1`, each
/// with 8 cores and 16 GiB, RPC on ports 6001 and 6002, in resource group `default`.
pub const SIM_AGENTS: u32 = 2;
/// Their configuration: the real agent's dummy-mode `agent.toml` of this repository.
const SIM_AGENT_CONFIG: &str = "configs/agent/dummy-agent.toml";

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
    sample_images()?;

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
    run_server(&layout, !args.no_agents)
}

/// The image sessions can run right away: the sample images pushed into the halfstack's
/// registry, [`SAMPLE_IMAGE`] scanned, and the registry allowed for domain `default` (the install
/// guide's fixtures allow only `cr.backend.ai`, which needs the internet).
fn sample_images() -> Result<()> {
    println!("==> pushing the sample images into the halfstack's registry");
    crate::registry::push_test_images(&[])?;
    let image = format!("{}/{SAMPLE_IMAGE}", consts::REGISTRY_NAME);
    println!("==> manager-cli -f {CONFIG} image rescan {image}");
    manager_cli(&["-f", CONFIG, "image", "rescan", &image])?;
    println!(
        "==> domain default may use registry {}",
        consts::REGISTRY_NAME
    );
    let _ = crate::cmd::run(
        std::process::Command::new("psql")
            .arg(consts::pg_url(consts::PG_DATABASE))
            .args(["-v", "ON_ERROR_STOP=1", "-qc"])
            .arg(format!(
                "UPDATE domains SET allowed_docker_registries = \
                 array_append(allowed_docker_registries, '{registry}') \
                 WHERE name = 'default' AND NOT ('{registry}' = ANY(allowed_docker_registries))",
                registry = consts::REGISTRY_NAME
            )),
    )?;
    Ok(())
}

/// The sample image a newcomer's first session runs.
const SAMPLE_IMAGE: &str = "testing/python:3.9-ubuntu20.04";

/// Builds the server (and agent-sim), starts the simulated agents in this terminal's process
/// group, and replaces this process with the server, so that Ctrl-C reaches both directly.
fn run_server(layout: &Layout, with_agents: bool) -> Result<()> {
    use std::os::unix::process::CommandExt;

    println!();
    println!("==> building manager-server and agent-sim");
    crate::cmd::run_inherit(crate::cargo().args([
        "build",
        "--quiet",
        "-p",
        "manager-server",
        "-p",
        "agent-sim",
    ]))?;
    let binary = crate::target_dir().join("debug").join("manager-server");
    if with_agents {
        let log = layout.logs().join("agent-sim.log");
        let (stdout, stderr) = crate::cmd::log_files(&log)?;
        let agent_sim = crate::target_dir().join("debug").join("agent-sim");
        // The local runner, so that `backend.ai run` really runs code (development only).
        let mut sim_args = vec![
            "-f".to_owned(),
            SIM_AGENT_CONFIG.to_owned(),
            "--agents".to_owned(),
            SIM_AGENTS.to_string(),
            "--runner".to_owned(),
            "local".to_owned(),
        ];
        if crate::sys::is_root() {
            sim_args.push("--allow-root-runner".to_owned());
        }
        std::process::Command::new(&agent_sim)
            .args(&sim_args)
            .current_dir(workspace_root())
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {}", agent_sim.display()))?;
        println!(
            "==> agent-sim: {SIM_AGENTS} simulated agents (i-dummy-1-0, i-dummy-1-1: 8 cores, 16 GiB \
             each, resource group default), log in {}; Ctrl-C stops them with the server",
            log.display()
        );
        println!(
            "==> agent-sim runs code with --runner local: user code runs on this host{}, \
             without isolation (development only)",
            if crate::sys::is_root() {
                " as root (--allow-root-runner)"
            } else {
                ""
            }
        );
        println!(
            "    try: backend.ai session create -r cpu=1 -r mem=1g {}/{SAMPLE_IMAGE}",
            consts::REGISTRY_NAME
        );
        println!(
            "     or: backend.ai run -r cpu=1 -r mem=1g -c 'print(6*7)' {}/{SAMPLE_IMAGE}",
            consts::REGISTRY_NAME
        );
    }
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
