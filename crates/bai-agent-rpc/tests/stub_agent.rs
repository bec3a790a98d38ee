//! The client against a minimal Callosum ROUTER in this process, for what the real agent does
//! not do on demand: never answering (timeouts and CANCEL), CANCELLED and ERROR replies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bai_agent_rpc::{AgentTarget, RpcClient, RpcError};
use rmpv::Value;

/// A ROUTER that answers PING, never answers `never`, answers `cancelled` with CANCELLED,
/// `internal` with ERROR and anything else with its first argument; it reports every CANCEL it
/// receives as `(method, seq)`.
struct StubAgent {
    addr: String,
    cancels: mpsc::Receiver<(String, u64)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StubAgent {
    fn start() -> StubAgent {
        let context = zmq::Context::new();
        let router = context.socket(zmq::ROUTER).expect("socket");
        router.set_linger(0).expect("linger");
        router.bind("tcp://127.0.0.1:*").expect("bind");
        let addr = router
            .get_last_endpoint()
            .expect("endpoint")
            .expect("utf-8");
        let (cancels_tx, cancels) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                if router.poll(zmq::POLLIN, 50).expect("poll") == 0 {
                    continue;
                }
                let frames = router.recv_multipart(0).expect("recv");
                let [peer, kind, header, body] = frames.as_slice() else {
                    continue;
                };
                if kind == b"PING" {
                    router
                        .send_multipart([&peer[..], b"PONG", header, body], 0)
                        .expect("send");
                    continue;
                }
                let header = msgpack(header);
                let kind = field(&header, "type").as_u64().expect("type");
                let method = field(&header, "meth").as_str().expect("meth").to_owned();
                let seq = field(&header, "seq").as_u64().expect("seq");
                if kind == 5 {
                    let _ = cancels_tx.send((method, seq));
                    continue;
                }
                let (kind, meta, body) = match method.as_str() {
                    "never" => continue,
                    "cancelled" => (6, encode(&Value::Array(vec![])), Value::Nil),
                    "internal" => {
                        let info = ["KeyError", "KeyError('x')", "Traceback ...\n"];
                        let info = info.iter().map(|text| Value::from(*text)).collect();
                        (4, encode(&Value::Array(info)), Value::Nil)
                    }
                    _ => {
                        let request = msgpack(
                            field(&msgpack(body), "body")
                                .as_slice()
                                .expect("request bytes"),
                        );
                        let first = field(&request, "args")[0].clone();
                        (
                            2,
                            encode(&Value::Array(vec![])),
                            Value::Binary(encode(&first)),
                        )
                    }
                };
                let header = encode(&Value::Map(vec![
                    (Value::from("type"), Value::from(kind)),
                    (Value::from("meth"), Value::from(method)),
                    (Value::from("okey"), Value::from("")),
                    (Value::from("seq"), Value::from(seq)),
                    (Value::from("zip"), Value::from(false)),
                ]));
                let body = encode(&Value::Map(vec![
                    (Value::from("meta"), Value::Binary(meta)),
                    (Value::from("body"), body),
                ]));
                router
                    .send_multipart([&peer[..], b"UPPER", &header, &body], 0)
                    .expect("send");
            }
        });
        StubAgent {
            addr,
            cancels,
            stop,
            thread: Some(thread),
        }
    }

    fn target(&self) -> AgentTarget {
        AgentTarget {
            agent_id: "i-stub".to_owned(),
            addr: self.addr.clone(),
            public_key: None,
        }
    }

    fn next_cancel(&self) -> (String, u64) {
        self.cancels
            .recv_timeout(Duration::from_secs(5))
            .expect("a CANCEL within 5 s")
    }
}

impl Drop for StubAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn msgpack(bytes: &[u8]) -> Value {
    rmpv::decode::read_value(&mut &bytes[..]).expect("msgpack")
}

fn encode(value: &Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, value).expect("encode");
    bytes
}

fn field<'a>(map: &'a Value, name: &str) -> &'a Value {
    map.as_map()
        .expect("map")
        .iter()
        .find(|(key, _)| key.as_str() == Some(name))
        .map(|(_, value)| value)
        .unwrap_or_else(|| panic!("no {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_dropped_calls_are_cancelled_on_the_agent_and_replies_are_typed() {
    let stub = StubAgent::start();
    let connection = RpcClient::new(None)
        .with_handshake_timeout(Duration::from_secs(2))
        .connect(&stub.target())
        .await
        .expect("connect");
    let limit = Some(Duration::from_secs(5));

    let started = Instant::now();
    let error = connection
        .call("never", vec![], vec![], Some(Duration::from_millis(200)))
        .await
        .expect_err("no answer");
    assert!(started.elapsed() < Duration::from_secs(2));
    match &error {
        RpcError::Timeout { agent, method, .. } => {
            assert_eq!((agent.as_str(), method.as_str()), ("i-stub", "never"));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(error.to_string().contains("i-stub"), "{error}");
    assert_eq!(stub.next_cancel(), ("never".to_owned(), 0));

    // A caller that goes away cancels its call too.
    let connection = Arc::new(connection);
    let calling = Arc::clone(&connection);
    let call = tokio::spawn(async move { calling.call("never", vec![], vec![], None).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    call.abort();
    assert_eq!(stub.next_cancel(), ("never".to_owned(), 1));

    let error = connection
        .call("cancelled", vec![], vec![], limit)
        .await
        .expect_err("cancelled");
    assert!(matches!(error, RpcError::Cancelled { .. }), "{error:?}");

    let error = connection
        .call("internal", vec![], vec![], limit)
        .await
        .expect_err("internal");
    match error {
        RpcError::Internal { exc_name, repr, .. } => {
            assert_eq!(
                (exc_name.as_str(), repr.as_str()),
                ("KeyError", "KeyError('x')")
            );
        }
        other => panic!("expected an internal error, got {other:?}"),
    }

    let echoed = connection
        .call("echo", vec![Value::from(42)], vec![], limit)
        .await
        .expect("echo");
    assert_eq!(echoed, Value::from(42));
}

#[tokio::test]
async fn nothing_listening_fails_the_handshake_in_time() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let target = AgentTarget {
        agent_id: "i-gone".to_owned(),
        addr: format!("tcp://127.0.0.1:{port}"),
        public_key: None,
    };
    let started = Instant::now();
    let error = RpcClient::new(None)
        .with_handshake_timeout(Duration::from_millis(500))
        .connect(&target)
        .await
        .expect_err("nothing listens");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(error, RpcError::NoAnswer { .. }), "{error:?}");
    assert!(error.to_string().contains("i-gone"), "{error}");

    // An agent with a key needs the manager's keypair.
    let keyed = AgentTarget {
        public_key: Some(
            *bai_rpc_keys::CurveKeypair::generate()
                .expect("keypair")
                .public_key(),
        ),
        ..target
    };
    let error = RpcClient::new(None)
        .connect(&keyed)
        .await
        .expect_err("no keypair");
    assert!(
        matches!(error, RpcError::NoManagerKeypair { .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_holds_more_connections_than_one_zeromq_context_has_sockets() {
    // A context has room for 1023 sockets and a connection holds five: 250 connections need
    // more than one context (a manager of a few hundred agents).
    let agent = StubAgent::start();
    let client = RpcClient::new(None);
    let mut connections = Vec::new();
    for index in 0..250 {
        let connection = client
            .connect(&agent.target())
            .await
            .unwrap_or_else(|error| panic!("connection {index}: {error}"));
        connections.push(connection);
    }
    for (index, connection) in connections.iter().enumerate() {
        let echoed = connection
            .call(
                "echo",
                vec![Value::from(index)],
                Vec::new(),
                Some(Duration::from_secs(5)),
            )
            .await
            .unwrap_or_else(|error| panic!("call on connection {index}: {error}"));
        assert_eq!(echoed, Value::from(index));
    }
    // Connections given back make room again.
    connections.clear();
    for index in 0..250 {
        client
            .connect(&agent.target())
            .await
            .unwrap_or_else(|error| panic!("connection {index} after the others closed: {error}"));
    }
}
