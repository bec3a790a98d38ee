use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while encoding, generating, writing or loading keys.
///
/// Each message is complete on its own line: variants that wrap another error put its text into
/// their own message instead of exposing it as `source()`, so that printing the chain does not
/// repeat it. File errors start with the path, e.g.
/// `fixtures/manager/manager.key_secret: secret key does not match the public key`.
#[derive(Debug, thiserror::Error)]
pub enum RpcKeyError {
    /// Z85 works on whole groups: 4 bytes when encoding, 5 characters when decoding.
    #[error("Z85 {what} length {len} is not a multiple of {group}")]
    Z85Length {
        what: &'static str,
        len: usize,
        group: usize,
    },

    /// A byte outside the Z85 alphabet; `position` is the 0-based byte offset in the input.
    #[error("invalid Z85 character '{}' at position {position}", .byte.escape_ascii())]
    Z85Character { position: usize, byte: u8 },

    /// A 5-character group whose value does not fit in 32 bits; `position` is where it starts.
    #[error("Z85 group at position {position} encodes a value above 2^32 - 1")]
    Z85Overflow { position: usize },

    #[error("a CURVE key is {expected} Z85 characters (32 bytes), got {len} characters")]
    KeyLength { expected: usize, len: usize },

    #[error("libsodium could not be initialised")]
    SodiumInit,

    #[error("{}: cannot {action}: {error}", .path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        error: io::Error,
    },

    #[error("{} already exists; pass --force to replace it", .path.display())]
    AlreadyExists { path: PathBuf },

    #[error("{}: no public-key line found", .path.display())]
    MissingPublicKey { path: PathBuf },

    #[error(
        "{}: no secret-key line found (a keypair is read from the .key_secret file)",
        .path.display()
    )]
    MissingSecretKey { path: PathBuf },

    #[error("{}: line {line}: `{field}` has no `=`", .path.display())]
    MissingEquals {
        path: PathBuf,
        line: usize,
        field: &'static str,
    },

    #[error("{}: invalid {field}: {reason}", .path.display())]
    InvalidKey {
        path: PathBuf,
        field: &'static str,
        reason: Box<RpcKeyError>,
    },

    #[error("{}: secret key does not match the public key", .path.display())]
    KeyMismatch { path: PathBuf },
}

impl RpcKeyError {
    /// A closure for `map_err` that attaches the path and what was being done to an I/O error.
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |error| Self::Io {
            path,
            action,
            error,
        }
    }
}
