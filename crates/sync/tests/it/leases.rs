//! The run's lease: one name per set of CRMs whatever their order, renewed while a run goes
//! on, and a run that lost it stops instead of writing.

use std::time::Duration;

use crmkit_core::{Crm, ErrorKind, ObjectKind};
use crmkit_sandbox::faults::Faults;
use crmkit_store::CursorKey;
use crmkit_sync::config::Config;
use serde_json::json;

use super::{Db, World, config};

/// Every HubSpot answer `ms` late, so a run takes a while.
fn slow_hubspot(w: &World, ms: u64) {
    w.hs_sb.set_faults(Faults {
        latency_ms: ms,
        ..Faults::default()
    });
}

#[tokio::test]
async fn the_crms_in_either_order_share_one_lease_and_their_old_cursors() {
    let w = World::new().await;
    let mut reversed = config();
    reversed.sync.crms = vec![Crm::HubSpot, Crm::Close];
    let engine = w.engine(reversed.clone());
    assert_eq!(engine.pair(), "close-hubspot");
    // Cursors an older crmkit stored under the config's order are taken over once.
    let old = CursorKey::new("hubspot-close", Crm::Close, ObjectKind::Company);
    w.store.set_cursor(&old, "close1.{}").await.expect("store");
    let held = w
        .store
        .acquire_lease(
            "sync:close-hubspot",
            "someone-else",
            Duration::from_secs(60),
        )
        .await
        .expect("store")
        .expect("free");
    let e = engine
        .run()
        .await
        .expect_err("the other order is the same pair");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    w.store.release_lease(&held).await.expect("store");
    w.settle().await;
    engine.run().await.expect("run");
    assert_eq!(w.store.cursor(&old).await.expect("store"), None);
    let new = CursorKey::new("close-hubspot", Crm::Close, ObjectKind::Company);
    assert!(w.store.cursor(&new).await.expect("store").is_some());
    assert!(
        w.store
            .cursors("hubspot-close")
            .await
            .expect("store")
            .is_empty()
    );
}

#[tokio::test]
async fn a_run_longer_than_the_lease_keeps_it() {
    let w = World::new().await;
    w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    w.settle().await;
    slow_hubspot(&w, 250);
    let engine = w
        .engine(config())
        .with_lease_ttl(Duration::from_millis(900));
    let started = std::time::Instant::now();
    let report = engine.run().await.expect("renewed while it ran");
    assert!(
        started.elapsed() > Duration::from_millis(900),
        "the run outlived the lease's time to live"
    );
    assert_eq!(report.created, 1, "{report:?}");
}

#[tokio::test]
async fn a_run_that_lost_its_lease_stops_without_writing() {
    lost_lease(Db::Sqlite).await;
}

#[tokio::test]
async fn a_run_that_lost_its_lease_stops_without_writing_on_postgres() {
    lost_lease(Db::Postgres).await;
}

async fn lost_lease(db: Db) {
    let w = World::on(db).await;
    w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    w.settle().await;
    slow_hubspot(&w, 200);
    let cfg: Config = config();
    let engine = w.engine(cfg);
    let store = w.store.clone();
    // Another process takes the pair over as soon as the run holds it (as after a stall
    // past the lease's time to live).
    let thief = tokio::spawn(async move {
        loop {
            if let Some(current) = store.lease("sync:close-hubspot").await.expect("store") {
                store.release_lease(&current).await.expect("store");
                return store
                    .acquire_lease("sync:close-hubspot", "thief", Duration::from_secs(60))
                    .await
                    .expect("store")
                    .expect("free");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let e = engine.run().await.expect_err("the run stops");
    thief.await.expect("thief");
    assert!(e.to_string().contains("lease"), "{e}");
    assert!(
        w.hs_all("companies", "name").await.is_empty(),
        "nothing written"
    );
    assert!(
        w.store
            .cursors("close-hubspot")
            .await
            .expect("store")
            .is_empty()
    );
    w.finish().await;
}
