//! Request timestamps for SigV4.
//!
//! Contract:
//! - [`AmzDate::parse_iso`] accepts exactly the ISO 8601 basic form SigV4 signs,
//!   `YYYYMMDDTHHMMSSZ` (UTC), with calendar-valid fields; anything else is `None`.
//! - [`AmzDate::parse_http`] accepts the IMF-fixdate form of an HTTP `Date` header
//!   (`Fri, 24 May 2013 00:00:00 GMT`); the weekday name is not cross-checked.
//! - Both keep the instant as Unix seconds and its `YYYYMMDDTHHMMSSZ` rendering, which is what
//!   the string to sign and the credential scope use.

use std::time::{SystemTime, UNIX_EPOCH};

/// A parsed request timestamp (UTC, whole seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AmzDate {
    unix: i64,
    iso: String,
}

impl AmzDate {
    /// Parses `YYYYMMDDTHHMMSSZ`.
    pub(super) fn parse_iso(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 16 || bytes.get(8) != Some(&b'T') || bytes.get(15) != Some(&b'Z') {
            return None;
        }
        let year = digits(bytes, 0, 4)?;
        let month = digits(bytes, 4, 2)?;
        let day = digits(bytes, 6, 2)?;
        let hour = digits(bytes, 9, 2)?;
        let minute = digits(bytes, 11, 2)?;
        let second = digits(bytes, 13, 2)?;
        Self::from_fields(year, month, day, hour, minute, second)
    }

    /// Parses an IMF-fixdate HTTP date: `Fri, 24 May 2013 00:00:00 GMT`.
    pub(super) fn parse_http(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 29 || !text.is_ascii() || !text.ends_with(" GMT") {
            return None;
        }
        if bytes.get(3) != Some(&b',')
            || bytes.get(4) != Some(&b' ')
            || bytes.get(7) != Some(&b' ')
            || bytes.get(11) != Some(&b' ')
            || bytes.get(16) != Some(&b' ')
            || bytes.get(19) != Some(&b':')
            || bytes.get(22) != Some(&b':')
        {
            return None;
        }
        let day = digits(bytes, 5, 2)?;
        let month_name = text.get(8..11)?;
        let month = MONTHS.iter().position(|m| *m == month_name)? as u32 + 1;
        let year = digits(bytes, 12, 4)?;
        let hour = digits(bytes, 17, 2)?;
        let minute = digits(bytes, 20, 2)?;
        let second = digits(bytes, 23, 2)?;
        Self::from_fields(year, month, day, hour, minute, second)
    }

    fn from_fields(
        year: u32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
    ) -> Option<Self> {
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let days = days_from_civil(i64::from(year), month, day);
        let unix = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
        let iso = format!("{year:04}{month:02}{day:02}T{hour:02}{minute:02}{second:02}Z");
        Some(Self { unix, iso })
    }

    /// Seconds since the Unix epoch.
    pub(super) fn unix(&self) -> i64 {
        self.unix
    }

    /// `YYYYMMDDTHHMMSSZ`.
    pub(super) fn iso(&self) -> &str {
        &self.iso
    }

    /// `YYYYMMDD`, the date of the credential scope.
    pub(super) fn date(&self) -> &str {
        self.iso.get(..8).unwrap_or_default()
    }
}

/// `t` as Unix seconds (negative before the epoch).
pub(super) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The decimal number in `bytes[start..start + len]`, if all are ASCII digits.
fn digits(bytes: &[u8], start: usize, len: usize) -> Option<u32> {
    let field = bytes.get(start..start + len)?;
    field.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days_from_civil: days since 1970-01-01 in the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn iso_dates_parse_to_unix_seconds() {
        let d = AmzDate::parse_iso("20130524T000000Z").unwrap();
        assert_eq!(d.unix(), 1_369_353_600);
        assert_eq!(d.iso(), "20130524T000000Z");
        assert_eq!(d.date(), "20130524");
        assert_eq!(AmzDate::parse_iso("19700101T000000Z").unwrap().unix(), 0);
        assert_eq!(
            AmzDate::parse_iso("20000229T235959Z").unwrap().unix(),
            951_868_799
        );
        assert_eq!(
            AmzDate::parse_iso("20261125T101112Z").unwrap().unix(),
            1_795_601_472
        );
    }

    #[test]
    fn iso_dates_reject_bad_shapes_and_fields() {
        for bad in [
            "",
            "20130524",
            "20130524T000000",
            "20130524t000000Z",
            "2013-05-24T00:00:00Z",
            "20131324T000000Z",
            "20130532T000000Z",
            "20130229T000000Z",
            "21000229T000000Z",
            "20130524T240000Z",
            "20130524T006000Z",
            "20130524T000060Z",
            "2013052+T000000Z",
            "20130524T00000ZZ",
        ] {
            assert!(AmzDate::parse_iso(bad).is_none(), "{bad:?}");
        }
        assert!(AmzDate::parse_iso("20000229T000000Z").is_some());
    }

    #[test]
    fn http_dates_parse() {
        let d = AmzDate::parse_http("Fri, 24 May 2013 00:00:00 GMT").unwrap();
        assert_eq!(d, AmzDate::parse_iso("20130524T000000Z").unwrap());
        let d = AmzDate::parse_http("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(d.iso(), "19941106T084937Z");
        for bad in [
            "Fri, 24 May 2013 00:00:00 UTC",
            "Fri, 24 Mai 2013 00:00:00 GMT",
            "Fri 24 May 2013 00:00:00 GMT ",
            "Friday, 24-May-13 00:00:00 GMT",
            "Fri, 31 Jun 2013 00:00:00 GMT",
        ] {
            assert!(AmzDate::parse_http(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn system_time_converts_both_sides_of_the_epoch() {
        assert_eq!(unix_seconds(UNIX_EPOCH + Duration::from_secs(42)), 42);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(42)), -42);
    }
}
