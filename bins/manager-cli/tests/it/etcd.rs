//! `manager-cli etcd` against the halfstack's real etcd: the install guide's commands, the raw keys
//! they leave (read back with etcd-client, as the reference tooling would read them), and the
//! backup/restore round trip. Every test works in its own namespace and removes it at the end.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etcd_client::{Client, DeleteOptions, GetOptions};

const HALFSTACK_TOML: &str = include_str!("../../../../configs/manager/halfstack.toml");
/// Where configs/manager/halfstack.toml points etcd.
const HALFSTACK_ETCD: &str = "http://127.0.0.1:8120";

/// A fresh etcd namespace with a manager.toml pointing at it; its keys are deleted on drop, also
/// when the test fails.
struct Namespace {
    name: String,
    dir: tempfile::TempDir,
}

impl Namespace {
    fn new(test: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let name = format!("t-{test}-{}-{nanos}", std::process::id());
        // Fail now, with the hint, rather than with a connection error from the binary.
        raw_keys(&name);
        let dir = tempfile::tempdir().expect("tempdir");
        let original = "namespace = \"local\"";
        assert!(HALFSTACK_TOML.contains(original), "halfstack.toml changed");
        let toml = HALFSTACK_TOML.replace(original, &format!("namespace = \"{name}\""));
        std::fs::write(dir.path().join("manager.toml"), toml).expect("write manager.toml");
        Namespace { name, dir }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Every key of the namespace and its value, exactly as stored.
    fn raw(&self) -> BTreeMap<String, String> {
        raw_keys(&self.name)
    }

    fn key(&self, relative: &str) -> String {
        format!("/sorna/{}/{relative}", self.name)
    }

    /// Runs `manager-cli etcd ARGS` and asserts that it succeeded.
    fn etcd_ok(&self, args: &[&str]) -> Output {
        let output = self.etcd(args);
        assert!(
            output.status.success(),
            "etcd {args:?} failed: {}",
            stderr(&output)
        );
        output
    }

    fn etcd(&self, args: &[&str]) -> Output {
        manager_cli_etcd(self.dir(), args, None)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let prefix = format!("/sorna/{}/", self.name);
        // Cleanup must not hide the test's own failure, so its errors are ignored.
        let deleting = async {
            let mut client = Client::connect([HALFSTACK_ETCD], None).await?;
            client
                .delete(prefix, Some(DeleteOptions::new().with_prefix()))
                .await
        };
        let _ = runtime()
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), deleting).await });
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn raw_keys(namespace: &str) -> BTreeMap<String, String> {
    runtime().block_on(async {
        let connecting = Client::connect([HALFSTACK_ETCD], None);
        let reading = async {
            let mut client = connecting.await?;
            let options = GetOptions::new().with_prefix();
            client
                .get(format!("/sorna/{namespace}/"), Some(options))
                .await
        };
        let response = match tokio::time::timeout(Duration::from_secs(5), reading).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => panic!(
                "etcd at {HALFSTACK_ETCD} is not reachable ({error}); start it with: cargo xtask halfstack up"
            ),
            Err(_) => panic!(
                "etcd at {HALFSTACK_ETCD} did not answer in 5 s; start it with: cargo xtask halfstack up"
            ),
        };
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
    })
}

fn manager_cli_etcd(cwd: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_manager-cli"));
    command
        .arg("etcd")
        .args(args)
        .current_dir(cwd)
        .env("HOME", cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The manager.toml of the test decides; a developer's environment must not redirect it.
    for variable in [
        "BACKEND_CONFIG_FILE",
        "BACKEND_NAMESPACE",
        "BACKEND_ETCD_ADDR",
        "BACKEND_ETCD_USER",
        "BACKEND_ETCD_PASSWORD",
    ] {
        command.env_remove(variable);
    }
    let mut child = command.spawn().expect("manager-cli starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("manager-cli runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn pairs(namespace: &Namespace, pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (namespace.key(key), (*value).to_owned()))
        .collect()
}

/// Every `etcd put` of the install guide's "Global configuration" section, in its order.
const INSTALL_GUIDE_PUTS: [(&str, &str); 13] = [
    ("config/redis/addr", "bai-m1:8110"),
    ("config/redis/password", "develove"),
    ("config/docker/image/auto_pull", "tag"),
    (
        "config/docker/registry/cr.backend.ai",
        "https://cr.backend.ai",
    ),
    ("config/docker/registry/cr.backend.ai/type", "harbor2"),
    ("config/docker/registry/cr.backend.ai/project", "stable"),
    ("volumes/_types/group", ""),
    ("volumes/_types/user", ""),
    ("volumes/default_host", "bai-m1:local"),
    ("volumes/proxies/bai-m1/client_api", "http://127.0.0.1:6021"),
    ("volumes/proxies/bai-m1/manager_api", "http://bai-m1:6022"),
    (
        "volumes/proxies/bai-m1/secret",
        "secure-token-to-authenticate-manager-request",
    ),
    ("volumes/proxies/bai-m1/ssl_verify", "false"),
];

#[test]
fn the_install_guide_global_configuration_lands_in_the_reference_layout() {
    let ns = Namespace::new("install-guide");
    let puts = INSTALL_GUIDE_PUTS;
    for (key, value) in puts {
        let output = ns.etcd_ok(&["put", key, value]);
        assert_eq!(stdout(&output), "");
    }
    assert_eq!(ns.raw(), pairs(&ns, &puts));

    let config = ns.etcd_ok(&["get", "--prefix", "config"]);
    assert_eq!(
        stdout(&config),
        r#"{
    "docker": {
        "image": {
            "auto_pull": "tag"
        },
        "registry": {
            "cr.backend.ai": {
                "": "https://cr.backend.ai",
                "project": "stable",
                "type": "harbor2"
            }
        }
    },
    "redis": {
        "addr": "bai-m1:8110",
        "password": "develove"
    }
}
"#
    );
    let volumes = ns.etcd_ok(&["get", "--prefix", "volumes"]);
    assert_eq!(
        stdout(&volumes),
        r#"{
    "_types": {
        "group": "",
        "user": ""
    },
    "default_host": "bai-m1:local",
    "proxies": {
        "bai-m1": {
            "client_api": "http://127.0.0.1:6021",
            "manager_api": "http://bai-m1:6022",
            "secret": "secure-token-to-authenticate-manager-request",
            "ssl_verify": "false"
        }
    }
}
"#
    );
    let addr = ns.etcd_ok(&["get", "config/redis/addr"]);
    assert_eq!(stdout(&addr), "bai-m1:8110\n");
    let empty = ns.etcd_ok(&["get", "volumes/_types/group"]);
    assert_eq!(stdout(&empty), "\n");
}

#[test]
fn put_json_quotes_key_pieces_and_stores_leaves_as_python_str() {
    let ns = Namespace::new("put-json");
    let json = r#"{"docker": {"registry": {"cr.backend.ai:5000": {"": "https://x", "type": "docker"}}},
        "a b/c": {"x": true, "y": null, "z": [1, "two"], "n": 1.0, "empty": {}}}"#;
    std::fs::write(ns.dir().join("config.json"), json).expect("write json");
    let output = ns.etcd_ok(&["put-json", "config", "config.json"]);
    assert_eq!(stdout(&output), "");
    assert_eq!(stderr(&output), "Wrote 6 keys under 'config'.\n");
    assert_eq!(
        ns.raw(),
        pairs(
            &ns,
            &[
                ("config/docker/registry/cr.backend.ai%3A5000", "https://x"),
                ("config/docker/registry/cr.backend.ai%3A5000/type", "docker"),
                ("config/a%20b%2Fc/x", "True"),
                ("config/a%20b%2Fc/y", "None"),
                ("config/a%20b%2Fc/z", "[1, 'two']"),
                ("config/a%20b%2Fc/n", "1.0"),
            ]
        )
    );
    let printed = ns.etcd_ok(&["get", "--prefix", "config"]);
    assert_eq!(
        stdout(&printed),
        r#"{
    "a b/c": {
        "n": "1.0",
        "x": "True",
        "y": "None",
        "z": "[1, 'two']"
    },
    "docker": {
        "registry": {
            "cr.backend.ai:5000": {
                "": "https://x",
                "type": "docker"
            }
        }
    }
}
"#
    );
}

#[test]
fn put_json_reads_stdin_given_as_a_dash() {
    let ns = Namespace::new("put-json-stdin");
    let output = manager_cli_etcd(
        ns.dir(),
        &["put-json", "volumes", "-"],
        Some(r#"{"_types": {"group": ""}, "default_host": "bai-m1:local"}"#),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "Wrote 2 keys under 'volumes'.\n");
    assert_eq!(
        ns.raw(),
        pairs(
            &ns,
            &[
                ("volumes/_types/group", ""),
                ("volumes/default_host", "bai-m1:local"),
            ]
        )
    );
}

#[test]
fn a_backup_restores_every_key_and_value_exactly() {
    let ns = Namespace::new("backup");
    let puts = [
        ("config/redis/addr", "bai-m1:8110"),
        (
            "config/docker/registry/cr.backend.ai",
            "https://cr.backend.ai",
        ),
        ("config/docker/registry/cr.backend.ai/type", "harbor2"),
        ("config/docker/registry/cr.backend.ai%3A5000", "https://x"),
        ("config/docker/registry/cr.backend.ai%3A5000/type", "docker"),
        ("config/a%20b%2Fc/x", "True"),
        (
            "config/plain",
            "with \"quotes\", 'apostrophes', a \\ and\na newline\t",
        ),
        ("config/unicode", "한국어 😀"),
        ("volumes/_types/group", ""),
        ("sgroup/gpu/config/redis/addr", "sgroup:1"),
        ("nodes/agents/i-1/ip", "10.0.0.1"),
    ];
    for (key, value) in puts {
        ns.etcd_ok(&["put", key, value]);
    }
    // More keys than one etcd transaction holds, so the restore takes the multi-transaction path.
    let many: String = (0..300)
        .map(|index| format!("\"k{index:03}\": \"{index}\""))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(ns.dir().join("many.json"), format!("{{{many}}}")).expect("write json");
    ns.etcd_ok(&["put-json", "bulk", "many.json"]);
    let before = ns.raw();
    assert_eq!(before.len(), puts.len() + 300);

    let backup = ns.etcd_ok(&["get", "--prefix", ""]);
    std::fs::write(ns.dir().join("etcd-config-backup.json"), &backup.stdout).expect("write");
    let deleted = ns.etcd_ok(&["delete", "--prefix", ""]);
    assert_eq!(
        stderr(&deleted),
        "All keys starting with '' successfully deleted.\n"
    );
    assert_eq!(ns.raw(), BTreeMap::new());

    let restored = ns.etcd_ok(&["put-json", "", "etcd-config-backup.json"]);
    assert_eq!(stderr(&restored), "Wrote 311 keys under ''.\n");
    assert_eq!(ns.raw(), before);
}

#[test]
fn get_of_a_missing_key_prints_nothing_and_exits_1() {
    let ns = Namespace::new("get-missing");
    let missing = ns.etcd(&["get", "config/nothing"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(stdout(&missing), "");
    let prefix = ns.etcd_ok(&["get", "--prefix", "config/nothing"]);
    assert_eq!(stdout(&prefix), "{}\n");
}

#[test]
fn delete_says_what_it_deleted() {
    let ns = Namespace::new("delete");
    ns.etcd_ok(&["put", "config/a", "1"]);
    ns.etcd_ok(&["put", "config/b/c", "2"]);
    ns.etcd_ok(&["put", "config/b-sibling", "3"]);
    ns.etcd_ok(&["put", "other", "4"]);

    let one = ns.etcd_ok(&["delete", "config/a"]);
    assert_eq!(stderr(&one), "Key 'config/a' successfully deleted.\n");
    let again = ns.etcd_ok(&["delete", "config/a"]);
    assert_eq!(stderr(&again), "No key found to delete: config/a\n");

    // A plain string prefix, as the reference: the sibling `config/b-sibling` goes too.
    let prefix = ns.etcd_ok(&["delete", "--prefix", "config/b"]);
    assert_eq!(
        stderr(&prefix),
        "All keys starting with 'config/b' successfully deleted.\n"
    );
    let none = ns.etcd_ok(&["delete", "--prefix", "config/b"]);
    assert_eq!(
        stderr(&none),
        "No keys found to delete with prefix: config/b\n"
    );
    assert_eq!(stdout(&none), "");
    assert_eq!(ns.raw(), pairs(&ns, &[("other", "4")]));
}

#[test]
fn scopes_write_below_their_prefix_and_reads_fall_back_to_global() {
    let ns = Namespace::new("scopes");
    ns.etcd_ok(&["put", "config/redis/addr", "global:1"]);
    ns.etcd_ok(&["put", "config/redis/password", "global-secret"]);
    ns.etcd_ok(&[
        "put",
        "--scope",
        "sgroup:gpu",
        "config/redis/addr",
        "sgroup:1",
    ]);
    ns.etcd_ok(&["put", "-s", "node:i-1", "config/redis/addr", "node:1"]);
    assert_eq!(
        ns.raw(),
        pairs(
            &ns,
            &[
                ("config/redis/addr", "global:1"),
                ("config/redis/password", "global-secret"),
                ("sgroup/gpu/config/redis/addr", "sgroup:1"),
                ("nodes/agents/i-1/config/redis/addr", "node:1"),
            ]
        )
    );

    let get = |scope: &str, key: &str| stdout(&ns.etcd_ok(&["get", "-s", scope, key]));
    assert_eq!(get("global", "config/redis/addr"), "global:1\n");
    assert_eq!(get("sgroup:gpu", "config/redis/addr"), "sgroup:1\n");
    assert_eq!(get("node:i-1", "config/redis/addr"), "node:1\n");
    assert_eq!(
        get("sgroup:gpu", "config/redis/password"),
        "global-secret\n"
    );
    assert_eq!(get("sgroup:cpu", "config/redis/addr"), "global:1\n");

    // Trees of the scopes merge at the top level only, as the reference's ChainMap does.
    let merged = ns.etcd_ok(&["get", "-s", "sgroup:gpu", "--prefix", "config/"]);
    assert_eq!(
        stdout(&merged),
        "{\n    \"redis\": {\n        \"addr\": \"sgroup:1\"\n    }\n}\n"
    );

    let deleted = ns.etcd_ok(&["delete", "-s", "sgroup:gpu", "config/redis/password"]);
    assert_eq!(
        stderr(&deleted),
        "No key found to delete: config/redis/password\n",
        "a scoped delete never touches the global key it would read"
    );
    let bad = ns.etcd(&["get", "-s", "sgroup:", "config"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--scope"), "{}", stderr(&bad));
}

#[test]
fn move_subtree_moves_the_keys_below_a_new_prefix() {
    let ns = Namespace::new("move");
    ns.etcd_ok(&["put", "config/old/a", "1"]);
    ns.etcd_ok(&["put", "config/old/b%3Ac/d", "2"]);
    ns.etcd_ok(&["put", "config/keep", "3"]);
    let moved = ns.etcd_ok(&["move-subtree", "config/old", "config/new"]);
    assert_eq!(
        stderr(&moved),
        "Moved 2 keys from 'config/old' to 'config/new'.\n"
    );
    assert_eq!(
        ns.raw(),
        pairs(
            &ns,
            &[
                ("config/keep", "3"),
                ("config/new/a", "1"),
                ("config/new/b%3Ac/d", "2"),
            ]
        )
    );
    let nothing = ns.etcd_ok(&["move-subtree", "config/old", "config/new"]);
    assert_eq!(
        stderr(&nothing),
        "No keys found to move with prefix: config/old\n"
    );
}

#[test]
fn quote_and_unquote_need_no_configuration() {
    let empty = tempfile::tempdir().expect("tempdir");
    let quoted = manager_cli_etcd(empty.path(), &["quote", "cr.backend.ai:5000/a b+c"], None);
    assert!(quoted.status.success(), "{}", stderr(&quoted));
    assert_eq!(stdout(&quoted), "cr.backend.ai%3A5000%2Fa%20b%2Bc\n");
    let unquoted = manager_cli_etcd(empty.path(), &["unquote", "cr.backend.ai%3A5000+x"], None);
    assert!(unquoted.status.success(), "{}", stderr(&unquoted));
    assert_eq!(stdout(&unquoted), "cr.backend.ai:5000+x\n");
}

#[test]
fn malformed_json_is_reported_with_its_position_and_writes_nothing() {
    let ns = Namespace::new("malformed");
    std::fs::write(
        ns.dir().join("bad.json"),
        "{\n  \"redis\": {\"addr\": \"a\"},\n  \"docker\": [1, }\n}\n",
    )
    .expect("write json");
    let output = ns.etcd(&["put-json", "config", "bad.json"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: bad.json: line 3, column 17: expected value\n"
    );
    assert_eq!(ns.raw(), BTreeMap::new());

    std::fs::write(ns.dir().join("list.json"), "[1, 2]").expect("write json");
    let list = ns.etcd(&["put-json", "config", "list.json"]);
    assert_eq!(list.status.code(), Some(1));
    assert_eq!(
        stderr(&list),
        "error: list.json: the top level must be a JSON object, found an array\n"
    );

    // Both entries name the key `config/a`: the nested empty key is the object's own key.
    std::fs::write(
        ns.dir().join("clash.json"),
        r#"{"a": "1", "": {"a": "2"}, "b": "3"}"#,
    )
    .expect("write json");
    let clash = ns.etcd(&["put-json", "config", "clash.json"]);
    assert_eq!(clash.status.code(), Some(1));
    assert!(
        stderr(&clash)
            .contains("clash.json: two entries would both be written to the key \"config/a\""),
        "{}",
        stderr(&clash)
    );
    assert_eq!(ns.raw(), BTreeMap::new());
}

/// Runs `etcd get` with a manager.toml pointing at `port` and checks the promised failure.
fn assert_unreachable_fails_fast(port: u16) {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = HALFSTACK_TOML.replace("port = 8120", &format!("port = {port}"));
    assert_ne!(toml, HALFSTACK_TOML, "halfstack.toml changed");
    std::fs::write(dir.path().join("manager.toml"), toml).expect("write");
    let started = Instant::now();
    let output = manager_cli_etcd(dir.path(), &["get", "config/redis/addr"], None);
    let elapsed = started.elapsed();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    assert!(
        stderr(&output).starts_with("error: ")
            && stderr(&output).contains(&format!("etcd at http://127.0.0.1:{port}")),
        "{}",
        stderr(&output)
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "took {elapsed:?}: {}",
        stderr(&output)
    );
}

#[test]
fn an_unreachable_etcd_fails_with_its_address_within_5_seconds() {
    assert_unreachable_fails_fast(1);
}

#[test]
fn an_etcd_that_accepts_but_never_answers_fails_within_5_seconds() {
    // The kernel completes the TCP handshake for a listening socket nobody accepts from, so the
    // client connects and then waits for an answer that never comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("address").port();
    assert_unreachable_fails_fast(port);
}

#[test]
fn check_accepts_the_install_guide_configuration_and_names_each_bad_key() {
    let ns = Namespace::new("check");
    for (key, value) in INSTALL_GUIDE_PUTS {
        ns.etcd_ok(&["put", key, value]);
    }
    let valid = ns.etcd_ok(&["check"]);
    assert_eq!(
        stdout(&valid),
        format!(
            "etcd namespace '{}' at {HALFSTACK_ETCD}: the shared configuration is valid\n",
            ns.name
        )
    );

    ns.etcd_ok(&["put", "config/redis/addr", "bai-m1"]);
    ns.etcd_ok(&["put", "config/docker/image/auto_pull", "sometimes"]);
    let invalid = ns.etcd(&["check"]);
    assert_eq!(invalid.status.code(), Some(1));
    let reported = stderr(&invalid);
    assert!(reported.contains("config/redis/addr: "), "{reported}");
    assert!(
        reported.contains("config/docker/image/auto_pull: "),
        "{reported}"
    );
    assert_eq!(stdout(&invalid), "");
}
