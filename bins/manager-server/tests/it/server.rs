//! `manager-server` as a process against the real halfstack (PostgreSQL :8100, Redis :8110, etcd
//! :8120): each test has its own database with the 24.03 schema, its own etcd namespace (with
//! `config/redis/*` as the install guide writes it), its own directory and port. The tests start
//! the binary, talk to it over TCP and stop it with signals, as systemd and operators do.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bai_api::auth::signature::{SignatureHash, SignedParts};
use bai_etcd_store::Scope;
use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{SERVER, Server, Settings, Stack, free_port, http_client, workspace_file};

/// systemd's `TimeoutStopSec` in the install guide's unit.
const STOP_LIMIT: Duration = Duration::from_secs(5);
const API_VERSION: &str = "v8.20240315";
/// The install guide's superadmin keypair (fixtures/manager/example-keypairs.json).
const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

// ---------------------------------------------------------------------------------------------
// Start, stop, pid file, node registration

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_server_within_five_seconds_and_cleans_up() {
    let stack = Stack::new("sigterm").await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    let hello = server.wait_ready(port).await;
    assert_eq!(hello["version"], API_VERSION);
    assert_eq!(hello["manager"], "24.03.11");

    let pid_file = stack.path("manager.pid");
    assert_eq!(
        fs::read_to_string(&pid_file).expect("pid file").trim(),
        server.pid().to_string()
    );
    let node_key = bai_stores::node_key(&bai_config::default_node_id());
    assert_eq!(
        stack
            .store
            .get(&node_key, Scope::Global)
            .await
            .expect("get"),
        Some("up".to_owned())
    );
    assert_eq!(
        stack
            .store
            .get("manager/status", Scope::Global)
            .await
            .expect("get"),
        Some("running".to_owned())
    );

    let (status, took) = server.stop(Signal::SIGTERM).await;
    assert!(status.success(), "{status}: {}", server.stderr());
    assert!(took < STOP_LIMIT, "took {took:?}");
    assert!(!pid_file.exists(), "the pid file is removed at exit");
    assert_eq!(
        stack
            .store
            .get(&node_key, Scope::Global)
            .await
            .expect("get"),
        None,
        "the node deregisters"
    );
    let log = server.stderr();
    for line in [
        "bai-manager 0.1.0 (compatible with Backend.AI Manager 24.03.11)",
        "Manager status: running",
        &format!("started handling API requests at 127.0.0.1:{port}"),
        "shutting down...",
        "terminated.",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_stops_the_server_too() {
    let stack = Stack::new("sigint").await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;
    let (status, took) = server.stop(Signal::SIGINT).await;
    assert!(status.success(), "{status}: {}", server.stderr());
    assert!(took < STOP_LIMIT, "took {took:?}");
    assert!(!stack.path("manager.pid").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_server_on_the_same_pid_file_refuses_and_the_first_keeps_running() {
    let stack = Stack::new("pidfile").await;
    let first_port = free_port();
    let first_config = stack.config("first.toml", &Settings::new(first_port));
    let mut first = Server::start(&stack, &first_config, "first");
    first.wait_ready(first_port).await;

    // Another port, so that only the pid file stands in the way.
    let second_config = stack.config("second.toml", &Settings::new(free_port()));
    let mut second = Server::start(&stack, &second_config, "second");
    let status = second.wait_exit(Duration::from_secs(10)).await;
    assert!(!status.success(), "the second server must refuse");
    let pid_file = stack.path("manager.pid");
    let message = second.stderr();
    assert!(
        message.contains(&format!(
            "[manager] pid-file {}: process {} is running",
            pid_file.display(),
            first.pid()
        )),
        "{message}"
    );

    assert!(first.is_running(), "the first server keeps running");
    let hello = get_json(&format!("http://127.0.0.1:{first_port}/")).await;
    assert_eq!(hello["version"], API_VERSION);
    assert_eq!(
        fs::read_to_string(&pid_file).expect("pid file").trim(),
        first.pid().to_string(),
        "the refused server leaves the pid file alone"
    );
    let (status, _) = first.stop(Signal::SIGTERM).await;
    assert!(status.success(), "{}", first.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_pid_file_is_replaced() {
    let stack = Stack::new("stale").await;
    let mut dead = Command::new("true").spawn().expect("spawn");
    let dead_pid = dead.id();
    dead.wait().expect("wait");
    fs::write(stack.path("manager.pid"), format!("{dead_pid}\n")).expect("write");
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;
    assert_eq!(
        fs::read_to_string(stack.path("manager.pid"))
            .expect("pid file")
            .trim(),
        server.pid().to_string()
    );
    let (status, _) = server.stop(Signal::SIGTERM).await;
    assert!(status.success(), "{}", server.stderr());
}

// ---------------------------------------------------------------------------------------------
// Workers

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_share_the_port_and_both_answer() {
    let stack = Stack::new("workers").await;
    let port = free_port();
    let mut settings = Settings::new(port);
    settings.num_proc = 2;
    let config = stack.config("manager.toml", &settings);
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;
    assert_eq!(
        listening_sockets(port),
        2,
        "one listening socket per worker"
    );

    // Fresh connections, spread by the kernel over both listeners: a worker that did not accept
    // would leave its share hanging until the client's timeout.
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let requests = (0..64).map(|_| {
        let client = client.clone();
        async move {
            client
                .get(format!("http://127.0.0.1:{port}/"))
                .send()
                .await
                .map(|response| response.status())
        }
    });
    let started = Instant::now();
    let statuses = futures_join_all(requests).await;
    assert!(
        statuses
            .iter()
            .all(|status| matches!(status, Ok(status) if status.is_success())),
        "{statuses:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    let (status, took) = server.stop(Signal::SIGTERM).await;
    assert!(status.success(), "{}", server.stderr());
    assert!(took < STOP_LIMIT, "took {took:?}");
}

// ---------------------------------------------------------------------------------------------
// Graceful shutdown

#[tokio::test(flavor = "multi_thread")]
async fn a_request_in_flight_when_sigterm_arrives_completes() {
    let stack = Stack::with_install_guide_keypairs("inflight").await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    // The signed request works when sent at once (so a failure below is the shutdown's).
    let whole = signed_echo(port, "at once");
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(&whole.bytes()).await.expect("send");
    let response = read_response(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""echo": "at once""#), "{response}");

    // Now the same request, body sent in two halves around the signal: the handler is already
    // running (the request is authenticated and waits for its body) when SIGTERM arrives.
    let request = signed_echo(port, "in flight");
    let (first_half, second_half) = request.split();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(&first_half).await.expect("send");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    server.signal(Signal::SIGTERM);
    let signalled = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "a stopping server accepts no new connections"
    );
    stream.write_all(&second_half).await.expect("send the rest");
    let response = read_response(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""echo": "in flight""#), "{response}");

    let status = server.wait_exit(STOP_LIMIT).await;
    assert!(status.success(), "{status}: {}", server.stderr());
    assert!(signalled.elapsed() < STOP_LIMIT);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_finishes_its_request_does_not_hold_up_the_exit() {
    let stack = Stack::with_install_guide_keypairs("held").await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    let request = signed_echo(port, "never finished");
    let (first_half, _) = request.split();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(&first_half).await.expect("send");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, took) = server.stop(Signal::SIGTERM).await;
    assert!(status.success(), "{status}: {}", server.stderr());
    assert!(took < STOP_LIMIT, "took {took:?}");
    assert!(
        server.stderr().contains("still open"),
        "{}",
        server.stderr()
    );
    drop(stream);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_during_shutdown_exits_at_once() {
    let stack = Stack::with_install_guide_keypairs("twice").await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    // A request held open keeps the first shutdown waiting.
    let request = signed_echo(port, "held");
    let (first_half, _) = request.split();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(&first_half).await.expect("send");
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.is_running(), "still draining");
    let (status, took) = server.stop(Signal::SIGINT).await;
    assert!(!status.success(), "an interrupted shutdown is a failure");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(server.stderr().contains("a second SIGINT during shutdown"));
    assert!(!stack.path("manager.pid").exists());
    drop(stream);
}

// ---------------------------------------------------------------------------------------------
// TLS

#[tokio::test(flavor = "multi_thread")]
async fn https_with_the_configured_certificate() {
    let stack = Stack::new("tls").await;
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("self-signed certificate");
    let cert_pem = certified.cert.pem();
    fs::write(stack.path("cert.pem"), &cert_pem).expect("write");
    fs::write(stack.path("key.pem"), certified.signing_key.serialize_pem()).expect("write");
    let port = free_port();
    let mut settings = Settings::new(port);
    settings.manager_extra = format!(
        "ssl-enabled = true\nssl-cert = {:?}\nssl-privkey = {:?}\n",
        stack.path("cert.pem"),
        stack.path("key.pem")
    );
    let config = stack.config("manager.toml", &settings);
    let mut server = Server::start(&stack, &config, "server");

    let client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(
            reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("certificate"),
        )
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let url = format!("https://127.0.0.1:{port}/");
    let hello: serde_json::Value = server
        .wait_until(|| {
            let client = client.clone();
            let url = url.clone();
            async move { client.get(&url).send().await.ok()?.json().await.ok() }
        })
        .await;
    assert_eq!(hello["version"], API_VERSION);

    // Plain HTTP on the TLS port gets no API answer.
    let plain = http_client()
        .get(format!("http://127.0.0.1:{port}/"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");

    let (status, _) = server.stop(Signal::SIGTERM).await;
    assert!(status.success(), "{}", server.stderr());
}

// ---------------------------------------------------------------------------------------------
// Logging and privileges

#[tokio::test(flavor = "multi_thread")]
async fn the_file_driver_writes_json_lines_rotates_and_never_logs_a_password() {
    let stack = Stack::new("logfile").await;
    let port = free_port();
    let mut settings = Settings::new(port);
    settings.logging = format!(
        r#"[logging]
level = "DEBUG"
drivers = ["console", "file"]

[logging.pkg-ns]
"" = "DEBUG"

[logging.file]
path = {:?}
filename = "manager.log"
backup-count = 2
rotation-size = "2K"
"#,
        stack.path("logs")
    );
    let config = stack.config("manager.toml", &settings);
    let mut server = Server::start_with(&stack, &config, "server", &["--debug"]);
    server.wait_ready(port).await;
    for _ in 0..10 {
        get_json(&format!("http://127.0.0.1:{port}/")).await;
    }
    let (status, _) = server.stop(Signal::SIGTERM).await;
    assert!(status.success(), "{}", server.stderr());

    let logs = stack.path("logs");
    let mut names: Vec<String> = fs::read_dir(&logs)
        .expect("log directory")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["manager.log", "manager.log.1", "manager.log.2"]);
    let mut longest = 0;
    for name in &names {
        let text = fs::read_to_string(logs.join(name)).expect("read");
        for line in text.lines() {
            longest = longest.max(line.len() + 1);
            let record: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("{name}: not JSON ({error}): {line}"));
            for key in ["timestamp", "level", "name", "processName", "message"] {
                assert!(record.get(key).is_some(), "{name}: no {key} in {line}");
            }
        }
        assert!(!text.contains("develove"), "{name} contains a password");
    }
    for name in &names {
        let size = fs::metadata(logs.join(name)).expect("stat").len();
        assert!(
            size <= 2048 + longest as u64,
            "{name} is {size} bytes, rotation is at 2 KiB (longest line {longest})"
        );
    }
    let newest = fs::read_to_string(logs.join("manager.log")).expect("read");
    let last: serde_json::Value =
        serde_json::from_str(newest.lines().last().expect("a line")).expect("json");
    assert_eq!(last["message"], "terminated.");
    assert_eq!(last["level"], "INFO");
    let console = server.stderr();
    assert!(
        console.contains("== Manager configuration =="),
        "--debug shows the configuration"
    );
    assert!(
        !console.contains("develove"),
        "the console shows a password"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn root_switches_to_the_configured_user_after_binding() {
    let stack = Stack::new("privileges").await;
    let root = nix::unistd::geteuid().is_root();
    // The unprivileged server must still reach its pid file to remove it.
    let run_dir = stack.path("run");
    fs::create_dir(&run_dir).expect("mkdir");
    set_mode(stack.dir.path(), 0o755);
    set_mode(&run_dir, 0o777);
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("passwd")
        .expect("a user named nobody");
    let port = free_port();
    let mut settings = Settings::new(port);
    settings.pid_file = run_dir.join("manager.pid");
    settings.manager_extra = format!("user = \"nobody\"\ngroup = {}\n", nobody.gid);
    let config = stack.config("manager.toml", &settings);
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    let status_file = fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("status");
    let ids = |key: &str| -> Vec<u32> {
        status_file
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .expect("line")
            .split_whitespace()
            .map(|id| id.parse().expect("id"))
            .collect()
    };
    if root {
        assert_eq!(ids("Uid:"), [nobody.uid.as_raw(); 4]);
        assert_eq!(ids("Gid:"), [nobody.gid.as_raw(); 4]);
        assert!(
            server.stderr().contains(&format!(
                "changed process uid and gid to {}:{}",
                nobody.uid, nobody.gid
            )),
            "{}",
            server.stderr()
        );
    } else {
        // Only root can switch; everyone else keeps running as themselves.
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(ids("Uid:"), [me; 4]);
    }
    let (status, _) = server.stop(Signal::SIGTERM).await;
    assert!(status.success(), "{}", server.stderr());
    assert!(!settings.pid_file.exists(), "{}", server.stderr());
}

// ---------------------------------------------------------------------------------------------
// The install guide's runner script and systemd unit

#[tokio::test(flavor = "multi_thread")]
async fn the_runner_script_execs_the_server_found_beside_it() {
    let stack = Stack::new("runner").await;
    let bin = stack.path("bin");
    fs::create_dir(&bin).expect("mkdir");
    let script = bin.join("run-manager.sh");
    fs::copy(workspace_file("configs/systemd/run-manager.sh"), &script).expect("copy");
    std::os::unix::fs::symlink(SERVER, bin.join("manager-server")).expect("symlink");
    // ./manager.toml in the working directory, as systemd's WorkingDirectory= provides it.
    let port = free_port();
    stack.config("manager.toml", &Settings::new(port));
    let stderr = stack.path("runner.stderr");
    let child = Command::new(&script)
        .current_dir(stack.dir.path())
        .env("PATH", "/usr/bin:/bin")
        .env_remove("BACKEND_CONFIG_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("start run-manager.sh");
    let mut server = Server { child, stderr };
    server.wait_ready(port).await;
    // The script execs the server: the pid systemd watches is the pid in the pid file.
    assert_eq!(
        fs::read_to_string(stack.path("manager.pid"))
            .expect("pid file")
            .trim(),
        server.pid().to_string()
    );
    let (status, _) = server.stop(Signal::SIGTERM).await;
    assert!(status.success(), "{}", server.stderr());

    // With arguments it runs them, with the binaries beside it on PATH.
    let output = Command::new(&script)
        .args(["manager-server", "--version"])
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run");
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("manager-server {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn the_systemd_unit_runs_the_script_and_stops_within_the_shutdown_budget() {
    let unit = fs::read_to_string(workspace_file("configs/systemd/backendai-manager.service"))
        .expect("unit");
    let setting = |key: &str| -> String {
        unit.lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in the unit"))
            .to_owned()
    };
    assert!(setting("ExecStart").ends_with("/bin/run-manager.sh"));
    assert_eq!(setting("Type"), "simple");
    assert_eq!(setting("TimeoutStopSec"), "5");
    assert_eq!(setting("KillMode"), "process");
    assert_eq!(setting("KillSignal"), "SIGTERM");
    assert_eq!(setting("Restart"), "on-failure");
    assert!(setting("PIDFile").starts_with(&setting("WorkingDirectory")));
}

// ---------------------------------------------------------------------------------------------
// Bad inputs

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_redis_stops_the_server_with_a_message_naming_redis() {
    let stack = Stack::new("noredis").await;
    let closed = free_port();
    stack
        .store
        .put(
            "config/redis/addr",
            &format!("127.0.0.1:{closed}"),
            Scope::Global,
        )
        .await
        .expect("put");
    let port = free_port();
    let mut settings = Settings::new(port);
    settings.num_proc = 2;
    let config = stack.config("manager.toml", &settings);
    let started = Instant::now();
    let mut server = Server::start(&stack, &config, "server");
    let status = server.wait_exit(Duration::from_secs(15)).await;
    let took = started.elapsed();
    let log = server.stderr();
    assert!(!status.success(), "{log}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {log}");
    assert!(
        log.lines().any(|line| line.contains(" ERROR ")
            && line.contains("Redis")
            && line.contains(&format!("127.0.0.1:{closed}"))),
        "{log}"
    );
    assert!(!log.contains("started handling API requests"), "{log}");
    assert!(!stack.path("manager.pid").exists());
    assert!(!log.contains("develove"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unusable_certificate_is_refused_naming_the_file() {
    let stack = Stack::new("badcert").await;
    fs::write(stack.path("cert.pem"), "not a certificate\n").expect("write");
    fs::write(stack.path("key.pem"), "not a key\n").expect("write");
    let mut settings = Settings::new(free_port());
    settings.manager_extra = format!(
        "ssl-enabled = true\nssl-cert = {:?}\nssl-privkey = {:?}\n",
        stack.path("cert.pem"),
        stack.path("key.pem")
    );
    let config = stack.config("manager.toml", &settings);
    let mut server = Server::start(&stack, &config, "server");
    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert!(!status.success());
    let log = server.stderr();
    assert!(
        log.contains(&format!(
            "[manager] ssl-cert {}: the file holds no certificate",
            stack.path("cert.pem").display()
        )),
        "{log}"
    );
    assert!(!stack.path("manager.pid").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_errors_are_one_line_naming_file_and_key() {
    let stack = Stack::new("badconfig").await;
    let mut settings = Settings::new(free_port());
    settings.manager_extra = "heartbeat-timeout = \"soon\"\n".to_owned();
    let config = stack.config("manager.toml", &settings);
    let mut server = Server::start(&stack, &config, "server");
    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        server.stderr().trim_end(),
        format!(
            "{}: [manager] heartbeat-timeout: expected a number, found string \"soon\"",
            config.display()
        )
    );

    let mut settings = Settings::new(free_port());
    settings.logging =
        "[logging]\ndrivers = [\"console\", \"logstash\"]\n[logging.logstash]\nendpoint = \"127.0.0.1:9300\"\n"
            .to_owned();
    let config = stack.config("logstash.toml", &settings);
    let mut server = Server::start(&stack, &config, "logstash");
    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        server.stderr().trim_end(),
        format!(
            "{}: [logging] drivers: the logstash driver is not supported by this server \
             (use \"console\" and/or \"file\")",
            config.display()
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// How many sockets listen on `port` (IPv4), from /proc/net/tcp.
fn listening_sockets(port: u16) -> usize {
    let table = fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            columns.len() > 3 && columns[1].ends_with(&local) && columns[3] == "0A"
        })
        .count()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

async fn get_json(url: &str) -> serde_json::Value {
    let response = http_client()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("request");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.expect("json")
}

async fn futures_join_all<F: Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("task"));
    }
    outputs
}

/// A signed `POST /auth/test` (the echo route) as raw HTTP/1.1 bytes.
struct RawRequest {
    head: String,
    body: Vec<u8>,
}

impl RawRequest {
    fn bytes(&self) -> Vec<u8> {
        let mut bytes = self.head.clone().into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// The head with the first half of the body, and the rest of the body.
    fn split(&self) -> (Vec<u8>, Vec<u8>) {
        let half = self.body.len() / 2;
        let mut first = self.head.clone().into_bytes();
        first.extend_from_slice(&self.body[..half]);
        (first, self.body[half..].to_vec())
    }
}

fn signed_echo(port: u16, echo: &str) -> RawRequest {
    let body = serde_json::json!({ "echo": echo }).to_string().into_bytes();
    let raw_date = chrono::Utc::now().to_rfc3339();
    let host = format!("127.0.0.1:{port}");
    let parts = SignedParts {
        method: "POST",
        raw_path: "/auth/test",
        raw_date: &raw_date,
        date: chrono::DateTime::parse_from_rfc3339(&raw_date).expect("date"),
        host: &host,
        content_type: Some("application/json"),
        version_header_name: "x-backendai-version",
        version: API_VERSION,
    };
    let signature = parts.signature(SECRET_KEY, SignatureHash::Sha256);
    let head = format!(
        "POST /auth/test HTTP/1.1\r\nHost: {host}\r\nDate: {raw_date}\r\n\
         Content-Type: application/json\r\nX-BackendAI-Version: {API_VERSION}\r\n\
         Authorization: BackendAI signMethod=HMAC-SHA256, credential={ACCESS_KEY}:{signature}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    RawRequest { head, body }
}

/// Reads a whole response (the server closes the connection after it).
async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .expect("the response arrives within 5 s")
        .expect("read");
    String::from_utf8_lossy(&response).into_owned()
}
