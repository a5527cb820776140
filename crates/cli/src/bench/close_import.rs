//! `bench close-import`: leads imported through crmkit's budgeted client against a
//! rate-limited sandbox, then the hand-written reference loop against a fresh sandbox with
//! the same settings.

use std::time::{Duration, Instant};

use crmkit_close::{Client, LeadFields};
use crmkit_core::{Error, SecretString};
use crmkit_sandbox::close::{CloseSandbox, RunningClose, Stats};
use crmkit_sandbox::faults::Faults;
use futures::{StreamExt, stream};

use super::rate::{admitted_ratio, share};
use super::reference;
use crate::bounds;
use crate::failure::Failure;
use crate::progress::Progress;
use crate::waits::Waits;

const API_KEY: &str = "bench-key";

/// Options of `bench close-import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Leads to import through crmkit (the defaults take about 30 s, and the reference as
    /// long again).
    #[arg(long, default_value_t = 400, value_parser = bounds::leads())]
    leads: usize,
    /// Requests allowed per window (at least 1).
    #[arg(long, default_value_t = 100, value_parser = bounds::rate_limit())]
    limit: u32,
    /// The rate window in milliseconds (Close's is 10 s; 1 to 86,400,000, one day).
    #[arg(long, default_value_t = 10_000, value_parser = bounds::window_ms())]
    window_ms: u64,
    /// Delay the sandbox adds to each answer, in milliseconds (at most 60,000).
    #[arg(long, default_value_t = 150, value_parser = bounds::latency_ms())]
    latency_ms: u64,
    /// Requests crmkit keeps in flight (1 to 1,000).
    #[arg(long, default_value_t = 8, value_parser = bounds::concurrency())]
    concurrency: usize,
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: Args) -> Result<(), Failure> {
    let window = Duration::from_millis(args.window_ms);
    let sandbox = start(&args).await?;
    let waits = Waits::default();
    let client = Client::builder()
        .api_key(SecretString::from(API_KEY))
        .base_url(sandbox.api_url())
        .rate_limit(args.limit, window)
        .observer(waits.observer())
        .build()?;
    let progress = Progress::bar(args.leads as u64, "leads through crmkit", &waits);
    let started = Instant::now();
    let failures: Vec<Error> = stream::iter(0..args.leads)
        .map(|i| {
            let client = client.clone();
            let progress = &progress;
            async move {
                let fields = LeadFields {
                    name: Some(format!("Bench Lead {i}")),
                    ..LeadFields::default()
                };
                let created = client.leads().create(&fields).await;
                progress.inc(1);
                created.err()
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .filter_map(|e| async move { e })
        .collect()
        .await;
    let elapsed = started.elapsed();
    progress.done();
    if let Some(first) = failures.first() {
        return Err(Failure::Bench(format!(
            "{} of {} imports failed; first: {first}",
            failures.len(),
            args.leads
        )));
    }
    let stats = sandbox.stats();
    drop(sandbox);
    let requests = stats.requests.len();
    let rejected = stats.requests.iter().filter(|r| r.status == 429).count();
    let rate_ratio = ratio(&stats, &args, "crmkit's import")?;
    let share_429 = share(rejected, requests);
    let allowed_per_s = f64::from(args.limit) / window.as_secs_f64();
    let crmkit_per_s = args.leads as f64 / elapsed.as_secs_f64();
    println!(
        "crmkit: {} leads in {:.2} s, {crmkit_per_s:.1} leads/s (allowed {allowed_per_s:.1} requests/s), {rejected} answers 429.",
        args.leads,
        elapsed.as_secs_f64(),
    );

    // The same duration budget keeps the run bounded; the ratios do not depend on its length.
    // Two windows at least, so that the reference has a whole window to be measured over.
    let budget = elapsed.max(window * 2);
    let sandbox = start(&args).await?;
    // The reference loop does its own waiting, which no transport reports.
    let progress = Progress::counter("leads through the reference loop", &Waits::default());
    let reference =
        reference::import(&sandbox.api_url(), API_KEY, args.leads, budget, &progress).await?;
    progress.done();
    let reference_rate_ratio = ratio(&sandbox.stats(), &args, "the reference import")?;
    let reference_per_s = reference.leads as f64 / reference.elapsed.as_secs_f64().max(1e-9);
    if reference.leads == 0 {
        return Err(Failure::Bench(
            "the reference loop created no lead in its time budget".into(),
        ));
    }
    let speedup = crmkit_per_s / reference_per_s;
    println!(
        "reference (one request at a time, {} ms pause): {} leads in {:.2} s, {reference_per_s:.1} leads/s.",
        reference::PAUSE.as_millis(),
        reference.leads,
        reference.elapsed.as_secs_f64(),
    );
    println!(
        "bench=close-import leads={} requests={requests} elapsed_s={:.3} rate_ratio={rate_ratio:.3} share_429={share_429:.4} reference_rate_ratio={reference_rate_ratio:.3} speedup={speedup:.2}",
        args.leads,
        elapsed.as_secs_f64()
    );
    Ok(())
}

async fn start(args: &Args) -> Result<RunningClose, Failure> {
    CloseSandbox::builder()
        .seed(7)
        .rate_limit(args.limit, Duration::from_millis(args.window_ms))
        .faults(Faults {
            latency_ms: args.latency_ms,
            ..Faults::default()
        })
        .start()
        .await
        .map_err(|e| Failure::Bench(format!("cannot start the sandbox: {e}")))
}

fn ratio(stats: &Stats, args: &Args, what: &str) -> Result<f64, Failure> {
    admitted_ratio(
        stats,
        args.limit,
        args.window_ms,
        what,
        "import more leads than --limit",
    )
}
