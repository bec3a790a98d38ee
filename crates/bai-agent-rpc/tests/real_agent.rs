//! Calls to the real Backend.AI 24.3.11 agent in dummy mode (from `.venvs/agent`), each test with
//! its own agent process (own directory, ports and process group), etcd namespace and Redis:
//! with RPC auth off, and with CURVE on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bai_agent_rpc::testing::{self, AgentSetup};
use bai_agent_rpc::{AgentTarget, Connection, RpcClient, RpcError};
use bai_etcd_store::Scope;
use bai_etcd_store::testing::TestNamespace;
use bai_redis::testing::PrivateRedis;
use bai_rpc_keys::{CurveKeypair, PublicKey};
use rmpv::Value;

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
    _redis: PrivateRedis,
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
            _redis: redis,
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
    assert!(took < Duration::from_secs(3), "took {took:?}");

    // Without any key, the agent that requires CURVE does not answer either.
    let error = quick_client(None)
        .connect(&agent.target(None))
        .await
        .expect_err("no CURVE");
    assert!(matches!(error, RpcError::NoAnswer { .. }), "{error:?}");
}
