//! Integration tests of the Salesforce client over loopback HTTP: against small axum fakes
//! for single behaviours, and against the crmkit sandbox.

mod auth;
mod bulk;
mod composite;
mod connector;
mod fakes;
mod realtime;
mod rest;
mod sandbox;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crmkit_core::SecretString;
use crmkit_salesforce::Client;

/// Serves `app` on a free loopback port and returns its root URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serves") });
    format!("http://{addr}")
}

/// Retries with short backoff.
pub fn fast_retry() -> crmkit_core::http::retry::RetryPolicy {
    crmkit_core::http::retry::RetryPolicy {
        base_delay: Duration::from_millis(20),
        ..Default::default()
    }
}

/// A static-token client for the fake at `base`; each test uses its own token so budgets
/// are not shared between tests.
pub fn client(base: &str, token: &str) -> Client {
    Client::builder()
        .access_token(SecretString::from(token.to_string()))
        .instance_url(base)
        .retry(fast_retry())
        .build()
        .expect("client builds")
}

/// A fixture file's text.
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/salesforce/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What a fake saw: method and path with query, and the body.
pub type Log = Arc<Mutex<Vec<(String, String)>>>;

/// A new empty log.
pub fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

/// The entries of `log`.
pub fn seen(log: &Log) -> Vec<(String, String)> {
    log.lock().expect("log").clone()
}
