//! One long-lived connection per agent with many calls in flight.
//!
//! ZeroMQ sockets must stay on one thread and the `zmq` crate blocks, so each [`Connection`] owns
//! an OS thread that owns the DEALER. Callers hand it requests over a channel and wake it through
//! an inproc PAIR socket; the thread polls both sockets, sends requests, and routes each answer
//! to its caller's oneshot channel by `(meth, seq)` (the order key is always `""`). Timeouts are
//! the callers': a call that gives up, or whose future is dropped, tells the thread, which sends
//! the agent a CANCEL for that request.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bai_rpc_keys::{CurveKeypair, PublicKey};
use rmpv::Value;
use tokio::sync::oneshot;

use crate::error::RpcError;
use crate::message::{self, Frames, MessageError, Outcome};

/// How long the PING/PONG handshake may take, as the reference's Callosum default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where an agent listens, as its `agents` row says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentTarget {
    pub agent_id: String,
    /// `tcp://host:port` (`agents.addr`).
    pub addr: String,
    /// `agents.public_key`: with one, the connection uses CURVE; without, the NULL mechanism.
    pub public_key: Option<PublicKey>,
}

/// Opens connections to agents: one ZeroMQ context for all of them, the manager's keypair and the
/// handshake timeout.
#[derive(Clone)]
pub struct RpcClient {
    context: zmq::Context,
    manager_keypair: Option<Arc<CurveKeypair>>,
    handshake_timeout: Duration,
}

impl fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcClient")
            .field(
                "manager_public_key",
                &self.manager_keypair.as_ref().map(|pair| *pair.public_key()),
            )
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

impl RpcClient {
    /// A client with the manager keypair (`rpc-auth-manager-keypair`), needed for agents that
    /// have a public key.
    pub fn new(manager_keypair: Option<CurveKeypair>) -> RpcClient {
        RpcClient {
            context: zmq::Context::new(),
            manager_keypair: manager_keypair.map(Arc::new),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    pub fn with_handshake_timeout(mut self, timeout: Duration) -> RpcClient {
        self.handshake_timeout = timeout;
        self
    }

    /// Connects to the agent and waits for its answer to a PING.
    pub async fn connect(&self, target: &AgentTarget) -> Result<Connection, RpcError> {
        let agent = target.agent_id.clone();
        let socket_error = |source| RpcError::Socket {
            agent: agent.clone(),
            addr: target.addr.clone(),
            source,
        };
        let dealer = self.dealer(target).map_err(|error| match error {
            DealerError::Zmq(source) => socket_error(source),
            DealerError::NoKeypair => RpcError::NoManagerKeypair {
                agent: agent.clone(),
            },
        })?;
        let wake_addr = format!(
            "inproc://bai-agent-rpc-wake-{}",
            NEXT_WAKE.fetch_add(1, Ordering::Relaxed)
        );
        let wake_rx = self.context.socket(zmq::PAIR).map_err(socket_error)?;
        wake_rx.bind(&wake_addr).map_err(socket_error)?;
        let wake_tx = self.context.socket(zmq::PAIR).map_err(socket_error)?;
        wake_tx.connect(&wake_addr).map_err(socket_error)?;

        let (commands_tx, commands_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let io = Io {
            agent: agent.clone(),
            dealer,
            wake: wake_rx,
            commands: commands_rx,
            pending: HashMap::new(),
        };
        let timeout = self.handshake_timeout;
        std::thread::Builder::new()
            .name(format!("agent-rpc-{agent}"))
            .spawn(move || {
                let mut io = io;
                let handshake = io.handshake(timeout);
                let ok = handshake.is_ok();
                // Nobody to serve when the caller of `connect` went away meanwhile.
                if ready_tx.send(handshake).is_ok() && ok {
                    io.serve();
                }
            })
            .map_err(|source| RpcError::Thread {
                agent: agent.clone(),
                source,
            })?;

        let no_answer = || {
            if target.public_key.is_some() {
                RpcError::CurveHandshake {
                    agent: agent.clone(),
                    addr: target.addr.clone(),
                    timeout,
                }
            } else {
                RpcError::NoAnswer {
                    agent: agent.clone(),
                    addr: target.addr.clone(),
                    timeout,
                }
            }
        };
        // The thread keeps the handshake's time itself; this bound only guards against a thread
        // that never reports.
        match tokio::time::timeout(timeout + Duration::from_secs(1), ready_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(Handshake::NoPong))) | Ok(Err(_)) | Err(_) => return Err(no_answer()),
            Ok(Ok(Err(Handshake::Zmq(source)))) => return Err(socket_error(source)),
        }
        tracing::debug!(agent.id = %agent, addr = %target.addr, curve = target.public_key.is_some(), "agent RPC connected");
        Ok(Connection {
            agent,
            shared: Arc::new(Shared {
                commands: Mutex::new(commands_tx),
                wake: Mutex::new(wake_tx),
                next_seq: AtomicU32::new(0),
            }),
        })
    }

    fn dealer(&self, target: &AgentTarget) -> Result<zmq::Socket, DealerError> {
        let dealer = self.context.socket(zmq::DEALER)?;
        // Options of the reference (Callosum's LINGER, the manager's keepalive, spec §3.4).
        dealer.set_linger(100)?;
        dealer.set_tcp_keepalive(1)?;
        dealer.set_tcp_keepalive_idle(60)?;
        dealer.set_tcp_keepalive_intvl(20)?;
        dealer.set_tcp_keepalive_cnt(3)?;
        if let Some(agent_key) = &target.public_key {
            let keypair = self
                .manager_keypair
                .as_ref()
                .ok_or(DealerError::NoKeypair)?;
            dealer.set_zap_domain("local")?;
            dealer.set_curve_serverkey(agent_key.as_bytes())?;
            dealer.set_curve_publickey(keypair.public_key().as_bytes())?;
            dealer.set_curve_secretkey(keypair.secret_key().as_bytes())?;
        }
        dealer.connect(&target.addr)?;
        Ok(dealer)
    }
}

/// A connection to one agent. Calls may run concurrently from any task; dropping the connection
/// ends its thread and closes the socket, and calls still waiting end with [`RpcError::Closed`].
pub struct Connection {
    agent: String,
    shared: Arc<Shared>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

impl Connection {
    pub fn agent_id(&self) -> &str {
        &self.agent
    }

    /// Calls `method(*args, **kwargs)` on the agent and returns what it returned. With a
    /// `timeout`, a call not answered in time is cancelled on the agent and fails with
    /// [`RpcError::Timeout`]; without, it waits as long as the connection lives (the reference
    /// has no timeout for most methods).
    pub async fn call(
        &self,
        method: &str,
        args: Vec<Value>,
        kwargs: Vec<(String, Value)>,
        timeout: Option<Duration>,
    ) -> Result<Value, RpcError> {
        // Wraps at 2^32, as Callosum's sequence numbers do.
        let seq = self.shared.next_seq.fetch_add(1, Ordering::Relaxed);
        let frames = message::encode_function(method, seq, args, kwargs);
        let (reply_tx, reply_rx) = oneshot::channel();
        let closed = || RpcError::Closed {
            agent: self.agent.clone(),
            method: method.to_owned(),
        };
        self.shared
            .submit(Command::Call {
                method: method.to_owned(),
                seq,
                frames,
                reply: reply_tx,
            })
            .map_err(|()| closed())?;
        let mut guard = CancelOnDrop {
            shared: &self.shared,
            method,
            seq,
            armed: true,
        };
        let answer = match timeout {
            Some(limit) => match tokio::time::timeout(limit, reply_rx).await {
                Ok(answer) => answer,
                Err(_) => {
                    // The guard sends the CANCEL.
                    return Err(RpcError::Timeout {
                        agent: self.agent.clone(),
                        method: method.to_owned(),
                        timeout: limit,
                    });
                }
            },
            None => reply_rx.await,
        };
        guard.armed = false;
        let outcome = match answer {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(Answer::Send(source))) => {
                return Err(RpcError::Send {
                    agent: self.agent.clone(),
                    method: method.to_owned(),
                    source,
                });
            }
            Ok(Err(Answer::Bad(source))) => {
                return Err(RpcError::BadReply {
                    agent: self.agent.clone(),
                    method: method.to_owned(),
                    source,
                });
            }
            Err(_) => return Err(closed()),
        };
        let agent = self.agent.clone();
        let method = method.to_owned();
        match outcome {
            Outcome::Result(value) => Ok(value),
            Outcome::Failure(info) => Err(RpcError::Failure {
                agent,
                method,
                exc_name: info.exc_name,
                repr: info.repr,
                traceback: info.traceback,
            }),
            Outcome::Error(info) => Err(RpcError::Internal {
                agent,
                method,
                exc_name: info.exc_name,
                repr: info.repr,
                traceback: info.traceback,
            }),
            Outcome::Cancelled => Err(RpcError::Cancelled { agent, method }),
        }
    }

    /// `ping(msg)`: the agent returns `msg`.
    pub async fn ping(&self, msg: &str, timeout: Option<Duration>) -> Result<Value, RpcError> {
        self.call("ping", vec![Value::from(msg)], Vec::new(), timeout)
            .await
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.shared.submit(Command::Shutdown);
    }
}

static NEXT_WAKE: AtomicU64 = AtomicU64::new(0);

/// How often an idle connection's thread checks whether its [`Connection`] still exists.
const IDLE_CHECK_MS: i64 = 1000;

enum DealerError {
    Zmq(zmq::Error),
    NoKeypair,
}

impl From<zmq::Error> for DealerError {
    fn from(error: zmq::Error) -> Self {
        DealerError::Zmq(error)
    }
}

enum Handshake {
    NoPong,
    Zmq(zmq::Error),
}

/// What the thread hands back for a call when the agent did not answer it normally.
enum Answer {
    Send(zmq::Error),
    Bad(MessageError),
}

enum Command {
    Call {
        method: String,
        seq: u32,
        frames: Frames,
        reply: oneshot::Sender<Result<Outcome, Answer>>,
    },
    Cancel {
        method: String,
        seq: u32,
    },
    Shutdown,
}

/// What the callers share: the way to the connection's thread.
struct Shared {
    // `Sender` is `Sync` on our toolchain, but the mutex also orders a command before its wake-up.
    commands: Mutex<mpsc::Sender<Command>>,
    wake: Mutex<zmq::Socket>,
    next_seq: AtomicU32,
}

impl Shared {
    /// Queues `command` and wakes the thread; `Err` when the thread is gone.
    fn submit(&self, command: Command) -> Result<(), ()> {
        {
            let commands = self.commands.lock().unwrap_or_else(|e| e.into_inner());
            commands.send(command).map_err(|_| ())?;
        }
        let wake = self.wake.lock().unwrap_or_else(|e| e.into_inner());
        // A full queue of wake-ups already wakes the thread.
        let _ = wake.send(&[][..], zmq::DONTWAIT);
        Ok(())
    }
}

/// Cancels the call on the agent unless disarmed: on timeout, and when the caller's future is
/// dropped.
struct CancelOnDrop<'a> {
    shared: &'a Shared,
    method: &'a str,
    seq: u32,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.shared.submit(Command::Cancel {
                method: self.method.to_owned(),
                seq: self.seq,
            });
        }
    }
}

/// The connection's thread: the DEALER, the wake-up socket and the calls in flight.
struct Io {
    agent: String,
    dealer: zmq::Socket,
    wake: zmq::Socket,
    commands: mpsc::Receiver<Command>,
    pending: HashMap<(String, u32), oneshot::Sender<Result<Outcome, Answer>>>,
}

impl Io {
    /// Sends PING and waits for PONG, as Callosum's connector does.
    fn handshake(&mut self, timeout: Duration) -> Result<(), Handshake> {
        self.dealer
            .send_multipart([&b"PING"[..], b"", b""], zmq::DONTWAIT)
            .map_err(Handshake::Zmq)?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Handshake::NoPong);
            }
            let millis = i64::try_from(left.as_millis()).unwrap_or(i64::MAX).max(1);
            match self.dealer.poll(zmq::POLLIN, millis) {
                Ok(0) | Err(zmq::Error::EINTR) => continue,
                Ok(_) => {}
                Err(error) => return Err(Handshake::Zmq(error)),
            }
            match self.dealer.recv_multipart(zmq::DONTWAIT) {
                Ok(frames) if frames.first().is_some_and(|first| first == b"PONG") => {
                    return Ok(());
                }
                // Anything else before the PONG is not ours.
                Ok(_) | Err(zmq::Error::EAGAIN) => {}
                Err(error) => return Err(Handshake::Zmq(error)),
            }
        }
    }

    /// Serves calls until the connection is dropped.
    fn serve(&mut self) {
        loop {
            let (dealer_ready, wake_ready) = {
                let mut items = [
                    self.dealer.as_poll_item(zmq::POLLIN),
                    self.wake.as_poll_item(zmq::POLLIN),
                ];
                match zmq::poll(&mut items, IDLE_CHECK_MS) {
                    Ok(_) => {}
                    Err(zmq::Error::EINTR) => continue,
                    Err(error) => {
                        tracing::warn!(agent.id = %self.agent, %error, "agent RPC socket failed; closing the connection");
                        return;
                    }
                }
                (items[0].is_readable(), items[1].is_readable())
            };
            // Also when idle: a connection dropped before its first call never wakes us.
            while wake_ready && self.wake.recv_bytes(zmq::DONTWAIT).is_ok() {}
            if !self.run_commands() {
                return;
            }
            if dealer_ready {
                self.receive();
            }
        }
    }

    /// Runs the queued commands; `false` when the connection is to close.
    fn run_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Call {
                    method,
                    seq,
                    frames,
                    reply,
                }) => match self.send(&frames) {
                    Ok(()) => {
                        self.pending.insert((method, seq), reply);
                    }
                    Err(error) => {
                        let _ = reply.send(Err(Answer::Send(error)));
                    }
                },
                Ok(Command::Cancel { method, seq }) => {
                    // Answered meanwhile: nothing to cancel.
                    if self.pending.remove(&(method.clone(), seq)).is_some() {
                        let frames = message::encode_cancel(&method, seq);
                        if let Err(error) = self.send(&frames) {
                            tracing::debug!(agent.id = %self.agent, method, %error, "cannot send CANCEL");
                        }
                    }
                }
                Ok(Command::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => return true,
            }
        }
    }

    fn send(&self, frames: &Frames) -> Result<(), zmq::Error> {
        self.dealer
            .send_multipart([&b"UPPER"[..], &frames.header, &frames.body], zmq::DONTWAIT)
    }

    /// Reads everything the agent sent and answers the callers.
    fn receive(&mut self) {
        loop {
            let frames = match self.dealer.recv_multipart(zmq::DONTWAIT) {
                Ok(frames) => frames,
                Err(zmq::Error::EAGAIN) => return,
                Err(error) => {
                    tracing::debug!(agent.id = %self.agent, %error, "agent RPC receive failed");
                    return;
                }
            };
            match frames.as_slice() {
                [kind, header, body] if kind == b"UPPER" => self.answer(header, body),
                // Callosum peers answer a PING wherever it comes from.
                [kind, header, body] if kind == b"PING" => {
                    let _ = self
                        .dealer
                        .send_multipart([&b"PONG"[..], header, body], zmq::DONTWAIT);
                }
                _ => tracing::debug!(agent.id = %self.agent, "ignoring a malformed message"),
            }
        }
    }

    fn answer(&mut self, header: &[u8], body: &[u8]) {
        let header = match message::decode_header(header) {
            Ok(header) => header,
            Err(error) => {
                tracing::debug!(agent.id = %self.agent, %error, "ignoring a message with a bad header");
                return;
            }
        };
        if header.order_key.as_str() != Some("") {
            tracing::debug!(agent.id = %self.agent, method = header.method, "ignoring a reply with a foreign order key");
            return;
        }
        let Some(reply) = self.pending.remove(&(header.method, header.seq)) else {
            // Late: the caller gave up already.
            return;
        };
        let outcome = message::decode_reply_body(header.kind, body).map_err(Answer::Bad);
        let _ = reply.send(outcome);
    }
}
