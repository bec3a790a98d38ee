//! Percent-quoting of key pieces, exactly as Python's `urllib.parse.quote(piece, safe="")` and
//! `unquote(piece)`: registry names like `cr.backend.ai:5000` become one path piece
//! `cr.backend.ai%3A5000`.

/// Encodes every byte except `A-Z a-z 0-9 _ . - ~` as `%XX` (uppercase hex, UTF-8 bytes).
pub fn quote(piece: &str) -> String {
    let mut quoted = String::with_capacity(piece.len());
    for byte in piece.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-' | b'~') {
            quoted.push(char::from(byte));
        } else {
            quoted.push_str(&format!("%{byte:02X}"));
        }
    }
    quoted
}

/// Decodes `%XX` sequences; malformed ones stay as they are, `+` is not a space, and bytes that are
/// not UTF-8 become U+FFFD, as Python's `unquote` does.
pub fn unquote(piece: &str) -> String {
    let bytes = piece.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                index += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
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
    }
}
