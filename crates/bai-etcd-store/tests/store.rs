//! EtcdStore against the halfstack's real etcd: raw keys (read with etcd-client directly, as the
//! reference would see them), scopes, moves, writes larger than one transaction and watches.
//! Every test works in its own namespace and removes it at the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bai_etcd_store::{
    EtcdError, EtcdStore, EtcdTarget, MAX_TXN_OPS, Scope, ScopePrefixes, WatchEvent,
};
use etcd_client::{Client, DeleteOptions, GetOptions};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

/// Where configs/manager/halfstack.toml points etcd.
const HALFSTACK_ETCD: &str = "http://127.0.0.1:8120";
const HINT: &str = "start it with: cargo xtask halfstack up";

/// A fresh namespace; its keys are deleted on drop, also when the test fails.
struct Namespace {
    name: String,
}

impl Namespace {
    fn new(test: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        Namespace {
            name: format!("t-{test}-{}-{nanos}", std::process::id()),
        }
    }

    fn target(&self) -> EtcdTarget {
        EtcdTarget {
            endpoints: vec![HALFSTACK_ETCD.to_owned()],
            namespace: self.name.clone(),
            credentials: None,
        }
    }

    async fn store(&self, scopes: ScopePrefixes) -> EtcdStore {
        match EtcdStore::connect(self.target(), scopes).await {
            Ok(store) => store,
            Err(error) => panic!("{error}; {HINT}"),
        }
    }

    /// Every key of the namespace and its value, exactly as stored.
    async fn raw(&self) -> BTreeMap<String, String> {
        let mut client = raw_client().await;
        let response = client
            .get(
                format!("/sorna/{}/", self.name),
                Some(GetOptions::new().with_prefix()),
            )
            .await
            .expect("raw read");
        response
            .kvs()
            .iter()
            .map(|kv| {
                (
                    String::from_utf8(kv.key().to_vec()).expect("UTF-8 key"),
                    String::from_utf8(kv.value().to_vec()).expect("UTF-8 value"),
                )
            })
            .collect()
    }

    async fn raw_put(&self, key: &str, value: &str) {
        raw_client()
            .await
            .put(self.key(key), value, None)
            .await
            .expect("raw put");
    }

    fn key(&self, relative: &str) -> String {
        format!("/sorna/{}/{relative}", self.name)
    }

    fn pairs(&self, pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| (self.key(key), (*value).to_owned()))
            .collect()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let prefix = format!("/sorna/{}/", self.name);
        // The tests run inside a runtime, which cannot block on another one: clean up from a
        // thread of its own. Errors are ignored so that they never hide the test's own failure.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                let deleting = async {
                    let mut client = Client::connect([HALFSTACK_ETCD], None).await?;
                    client
                        .delete(prefix, Some(DeleteOptions::new().with_prefix()))
                        .await
                };
                let _ = runtime.block_on(async {
                    tokio::time::timeout(Duration::from_secs(5), deleting).await
                });
            }
        });
        let _ = cleanup.join();
    }
}

async fn raw_client() -> Client {
    match tokio::time::timeout(
        Duration::from_secs(5),
        Client::connect([HALFSTACK_ETCD], None),
    )
    .await
    {
        Ok(Ok(client)) => client,
        Ok(Err(error)) => panic!("etcd at {HALFSTACK_ETCD} is not reachable ({error}); {HINT}"),
        Err(_) => panic!("etcd at {HALFSTACK_ETCD} did not answer in 5 s; {HINT}"),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(object) => object,
        other => panic!("not an object: {other}"),
    }
}

fn sgroup(name: &str) -> ScopePrefixes {
    ScopePrefixes {
        scaling_group: Some(format!("sgroup/{name}")),
        ..ScopePrefixes::default()
    }
}

#[tokio::test]
async fn keys_and_values_land_in_the_reference_layout() {
    let ns = Namespace::new("layout");
    let store = ns.store(ScopePrefixes::default()).await;
    store
        .put("config/redis/addr", "bai-m1:8110", Scope::Global)
        .await
        .expect("put");
    store
        .put(
            "config/docker/registry/cr.backend.ai",
            "https://cr.backend.ai",
            Scope::Global,
        )
        .await
        .expect("put");
    // One leading slash is dropped, as the reference's key mangling does.
    store
        .put(
            "/config/docker/registry/cr.backend.ai/type",
            "harbor2",
            Scope::Global,
        )
        .await
        .expect("put");
    let written = store
        .put_prefix(
            "config",
            &object(json!({
                "docker": {"registry": {"cr.backend.ai:5000": {"": "https://x", "type": "docker"}}},
                "a b/c": {"x": true, "y": null, "z": [1, "two"], "n": 1.0, "empty": {}},
            })),
            Scope::Global,
        )
        .await
        .expect("put_prefix");
    assert_eq!(written, 6);
    assert_eq!(
        ns.raw().await,
        ns.pairs(&[
            ("config/redis/addr", "bai-m1:8110"),
            (
                "config/docker/registry/cr.backend.ai",
                "https://cr.backend.ai"
            ),
            ("config/docker/registry/cr.backend.ai/type", "harbor2"),
            ("config/docker/registry/cr.backend.ai%3A5000", "https://x"),
            ("config/docker/registry/cr.backend.ai%3A5000/type", "docker"),
            ("config/a%20b%2Fc/x", "True"),
            ("config/a%20b%2Fc/y", "None"),
            ("config/a%20b%2Fc/z", "[1, 'two']"),
            ("config/a%20b%2Fc/n", "1.0"),
        ])
    );
    assert_eq!(
        store
            .get("config/redis/addr", Scope::Global)
            .await
            .expect("get")
            .as_deref(),
        Some("bai-m1:8110")
    );
    assert_eq!(
        store.get("config/redis", Scope::Global).await.expect("get"),
        None
    );

    let tree = store
        .get_prefix("config/docker/registry", Scope::Global)
        .await
        .expect("get_prefix");
    assert_eq!(
        tree.keys().collect::<Vec<_>>(),
        ["cr.backend.ai", "cr.backend.ai:5000"]
    );
    let registry = tree["cr.backend.ai:5000"].as_tree().expect("a tree");
    assert_eq!(registry[""].as_value(), Some("https://x"));
    assert_eq!(registry["type"].as_value(), Some("docker"));

    assert!(
        store
            .delete("config/redis/addr", Scope::Global)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete("config/redis/addr", Scope::Global)
            .await
            .expect("delete")
    );
    assert_eq!(
        store
            .delete_prefix("config/a%20b", Scope::Global)
            .await
            .expect("delete_prefix"),
        4
    );
    assert_eq!(ns.raw().await.len(), 4);
}

#[tokio::test]
async fn scopes_prefix_their_keys_and_reads_search_node_then_group_then_global() {
    let ns = Namespace::new("scopes");
    let agent = ns.store(ScopePrefixes::for_agent("gpu", "i-1")).await;
    agent
        .put("config/x", "global", Scope::Global)
        .await
        .expect("put");
    agent
        .put("config/x", "sgroup", Scope::ScalingGroup)
        .await
        .expect("put");
    agent
        .put("config/x", "node", Scope::Node)
        .await
        .expect("put");
    agent
        .put("config/only-global", "g", Scope::Global)
        .await
        .expect("put");
    // An agent's status is the value at its node, which the reference stores with a trailing slash.
    agent.put("", "running", Scope::Node).await.expect("put");
    assert_eq!(
        ns.raw().await,
        ns.pairs(&[
            ("config/x", "global"),
            ("config/only-global", "g"),
            ("sgroup/gpu/config/x", "sgroup"),
            ("nodes/agents/i-1/config/x", "node"),
            ("nodes/agents/i-1/", "running"),
        ])
    );

    let get = |scope| {
        let agent = agent.clone();
        async move { agent.get("config/x", scope).await.expect("get") }
    };
    assert_eq!(get(Scope::Merged).await.as_deref(), Some("node"));
    assert_eq!(get(Scope::Node).await.as_deref(), Some("node"));
    assert_eq!(get(Scope::ScalingGroup).await.as_deref(), Some("sgroup"));
    assert_eq!(get(Scope::Global).await.as_deref(), Some("global"));
    assert_eq!(
        agent
            .get("config/only-global", Scope::Node)
            .await
            .expect("get")
            .as_deref(),
        Some("g")
    );
    agent.delete("config/x", Scope::Node).await.expect("delete");
    assert_eq!(get(Scope::Merged).await.as_deref(), Some("sgroup"));

    // Top-level keys merge, the first scope that has one wins it whole (the reference's ChainMap).
    let merged = agent
        .get_prefix("config", Scope::ScalingGroup)
        .await
        .expect("get_prefix");
    assert_eq!(merged.keys().collect::<Vec<_>>(), ["only-global", "x"]);
    assert_eq!(merged["x"].as_value(), Some("sgroup"));

    let global_only = ns.store(ScopePrefixes::default()).await;
    assert!(matches!(
        global_only.put("k", "v", Scope::ScalingGroup).await,
        Err(EtcdError::ScopeNotConfigured { .. })
    ));
    assert!(matches!(
        global_only.put("k", "v", Scope::Merged).await,
        Err(EtcdError::MergedWrite)
    ));
    let sgroup_only = ns.store(sgroup("gpu")).await;
    assert_eq!(
        sgroup_only
            .get("config/x", Scope::ScalingGroup)
            .await
            .expect("get")
            .as_deref(),
        Some("sgroup")
    );
}

#[tokio::test]
async fn move_subtree_moves_the_keys_of_its_scope_only() {
    let ns = Namespace::new("move");
    let store = ns.store(sgroup("gpu")).await;
    store
        .put("a/global", "g", Scope::Global)
        .await
        .expect("put");
    store
        .put("a/x", "1", Scope::ScalingGroup)
        .await
        .expect("put");
    store
        .put("a/y%3Az", "2", Scope::ScalingGroup)
        .await
        .expect("put");
    store
        .put("a", "at-node", Scope::ScalingGroup)
        .await
        .expect("put");

    let moved = store
        .move_subtree("a", "b", Scope::ScalingGroup)
        .await
        .expect("move");
    assert_eq!(moved, 3);
    assert_eq!(
        ns.raw().await,
        ns.pairs(&[
            ("a/global", "g"),
            ("sgroup/gpu/b", "at-node"),
            ("sgroup/gpu/b/x", "1"),
            ("sgroup/gpu/b/y%3Az", "2"),
        ])
    );

    // A plain string prefix, as the reference: `b-sibling` is below `b` and moves along.
    store
        .put("b-sibling", "s", Scope::Global)
        .await
        .expect("put");
    store
        .put("b", "global-b", Scope::Global)
        .await
        .expect("put");
    let moved = store
        .move_subtree("b", "c", Scope::Global)
        .await
        .expect("move");
    assert_eq!(moved, 2);
    let raw = ns.raw().await;
    assert_eq!(raw.get(&ns.key("c")).map(String::as_str), Some("global-b"));
    assert_eq!(
        raw.get(&ns.key("c/-sibling")).map(String::as_str),
        Some("s")
    );
    assert!(!raw.contains_key(&ns.key("b")) && !raw.contains_key(&ns.key("b-sibling")));
    assert!(
        raw.contains_key(&ns.key("sgroup/gpu/b/x")),
        "another scope's keys stay"
    );
}

fn thousand_keys(last_value: &str) -> Map<String, Value> {
    (0..1000)
        .map(|index| {
            let value = if index == 999 {
                last_value.to_owned()
            } else {
                format!("v{index}")
            };
            (format!("k{index:04}"), Value::String(value))
        })
        .collect()
}

#[tokio::test]
async fn a_put_larger_than_one_transaction_writes_every_key() {
    let ns = Namespace::new("bulk");
    let store = ns.store(ScopePrefixes::default()).await;
    let keys = thousand_keys("v999");
    assert!(keys.len() > MAX_TXN_OPS);
    let written = store
        .put_prefix("bulk", &keys, Scope::Global)
        .await
        .expect("put_prefix");
    assert_eq!(written, 1000);
    let raw = ns.raw().await;
    assert_eq!(raw.len(), 1000);
    assert_eq!(
        raw.get(&ns.key("bulk/k0000")).map(String::as_str),
        Some("v0")
    );
    assert_eq!(
        raw.get(&ns.key("bulk/k0999")).map(String::as_str),
        Some("v999")
    );
}

#[tokio::test]
async fn a_put_larger_than_one_transaction_writes_nothing_when_a_later_transaction_fails() {
    let ns = Namespace::new("bulk-fail");
    ns.raw_put("bulk/k0000", "old").await;
    ns.raw_put("bulk/k0500", "old-500").await;
    ns.raw_put("unrelated", "stays").await;
    let before = ns.raw().await;
    let store = ns.store(ScopePrefixes::default()).await;
    let mut events = Box::pin(
        store
            .watch("bulk/", Scope::Global, true)
            .await
            .expect("watch"),
    );
    // etcd refuses a request over its size limit: the last of the eight transactions fails
    // after the first seven have been committed, and those must be undone.
    let too_large = "x".repeat(2 * 1024 * 1024);
    let failed = store
        .put_prefix("bulk", &thousand_keys(&too_large), Scope::Global)
        .await;
    assert!(
        matches!(failed, Err(EtcdError::Transaction { .. })),
        "{failed:?}"
    );
    assert_eq!(ns.raw().await, before);

    // The watch proves the failure came late: a key of the first transaction was written, then
    // removed again.
    let written = WatchEvent::Put {
        key: "bulk/k0001".to_owned(),
        value: "v1".to_owned(),
    };
    let undone = WatchEvent::Delete {
        key: "bulk/k0001".to_owned(),
    };
    let mut seen = Vec::new();
    while !seen.contains(&undone) {
        match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
            Ok(Some(event)) => seen.push(event.expect("a watch event")),
            Ok(None) => panic!("the watch ended"),
            Err(_) => panic!("bulk/k0001 was never written and removed"),
        }
    }
    assert!(seen.contains(&written));
}

#[tokio::test]
async fn watch_prefix_sees_a_put_and_a_delete_below_the_prefix() {
    let ns = Namespace::new("watch");
    let store = ns.store(ScopePrefixes::default()).await;
    let events = store
        .watch("config/", Scope::Global, true)
        .await
        .expect("watch");
    let mut events = Box::pin(events);
    store
        .put("elsewhere", "unseen", Scope::Global)
        .await
        .expect("put");
    store
        .put("config/a%3Ab", "1", Scope::Global)
        .await
        .expect("put");
    store
        .delete("config/a%3Ab", Scope::Global)
        .await
        .expect("delete");

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let next = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
        match next {
            Ok(Some(event)) => seen.push(event.expect("a watch event")),
            Ok(None) => panic!("the watch ended after {seen:?}"),
            Err(_) => panic!("no event within 5 s after {seen:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            WatchEvent::Put {
                key: "config/a%3Ab".to_owned(),
                value: "1".to_owned()
            },
            WatchEvent::Delete {
                key: "config/a%3Ab".to_owned()
            },
        ]
    );
}

#[tokio::test]
async fn connecting_to_a_dead_or_silent_etcd_fails_within_5_seconds() {
    // Nothing listens on port 1; the second endpoint completes the TCP handshake (the kernel does
    // it for a listening socket) and then never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent = format!("http://{}", silent.local_addr().expect("address"));
    for endpoint in ["http://127.0.0.1:1".to_owned(), silent] {
        let target = EtcdTarget {
            endpoints: vec![endpoint.clone()],
            namespace: "unused".to_owned(),
            credentials: None,
        };
        let started = Instant::now();
        let error = EtcdStore::connect(target, ScopePrefixes::default())
            .await
            .expect_err("nothing answers");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{endpoint}: took {:?}",
            started.elapsed()
        );
        assert!(error.to_string().contains(&endpoint), "{error}");
    }
}
