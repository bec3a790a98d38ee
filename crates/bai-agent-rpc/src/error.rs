//! What can go wrong talking to an agent; every error names the agent, and the method when there
//! is one.

use std::time::Duration;

use crate::message::MessageError;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The socket could not be set up (a bad address, a key libzmq refuses).
    #[error("agent {agent}: cannot open a ZeroMQ connection to {addr}: {source}")]
    Socket {
        agent: String,
        addr: String,
        source: zmq::Error,
    },
    /// The connection's thread could not be started.
    #[error("agent {agent}: cannot start the connection's thread: {source}")]
    Thread {
        agent: String,
        source: std::io::Error,
    },
    /// The agent has a public key, so the connection needs CURVE, but no manager keypair was given.
    #[error(
        "agent {agent} requires CURVE, and no manager keypair (rpc-auth-manager-keypair) is loaded"
    )]
    NoManagerKeypair { agent: String },
    /// With CURVE, the handshake failed: the agent refused our key, closed the connection
    /// because it could not read what we sealed for the key of its row, or never answered.
    #[error("agent {agent} at {addr}: the CURVE handshake failed: {reason}")]
    CurveHandshake {
        agent: String,
        addr: String,
        reason: String,
    },
    /// The agent uses CURVE (it refused or closed our handshake without), but its row has no
    /// public key, so we connected without.
    #[error(
        "agent {agent} at {addr} refused a connection without CURVE: it requires CURVE, but its \
         row has no public key (its heartbeats carry none)"
    )]
    NeedsCurve { agent: String, addr: String },
    /// Without CURVE: nothing answered PING at the address; `reached` when a TCP connection was
    /// made at all.
    #[error(
        "agent {agent} at {addr} did not answer PING within {timeout:?}{}",
        if *reached { "" } else { " (no connection could be made)" }
    )]
    NoAnswer {
        agent: String,
        addr: String,
        timeout: Duration,
        reached: bool,
    },
    /// No answer within the call's timeout; the request was cancelled on the agent.
    #[error("agent {agent}: {method} got no answer within {timeout:?} (cancelled)")]
    Timeout {
        agent: String,
        method: String,
        timeout: Duration,
    },
    /// The agent's handler raised (Callosum FAILURE; the reference's `AgentError`).
    #[error("agent {agent}: {method} raised {exc_name}: {repr}")]
    Failure {
        agent: String,
        method: String,
        exc_name: String,
        repr: String,
        traceback: String,
    },
    /// Callosum failed inside the agent (Callosum ERROR; the reference's `RPCInternalError`).
    #[error("agent {agent}: {method} failed inside the agent's RPC layer: {exc_name}: {repr}")]
    Internal {
        agent: String,
        method: String,
        exc_name: String,
        repr: String,
        traceback: String,
    },
    /// The agent cancelled the call (Callosum CANCELLED).
    #[error("agent {agent}: {method} was cancelled by the agent")]
    Cancelled { agent: String, method: String },
    /// The request could not be handed to the socket.
    #[error("agent {agent}: cannot send {method}: {source}")]
    Send {
        agent: String,
        method: String,
        source: zmq::Error,
    },
    /// The connection to the agent dropped while the agent had the call: it may or may not have
    /// run it. The connection reconnects by itself.
    #[error(
        "agent {agent}: the connection dropped while {method} was in flight (the agent may or may \
         not have run it)"
    )]
    Disconnected { agent: String, method: String },
    /// No connection to the agent for the handshake timeout: the call was never sent.
    #[error("agent {agent}: no connection for {waited:?}; {method} was not sent")]
    NotSent {
        agent: String,
        method: String,
        waited: Duration,
    },
    /// The connection ended (its socket failed) before the answer came.
    #[error("agent {agent}: the connection closed before {method} was answered")]
    Closed { agent: String, method: String },
    /// The answer could not be read.
    #[error("agent {agent}: bad answer to {method}: {source}")]
    BadReply {
        agent: String,
        method: String,
        source: MessageError,
    },
    /// The agent's version lacks the method; nothing was sent (an unknown method would end the
    /// Python agent's RPC loop).
    #[error("agent {agent} (version {version:?}) has no RPC method {method}; not sent")]
    Unsupported {
        agent: String,
        method: String,
        version: String,
    },
    /// The agent answered with a value of the wrong shape for the method.
    #[error("agent {agent}: unexpected answer to {method}: {detail}")]
    UnexpectedReply {
        agent: String,
        method: String,
        detail: String,
    },
}

impl RpcError {
    /// The kind of failure as one word, for the metrics' bounded `error` label.
    pub fn kind(&self) -> &'static str {
        match self {
            RpcError::Socket { .. } => "socket",
            RpcError::Thread { .. } => "thread",
            RpcError::NoManagerKeypair { .. } => "no_manager_keypair",
            RpcError::CurveHandshake { .. } => "curve_handshake",
            RpcError::NeedsCurve { .. } => "needs_curve",
            RpcError::NoAnswer { .. } => "no_answer",
            RpcError::Timeout { .. } => "timeout",
            RpcError::Failure { .. } => "failure",
            RpcError::Internal { .. } => "internal",
            RpcError::Cancelled { .. } => "cancelled",
            RpcError::Send { .. } => "send",
            RpcError::Disconnected { .. } => "disconnected",
            RpcError::NotSent { .. } => "not_sent",
            RpcError::Closed { .. } => "closed",
            RpcError::BadReply { .. } => "bad_reply",
            RpcError::Unsupported { .. } => "unsupported",
            RpcError::UnexpectedReply { .. } => "unexpected_reply",
        }
    }
}
