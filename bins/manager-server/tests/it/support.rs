//! What the process tests share: one test's database, etcd namespace, Redis server and directory
//! ([`Stack`]), a manager.toml for it ([`Settings`]), and a running `manager-server` ([`Server`]).
//! Each test has a Redis of its own: managers consume the event stream as one consumer group and
//! check every agent in `agent.last_seen`, whose keys the protocol fixes, so managers of tests that
//! shared a Redis would take each other's events.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use bai_db_models::testing::TestDatabase;
use bai_etcd_store::testing::TestNamespace;
use bai_etcd_store::{EtcdStore, Scope};
use bai_redis::testing::PrivateRedis;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const SERVER: &str = env!("CARGO_BIN_EXE_manager-server");

/// The install guide's fixture files with its users, keypairs and main access keys.
const INSTALL_GUIDE_KEYPAIRS: [(&str, &str); 3] = [
    (
        "example-users.json",
        include_str!("../../../../fixtures/manager/example-users.json"),
    ),
    (
        "example-keypairs.json",
        include_str!("../../../../fixtures/manager/example-keypairs.json"),
    ),
    (
        "example-set-user-main-access-keys.json",
        include_str!("../../../../fixtures/manager/example-set-user-main-access-keys.json"),
    ),
];

/// One test's database, etcd namespace, Redis and directory (with the manager's RPC keypair).
pub struct Stack {
    pub db: TestDatabase,
    pub etcd: TestNamespace,
    pub store: EtcdStore,
    pub redis: PrivateRedis,
    pub dir: tempfile::TempDir,
}

impl Stack {
    /// A stack whose database has the schema and no rows.
    pub async fn new(label: &str) -> Stack {
        Stack::on(
            TestDatabase::with_schema(&format!("server_{label}")).await,
            label,
        )
        .await
    }

    /// A stack whose database also holds the users, keypairs and main access keys of the install
    /// guide's example fixtures.
    pub async fn with_install_guide_keypairs(label: &str) -> Stack {
        let db =
            TestDatabase::with_fixtures(&format!("server_{label}"), &INSTALL_GUIDE_KEYPAIRS).await;
        Stack::on(db, label).await
    }

    async fn on(db: TestDatabase, label: &str) -> Stack {
        let etcd = TestNamespace::new(&format!("server-{label}"));
        let store = etcd.store().await;
        let redis = PrivateRedis::start();
        store
            .put("config/redis/addr", &redis.addr(), Scope::Global)
            .await
            .expect("put");
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = dir.path().join("rpc");
        fs::create_dir(&keys).expect("mkdir");
        let keypair = bai_rpc_keys::CurveKeypair::generate().expect("keypair");
        bai_rpc_keys::write_certificates(
            &keys,
            "manager",
            &keypair,
            bai_rpc_keys::Overwrite::Refuse,
        )
        .expect("write the keypair");
        Stack {
            db,
            etcd,
            store,
            redis,
            dir,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a manager.toml for this stack and returns its path.
    pub fn config(&self, name: &str, settings: &Settings) -> PathBuf {
        let pid_file = if settings.pid_file.as_os_str().is_empty() {
            self.path("manager.pid")
        } else {
            settings.pid_file.clone()
        };
        let text = format!(
            r#"[etcd]
namespace = "{namespace}"
addr = {{ host = "127.0.0.1", port = 8120 }}

[db]
addr = {{ host = "127.0.0.1", port = 8100 }}
name = "{db}"
user = "postgres"
password = "develove"

[manager]
num-proc = {num_proc}
service-addr = {{ host = "127.0.0.1", port = {port} }}
metrics-addr = {{ host = "127.0.0.1", port = {metrics_port} }}
rpc-auth-manager-keypair = {keypair:?}
pid-file = {pid_file:?}
ipc-base-path = {ipc:?}
{manager_extra}
{logging}
"#,
            namespace = self.etcd.name,
            db = self.db.config.name,
            num_proc = settings.num_proc,
            port = settings.port,
            metrics_port = settings.metrics_port,
            keypair = self.path("rpc/manager.key_secret"),
            ipc = self.path("ipc"),
            manager_extra = settings.manager_extra,
            logging = settings.logging,
        );
        let path = self.path(name);
        fs::write(&path, text).expect("write the config");
        path
    }
}

pub struct Settings {
    pub port: u16,
    /// `GET /metrics`: a port of its own per test (the default, 9464, would be shared).
    pub metrics_port: u16,
    pub num_proc: u32,
    /// Empty: `manager.pid` in the stack's directory.
    pub pid_file: PathBuf,
    pub manager_extra: String,
    pub logging: String,
}

impl Settings {
    pub fn new(port: u16) -> Settings {
        Settings {
            port,
            metrics_port: free_port_other_than(port),
            num_proc: 1,
            pid_file: PathBuf::new(),
            manager_extra: String::new(),
            logging: "[logging]\nlevel = \"INFO\"\ndrivers = [\"console\"]\n\n[logging.pkg-ns]\n\"\" = \"WARNING\"\n\"ai.backend\" = \"INFO\"\n".to_owned(),
        }
    }
}

/// A running `manager-server`; killed if a test fails before stopping it.
pub struct Server {
    pub child: Child,
    pub stderr: PathBuf,
}

impl Server {
    pub fn start(stack: &Stack, config: &Path, name: &str) -> Server {
        Server::start_with(stack, config, name, &[])
    }

    pub fn start_with(stack: &Stack, config: &Path, name: &str, args: &[&str]) -> Server {
        let stderr = stack.path(&format!("{name}.stderr"));
        let child = Command::new(SERVER)
            .arg("-f")
            .arg(config)
            .args(args)
            .current_dir(stack.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start manager-server");
        Server { child, stderr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    pub fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.pid()).expect("pid");
        kill(Pid::from_raw(pid), signal).expect("signal the server");
    }

    /// Waits for `GET /` to answer 200 and returns its JSON.
    pub async fn wait_ready(&mut self, port: u16) -> serde_json::Value {
        let url = format!("http://127.0.0.1:{port}/");
        self.wait_until(|| {
            let url = url.clone();
            async move {
                let response = http_client()
                    .get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .ok()?;
                if !response.status().is_success() {
                    return None;
                }
                response.json().await.ok()
            }
        })
        .await
    }

    pub async fn wait_until<F, T>(&mut self, mut probe: impl FnMut() -> F) -> T
    where
        F: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "manager-server exited ({status}) before it answered:\n{}",
                    self.stderr()
                );
            }
            if let Some(answer) = probe().await {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "manager-server did not answer within 30 s:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "manager-server did not exit within {limit:?}:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `signal` and waits (up to 10 s) for the exit; returns the status and how long it took.
    pub async fn stop(&mut self, signal: Signal) -> (ExitStatus, Duration) {
        let started = Instant::now();
        self.signal(signal);
        let status = self.wait_exit(Duration::from_secs(10)).await;
        (status, started.elapsed())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn workspace_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// What a command printed on both streams.
pub fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A free port other than `taken`, a port chosen earlier whose listener is closed again: the kernel
/// may hand it out a second time.
pub fn free_port_other_than(taken: u16) -> u16 {
    loop {
        let port = free_port();
        if port != taken {
            return port;
        }
    }
}

/// A client that talks to the test's server directly, whatever proxy the environment names.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// The superadmin of the install guide's example fixtures.
pub const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
pub const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// A client version installed in one of the project's venvs.
pub struct Client {
    pub venv: &'static str,
    /// What `backend.ai config` prints after negotiating with a 24.03 server.
    pub negotiated: &'static str,
}

pub const CLIENT_24_03: Client = Client {
    venv: "py312",
    negotiated: "Negotiated API version: (8, '20240315')",
};
pub const CLIENT_23_09: Client = Client {
    venv: "py311",
    negotiated: "Negotiated API version: (7, '20230615')",
};

impl Client {
    /// `backend.ai --output json ARGS` as the superadmin, parsed; asserts success.
    #[track_caller]
    pub fn cli_json(&self, stack: &Stack, port: u16, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--output", "json"];
        full.extend_from_slice(args);
        let output = self.run(stack, port, "backend.ai", &full);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "backend.ai {} ({}) failed: {}\nstdout: {stdout}\nstderr: {}",
            full.join(" "),
            self.venv,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str(&stdout).unwrap_or_else(|error| {
            panic!(
                "backend.ai {} printed no JSON ({error}): {stdout}",
                full.join(" ")
            )
        })
    }

    /// `backend.ai --output json ARGS` as the superadmin when it must fail: asserts exit status 1
    /// and returns what it printed, parsed (the client prints `{"ok": false, "msg": ...}` for a
    /// refused mutation).
    #[track_caller]
    pub fn cli_json_failure(&self, stack: &Stack, port: u16, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["--output", "json"];
        full.extend_from_slice(args);
        let output = self.run(stack, port, "backend.ai", &full);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(1),
            "backend.ai {} ({}) should fail\nstdout: {stdout}\nstderr: {}",
            full.join(" "),
            self.venv,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str(&stdout).unwrap_or_else(|error| {
            panic!(
                "backend.ai {} printed no JSON ({error}): {stdout}",
                full.join(" ")
            )
        })
    }

    /// `backend.ai --output json ARGS` for a command that asks "Are you sure? [Y/n]" first
    /// (`purge`): answers `y`, asserts that it succeeds (exit 0) or fails (exit 1) as `succeeds`
    /// says, and returns what it printed after the prompt, parsed.
    #[track_caller]
    pub fn cli_json_confirmed(
        &self,
        stack: &Stack,
        port: u16,
        args: &[&str],
        succeeds: bool,
    ) -> serde_json::Value {
        use std::io::Write;

        let mut full = vec!["--output", "json"];
        full.extend_from_slice(args);
        let mut child = self
            .command(stack, port, "backend.ai", &full)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run backend.ai: {error}"));
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(b"y\n")
            .expect("answering the prompt");
        let output = child.wait_with_output().expect("backend.ai output");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(if succeeds { 0 } else { 1 }),
            "backend.ai {} ({}): {}\nstdout: {stdout}\nstderr: {}",
            full.join(" "),
            self.venv,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let answer = stdout
            .find('{')
            .map(|start| &stdout[start..])
            .unwrap_or_else(|| panic!("backend.ai {} printed no JSON: {stdout}", full.join(" ")));
        serde_json::from_str(answer).unwrap_or_else(|error| {
            panic!(
                "backend.ai {} printed no JSON ({error}): {stdout}",
                full.join(" ")
            )
        })
    }

    pub fn bin(&self, program: &str) -> PathBuf {
        let path = workspace_file(".venvs")
            .join(self.venv)
            .join("bin")
            .join(program);
        assert!(
            path.exists(),
            "{} is missing: make the venvs with `cargo xtask venv`",
            path.display()
        );
        path
    }

    /// Runs `program args...` of the venv against the server on `port`, as the superadmin.
    pub fn run(&self, stack: &Stack, port: u16, program: &str, args: &[&str]) -> Output {
        self.command(stack, port, program, args)
            .output()
            .unwrap_or_else(|error| panic!("cannot run {program}: {error}"))
    }

    /// The command line of `program args...` of the venv against the server on `port`, as the
    /// superadmin.
    pub fn command(&self, stack: &Stack, port: u16, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new(self.bin(program));
        command
            .args(args)
            // The client reads `.env` files from its working directory upwards: use the test's own.
            .current_dir(stack.dir.path())
            .env("BACKEND_ENDPOINT", format!("http://127.0.0.1:{port}"))
            .env("BACKEND_ACCESS_KEY", ACCESS_KEY)
            .env("BACKEND_SECRET_KEY", SECRET_KEY)
            // The 23.09 client warns on stdout that the server's API is newer (spec §7.3).
            .env("PYTHONWARNINGS", "ignore")
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY");
        command
    }

    /// [`Client::run`], asserting success; returns what it printed (its "pretty" messages go to
    /// stderr, tables to stdout).
    #[track_caller]
    pub fn cli(&self, stack: &Stack, port: u16, args: &[&str]) -> String {
        let output = self.run(stack, port, "backend.ai", args);
        let printed = printed(&output);
        assert!(
            output.status.success(),
            "backend.ai {} ({}) failed: {}\n{printed}",
            args.join(" "),
            self.venv,
            output.status,
        );
        printed
    }
}

/// The image the session tests run: `cr.backend.ai/stable/python:3.9-ubuntu20.04` for x86_64.
pub const PYTHON_IMAGE: &str = "cr.backend.ai/stable/python:3.9-ubuntu20.04";

/// A fixture file with the row of [`PYTHON_IMAGE`] (at least 1 core and 256 MiB).
pub fn python_image_fixture() -> String {
    let images = serde_json::json!([{
        "id": "0e0b7ab4-3d0c-4bd8-8d8b-2b6a6b1d0a11", "name": PYTHON_IMAGE, "image": "stable/python",
        "tag": "3.9-ubuntu20.04", "registry": "cr.backend.ai", "architecture": "x86_64",
        "config_digest": format!("sha256:{:064x}", 7), "size_bytes": 123_456_789,
        "type": "COMPUTE", "labels": {"ai.backend.service-ports": "jupyter:http:8080"},
        "resources": {"cpu": {"min": "1", "max": null}, "mem": {"min": "256m", "max": null}},
    }]);
    format!(r#"{{"images": {images}}}"#)
}

/// The session id `backend.ai session create` prints (`Session ID <uuid> is …`); `session info`
/// takes the id, not the name, from API v5 on.
pub fn created_session_id(printed: &str) -> String {
    printed
        .split_whitespace()
        .skip_while(|word| *word != "ID")
        .nth(1)
        .unwrap_or_else(|| panic!("no session id in {printed}"))
        .to_owned()
}

/// Announces that the test changed cached rows (policies, keypairs, users) behind the server's back,
/// as every write of ours does, and gives the server a moment to hear it through PostgreSQL.
pub async fn announce_change(stack: &Stack) {
    bai_db_models::changes::announce(&stack.db.connection, "a test's direct write")
        .await
        .expect("announcing the change");
    tokio::time::sleep(Duration::from_millis(500)).await;
}
