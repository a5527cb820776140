//! Close's side of the request gate: API keys (HTTP Basic) and OAuth bearer tokens, endpoint
//! groups, its 401 and 429 bodies and its `RateLimit` headers.

use std::sync::Arc;

use axum::extract::{Request, State as AxState};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;

use super::State;
use crate::shared::gate::GateHooks;
use crate::shared::rate::{Admission, Window, WindowKind};

const UNAUTHORIZED: &str = "The server could not verify that you are authorized to access the URL requested.  You either supplied the wrong credentials (e.g. a bad password), or your browser doesn't understand how to supply the credentials required.";

/// The endpoint group, the sandbox's own reading of "path + method"
/// (developer.close.com/topics/rate-limits): ids (`lead_abc…`) fold to `{id}`.
pub(crate) fn endpoint_group(method: &str, path: &str) -> String {
    let folded: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|seg| match seg.split_once('_') {
            Some((prefix, rest))
                if prefix.chars().all(|c| c.is_ascii_lowercase())
                    && rest.len() >= 8
                    && rest.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                "{id}"
            }
            _ => seg,
        })
        .collect();
    format!("{method} /{}/", folded.join("/"))
}

/// The combined header with an integer `reset`, rounded up, as Close sends it
/// (developer.close.com/topics/rate-limits: `RateLimit: limit=100, remaining=50, reset=5`).
fn rate_header(limit: u32, remaining: u32, reset: f64) -> HeaderValue {
    let reset = reset.ceil().max(1.0) as u64;
    HeaderValue::from_str(&format!(
        "limit={limit}, remaining={remaining}, reset={reset}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("limit=0, remaining=0, reset=1"))
}

/// A short stable hash, so the group shows as an opaque id like the recorded 429 bodies.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

impl GateHooks for State {
    fn api_prefix(&self) -> &str {
        "/api/v1"
    }

    fn credential(&self, req: &Request) -> Option<String> {
        let header = req.headers().get("authorization")?.to_str().ok()?;
        if let Some(b64) = header.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let key = text.split_once(':').map(|(k, _)| k).unwrap_or(&text);
            let ok = !key.is_empty()
                && (self.config.api_keys.is_empty()
                    || self.config.api_keys.iter().any(|k| k == key));
            return ok.then(|| format!("key:{key}"));
        }
        let token = header.strip_prefix("Bearer ")?.trim();
        let oauth = self.oauth.lock().unwrap_or_else(|p| p.into_inner());
        oauth.access_valid(token).then(|| "oauth".to_string())
    }

    fn group(&self, method: &str, path: &str) -> String {
        endpoint_group(method, path)
    }

    fn windows(&self, _group: &str) -> Vec<Window> {
        vec![Window {
            kind: WindowKind::Fixed,
            limit: self.config.rate_limit,
            length: self.config.rate_window,
        }]
    }

    fn unauthorized(&self) -> Response {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": UNAUTHORIZED})),
        )
            .into_response()
    }

    fn too_many(&self, a: &Admission, group: &str) -> Response {
        // The recorded 429 body, nested under `error` as closeio-api ≤ 2.0 read it (commit 48d1503).
        let body = json!({"error": {
            "message": "API call count exceeded for this period",
            "rate_reset": (a.reset * 1000.0).round() / 1000.0,
            "rate_limit": a.limit,
            "rate_limit_type": "key",
            "rate_endpoint_group": format!("{:x}", fnv(group)),
            "rate_window": a.window,
        }});
        let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        let wait = HeaderValue::from(a.reset.ceil().max(1.0) as u64);
        let h = resp.headers_mut();
        h.insert("ratelimit", rate_header(a.limit, 0, a.reset));
        h.insert("retry-after", wait.clone());
        h.insert("ratelimit-reset", wait);
        resp
    }

    fn server_error(&self, status: u16) -> Response {
        if status == 503 {
            let mut r = (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"error": "Service temporarily unavailable."})),
            )
                .into_response();
            r.headers_mut()
                .insert("retry-after", HeaderValue::from(1u64));
            return r;
        }
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": "Internal server error."})),
        )
            .into_response()
    }

    fn rate_headers(&self, resp: &mut Response, a: &Admission) {
        resp.headers_mut()
            .insert("ratelimit", rate_header(a.limit, a.remaining, a.reset));
    }
}

/// The middleware in front of `/api/v1/`.
pub(crate) async fn check(
    AxState(state): AxState<Arc<State>>,
    req: Request,
    next: Next,
) -> Response {
    state.gate.pass(&*state, req, next).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_fold_into_one_group() {
        assert_eq!(
            endpoint_group(
                "GET",
                "/lead/lead_IIDHIStmFcFQZZP0BRe99V1MCoXWz2PGCm6EDmR9v2O/"
            ),
            "GET /lead/{id}/"
        );
        assert_eq!(
            endpoint_group("POST", "/activity/note/"),
            "POST /activity/note/"
        );
    }

    #[test]
    fn reset_is_an_integer_rounded_up() {
        assert_eq!(
            rate_header(100, 50, 4.2),
            HeaderValue::from_static("limit=100, remaining=50, reset=5")
        );
    }
}
