//! The HubSpot emulator over real loopback HTTP, pinning each documented behaviour.

mod associations;
mod batch;
mod gate;
mod merges;
mod objects;
mod search;
mod settings;
mod webhooks;

use crmkit_sandbox::hubspot::{HubSpotSandbox, RunningHubSpot};
use serde_json::Value;

/// A started emulator seeded with a world of `companies` companies.
pub async fn hubspot(companies: usize) -> RunningHubSpot {
    HubSpotSandbox::builder()
        .seed(5)
        .companies(companies)
        .start()
        .await
        .expect("sandbox starts")
}

/// The plain HTTP client of the sandbox tests, speaking Bearer to a HubSpot emulator.
pub use super::Api as Hs;

/// The `id`s of a list or search answer's `results`.
pub fn ids(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect()
}
