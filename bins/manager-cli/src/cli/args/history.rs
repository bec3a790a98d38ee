//! `manager-cli clear-history`.

use bai_agents::Retention;
use clap::Args;

/// The options of `clear-history`.
#[derive(Debug, Args)]
pub struct ClearHistoryArgs {
    /// How long to keep history: `<int>yr` and `<int>mo` are calendar years and months; a number
    /// alone is seconds, or with `w`, `d`, `h`, `m` or `s` weeks, days, hours, minutes or seconds.
    #[arg(short, long, value_name = "DURATION", default_value = "1yr", value_parser = parse_retention)]
    pub retention: Retention,
    /// Only count what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object with the cutoff and the counts instead.
    #[arg(long)]
    pub json: bool,
}

/// `--retention`: the reference's `TimeDuration`, years and months as calendar ones, parsed as the
/// error logs' retention is.
pub fn parse_retention(text: &str) -> Result<Retention, String> {
    Retention::parse(text.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_calendar_units_and_reads_the_rest_as_the_reference_does() {
        assert_eq!(parse_retention("1yr"), Ok(Retention::Months(12)));
        assert_eq!(parse_retention("3mo"), Ok(Retention::Months(3)));
        assert_eq!(
            parse_retention("2d"),
            Ok(Retention::Fixed(std::time::Duration::from_secs(172_800)))
        );
        assert_eq!(
            parse_retention("90"),
            Ok(Retention::Fixed(std::time::Duration::from_secs(90)))
        );
        assert!(parse_retention("1.5yr").is_err());
        assert!(parse_retention("-1d").is_err());
        assert!(parse_retention("soon").is_err());
    }
}
