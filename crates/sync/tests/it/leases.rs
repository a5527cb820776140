//! The run's lease: one name per set of CRMs whatever their order, renewed while a run goes
//! on, and a run that lost it stops instead of writing.

use std::time::Duration;

use crmkit_core::{Crm, ErrorKind, ObjectKind};
use crmkit_sandbox::faults::Faults;
use crmkit_store::{CursorKey, IntentOp, IntentState, Lease, NewIntent, Store};
use crmkit_sync::config::Config;
use crmkit_sync::engine::{Engine, lease_names};
use serde_json::json;

use super::{Db, World, config};

/// `[sync] crms` in the order an older crmkit named its lease `sync:hubspot-close` by.
fn hubspot_first() -> Config {
    let mut c = config();
    c.sync.crms = vec![Crm::HubSpot, Crm::Close];
    c
}

/// Another process taking lease `name` over as soon as a run holds it (as after a stall
/// past the lease's time to live): it releases the run's lease and takes it as `thief`.
fn steal(store: &Store, name: &'static str) -> tokio::task::JoinHandle<Lease> {
    let store = store.clone();
    tokio::spawn(async move {
        loop {
            if let Some(current) = store.lease(name).await.expect("store") {
                store.release_lease(&current).await.expect("store");
                return store
                    .acquire_lease(name, "thief", Duration::from_secs(60))
                    .await
                    .expect("store")
                    .expect("free");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// Watches leases `names` while a run goes on, until each was seen renewed (the same holder
/// and token, a later expiry) or the run gave them all back; returns which were renewed, in
/// the order of `names`.
async fn renewals(store: &Store, names: &[&str]) -> Vec<bool> {
    let mut first: Vec<Option<Lease>> = vec![None; names.len()];
    let mut renewed = vec![false; names.len()];
    for _ in 0..4_000 {
        let mut held = 0;
        for (i, name) in names.iter().enumerate() {
            let Some(now) = store.lease(name).await.expect("store") else {
                continue;
            };
            held += 1;
            match &first[i] {
                Some(f) if f.holder == now.holder && f.token == now.token => {
                    renewed[i] |= now.expires_at > f.expires_at;
                }
                _ => first[i] = Some(now),
            }
        }
        let seen = first.iter().all(Option::is_some);
        if renewed.iter().all(|r| *r) || (seen && held == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    renewed
}

/// Every HubSpot answer `ms` late, so a run takes a while.
fn slow_hubspot(w: &World, ms: u64) {
    w.hs_sb.set_faults(Faults {
        latency_ms: ms,
        ..Faults::default()
    });
}

/// Runs `engine` while an older crmkit holds `sync:hubspot-close`: the run must be refused,
/// naming that lease, give back the canonical lease it took first, and sync nothing.
async fn refused_by_older(w: &World, engine: &Engine) {
    let e = engine
        .run()
        .await
        .expect_err("the older process holds the pair");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("\"sync:hubspot-close\""), "{e}");
    assert_eq!(
        w.store.lease("sync:close-hubspot").await.expect("store"),
        None,
        "the canonical lease, taken first, is given back"
    );
    assert!(
        w.hs_all("companies", "name").await.is_empty(),
        "nothing synced"
    );
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
        .hold_lease(
            "sync:close-hubspot",
            "someone-else",
            Duration::from_secs(60),
        )
        .await;
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
    let (report, renewed) = tokio::join!(engine.run(), renewals(&w.store, &["sync:close-hubspot"]));
    let report = report.expect("renewed while it ran");
    assert_eq!(renewed, [true], "the run renewed its lease");
    assert_eq!(report.created, 1, "{report:?}");
}

#[tokio::test]
async fn a_run_that_lost_its_lease_stops_without_writing() {
    lost_lease(Db::Sqlite, config(), "sync:close-hubspot").await;
}

#[tokio::test]
async fn a_run_that_lost_its_lease_stops_without_writing_on_postgres() {
    lost_lease(Db::Postgres, config(), "sync:close-hubspot").await;
}

#[tokio::test]
async fn a_run_that_lost_the_config_order_lease_stops_without_writing() {
    lost_lease(Db::Sqlite, hubspot_first(), "sync:hubspot-close").await;
}

async fn lost_lease(db: Db, cfg: Config, stolen: &'static str) {
    let w = World::on(db).await;
    w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    w.settle().await;
    slow_hubspot(&w, 200);
    let engine = w.engine(cfg);
    let thief = steal(&w.store, stolen);
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

#[tokio::test]
async fn a_run_of_crms_out_of_order_holds_the_older_crmkits_lease_too() {
    let w = World::new().await;
    w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    let cfg = hubspot_first();
    assert_eq!(
        lease_names(&cfg.sync.crms),
        ["sync:close-hubspot", "sync:hubspot-close"]
    );
    assert_eq!(
        lease_names(&config().sync.crms),
        ["sync:close-hubspot", "sync:hubspot-close"],
        "whatever the config's order"
    );
    assert_eq!(
        lease_names(&[Crm::Salesforce, Crm::Close, Crm::HubSpot]),
        [
            "sync:close-hubspot-salesforce",
            "sync:close-salesforce-hubspot",
            "sync:hubspot-close-salesforce",
            "sync:hubspot-salesforce-close",
            "sync:salesforce-close-hubspot",
            "sync:salesforce-hubspot-close",
        ],
        "every order of three CRMs, sorted"
    );
    let engine = w.engine(cfg);
    // An older crmkit, still running during an upgrade, syncs these CRMs under the
    // config-order name.
    w.hold_lease(
        "sync:hubspot-close",
        "crmkit-sync-older",
        Duration::from_millis(500),
    )
    .await;
    refused_by_older(&w, &engine).await;

    // Once the older process's lease expired, the run goes on, holding both names all along:
    // an older crmkit starting meanwhile is refused.
    w.settle().await;
    slow_hubspot(&w, 100);
    let watch = async {
        for _ in 0..2_000 {
            let canonical = w.store.lease("sync:close-hubspot").await.expect("store");
            let legacy = w.store.lease("sync:hubspot-close").await.expect("store");
            if let (Some(canonical), Some(legacy)) = (canonical, legacy) {
                let older = w
                    .store
                    .acquire_lease(
                        "sync:hubspot-close",
                        "crmkit-sync-older",
                        Duration::from_secs(60),
                    )
                    .await
                    .expect("store");
                return Some((canonical.holder, legacy.holder, older));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    };
    let (report, seen) = tokio::join!(engine.run(), watch);
    let report = report.expect("run");
    assert_eq!(report.created, 1, "{report:?}");
    let (canonical, legacy, older) = seen.expect("both leases held during the run");
    assert_eq!(canonical, legacy, "one holder: the run");
    assert_eq!(
        older, None,
        "the older crmkit cannot take the pair meanwhile"
    );
    for name in ["sync:close-hubspot", "sync:hubspot-close"] {
        assert_eq!(
            w.store.lease(name).await.expect("store"),
            None,
            "{name} released"
        );
    }
}

#[tokio::test]
async fn a_run_longer_than_the_lease_keeps_both_names() {
    let w = World::new().await;
    w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    w.settle().await;
    slow_hubspot(&w, 250);
    let engine = w
        .engine(hubspot_first())
        .with_lease_ttl(Duration::from_millis(900));
    // Were the config-order lease not renewed, the fence would stop the run once it expired.
    let (report, renewed) = tokio::join!(
        engine.run(),
        renewals(&w.store, &["sync:close-hubspot", "sync:hubspot-close"])
    );
    let report = report.expect("both renewed while it ran");
    assert_eq!(renewed, [true, true], "the run renewed both leases");
    assert_eq!(report.created, 1, "{report:?}");
}

#[tokio::test]
async fn a_run_of_crms_in_sorted_order_is_refused_while_an_older_crmkit_runs_them_reversed() {
    let w = World::new().await;
    w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    // An older crmkit configured `[hubspot, close]`, still running during the upgrade of
    // this one, configured `[close, hubspot]`.
    let older = w
        .hold_lease(
            "sync:hubspot-close",
            "crmkit-sync-older",
            Duration::from_secs(60),
        )
        .await;
    let engine = w.engine(config());
    refused_by_older(&w, &engine).await;
    // Once the older process is done (killed mid-run: it left its cursor and a delete
    // unsettled under its name), the run goes on and takes both over.
    let old = CursorKey::new("hubspot-close", Crm::Close, ObjectKind::Company);
    w.store.set_cursor(&old, "close1.{}").await.expect("store");
    let lead = open_delete(&w, "hubspot-close", IntentState::Sent).await;
    w.store.release_lease(&older).await.expect("store");
    w.settle().await;
    let report = engine.run().await.expect("run");
    assert_eq!(report.created, 1, "{report:?}");
    assert_eq!(report.recovered, 1, "{report:?}");
    assert!(
        !w.close_has_lead(&lead).await,
        "the older run's delete was sent again"
    );
    assert!(w.unsettled_intents().await.is_empty());
    assert_eq!(w.store.cursor(&old).await.expect("store"), None);
    let new = CursorKey::new("close-hubspot", Crm::Close, ObjectKind::Company);
    assert!(w.store.cursor(&new).await.expect("store").is_some());
}

/// A delete an interrupted run of `pair` left open (for a Close lead), and a HubSpot create
/// before it whose lookup fails slowly, so the lease can be taken over while the run
/// reconciles.
async fn open_delete(w: &World, pair: &str, state: IntentState) -> String {
    let lead = w.close_lead(json!({"name": "Gone Inc"})).await;
    let delete = w
        .store
        .record_intent(
            &NewIntent::new(
                Crm::Close,
                ObjectKind::Company,
                IntentOp::Delete,
                "interrupted-run:delete",
                json!({"id": lead, "because": "hubspot:company:1"}),
            )
            .pair(pair),
        )
        .await
        .expect("store");
    if state == IntentState::Sent {
        w.store.mark_intent_sent(&delete.id).await.expect("store");
    }
    lead
}

#[tokio::test]
async fn an_interrupted_delete_is_sent_again_and_settled() {
    let w = World::new().await;
    let lead = open_delete(&w, "close-hubspot", IntentState::Pending).await;
    let report = w.engine(config()).run().await.expect("run");
    assert_eq!(report.recovered, 1, "{report:?}");
    assert!(!w.close_has_lead(&lead).await, "deleted");
    assert!(w.unsettled_intents().await.is_empty());
}

#[tokio::test]
async fn a_run_whose_lease_was_taken_over_resends_no_delete() {
    let w = World::new().await;
    // First a HubSpot create to look up, answered late and failing (a reported error, no
    // store write): another process takes the pair over meanwhile, and the run's renewal
    // has not noticed yet.
    w.store
        .record_intent(
            &NewIntent::new(
                Crm::HubSpot,
                ObjectKind::Company,
                IntentOp::Create,
                "interrupted-run:create",
                json!({"marker": "close:company:lead_x"}),
            )
            .pair("close-hubspot"),
        )
        .await
        .expect("store");
    let lead = open_delete(&w, "close-hubspot", IntentState::Sent).await;
    w.hs_sb.set_faults(Faults {
        rate_500: 1.0,
        latency_ms: 100,
        ..Faults::default()
    });
    let thief = steal(&w.store, "sync:close-hubspot");
    w.reset_stats();
    let e = w
        .engine(config())
        .run()
        .await
        .expect_err("the run stops before the delete");
    let stolen = thief.await.expect("thief");
    assert!(e.to_string().contains("lease"), "{e}");
    assert!(
        w.writes().iter().all(|r| !r.starts_with("close DELETE")),
        "{:?}",
        w.writes()
    );
    assert!(w.close_has_lead(&lead).await, "the lead is still there");
    // Left for the run holding the lease now.
    let open = w.unsettled_intents().await;
    assert!(open.iter().any(|i| i.op == IntentOp::Delete), "{open:?}");
    assert_eq!(
        w.store.lease("sync:close-hubspot").await.expect("store"),
        Some(stolen)
    );
}
