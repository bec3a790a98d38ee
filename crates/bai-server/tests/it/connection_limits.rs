//! The connection limits against hostile clients: a slow head (slowloris), idle keep-alive
//! connections, thousands of idle connections, oversized heads and the per-worker connection cap.
//! The server is `bai_server::serve` on a thread of its own with a current-thread runtime (as a
//! worker runs it); the clients are blocking sockets. Timeouts are short and the margins wide:
//! the assertions are bounds, not benchmarks, and hold on a loaded 2-core machine.

use std::convert::Infallible;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bai_server::ConnectionLimits;
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::oneshot;

/// A server on its own thread; stopped when dropped.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start(limits: ConnectionLimits) -> Server {
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send");
                let service = tower::service_fn(|_request: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new("hello".to_owned()))
                });
                bai_server::serve(
                    listener,
                    None,
                    |_peer| service,
                    async {
                        let _ = stopped.await;
                    },
                    Duration::from_millis(100),
                    limits,
                )
                .await;
            });
        });
        Server {
            addr: addr_rx.recv().expect("server address"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream
    }

    /// One `GET /` on a new connection; the response and how long it took.
    fn get(&self) -> (String, Duration) {
        let started = Instant::now();
        let mut stream = self.connect();
        let response = request(
            &mut stream,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        (response, started.elapsed())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends `head` and reads until the server closes or one response is complete.
fn request(stream: &mut TcpStream, head: &str) -> String {
    stream.write_all(head.as_bytes()).expect("write");
    let mut answer = Vec::new();
    let mut buf = [0_u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&answer);
                if text.contains("\r\n\r\n") && text.ends_with("hello") {
                    break;
                }
            }
            Err(error) => panic!("reading the response: {error}"),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Waits until the server closes `stream` (EOF or reset); how long that took.
fn time_until_closed(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0_u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(error) if error.kind() == ErrorKind::ConnectionReset => return started.elapsed(),
            Err(error) => panic!("waiting for the close: {error}"),
        }
    }
}

fn limits(keepalive: Duration, header: Duration) -> ConnectionLimits {
    ConnectionLimits {
        keepalive_timeout: keepalive,
        header_read_timeout: header,
        max_connections: 10_000,
    }
}

#[test]
fn a_slow_head_is_cut_at_the_header_timeout_while_others_are_served() {
    let header = Duration::from_secs(1);
    let server = Server::start(limits(Duration::from_secs(30), header));
    let mut slow = server.connect();
    let head = b"GET / HTTP/1.1\r\nHost: example\r\nX-Slow: 1\r\n\r\n";
    let started = Instant::now();
    let mut closed_after = None;
    for byte in head {
        // A closed connection shows as a failed write or, later, as EOF.
        if slow.write_all(&[*byte]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let (response, took) = server.get();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            took < Duration::from_secs(2),
            "another client waited {took:?}"
        );
        thread::sleep(Duration::from_millis(300));
        if started.elapsed() > header * 6 {
            break;
        }
    }
    let closed_after =
        closed_after.unwrap_or_else(|| started.elapsed() + time_until_closed(&mut slow));
    assert!(closed_after >= header, "closed after {closed_after:?}");
    assert!(closed_after < header * 5, "closed after {closed_after:?}");
}

#[test]
fn a_partial_head_on_a_fresh_connection_is_cut_at_the_header_timeout() {
    let header = Duration::from_secs(1);
    let server = Server::start(limits(Duration::from_secs(30), header));
    let mut stream = server.connect();
    // Silent first, so that the connection waits on its keep-alive deadline when the head starts.
    thread::sleep(Duration::from_millis(300));
    stream.write_all(b"GET / HTTP/1.1\r\nHo").expect("write");
    let closed_after = time_until_closed(&mut stream);
    assert!(
        closed_after >= header - Duration::from_millis(100),
        "{closed_after:?}"
    );
    assert!(closed_after < header * 5, "{closed_after:?}");
}

#[test]
fn idle_connections_are_closed_after_the_keepalive_timeout() {
    let keepalive = Duration::from_secs(1);
    let server = Server::start(limits(keepalive, Duration::from_secs(10)));
    // After a request, kept alive.
    let mut used = server.connect();
    let response = request(&mut used, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let mut silent = server.connect();
    let used_for = time_until_closed(&mut used);
    let silent_for = time_until_closed(&mut silent);
    assert!(
        used_for >= keepalive - Duration::from_millis(100),
        "{used_for:?}"
    );
    assert!(used_for < keepalive * 5, "{used_for:?}");
    // Never sent a byte: closed too (measured from after the first close).
    assert!(silent_for < keepalive * 5, "{silent_for:?}");
}

#[test]
fn two_thousand_idle_connections_are_held_while_requests_are_served() {
    bai_server::limits::raise_open_files_limit(4096).expect("open files limit");
    let server = Server::start(limits(Duration::from_secs(60), Duration::from_secs(60)));
    let mut idle = Vec::with_capacity(2000);
    for index in 0..2000 {
        let mut stream = server.connect();
        // Half of them have sent part of a request head.
        if index % 2 == 1 {
            stream.write_all(b"GET / HTTP/1.1\r\nHo").expect("write");
        }
        idle.push(stream);
    }
    for _ in 0..5 {
        let (response, took) = server.get();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(took < Duration::from_secs(1), "took {took:?}");
    }
    // All still open: a read finds nothing to read rather than EOF.
    for stream in &mut idle {
        stream.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0_u8; 16];
        match stream.read(&mut buf) {
            Err(error) if error.kind() == ErrorKind::WouldBlock => {}
            other => panic!("an idle connection was closed: {other:?}"),
        }
    }
}

#[test]
fn an_oversized_head_is_refused_with_431() {
    let server = Server::start(limits(Duration::from_secs(30), Duration::from_secs(10)));
    let mut stream = server.connect();
    let big = "a".repeat(bai_server::limits::MAX_HEADER_SIZE);
    let head = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = stream.write_all(head.as_bytes());
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    let (response, _) = server.get();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[test]
fn at_the_connection_limit_new_connections_wait_until_one_closes() {
    let server = Server::start(ConnectionLimits {
        max_connections: 2,
        ..limits(Duration::from_secs(30), Duration::from_secs(30))
    });
    let first = server.connect();
    let _second = server.connect();
    // Let the server accept both before the third arrives.
    thread::sleep(Duration::from_millis(300));
    let mut third = server.connect();
    third
        .set_read_timeout(Some(Duration::from_millis(700)))
        .expect("timeout");
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut buf = [0_u8; 64];
    let waiting = third.read(&mut buf);
    assert!(
        matches!(&waiting, Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "served beyond the limit: {waiting:?}"
    );
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = String::new();
    third.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
