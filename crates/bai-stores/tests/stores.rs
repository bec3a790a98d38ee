//! Connecting the stores and a node's registration, against the halfstack: a fresh database and
//! etcd namespace per test.

mod common;

use bai_db_models::testing::TestDatabase;
use bai_etcd_store::Scope;
use bai_etcd_store::testing::TestNamespace;
use bai_stores::{
    MANAGER_STATUS_KEY, ManagerStatus, Stores, StoresError, node_key, read_manager_status,
    register_node, unregister_node, write_manager_status,
};
use common::manager_config;

#[tokio::test]
async fn stores_connect_to_what_etcd_and_the_config_name() {
    let database = TestDatabase::create("stores_connect").await;
    let namespace = TestNamespace::new("stores-connect");
    let config = manager_config(&namespace, &database);

    // Without config/redis in etcd there is no Redis to connect to: the error says which key.
    let error = Stores::connect(&config)
        .await
        .expect_err("no Redis is configured");
    assert!(matches!(error, StoresError::Redis(_)), "{error:?}");
    assert!(error.to_string().contains("config/redis"), "{error}");

    let etcd = namespace.store().await;
    etcd.put("config/redis/addr", "127.0.0.1:8110", Scope::Global)
        .await
        .expect("etcd put");
    etcd.put("config/redis/password", "develove", Scope::Global)
        .await
        .expect("etcd put");
    let stores = Stores::connect(&config)
        .await
        .expect("the halfstack's stores connect");
    assert_eq!(
        stores
            .shared_config
            .current()
            .redis
            .addr
            .as_ref()
            .map(ToString::to_string),
        Some("127.0.0.1:8110".to_owned())
    );
    stores
        .redis
        .stat
        .keypair_num_queries("AKSTORESTEST")
        .await
        .expect("Redis answers");

    // An embedder hands in connections it made itself.
    let embedded = Stores::from_parts(
        etcd.clone(),
        stores.shared_config.clone(),
        database.connection.clone(),
        stores.redis.clone(),
    );
    assert_eq!(
        read_manager_status(&embedded.etcd)
            .await
            .expect("etcd answers"),
        ManagerStatus::Terminated
    );
    stores.close().await;
}

#[tokio::test]
async fn a_node_registers_and_repairs_the_manager_status() {
    let namespace = TestNamespace::new("stores-node");
    let etcd = namespace.store().await;

    assert_eq!(
        read_manager_status(&etcd).await.unwrap(),
        ManagerStatus::Terminated,
        "a missing status reads as terminated"
    );
    etcd.put(MANAGER_STATUS_KEY, "legacy-value", Scope::Global)
        .await
        .unwrap();
    assert_eq!(
        register_node(&etcd, "i-first").await.unwrap(),
        ManagerStatus::Running,
        "an unknown status is repaired to running"
    );
    assert_eq!(
        etcd.get(&node_key("i-first"), Scope::Global)
            .await
            .unwrap()
            .as_deref(),
        Some("up")
    );

    write_manager_status(&etcd, ManagerStatus::Frozen)
        .await
        .unwrap();
    assert_eq!(
        register_node(&etcd, "i-second").await.unwrap(),
        ManagerStatus::Frozen,
        "a frozen manager stays frozen when a node (re)starts"
    );
    assert_eq!(
        etcd.get(MANAGER_STATUS_KEY, Scope::Global)
            .await
            .unwrap()
            .as_deref(),
        Some("frozen")
    );

    unregister_node(&etcd, "i-first").await.unwrap();
    assert_eq!(
        etcd.get(&node_key("i-first"), Scope::Global).await.unwrap(),
        None
    );
    assert_eq!(
        etcd.get(&node_key("i-second"), Scope::Global)
            .await
            .unwrap()
            .as_deref(),
        Some("up"),
        "the other node stays registered"
    );
}
