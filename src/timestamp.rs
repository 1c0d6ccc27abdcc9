//! The timestamp formats S3 and SigV4 use, in UTC without leap seconds (Unix time). HTTP dates
//! are the `httpdate` crate's (hyper's own); calendar arithmetic is the `time` crate's (already
//! built for aws-sigv4). Nothing here panics on any input.
//!
//! Contract:
//! - [`format_iso8601_millis`]: epoch milliseconds → `2026-11-25T17:13:11.000Z` (XML bodies),
//!   always with milliseconds, as S3 writes them. Instants outside years -9999..=9999 are
//!   clamped to that range.
//! - [`format_http_date`]: epoch seconds → IMF-fixdate `Wed, 25 Nov 2026 17:13:11 GMT`, for
//!   instants in 1970..=9999 (earlier or later ones are clamped: HTTP dates before 1970 are not
//!   representable by the parser either).
//! - [`parse_http_date`]: the three HTTP-date forms RFC 9110 §5.6.7 requires a recipient to
//!   accept (IMF-fixdate, RFC 850, asctime), case-sensitive, no surrounding whitespace, years
//!   1970..=9999. The weekday must match the date; second 60 is refused. RFC 850 two-digit
//!   years 70–99 are 19xx and 00–69 are 20xx (a fixed pivot, so parsing does not depend on the
//!   clock). httpdate's RFC 850 reader does not check the space after the weekday's comma.
//! - [`parse_iso8601`]: ISO 8601 extended UTC `2026-11-25T17:13:11Z`, optionally with a
//!   fraction of a second (`.000Z`, dropped), as XML bodies carry timestamps.
//! - [`parse_amz_date`] / [`format_amz_date`]: ISO 8601 basic `20261125T171311Z` (SigV4
//!   `X-Amz-Date`), exactly 16 ASCII characters with calendar-valid fields.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

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

/// Seconds of 9999-12-31T23:59:59Z, the last instant an HTTP date can name.
const LAST_HTTP_DATE: i64 = 253_402_300_799;

/// Milliseconds since the Unix epoch (negative before it).
pub fn epoch_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// Whole seconds since the Unix epoch (negative before it, rounded towards the past).
pub fn epoch_secs(t: SystemTime) -> i64 {
    epoch_millis(t).div_euclid(1000)
}

/// The instant `epoch_secs` seconds after the epoch, clamped to what `time` represents.
fn utc(epoch_secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(epoch_secs).unwrap_or_else(|_| {
        if epoch_secs < 0 {
            PrimitiveDateTime::MIN.assume_utc()
        } else {
            PrimitiveDateTime::MAX.assume_utc()
        }
    })
}

/// `2026-11-25T17:13:11.000Z`.
pub fn format_iso8601_millis(epoch_millis: i64) -> String {
    let t = utc(epoch_millis.div_euclid(1000));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        epoch_millis.rem_euclid(1000)
    )
}

/// IMF-fixdate: `Wed, 25 Nov 2026 17:13:11 GMT`.
pub fn format_http_date(epoch_secs: i64) -> String {
    let secs = epoch_secs.clamp(0, LAST_HTTP_DATE).unsigned_abs();
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// `20261125T171311Z`.
pub fn format_amz_date(t: SystemTime) -> String {
    let t = utc(epoch_secs(t));
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses an HTTP-date in any of its three forms into epoch seconds.
pub fn parse_http_date(s: &str) -> Result<i64, TimeError> {
    // httpdate trims whitespace; the header grammar has none inside the field value.
    if s.trim() != s {
        return Err(TimeError::new(s));
    }
    httpdate::parse_http_date(s)
        .map(epoch_secs)
        .map_err(|_| TimeError::new(s))
}

/// Parses `2026-11-25T17:13:11Z` or `2026-11-25T17:13:11.123Z` into epoch seconds.
pub fn parse_iso8601(s: &str) -> Result<i64, TimeError> {
    let err = || TimeError::new(s);
    let b = s.as_bytes();
    let whole = b.len() == 20 && b[19] == b'Z';
    let fraction = b.len() > 21
        && b[19] == b'.'
        && b[b.len() - 1] == b'Z'
        && b[20..b.len() - 1].iter().all(u8::is_ascii_digit);
    if !(whole || fraction) || [4, 7, 10, 13, 16].map(|i| b[i]) != *b"--T::" {
        return Err(err());
    }
    // The same fields in the basic form: YYYYMMDDTHHMMSSZ.
    let basic: String = [
        &s[0..4],
        &s[5..7],
        &s[8..10],
        "T",
        &s[11..13],
        &s[14..16],
        &s[17..19],
        "Z",
    ]
    .concat();
    parse_amz_date(&basic).map(epoch_secs).map_err(|_| err())
}

/// Parses `20261125T171311Z`.
pub fn parse_amz_date(s: &str) -> Result<SystemTime, TimeError> {
    let err = || TimeError::new(s);
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return Err(err());
    }
    let num = |range: std::ops::Range<usize>| -> Result<u16, TimeError> {
        b[range]
            .iter()
            .try_fold(0u16, |acc, d| {
                d.is_ascii_digit().then(|| acc * 10 + u16::from(d - b'0'))
            })
            .ok_or_else(err)
    };
    let byte = |range| num(range).and_then(|n| u8::try_from(n).map_err(|_| err()));
    let month = Month::try_from(byte(4..6)?).map_err(|_| err())?;
    let date =
        Date::from_calendar_date(i32::from(num(0..4)?), month, byte(6..8)?).map_err(|_| err())?;
    let time = Time::from_hms(byte(9..11)?, byte(11..13)?, byte(13..15)?).map_err(|_| err())?;
    Ok(PrimitiveDateTime::new(date, time).assume_utc().into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // 2026-11-25T17:13:11Z, checked with `date -u -d @1795626791`.
    const T: i64 = 1_795_626_791;

    #[test]
    fn iso8601_parses_what_it_formats() {
        for ms in [
            0,
            T * 1000,
            T * 1000 + 7,
            951_782_400_000,
            4_107_542_400_000,
        ] {
            assert_eq!(parse_iso8601(&format_iso8601_millis(ms)), Ok(ms / 1000));
        }
        assert_eq!(parse_iso8601("2026-11-25T17:13:11Z"), Ok(T));
        assert_eq!(parse_iso8601("2026-11-25T17:13:11.123456Z"), Ok(T));
        for bad in [
            "",
            "2026-11-25T17:13:11",
            "2026-11-25 17:13:11Z",
            "2026-11-25T17:13:11.Z",
            "2026-11-25T17:13:11+00:00",
            "2026-02-30T17:13:11Z",
            "2026-11-25T24:13:11Z",
            "2026-11-25T17:13:11.1x3Z",
            "20261125T171311Z",
            "2026-1é-25T17:13:11Z",
            "२०२६-11-25T17:13:11Z",
        ] {
            assert!(parse_iso8601(bad).is_err(), "{bad}");
        }
    }

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
        // Out of range: clamped, never a panic.
        assert!(format_iso8601_millis(i64::MAX).starts_with("9999-12-31T23:59:59"));
        assert!(format_iso8601_millis(i64::MIN).starts_with("-9999-01-01"));
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
        // Clamped, never a panic.
        assert_eq!(format_http_date(-5), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(format_http_date(i64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
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
            LAST_HTTP_DATE,
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
            "Sun, 06 Nov 1994 08:49:60 GMT", // no leap seconds in Unix time
            "Sun, 06 Nov 1994 08:49:61 GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMTé",
            "Sun,  6 Nov 1994 08:49:37 GMT",
            "Sun, 06-Nov-94 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sun Nov 06 08:49:37 94",
            "Sun Nov x6 08:49:37 1994",
            "Wed, 31 Dec 1969 23:59:59 GMT", // before 1970
            "1994-11-06T08:49:37Z",
        ] {
            assert!(parse_http_date(bad).is_err(), "{bad:?}");
        }
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
            "21000229T000000Z", // 2100 is not a leap year
            "20261125T241311Z",
            "20261125T176011Z",
            "20261125T171360Z",
            "2026-11-25T17:13Z",
            "2026112+T171311Z",
            "20261125T17131éZ",
            "20261125T17131\u{e9}",
        ] {
            assert!(parse_amz_date(bad).is_err(), "{bad:?}");
        }
        // Every day of a leap year and of a common year.
        let mut t = parse_amz_date("20240101T000000Z").unwrap();
        for _ in 0..(366 + 365) {
            assert_eq!(parse_amz_date(&format_amz_date(t)), Ok(t));
            t += Duration::from_secs(86_400);
        }
        assert_eq!(format_amz_date(t), "20260101T000000Z");
    }

    #[test]
    fn epoch_conversions_handle_both_sides_of_the_epoch() {
        assert_eq!(epoch_millis(UNIX_EPOCH + Duration::from_millis(1500)), 1500);
        assert_eq!(
            epoch_millis(UNIX_EPOCH - Duration::from_millis(1500)),
            -1500
        );
        assert_eq!(epoch_secs(UNIX_EPOCH + Duration::from_secs(42)), 42);
        assert_eq!(epoch_secs(UNIX_EPOCH - Duration::from_secs(42)), -42);
        assert_eq!(epoch_secs(UNIX_EPOCH - Duration::from_millis(1)), -1);
    }

    #[test]
    fn error_input_is_truncated_on_a_char_boundary() {
        let long = "é".repeat(100);
        let err = parse_http_date(&long).unwrap_err();
        assert_eq!(err.input, "é".repeat(32));
    }
}
