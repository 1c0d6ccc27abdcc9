//! Timestamp formats S3 uses, on the proleptic Gregorian calendar in UTC, without leap seconds
//! (Unix time), and without a date crate.
//!
//! Contract:
//! - [`format_iso8601_millis`]: epoch milliseconds → `2026-11-25T17:13:11.000Z` (XML bodies).
//!   Years 0..=9999 come out as exactly four digits; other years are outside S3's range and
//!   come out with however many digits they need.
//! - [`format_http_date`]: epoch seconds → IMF-fixdate `Wed, 25 Nov 2026 17:13:11 GMT`.
//! - [`parse_http_date`]: accepts exactly the three HTTP-date forms RFC 9110 §5.6.7 requires a
//!   recipient to accept (IMF-fixdate, RFC 850, asctime), case-sensitive, no surrounding
//!   whitespace. The weekday must be spelled correctly and must match the date. Field ranges
//!   are checked (second 60 is accepted, as the grammar allows, and counts as the next
//!   minute's 0). RFC 850 two-digit years 70–99 are 19xx and 00–69 are 20xx: a fixed pivot
//!   instead of RFC 9110's "50 years from now" rule, so parsing does not depend on the clock.
//! - [`parse_amz_date`] / [`format_amz_date`]: ISO 8601 basic `20261125T171311Z` (SigV4
//!   `X-Amz-Date`), exactly 16 ASCII characters.
//! - Nothing here panics on any input.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A timestamp string that is not in the expected format or names an impossible date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {input:?}")]
pub struct TimeError {
    /// The rejected input, cut to 64 bytes.
    pub input: String,
}

impl TimeError {
    fn new(input: &str) -> Self {
        let mut end = input.len().min(64);
        while !input.is_char_boundary(end) {
            end -= 1;
        }
        TimeError {
            input: input[..end].to_owned(),
        }
    }
}

const SECS_PER_DAY: i64 = 86_400;
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
/// Index 0 is Sunday.
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const WEEKDAYS_LONG: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Milliseconds since the Unix epoch (negative before it).
pub fn epoch_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// `2026-11-25T17:13:11.000Z`.
pub fn format_iso8601_millis(epoch_millis: i64) -> String {
    let secs = epoch_millis.div_euclid(1000);
    let millis = epoch_millis.rem_euclid(1000);
    let (civil, h, mi, s) = split_secs(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        civil.year, civil.month, civil.day, h, mi, s, millis
    )
}

/// IMF-fixdate: `Wed, 25 Nov 2026 17:13:11 GMT`.
pub fn format_http_date(epoch_secs: i64) -> String {
    let (civil, h, mi, s) = split_secs(epoch_secs);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[weekday(epoch_secs.div_euclid(SECS_PER_DAY))],
        civil.day,
        MONTHS[(civil.month - 1) as usize],
        civil.year,
        h,
        mi,
        s
    )
}

/// `20261125T171311Z`.
pub fn format_amz_date(t: SystemTime) -> String {
    let (civil, h, mi, s) = split_secs(epoch_millis(t).div_euclid(1000));
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        civil.year, civil.month, civil.day, h, mi, s
    )
}

/// Parses an HTTP-date in any of its three forms into epoch seconds.
pub fn parse_http_date(s: &str) -> Result<i64, TimeError> {
    let parsed = if !s.is_ascii() {
        None
    } else if s.len() == 29 && s.as_bytes().get(3) == Some(&b',') {
        parse_imf_fixdate(s)
    } else if s.len() == 24 {
        parse_asctime(s)
    } else {
        parse_rfc850(s)
    };
    parsed.ok_or_else(|| TimeError::new(s))
}

/// Parses `20261125T171311Z`.
pub fn parse_amz_date(s: &str) -> Result<SystemTime, TimeError> {
    let err = || TimeError::new(s);
    if s.len() != 16 || !s.is_ascii() || &s[8..9] != "T" || &s[15..] != "Z" {
        return Err(err());
    }
    let date = Civil {
        year: digits(&s[0..4]).ok_or_else(err)?,
        month: digits(&s[4..6]).ok_or_else(err)?,
        day: digits(&s[6..8]).ok_or_else(err)?,
    };
    let h = digits(&s[9..11]).ok_or_else(err)?;
    let mi = digits(&s[11..13]).ok_or_else(err)?;
    let sec = digits(&s[13..15]).ok_or_else(err)?;
    let secs = to_epoch_secs(date, h, mi, sec).ok_or_else(err)?;
    let t = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    };
    t.ok_or_else(err)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`; the caller checked length 29 and ASCII.
fn parse_imf_fixdate(s: &str) -> Option<i64> {
    if &s[3..5] != ", " || &s[7..8] != " " || &s[11..12] != " " || &s[16..17] != " " {
        return None;
    }
    if &s[25..] != " GMT" {
        return None;
    }
    let date = Civil {
        year: digits(&s[12..16])?,
        month: month(&s[8..11])?,
        day: digits(&s[5..7])?,
    };
    let (h, mi, sec) = hms(&s[17..25])?;
    finish(date, h, mi, sec, weekday_index(&WEEKDAYS, &s[0..3])?)
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`; the caller checked ASCII.
fn parse_rfc850(s: &str) -> Option<i64> {
    let (wday, rest) = s.split_once(", ")?;
    if rest.len() != 22 || &rest[2..3] != "-" || &rest[6..7] != "-" || &rest[9..10] != " " {
        return None;
    }
    if &rest[18..] != " GMT" {
        return None;
    }
    let yy = digits(&rest[7..9])?;
    let date = Civil {
        year: if yy >= 70 { 1900 + yy } else { 2000 + yy },
        month: month(&rest[3..6])?,
        day: digits(&rest[0..2])?,
    };
    let (h, mi, sec) = hms(&rest[10..18])?;
    finish(date, h, mi, sec, weekday_index(&WEEKDAYS_LONG, wday)?)
}

/// `Sun Nov  6 08:49:37 1994`; the caller checked length 24 and ASCII.
fn parse_asctime(s: &str) -> Option<i64> {
    if &s[3..4] != " " || &s[7..8] != " " || &s[10..11] != " " || &s[19..20] != " " {
        return None;
    }
    // The day is two digits or a space and one digit.
    let day = match s[8..10].strip_prefix(' ') {
        Some(one) => digits(one)?,
        None => digits(&s[8..10])?,
    };
    let date = Civil {
        year: digits(&s[20..24])?,
        month: month(&s[4..7])?,
        day,
    };
    let (h, mi, sec) = hms(&s[11..19])?;
    finish(date, h, mi, sec, weekday_index(&WEEKDAYS, &s[0..3])?)
}

fn finish(date: Civil, h: u32, mi: u32, sec: u32, wday: usize) -> Option<i64> {
    let secs = to_epoch_secs(date, h, mi, sec)?;
    (weekday(days_from_civil(date)) == wday).then_some(secs)
}

/// `HH:MM:SS`.
fn hms(s: &str) -> Option<(u32, u32, u32)> {
    if s.len() != 8 || &s[2..3] != ":" || &s[5..6] != ":" {
        return None;
    }
    Some((digits(&s[0..2])?, digits(&s[3..5])?, digits(&s[6..8])?))
}

/// A non-empty run of ASCII digits (no sign, unlike `str::parse`).
fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn month(s: &str) -> Option<u32> {
    let i = MONTHS.iter().position(|m| *m == s)?;
    u32::try_from(i + 1).ok()
}

fn weekday_index(names: &[&str; 7], s: &str) -> Option<usize> {
    names.iter().position(|n| *n == s)
}

/// Weekday of a day number, 0 = Sunday (1970-01-01 was a Thursday).
fn weekday(days: i64) -> usize {
    // rem_euclid(7) is in 0..7, so the cast cannot truncate.
    (days + 4).rem_euclid(7) as usize
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: u32,
    month: u32,
    day: u32,
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Validates the fields and converts to epoch seconds.
fn to_epoch_secs(date: Civil, h: u32, mi: u32, sec: u32) -> Option<i64> {
    let valid_date = (1..=12).contains(&date.month)
        && date.day >= 1
        && date.day <= days_in_month(i64::from(date.year), date.month);
    if !valid_date || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(date);
    Some(days * SECS_PER_DAY + i64::from(h * 3600 + mi * 60 + sec))
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(date: Civil) -> i64 {
    let m = i64::from(date.month);
    let y = i64::from(date.year) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(date.day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Splits epoch seconds into (date, hour, minute, second). Years before 0 or past u32 are
/// clamped, which no S3 timestamp reaches.
fn split_secs(secs: i64) -> (Civil, u32, u32, u32) {
    let days = secs.div_euclid(SECS_PER_DAY);
    // rem_euclid keeps the second of day in 0..86400, so the casts below cannot truncate.
    let sod = secs.rem_euclid(SECS_PER_DAY) as u32;
    (civil_from_days(days), sod / 3600, sod / 60 % 60, sod % 60)
}

/// Inverse of [`days_from_civil`] (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> Civil {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year: u32::try_from(year.max(0)).unwrap_or(u32::MAX),
        // day is in 1..=31 and month in 1..=12 by construction.
        month: month as u32,
        day: day as u32,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // 2026-11-25T17:13:11Z, checked with `date -u -d @1795626791`.
    const T: i64 = 1_795_626_791;

    #[test]
    fn iso8601_known_values() {
        assert_eq!(format_iso8601_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_iso8601_millis(T * 1000), "2026-11-25T17:13:11.000Z");
        assert_eq!(
            format_iso8601_millis(T * 1000 + 7),
            "2026-11-25T17:13:11.007Z"
        );
        assert_eq!(
            format_iso8601_millis(946_684_799_999),
            "1999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            format_iso8601_millis(946_684_800_000),
            "2000-01-01T00:00:00.000Z"
        );
        // 2000 is a leap year (divisible by 400), 1900 and 2100 are not.
        assert_eq!(
            format_iso8601_millis(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            format_iso8601_millis(951_868_800_000),
            "2000-03-01T00:00:00.000Z"
        );
        assert_eq!(
            format_iso8601_millis(1_709_164_800_000),
            "2024-02-29T00:00:00.000Z"
        );
        assert_eq!(
            format_iso8601_millis(4_107_542_400_000),
            "2100-03-01T00:00:00.000Z"
        );
        assert_eq!(format_iso8601_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            format_iso8601_millis(253_402_300_799_000),
            "9999-12-31T23:59:59.000Z"
        );
    }

    #[test]
    fn civil_round_trips_every_day_from_year_1_to_9999() {
        // 0001-01-01 ..= 9999-12-31
        for days in -719_162..=2_932_896 {
            let c = civil_from_days(days);
            assert_eq!(days_from_civil(c), days, "{c:?}");
            assert!(c.day >= 1 && c.day <= days_in_month(i64::from(c.year), c.month));
        }
        assert_eq!(civil_from_days(-719_162).year, 1);
        assert_eq!(civil_from_days(2_932_896).year, 9999);
    }

    #[test]
    fn http_date_formats() {
        assert_eq!(format_http_date(T), "Wed, 25 Nov 2026 17:13:11 GMT");
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            format_http_date(784_111_777),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            format_http_date(951_782_400),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
    }

    #[test]
    fn http_date_parses_all_three_forms() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Ok(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Ok(784_111_777)
        );
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Ok(784_111_777));
        assert_eq!(parse_http_date("Wed Nov 25 17:13:11 2026"), Ok(T));
        assert_eq!(parse_http_date("Wednesday, 25-Nov-26 17:13:11 GMT"), Ok(T));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Ok(0));
    }

    #[test]
    fn http_date_round_trips() {
        for secs in [
            0,
            1,
            59,
            86_399,
            951_782_400,
            T,
            4_102_444_800,
            253_402_300_799,
        ] {
            assert_eq!(parse_http_date(&format_http_date(secs)), Ok(secs));
        }
        let mut secs = 0;
        while secs < 4_102_444_800 {
            assert_eq!(parse_http_date(&format_http_date(secs)), Ok(secs));
            secs += 7_777_777;
        }
    }

    #[test]
    fn http_date_rejects_bad_input() {
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Mon, 06 Nov 1994 08:49:37 GMT", // wrong weekday
            "Sun, 06 Nov 1994 08:49:37 GMT ",
            " Sun, 06 Nov 1994 08:49:37 GMT",
            "sun, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Thu, 29 Feb 1900 00:00:00 GMT", // 1900 is not a leap year
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Nov 1994 08:49:61 GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMTé",
            "Sun,  6 Nov 1994 08:49:37 GMT",
            "Sun, 06-Nov-94 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sun Nov 06 08:49:37 94",
            "Sun Nov x6 08:49:37 1994",
            "1994-11-06T08:49:37Z",
        ] {
            assert!(parse_http_date(bad).is_err(), "{bad:?}");
        }
        // Leap second 60 is in the grammar.
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:60 GMT"),
            Ok(784_111_800)
        );
        // asctime with a two-digit day.
        assert_eq!(parse_http_date("Wed Nov 25 17:13:11 2026"), Ok(T));
    }

    #[test]
    fn rfc850_year_pivot() {
        assert_eq!(parse_http_date("Thursday, 01-Jan-70 00:00:00 GMT"), Ok(0));
        assert_eq!(
            parse_http_date("Saturday, 01-Jan-00 00:00:00 GMT"),
            Ok(946_684_800)
        );
        assert_eq!(
            parse_http_date("Tuesday, 31-Dec-69 23:59:59 GMT"),
            Ok(3_155_759_999)
        );
    }

    #[test]
    fn amz_date_round_trips() {
        let t = parse_amz_date("20261125T171311Z").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_secs(T as u64));
        assert_eq!(format_amz_date(t), "20261125T171311Z");
        assert_eq!(parse_amz_date("19700101T000000Z"), Ok(UNIX_EPOCH));
        assert_eq!(
            parse_amz_date("20000229T120000Z"),
            Ok(UNIX_EPOCH + Duration::from_secs(951_825_600))
        );
        assert_eq!(
            parse_amz_date("19691231T235959Z"),
            Ok(UNIX_EPOCH - Duration::from_secs(1))
        );
        for bad in [
            "",
            "20261125T171311",
            "20261125 171311Z",
            "20261125T171311z",
            "20261325T171311Z",
            "20260229T000000Z",
            "20261125T241311Z",
            "2026-11-25T17:13Z",
            "2026112+T171311Z",
            "20261125T17131éZ",
        ] {
            assert!(parse_amz_date(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn epoch_millis_handles_both_sides_of_epoch() {
        assert_eq!(epoch_millis(UNIX_EPOCH + Duration::from_millis(1500)), 1500);
        assert_eq!(
            epoch_millis(UNIX_EPOCH - Duration::from_millis(1500)),
            -1500
        );
    }

    #[test]
    fn error_input_is_truncated_on_a_char_boundary() {
        let long = "é".repeat(100);
        let err = parse_http_date(&long).unwrap_err();
        assert_eq!(err.input, "é".repeat(32));
    }
}
