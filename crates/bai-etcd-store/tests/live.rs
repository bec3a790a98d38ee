//! The live shared configuration against real etcd: changes reach every handle without a restart, a
//! section with a bad value keeps its previous settings (logged with the key, never the value), and
//! the watch resumes after etcd restarts (a private etcd, so that the halfstack's keeps running).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bai_config::{EtcdConfig, HostPort};
use bai_etcd_store::testing::TestNamespace;
use bai_etcd_store::testing::logs::CapturedLogs;
use bai_etcd_store::{
    EtcdStore, EtcdTarget, LiveSharedConfig, Scope, ScopePrefixes, SharedConfig,
    SharedConfigWatcher,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Waits until the configuration in effect satisfies `test`.
async fn until(live: &LiveSharedConfig, what: &str, test: impl Fn(&SharedConfig) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !test(&live.current()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The shared configuration in `etcd`, followed by a watcher task until `stop` is cancelled.
async fn follow(etcd: &EtcdStore) -> (LiveSharedConfig, CancellationToken, JoinHandle<()>) {
    let (live, watcher) = SharedConfigWatcher::load(etcd.clone())
        .await
        .expect("the shared config loads");
    let stop = CancellationToken::new();
    let following = tokio::spawn(watcher.run(stop.clone().cancelled_owned()));
    (live, stop, following)
}

/// Writes `pairs` to the global scope in one transaction.
async fn put_global(etcd: &EtcdStore, pairs: &[(&str, &str)]) {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    etcd.put_dict(&pairs, Scope::Global)
        .await
        .unwrap_or_else(|error| panic!("putting {pairs:?}: {error}"));
}

/// Writes a docker registry `name` at `https://{name}` to the global scope.
async fn put_docker_registry(etcd: &EtcdStore, name: &str) {
    let key = format!("config/docker/registry/{name}");
    put_global(
        etcd,
        &[
            (&key, &format!("https://{name}")),
            (&format!("{key}/type"), "docker"),
        ],
    )
    .await;
}

// One thread: the watcher task logs into this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn changes_apply_live_and_a_bad_value_keeps_its_sections_previous_settings() {
    let logs = CapturedLogs::start("bai_etcd_store=info");

    let namespace = TestNamespace::new("live-config");
    let etcd = namespace.store().await;
    etcd.put("config/redis/addr", "127.0.0.1:8110", Scope::Global)
        .await
        .expect("put");
    etcd.put(
        "config/redis/password",
        "secret-never-logged",
        Scope::Global,
    )
    .await
    .expect("put");
    let (live, stop, following) = follow(&etcd).await;
    let seen_by_another = live.clone();
    assert!(live.current().docker.registries.is_empty());

    // A registry added to etcd is in effect for every handle.
    put_global(
        &etcd,
        &[
            (
                "config/docker/registry/cr.live.test",
                "https://cr.live.test",
            ),
            ("config/docker/registry/cr.live.test/type", "harbor2"),
            ("config/docker/registry/cr.live.test/project", "stable,ai"),
        ],
    )
    .await;
    until(&seen_by_another, "the new registry", |config| {
        config
            .docker
            .registries
            .get("cr.live.test")
            .is_some_and(|registry| registry.kind == "harbor2" && registry.projects.len() == 2)
    })
    .await;

    // A bad Redis address and a bad API flag: both sections keep their settings, while a good
    // change made at the same time (the hang tolerance) applies.
    put_global(
        &etcd,
        &[
            ("config/redis/addr", "nonsense"),
            ("config/api/allow-graphql-schema-introspection", "maybe"),
            ("config/session/hang-tolerance/threshold/PREPARING", "10m"),
        ],
    )
    .await;
    until(&live, "the good change next to the bad ones", |config| {
        config.session.hang_tolerance.preparing == Some(Duration::from_secs(600))
    })
    .await;
    let current = live.current();
    assert_eq!(
        current.redis.addr.as_ref().map(ToString::to_string),
        Some("127.0.0.1:8110".to_owned())
    );
    assert!(!current.api.allow_graphql_schema_introspection);
    let text = logs.text();
    for key in [
        "config/redis/addr",
        "config/api/allow-graphql-schema-introspection",
    ] {
        assert!(
            text.lines()
                .any(|line| line.contains("ERROR") && line.contains(key)),
            "no error names {key}:\n{text}"
        );
    }
    assert!(text.contains("the previous settings of config/redis stay in effect"));
    assert!(!text.contains("secret-never-logged"), "{text}");

    // Fixed, the values take effect.
    put_global(
        &etcd,
        &[
            ("config/redis/addr", "127.0.0.1:8111"),
            ("config/api/allow-graphql-schema-introspection", "true"),
        ],
    )
    .await;
    until(&live, "the fixed values", |config| {
        config.api.allow_graphql_schema_introspection
            && config.redis.addr.as_ref().map(|addr| addr.port) == Some(8111)
    })
    .await;

    // Deleting a registry removes it.
    etcd.delete_prefix("config/docker/registry/cr.live.test", Scope::Global)
        .await
        .expect("delete");
    put_docker_registry(&etcd, "cr.other.test").await;
    until(&live, "the registry's removal", |config| {
        !config.docker.registries.contains_key("cr.live.test")
            && config.docker.registries.contains_key("cr.other.test")
    })
    .await;

    stop.cancel();
    following.await.expect("the watcher ends");
}

/// An etcd of this test's own, on free ports, that can be stopped and started again over the same
/// data directory.
struct PrivateEtcd {
    data: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

impl PrivateEtcd {
    fn start() -> PrivateEtcd {
        let mut etcd = PrivateEtcd {
            data: tempfile::tempdir().expect("tempdir"),
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
        };
        etcd.resume();
        etcd
    }

    fn resume(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new("etcd")
            .arg("--data-dir")
            .arg(self.data.path())
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("default={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd (the halfstack's binary) starts");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn config(&self) -> EtcdConfig {
        EtcdConfig {
            namespace: "live".to_owned(),
            addr: HostPort::new("127.0.0.1", self.client_port),
            addrs: Vec::new(),
            user: String::new(),
            password: String::new(),
        }
    }

    async fn store(&self) -> EtcdStore {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match EtcdStore::connect(
                EtcdTarget::from_config(&self.config()),
                ScopePrefixes::default(),
            )
            .await
            {
                Ok(store) => return store,
                Err(error) => assert!(Instant::now() < deadline, "private etcd: {error}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PrivateEtcd {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn the_watch_resumes_after_etcd_restarts_and_misses_nothing() {
    let mut private = PrivateEtcd::start();
    let etcd = private.store().await;
    etcd.put("config/redis/addr", "127.0.0.1:8110", Scope::Global)
        .await
        .expect("put");
    let (live, stop, following) = follow(&etcd).await;
    put_docker_registry(&etcd, "before.test").await;
    until(&live, "the first registry", |config| {
        config.docker.registries.contains_key("before.test")
    })
    .await;

    // etcd goes away and comes back; a change made right after it is back, before the watcher
    // has opened its watch again, is read all the same.
    private.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    private.resume();
    let writer = private.store().await;
    put_docker_registry(&writer, "after.test").await;
    until(&live, "the registry added after the restart", |config| {
        config.docker.registries.contains_key("after.test")
    })
    .await;

    // And the reopened watch follows later changes.
    writer
        .put(
            "config/api/allow-openapi-schema-introspection",
            "yes",
            Scope::Global,
        )
        .await
        .expect("put");
    until(&live, "a change after the watch reopened", |config| {
        config.api.allow_openapi_schema_introspection
    })
    .await;

    stop.cancel();
    following.await.expect("the watcher ends");
}
