//! The vfolder routes the WebUI calls before any storage exists, driven by the official clients
//! (24.3.11 and 23.9.10) against a real `manager-server`: `vfolder list-allowed-types`,
//! `vfolder invitations`, the SDK's `VFolder.list()` (the CLI lists folders through GraphQL
//! only), and `vfolder list-hosts`, first with the install guide's storage proxy unreachable (the
//! reference's 500, which the client reports and exits 1 on), then with a proxy answering.
//!
//! The answering proxy is a stand-in (a few lines of Python's `http.server` in the client's venv
//! serving `GET /volumes` and `GET /folder/fs-usage`): the real storage proxy needs storage volumes
//! this machine does not have, and is not among the project's installs.

use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bai_etcd_store::Scope;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::support::{CLIENT_23_09, CLIENT_24_03, Client, Server, Settings, Stack, free_port};

const SUPERADMIN_UUID: &str = "f38dea23-50fa-42a0-b5ae-338f5f4693f4";
const DEFAULT_PROJECT: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const FOLDER: &str = "3a5b1c1e-0d6f-4b7e-9a51-6b8f3c2d1e01";
const PROJECT_FOLDER: &str = "3a5b1c1e-0d6f-4b7e-9a51-6b8f3c2d1e02";
const INVITATION: &str = "3a5b1c1e-0d6f-4b7e-9a51-6b8f3c2d1e03";

/// The stand-in storage proxy's manager API: one vfs volume, a quarter used.
const STAND_IN_PROXY: &str = r#"
import http.server, json, sys

class Proxy(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/volumes":
            body = {"volumes": [{"name": "volume1", "backend": "vfs", "path": "/vfroot/volume1",
                                 "fsprefix": ".", "capabilities": ["quota", "vfolder"]}]}
        elif self.path == "/folder/fs-usage":
            body = {"used_bytes": 250, "capacity_bytes": 1000}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Proxy).serve_forever()
"#;

/// The superadmin's folder `own`, a folder `shared-data` of the default project, and an
/// invitation from user@ to the superadmin.
async fn folder_rows(stack: &Stack) {
    stack
        .db
        .connection
        .execute_unprepared(&format!(
            "INSERT INTO vfolders (id, host, quota_scope_id, name, usage_mode, permission, \
             created_at, creator, ownership_type, \"user\", \"group\", cloneable, status) VALUES \
             ('{FOLDER}', 'local:volume1', 'user:{SUPERADMIN_UUID}', 'own', 'general', 'wd', \
              '2024-05-01 10:00:00+00', 'admin@lablup.com', 'user', '{SUPERADMIN_UUID}', NULL, \
              false, 'ready'), \
             ('{PROJECT_FOLDER}', 'local:volume1', 'project:{DEFAULT_PROJECT}', 'shared-data', \
              'data', 'rw', '2024-05-01 11:00:00+00', 'admin@lablup.com', 'group', NULL, \
              '{DEFAULT_PROJECT}', true, 'ready'); \
             INSERT INTO vfolder_invitations (id, permission, inviter, invitee, state, \
             created_at, vfolder) VALUES ('{INVITATION}', 'ro', 'user@lablup.com', \
             'admin@lablup.com', 'pending', '2024-05-02 09:00:00+00', '{FOLDER}')"
        ))
        .await
        .expect("vfolder rows");
}

/// Runs `backend.ai ARGS` with `stdin` as its input; returns its exit code and what it printed.
fn cli_with_input(
    client: &Client,
    stack: &Stack,
    port: u16,
    args: &[&str],
    stdin: &str,
) -> (Option<i32>, String) {
    let mut child = client
        .command(stack, port, "backend.ai", args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running backend.ai");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin.as_bytes())
        .expect("writing its input");
    let output = child.wait_with_output().expect("backend.ai output");
    (
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// The stand-in proxy, on `port`, once it answers.
async fn stand_in_proxy(client: &Client, port: u16) -> StandIn {
    let child = std::process::Command::new(client.bin("python"))
        .args(["-c", STAND_IN_PROXY, &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the stand-in proxy");
    let proxy = StandIn(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the stand-in proxy did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy
}

/// Stops the stand-in proxy when the test ends, also when it fails.
struct StandIn(Child);

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the SDK's `call` on a `Session()` `s` returns, printed as JSON by the client's Python.
fn sdk_json(client: &Client, stack: &Stack, port: u16, call: &str) -> Value {
    let script = format!(
        "import json\nfrom ai.backend.client.session import Session\n\
         with Session() as s:\n    print(json.dumps({call}))"
    );
    let output = client.run(stack, port, "python", &["-c", &script]);
    assert!(
        output.status.success(),
        "{call} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

async fn check_client(client: &Client, label: &str) {
    let stack = Stack::with_install_guide_keypairs(label).await;
    let proxy_port = free_port();
    // The install guide's `volumes/` (`cargo xtask up`'s halfstack.etcd.volumes.json), with the
    // proxy on a port where nothing listens yet.
    for (key, value) in [
        ("volumes/_types/group", String::new()),
        ("volumes/_types/user", String::new()),
        ("volumes/default_host", "local:volume1".to_owned()),
        ("volumes/exposed_volume_info", "percentage".to_owned()),
        (
            "volumes/proxies/local/client_api",
            "http://127.0.0.1:6021".to_owned(),
        ),
        (
            "volumes/proxies/local/manager_api",
            format!("http://127.0.0.1:{proxy_port}"),
        ),
        (
            "volumes/proxies/local/secret",
            "some-secret-shared-with-storage-proxy".to_owned(),
        ),
        ("volumes/proxies/local/ssl_verify", "false".to_owned()),
    ] {
        stack
            .store
            .put(key, &value, Scope::Global)
            .await
            .expect("etcd put");
    }
    folder_rows(&stack).await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    let types = client.cli(&stack, port, &["vfolder", "list-allowed-types"]);
    assert!(types.contains("['group', 'user']"), "{types}");

    // One invitation is listed; an empty choice leaves it pending.
    let (code, printed) = cli_with_input(client, &stack, port, &["vfolder", "invitations"], "\n");
    assert_eq!(code, Some(0), "{printed}");
    assert!(
        printed.contains(&format!("[1] user@lablup.com, {FOLDER}, read-only")),
        "{printed}"
    );

    // The SDK's listing: the superadmin's own folder, then every project folder.
    let folders = sdk_json(client, &stack, port, "s.VFolder.list()");
    let names: Vec<(&str, &str, bool)> = folders
        .as_array()
        .expect("a list")
        .iter()
        .map(|folder| {
            (
                folder["name"].as_str().expect("name"),
                folder["type"].as_str().expect("type"),
                folder["is_owner"].as_bool().expect("is_owner"),
            )
        })
        .collect();
    assert_eq!(
        names,
        [("own", "user", true), ("shared-data", "group", true)]
    );
    assert_eq!(folders[1]["group_name"], "default");
    assert_eq!(folders[1]["usage_mode"], "data");
    assert_eq!(folders[0]["id"], FOLDER.replace('-', ""));

    // No storage proxy: the reference's 500, which the client reports.
    let output = client.run(&stack, port, "backend.ai", &["vfolder", "list-hosts"]);
    let printed = crate::support::printed(&output);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(printed.contains("500"), "{printed}");
    assert!(printed.contains("Internal server error"), "{printed}");

    // With the proxy up: its volume, allowed by the example keypair policy.
    let _proxy = stand_in_proxy(client, proxy_port).await;
    let hosts = client.cli(&stack, port, &["vfolder", "list-hosts"]);
    assert!(
        hosts.contains("Default vfolder host: local:volume1"),
        "{hosts}"
    );
    assert!(hosts.contains("Usable hosts: local:volume1"), "{hosts}");
    let details = sdk_json(client, &stack, port, "s.VFolder.list_hosts()");
    assert_eq!(
        details,
        json!({
            "default": "local:volume1",
            "allowed": ["local:volume1"],
            "volume_info": {"local:volume1": {
                "backend": "vfs",
                "capabilities": ["quota", "vfolder"],
                "usage": {"percentage": 25.0},
                "sftp_scaling_groups": [],
            }},
        })
    );
    server.stop(nix::sys::signal::Signal::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_client_24_3_11_reads_folders_hosts_and_invitations() {
    check_client(&CLIENT_24_03, "vfolders2403").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_client_23_9_10_reads_folders_hosts_and_invitations() {
    check_client(&CLIENT_23_09, "vfolders2309").await;
}
