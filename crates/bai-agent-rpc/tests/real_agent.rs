//! Calls to the real Backend.AI 24.3.11 agent in dummy mode (from `.venvs/agent`), each test with
//! its own agent process (own directory, ports and process group), etcd namespace and Redis:
//! with RPC auth off, and with CURVE on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bai_agent_rpc::testing::{self, AgentSetup};
use bai_agent_rpc::{AgentConnection, AgentTarget, AgentVersion, Connection, RpcClient, RpcError};
use bai_etcd_store::Scope;
use bai_etcd_store::testing::TestNamespace;
use bai_events::Event;
use bai_redis::testing::PrivateRedis;
use bai_redis::{EntryId, StreamDb};
use bai_rpc_keys::{CurveKeypair, PublicKey};
use rmpv::Value;
use uuid::Uuid;

const CALL_TIMEOUT: Option<Duration> = Some(Duration::from_secs(10));

/// The agent's keys, and the manager's that the agent accepts.
struct Curve {
    agent: CurveKeypair,
    manager: CurveKeypair,
}

/// The real agent with everything it needs, stopped (its whole process group) when dropped.
struct RealAgent {
    process: testing::RealAgent,
    _etcd: TestNamespace,
    redis: PrivateRedis,
}

impl RealAgent {
    async fn start(label: &str, curve: Option<&Curve>) -> RealAgent {
        let etcd = TestNamespace::new(&format!("agent-rpc-{label}"));
        let redis = PrivateRedis::start();
        let store = etcd.store().await;
        store
            .put("config/redis/addr", &redis.addr(), Scope::Global)
            .await
            .expect("etcd put");
        store
            .put(testing::MANAGER_UP_KEY, "up", Scope::Global)
            .await
            .expect("etcd put");
        let agent_id = format!("i-{label}");
        let process = testing::RealAgent::start_with(&AgentSetup {
            curve: curve.map(|curve| (&curve.agent, &curve.manager)),
            ..AgentSetup::new(&etcd.name, &agent_id)
        });
        RealAgent {
            process,
            _etcd: etcd,
            redis,
        }
    }

    fn target(&self, public_key: Option<PublicKey>) -> AgentTarget {
        AgentTarget {
            agent_id: "i-test".to_owned(),
            addr: self.process.addr(),
            public_key,
        }
    }

    fn log(&self) -> String {
        self.process.log()
    }

    /// Connects once the agent answers PING (it takes a few seconds to start).
    async fn connect(&self, client: &RpcClient, public_key: Option<PublicKey>) -> Connection {
        let deadline = Instant::now() + Duration::from_secs(60);
        let target = self.target(public_key);
        loop {
            match client.connect(&target).await {
                Ok(connection) => return connection,
                Err(RpcError::NoAnswer { .. } | RpcError::CurveHandshake { .. })
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => panic!("{error}; agent log:\n{}", self.log()),
            }
        }
    }
}

fn quick_client(keypair: Option<CurveKeypair>) -> RpcClient {
    RpcClient::new(keypair).with_handshake_timeout(Duration::from_secs(1))
}

fn map_keys(value: &Value) -> Vec<&str> {
    value
        .as_map()
        .unwrap_or_else(|| panic!("not a map: {value}"))
        .iter()
        .filter_map(|(key, _)| key.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_auth_round_trip_concurrently_and_failures_are_typed() {
    let agent = RealAgent::start("plain", None).await;
    let connection = agent.connect(&quick_client(None), None).await;

    let pong = connection.ping("hello", CALL_TIMEOUT).await.expect("ping");
    assert_eq!(pong, Value::from("hello"));

    let hwinfo = connection
        .call("gather_hwinfo", vec![], vec![], CALL_TIMEOUT)
        .await
        .expect("gather_hwinfo");
    assert!(hwinfo.is_map(), "{hwinfo}");

    let config = connection
        .call("get_local_config", vec![], vec![], CALL_TIMEOUT)
        .await
        .expect("get_local_config");
    assert!(map_keys(&config).contains(&"agent"), "{config}");

    // Many calls in flight on the one connection, each answered with its own message.
    let connection = Arc::new(connection);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..16 {
        let connection = Arc::clone(&connection);
        calls.spawn(async move {
            let msg = format!("ping-{i}");
            let pong = connection.ping(&msg, CALL_TIMEOUT).await;
            (msg, pong)
        });
    }
    let mut answered = 0;
    while let Some(joined) = calls.join_next().await {
        let (msg, pong) = joined.expect("join");
        assert_eq!(pong.expect("ping"), Value::from(msg));
        answered += 1;
    }
    assert_eq!(answered, 16);

    // A handler that raises: `ping` without its argument is a TypeError on the agent.
    let error = connection
        .call("ping", vec![], vec![], CALL_TIMEOUT)
        .await
        .expect_err("ping()");
    match &error {
        RpcError::Failure {
            agent,
            method,
            exc_name,
            traceback,
            ..
        } => {
            assert_eq!(agent, "i-test");
            assert_eq!(method, "ping");
            assert_eq!(exc_name, "TypeError");
            assert!(traceback.contains("Traceback"), "{traceback}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    // The connection still serves calls after a failure.
    let pong = connection.ping("again", CALL_TIMEOUT).await.expect("ping");
    assert_eq!(pong, Value::from("again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_curve_the_right_keys_connect_and_a_wrong_agent_key_fails_the_handshake() {
    let curve = Curve {
        agent: CurveKeypair::generate().expect("keypair"),
        manager: CurveKeypair::generate().expect("keypair"),
    };
    let agent = RealAgent::start("curve", Some(&curve)).await;
    let client = quick_client(Some(curve.manager.clone()));
    let connection = agent
        .connect(&client, Some(*curve.agent.public_key()))
        .await;
    let pong = connection.ping("hello", CALL_TIMEOUT).await.expect("ping");
    assert_eq!(pong, Value::from("hello"));

    // The agent is up (it just answered); a wrong key for it must fail within the handshake
    // timeout, saying so.
    let wrong = CurveKeypair::generate().expect("keypair");
    let client =
        RpcClient::new(Some(curve.manager.clone())).with_handshake_timeout(Duration::from_secs(2));
    let started = Instant::now();
    let error = client
        .connect(&agent.target(Some(*wrong.public_key())))
        .await
        .expect_err("a wrong agent key");
    let took = started.elapsed();
    assert!(
        matches!(error, RpcError::CurveHandshake { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("CURVE handshake failed"),
        "{error}"
    );
    // Said by the agent closing the connection, not by the handshake timeout running out.
    assert!(
        error.to_string().contains("not the key it serves with"),
        "{error}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");

    // Without any key, the mechanisms differ: the error says the agent requires CURVE.
    let error = quick_client(None)
        .connect(&agent.target(None))
        .await
        .expect_err("no CURVE");
    assert!(matches!(error, RpcError::NeedsCurve { .. }), "{error:?}");
}

/// Waits for the agent's `name` event about `kernel_id` on the stream.
async fn kernel_event(stream: &StreamDb, name: &str, kernel_id: Uuid) -> Event {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let entries = stream
            .read_after(EntryId::ZERO, 10_000, Duration::from_millis(1))
            .await
            .expect("XREAD");
        for entry in &entries {
            if entry.field("name") != Some(name.as_bytes()) {
                continue;
            }
            let event = Event::decode(name.as_bytes(), entry.field("args").expect("args"))
                .expect("a valid event");
            let about = match &event {
                Event::KernelStarted(created) => created.kernel_id,
                Event::KernelTerminated(terminated) => terminated.kernel_id,
                _ => continue,
            };
            if about == kernel_id {
                return event;
            }
        }
        assert!(Instant::now() < deadline, "no {name} of kernel {kernel_id}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_created_on_the_real_agent_starts_logs_and_terminates_on_the_event_bus() {
    let agent = RealAgent::start("kernel", None).await;
    let connection = AgentConnection::new(
        agent.connect(&quick_client(None), None).await,
        AgentVersion::parse("24.03.11"),
    );
    let stream = StreamDb::connect(&agent.redis.config())
        .await
        .expect("redis");
    let session_id = Uuid::new_v4();
    let kernel_id = Uuid::new_v4();
    // A kernel configuration as the reference's scheduler sends it (KernelCreationConfig).
    let config = serde_json::json!({
        "image": {
            "canonical": "cr.backend.ai/stable/python:3.9-ubuntu20.04",
            "architecture": std::env::consts::ARCH,
            "digest": format!("sha256:{}", "0".repeat(64)),
            "repo_digest": null,
            "registry": {"name": "cr.backend.ai", "url": "https://cr.backend.ai",
                         "username": null, "password": null},
            "labels": {"ai.backend.service-ports": "jupyter:http:8080"},
            "is_local": false,
        },
        "auto_pull": "digest", "session_type": "interactive", "cluster_mode": "single-node",
        "cluster_role": "main", "cluster_idx": 1, "local_rank": 0, "cluster_hostname": "main1",
        "resource_slots": {"cpu": "1", "mem": "1073741824"}, "resource_opts": {}, "environ": {},
        "mounts": [], "package_directory": [], "idle_timeout": 600, "bootstrap_script": null,
        "startup_command": null, "internal_data": null, "preopen_ports": [],
        "allocated_host_ports": [], "scaling_group": "default",
        "agent_addr": agent.process.addr(), "endpoint_id": null,
    });
    let cluster_info = serde_json::json!({
        "mode": "single-node", "size": 1, "replicas": {"main": 1}, "network_name": null,
        "ssh_keypair": {"public_key": "", "private_key": ""}, "cluster_ssh_port_mapping": null,
    });
    connection
        .create_kernels(
            &session_id.to_string(),
            &[kernel_id.to_string()],
            vec![bai_events::to_value(&config)],
            bai_events::to_value(&cluster_info),
            Some(Duration::from_secs(60)),
        )
        .await
        .unwrap_or_else(|error| panic!("{error}; agent log:\n{}", agent.log()));
    let Event::KernelStarted(started) = kernel_event(&stream, "kernel_started", kernel_id).await
    else {
        unreachable!()
    };
    assert_eq!(started.session_id, session_id);
    assert_eq!(started.creation_info["resource_spec"]["slots"]["cpu"], "1");

    let logs = connection
        .get_logs(&kernel_id.to_string())
        .await
        .expect("get_logs");
    assert!(!logs.is_empty());

    connection
        .destroy_kernel(
            &kernel_id.to_string(),
            &session_id.to_string(),
            Some("user-requested"),
            false,
        )
        .await
        .expect("destroy_kernel");
    let Event::KernelTerminated(terminated) =
        kernel_event(&stream, "kernel_terminated", kernel_id).await
    else {
        unreachable!()
    };
    assert_eq!(terminated.reason, "user-requested");
}
