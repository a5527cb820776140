//! Salesforce's side of the request gate: Bearer session ids, one org-wide daily request
//! quota, the `Sforce-Limit-Info: api-usage=N/M` header on every answer
//! (developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm),
//! 401 `INVALID_SESSION_ID` and 403 `REQUEST_LIMIT_EXCEEDED` (the REST API uses no 429).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State as AxState};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

use super::State;
use super::api_error::reply;
use crate::shared::gate::GateHooks;
use crate::shared::rate::{Admission, Window, WindowKind};

/// Every REST call counts against the org's one daily quota.
pub(crate) const API: &str = "api";
/// The key the quota is counted under: it belongs to the org, not to a session.
const ORG: &str = "org";

impl State {
    pub(crate) fn api_windows(&self) -> Vec<Window> {
        vec![Window {
            kind: WindowKind::Daily,
            limit: self.config.daily_limit,
            length: Duration::ZERO,
        }]
    }

    /// Requests used today and the daily maximum.
    pub(crate) fn usage(&self) -> (u32, u32) {
        let left = self
            .gate
            .windows
            .remaining(ORG, API, &self.api_windows())
            .first()
            .copied()
            .unwrap_or(0);
        let max = self.config.daily_limit;
        (max.saturating_sub(left), max)
    }
}

impl GateHooks for State {
    fn api_prefix(&self) -> &str {
        ""
    }

    fn credential(&self, req: &Request) -> Option<String> {
        let header = req
            .headers()
            .get("authorization")
            .and_then(|h| h.to_str().ok())?;
        // `Bearer` per the REST guide; older clients send `OAuth`.
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("OAuth "))?
            .trim();
        if token.is_empty() {
            return None;
        }
        let auth = &self.config.auth;
        let ok = !auth.strict()
            || auth.session_tokens.iter().any(|t| t == token)
            || self
                .sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .issued(token);
        ok.then(|| ORG.to_string())
    }

    fn group(&self, _method: &str, _path: &str) -> String {
        API.into()
    }

    fn windows(&self, _group: &str) -> Vec<Window> {
        self.api_windows()
    }

    fn unauthorized(&self) -> Response {
        // restforce `expired_session_response.json`.
        reply(
            401,
            json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
        )
    }

    fn too_many(&self, _a: &Admission, _group: &str) -> Response {
        reply(
            403,
            json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
        )
    }

    /// Salesforce's REST API has no passing rate limit but one: too many long-running
    /// requests at once, refused with 403 `REQUEST_LIMIT_EXCEEDED` "ConcurrentRequests
    /// (Concurrent API Requests) Limit exceeded." (help.salesforce.com, article 000389067;
    /// the trailing full stop as users quote it from the wire, e.g.
    /// github.com/SalesforceLabs/OrgCheck/issues/432),
    /// which a client retries later. `too_many`'s "TotalRequests" answer means the org's
    /// daily quota is spent, which no retry today helps: injecting that would stop every
    /// run it lands in, unlike any rate limit.
    fn injected_limit(&self, _group: &str, _windows: &[Window]) -> Response {
        reply(
            403,
            json!([{"message": "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
                    "errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
        )
    }

    fn server_error(&self, status: u16) -> Response {
        let body = if status == 503 {
            json!([{"message": "Server unavailable", "errorCode": "SERVER_UNAVAILABLE"}])
        } else {
            // The shape of an unexpected platform error (errorcodes.htm, UNKNOWN_EXCEPTION).
            json!([{"message": "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)",
                    "errorCode": "UNKNOWN_EXCEPTION"}])
        };
        reply(status, body)
    }

    fn rate_headers(&self, _resp: &mut Response, _a: &Admission) {
        // Written by `check` on every answer, refused ones included.
    }
}

/// The middleware in front of the REST API: the shared gate, then `Sforce-Limit-Info`.
pub(crate) async fn check(
    AxState(state): AxState<Arc<State>>,
    req: Request,
    next: Next,
) -> Response {
    let mut resp = state.gate.pass(&*state, req, next).await;
    let (used, max) = state.usage();
    if let Ok(v) = HeaderValue::from_str(&format!("api-usage={used}/{max}")) {
        resp.headers_mut().insert("sforce-limit-info", v);
    }
    // The org's clock (RFC 9110 IMF-fixdate), which clients bound their reads by; it may
    // run ahead of the machine's (`RunningSalesforce::advance_clock`).
    let date = state.read().clock().format("%a, %d %b %Y %H:%M:%S GMT");
    if let Ok(v) = HeaderValue::from_str(&date.to_string()) {
        resp.headers_mut().insert("date", v);
    }
    resp
}
