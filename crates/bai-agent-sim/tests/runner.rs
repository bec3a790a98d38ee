//! agent-sim's local code runner (`--runner local`) over the agent RPC, called as the manager
//! calls it (`bai-agent-rpc`), one agent in this process on a fresh etcd namespace and a private
//! Redis: queries in Python and sh, streamed output over `continue`, `input`, interrupts, batch
//! mode, the file methods and their refusals, the batch loop's session events (24.03's
//! `trigger_batch_execution`, 23.09's own start) and the cleanup on destroy. Real child processes
//! (`python3`, `sh`) run; every wait has a timeout.

mod common;

use std::fs;
use std::io::Read;
use std::time::{Duration, Instant};

use bai_agent_rpc::{Connection, RpcError};
use bai_agent_sim::{
    AgentBehaviour, AgentToml, CodeRunner, LocalRunnerOptions, RpcOptions, SimOptions,
};
use bai_events::Event;
use bai_redis::EntryId;
use common::{CALL, Kernel, Setup, Sim, client, create_args, map, map_get};
use rmpv::Value;
use uuid::Uuid;

const PYTHON_IMAGE: &str = "cr.backend.ai/testing/python:3.9-ubuntu20.04";
const SHELL_IMAGE: &str = "cr.backend.ai/testing/ubuntu:22.04";

/// One agent running code with the local runner, saying it is `version`, and a connection to it.
async fn start(label: &str, version: &str) -> (Sim, Connection) {
    let sim = Sim::start(
        label,
        Setup {
            rpc: RpcOptions {
                delay: Duration::from_millis(10),
                ..RpcOptions::default()
            },
            local_runner: true,
            version: Some(version),
            ..Setup::default()
        },
    )
    .await;
    let connection = sim.connect(&client(None)).await;
    (sim, connection)
}

/// Appends the console items of `result`, an answer of `execute` for `run_id`, to `stdout` and
/// `stderr`.
fn append_console(result: &Value, run_id: &str, stdout: &mut String, stderr: &mut String) {
    assert_eq!(map_get(result, "runId"), &Value::from(run_id));
    for item in map_get(result, "console").as_array().expect("console") {
        let item = item.as_array().expect("a console item");
        let text = item[1].as_str().expect("text");
        match item[0].as_str() {
            Some("stdout") => stdout.push_str(text),
            Some("stderr") => stderr.push_str(text),
            other => panic!("console item of {other:?}"),
        }
    }
}

/// The `status` of an answer of `execute`.
fn status(answer: &Value) -> &str {
    map_get(answer, "status").as_str().expect("status")
}

/// The console of an answer of `execute` holding `text` on stdout alone.
fn stdout_console(text: &str) -> Value {
    Value::Array(vec![Value::Array(vec![
        Value::from("stdout"),
        Value::from(text),
    ])])
}

/// How many bytes of text the console items of an answer of `execute` hold.
fn console_len(answer: &Value) -> usize {
    map_get(answer, "console")
        .as_array()
        .expect("console")
        .iter()
        .map(|item| {
            item.as_array().expect("item")[1]
                .as_str()
                .expect("text")
                .len()
        })
        .sum()
}

/// The session, reason and exit code of the next `session_success` or `session_failure`
/// (`name`) after `after`.
async fn session_end(sim: &Sim, name: &str, after: &mut EntryId) -> (Uuid, String, i64) {
    match sim.wait_for(name, after).await {
        Event::SessionSuccess(end) | Event::SessionFailure(end) => {
            (end.session_id, end.reason, end.exit_code)
        }
        other => panic!("not {name}: {other:?}"),
    }
}

/// `create_kernels` of one kernel of a new session with `image`; `batch` makes it the main
/// kernel of a batch session with that startup command.
async fn create(connection: &Connection, image: &str, batch: Option<&str>) -> Kernel {
    let (session, kernel) = (Uuid::new_v4(), Uuid::new_v4());
    let mut config = vec![
        (
            "resource_slots",
            map(&[
                ("cpu", Value::from("1")),
                ("mem", Value::from("1073741824")),
            ]),
        ),
        (
            "image",
            map(&[
                ("canonical", Value::from(image)),
                ("labels", map(&[])),
                ("is_local", Value::from(true)),
            ]),
        ),
        ("cluster_role", Value::from("main")),
        (
            "environ",
            map(&[("BACKENDAI_KERNEL_ID", Value::from(kernel.to_string()))]),
        ),
    ];
    match batch {
        Some(command) => {
            config.push(("session_type", Value::from("batch")));
            config.push(("startup_command", Value::from(command)));
        }
        None => config.push(("session_type", Value::from("interactive"))),
    }
    connection
        .call(
            "create_kernels",
            create_args(session, &[kernel], vec![map(&config)]),
            vec![],
            CALL,
        )
        .await
        .expect("create_kernels");
    Kernel { session, kernel }
}

impl Kernel {
    /// `execute` of API version 3, which must answer.
    async fn execute(
        &self,
        connection: &Connection,
        run_id: &str,
        mode: &str,
        code: &str,
        opts: Value,
        flush_timeout: f64,
    ) -> Value {
        let args = self.execute_args(3, run_id, mode, code, opts, Value::F64(flush_timeout));
        connection
            .call("execute", args, vec![], CALL)
            .await
            .expect("execute")
    }

    /// `execute` of `code` in query mode.
    async fn query(
        &self,
        connection: &Connection,
        run_id: &str,
        code: &str,
        flush_timeout: f64,
    ) -> Value {
        self.execute(connection, run_id, "query", code, map(&[]), flush_timeout)
            .await
    }

    /// `execute` in continue mode: more of the run's output, or its end.
    async fn resume(&self, connection: &Connection, run_id: &str, flush_timeout: f64) -> Value {
        self.execute(connection, run_id, "continue", "", map(&[]), flush_timeout)
            .await
    }

    /// `continue` (waiting up to 0.5 s for output) until `finished`: every answer from `first`
    /// on, the console items joined per stream, and the last answer.
    async fn until_finished(
        &self,
        connection: &Connection,
        first: Value,
        run_id: &str,
    ) -> (Vec<Value>, String, String, Value) {
        self.continue_until_finished(connection, first, run_id, 0.5)
            .await
    }

    /// [`Kernel::until_finished`], each `continue` waiting up to `flush_timeout` for output.
    async fn continue_until_finished(
        &self,
        connection: &Connection,
        first: Value,
        run_id: &str,
        flush_timeout: f64,
    ) -> (Vec<Value>, String, String, Value) {
        let mut answers = Vec::new();
        let (mut stdout, mut stderr) = (String::new(), String::new());
        let mut result = first;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            append_console(&result, run_id, &mut stdout, &mut stderr);
            answers.push(result.clone());
            if status(&result) == "finished" {
                return (answers, stdout, stderr, result);
            }
            assert!(
                Instant::now() < deadline,
                "not finished: {:?}",
                answers.iter().map(status).collect::<Vec<_>>()
            );
            result = self.resume(connection, run_id, flush_timeout).await;
        }
    }

    /// `continue` (waiting up to 0.5 s for output) from `first` until the run's stdout holds
    /// `text`, every answer `continued`: the stdout and stderr so far. A signal sent after this
    /// finds the child past its setup (Python's SIGINT handler installed, a shell's trap set),
    /// however slowly a loaded machine started it.
    async fn until_printed(
        &self,
        connection: &Connection,
        first: Value,
        run_id: &str,
        text: &str,
    ) -> (String, String) {
        let (mut stdout, mut stderr) = (String::new(), String::new());
        let mut result = first;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert_eq!(status(&result), "continued", "{result}");
            append_console(&result, run_id, &mut stdout, &mut stderr);
            if stdout.contains(text) {
                return (stdout, stderr);
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} not printed within 30 s: {stdout:?} {stderr:?}"
            );
            result = self.resume(connection, run_id, 0.5).await;
        }
    }

    /// `method` of this kernel, which must answer.
    async fn call(&self, connection: &Connection, method: &str, rest: Vec<Value>) -> Value {
        self.try_call(connection, method, rest)
            .await
            .unwrap_or_else(|error| panic!("{method}: {error}"))
    }

    /// `upload_file` of `data` to `filename`, which must answer.
    async fn upload(&self, connection: &Connection, filename: &str, data: &[u8]) -> Value {
        let args = vec![Value::from(filename), Value::Binary(data.to_vec())];
        self.call(connection, "upload_file", args).await
    }

    /// `method` of this kernel, which must be refused: the exception's name and repr.
    async fn refused(&self, connection: &Connection, method: &str, rest: Vec<Value>) -> String {
        match self.try_call(connection, method, rest).await {
            Err(RpcError::Failure { exc_name, repr, .. }) => format!("{exc_name}: {repr}"),
            other => panic!("{method} was not refused: {other:?}"),
        }
    }

    async fn try_call(
        &self,
        connection: &Connection,
        method: &str,
        rest: Vec<Value>,
    ) -> Result<Value, RpcError> {
        let mut args = vec![Value::from(self.kernel.to_string())];
        args.extend(rest);
        connection.call(method, args, vec![], CALL).await
    }

    /// `trigger_batch_execution` of this batch session's kernel with `command`.
    async fn trigger(&self, connection: &Connection, command: &str) -> Result<Value, RpcError> {
        connection
            .call(
                "trigger_batch_execution",
                vec![
                    Value::from(self.session.to_string()),
                    Value::from(self.kernel.to_string()),
                    Value::from(command),
                ],
                vec![],
                CALL,
            )
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_run_python_and_sh_and_answer_output_and_exit_codes() {
    let (sim, connection) = start("query", "24.03.11").await;
    let mut after = EntryId::ZERO;
    let python = create(&connection, PYTHON_IMAGE, None).await;

    let result = python.query(&connection, "r1", "print(6*7)", 5.0).await;
    assert_eq!(map_get(&result, "status"), &Value::from("finished"));
    assert_eq!(map_get(&result, "exitCode"), &Value::from(0));
    assert_eq!(map_get(&result, "runId"), &Value::from("r1"));
    assert_eq!(map_get(&result, "options"), &Value::Nil);
    assert_eq!(map_get(&result, "files"), &Value::Array(vec![]));
    assert_eq!(map_get(&result, "console"), &stdout_console("42\n"));
    let names = sim.names_until("execution_finished", &mut after).await;
    assert!(
        names.ends_with(&[
            "execution_started".to_owned(),
            "execution_finished".to_owned()
        ]),
        "{names:?}"
    );

    // stderr, the exit code, and the kernel's environ; it runs in the scratch folder.
    let code = "import os, sys\nprint(os.environ['BACKENDAI_KERNEL_ID'])\nprint(os.getcwd())\n\
                print('oops', file=sys.stderr)\nsys.exit(3)";
    let result = python.query(&connection, "r2", code, 5.0).await;
    let (_, stdout, stderr, result) = python.until_finished(&connection, result, "r2").await;
    assert_eq!(map_get(&result, "exitCode"), &Value::from(3));
    let work = bai_agent_sim::scratch_folder(
        &LocalRunnerOptions {
            scratch_root: sim.scratch.clone(),
            allow_root: true,
        },
        &sim.id,
        python.kernel,
    );
    assert_eq!(
        stdout,
        format!("{}\n{}\n", python.kernel, work.display()),
        "the kernel's environ and folder"
    );
    assert_eq!(stderr, "oops\n");

    // An exception: its traceback on stderr, without the runner's own frames.
    let result = python.query(&connection, "r3", "1/0", 5.0).await;
    let (_, _, stderr, result) = python.until_finished(&connection, result, "r3").await;
    assert_eq!(map_get(&result, "exitCode"), &Value::from(1));
    assert!(stderr.contains("ZeroDivisionError"), "{stderr}");
    assert!(!stderr.contains("exec(_code"), "{stderr}");

    // Other images run sh.
    let shell = create(&connection, SHELL_IMAGE, None).await;
    let result = shell
        .query(&connection, "s1", "echo hi; echo err >&2; exit 4", 5.0)
        .await;
    let (_, stdout, stderr, result) = shell.until_finished(&connection, result, "s1").await;
    assert_eq!((stdout.as_str(), stderr.as_str()), ("hi\n", "err\n"));
    assert_eq!(map_get(&result, "exitCode"), &Value::from(4));

    // API version 1: stdout and stderr texts instead of console items.
    let args = shell.execute_args(1, "s2", "query", "echo v1", map(&[]), Value::F64(5.0));
    let result = connection
        .call("execute", args, vec![], CALL)
        .await
        .expect("execute");
    assert_eq!(map_get(&result, "stdout"), &Value::from("v1\n"));
    assert_eq!(map_get(&result, "status"), &Value::from("finished"));

    // A kernel the agent does not hold: the agent's RuntimeError, after execution_started.
    let ghost = Kernel {
        session: Uuid::new_v4(),
        kernel: Uuid::new_v4(),
    };
    let args = ghost.execute_args(3, "g", "query", "1", map(&[]), Value::F64(1.0));
    let error = connection
        .call("execute", args, vec![], CALL)
        .await
        .expect_err("no such kernel");
    assert!(
        matches!(&error, RpcError::Failure { exc_name, repr, .. }
            if exc_name == "RuntimeError" && repr.contains("is not found")),
        "{error:?}"
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_streams_over_continue_calls_and_stdin_reaches_input() {
    let (sim, connection) = start("stream", "24.03.11").await;
    let python = create(&connection, PYTHON_IMAGE, None).await;

    let code = "import time\nfor i in range(5):\n    print(i)\n    time.sleep(0.4)\n";
    let first = python.query(&connection, "slow", code, 0.5).await;
    let (answers, stdout, _, result) = python.until_finished(&connection, first, "slow").await;
    assert_eq!(stdout, "0\n1\n2\n3\n4\n");
    let statuses: Vec<_> = answers.iter().map(status).collect();
    assert!(
        statuses.len() >= 3
            && statuses[..statuses.len() - 1]
                .iter()
                .all(|s| *s == "continued"),
        "{statuses:?}"
    );
    assert_eq!(map_get(&result, "exitCode"), &Value::from(0));

    // 8 MiB of output: no answer carries more than the cap, and nothing is lost.
    let code = "import sys\nfor i in range(8):\n    sys.stdout.write(str(i) * (1 << 20))\n";
    let first = python.query(&connection, "big", code, 0.5).await;
    let (answers, total, stderr, _) = python.until_finished(&connection, first, "big").await;
    let sizes: Vec<_> = answers.iter().map(console_len).collect();
    let expected: String = (0..8).map(|i| i.to_string().repeat(1 << 20)).collect();
    assert!(total == expected, "the output arrived whole and in order");
    assert_eq!(stderr, "");
    assert!(
        sizes.iter().all(|size| *size <= bai_agent_sim::OUTPUT_CAP),
        "{sizes:?}"
    );
    assert!(sizes.len() >= 8, "{sizes:?}");

    // input(): the prompt, then waiting-input; the answer goes to the child's stdin.
    let code = "name = input('who? ')\nprint('hi', name)";
    let result = python.query(&connection, "ask", code, 5.0).await;
    assert_eq!(map_get(&result, "status"), &Value::from("waiting-input"));
    assert_eq!(
        map_get(&result, "options"),
        &map(&[("is_password", Value::Boolean(false))])
    );
    assert_eq!(map_get(&result, "console"), &stdout_console("who? "));
    let result = python
        .execute(&connection, "ask", "input", "bob", map(&[]), 5.0)
        .await;
    let (_, stdout, _, _) = python.until_finished(&connection, result, "ask").await;
    assert_eq!(stdout, "hi bob\n");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_stops_the_run_and_destroy_kills_it() {
    let (sim, connection) = start("interrupt", "24.03.11").await;
    let python = create(&connection, PYTHON_IMAGE, None).await;
    let result = python
        .query(
            &connection,
            "sleepy",
            "import time\nprint('start', flush=True)\ntime.sleep(60)",
            0.5,
        )
        .await;
    let (printed, _) = python
        .until_printed(&connection, result, "sleepy", "start\n")
        .await;
    let started = Instant::now();
    assert_eq!(
        python.call(&connection, "interrupt_kernel", vec![]).await,
        Value::Nil
    );
    let result = python.resume(&connection, "sleepy", 0.5).await;
    let (_, stdout, stderr, result) = python.until_finished(&connection, result, "sleepy").await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(printed + &stdout, "start\n");
    assert!(stderr.contains("KeyboardInterrupt"), "{stderr}");
    assert_ne!(map_get(&result, "exitCode"), &Value::from(0));

    // A shell ignoring SIGINT is killed after the grace period.
    let shell = create(&connection, SHELL_IMAGE, None).await;
    let result = shell
        .query(
            &connection,
            "stubborn",
            "trap '' INT; echo trapped; sleep 60",
            0.3,
        )
        .await;
    shell
        .until_printed(&connection, result, "stubborn", "trapped\n")
        .await;
    shell.call(&connection, "interrupt_kernel", vec![]).await;
    let result = shell.resume(&connection, "stubborn", 0.5).await;
    let (_, _, _, result) = shell.until_finished(&connection, result, "stubborn").await;
    assert_eq!(map_get(&result, "exitCode"), &Value::from(-9));

    // An execute the manager cancels (its call timed out) says execution_cancelled.
    let mut after = EntryId::ZERO;
    let args = shell.execute_args(3, "waited", "query", "sleep 2", map(&[]), Value::Nil);
    let error = connection
        .call("execute", args, vec![], Some(Duration::from_millis(500)))
        .await
        .expect_err("the call times out");
    assert!(matches!(error, RpcError::Timeout { .. }), "{error:?}");
    let names = sim.names_until("execution_cancelled", &mut after).await;
    assert!(names.contains(&"execution_started".to_owned()), "{names:?}");
    let result = shell.resume(&connection, "waited", 5.0).await;
    let (_, _, _, result) = shell.until_finished(&connection, result, "waited").await;
    assert_eq!(map_get(&result, "exitCode"), &Value::from(0));

    // Destroying a kernel kills its run (and the grandchildren) and removes its folder.
    let marker = sim.scratch.join("grandchild-alive");
    let code = format!(
        "(sleep 5; touch {}) & echo forked; sleep 60",
        marker.display()
    );
    let result = shell.query(&connection, "doomed", &code, 0.3).await;
    shell
        .until_printed(&connection, result, "doomed", "forked\n")
        .await;
    let work = sim.scratch.join(&sim.id).join(shell.kernel.to_string());
    assert!(work.join("work").is_dir());
    shell.destroy(&connection).await;
    assert!(!work.exists(), "the scratch folder is removed");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(!marker.exists(), "the run's process group was killed");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_mode_runs_clean_build_and_exec() {
    let (sim, connection) = start("batch-mode", "24.03.11").await;
    let shell = create(&connection, SHELL_IMAGE, None).await;
    let opts = map(&[
        ("build", Value::from("echo built > artefact; echo building")),
        (
            "exec",
            Value::from("cat artefact; echo $_BACKEND_BATCH_MODE; exit 2"),
        ),
    ]);
    let result = shell
        .execute(&connection, "b1", "batch", "", opts, 5.0)
        .await;
    assert_eq!(map_get(&result, "status"), &Value::from("clean-finished"));
    assert_eq!(map_get(&result, "exitCode"), &Value::from(0));
    let result = shell.resume(&connection, "b1", 5.0).await;
    assert_eq!(map_get(&result, "status"), &Value::from("build-finished"));
    assert_eq!(map_get(&result, "console"), &stdout_console("building\n"));
    let result = shell.resume(&connection, "b1", 5.0).await;
    let (_, stdout, _, result) = shell.until_finished(&connection, result, "b1").await;
    assert_eq!(stdout, "built\n1\n");
    assert_eq!(map_get(&result, "exitCode"), &Value::from(2));

    // A failed build skips exec with 127.
    let opts = map(&[
        ("build", Value::from("exit 5")),
        ("exec", Value::from("echo never")),
    ]);
    let first = shell
        .execute(&connection, "b2", "batch", "", opts, 5.0)
        .await;
    let (answers, ..) = shell
        .continue_until_finished(&connection, first, "b2", 5.0)
        .await;
    let steps: Vec<_> = answers
        .iter()
        .map(|answer| (status(answer), map_get(answer, "exitCode")))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("clean-finished", &Value::from(0)),
            ("build-finished", &Value::from(5)),
            ("finished", &Value::from(127)),
        ]
    );

    // `*` (what `backend.ai run FILES` sends): the kernel runner's heuristics, main.py for
    // Python images.
    let python = create(&connection, PYTHON_IMAGE, None).await;
    let stars = map(&[
        ("clean", Value::from("*")),
        ("build", Value::from("*")),
        ("exec", Value::from("*")),
    ]);
    let missing = python
        .execute(&connection, "h1", "batch", "", stars.clone(), 5.0)
        .await;
    let (.., result) = python
        .continue_until_finished(&connection, missing, "h1", 5.0)
        .await;
    assert_eq!(map_get(&result, "exitCode"), &Value::from(127));
    python
        .upload(&connection, "main.py", b"print('main ran')")
        .await;
    let first = python
        .execute(&connection, "h2", "batch", "", stars, 5.0)
        .await;
    let (_, stdout, stderr, result) = python
        .continue_until_finished(&connection, first, "h2", 5.0)
        .await;
    assert_eq!((stdout.as_str(), stderr.as_str()), ("main ran\n", ""));
    assert_eq!(map_get(&result, "exitCode"), &Value::from(0));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_round_trip_in_the_scratch_folder_and_escapes_are_refused() {
    let (sim, connection) = start("files", "24.03.11").await;
    let kernel = create(&connection, PYTHON_IMAGE, None).await;
    let data = b"hello\x00world".to_vec();
    assert_eq!(
        kernel.upload(&connection, "sub/a.bin", &data).await,
        Value::Nil
    );
    kernel
        .upload(&connection, "/home/work/top.txt", b"top")
        .await;

    // The code sees the uploaded files in its working folder.
    let result = kernel
        .query(&connection, "cat", "print(open('top.txt').read())", 5.0)
        .await;
    let (_, stdout, _, _) = kernel.until_finished(&connection, result, "cat").await;
    assert_eq!(stdout, "top\n");

    let listing = kernel
        .call(&connection, "list_files", vec![Value::from("sub")])
        .await;
    assert_eq!(map_get(&listing, "abspath"), &Value::from("sub"));
    assert_eq!(map_get(&listing, "errors"), &Value::from(""));
    let files: serde_json::Value =
        serde_json::from_str(map_get(&listing, "files").as_str().expect("text")).expect("JSON");
    assert_eq!(files.as_array().expect("a list").len(), 1);
    assert_eq!(files[0]["filename"], "a.bin");
    assert_eq!(files[0]["size"], data.len());
    assert!(files[0]["mode"].as_str().expect("mode").starts_with("-rw"));
    assert!(files[0]["mtime"].as_f64().expect("mtime") > 1.0e9);
    let root = kernel
        .call(&connection, "list_files", vec![Value::from(".")])
        .await;
    let names: serde_json::Value =
        serde_json::from_str(map_get(&root, "files").as_str().expect("text")).expect("JSON");
    let mut names: Vec<_> = names
        .as_array()
        .expect("a list")
        .iter()
        .map(|file| (file["filename"].clone(), file["mode"].clone()))
        .collect();
    names.sort_by_key(|(name, _)| name.to_string());
    assert_eq!(names[0].0, "sub");
    assert!(names[0].1.as_str().expect("mode").starts_with('d'));
    let missing = kernel
        .call(&connection, "list_files", vec![Value::from("nope")])
        .await;
    assert_eq!(map_get(&missing, "files"), &Value::from(""));
    assert!(
        map_get(&missing, "errors")
            .as_str()
            .expect("text")
            .contains("FileNotFoundError: [Errno 2] No such file or directory: '/home/work/nope'")
    );

    let single = kernel
        .call(
            &connection,
            "download_single",
            vec![Value::from("sub/a.bin")],
        )
        .await;
    assert_eq!(single, Value::Binary(data.clone()));
    let archive = kernel
        .call(
            &connection,
            "download_file",
            vec![Value::from("/home/work/sub")],
        )
        .await;
    let Value::Binary(archive) = archive else {
        panic!("download_file answers bytes");
    };
    let mut entries = Vec::new();
    let mut tar = tar::Archive::new(archive.as_slice());
    for entry in tar.entries().expect("a tar archive") {
        let mut entry = entry.expect("an entry");
        let path = entry.path().expect("a path").display().to_string();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("read");
        entries.push((path.trim_end_matches('/').to_owned(), content));
    }
    assert_eq!(
        entries,
        vec![("sub".to_owned(), vec![]), ("sub/a.bin".to_owned(), data)]
    );
    let error = kernel
        .refused(&connection, "download_single", vec![Value::from("sub")])
        .await;
    assert!(error.contains("Expected a single-file archive"), "{error}");
    let error = kernel
        .refused(&connection, "download_file", vec![Value::from("gone.txt")])
        .await;
    assert!(
        error.contains("Could not download the archive to: /home/work/gone.txt"),
        "{error}"
    );

    // Paths out of /home/work, lexically or through a link, are refused as the agent does.
    for (method, args, message) in [
        (
            "upload_file",
            vec![Value::from("../escape.txt"), Value::Binary(b"x".to_vec())],
            "PermissionError: PermissionError(\"Not allowed to upload files outside /home/work\")",
        ),
        (
            "upload_file",
            vec![Value::from("/tmp/escape.txt"), Value::Binary(b"x".to_vec())],
            "Not allowed to upload files outside /home/work",
        ),
        (
            "download_file",
            vec![Value::from("../../../etc")],
            "You cannot download files outside /home/work",
        ),
        (
            "download_single",
            vec![Value::from("/etc/passwd")],
            "You cannot download files outside /home/work",
        ),
        (
            "list_files",
            vec![Value::from("/etc")],
            "You cannot list files outside /home/work",
        ),
        (
            "list_files",
            vec![Value::from("link-out")],
            "You cannot list files outside /home/work",
        ),
    ] {
        if method == "list_files" && args[0] == Value::from("link-out") {
            let result = kernel
                .query(
                    &connection,
                    "link",
                    "import os\nos.symlink('/etc', 'link-out')",
                    5.0,
                )
                .await;
            kernel.until_finished(&connection, result, "link").await;
        }
        let error = kernel.refused(&connection, method, args).await;
        assert!(error.contains(message), "{method}: {error}");
    }
    assert!(!sim.scratch.join(&sim.id).join("escape.txt").exists());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggered_batches_end_with_session_success_or_failure() {
    let (sim, connection) = start("trigger", "24.03.11").await;
    let mut after = EntryId::ZERO;

    let good = create(&connection, SHELL_IMAGE, Some("echo done")).await;
    let answer = good
        .trigger(&connection, "sleep 1.5; echo done")
        .await
        .expect("trigger_batch_execution");
    assert_eq!(answer, Value::Nil);
    assert_eq!(
        session_end(&sim, "session_success", &mut after).await,
        (good.session, "task-done".to_owned(), 0)
    );

    let bad = create(&connection, SHELL_IMAGE, Some("exit 7")).await;
    let mut before_bad = after;
    bad.trigger(&connection, "exit 7")
        .await
        .expect("trigger_batch_execution");
    assert_eq!(
        session_end(&sim, "session_failure", &mut after).await,
        (bad.session, "task-failed".to_owned(), 7)
    );
    // The batch loop's executes say so, as the manager's idle checker expects.
    let names = sim.names_until("execution_finished", &mut before_bad).await;
    assert!(names.contains(&"execution_started".to_owned()), "{names:?}");

    // Destroying a running batch session's kernel ends its task without a session event (the
    // reference's loop dies on its next execute); the agent's shutdown cancels a running one.
    let long = create(&connection, SHELL_IMAGE, Some("sleep 60")).await;
    long.trigger(&connection, "sleep 60")
        .await
        .expect("trigger_batch_execution");
    tokio::time::sleep(Duration::from_millis(500)).await;
    long.destroy(&connection).await;
    let names = sim.names_until("kernel_terminated", &mut after).await;
    assert!(
        !names.iter().any(|name| name.starts_with("session_")),
        "{names:?}"
    );
    let last = create(&connection, SHELL_IMAGE, Some("sleep 60")).await;
    last.trigger(&connection, "sleep 60")
        .await
        .expect("trigger_batch_execution");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut sim = sim;
    sim.stop_agents().await;
    assert_eq!(
        session_end(&sim, "session_failure", &mut after).await,
        (last.session, "task-cancelled".to_owned(), -2)
    );
    assert!(
        !sim.scratch.join(&sim.id).exists(),
        "the agent's scratch folders are removed when it stops"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_23_09_agent_starts_batches_itself_and_has_no_trigger() {
    let (sim, connection) = start("v2309", "23.09.10").await;
    let mut after = EntryId::ZERO;
    let batch = create(&connection, SHELL_IMAGE, Some("echo by myself")).await;
    assert_eq!(
        session_end(&sim, "session_success", &mut after).await,
        (batch.session, "task-done".to_owned(), 0)
    );
    let error = batch
        .trigger(&connection, "true")
        .await
        .expect_err("23.09 has no trigger_batch_execution");
    assert!(
        matches!(&error, RpcError::Internal { exc_name, .. } if exc_name == "KeyError"),
        "{error:?}"
    );

    let failing = create(&connection, SHELL_IMAGE, Some("exit 3")).await;
    assert_eq!(
        session_end(&sim, "session_failure", &mut after).await,
        (failing.session, "task-failed".to_owned(), 3)
    );
    sim.stop().await;
}

#[test]
fn the_local_runner_refuses_root_unless_allowed() {
    let config_dir = tempfile::tempdir().expect("tempdir");
    let path = config_dir.path().join("agent.toml");
    fs::write(
        &path,
        "[etcd]\nnamespace = \"x\"\naddr = { host = \"127.0.0.1\", port = 8120 }\n\
         [agent]\nid = \"i-root\"\n",
    )
    .expect("agent.toml");
    let config = AgentToml::load(&path).expect("loads");
    let options = SimOptions {
        agents: None,
        cpu: 1,
        mem: 1 << 30,
        stamp_version: false,
    };
    let behaviour = |allow_root| AgentBehaviour {
        runner: CodeRunner::Local(LocalRunnerOptions {
            scratch_root: config_dir.path().to_path_buf(),
            allow_root,
        }),
        ..AgentBehaviour::default()
    };
    let refused = bai_agent_sim::agents_with_behaviour(
        &config,
        &options,
        RpcOptions::default(),
        &behaviour(false),
    );
    if nix::unistd::getuid().is_root() {
        let error = refused.expect_err("root is refused").to_string();
        assert!(error.contains("--allow-root-runner"), "{error}");
    } else {
        assert!(refused.is_ok());
    }
    assert!(
        bai_agent_sim::agents_with_behaviour(
            &config,
            &options,
            RpcOptions::default(),
            &behaviour(true)
        )
        .is_ok()
    );
    assert!(bai_agent_sim::check_root(0, false).is_err());
    assert!(bai_agent_sim::check_root(0, true).is_ok());
    assert!(bai_agent_sim::check_root(1000, false).is_ok());
}

/// The resident memory of this process (the agent runs in it), in KiB.
fn rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_writing_without_end_is_held_back_not_buffered() {
    let (sim, connection) = start("flood", "24.03.11").await;
    let shell = create(&connection, SHELL_IMAGE, None).await;
    let result = shell.query(&connection, "flood", "yes flood", 0.2).await;
    assert_eq!(map_get(&result, "status"), &Value::from("continued"));
    let before = rss_kib();
    // `yes` writes far more than a GiB in these 3 s when nothing holds it back. The bound is
    // loose because the RSS is the whole test process's, and the other tests of this file run
    // beside this one (the 8 MiB output test among them).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib();
    eprintln!("RSS {before} KiB -> {after} KiB while `yes` ran 3 s uncollected");
    assert!(
        after < before + 256 * 1024,
        "the agent grew from {before} KiB to {after} KiB"
    );
    let result = shell.resume(&connection, "flood", 0.2).await;
    assert!(console_len(&result) <= bai_agent_sim::OUTPUT_CAP);
    shell.call(&connection, "interrupt_kernel", vec![]).await;
    shell.until_finished(&connection, result, "flood").await;
    sim.stop().await;
}
