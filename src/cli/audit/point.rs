//! Points in an initiative's past — now, a time, or a stream version — and the times
//! `--at` accepts.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::cli::views::time_text;

/// Which state of an initiative: now, at a time, or at a stream version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Point {
    Now,
    Time(DateTime<Utc>),
    Version(u64),
}

impl Point {
    pub(super) fn of(at: Option<DateTime<Utc>>, version: Option<u64>) -> Point {
        match (at, version) {
            (Some(at), _) => Point::Time(at),
            (None, Some(version)) => Point::Version(version),
            (None, None) => Point::Now,
        }
    }

    pub(super) fn json(self) -> Value {
        match self {
            Point::Now => Value::Null,
            Point::Time(at) => json!({"time": at.to_rfc3339_opts(SecondsFormat::Micros, true)}),
            Point::Version(version) => json!({"version": version}),
        }
    }
}

pub(super) fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(999_999_999),
    }
}

pub(super) fn utc_text(at: DateTime<Utc>) -> String {
    time_text(Some(&timestamp(at)))
}

/// `--at`: an RFC 3339 time; a time without a zone, taken as UTC (also as this client
/// prints them, `2026-03-01 09:30:00 UTC`); or a date, meaning the end of that day in UTC.
pub fn parse_at(given: &str) -> Result<DateTime<Utc>, String> {
    let given = given.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(given) {
        return Ok(at.with_timezone(&Utc));
    }
    let local = given.strip_suffix("UTC").or_else(|| given.strip_suffix('Z')).unwrap_or(given).trim_end();
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(local, format) {
            return Ok(at.and_utc());
        }
    }
    if let Some(end) =
        NaiveDate::parse_from_str(local, "%Y-%m-%d").ok().and_then(|d| d.and_hms_micro_opt(23, 59, 59, 999_999))
    {
        return Ok(end.and_utc());
    }
    Err("expected an RFC 3339 time (2026-03-01T09:30:00Z), a UTC time (2026-03-01 09:30:00) \
         or a date (2026-03-01, meaning the end of that day, UTC)"
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_or_a_date_meaning_its_end() {
        let at = |s: &str| parse_at(s).map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true));
        assert_eq!(at("2026-03-01T09:30:00Z").as_deref(), Ok("2026-03-01T09:30:00.000000Z"));
        assert_eq!(at("2026-03-01T10:30:00.25+01:00").as_deref(), Ok("2026-03-01T09:30:00.250000Z"));
        assert_eq!(at("2026-03-01 09:30:00").as_deref(), Ok("2026-03-01T09:30:00.000000Z"));
        assert_eq!(at("2026-03-01 09:30:00 UTC").as_deref(), Ok("2026-03-01T09:30:00.000000Z"));
        assert_eq!(at("2026-03-01T09:30").as_deref(), Ok("2026-03-01T09:30:00.000000Z"));
        assert_eq!(at("2026-03-01").as_deref(), Ok("2026-03-01T23:59:59.999999Z"));
        assert!(at("yesterday").is_err());
        assert!(at("2026-02-30").is_err());
    }
}
