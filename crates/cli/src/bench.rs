//! Benchmarks against the in-process sandbox. Each prints its figures last, on one line of
//! name=value pairs, so runs can be compared.

mod close_import;
mod hubspot_upsert;
mod rate;
mod reference;
mod sandbox;
mod sync_noop;
mod sync_plan;

use crate::failure::Failure;

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum Bench {
    /// Import leads into the Close sandbox with the rate limit on, through crmkit and then
    /// the usual hand-written loop (one request at a time, 100 ms pause) as a reference.
    ///
    /// Last line: `rate_ratio` (steady achieved rate ÷ allowed rate), `share_429`,
    /// `reference_rate_ratio` and `speedup` (crmkit leads/s ÷ reference leads/s).
    /// Target at `--window-ms 10000 --latency-ms 150`: rate_ratio ≥ 0.97, share_429 ≤ 0.005.
    CloseImport(close_import::Args),
    /// Upsert contacts by email into the HubSpot sandbox with its burst limit on, through
    /// crmkit's batch upsert and then the one-request-per-record loop other tools use.
    ///
    /// Last line: `calls` (batch upserts the sandbox saw), `call_ratio` (calls ÷ ⌈N/100⌉,
    /// target ≤ 1.02), `rate_ratio` (steady achieved ÷ allowed rate, target ≥ 0.95),
    /// `share_429` (target ≤ 0.01), `reference_calls` (the reference loop's requests per
    /// record, not counting those answered 429) and `speedup` (crmkit contacts/s ÷ reference
    /// contacts/s). Defaults: 10,000 contacts at 25 requests per 10 s, so crmkit's 100 calls
    /// span four windows and the rate can be measured (at 100 per 10 s they fit in one).
    HubspotUpsert(hubspot_upsert::Args),
    /// Seed a large Close sandbox, list every lead through the client with the rate limit
    /// off, and time one page of a filtered search.
    ///
    /// Last line: `seed_s=… list_per_s=… search_ms=…`. Targets at 100,000 leads (release
    /// build): seeding under 20 s, at least 5,000 leads/s listed, a search page under 50 ms.
    Sandbox(sandbox::Args),
    /// Plan N synthetic Close/HubSpot record pairs in memory: match, hash, resolve.
    ///
    /// Last line: `pairs_per_s=… peak_rss_mb=…`. Targets (release build, 2 cores):
    /// at least 1,000,000 pairs/s, under 1 GB for 1,000,000 pairs.
    SyncPlan(sync_plan::Args),
    /// Re-sync N linked Close/HubSpot companies that changed nowhere (seeded, synced once,
    /// then the second sync timed): it must write nothing and only list.
    ///
    /// Last line: `writes=… calls=… seconds=…`. Target (release build, SQLite): writes=0,
    /// under 2 s for 10,000 records.
    SyncNoop(sync_noop::Args),
}

/// Runs a benchmark.
pub async fn run(bench: Bench) -> Result<(), Failure> {
    match bench {
        Bench::CloseImport(args) => close_import::run(args).await,
        Bench::HubspotUpsert(args) => hubspot_upsert::run(args).await,
        Bench::Sandbox(args) => sandbox::run(args).await,
        Bench::SyncPlan(args) => sync_plan::run(args),
        Bench::SyncNoop(args) => sync_noop::run(args).await,
    }
}
