//! The stream entries a real Backend.AI 24.3.11 agent wrote (`tests/data/real-24.3.11-*.hex`: the
//! `args` field in hex, the event name in the file name, see `tests/data/README.md`) decode to the
//! typed events with the values the README lists, re-encode to args that decode to the same
//! events (and carry no Python pickles), and reach a consumer's handlers unchanged when written to
//! a real stream (a `redis-server` of the test's own).

use std::time::Duration;

use bai_events::{
    AgentInfo, ConsumerOptions, Event, HandlerError, Handlers, KernelCreation, KernelTermination,
    MANAGER_GROUP, SlotCapacity, run_consumer,
};
use bai_redis::StreamDb;
use bai_redis::testing::PrivateRedis;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Every captured event, with the agent id it came from.
const CAPTURED: &[(&str, &str)] = &[
    ("agent_started", "i-h1test-1"),
    ("agent_heartbeat", "i-h1test-1"),
    ("agent_terminated", "i-h1test-2"),
    ("agent_error", "i-h1test-2"),
    ("kernel_preparing", "i-h1test-1"),
    ("kernel_creating", "i-h1test-1"),
    ("kernel_started", "i-h1test-1"),
    ("kernel_terminated", "i-h1test-1"),
];

const KERNEL_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const SESSION_ID: &str = "11111111-2222-3333-4444-555555555555";

/// The captured `args` bytes of `name`.
fn captured_args(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/data/real-24.3.11-{name}.hex",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    hex::decode(text.trim()).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn decode_captured(name: &str) -> Event {
    Event::decode(name.as_bytes(), &captured_args(name))
        .unwrap_or_else(|error| panic!("real {name}: {error}"))
}

fn uuid(text: &str) -> Uuid {
    Uuid::parse_str(text).expect("a UUID")
}

#[test]
fn the_real_heartbeat_decodes_to_the_agent_info_the_agent_sent() {
    let Event::AgentHeartbeat(info) = decode_captured("agent_heartbeat") else {
        panic!("not a heartbeat");
    };
    let expect = AgentInfo {
        ip: "127.0.0.1".to_owned(),
        region: "local".to_owned(),
        scaling_group: "default".to_owned(),
        addr: "tcp://127.0.0.1:16001".to_owned(),
        public_key: None,
        public_host: Some("127.0.0.1".to_owned()),
        resource_slots: vec![
            SlotCapacity {
                slot: "cpu".to_owned(),
                slot_type: "count".to_owned(),
                amount: "4".to_owned(),
            },
            SlotCapacity {
                slot: "mem".to_owned(),
                slot_type: "bytes".to_owned(),
                amount: "33285996544".to_owned(),
            },
        ],
        version: "24.03.11".to_owned(),
        compute_plugins: serde_json::json!({
            "cpu": {"version": "24.03.11"},
            "mem": {"version": "24.03.11"},
        }),
        images: Vec::new(),
        architecture: "x86_64".to_owned(),
        auto_terminate_abusing_kernel: false,
    };
    assert_eq!(*info, expect);
}

#[test]
fn the_real_agent_lifecycle_events_carry_their_reasons() {
    assert_eq!(
        decode_captured("agent_started"),
        Event::AgentStarted {
            reason: "self-started".to_owned()
        }
    );
    assert_eq!(
        decode_captured("agent_terminated"),
        Event::AgentTerminated {
            reason: "shutdown".to_owned()
        }
    );
}

#[test]
fn the_real_agent_error_has_its_message_traceback_and_24_03_severity() {
    let Event::AgentError {
        message,
        traceback,
        user,
        context_env,
        severity,
    } = decode_captured("agent_error")
    else {
        panic!("not an agent_error");
    };
    assert!(
        message.starts_with("ValueError: Missing valid docker_host"),
        "{message}"
    );
    let traceback = traceback.expect("a traceback");
    assert!(traceback.contains("collect_process_stat"), "{traceback}");
    assert_eq!(user, serde_json::Value::Null);
    assert_eq!(context_env, serde_json::json!({}));
    assert_eq!(severity, "ERROR");
}

#[test]
fn the_real_kernel_creation_events_decode_with_their_ids_and_creation_info() {
    let empty = KernelCreation {
        kernel_id: uuid(KERNEL_ID),
        session_id: uuid(SESSION_ID),
        reason: String::new(),
        creation_info: serde_json::json!({}),
    };
    assert_eq!(
        decode_captured("kernel_preparing"),
        Event::KernelPreparing(empty.clone())
    );
    assert_eq!(
        decode_captured("kernel_creating"),
        Event::KernelCreating(empty)
    );

    let Event::KernelStarted(started) = decode_captured("kernel_started") else {
        panic!("not kernel_started");
    };
    assert_eq!(started.kernel_id, uuid(KERNEL_ID));
    assert_eq!(started.session_id, uuid(SESSION_ID));
    assert_eq!(started.reason, "");
    let info = &started.creation_info;
    assert_eq!(info["id"], KERNEL_ID);
    assert_eq!(info["kernel_host"], "127.0.0.1");
    assert_eq!(info["repl_in_port"], 2000);
    assert_eq!(info["repl_out_port"], 2001);
    assert_eq!(info["service_ports"], serde_json::json!([]));
    assert_eq!(
        info["container_id"], "",
        "the dummy agent's empty container id"
    );
    assert_eq!(
        info["resource_spec"]["slots"],
        serde_json::json!({"cpu": "1", "mem": "1073741824"}),
        "Decimals (pickles in ext 3) become their decimal text"
    );
}

#[test]
fn the_real_kernel_terminated_has_the_pickled_reason_as_text_and_exit_code_minus_one() {
    assert_eq!(
        decode_captured("kernel_terminated"),
        Event::KernelTerminated(KernelTermination {
            kernel_id: uuid(KERNEL_ID),
            session_id: uuid(SESSION_ID),
            reason: "user-requested".to_owned(),
            exit_code: -1,
        })
    );
}

#[test]
fn re_encoded_real_events_decode_to_the_same_events_without_pickles() {
    for (name, _) in CAPTURED {
        let event = decode_captured(name);
        assert_eq!(event.name(), *name);
        let args = event.encode_args();
        let again = Event::decode(name.as_bytes(), &args)
            .unwrap_or_else(|error| panic!("re-encoded {name}: {error}"));
        assert_eq!(again, event, "{name}");
        // Python pickles start with PROTO 5; we send plain strings instead (spec §1.3).
        assert!(
            !args.windows(2).any(|pair| pair == [0x80, 0x05]),
            "{name} re-encoded with a pickle: {}",
            hex::encode(&args)
        );
    }
}

#[test]
fn the_re_encoded_real_agent_info_decodes_to_the_same_value() {
    let Event::AgentHeartbeat(info) = decode_captured("agent_heartbeat") else {
        panic!("not a heartbeat");
    };
    let again = AgentInfo::from_value(&info.to_value()).expect("our own agent_info decodes");
    assert_eq!(again, *info);
}

#[tokio::test]
async fn real_entries_written_to_a_stream_reach_the_handlers_as_the_same_events() {
    let redis = PrivateRedis::start();
    let stream = StreamDb::connect(&redis.config()).await.expect("connect");
    stream.ensure_group(MANAGER_GROUP).await.expect("group");
    let mut ids = Vec::new();
    for (name, source) in CAPTURED {
        ids.push(
            stream
                .add(name, source, &captured_args(name))
                .await
                .expect("XADD"),
        );
    }

    let (sender, mut receiver) = mpsc::unbounded_channel();
    let mut handlers = Handlers::default();
    for (name, _) in CAPTURED {
        let sender = sender.clone();
        handlers.on(name, "record", move |received| {
            let sender = sender.clone();
            async move {
                let _ = sender.send(received);
                Ok::<(), HandlerError>(())
            }
        });
    }
    let mut options = ConsumerOptions::new(MANAGER_GROUP, "c1".to_owned());
    options.block = Duration::from_millis(200);
    let shutdown = CancellationToken::new();
    let consumer = tokio::spawn(run_consumer(
        StreamDb::connect(&redis.config()).await.expect("connect"),
        handlers,
        options,
        shutdown.clone(),
    ));

    let mut received = Vec::new();
    for _ in CAPTURED {
        received.push(
            tokio::time::timeout(Duration::from_secs(4), receiver.recv())
                .await
                .expect("handled in time")
                .expect("handlers alive"),
        );
    }
    received.sort_by_key(|entry| entry.id);
    for ((entry, (name, source)), id) in received.iter().zip(CAPTURED).zip(&ids) {
        assert_eq!(entry.id, *id, "{name}");
        assert_eq!(entry.source, *source, "{name}");
        assert_eq!(entry.event, decode_captured(name), "{name}");
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(4), consumer)
        .await
        .expect("the consumer stops")
        .expect("no panic");
    assert!(
        stream
            .own_pending(MANAGER_GROUP, "c1", 100)
            .await
            .expect("own")
            .is_empty(),
        "every real entry is acknowledged"
    );
}
