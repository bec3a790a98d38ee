//! The WebSocket routes of `/stream/session/{name}` the clients use to work in a session:
//! `execute` (the reference's `stream_execute`, what `backend.ai run` streams its output from),
//! `pty` (`stream_pty`, the kernel's terminal) and the service ports of the main kernel (`apps`,
//! `get_stream_apps`).
//!
//! An execute stream is one run (its run id made here) that calls the agent's `execute` with a
//! short flush timeout until the run finishes, and forwards each answer as a frame; the client's
//! first frame says what to run, later text frames answer `waiting-input`. Problems after the
//! upgrade are frames `{"status": "error", "msg": ...}` followed by a normal close, as the
//! reference sends them. A client that goes away mid-run gets its run interrupted on the agent.
//! Unlike the reference, a status no kernel runner continues from (the dummy agent's
//! `not-implemented`) ends the stream after its frame instead of calling the agent again forever.
//!
//! A pty stream relays the client's keystrokes to the kernel's stdin and the kernel's terminal
//! output back through `bai_agent_rpc::PtyStreams` (ZeroMQ PUB/SUB to the kernel's
//! `stdin_port`/`stdout_port`); `resize` and `ping` are `%resize`/`%ping` queries of the kernel,
//! `restart` restarts the session and reconnects to its new ports.
//!
//! What this module must not do: open sockets to kernels or agents itself (agent calls go through
//! `execute::KernelTarget`, terminal streams through `bai-agent-rpc`), or hold a stream's state
//! past its connection.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use bai_agent_rpc::PtyStreams;
use bai_db_models::entities::{kernels, sessions};
use bai_events::EventProducer;
use http::Method;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::execute::{KernelTarget, Run, main_kernel, options_of};
use super::session::{get_session, wire_service_ports};
use super::{Access, Authenticated, Route, StatusGate};
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorKind};
use crate::json::{PyJson, to_python_json};
use crate::params::Path;
use crate::version::ApiVersion;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/stream/session/{session_name}/execute",
            "stream.stream_execute",
            stream_execute,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .summary(
            "A WebSocket running code in the main kernel of one of the caller's sessions: the \
             first client frame is `{\"code\", \"mode\": \"query\"|\"batch\", \"options\"}`; the \
             server sends `{\"status\", \"console\", \"exitCode\", \"options\", \"files\"}` \
             frames until `finished`, and takes a text frame after each `waiting-input`.",
        ),
        Route::new(
            Method::GET,
            "/stream/session/{session_name}/pty",
            "stream.stream_pty",
            stream_pty,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .summary(
            "A WebSocket to the terminal of the main kernel of one of the caller's sessions: \
             client frames `{\"type\": \"stdin\", \"chars\": base64}`, `{\"type\": \"resize\", \
             \"rows\", \"cols\"}`, `{\"type\": \"ping\"}`, `{\"type\": \"restart\"}`; server frames \
             `{\"type\": \"out\", \"data\": base64}`.",
        ),
        Route::new(
            Method::GET,
            "/stream/session/{session_name}/apps",
            "stream.get_stream_apps",
            get_stream_apps,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .summary(
            "The service ports of the session's main kernel: `[{\"name\", \"protocol\", \
             \"ports\"[, \"url_template\", \"allowed_arguments\", \"allowed_envs\"]}]`.",
        ),
    ]
}

/// How long each `execute` call of a stream lets the agent gather output (the reference's).
const STREAM_FLUSH_TIMEOUT: f64 = 0.2;

/// The statuses of a kernel runner's answers a stream continues after (besides `finished`,
/// which ends it, and `waiting-input`, which waits for the client's input). Any other status (the
/// dummy agent's `not-implemented`) ends the stream after its frame.
const RUNNER_STATUSES: [&str; 4] = [
    "continued",
    "clean-finished",
    "build-finished",
    "exec-timeout",
];

/// The modes a stream may start with.
const STREAM_MODES: [&str; 2] = ["query", "batch"];

/// The handshake, taking messages up to `[manager] max-wsmsg-size` from the client; a request
/// that is not a WebSocket handshake is refused as aiohttp's `ws.prepare` refuses it.
fn accept(
    ctx: &ApiContext,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<WebSocketUpgrade, ApiError> {
    let max_message_size =
        usize::try_from(ctx.config().manager.max_wsmsg_size).unwrap_or(usize::MAX);
    upgrade
        .map(|upgrade| upgrade.max_message_size(max_message_size))
        .map_err(|rejection| {
            ApiError::bad_request(format!("Not a WebSocket handshake: {rejection}"))
        })
}

/// `secrets.token_hex(8)`: 8 random bytes as hex. A v4 UUID's bytes other than 6 and 8 are
/// random.
fn token_hex_8() -> String {
    let bytes = Uuid::new_v4().into_bytes();
    let mut random = [0u8; 8];
    random[..6].copy_from_slice(&bytes[..6]);
    random[6] = bytes[7];
    random[7] = bytes[9];
    hex::encode(random)
}

// ----- GET /stream/session/{name}/execute -----

async fn stream_execute(
    State(ctx): State<ApiContext>,
    Extension(version): Extension<ApiVersion>,
    Authenticated(caller): Authenticated,
    Path(session_name): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let access_key = caller.access_key();
    tracing::info!(target: "bai_api", "STREAM_EXECUTE(ak:{access_key}, s:{session_name})");
    let session = get_session(&ctx, &session_name, access_key).await?;
    let target = KernelTarget::of(&ctx, &session, "Executing code").await?;
    Ok(accept(&ctx, upgrade)?.on_upgrade(move |socket| async move {
        let mut stream = ExecuteStream {
            client: Client::new(socket),
            target,
            version,
        };
        stream.run().await;
        stream.client.close().await;
    }))
}

/// The client's side of a stream: frames it sent before they were asked for wait in `early`.
struct Client {
    socket: WebSocket,
    early: VecDeque<String>,
    /// The client closed the connection, or it broke.
    gone: bool,
}

impl Client {
    fn new(socket: WebSocket) -> Client {
        Client {
            socket,
            early: VecDeque::new(),
            gone: false,
        }
    }

    /// The next text frame; `None` when the client closed, broke the connection, or sent
    /// something else (where the reference's `receive_str` fails and ends the stream).
    async fn next_text(&mut self) -> Option<String> {
        if let Some(text) = self.early.pop_front() {
            return Some(text);
        }
        while !self.gone {
            match self.socket.recv().await {
                Some(Ok(Message::Text(text))) => return Some(text.as_str().to_owned()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Binary(_))) => return None,
                Some(Ok(Message::Close(_)) | Err(_)) | None => self.gone = true,
            }
        }
        None
    }

    /// Awaits `work` while watching the connection, so that a client that leaves meanwhile is
    /// noticed; text frames that arrive are kept for [`Client::next_text`].
    async fn during<T>(&mut self, work: impl Future<Output = T>) -> T {
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                incoming = self.socket.recv(), if !self.gone => match incoming {
                    Some(Ok(Message::Text(text))) => self.early.push_back(text.as_str().to_owned()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_))) => {}
                    Some(Ok(Message::Close(_)) | Err(_)) | None => self.gone = true,
                },
            }
        }
    }

    /// Sends `frame` as a JSON text frame; a failure means the client is gone.
    async fn send_json<T: Serialize>(&mut self, frame: &T) -> bool {
        if self.socket.send(json_frame(frame)).await.is_err() {
            self.gone = true;
        }
        !self.gone
    }

    /// `{"status": "error", "msg": msg}`.
    async fn send_error(&mut self, msg: String) {
        self.send_json(&ErrorFrame {
            status: "error",
            msg,
        })
        .await;
    }

    /// A normal close, as aiohttp closes a handler's WebSocket when the handler returns.
    async fn close(&mut self) {
        if !self.gone {
            let frame = CloseFrame {
                code: close_code::NORMAL,
                reason: "".into(),
            };
            let _ = self.socket.send(Message::Close(Some(frame))).await;
        }
    }
}

/// `frame` as a text frame of Python's JSON.
fn json_frame<T: Serialize>(frame: &T) -> Message {
    Message::text(String::from_utf8_lossy(&to_python_json(frame)).into_owned())
}

#[derive(Debug, Serialize)]
struct ErrorFrame {
    status: &'static str,
    msg: String,
}

/// One answer of the agent as the stream forwards it, in the reference's key order.
#[derive(Debug, Serialize)]
struct ResultFrame {
    status: Value,
    console: Value,
    #[serde(rename = "exitCode")]
    exit_code: Value,
    options: Value,
    files: Value,
}

impl ResultFrame {
    fn of(reply: &Value) -> ResultFrame {
        let field = |key: &str| reply.get(key).cloned().unwrap_or(Value::Null);
        ResultFrame {
            status: field("status"),
            console: field("console"),
            exit_code: field("exitCode"),
            options: field("options"),
            files: field("files"),
        }
    }
}

/// Python's `repr` of a string without single quotes in it, and of an `AssertionError` or
/// `JSONDecodeError` carrying it.
fn python_exception_repr(class: &str, message: &str) -> String {
    if message.contains('\'') && !message.contains('"') {
        format!("{class}(\"{message}\")")
    } else {
        format!("{class}('{}')", message.replace('\'', "\\'"))
    }
}

/// The first frame's run: `mode` (`query` or `batch`), `code`, `options`, checked as the
/// reference's assertions check them; the message is the reference's frame text.
fn first_run(text: &str, run_id: &str) -> Result<Run, String> {
    let invalid = |class: &str, message: &str| {
        format!(
            "Invalid API parameters: {}",
            python_exception_repr(class, message)
        )
    };
    let params: Value = serde_json::from_str(text)
        .map_err(|error| invalid("JSONDecodeError", &error.to_string()))?;
    let Value::Object(params) = params else {
        return Err(invalid(
            "AssertionError",
            "the first frame must be a JSON object",
        ));
    };
    let mode = params
        .get("mode")
        .filter(|mode| !matches!(mode, Value::Null | Value::Bool(false)))
        .filter(|mode| mode.as_str() != Some(""))
        .ok_or_else(|| invalid("AssertionError", "mode is missing or empty!"))?;
    let mode = mode
        .as_str()
        .filter(|mode| STREAM_MODES.contains(mode))
        .ok_or_else(|| invalid("AssertionError", "mode has an invalid value."))?;
    let code = match params.get("code") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(code)) => code.clone(),
        Some(_) => return Err(invalid("AssertionError", "code must be a string.")),
    };
    let opts = options_of(&params).map_err(|error| {
        invalid(
            "AssertionError",
            error.msg.as_deref().unwrap_or("options must be an object."),
        )
    })?;
    Ok(Run {
        run_id: Some(run_id.to_owned()),
        mode: mode.to_owned(),
        code,
        opts,
    })
}

/// The `repr` of the reference's `BackendError` an agent call raised, as its error frames
/// quote it: `<KernelExecutionFailed: {title} ({exception})>`.
fn backend_error_repr(error: &ApiError) -> String {
    if error.kind != ErrorKind::KernelExecutionFailed {
        return format!("<{error}>");
    }
    let details = error.data.as_ref();
    let title = details
        .and_then(|details| details.get("title"))
        .and_then(Value::as_str)
        .unwrap_or("None");
    match details
        .and_then(|details| details.get("exception"))
        .and_then(Value::as_str)
        .filter(|exception| !exception.is_empty())
    {
        Some(exception) => format!("<KernelExecutionFailed: {title} ({exception})>"),
        None => format!("<KernelExecutionFailed: {title}>"),
    }
}

/// One `stream_execute` connection.
struct ExecuteStream {
    client: Client,
    target: KernelTarget,
    version: ApiVersion,
}

impl ExecuteStream {
    async fn run(&mut self) {
        // This connection is one run.
        let run_id = token_hex_8();
        let Some(first) = self.client.next_text().await else {
            return;
        };
        let mut run = match first_run(&first, &run_id) {
            Ok(run) => run,
            Err(msg) => {
                tracing::warn!(target: "bai_api", "STREAM_EXECUTE: invalid/missing parameters: {msg}");
                self.client.send_error(msg).await;
                return;
            }
        };
        loop {
            let call = self
                .target
                .execute(&self.version, run, Some(STREAM_FLUSH_TIMEOUT));
            let reply = self.client.during(call).await;
            if self.client.gone {
                tracing::debug!(target: "bai_api", "STREAM_EXECUTE: client disconnected (interrupted)");
                if let Err(error) = self.target.interrupt().await {
                    tracing::warn!(
                        target: "bai_api",
                        "STREAM_EXECUTE (k:{}): interrupting the run failed: {error}",
                        self.target.kernel_id
                    );
                }
                return;
            }
            let reply = match reply {
                Ok(reply) => reply,
                Err(error) => {
                    tracing::warn!(target: "bai_api", "STREAM_EXECUTE: exception: {error}");
                    self.client
                        .send_error(format!("BackendError: {}", backend_error_repr(&error)))
                        .await;
                    return;
                }
            };
            if !reply.is_null() {
                if !self.client.send_json(&ResultFrame::of(&reply)).await {
                    return;
                }
                match reply.get("status").and_then(Value::as_str) {
                    Some("finished") => return,
                    Some("waiting-input") => {
                        let Some(input) = self.client.next_text().await else {
                            return;
                        };
                        run = Run::without_options(run_id.clone(), "input", input);
                        continue;
                    }
                    Some(status) if RUNNER_STATUSES.contains(&status) => {}
                    Some(status) => {
                        // The reference would call the agent again without end.
                        tracing::warn!(
                            target: "bai_api",
                            "STREAM_EXECUTE (k:{}): the run ends on the agent's status {status:?}",
                            self.target.kernel_id
                        );
                        return;
                    }
                    None => {
                        tracing::warn!(
                            target: "bai_api",
                            "STREAM_EXECUTE (k:{}): the agent's answer has no status: {reply}",
                            self.target.kernel_id
                        );
                        return;
                    }
                }
            }
            // Nothing yet, or more to come: continue the run.
            run = Run::without_options(run_id.clone(), "continue", String::new());
        }
    }
}

// ----- GET /stream/session/{name}/pty -----

async fn stream_pty(
    State(ctx): State<ApiContext>,
    Extension(version): Extension<ApiVersion>,
    Authenticated(caller): Authenticated,
    Path(session_name): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let access_key = caller.access_key();
    let session = get_session(&ctx, &session_name, access_key).await?;
    tracing::info!(target: "bai_api", "STREAM_PTY(ak:{access_key}, s:{session_name})");
    let kernel = main_kernel(&ctx, &session).await?;
    let target = KernelTarget::for_kernel(&ctx, &session, &kernel, "A session's terminal")?;
    let upgrade = accept(&ctx, upgrade)?;
    let streams = connect_pty(&kernel)?;
    Ok(upgrade.on_upgrade(move |socket| async move {
        let mut stream = PtyStream {
            socket,
            streams,
            target,
            version,
            ctx,
            session,
        };
        stream.run().await;
    }))
}

/// The kernel's terminal streams: its `kernel_host` (or, without one, the host of its agent's
/// address) at its `stdin_port` and `stdout_port`.
fn connect_pty(kernel: &kernels::Model) -> Result<PtyStreams, ApiError> {
    let host = match &kernel.kernel_host {
        Some(host) => host.clone(),
        None => kernel
            .agent_addr
            .as_deref()
            .and_then(address_host)
            .ok_or_else(|| no_terminal(kernel, "it has neither a host nor an agent address"))?,
    };
    let port = |port: i32| {
        u16::try_from(port).map_err(|_| no_terminal(kernel, &format!("its port {port} is invalid")))
    };
    PtyStreams::connect(&host, port(kernel.stdin_port)?, port(kernel.stdout_port)?)
        .map_err(|error| ApiError::internal("connecting the kernel's terminal", &error))
}

fn no_terminal(kernel: &kernels::Model, why: &str) -> ApiError {
    tracing::warn!(target: "bai_api", "stream_pty (k:{}): no terminal: {why}", kernel.id);
    ApiError::new(ErrorKind::InternalServerError)
}

/// The host of an address like `tcp://10.0.0.5:6001` (Python's `urlparse(...).hostname`).
fn address_host(addr: &str) -> Option<String> {
    let rest = addr.split_once("://").map_or(addr, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(bracketed),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// A frame of terminal output.
#[derive(Debug, Serialize)]
struct OutFrame {
    r#type: &'static str,
    data: String,
}

/// One `stream_pty` connection.
struct PtyStream {
    socket: WebSocket,
    streams: PtyStreams,
    target: KernelTarget,
    version: ApiVersion,
    ctx: ApiContext,
    session: sessions::Model,
}

impl PtyStream {
    async fn run(&mut self) {
        loop {
            tokio::select! {
                incoming = self.socket.recv() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        if let Err(why) = self.on_client_frame(text.as_str()).await {
                            tracing::warn!(
                                target: "bai_api",
                                "stream_stdin({}): {why}",
                                self.target.kernel_id
                            );
                            return;
                        }
                    }
                    Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                },
                output = self.streams.recv() => {
                    let Some(bytes) = output else { return };
                    let frame = OutFrame {
                        r#type: "out",
                        data: data_encoding::BASE64.encode(&bytes),
                    };
                    if self.socket.send(json_frame(&frame)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Handles one client frame; an error ends the stream, as an exception ends the reference's
    /// `stream_stdin`.
    async fn on_client_frame(&mut self, text: &str) -> Result<(), String> {
        let frame: Value = serde_json::from_str(text)
            .map_err(|error| format!("a frame that is no JSON: {error}"))?;
        let kind = frame
            .get("type")
            .and_then(Value::as_str)
            .ok_or("a frame without a type")?;
        let code = match kind {
            "stdin" => {
                let chars = frame
                    .get("chars")
                    .and_then(Value::as_str)
                    .ok_or("a stdin frame without chars")?;
                let bytes = data_encoding::BASE64
                    .decode(chars.as_bytes())
                    .map_err(|error| format!("stdin chars that are no base64: {error}"))?;
                return self.streams.send(bytes).map_err(|error| error.to_string());
            }
            "resize" => {
                let rows = frame.get("rows").ok_or("a resize frame without rows")?;
                let cols = frame.get("cols").ok_or("a resize frame without cols")?;
                format!("%resize {} {}", python_str(rows), python_str(cols))
            }
            "ping" => "%ping".to_owned(),
            "restart" => return self.restart().await,
            _ => return Ok(()),
        };
        let run = Run::without_options(token_hex_8(), "query", code);
        self.target
            .execute(&self.version, run, None)
            .await
            .map(|_| ())
            .map_err(|error| format!("executing a terminal command failed: {error}"))
    }

    /// Restarts the session, then reconnects to the kernel's terminal at its new ports.
    async fn restart(&mut self) -> Result<(), String> {
        tracing::debug!(target: "bai_api", "stream_stdin: restart requested");
        let rpc = self.ctx.agent_rpc().ok_or("restarting needs agent RPC")?;
        let restarter = bai_sessions::Restarter::new(
            self.ctx.db().clone(),
            EventProducer::new(self.ctx.redis().stream.clone()),
            Arc::clone(rpc),
        );
        restarter
            .restart(self.session.id)
            .await
            .map_err(|error| format!("restarting the session failed: {error}"))?;
        let kernel = main_kernel(&self.ctx, &self.session)
            .await
            .map_err(|error| format!("reading the restarted kernel failed: {error}"))?;
        self.streams = connect_pty(&kernel).map_err(|error| error.to_string())?;
        tracing::debug!(target: "bai_api", "stream_stdin({}): zmq stream reset", kernel.id);
        Ok(())
    }
}

/// Python's `str()` of a JSON value in an f-string: strings as they are, others as JSON.
fn python_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

// ----- GET /stream/session/{name}/apps -----

async fn get_stream_apps(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(session_name): Path<String>,
) -> Result<PyJson<Vec<Value>>, ApiError> {
    let access_key = caller.access_key();
    let session = get_session(&ctx, &session_name, access_key).await?;
    let kernel = main_kernel(&ctx, &session).await?;
    Ok(PyJson(wire_service_ports(kernel.service_ports.as_ref())))
}
