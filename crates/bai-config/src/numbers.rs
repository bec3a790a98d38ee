//! Numbers written the reference's (Python's) ways, for every crate that reads them: decimals as
//! `Decimal(str)` reads them, and binary sizes (`"4g"`, `"10M"`, `"1.5 GiB"`) as
//! `ai.backend.common.types.BinarySize.from_str` reads them. This is the workspace's one size parser:
//! manager.toml (`rotation-size`), slot amounts of `mem`-like slots, a preset's `shared_memory`.
//!
//! The parser returns what the reference returns (a whole number of bytes, possibly negative, or
//! infinity); a caller that cannot take a negative or infinite size refuses it itself, in its own
//! words.

use rust_decimal::Decimal;

/// What `BinarySize.from_str` gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BinarySizeValue {
    /// Whole bytes, truncated toward zero (`"1.0000001k"` is 1024); negative sizes (`"-1g"`) are
    /// the reference's too.
    Bytes(i128),
    /// `inf`, `infinite` or `infinity`, in any case.
    Infinite,
}

/// A text that is not a binary size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinarySizeError {
    #[error("{0:?} is not a size (examples: 1048576, \"512K\", \"10M\", \"1.5G\")")]
    NotASize(String),
    /// A decimal without a unit that is not an integer (`"1.5"`, `"1e3"`): the reference's
    /// "Fractional bytes are not allowed".
    #[error("{0:?} is a fractional number of bytes (without a unit a size must be an integer)")]
    FractionalBytes(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// The unit letters and their multipliers: powers of 1024 even when written `KB`, `GB`, ... A space
/// is the unit of `"1 b"` and `"1 bytes"`.
const UNITS: [(char, u32); 9] = [
    (' ', 0),
    ('k', 1),
    ('m', 2),
    ('g', 3),
    ('t', 4),
    ('p', 5),
    ('e', 6),
    ('z', 7),
    ('y', 8),
];

/// What may follow the unit letter, longest first as the reference tries them.
const ENDINGS: [&str; 6] = ["ibytes", "ibyte", "ib", "bytes", "byte", "b"];

/// Reads a binary size as the reference's `BinarySize.from_str` does:
///
/// 1. `inf`, `infinite`, `infinity` (any case, nothing around them) are [`BinarySizeValue::Infinite`];
/// 2. surrounding whitespace and every `_` are dropped; an integer (`"1_000"`, `"-5"`) is bytes;
/// 3. otherwise, case-insensitively, an optional ending (`b`, `ib`, `byte(s)`, `ibyte(s)`) follows a
///    unit letter (`k m g t p e z y`, powers of 1024, or a space for bytes) that follows a decimal:
///    `"1.5g"`, `"512KiB"`, `"1 GB"`, `"1 bytes"`; the product is truncated to whole bytes.
///
/// Refused as the reference refuses them: a decimal without a unit (`"1.5"`, `"1e3"`), `"1b"` (the
/// unit letter would be `1`), an unknown unit, `" inf"`. Digits are ASCII only (Python also takes
/// other Unicode digits), and sizes beyond about 7.9·10²⁸ bytes are [`BinarySizeError::TooLarge`]
/// (Python's integers are unbounded).
pub fn parse_binary_size(text: &str) -> Result<BinarySizeValue, BinarySizeError> {
    let not_a_size = || BinarySizeError::NotASize(text.to_owned());
    let too_large = || BinarySizeError::TooLarge(text.to_owned());
    // The reference compares the infinity spellings before stripping whitespace.
    if matches!(
        text.to_lowercase().as_str(),
        "inf" | "infinite" | "infinity"
    ) {
        return Ok(BinarySizeValue::Infinite);
    }
    let compact: String = text.trim().chars().filter(|&c| c != '_').collect();
    if is_python_int(&compact) {
        return compact
            .parse::<i128>()
            .map(BinarySizeValue::Bytes)
            .map_err(|_| too_large());
    }
    let lower = compact.to_lowercase();
    let before_ending = match ENDINGS.iter().find(|ending| lower.ends_with(*ending)) {
        Some(ending) => &lower[..lower.len() - ending.len()],
        None if lower.chars().next_back().is_some_and(char::is_numeric) => {
            return Err(if parse_python_decimal(&lower).is_some() {
                BinarySizeError::FractionalBytes(text.to_owned())
            } else {
                not_a_size()
            });
        }
        None => lower.as_str(),
    };
    let unit = before_ending.chars().next_back().ok_or_else(not_a_size)?;
    let power = UNITS
        .iter()
        .find(|(letter, _)| *letter == unit)
        .map(|(_, power)| *power)
        .ok_or_else(not_a_size)?;
    let number = parse_python_decimal(&before_ending[..before_ending.len() - unit.len_utf8()])
        .ok_or_else(not_a_size)?;
    // At most 2^80: well inside a decimal's 96 bits.
    let multiplier = Decimal::from_i128_with_scale(1i128 << (10 * power), 0);
    let bytes = number
        .checked_mul(multiplier)
        .ok_or_else(too_large)?
        .trunc();
    // A truncated decimal is an integer of at most 96 bits: it always fits.
    Ok(BinarySizeValue::Bytes(
        bytes.mantissa() / 10i128.pow(bytes.scale()),
    ))
}

/// A finite number as Python's `Decimal(text)` reads it, keeping its scale (`"1.50"` stays 1.50):
/// surrounding whitespace and every `_` are ignored, then an optional sign, digits with an optional
/// point (`"5."`, `".5"`) and an optional exponent (`"1.2E-3"`). `None` for anything else, for
/// `inf`/`nan`, and for values a 96-bit decimal with at most 28 places cannot hold exactly.
pub fn parse_python_decimal(text: &str) -> Option<Decimal> {
    let compact: String = text.trim().chars().filter(|&c| c != '_').collect();
    let (negative, unsigned) = match compact.as_bytes().first() {
        Some(b'-') => (true, &compact[1..]),
        Some(b'+') => (false, &compact[1..]),
        _ => (false, compact.as_str()),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => {
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if !is_digits(digits) {
                return None;
            }
            (mantissa, exponent.parse::<i64>().ok()?)
        }
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    let mut value: i128 = if significant.is_empty() {
        0
    } else {
        significant.parse().ok()?
    };
    let mut scale = i64::try_from(fraction.len()).ok()? - exponent;
    if scale < 0 {
        let factor = 10i128.checked_pow(u32::try_from(-scale).ok()?)?;
        value = value.checked_mul(factor)?;
        scale = 0;
    }
    let decimal = Decimal::try_from_i128_with_scale(value, u32::try_from(scale).ok()?).ok()?;
    Some(if negative { -decimal } else { decimal })
}

/// Python's `int(text)` on a text already stripped of whitespace and underscores: a sign and
/// digits.
fn is_python_int(text: &str) -> bool {
    is_digits(text.strip_prefix(['+', '-']).unwrap_or(text))
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn bytes(text: &str) -> Result<BinarySizeValue, BinarySizeError> {
        parse_binary_size(text)
    }

    #[test]
    fn every_spelling_of_a_gibibyte() {
        for text in [
            "1g",
            "1G",
            "1GiB",
            "1gib",
            "1 GB",
            "1gb",
            "1Gbyte",
            "1 gibytes",
            "1073741824",
        ] {
            assert_eq!(bytes(text), Ok(BinarySizeValue::Bytes(1 << 30)), "{text:?}");
        }
    }

    #[test]
    fn sizes_follow_the_reference() {
        for (text, expected) in [
            ("2K", 2048),
            ("512KiB", 512 << 10),
            ("10M", 10 << 20),
            ("64mb", 64 << 20),
            ("1_000", 1000),
            ("+5", 5),
            ("0005", 5),
            ("4g ", 4 << 30),
            (" 4 g", 4 << 30),
            ("1 bytes", 1),
            ("1 b", 1),
            ("3  byte", 3),
            ("1k_b", 1024),
            ("0.5m", 524_288),
            (".5k", 512),
            ("5.k", 5120),
            ("1.5g", 1_610_612_736),
            ("1e3k", 1_024_000),
            ("1.0000001k", 1024),
            ("0.0001k", 0),
            ("-1g", -(1 << 30)),
            ("-1.5k", -1536),
            ("1e", 1 << 60),
            ("1y", 1 << 80),
        ] {
            assert_eq!(
                bytes(text),
                Ok(BinarySizeValue::Bytes(expected)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn infinity_only_when_spelled_alone() {
        for text in ["inf", "Infinity", "INFINITE"] {
            assert_eq!(bytes(text), Ok(BinarySizeValue::Infinite), "{text:?}");
        }
        for text in [" inf", "inf ", "-inf", "infk", "+Infinity"] {
            assert!(bytes(text).is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn refusals_follow_the_reference() {
        for text in ["1.5", "1e3", "-0.5", " 2.0 "] {
            assert_eq!(
                bytes(text),
                Err(BinarySizeError::FractionalBytes(text.to_owned())),
                "{text:?}"
            );
        }
        for text in [
            "1b", "10Q", "0x10", "g", "", " ", "b", "kb", "1.2.3k", "1 0k", "nank", "1,5g", "½",
        ] {
            assert_eq!(
                bytes(text),
                Err(BinarySizeError::NotASize(text.to_owned())),
                "{text:?}"
            );
        }
        assert_eq!(
            bytes("100000y"),
            Err(BinarySizeError::TooLarge("100000y".to_owned()))
        );
        assert!(matches!(
            bytes("1000000000000000000000000000000000000000"),
            Err(BinarySizeError::TooLarge(_))
        ));
        assert_eq!(
            BinarySizeError::NotASize("10Q".to_owned()).to_string(),
            r#""10Q" is not a size (examples: 1048576, "512K", "10M", "1.5G")"#
        );
    }

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).expect("decimal")
    }

    #[test]
    fn decimals_read_as_python_reads_them() {
        for (text, expected) in [
            ("2", "2"),
            (" 2 ", "2"),
            ("+0.5", "0.5"),
            ("-3", "-3"),
            ("1.50", "1.50"),
            ("1_000", "1000"),
            ("_1", "1"),
            ("1__0.5_5", "10.55"),
            (".5", "0.5"),
            ("5.", "5"),
            ("1e3", "1000"),
            ("1E+3", "1000"),
            ("1.2E-3", "0.0012"),
            ("1.50e1", "15.0"),
            ("007", "7"),
        ] {
            let parsed = parse_python_decimal(text);
            assert_eq!(parsed, Some(dec(expected)), "{text:?}");
            assert_eq!(
                parsed.map(|value| value.to_string()).as_deref(),
                Some(expected),
                "{text:?} keeps its scale"
            );
        }
        for text in [
            "",
            "-",
            "+",
            ".",
            "e3",
            ".e3",
            "1.5e",
            "1e+",
            "4g",
            "NaN",
            "inf",
            "1-2",
            "--1",
            "0x10",
            "1.2.3",
            "1 0",
            "1e1.5",
            "1e99999999999999999999",
            "1e-40",
        ] {
            assert_eq!(parse_python_decimal(text), None, "{text:?} parsed");
        }
    }
}
