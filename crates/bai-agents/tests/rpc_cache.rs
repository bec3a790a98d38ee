//! The agent RPC cache against the real Backend.AI 24.3.11 agent in dummy mode (from
//! `.venvs/agent`), with its row written by the registry's heartbeat handler: calls reuse one
//! connection; a heartbeat that changes the address, and the agent's termination, drop it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bai_agent_rpc::testing::{MANAGER_UP_KEY, RealAgent};
use bai_agent_rpc::{AgentConnection, RpcClient, RpcError};
use bai_agents::{AgentRegistry, AgentRpcCache, AgentRpcError};
use bai_db_models::testing::{INSTALL_GUIDE_FIXTURES, TestDatabase};
use bai_etcd_store::testing::TestNamespace;
use bai_etcd_store::{Scope, SharedConfig};
use bai_events::{AgentInfo, SlotCapacity};
use bai_redis::Redis;
use bai_redis::testing::PrivateRedis;
use bai_stores::Stores;
use chrono::Utc;
use sea_orm::ConnectionTrait;

const AGENT_ID: &str = "i-rpc-cache";
const CALL_TIMEOUT: Option<Duration> = Some(Duration::from_secs(10));

fn agent_info(addr: &str) -> AgentInfo {
    AgentInfo {
        ip: "127.0.0.1".to_owned(),
        region: "local".to_owned(),
        scaling_group: "default".to_owned(),
        addr: addr.to_owned(),
        public_key: None,
        public_host: Some("127.0.0.1".to_owned()),
        resource_slots: vec![SlotCapacity {
            slot: "cpu".to_owned(),
            slot_type: "count".to_owned(),
            amount: "4".to_owned(),
        }],
        version: "24.3.11".to_owned(),
        compute_plugins: serde_json::json!({}),
        images: Vec::new(),
        architecture: "x86_64".to_owned(),
        auto_terminate_abusing_kernel: false,
    }
}

/// The cached connection once the agent answers PING (it takes a few seconds to start).
async fn connected(cache: &AgentRpcCache, agent: &RealAgent) -> Arc<AgentConnection> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match cache.get(AGENT_ID).await {
            Ok(connection) => return connection,
            Err(AgentRpcError::Rpc(RpcError::NoAnswer { .. })) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("{error}; agent log:\n{}", agent.log()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_share_one_connection_until_the_heartbeat_moves_the_agent() {
    let database = TestDatabase::with_fixtures("agents_rpc_cache", &INSTALL_GUIDE_FIXTURES).await;
    let namespace = TestNamespace::new("agents-rpc-cache");
    let redis_server = PrivateRedis::start();
    let etcd = namespace.store().await;
    etcd.put("config/redis/addr", &redis_server.addr(), Scope::Global)
        .await
        .expect("etcd put");
    // The agent waits for a manager to be up before it starts.
    etcd.put(MANAGER_UP_KEY, "up", Scope::Global)
        .await
        .expect("etcd put");
    let shared_config = SharedConfig::load(&etcd).await.expect("shared config");
    let redis = Redis::connect(&shared_config.redis)
        .await
        .expect("the test's Redis answers");
    let db = bai_db_models::connect(&database.config)
        .await
        .expect("the test database answers");
    let stores = Stores::from_parts(etcd, shared_config, db.clone(), redis);

    let agent = RealAgent::start(&namespace.name, AGENT_ID);
    let cache = Arc::new(AgentRpcCache::new(
        db,
        RpcClient::new(None).with_handshake_timeout(Duration::from_secs(1)),
    ));
    let registry =
        AgentRegistry::new(&stores, Default::default()).with_rpc_cache(Arc::clone(&cache));

    // No row yet: a typed error, nothing cached.
    match cache.get(AGENT_ID).await {
        Err(AgentRpcError::UnknownAgent(id)) => assert_eq!(id, AGENT_ID),
        other => panic!("expected UnknownAgent, got {other:?}"),
    }

    let addr = agent.addr();
    registry
        .handle_heartbeat(AGENT_ID, &agent_info(&addr), Utc::now())
        .await
        .expect("first heartbeat");

    let first = connected(&cache, &agent).await;
    assert_eq!(first.version().numbers(), Some((24, 3, 11)));
    assert_eq!(first.ping("one", CALL_TIMEOUT).await.expect("ping"), "one");
    let second = cache.get(AGENT_ID).await.expect("cached connection");
    assert!(Arc::ptr_eq(&first, &second), "the second call reconnected");
    assert_eq!(second.ping("two", CALL_TIMEOUT).await.expect("ping"), "two");
    let hwinfo = second.gather_hwinfo().await.expect("gather_hwinfo");
    assert!(hwinfo.is_map(), "{hwinfo}");

    // An unchanged heartbeat keeps the connection.
    registry
        .handle_heartbeat(AGENT_ID, &agent_info(&addr), Utc::now())
        .await
        .expect("same heartbeat");
    assert!(cache.is_connected(AGENT_ID));

    // The same agent under another address: the connection is dropped and made anew.
    let moved = format!("tcp://localhost:{}", agent.port());
    registry
        .handle_heartbeat(AGENT_ID, &agent_info(&moved), Utc::now())
        .await
        .expect("heartbeat with a new address");
    assert!(!cache.is_connected(AGENT_ID));
    let third = connected(&cache, &agent).await;
    assert!(
        !Arc::ptr_eq(&first, &third),
        "the moved agent was not reconnected"
    );
    assert_eq!(
        third.ping("three", CALL_TIMEOUT).await.expect("ping"),
        "three"
    );
    drop((first, second, third));

    // Termination drops it too.
    registry
        .handle_terminated(AGENT_ID, "shutdown")
        .await
        .expect("agent_terminated");
    assert!(!cache.is_connected(AGENT_ID));

    // Another process handled the heartbeat: this cache sees the row change when it reads the
    // row again (here at every call).
    let other = AgentRpcCache::new(
        db_of(&stores),
        RpcClient::new(None).with_handshake_timeout(Duration::from_secs(1)),
    )
    .with_revalidate_after(Duration::ZERO);
    let before = connected(&other, &agent).await;
    let again = other.get(AGENT_ID).await.expect("unchanged row");
    assert!(Arc::ptr_eq(&before, &again), "an unchanged row reconnected");
    stores
        .db
        .execute_unprepared(&format!(
            "UPDATE agents SET addr = '{addr}' WHERE id = '{AGENT_ID}'"
        ))
        .await
        .expect("UPDATE agents");
    let after = connected(&other, &agent).await;
    assert!(
        !Arc::ptr_eq(&before, &after),
        "the moved row was not reconnected"
    );
    assert_eq!(
        after.ping("four", CALL_TIMEOUT).await.expect("ping"),
        "four"
    );

    // A 23.09 agent: what it lacks is refused before sending (the real agent, which would stop
    // answering RPC after an unknown method, still answers).
    stores
        .db
        .execute_unprepared(&format!(
            "UPDATE agents SET version = '23.09.10' WHERE id = '{AGENT_ID}'"
        ))
        .await
        .expect("UPDATE agents");
    let old = connected(&other, &agent).await;
    assert_eq!(old.version().as_str(), "23.09.10");
    match old.trigger_batch_execution("s", "k", "true").await {
        Err(RpcError::Unsupported {
            agent,
            method,
            version,
        }) => {
            assert_eq!(
                (agent.as_str(), method.as_str(), version.as_str()),
                (AGENT_ID, "trigger_batch_execution", "23.09.10")
            );
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    assert!(matches!(
        old.push_image("x", "x86_64", rmpv::Value::Map(Vec::new()), false)
            .await,
        Err(RpcError::Unsupported { .. })
    ));
    assert_eq!(old.ping("five", CALL_TIMEOUT).await.expect("ping"), "five");
}

fn db_of(stores: &Stores) -> sea_orm::DatabaseConnection {
    stores.db.clone()
}
