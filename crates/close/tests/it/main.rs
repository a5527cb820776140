//! Integration tests of the Close client: against the sandbox over real loopback HTTP, and
//! against recorded real Close exchanges.

mod cassettes;
mod connector;
mod listing;
mod oauth;
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

/// A sandbox that answers its next requests with `faults`, in order, and a client for it.
pub async fn faulty(faults: Vec<crmkit_sandbox::faults::Fault>) -> (RunningClose, Client) {
    let sb = sandbox(0).await;
    sb.set_faults(crmkit_sandbox::faults::Faults {
        next: faults,
        ..Default::default()
    });
    let c = client(&sb, "k");
    (sb, c)
}

/// A lead payload with only a name.
pub fn named(name: &str) -> crmkit_close::LeadFields {
    crmkit_close::LeadFields {
        name: Some(name.into()),
        ..Default::default()
    }
}

/// Serves `app` on a free loopback port and returns its address.
pub async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Retries with short backoff.
pub fn fast_retry() -> crmkit_core::http::retry::RetryPolicy {
    crmkit_core::http::retry::RetryPolicy {
        base_delay: Duration::from_millis(20),
        ..Default::default()
    }
}

/// Every opportunity `c` lists, in pages of ten.
pub async fn opportunities_in_tens(c: &Client) -> Vec<crmkit_close::Opportunity> {
    use futures::TryStreamExt;
    c.opportunities()
        .list()
        .limit(10)
        .stream()
        .try_collect()
        .await
        .unwrap()
}
