//! The image list of an agent heartbeat: `images` is a msgpack array of `[repo_tag, digest]`
//! pairs, zlib-compressed when `images.opts` is `{"compression": "zlib"}` (what 24.03 agents send;
//! the agent's comment allows `None` for uncompressed).

use std::borrow::Cow;
use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use rmpv::Value;

use crate::codec::{CodecError, decode, encode};

/// More than any agent's image list; a zip bomb stops here instead of filling memory.
const MAX_DECOMPRESSED_BYTES: u64 = 64 * 1024 * 1024;

/// The `(repo_tag, digest)` pairs of a heartbeat's `images`, given its `images.opts`: zlib when
/// the opts say `"compression": "zlib"`, uncompressed when the opts or their compression are nil
/// (or absent altogether); anything else is an error.
pub fn decode_image_list(
    images: &[u8],
    opts: Option<&Value>,
) -> Result<Vec<(String, String)>, CodecError> {
    let packed = if compressed_with_zlib(opts)? {
        Cow::Owned(inflate(images)?)
    } else {
        Cow::Borrowed(images)
    };
    let Value::Array(items) = decode(&packed)? else {
        return Err(CodecError::ImageList(
            "images is not a msgpack array".to_owned(),
        ));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            image_pair(item).ok_or_else(|| {
                CodecError::ImageList(format!(
                    "image {index} is not a [repo_tag, digest] pair of strings"
                ))
            })
        })
        .collect()
}

/// `images` and `images.opts` for a heartbeat, zlib-compressed as agents send them.
pub fn encode_image_list(images: &[(String, String)]) -> (Vec<u8>, Value) {
    let list = Value::Array(
        images
            .iter()
            .map(|(repo_tag, digest)| {
                Value::Array(vec![
                    Value::from(repo_tag.as_str()),
                    Value::from(digest.as_str()),
                ])
            })
            .collect(),
    );
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(&encode(&list))
        .expect("compressing into a Vec fails only when memory runs out");
    let compressed = encoder
        .finish()
        .expect("compressing into a Vec fails only when memory runs out");
    let opts = Value::Map(vec![(Value::from("compression"), Value::from("zlib"))]);
    (compressed, opts)
}

fn compressed_with_zlib(opts: Option<&Value>) -> Result<bool, CodecError> {
    let entries = match opts {
        None | Some(Value::Nil) => return Ok(false),
        Some(Value::Map(entries)) => entries,
        Some(other) => {
            return Err(CodecError::ImageList(format!(
                "images.opts is not a map: {other}"
            )));
        }
    };
    match entries
        .iter()
        .find(|(key, _)| key.as_str() == Some("compression"))
    {
        Some((_, Value::Nil)) => Ok(false),
        Some((_, compression)) if compression.as_str() == Some("zlib") => Ok(true),
        Some((_, compression)) => Err(CodecError::ImageList(format!(
            "unsupported compression {compression}"
        ))),
        None => Err(CodecError::ImageList(
            "images.opts has no compression".to_owned(),
        )),
    }
}

/// Bytes after the end of the zlib stream are ignored, as Python's `zlib.decompress` does.
fn inflate(compressed: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut inflated = Vec::new();
    ZlibDecoder::new(compressed)
        .take(MAX_DECOMPRESSED_BYTES + 1)
        .read_to_end(&mut inflated)
        .map_err(|err| CodecError::ImageList(format!("cannot decompress zlib: {err}")))?;
    if inflated.len() as u64 > MAX_DECOMPRESSED_BYTES {
        return Err(CodecError::ImageList(format!(
            "decompresses to more than {} MiB",
            MAX_DECOMPRESSED_BYTES / (1024 * 1024)
        )));
    }
    Ok(inflated)
}

fn image_pair(item: Value) -> Option<(String, String)> {
    let Value::Array(pair) = item else {
        return None;
    };
    let [repo_tag, digest] = <[Value; 2]>::try_from(pair).ok()?;
    Some((repo_tag.as_str()?.to_owned(), digest.as_str()?.to_owned()))
}
