//! Background tasks from start to exit: a task that honours the shutdown token, one that ignores
//! it, and tasks that die, essential or not. The times asserted are the behaviour bounds of
//! [`ShutdownBudget`], not benchmarks.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bai_server::ShutdownBudget;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[test]
fn sigterm_stops_cooperative_tasks_on_every_worker_well_within_the_budget() {
    let budget = ShutdownBudget::default();
    let mut server = Server::start(&[
        "--workers",
        "2",
        "--every-worker",
        "--task",
        "cooperative",
        "--task",
        "one-shot",
    ]);
    server.wait_ready();
    // A task that returns Ok at once is one-shot work: noted, and the server goes on.
    server.wait_for_log(|log| {
        (0..2).all(|worker| log.contains(&format!("worker-{worker}: task one-shot finished")))
    });

    let (status, took) = server.stop(Signal::SIGTERM);
    let log = server.stderr();
    assert!(status.success(), "{status}:\n{log}");
    assert!(took < budget.tasks / 2, "took {took:?}:\n{log}");
    for worker in 0..2 {
        let cleaned_up = line_index(&log, |line| {
            line.contains(&format!("task.name=cooperative worker={worker}"))
                && line.contains("cleaned up after")
        });
        let app_stopped = line_index(&log, |line| {
            line.contains(&format!("worker-{worker}: app stopped"))
        });
        assert!(
            cleaned_up < app_stopped,
            "the task stops before App::stop:\n{log}"
        );
    }
    assert!(!log.contains(" ERROR "), "{log}");
    assert!(!log.contains(" WARNING "), "{log}");
}

#[test]
fn sigterm_aborts_a_task_that_ignores_it_within_the_total_budget() {
    let budget = ShutdownBudget::default();
    let mut server = Server::start(&["--task", "ignores-shutdown", "--task", "cooperative"]);
    server.wait_ready();

    let (status, took) = server.stop(Signal::SIGTERM);
    let log = server.stderr();
    assert!(status.success(), "{status}:\n{log}");
    assert!(took >= budget.tasks, "the task had its budget: {took:?}");
    assert!(took < budget.total, "took {took:?}:\n{log}");
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(" WARNING "))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains(
            "worker-0: tasks still running 3.0 s into the shutdown, aborted: ignores-shutdown"
        ),
        "{log}"
    );
    assert!(!warnings[0].contains("cooperative"), "{log}");
    let aborted = line_index(&log, |line| line.contains(" WARNING "));
    let cleaned_up = line_index(&log, |line| {
        line.contains("task.name=cooperative") && line.contains("cleaned up after")
    });
    let app_stopped = line_index(&log, |line| line.contains("worker-0: app stopped"));
    assert!(cleaned_up < aborted && aborted < app_stopped, "{log}");
}

#[test]
fn an_essential_task_that_dies_stops_the_server_with_a_failure_status() {
    let budget = ShutdownBudget::default();
    for (behaviour, failure) in [
        ("fails", "failed: the event stream closed"),
        ("panics", "panicked: the task's invariant broke"),
    ] {
        let essential = format!("{behaviour}:essential");
        let started = Instant::now();
        let mut server = Server::start(&["--task", &essential, "--task", "cooperative"]);
        let status = server.wait_exit(Duration::from_secs(10));
        let took = started.elapsed();
        let log = server.stderr();
        assert_eq!(status.code(), Some(1), "{log}");
        // The task dies after 300 ms; the others stop at once, without waiting out a budget.
        assert!(took < budget.tasks, "took {took:?}:\n{log}");
        let errors: Vec<&str> = log
            .lines()
            .filter(|line| line.contains(" ERROR "))
            .collect();
        assert_eq!(errors.len(), 1, "{log}");
        assert!(
            errors[0].contains(&format!(
                "worker-0: essential task {behaviour} {failure}; stopping the server"
            )),
            "{log}"
        );
        assert!(
            log.lines()
                .any(|line| line.contains("task.name=cooperative")
                    && line.contains("cleaned up after")),
            "the other tasks stop gracefully:\n{log}"
        );
        assert!(log.contains("worker-0: app stopped"), "{log}");
        assert!(!log.contains(" WARNING "), "{log}");
    }
}

#[test]
fn a_best_effort_task_that_dies_is_reported_and_the_server_keeps_serving() {
    let budget = ShutdownBudget::default();
    let mut server = Server::start(&["--task", "fails", "--task", "panics"]);
    server.wait_ready();
    let log = server.wait_for_log(|log| log.matches(" ERROR ").count() == 2);
    for expected in [
        "worker-0: task fails failed: the event stream closed",
        "worker-0: task panics panicked: the task's invariant broke",
    ] {
        assert!(
            log.lines()
                .any(|line| line.contains(" ERROR ") && line.ends_with(expected)),
            "no ERROR line {expected:?} in:\n{log}"
        );
    }

    assert!(server.is_running(), "{log}");
    assert!(server.answers_ok(), "GET / after the failures:\n{log}");
    let (status, took) = server.stop(Signal::SIGTERM);
    let log = server.stderr();
    assert!(status.success(), "{status}:\n{log}");
    assert!(took < budget.tasks / 2, "took {took:?}:\n{log}");
    assert_eq!(log.matches(" ERROR ").count(), 2, "{log}");
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A running `background_tasks` example; killed if a test fails before stopping it.
struct Server {
    child: Child,
    port: u16,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let stderr = dir.path().join("server.stderr");
        let port = free_port();
        let child = Command::new(example_binary())
            .arg("--port")
            .arg(port.to_string())
            .args(args)
            // The panic message is enough; the ERROR line is what the tests read.
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start the background_tasks example");
        Server {
            child,
            port,
            stderr,
            _dir: dir,
        }
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Whether `GET /` answers 200 `ok`.
    fn answers_ok(&self) -> bool {
        let get = || -> std::io::Result<String> {
            let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        };
        get().is_ok_and(|response| {
            response.starts_with("HTTP/1.1 200") && response.ends_with("\r\n\r\nok")
        })
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.answers_ok() {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "the server exited ({status}) before it answered:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the server did not answer within 30 s:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (up to 10 s) until the log satisfies `done`, and returns it.
    fn wait_for_log(&mut self, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.stderr();
            if done(&log) {
                return log;
            }
            assert!(Instant::now() < deadline, "the log never got there:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {limit:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` and waits (up to 10 s) for the exit; returns the status and how long it took.
    fn stop(&mut self, signal: Signal) -> (ExitStatus, Duration) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        let started = Instant::now();
        kill(pid, signal).expect("signal the server");
        let status = self.wait_exit(Duration::from_secs(10));
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

/// The example beside this test binary: `target/debug/examples/background_tasks`, built by
/// `cargo test -p bai-server` (not by `cargo test --test it` alone).
fn example_binary() -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let profile_dir = test_binary
        .parent()
        .and_then(Path::parent)
        .expect("target/{profile}/deps");
    let example = profile_dir.join("examples/background_tasks");
    assert!(
        example.is_file(),
        "{} is missing: run `cargo test -p bai-server` or `cargo build -p bai-server --examples`",
        example.display()
    );
    example
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The index of the first line of `log` that matches (panics when none does).
fn line_index(log: &str, matches: impl Fn(&str) -> bool) -> usize {
    log.lines()
        .position(matches)
        .unwrap_or_else(|| panic!("no such line in:\n{log}"))
}
