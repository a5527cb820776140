//! Rate-limit bodies and OAuth refresh against fakes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use crmkit_core::{ErrorKind, SecretString};
use crmkit_hubspot::auth::{OAuthApp, TokenSet};
use crmkit_hubspot::{Client, ReadOptions};
use serde_json::json;

use crate::{client, fast_retry, serve};

async fn daily(State(n): State<Arc<AtomicU32>>) -> impl IntoResponse {
    n.fetch_add(1, Ordering::SeqCst);
    (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(
            json!({"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","correlationId":"c","policyName":"DAILY"}),
        ),
    )
}

#[tokio::test]
async fn a_daily_429_fails_later_calls_locally() {
    let n = Arc::new(AtomicU32::new(0));
    let app = Router::new()
        .route("/crm/v3/objects/contacts/{id}", get(daily))
        .with_state(n.clone());
    let c = client(&serve(app).await, "daily-429");
    for _ in 0..3 {
        let e = c
            .contacts()
            .get("1", &ReadOptions::default())
            .await
            .expect_err("quota");
        assert_eq!(e.kind(), ErrorKind::QuotaExhausted, "{e}");
    }
    assert_eq!(n.load(Ordering::SeqCst), 1, "only the first call was sent");
}

async fn ten_secondly(State(n): State<Arc<AtomicU32>>) -> impl IntoResponse {
    if n.fetch_add(1, Ordering::SeqCst) == 0 {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            axum::Json(json!({"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","correlationId":"c","policyName":"TEN_SECONDLY_ROLLING"})),
        )
            .into_response();
    }
    axum::Json(json!({"id":"1","properties":{},"archived":false})).into_response()
}

#[tokio::test]
async fn a_ten_secondly_429_waits_and_retries() {
    let n = Arc::new(AtomicU32::new(0));
    let app = Router::new()
        .route("/crm/v3/objects/contacts/{id}", get(ten_secondly))
        .with_state(n.clone());
    let c = client(&serve(app).await, "ten-secondly-429");
    let start = std::time::Instant::now();
    c.contacts()
        .get("1", &ReadOptions::default())
        .await
        .expect("retried");
    assert_eq!(n.load(Ordering::SeqCst), 2);
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
}

#[derive(Default)]
struct OAuthFake {
    refreshes: AtomicU32,
}

async fn token(State(s): State<Arc<OAuthFake>>, body: String) -> impl IntoResponse {
    assert!(body.contains("grant_type=refresh_token"), "{body}");
    assert!(body.contains("client_secret=shh"), "{body}");
    let n = s.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(Duration::from_millis(50)).await;
    axum::Json(
        json!({"access_token": format!("fresh-{n}"), "refresh_token": "rt", "expires_in": 1800, "token_type": "bearer", "hub_id": 1}),
    )
}

async fn guarded(headers: HeaderMap) -> impl IntoResponse {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth.starts_with("Bearer fresh-") {
        return axum::Json(json!({"id":"1","properties":{},"archived":false})).into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"status":"error","message":"Authentication credentials not found.","correlationId":"c","category":"INVALID_AUTHENTICATION"})),
    )
        .into_response()
}

fn oauth_client(base: &str, state: &str, expires_in: u64) -> Client {
    let app = OAuthApp::new("cid", SecretString::from("shh")).base_url(base);
    let tokens = TokenSet {
        access_token: SecretString::from(state.to_string()),
        refresh_token: Some(SecretString::from("rt")),
        expires_in: Some(expires_in),
        hub_id: None,
        user_id: None,
        scopes: Vec::new(),
    };
    Client::builder()
        .oauth(app, tokens)
        .expect("has refresh token")
        .base_url(base)
        .retry(fast_retry())
        .build()
        .expect("builds")
}

#[tokio::test]
async fn a_401_refreshes_once_and_retries() {
    let state = Arc::new(OAuthFake::default());
    let app = Router::new()
        .route("/oauth/v1/token", post(token))
        .route("/crm/v3/objects/contacts/{id}", get(guarded))
        .with_state(state.clone());
    let base = serve(app).await;

    let c = oauth_client(&base, "stale", 1800);
    c.contacts()
        .get("1", &ReadOptions::default())
        .await
        .expect("refreshed after the 401");
    assert_eq!(state.refreshes.load(Ordering::SeqCst), 1);

    // The 50-call storm runs against the sandbox's OAuth (sandbox.rs).
}
