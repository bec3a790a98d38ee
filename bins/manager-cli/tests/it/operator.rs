//! The operator's commands: `doctor` on a healthy node and with its Redis stopped, `redis ping`,
//! `clear-history` (counted, then done), the offline API documents, `generate-api-keypair`,
//! completions, man pages, `start-server` without a server binary beside it, and the `--json` shapes of the
//! list, get and check commands. Each test has a database, an etcd namespace and a Redis of its
//! own on the halfstack; the halfstack's registry stands for a configured registry.

use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::{manager_cli, manager_toml_dir, text};
use bai_db_models::testing::{INSTALL_GUIDE_FIXTURES, TestDatabase};
use bai_etcd_store::Scope;
use bai_etcd_store::testing::TestNamespace;
use bai_redis::testing::PrivateRedis;
use serde_json::Value;

/// The halfstack's registry, as `config/docker/registry/{quoted name}` names it.
const REGISTRY_KEY: &str = "config/docker/registry/127.0.0.1%3A8130";
const REGISTRY_URL: &str = "http://127.0.0.1:8130";

/// Sessions of the install guide's user: two terminated long ago (one with two kernels), one
/// terminated an hour ago, one running; error logs of long ago and of now.
const HISTORY: &str = r#"{
  "scaling_groups": [{"name": "history", "driver": "static", "scheduler": "fifo"}],
  "sessions": [
    {"id": "0ad00000-0000-4000-8000-000000000001", "name": "old1", "status": "TERMINATED",
     "scaling_group_name": "history", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "dfa9da54-4b28-432f-be29-c0d680c7a412", "access_key": "AKIANABBDUSEREXAMPLE",
     "occupying_slots": {}, "requested_slots": {},
     "created_at": "2020-01-01T00:00:00+00:00", "terminated_at": "2020-01-02T00:00:00+00:00"},
    {"id": "0ad00000-0000-4000-8000-000000000002", "name": "old2", "status": "CANCELLED",
     "scaling_group_name": "history", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "dfa9da54-4b28-432f-be29-c0d680c7a412", "access_key": "AKIANABBDUSEREXAMPLE",
     "occupying_slots": {}, "requested_slots": {},
     "created_at": "2021-01-01T00:00:00+00:00", "terminated_at": "2021-01-01T00:10:00+00:00"},
    {"id": "0ad00000-0000-4000-8000-000000000003", "name": "recent", "status": "TERMINATED",
     "scaling_group_name": "history", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "dfa9da54-4b28-432f-be29-c0d680c7a412", "access_key": "AKIANABBDUSEREXAMPLE",
     "occupying_slots": {}, "requested_slots": {},
     "terminated_at": "RECENT"},
    {"id": "0ad00000-0000-4000-8000-000000000004", "name": "running", "status": "RUNNING",
     "scaling_group_name": "history", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "dfa9da54-4b28-432f-be29-c0d680c7a412", "access_key": "AKIANABBDUSEREXAMPLE",
     "occupying_slots": {}, "requested_slots": {}}
  ],
  "kernels": [
    {"id": "0ae00000-0000-4000-8000-000000000001",
     "session_id": "0ad00000-0000-4000-8000-000000000001", "status": "TERMINATED",
     "scaling_group": "history", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "dfa9da54-4b28-432f-be29-c0d680c7a412", "access_key": "AKIANABBDUSEREXAMPLE",
     "occupied_slots": {}, "repl_in_port": 2000, "repl_out_port": 2001,
     "stdin_port": 2002, "stdout_port": 2003, "terminated_at": "2020-01-02T00:00:00+00:00"},
    {"id": "0ae00000-0000-4000-8000-000000000002",
     "session_id": "0ad00000-0000-4000-8000-000000000001", "status": "TERMINATED",
     "cluster_role": "sub", "cluster_idx": 1, "local_rank": 1,
     "scaling_group": "history", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "dfa9da54-4b28-432f-be29-c0d680c7a412", "access_key": "AKIANABBDUSEREXAMPLE",
     "occupied_slots": {}, "repl_in_port": 2000, "repl_out_port": 2001,
     "stdin_port": 2002, "stdout_port": 2003, "terminated_at": "2020-01-02T00:00:00+00:00"},
    {"id": "0ae00000-0000-4000-8000-000000000003",
     "session_id": "0ad00000-0000-4000-8000-000000000003", "status": "TERMINATED",
     "scaling_group": "history", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "dfa9da54-4b28-432f-be29-c0d680c7a412", "access_key": "AKIANABBDUSEREXAMPLE",
     "occupied_slots": {}, "repl_in_port": 2000, "repl_out_port": 2001,
     "stdin_port": 2002, "stdout_port": 2003},
    {"id": "0ae00000-0000-4000-8000-000000000004",
     "session_id": "0ad00000-0000-4000-8000-000000000004", "status": "RUNNING",
     "scaling_group": "history", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "dfa9da54-4b28-432f-be29-c0d680c7a412", "access_key": "AKIANABBDUSEREXAMPLE",
     "occupied_slots": {}, "repl_in_port": 2000, "repl_out_port": 2001,
     "stdin_port": 2002, "stdout_port": 2003}
  ],
  "error_logs": [
    {"id": "0af00000-0000-4000-8000-000000000001", "created_at": "2020-01-01T00:00:00+00:00",
     "severity": "error", "source": "manager", "message": "old"},
    {"id": "0af00000-0000-4000-8000-000000000002", "severity": "error", "source": "manager",
     "message": "new"}
  ]
}"#;

/// A database, an etcd namespace (its `config/redis` at a Redis of the test's own, the halfstack's
/// registry configured) and a manager.toml with an RPC keypair, in a directory of its own.
struct Node {
    _db: TestDatabase,
    redis: Option<PrivateRedis>,
    redis_addr: String,
    _etcd: TestNamespace,
    dir: tempfile::TempDir,
}

impl Node {
    async fn new(label: &str, fixtures: &[(&str, &str)]) -> Node {
        let db = TestDatabase::with_fixtures(label, fixtures).await;
        let etcd = TestNamespace::new(label);
        let redis = PrivateRedis::start();
        let store = etcd.store().await;
        store
            .put("config/redis/addr", &redis.addr(), Scope::Global)
            .await
            .expect("put config/redis/addr");
        store
            .put(REGISTRY_KEY, REGISTRY_URL, Scope::Global)
            .await
            .expect("put the registry");
        store
            .put(&format!("{REGISTRY_KEY}/type"), "docker", Scope::Global)
            .await
            .expect("put the registry's type");
        let dir = manager_toml_dir(&db, &etcd);
        std::fs::create_dir_all(dir.path().join("fixtures/manager")).expect("mkdir");
        let keypair = manager_cli(
            dir.path(),
            &["generate-rpc-keypair", "fixtures/manager", "manager"],
        );
        assert!(keypair.status.success(), "{}", text(&keypair.stderr));
        Node {
            _db: db,
            redis_addr: redis.addr(),
            redis: Some(redis),
            _etcd: etcd,
            dir,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        manager_cli(self.dir.path(), args)
    }

    /// Runs ARGS, asserts success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?} failed: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    fn json(&self, args: &[&str]) -> Value {
        let stdout = self.ok(args);
        serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{args:?}: {error}: {stdout}"))
    }
}

fn checks(report: &Value) -> Vec<(&str, bool, &str)> {
    report
        .as_array()
        .expect("an array")
        .iter()
        .map(|check| {
            (
                check["check"].as_str().expect("check"),
                check["ok"].as_bool().expect("ok"),
                check["detail"].as_str().expect("detail"),
            )
        })
        .collect()
}

#[tokio::test]
async fn doctor_passes_every_check_on_a_healthy_node() {
    let node = Node::new("doctor-healthy", &[]).await;
    let lines = node.ok(&["doctor"]);
    for name in [
        "config",
        "rpc-keypair",
        "etcd",
        "database",
        "schema",
        "redis",
        "registry 127.0.0.1:8130",
        "agents",
        "clock",
    ] {
        let line = lines
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in:\n{lines}"));
        assert!(line.contains(" ok "), "{line}");
    }
    let report = node.json(&["doctor", "--json"]);
    let checks = checks(&report);
    assert_eq!(checks.len(), 9, "{report:#}");
    assert!(checks.iter().all(|(_, ok, _)| *ok), "{report:#}");
    let redis = checks.iter().find(|(name, ..)| *name == "redis").unwrap();
    assert!(redis.2.contains(&node.redis_addr), "{}", redis.2);
    let schema = checks.iter().find(|(name, ..)| *name == "schema").unwrap();
    assert!(schema.2.contains("alembic_version"), "{}", schema.2);
}

#[tokio::test]
async fn doctor_with_redis_stopped_fails_the_redis_line_with_its_address_within_5_s() {
    let mut node = Node::new("doctor-no-redis", &[]).await;
    drop(node.redis.take());
    let started = Instant::now();
    let output = node.run(&["doctor"]);
    let elapsed = started.elapsed();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    let stdout = text(&output.stdout);
    let redis = stdout
        .lines()
        .find(|line| line.starts_with("redis"))
        .unwrap_or_else(|| panic!("no redis line in:\n{stdout}"));
    assert!(redis.contains("FAIL"), "{redis}");
    assert!(redis.contains(&node.redis_addr), "{redis}");
    for other in ["config", "etcd", "database", "schema", "clock"] {
        let line = stdout.lines().find(|line| line.starts_with(other)).unwrap();
        assert!(line.contains(" ok "), "{line}");
    }
    let output = node.run(&["doctor", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let failed: Vec<&str> = checks(&report)
        .into_iter()
        .filter(|(_, ok, _)| !ok)
        .map(|(name, ..)| name)
        .collect();
    assert_eq!(failed, ["redis"], "{report:#}");
}

#[tokio::test]
async fn redis_ping_names_the_address_and_times_each_database() {
    let mut node = Node::new("redis-ping", &[]).await;
    let report = node.json(&["redis", "ping", "--json"]);
    assert_eq!(report["address"], format!("Redis {}", node.redis_addr));
    assert_eq!(report["ok"], true);
    let dbs: Vec<u64> = report["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|db| {
            assert!(db["round_trip_ms"].as_f64().unwrap() >= 0.0, "{db}");
            db["db"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(dbs, [0, 2, 3, 4]);
    drop(node.redis.take());
    let output = node.run(&["redis", "ping", "--timeout", "1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stdout).contains("FAIL"),
        "{}",
        text(&output.stdout)
    );
}

#[tokio::test]
async fn clear_history_counts_then_deletes_what_is_older_than_the_retention() {
    let recent = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let history = HISTORY.replace("RECENT", &recent);
    let mut fixtures = INSTALL_GUIDE_FIXTURES.to_vec();
    fixtures.push(("history.json", &history));
    let node = Node::new("clear-history", &fixtures).await;
    let expected = |dry_run: bool| {
        serde_json::json!({
            "dry_run": dry_run, "sessions": 2, "kernels": 2, "error_logs": 1, "kept_for_routings": 0,
        })
    };
    let counted = node.json(&["clear-history", "-r", "1d", "--dry-run", "--json"]);
    for (key, value) in expected(true).as_object().unwrap() {
        assert_eq!(&counted[key], value, "{key}: {counted:#}");
    }
    // Counting changed nothing: the same counts again, then the deletion finds them.
    let again = node.json(&["clear-history", "-r", "1d", "--dry-run", "--json"]);
    assert_eq!(again["sessions"], 2);
    let deleted = node.json(&["clear-history", "-r", "1d", "--json"]);
    for (key, value) in expected(false).as_object().unwrap() {
        assert_eq!(&deleted[key], value, "{key}: {deleted:#}");
    }
    let after = node.json(&["clear-history", "-r", "1d", "--dry-run", "--json"]);
    assert_eq!(after["sessions"], 0);
    assert_eq!(after["kernels"], 0);
    assert_eq!(after["error_logs"], 0);
    // A retention of a minute reaches the session terminated an hour ago, not the running one.
    let minute = node.json(&["clear-history", "-r", "1m", "--dry-run", "--json"]);
    assert_eq!(minute["sessions"], 1);
    assert_eq!(minute["kernels"], 1);
    let printed = node.ok(&["clear-history", "-r", "1m"]);
    assert!(
        printed.starts_with("Deleted 1 sessions, 1 kernels and 0 error logs older than "),
        "{printed}"
    );
}

#[tokio::test]
async fn list_get_and_check_commands_print_stable_json() {
    let node = Node::new("json-shapes", &INSTALL_GUIDE_FIXTURES).await;
    let shown = node.json(&["config", "show", "--json"]);
    assert!(
        shown["source"].as_str().unwrap().ends_with("/manager.toml"),
        "{shown:#}"
    );
    assert_eq!(shown["config"]["db"]["password"], "********");
    let checked = node.json(&["config", "check", "--json"]);
    assert_eq!(checked["ok"], true, "{checked:#}");
    assert_eq!(checked["problems"], serde_json::json!([]));
    let etcd = node.json(&["etcd", "check", "--json"]);
    assert_eq!(etcd["ok"], true, "{etcd:#}");
    assert!(etcd["errors"].as_array().unwrap().is_empty());
    assert!(etcd["warnings"].is_array());
    let got = node.json(&["etcd", "get", "--json", REGISTRY_KEY]);
    assert_eq!(
        got,
        serde_json::json!({"key": REGISTRY_KEY, "value": REGISTRY_URL})
    );
    let missing = node.run(&["etcd", "get", "--json", "config/nothing"]);
    assert_eq!(missing.status.code(), Some(1));
    let missing: Value = serde_json::from_slice(&missing.stdout).expect("JSON");
    assert_eq!(missing["value"], Value::Null);
    let schema = node.json(&["schema", "show", "--json"]);
    assert_eq!(schema["state"], "managed");
    assert!(schema["pending"].as_array().unwrap().is_empty());
    assert!(schema["alembic_revision"].is_string());
    assert_eq!(
        node.json(&["image", "list", "--json"]),
        serde_json::json!([])
    );
    assert_eq!(
        node.json(&["agent", "list", "--json"]),
        serde_json::json!([])
    );
}

#[test]
fn dump_openapi_is_json_with_the_paths_of_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = manager_cli(dir.path(), &["api", "dump-openapi"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let document: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().expect("paths");
    assert!(paths.contains_key("/session"), "{:?}", paths.keys());
    assert!(paths.contains_key("/spec/openapi/spec.json"));
    let file = dir.path().join("openapi.json");
    let written = manager_cli(dir.path(), &["api", "dump-openapi", "-o", "openapi.json"]);
    assert!(written.status.success());
    assert_eq!(std::fs::read(file).unwrap(), output.stdout);
}

#[test]
fn dump_gql_schema_and_gql_show_print_the_sdl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dumped = manager_cli(dir.path(), &["api", "dump-gql-schema"]);
    assert!(dumped.status.success(), "{}", text(&dumped.stderr));
    let sdl = text(&dumped.stdout);
    assert!(sdl.contains("type Query {"), "{sdl}");
    assert!(sdl.contains("type Mutation {"));
    let shown = manager_cli(dir.path(), &["gql", "show"]);
    assert_eq!(text(&shown.stdout), sdl);
}

#[test]
fn generate_api_keypair_prints_the_reference_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = manager_cli(dir.path(), &["generate-api-keypair"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let access = lines[0]
        .strip_prefix("Access Key: ")
        .and_then(|rest| rest.strip_suffix(" (20 bytes)"))
        .unwrap_or_else(|| panic!("{}", lines[0]));
    assert!(access.starts_with("AKIA"));
    assert!(
        access[4..]
            .chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)),
        "{access}"
    );
    let secret = lines[1]
        .strip_prefix("Secret Key: ")
        .and_then(|rest| rest.strip_suffix(" (40 bytes)"))
        .unwrap_or_else(|| panic!("{}", lines[1]));
    assert_eq!(secret.len(), 40);
    assert!(
        secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{secret}"
    );
    let json = manager_cli(dir.path(), &["generate-api-keypair", "--json"]);
    let pair: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(pair["access_key"].as_str().unwrap().len(), 20);
    assert_eq!(pair["secret_key"].as_str().unwrap().len(), 40);
    assert_ne!(pair["access_key"].as_str().unwrap(), access);
}

#[test]
fn completions_for_bash_cover_the_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = manager_cli(dir.path(), &["completions", "bash"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let script = text(&output.stdout);
    assert!(script.contains("_manager__cli()"), "{script}");
    for command in ["doctor", "clear-history", "dump-openapi"] {
        assert!(script.contains(command), "{command}");
    }
}

#[test]
fn man_pages_are_written_one_per_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pages = dir.path().join("man");
    let output = manager_cli(
        dir.path(),
        &["man-pages", pages.to_str().expect("UTF-8 path")],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    for page in [
        "manager-cli.1",
        "manager-cli-doctor.1",
        "manager-cli-etcd-get.1",
    ] {
        let roff = std::fs::read_to_string(pages.join(page)).expect(page);
        assert!(roff.starts_with(".ie"), "{page}: {roff}");
    }
    assert!(!pages.join("manager-cli-help.1").exists());
}

#[test]
fn start_server_without_a_server_binary_beside_it_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("manager-cli");
    std::fs::copy(env!("CARGO_BIN_EXE_manager-cli"), &copy).expect("copy manager-cli");
    let output = std::process::Command::new(&copy)
        .arg("start-server")
        .current_dir(dir.path())
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("no manager-server binary next to manager-cli"),
        "{stderr}"
    );
    assert!(stderr.contains(&dir.path().join("manager-server").display().to_string()));
}
