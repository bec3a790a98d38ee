//! Aware times as the reference's Python spells them in JSON bodies, Redis values and messages:
//! `datetime.isoformat()` and `str(datetime)`, in UTC. Both write microseconds only when there are
//! any, which a fixed chrono format cannot say.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// `datetime.isoformat()` of `at` in UTC: `2024-05-01T10:00:00.500000+00:00`, or
/// `2024-05-01T10:00:00+00:00` on a whole second.
pub fn isoformat<Tz: TimeZone>(at: &DateTime<Tz>) -> String {
    let at = at.with_timezone(&Utc);
    let seconds = if at.timestamp_subsec_micros() == 0 {
        SecondsFormat::Secs
    } else {
        SecondsFormat::Micros
    };
    at.to_rfc3339_opts(seconds, false)
}

/// `str(datetime)` of `at` in UTC: [`isoformat`] with a space between date and time.
pub fn str_datetime<Tz: TimeZone>(at: &DateTime<Tz>) -> String {
    isoformat(at).replacen('T', " ", 1)
}

/// `str()` of an optional aware time: [`str_datetime`], or `None`.
pub fn str_datetime_or_none<Tz: TimeZone>(at: Option<&DateTime<Tz>>) -> String {
    at.map_or_else(|| "None".to_owned(), str_datetime)
}

#[cfg(test)]
mod tests {
    use chrono::FixedOffset;

    use super::*;

    #[test]
    fn microseconds_only_when_there_are_any() {
        let whole = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
        let half = whole + chrono::Duration::milliseconds(500);
        assert_eq!(isoformat(&whole), "2024-05-01T10:00:00+00:00");
        assert_eq!(isoformat(&half), "2024-05-01T10:00:00.500000+00:00");
        assert_eq!(str_datetime(&whole), "2024-05-01 10:00:00+00:00");
        assert_eq!(str_datetime(&half), "2024-05-01 10:00:00.500000+00:00");
        assert_eq!(str_datetime_or_none::<Utc>(None), "None");
    }

    #[test]
    fn other_offsets_are_written_in_utc() {
        let seoul = FixedOffset::east_opt(9 * 3600).unwrap();
        let at = seoul.with_ymd_and_hms(2024, 5, 1, 19, 0, 0).unwrap();
        assert_eq!(str_datetime(&at), "2024-05-01 10:00:00+00:00");
    }
}
