//! Value types of manager.toml that need their own parsing: `addr = { host, port }` pairs, binary sizes
//! like `"10M"`, log levels, and the lenient number and boolean readers that accept the strings an
//! environment variable or a hand-edited file gives (the reference's `ToInt`, `ToFloat`, `ToBool`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::numbers::{BinarySizeValue, parse_binary_size};

/// A `host:port` pair, written in manager.toml as `"host:port"`, `["host", port]` or
/// `{ host = "...", port = N }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        HostPort {
            host: host.into(),
            port,
        }
    }

    fn checked(host: &str, port: i128) -> Result<Self, String> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("the host must not be empty".to_owned());
        }
        let port = u16::try_from(port)
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| format!("port number must be between 1 and 65535, found {port}"))?;
        Ok(HostPort::new(host, port))
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => write!(f, "[{}]:{}", self.host, self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

impl FromStr for HostPort {
    type Err = String;

    /// Splits at the last colon, so `[::1]:8100` and `::1:8100` both work.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("expected \"host:port\", found {text:?}"))?;
        let port = port
            .trim()
            .parse::<i128>()
            .map_err(|_| format!("port {port:?} is not a number"))?;
        HostPort::checked(host.trim(), port)
    }
}

impl Serialize for HostPort {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HostPortVisitor;

        impl<'de> Visitor<'de> for HostPortVisitor {
            type Value = HostPort;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"host:port\", [host, port] or { host = ..., port = ... }")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<HostPort, E> {
                text.parse().map_err(E::custom)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HostPort, A::Error> {
                let host: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let port: LenientInt = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                HostPort::checked(&host, port.0).map_err(de::Error::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HostPort, A::Error> {
                let mut host: Option<String> = None;
                let mut port: Option<LenientInt> = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "host" => host = Some(map.next_value()?),
                        "port" => port = Some(map.next_value()?),
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown key {other:?} (an address has only host and port)"
                            )));
                        }
                    }
                }
                let host = host.ok_or_else(|| de::Error::custom("the address needs a host"))?;
                let port = port.ok_or_else(|| de::Error::custom("the address needs a port"))?;
                HostPort::checked(&host, port.0).map_err(de::Error::custom)
            }
        }

        deserializer.deserialize_any(HostPortVisitor)
    }
}

/// A byte count written as an integer or with binary units, read by the workspace's one size
/// parser ([`parse_binary_size`]): `"10M"` is 10 MiB, `"1.5g"`, `"512KiB"`, `"64mb"`; `_`
/// separators are ignored and fractions of a byte truncated. Unlike the reference, which would take
/// them, infinite and negative sizes are refused: no size in manager.toml means "never" or less than
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BinarySize(pub u64);

impl BinarySize {
    pub fn bytes(self) -> u64 {
        self.0
    }
}

const BINARY_UNITS: [char; 7] = ['k', 'm', 'g', 't', 'p', 'e', 'z'];

impl FromStr for BinarySize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match parse_binary_size(text).map_err(|error| error.to_string())? {
            BinarySizeValue::Bytes(bytes) if bytes < 0 => {
                Err(format!("{text:?} is negative; a size cannot be"))
            }
            BinarySizeValue::Bytes(bytes) => u64::try_from(bytes)
                .map(BinarySize)
                .map_err(|_| format!("{text:?} is too large (the limit is 16 EiB)")),
            BinarySizeValue::Infinite => Err(format!("{text:?} is not a finite size")),
        }
    }
}

impl fmt::Display for BinarySize {
    /// The largest unit that represents the size exactly, so `10485760` shows as `10M`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut value = self.0;
        let mut unit = None;
        for letter in BINARY_UNITS {
            if value == 0 || !value.is_multiple_of(1024) {
                break;
            }
            value /= 1024;
            unit = Some(letter.to_ascii_uppercase());
        }
        match unit {
            Some(letter) => write!(f, "{value}{letter}"),
            None => write!(f, "{value}"),
        }
    }
}

impl Serialize for BinarySize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BinarySize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BinarySizeVisitor;

        impl Visitor<'_> for BinarySizeVisitor {
            type Value = BinarySize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes or a string like \"10M\"")
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<BinarySize, E> {
                Ok(BinarySize(value))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<BinarySize, E> {
                u64::try_from(value)
                    .map(BinarySize)
                    .map_err(|_| E::custom(format!("a size cannot be negative, found {value}")))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<BinarySize, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(BinarySizeVisitor)
    }
}

/// Logging levels with the reference's (Python's) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    Notset,
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl LogLevel {
    pub const NAMES: [&'static str; 6] =
        ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "NOTSET"];
}

impl FromStr for LogLevel {
    type Err = String;

    /// Case-insensitive, as the reference CLI's `--log-level` choice is.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_uppercase().as_str() {
            "NOTSET" => Ok(LogLevel::Notset),
            "DEBUG" => Ok(LogLevel::Debug),
            "INFO" => Ok(LogLevel::Info),
            "WARNING" => Ok(LogLevel::Warning),
            "ERROR" => Ok(LogLevel::Error),
            "CRITICAL" => Ok(LogLevel::Critical),
            _ => Err(format!(
                "unknown log level {text:?}, expected one of: {}",
                LogLevel::NAMES.join(", ")
            )),
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            LogLevel::Notset => "NOTSET",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
            LogLevel::Critical => "CRITICAL",
        };
        f.write_str(name)
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// An integer that may also be written as a string of digits (the reference's `ToInt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LenientInt(i128);

impl<'de> Deserialize<'de> for LenientInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LenientIntVisitor;

        impl Visitor<'_> for LenientIntVisitor {
            type Value = LenientInt;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<LenientInt, E> {
                Ok(LenientInt(value.into()))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<LenientInt, E> {
                Ok(LenientInt(value.into()))
            }

            fn visit_i128<E: de::Error>(self, value: i128) -> Result<LenientInt, E> {
                Ok(LenientInt(value))
            }

            fn visit_u128<E: de::Error>(self, value: u128) -> Result<LenientInt, E> {
                i128::try_from(value)
                    .map(LenientInt)
                    .map_err(|_| E::custom(format!("{value} is too large")))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<LenientInt, E> {
                text.trim()
                    .parse()
                    .map(LenientInt)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(text), &self))
            }
        }

        deserializer.deserialize_any(LenientIntVisitor)
    }
}

/// Reads an integer written as a number or as a string of digits, and checks it fits `T`.
pub(crate) fn lenient_int<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    let LenientInt(value) = LenientInt::deserialize(deserializer)?;
    T::try_from(value).map_err(|_| de::Error::custom(format!("{value} is out of range")))
}

/// Reads a number written as an integer, a float or a numeric string (the reference's `ToFloat`).
pub(crate) fn lenient_float<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    struct LenientFloatVisitor;

    impl Visitor<'_> for LenientFloatVisitor {
        type Value = f64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number")
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<f64, E> {
            Ok(value)
        }

        // Config numbers are small: converting integers to f64 loses nothing that matters here.
        #[allow(clippy::cast_precision_loss)]
        fn visit_i64<E: de::Error>(self, value: i64) -> Result<f64, E> {
            Ok(value as f64)
        }

        #[allow(clippy::cast_precision_loss)]
        fn visit_u64<E: de::Error>(self, value: u64) -> Result<f64, E> {
            Ok(value as f64)
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<f64, E> {
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|value| value.is_finite())
                .ok_or_else(|| E::invalid_value(de::Unexpected::Str(text), &self))
        }
    }

    deserializer.deserialize_any(LenientFloatVisitor)
}

/// Parses the reference's `ToBool` spellings (case-insensitive).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" | "1.0" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" | "0.0" | "none" => Some(false),
        _ => None,
    }
}

/// Reads a boolean written as `true`/`false`, `0`/`1`, or a string like `"yes"` or `"off"`.
pub(crate) fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct LenientBoolVisitor;

    impl Visitor<'_> for LenientBoolVisitor {
        type Value = bool;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a boolean (true/false, yes/no, on/off, 1/0)")
        }

        fn visit_bool<E: de::Error>(self, value: bool) -> Result<bool, E> {
            Ok(value)
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<bool, E> {
            match value {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(E::invalid_value(de::Unexpected::Signed(value), &self)),
            }
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<bool, E> {
            match value {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(E::invalid_value(de::Unexpected::Unsigned(value), &self)),
            }
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<bool, E> {
            parse_bool(text).ok_or_else(|| E::invalid_value(de::Unexpected::Str(text), &self))
        }
    }

    deserializer.deserialize_any(LenientBoolVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_sizes_use_binary_units() {
        let check = |text: &str, bytes: u64| {
            assert_eq!(text.parse::<BinarySize>(), Ok(BinarySize(bytes)), "{text}")
        };
        check("10M", 10 * 1024 * 1024);
        check("10m", 10 * 1024 * 1024);
        check("1.5g", 1024 * 1024 * 1536);
        check("512KiB", 512 * 1024);
        check("64mb", 64 * 1024 * 1024);
        check("1_000", 1000);
        check("4096", 4096);
        check("1 GiB", 1 << 30);
        // Truncated to whole bytes, as the reference does.
        check("1.0000001k", 1024);
        let refusal = |text: &str| text.parse::<BinarySize>().unwrap_err();
        assert_eq!(
            refusal("0.5"),
            r#""0.5" is a fractional number of bytes (without a unit a size must be an integer)"#
        );
        assert!(refusal("10Q").contains("is not a size"));
        assert_eq!(
            refusal("20E"),
            r#""20E" is too large (the limit is 16 EiB)"#
        );
        // The reference would take these; the manager's sizes are finite and not negative.
        assert_eq!(refusal("inf"), r#""inf" is not a finite size"#);
        assert_eq!(refusal("-1k"), r#""-1k" is negative; a size cannot be"#);
        assert!("".parse::<BinarySize>().is_err());
    }

    #[test]
    fn binary_sizes_display_in_the_largest_exact_unit() {
        assert_eq!(BinarySize(10 * 1024 * 1024).to_string(), "10M");
        assert_eq!(BinarySize(1536).to_string(), "1536");
        assert_eq!(BinarySize(0).to_string(), "0");
        assert_eq!(BinarySize(3 << 30).to_string(), "3G");
    }

    #[test]
    fn host_port_accepts_the_reference_forms() {
        assert_eq!("bai-m1:8120".parse(), Ok(HostPort::new("bai-m1", 8120)));
        assert_eq!("[::1]:8100".parse(), Ok(HostPort::new("::1", 8100)));
        assert_eq!(HostPort::new("::1", 8100).to_string(), "[::1]:8100");
        assert!(
            "localhost"
                .parse::<HostPort>()
                .unwrap_err()
                .contains("host:port")
        );
        assert!(
            "localhost:0"
                .parse::<HostPort>()
                .unwrap_err()
                .contains("between 1 and 65535")
        );
        assert!(
            ":80"
                .parse::<HostPort>()
                .unwrap_err()
                .contains("host must not be empty")
        );
    }

    #[test]
    fn booleans_accept_the_reference_spellings() {
        for text in ["t", "TRUE", "Yes", "on", "1", "1.0"] {
            assert_eq!(parse_bool(text), Some(true), "{text}");
        }
        for text in ["f", "false", "NO", "off", "0", "0.0", "None"] {
            assert_eq!(parse_bool(text), Some(false), "{text}");
        }
        assert_eq!(parse_bool("maybe"), None);
    }
}
