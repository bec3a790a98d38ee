//! JSON spelled the way the reference's Python `json.dumps` spells it: `", "` and `": "` separators
//! and non-ASCII escaped as `\uXXXX`. Clients parse JSON, but operators compare bodies by eye and by
//! checksum (`curl host:8081`), so the bytes match.

use std::io;

use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, Serializer};

/// `json.dumps` separators and `ensure_ascii=True`.
#[derive(Clone, Copy, Debug, Default)]
struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if fragment.is_ascii() {
            return w.write_all(fragment.as_bytes());
        }
        let mut utf16 = [0u16; 2];
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                for unit in c.encode_utf16(&mut utf16) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        serde_json::ser::CompactFormatter.write_char_escape(w, escape)
    }
}

/// `value` as Python's `json.dumps(value)` would write it.
pub fn to_python_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let mut serializer = Serializer::with_formatter(&mut out, PythonFormatter);
    // Serializing our own response types into memory cannot fail: they have string keys only.
    if value.serialize(&mut serializer).is_err() {
        out.clear();
        out.extend_from_slice(b"null");
    }
    out
}

/// A JSON response body with `Content-Type: application/json; charset=utf-8`, like aiohttp's
/// `json_response`.
#[derive(Debug)]
pub struct PyJson<T>(pub T);

impl<T: Serialize> IntoResponse for PyJson<T> {
    fn into_response(self) -> Response {
        json_response(StatusCode::OK, &self.0, "application/json; charset=utf-8")
    }
}

pub(crate) fn json_response<T: Serialize + ?Sized>(
    status: StatusCode,
    body: &T,
    content_type: &'static str,
) -> Response {
    let mut response = (status, to_python_json(body)).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::to_python_json;

    #[test]
    fn spells_json_like_python() {
        let value = json!({"list": [1, 2.5, null, true], "n": {}, "version": "v8.20240315"});
        assert_eq!(
            String::from_utf8(to_python_json(&value)).unwrap(),
            r#"{"list": [1, 2.5, null, true], "n": {}, "version": "v8.20240315"}"#
        );
    }

    #[test]
    fn escapes_non_ascii_like_ensure_ascii() {
        let value = json!({"ctl": "a\"b\n", "name": "가 é 😀"});
        assert_eq!(
            String::from_utf8(to_python_json(&value)).unwrap(),
            r#"{"ctl": "a\"b\n", "name": "\uac00 \u00e9 \ud83d\ude00"}"#
        );
    }
}
