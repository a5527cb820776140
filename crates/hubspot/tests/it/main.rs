//! Integration tests of the HubSpot client against small axum fakes and the crmkit sandbox
//! over loopback HTTP.

mod associations;
mod batch;
mod connector;
mod feed;
mod objects;
mod sandbox;
mod schema;
mod search;
mod signatures;
mod transport;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crmkit_core::SecretString;
use crmkit_hubspot::Client;

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

/// A token client for the fake at `base`; each test uses its own token so budgets are not
/// shared between tests.
pub fn client(base: &str, token: &str) -> Client {
    Client::builder()
        .access_token(SecretString::from(token.to_string()))
        .base_url(base)
        .retry(fast_retry())
        .build()
        .expect("client builds")
}

/// What a fake saw: method, path and query, and the JSON body.
pub type Log = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// A new empty log.
pub fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}
