//! Integration tests of the Close client: against the sandbox over real loopback HTTP, and
//! against recorded real Close exchanges.

mod cassettes;
mod query;
mod sandbox_ops;
mod secrets;
mod signatures;
mod transport;

use std::time::Duration;

use crmkit_close::Client;
use crmkit_core::SecretString;
use crmkit_sandbox::close::{CloseSandbox, RunningClose};

/// A sandbox with `leads` seeded leads and real (10 s) windows.
pub async fn sandbox(leads: usize) -> RunningClose {
    CloseSandbox::builder()
        .seed(3)
        .leads(leads)
        .start()
        .await
        .expect("sandbox starts")
}

/// A client for `sb` with a fast retry policy so tests do not wait long on backoff.
pub fn client(sb: &RunningClose, key: &str) -> Client {
    Client::builder()
        .api_key(SecretString::from(key.to_string()))
        .base_url(sb.api_url())
        .retry(fast_retry())
        .build()
        .expect("client builds")
}

/// Retries with short backoff.
pub fn fast_retry() -> crmkit_core::http::retry::RetryPolicy {
    crmkit_core::http::retry::RetryPolicy {
        base_delay: Duration::from_millis(20),
        ..Default::default()
    }
}
