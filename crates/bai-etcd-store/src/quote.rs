//! Percent-quoting of key pieces, exactly as Python's `urllib.parse.quote(piece, safe="")` and
//! `unquote(piece)`: registry names like `cr.backend.ai:5000` become one path piece
//! `cr.backend.ai%3A5000`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// What Python's `quote` never encodes (`_ALWAYS_SAFE`); with `safe=""` nothing else is kept.
const ALWAYS_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// Encodes every byte except `A-Z a-z 0-9 _ . - ~` as `%XX` (uppercase hex, UTF-8 bytes).
pub fn quote(piece: &str) -> String {
    utf8_percent_encode(piece, ALWAYS_SAFE).to_string()
}

/// Decodes `%XX` sequences; malformed ones (`%zz`, `%+f`) stay as they are, `+` is not a space, and
/// bytes that are not UTF-8 become U+FFFD, as Python's `unquote` does.
pub fn unquote(piece: &str) -> String {
    percent_decode_str(piece).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_python_with_safe_empty() {
        assert_eq!(quote("cr.backend.ai:5000"), "cr.backend.ai%3A5000");
        assert_eq!(quote("a/b c+d"), "a%2Fb%20c%2Bd");
        assert_eq!(
            quote("under_score-dash.dot~tilde"),
            "under_score-dash.dot~tilde"
        );
        assert_eq!(quote("한"), "%ED%95%9C");
        assert_eq!(
            quote("!*'();:@&=+$,/?#[] %\x7f"),
            "%21%2A%27%28%29%3B%3A%40%26%3D%2B%24%2C%2F%3F%23%5B%5D%20%25%7F"
        );
        assert_eq!(quote(""), "");
    }

    #[test]
    fn unquote_matches_python() {
        assert_eq!(unquote("cr.backend.ai%3A5000"), "cr.backend.ai:5000");
        assert_eq!(unquote("a+b"), "a+b");
        assert_eq!(unquote("100%zz"), "100%zz");
        assert_eq!(unquote("%ED%95%9C"), "한");
        assert_eq!(unquote("%ff"), "\u{fffd}");
        assert_eq!(unquote("%2f%2F"), "//");
        assert_eq!(unquote("trailing%4"), "trailing%4");
        assert_eq!(unquote("%+f"), "%+f");
        assert_eq!(unquote("%-1"), "%-1");
        assert_eq!(unquote("%%41"), "%A");
        assert_eq!(unquote("%ED%A0%80"), "\u{fffd}\u{fffd}\u{fffd}");
        assert_eq!(unquote("%E2%82"), "\u{fffd}");
        assert_eq!(unquote("%C3é"), "\u{fffd}é");
        assert_eq!(unquote("é%A9"), "é\u{fffd}");
    }
}
