//! The access log: one INFO record per answered request (`bai_api::access`) with the peer, the
//! method, the path, the status, the size and the time, never the query string or a credential;
//! `[logging] access-log = false` writes none.

use crate::support::{CLIENT_24_03, Server, Settings, Stack, free_port, http_client};

const SECRET_QUERY: &str = "token=s3cr3t-query-value";

/// Serves with `access_log` (unset: the default), sends an anonymous request with a query
/// string and a signed one by the official client; what the server wrote on stderr.
async fn log_of_two_requests(label: &str, access_log: Option<bool>) -> String {
    let stack = Stack::with_install_guide_keypairs(label).await;
    let port = free_port();
    let mut settings = Settings::new(port);
    if let Some(enabled) = access_log {
        settings.logging = settings.logging.replacen(
            "[logging]\n",
            &format!("[logging]\naccess-log = {enabled}\n"),
            1,
        );
    }
    let config = stack.config("manager.toml", &settings);
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;
    let answer = http_client()
        .get(format!("http://127.0.0.1:{port}/?{SECRET_QUERY}"))
        .send()
        .await
        .expect("GET /");
    assert_eq!(answer.status(), 200);
    CLIENT_24_03.cli(&stack, port, &["server-logs", "list"]);
    // The record is written after the response: the client may be done before it.
    let stderr = server.stderr.clone();
    let log = server
        .wait_until(|| {
            let log = std::fs::read_to_string(&stderr).unwrap_or_default();
            async move {
                (access_log == Some(false) || log.contains("\"GET /logs/error\"")).then_some(log)
            }
        })
        .await;
    server.stop(nix::sys::signal::Signal::SIGTERM).await;
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_logged_without_its_secrets() {
    let log = log_of_two_requests("access_log", None).await;
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("bai_api::access"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|line| line.contains(" INFO ") && line.contains("127.0.0.1 \"GET /\" 200 ")),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("127.0.0.1 \"GET /logs/error\" 200 ")),
        "{log}"
    );
    // `<peer> "<method> <path>" <status> <bytes> <seconds>s`.
    let root = lines
        .iter()
        .find(|line| line.contains("\"GET /\""))
        .expect("the line of GET /");
    let tail: Vec<&str> = root
        .split("\"GET /\" ")
        .nth(1)
        .expect("after the request")
        .split_whitespace()
        .collect();
    assert_eq!(tail.len(), 3, "{root}");
    assert!(
        tail[1].parse::<u64>().is_ok_and(|bytes| bytes > 0),
        "{root}"
    );
    assert!(
        tail[2]
            .strip_suffix('s')
            .is_some_and(|seconds| seconds.parse::<f64>().is_ok()),
        "{root}"
    );
    assert!(!log.contains("s3cr3t"), "{log}");
    assert!(!log.contains("signMethod"), "{log}");
    assert!(!log.contains("wJalrXUtnFEMI"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_false_writes_none() {
    let log = log_of_two_requests("access_log_off", Some(false)).await;
    assert!(!log.contains("bai_api::access"), "{log}");
}
