//! Running code with the official clients against our server: `backend.ai run` (the WebSocket
//! `GET /stream/session/{name}/execute`) of the 24.3.11 and the 23.9.10 client on agent-sim with
//! the local runner (output, exit codes, `input()` answered from the client's stdin), the SDK's
//! `execute` loop over `POST /session/{name}` (run ids, `continue`), `interrupt` and `complete`,
//! and what the real Backend.AI 24.3.11 dummy agent answers, passed through without a hang.

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::session_support::{
    local_runner_agent, registered_real_agent, running_session, stack_with_server,
};
use crate::support::{CLIENT_23_09, CLIENT_24_03, Client, PYTHON_IMAGE, Stack, printed};

/// How long one client command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(90);

/// Runs `program args` of `client` with `stdin` written to it; fails the test after
/// [`COMMAND_LIMIT`] (a stream that never ends would hang the client).
fn run_within(
    client: &Client,
    stack: &Stack,
    port: u16,
    program: &str,
    args: &[&str],
    stdin: &str,
) -> Output {
    let mut child = client
        .command(stack, port, program, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin.as_bytes())
        .expect("writing stdin");
    let started = Instant::now();
    while child.try_wait().expect("waiting").is_none() {
        if started.elapsed() > COMMAND_LIMIT {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "{program} {} ({}) hung: {}{}",
                args.join(" "),
                client.venv,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// Processes running a query of the local runner under `scratch` (their command line names the
/// kernel's query file there).
fn queries_running_under(scratch: &Path) -> usize {
    let scratch = scratch.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(&scratch) && cmdline.contains("query.py"))
        .count()
}

/// Polls `check` every 100 ms for up to 20 s.
async fn wait_until(what: &str, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what}: not within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `backend.ai run --rm -c CODE IMAGE` of `client` with `stdin`: what it printed.
fn run_code(client: &Client, stack: &Stack, port: u16, code: &str, stdin: &str) -> String {
    let output = run_within(
        client,
        stack,
        port,
        "backend.ai",
        &[
            "run",
            "--rm",
            "-r",
            "cpu=1",
            "-r",
            "mem=1g",
            "-c",
            code,
            PYTHON_IMAGE,
        ],
        stdin,
    );
    let said = printed(&output);
    assert!(
        output.status.success(),
        "backend.ai run ({}) failed: {said}",
        client.venv
    );
    said
}

/// The SDK's synchronous `execute` loop on session `name` (server-assigned run id, then
/// `continue` until `finished`), then `interrupt` and `complete`: printed as one JSON line.
const SDK_EXECUTE: &str = r#"
import json, sys
from ai.backend.client.session import Session
from ai.backend.client.exceptions import BackendAPIError

with Session() as api:
    session = api.ComputeSession(sys.argv[1])
    answers = []
    failure = None
    run_id = None
    mode, code = "query", sys.argv[2]
    try:
        while True:
            result = session.execute(run_id, code, mode=mode)
            answers.append(result)
            run_id = result["runId"]
            if result["status"] == "finished":
                break
            mode, code = "continue", ""
    except BackendAPIError as error:
        failure = {"status": error.status, "data": error.data}
    session.interrupt()
    completions = session.complete("pri")
    print(json.dumps({"answers": answers, "failure": failure, "completions": completions}))
"#;

fn sdk_execute(client: &Client, stack: &Stack, port: u16, session: &str, code: &str) -> Value {
    let output = run_within(
        client,
        stack,
        port,
        "python",
        &["-c", SDK_EXECUTE, session, code],
        "",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the SDK script ({}) failed: {}",
        client.venv,
        printed(&output)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
        panic!(
            "the SDK script printed no JSON ({error}): {}",
            printed(&output)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_clients_run_code_on_agent_sim_with_the_local_runner() {
    let (stack, mut server, port) = stack_with_server("execute_sim").await;
    let (agent, runner) = local_runner_agent(&stack, "i-exec", None).await;

    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        for (code, stdin, output, exit_code) in [
            ("print(6*7)", "", "42\n", 0),
            (
                "import sys; print('oops', file=sys.stderr); sys.exit(3)",
                "",
                "oops\n",
                3,
            ),
            // `waiting-input`: the client reads a line from its stdin and sends it.
            (
                "name = input('who? '); print('hello ' + name)",
                "world\n",
                "hello world",
                0,
            ),
        ] {
            let said = run_code(client, &stack, port, code, stdin);
            assert!(said.contains(output), "{} printed: {said}", client.venv);
            assert!(
                said.contains(&format!("Execution finished. (exit code = {exit_code})")),
                "{} printed: {said}",
                client.venv
            );
        }
    }

    // A client that leaves mid-run gets its run interrupted: the query's process ends long
    // before its minute. (As with the reference's kernel runner, the abandoned run's final
    // result is never read, so that kernel's next run of another id waits: a session of its own.)
    let scratch = runner.scratch_root;
    running_session(&CLIENT_24_03, &stack, port, "execint");
    let mut leaving = CLIENT_24_03
        .command(
            &stack,
            port,
            "backend.ai",
            &[
                "run",
                "-t",
                "execint",
                "-c",
                "import time; time.sleep(60)",
                PYTHON_IMAGE,
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("backend.ai run");
    wait_until("the query runs", || queries_running_under(&scratch) == 1).await;
    leaving.kill().expect("killing the client");
    leaving.wait().expect("the client ends");
    wait_until("the query is interrupted", || {
        queries_running_under(&scratch) == 0
    })
    .await;

    // The SDK's polling loop over POST /session/{name}: output gathered over several answers.
    let session_id = running_session(&CLIENT_24_03, &stack, port, "execsdk");
    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let answer = sdk_execute(
            client,
            &stack,
            port,
            "execsdk",
            "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(1)\nraise SystemExit(5)",
        );
        let answers = answer["answers"].as_array().expect("answers");
        assert!(answers.len() >= 2, "{} got {answer}", client.venv);
        let run_id = &answers[0]["runId"];
        assert!(run_id.is_string(), "a run id of the agent's: {answer}");
        let mut stdout = String::new();
        for one in answers {
            assert_eq!(&one["runId"], run_id, "one run: {answer}");
            for record in one["console"].as_array().expect("console") {
                if record[0] == "stdout" {
                    stdout.push_str(record[1].as_str().expect("text"));
                }
            }
        }
        assert_eq!(stdout, "0\n1\n2\n", "{} got {answer}", client.venv);
        let last = answers.last().expect("an answer");
        assert_eq!(last["status"], "finished", "{answer}");
        assert_eq!(last["exitCode"], 5, "{answer}");
        assert_eq!(answer["completions"], serde_json::json!({"result": null}));
    }
    assert!(!session_id.is_empty());

    agent.stop().await;
    server.stop(nix::sys::signal::Signal::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_dummy_agent_answers_execute_through_both_clients_without_a_hang() {
    let (stack, mut server, port) = stack_with_server("execute_real").await;
    let agent = registered_real_agent(&stack, "i-real-exec").await;
    running_session(&CLIENT_24_03, &stack, port, "execreal");

    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        // POST /session/{name}: the dummy agent's answer, `not-implemented` without a run id;
        // the SDK's loop then asks to continue a run without an id, which is refused.
        let answer = sdk_execute(client, &stack, port, "execreal", "print(1)");
        assert_eq!(
            answer["answers"],
            serde_json::json!([{"status": "not-implemented", "runId": null, "exitCode": null,
                "options": null, "files": null, "console": null}]),
            "{} got {answer}",
            client.venv
        );
        assert_eq!(answer["failure"]["status"], 400, "{answer}");
        assert_eq!(
            answer["failure"]["data"]["msg"], "continuation requires explicit run ID",
            "{answer}"
        );
        assert_eq!(answer["completions"], serde_json::json!({"result": null}));

        // The stream: the agent's answer as one frame, then the stream ends (the client, which
        // expects a console list, may fail on its null) and so does the client.
        let output = run_within(
            client,
            &stack,
            port,
            "backend.ai",
            &["run", "-c", "print(1)", "-t", "execreal", PYTHON_IMAGE],
            "",
        );
        let said = printed(&output);
        assert!(
            !said.contains("Execution finished"),
            "{} printed: {said}",
            client.venv
        );
    }
    drop(agent);
    server.stop(nix::sys::signal::Signal::SIGTERM).await;
}
