//! JSON spelled byte for byte as the reference's Python `json.dumps` spells it: compact
//! (`json.dumps(value)`, separators `", "` and `": "`) or indented (`json.dumps(value, indent=4)`),
//! always with `ensure_ascii` (everything outside `0x20..=0x7E` escaped, DEL as `\u007f`, astral
//! characters as surrogate pairs) and floats as Python's `repr` (`1e+20`, `1e-05`, `0.1`,
//! `100000000000000.0`). Clients parse JSON, but operators compare bodies and `etcd get-prefix`
//! output by eye and by checksum, so the bytes match. [`datetime`] spells aware times as Python's
//! `isoformat()` and `str()` do, for the same reason.
//!
//! A crate of its own because the etcd store (trees for `get-prefix`) and the API (response bodies)
//! both write it, and the only crate below both, `bai-config`, is about manager.toml.
//!
//! It must not know any Backend.AI type, HTTP or etcd: values come in through serde. One limit it
//! cannot lift: serde_json's serializer writes a non-finite `f64` as `null` before any formatter
//! sees it, where Python writes `NaN` or `Infinity`; `serde_json::Value` cannot hold one either, so
//! only a struct field of type `f64` could meet it.

pub mod datetime;

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter, Serializer};

/// How the JSON is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `json.dumps(value)`: one line, `", "` between items and `": "` after keys.
    Compact,
    /// `json.dumps(value, indent=N)`: one item per line indented by N spaces per level, `","`
    /// ending lines, empty containers as `[]` and `{}`.
    Indented(usize),
}

/// A value that serde_json refused to write (a map key that is not a string, number or bool, or a
/// `Serialize` implementation's own error).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the value as JSON: {0}")]
pub struct PyJsonError(#[from] serde_json::Error);

/// `value` as Python's `json.dumps` writes it, in `layout`.
pub fn to_vec<T: Serialize + ?Sized>(value: &T, layout: Layout) -> Result<Vec<u8>, PyJsonError> {
    let mut out = Vec::with_capacity(128);
    let formatter = PythonFormatter {
        indent: match layout {
            Layout::Compact => None,
            Layout::Indented(width) => Some(width),
        },
        depth: 0,
        has_value: false,
    };
    value.serialize(&mut Serializer::with_formatter(&mut out, formatter))?;
    Ok(out)
}

/// [`to_vec`] as text (always ASCII).
pub fn to_string<T: Serialize + ?Sized>(value: &T, layout: Layout) -> Result<String, PyJsonError> {
    let bytes = to_vec(value, layout)?;
    Ok(String::from_utf8(bytes).expect("ensure_ascii output is ASCII"))
}

/// Python's `repr(float)` (which `str` and `json.dumps` also use): the shortest digits that read
/// back as the same float, positional when the decimal exponent is from -4 to 15 (with `.0` when
/// whole), scientific otherwise with a sign and at least two exponent digits (`1e+16`, `1.5e-05`);
/// `inf`, `-inf` and `nan` for the non-finite ones.
pub fn float_repr(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // Rust's `{:e}` and `{}` of an f64 both print the shortest round-tripping digits, as Python.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` of a finite float has an exponent");
    let exponent: i32 = exponent
        .parse()
        .expect("`{:e}` of a finite float has an integer exponent");
    if (-4..16).contains(&exponent) {
        let positional = format!("{value}");
        if positional.contains('.') {
            positional
        } else {
            format!("{positional}.0")
        }
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

/// serde_json's formatter hooks spelled as Python's `json` encoder: separators and indentation of
/// the layout, `ensure_ascii` escapes, `repr` floats.
#[derive(Debug)]
struct PythonFormatter {
    /// Spaces per level, or `None` for the compact layout.
    indent: Option<usize>,
    depth: usize,
    /// Whether the container being written has an item yet, so that its end goes on a line of
    /// its own (`[]` and `{}` stay on one line).
    has_value: bool,
}

impl PythonFormatter {
    fn begin_container<W: ?Sized + io::Write>(&mut self, w: &mut W, open: u8) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(&[open])
    }

    fn end_container<W: ?Sized + io::Write>(&mut self, w: &mut W, close: u8) -> io::Result<()> {
        self.depth -= 1;
        if let Some(width) = self.indent
            && self.has_value
        {
            w.write_all(b"\n")?;
            write_spaces(w, width * self.depth)?;
        }
        w.write_all(&[close])
    }

    fn begin_item<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        match self.indent {
            None if first => Ok(()),
            None => w.write_all(b", "),
            Some(width) => {
                w.write_all(if first { b"\n" } else { b",\n" })?;
                write_spaces(w, width * self.depth)
            }
        }
    }
}

fn write_spaces<W: ?Sized + io::Write>(w: &mut W, count: usize) -> io::Result<()> {
    const SPACES: [u8; 64] = [b' '; 64];
    let mut left = count;
    while left > 0 {
        let chunk = left.min(SPACES.len());
        w.write_all(&SPACES[..chunk])?;
        left -= chunk;
    }
    Ok(())
}

impl Formatter for PythonFormatter {
    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        // Python has only doubles: an f32 reads as the double it widens to.
        self.write_f64(w, f64::from(value))
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(float_repr(value).as_bytes())
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.begin_container(w, b'[')
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.end_container(w, b']')
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.begin_item(w, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.begin_container(w, b'{')
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.end_container(w, b'}')
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.begin_item(w, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    /// Runs of characters serde_json does not escape itself: everything outside `' '..='~'`
    /// becomes `\uXXXX` (lower-case hex, UTF-16 units), DEL included.
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if fragment.bytes().all(|byte| (b' '..=b'~').contains(&byte)) {
            return w.write_all(fragment.as_bytes());
        }
        let mut units = [0u16; 2];
        for c in fragment.chars() {
            if (' '..='~').contains(&c) {
                w.write_all(&[c as u8])?;
            } else {
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }

    /// `"`, `\`, `\b`, `\f`, `\n`, `\r`, `\t` and the other control characters as `\u00XX`: the
    /// same escapes as Python's.
    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        CompactFormatter.write_char_escape(w, escape)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn compact(value: &impl Serialize) -> String {
        to_string(value, Layout::Compact).unwrap()
    }

    fn indented(value: &impl Serialize) -> String {
        to_string(value, Layout::Indented(4)).unwrap()
    }

    // The expected strings below are what Python 3 printed for the same values.

    #[test]
    fn compact_layout_is_json_dumps() {
        let value = json!({"a": [1, 2.5, null, true], "e": {}, "l": [], "version": "v8.20240315"});
        assert_eq!(
            compact(&value),
            r#"{"a": [1, 2.5, null, true], "e": {}, "l": [], "version": "v8.20240315"}"#
        );
    }

    #[test]
    fn indented_layout_is_json_dumps_with_indent() {
        let value = json!({"a": [1, {"b": []}, {}], "c": {"d": "x"}});
        assert_eq!(
            indented(&value),
            "{\n    \"a\": [\n        1,\n        {\n            \"b\": []\n        },\n        {}\n    ],\n    \"c\": {\n        \"d\": \"x\"\n    }\n}"
        );
        assert_eq!(indented(&json!([])), "[]");
        assert_eq!(indented(&json!({})), "{}");
        assert_eq!(indented(&json!([[]])), "[\n    []\n]");
        assert_eq!(
            to_string(&json!({"k": [1]}), Layout::Indented(2)).unwrap(),
            "{\n  \"k\": [\n    1\n  ]\n}"
        );
    }

    #[test]
    fn strings_are_escaped_like_ensure_ascii() {
        let value = json!("\u{7f}\u{0}\u{1f} é 😀 \"\\ \u{8}\u{c}\n\r\t 가");
        let expected = r#""\u007f\u0000\u001f \u00e9 \ud83d\ude00 \"\\ \b\f\n\r\t \uac00""#;
        assert_eq!(compact(&value), expected);
        assert_eq!(indented(&value), expected);
        assert_eq!(compact(&json!({"é": "~ "})), r#"{"\u00e9": "~ "}"#);
    }

    #[test]
    fn floats_are_spelled_as_python_repr() {
        let value = json!([
            1e20,
            1e-5,
            0.1,
            100_000_000_000_000.0,
            1e16,
            -0.0,
            1e15,
            123_456_789_012_345_678.0,
            0.0001,
            1.5e-7,
            5e-324,
            1.797_693_134_862_315_7e308,
            0.1 + 0.2,
            9_007_199_254_740_992.0,
            1e22,
            5.0
        ]);
        assert_eq!(
            compact(&value),
            "[1e+20, 1e-05, 0.1, 100000000000000.0, 1e+16, -0.0, 1000000000000000.0, \
             1.2345678901234568e+17, 0.0001, 1.5e-07, 5e-324, 1.7976931348623157e+308, \
             0.30000000000000004, 9007199254740992.0, 1e+22, 5.0]"
        );
        assert_eq!(compact(&[0.1f32]), "[0.10000000149011612]");
        assert_eq!(compact(&[u64::MAX]), "[18446744073709551615]");
        assert_eq!(compact(&[i64::MIN]), "[-9223372036854775808]");
    }

    #[test]
    fn non_finite_floats_are_repr_but_reach_json_as_null() {
        assert_eq!(float_repr(f64::INFINITY), "inf");
        assert_eq!(float_repr(f64::NEG_INFINITY), "-inf");
        assert_eq!(float_repr(f64::NAN), "nan");
        // serde_json writes these as null itself (see the crate doc); Python would write NaN.
        assert_eq!(compact(&[f64::NAN]), "[null]");
    }

    #[test]
    fn keys_that_are_not_strings_are_written_as_serde_json_does() {
        let mut map = std::collections::BTreeMap::new();
        map.insert(1, "one");
        assert_eq!(compact(&map), r#"{"1": "one"}"#);
        let mut bad = std::collections::BTreeMap::new();
        bad.insert(vec![1], "list key");
        assert!(to_vec(&bad, Layout::Compact).is_err());
    }
}
