//! Crash safety of `crmkit sync`: the binary is killed with SIGKILL at many points of its
//! runs (some between a create being sent and its settlement in the store) and rerun; no
//! record is duplicated in either CRM and the end state equals an uninterrupted run's.

use std::time::Duration;

use crmkit_sandbox::faults::Faults;
use crmkit_store::Store;

use crate::sync_support::*;

const SEED: u64 = 11;
const COMPANIES: usize = 24;

/// Faults that widen every window: each answer comes 25 ms late, so a kill often lands
/// while a create is in flight (sent, not yet settled).
fn slow() -> Faults {
    Faults {
        latency_ms: 25,
        ..Faults::default()
    }
}

/// Create intents the store holds unsettled.
async fn unsettled_creates(db: &str) -> Vec<String> {
    let store = Store::open(db).await.expect("store opens");
    let open = store.all_unsettled_intents().await.expect("intents");
    store.close().await;
    open.into_iter()
        .filter(|i| i.op == crmkit_store::IntentOp::Create)
        .map(|i| i.id.to_string())
        .collect()
}

/// Kills `crmkit sync` at least `kills` times, then lets it finish; returns how many kills
/// left a create unsettled in the store. Odd attempts watch the store and kill as soon as a
/// new create intent is recorded and not yet settled (the create is in flight); even ones
/// kill after delays spread over a run (startup, feeds, creates, patches).
async fn kill_loop(pair: &Pair, scratch: &Scratch, db: &str, kills: usize) -> usize {
    let mut done = 0;
    let mut in_flight = 0;
    let mut attempt: u64 = 0;
    // How long an uninterrupted run takes now (updated whenever one finishes), so delays
    // land inside runs; and whether creates are still to be caught in flight.
    let mut typical = Duration::from_millis(1500);
    let mut watch_misses = 0;
    while done < kills {
        attempt += 1;
        assert!(attempt < 200, "the sync keeps finishing before any kill");
        let before = unsettled_creates(db).await;
        let mut child = spawn_sync(pair, &scratch.0, db);
        let started = std::time::Instant::now();
        if attempt % 2 == 1 && watch_misses < 2 {
            // Watch for a create in flight, for up to 20 s.
            let mut seen = false;
            while started.elapsed() < Duration::from_secs(20) {
                if child.try_wait().expect("poll").is_some() {
                    break;
                }
                let now = unsettled_creates(db).await;
                if now.iter().any(|id| !before.contains(id)) {
                    seen = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if !seen {
                watch_misses += 1;
                let _ = wait(&mut child).await;
                typical = started.elapsed();
                continue;
            }
        } else {
            let share = ((attempt * 37) % 100) as f64 / 100.0;
            tokio::time::sleep(typical.mul_f64(0.05 + 0.9 * share)).await;
        }
        if child.try_wait().expect("poll").is_some() {
            typical = started.elapsed();
            // It finished before the kill; the next attempts start from its state.
            let _ = child.wait_with_output();
            continue;
        }
        child.kill().expect("SIGKILL");
        let status = wait(&mut child).await;
        assert!(!status.success(), "a killed sync does not succeed");
        done += 1;
        if !unsettled_creates(db).await.is_empty() {
            in_flight += 1;
        }
    }
    in_flight
}

async fn crash_run(db_for: impl Fn(&Scratch) -> String) {
    // The reference: an uninterrupted sync of the same world into fresh sandboxes.
    let reference = pair(SEED, COMPANIES, slow()).await;
    let ref_dir = Scratch::new("crash-ref");
    let first = converge(&reference, &ref_dir.0, &ref_dir.sqlite(), 6).await;
    assert_eq!(first["errors"].as_array().map(Vec::len), Some(0), "{first}");
    let want_close = close_contents(&reference).await;
    let want_hs = hubspot_contents(&reference).await;
    assert!(
        want_hs.rows["company"].len() > (COMPANIES * 6) / 10,
        "the reference sync created companies in HubSpot: {:?}",
        want_hs.rows["company"].len()
    );

    let crashed = pair(SEED, COMPANIES, slow()).await;
    let dir = Scratch::new("crash");
    let db = db_for(&dir);
    let unsettled = kill_loop(&crashed, &dir, &db, 22).await;
    assert!(
        unsettled > 0,
        "no kill landed between a create and its settlement"
    );
    converge(&crashed, &dir.0, &db, 8).await;
    let got_close = close_contents(&crashed).await;
    let got_hs = hubspot_contents(&crashed).await;
    assert_no_duplicates("close", &got_close, &want_close);
    assert_no_duplicates("hubspot", &got_hs, &want_hs);
    assert!(
        got_close.rows == want_close.rows,
        "Close differs from the uninterrupted run: {}",
        diff(&got_close, &want_close)
    );
    assert!(
        got_hs.rows == want_hs.rows,
        "HubSpot differs from the uninterrupted run: {}",
        diff(&got_hs, &want_hs)
    );
    assert_eq!(got_hs.markers.len(), want_hs.markers.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_syncs_leave_no_duplicates_on_sqlite() {
    crash_run(|s| s.sqlite()).await;
}

/// The test PostgreSQL: `DATABASE_URL`, else `postgres://postgres@127.0.0.1:5432/test`.
fn pg_base() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_syncs_leave_no_duplicates_on_postgres() {
    // A database of its own, dropped at the end; an unreachable server fails the test.
    let base = pg_base();
    // Only connected to, never migrated: the store's tables live in the fresh database.
    psql(&base, "SELECT 1").await;
    let name = format!(
        "crmkit_cli_crash_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0)
    );
    let (root, _) = base.rsplit_once('/').expect("a database URL");
    psql(&base, &format!("CREATE DATABASE {name}")).await;
    let url = format!("{root}/{name}");
    crash_run(|_| url.clone()).await;
    psql(&base, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
}

async fn psql(url: &str, sql: &str) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is not reachable: {e}"));
    sqlx::query(sql).execute(&mut c).await.expect(sql);
}
