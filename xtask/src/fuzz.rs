//! `cargo xtask fuzz`: hostile input against the manager's HTTP API (issue 18). On a database and
//! an etcd namespace of the halfstack made as the benchmarks make them (schema, the install
//! guide's fixtures and etcd keys, rate limits raised so that 429s hide nothing), one
//! `manager-server` (`num-proc = 1`) is fuzzed with schemathesis (venv `fuzz`):
//!
//! - REST: every operation and every method of our OpenAPI document (`manager-cli api
//!   dump-openapi`), with positive and negative data, in every schemathesis phase (the document's
//!   examples, coverage of boundary values, random fuzzing, stateful sequences where the document
//!   links operations), `--examples` per operation and a fixed `--seed`; once signed as the
//!   example superadmin and once as the example user.
//! - GraphQL: random queries and mutations generated from our SDL (`manager-cli api
//!   dump-gql-schema`), sent signed to `POST /admin/gql` as the superadmin.
//!
//! Every request is signed in a `requests` auth hook (xtask/fuzz/bai_fuzz_hooks.py), so the signed
//! path is the one sent. The run fails on any 5xx (the stores are up throughout, so even a 503
//! is a bug), on an error answer that is not `application/problem+json` with a
//! `https://api.backend.ai/probs/...` type, and on a server that died or logged a panic.
//! [`EXCLUDED`] lists what is not fuzzed, with the reason; nothing else is left out.
//!
//! `--binaries DIR` uses the `manager-server` and `manager-cli` already built in `DIR` (the
//! integration test passes its debug build); by default they are built in release mode.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::Scratch;
use super::scheduler::{admit_sessions, built_binary, post_json, session_body};
use super::server::{Deployment, RunningServer, Server, free_ports};
use crate::{cmd, consts, venv, workspace_root};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Examples generated per operation and phase.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    examples: u64,
    /// The random seed of the whole run (the same seed generates the same requests).
    #[arg(long, value_name = "S", default_value_t = 24_03_11)]
    seed: u64,
    /// Use the `manager-server` and `manager-cli` built in DIR instead of building them in release
    /// mode.
    #[arg(long, value_name = "DIR")]
    binaries: Option<PathBuf>,
}

/// Paths not fuzzed (with every method they have), with the reason; the run prints them.
pub const EXCLUDED: &[(&str, &str)] = &[
    (
        "/events/session",
        "a server-sent event stream that stays open until the client leaves: every example would \
         wait for the request timeout (its parameters are parsed before the stream starts and are \
         covered by tests/it of bai-api)",
    ),
    ("/folders/_/hosts", STORAGE_HOSTS_REASON),
    ("/folders/_/all-hosts", STORAGE_HOSTS_REASON),
    ("/folders/_/all_hosts", STORAGE_HOSTS_REASON),
];

/// Why the host listings are not fuzzed.
const STORAGE_HOSTS_REASON: &str = "asks every storage proxy of etcd `volumes` for its volumes; \
     the fuzzed server has none running, and with one unreachable the reference answers 500 \
     (so do we); the parameters are covered by bai-api's tests/vfolder_routes.rs";

/// Sessions made (PENDING: there is no agent) before the run, so that the operations on
/// `/session/{session_name}` reach more than the look-up: the fuzzer picks their names for half of
/// the examples.
const SESSIONS: [&str; 3] = ["fuzz-0", "fuzz-1", "fuzz-2"];

/// The venv with schemathesis.
const VENV: &str = "fuzz";
/// Seconds schemathesis waits for one answer. Long-held requests (`POST /session` without
/// `enqueueOnly` waits for the session to start) are bounded by the server's own timeouts below it.
const REQUEST_TIMEOUT_SECS: &str = "60";

/// Example keypairs (`fixtures/manager/example-keypairs.json`): the superadmin and a user.
const SUPERADMIN: (&str, &str) = (
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
);
const USER: (&str, &str) = (
    "AKIANABBDUSEREXAMPLE",
    "C8qnIo29EZvXkPK_MXcuAakYTy4NYrxwmCEyNPlf",
);

/// The binaries a run needs.
#[derive(Debug)]
struct Binaries {
    cli: PathBuf,
    server: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    venv::ensure(venv::by_name(VENV))?;
    let binaries = match &args.binaries {
        Some(dir) => binaries_in(dir)?,
        None => {
            let built = super::build_release(&["manager-cli", "manager-server"])?;
            Binaries {
                cli: built[0].clone(),
                server: built[1].clone(),
            }
        }
    };
    let scratch = Scratch::new()?;
    let server = Server {
        label: "fuzz",
        program: binaries.server.clone(),
        args: Vec::new(),
        env: Vec::new(),
        port: free_ports(1)?,
        listeners: 1,
    };
    let deployment = Deployment::prepare(&scratch, &binaries.cli, &server, 1)
        .context("step: prepare the database and the etcd namespace")?;
    local_registry_only(&binaries.cli, &deployment.config)?;
    admit_sessions(&scratch, &binaries.cli, &deployment, "fuzz", 1_000)
        .context("step: the image and the keypair policy")?;

    let openapi = scratch.0.join("openapi.json");
    let sdl = scratch.0.join("schema.graphql");
    dump(&binaries.cli, &["api", "dump-openapi"], &openapi)?;
    dump(&binaries.cli, &["api", "dump-gql-schema"], &sdl)?;

    let mut running = RunningServer::start(&scratch, &server, &deployment.config)
        .context("step: start manager-server")?;
    running
        .wait_ready()
        .context("step: wait for manager-server")?;
    let base_url = format!("http://{}:{}", consts::HOST, server.port);
    for name in SESSIONS {
        post_json(server.port, "/session", &session_body(name))
            .with_context(|| format!("step: create session {name}"))?;
    }
    let config = scratch.0.join("schemathesis.toml");
    std::fs::write(&config, schemathesis_config())
        .with_context(|| format!("cannot write {}", config.display()))?;

    println!("==> not fuzzed:");
    for (path, reason) in EXCLUDED {
        println!("    {path}: {reason}");
    }
    let mut failures = Vec::new();
    let passes: [(&str, &Path, &str, (&str, &str)); 3] = [
        ("REST as the superadmin", &openapi, &base_url, SUPERADMIN),
        ("REST as a user", &openapi, &base_url, USER),
        (
            "GraphQL as the superadmin",
            &sdl,
            &format!("{base_url}/admin/gql"),
            SUPERADMIN,
        ),
    ];
    for (index, (name, schema, url, keypair)) in passes.into_iter().enumerate() {
        println!(
            "==> fuzzing {name} ({} examples, seed {})",
            args.examples, args.seed
        );
        let report = scratch.0.join(format!("report-{index}"));
        let passed = schemathesis(&args, &config, schema, url, keypair, &report)
            .with_context(|| format!("step: fuzz {name}"))?;
        if !passed {
            failures.push(format!("{name}: schemathesis reported failures (above)"));
        }
    }

    let panics = log_lines(&running.log, "panicked");
    running.stop()?;
    if !panics.is_empty() {
        failures.push(format!("the server logged panics:\n{}", panics.join("\n")));
    }
    drop(deployment);
    println!(
        "==> fuzz run over in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        bail!("the fuzz run found problems:\n{}", failures.join("\n"));
    }
    Ok(())
}

/// The binaries already built in `dir`.
fn binaries_in(dir: &Path) -> Result<Binaries> {
    Ok(Binaries {
        cli: built_binary(dir, "manager-cli")?,
        server: built_binary(dir, "manager-server")?,
    })
}

/// The install guide's registry (`cr.backend.ai`) replaced by the halfstack's: a fuzzed
/// `rescan_images` must not reach out of this machine.
fn local_registry_only(cli: &Path, config: &Path) -> Result<()> {
    let with_config = |args: &[&str]| {
        let mut command = Command::new(cli);
        command.arg("-f").arg(config).args(args);
        command
    };
    cmd::run(&mut with_config(&[
        "etcd",
        "delete",
        "--prefix",
        "config/docker/registry/",
    ]))?;
    // One key segment, quoted as the reference quotes it (as `cargo xtask up` writes it).
    let key = format!(
        "config/docker/registry/{}",
        consts::REGISTRY_NAME.replace(':', "%3A")
    );
    cmd::run(&mut with_config(&[
        "etcd",
        "put",
        &key,
        &consts::registry_url(),
    ]))?;
    cmd::run(&mut with_config(&[
        "etcd",
        "put",
        &format!("{key}/type"),
        "docker",
    ]))?;
    Ok(())
}

/// `manager-cli ARGS > file`.
fn dump(cli: &Path, args: &[&str], file: &Path) -> Result<()> {
    let text = cmd::run(Command::new(cli).args(args))?;
    std::fs::write(file, text).with_context(|| format!("cannot write {}", file.display()))
}

/// One `schemathesis run`; whether it found nothing wrong.
fn schemathesis(
    args: &Args,
    config: &Path,
    schema: &Path,
    url: &str,
    (access_key, secret_key): (&str, &str),
    report: &Path,
) -> Result<bool> {
    let venv = venv::by_name(VENV);
    let program = venv.dir().join("bin").join("schemathesis");
    let mut command = Command::new(&program);
    command
        .arg("--config-file")
        .arg(config)
        .arg("run")
        .arg(schema)
        .args(["--url", url])
        .args(["--checks", "no_server_error,problem_json_errors"])
        .args(["--mode", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", &args.examples.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .args(["--workers", "1"])
        .args(["--request-timeout", REQUEST_TIMEOUT_SECS])
        .args(["--suppress-health-check", "all"])
        .arg("--continue-on-failure")
        .args(["--report", "junit"])
        .arg("--report-dir")
        .arg(report);
    for (path, _) in EXCLUDED {
        command.args(["--exclude-path", path]);
    }
    command
        .env("SCHEMATHESIS_HOOKS", "bai_fuzz_hooks")
        .env("PYTHONPATH", workspace_root().join("xtask").join("fuzz"))
        .env("BAI_FUZZ_ACCESS_KEY", access_key)
        .env("BAI_FUZZ_SECRET_KEY", secret_key)
        .current_dir(report.parent().unwrap_or(Path::new(".")));
    println!("    {}", cmd::display(&command));
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", program.display()))?;
    Ok(status.success())
}

/// The fuzzer's configuration: the names of [`SESSIONS`] for half of the `session_name`s.
fn schemathesis_config() -> String {
    let names: Vec<String> = SESSIONS.iter().map(|name| format!("{name:?}")).collect();
    format!(
        "[dictionaries.sessions]\nvalues = [{}]\n\n[parameters]\n\
         \"path.session_name\" = {{ dictionary = \"sessions\", probability = 0.5 }}\n",
        names.join(", ")
    )
}

/// The lines of `log` that contain `needle`.
fn log_lines(log: &Path, needle: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(needle))
        .map(str::to_owned)
        .collect()
}
