//! OAuth against the sandbox's token endpoint, through a small proxy that can slow it down or
//! fail it (the sandbox's own faults apply to the API, not to `/oauth2/token/`).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use crmkit_close::Client;
use crmkit_close::auth::OAuthApp;
use crmkit_core::{ExposeSecret, SecretString};
use crmkit_sandbox::close::RunningClose;

use super::{fast_retry, sandbox, serve};

/// Forwards token grants to the sandbox after `delay_ms`, answering 500 to the next
/// `fail_next` grants instead.
#[derive(Clone)]
struct Proxy {
    upstream: String,
    delay_ms: Arc<AtomicU64>,
    fail_next: Arc<AtomicU32>,
    hits: Arc<AtomicU32>,
}

async fn forward(
    State(p): State<Proxy>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> Response {
    p.hits.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(p.delay_ms.load(Ordering::SeqCst))).await;
    let fail = p
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if fail {
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({"error": "server_error"})),
        )
            .into_response();
    }
    let Ok(resp) = reqwest::Client::new()
        .post(&p.upstream)
        .form(&form)
        .send()
        .await
    else {
        return axum::http::StatusCode::BAD_GATEWAY.into_response();
    };
    let status = axum::http::StatusCode::from_u16(resp.status().as_u16())
        .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
    let body = resp.bytes().await.unwrap_or_default();
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The sandbox, a proxy in front of its token endpoint, an OAuth client going through the
/// proxy, and every refresh token handed to `on_rotate`.
async fn setup() -> (RunningClose, Proxy, Client, Arc<Mutex<Vec<String>>>) {
    let sb = sandbox(0).await;
    let proxy = Proxy {
        upstream: format!("{}/oauth2/token/", sb.base_url()),
        delay_ms: Arc::new(AtomicU64::new(0)),
        fail_next: Arc::new(AtomicU32::new(0)),
        hits: Arc::new(AtomicU32::new(0)),
    };
    let app = axum::Router::new()
        .route("/oauth2/token/", axum::routing::post(forward))
        .with_state(proxy.clone());
    let addr = serve(app).await;
    let oauth = OAuthApp::new("sandbox-client", SecretString::from("sandbox-secret"))
        .token_url(format!("http://{addr}/oauth2/token/"))
        .retry(fast_retry());
    let tokens = oauth
        .exchange_code(&sb.issue_oauth_code(), None)
        .await
        .unwrap();
    let rotated = Arc::new(Mutex::new(Vec::new()));
    let keep = rotated.clone();
    let client = Client::builder()
        .oauth(
            oauth,
            tokens,
            Some(Arc::new(move |t: &SecretString| {
                keep.lock().unwrap().push(t.expose_secret().to_string());
            })),
        )
        .unwrap()
        .base_url(sb.api_url())
        .retry(fast_retry())
        .build()
        .unwrap();
    client.me().await.unwrap();
    proxy.hits.store(0, Ordering::SeqCst);
    (sb, proxy, client, rotated)
}

#[tokio::test]
async fn a_caller_cancelled_mid_refresh_still_leaves_the_rotated_token_stored() {
    let (sb, proxy, c, rotated) = setup().await;
    sb.expire_tokens();
    proxy.delay_ms.store(400, Ordering::SeqCst);
    let cut = tokio::time::timeout(Duration::from_millis(100), c.me()).await;
    assert!(
        cut.is_err(),
        "the caller was cancelled while the refresh ran"
    );
    // The refresh finishes on its own; wait for it with a generous deadline, not a guess.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rotated.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sb.stats().token_refreshes, 1, "the refresh ran to the end");
    let kept = rotated.lock().unwrap().clone();
    assert_eq!(kept.len(), 1, "on_rotate saw the rotated refresh token");
    // The client kept the new access token: no second refresh.
    proxy.delay_ms.store(0, Ordering::SeqCst);
    c.me().await.unwrap();
    assert_eq!(sb.stats().token_refreshes, 1);
    assert_eq!(proxy.hits.load(Ordering::SeqCst), 1);
    // And the refresh token handed to the hook is the live one.
    let app = OAuthApp::new("sandbox-client", SecretString::from("sandbox-secret"))
        .token_url(format!("{}/oauth2/token/", sb.base_url()));
    app.refresh(&SecretString::from(kept[0].clone()))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failing_token_endpoint_is_retried() {
    let (sb, proxy, c, rotated) = setup().await;
    sb.expire_tokens();
    proxy.fail_next.store(1, Ordering::SeqCst);
    c.me().await.unwrap();
    assert_eq!(proxy.hits.load(Ordering::SeqCst), 2, "500, then 200");
    assert_eq!(sb.stats().token_refreshes, 1);
    assert_eq!(rotated.lock().unwrap().len(), 1);
}
