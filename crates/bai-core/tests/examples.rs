//! The embedding examples, run as the programs they are against a test cluster on the halfstack
//! (a fresh database and etcd namespace): `embed_api` serves the manager API and its own route on
//! its own port, `list_users` prints the example users and keypairs. `cargo test` builds the
//! examples next to this test's binary.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bai_api::testing::{SUPERADMIN, TestCluster, signed_request};
use http::Method;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// `target/<profile>/examples/<name>`, beside `target/<profile>/deps/<this test>`.
fn example(name: &str) -> PathBuf {
    let test = std::env::current_exe().expect("the test binary's path");
    let profile = test
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let path = profile.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test -p bai-core` builds it",
        path.display()
    );
    path
}

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("crates/bai-core is two levels below the root")
}

fn write_manager_toml(cluster: &TestCluster, service_addr: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("a temporary file");
    std::fs::write(file.path(), cluster.manager_toml(service_addr)).expect("writing manager.toml");
    file
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test]
async fn embed_api_serves_the_manager_api_next_to_its_own_route() {
    let cluster = TestCluster::start("core_embed").await;
    let port = free_port();
    let manager_toml = write_manager_toml(&cluster, &format!("127.0.0.1:{port}"));
    let mut child = Command::new(example("embed_api"))
        .arg(manager_toml.path())
        .arg(format!("127.0.0.1:{port}"))
        .current_dir(workspace_root())
        .stdout(Stdio::null())
        .spawn()
        .expect("starting the embed_api example");

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    let version = loop {
        match client.get(format!("{base}/")).send().await {
            Ok(response) => break response,
            Err(_) if started.elapsed() < Duration::from_secs(30) => {
                if let Some(status) = child.try_wait().expect("polling the example") {
                    panic!("embed_api exited early: {status}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("embed_api does not answer on {base}: {error}"),
        }
    };
    assert_eq!(version.status(), 200);
    let version: serde_json::Value = version.json().await.expect("JSON");
    assert_eq!(
        version["manager"],
        bai_api::version::COMPATIBLE_MANAGER_VERSION
    );

    let own = client
        .get(format!("{base}/embedder"))
        .send()
        .await
        .expect("GET /embedder");
    assert_eq!(own.status(), 200);
    assert_eq!(
        own.text().await.unwrap(),
        "served by the embedding service\n"
    );

    // Signed as the official client signs it; the Host it was signed for goes along.
    let path = "/auth/test?echo=embedded";
    let signed = signed_request(Method::GET, path, None, &SUPERADMIN);
    let mut request = client.get(format!("{base}{path}"));
    for (name, value) in signed.headers() {
        request = request.header(name, value);
    }
    let answer = request.send().await.expect("GET /auth/test");
    let status = answer.status();
    let answer: serde_json::Value = answer.json().await.expect("JSON");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        serde_json::json!({"authorized": "yes", "echo": "embedded"})
    );

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let status = child.wait().expect("waiting for embed_api");
    assert!(status.success(), "embed_api stopped with {status}");
}

#[tokio::test]
async fn list_users_prints_the_shared_config_and_the_example_accounts() {
    let cluster = TestCluster::start("core_list").await;
    let manager_toml = write_manager_toml(&cluster, "127.0.0.1:8081");
    let output = Command::new(example("list_users"))
        .arg(manager_toml.path())
        .current_dir(workspace_root())
        .output()
        .expect("running the list_users example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "list_users failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let redis = format!("redis: {}", cluster.redis.addr());
    assert!(stdout.contains(&redis), "{stdout}");
    for expected in [
        "admin@lablup.com",
        "user@lablup.com",
        "AKIAIOSFODNN7EXAMPLE",
        "AKIANABBDUSEREXAMPLE",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected} missing in:\n{stdout}"
        );
    }
}
