//! What every `/api/v1/` request passes before it reaches a handler: authentication, fault
//! injection, and the rate limit per key and endpoint group, with Close's headers and bodies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State as AxState};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;

use super::{State, log_request};
use crate::faults::Fault;
use crate::server::DropConnection;

const UNAUTHORIZED: &str = "The server could not verify that you are authorized to access the URL requested.  You either supplied the wrong credentials (e.g. a bad password), or your browser doesn't understand how to supply the credentials required.";

/// Fixed rate-limit windows per (credential, endpoint group).
pub(crate) struct Gate {
    pub started: Instant,
    windows: Mutex<HashMap<(String, String), (u64, u32)>>,
}

impl Gate {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request; returns `(allowed, remaining, seconds to reset)`.
    fn admit(&self, cred: &str, group: &str, limit: u32, window: Duration) -> (bool, u32, f64) {
        let elapsed = self.started.elapsed();
        let idx = (elapsed.as_nanos() / window.as_nanos().max(1)) as u64;
        let reset = window.as_secs_f64() * (idx + 1) as f64 - elapsed.as_secs_f64();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let entry = windows
            .entry((cred.to_string(), group.to_string()))
            .or_insert((idx, 0));
        if entry.0 != idx {
            *entry = (idx, 0);
        }
        if entry.1 >= limit {
            return (false, 0, reset);
        }
        entry.1 += 1;
        (true, limit - entry.1, reset)
    }
}

/// The endpoint group: method plus path, with ids (`lead_abc…`) folded to `{id}`.
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

fn credential(state: &State, req: &Request) -> Option<String> {
    let header = req.headers().get("authorization")?.to_str().ok()?;
    if let Some(b64) = header.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let key = text.split_once(':').map(|(k, _)| k).unwrap_or(&text);
        let ok = !key.is_empty()
            && (state.config.api_keys.is_empty() || state.config.api_keys.iter().any(|k| k == key));
        return ok.then(|| format!("key:{key}"));
    }
    let token = header.strip_prefix("Bearer ")?.trim();
    let oauth = state.oauth.lock().unwrap_or_else(|p| p.into_inner());
    oauth.access_valid(token).then(|| "oauth".to_string())
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

fn too_many(limit: u32, window: Duration, reset: f64, group: &str) -> Response {
    let body = json!({"error": {
        "message": "API call count exceeded for this period",
        "rate_reset": (reset * 1000.0).round() / 1000.0,
        "rate_limit": limit,
        "rate_limit_type": "key",
        "rate_endpoint_group": format!("{:x}", fnv(group)),
        "rate_window": window.as_secs_f64(),
    }});
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert("ratelimit", rate_header(limit, 0, reset));
    h.insert(
        "retry-after",
        HeaderValue::from(reset.ceil().max(1.0) as u64),
    );
    h.insert(
        "ratelimit-reset",
        HeaderValue::from(reset.ceil().max(1.0) as u64),
    );
    resp
}

/// A short stable hash, so the group shows as an opaque id like Close's.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// The middleware.
pub(crate) async fn check(
    AxState(state): AxState<Arc<State>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().trim_start_matches("/api/v1").to_string();
    let group = endpoint_group(&method, &path);
    let done = |resp: Response| {
        log_request(&state, &method, &path, &group, resp.status().as_u16());
        resp
    };
    let Some(cred) = credential(&state, &req) else {
        return done(
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": UNAUTHORIZED})),
            )
                .into_response(),
        );
    };
    let (fault, latency) = {
        let mut faults = state.faults.lock().unwrap_or_else(|p| p.into_inner());
        (faults.pick(fastrand::f64()), faults.latency_ms)
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let (limit, window) = (state.config.rate_limit, state.config.rate_window);
    match fault {
        Some(Fault::RateLimit) => return done(too_many(limit, window, 1.0, &group)),
        Some(Fault::ServerError) => {
            return done(
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"error": "Internal server error."})),
                )
                    .into_response(),
            );
        }
        Some(Fault::Unavailable) => {
            let mut r = (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"error": "Service temporarily unavailable."})),
            )
                .into_response();
            r.headers_mut()
                .insert("retry-after", HeaderValue::from(1u64));
            return done(r);
        }
        Some(Fault::Drop) => {
            let mut r = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            r.extensions_mut().insert(DropConnection);
            return done(r);
        }
        None => {}
    }
    let (allowed, remaining, reset) = state.gate.admit(&cred, &group, limit, window);
    if !allowed {
        return done(too_many(limit, window, reset, &group));
    }
    let mut resp = next.run(req).await;
    resp.headers_mut()
        .insert("ratelimit", rate_header(limit, remaining, reset));
    done(resp)
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
        assert_eq!(
            endpoint_group("GET", "/custom_field/lead/"),
            "GET /custom_field/lead/"
        );
    }

    #[test]
    fn window_admits_limit_then_refuses() {
        let g = Gate::new();
        for _ in 0..3 {
            assert!(g.admit("k", "g", 3, Duration::from_secs(60)).0);
        }
        let (ok, remaining, reset) = g.admit("k", "g", 3, Duration::from_secs(60));
        assert!(!ok);
        assert_eq!(remaining, 0);
        assert!(reset > 0.0 && reset <= 60.0);
        assert!(g.admit("other", "g", 3, Duration::from_secs(60)).0);
    }
}
