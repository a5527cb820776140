//! How Close speaks HTTP: endpoint groups, limit headers and error bodies.

use std::time::Duration;

use crmkit_core::http::{ApiRequest, HeaderMap, RateInfo};
use crmkit_core::{Crm, Error, ErrorKind, FieldError};
use serde_json::Value;

/// Close's HTTP conventions, for [`crmkit_core::http::Transport`].
#[derive(Debug, Default, Clone, Copy)]
pub struct CloseDialect;

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Parses `RateLimit: limit=100, remaining=50, reset=5` (reset in seconds, may be decimal).
pub(crate) fn parse_ratelimit(value: &str) -> RateInfo {
    let mut info = RateInfo::default();
    for part in value.split([',', ';']) {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "limit" => info.limit = v.parse().ok(),
            "remaining" => info.remaining = v.parse().ok(),
            "reset" => info.reset = seconds(v),
            _ => {}
        }
    }
    info
}

fn seconds(v: &str) -> Option<Duration> {
    let s: f64 = v.trim().trim_matches('"').parse().ok()?;
    // Never panics: absurd hints are capped, negative or NaN ones ignored.
    crmkit_core::http::rate::secs_to_duration(s)
}

/// Whether a path segment is a Close object id (`lead_…`, `oppo_…`).
fn is_id(seg: &str) -> bool {
    match seg.split_once('_') {
        Some((prefix, rest)) => {
            !prefix.is_empty()
                && prefix.chars().all(|c| c.is_ascii_lowercase())
                && !rest.is_empty()
                && rest.chars().all(|c| c.is_ascii_alphanumeric())
                && rest.len() >= 8
        }
        None => false,
    }
}

impl crmkit_core::http::Dialect for CloseDialect {
    fn crm(&self) -> Crm {
        Crm::Close
    }

    /// crmkit's own budget key: method plus path with ids folded. Close counts per endpoint
    /// group (developer.close.com/topics/rate-limits) but publishes no group names (429
    /// bodies carry an opaque `rate_endpoint_group` hash), so this is a client-side grouping
    /// only; the server's headers stay the truth about what is left.
    fn endpoint_group(&self, req: &ApiRequest) -> String {
        let path: Vec<&str> = req
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| if is_id(s) { "{id}" } else { s })
            .collect();
        format!("{} /{}/", req.method, path.join("/"))
    }

    /// Reads the budget in all three forms Close has sent: the combined `RateLimit:
    /// limit=…, remaining=…, reset=…` header, the split `ratelimit-limit` / `-remaining` /
    /// `-reset` headers of older responses, and the legacy `X-Rate-Limit-*` headers, then the
    /// legacy 429 body (`rate_limit`, `rate_reset`; flat or under `error`) for what is still
    /// missing (developer.close.com/topics/rate-limits; recorded find_activities.json).
    fn rate_info(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Option<RateInfo> {
        let mut info = header(headers, "ratelimit")
            .map(parse_ratelimit)
            .unwrap_or_default();
        for prefix in ["ratelimit-", "x-rate-limit-"] {
            let get = |name: &str| header(headers, &format!("{prefix}{name}"));
            if info.limit.is_none() {
                info.limit = get("limit").and_then(|v| v.trim().parse().ok());
            }
            if info.remaining.is_none() {
                info.remaining = get("remaining").and_then(|v| v.trim().parse().ok());
            }
            if info.reset.is_none() {
                info.reset = get("reset").and_then(seconds);
            }
        }
        if status == 429 {
            if let Ok(body) = serde_json::from_slice::<Value>(body) {
                let b = if body["error"].is_object() {
                    &body["error"]
                } else {
                    &body
                };
                if info.reset.is_none() {
                    info.reset = match &b["rate_reset"] {
                        Value::Number(n) => n.as_f64().and_then(|s| seconds(&s.to_string())),
                        Value::String(s) => seconds(s),
                        _ => None,
                    };
                }
                if info.limit.is_none() {
                    info.limit = b["rate_limit"].as_u64().and_then(|l| u32::try_from(l).ok());
                }
                // The legacy body names the window too (recorded find_leads_rate_limit.json).
                if info.window.is_none() {
                    info.window = b["rate_window"]
                        .as_f64()
                        .and_then(crmkit_core::http::rate::secs_to_duration);
                }
            }
            // A 429 means the window is spent, whatever the headers still said.
            info.remaining = Some(0);
        }
        let known = info.limit.is_some()
            || info.remaining.is_some()
            || info.reset.is_some()
            || info.window.is_some();
        known.then_some(info)
    }

    fn error(&self, status: u16, _headers: &HeaderMap, body: &[u8]) -> Error {
        let kind = ErrorKind::from_status(status);
        let Ok(json) = serde_json::from_slice::<Value>(body) else {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                format!("Close answered HTTP {status} with no body")
            } else {
                format!(
                    "Close answered: {}",
                    text.chars().take(200).collect::<String>()
                )
            };
            return Error::new(kind, message);
        };
        let mut messages: Vec<String> = Vec::new();
        match &json["error"] {
            Value::String(s) => messages.push(s.clone()),
            Value::Object(o) => {
                if let Some(m) = o.get("message").and_then(Value::as_str) {
                    messages.push(m.to_string());
                }
            }
            _ => {}
        }
        if let Some(m) = json["message"].as_str() {
            messages.push(m.to_string());
        }
        messages.extend(
            json["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string),
        );
        let field_errors: Vec<FieldError> = json["field-errors"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(field, msg)| FieldError {
                field: field.clone(),
                message: msg
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| msg.to_string()),
            })
            .collect();
        let message = if messages.is_empty() && !field_errors.is_empty() {
            "Close rejected the request".to_string()
        } else {
            messages.join("; ")
        };
        Error::new(kind, message)
            .with_field_errors(field_errors)
            .with_body(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmkit_core::http::Dialect;

    #[test]
    fn reads_the_ratelimit_header() {
        let i = parse_ratelimit("limit=100, remaining=50, reset=5.25");
        assert_eq!(i.limit, Some(100));
        assert_eq!(i.remaining, Some(50));
        assert_eq!(i.reset, Some(Duration::from_millis(5250)));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn reads_all_three_header_forms_and_the_legacy_body() {
        let combined = headers(&[("ratelimit", "limit=100, remaining=7, reset=3")]);
        let i = CloseDialect.rate_info(200, &combined, b"").unwrap();
        assert_eq!((i.limit, i.remaining), (Some(100), Some(7)));
        assert_eq!(i.reset, Some(Duration::from_secs(3)));

        let split = headers(&[
            ("ratelimit-limit", "240"),
            ("ratelimit-remaining", "239"),
            ("ratelimit-reset", "1"),
        ]);
        let i = CloseDialect.rate_info(200, &split, b"").unwrap();
        assert_eq!((i.limit, i.remaining), (Some(240), Some(239)));
        assert_eq!(i.reset, Some(Duration::from_secs(1)));

        let legacy = headers(&[
            ("x-rate-limit-limit", "320"),
            ("x-rate-limit-remaining", "0"),
            ("x-rate-limit-reset", "0.5"),
        ]);
        let i = CloseDialect.rate_info(200, &legacy, b"").unwrap();
        assert_eq!((i.limit, i.remaining), (Some(320), Some(0)));
        assert_eq!(i.reset, Some(Duration::from_millis(500)));

        // The 2017 recording: a flat body with `rate_reset` as a string and `rate_window`.
        let body = br#"{"message":"API call count exceeded for this period","rate_limit":320,"rate_limit_type":"key","rate_reset":"0.595956","rate_window":8}"#;
        let i = CloseDialect
            .rate_info(429, &HeaderMap::new(), body)
            .unwrap();
        assert_eq!((i.limit, i.remaining), (Some(320), Some(0)));
        assert_eq!(i.reset, Some(Duration::from_secs_f64(0.595956)));
        assert_eq!(i.window, Some(Duration::from_secs(8)));
        let nested = br#"{"error":{"rate_reset":1.5,"rate_limit":40}}"#;
        let i = CloseDialect
            .rate_info(429, &HeaderMap::new(), nested)
            .unwrap();
        assert_eq!(i.reset, Some(Duration::from_millis(1500)));

        assert!(
            CloseDialect
                .rate_info(200, &HeaderMap::new(), b"")
                .is_none()
        );
        let absurd = headers(&[("ratelimit", "limit=1, remaining=0, reset=1e300")]);
        // Capped, never a panic: the transport then fails that request fast.
        assert_eq!(
            CloseDialect.rate_info(200, &absurd, b"").unwrap().reset,
            Some(crmkit_core::http::rate::LONGEST_WAIT)
        );
    }

    #[test]
    fn ids_are_folded_into_one_group() {
        let d = CloseDialect;
        let a = ApiRequest::get("lead/lead_IIDHIStmFcFQZZP0BRe99V1MCoXWz2PGCm6EDmR9v2O/");
        let b = ApiRequest::get("lead/lead_XLnuBerozWCpobHZOJjbC9KpPIUcFgpDfut809pCcp9/");
        assert_eq!(d.endpoint_group(&a), "GET /lead/{id}/");
        assert_eq!(d.endpoint_group(&a), d.endpoint_group(&b));
        assert_eq!(
            d.endpoint_group(&ApiRequest::get("custom_field/lead/")),
            "GET /custom_field/lead/"
        );
    }

    #[test]
    fn validation_body_keeps_field_errors() {
        let body = br#"{"errors": [], "field-errors": {"status": "Not a valid choice."}}"#;
        let e = CloseDialect.error(400, &HeaderMap::new(), body);
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert_eq!(e.field_errors()[0].field, "status");
        assert!(e.body().is_some());
    }
}
