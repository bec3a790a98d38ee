//! The event bus loops (`run_consumer`, `run_subscriber`, `run_trimmer`, `EventProducer`) against
//! real Redis servers: each test starts a `redis-server` of its own (`PrivateRedis`), because the
//! stream key `events` and database 4 are fixed by the protocol and tests sharing a server would
//! see each other's entries.
//!
//! It checks that a consumed entry is acknowledged only after its handlers finished (a consumer
//! stopped or killed mid-handler leaves it pending, for itself at restart or for another consumer
//! once idle), that a slow handler keeps its entry, retries and giving up, that bad entries are
//! logged with their id and acknowledged without stopping the loop, per-source order with
//! concurrency across sources, `max_deliveries` (on take-over and on a restart under the same
//! name), that a subscriber sees only what comes after it started, acknowledges nothing and reports
//! only malformed entries of events it handles, and that the trimmer removes acknowledged entries.
//! Log lines are captured with a `tracing-subscriber` writer per loop. A tiny RESP client below
//! writes what `StreamDb` deliberately cannot (an entry without `args`) and reads the group's
//! pending count (`XPENDING`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bai_events::{
    ConsumerOptions, Event, EventProducer, HandlerError, Handlers, MANAGER_GROUP, Received,
    run_consumer, run_subscriber, run_trimmer,
};
use bai_redis::testing::PrivateRedis;
use bai_redis::{EntryId, StreamDb};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::instrument::WithSubscriber;

const BLOCK: Duration = Duration::from_millis(200);
const CLAIM_MIN_IDLE: Duration = Duration::from_millis(300);
/// Longer than anything a test waits for.
const PATIENCE: Duration = Duration::from_secs(4);

// ---------------------------------------------------------------------------------------------
// Helpers

async fn connect(redis: &PrivateRedis) -> StreamDb {
    StreamDb::connect(&redis.config())
        .await
        .expect("connect to the private redis-server")
}

fn options(consumer: &str) -> ConsumerOptions {
    let mut options = ConsumerOptions::new(MANAGER_GROUP, consumer.to_owned());
    options.block = BLOCK;
    options.claim_min_idle = CLAIM_MIN_IDLE;
    options.batch = 64;
    options
}

fn started(reason: &str) -> Event {
    Event::AgentStarted {
        reason: reason.to_owned(),
    }
}

fn reason_of(received: &Received) -> &str {
    match &received.event {
        Event::AgentStarted { reason } | Event::AgentTerminated { reason } => reason,
        other => panic!("not an agent_started/agent_terminated event: {other:?}"),
    }
}

/// A consumer, subscriber or trimmer running as a task, with its shutdown token.
struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// Cancels and waits for the loop to return.
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the loop returns after shutdown")
            .expect("the loop does not panic");
    }
}

/// Runs a consumer on a connection of its own, its log lines into `logs`.
async fn spawn_consumer(
    redis: &PrivateRedis,
    handlers: Handlers,
    options: ConsumerOptions,
    logs: &Logs,
) -> Running {
    let stream = connect(redis).await;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        run_consumer(stream, handlers, options, shutdown.clone())
            .with_subscriber(logs.subscriber()),
    );
    Running { shutdown, task }
}

/// Handlers that send each entry of `event_names` into the returned channel.
fn recording(event_names: &[&'static str]) -> (Handlers, mpsc::UnboundedReceiver<Arc<Received>>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let mut handlers = Handlers::default();
    for name in event_names {
        let sender = sender.clone();
        handlers.on(name, "record", move |received| {
            let sender = sender.clone();
            async move {
                let _ = sender.send(received);
                Ok::<(), HandlerError>(())
            }
        });
    }
    (handlers, receiver)
}

async fn next(receiver: &mut mpsc::UnboundedReceiver<Arc<Received>>) -> Arc<Received> {
    tokio::time::timeout(PATIENCE, receiver.recv())
        .await
        .expect("an event is handled in time")
        .expect("the handlers are alive")
}

/// Asserts nothing more arrives for a while.
async fn nothing_more(receiver: &mut mpsc::UnboundedReceiver<Arc<Received>>, wait: Duration) {
    if let Ok(Some(received)) = tokio::time::timeout(wait, receiver.recv()).await {
        panic!("unexpected event: {received:?}");
    }
}

/// Waits until `check` holds, polling; panics with `what` after PATIENCE.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Log lines captured from the loops, as text.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let logs = self.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || logs.clone())
            .finish()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }

    /// The lines that mention `fragment`.
    fn lines_with(&self, fragment: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| line.contains(fragment))
            .map(str::to_owned)
            .collect()
    }
}

/// A reply of the RESP protocol.
#[derive(Debug, PartialEq)]
enum Resp {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

fn read_resp(reader: &mut impl BufRead) -> Resp {
    let mut line = String::new();
    reader.read_line(&mut line).expect("a RESP line");
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(1);
    let number = || rest.parse::<i64>().expect("a RESP number");
    match kind {
        "+" => Resp::Simple(rest.to_owned()),
        "-" => Resp::Error(rest.to_owned()),
        ":" => Resp::Integer(number()),
        "$" if number() < 0 => Resp::Bulk(None),
        "$" => {
            let len = usize::try_from(number()).expect("a length");
            let mut bytes = vec![0; len + 2];
            reader.read_exact(&mut bytes).expect("a RESP bulk string");
            bytes.truncate(len);
            Resp::Bulk(Some(bytes))
        }
        "*" if number() < 0 => Resp::Array(None),
        "*" => Resp::Array(Some((0..number()).map(|_| read_resp(reader)).collect())),
        other => panic!("not RESP: {other}{rest}"),
    }
}

/// Sends one command to database 4 of `redis` on a fresh connection, as a tiny RESP client.
fn raw_command(redis: &PrivateRedis, args: &[&[u8]]) -> Resp {
    let mut connection = TcpStream::connect(("127.0.0.1", redis.port)).expect("connect");
    let mut request = Vec::new();
    for command in [&[&b"SELECT"[..], b"4"][..], args] {
        request.extend(format!("*{}\r\n", command.len()).as_bytes());
        for arg in command {
            request.extend(format!("${}\r\n", arg.len()).as_bytes());
            request.extend(*arg);
            request.extend(b"\r\n");
        }
    }
    connection.write_all(&request).expect("send");
    let mut reader = BufReader::new(connection);
    assert_eq!(read_resp(&mut reader), Resp::Simple("OK".to_owned()));
    read_resp(&mut reader)
}

/// `XADD events * field value …` with whatever fields.
fn raw_add(redis: &PrivateRedis, fields: &[(&str, &[u8])]) -> EntryId {
    let mut args: Vec<&[u8]> = vec![b"XADD", b"events", b"*"];
    for (field, value) in fields {
        args.push(field.as_bytes());
        args.push(value);
    }
    match raw_command(redis, &args) {
        Resp::Bulk(Some(id)) => String::from_utf8(id)
            .expect("text")
            .parse()
            .expect("an entry id"),
        other => panic!("XADD answered {other:?}"),
    }
}

/// How many entries the manager group has delivered and not had acknowledged (`XPENDING`).
fn pending(redis: &PrivateRedis) -> i64 {
    match raw_command(redis, &[b"XPENDING", b"events", MANAGER_GROUP.as_bytes()]) {
        Resp::Array(Some(summary)) => match summary.first() {
            Some(Resp::Integer(count)) => *count,
            _ => panic!("XPENDING answered {summary:?}"),
        },
        other => panic!("XPENDING answered {other:?}"),
    }
}

async fn eventually_nothing_pending(redis: &PrivateRedis) {
    eventually("every entry is acknowledged", || pending(redis) == 0).await;
}

// ---------------------------------------------------------------------------------------------
// Consuming

#[tokio::test]
async fn produced_events_are_handled_once_by_every_handler_and_acknowledged() {
    let redis = PrivateRedis::start();
    let stream = connect(&redis).await;
    stream.ensure_group(MANAGER_GROUP).await.expect("group");
    let producer = EventProducer::new(stream.clone());
    let (mut handlers, mut seen) = recording(&["agent_started", "agent_terminated", "do_schedule"]);
    let second_handler_runs = Arc::new(AtomicUsize::new(0));
    let runs = Arc::clone(&second_handler_runs);
    handlers.on("agent_started", "count", move |_| {
        let runs = Arc::clone(&runs);
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<(), HandlerError>(())
        }
    });
    let logs = Logs::default();
    let consumer = spawn_consumer(&redis, handlers, options("c1"), &logs).await;

    let id_started = producer
        .produce(&started("self-started"), "i-agent-1")
        .await
        .expect("XADD");
    let id_schedule = producer
        .produce(&Event::DoSchedule, "manager")
        .await
        .expect("XADD");
    let id_terminated = producer
        .produce(
            &Event::AgentTerminated {
                reason: "shutdown".to_owned(),
            },
            "i-agent-2",
        )
        .await
        .expect("XADD");

    let mut handled = Vec::new();
    for _ in 0..3 {
        let received = next(&mut seen).await;
        handled.push((received.id, received.source.clone(), received.event.clone()));
    }
    handled.sort_by_key(|(id, _, _)| *id);
    assert_eq!(
        handled,
        [
            (id_started, "i-agent-1".to_owned(), started("self-started")),
            (id_schedule, "manager".to_owned(), Event::DoSchedule),
            (
                id_terminated,
                "i-agent-2".to_owned(),
                Event::AgentTerminated {
                    reason: "shutdown".to_owned()
                }
            ),
        ]
    );
    eventually_nothing_pending(&redis).await;
    nothing_more(&mut seen, Duration::from_millis(500)).await;
    assert_eq!(
        second_handler_runs.load(Ordering::SeqCst),
        1,
        "both handlers of agent_started ran, once"
    );
    assert_eq!(
        stream
            .group_entries_read(MANAGER_GROUP)
            .await
            .expect("XINFO"),
        Some(3)
    );
    consumer.stop().await;
}

#[tokio::test]
async fn a_consumer_stops_promptly_on_shutdown_when_idle() {
    let redis = PrivateRedis::start();
    let (handlers, _seen) = recording(&["do_schedule"]);
    let mut options = options("c1");
    options.block = Duration::from_secs(10);
    let consumer = spawn_consumer(&redis, handlers, options, &Logs::default()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    consumer.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(1),
        "returned after {:?}, without finishing its 10-s blocking read",
        stopping.elapsed()
    );
}

#[tokio::test]
async fn an_entry_is_acknowledged_only_after_its_handler_finished_even_across_shutdown() {
    let redis = PrivateRedis::start();
    let stream = connect(&redis).await;
    stream.ensure_group(MANAGER_GROUP).await.expect("group");
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let gate = Arc::clone(&release);
    let mut handlers = Handlers::default();
    handlers.on("agent_started", "slow", move |received| {
        let entered_tx = entered_tx.clone();
        let gate = Arc::clone(&gate);
        async move {
            let _ = entered_tx.send(received);
            gate.acquire().await.expect("gate").forget();
            Ok::<(), HandlerError>(())
        }
    });
    let consumer = spawn_consumer(&redis, handlers, options("c1"), &Logs::default()).await;
    let id = EventProducer::new(stream.clone())
        .produce(&started("self-started"), "i-agent-1")
        .await
        .expect("XADD");
    assert_eq!(next(&mut entered).await.id, id);
    assert_eq!(pending(&redis), 1, "pending while the handler runs");

    consumer.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !consumer.task.is_finished(),
        "shutdown waits for the running handler"
    );
    assert_eq!(pending(&redis), 1, "still pending after shutdown began");

    release.add_permits(1);
    tokio::time::timeout(PATIENCE, consumer.task)
        .await
        .expect("the consumer returns once its handler finished")
        .expect("no panic");
    assert_eq!(
        pending(&redis),
        0,
        "the finished handler's entry is acknowledged before returning"
    );
}

#[tokio::test]
async fn an_entry_left_in_a_handler_is_handled_again_by_the_same_consumer_then_taken_over() {
    let redis = PrivateRedis::start();
    let stream = connect(&redis).await;
    stream.ensure_group(MANAGER_GROUP).await.expect("group");
    let logs = Logs::default();
    // Handlers that record the entry and then never finish (the process hangs or dies in them).
    let hanging = || {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut handlers = Handlers::default();
        handlers.on("agent_started", "hang", move |received| {
            let sender = sender.clone();
            async move {
                let _ = sender.send(received);
                std::future::pending::<()>().await;
                Ok::<(), HandlerError>(())
            }
        });
        (handlers, receiver)
    };

    let (handlers, mut seen_a) = hanging();
    let first = spawn_consumer(&redis, handlers, options("a"), &logs).await;
    let id = EventProducer::new(stream.clone())
        .produce(&started("self-started"), "i-agent-1")
        .await
        .expect("XADD");
    assert_eq!(next(&mut seen_a).await.id, id);
    first.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !first.task.is_finished(),
        "a hanging handler holds the consumer"
    );
    // What bai-server does with a task still running after its shutdown grace period.
    first.task.abort();
    assert!(first.task.await.expect_err("aborted").is_cancelled());
    assert_eq!(pending(&redis), 1, "the entry stays pending");
    assert_eq!(
        stream
            .own_pending(MANAGER_GROUP, "a", 10)
            .await
            .expect("own")
            .len(),
        1,
        "for the consumer that died in its handler"
    );

    // The same consumer name, restarted: it handles its own pending entry at once.
    let (handlers, mut seen_a_again) = hanging();
    let restarted = Instant::now();
    let second = spawn_consumer(&redis, handlers, options("a"), &logs).await;
    let again = next(&mut seen_a_again).await;
    assert_eq!(again.id, id);
    assert_eq!(again.event, started("self-started"));
    assert!(
        restarted.elapsed() < Duration::from_secs(1),
        "handled at start, before the first take-over round 1 s after it ({:?})",
        restarted.elapsed()
    );
    second.shutdown.cancel();
    second.task.abort();
    let _ = second.task.await;
    assert_eq!(pending(&redis), 1);

    // Another consumer takes it over once it has been idle long enough, and finishes it.
    let (handlers, mut seen_b) = recording(&["agent_started"]);
    let third = spawn_consumer(&redis, handlers, options("b"), &logs).await;
    let taken = next(&mut seen_b).await;
    assert_eq!(taken.id, id);
    assert_eq!(taken.source, "i-agent-1");
    eventually_nothing_pending(&redis).await;
    assert!(
        logs.text()
            .contains("took over 1 entries another consumer left pending"),
        "{}",
        logs.text()
    );
    third.stop().await;
}

#[tokio::test]
async fn a_handler_running_longer_than_claim_min_idle_keeps_its_entry() {
    let redis = PrivateRedis::start();
    let stream = connect(&redis).await;
    stream.ensure_group(MANAGER_GROUP).await.expect("group");
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let mut slow = Handlers::default();
    slow.on("agent_started", "slow", move |received| {
        let entered_tx = entered_tx.clone();
        async move {
            let _ = entered_tx.send(received);
            tokio::time::sleep(Duration::from_millis(1600)).await;
            Ok::<(), HandlerError>(())
        }
    });
    let logs = Logs::default();
    // Twice the usual idle time: a loaded machine may delay a's refreshes a little.
    let with_idle = |consumer: &str| {
        let mut options = options(consumer);
        options.claim_min_idle = CLAIM_MIN_IDLE * 2;
        options
    };
    let a = spawn_consumer(&redis, slow, with_idle("a"), &logs).await;
    let id = EventProducer::new(stream.clone())
        .produce(&started("self-started"), "i-agent-1")
        .await
        .expect("XADD");
    assert_eq!(next(&mut entered).await.id, id);

    // b starts claiming idle entries 1 s after it started, while a's handler still runs.
    let (handlers, mut seen_b) = recording(&["agent_started"]);
    let b = spawn_consumer(&redis, handlers, with_idle("b"), &logs).await;
    eventually_nothing_pending(&redis).await;
    nothing_more(&mut seen_b, Duration::from_millis(300)).await;
    assert!(
        stream
            .own_pending(MANAGER_GROUP, "b", 10)
            .await
            .expect("own")
            .is_empty()
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_failing_handler_runs_attempts_times_then_its_entry_is_given_up() {
    let redis = PrivateRedis::start();
    let stream = connect(&redis).await;
    stream.ensure_group(MANAGER_GROUP).await.expect("group");
    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = Arc::clone(&calls);
    let mut handlers = Handlers::default();
    handlers.on("agent_started", "picky", move |received| {
        let log = Arc::clone(&log);
        async move {
            let reason = reason_of(&received).to_owned();
            let attempt = {
                let mut calls = log.lock().expect("lock");
                calls.push(reason.clone());
                calls.iter().filter(|call| **call == reason).count()
            };
            match reason.as_str() {
                "poison" => Err("this entry never works".into()),
                "flaky" if attempt == 1 => Err("the first attempt fails".into()),
                _ => Ok(()),
            }
        }
    });
    let logs = Logs::default();
    let mut options = options("c1");
    options.attempts = 3;
    let consumer = spawn_consumer(&redis, handlers, options, &logs).await;
    let producer = EventProducer::new(stream.clone());
    let poison = producer
        .produce(&started("poison"), "i-agent-1")
        .await
        .expect("XADD");
    producer
        .produce(&started("after"), "i-agent-1")
        .await
        .expect("XADD");
    producer
        .produce(&started("flaky"), "i-agent-2")
        .await
        .expect("XADD");

    eventually("the entry after the poison one is handled", || {
        calls.lock().expect("lock").contains(&"after".to_owned())
    })
    .await;
    eventually_nothing_pending(&redis).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = calls.lock().expect("lock").clone();
    let count = |reason: &str| calls.iter().filter(|call| *call == reason).count();
    assert_eq!(count("poison"), 3, "{calls:?}");
    assert_eq!(count("after"), 1, "{calls:?}");
    assert_eq!(count("flaky"), 2, "{calls:?}");
    let poison_positions: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, call)| *call == "poison")
        .map(|(index, _)| index)
        .collect();
    let after_position = calls.iter().position(|call| call == "after");
    assert!(
        after_position > poison_positions.last().copied(),
        "the next entry of the source waits for the poison one to be given up: {calls:?}"
    );
    let given_up = logs.lines_with("giving the event up");
    assert_eq!(given_up.len(), 1, "{}", logs.text());
    assert!(given_up[0].contains(&poison.to_string()), "{}", given_up[0]);
    assert!(given_up[0].contains("ERROR"), "{}", given_up[0]);
    consumer.stop().await;
}

#[tokio::test]
async fn bad_entries_are_logged_with_their_id_and_acknowledged_and_later_events_are_handled() {
    let redis = PrivateRedis::start();
    let stream = connect(&redis).await;
    stream.ensure_group(MANAGER_GROUP).await.expect("group");
    let (handlers, mut seen) = recording(&["agent_started", "agent_heartbeat"]);

    let mut bad: Vec<(&str, EntryId)> = Vec::new();
    let mut add = async |what: &'static str, name: &str, args: &[u8]| {
        let id = stream.add(name, "i-agent-1", args).await.expect("XADD");
        bad.push((what, id));
    };
    add("a reserved msgpack byte", "agent_started", &[0xc1]).await;
    add("truncated msgpack", "agent_started", &[0x92, 0xa1]).await;
    add("empty args", "agent_started", &[]).await;
    add("trailing bytes", "agent_started", &[0x90, 0x90]).await;
    add("an unknown event name", "no_such_event", &[0x90]).await;
    add(
        "a heartbeat with 2 args",
        "agent_heartbeat",
        &[0x92, 0xc0, 0xc0],
    )
    .await;
    add("a heartbeat of no map", "agent_heartbeat", &[0x91, 0x01]).await;
    add("a mistyped arg", "agent_started", &[0x91, 0x01]).await;
    add("args of no array", "agent_started", &[0xa1, b'x']).await;
    bad.push((
        "no args field",
        raw_add(
            &redis,
            &[("name", b"agent_started"), ("source", b"i-agent-1")],
        ),
    ));
    bad.push((
        "no source field",
        raw_add(&redis, &[("name", b"agent_started"), ("args", &[0x90])]),
    ));
    bad.push((
        "a name of no UTF-8",
        raw_add(
            &redis,
            &[
                ("name", &[0xff, 0xfe]),
                ("source", b"i-agent-1"),
                ("args", &[0x90]),
            ],
        ),
    ));
    // The consumer reports a malformed entry whether or not a handler wants its event...
    bad.push((
        "a malformed event no handler wants",
        stream
            .add("kernel_started", "i-agent-1", &[0xc1])
            .await
            .expect("XADD"),
    ));
    // ...and acknowledges a valid one no handler wants silently.
    let unwanted = EventProducer::new(stream.clone())
        .produce(&Event::DoPrepare, "manager")
        .await
        .expect("XADD");
    let good = EventProducer::new(stream.clone())
        .produce(&started("self-started"), "i-agent-1")
        .await
        .expect("XADD");

    let logs = Logs::default();
    let consumer = spawn_consumer(&redis, handlers, options("c1"), &logs).await;
    let received = next(&mut seen).await;
    assert_eq!(received.id, good);
    assert_eq!(received.event, started("self-started"));
    eventually_nothing_pending(&redis).await;
    nothing_more(&mut seen, Duration::from_millis(300)).await;

    let text = logs.text();
    for (what, id) in &bad {
        let lines = logs.lines_with(&format!("entry {id} "));
        assert_eq!(lines.len(), 1, "one line for {what} ({id}):\n{text}");
        assert!(lines[0].contains("WARN"), "{what}: {}", lines[0]);
        assert!(lines[0].contains("skipped"), "{what}: {}", lines[0]);
    }
    assert!(
        !text.contains(&unwanted.to_string()),
        "a valid entry no handler wants is not logged:\n{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
    consumer.stop().await;
}

/// One handler run, its times relative to the start of the test.
#[derive(Clone, Debug)]
struct Run {
    source: String,
    reason: String,
    began: Duration,
    finished: Duration,
}

#[tokio::test]
async fn entries_of_one_source_are_handled_in_order_and_other_sources_meanwhile() {
    const SLOW: Duration = Duration::from_millis(300);
    let redis = PrivateRedis::start();
    let stream = connect(&redis).await;
    stream.ensure_group(MANAGER_GROUP).await.expect("group");
    let runs: Arc<Mutex<Vec<Run>>> = Arc::default();
    let origin = Instant::now();
    let log = Arc::clone(&runs);
    let mut handlers = Handlers::default();
    handlers.on("agent_started", "timed", move |received| {
        let log = Arc::clone(&log);
        async move {
            let began = origin.elapsed();
            if received.source == "i-slow" {
                tokio::time::sleep(SLOW).await;
            }
            log.lock().expect("lock").push(Run {
                source: received.source.clone(),
                reason: reason_of(&received).to_owned(),
                began,
                finished: origin.elapsed(),
            });
            Ok::<(), HandlerError>(())
        }
    });
    let producer = EventProducer::new(stream.clone());
    // Interleaved, and all in the stream before the consumer starts: one batch.
    for (source, reason) in [
        ("i-slow", "s1"),
        ("i-fast", "f1"),
        ("i-slow", "s2"),
        ("i-fast", "f2"),
        ("i-slow", "s3"),
    ] {
        producer
            .produce(&started(reason), source)
            .await
            .expect("XADD");
    }
    let consumer = spawn_consumer(&redis, handlers, options("c1"), &Logs::default()).await;
    eventually("all five are handled", || {
        runs.lock().expect("lock").len() == 5
    })
    .await;
    let runs = runs.lock().expect("lock").clone();
    let of = |source: &str| -> Vec<Run> {
        runs.iter()
            .filter(|run| run.source == source)
            .cloned()
            .collect()
    };
    let reasons =
        |runs: &[Run]| -> Vec<String> { runs.iter().map(|run| run.reason.clone()).collect() };
    let slow = of("i-slow");
    let fast = of("i-fast");
    assert_eq!(reasons(&slow), ["s1", "s2", "s3"]);
    assert_eq!(reasons(&fast), ["f1", "f2"]);
    for pair in slow.windows(2) {
        assert!(
            pair[1].began >= pair[0].finished,
            "one source's entries do not overlap: {slow:?}"
        );
    }
    assert!(
        fast[1].finished < slow[0].finished,
        "the fast source is not held up behind the slow one: fast {fast:?}, slow {slow:?}"
    );
    eventually_nothing_pending(&redis).await;
    consumer.stop().await;
}

#[tokio::test]
async fn an_entry_delivered_more_than_max_deliveries_is_acknowledged_without_its_handler() {
    let redis = PrivateRedis::start();
    let stream = connect(&redis).await;
    stream.ensure_group(MANAGER_GROUP).await.expect("group");
    let producer = EventProducer::new(stream.clone());
    let doomed = producer
        .produce(&started("killed-its-consumer"), "i-agent-1")
        .await
        .expect("XADD");
    // A consumer that read it and died (1st delivery).
    let read = stream
        .read_group(MANAGER_GROUP, "dead", 10, BLOCK)
        .await
        .expect("XREADGROUP");
    assert_eq!(read.len(), 1);

    let (handlers, mut seen) = recording(&["agent_started"]);
    let logs = Logs::default();
    let mut options = options("live");
    options.max_deliveries = 1;
    let consumer = spawn_consumer(&redis, handlers, options, &logs).await;
    // Taken over after CLAIM_MIN_IDLE (2nd delivery > 1): given up.
    eventually_nothing_pending(&redis).await;
    let given_up = logs.lines_with("giving it up");
    assert_eq!(given_up.len(), 1, "{}", logs.text());
    assert!(given_up[0].contains(&doomed.to_string()), "{}", given_up[0]);
    assert!(given_up[0].contains("delivered 2 times"), "{}", given_up[0]);

    let later = producer
        .produce(&started("fine"), "i-agent-1")
        .await
        .expect("XADD");
    let received = next(&mut seen).await;
    assert_eq!(
        received.id, later,
        "the given-up entry never reached the handler"
    );
    nothing_more(&mut seen, Duration::from_millis(300)).await;
    consumer.stop().await;
}

#[tokio::test]
async fn an_entry_that_kills_its_consumer_at_every_restart_is_given_up_after_max_deliveries() {
    let redis = PrivateRedis::start();
    let stream = connect(&redis).await;
    stream.ensure_group(MANAGER_GROUP).await.expect("group");
    let producer = EventProducer::new(stream.clone());
    let deadly = producer
        .produce(&started("deadly"), "i-agent-1")
        .await
        .expect("XADD");
    let runs = Arc::new(AtomicUsize::new(0));
    let logs = Logs::default();
    let mut options = options("a");
    options.max_deliveries = 2;

    // The handler panics, which kills the consumer (bai-server then stops the process, and
    // systemd starts it again under the same consumer name): twice.
    for delivery in 1..=2 {
        let counter = Arc::clone(&runs);
        let mut handlers = Handlers::default();
        handlers.on("agent_started", "deadly", move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { panic!("the handler takes the consumer down") }
        });
        let consumer = spawn_consumer(&redis, handlers, options.clone(), &logs).await;
        let died = tokio::time::timeout(PATIENCE, consumer.task)
            .await
            .expect("the consumer dies");
        assert!(died.expect_err("a panic").is_panic());
        assert_eq!(runs.load(Ordering::SeqCst), delivery);
        assert_eq!(pending(&redis), 1);
    }

    // The third start under the same name: delivered a third time (> 2), given up at once.
    let (handlers, mut seen) = recording(&["agent_started"]);
    let consumer = spawn_consumer(&redis, handlers, options, &logs).await;
    eventually_nothing_pending(&redis).await;
    let given_up = logs.lines_with("giving it up");
    assert_eq!(given_up.len(), 1, "{}", logs.text());
    assert!(given_up[0].contains(&deadly.to_string()), "{}", given_up[0]);
    assert!(given_up[0].contains("delivered 3 times"), "{}", given_up[0]);
    let later = producer
        .produce(&started("fine"), "i-agent-1")
        .await
        .expect("XADD");
    assert_eq!(
        next(&mut seen).await.id,
        later,
        "the deadly entry never reached a handler again"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    consumer.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Subscribing and trimming

/// Runs a subscriber on a connection of its own, its log lines into `logs`.
async fn spawn_subscriber(redis: &PrivateRedis, handlers: Handlers, logs: &Logs) -> Running {
    let stream = connect(redis).await;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        run_subscriber(stream, handlers, shutdown.clone()).with_subscriber(logs.subscriber()),
    );
    Running { shutdown, task }
}

/// Produces `do_schedule` probes until a subscriber recording them sees one: from then on it sees
/// everything produced. Returns the probes and the first one seen.
async fn probe_until_seen(
    producer: &EventProducer,
    seen: &mut mpsc::UnboundedReceiver<Arc<Received>>,
) -> (Vec<EntryId>, Arc<Received>) {
    let mut probes = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(Instant::now() < deadline, "the subscriber never reads");
        probes.push(
            producer
                .produce(&Event::DoSchedule, "manager")
                .await
                .expect("XADD"),
        );
        if let Ok(Some(received)) =
            tokio::time::timeout(Duration::from_millis(50), seen.recv()).await
        {
            return (probes, received);
        }
    }
}

#[tokio::test]
async fn a_subscriber_sees_only_later_events_and_acknowledges_nothing() {
    let redis = PrivateRedis::start();
    let stream = connect(&redis).await;
    stream.ensure_group(MANAGER_GROUP).await.expect("group");
    let producer = EventProducer::new(stream.clone());
    let before = producer
        .produce(&started("before"), "i-agent-1")
        .await
        .expect("XADD");

    let (handlers, mut seen) = recording(&["agent_started", "do_schedule"]);
    let subscriber = spawn_subscriber(&redis, handlers, &Logs::default()).await;
    let (probes, first_seen) = probe_until_seen(&producer, &mut seen).await;
    assert_ne!(
        first_seen.id, before,
        "the entry before the start is not seen"
    );
    assert!(probes.contains(&first_seen.id));
    let after = producer
        .produce(&started("after"), "i-agent-2")
        .await
        .expect("XADD");
    let mut seen_ids = vec![first_seen.id];
    loop {
        let received = next(&mut seen).await;
        seen_ids.push(received.id);
        if received.id == after {
            assert_eq!(received.source, "i-agent-2");
            assert_eq!(received.event, started("after"));
            break;
        }
    }
    nothing_more(&mut seen, Duration::from_millis(300)).await;
    assert!(!seen_ids.contains(&before), "{seen_ids:?}");
    let first_probe_seen = probes
        .iter()
        .position(|probe| *probe == first_seen.id)
        .expect("a probe");
    let mut expect: Vec<EntryId> = probes[first_probe_seen..].to_vec();
    expect.push(after);
    assert_eq!(
        seen_ids, expect,
        "every entry after the first one seen, in order"
    );

    subscriber.stop().await;
    assert_eq!(pending(&redis), 0, "nothing delivered to the group");
    let for_the_group = stream
        .read_group(MANAGER_GROUP, "c1", 1000, BLOCK)
        .await
        .expect("XREADGROUP");
    assert_eq!(
        for_the_group.len(),
        probes.len() + 2,
        "the consumer group still gets every entry"
    );
    assert_eq!(
        stream.entry_count().await.expect("XLEN"),
        probes.len() as u64 + 2
    );
}

#[tokio::test]
async fn a_subscriber_reports_malformed_entries_only_of_events_it_handles() {
    let redis = PrivateRedis::start();
    let stream = connect(&redis).await;
    let producer = EventProducer::new(stream.clone());
    let (handlers, mut seen) = recording(&["agent_started", "do_schedule"]);
    let logs = Logs::default();
    let subscriber = spawn_subscriber(&redis, handlers, &logs).await;
    probe_until_seen(&producer, &mut seen).await;

    let handled_but_bad = stream
        .add("agent_started", "i-agent-1", &[0xc1])
        .await
        .expect("XADD");
    let unhandled_and_bad = stream
        .add("kernel_started", "i-agent-1", &[0xc1])
        .await
        .expect("XADD");
    let without_args = raw_add(
        &redis,
        &[("name", b"agent_started"), ("source", b"i-agent-1")],
    );
    let after = producer
        .produce(&started("after"), "i-agent-1")
        .await
        .expect("XADD");
    loop {
        if next(&mut seen).await.id == after {
            break;
        }
    }
    subscriber.stop().await;

    let text = logs.text();
    let lines = logs.lines_with(&format!("entry {handled_but_bad} "));
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains("is not a valid event"), "{}", lines[0]);
    assert!(
        !text.contains(&unhandled_and_bad.to_string()),
        "every process subscribes: only what its handlers want is reported:\n{text}"
    );
    assert!(!text.contains(&without_args.to_string()), "{text}");
}

#[tokio::test]
async fn the_trimmer_removes_acknowledged_entries_and_keeps_pending_ones() {
    let redis = PrivateRedis::start();
    let stream = connect(&redis).await;
    stream.ensure_group(MANAGER_GROUP).await.expect("group");
    let producer = EventProducer::new(stream.clone());
    let mut done = Vec::new();
    for _ in 0..250 {
        done.push(
            producer
                .produce(&Event::DoSchedule, "manager")
                .await
                .expect("XADD"),
        );
    }
    let mut read = Vec::new();
    while read.len() < done.len() {
        read.extend(
            stream
                .read_group(MANAGER_GROUP, "c1", 100, BLOCK)
                .await
                .expect("XREADGROUP"),
        );
    }
    assert_eq!(stream.ack(MANAGER_GROUP, &done).await.expect("XACK"), 250);
    let held = producer
        .produce(&started("held"), "i-agent-1")
        .await
        .expect("XADD");
    assert_eq!(
        stream
            .read_group(MANAGER_GROUP, "c1", 10, BLOCK)
            .await
            .expect("XREADGROUP")
            .len(),
        1
    );

    let shutdown = CancellationToken::new();
    let trimmer = Running {
        task: tokio::spawn(run_trimmer(
            stream.clone(),
            Duration::from_millis(100),
            shutdown.clone(),
        )),
        shutdown,
    };
    let deadline = Instant::now() + PATIENCE;
    loop {
        let count = stream.entry_count().await.expect("XLEN");
        if count <= 151 {
            break;
        }
        assert!(Instant::now() < deadline, "still {count} entries");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    trimmer.stop().await;
    let left = stream
        .own_pending(MANAGER_GROUP, "c1", 10)
        .await
        .expect("own");
    assert_eq!(left.len(), 1, "the pending entry is kept");
    assert_eq!(left[0].entry.id, held);
    assert_eq!(left[0].entry.field("name"), Some(&b"agent_started"[..]));
}
