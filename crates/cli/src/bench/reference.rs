//! The import people write without crmkit: one POST at a time with a fixed 100 ms pause,
//! plain reqwest and Basic auth, no budget. It is the yardstick for `bench close-import`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::failure::Failure;
use crate::progress::Progress;

/// The pause between requests that the usual hand-written loop uses.
pub const PAUSE: Duration = Duration::from_millis(100);

/// What the reference loop achieved.
#[derive(Debug, Clone, Copy)]
pub struct Imported {
    /// Leads created.
    pub leads: usize,
    /// From the first request to the last answer.
    pub elapsed: Duration,
}

/// The plain HTTP client a reference loop uses: reqwest with a 30 s timeout, nothing more.
pub fn http_client() -> Result<reqwest::Client, Failure> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Failure::Bench(format!("cannot build an HTTP client: {e}")))
}

/// Creates up to `max_leads` leads at `api_url` (the API root) until `budget` has passed.
///
/// A 429 is waited out with the same pause and the lead sent again, as such loops do.
pub async fn import(
    api_url: &str,
    api_key: &str,
    max_leads: usize,
    budget: Duration,
    progress: &Progress,
) -> Result<Imported, Failure> {
    let http = http_client()?;
    let url = format!("{}/lead/", api_url.trim_end_matches('/'));
    let started = Instant::now();
    let mut elapsed = Duration::ZERO;
    let mut leads = 0;
    while leads < max_leads && started.elapsed() < budget {
        // Close takes the API key as the Basic-auth user name with an empty password
        // (developer.close.com/topics/authentication).
        let answer = http
            .post(&url)
            .basic_auth(api_key, Some(""))
            .json(&json!({ "name": format!("Reference Lead {leads}") }))
            .send()
            .await
            .map_err(|e| Failure::Bench(format!("a reference request failed: {e}")))?;
        elapsed = started.elapsed();
        let status = answer.status();
        if status.is_success() {
            leads += 1;
            progress.inc(1);
        } else if status.as_u16() != 429 {
            return Err(Failure::Bench(format!(
                "a reference request was answered {status}"
            )));
        }
        tokio::time::sleep(PAUSE).await;
    }
    Ok(Imported { leads, elapsed })
}
