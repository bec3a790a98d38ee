//! `cargo xtask bench CASE`: wall-time benchmarks with hyperfine, our implementation against a
//! baseline measured in the same run (and the reference implementation when one is given).
//!
//! A case builds a [`Benchmark`]: a list of [`Contender`]s, ours first, each a command line with
//! an optional per-run preparation. [`measure`] runs hyperfine on them and prints the table, so a
//! new case (`bench etcd-put`, ...) is one subcommand variant and one function building commands.
//! `bench server` is the exception: it load-tests running HTTP servers with wrk ([`server`]), and
//! so are `bench agents`: simulated agents heartbeating against a running server ([`agents`]),
//! and `bench rpc`: `manager-cli agent ping` loads against simulated agents ([`rpc`]); the last
//! two share the private Redis and the agent-sim processes of [`peers`].

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::cmd::{self, shell_quote};
use crate::halfstack::etcd;
use crate::{apt, consts, venv};

mod agents;
mod conns;
// `cargo xtask cluster` lives beside the benchmarks and reuses their deployments and peers.
#[path = "../cluster.rs"]
pub mod cluster;
// `cargo xtask faults` too: the same deployments, servers and agents, on stores of its own.
mod events;
#[path = "../faults.rs"]
pub mod faults;
// `cargo xtask fuzz` too: it reuses their deployments and server processes.
#[path = "../fuzz.rs"]
pub mod fuzz;
mod peers;
mod rescan;
mod rpc;
mod scheduler;
mod server;
mod sign;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    case: Case,
}

#[derive(Debug, clap::Subcommand)]
enum Case {
    #[command(flatten)]
    Cli(CliCase),
    /// Requests per second and p99 latency of `GET /`, `GET /auth/test` and `GET /resource/presets`
    /// under wrk, of `manager-server` and the reference manager, each on a fresh database and etcd
    /// namespace of the halfstack; and their memory after the load.
    Server(server::Args),
    /// `manager-cli image rescan` of a registry of 200 repositories x 3 tags, against the
    /// reference's `backend.ai mgr image rescan`, each on a fresh database.
    Rescan(rescan::Args),
    /// `agent-sim` agents heartbeating against `manager-server` (and the reference manager), each
    /// on a fresh database, etcd namespace and private Redis: heartbeats handled per second, lag
    /// from XADD to the database (p50/p99), the server's CPU and memory.
    Agents(agents::Args),
    /// Agent RPC `ping` against `agent-sim`, with and without CURVE: round trips per second and
    /// p50/p99 latency of one connection with many calls in flight (ours), against a connection
    /// per call (the reference's pattern, run by our own client in the same run).
    Rpc(rpc::Args),
    /// Sessions from PENDING to RUNNING: (a) 100 enqueued at once on one real dummy agent,
    /// seconds until all RUNNING, ours and the reference manager; (b) 10,000 pending on 1,000
    /// agent-sim agents, sessions scheduled per second and seconds until all RUNNING (ours).
    Scheduler(scheduler::Args),
    /// Server-sent events: 200 `GET /events/session` clients connected while 1,000 sessions go
    /// through their lifecycle on agent-sim; every client must receive every event of every
    /// session in order. The server's memory (before, peak, after) against the same run with no
    /// client.
    Events(events::Args),
    /// 10,000 idle connections (half with a partial request head) held by `manager-server`:
    /// its memory per connection, `GET /` latency while they are held, and whether the server
    /// closes them at its header and keep-alive timeouts.
    Conns(conns::Args),
}

/// The cases that time CLI commands with hyperfine.
#[derive(Debug, clap::Subcommand)]
enum CliCase {
    /// `manager-cli generate-rpc-keypair` against pyzmq's own `zmq.auth.create_certificates`.
    Keypair {
        #[command(flatten)]
        options: Options,
        /// A `backend.ai` executable of the reference manager, measured as
        /// `PATH mgr generate-rpc-keypair DIR manager`.
        #[arg(long, value_name = "PATH")]
        reference_cli: Option<PathBuf>,
    },
    /// `manager-cli etcd put` of one key against `etcdctl put` (and the reference CLI), on the
    /// halfstack's etcd, in a namespace of its own that is deleted afterwards.
    EtcdPut {
        #[command(flatten)]
        options: Options,
        /// A `backend.ai` executable of the reference manager.
        #[arg(long, value_name = "PATH")]
        reference_cli: Option<PathBuf>,
    },
    /// `manager-cli schema oneshot` on a fresh database per run (and the reference's).
    SchemaOneshot {
        #[command(flatten)]
        options: Options,
        /// A `backend.ai` executable of the reference manager.
        #[arg(long, value_name = "PATH")]
        reference_cli: Option<PathBuf>,
    },
    /// `manager-cli fixture populate` of the install guide's four files, then of a generated
    /// file of `--users` users, each run on a fresh database with the schema (and the reference's).
    FixturePopulate {
        #[command(flatten)]
        options: Options,
        /// A `backend.ai` executable of the reference manager.
        #[arg(long, value_name = "PATH")]
        reference_cli: Option<PathBuf>,
        /// Users in the generated file (their passwords are bcrypt-hashed at cost 12).
        #[arg(long, default_value_t = 1000)]
        users: usize,
    },
    /// `manager-cli etcd put-json` of a 1,000-key tree (and the reference CLI's), on the
    /// halfstack's etcd.
    EtcdPutJson {
        #[command(flatten)]
        options: Options,
        /// A `backend.ai` executable of the reference manager.
        #[arg(long, value_name = "PATH")]
        reference_cli: Option<PathBuf>,
    },
}

/// Options every case takes.
#[derive(Debug, clap::Args)]
struct Options {
    /// Timed runs per command.
    #[arg(long, default_value_t = 30)]
    runs: u32,
    /// Untimed runs per command before the timed ones.
    #[arg(long, default_value_t = 3)]
    warmup: u32,
}

pub fn run(args: Args) -> Result<()> {
    match args.case {
        Case::Cli(case) => cli_case(case),
        Case::Server(args) => server::run(args),
        Case::Rescan(args) => rescan::run(args),
        Case::Agents(args) => agents::run(args),
        Case::Rpc(args) => rpc::run(args),
        Case::Scheduler(args) => scheduler::run(args),
        Case::Events(args) => events::run(args),
        Case::Conns(args) => conns::run(args),
    }
}

fn cli_case(case: CliCase) -> Result<()> {
    apt::ensure(&["hyperfine"])?;
    let scratch = Scratch::new()?;
    let ours = build_manager_cli()?;
    match case {
        CliCase::Keypair {
            options,
            reference_cli,
        } => measure(
            &keypair(&scratch, &ours, reference_cli)?,
            &options,
            &scratch,
        ),
        CliCase::EtcdPut {
            options,
            reference_cli,
        } => {
            let namespace = EtcdNamespace::new(&scratch, &ours)?;
            let benchmark = etcd_put(&ours, &namespace, reference_cli)?;
            measure(&benchmark, &options, &scratch)
        }
        CliCase::SchemaOneshot {
            options,
            reference_cli,
        } => {
            let database = BenchDatabase::new(&scratch, &ours)?;
            let benchmark = schema_oneshot(&ours, &database, reference_cli)?;
            measure(&benchmark, &options, &scratch)
        }
        CliCase::FixturePopulate {
            options,
            reference_cli,
            users,
        } => {
            let database = BenchDatabase::new(&scratch, &ours)?;
            let install_guide: Vec<String> = crate::db::INSTALL_GUIDE_FIXTURES
                .iter()
                .map(|file| quote_path(&crate::workspace_root().join(file)))
                .collect();
            let benchmark =
                fixture_populate(&ours, &database, reference_cli.clone(), &install_guide)?;
            measure(&benchmark, &options, &scratch)?;
            let generated = scratch.0.join("users.json");
            std::fs::write(&generated, serde_json::to_string(&generated_users(users))?)
                .with_context(|| format!("cannot write {}", generated.display()))?;
            let benchmark =
                fixture_populate(&ours, &database, reference_cli, &[quote_path(&generated)])?;
            measure(&benchmark, &options, &scratch)
        }
        CliCase::EtcdPutJson {
            options,
            reference_cli,
        } => {
            let namespace = EtcdNamespace::new(&scratch, &ours)?;
            let benchmark = etcd_put_json(&scratch, &ours, &namespace, reference_cli)?;
            measure(&benchmark, &options, &scratch)
        }
    }
}

/// One command line measured by hyperfine.
#[derive(Debug)]
struct Contender {
    /// Short name in hyperfine's output and in our table.
    label: String,
    /// Command line in POSIX shell words. hyperfine splits it and runs it without a shell
    /// (`-N`), so a few-millisecond command is not drowned in shell start-up noise; a case
    /// that needs pipes writes `sh -c '...'`.
    command: String,
    /// Command run before each timed run of this command, not timed (same syntax).
    prepare: Option<String>,
}

/// What one `bench` case measures; the first contender is ours, the base of the ratio column.
#[derive(Debug)]
struct Benchmark {
    title: String,
    contenders: Vec<Contender>,
}

/// `generate-rpc-keypair` of ours, pyzmq's generator (what the reference CLI calls), and
/// optionally the reference CLI itself, each writing into a folder emptied before every run
/// (our CLI refuses to overwrite keys).
fn keypair(scratch: &Scratch, ours: &Path, reference_cli: Option<PathBuf>) -> Result<Benchmark> {
    let py312 = venv::by_name("py312");
    venv::ensure(py312)?;

    // Each contender writes into a folder of its own, emptied before every run.
    let contender = |label: &str, command: &dyn Fn(&str) -> String| {
        let dir = quote_path(&scratch.0.join(label));
        let prepare = shell_quote(&format!("rm -rf {dir} && mkdir {dir}"));
        Contender {
            label: label.into(),
            command: command(&dir),
            prepare: Some(format!("sh -c {prepare}")),
        }
    };
    let mut contenders = vec![
        contender("ours", &|dir| {
            format!("{} generate-rpc-keypair {dir} manager", quote_path(ours))
        }),
        contender("pyzmq", &|dir| {
            let script =
                "import zmq.auth,sys; zmq.auth.create_certificates(sys.argv[1], 'manager')";
            let python = quote_path(&py312.python_bin());
            format!("{python} -c {} {dir}", shell_quote(script))
        }),
    ];
    if let Some(reference) = checked_reference(reference_cli)? {
        contenders.push(contender("reference", &|dir| {
            format!(
                "{} mgr generate-rpc-keypair {dir} manager",
                quote_path(&reference)
            )
        }));
    }
    Ok(Benchmark {
        title: "generate-rpc-keypair".into(),
        contenders,
    })
}

/// One `etcd put` of ours, of etcdctl (the Go client, a floor for any client) and of the reference.
fn etcd_put(
    ours: &Path,
    namespace: &EtcdNamespace,
    reference_cli: Option<PathBuf>,
) -> Result<Benchmark> {
    let config = quote_path(&namespace.config);
    let mut contenders = vec![
        plain(
            "ours",
            format!("{} -f {config} etcd put bench/key value", quote_path(ours)),
        ),
        plain(
            "etcdctl",
            format!(
                "etcdctl --endpoints={} put /sorna/{}/bench/key value",
                consts::etcd_client_url(),
                namespace.name
            ),
        ),
    ];
    if let Some(reference) = checked_reference(reference_cli)? {
        contenders.push(reference_contender(&format!(
            "{} mgr -f {config} etcd put bench/key value",
            quote_path(&reference)
        )));
    }
    Ok(Benchmark {
        title: "etcd put (one key)".into(),
        contenders,
    })
}

/// `etcd put-json` of a 1,000-key tree (ten groups of 100 keys), ours and the reference's.
fn etcd_put_json(
    scratch: &Scratch,
    ours: &Path,
    namespace: &EtcdNamespace,
    reference_cli: Option<PathBuf>,
) -> Result<Benchmark> {
    let tree: serde_json::Map<String, serde_json::Value> = (0..10)
        .map(|group| {
            let keys = (0..100)
                .map(|key| {
                    (
                        format!("key-{key}"),
                        serde_json::Value::String(format!("value {group}/{key}")),
                    )
                })
                .collect();
            (format!("group-{group}"), serde_json::Value::Object(keys))
        })
        .collect();
    let file = scratch.0.join("tree.json");
    std::fs::write(&file, serde_json::to_string(&tree)?)
        .with_context(|| format!("cannot write {}", file.display()))?;
    let (config, file) = (quote_path(&namespace.config), quote_path(&file));
    let mut contenders = vec![plain(
        "ours",
        format!(
            "{} -f {config} etcd put-json bench {file}",
            quote_path(ours)
        ),
    )];
    if let Some(reference) = checked_reference(reference_cli)? {
        contenders.push(reference_contender(&format!(
            "{} mgr -f {config} etcd put-json bench {file}",
            quote_path(&reference)
        )));
    }
    Ok(Benchmark {
        title: "etcd put-json (1,000 keys)".into(),
        contenders,
    })
}

/// `schema oneshot` of ours and of the reference, each on a database created empty before the run.
fn schema_oneshot(
    ours: &Path,
    database: &BenchDatabase,
    reference_cli: Option<PathBuf>,
) -> Result<Benchmark> {
    let config = quote_path(&database.config);
    let mut contenders = vec![Contender {
        prepare: Some(database.recreate(None)),
        ..plain(
            "ours",
            format!("{} -f {config} schema oneshot", quote_path(ours)),
        )
    }];
    if let Some(reference) = checked_reference(reference_cli)? {
        let alembic = quote_path(&database.alembic_ini);
        contenders.push(Contender {
            prepare: Some(database.recreate(None)),
            ..reference_contender(&format!(
                "{} mgr schema oneshot -f {alembic}",
                quote_path(&reference)
            ))
        });
    }
    Ok(Benchmark {
        title: "schema oneshot".into(),
        contenders,
    })
}

/// `fixture populate` of `files` in order, ours and the reference's, each run on a database that
/// was made again and given the schema (by our oneshot: the same DDL) before the run.
fn fixture_populate(
    ours: &Path,
    database: &BenchDatabase,
    reference_cli: Option<PathBuf>,
    files: &[String],
) -> Result<Benchmark> {
    let config = quote_path(&database.config);
    let chain = |program: &str| {
        let steps: Vec<String> = files
            .iter()
            .map(|file| format!("{program} -f {config} fixture populate {file}"))
            .collect();
        steps.join(" && ")
    };
    let prepare = database.recreate(Some(ours));
    let mut contenders = vec![Contender {
        prepare: Some(prepare.clone()),
        ..plain(
            "ours",
            format!("sh -c {}", shell_quote(&chain(&quote_path(ours)))),
        )
    }];
    if let Some(reference) = checked_reference(reference_cli)? {
        contenders.push(Contender {
            prepare: Some(prepare),
            ..reference_contender(&chain(&format!("{} mgr", quote_path(&reference))))
        });
    }
    Ok(Benchmark {
        title: format!(
            "fixture populate ({} file{})",
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        ),
        contenders,
    })
}

/// A fixture of `count` users of the default domain, with the domain and policy they need.
fn generated_users(count: usize) -> serde_json::Value {
    let users: Vec<serde_json::Value> = (0..count)
        .map(|index| {
            serde_json::json!({
                "uuid": format!("00000000-0000-4000-8000-{index:012}"),
                "username": format!("bench-user-{index}"),
                "email": format!("bench-user-{index}@example.com"),
                "password": format!("password-{index}"),
                "need_password_change": false,
                "full_name": format!("Bench User {index}"),
                "description": "generated by cargo xtask bench fixture-populate",
                "status": "active",
                "domain_name": "default",
                "resource_policy": "default",
                "role": "user",
            })
        })
        .collect();
    serde_json::json!({
        "domains": [{"name": "default", "description": "The default domain", "is_active": true,
                     "total_resource_slots": {}, "allowed_vfolder_hosts": {},
                     "allowed_docker_registries": ["cr.backend.ai"]}],
        "user_resource_policies": [{"name": "default", "max_vfolder_count": 0, "max_quota_scope_size": -1,
                                    "max_session_count_per_model_session": 10}],
        "users": users,
    })
}

fn plain(label: &str, command: String) -> Contender {
    Contender {
        label: label.into(),
        command,
        prepare: None,
    }
}

/// The reference CLI's etcd commands die by SIGSEGV in about one run of ten as the interpreter
/// exits (after the write went through), which would abort hyperfine; its time still counts.
fn reference_contender(command: &str) -> Contender {
    plain(
        "reference",
        format!("sh -c {}", shell_quote(&format!("{command} || true"))),
    )
}

fn build_manager_cli() -> Result<PathBuf> {
    let mut binaries = build_release(&["manager-cli"])?;
    Ok(binaries.remove(0))
}

/// Builds the binary packages `packages` of this workspace in release mode, in one cargo run,
/// and returns the path of each binary, in the same order.
/// The size of a run's dimension: the option `given`, else `quick` under `--quick` (`is_quick`),
/// else `full`.
fn sizer(is_quick: bool) -> impl Fn(Option<u64>, u64, u64) -> u64 {
    move |given, full, quick| given.unwrap_or(if is_quick { quick } else { full })
}

fn build_release(packages: &[&str]) -> Result<Vec<PathBuf>> {
    println!("==> cargo build --release -p {}", packages.join(" -p "));
    let mut cargo = crate::cargo();
    cargo.args(["build", "--release"]);
    for package in packages {
        cargo.args(["-p", package]);
    }
    cmd::run_inherit(&mut cargo)?;
    packages
        .iter()
        .map(|package| {
            let binary = crate::target_dir().join("release").join(package);
            if binary.is_file() {
                Ok(binary)
            } else {
                bail!("{} is missing after the build", binary.display())
            }
        })
        .collect()
}

fn checked_reference(reference_cli: Option<PathBuf>) -> Result<Option<PathBuf>> {
    match reference_cli {
        Some(reference) if !reference.is_file() => {
            bail!("--reference-cli {}: no such file", reference.display())
        }
        other => Ok(other),
    }
}

/// Writes `scratch/file_name`: configs/manager/halfstack.toml with each `(from, to)` of
/// `replacements` applied and the RPC keypair pointed at a keypair in `scratch` (generated once),
/// which the reference insists on. A `from` the template does not hold is an error: the benchmark
/// would otherwise run against the developer's own namespace or database.
fn bench_config(
    scratch: &Scratch,
    ours: &Path,
    file_name: &str,
    replacements: &[(&str, &str)],
) -> Result<PathBuf> {
    let keypair = scratch.0.join("manager.key_secret");
    if !keypair.exists() {
        cmd::run(
            Command::new(ours)
                .arg("generate-rpc-keypair")
                .arg(&scratch.0)
                .arg("manager"),
        )?;
    }
    let template = crate::workspace_root().join("configs/manager/halfstack.toml");
    let mut text = std::fs::read_to_string(&template)
        .with_context(|| format!("cannot read {}", template.display()))?;
    let keypair_line = format!("rpc-auth-manager-keypair = \"{}\"", keypair.display());
    let keypair_replacement = (
        "rpc-auth-manager-keypair = \"fixtures/manager/manager.key_secret\"",
        keypair_line.as_str(),
    );
    for (from, to) in replacements.iter().chain([&keypair_replacement]) {
        if !text.contains(from) {
            bail!(
                "{} no longer holds `{from}`; update the benchmark",
                template.display()
            );
        }
        text = text.replace(from, to);
    }
    let config = scratch.0.join(file_name);
    std::fs::write(&config, text).with_context(|| format!("cannot write {}", config.display()))?;
    Ok(config)
}

/// A namespace of the halfstack's etcd for one benchmark run, with a manager.toml pointing at it
/// (and at an RPC keypair, which the reference insists on); its keys are deleted on drop.
#[derive(Debug)]
struct EtcdNamespace {
    name: String,
    config: PathBuf,
}

impl EtcdNamespace {
    fn new(scratch: &Scratch, ours: &Path) -> Result<Self> {
        let name = format!("bench-{}", std::process::id());
        let config = bench_config(
            scratch,
            ours,
            "manager.toml",
            &[(
                &format!("namespace = \"{}\"", consts::ETCD_NAMESPACE),
                &format!("namespace = \"{name}\""),
            )],
        )?;
        cmd::run(etcd::etcdctl().arg("endpoint").arg("health")).context(
            "the halfstack's etcd does not answer; start it with: cargo xtask halfstack up",
        )?;
        Ok(EtcdNamespace { name, config })
    }
}

impl Drop for EtcdNamespace {
    fn drop(&mut self) {
        let _ =
            cmd::run(etcd::etcdctl().args(["del", "--prefix", &format!("/sorna/{}/", self.name)]));
    }
}

/// A database of the halfstack's PostgreSQL for one benchmark run, with a manager.toml and an
/// Alembic ini (what the reference's `schema` commands read) pointing at it; dropped afterwards.
#[derive(Debug)]
struct BenchDatabase {
    name: String,
    config: PathBuf,
    alembic_ini: PathBuf,
}

impl BenchDatabase {
    fn new(scratch: &Scratch, ours: &Path) -> Result<Self> {
        let name = format!("bench_{}", std::process::id());
        let config = bench_config(
            scratch,
            ours,
            "bench-db.toml",
            &[(
                &format!("name = \"{}\"", consts::PG_DATABASE),
                &format!("name = \"{name}\""),
            )],
        )?;
        let alembic_ini = scratch.0.join("alembic.ini");
        let url = consts::pg_url(&name).replace("postgresql://", "postgresql+asyncpg://");
        std::fs::write(&alembic_ini, ALEMBIC_INI.replace("{url}", &url))
            .with_context(|| format!("cannot write {}", alembic_ini.display()))?;
        Ok(BenchDatabase {
            name,
            config,
            alembic_ini,
        })
    }

    /// The command that drops and creates the database again, and with `schema_by` gives it the
    /// schema with that manager-cli.
    fn recreate(&self, schema_by: Option<&Path>) -> String {
        let url = consts::pg_url("postgres");
        let mut script = format!(
            "psql {url} -v ON_ERROR_STOP=1 -qc 'DROP DATABASE IF EXISTS {name} WITH (FORCE)' -c 'CREATE DATABASE {name}'",
            name = self.name
        );
        if let Some(ours) = schema_by {
            script.push_str(&format!(
                " && {} -f {} schema oneshot > /dev/null",
                quote_path(ours),
                quote_path(&self.config)
            ));
        }
        format!("sh -c {}", shell_quote(&script))
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        let _ = cmd::run(
            Command::new("psql")
                .arg(consts::pg_url("postgres"))
                .arg("-qc")
                .arg(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                )),
        );
    }
}

/// The reference's halfstack.alembic.ini with the URL replaced: its `schema` commands read
/// `sqlalchemy.url` and its env.py configures logging from the same file.
const ALEMBIC_INI: &str = "[alembic]
script_location = ai.backend.manager.models:alembic
sqlalchemy.url = {url}

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARN
handlers = console
qualname =

[logger_sqlalchemy]
level = WARN
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
";

/// Runs hyperfine on every contender of `benchmark` and prints a table with the ratio to ours.
fn measure(benchmark: &Benchmark, options: &Options, scratch: &Scratch) -> Result<()> {
    let export = scratch.0.join("hyperfine.json");
    let mut hyperfine = Command::new("hyperfine");
    // The etcdctl contender runs with --endpoints.
    etcd::clear_etcdctl_env(&mut hyperfine);
    hyperfine
        .arg("--shell=none")
        .args(["--runs", &options.runs.to_string()])
        .args(["--warmup", &options.warmup.to_string()])
        .arg("--export-json")
        .arg(&export);
    // hyperfine takes either one --prepare for all commands or one per command, in order.
    let any_prepare = benchmark.contenders.iter().any(|c| c.prepare.is_some());
    for contender in &benchmark.contenders {
        if any_prepare {
            hyperfine.args(["--prepare", contender.prepare.as_deref().unwrap_or("true")]);
        }
        hyperfine.args(["--command-name", &contender.label]);
    }
    hyperfine.args(benchmark.contenders.iter().map(|c| &c.command));
    println!("==> hyperfine: {}", benchmark.title);
    for contender in &benchmark.contenders {
        println!("    {:<10} {}", contender.label, contender.command);
    }
    cmd::run_inherit(&mut hyperfine)?;

    let text = std::fs::read_to_string(&export)
        .with_context(|| format!("cannot read {}", export.display()))?;
    let rows =
        parse_results(&text).with_context(|| format!("cannot parse {}", export.display()))?;
    println!();
    print!("{}", table(&benchmark.title, &rows));
    Ok(())
}

/// hyperfine's `--export-json` file, the part we read.
#[derive(Debug, Deserialize)]
struct Export {
    results: Vec<Row>,
}

/// One line of hyperfine's results, in seconds.
#[derive(Debug, Deserialize)]
struct Row {
    /// The `--command-name` we gave.
    #[serde(rename = "command")]
    label: String,
    mean: f64,
    /// null when there was a single run
    stddev: Option<f64>,
    min: f64,
    max: f64,
}

fn parse_results(text: &str) -> Result<Vec<Row>> {
    Ok(serde_json::from_str::<Export>(text)?.results)
}

/// The table we print: times in milliseconds, ratio of each mean to the first row's (ours).
fn table(title: &str, rows: &[Row]) -> String {
    let mut out = format!(
        "{title}\n{:<12} {:>20} {:>10} {:>10} {:>9}\n",
        "command", "mean ± stddev [ms]", "min [ms]", "max [ms]", "vs ours"
    );
    let base = rows.first().map(|row| row.mean);
    for row in rows {
        let mean = match row.stddev {
            Some(stddev) => format!("{:.2} ± {:.2}", row.mean * 1e3, stddev * 1e3),
            None => format!("{:.2}", row.mean * 1e3),
        };
        let ratio = match base {
            Some(base) if base > 0.0 => format!("{:.2}x", row.mean / base),
            _ => "-".to_owned(),
        };
        out.push_str(&format!(
            "{:<12} {:>20} {:>10.2} {:>10.2} {:>9}\n",
            row.label,
            mean,
            row.min * 1e3,
            row.max * 1e3,
            ratio
        ));
    }
    out
}

fn quote_path(path: &Path) -> String {
    shell_quote(&path.to_string_lossy())
}

/// A temporary folder for the benchmark's output, removed when dropped.
#[derive(Debug)]
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_ratio_to_ours() {
        let rows = parse_results(
            r#"{"results": [
                {"command": "ours", "mean": 0.002, "stddev": 0.0001, "min": 0.0018, "max": 0.0025},
                {"command": "pyzmq", "mean": 0.05, "stddev": null, "min": 0.049, "max": 0.051}
            ]}"#,
        )
        .unwrap();
        let table = table("t", &rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(
            lines[2].starts_with("ours") && lines[2].ends_with("1.00x"),
            "{table}"
        );
        assert!(lines[2].contains("2.00 ± 0.10"), "{table}");
        assert!(
            lines[3].contains("50.00 ") && lines[3].ends_with("25.00x"),
            "{table}"
        );
    }
}
