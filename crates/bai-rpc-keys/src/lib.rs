//! ZeroMQ CURVE keypairs for the manager <-> agent RPC channel.
//!
//! The manager authenticates itself to agents with a Curve25519 keypair stored in two certificate
//! files, `NAME.key` (public key) and `NAME.key_secret` (both keys), in exactly the layout pyzmq's
//! `zmq.auth.create_certificates` writes and `zmq.auth.load_certificate` reads, so that files are
//! interchangeable with the Python agents and tools. Keys travel as 40-character Z85 text
//! (ZeroMQ RFC 32), implemented in [`z85`].
//!
//! Unlike the reference implementation, this crate writes the secret file with mode 0600 from the
//! moment it is created, refuses to overwrite an existing pair unless asked to, never leaves a
//! half-written file or half a pair behind, and checks on load that the public key really belongs
//! to the secret key.
//!
//! What this crate must not do: open sockets or speak any protocol (the RPC layer uses the keys),
//! read configuration (callers pass paths), or log or print a secret key. [`SecretKey`]'s `Debug`
//! output is redacted and its bytes are zeroed when it is dropped.

mod certificate;
mod error;
mod keys;
pub mod z85;

pub use crate::certificate::{
    Certificate, CertificatePaths, Overwrite, load_certificate, load_keypair, write_certificates,
};
pub use crate::error::RpcKeyError;
pub use crate::keys::{CurveKeypair, KEY_LEN, KEY_Z85_LEN, PublicKey, SecretKey};
