//! Timestamp parsing for the formats the three CRMs actually send.
//!
//! Close sends RFC 3339 with microseconds (`2013-02-20T05:30:24.844000+00:00`) and, in webhook
//! payloads, sometimes no offset at all (`2019-01-15T12:48:23.395000`, UTC). HubSpot sends
//! RFC 3339 or epoch milliseconds as a string. Salesforce sends `+0000` offsets without a
//! colon, which RFC 3339 parsers reject. All of them end up as UTC.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Parses any timestamp format the supported CRMs send, returning `None` for anything else.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    if !text.is_empty() && text.len() >= 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_millis);
    }
    None
}

/// Formats a UTC timestamp the way Close writes them (microseconds, `+00:00`).
pub fn format_close(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_crm_format_to_the_same_instant() {
        let close = parse_timestamp("2024-05-01T12:34:56.000000+00:00").unwrap();
        let sf = parse_timestamp("2024-05-01T12:34:56.000+0000").unwrap();
        let hs = parse_timestamp("2024-05-01T12:34:56.000Z").unwrap();
        let millis = parse_timestamp("1714566896000").unwrap();
        let naive = parse_timestamp("2024-05-01T12:34:56.000").unwrap();
        assert_eq!(close, sf);
        assert_eq!(close, hs);
        assert_eq!(close, millis);
        assert_eq!(close, naive);
        assert_eq!(format_close(close), "2024-05-01T12:34:56.000000+00:00");
    }

    #[test]
    fn offsets_are_applied() {
        let t = parse_timestamp("2024-05-01T14:34:56.000+0200").unwrap();
        assert_eq!(t, parse_timestamp("2024-05-01T12:34:56Z").unwrap());
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_timestamp("yesterday").is_none());
        assert!(parse_timestamp("").is_none());
        assert!(parse_timestamp("12345").is_none());
    }
}
