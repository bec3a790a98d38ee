//! Running code in sessions through the real router, with the whole manager around it in this
//! process and a simulated agent serving RPC: `POST /session/{name}` (execute),
//! `POST /session/{name}/interrupt`, `POST /session/{name}/complete`, the WebSocket
//! `GET /stream/session/{name}/execute` (the router served on a local port, a WebSocket client
//! signing its handshake as the official clients do) and `GET /stream/session/{name}/apps`:
//! answers, refusals, and what they answer for a session on no agent and once the agent is gone.
//!
//! On the halfstack's PostgreSQL and etcd (fresh database and namespace) and a private Redis.

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use bai_api::testing::{USER, signed_request};
use bai_db_models::entities::kernels;
use common::{Answer, Api};
use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};
use support::{Stack, assert_agent_timeout, create_body, kernel_rows, running_session};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(60);

const STACK: Stack = Stack::one_agent("exec", PATIENCE);

/// `POST path` of `USER` with the raw `body`.
async fn post_raw(api: &Api, path: &str, body: &'static str) -> Answer {
    let mut request = signed_request(Method::POST, path, Some(&json!({})), &USER);
    *request.body_mut() = Body::from(body);
    api.send_allowing_500(request).await
}

async fn post(api: &Api, path: &str, body: &Value) -> Answer {
    api.send_allowing_500(signed_request(Method::POST, path, Some(body), &USER))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_interrupt_complete_and_apps_answer_as_the_reference() {
    let (api, manager) = support::start("execute-routes", &STACK).await;
    let id = running_session(&api, &USER, "exec-first").await;

    // A query with a run id of the client's, and one whose run id the agent makes.
    let answer = post(
        &api,
        "/session/exec-first",
        &json!({"mode": "query", "code": "print(6*7)", "runId": "my-run", "options": null}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let result = &answer.json["result"];
    let keys: Vec<&str> = result
        .as_object()
        .expect("a result object")
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        answer.text.starts_with(r#"{"result": {"status": "#),
        "the reference's key order: {}",
        answer.text
    );
    for key in ["status", "runId", "exitCode", "options", "files", "console"] {
        assert!(keys.contains(&key), "{key} in {}", answer.text);
    }
    assert_eq!(keys.len(), 6, "{}", answer.text);
    assert_eq!(result["status"], "finished");
    assert_eq!(result["runId"], "my-run");
    assert_eq!(result["exitCode"], 0);
    let by_id = post(
        &api,
        &format!("/session/{id}"),
        &json!({"mode": "batch", "runId": null, "options": {"exec": "true"}}),
    )
    .await;
    assert_eq!(by_id.status, StatusCode::OK, "{}", by_id.text);
    assert_eq!(by_id.json["result"]["status"], "finished");

    // The reference's assertions, in its order, and its JSON parse error without a message.
    for (body, msg) in [
        (json!({"mode": "query", "code": ""}), "runId is missing!"),
        (
            json!({"runId": null, "code": ""}),
            "mode is missing or empty!",
        ),
        (
            json!({"runId": null, "mode": ""}),
            "mode is missing or empty!",
        ),
        (
            json!({"runId": null, "mode": "bogus"}),
            "mode has an invalid value.",
        ),
        (
            json!({"runId": null, "mode": "continue"}),
            "continuation requires explicit run ID",
        ),
        (
            json!({"runId": null, "mode": "input", "code": "x"}),
            "continuation requires explicit run ID",
        ),
    ] {
        post(&api, "/session/exec-first", &body)
            .await
            .assert_problem(400, "invalid-api-params", Some(msg));
    }
    let malformed = post_raw(&api, "/session/exec-first", "{not json").await;
    malformed.assert_problem(400, "invalid-api-params", None);
    assert!(malformed.json.get("msg").is_none(), "{}", malformed.text);
    post(
        &api,
        "/session/no-such-session",
        &json!({"mode": "query", "runId": null}),
    )
    .await
    .assert_problem(
        404,
        "object-not-found",
        Some("Session (id=no-such-session) does not exist."),
    );

    // Completion, legacy and current: the agent's answer (agents answer nothing) as `result`.
    let legacy = post(
        &api,
        "/session/exec-first",
        &json!({"mode": "complete", "runId": null, "code": "pri"}),
    )
    .await;
    assert_eq!(legacy.status, StatusCode::OK, "{}", legacy.text);
    assert_eq!(legacy.text, r#"{"result": null}"#);
    let completed = post(
        &api,
        "/session/exec-first/complete",
        &json!({"code": "pri", "options": {"row": 0, "col": 3, "line": "pri", "post": ""}}),
    )
    .await;
    assert_eq!(completed.status, StatusCode::OK, "{}", completed.text);
    assert_eq!(completed.text, r#"{"result": null}"#);
    post_raw(&api, "/session/exec-first/complete", "")
        .await
        .assert_problem(400, "invalid-api-params", None);

    let interrupted = api
        .send_allowing_500(signed_request(
            Method::POST,
            "/session/exec-first/interrupt",
            None,
            &USER,
        ))
        .await;
    assert_eq!(
        interrupted.status,
        StatusCode::NO_CONTENT,
        "{}",
        interrupted.text
    );

    // The apps of the main kernel: none on the simulated agent, then the stored ports' shape.
    let apps = api
        .send(signed_request(
            Method::GET,
            "/stream/session/exec-first/apps",
            None,
            &USER,
        ))
        .await;
    assert_eq!(apps.status, StatusCode::OK, "{}", apps.text);
    assert_eq!(apps.text, "[]");
    let mut kernel: kernels::ActiveModel = kernel_rows(&api, id).await.remove(0).into();
    kernel.service_ports = Set(Some(json!([
        {"name": "jupyter", "protocol": "http", "container_ports": [8080], "host_ports": [30001],
         "is_inference": false},
        {"name": "ttyd", "protocol": "http", "container_ports": [7681], "host_ports": [30002],
         "url_template": "{protocol}://{host}:{port}/", "allowed_envs": ["X"],
         "allowed_arguments": ["-a"]},
    ])));
    kernel
        .update(&api.cluster.database.connection)
        .await
        .expect("storing service ports");
    let apps = api
        .send(signed_request(
            Method::GET,
            &format!("/stream/session/{id}/apps"),
            None,
            &USER,
        ))
        .await;
    assert_eq!(
        apps.json,
        json!([
            {"name": "jupyter", "protocol": "http", "ports": [8080]},
            {"name": "ttyd", "protocol": "http", "ports": [7681],
             "url_template": "{protocol}://{host}:{port}/", "allowed_arguments": ["-a"],
             "allowed_envs": ["X"]},
        ]),
        "{}",
        apps.text
    );

    // A session still PENDING has its kernel on no agent: refused as the client's mistake (the
    // reference fails with a 500 kernel-execution-failed; docs/compat.md).
    let mut pending = create_body("exec-pending");
    pending["config"]["resources"]["cpu"] = json!("64");
    pending["enqueueOnly"] = json!(true);
    let created = api
        .send(signed_request(
            Method::POST,
            "/session",
            Some(&pending),
            &USER,
        ))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let on_no_agent = post(
        &api,
        "/session/exec-pending",
        &json!({"mode": "query", "runId": null, "code": "1"}),
    )
    .await;
    assert_eq!(on_no_agent.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        on_no_agent.json,
        json!({"type": "https://api.backend.ai/probs/generic-bad-request",
            "title": "Bad request.",
            "msg": "The session's kernel is not on any agent yet (the session is not scheduled)"}),
        "{}",
        on_no_agent.text
    );

    // The agent gone: each call fails as the reference's call to an unreachable agent.
    manager.agent.cancel();
    let gone = post(
        &api,
        "/session/exec-first",
        &json!({"mode": "query", "runId": null, "code": "1"}),
    )
    .await;
    assert_agent_timeout(&gone);
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens `path` as a WebSocket signed by `USER`; the server's answer when it refuses.
async fn connect(addr: SocketAddr, path: &str) -> Result<Socket, (StatusCode, String)> {
    let signed = signed_request(Method::GET, path, None, &USER);
    let mut request = http::Request::builder().uri(format!("ws://{addr}{path}"));
    for (name, value) in signed.headers() {
        request = request.header(name, value);
    }
    let request = request
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header(
            "sec-websocket-key",
            tokio_tungstenite::tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .expect("a handshake request");
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connecting");
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status();
            let body = response
                .into_body()
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default();
            Err((status, body))
        }
        Err(error) => panic!("WebSocket handshake: {error}"),
    }
}

/// The frames the server sends until it closes: JSON text frames, then the close code.
async fn frames_until_close(socket: &mut Socket) -> (Vec<Value>, Option<CloseCode>) {
    let mut frames = Vec::new();
    loop {
        let next = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a frame in time");
        match next {
            Some(Ok(Message::Text(text))) => frames.push(
                serde_json::from_str(text.as_str())
                    .unwrap_or_else(|error| panic!("a JSON frame ({error}): {text}")),
            ),
            Some(Ok(Message::Close(frame))) => return (frames, frame.map(|frame| frame.code)),
            Some(Ok(other)) => panic!("an unexpected frame: {other:?}"),
            Some(Err(error)) => panic!("reading the stream: {error}"),
            None => return (frames, None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_execute_stream_runs_code_and_answers_errors_in_frames() {
    let (api, _manager) = support::start("execute-stream", &STACK).await;
    let id = running_session(&api, &USER, "stream-first").await;
    let addr = common::serve(api.router.clone()).await;

    // A query: the agent's answer as one frame, then a normal close.
    let mut socket = connect(addr, "/stream/session/stream-first/execute")
        .await
        .expect("the stream opens");
    socket
        .send(Message::text(
            json!({"code": "print(6*7)", "mode": "query", "options": {}}).to_string(),
        ))
        .await
        .expect("the first frame");
    let (frames, close) = frames_until_close(&mut socket).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["status"], "finished", "{frames:?}");
    assert_eq!(frames[0]["exitCode"], 0, "{frames:?}");
    let keys: Vec<&String> = frames[0].as_object().expect("an object").keys().collect();
    assert_eq!(keys.len(), 5, "{frames:?}");
    assert_eq!(close, Some(CloseCode::Normal));

    // By id too; bad first frames get the reference's error frame.
    for (first, msg) in [
        (
            json!({"code": "1", "mode": "continue"}).to_string(),
            "Invalid API parameters: AssertionError('mode has an invalid value.')",
        ),
        (
            json!({"code": "1"}).to_string(),
            "Invalid API parameters: AssertionError('mode is missing or empty!')",
        ),
    ] {
        let mut socket = connect(addr, &format!("/stream/session/{id}/execute"))
            .await
            .expect("the stream opens");
        socket
            .send(Message::text(first))
            .await
            .expect("the first frame");
        let (frames, close) = frames_until_close(&mut socket).await;
        assert_eq!(frames, vec![json!({"status": "error", "msg": msg})]);
        assert_eq!(close, Some(CloseCode::Normal));
    }
    let mut socket = connect(addr, "/stream/session/stream-first/execute")
        .await
        .expect("the stream opens");
    socket
        .send(Message::text("{oops"))
        .await
        .expect("the first frame");
    let (frames, _) = frames_until_close(&mut socket).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["status"], "error");
    let msg = frames[0]["msg"].as_str().expect("a message");
    assert!(
        msg.starts_with("Invalid API parameters: JSONDecodeError("),
        "{msg}"
    );

    pty_relays_keystrokes_and_output(&api, addr, id).await;

    // Refused before the upgrade: an unknown session, and a request that is no handshake.
    let Err((status, body)) = connect(addr, "/stream/session/no-such/execute").await else {
        panic!("refused")
    };
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let plain = api
        .send(signed_request(
            Method::GET,
            "/stream/session/stream-first/execute",
            None,
            &USER,
        ))
        .await;
    plain.assert_problem(400, "generic-bad-request", None);
    let Err((status, body)) = connect(addr, "/stream/session/no-such/pty").await else {
        panic!("refused")
    };
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

/// The port a bound ZeroMQ socket listens on.
fn bound_port(socket: &zmq::Socket) -> u16 {
    socket
        .get_last_endpoint()
        .expect("endpoint")
        .expect("UTF-8")
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("a port")
}

/// The terminal of session `id`'s kernel, with the kernel's side played by this test (no agent
/// here runs a terminal: agent-sim and the real dummy agent give ports nothing listens on):
/// a SUB socket on the kernel's stdin port and a PUB socket on its stdout port.
async fn pty_relays_keystrokes_and_output(api: &Api, addr: SocketAddr, id: Uuid) {
    let context = zmq::Context::new();
    let kernel_stdin = context.socket(zmq::SUB).expect("SUB");
    kernel_stdin.set_subscribe(b"").expect("subscribe");
    kernel_stdin.set_rcvtimeo(100).expect("timeout");
    kernel_stdin.bind("tcp://127.0.0.1:*").expect("bind");
    let kernel_stdout = context.socket(zmq::PUB).expect("PUB");
    kernel_stdout.bind("tcp://127.0.0.1:*").expect("bind");
    let mut kernel: kernels::ActiveModel = kernel_rows(api, id).await.remove(0).into();
    kernel.kernel_host = Set(Some("127.0.0.1".to_owned()));
    kernel.stdin_port = Set(i32::from(bound_port(&kernel_stdin)));
    kernel.stdout_port = Set(i32::from(bound_port(&kernel_stdout)));
    kernel
        .update(&api.cluster.database.connection)
        .await
        .expect("the kernel's terminal ports");

    let mut socket = connect(addr, &format!("/stream/session/{id}/pty"))
        .await
        .expect("the terminal opens");
    let encode = |bytes: &[u8]| data_encoding::BASE64.encode(bytes);
    // PUB/SUB drop what is sent before the subscription is there: repeat until it arrives.
    let mut typed = None;
    for _ in 0..100 {
        socket
            .send(Message::text(
                json!({"type": "stdin", "chars": encode(b"ls\r")}).to_string(),
            ))
            .await
            .expect("a stdin frame");
        if let Ok(bytes) = kernel_stdin.recv_bytes(0) {
            typed = Some(bytes);
            break;
        }
    }
    assert_eq!(typed.as_deref(), Some(&b"ls\r"[..]));

    async fn output(socket: &mut Socket, kernel_stdout: &zmq::Socket, text: &[u8]) -> Value {
        for _ in 0..100 {
            kernel_stdout.send(text, 0).expect("publishing output");
            if let Ok(Some(Ok(Message::Text(frame)))) =
                tokio::time::timeout(Duration::from_millis(100), socket.next()).await
            {
                return serde_json::from_str(frame.as_str()).expect("a JSON frame");
            }
        }
        panic!("no output frame");
    }
    assert_eq!(
        output(&mut socket, &kernel_stdout, b"file.txt\r\n").await,
        json!({"type": "out", "data": encode(b"file.txt\r\n")})
    );
    // resize and ping are queries of the kernel; the terminal goes on.
    for frame in [
        json!({"type": "resize", "rows": 24, "cols": 80}),
        json!({"type": "ping"}),
    ] {
        socket
            .send(Message::text(frame.to_string()))
            .await
            .expect("a control frame");
    }
    let next = output(&mut socket, &kernel_stdout, b"more").await;
    assert_eq!(next["type"], "out");
    socket.close(None).await.expect("closing");
}
