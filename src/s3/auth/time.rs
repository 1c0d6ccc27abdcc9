//! Request timestamps for SigV4 and SigV2, on [`crate::timestamp`].
//!
//! Contract:
//! - [`AmzDate::parse_iso`] accepts exactly the ISO 8601 basic form SigV4 signs,
//!   `YYYYMMDDTHHMMSSZ` (UTC), with calendar-valid fields; anything else is `None`.
//! - [`AmzDate::parse_http`] accepts an HTTP `Date` header in any HTTP-date form.
//! - Both keep the instant as Unix seconds and its `YYYYMMDDTHHMMSSZ` rendering, which is what
//!   the string to sign and the credential scope use. (SigV2's RFC 822 `Date` forms are
//!   re-spelled into this form by `sigv2`.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::timestamp;

/// A parsed request timestamp (UTC, whole seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AmzDate {
    unix: i64,
    iso: String,
}

impl AmzDate {
    /// Parses `YYYYMMDDTHHMMSSZ`.
    pub(super) fn parse_iso(text: &str) -> Option<Self> {
        let t = timestamp::parse_amz_date(text).ok()?;
        // A valid input is already the canonical rendering (fixed-width digits).
        Some(Self {
            unix: timestamp::epoch_secs(t),
            iso: text.to_owned(),
        })
    }

    /// Parses an HTTP `Date` header (`Fri, 24 May 2013 00:00:00 GMT`, or another HTTP-date
    /// form: [`crate::timestamp::parse_http_date`], whose weekday must match the date).
    pub(super) fn parse_http(text: &str) -> Option<Self> {
        let unix = timestamp::parse_http_date(text).ok()?;
        let t = UNIX_EPOCH + Duration::from_secs(unix.unsigned_abs());
        Some(Self {
            unix,
            iso: timestamp::format_amz_date(t),
        })
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
    timestamp::epoch_secs(t)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
            "Fri, 31 Jun 2013 00:00:00 GMT",
            "Sat, 24 May 2013 00:00:00 GMT",
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
