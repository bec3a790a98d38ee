//! One long-lived connection per agent with many calls in flight.
//!
//! ZeroMQ sockets must stay on one thread and the `zmq` crate blocks, so each [`Connection`] owns
//! an OS thread that owns the DEALER. Callers hand it requests over a channel and wake it through
//! an inproc PAIR socket; the thread polls both sockets, sends requests, and routes each answer
//! to its caller's oneshot channel by `(meth, seq)` (the order key is always `""`). Timeouts are
//! the callers': a call that gives up, or whose future is dropped, tells the thread, which sends
//! the agent a CANCEL for that request.
//!
//! The thread also reads the DEALER's socket monitor, so that it knows what libzmq does below:
//! a refused or broken handshake fails `connect` at once with its reason (not as a bare timeout),
//! and a dropped connection fails the calls the agent had (it may or may not have run them)
//! instead of leaving them to hang. libzmq reconnects by itself; the DEALER only takes messages
//! while a connection is up (`ZMQ_IMMEDIATE`), so calls made meanwhile wait in our own queue and
//! go out once it is back, or fail unsent after the handshake timeout, as the reference's call
//! would fail its connect.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
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

/// The most connections one ZeroMQ context serves. libzmq caps a context at 1023 sockets
/// (`ZMQ_MAX_SOCKETS_DFLT`; the `zmq` crate cannot raise it) and a connection holds five (the
/// DEALER, both ends of its monitor, the wake pair), with room left for sockets still closing.
const CONNECTIONS_PER_CONTEXT: usize = 180;

/// The contexts of a client's connections, a new one whenever the others are full, so that a
/// manager reaches any number of agents.
#[derive(Default)]
struct ContextPool {
    contexts: Mutex<Vec<(zmq::Context, Arc<AtomicUsize>)>>,
}

/// A context with room for one connection, counted as used until it is dropped.
struct ContextLease {
    context: zmq::Context,
    connections: Arc<AtomicUsize>,
}

impl Drop for ContextLease {
    fn drop(&mut self) {
        self.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ContextPool {
    fn lease(&self) -> ContextLease {
        let mut contexts = self
            .contexts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let free = contexts
            .iter()
            .position(|(_, used)| used.load(Ordering::Acquire) < CONNECTIONS_PER_CONTEXT);
        let index = free.unwrap_or_else(|| {
            contexts.push((zmq::Context::new(), Arc::default()));
            contexts.len() - 1
        });
        let (context, connections) = &contexts[index];
        connections.fetch_add(1, Ordering::AcqRel);
        ContextLease {
            context: context.clone(),
            connections: Arc::clone(connections),
        }
    }
}

/// Opens connections to agents: ZeroMQ contexts shared by them, the manager's keypair and the
/// handshake timeout.
#[derive(Clone)]
pub struct RpcClient {
    contexts: Arc<ContextPool>,
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
            contexts: Arc::default(),
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
        let inproc = NEXT_INPROC.fetch_add(1, Ordering::Relaxed);
        let lease = self.contexts.lease();
        let context = &lease.context;
        let (dealer, monitor) = self
            .dealer(
                context,
                target,
                &format!("inproc://bai-agent-rpc-monitor-{inproc}"),
            )
            .map_err(|error| match error {
                DealerError::Zmq(source) => socket_error(source),
                DealerError::NoKeypair => RpcError::NoManagerKeypair {
                    agent: agent.clone(),
                },
            })?;
        let wake_addr = format!("inproc://bai-agent-rpc-wake-{inproc}");
        let wake_rx = context.socket(zmq::PAIR).map_err(socket_error)?;
        wake_rx.bind(&wake_addr).map_err(socket_error)?;
        let wake_tx = context.socket(zmq::PAIR).map_err(socket_error)?;
        wake_tx.connect(&wake_addr).map_err(socket_error)?;

        let (commands_tx, commands_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let timeout = self.handshake_timeout;
        let io = Io {
            agent: agent.clone(),
            send_timeout: timeout,
            dealer,
            monitor,
            wake: wake_rx,
            commands: commands_rx,
            pending: HashMap::new(),
            waiting: VecDeque::new(),
            link: Link::Down,
            _context: lease,
        };
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

        let curve_failed = |reason: String| RpcError::CurveHandshake {
            agent: agent.clone(),
            addr: target.addr.clone(),
            reason,
        };
        let no_answer = |reached: bool| {
            if target.public_key.is_some() {
                curve_failed(format!(
                    "no answer to PING within {timeout:?} (check the agent's public key and that \
                     the agent accepts this manager's key)"
                ))
            } else {
                RpcError::NoAnswer {
                    agent: agent.clone(),
                    addr: target.addr.clone(),
                    timeout,
                    reached,
                }
            }
        };
        // The thread keeps the handshake's time itself; this bound only guards against a thread
        // that never reports.
        let failure = match tokio::time::timeout(timeout + Duration::from_secs(1), ready_rx).await {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(failure))) => Some(failure),
            Ok(Err(_)) | Err(_) => Some(Handshake::NoPong { reached: false }),
        };
        if let Some(failure) = failure {
            return Err(match failure {
                Handshake::NoPong { reached } => no_answer(reached),
                Handshake::Zmq(source) => socket_error(source),
                Handshake::MechanismMismatch | Handshake::Closed if target.public_key.is_none() => {
                    RpcError::NeedsCurve {
                        agent: agent.clone(),
                        addr: target.addr.clone(),
                    }
                }
                Handshake::MechanismMismatch => curve_failed(
                    "the agent does not use CURVE (no rpc-auth-agent-keypair), yet its row has a \
                     public key"
                        .to_owned(),
                ),
                Handshake::Refused { status } => curve_failed(format!(
                    "the agent refused this manager's key (ZAP status {status}): its \
                     rpc-auth-manager-public-key is not this manager's public key"
                )),
                Handshake::Protocol { code } => {
                    curve_failed(format!("ZMTP protocol error {code:#x}"))
                }
                Handshake::Closed => curve_failed(
                    "the agent closed the connection during the handshake: the public key in its \
                     row is not the key it serves with, or it does not use CURVE"
                        .to_owned(),
                ),
            });
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

    /// The DEALER, connecting, and the PAIR that reads its socket monitor (connected before the
    /// DEALER connects, so that no event of the first connection is missed).
    fn dealer(
        &self,
        context: &zmq::Context,
        target: &AgentTarget,
        monitor_addr: &str,
    ) -> Result<(zmq::Socket, zmq::Socket), DealerError> {
        let dealer = context.socket(zmq::DEALER)?;
        // Options of the reference (Callosum's LINGER, the manager's keepalive, spec §3.4).
        dealer.set_linger(100)?;
        dealer.set_tcp_keepalive(1)?;
        dealer.set_tcp_keepalive_idle(60)?;
        dealer.set_tcp_keepalive_intvl(20)?;
        dealer.set_tcp_keepalive_cnt(3)?;
        // Ours: messages are only queued on a live connection (others wait in `Io::waiting`, so
        // that a call given up while the agent was away is never sent later), and an agent that
        // stays away is retried with backoff rather than every 100 ms.
        dealer.set_immediate(true)?;
        dealer.set_reconnect_ivl_max(RECONNECT_IVL_MAX_MS)?;
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
        dealer.monitor(monitor_addr, MONITORED_EVENTS)?;
        let monitor = context.socket(zmq::PAIR)?;
        monitor.connect(monitor_addr)?;
        dealer.connect(&target.addr)?;
        Ok((dealer, monitor))
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
            Ok(Err(Answer::Dropped)) => {
                return Err(RpcError::Disconnected {
                    agent: self.agent.clone(),
                    method: method.to_owned(),
                });
            }
            Ok(Err(Answer::NotSent(waited))) => {
                return Err(RpcError::NotSent {
                    agent: self.agent.clone(),
                    method: method.to_owned(),
                    waited,
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

/// Numbers the inproc endpoints (wake-up and monitor) of all connections.
static NEXT_INPROC: AtomicU64 = AtomicU64::new(0);

/// How often an idle connection's thread checks whether its [`Connection`] still exists.
const IDLE_CHECK_MS: i64 = 1000;

/// libzmq retries a lost connection after 100 ms, doubling up to this.
const RECONNECT_IVL_MAX_MS: i32 = 5000;

/// libzmq's `ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH` (zmq.h): one side uses CURVE, the other
/// NULL.
const PROTOCOL_ERROR_MECHANISM_MISMATCH: u32 = 0x1100_0002;

/// What the connection's thread reads from the DEALER's monitor.
const MONITORED_EVENTS: i32 = zmq::SocketEvent::CONNECTED as i32
    | zmq::SocketEvent::DISCONNECTED as i32
    | zmq::SocketEvent::HANDSHAKE_SUCCEEDED as i32
    | zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL as i32
    | zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL as i32
    | zmq::SocketEvent::HANDSHAKE_FAILED_AUTH as i32;

enum DealerError {
    Zmq(zmq::Error),
    NoKeypair,
}

impl From<zmq::Error> for DealerError {
    fn from(error: zmq::Error) -> Self {
        DealerError::Zmq(error)
    }
}

/// Why the connection's first handshake failed.
enum Handshake {
    /// No PONG in time; `reached` when a TCP connection was made at all.
    NoPong {
        reached: bool,
    },
    /// One side uses CURVE and the other does not.
    MechanismMismatch,
    /// The agent's ZAP handler refused our key.
    Refused {
        status: u32,
    },
    /// Another ZMTP protocol error (libzmq's `ZMQ_PROTOCOL_ERROR_*`).
    Protocol {
        code: u32,
    },
    /// The agent closed the connection before the handshake completed: with CURVE, it could not
    /// read our HELLO, sealed for the key of its row; without, it requires CURVE.
    Closed,
    Zmq(zmq::Error),
}

/// What the thread hands back for a call when the agent did not answer it normally.
enum Answer {
    Send(zmq::Error),
    Bad(MessageError),
    /// The connection dropped while the agent had the call.
    Dropped,
    /// No connection to send it on within the handshake timeout; never sent.
    NotSent(Duration),
}

type Reply = oneshot::Sender<Result<Outcome, Answer>>;

enum Command {
    Call {
        method: String,
        seq: u32,
        frames: Frames,
        reply: Reply,
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

/// A call that could not be handed to the DEALER yet (no live connection, or its queue full).
struct Waiting {
    method: String,
    seq: u32,
    frames: Frames,
    reply: Reply,
    since: Instant,
}

/// The state of the connection below the DEALER, as its monitor tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// Handshake done: messages flow.
    Up,
    /// No connection (at first, until the first handshake).
    Down,
    /// Lost, and a reconnection's handshake failed: warned about once until it is up again.
    Failing,
}

/// One event of the DEALER's monitor.
enum LinkEvent {
    TcpConnected,
    Up,
    Down,
    FailedNoDetail,
    FailedProtocol(u32),
    FailedAuth(u32),
}

impl LinkEvent {
    /// libzmq's monitor message: a frame of the event (u16) and its value (u32) in host byte
    /// order, then a frame with the endpoint.
    fn parse(frames: &[Vec<u8>]) -> Option<LinkEvent> {
        let first = frames.first()?;
        let event = u16::from_ne_bytes(first.get(0..2)?.try_into().ok()?);
        let value = u32::from_ne_bytes(first.get(2..6)?.try_into().ok()?);
        let is = |kind: zmq::SocketEvent| event == kind.to_raw();
        Some(if is(zmq::SocketEvent::CONNECTED) {
            LinkEvent::TcpConnected
        } else if is(zmq::SocketEvent::HANDSHAKE_SUCCEEDED) {
            LinkEvent::Up
        } else if is(zmq::SocketEvent::DISCONNECTED) {
            LinkEvent::Down
        } else if is(zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL) {
            LinkEvent::FailedNoDetail
        } else if is(zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL) {
            LinkEvent::FailedProtocol(value)
        } else if is(zmq::SocketEvent::HANDSHAKE_FAILED_AUTH) {
            LinkEvent::FailedAuth(value)
        } else {
            return None;
        })
    }
}

/// The connection's thread: the DEALER, its monitor, the wake-up socket and the calls.
struct Io {
    agent: String,
    /// How long a call may wait for a connection before it fails unsent: the handshake timeout.
    send_timeout: Duration,
    dealer: zmq::Socket,
    monitor: zmq::Socket,
    wake: zmq::Socket,
    commands: mpsc::Receiver<Command>,
    /// Calls the agent has, by `(meth, seq)`.
    pending: HashMap<(String, u32), Reply>,
    /// Calls not sent yet, oldest first.
    waiting: VecDeque<Waiting>,
    link: Link,
    /// Declared last, so that the context counts the connection until its sockets are closed.
    _context: ContextLease,
}

impl Io {
    /// Waits for the ZMTP handshake (CURVE's too), then sends PING and waits for PONG, as
    /// Callosum's connector does; a refused or broken handshake ends the wait at once.
    fn handshake(&mut self, timeout: Duration) -> Result<(), Handshake> {
        let deadline = Instant::now() + timeout;
        let mut reached = false;
        let mut ping_sent = false;
        loop {
            if matches!(self.link, Link::Up) && !ping_sent {
                match self
                    .dealer
                    .send_multipart([&b"PING"[..], b"", b""], zmq::DONTWAIT)
                {
                    Ok(()) => ping_sent = true,
                    // The pipe attaches right after the event; the next turn sends.
                    Err(zmq::Error::EAGAIN) => {}
                    Err(error) => return Err(Handshake::Zmq(error)),
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Handshake::NoPong { reached });
            }
            let mut millis = i64::try_from(left.as_millis()).unwrap_or(i64::MAX).max(1);
            if matches!(self.link, Link::Up) && !ping_sent {
                millis = millis.min(10);
            }
            let (dealer_ready, monitor_ready) = {
                let mut items = [
                    self.dealer.as_poll_item(zmq::POLLIN),
                    self.monitor.as_poll_item(zmq::POLLIN),
                ];
                match zmq::poll(&mut items, millis) {
                    Ok(_) => {}
                    Err(zmq::Error::EINTR) => continue,
                    Err(error) => return Err(Handshake::Zmq(error)),
                }
                (items[0].is_readable(), items[1].is_readable())
            };
            if monitor_ready {
                while let Some(event) = self.next_event() {
                    match event {
                        LinkEvent::TcpConnected => reached = true,
                        LinkEvent::Up => self.link = Link::Up,
                        LinkEvent::Down | LinkEvent::FailedNoDetail => {
                            let was_up = matches!(self.link, Link::Up);
                            self.link = Link::Down;
                            ping_sent = false;
                            // A listener that accepts and then closes during the handshake does
                            // not take our mechanism: with CURVE, it could not read a HELLO sealed
                            // for another key; without, it requires CURVE.
                            if !was_up {
                                return Err(Handshake::Closed);
                            }
                        }
                        LinkEvent::FailedAuth(status) => return Err(Handshake::Refused { status }),
                        LinkEvent::FailedProtocol(code) => {
                            return Err(if code == PROTOCOL_ERROR_MECHANISM_MISMATCH {
                                Handshake::MechanismMismatch
                            } else {
                                Handshake::Protocol { code }
                            });
                        }
                    }
                }
            }
            if dealer_ready {
                loop {
                    match self.dealer.recv_multipart(zmq::DONTWAIT) {
                        Ok(frames) if frames.first().is_some_and(|first| first == b"PONG") => {
                            return Ok(());
                        }
                        // Anything else before the PONG is not ours.
                        Ok(_) => {}
                        Err(zmq::Error::EAGAIN) => break,
                        Err(error) => return Err(Handshake::Zmq(error)),
                    }
                }
            }
        }
    }

    /// The next event of the monitor, if one is there.
    fn next_event(&self) -> Option<LinkEvent> {
        loop {
            let frames = self.monitor.recv_multipart(zmq::DONTWAIT).ok()?;
            if let Some(event) = LinkEvent::parse(&frames) {
                return Some(event);
            }
        }
    }

    /// Serves calls until the connection is dropped.
    fn serve(&mut self) {
        loop {
            let mut dealer_events = zmq::POLLIN;
            if self.link == Link::Up && !self.waiting.is_empty() {
                dealer_events |= zmq::POLLOUT;
            }
            let (dealer_ready, wake_ready, monitor_ready) = {
                let mut items = [
                    self.dealer.as_poll_item(dealer_events),
                    self.wake.as_poll_item(zmq::POLLIN),
                    self.monitor.as_poll_item(zmq::POLLIN),
                ];
                match zmq::poll(&mut items, self.poll_millis()) {
                    Ok(_) => {}
                    Err(zmq::Error::EINTR) => continue,
                    Err(error) => {
                        tracing::warn!(agent.id = %self.agent, %error, "agent RPC socket failed; closing the connection");
                        return;
                    }
                }
                (
                    items[0].is_readable(),
                    items[1].is_readable(),
                    items[2].is_readable(),
                )
            };
            // Also when idle: a connection dropped before its first call never wakes us.
            while wake_ready && self.wake.recv_bytes(zmq::DONTWAIT).is_ok() {}
            if !self.run_commands() {
                return;
            }
            // Answers first: those that came before the connection dropped still count.
            if dealer_ready {
                self.receive();
            }
            if monitor_ready {
                while let Some(event) = self.next_event() {
                    self.on_link_event(event);
                }
            }
            self.flush_waiting();
            self.expire_waiting();
        }
    }

    /// Until the oldest waiting call expires, at most [`IDLE_CHECK_MS`].
    fn poll_millis(&self) -> i64 {
        self.waiting.front().map_or(IDLE_CHECK_MS, |oldest| {
            let left = (oldest.since + self.send_timeout).saturating_duration_since(Instant::now());
            i64::try_from(left.as_millis())
                .unwrap_or(IDLE_CHECK_MS)
                .clamp(1, IDLE_CHECK_MS)
        })
    }

    fn on_link_event(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::TcpConnected => {}
            LinkEvent::Up => {
                if !matches!(self.link, Link::Up) {
                    tracing::info!(agent.id = %self.agent, "agent RPC connection is back");
                }
                self.link = Link::Up;
            }
            LinkEvent::Down => {
                if matches!(self.link, Link::Up) {
                    tracing::warn!(
                        agent.id = %self.agent,
                        in_flight = self.pending.len(),
                        "agent RPC connection lost; the calls in flight fail, libzmq reconnects"
                    );
                    self.link = Link::Down;
                }
                for (_, reply) in self.pending.drain() {
                    let _ = reply.send(Err(Answer::Dropped));
                }
            }
            LinkEvent::FailedNoDetail | LinkEvent::FailedProtocol(_) | LinkEvent::FailedAuth(_) => {
                if matches!(self.link, Link::Down) {
                    let reason = match event {
                        LinkEvent::FailedProtocol(code) => format!("ZMTP protocol error {code:#x}"),
                        LinkEvent::FailedAuth(status) => {
                            format!("the agent refused this manager's key (ZAP status {status})")
                        }
                        _ => "the agent closed the connection during the handshake".to_owned(),
                    };
                    tracing::warn!(agent.id = %self.agent, reason, "agent RPC cannot reconnect; retrying with backoff");
                    self.link = Link::Failing;
                }
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
                }) => self.waiting.push_back(Waiting {
                    method,
                    seq,
                    frames,
                    reply,
                    since: Instant::now(),
                }),
                Ok(Command::Cancel { method, seq }) => self.cancel(method, seq),
                Ok(Command::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => return true,
            }
        }
    }

    /// A call given up: sent ones are cancelled on the agent, waiting ones are never sent.
    fn cancel(&mut self, method: String, seq: u32) {
        let key = (method, seq);
        if self.pending.remove(&key).is_some() {
            let frames = message::encode_cancel(&key.0, seq);
            if let Err(error) = self.send(&frames) {
                tracing::debug!(agent.id = %self.agent, method = key.0, %error, "cannot send CANCEL");
            }
        } else if let Some(index) = self
            .waiting
            .iter()
            .position(|call| call.seq == seq && call.method == key.0)
        {
            self.waiting.remove(index);
        }
        // Otherwise it was answered meanwhile: nothing to cancel.
    }

    /// Hands waiting calls to the DEALER, oldest first, while it takes them. Only on a live link:
    /// right after a drop the DEALER may not have detached the dead pipe yet and would take a
    /// message only to lose it.
    fn flush_waiting(&mut self) {
        if self.link != Link::Up {
            return;
        }
        while let Some(call) = self.waiting.front() {
            match self.send(&call.frames) {
                Ok(()) => {
                    let call = self.waiting.pop_front().expect("a front call");
                    self.pending.insert((call.method, call.seq), call.reply);
                }
                Err(zmq::Error::EAGAIN) => return,
                Err(error) => {
                    let call = self.waiting.pop_front().expect("a front call");
                    let _ = call.reply.send(Err(Answer::Send(error)));
                }
            }
        }
    }

    /// Fails the calls that found no connection within the handshake timeout.
    fn expire_waiting(&mut self) {
        let now = Instant::now();
        while self
            .waiting
            .front()
            .is_some_and(|call| now.duration_since(call.since) >= self.send_timeout)
        {
            let call = self.waiting.pop_front().expect("a front call");
            let _ = call
                .reply
                .send(Err(Answer::NotSent(now.duration_since(call.since))));
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
