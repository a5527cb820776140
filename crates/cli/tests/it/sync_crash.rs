//! Crash safety of a three-way `crmkit sync` (Close, HubSpot, Salesforce): the binary is
//! killed with SIGKILL at least 20 times at points spread over its runs, some while a create
//! is in flight and some after the CRM made the record but before the store settled it, and
//! rerun; on SQLite and on PostgreSQL, no record is duplicated in any CRM, every record is
//! linked in all three, and each CRM ends as an uninterrupted run's does.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crmkit_core::Crm;
use crmkit_sandbox::faults::Faults;
use crmkit_store::{IntentOp, Store};

use crate::sync_support::*;

const SEED: u64 = 11;
const COMPANIES: usize = 16;
const KILLS: usize = 22;
/// How late each sandbox answers.
const LATENCY_MS: u64 = 25;

/// Faults that widen every window: each answer comes late, so a kill often lands while a
/// create is in flight (sent, not yet made), and a CRM's answer is followed by the other
/// requests of the batch (associations) before the creates are settled.
fn slow() -> Faults {
    Faults {
        latency_ms: LATENCY_MS,
        ..Faults::default()
    }
}

/// An unsettled create: its intent id, target CRM and marker.
type OpenCreate = (String, Crm, String);

/// Create intents the store holds unsettled.
async fn unsettled_creates(store: &Store) -> Vec<OpenCreate> {
    let open = store.all_unsettled_intents().await.expect("intents");
    open.into_iter()
        .filter(|i| i.op == IntentOp::Create)
        .map(|i| {
            let marker = i.payload["marker"].as_str().unwrap_or_default().to_string();
            (i.id.to_string(), i.crm, marker)
        })
        .collect()
}

/// Whether the CRM holds a record carrying the marker of any of `open`: the kill came after
/// the CRM made it and before the store settled it.
async fn made_but_unsettled(pair: &Pair, open: &[OpenCreate]) -> bool {
    if open.is_empty() {
        return false;
    }
    let markers: BTreeSet<(&'static str, String)> = all_contents(pair)
        .await
        .into_iter()
        .flat_map(|(crm, c)| c.markers.into_keys().map(move |m| (crm, m)))
        .collect();
    open.iter().any(|(_, crm, marker)| {
        let name = match crm {
            Crm::Close => "close",
            Crm::HubSpot => "hubspot",
            Crm::Salesforce => "salesforce",
        };
        markers.contains(&(name, marker.clone()))
    })
}

/// Where one attempt kills the sync.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// As soon as a new create intent is sent: the CRM has not made the record yet.
    CreateSent,
    /// This long after a new create intent is sent: past the sandbox's latency, so the CRM
    /// has made the record and the run is settling the batch (or reading associations).
    AfterCreate(Duration),
    /// This share of an uninterrupted run's duration after the start.
    Share(f64),
}

/// What the kills hit.
#[derive(Debug, Default)]
struct Kills {
    /// Kills done.
    done: usize,
    /// Kills that left a create intent unsettled.
    in_flight: usize,
    /// Kills that left a create unsettled whose record the CRM had already made.
    made: usize,
}

/// Kills `crmkit sync` at least `kills` times, then lets it finish. Attempts cycle through
/// the kill points: right after a create is sent, after the CRM made it (before it is
/// settled), and after delays spread over a run (startup, feeds, links, patches); a point
/// watching for creates is dropped once creates no longer happen.
async fn kill_loop(pair: &Pair, scratch: &Scratch, db: &str, kills: usize) -> Kills {
    let store = Store::open(db).await.expect("store opens");
    let mut seen = Kills::default();
    let mut attempt: u64 = 0;
    // How long an uninterrupted run takes now (updated whenever one finishes), so delays
    // land inside runs.
    let mut typical = Duration::from_millis(3000);
    let mut watch_misses = 0;
    while seen.done < kills {
        attempt += 1;
        assert!(attempt < 200, "the sync keeps finishing before any kill");
        let point = match attempt % 3 {
            _ if watch_misses >= 3 => {
                KillPoint::Share(0.05 + 0.9 * ((attempt * 37) % 100) as f64 / 100.0)
            }
            1 => KillPoint::CreateSent,
            2 => KillPoint::AfterCreate(Duration::from_millis(LATENCY_MS + 5 + (attempt * 7) % 40)),
            _ => KillPoint::Share(0.05 + 0.9 * ((attempt * 37) % 100) as f64 / 100.0),
        };
        let before: BTreeSet<String> = unsettled_creates(&store)
            .await
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        let mut child = spawn_sync(pair, &scratch.0, db);
        let started = Instant::now();
        match point {
            KillPoint::CreateSent | KillPoint::AfterCreate(_) => {
                // Watch for a create in flight, for up to 30 s.
                let mut sent = false;
                while started.elapsed() < Duration::from_secs(30) {
                    if child.try_wait().expect("poll").is_some() {
                        break;
                    }
                    let now = unsettled_creates(&store).await;
                    if now.iter().any(|(id, _, _)| !before.contains(id)) {
                        sent = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                if !sent {
                    watch_misses += 1;
                    let _ = wait(&mut child).await;
                    typical = started.elapsed();
                    continue;
                }
                if let KillPoint::AfterCreate(d) = point {
                    tokio::time::sleep(d).await;
                }
            }
            KillPoint::Share(share) => tokio::time::sleep(typical.mul_f64(share)).await,
        }
        if child.try_wait().expect("poll").is_some() {
            // It finished before the kill; the next attempts start from its state.
            typical = started.elapsed();
            let _ = child.wait_with_output();
            continue;
        }
        child.kill().expect("SIGKILL");
        let status = wait(&mut child).await;
        assert!(!status.success(), "a killed sync does not succeed");
        seen.done += 1;
        let open = unsettled_creates(&store).await;
        if !open.is_empty() {
            seen.in_flight += 1;
        }
        if made_but_unsettled(pair, &open).await {
            seen.made += 1;
        }
    }
    store.close().await;
    seen
}

async fn crash_run(db: &TestDb, reference_db: &TestDb) {
    // The reference: an uninterrupted sync of the same world into fresh sandboxes.
    let reference = trio(SEED, COMPANIES, slow()).await;
    let ref_dir = Scratch::for_pair("crash-ref", &reference);
    let first = converge(&reference, &ref_dir.0, &reference_db.url, 6).await;
    assert_eq!(first["errors"].as_array().map(Vec::len), Some(0), "{first}");
    let want = all_contents(&reference).await;
    for (crm, c) in &want {
        assert!(
            c.rows["company"].len() >= COMPANIES,
            "the reference sync spread every company to {crm}: {:?}",
            c.rows["company"]
        );
    }

    let crashed = trio(SEED, COMPANIES, slow()).await;
    let dir = Scratch::for_pair("crash", &crashed);
    let kills = kill_loop(&crashed, &dir, &db.url, KILLS).await;
    eprintln!("kills: {kills:?}");
    assert!(
        kills.in_flight > 0,
        "no kill landed between a create and its settlement: {kills:?}"
    );
    assert!(
        kills.made > 0,
        "no kill landed after a CRM made a record and before it was settled: {kills:?}"
    );
    converge(&crashed, &dir.0, &db.url, 8).await;
    let got = all_contents(&crashed).await;
    for ((crm, got), (_, want)) in got.iter().zip(&want) {
        assert_no_duplicates(crm, got, want);
        assert!(
            got.rows == want.rows,
            "{crm} differs from the uninterrupted run: {}",
            diff(got, want)
        );
        assert_eq!(got.markers.len(), want.markers.len(), "{crm} markers");
    }
    assert_all_linked(&db.url, &[Crm::Close, Crm::HubSpot, Crm::Salesforce]).await;
    assert_all_linked(
        &reference_db.url,
        &[Crm::Close, Crm::HubSpot, Crm::Salesforce],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_three_way_syncs_leave_no_duplicates_on_sqlite() {
    let (db, reference) = (TestDb::sqlite().await, TestDb::sqlite().await);
    crash_run(&db, &reference).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_three_way_syncs_leave_no_duplicates_on_postgres() {
    // Fresh schemas, dropped at the end; an unreachable server fails the test.
    let (db, reference) = (TestDb::postgres().await, TestDb::postgres().await);
    crash_run(&db, &reference).await;
}
