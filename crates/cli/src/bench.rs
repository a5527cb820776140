//! Benchmarks against the sandbox. Each prints its figures last, on one line of name=value
//! pairs, so runs can be compared.

use std::time::{Duration, Instant};

use crmkit_close::{Client, LeadFields};
use crmkit_core::{Error, Result, SecretString};
use crmkit_sandbox::close::CloseSandbox;
use futures::{StreamExt, stream};

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum Bench {
    /// Import leads into the Close sandbox with the rate limit on; reports achieved rate ÷
    /// allowed rate and the share of 429 answers.
    CloseImport {
        /// Leads to import.
        #[arg(long, default_value_t = 1000)]
        leads: usize,
        /// Requests allowed per window.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// The window, scaled down from Close's 10 s.
        #[arg(long, default_value_t = 1000)]
        window_ms: u64,
        /// Requests in flight.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
}

/// Runs a benchmark.
pub async fn run(bench: Bench) -> Result<()> {
    match bench {
        Bench::CloseImport {
            leads,
            limit,
            window_ms,
            concurrency,
        } => close_import(leads, limit, window_ms, concurrency).await,
    }
}

async fn close_import(leads: usize, limit: u32, window_ms: u64, concurrency: usize) -> Result<()> {
    let window = Duration::from_millis(window_ms);
    let sandbox = CloseSandbox::builder()
        .seed(7)
        .rate_limit(limit, window)
        .start()
        .await
        .map_err(|e| Error::config(format!("cannot start the sandbox: {e}")))?;
    let client = Client::builder()
        .api_key(SecretString::from("bench-key"))
        .base_url(sandbox.api_url())
        .rate_limit(limit, window)
        .build()?;
    let started = Instant::now();
    let results: Vec<Result<crmkit_close::Lead>> = stream::iter(0..leads)
        .map(|i| {
            let client = client.clone();
            async move {
                let fields = LeadFields {
                    name: Some(format!("Bench Lead {i}")),
                    ..LeadFields::default()
                };
                client.leads().create(&fields).await
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        return Err(Error::config(format!(
            "{failed} of {leads} imports failed; first: {e}"
        )));
    }
    let stats = sandbox.stats();
    let requests = stats.requests.len();
    let rejected = stats.requests.iter().filter(|r| r.status == 429).count();
    let admitted: Vec<f64> = stats
        .requests
        .iter()
        .filter(|r| r.status != 429)
        .map(|r| r.at_ms)
        .collect();
    // Steady-state rate: the first window's burst is free, so measure what came after it.
    let span_ms =
        admitted.last().copied().unwrap_or(0.0) - admitted.first().copied().unwrap_or(0.0);
    let steady = admitted.len().saturating_sub(limit as usize) as f64;
    let allowed_per_ms = f64::from(limit) / window_ms as f64;
    let rate_ratio = if span_ms > 0.0 {
        steady / span_ms / allowed_per_ms
    } else {
        0.0
    };
    let share_429 = if requests > 0 {
        rejected as f64 / requests as f64
    } else {
        0.0
    };
    println!(
        "Imported {leads} leads in {:.2} s at {:.1} requests/s (allowed {:.1}/s).",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        allowed_per_ms * 1000.0
    );
    println!(
        "bench=close-import leads={leads} requests={requests} elapsed_s={:.3} rate_ratio={rate_ratio:.3} share_429={share_429:.4}",
        elapsed.as_secs_f64()
    );
    Ok(())
}
