//! The manager's side of agent RPC: Callosum 1.0.3 over ZeroMQ, as Backend.AI 24.03 and 23.09
//! agents speak it (spec `scheduler-agent-rpc.md` §3).
//!
//! [`message`] writes requests and cancellations and reads replies, byte for byte as Callosum
//! does; request arguments and return values are Backend.AI msgpack (`bai_events::codec`).
//! [`RpcClient::connect`] opens one [`Connection`] per agent: a DEALER connected to the agent's
//! ROUTER, CURVE when the agent has a public key (with the manager keypair of `bai-rpc-keys`),
//! the NULL mechanism otherwise, and the PING/PONG handshake. Unlike the reference, which opens a
//! new ZeroMQ context, socket and handshake for every call, a connection stays open and carries
//! many calls at once, matched to their answers by sequence number; a call that times out or is
//! dropped is cancelled on the agent.
//!
//! What this crate must not do: know which agents exist or where (callers pass the address and
//! public key from the agent registry), read configuration or key files (callers pass the loaded
//! keypair), touch the database, etcd or Redis, or log a key or a call's arguments. It must not
//! call a method on an agent that lacks it (an unknown method ends the Python agent's RPC loop):
//! that check belongs to the typed method table ([`AgentMethod`], [`AgentConnection`]), which
//! refuses such a call with [`RpcError::Unsupported`] before sending.
//!
//! [`PtyStreams`] is the other ZeroMQ link the manager has with a kernel: the PUB/SUB pair to a
//! kernel's `stdin_port`/`stdout_port` that the API's terminal stream relays.

mod client;
mod error;
pub mod message;
mod methods;
mod pty;
#[cfg(feature = "testing")]
pub mod testing;

pub use crate::client::{AgentTarget, Connection, DEFAULT_HANDSHAKE_TIMEOUT, RpcClient};
pub use crate::error::RpcError;
pub use crate::methods::{
    AgentConnection, AgentMethod, AgentVersion, CommitOptions, ExecuteRequest, check_method,
};
pub use crate::pty::{PtyError, PtyStreams};
