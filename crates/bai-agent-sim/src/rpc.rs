//! The agent's RPC server: a ZeroMQ ROUTER speaking Callosum 1.0.3 (spec §3), as
//! `ai.backend.agent.server` binds it, with CURVE and a ZAP handler when the agent has a keypair.
//!
//! libzmq is blocking, so each ROUTER lives in its own thread. Requests go to a tokio task that
//! runs each as its own task (like the reference's `ExitOrderedAsyncScheduler`) and sends each
//! reply, when it is ready, back to the thread through an inproc PAIR. A CANCEL aborts the running
//! handler and is answered with CANCELLED.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bai_agent_rpc::message::{self, ExceptionInfo, Frames, Header, Request};
use bai_rpc_keys::{CurveKeypair, PublicKey};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::SimError;
use crate::methods::{Agent, Answer};

/// How long a blocking poll waits before it looks at the stop flag.
const POLL_MS: i64 = 50;

/// The ZAP endpoint libzmq asks (one handler per ZeroMQ context).
const ZAP_ENDPOINT: &str = "inproc://zeromq.zap.01";

/// CURVE for the agents of one process: the agent's keypair and the only manager key accepted.
#[derive(Clone)]
pub(crate) struct Curve {
    pub agent: CurveKeypair,
    pub manager: PublicKey,
}

/// The ZeroMQ context of one [`crate::run`], with its ZAP handler when CURVE is on.
pub(crate) struct RpcContext {
    pub context: zmq::Context,
    pub curve: Option<Curve>,
    zap: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl RpcContext {
    pub fn new(curve: Option<Curve>) -> Result<RpcContext, SimError> {
        let context = zmq::Context::new();
        let zap =
            match &curve {
                Some(curve) => Some(start_zap(&context, curve.manager).map_err(|source| {
                    SimError::Rpc(format!("starting the ZAP handler: {source}"))
                })?),
                None => None,
            };
        Ok(RpcContext {
            context,
            curve,
            zap,
        })
    }

    /// Stops the ZAP handler (after every server stopped) and waits for its thread.
    pub fn stop(mut self) {
        if let Some((stop, thread)) = self.zap.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
    }
}

impl Drop for RpcContext {
    fn drop(&mut self) {
        if let Some((stop, _)) = &self.zap {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Accepts only CURVE clients in domain "local" presenting `manager` (spec §3.5).
fn start_zap(
    context: &zmq::Context,
    manager: PublicKey,
) -> Result<(Arc<AtomicBool>, JoinHandle<()>), String> {
    let socket = context
        .socket(zmq::REP)
        .map_err(|error| error.to_string())?;
    socket.set_linger(0).map_err(|error| error.to_string())?;
    socket
        .bind(ZAP_ENDPOINT)
        .map_err(|error| format!("binding {ZAP_ENDPOINT}: {error}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("agent-sim-zap".to_owned())
        .spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match socket.poll(zmq::POLLIN, POLL_MS) {
                    Ok(0) => continue,
                    Ok(_) => {}
                    Err(_) => break,
                }
                let Ok(frames) = socket.recv_multipart(0) else {
                    break;
                };
                // version, request id, domain, address, identity, mechanism, credentials...
                let request_id = frames.get(1).cloned().unwrap_or_default();
                let accepted = frames.len() >= 7
                    && frames[0] == b"1.0"
                    && frames[2] == b"local"
                    && frames[5] == b"CURVE"
                    && frames[6] == manager.as_bytes();
                let reply: [&[u8]; 6] = if accepted {
                    [b"1.0", &request_id, b"200", b"OK", b"manager", b""]
                } else {
                    tracing::warn!("refused an RPC client: not the configured manager key");
                    [b"1.0", &request_id, b"400", b"Unknown client", b"", b""]
                };
                if socket.send_multipart(reply, 0).is_err() {
                    break;
                }
            }
        })
        .map_err(|error| format!("starting its thread: {error}"))?;
    Ok((stop, thread))
}

/// A request read by the ROUTER thread.
struct Incoming {
    peer: Vec<u8>,
    request: Request,
}

/// One agent's ROUTER thread and the way back to it.
struct Transport {
    /// Replies as `[peer, "UPPER", header, body]`, forwarded by the thread to the ROUTER.
    replies: Mutex<zmq::Socket>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Transport {
    fn send(&self, peer: &[u8], frames: &Frames) {
        let socket = self
            .replies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let parts: [&[u8]; 4] = [peer, message::UPPER, &frames.header, &frames.body];
        if let Err(error) = socket.send_multipart(parts, 0) {
            tracing::warn!("cannot queue an RPC reply: {error}");
        }
    }
}

static PAIR_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Binds the ROUTER at `addr` (retrying a taken port for a while: a previous run may still be
/// closing it) and starts its thread.
async fn bind(
    rpc: &RpcContext,
    agent_id: &str,
    addr: &str,
    incoming: mpsc::UnboundedSender<Incoming>,
) -> Result<Transport, SimError> {
    let failed = |what: &str, error: zmq::Error| {
        SimError::Rpc(format!("agent {agent_id}: {what} {addr}: {error}"))
    };
    let router = rpc
        .context
        .socket(zmq::ROUTER)
        .map_err(|error| failed("creating the ROUTER for", error))?;
    router
        .set_linger(0)
        .map_err(|error| failed("configuring the ROUTER for", error))?;
    if let Some(curve) = &rpc.curve {
        let configure = || -> Result<(), zmq::Error> {
            router.set_curve_server(true)?;
            router.set_curve_secretkey(curve.agent.secret_key().as_bytes())?;
            router.set_zap_domain("local")?;
            Ok(())
        };
        configure().map_err(|error| failed("setting up CURVE for", error))?;
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match router.bind(addr) {
            Ok(()) => break,
            Err(zmq::Error::EADDRINUSE) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(failed("binding", error)),
        }
    }
    let endpoint = format!(
        "inproc://bai-agent-sim-replies-{}",
        PAIR_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let pair = |what| {
        let socket = rpc
            .context
            .socket(zmq::PAIR)
            .map_err(|error| failed(what, error))?;
        socket.set_linger(0).map_err(|error| failed(what, error))?;
        Ok::<_, SimError>(socket)
    };
    let inbox = pair("creating the reply queue of")?;
    inbox
        .bind(&endpoint)
        .map_err(|error| failed("binding the reply queue of", error))?;
    let replies = pair("creating the reply queue of")?;
    replies
        .connect(&endpoint)
        .map_err(|error| failed("connecting the reply queue of", error))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name(format!("rpc-{agent_id}"))
        .spawn(move || serve(&router, &inbox, &incoming, &stopping))
        .map_err(|error| {
            SimError::Rpc(format!(
                "agent {agent_id}: starting its RPC thread: {error}"
            ))
        })?;
    Ok(Transport {
        replies: Mutex::new(replies),
        stop,
        thread: Mutex::new(Some(thread)),
    })
}

/// The ROUTER thread: answers PING, hands requests to the tokio side, forwards replies.
fn serve(
    router: &zmq::Socket,
    inbox: &zmq::Socket,
    incoming: &mpsc::UnboundedSender<Incoming>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let mut items = [
            router.as_poll_item(zmq::POLLIN),
            inbox.as_poll_item(zmq::POLLIN),
        ];
        if zmq::poll(&mut items, POLL_MS).is_err() {
            break;
        }
        if items[1].is_readable() {
            while let Ok(reply) = inbox.recv_multipart(zmq::DONTWAIT) {
                if let Err(error) = router.send_multipart(reply, 0) {
                    tracing::warn!("cannot send an RPC reply: {error}");
                }
            }
        }
        if !items[0].is_readable() {
            continue;
        }
        while let Ok(frames) = router.recv_multipart(zmq::DONTWAIT) {
            let Some((peer, rest)) = frames.split_first() else {
                continue;
            };
            if let Some(pong) = message::pong(rest) {
                let [kind, first, second] = &pong;
                let parts: [&[u8]; 4] = [peer, kind, first, second];
                if let Err(error) = router.send_multipart(parts, 0) {
                    tracing::warn!("cannot send PONG: {error}");
                }
                continue;
            }
            // Like Callosum, anything but PING and UPPER is ignored.
            let [kind, header, body] = rest else {
                continue;
            };
            if kind != message::UPPER {
                continue;
            }
            match message::decode_request(header, body) {
                Ok(request) => {
                    if incoming
                        .send(Incoming {
                            peer: peer.clone(),
                            request,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
                Err(error) => tracing::warn!("ignoring a malformed RPC request: {error}"),
            }
        }
    }
}

/// The handlers running, by `(peer, meth, seq)`: what a CANCEL names.
type Running = HashMap<(Vec<u8>, String, u32), tokio::task::JoinHandle<()>>;

/// What a simulated agent does wrong, for the manager's error paths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// `create_kernels` answers FAILURE.
    pub fail_create: bool,
    /// Requests are read and never answered.
    pub never_answer: bool,
    /// The RPC server stops on receiving `create_kernels`, without answering.
    pub die_mid_call: bool,
}

/// Serves `agent`'s RPC at `addr` until `shutdown` (or, with `die_mid_call`, the first
/// `create_kernels`).
pub(crate) async fn run_server(
    rpc: &RpcContext,
    agent: Arc<Agent>,
    addr: &str,
    faults: Faults,
    shutdown: &CancellationToken,
) -> Result<ServerHandle, SimError> {
    let (incoming_tx, mut incoming) = mpsc::unbounded_channel();
    let transport = Arc::new(bind(rpc, &agent.id, addr, incoming_tx).await?);
    let done = CancellationToken::new();
    let stopped = done.clone();
    let shutdown = shutdown.clone();
    let serving = Arc::clone(&transport);
    let task = tokio::spawn(async move {
        let running: Arc<Mutex<Running>> = Arc::default();
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => break,
                () = stopped.cancelled() => break,
                next = incoming.recv() => next,
            };
            let Some(Incoming { peer, request }) = next else {
                break;
            };
            match request {
                Request::Cancel { header } => {
                    let key = (peer.clone(), header.method.clone(), header.seq);
                    let handle = lock(&running).remove(&key);
                    if let Some(handle) = handle {
                        handle.abort();
                        // Once it is gone, what it held is given back (its slots, say).
                        let _ = handle.await;
                        if !faults.never_answer {
                            serving.send(&peer, &message::encode_cancelled(&header));
                        }
                    }
                }
                Request::Function {
                    header,
                    args,
                    kwargs,
                } => {
                    if faults.never_answer {
                        continue;
                    }
                    if faults.die_mid_call && header.method == "create_kernels" {
                        tracing::warn!(
                            "agent {}: stopping its RPC server in the middle of create_kernels \
                             (--die-mid-call)",
                            agent.id
                        );
                        serving.stop.store(true, Ordering::Relaxed);
                        break;
                    }
                    let key = (peer.clone(), header.method.clone(), header.seq);
                    let (agent, transport, running_now) = (
                        Arc::clone(&agent),
                        Arc::clone(&serving),
                        Arc::clone(&running),
                    );
                    let finished_key = key.clone();
                    // Hold the lock while spawning, so that the handler's removal of its own key
                    // happens after the insertion.
                    let mut table = lock(&running);
                    let handle = tokio::spawn(async move {
                        let answer = agent.call(&header.method, args, kwargs, faults).await;
                        let frames = reply(&header, answer);
                        // Only a handler still registered answers (a cancelled one was answered).
                        if lock(&running_now).remove(&finished_key).is_some() {
                            transport.send(&finished_key.0, &frames);
                        }
                    });
                    table.insert(key, handle);
                }
            }
        }
        let handlers: Vec<_> = lock(&running).drain().map(|(_, handle)| handle).collect();
        for handle in handlers {
            handle.abort();
            let _ = handle.await;
        }
    });
    Ok(ServerHandle {
        transport,
        task,
        done,
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn reply(header: &Header, answer: Answer) -> Frames {
    match answer {
        Answer::Result(value) => message::encode_result(header, &value),
        Answer::Failure { exc_name, repr } => message::encode_failure(
            header,
            &ExceptionInfo {
                traceback: format!(
                    "Traceback (most recent call last):\n  (agent-sim)\n{exc_name}: {repr}\n"
                ),
                exc_name,
                repr,
            },
        ),
        Answer::Error { exc_name, repr } => message::encode_error(
            header,
            &ExceptionInfo {
                traceback: format!("{exc_name}: {repr}\n"),
                exc_name,
                repr,
            },
        ),
    }
}

/// A running server.
pub(crate) struct ServerHandle {
    transport: Arc<Transport>,
    task: tokio::task::JoinHandle<()>,
    done: CancellationToken,
}

impl ServerHandle {
    /// Stops serving and closes the ROUTER.
    pub async fn stop(mut self) {
        self.done.cancel();
        let _ = (&mut self.task).await;
        self.transport.stop.store(true, Ordering::Relaxed);
        let thread = lock(&self.transport.thread).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for ServerHandle {
    /// When its agent's task is aborted: the server goes too (its thread within a poll).
    fn drop(&mut self) {
        self.task.abort();
        self.transport.stop.store(true, Ordering::Relaxed);
    }
}
