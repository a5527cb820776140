//! How Salesforce speaks HTTP: its daily API budget, its `Sforce-Limit-Info` header and its
//! error bodies.
//!
//! - **Daily budget.** Every REST answer carries `Sforce-Limit-Info: api-usage=18/5000`
//!   (used/maximum over the rolling 24 hours; developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm).
//!   Each request is charged to the [`DAILY`] budget, which adopts what the header says, so
//!   many tasks sharing one org stop before the org's allowance is gone.
//! - **Quota refusal.** When the allowance is spent anyway (another integration used it),
//!   Salesforce answers HTTP 403 `REQUEST_LIMIT_EXCEEDED` ("TotalRequests Limit exceeded.",
//!   developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm):
//!   that is [`ErrorKind::QuotaExhausted`] and the daily budget is marked used up, so later
//!   requests fail locally instead of spending nothing but time. The same code with a
//!   message naming a concurrent limit (`ConcurrentRequests (Concurrent API Requests) Limit
//!   exceeded`, help.salesforce.com article 000389067; `ConcurrentPerOrgLongTxn`,
//!   `ConcurrentPerOrgApex`) means too many long requests at once:
//!   [`ErrorKind::RateLimited`], which the transport waits out and retries like a 429. The
//!   limit names are matched without regard to case. A message naming no limit known here
//!   is read by the answer's `Sforce-Limit-Info`: the quota spent if `api-usage` used, or a
//!   connected app's `per-app-api-usage` used, reaches its maximum, otherwise a passing
//!   limit; without either figure, the quota spent: retrying a spent daily quota would
//!   hammer an org that has nothing left.
//! - **Errors.** Bodies are JSON arrays `[{"message","errorCode","fields"}]`
//!   (REST API guide, "Status Codes and Error Responses"); each becomes the message, the
//!   error code decides the kind, and `fields` become per-field errors. A 300 (an external
//!   id matching several records) lists the records' URLs.
//! - **Optional pace.** Salesforce has no per-second limit for REST; a quota configured on
//!   the client adds a rolling [`API`] budget.

use crmkit_core::http::{ApiRequest, BudgetSpec, HeaderMap, RateInfo};
use crmkit_core::{Crm, Error, ErrorKind, FieldError};
use serde_json::Value;

/// The name of the org's daily API request budget.
pub const DAILY: &str = "salesforce daily";
/// The name of the optional rolling budget.
pub const API: &str = "salesforce api";
/// The starting daily allowance until the first `Sforce-Limit-Info` header says the real
/// one (an Enterprise org starts at 100,000 requests per 24 hours).
pub const DEFAULT_DAILY_LIMIT: u32 = 100_000;

/// Salesforce's HTTP conventions for [`crmkit_core::http::Transport`].
#[derive(Debug, Clone, Copy)]
pub struct SalesforceDialect {
    daily_limit: u32,
    paced: bool,
}

impl Default for SalesforceDialect {
    fn default() -> Self {
        Self::new(DEFAULT_DAILY_LIMIT, false)
    }
}

impl SalesforceDialect {
    /// A dialect starting from `daily_limit`; `paced` adds the rolling [`API`] budget with the
    /// transport's configured quota.
    pub fn new(daily_limit: u32, paced: bool) -> Self {
        Self {
            daily_limit: daily_limit.max(1),
            paced,
        }
    }
}

/// `api-usage=used/max` out of a `Sforce-Limit-Info` value (other parts such as
/// `api-bursts=…` or `per-app-api-usage=…` are ignored).
pub fn parse_limit_info(value: &str) -> Option<(u32, u32)> {
    figures(value).find_map(|(name, usage)| (name == "api-usage").then_some(usage))
}

/// Whether a `Sforce-Limit-Info` value says a daily quota is spent: `Some(true)` when its
/// `api-usage` (the org's) or a `per-app-api-usage` (a connected app's own 24-hour limit,
/// `per-app-api-usage=250/250(appName=…)`; REST API Developer Guide, "Sforce-Limit-Info"
/// response header: developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm)
/// has reached its maximum, `Some(false)` when it carries such figures and none has, `None`
/// when it carries none (parts that do not read as `used/max` are skipped).
pub fn quota_spent(value: &str) -> Option<bool> {
    figures(value)
        .filter(|(name, _)| matches!(*name, "api-usage" | "per-app-api-usage"))
        .map(|(_, (used, max))| used >= max)
        .reduce(|a, b| a || b)
}

/// The `name=used/max` parts of a `Sforce-Limit-Info` value, a trailing `(appName=…)` left
/// out; parts that read otherwise are skipped.
fn figures(value: &str) -> impl Iterator<Item = (&str, (u32, u32))> {
    value.split(';').filter_map(|part| {
        let (name, usage) = part.trim().split_once('=')?;
        let usage = usage.split_once('(').map_or(usage, |(figure, _)| figure);
        let (used, max) = usage.trim().split_once('/')?;
        Some((
            name.trim(),
            (used.trim().parse().ok()?, max.trim().parse().ok()?),
        ))
    })
}

/// The `(errorCode, message, fields)` entries of a Salesforce error body.
fn entries(json: &Value) -> Vec<(String, String, Vec<String>)> {
    let list: Vec<&Value> = match json {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![json],
        _ => Vec::new(),
    };
    list.into_iter()
        .map(|e| {
            let code = e["errorCode"]
                .as_str()
                .or_else(|| e["statusCode"].as_str())
                .or_else(|| e["error"].as_str())
                .unwrap_or_default()
                .to_string();
            let message = e["message"]
                .as_str()
                .or_else(|| e["error_description"].as_str())
                .unwrap_or_default()
                .to_string();
            let fields = e["fields"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect();
            (code, message, fields)
        })
        .collect()
}

/// The limits a `REQUEST_LIMIT_EXCEEDED` message names first (`<Name> Limit exceeded.`,
/// `<Name> (<label>) Limit exceeded`), as lower case, with what each means for a caller:
///
/// - `ConcurrentRequests`: too many long-running API requests at once (help.salesforce.com
///   article 000389067, "ConcurrentRequests (Concurrent API Requests) Limit exceeded"; the
///   limits cheat sheet, developer.salesforce.com/docs/platform/salesforce-app-limits-cheatsheet/guide/salesforce-app-limits-platform-api.html:
///   at the limit "no new concurrent requests are allowed" until fewer run). It passes as
///   they finish: waited out and retried.
/// - `ConcurrentPerOrgLongTxn`: too many long-running transactions at once, the same kind
///   of limit (seen in the field as 403 `REQUEST_LIMIT_EXCEEDED` "ConcurrentPerOrgLongTxn
///   Limit exceeded", e.g. github.com/mautic/mautic/issues/5006; Salesforce's own pages
///   describe the limit, "Concurrent Long-Running Apex Limit", not the message).
/// - `ConcurrentPerOrgApex`: the org's concurrent long-running Apex requests, another limit
///   on requests running at once, passing as they finish. Salesforce documents the limit,
///   not the message: requests with an Apex context running 5 seconds or more count, and
///   past the org's limit new ones are denied until fewer run (developer.salesforce.com,
///   Object Reference, "Concurrent Long-Running Apex Limit Event Type" and
///   "ConcurApexLimitEventLog"). The message text, "ConcurrentPerOrgApex Limit exceeded",
///   is as reported in the field (a salesforce.stackexchange.com answer to "Concurrent API
///   Request Limits per org or per user"; mautic/mautic#5006), not from Salesforce's pages.
/// - `TotalRequests`: the org's API requests over the rolling 24 hours are spent ("Total
///   API Request Allocations" in the cheat sheet; message "TotalRequests Limit
///   exceeded."): no retry helps until they come back.
const REQUEST_LIMITS: [(&str, ErrorKind); 4] = [
    ("concurrentrequests", ErrorKind::RateLimited),
    ("concurrentperorglongtxn", ErrorKind::RateLimited),
    ("concurrentperorgapex", ErrorKind::RateLimited),
    ("totalrequests", ErrorKind::QuotaExhausted),
];

/// What a `REQUEST_LIMIT_EXCEEDED` refusal with `message` means: the first of
/// [`REQUEST_LIMITS`] it names, compared without regard to case (the names are
/// identifiers, but nothing promises their case, and a SOAP-style message puts the code
/// before them).
///
/// A message naming none of them is decided by `spent`, what the answer's own
/// `Sforce-Limit-Info` says ([`quota_spent`]): a daily quota is spent if the org's
/// `api-usage` or a connected app's `per-app-api-usage` reached its maximum
/// ([`ErrorKind::QuotaExhausted`]: the run stops for Salesforce and the daily budget is
/// marked used up); below them, the refusal is some other limit, one that passes
/// ([`ErrorKind::RateLimited`]: waited out and retried with backoff, up to the transport's
/// rate-limit allowance). Without such figures it is taken as the quota spent: retrying what may be the org's quota (the one limit every integration on
/// the org shares) would hammer an org that has nothing left, for all of its users, while
/// a stop that was not needed costs a run that a person restarts; the error keeps
/// Salesforce's message.
fn request_limit_kind(message: &str, spent: Option<bool>) -> ErrorKind {
    let message = message.to_ascii_lowercase();
    REQUEST_LIMITS
        .iter()
        .filter_map(|(name, kind)| message.find(name).map(|at| (at, *kind)))
        .min_by_key(|(at, _)| *at)
        .map_or_else(
            || match spent {
                Some(false) => ErrorKind::RateLimited,
                Some(true) | None => ErrorKind::QuotaExhausted,
            },
            |(_, kind)| kind,
        )
}

/// The kind a caller acts on for a Salesforce error code; the status decides otherwise.
/// `spent` is what the answer's `Sforce-Limit-Info` says of the daily quotas
/// ([`quota_spent`]), when it carried figures: it decides a `REQUEST_LIMIT_EXCEEDED` naming
/// no known limit (quota spent only when a figure reaches its maximum).
pub fn kind_of(status: u16, code: &str, message: &str, spent: Option<bool>) -> ErrorKind {
    match code {
        "INVALID_SESSION_ID" => ErrorKind::Auth,
        "REQUEST_LIMIT_EXCEEDED" => request_limit_kind(message, spent),
        "NOT_FOUND" | "ENTITY_IS_DELETED" => ErrorKind::NotFound,
        "DUPLICATE_VALUE" | "DUPLICATES_DETECTED" | "DUPLICATE_EXTERNAL_ID" => ErrorKind::Conflict,
        "INSUFFICIENT_ACCESS" | "INSUFFICIENT_ACCESS_OR_READONLY" | "API_DISABLED_FOR_ORG" => {
            ErrorKind::Forbidden
        }
        "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE" => ErrorKind::Transient,
        _ if status == 300 => ErrorKind::Conflict,
        // Save results carry no HTTP status of their own: they come as 400 here.
        _ => ErrorKind::from_status(status),
    }
}

/// One error out of a Salesforce error list: the first entry decides the kind, every entry
/// goes into the message, every named field into the field errors.
pub fn error_from_entries(status: u16, json: &Value) -> Error {
    entries_error(status, json, None)
}

/// [`error_from_entries`], with what the answer's `Sforce-Limit-Info` says of the daily
/// quotas ([`quota_spent`]).
fn entries_error(status: u16, json: &Value, spent: Option<bool>) -> Error {
    let list = entries(json);
    let Some((code, message, _)) = list.first() else {
        return Error::new(
            ErrorKind::from_status(status),
            format!("Salesforce answered HTTP {status}"),
        );
    };
    let kind = kind_of(status, code, message, spent);
    let text = list
        .iter()
        .map(|(c, m, _)| {
            if c.is_empty() {
                m.clone()
            } else {
                format!("{c}: {m}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    let field_errors = list
        .iter()
        .flat_map(|(c, m, fields)| {
            fields.iter().map(move |f| FieldError {
                field: f.clone(),
                message: if c.is_empty() {
                    m.clone()
                } else {
                    format!("{c}: {m}")
                },
            })
        })
        .collect();
    Error::new(kind, text)
        .with_field_errors(field_errors)
        .with_body(json.clone())
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The `api-usage` (used, maximum) an answer's `Sforce-Limit-Info` header carries, if any.
fn usage(h: &HeaderMap) -> Option<(u32, u32)> {
    parse_limit_info(header(h, "sforce-limit-info")?)
}

/// What an answer's `Sforce-Limit-Info` header says of the daily quotas ([`quota_spent`]).
fn spent(h: &HeaderMap) -> Option<bool> {
    quota_spent(header(h, "sforce-limit-info")?)
}

impl crmkit_core::http::Dialect for SalesforceDialect {
    fn crm(&self) -> Crm {
        Crm::Salesforce
    }

    /// Salesforce counts per org, not per endpoint.
    fn endpoint_group(&self, _req: &ApiRequest) -> String {
        DAILY.to_string()
    }

    fn budgets(&self, _req: &ApiRequest) -> Vec<BudgetSpec> {
        let mut specs = vec![BudgetSpec::daily(DAILY, self.daily_limit)];
        if self.paced {
            specs.push(BudgetSpec::rolling(API));
        }
        specs
    }

    /// `Sforce-Limit-Info: api-usage=used/max` speaks about the daily budget.
    fn rate_info(&self, _status: u16, headers: &HeaderMap, _body: &[u8]) -> Option<RateInfo> {
        let (used, max) = usage(headers)?;
        Some(RateInfo {
            limit: Some(max),
            remaining: Some(max.saturating_sub(used)),
            reset: None,
            window: None,
        })
    }

    fn limited_budget(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Option<String> {
        let json: Value = serde_json::from_slice(body).ok()?;
        let spent = spent(headers);
        entries(&json)
            .iter()
            .any(|(c, m, _)| kind_of(status, c, m, spent) == ErrorKind::QuotaExhausted)
            .then(|| DAILY.to_string())
    }

    fn error(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
        match serde_json::from_slice::<Value>(body) {
            Ok(json) if status == 300 => {
                let urls: Vec<String> = json
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "the external id matches {} records, so none was written: {}",
                        urls.len(),
                        urls.join(", ")
                    ),
                )
                .with_body(json)
            }
            Ok(json) if json.is_array() || json.is_object() => {
                entries_error(status, &json, spent(headers))
            }
            _ => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                let message = if text.is_empty() {
                    format!("Salesforce answered HTTP {status} with no body")
                } else {
                    format!(
                        "Salesforce answered HTTP {status}: {}",
                        text.chars().take(200).collect::<String>()
                    )
                };
                Error::new(ErrorKind::from_status(status), message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmkit_core::http::Dialect;

    #[test]
    fn quota_spent_reads_every_daily_figure_and_skips_odd_parts() {
        assert_eq!(quota_spent("api-usage=18/5000"), Some(false));
        assert_eq!(
            quota_spent("api-usage=120/5000; per-app-api-usage=250/250(appName=crmkit)"),
            Some(true)
        );
        assert_eq!(quota_spent("api-usage=5000/5000"), Some(true));
        assert_eq!(quota_spent("api-bursts=1/750"), None);
        for odd in [
            "",
            ";;",
            "per-app-api-usage",
            "per-app-api-usage=",
            "per-app-api-usage=/",
            "per-app-api-usage=250(appName=x)/250",
            "per-app-api-usage=-1/250",
            "per-app-api-usage=99999999999/250",
            "per-app-api-usage=250/250(",
            "api-usage=é/ü",
        ] {
            let got = quota_spent(odd);
            assert!(
                got.is_none() || odd.contains("250/250("),
                "{odd:?}: {got:?}"
            );
        }
        assert_eq!(quota_spent("per-app-api-usage=250/250("), Some(true));
    }

    #[test]
    fn limit_info_reads_api_usage_among_other_parts() {
        assert_eq!(parse_limit_info("api-usage=18/5000"), Some((18, 5000)));
        assert_eq!(
            parse_limit_info("api-usage=25/5000; api-bursts=1/750"),
            Some((25, 5000))
        );
        assert_eq!(
            parse_limit_info("per-app-api-usage=17/250(appName=x)"),
            None
        );
        let mut h = HeaderMap::new();
        h.insert(
            "sforce-limit-info",
            "api-usage=4990/5000".parse().expect("value"),
        );
        let info = SalesforceDialect::default()
            .rate_info(200, &h, b"")
            .expect("info");
        assert_eq!((info.limit, info.remaining), (Some(5000), Some(10)));
    }

    #[test]
    fn error_bodies_map_to_kinds_and_fields() {
        let d = SalesforceDialect::default();
        let h = HeaderMap::new();
        let e = d.error(
            400,
            &h,
            br#"[{"message":"No such column 'Foo' on entity 'Account'.","errorCode":"INVALID_FIELD","fields":["Foo"]}]"#,
        );
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert_eq!(e.field_errors()[0].field, "Foo");
        let limit = br#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        assert_eq!(d.error(403, &h, limit).kind(), ErrorKind::QuotaExhausted);
        assert_eq!(d.limited_budget(403, &h, limit).as_deref(), Some(DAILY));
        let concurrent = br#"[{"message":"ConcurrentRequests (Concurrent API Requests) Limit exceeded","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        assert_eq!(d.error(403, &h, concurrent).kind(), ErrorKind::RateLimited);
        assert_eq!(d.limited_budget(403, &h, concurrent), None);
        let session =
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#;
        assert_eq!(d.error(401, &h, session).kind(), ErrorKind::Auth);
        let many = br#"["/services/data/v59.0/sobjects/Account/001E000000Kr9uhIAB","/services/data/v59.0/sobjects/Account/001E000000Kr9v1IAB"]"#;
        let e = d.error(300, &h, many);
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.message().contains("2 records"), "{e}");
        assert!(e.message().contains("001E000000Kr9v1IAB"), "{e}");
        assert_eq!(d.error(502, &h, b"<html>").kind(), ErrorKind::Transient);
    }

    #[test]
    fn a_request_limit_is_read_by_the_limit_it_names_in_any_case() {
        let d = SalesforceDialect::default();
        let h = HeaderMap::new();
        for (message, want) in [
            (
                "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
                ErrorKind::RateLimited,
            ),
            (
                "concurrentrequests (concurrent api requests) limit exceeded",
                ErrorKind::RateLimited,
            ),
            (
                "ConcurrentPerOrgLongTxn Limit exceeded.",
                ErrorKind::RateLimited,
            ),
            (
                "CONCURRENTPERORGLONGTXN LIMIT EXCEEDED",
                ErrorKind::RateLimited,
            ),
            (
                "ConcurrentPerOrgApex Limit exceeded",
                ErrorKind::RateLimited,
            ),
            (
                "REQUEST_LIMIT_EXCEEDED: ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
                ErrorKind::RateLimited,
            ),
            ("TotalRequests Limit exceeded.", ErrorKind::QuotaExhausted),
            ("totalrequests limit exceeded.", ErrorKind::QuotaExhausted),
            // The daily quota named first: "concurrent" further on does not make it pass.
            (
                "TotalRequests Limit exceeded (Concurrent integrations share it).",
                ErrorKind::QuotaExhausted,
            ),
            // Not a limit name: a word that merely starts like one.
            (
                "Concurrent users Limit exceeded.",
                ErrorKind::QuotaExhausted,
            ),
            // No limit known here, or none named at all: taken as the quota spent.
            ("SomeNewLimit Limit exceeded.", ErrorKind::QuotaExhausted),
            ("", ErrorKind::QuotaExhausted),
        ] {
            let body =
                serde_json::json!([{"message": message, "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
                    .to_string();
            let e = d.error(403, &h, body.as_bytes());
            assert_eq!(e.kind(), want, "{message:?}");
            let marks_daily = want == ErrorKind::QuotaExhausted;
            assert_eq!(
                d.limited_budget(403, &h, body.as_bytes()).as_deref(),
                marks_daily.then_some(DAILY),
                "{message:?}"
            );
        }
    }

    #[test]
    fn an_unknown_limit_is_the_quota_only_when_an_org_or_per_app_usage_is_spent() {
        let d = SalesforceDialect::default();
        let body =
            br#"[{"message":"SomeNewLimit Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        for (info, want) in [
            // Requests left today: some limit that passes, retried with backoff.
            (Some("api-usage=4200/5000"), ErrorKind::RateLimited),
            (
                Some("api-usage=4999/5000; api-bursts=1/750"),
                ErrorKind::RateLimited,
            ),
            // The day's requests are used up: the quota, whatever the message names.
            (Some("api-usage=5000/5000"), ErrorKind::QuotaExhausted),
            (Some("api-usage=5003/5000"), ErrorKind::QuotaExhausted),
            // No figure to go by: the quota, as the safe reading.
            (None, ErrorKind::QuotaExhausted),
            (
                Some("api-usage=abc/5000; nonsense"),
                ErrorKind::QuotaExhausted,
            ),
            // A connected app's own 24-hour limit spent while the org has requests left:
            // the quota, for this integration.
            (
                Some("api-usage=120/5000; per-app-api-usage=250/250(appName=crmkit)"),
                ErrorKind::QuotaExhausted,
            ),
            (
                Some("per-app-api-usage=251/250(appName=crmkit)"),
                ErrorKind::QuotaExhausted,
            ),
            // Both below their maximum: a passing limit.
            (
                Some("api-usage=120/5000; per-app-api-usage=17/250(appName=crmkit)"),
                ErrorKind::RateLimited,
            ),
            (
                Some("per-app-api-usage=17/250(appName=x)"),
                ErrorKind::RateLimited,
            ),
            // An odd per-app part is skipped, not taken for a figure.
            (
                Some("api-usage=120/5000; per-app-api-usage=(appName=x)"),
                ErrorKind::RateLimited,
            ),
        ] {
            let mut h = HeaderMap::new();
            if let Some(info) = info {
                h.insert("sforce-limit-info", info.parse().expect("value"));
            }
            assert_eq!(d.error(403, &h, body).kind(), want, "{info:?}");
            assert_eq!(
                d.limited_budget(403, &h, body).as_deref(),
                (want == ErrorKind::QuotaExhausted).then_some(DAILY),
                "{info:?}"
            );
        }
        // A known name decides whatever the usage says.
        let mut h = HeaderMap::new();
        h.insert(
            "sforce-limit-info",
            "api-usage=10/5000".parse().expect("value"),
        );
        let total = br#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        assert_eq!(d.error(403, &h, total).kind(), ErrorKind::QuotaExhausted);
    }
}
