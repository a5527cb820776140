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
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s))
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

    fn endpoint_group(&self, req: &ApiRequest) -> String {
        let path: Vec<&str> = req
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| if is_id(s) { "{id}" } else { s })
            .collect();
        format!("{} /{}/", req.method, path.join("/"))
    }

    fn rate_info(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Option<RateInfo> {
        if let Some(v) = header(headers, "ratelimit") {
            let mut info = parse_ratelimit(v);
            if info.reset.is_none() {
                info.reset = header(headers, "ratelimit-reset").and_then(seconds);
            }
            return Some(info);
        }
        if let Some(limit) = header(headers, "x-rate-limit-limit") {
            return Some(RateInfo {
                limit: limit.trim().parse().ok(),
                remaining: header(headers, "x-rate-limit-remaining")
                    .and_then(|v| v.trim().parse().ok()),
                reset: header(headers, "x-rate-limit-reset").and_then(seconds),
                window: None,
            });
        }
        if status == 429 {
            // Legacy bodies: flat (2017 recordings) or nested under "error".
            let body: Value = serde_json::from_slice(body).ok()?;
            let b = if body["error"].is_object() {
                &body["error"]
            } else {
                &body
            };
            let reset = match &b["rate_reset"] {
                Value::Number(n) => n.as_f64().map(Duration::from_secs_f64),
                Value::String(s) => seconds(s),
                _ => None,
            };
            return Some(RateInfo {
                limit: b["rate_limit"].as_u64().map(|l| l as u32),
                remaining: Some(0),
                reset,
                window: b["rate_window"]
                    .as_f64()
                    .and_then(crmkit_core::http::rate::secs_to_duration),
            });
        }
        None
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
