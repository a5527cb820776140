//! Timestamps as the emulators read and write them.

use chrono::{DateTime, Utc};

/// Parses the timestamps and dates filters accept: RFC 3339, naive ISO (taken as UTC), or a
/// bare date (its midnight, UTC).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Microseconds since the epoch of a timestamp text, the key of the time indexes.
pub fn micros(s: &str) -> Option<i64> {
    parse_time(s).map(|t| t.timestamp_micros())
}
