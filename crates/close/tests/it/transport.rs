//! Transport behaviour counted at the sandbox: budgets, Retry-After, what is retried, OAuth.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crmkit_close::Client;
use crmkit_close::auth::OAuthApp;
use crmkit_core::{ErrorKind, ExposeSecret, SecretString};
use crmkit_sandbox::close::CloseSandbox;
use crmkit_sandbox::faults::Fault;

use super::{fast_retry, faulty, named, sandbox};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_tasks_stay_under_the_budget() {
    let window = Duration::from_millis(500);
    let sb = CloseSandbox::builder()
        .rate_limit(10, window)
        .start()
        .await
        .unwrap();
    let c = Client::builder()
        .api_key(SecretString::from("budget-key"))
        .base_url(sb.api_url())
        .rate_limit(10, window)
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
    let stats = sb.stats();
    assert_eq!(stats.requests.len(), 40);
    assert_eq!(
        stats.rate_limited, 0,
        "the client let requests through that the server refused"
    );
    let mut per_window = std::collections::HashMap::new();
    for r in &stats.requests {
        *per_window.entry((r.at_ms / 500.0) as u64).or_insert(0) += 1;
    }
    assert!(per_window.values().all(|n| *n <= 10), "{per_window:?}");
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
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.me().await.map(|_| ()) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(sb.stats().token_refreshes, 1);
    assert_eq!(rotations.load(Ordering::SeqCst), 1);
    // Close rotates refresh tokens: the first one is dead now.
    let e = app.refresh(&first_refresh).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert!(!e.to_string().contains(first_refresh.expose_secret()));
}
