//! `cargo xtask bench rescan`: `manager-cli image rescan` against the reference's `backend.ai mgr
//! image rescan` on one registry of `--repositories` x `--tags` images, each run on a database
//! made fresh (with the schema) before it.
//!
//! A second table times the same scans of a registry the catalogue already holds (filled by our
//! scan before each run), which is what a periodic rescan costs.
//!
//! The registry is a `docker-registry` of its own on a free port with storage in the scratch folder,
//! filled by the `push-test-images` example of bai-registry-scanner (manifest lists: the reference
//! rejects single-platform images). Before timing, each contender scans once and the images it
//! saved are counted, so a contender that silently saves nothing (the reference exits 0 whatever
//! happens) cannot look fast.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{
    BenchDatabase, Benchmark, Contender, EtcdNamespace, Options, Scratch, bench_config,
    build_manager_cli, checked_reference, measure, plain, quote_path, reference_contender,
};
use crate::cmd::{self, shell_quote};
use crate::{apt, consts};

/// The registry's name in etcd and in the images' canonical names.
const REGISTRY_NAME: &str = "bench-registry";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Timed runs per command.
    #[arg(long, default_value_t = 5)]
    runs: u32,
    /// Untimed runs per command before the timed ones.
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// Repositories in the registry.
    #[arg(long, default_value_t = 200)]
    repositories: usize,
    /// Tags per repository.
    #[arg(long, default_value_t = 3)]
    tags: usize,
    /// A `backend.ai` executable of the reference manager, measured as
    /// `PATH mgr -f CONFIG image rescan bench-registry`.
    #[arg(long, value_name = "PATH")]
    reference_cli: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    apt::ensure(&["hyperfine", "docker-registry"])?;
    let reference = checked_reference(args.reference_cli)?;
    let scratch = Scratch::new()?;
    let ours = build_manager_cli()?;
    let pusher = build_pusher()?;
    let registry = BenchRegistry::start(&scratch.0)?;
    println!(
        "==> pushing {} repositories x {} tags into {}",
        args.repositories, args.tags, registry.url
    );
    // Concurrent pushes of one repository's shared layer now and then meet the registry's
    // "blob unknown"; pushing again completes the set (blobs already there are not sent twice).
    let push = || {
        cmd::run_inherit(
            Command::new(&pusher)
                .arg(&registry.url)
                .args(["--repositories", &args.repositories.to_string()])
                .args(["--tags", &args.tags.to_string()]),
        )
    };
    push().or_else(|_| push()).or_else(|_| push())?;

    let namespace = EtcdNamespace::new(&scratch, &ours)?;
    let database = BenchDatabase::new(&scratch, &ours)?;
    let config_file = bench_config(
        &scratch,
        &ours,
        "rescan.toml",
        &[
            (
                &format!("namespace = \"{}\"", consts::ETCD_NAMESPACE),
                &format!("namespace = \"{}\"", namespace.name),
            ),
            (
                &format!("name = \"{}\"", consts::PG_DATABASE),
                &format!("name = \"{}\"", database.name),
            ),
        ],
    )?;
    let config = quote_path(&config_file);
    for (key, value) in [
        (
            format!("config/docker/registry/{REGISTRY_NAME}"),
            registry.url.as_str(),
        ),
        (
            format!("config/docker/registry/{REGISTRY_NAME}/type"),
            "docker",
        ),
    ] {
        cmd::run(
            Command::new(&ours)
                .arg("-f")
                .arg(&config_file)
                .args(["etcd", "put", &key, value]),
        )?;
    }

    let prepare = database.recreate(Some(&ours));
    let mut contenders = vec![Contender {
        prepare: Some(prepare.clone()),
        ..plain(
            "ours",
            format!(
                "{} -f {config} image rescan {REGISTRY_NAME}",
                quote_path(&ours)
            ),
        )
    }];
    if let Some(reference) = reference {
        contenders.push(Contender {
            prepare: Some(prepare.clone()),
            ..reference_contender(&format!(
                "{} mgr -f {config} image rescan {REGISTRY_NAME}",
                quote_path(&reference)
            ))
        });
    }
    let expected = args.repositories * args.tags;
    for contender in &contenders {
        let saved = saved_images(contender, &database.name)?;
        println!("==> {}: one scan saved {saved} images", contender.label);
        if saved != expected {
            bail!(
                "{} saved {saved} images, not the {expected} pushed; the timing would mean nothing",
                contender.label
            );
        }
    }
    let options = Options {
        runs: args.runs,
        warmup: args.warmup,
    };
    let size = format!("{} repositories x {} tags", args.repositories, args.tags);
    let first_scans = Benchmark {
        title: format!("image rescan into an empty catalogue ({size})"),
        contenders,
    };
    measure(&first_scans, &options, &scratch)?;

    // The same scans of a registry the catalogue already holds (filled by our scan before each
    // run): what an operator's periodic rescan costs.
    let filled = format!(
        "sh -c {}",
        shell_quote(&format!(
            "{prepare} && {} > /dev/null",
            first_scans.contenders[0].command
        ))
    );
    let rescans = Benchmark {
        title: format!("image rescan of an unchanged registry ({size})"),
        contenders: first_scans
            .contenders
            .into_iter()
            .map(|contender| Contender {
                prepare: Some(filled.clone()),
                ..contender
            })
            .collect(),
    };
    measure(&rescans, &options, &scratch)
}

/// Runs `contender` once after its preparation and counts the rows of `images` it left.
fn saved_images(contender: &Contender, database: &str) -> Result<usize> {
    if let Some(prepare) = &contender.prepare {
        cmd::run(Command::new("sh").arg("-c").arg(prepare))?;
    }
    let output = Command::new("sh")
        .arg("-c")
        .arg(&contender.command)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", contender.command))?;
    if !output.status.success() && contender.label == "ours" {
        bail!(
            "`{}` failed: {}{}",
            contender.command,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let count = cmd::run(
        Command::new("psql")
            .arg(consts::pg_url(database))
            .args(["-Atc", "SELECT count(*) FROM images"]),
    )?;
    count
        .trim()
        .parse()
        .with_context(|| format!("psql printed {count:?}, not a count"))
}

/// `cargo build --release` of the `push-test-images` example; returns its path.
fn build_pusher() -> Result<PathBuf> {
    println!("==> cargo build --release -p bai-registry-scanner --example push-test-images");
    cmd::run_inherit(crate::cargo().args([
        "build",
        "--release",
        "-p",
        "bai-registry-scanner",
        "--features",
        "testing",
        "--example",
        "push-test-images",
    ]))?;
    let binary = crate::target_dir().join("release/examples/push-test-images");
    if binary.is_file() {
        Ok(binary)
    } else {
        bail!("{} is missing after the build", binary.display())
    }
}

/// A `docker-registry` on a free port with its storage under the scratch folder; killed on drop.
#[derive(Debug)]
struct BenchRegistry {
    url: String,
    child: Child,
}

impl BenchRegistry {
    fn start(scratch: &Path) -> Result<BenchRegistry> {
        let dir = scratch.join("registry");
        std::fs::create_dir_all(dir.join("storage"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let port = TcpListener::bind((consts::HOST, 0))
            .and_then(|listener| listener.local_addr())
            .context("cannot find a free port")?
            .port();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {}:{port}\n",
                dir.join("storage").display(),
                consts::HOST
            ),
        )
        .with_context(|| format!("cannot write {}", config.display()))?;
        let log = dir.join("registry.log");
        let (stdout, stderr) = cmd::log_files(&log)?;
        let mut command = Command::new("docker-registry");
        command
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = command
            .spawn()
            .with_context(|| format!("cannot run `{}`", cmd::display(&command)))?;
        let registry = BenchRegistry {
            url: format!("http://{}:{port}", consts::HOST),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect((consts::HOST, port)).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "docker-registry did not listen on port {port} within 15 s\n{}",
                    cmd::log_tail(&log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(registry)
    }
}

impl Drop for BenchRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
