//! Batch sessions with the official clients against our server, on agent-sim with the local
//! runner (never the real dummy agent, whose batch loop never yields: spec §5.1):
//! `session create --type batch --startup-command ...` of the 24.3.11 and 23.9.10 clients ends
//! TERMINATED (`task-finished`) with `result` SUCCESS, or FAILURE when the command fails; a
//! session created with `--depends` starts only once its dependency succeeded, and
//! `session show-graph` draws them; `--starts-at` in the future waits with the reference's
//! message. Once with a 24.03 agent (the manager sends `trigger_batch_execution`) and once with
//! a 23.09 one (the agent starts the command itself; the manager sends nothing). And
//! `backend.ai task-logs` reading a task's log from the user's `.logs` folder through a
//! stand-in storage proxy (an HTTP server of the test's own: the real one needs storage volumes
//! this machine does not have).

use std::time::Duration;

use bai_db_models::entities::enums::{SessionResult, SessionStatus};
use bai_db_models::entities::sessions;
use sea_orm::ConnectionTrait;

use crate::agents::wait_for;
use crate::session_support::{
    local_runner_agent, serve, serve_storage_proxy, session_row, stack_with_server,
};
use crate::support::{
    CLIENT_23_09, CLIENT_24_03, Client, PYTHON_IMAGE, Stack, created_session_id, printed,
};

const PATIENCE: Duration = Duration::from_secs(60);

/// `session create --type batch -t name --startup-command command {extra} IMAGE` of `client`:
/// the session's id.
fn create_batch(
    client: &Client,
    stack: &Stack,
    port: u16,
    name: &str,
    command: &str,
    extra: &[&str],
) -> String {
    let mut args = vec![
        "session",
        "create",
        "--type",
        "batch",
        "-t",
        name,
        "--startup-command",
        command,
        "-r",
        "cpu=1",
        "-r",
        "mem=1g",
    ];
    args.extend_from_slice(extra);
    args.push(PYTHON_IMAGE);
    created_session_id(&client.cli(stack, port, &args))
}

/// Session `id` once it is over (TERMINATED or CANCELLED).
async fn ended(stack: &Stack, id: &str) -> sessions::Model {
    wait_for(&format!("session {id} ends"), PATIENCE, || async {
        let row = session_row(stack, id).await;
        matches!(
            row.status,
            SessionStatus::Terminated | SessionStatus::Cancelled
        )
        .then_some(row)
    })
    .await
}

/// Session `id`'s status and the message of its failed predicate `name`, once its last
/// scheduling try failed on it.
async fn held_back(stack: &Stack, id: &str, name: &str) -> (SessionStatus, String) {
    wait_for(
        &format!("session {id} held back by {name}"),
        PATIENCE,
        || async {
            let row = session_row(stack, id).await;
            let message = row.status_data.as_ref()?["scheduler"]["failed_predicates"]
                .as_array()?
                .iter()
                .find(|predicate| predicate["name"] == name)
                .and_then(|predicate| predicate["msg"].as_str())?
                .to_owned();
            Some((row.status, message))
        },
    )
    .await
}

/// When the session entered `status`, from its history (ISO 8601 strings compare in order).
fn entered(row: &sessions::Model, status: &str) -> String {
    row.status_history
        .as_ref()
        .and_then(|history| history[status].as_str())
        .unwrap_or_else(|| panic!("no {status} in {:?}", row.status_history))
        .to_owned()
}

#[track_caller]
fn assert_finished(row: &sessions::Model, result: SessionResult) {
    assert_eq!(row.status, SessionStatus::Terminated, "{row:?}");
    assert_eq!(row.result, result, "{row:?}");
    assert_eq!(row.status_info.as_deref(), Some("task-finished"), "{row:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_sessions_end_with_their_commands_result_on_a_24_03_agent() {
    let (stack, _server, port) = stack_with_server("batch_24").await;
    let (agent, _) = local_runner_agent(&stack, "i-batch24", Some("24.03.11")).await;

    for (client, tag) in [(&CLIENT_24_03, "c24"), (&CLIENT_23_09, "c23")] {
        let ok = create_batch(
            client,
            &stack,
            port,
            &format!("ok-{tag}"),
            "echo batch-ok",
            &[],
        );
        assert_finished(&ended(&stack, &ok).await, SessionResult::Success);
        let failing = create_batch(client, &stack, port, &format!("no-{tag}"), "exit 7", &[]);
        assert_finished(&ended(&stack, &failing).await, SessionResult::Failure);
    }

    // A dependent session waits for its dependency's success.
    let first = create_batch(
        &CLIENT_24_03,
        &stack,
        port,
        "job-first-1",
        "sleep 3",
        &["--enqueue-only"],
    );
    let second = create_batch(
        &CLIENT_24_03,
        &stack,
        port,
        "job-second-1",
        "echo second",
        &["--enqueue-only", "--depends", "job-first-1"],
    );
    let waiting = held_back(&stack, &second, "dependencies").await;
    assert_eq!(
        waiting,
        (
            SessionStatus::Pending,
            format!("Waiting dependency sessions to finish as success. (job-first-1 ({first}))")
        )
    );
    let first_row = ended(&stack, &first).await;
    assert_finished(&first_row, SessionResult::Success);
    let second_row = ended(&stack, &second).await;
    assert_finished(&second_row, SessionResult::Success);
    assert!(
        entered(&second_row, "SCHEDULED") >= entered(&first_row, "TERMINATED"),
        "second was scheduled before first ended: {:?} / {:?}",
        second_row.status_history,
        first_row.status_history
    );
    // The client's tree names a session by the second-to-last `-` part of its name.
    let graph = CLIENT_24_03.cli(&stack, port, &["session", "show-graph", "job-second-1"]);
    assert!(
        graph.contains("second (\"TERMINATED\"") && graph.contains("first (\"TERMINATED\""),
        "show-graph printed: {graph}"
    );
    let table = CLIENT_24_03.cli(
        &stack,
        port,
        &["session", "show-graph", "--table", "job-second-1"],
    );
    assert!(
        table.contains(&first) && table.contains(&second),
        "show-graph --table printed: {table}"
    );

    // A start time an hour ahead holds the session back.
    let later = create_batch(
        &CLIENT_24_03,
        &stack,
        port,
        "later",
        "true",
        &["--enqueue-only", "--starts-at", "1h"],
    );
    let held = held_back(&stack, &later, "reserved_time").await;
    assert_eq!(
        held,
        (SessionStatus::Pending, "Before start time".to_owned())
    );
    CLIENT_24_03.cli(&stack, port, &["session", "destroy", "later"]);
    assert_eq!(ended(&stack, &later).await.status, SessionStatus::Cancelled);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_23_09_agent_runs_batch_sessions_by_itself() {
    let (stack, _server, port) = stack_with_server("batch_23").await;
    let (agent, _) = local_runner_agent(&stack, "i-batch23", Some("23.09.10")).await;

    let ok = create_batch(&CLIENT_24_03, &stack, port, "old-ok", "echo ok", &[]);
    assert_finished(&ended(&stack, &ok).await, SessionResult::Success);
    let failing = create_batch(&CLIENT_23_09, &stack, port, "old-no", "exit 2", &[]);
    assert_finished(&ended(&stack, &failing).await, SessionResult::Failure);
    agent.stop().await;
}

/// The kernel id whose task log the stand-in storage proxy holds.
const LOGGED_TASK: &str = "0123abcd-4567-89ef-0123-456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_clients_read_task_logs_from_the_logs_folder() {
    let stack = Stack::with_install_guide_keypairs("batch_task_logs").await;
    serve_storage_proxy(
        &stack,
        "task/01/23/abcd456789ef0123456789abcdef.log",
        "task line 1\ntask line 2\n",
    )
    .await;
    let (_server, port) = serve(&stack).await;

    // No `.logs` folder: the reference's 404, printed by the client.
    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let output = client.run(&stack, port, "backend.ai", &["task-logs", LOGGED_TASK]);
        let printed = printed(&output);
        assert!(!output.status.success(), "{}: {printed}", client.venv);
        assert!(
            printed.contains("No such vfolder."),
            "{}: {printed}",
            client.venv
        );
    }

    stack
        .db
        .connection
        .execute_unprepared(
            "INSERT INTO vfolders (id, host, quota_scope_id, name, usage_mode, permission, \
             ownership_type, \"user\", creator, cloneable, status) SELECT \
             'aaaabbbb-cccc-dddd-eeee-ffff00001111', 'local:volume1', 'user:' || uuid, '.logs', \
             'general', 'rw', 'user', uuid, email, false, 'ready' FROM users \
             WHERE email = 'admin@lablup.com'",
        )
        .await
        .expect("the .logs folder");
    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let printed = client.cli(&stack, port, &["task-logs", LOGGED_TASK]);
        assert!(
            printed.contains("task line 1\ntask line 2\n"),
            "{}: {printed}",
            client.venv
        );
    }
}
