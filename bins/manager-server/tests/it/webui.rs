//! The Backend.AI WebUI 24.03 against our server: the real `backend.ai-webserver` 24.3.11 (its
//! wheel bundles the WebUI) in front of a `manager-server`, Debian's Chromium driven by Playwright
//! (`tests/webui/drive.py`), logging in as the example superadmin and the example user and visiting
//! every page of the sidebar. The install guide's data, one agent-sim agent and one finished
//! session are there; the install guide's storage proxy is configured but, as in the install guide
//! before storage is set up, not running.
//!
//! What the reference 24.03.11 shows in the same setup is the bar (it was checked with the same
//! driver): `GET /folders/_/hosts` fails because the storage proxy is unreachable, and the WebUI
//! shows that failure as an error toast and, on some pages, as its error page; `GET /license`
//! answers 404 (an enterprise route). Any other failed request to the manager, GraphQL error,
//! error toast or error page fails the test.
//!
//! Screenshots of every page are kept in `{CARGO_TARGET_TMPDIR}/webui-screenshots/` (CI keeps
//! them as artifacts).

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bai_etcd_store::Scope;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::Deserialize;

use crate::session_support::{local_runner_agent, running_session, serve, stack_with_test_image};
use crate::support::{CLIENT_24_03, Stack, free_port, workspace_file};

/// The storage volumes the install guide writes (`configs/manager/halfstack.etcd.volumes.json`).
const VOLUMES: &str = include_str!("../../../../configs/manager/halfstack.etcd.volumes.json");
/// The browser Playwright drives: Debian's `chromium` package (`cargo xtask ci` installs it).
const CHROMIUM: &str = "/usr/bin/chromium";
/// The one request the reference fails too in this setup: asking the storage proxies for their
/// volumes.
const STORAGE_HOSTS_PATH: &str = "/func/folders/_/hosts";
/// The enterprise license the Information page asks for: the open-source reference has no such
/// route and answers 404 `url-not-found`, as ours does.
const LICENSE_PATH: &str = "/func/license";
/// The web server's own refusal of the WebUI's first, empty login probe; the reference gets it
/// too, and it never reaches the manager.
const LOGIN_PROBE_REFUSAL: &str = "You must provide the username field.";

#[derive(Debug, Deserialize)]
struct Report {
    login: Page,
    #[serde(default)]
    sidebar: Vec<String>,
    #[serde(default)]
    pages: Vec<Page>,
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    item: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    toasts: Vec<Toast>,
    #[serde(default)]
    failures: Vec<Failure>,
    #[serde(default)]
    console: Vec<String>,
    #[serde(default)]
    error_page: bool,
}

#[derive(Debug, Deserialize)]
struct Toast {
    text: String,
    error: bool,
}

#[derive(Debug, Deserialize)]
struct Failure {
    method: String,
    url: String,
    status: Option<u16>,
    body: String,
}

impl Failure {
    /// A failure the reference shows in the same setup.
    fn is_expected(&self) -> bool {
        let storage_hosts = self.url.contains(STORAGE_HOSTS_PATH) && self.method == "GET";
        let login_probe = self.url.ends_with("/server/login")
            && self.status == Some(400)
            && self.body.contains(LOGIN_PROBE_REFUSAL);
        let no_license = self.url.ends_with(LICENSE_PATH)
            && self.status == Some(404)
            && self.body.contains("url-not-found");
        storage_hosts || login_probe || no_license
    }
}

impl Page {
    /// What is wrong with the page beyond what the reference shows too.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(error) = &self.error {
            problems.push(format!("could not log in: {error}"));
        }
        let unexpected: Vec<&Failure> = self.failures.iter().filter(|f| !f.is_expected()).collect();
        for failure in &unexpected {
            problems.push(format!(
                "{} {} answered {:?}: {}",
                failure.method, failure.url, failure.status, failure.body
            ));
        }
        // A toast can only be told apart by its text, which for a failed request is the answer's
        // title: error toasts are accepted on a page whose only failures are the expected ones.
        let storage_failed = self.failures.iter().any(Failure::is_expected);
        for toast in self.toasts.iter().filter(|t| t.error) {
            if !unexpected.is_empty() || !storage_failed {
                problems.push(format!("error toast: {}", toast.text));
            }
        }
        if self.error_page && !self.error_page_caused_by_storage() {
            problems.push(format!(
                "the WebUI's error page; console: {:?}",
                self.console
            ));
        }
        problems
    }

    /// The WebUI's error boundary logs what it caught; on the reference it catches the failed
    /// storage-hosts request.
    fn error_page_caused_by_storage(&self) -> bool {
        let caught: Vec<&String> = self
            .console
            .iter()
            .filter(|line| line.starts_with("BAIErrorBoundary"))
            .collect();
        !caught.is_empty() && caught.iter().all(|line| line.contains(STORAGE_HOSTS_PATH))
    }
}

/// `backend.ai-webserver` on `port`, forwarding to our server on `manager_port`, keeping its
/// login sessions in the stack's Redis; killed when dropped.
struct WebServer {
    child: Child,
    log: PathBuf,
}

impl WebServer {
    fn start(stack: &Stack, port: u16, manager_port: u16) -> WebServer {
        let config = stack.path("webserver.conf");
        std::fs::write(
            &config,
            webserver_conf(port, manager_port, &stack.redis.addr()),
        )
        .expect("writing webserver.conf");
        let log = stack.path("webserver.log");
        let child = Command::new(venv_python())
            .args(["-m", "ai.backend.web.server", "-f"])
            .arg(&config)
            .current_dir(stack.dir.path())
            // Its workers are processes of their own: the group goes down together.
            .process_group(0)
            .stdout(Stdio::from(std::fs::File::create(&log).expect("log file")))
            .stderr(Stdio::from(
                std::fs::File::options()
                    .append(true)
                    .open(&log)
                    .expect("log file"),
            ))
            .spawn()
            .expect("starting backend.ai-webserver");
        let server = WebServer { child, log };
        server.wait_listening(port);
        server
    }

    fn wait_listening(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "backend.ai-webserver did not listen on {port} within 60 s: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let group = Pid::from_raw(i32::try_from(self.child.id()).expect("a pid is an i32"));
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The halfstack's web server configuration (`cargo xtask webui` runs it) with this test's ports
/// and Redis (a private one, without password).
fn webserver_conf(port: u16, manager_port: u16, redis_addr: &str) -> String {
    let halfstack = std::fs::read_to_string(workspace_file("configs/webserver/halfstack.conf"))
        .expect("reading configs/webserver/halfstack.conf");
    let replacements = [
        ("port = 8090\n".to_owned(), format!("port = {port}\n")),
        (
            "endpoint = \"http://127.0.0.1:8081\"".to_owned(),
            format!("endpoint = \"http://127.0.0.1:{manager_port}\""),
        ),
        (
            "redis.addr = \"127.0.0.1:8110\"".to_owned(),
            format!("redis.addr = \"{redis_addr}\""),
        ),
        ("redis.password = \"develove\"\n".to_owned(), String::new()),
    ];
    replacements
        .into_iter()
        .fold(halfstack, |conf, (halfstack_line, ours)| {
            assert!(
                conf.contains(&halfstack_line),
                "configs/webserver/halfstack.conf has no {halfstack_line:?}"
            );
            conf.replacen(&halfstack_line, &ours, 1)
        })
}

fn venv_python() -> PathBuf {
    let python = workspace_file(".venvs/webui/bin/python");
    assert!(
        python.exists(),
        "{} is missing: make the venvs with `cargo xtask venv`",
        python.display()
    );
    python
}

/// Runs the browser through the WebUI as `email`; its report.
fn drive(url: &str, email: &str, password: &str, screenshots: &Path) -> Report {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (cargo xtask ci does)"
    );
    let output = Command::new(venv_python())
        .arg(workspace_file("bins/manager-server/tests/webui/drive.py"))
        .args(["--url", url, "--email", email, "--password", password])
        .arg("--screenshots")
        .arg(screenshots)
        .args(["--chromium", CHROMIUM])
        .output()
        .expect("running drive.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!(
            "drive.py as {email} printed no report ({error}); status {}\nstdout: {stdout}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Every problem of `report` beyond what the reference shows, one line each.
fn problems(report: &Report) -> Vec<String> {
    let mut problems: Vec<String> = report
        .login
        .problems()
        .into_iter()
        .map(|p| format!("login: {p}"))
        .collect();
    for page in &report.pages {
        problems.extend(
            page.problems()
                .into_iter()
                .map(|p| format!("{} ({}): {p}", page.item, page.path)),
        );
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sidebar_page_renders_for_the_example_admin_and_user() {
    let stack = stack_with_test_image("webui").await;
    let volumes: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(VOLUMES).expect("volumes JSON");
    stack
        .store
        .put_prefix("volumes", &volumes, Scope::Global)
        .await
        .expect("writing volumes");
    let (_server, port) = serve(&stack).await;
    let (_agent, _runner) = local_runner_agent(&stack, "i-webui", None).await;
    // A session that ran and ended, for the statistics and the session history.
    let session = running_session(&CLIENT_24_03, &stack, port, "webui-finished");
    CLIENT_24_03.cli(&stack, port, &["session", "rm", &session]);

    let web_port = free_port();
    let _web = WebServer::start(&stack, web_port, port);
    let url = format!("http://127.0.0.1:{web_port}");
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("webui-screenshots");
    // Only this run's pages: a page the sidebar no longer has must not leave its old picture.
    if screenshots.exists() {
        std::fs::remove_dir_all(&screenshots).expect("clearing the old screenshots");
    }

    let users = [
        ("admin@lablup.com", "wJalrXUt", "admin", 15),
        ("user@lablup.com", "C8qnIo29", "user", 8),
    ];
    let mut all_problems = Vec::new();
    for (email, password, label, pages) in users {
        let report = drive(&url, email, password, &screenshots.join(label));
        assert_eq!(
            report.pages.len(),
            pages,
            "{email}: the sidebar had {:?}",
            report.sidebar
        );
        all_problems.extend(
            problems(&report)
                .into_iter()
                .map(|p| format!("{email}: {p}")),
        );
    }
    println!("screenshots: {}", screenshots.display());
    assert!(
        all_problems.is_empty(),
        "the WebUI showed problems the reference does not (screenshots in {}):\n{}",
        screenshots.display(),
        all_problems.join("\n")
    );
}
