//! Benchmarks against the in-process sandbox. Each prints its figures last, on one line of
//! name=value pairs, so runs can be compared.

mod close_import;
mod hubspot_upsert;
mod rate;
mod reference;
mod salesforce_import;
mod salesforce_load;
mod salesforce_query;
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
    /// Last line: `pairs=… plan_pairs=… seconds=… pairs_per_s=… wall_seconds=…
    /// wall_pairs_per_s=… peak_rss_mb=…`. `pairs_per_s` is planning alone (mapping and
    /// hashing the records, matching, resolving, building and dropping the plan), the figure
    /// the target is for; `wall_pairs_per_s` also counts building the synthetic records and
    /// stored link states, which a real run gets from the connectors and the store. Targets
    /// (release build, 2 cores): at least 1,000,000 pairs/s, under 1 GB for 1,000,000 pairs.
    SyncPlan(sync_plan::Args),
    /// Import contacts into the Salesforce sandbox through the client's bulk path (a Bulk
    /// API 2.0 job from 2,000 records on), then a sample one POST per contact.
    ///
    /// Last line: `calls` (requests of the import, status polls not counted; target ≤ 10 for
    /// 10,000 contacts), `polls` (job status reads), `reference_calls` (requests one POST per
    /// contact takes, measured on `reference_sample` contacts against the same sandbox in
    /// the same run and extrapolated to all of them), `reference_sample` and `speedup`
    /// (crmkit contacts/s ÷ reference contacts/s).
    SalesforceImport(salesforce_import::Args),
    /// Load contacts into a Salesforce sandbox in a child process, then stream them all by
    /// SOQL through nextRecordsUrl pages.
    ///
    /// Last line: `records` (streamed), `peak_rss_mb` (this process's VmHWM over the query;
    /// target under 100 MB at 200,000 records) and `records_per_s`.
    SalesforceQuery(salesforce_query::Args),
    /// Create accounts through the Salesforce connector against the Salesforce sandbox
    /// (collections of 200, or one Bulk API 2.0 job from the bulk threshold on), then read
    /// them back through its change feed, checking each comes out exactly once.
    ///
    /// Last line: `writes` (write requests the sandbox saw), `write_ratio` (writes ÷
    /// ⌈N/200⌉ for collections or ÷ 3 for a Bulk job: create, upload, close; target 1.0),
    /// `write_per_s`, `feed_runs` (feed runs from the last cursor until every account came
    /// out: records stamped after the server's clock wait for the next run), `feed_per_s`
    /// (while reading), `missing` and `repeated` (both must be 0).
    SalesforceLoad(salesforce_load::Args),
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
        Bench::SalesforceImport(args) => salesforce_import::run(args).await,
        Bench::SalesforceQuery(args) => salesforce_query::run(args).await,
        Bench::SalesforceLoad(args) => salesforce_load::run(args).await,
        Bench::SyncNoop(args) => sync_noop::run(args).await,
    }
}
