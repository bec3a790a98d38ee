//! The Backend.AI msgpack flavour (`ai.backend.common.msgpack`), in which event args, heartbeats
//! and RPC payloads travel.
//!
//! [`decode`] reads one msgpack value and turns Backend.AI's ext types into plain values, so the
//! code above reads one kind of tree: a UUID (ext 1) becomes its hyphenated text, a datetime (ext
//! 2, temporenc) RFC 3339 text, a `Decimal` (ext 3) its decimal text, paths (ext 4, 5) their text,
//! an enum member (ext 6) its value, a `ResourceSlot` (ext 8) a map of slot name to decimal text
//! and a `BinarySize` (ext 16) an integer. Decimals, enums, slots and sizes arrive as Python
//! pickles; a strict reader takes the few shapes they have apart and never runs anything.
//!
//! [`encode`] writes plain values, as the reference's events write ids (`str(uuid)`). We never
//! write pickles: Python peers accept plain strings where they expect enums and decimals, and a
//! 23.09 peer cannot read ext 8, so slots go as `{slot: "decimal"}` maps.
//!
//! It must not know which event or field a value belongs to; the event catalogue does.

mod image_list;
mod pickle;
mod temporenc;
#[cfg(test)]
mod tests;

pub use image_list::{decode_image_list, encode_image_list};

use rmpv::Value;

/// Why bytes are not a Backend.AI msgpack value.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("malformed msgpack: {0}")]
    Msgpack(#[from] rmpv::decode::Error),
    #[error("bytes follow the msgpack value")]
    TrailingBytes,
    /// Python peers decode with `raw=False` and reject such a string too.
    #[error("a msgpack string is not UTF-8: {0}")]
    InvalidUtf8(std::str::Utf8Error),
    #[error("unknown msgpack ext type {0}")]
    UnknownExt(i8),
    #[error("a UUID (msgpack ext 1) is not 16 bytes long")]
    BadUuid,
    #[error("bad temporenc datetime (msgpack ext 2): {0}")]
    Temporenc(String),
    #[error("bad pickle in msgpack ext {ext} ({}): {reason}", ext::name(*ext))]
    Pickle { ext: i8, reason: String },
    #[error("bad heartbeat image list: {0}")]
    ImageList(String),
}

/// Reads exactly one msgpack value and turns Backend.AI ext types, at any depth and in map keys,
/// into plain values (see the module documentation).
pub fn decode(bytes: &[u8]) -> Result<Value, CodecError> {
    let mut rest = bytes;
    let value = rmpv::decode::read_value_with_max_depth(&mut rest, MAX_DEPTH)?;
    if let Some(offset) = reserved_marker(bytes) {
        let reason = format!("byte 0xc1 at offset {offset} is not a msgpack marker");
        let err = std::io::Error::new(std::io::ErrorKind::InvalidData, reason);
        return Err(CodecError::Msgpack(rmpv::decode::Error::InvalidMarkerRead(
            err,
        )));
    }
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes);
    }
    plain(value)
}

/// Msgpack bytes of a value: `Binary` as bin, `String` as str, `Ext` as it is.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, value)
        .expect("writing to a Vec fails only when memory runs out");
    bytes
}

/// rmpv counts a level for each value and one more for each container or string body, so this
/// allows about 120 levels of nesting: Backend.AI messages have fewer than ten, and decoding
/// recurses, so a deep message must not exhaust a task's stack.
const MAX_DEPTH: usize = 256;

/// The ext type codes of `ai.backend.common.msgpack.ExtTypes`.
mod ext {
    pub(super) const UUID: i8 = 1;
    pub(super) const DATETIME: i8 = 2;
    pub(super) const DECIMAL: i8 = 3;
    pub(super) const POSIX_PATH: i8 = 4;
    pub(super) const PURE_POSIX_PATH: i8 = 5;
    pub(super) const ENUM: i8 = 6;
    pub(super) const RESOURCE_SLOT: i8 = 8;
    pub(super) const BINARY_SIZE: i8 = 16;

    /// The Python type behind a code, for error messages.
    pub(super) fn name(code: i8) -> &'static str {
        match code {
            UUID => "UUID",
            DATETIME => "datetime",
            DECIMAL => "Decimal",
            POSIX_PATH => "PosixPath",
            PURE_POSIX_PATH => "PurePosixPath",
            ENUM => "enum",
            RESOURCE_SLOT => "ResourceSlot",
            BINARY_SIZE => "BinarySize",
            _ => "unknown",
        }
    }
}

/// The value with every ext type replaced; [`MAX_DEPTH`] bounds the recursion.
fn plain(value: Value) -> Result<Value, CodecError> {
    Ok(match value {
        Value::String(text) => match text.as_err() {
            Some(err) => return Err(CodecError::InvalidUtf8(*err)),
            None => Value::String(text),
        },
        Value::Array(items) => {
            Value::Array(items.into_iter().map(plain).collect::<Result<_, _>>()?)
        }
        Value::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(key, value)| Ok((plain(key)?, plain(value)?)))
                .collect::<Result<_, CodecError>>()?,
        ),
        Value::Ext(code, data) => plain_ext(code, &data)?,
        scalar => scalar,
    })
}

fn plain_ext(code: i8, data: &[u8]) -> Result<Value, CodecError> {
    let pickle_error = |reason| CodecError::Pickle { ext: code, reason };
    match code {
        ext::UUID => {
            let uuid = uuid::Uuid::from_slice(data).map_err(|_| CodecError::BadUuid)?;
            Ok(Value::from(uuid.hyphenated().to_string()))
        }
        ext::DATETIME => temporenc::to_rfc3339(data)
            .map(Value::from)
            .map_err(CodecError::Temporenc),
        ext::DECIMAL => pickle::decimal(data).map(Value::from).map_err(pickle_error),
        // `os.fsencode` bytes; a path that is not UTF-8 is rare enough to read lossily.
        ext::POSIX_PATH | ext::PURE_POSIX_PATH => {
            Ok(Value::from(String::from_utf8_lossy(data).into_owned()))
        }
        ext::ENUM => pickle::enum_value(data).map_err(pickle_error),
        ext::RESOURCE_SLOT => pickle::resource_slot(data).map_err(pickle_error),
        ext::BINARY_SIZE => pickle::int_subclass(data).map_err(pickle_error),
        unknown => Err(CodecError::UnknownExt(unknown)),
    }
}

/// Where the first value of `bytes` has the marker 0xc1, which msgpack never uses: rmpv reads it
/// as nil, Python's reader refuses it, and so do we. Walks the markers without building values;
/// `None` also when the bytes end early (rmpv has reported that already).
fn reserved_marker(bytes: &[u8]) -> Option<usize> {
    let length = |at: usize, width: usize| -> Option<usize> {
        let field = bytes.get(at..at.checked_add(width)?)?;
        Some(
            field
                .iter()
                .fold(0, |len, &byte| len << 8 | usize::from(byte)),
        )
    };
    let mut pos = 0;
    // Values still to walk; each takes at least one byte, so the loop ends with the bytes.
    let mut pending: usize = 1;
    while pending > 0 {
        let marker = *bytes.get(pos)?;
        pending -= 1;
        let body = pos + 1;
        // Bytes after the marker to skip, and values inside.
        let (skip, children) = match marker {
            0xc1 => return Some(pos),
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, 0),
            0x80..=0x8f => (0, 2 * usize::from(marker & 0x0f)),
            0x90..=0x9f => (0, usize::from(marker & 0x0f)),
            0xa0..=0xbf => (usize::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (1 + length(body, 1)?, 0),
            0xc5 | 0xda => (2 + length(body, 2)?, 0),
            0xc6 | 0xdb => (4 + length(body, 4)?, 0),
            0xc7 => (2 + length(body, 1)?, 0),
            0xc8 => (3 + length(body, 2)?, 0),
            0xc9 => (5 + length(body, 4)?, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (2, length(body, 2)?),
            0xdd => (4, length(body, 4)?),
            0xde => (2, 2 * length(body, 2)?),
            0xdf => (4, length(body, 4)?.checked_mul(2)?),
        };
        pos = body.checked_add(skip)?;
        pending = pending.checked_add(children)?;
    }
    None
}
