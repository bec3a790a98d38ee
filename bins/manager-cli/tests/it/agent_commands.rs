//! `manager-cli agent list/info/ping/hwinfo` against the halfstack's real PostgreSQL (a database
//! of each test's own, agents loaded as a fixture), etcd (a namespace of each test's own, whose
//! `config/redis` points at the test's own Redis) and a private Redis holding when agents were
//! last seen; `ping` and `hwinfo` also against the real agent (`.venvs/agent`).

use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::{manager_cli, manager_toml_dir, text};
use bai_agent_rpc::testing::{MANAGER_UP_KEY, RealAgent, free_port};
use bai_db_models::fixtures::{self, FixtureFile};
use bai_db_models::testing::TestDatabase;
use bai_etcd_store::Scope;
use bai_etcd_store::testing::TestNamespace;
use bai_redis::LiveDb;
use bai_redis::testing::PrivateRedis;
use bai_rpc_keys::CurveKeypair;
use serde_json::{Value, json};

/// The resource group of [`agents_fixture`] (a file of its own: `json!` would sort `agents` first, and
/// populate loads tables in the order the file names them).
fn resource_group_fixture() -> String {
    json!({
        "scaling_groups": [{"name": "default", "driver": "static", "scheduler": "fifo"}],
    })
    .to_string()
}

/// Three agents of the resource group `default`: one alive (seen 5 s ago), one lost, one
/// terminated with slots of other kinds.
fn agents_fixture() -> String {
    json!({
        "agents": [
            {
                "id": "i-beta", "status": "LOST", "region": "local",
                "status_changed": "2024-05-02T11:00:00+00:00",
                "available_slots": {"cpu": "8", "mem": "34359738368"},
                "occupied_slots": {},
                "addr": "tcp://10.0.0.2:6011", "version": "24.03.10", "architecture": "aarch64",
                "first_contact": "2024-05-01T10:00:00+00:00",
                "lost_at": "2024-05-02T11:00:00+00:00",
            },
            {
                "id": "i-alpha", "status": "ALIVE", "region": "local", "schedulable": true,
                "status_changed": "2024-05-01T10:00:00+00:00",
                "available_slots": {"cpu": "4", "mem": "17179869184", "cuda.shares": "2.5"},
                "occupied_slots": {"cpu": "1", "mem": "1073741824"},
                "addr": "tcp://10.0.0.1:6011", "public_host": "agent1.example.com",
                "public_key": "Rt0Q!sJ3vl5aOMqbH8zNGQyr)FJg[PDG1iU&Ec#A",
                "version": "24.03.11", "architecture": "x86_64",
                "compute_plugins": {"cuda": {"version": "12.2"}},
                "auto_terminate_abusing_kernel": true,
                "first_contact": "2024-05-01T10:00:00+00:00",
            },
            {
                "id": "i-gamma", "status": "TERMINATED", "region": "local", "schedulable": false,
                "available_slots": {"cpu": "2", "mem": "1536"},
                "occupied_slots": {},
                "addr": "tcp://10.0.0.3:6011", "version": "24.03.11", "architecture": "x86_64",
            },
        ],
    })
    .to_string()
}

/// A database, an etcd namespace and a Redis of the test's own, and a manager.toml pointing at
/// them.
struct Cluster {
    db: TestDatabase,
    redis: PrivateRedis,
    _etcd: TestNamespace,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn new(label: &str) -> Cluster {
        let db = TestDatabase::with_schema(label).await;
        let etcd = TestNamespace::new(label);
        let redis = PrivateRedis::start();
        etcd.store()
            .await
            .put("config/redis/addr", &redis.addr(), Scope::Global)
            .await
            .expect("put config/redis/addr");
        let dir = manager_toml_dir(&db, &etcd);
        Cluster {
            db,
            redis,
            _etcd: etcd,
            dir,
        }
    }

    /// A cluster with the three agents of [`agents_fixture`], `i-alpha` seen 5 s ago.
    async fn with_agents(label: &str) -> Cluster {
        let cluster = Cluster::new(label).await;
        for (name, text) in [
            ("resource-group.json", resource_group_fixture()),
            ("agents.json", agents_fixture()),
        ] {
            let file = FixtureFile::parse(name, &text).expect("fixture");
            fixtures::populate(&cluster.db.connection, &file)
                .await
                .unwrap_or_else(|error| panic!("loading {name}: {error}"));
        }
        let live = LiveDb::connect(&cluster.redis.config())
            .await
            .expect("connect to the private Redis");
        live.record_agent_seen("i-alpha", unix_now() - 5.0)
            .await
            .expect("record agent seen");
        cluster
    }

    fn run(&self, args: &[&str]) -> Output {
        manager_cli(self.dir.path(), &[&["agent"], args].concat())
    }

    /// Runs `agent ARGS`, asserts success and nothing on stderr, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "agent {args:?} failed: {}",
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    /// Runs `agent ARGS`, asserts exit code `code` and nothing on stdout, returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(code),
            "agent {args:?}: stdout {} stderr {}",
            text(&output.stdout),
            text(&output.stderr)
        );
        assert_eq!(text(&output.stdout), "", "agent {args:?}");
        text(&output.stderr)
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// The cells of a printed table (columns are two or more spaces apart; no cell holds two spaces).
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|line| {
            line.split("  ")
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// Asserts that `cell` says a few seconds ago (the test recorded 5 s before running the command).
fn assert_seconds_ago(cell: &str) {
    let seconds: u64 = cell
        .strip_suffix("s ago")
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("not `Ns ago`: {cell:?}"));
    assert!((5..=120).contains(&seconds), "{cell}");
}

const HEADER: [&str; 9] = [
    "ID",
    "STATUS",
    "RESOURCE GROUP",
    "ADDR",
    "AVAILABLE",
    "OCCUPIED",
    "VERSION",
    "LAST SEEN",
    "LOST AT",
];

/// The list's row of each fixture agent, `LAST SEEN` of `i-alpha` left out (it is checked apart).
fn expected_row(id: &str) -> Vec<&'static str> {
    match id {
        "i-alpha" => vec![
            "i-alpha",
            "ALIVE",
            "default",
            "tcp://10.0.0.1:6011",
            "cpu=4 cuda.shares=2.5 mem=16G",
            "cpu=1 mem=1G",
            "24.03.11",
            "-",
        ],
        "i-beta" => vec![
            "i-beta",
            "LOST",
            "default",
            "tcp://10.0.0.2:6011",
            "cpu=8 mem=32G",
            "-",
            "24.03.10",
            "-",
            "2024-05-02 11:00:00+00:00",
        ],
        "i-gamma" => vec![
            "i-gamma",
            "TERMINATED",
            "default",
            "tcp://10.0.0.3:6011",
            "cpu=2 mem=1536",
            "-",
            "24.03.11",
            "-",
            "-",
        ],
        other => panic!("no fixture agent {other}"),
    }
}

/// Asserts that `listed` is the table of the fixture agents `ids`, in that order.
fn assert_listed(listed: &str, ids: &[&str]) {
    let mut rows = cells(listed);
    assert_eq!(rows.remove(0), HEADER, "{listed}");
    let mut listed_ids = Vec::new();
    for mut row in rows {
        if row[0] == "i-alpha" {
            assert_seconds_ago(&row.remove(7));
        }
        listed_ids.push(row[0].clone());
        assert_eq!(row, expected_row(&row[0]), "{listed}");
    }
    assert_eq!(listed_ids, ids, "{listed}");
}

#[tokio::test]
async fn list_shows_every_agent_sorted_by_id() {
    let cluster = Cluster::with_agents("cli_agent_list").await;
    let listed = cluster.ok(&["list"]);
    assert_listed(&listed, &["i-alpha", "i-beta", "i-gamma"]);
}

#[tokio::test]
async fn list_filters_by_status_in_any_case() {
    let cluster = Cluster::with_agents("cli_agent_status").await;
    assert_listed(&cluster.ok(&["list", "--status", "LOST"]), &["i-beta"]);
    assert_listed(
        &cluster.ok(&["list", "--status", "lost,Terminated"]),
        &["i-beta", "i-gamma"],
    );
    assert_listed(
        &cluster.ok(&["list", "-s", "alive", "--status", "LOST"]),
        &["i-alpha", "i-beta"],
    );
    assert_eq!(
        cluster.ok(&["list", "--status", "RESTARTING"]),
        "There are no agents with status RESTARTING.\n"
    );
}

#[tokio::test]
async fn list_refuses_an_unknown_status() {
    let cluster = Cluster::with_agents("cli_agent_badstatus").await;
    let stderr = cluster.fails(&["list", "--status", "LOST,dead"], 2);
    assert!(
        stderr.contains("unknown agent status \"dead\"")
            && stderr.contains("ALIVE, LOST, RESTARTING, TERMINATED"),
        "{stderr}"
    );
}

#[tokio::test]
async fn list_without_agents_says_so() {
    let cluster = Cluster::new("cli_agent_none").await;
    assert_eq!(cluster.ok(&["list"]), "There are no agents.\n");
    assert_eq!(cluster.ok(&["list", "--json"]), "[]\n");
}

#[tokio::test]
async fn list_json_has_every_column_and_last_seen() {
    let cluster = Cluster::with_agents("cli_agent_json").await;
    let listed: Value = serde_json::from_str(&cluster.ok(&["list", "--json"])).expect("JSON");
    let rows = listed.as_array().expect("an array");
    let ids: Vec<&str> = rows
        .iter()
        .map(|row| row["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["i-alpha", "i-beta", "i-gamma"]);
    let mut alpha = rows[0].clone();
    let seen = alpha["last_seen"].take().as_f64().expect("last_seen");
    assert!((unix_now() - seen - 5.0).abs() < 120.0, "{seen}");
    assert_eq!(
        alpha,
        json!({
            "id": "i-alpha", "status": "ALIVE",
            "status_changed": "2024-05-01T10:00:00+00:00",
            "region": "local", "scaling_group": "default", "schedulable": true,
            "available_slots": {"cpu": "4", "cuda.shares": "2.5", "mem": "17179869184"},
            "occupied_slots": {"cpu": "1", "mem": "1073741824"},
            "addr": "tcp://10.0.0.1:6011", "public_host": "agent1.example.com",
            "public_key": "Rt0Q!sJ3vl5aOMqbH8zNGQyr)FJg[PDG1iU&Ec#A",
            "first_contact": "2024-05-01T10:00:00+00:00", "lost_at": null,
            "version": "24.03.11", "architecture": "x86_64",
            "compute_plugins": {"cuda": {"version": "12.2"}},
            "auto_terminate_abusing_kernel": true,
            "last_seen": null,
        })
    );
    assert_eq!(rows[1]["last_seen"], Value::Null);
    assert_eq!(rows[1]["lost_at"], "2024-05-02T11:00:00+00:00");
    let lost: Value =
        serde_json::from_str(&cluster.ok(&["list", "--json", "-s", "LOST"])).expect("JSON");
    assert_eq!(lost, json!([rows[1]]));
}

#[tokio::test]
async fn info_shows_every_column_and_last_seen() {
    let cluster = Cluster::with_agents("cli_agent_info").await;
    let mut lines = cells(&cluster.ok(&["info", "i-alpha"]));
    let last_seen = lines.pop().expect("a last line");
    assert_eq!(last_seen[0], "Last seen:");
    let (ago, at) = last_seen[1].split_once(" (").expect("`N s ago (TIME)`");
    assert_seconds_ago(ago);
    assert!(at.ends_with("+00:00)"), "{at}");
    let expected = [
        ["ID:", "i-alpha"],
        ["Status:", "ALIVE"],
        ["Status changed:", "2024-05-01 10:00:00+00:00"],
        ["Region:", "local"],
        ["Resource group:", "default"],
        ["Schedulable:", "yes"],
        ["Available slots:", "cpu=4 cuda.shares=2.5 mem=16G"],
        ["Occupied slots:", "cpu=1 mem=1G"],
        ["Address:", "tcp://10.0.0.1:6011"],
        ["Public host:", "agent1.example.com"],
        ["Public key:", "Rt0Q!sJ3vl5aOMqbH8zNGQyr)FJg[PDG1iU&Ec#A"],
        ["First contact:", "2024-05-01 10:00:00+00:00"],
        ["Lost at:", "-"],
        ["Version:", "24.03.11"],
        ["Architecture:", "x86_64"],
        ["Compute plugins:", r#"{"cuda":{"version":"12.2"}}"#],
        ["Auto-terminate abusing kernel:", "yes"],
    ];
    assert_eq!(lines, expected);

    let beta = cells(&cluster.ok(&["info", "i-beta"]));
    assert!(beta.contains(&vec!["Status:".to_owned(), "LOST".to_owned()]));
    assert!(beta.contains(&vec![
        "Lost at:".to_owned(),
        "2024-05-02 11:00:00+00:00".to_owned()
    ]));
    assert!(beta.contains(&vec!["Occupied slots:".to_owned(), "-".to_owned()]));
    assert_eq!(
        beta.last(),
        Some(&vec!["Last seen:".to_owned(), "-".to_owned()])
    );

    let json: Value =
        serde_json::from_str(&cluster.ok(&["info", "i-gamma", "--json"])).expect("JSON");
    assert_eq!(json["status"], "TERMINATED");
    assert_eq!(json["schedulable"], false);
    assert_eq!(json["compute_plugins"], json!({}));
    assert_eq!(json["last_seen"], Value::Null);
}

#[tokio::test]
async fn info_of_an_unknown_agent_fails() {
    let cluster = Cluster::with_agents("cli_agent_unknown").await;
    let stderr = cluster.fails(&["info", "i-nowhere"], 1);
    assert_eq!(stderr, "error: no agent \"i-nowhere\"\n");
}

/// The real agent `id`, registered in the cluster's etcd namespace, with CURVE when given the
/// agent's and the manager's keypairs.
async fn start_real_agent(
    cluster: &Cluster,
    id: &str,
    curve: Option<(&CurveKeypair, &CurveKeypair)>,
) -> RealAgent {
    cluster
        ._etcd
        .store()
        .await
        .put(MANAGER_UP_KEY, "up", Scope::Global)
        .await
        .expect("etcd put");
    match curve {
        Some((agent, manager)) => {
            RealAgent::start_with_curve(&cluster._etcd.name, id, agent, manager)
        }
        None => RealAgent::start(&cluster._etcd.name, id),
    }
}

/// Adds an `agents` row for the agent `id` listening at `addr`, with `public_key` (Z85).
async fn add_agent_row(cluster: &Cluster, id: &str, addr: &str, public_key: Option<String>) {
    let text = json!({
        "agents": [{
            "id": id, "status": "ALIVE", "region": "local", "schedulable": true,
            "available_slots": {"cpu": "4"}, "occupied_slots": {},
            "addr": addr, "version": "24.3.11", "architecture": "x86_64",
            "public_key": public_key,
        }],
    })
    .to_string();
    let file = FixtureFile::parse("agent.json", &text).expect("fixture");
    fixtures::populate(&cluster.db.connection, &file)
        .await
        .expect("loading the agent row");
}

#[tokio::test]
async fn ping_and_hwinfo_reach_the_real_agent_with_the_manager_keypair() {
    let cluster = Cluster::with_agents("cli_agent_ping_real").await;
    // The keypair `[manager] rpc-auth-manager-keypair` names, relative to the test's directory.
    let keys = cluster.dir.path().join("fixtures/manager");
    std::fs::create_dir_all(&keys).expect("mkdir");
    let keypair = CurveKeypair::generate().expect("keypair");
    bai_rpc_keys::write_certificates(&keys, "manager", &keypair, bai_rpc_keys::Overwrite::Refuse)
        .expect("manager certificates");
    let plain = start_real_agent(&cluster, "i-real", None).await;
    add_agent_row(&cluster, "i-real", &plain.addr(), None).await;
    let agent_keypair = CurveKeypair::generate().expect("keypair");
    let curve = start_real_agent(&cluster, "i-curve", Some((&agent_keypair, &keypair))).await;
    add_agent_row(
        &cluster,
        "i-curve",
        &curve.addr(),
        Some(agent_keypair.public_key().to_z85()),
    )
    .await;

    for (id, agent) in [("i-real", &plain), ("i-curve", &curve)] {
        // The agent takes a few seconds to listen.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let pinged = loop {
            let output = cluster.run(&["ping", id, "--timeout", "1"]);
            if output.status.success() {
                break text(&output.stdout);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "agent ping {id} never succeeded: {}; agent log:\n{}",
                text(&output.stderr),
                agent.log()
            );
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        };
        assert!(
            pinged.starts_with(&format!("agent {id}: ping answered in "))
                && pinged.trim_end().ends_with(" ms"),
            "{pinged}"
        );

        for connect_per_call in [false, true] {
            let mut args = vec!["ping", id, "--count", "200", "--in-flight", "16", "--json"];
            if connect_per_call {
                args.push("--connect-per-call");
            }
            let report: Value = serde_json::from_str(&cluster.ok(&args)).expect("JSON");
            assert_ping_report(&report, 200, 16, connect_per_call, id == "i-curve");
        }
        let summary = cluster.ok(&["ping", id, "--count", "20", "--in-flight", "4"]);
        assert!(
            summary.starts_with(&format!(
                "agent {id}: 20 pings, 4 in flight, one connection: "
            )) && summary.trim_end().ends_with(", 0 errors"),
            "{summary}"
        );

        let hwinfo: Value = serde_json::from_str(&cluster.ok(&["hwinfo", id])).expect("JSON");
        // The dummy agent reports no devices.
        assert_eq!(hwinfo, json!({}), "{id}");
    }

    // A wrong agent key in the row: the CURVE handshake fails, and says so.
    let wrong = CurveKeypair::generate().expect("keypair");
    add_agent_row(
        &cluster,
        "i-curve-wrong-key",
        &curve.addr(),
        Some(wrong.public_key().to_z85()),
    )
    .await;
    let stderr = cluster.fails(&["ping", "i-curve-wrong-key", "--timeout", "1"], 1);
    assert!(stderr.contains("CURVE handshake failed"), "{stderr}");
}

/// Asserts that `report` (`agent ping --json`) is of a load of `count` pings that all succeeded.
fn assert_ping_report(
    report: &Value,
    count: u64,
    in_flight: u64,
    connect_per_call: bool,
    curve: bool,
) {
    for (key, expected) in [
        ("count", json!(count)),
        ("in_flight", json!(in_flight)),
        ("connect_per_call", json!(connect_per_call)),
        ("curve", json!(curve)),
        ("ok", json!(count)),
        ("errors", json!(0)),
        ("first_error", Value::Null),
    ] {
        assert_eq!(report[key], expected, "{key} in {report}");
    }
    let number = |key: &str| {
        report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in {report}"))
    };
    assert!(
        number("seconds") > 0.0 && number("per_second") > 0.0,
        "{report}"
    );
    assert!(
        0.0 < number("p50_ms")
            && number("p50_ms") <= number("p99_ms")
            && number("p99_ms") <= number("max_ms"),
        "{report}"
    );
}

#[tokio::test]
async fn ping_fails_clearly_for_unknown_silent_and_curve_agents() {
    let cluster = Cluster::with_agents("cli_agent_ping_errors").await;

    let stderr = cluster.fails(&["ping", "i-nobody"], 1);
    assert!(stderr.contains("no agent \"i-nobody\""), "{stderr}");
    let stderr = cluster.fails(&["hwinfo", "i-nobody"], 1);
    assert!(stderr.contains("no agent \"i-nobody\""), "{stderr}");

    // Nothing listens at the row's address: exit 1 within the timeout, saying so.
    add_agent_row(
        &cluster,
        "i-silent",
        &format!("tcp://127.0.0.1:{}", free_port()),
        None,
    )
    .await;
    let started = std::time::Instant::now();
    let stderr = cluster.fails(&["ping", "i-silent", "--timeout", "1"], 1);
    assert!(
        stderr.contains("agent i-silent") && stderr.contains("did not answer PING within 1s"),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // `i-alpha` has a public key, and this test's directory has no manager keypair.
    let stderr = cluster.fails(&["ping", "i-alpha", "--timeout", "1"], 1);
    assert!(
        stderr.contains("agent i-alpha requires CURVE")
            && stderr.contains("rpc-auth-manager-keypair"),
        "{stderr}"
    );

    let stderr = cluster.fails(
        &["ping", "i-alpha", "--connect-per-call", "--timeout", "1"],
        1,
    );
    assert!(stderr.contains("agent i-alpha requires CURVE"), "{stderr}");

    // A load whose pings all fail still reports, and exits 1 with the first error.
    let output = cluster.run(&[
        "ping",
        "i-silent",
        "--count",
        "3",
        "--in-flight",
        "3",
        "--connect-per-call",
        "--timeout",
        "1",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let report: Value = serde_json::from_str(&text(&output.stdout)).expect("JSON");
    assert_eq!(
        (&report["ok"], &report["errors"], &report["p99_ms"]),
        (&json!(0), &json!(3), &Value::Null),
        "{report}"
    );
    let first_error = report["first_error"].as_str().expect("first_error");
    assert!(
        first_error.contains("did not answer PING within 1s"),
        "{report}"
    );
    assert!(
        text(&output.stderr).contains(first_error),
        "{}",
        text(&output.stderr)
    );

    let stderr = cluster.fails(&["ping", "i-alpha", "--timeout", "0"], 2);
    assert!(stderr.contains("not a number of seconds"), "{stderr}");
    let stderr = cluster.fails(&["ping", "i-alpha", "--count", "0"], 2);
    assert!(
        stderr.contains("--count") && stderr.contains("1..=10000000"),
        "{stderr}"
    );
    let stderr = cluster.fails(&["ping", "i-alpha", "--in-flight", "5000"], 2);
    assert!(
        stderr.contains("--in-flight") && stderr.contains("1..=4096"),
        "{stderr}"
    );
}
