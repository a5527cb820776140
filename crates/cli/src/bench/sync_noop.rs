//! `bench sync-noop`: a re-sync of linked records that changed nowhere must write nothing
//! and call only the listings. Seeds a Close sandbox, syncs its companies into an empty
//! HubSpot sandbox once (creating and linking them), then times two syncs: the *echo* run,
//! whose HubSpot feed returns every company the first sync created (our own writes coming
//! back), and the *no-op* re-sync after it, when nothing changed anywhere. Both must write
//! nothing and read no record one by one.
//!
//! A no-op re-sync happens after the feeds' overlap has passed: a feed re-reads the overlap
//! before the bound of the run before it (records indexed late), so the timed runs start
//! `--settle-seconds` after the first sync's writes. The echo run still reads them all
//! (the first sync's bound came before them) and its checkpoint passes them; the no-op
//! run then finds nothing. Slept before the echo run rather than between the two: the
//! no-op run re-reads the overlap before the echo run's bound, so only an echo run started
//! after the overlap leaves the creates behind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crmkit_core::{Connector, Crm, SecretString};
use crmkit_sandbox::close::{CloseSandbox, RunningClose};
use crmkit_sandbox::hubspot::{HubSpotSandbox, RunningHubSpot};
use crmkit_sandbox::shared::stats::RequestLog;
use crmkit_sync::{Config, Engine};

use crate::config::Settings;
use crate::failure::Failure;
use crate::progress::Progress;
use crate::waits::Waits;

/// A limit no run reaches.
const UNLIMITED: u32 = 1_000_000_000;

/// Options of `bench sync-noop`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Linked companies (the target applies to 10,000 on a release build).
    #[arg(long, default_value_t = 10_000, value_parser = crate::bounds::leads())]
    records: usize,
    /// The SQLite file of the store (default: a temporary file, removed after).
    #[arg(long)]
    database: Option<std::path::PathBuf>,
    /// Seconds slept after the first sync, so the no-op re-sync happens after the feeds'
    /// overlap has passed (default: just over the HubSpot feed's one-minute overlap); with
    /// 0 the no-op run reads the first sync's creates again.
    #[arg(long, default_value_t = 65)]
    settle_seconds: u64,
}

/// Whether a request writes: anything but reads, searches and batch reads.
fn writes(r: &RequestLog) -> bool {
    r.method != "GET" && !r.path.contains("search") && !r.path.ends_with("/batch/read")
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: Args) -> Result<(), Failure> {
    let spin = Progress::spinner(&format!("seeding {} Close leads", args.records));
    let close = CloseSandbox::builder()
        .leads(args.records)
        .rate_limit(UNLIMITED, Duration::from_secs(1))
        .start()
        .await
        .map_err(|e| Failure::Bench(format!("the Close sandbox does not start: {e}")))?;
    let hubspot = HubSpotSandbox::builder()
        .companies(0)
        .burst_limit(UNLIMITED, Duration::from_secs(10))
        .start()
        .await
        .map_err(|e| Failure::Bench(format!("the HubSpot sandbox does not start: {e}")))?;
    spin.done();
    let mut settings = Settings::default();
    settings.close.api_key = Some(SecretString::from("bench".to_string()));
    settings.close.base_url = Some(close.api_url());
    settings.hubspot.access_token = Some(SecretString::from("bench".to_string()));
    settings.hubspot.base_url = Some(hubspot.base_url());
    let dir = std::env::temp_dir().join(format!("crmkit-bench-sync-noop-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = args
        .database
        .clone()
        .unwrap_or_else(|| dir.join("crmkit.db"));
    let _ = std::fs::remove_file(&db);
    let store = crate::sync::connect::open_store(Some(&format!("sqlite:{}", db.display()))).await?;
    let mut config = Config::new(vec![Crm::Close, Crm::HubSpot]);
    config.person.enabled = false;
    config.deal.enabled = false;
    let waits = Waits::default();
    let conns: Vec<Arc<dyn Connector>> =
        crate::sync::connect::connectors(&settings, &config.sync.crms, &waits).await?;
    let engine = Engine::new(config, store.clone(), conns)?;

    let spin = Progress::spinner(&format!("first sync: linking {} companies", args.records));
    let t0 = Instant::now();
    let first = engine.run().await?;
    spin.done();
    println!(
        "first_sync_seconds={:.3} first_sync_calls={}",
        t0.elapsed().as_secs_f64(),
        close.stats().requests.len() + hubspot.stats().requests.len()
    );
    if !first.errors.is_empty() || first.created != args.records {
        return Err(Failure::Bench(format!(
            "the first sync created {} of {} companies ({} errors, first: {:?})",
            first.created,
            args.records,
            first.errors.len(),
            first.errors.first()
        )));
    }
    if args.settle_seconds > 0 {
        let spin = Progress::spinner(&format!(
            "waiting {} s for the feeds' overlap to pass",
            args.settle_seconds
        ));
        tokio::time::sleep(Duration::from_secs(args.settle_seconds)).await;
        spin.done();
    }
    // The echo run: the HubSpot feed returns the companies the first sync created (our own
    // writes coming back); nothing may be written and no record read one by one.
    let echo = measured_run(&engine, &close, &hubspot, "echo").await?;
    // The no-op re-sync: nothing changed anywhere since the last sync.
    let noop = measured_run(&engine, &close, &hubspot, "no-op").await?;
    store.close().await;
    if args.database.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    for (name, m) in [("echo", &echo), ("noop", &noop)] {
        for (route, n) in &m.routes {
            println!("{name} calls {route}: {n}");
        }
    }
    // The HubSpot feed pages through CRM search, which HubSpot limits to 5 requests per
    // second per account (developers.hubspot.com/docs/api/crm/search): the sixth search
    // starts a second after the first, and so on, a floor no engine change moves, printed
    // so the echo run's time is read against it.
    println!(
        "records={} echo_read={} echoes={} echo_hubspot_searches={} search_floor_seconds={:.1}",
        args.records,
        echo.read,
        echo.echoes,
        echo.searches,
        (echo.searches.saturating_sub(1) / 5) as f64,
    );
    println!(
        "writes={} calls={} seconds={:.3} echo_writes={} echo_calls={} echo_seconds={:.3}",
        noop.writes, noop.calls, noop.seconds, echo.writes, echo.calls, echo.seconds
    );
    Ok(())
}

/// What one timed sync cost.
struct Measured {
    writes: usize,
    calls: usize,
    searches: usize,
    seconds: f64,
    read: usize,
    echoes: usize,
    /// Calls per route (`GET /crm/v3/objects/companies/{id}`), ids folded.
    routes: std::collections::BTreeMap<String, usize>,
}

/// Runs one sync after the HubSpot feed's second has passed and counts its calls; a run
/// that writes anything or reports an error fails the benchmark.
async fn measured_run(
    engine: &Engine,
    close: &RunningClose,
    hubspot: &RunningHubSpot,
    name: &str,
) -> Result<Measured, Failure> {
    // The HubSpot feed leaves records changed in the current second for the next run.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (c0, h0) = (close.stats().requests.len(), hubspot.stats().requests.len());
    let started = Instant::now();
    let report = engine.run().await?;
    let seconds = started.elapsed().as_secs_f64();
    let requests: Vec<RequestLog> = close
        .stats()
        .requests
        .into_iter()
        .skip(c0)
        .chain(hubspot.stats().requests.into_iter().skip(h0))
        .collect();
    let writes = requests.iter().filter(|r| writes(r)).count();
    if report.wrote() || writes > 0 || !report.errors.is_empty() {
        return Err(Failure::Bench(format!(
            "the {name} sync wrote: created {}, updated {}, {writes} write calls, errors {:?}",
            report.created,
            report.updated,
            report.errors.first()
        )));
    }
    let mut routes = std::collections::BTreeMap::<String, usize>::new();
    for r in &requests {
        let route: String = r
            .path
            .split('/')
            .map(|seg| {
                if seg.len() > 20 || seg.chars().all(|c| c.is_ascii_digit()) && !seg.is_empty() {
                    "{id}"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        *routes.entry(format!("{} {route}", r.method)).or_default() += 1;
    }
    Ok(Measured {
        writes,
        calls: requests.len(),
        searches: requests
            .iter()
            .filter(|r| r.path.ends_with("/search"))
            .count(),
        seconds,
        read: report.read,
        echoes: report.echoes,
        routes,
    })
}
