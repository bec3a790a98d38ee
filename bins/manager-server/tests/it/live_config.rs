//! The shared configuration followed live by a running `manager-server` (no restart): a switch of
//! etcd `config/redis` to another Redis is used by the next requests, GraphQL introspection follows
//! `config/api/allow-graphql-schema-introspection`, registries added to etcd are listed, and a bad
//! value is logged with its key while the previous settings stay in effect.

use std::time::{Duration, Instant};

use bai_etcd_store::Scope;
use bai_redis::StatDb;
use bai_redis::testing::PrivateRedis;
use serde_json::Value;

use crate::support::{ACCESS_KEY, CLIENT_24_03, Server, Settings, Stack, free_port};

/// The client's SDK sends `query` as the superadmin; prints `{"data": ...}` or `{"error": ...}`.
const QUERY_PY: &str = r#"
import json, sys
from ai.backend.client.session import Session
try:
    with Session() as session:
        print(json.dumps({"data": session.Admin.query(sys.argv[1])}))
except Exception as error:
    print(json.dumps({"error": str(error)}))
"#;

fn query(stack: &Stack, port: u16, document: &str) -> Value {
    let output = CLIENT_24_03.run(stack, port, "python", &["-c", QUERY_PY, document]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
        panic!(
            "no JSON ({error}): {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Polls `probe` until it holds, for up to 30 s.
async fn eventually(what: &str, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !probe().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn calls_counted(stat: &StatDb) -> Option<String> {
    stat.raw()
        .get(&format!("kp:{ACCESS_KEY}:num_queries"))
        .await
        .expect("Redis")
}

#[tokio::test]
async fn a_running_server_follows_the_shared_config_without_a_restart() {
    let stack = Stack::with_install_guide_keypairs("live_config").await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "live-config");
    server.wait_ready(port).await;
    let schema = "{ __schema { queryType { name } } }";

    // Introspection is off by default, and on as soon as etcd says so.
    let refused = query(&stack, port, schema);
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|error| error.contains("introspection is disabled")),
        "{refused}"
    );
    stack
        .store
        .put(
            "config/api/allow-graphql-schema-introspection",
            "true",
            Scope::Global,
        )
        .await
        .expect("etcd put");
    eventually("introspection to be allowed", async || {
        query(&stack, port, schema)["data"]["__schema"]["queryType"]["name"] == "Query"
    })
    .await;

    // A registry added to etcd is listed by the next request.
    stack
        .store
        .put_dict(
            &[
                (
                    "config/docker/registry/cr.live.test".to_owned(),
                    "https://cr.live.test".to_owned(),
                ),
                (
                    "config/docker/registry/cr.live.test/type".to_owned(),
                    "docker".to_owned(),
                ),
            ],
            Scope::Global,
        )
        .await
        .expect("etcd put");
    let registries = query(&stack, port, "{ container_registries { hostname } }");
    assert!(
        registries["data"]["container_registries"]
            .as_array()
            .is_some_and(|all| all.iter().any(|r| r["hostname"] == "cr.live.test")),
        "{registries}"
    );

    // Redis moves to another server: the next requests are counted there.
    let first = StatDb::connect(&stack.redis.config()).await.expect("first");
    assert!(calls_counted(&first).await.is_some());
    let second_server = PrivateRedis::start();
    let second = StatDb::connect(&second_server.config())
        .await
        .expect("second");
    stack
        .store
        .put("config/redis/addr", &second_server.addr(), Scope::Global)
        .await
        .expect("etcd put");
    eventually("requests counted in the second Redis", async || {
        CLIENT_24_03.cli_json(&stack, port, &["admin", "agent", "list"]);
        calls_counted(&second).await.is_some()
    })
    .await;

    // Bad values: logged with their keys, the previous settings stay in effect.
    stack
        .store
        .put_dict(
            &[
                ("config/redis/addr".to_owned(), "nonsense".to_owned()),
                (
                    "config/api/allow-graphql-schema-introspection".to_owned(),
                    "maybe".to_owned(),
                ),
            ],
            Scope::Global,
        )
        .await
        .expect("etcd put");
    eventually("the bad values to be logged", async || {
        let log = server.stderr();
        log.contains("config/redis/addr") && log.contains("allow-graphql-schema-introspection")
    })
    .await;
    let before: i64 = calls_counted(&second)
        .await
        .and_then(|count| count.parse().ok())
        .expect("a count");
    let allowed = query(&stack, port, schema);
    assert_eq!(
        allowed["data"]["__schema"]["queryType"]["name"], "Query",
        "{allowed}"
    );
    // Call counts reach Redis in worker 0's batch, once a second.
    eventually("the request counted in the second Redis", async || {
        calls_counted(&second)
            .await
            .and_then(|count| count.parse::<i64>().ok())
            .is_some_and(|after| after > before)
    })
    .await;
    let log = server.stderr();
    assert!(
        log.lines().any(|line| line.contains("ERROR")
            && line.contains("config/redis/addr")
            && line.contains("previous settings")),
        "{log}"
    );
    assert!(server.is_running());
}
