//! `bench salesforce-load`: accounts created through `SalesforceConnector` against the
//! Salesforce sandbox (sObject collections of 200 below the bulk threshold, a Bulk API 2.0
//! job from it on), then read back through the connector's change feed.
//!
//! It checks what it measures: every account created must come out of the feed exactly
//! once, or the benchmark fails.

use std::collections::HashMap;
use std::time::Instant;

use crmkit_core::connector::Change;
use crmkit_core::{Company, Connector, Error, ObjectKind, Record, SecretString};
use crmkit_salesforce::{Client, SalesforceConnector};
use crmkit_sandbox::salesforce::SalesforceSandbox;
use futures::TryStreamExt;

use crate::bounds;
use crate::failure::Failure;
use crate::waits::Waits;

/// Options of `bench salesforce-load`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Accounts to create.
    #[arg(long, default_value_t = 5_000, value_parser = bounds::leads())]
    accounts: usize,
    /// From how many records a write goes through Bulk API 2.0 (Salesforce's guidance and
    /// crmkit's default: 2,000); set it above --accounts to measure collections.
    #[arg(long, default_value_t = 2_000, value_parser = bounds::leads())]
    bulk_threshold: usize,
    /// Records per change-feed query (1 to 2,000).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u16).range(1..=2000))]
    page_size: u16,
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: Args) -> Result<(), Failure> {
    let sandbox = SalesforceSandbox::builder()
        .daily_limit(u32::MAX)
        .start()
        .await
        .map_err(|e| Error::config(format!("cannot start the Salesforce sandbox: {e}")))?;
    let waits = Waits::default();
    let client = Client::builder()
        .access_token(SecretString::from("bench-session"))
        .instance_url(sandbox.instance_url())
        .bulk_threshold(args.bulk_threshold)
        .observer(waits.observer())
        .build()?;
    let conn = SalesforceConnector::new(client).with_page_size(usize::from(args.page_size));
    let records: Vec<Record> = (0..args.accounts)
        .map(|i| {
            Record::Company(Company {
                name: format!("Bench Account {i:07}"),
                url: Some(format!("https://bench{i}.example")),
                ..Company::default()
            })
        })
        .collect();
    let before = sandbox.stats().requests.len();
    let started = Instant::now();
    let out = conn.create(records).await;
    let write_s = started.elapsed().as_secs_f64();
    let failed: Vec<String> = out.failed().map(|(i, e)| format!("#{i}: {e}")).collect();
    if !failed.is_empty() {
        return Err(Failure::Bench(format!(
            "{} of {} creates failed, first {}",
            failed.len(),
            args.accounts,
            failed[0]
        )));
    }
    let writes = sandbox.stats().requests[before..]
        .iter()
        .filter(|r| r.method != "GET")
        .count();
    let bulk = args.accounts >= args.bulk_threshold;
    // Collections: one call per 200; Bulk: create, upload and close one job.
    let expected = if bulk { 3 } else { args.accounts.div_ceil(200) };

    // The feed's bound is the server's clock in whole seconds (the Date header): what was
    // stamped later is left for the next run. So the feed runs again from its cursor, as a
    // sync would, until every account came out (at most 30 runs, half a second apart). No
    // overlap window, so nothing is delivered twice by design and `repeated` must be 0.
    let conn = conn.with_overlap(std::time::Duration::ZERO);
    let mut cursor = None;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut runs = 0;
    let mut read = 0usize;
    // Time spent reading, without the pauses between runs.
    let mut busy = std::time::Duration::ZERO;
    while seen.len() < args.accounts && runs < 30 {
        if runs > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        runs += 1;
        let started = Instant::now();
        let changes: Vec<Change> = conn
            .changes(ObjectKind::Company, cursor.clone())
            .try_collect()
            .await?;
        busy += started.elapsed();
        // A checkpoint ending a run carries no record.
        read += changes.iter().filter(|c| c.id().is_some()).count();
        for c in &changes {
            if let Some(id) = c.id() {
                *seen.entry(id.to_string()).or_default() += 1;
            }
        }
        if let Some(last) = changes.last() {
            cursor = Some(last.cursor().clone());
        }
    }
    let feed_s = busy.as_secs_f64();
    let missing = out
        .succeeded()
        .filter(|r| !seen.contains_key(r.id.as_str()))
        .count();
    let repeated = seen.values().filter(|n| **n > 1).count();
    println!(
        "created {} accounts through {} in {write_s:.2} s with {writes} writes; the change feed read {read} in {runs} run(s), {feed_s:.2} s of reading",
        args.accounts,
        if bulk {
            "a Bulk API 2.0 job"
        } else {
            "sObject collections"
        },
    );
    if missing > 0 || repeated > 0 {
        return Err(Failure::Bench(format!(
            "the change feed missed {missing} and repeated {repeated} of the created accounts"
        )));
    }
    println!(
        "writes={writes} write_ratio={:.3} write_per_s={:.0} feed_runs={runs} feed_per_s={:.0} missing={missing} repeated={repeated}",
        writes as f64 / expected as f64,
        args.accounts as f64 / write_s.max(1e-9),
        read as f64 / feed_s.max(1e-9),
    );
    Ok(())
}
