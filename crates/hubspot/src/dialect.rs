//! How HubSpot speaks HTTP: its budgets, its limit headers, its 429 bodies and its error body.
//!
//! Every request is charged to three budgets, so one token shared by many tasks stays within
//! all of them:
//!
//! - [`BURST`]: the rolling 10-second window per app or token (100 requests per 10 s on
//!   Free/Starter and for OAuth apps, 190 for Professional/Enterprise private apps; HubSpot
//!   "API usage guidelines", developers.hubspot.com/docs/guides/apps/api-usage/usage-details).
//!   It is the budget the `X-HubSpot-RateLimit-Max/-Remaining/-Interval-Milliseconds`
//!   headers speak about.
//! - [`DAILY`]: the daily quota (250,000 by default, same source), fed by
//!   `X-HubSpot-RateLimit-Daily/-Daily-Remaining`.
//! - [`SEARCH`], for `POST …/search` only: HubSpot's CRM search guide says the search
//!   endpoints are limited to **5 requests per second** per account
//!   (developers.hubspot.com/docs/api/crm/search, "Limitations"; older pages said 4, so the
//!   number is configurable). Searches are also charged to the burst window: that costs a
//!   little pace if HubSpot does not count them there, and never a 429 if it does.
//!
//! A 429 body names the policy that tripped in `policyName` (read by the official Node
//! client's `RetryDecorator`): `TEN_SECONDLY_ROLLING` pauses the burst window and `DAILY`
//! marks the daily quota as used up, so later requests fail locally with
//! [`ErrorKind::QuotaExhausted`] instead of being sent to be refused. Those are the only two
//! policies documented (developers.hubspot.com/docs/guides/apps/api-usage/usage-details).
//! The search endpoints answer their own limit with the message "You have reached your
//! secondly limit." (CRM search guide), which pauses the search budget. A 429 is classified
//! by a documented `policyName` first, by its message otherwise; anything else (an unknown
//! policy, no body) is read as the burst window, the budget every request is charged to.

use std::time::Duration;

use crmkit_core::http::{ApiRequest, BudgetSpec, HeaderMap, Method, RateInfo};
use crmkit_core::{Crm, Error, ErrorKind, FieldError};
use serde_json::Value;

/// The name of the 10-second burst budget.
pub const BURST: &str = "hubspot ten_secondly";
/// The name of the daily budget.
pub const DAILY: &str = "hubspot daily";
/// The name of the search endpoints' per-second budget.
pub const SEARCH: &str = "hubspot search";

/// The default daily quota (Free/Starter; HubSpot API usage guidelines).
pub const DEFAULT_DAILY_LIMIT: u32 = 250_000;
/// The search endpoints' documented limit per second (HubSpot CRM search guide).
pub const DEFAULT_SEARCH_PER_SECOND: u32 = 5;

/// HubSpot's HTTP conventions, for [`crmkit_core::http::Transport`]. The burst window's quota
/// is the transport's configured quota (see [`crate::ClientBuilder::tier`]).
#[derive(Debug, Clone, Copy)]
pub struct HubSpotDialect {
    daily_limit: u32,
    search_per_second: u32,
}

impl Default for HubSpotDialect {
    fn default() -> Self {
        Self {
            daily_limit: DEFAULT_DAILY_LIMIT,
            search_per_second: DEFAULT_SEARCH_PER_SECOND,
        }
    }
}

impl HubSpotDialect {
    /// A dialect with a daily quota of `daily_limit` and `search_per_second` searches per
    /// second (both at least 1).
    pub fn new(daily_limit: u32, search_per_second: u32) -> Self {
        Self {
            daily_limit: daily_limit.max(1),
            search_per_second: search_per_second.max(1),
        }
    }
}

/// Whether `req` is a CRM search (`POST /crm/v3/objects/{type}/search`).
pub(crate) fn is_search(req: &ApiRequest) -> bool {
    req.method == Method::POST && req.path.trim_end_matches('/').ends_with("/search")
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn number(h: &HeaderMap, name: &str) -> Option<u32> {
    header(h, name).and_then(|v| v.trim().parse().ok())
}

/// The `policyName` and `message` of a 429 body, if it is JSON.
fn policy(body: &[u8]) -> Option<(String, String)> {
    let json: Value = serde_json::from_slice(body).ok()?;
    let name = json["policyName"].as_str().unwrap_or_default().to_string();
    let message = json["message"].as_str().unwrap_or_default().to_string();
    Some((name, message))
}

/// The budget a 429 body speaks about: a documented `policyName` decides, then the message;
/// an unknown policy is the burst window, which every request is charged to.
fn budget_of_policy(name: &str, message: &str) -> &'static str {
    let message = message.to_ascii_lowercase();
    match name.to_ascii_uppercase().as_str() {
        "TEN_SECONDLY_ROLLING" => BURST,
        "DAILY" => DAILY,
        _ if message.contains("ten_secondly") => BURST,
        _ if message.contains("daily limit") => DAILY,
        // Search's own 429: "You have reached your secondly limit." (HubSpot CRM search guide).
        _ if message.contains("secondly limit") => SEARCH,
        _ => BURST,
    }
}

/// The budget a 429 with `body` speaks about (the burst window when the body says nothing).
fn budget_of_429(body: &[u8]) -> &'static str {
    let (name, message) = policy(body).unwrap_or_default();
    budget_of_policy(&name, &message)
}

/// HubSpot's error categories, mapped to what a caller acts on. The status decides unless
/// the category is more precise (a 400 `OBJECT_NOT_FOUND`, for example).
fn kind_of(status: u16, category: &str) -> ErrorKind {
    match category {
        "OBJECT_NOT_FOUND" => ErrorKind::NotFound,
        "CONFLICT" | "OBJECT_ALREADY_EXISTS" => ErrorKind::Conflict,
        "MISSING_SCOPES" => ErrorKind::Forbidden,
        "INVALID_AUTHENTICATION" | "EXPIRED_AUTHENTICATION" => ErrorKind::Auth,
        "VALIDATION_ERROR" if status < 500 => ErrorKind::Validation,
        _ => ErrorKind::from_status(status),
    }
}

/// The per-field messages of a HubSpot error: each entry of `errors` names its field in `in`
/// or, for property errors, in `context.propertyName`.
pub(crate) fn field_errors(json: &Value) -> Vec<FieldError> {
    json["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let message = e["message"].as_str()?.to_string();
            let field = e["in"]
                .as_str()
                .or_else(|| e["context"]["propertyName"][0].as_str())
                .unwrap_or_default()
                .to_string();
            Some(FieldError { field, message })
        })
        .collect()
}

/// An error from a HubSpot error body (`status, message, correlationId, category, errors`).
pub(crate) fn error_from_body(status: u16, json: Value) -> Error {
    let category = json["category"].as_str().unwrap_or_default();
    let mut kind = kind_of(status, category);
    if status == 429
        && budget_of_policy(
            json["policyName"].as_str().unwrap_or_default(),
            json["message"].as_str().unwrap_or_default(),
        ) == DAILY
    {
        kind = ErrorKind::QuotaExhausted;
    }
    let mut message = json["message"]
        .as_str()
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("HubSpot answered HTTP {status}"));
    if !category.is_empty() {
        message = format!("{category}: {message}");
    }
    // HubSpot support asks for this id with any report.
    if let Some(c) = json["correlationId"].as_str() {
        message = format!("{message} (correlationId {c})");
    }
    Error::new(kind, message)
        .with_field_errors(field_errors(&json))
        .with_body(json)
}

impl crmkit_core::http::Dialect for HubSpotDialect {
    fn crm(&self) -> Crm {
        Crm::HubSpot
    }

    /// HubSpot counts the burst window per app or token, not per endpoint.
    fn endpoint_group(&self, _req: &ApiRequest) -> String {
        BURST.to_string()
    }

    fn budgets(&self, req: &ApiRequest) -> Vec<BudgetSpec> {
        let mut specs = vec![
            BudgetSpec::rolling(BURST),
            BudgetSpec::daily(DAILY, self.daily_limit),
        ];
        if is_search(req) {
            specs.push(BudgetSpec::rolling_with(
                SEARCH,
                crmkit_core::http::Quota::new(self.search_per_second, Duration::from_secs(1)),
            ));
        }
        specs
    }

    /// `X-HubSpot-RateLimit-Max`, `-Remaining` and `-Interval-Milliseconds` (HubSpot
    /// changelog 2018-11-06, "rate limit headers"). A ten-secondly 429 means the window is
    /// spent whatever the headers said.
    fn rate_info(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Option<RateInfo> {
        let mut info = RateInfo {
            limit: number(headers, "x-hubspot-ratelimit-max"),
            remaining: number(headers, "x-hubspot-ratelimit-remaining"),
            reset: None,
            window: header(headers, "x-hubspot-ratelimit-interval-milliseconds")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis),
        };
        if status == 429 && budget_of_429(body) == BURST {
            info.remaining = Some(0);
        }
        let known = info.limit.is_some() || info.remaining.is_some() || info.window.is_some();
        known.then_some(info)
    }

    /// `X-HubSpot-RateLimit-Daily` and `-Daily-Remaining` (not sent to OAuth apps).
    fn budget_infos(
        &self,
        _status: u16,
        headers: &HeaderMap,
        _body: &[u8],
    ) -> Vec<(String, RateInfo)> {
        let limit = number(headers, "x-hubspot-ratelimit-daily");
        let remaining = number(headers, "x-hubspot-ratelimit-daily-remaining");
        if limit.is_none() && remaining.is_none() {
            return Vec::new();
        }
        vec![(
            DAILY.to_string(),
            RateInfo {
                limit,
                remaining,
                ..RateInfo::default()
            },
        )]
    }

    /// Only 429s name a policy; `error` reports a used-up quota only for them.
    fn limited_budget(&self, status: u16, _headers: &HeaderMap, body: &[u8]) -> Option<String> {
        if status != 429 {
            return None;
        }
        Some(budget_of_429(body).to_string())
    }

    fn error(&self, status: u16, _headers: &HeaderMap, body: &[u8]) -> Error {
        match serde_json::from_slice::<Value>(body) {
            Ok(json) if json.is_object() => error_from_body(status, json),
            _ => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                let message = if text.is_empty() {
                    format!("HubSpot answered HTTP {status} with no body")
                } else {
                    format!(
                        "HubSpot answered HTTP {status}: {}",
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
    use crmkit_core::http::{BudgetKind, Dialect};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn reads_the_burst_and_daily_headers() {
        let h = headers(&[
            ("x-hubspot-ratelimit-max", "190"),
            ("x-hubspot-ratelimit-remaining", "188"),
            ("x-hubspot-ratelimit-interval-milliseconds", "10000"),
            ("x-hubspot-ratelimit-daily", "500000"),
            ("x-hubspot-ratelimit-daily-remaining", "499990"),
        ]);
        let d = HubSpotDialect::default();
        let i = d.rate_info(200, &h, b"").expect("info");
        assert_eq!((i.limit, i.remaining), (Some(190), Some(188)));
        assert_eq!(i.window, Some(Duration::from_secs(10)));
        let daily = d.budget_infos(200, &h, b"");
        assert_eq!(daily.len(), 1);
        assert_eq!(daily[0].0, DAILY);
        assert_eq!(daily[0].1.limit, Some(500_000));
        assert_eq!(daily[0].1.remaining, Some(499_990));
        assert!(d.rate_info(200, &HeaderMap::new(), b"").is_none());
        assert!(d.budget_infos(200, &HeaderMap::new(), b"").is_empty());
    }

    #[test]
    fn a_429_names_the_budget_of_its_policy() {
        let d = HubSpotDialect::default();
        let h = HeaderMap::new();
        let ten = br#"{"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","correlationId":"c033cdaa-2c40-4a64-ae48-b4cec88dad24","policyName":"TEN_SECONDLY_ROLLING"}"#;
        assert_eq!(d.limited_budget(429, &h, ten).as_deref(), Some(BURST));
        assert_eq!(d.rate_info(429, &h, ten).expect("info").remaining, Some(0));
        let daily = br#"{"status":"error","message":"You have reached your daily limit.","policyName":"DAILY"}"#;
        assert_eq!(d.limited_budget(429, &h, daily).as_deref(), Some(DAILY));
        assert_eq!(d.error(429, &h, daily).kind(), ErrorKind::QuotaExhausted);
        let search = br#"{"status":"error","message":"You have reached your secondly limit.","category":"RATE_LIMITS"}"#;
        assert_eq!(d.limited_budget(429, &h, search).as_deref(), Some(SEARCH));
        // An undocumented policy name is not trusted to name a budget: the message still
        // says which, and without one the burst window, which every request counts against.
        let invented =
            br#"{"policyName":"SECONDLY","message":"You have reached your secondly limit."}"#;
        assert_eq!(d.limited_budget(429, &h, invented).as_deref(), Some(SEARCH));
        let unknown = br#"{"policyName":"SECONDLY"}"#;
        assert_eq!(d.limited_budget(429, &h, unknown).as_deref(), Some(BURST));
        assert_eq!(
            d.rate_info(429, &h, unknown).map(|i| i.remaining),
            Some(Some(0))
        );
        let daily_by_message =
            br#"{"status":"error","message":"You have reached your daily limit."}"#;
        assert_eq!(
            d.limited_budget(429, &h, daily_by_message).as_deref(),
            Some(DAILY)
        );
        assert_eq!(
            d.error(429, &h, daily_by_message).kind(),
            ErrorKind::QuotaExhausted
        );
        assert_eq!(d.error(429, &h, search).kind(), ErrorKind::RateLimited);
        assert_eq!(d.error(429, &h, ten).kind(), ErrorKind::RateLimited);
        assert_eq!(
            d.limited_budget(429, &h, b"not json").as_deref(),
            Some(BURST)
        );
        assert_eq!(d.limited_budget(200, &h, ten), None);
    }

    #[test]
    fn searches_have_their_own_budget_and_everything_counts_daily() {
        let d = HubSpotDialect::new(1_000, 4);
        let get = d.budgets(&ApiRequest::get("crm/v3/objects/contacts"));
        assert_eq!(get.len(), 2);
        assert_eq!(get[0].name, BURST);
        assert_eq!(get[1].kind, BudgetKind::Daily);
        let search = d.budgets(&ApiRequest::post(
            "crm/v3/objects/contacts/search",
            Value::Null,
        ));
        assert_eq!(search.len(), 3);
        assert_eq!(
            search[0].name, BURST,
            "limit headers speak of the burst window"
        );
        assert_eq!(search[2].name, SEARCH);
        assert_eq!(
            search[2].quota,
            Some(crmkit_core::http::Quota::new(4, Duration::from_secs(1)))
        );
    }

    #[test]
    fn the_error_body_keeps_category_correlation_and_field_errors() {
        let body = br#"{"status":"error","message":"Property values were not valid","correlationId":"aeb5f871-7f07-4993-9211-075dc63e7cbf","category":"VALIDATION_ERROR","errors":[{"message":"Property \"x\" does not exist","code":"PROPERTY_DOESNT_EXIST","context":{"propertyName":["x"]}},{"message":"bad","in":"email"}]}"#;
        let e = HubSpotDialect::default().error(400, &HeaderMap::new(), body);
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().contains("aeb5f871"), "{}", e.message());
        assert!(e.message().contains("Property values were not valid"));
        assert_eq!(e.field_errors().len(), 2);
        assert_eq!(e.field_errors()[0].field, "x");
        assert_eq!(e.field_errors()[1].field, "email");
        assert!(e.body().is_some());
        let nf = br#"{"status":"error","message":"resource not found","category":"OBJECT_NOT_FOUND","correlationId":"x"}"#;
        assert_eq!(
            HubSpotDialect::default()
                .error(404, &HeaderMap::new(), nf)
                .kind(),
            ErrorKind::NotFound
        );
        let scopes = br#"{"status":"error","message":"missing scopes","category":"MISSING_SCOPES","correlationId":"x"}"#;
        assert_eq!(
            HubSpotDialect::default()
                .error(403, &HeaderMap::new(), scopes)
                .kind(),
            ErrorKind::Forbidden
        );
        let bare = HubSpotDialect::default().error(502, &HeaderMap::new(), b"");
        assert_eq!(bare.kind(), ErrorKind::Transient);
    }
}
