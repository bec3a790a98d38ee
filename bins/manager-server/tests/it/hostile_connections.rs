//! Hostile input at the connection level, against the built `manager-server` with small limits
//! (`client-max-size`, `keepalive-timeout`, `header-read-timeout` in manager.toml): oversized
//! bodies with and without `Content-Length` are refused with 413 problem documents before
//! authentication, a route with a larger limit of its own keeps it, a body that lies about its
//! length gets no 5xx, oversized heads get 431, idle connections are closed at the keep-alive
//! timeout. The connection timeouts themselves are tested in bai-server.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Server, Settings, Stack, free_port};

const LIMIT: usize = 64 * 1024;

/// Sends `bytes` (ignoring a write the server cut short) and reads until the server closes.
async fn exchange(port: u16, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let _ = stream.write_all(bytes).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the server answers and closes within 10 s");
    String::from_utf8_lossy(&response).into_owned()
}

fn assert_413_problem(response: &str) {
    assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{response}"
    );
    assert!(
        response.contains(
            r#""type": "https://api.backend.ai/probs/generic-bad-request", "title": "Bad request.", "msg": "The request body exceeds the limit of 65536 bytes""#
        ),
        "{response}"
    );
}

/// Every status line in `response` (pipelined answers included): none is a 5xx.
fn assert_no_5xx(response: &str) {
    for line in response
        .lines()
        .filter(|line| line.starts_with("HTTP/1.1 "))
    {
        assert!(!line.starts_with("HTTP/1.1 5"), "{response}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_requests_are_refused_without_a_5xx() {
    let stack = Stack::new("hostile-conns").await;
    let port = free_port();
    let mut settings = Settings::new(port);
    settings.manager_extra = "client-max-size = \"64k\"\nkeepalive-timeout = 2\n".to_owned();
    let config = stack.config("manager.toml", &settings);
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    // Declared too large: refused before anything is read or authenticated.
    let declared = format!(
        "POST /admin/gql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        LIMIT + 1
    );
    assert_413_problem(&exchange(port, declared.as_bytes()).await);

    // Chunked, no length: refused once the handler has read past the limit.
    let mut chunked =
        b"POST /auth/authorize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                        Transfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..(LIMIT / 4096 + 2) {
        chunked.extend_from_slice(format!("1000\r\n{}\r\n", "x".repeat(4096)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_413_problem(&exchange(port, &chunked).await);

    // Under the limit, the same route answers as usual (a validation error here).
    let small = b"POST /auth/authorize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  Content-Length: 2\r\nConnection: close\r\n\r\n{}";
    let response = exchange(port, small).await;
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");

    // A body longer than its Content-Length: the rest is read as the next request, refused.
    let mut lying =
        b"POST /auth/authorize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                      Content-Length: 2\r\n\r\n{}"
            .to_vec();
    lying.extend_from_slice(&vec![b'x'; 2 * LIMIT]);
    let response = exchange(port, &lying).await;
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    assert_no_5xx(&response);

    // A Content-Length that no number can hold, and two that disagree: refused by hyper.
    for head in [
        "POST /auth/authorize HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "POST /auth/authorize HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    ] {
        let response = exchange(port, head.as_bytes()).await;
        assert!(
            response.starts_with("HTTP/1.1 4") || response.is_empty(),
            "{response}"
        );
    }

    // The upload route keeps its larger limit: a 2 MiB upload reaches authentication (and fails
    // it: the request is not signed).
    let upload = format!(
        "POST /session/s/upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        2 << 20
    );
    let response = exchange(port, upload.as_bytes()).await;
    assert!(
        response.starts_with("HTTP/1.1 400 ") && response.contains("invalid-auth-params"),
        "{response}"
    );

    // A head beyond 64 KiB.
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let response = exchange(port, big_head.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 431 "), "{response}");

    // Kept alive after a request, then closed at the keep-alive timeout (2 s).
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut response))
        .await
        .expect("closed within 20 s")
        .expect("read");
    let took = started.elapsed();
    assert!(
        String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&response)
    );
    assert!(took >= Duration::from_millis(1900), "closed after {took:?}");
    assert!(took < Duration::from_secs(10), "closed after {took:?}");

    let (status, _) = server.stop(nix::sys::signal::Signal::SIGTERM).await;
    assert!(status.success(), "{}", server.stderr());
}
