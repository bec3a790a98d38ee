//! Connected stores follow etcd: a change of `config/redis` moves every Redis handle to the new
//! server without a restart, a bad value there leaves the server in use alone, and the shared
//! configuration the stores hand out is the one in effect. A fresh database, etcd namespace and two
//! private Redis servers.

mod common;

use std::time::{Duration, Instant};

use bai_db_models::testing::TestDatabase;
use bai_etcd_store::Scope;
use bai_etcd_store::testing::TestNamespace;
use bai_redis::testing::PrivateRedis;
use bai_stores::Stores;
use common::manager_config;

async fn eventually(what: &str, mut test: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !test().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_change_of_config_redis_moves_the_stores_to_the_new_server() {
    let database = TestDatabase::create("stores_live").await;
    let namespace = TestNamespace::new("stores-live");
    let (first, second) = (PrivateRedis::start(), PrivateRedis::start());
    let etcd = namespace.store().await;
    etcd.put("config/redis/addr", &first.addr(), Scope::Global)
        .await
        .expect("etcd put");
    let stores = Stores::connect(&manager_config(&namespace, &database))
        .await
        .expect("the stores connect");
    // What a service took from the stores at start.
    let stat = stores.redis.stat.clone();
    let consumer = stores.redis.dedicated_stream().await.expect("a stream");
    record_call(&stat, "AKBEFORE").await;

    etcd.put("config/redis/addr", &second.addr(), Scope::Global)
        .await
        .expect("etcd put");
    eventually("the switch to the second Redis", async || {
        stores.redis.config().addr.map(|addr| addr.port) == Some(second.port)
    })
    .await;
    assert_eq!(
        stores
            .shared_config
            .current()
            .redis
            .addr
            .as_ref()
            .map(|addr| addr.port),
        Some(second.port)
    );
    record_call(&stat, "AKAFTER").await;
    consumer
        .add("after_switch", "test", b"")
        .await
        .expect("the stream answers");
    let on_first = bai_redis::Redis::connect(&first.config())
        .await
        .expect("first");
    let on_second = bai_redis::Redis::connect(&second.config())
        .await
        .expect("second");
    let calls = |redis: &bai_redis::Redis, key: &str| {
        let stat = redis.stat.clone();
        let key = format!("kp:{key}:num_queries");
        async move { stat.raw().get(&key).await.expect("get") }
    };
    assert_eq!(calls(&on_first, "AKBEFORE").await, Some("1".to_owned()));
    assert_eq!(calls(&on_first, "AKAFTER").await, None);
    assert_eq!(calls(&on_second, "AKAFTER").await, Some("1".to_owned()));
    assert_eq!(on_second.stream.entry_count().await.expect("count"), 1);

    // A value that is not an address: the section keeps its settings, the server stays.
    etcd.put_dict(
        &[
            ("config/redis/addr".to_owned(), "nonsense".to_owned()),
            (
                "config/api/allow-openapi-schema-introspection".to_owned(),
                "true".to_owned(),
            ),
        ],
        Scope::Global,
    )
    .await
    .expect("etcd put");
    eventually("the good change next to the bad one", async || {
        stores
            .shared_config
            .current()
            .api
            .allow_openapi_schema_introspection
    })
    .await;
    assert_eq!(
        stores.redis.config().addr.map(|addr| addr.port),
        Some(second.port)
    );
    record_call(&stat, "AKSTILL").await;
    assert_eq!(calls(&on_second, "AKSTILL").await, Some("1".to_owned()));

    on_first.close().await;
    on_second.close().await;
    stores.close().await;
}

/// One successful call of `access_key`, written at once.
async fn record_call(stat: &bai_redis::StatDb, access_key: &str) {
    let calls = bai_redis::CallStats::new();
    calls.record(access_key);
    calls.flush(stat).await.expect("Redis answers");
}
