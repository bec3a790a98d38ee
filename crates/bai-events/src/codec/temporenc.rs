//! A temporenc decoder (<https://temporenc.org>): the datetimes of msgpack ext 2, which Python
//! peers write with `temporenc.packb(datetime)`.
//!
//! All six types are read (D, T, DT, DTZ, DTS, DTSZ, sub-second precision in ms, µs, ns or none),
//! but only a complete date with a complete time becomes a datetime, as in the Python reader's
//! strict `Moment.datetime()`. It only reads; we never write temporenc.

use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};

/// The RFC 3339 text of a temporenc datetime: with the sender's UTC offset when it had a zone, and
/// without one for a naive datetime. Fractions of a second appear only when non-zero, with 3, 6 or
/// 9 digits. The error is a reason for people.
pub(super) fn to_rfc3339(bytes: &[u8]) -> Result<String, String> {
    Moment::decode(bytes)?.to_rfc3339()
}

/// A decoded temporenc value; a field is `None` when the sender left it empty.
#[derive(Debug, PartialEq, Eq)]
struct Moment {
    year: Option<u16>,
    /// 1 to 12.
    month: Option<u8>,
    /// 1 to 31.
    day: Option<u8>,
    hour: Option<u8>,
    minute: Option<u8>,
    /// 0 to 60 (60 is a leap second).
    second: Option<u8>,
    /// Sub-second precision in nanoseconds, whatever precision was written.
    nanosecond: Option<u32>,
    /// Date and time are in UTC when there is a zone.
    zone: Option<Zone>,
}

#[derive(Debug, PartialEq, Eq)]
enum Zone {
    /// The sender's offset from UTC in minutes (a multiple of 15).
    OffsetMinutes(i32),
    /// Value 126: a zone the sender handles outside temporenc; only the UTC time is known.
    External,
}

/// Types and their sizes, told apart by the type tag in the first byte.
#[derive(Clone, Copy)]
enum Type {
    D,
    T,
    Dt,
    Dtz,
    /// With the 2-bit precision tag.
    Dts(u8),
    Dtsz(u8),
}

impl Type {
    fn detect(first: u8) -> Result<Self, String> {
        Ok(match first {
            0b0000_0000..=0b0011_1111 => Type::Dt,
            0b0100_0000..=0b0111_1111 => Type::Dts(first >> 4 & 0b11),
            0b1000_0000..=0b1001_1111 => Type::D,
            0b1010_0000..=0b1010_0001 => Type::T,
            0b1010_0010..=0b1011_1111 => {
                return Err(format!("first byte {first:#04x} has no temporenc type tag"));
            }
            0b1100_0000..=0b1101_1111 => Type::Dtz,
            0b1110_0000..=0b1111_1111 => Type::Dtsz(first >> 3 & 0b11),
        })
    }

    fn len(self) -> usize {
        match self {
            Type::D | Type::T => 3,
            Type::Dt => 5,
            Type::Dtz => 6,
            Type::Dts(precision) => [7, 8, 9, 6][usize::from(precision)],
            Type::Dtsz(precision) => [8, 9, 10, 7][usize::from(precision)],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Type::D => "D",
            Type::T => "T",
            Type::Dt => "DT",
            Type::Dtz => "DTZ",
            Type::Dts(_) => "DTS",
            Type::Dtsz(_) => "DTSZ",
        }
    }
}

/// Component fields as packed, before the empty markers and ranges are checked.
#[derive(Default)]
struct Packed {
    date: Option<u32>,
    time: Option<u32>,
    nanosecond: Option<u32>,
    zone: Option<u32>,
}

impl Moment {
    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let Some(&first) = bytes.first() else {
            return Err("empty temporenc value".to_owned());
        };
        let ty = Type::detect(first)?;
        if bytes.len() != ty.len() {
            return Err(format!(
                "a temporenc {} value is {} bytes long, not {}",
                ty.name(),
                ty.len(),
                bytes.len()
            ));
        }
        let mut bits = Bits::new(bytes);
        let mut packed = Packed::default();
        match ty {
            Type::D => {
                bits.skip(3);
                packed.date = Some(bits.take(21));
            }
            Type::T => {
                bits.skip(7);
                packed.time = Some(bits.take(17));
            }
            Type::Dt => {
                bits.skip(2);
                packed.date = Some(bits.take(21));
                packed.time = Some(bits.take(17));
            }
            Type::Dtz => {
                bits.skip(3);
                packed.date = Some(bits.take(21));
                packed.time = Some(bits.take(17));
                packed.zone = Some(bits.take(7));
            }
            Type::Dts(precision) => {
                bits.skip(4);
                packed.date = Some(bits.take(21));
                packed.time = Some(bits.take(17));
                packed.nanosecond = bits.take_subsecond(precision);
            }
            Type::Dtsz(precision) => {
                bits.skip(5);
                packed.date = Some(bits.take(21));
                packed.time = Some(bits.take(17));
                packed.nanosecond = bits.take_subsecond(precision);
                packed.zone = Some(bits.take(7));
            }
        }
        // The rest is zero padding, which the Python reader does not check either.
        Self::unpack(packed)
    }

    fn unpack(packed: Packed) -> Result<Self, String> {
        let mut moment = Moment {
            year: None,
            month: None,
            day: None,
            hour: None,
            minute: None,
            second: None,
            nanosecond: None,
            zone: None,
        };
        if let Some(date) = packed.date {
            moment.year = field(date >> 9 & 0xfff, 4095, 4094, "year")?.map(|y| y as u16);
            moment.month = field(date >> 5 & 0xf, 15, 11, "month")?.map(|m| m as u8 + 1);
            moment.day = field(date & 0x1f, 31, 30, "day")?.map(|d| d as u8 + 1);
        }
        if let Some(time) = packed.time {
            moment.hour = field(time >> 12 & 0x1f, 31, 23, "hour")?.map(|h| h as u8);
            moment.minute = field(time >> 6 & 0x3f, 63, 59, "minute")?.map(|m| m as u8);
            moment.second = field(time & 0x3f, 63, 60, "second")?.map(|s| s as u8);
        }
        if let Some(nanosecond) = packed.nanosecond {
            if nanosecond > 999_999_999 {
                return Err(format!(
                    "sub-second value of {nanosecond} ns is a second or more"
                ));
            }
            moment.nanosecond = Some(nanosecond);
        }
        moment.zone = match packed.zone {
            None | Some(127) => None,
            Some(126) => Some(Zone::External),
            Some(z) => Some(Zone::OffsetMinutes((z as i32 - 64) * 15)),
        };
        Ok(moment)
    }

    fn to_rfc3339(&self) -> Result<String, String> {
        let (Some(year), Some(month), Some(day)) = (self.year, self.month, self.day) else {
            return Err(format!("{self:?} has no complete date"));
        };
        let (Some(hour), Some(minute), Some(second)) = (self.hour, self.minute, self.second) else {
            return Err(format!("{self:?} has no complete time"));
        };
        let date = NaiveDate::from_ymd_opt(year.into(), month.into(), day.into())
            .ok_or_else(|| format!("{year:04}-{month:02}-{day:02} is not a date"))?;
        // chrono has no second 60; neither has Python's datetime, so the Python reader fails too.
        let time = NaiveTime::from_hms_nano_opt(
            hour.into(),
            minute.into(),
            second.into(),
            self.nanosecond.unwrap_or(0),
        )
        .ok_or_else(|| format!("{hour:02}:{minute:02}:{second:02} is not a time of day"))?;
        let datetime = NaiveDateTime::new(date, time);
        const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.f";
        let offset_minutes = match self.zone {
            None => return Ok(datetime.format(FORMAT).to_string()),
            Some(Zone::External) => 0,
            Some(Zone::OffsetMinutes(minutes)) => minutes,
        };
        let offset = FixedOffset::east_opt(offset_minutes * 60)
            .ok_or_else(|| format!("UTC offset of {offset_minutes} minutes is out of range"))?;
        Ok(datetime
            .and_utc()
            .with_timezone(&offset)
            .format(&format!("{FORMAT}%:z"))
            .to_string())
    }
}

/// A packed field: `None` for the empty marker, an error beyond `max`.
fn field(value: u32, empty: u32, max: u32, name: &str) -> Result<Option<u32>, String> {
    match value {
        v if v == empty => Ok(None),
        v if v > max => Err(format!("{name} field {v} is out of range (0 to {max})")),
        v => Ok(Some(v)),
    }
}

/// Reads bit fields most significant bit first; a temporenc value is at most 80 bits.
struct Bits {
    value: u128,
    remaining: u32,
}

impl Bits {
    fn new(bytes: &[u8]) -> Self {
        Bits {
            value: bytes.iter().fold(0, |acc, &b| acc << 8 | u128::from(b)),
            remaining: 8 * bytes.len() as u32,
        }
    }

    fn skip(&mut self, count: u32) {
        self.take(count);
    }

    /// The next `count` bits; callers ask for no more than the type's layout holds.
    fn take(&mut self, count: u32) -> u32 {
        self.remaining -= count;
        ((self.value >> self.remaining) & ((1 << count) - 1)) as u32
    }

    /// The sub-second component for a precision tag, in nanoseconds.
    fn take_subsecond(&mut self, precision: u8) -> Option<u32> {
        match precision {
            0b00 => Some(self.take(10) * 1_000_000),
            0b01 => Some(self.take(20) * 1_000),
            0b10 => Some(self.take(30)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(hex_value: &str, expect: Result<&str, &str>) {
        let bytes = hex::decode(hex_value).expect("test hex");
        let got = to_rfc3339(&bytes);
        match expect {
            Ok(text) => assert_eq!(got.as_deref(), Ok(text), "{hex_value}"),
            Err(fragment) => {
                let reason = got.expect_err(hex_value);
                assert!(reason.contains(fragment), "{hex_value}: {reason}");
            }
        }
    }

    /// The examples of the temporenc specification, with the results of the Python reader's
    /// `unpackb(v).datetime(local=True)` (the specification's DTZ example and its DTSZ example
    /// without precision keep the local time in the UTC fields, so they read an hour later).
    #[test]
    fn specification_examples() {
        check("1efc1d264c", Ok("1983-01-15T18:25:12"));
        check("cf7e0e932644", Ok("1983-01-15T19:25:12+01:00"));
        check("47bf07499307b0", Ok("1983-01-15T18:25:12.123"));
        check("57bf074993078900", Ok("1983-01-15T18:25:12.123456"));
        check("67bf074993075bcd15", Ok("1983-01-15T18:25:12.123456789"));
        check("77bf07499300", Ok("1983-01-15T18:25:12"));
        check("e3df83a2c983dc40", Ok("1983-01-15T18:25:12.123+01:00"));
        check("ebdf83a2c983c48110", Ok("1983-01-15T18:25:12.123456+01:00"));
        check(
            "f3df83a2c983ade68ac4",
            Ok("1983-01-15T18:25:12.123456789+01:00"),
        );
        check("fbdf83a2c99100", Ok("1983-01-15T18:25:12+01:00"));
    }

    #[test]
    fn date_only_and_time_only_are_read_but_are_no_datetime() {
        let date = Moment::decode(&[0x8f, 0x7e, 0x0e]).expect("D example");
        assert_eq!(
            (date.year, date.month, date.day),
            (Some(1983), Some(1), Some(15))
        );
        assert_eq!((date.hour, date.zone), (None, None));
        let time = Moment::decode(&[0xa1, 0x26, 0x4c]).expect("T example");
        assert_eq!(
            (time.hour, time.minute, time.second),
            (Some(18), Some(25), Some(12))
        );
        assert_eq!(time.year, None);
        check("8f7e0e", Err("no complete time"));
        check("a1264c", Err("no complete date"));
    }

    #[test]
    fn zone_markers() {
        // DTZ 1983-01-15T18:25:12 with zone 126 (handled elsewhere) and 127 (empty), as the
        // specification says; the Python reader takes both for offsets (+15:30, +15:45), but no
        // Python peer writes them: `packb` of a naive datetime leaves the zone out.
        let external = Moment::decode(&hex::decode("cf7e0e93267e").expect("hex")).expect("126");
        assert_eq!(external.zone, Some(Zone::External));
        check("cf7e0e93267e", Ok("1983-01-15T18:25:12+00:00"));
        check("cf7e0e93267f", Ok("1983-01-15T18:25:12"));
        // Zone 0 is UTC-16:00, the lowest offset.
        check("cf7e0e932600", Ok("1983-01-15T02:25:12-16:00"));
    }

    #[test]
    fn malformed_values_are_errors() {
        check("", Err("empty"));
        check("a2264c", Err("no temporenc type tag"));
        check("1efc1d26", Err("5 bytes long, not 4"));
        check("1efc1d264c00", Err("5 bytes long, not 6"));
        // Month field 12 (0-based), hour 24, minute 60, second 61.
        check("1eff1d264c", Err("month field 12"));
        check("1efc1d864c", Err("hour field 24"));
        check("1efc1d2f0c", Err("minute field 60"));
        check("1efc1d267d", Err("second field 61"));
        // Second 60 (a leap second) and February 30.
        check("1efc1d267c", Err("not a time of day"));
        check("1efc7b264c", Err("not a date"));
        // DTS with microsecond field 1048575 and millisecond field 1023.
        check("57bf0749933ffffc", Err("a second or more"));
        check("47bf0749933ff0", Err("a second or more"));
        // A year alone (DT with empty month, day and time).
        check("1effffffff", Err("no complete date"));
    }
}
