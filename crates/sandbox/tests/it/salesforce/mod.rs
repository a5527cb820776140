//! The Salesforce emulator over real loopback HTTP, pinning each documented behaviour.

mod auth;
mod bulk;
mod composite;
mod faults;
mod outbound;
mod records;
mod replication;
mod scale;
mod soql;

use crmkit_sandbox::salesforce::{RunningSalesforce, SalesforceSandbox};
use serde_json::Value;

/// A started emulator seeded with a world of `companies` companies.
pub async fn salesforce(companies: usize) -> RunningSalesforce {
    SalesforceSandbox::builder()
        .seed(3)
        .companies(companies)
        .start()
        .await
        .expect("sandbox starts")
}

/// The plain HTTP client of the sandbox tests, speaking Bearer to a Salesforce emulator
/// below `/services/data/v59.0`.
pub use super::Api as Sf;

/// The first error code of a REST error array.
pub fn code(body: &Value) -> &str {
    body[0]["errorCode"].as_str().unwrap_or_default()
}
