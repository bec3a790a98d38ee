//! Server-sent events of `manager-server` to the official clients (24.3.11 on Python 3.12 and
//! 23.9.10 on Python 3.11): `backend.ai session events NAME` follows a session on a simulated
//! agent from `session_enqueued` to `session_terminated` in the order of the bus, and the SDK's
//! `BackgroundTask.listen_events()` follows a background task to its end (the test produces the
//! task's events on the bus itself, so that their timing is its own; `admin_image_mutations`
//! follows a real one, a registry rescan).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bai_agent_sim::RpcOptions;
use bai_api::testing::{SESSION_LIFECYCLE, session_lifecycle};
use bai_events::{BgtaskEnd, BgtaskProgress, Event, EventProducer};
use bai_redis::StreamDb;
use sea_orm::prelude::Uuid;
use serde_json::{Value, json};

use crate::agents::{Simulated, agent_toml, wait_for};
use crate::session_support::{running_session, stack_with_server, wait_for_agent};
use crate::support::{CLIENT_23_09, CLIENT_24_03, Client, Server, Stack};

const PATIENCE: Duration = Duration::from_secs(60);

/// A client process printing one line per event; killed when dropped.
struct Listener {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Listener {
    fn start(mut command: Command) -> Listener {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the client");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Listener {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Lines until `done` holds for those read so far (the process may end meanwhile).
    fn until(&mut self, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(error) => panic!("{what}: {error} after {:?}", self.seen),
            }
        }
        self.seen.clone()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the server logged `count` event streams opened.
async fn streams_opened(server: &Server, count: usize) {
    wait_for("the event stream opened", PATIENCE, || async {
        (server.stderr().matches("PUSH_").count() >= count).then_some(())
    })
    .await;
}

/// `session events NAME` of `client` while the session is created and removed.
async fn follow_a_session(stack: &Stack, server: &Server, port: u16, client: &Client, name: &str) {
    let opened = server.stderr().matches("PUSH_").count();
    let mut listener =
        Listener::start(client.command(stack, port, "backend.ai", &["session", "events", name]));
    streams_opened(server, opened + 1).await;
    let session_id = running_session(client, stack, port, name);
    let removed = client.cli(stack, port, &["session", "rm", name]);
    assert!(!removed.contains('✘'), "{removed}");
    let lines = listener.until("session_terminated", |lines| {
        lines
            .iter()
            .any(|line| line.starts_with("session_terminated "))
    });
    let mut names = Vec::new();
    for line in &lines {
        let (event, data) = line.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let data: Value =
            serde_json::from_str(data).unwrap_or_else(|error| panic!("{error}: {line}"));
        assert_eq!(data["sessionName"], name, "{line}");
        assert_eq!(data["sessionId"], session_id.as_str(), "{line}");
        assert_eq!(data["ownerAccessKey"], crate::support::ACCESS_KEY, "{line}");
        if event.starts_with("kernel_") {
            assert_eq!(data["clusterRole"], "main", "{line}");
        }
        names.push(event);
    }
    assert_eq!(
        session_lifecycle(names),
        SESSION_LIFECYCLE,
        "{} ({}): {lines:#?}",
        name,
        client.venv
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_clients_follow_a_session_from_pending_to_terminated() {
    let (stack, mut server, port) = stack_with_server("events_cli").await;
    let config = agent_toml(
        &stack,
        &stack.path("agent"),
        "i-sim-events",
        "default",
        1.0,
        1,
    );
    let agents = Simulated::start_serving(&config, None, Some(RpcOptions::default()));
    wait_for_agent(&stack, "i-sim-events").await;
    follow_a_session(&stack, &server, port, &CLIENT_24_03, "evcli24").await;
    follow_a_session(&stack, &server, port, &CLIENT_23_09, "evcli23").await;
    agents.stop().await;
    server.stop(nix::sys::signal::Signal::SIGTERM).await;
}

/// Prints `connected` once the stream is open, then each event as a JSON line, until the
/// server's `server_close`.
const BGTASK_LISTENER: &str = r#"
import asyncio, json, sys
from ai.backend.client.session import AsyncSession

async def main():
    async with AsyncSession() as session:
        async with session.BackgroundTask(sys.argv[1]).listen_events() as response:
            print("connected", flush=True)
            async for event in response:
                print(json.dumps({"event": event.event, "data": json.loads(event.data),
                                  "retry": event.retry}), flush=True)

asyncio.run(main())
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sdks_follow_a_background_task_to_its_end() {
    let (stack, mut server, port) = stack_with_server("events_bgtask").await;
    let stream = StreamDb::connect(&stack.redis.config())
        .await
        .expect("Redis");
    let producer = EventProducer::new(stream.clone());
    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let task_id = Uuid::new_v4();
        stream
            .raw()
            .hset(
                &format!("bgtask.{task_id}"),
                &[
                    ("status", "started"),
                    ("current", "0"),
                    ("total", "0"),
                    ("msg", ""),
                ],
            )
            .await
            .expect("the tracker");
        let mut listener = Listener::start(client.command(
            &stack,
            port,
            "python",
            &["-c", BGTASK_LISTENER, &task_id.to_string()],
        ));
        listener.until("connected", |lines| !lines.is_empty());
        for (current, message) in [(1.0, Some("half way")), (2.0, None)] {
            let progress = BgtaskProgress {
                task_id,
                current,
                total: 2.0,
                message: message.map(str::to_owned),
            };
            producer
                .produce(&Event::BgtaskUpdated(progress), "manager")
                .await
                .expect("produce");
        }
        producer
            .produce(
                &Event::BgtaskDone(BgtaskEnd {
                    task_id,
                    message: None,
                }),
                "manager",
            )
            .await
            .expect("produce");
        let lines = listener.until("server_close", |lines| {
            lines.iter().any(|line| line.contains("\"server_close\""))
        });
        let events: Vec<Value> = lines[1..]
            .iter()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect();
        let task = task_id.to_string();
        assert_eq!(
            events,
            [
                json!({"event": "bgtask_updated", "retry": 5, "data": {"task_id": task,
                    "message": "half way", "current_progress": 1, "total_progress": 2}}),
                json!({"event": "bgtask_updated", "retry": 5, "data": {"task_id": task,
                    "message": null, "current_progress": 2, "total_progress": 2}}),
                json!({"event": "bgtask_done", "retry": null, "data": {}}),
                json!({"event": "server_close", "retry": null, "data": {}}),
            ],
            "{}",
            client.venv
        );
        // The SDK stops reading at `server_close`: the listener exits by itself.
        let deadline = Instant::now() + PATIENCE;
        while listener.child.try_wait().expect("try_wait").is_none() {
            assert!(Instant::now() < deadline, "the listener did not exit");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    stream.close().await;
    server.stop(nix::sys::signal::Signal::SIGTERM).await;
}
