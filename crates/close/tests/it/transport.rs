//! Transport behaviour counted at the sandbox: budgets (counted when admitted), the server's
//! window and remaining, Retry-After and long hints, what is retried, OAuth.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crmkit_close::Client;
use crmkit_close::auth::OAuthApp;
use crmkit_core::http::{ApiRequest, TransportEvent};
use crmkit_core::{ErrorKind, ExposeSecret, SecretString};
use crmkit_sandbox::close::{CloseSandbox, RunningClose};
use crmkit_sandbox::faults::Fault;

use super::{fast_retry, faulty, named, sandbox, serve};

/// A client of `sb` with `key`, configured for `limit` per `window`.
fn budgeted(sb: &RunningClose, key: &str, limit: u32, window: Duration) -> Client {
    Client::builder()
        .api_key(SecretString::from(key.to_string()))
        .base_url(sb.api_url())
        .rate_limit(limit, window)
        .retry(fast_retry())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_tasks_stay_under_the_budget_counted_at_admission() {
    let window = Duration::from_millis(500);
    let sb = CloseSandbox::builder()
        .rate_limit(10, window)
        .start()
        .await
        .unwrap();
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let log = admitted.clone();
    let c = Client::builder()
        .api_key(SecretString::from("budget-key"))
        .base_url(sb.api_url())
        .rate_limit(10, window)
        .retry(fast_retry())
        .observer(Arc::new(move |e: &TransportEvent<'_>| {
            if let TransportEvent::Admitted { at, .. } = e {
                log.lock().unwrap().push(*at);
            }
        }))
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                for _ in 0..2 {
                    c.me().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut at = admitted.lock().unwrap().clone();
    at.sort();
    assert!(at.len() >= 40, "{} admissions", at.len());
    // In any rolling window the budget admitted at most 10: the 11th after any admission
    // came a full window later.
    for pair in at.windows(11) {
        assert!(pair[10] - pair[0] >= window, "{:?}", pair[10] - pair[0]);
    }
}

/// A server admitting `LIMIT` requests per rolling second that says so only in its legacy
/// 429 body (`rate_window`), as Close did (recorded find_leads_rate_limit.json); it notes
/// when it accepted each request and how many it refused.
#[derive(Clone, Default)]
struct WindowServer {
    accepted: Arc<Mutex<Vec<Instant>>>,
    refused: Arc<AtomicU32>,
}

const LIMIT: usize = 3;
const SERVER_WINDOW: Duration = Duration::from_secs(1);

async fn windowed(
    axum::extract::State(s): axum::extract::State<WindowServer>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let now = Instant::now();
    let mut accepted = s.accepted.lock().unwrap();
    let recent: Vec<Instant> = accepted
        .iter()
        .copied()
        .filter(|t| now.duration_since(*t) < SERVER_WINDOW)
        .collect();
    if recent.len() >= LIMIT {
        s.refused.fetch_add(1, Ordering::SeqCst);
        let reset = SERVER_WINDOW - now.duration_since(recent[recent.len() - LIMIT]);
        return (
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({
                "message": "API call count exceeded for this period",
                "rate_limit": LIMIT,
                "rate_reset": reset.as_secs_f64(),
                "rate_window": SERVER_WINDOW.as_secs_f64(),
            })),
        )
            .into_response();
    }
    accepted.push(now);
    axum::Json(serde_json::json!({"id": "user_1"})).into_response()
}

#[tokio::test]
async fn a_server_window_named_in_a_429_is_adopted() {
    let server = WindowServer::default();
    let app = axum::Router::new()
        .route("/api/v1/me/", axum::routing::get(windowed))
        .with_state(server.clone());
    let addr = serve(app).await;
    // The user believes in 3 per 200 ms; the server allows 3 per second.
    let c = Client::builder()
        .api_key(SecretString::from("legacy-window-key"))
        .base_url(format!("http://{addr}/api/v1/"))
        .rate_limit(LIMIT as u32, Duration::from_millis(200))
        .retry(fast_retry())
        .build()
        .unwrap();
    for _ in 0..10 {
        c.raw(&ApiRequest::get("me/")).await.unwrap();
    }
    assert_eq!(
        server.refused.load(Ordering::SeqCst),
        1,
        "after the first 429 the client keeps to the server's window"
    );
    let at = server.accepted.lock().unwrap().clone();
    assert_eq!(at.len(), 10);
    for run in at.windows(LIMIT + 1) {
        assert!(
            run[LIMIT] - run[0] >= SERVER_WINDOW,
            "{:?}",
            run[LIMIT] - run[0]
        );
    }
}

#[tokio::test]
async fn a_server_allowing_less_than_configured_is_followed_without_429s() {
    let sb = CloseSandbox::builder()
        .rate_limit(5, Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    // The user believes in 5 per 200 ms; the server allows 5 per second.
    let c = budgeted(&sb, "window-key", 5, Duration::from_millis(200));
    let start = Instant::now();
    for _ in 0..12 {
        c.me().await.unwrap();
    }
    assert_eq!(
        sb.stats().rate_limited,
        0,
        "the client ran into the server's window"
    );
    // Twelve requests at five per window span at least two window edges.
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_shared_key_whose_remaining_drops_is_followed() {
    let sb = CloseSandbox::builder()
        .rate_limit(10, Duration::from_secs(3))
        .start()
        .await
        .unwrap();
    // Another process spends most of the key's allowance.
    let other = reqwest::Client::new();
    for _ in 0..8 {
        let r = other
            .get(format!("{}me/", sb.api_url()))
            .basic_auth("shared-key", Some(""))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    // We configured the full 10 per window, but the server says 1 is left after our first.
    let c = budgeted(&sb, "shared-key", 10, Duration::from_secs(3));
    c.me().await.unwrap();
    me_at_once(&c, 5).await;
    assert_eq!(
        sb.stats().rate_limited,
        0,
        "the client trusted its own count over the server's remaining"
    );
}

#[tokio::test]
async fn a_day_long_429_fails_fast_while_other_groups_proceed() {
    let hits = Arc::new(AtomicU32::new(0));
    let seen = hits.clone();
    let app = axum::Router::new()
        .route(
            "/api/v1/me/",
            axum::routing::get(move || {
                let seen = seen.clone();
                async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    (
                        axum::http::StatusCode::TOO_MANY_REQUESTS,
                        [
                            ("retry-after", "86400"),
                            ("ratelimit", "limit=100, remaining=0, reset=86400"),
                        ],
                        axum::Json(serde_json::json!({"error": {"message": "API call count exceeded for this period"}})),
                    )
                }
            }),
        )
        .route(
            "/api/v1/user/",
            axum::routing::get(|| async {
                axum::Json(serde_json::json!({"data": [], "has_more": false}))
            }),
        );
    let addr = serve(app).await;
    let c = Client::builder()
        .api_key(SecretString::from("day-key"))
        .base_url(format!("http://{addr}/api/v1/"))
        .build()
        .unwrap();
    let start = Instant::now();
    for _ in 0..2 {
        let e = c.me().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        let wait = e.retry_after().unwrap();
        assert!(wait > Duration::from_secs(86_000), "{wait:?}");
        assert!(e.to_string().contains("maximum wait"), "{e}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the second call was not sent"
    );
    c.raw(&ApiRequest::get("user/")).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (sb, c) = faulty(vec![Fault::RateLimit]).await;
    let start = Instant::now();
    c.me().await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(990),
        "retried after {:?}",
        start.elapsed()
    );
    assert_eq!(sb.stats().requests.len(), 2);
}

#[tokio::test]
async fn a_post_is_not_repeated_after_a_500() {
    let (sb, c) = faulty(vec![Fault::ServerError]).await;
    let e = c.leads().create(&named("Once")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert_eq!(e.status(), Some(500));
    let posts = sb
        .stats()
        .requests
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 1);
}

#[tokio::test]
async fn a_429_is_always_retried_even_for_a_post() {
    let (sb, c) = faulty(vec![Fault::RateLimit]).await;
    c.leads().create(&named("Retried")).await.unwrap();
    assert_eq!(sb.count("lead"), 1);
    assert_eq!(sb.stats().requests.len(), 2);
}

#[tokio::test]
async fn gets_survive_5xx_and_dropped_connections() {
    let (sb, c) = faulty(vec![Fault::ServerError, Fault::Drop, Fault::Unavailable]).await;
    c.me().await.unwrap();
    assert_eq!(sb.stats().requests.len(), 4);
}

#[tokio::test]
async fn a_dropped_post_is_reported_not_repeated() {
    let (sb, c) = faulty(vec![Fault::Drop]).await;
    let e = c.leads().create(&named("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert_eq!(sb.stats().requests.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_once_for_many_callers() {
    let sb = sandbox(0).await;
    let app = OAuthApp::new("sandbox-client", SecretString::from("sandbox-secret"))
        .token_url(format!("{}/oauth2/token/", sb.base_url()));
    let tokens = app
        .exchange_code(&sb.issue_oauth_code(), None)
        .await
        .unwrap();
    let first_refresh = tokens.refresh_token.clone().unwrap();
    let rotations = Arc::new(AtomicU32::new(0));
    let seen = rotations.clone();
    let c = Client::builder()
        .oauth(
            app.clone(),
            tokens,
            Some(Arc::new(move |_t: &SecretString| {
                seen.fetch_add(1, Ordering::SeqCst);
            })),
        )
        .unwrap()
        .base_url(sb.api_url())
        .retry(fast_retry())
        .build()
        .unwrap();
    c.me().await.unwrap();
    sb.expire_tokens();
    me_at_once(&c, 20).await;
    assert_eq!(sb.stats().token_refreshes, 1);
    assert_eq!(rotations.load(Ordering::SeqCst), 1);
    // Close rotates refresh tokens: the first one is dead now.
    let e = app.refresh(&first_refresh).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert!(!e.to_string().contains(first_refresh.expose_secret()));
}

/// Sends `n` `me` calls at once from clones of `c`; every one must succeed.
async fn me_at_once(c: &Client, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.me().await.map(|_| ()) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}
