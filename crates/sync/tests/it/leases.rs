//! The run's lease: one name per set of CRMs whatever their order, renewed while a run goes
//! on, and a run that lost it stops instead of writing.

use std::sync::Arc;
use std::time::Duration;

use crmkit_core::Connector;
use crmkit_hubspot::HubSpotConnector;

use crmkit_core::{Crm, ErrorKind, ObjectKind};
use crmkit_sandbox::faults::Faults;
use crmkit_store::{
    CursorKey, IntentOp, IntentState, Lease, NewIntent, RunCounts, RunStatus, Store,
};
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

/// An engine with `cfg` over the world's CRMs (and Salesforce, given its connector) whose
/// feeds re-read no overlap window: a run after a run that read everything reads nothing,
/// unless it lost its cursors.
fn engine_without_overlap(
    w: &World,
    cfg: Config,
    salesforce: Option<&crmkit_salesforce::SalesforceConnector>,
) -> Engine {
    let hs = HubSpotConnector::new(w.hs.clone())
        .with_marker_property_for(ObjectKind::Person, "crmkit_id")
        .with_overlap(Duration::ZERO);
    let mut connectors: Vec<Arc<dyn Connector>> = vec![
        Arc::new(w.close_conn.clone().with_overlap(Duration::ZERO)),
        Arc::new(hs),
    ];
    if let Some(sf) = salesforce {
        connectors.push(Arc::new(sf.clone().with_overlap(Duration::ZERO)));
    }
    Engine::new(cfg, w.store.clone(), connectors).expect("engine")
}

/// Runs `engine` again after a run that wrote: the other feeds read those writes back (as
/// echoes), so the run after this one reads nothing unless its cursors were lost.
async fn read_own_writes_back(w: &World, engine: &Engine) {
    w.settle().await;
    let report = engine.run().await.expect("run");
    assert_eq!(report.echoes, report.read, "only echoes: {report:?}");
    w.settle().await;
}

/// Moves every cursor of `from` to pair name `to` (as an older crmkit configured in that
/// order stored them); returns them as they were, keyed by CRM and kind.
async fn rename_cursors(w: &World, from: &str, to: &str) -> Vec<(Crm, ObjectKind, String)> {
    let mut out = Vec::new();
    for c in w.store.cursors(from).await.expect("store") {
        let key = CursorKey::new(to, c.key.crm, c.key.object);
        w.store.set_cursor(&key, &c.value).await.expect("store");
        w.store.delete_cursor(&c.key).await.expect("store");
        out.push((c.key.crm, c.key.object, c.value));
    }
    assert!(!out.is_empty(), "the earlier run stored cursors");
    out
}

/// Asserts `now` holds a cursor of each feed `then` held, and of no other (the values
/// record the time each feed was read up to, which moves with every run).
fn assert_same_feeds(now: &[(Crm, ObjectKind, String)], then: &[(Crm, ObjectKind, String)]) {
    let feeds = |c: &[(Crm, ObjectKind, String)]| -> Vec<(Crm, ObjectKind)> {
        c.iter().map(|(crm, kind, _)| (*crm, *kind)).collect()
    };
    assert_eq!(feeds(now), feeds(then), "{now:?} vs {then:?}");
}

/// Asserts `pair` took over the cursors `stored` under `old`: a cursor of each feed, and
/// `old` holds none any more.
async fn assert_cursors_moved(
    w: &World,
    old: &str,
    pair: &str,
    stored: &[(Crm, ObjectKind, String)],
) {
    assert_same_feeds(&cursor_values(w, pair).await, stored);
    assert!(
        cursor_values(w, old).await.is_empty(),
        "{old} keeps cursors"
    );
}

/// The cursors stored under `pair`, as [`rename_cursors`] returns them.
async fn cursor_values(w: &World, pair: &str) -> Vec<(Crm, ObjectKind, String)> {
    w.store
        .cursors(pair)
        .await
        .expect("store")
        .into_iter()
        .map(|c| (c.key.crm, c.key.object, c.value))
        .collect()
}

#[tokio::test]
async fn the_crms_in_either_order_share_one_lease_and_their_old_cursors() {
    let w = World::new().await;
    let engine = engine_without_overlap(&w, hubspot_first(), None);
    assert_eq!(engine.pair(), "close-hubspot");
    // An earlier run synced a lead; an older crmkit configured `[hubspot, close]` would have
    // stored its cursors under that order.
    w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    w.settle().await;
    assert_eq!(engine.run().await.expect("run").created, 1);
    read_own_writes_back(&w, &engine).await;
    let stored = rename_cursors(&w, "close-hubspot", "hubspot-close").await;
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
    // Taken over: nothing read again (from the start of the feeds the lead and the company
    // made for it would be), and the cursors are the stored ones.
    let report = engine.run().await.expect("run");
    assert_eq!(report.read, 0, "{report:?}");
    assert_eq!(report.created + report.updated, 0, "{report:?}");
    assert_cursors_moved(&w, "hubspot-close", "close-hubspot", &stored).await;
}

#[tokio::test]
async fn the_canonical_cursor_wins_over_an_older_names() {
    let w = World::new().await;
    let engine = engine_without_overlap(&w, hubspot_first(), None);
    w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    w.settle().await;
    engine.run().await.expect("run");
    read_own_writes_back(&w, &engine).await;
    let canonical = cursor_values(&w, "close-hubspot").await;
    // An older process's cursor of the config's order, from the start of the feed (Close's
    // `close1.{}`), left beside the canonical one: the canonical one is kept.
    let old = CursorKey::new("hubspot-close", Crm::Close, ObjectKind::Company);
    w.store.set_cursor(&old, "close1.{}").await.expect("store");
    let report = engine.run().await.expect("run");
    assert_eq!(report.read, 0, "nothing read again: {report:?}");
    assert_same_feeds(&cursor_values(&w, "close-hubspot").await, &canonical);
    assert_eq!(w.store.cursor(&old).await.expect("store"), None);
}

#[tokio::test]
async fn three_crms_take_over_the_cursors_of_an_order_other_than_the_configs() {
    let t = super::activities::Three::new().await;
    let w = &t.w;
    let mut cfg = Config::new(vec![Crm::Close, Crm::HubSpot, Crm::Salesforce]);
    cfg.deal.enabled = false;
    let engine = engine_without_overlap(w, cfg, Some(&t.sf_conn));
    assert_eq!(engine.pair(), "close-hubspot-salesforce");
    w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    w.settle().await;
    assert_eq!(engine.run().await.expect("run").created, 2);
    read_own_writes_back(w, &engine).await;
    // An older crmkit configured `[salesforce, close, hubspot]`: neither the sorted order
    // nor this config's.
    let stored = rename_cursors(w, "close-hubspot-salesforce", "salesforce-close-hubspot").await;
    let report = engine.run().await.expect("run");
    assert_eq!(report.read, 0, "nothing read again: {report:?}");
    assert_eq!(report.created + report.updated, 0, "{report:?}");
    assert_cursors_moved(
        w,
        "salesforce-close-hubspot",
        "close-hubspot-salesforce",
        &stored,
    )
    .await;
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

#[tokio::test]
async fn a_run_in_sorted_order_that_lost_the_other_orders_lease_stops_without_writing() {
    lost_lease(Db::Sqlite, config(), "sync:hubspot-close").await;
}

#[tokio::test]
async fn a_run_that_lost_a_crm_lease_stops_without_writing() {
    lost_lease(Db::Sqlite, config(), "sync-crm:hubspot").await;
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
    assert!(cursor_values(&w, "close-hubspot").await.is_empty());
    w.finish().await;
}

#[tokio::test]
async fn a_run_of_crms_out_of_order_holds_the_older_crmkits_lease_too() {
    let w = World::new().await;
    w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    let cfg = hubspot_first();
    // Every order of every set sharing a CRM: an older crmkit of any of them takes one.
    let every_set = [
        "sync:close-hubspot",
        "sync:close-hubspot-salesforce",
        "sync:close-salesforce",
        "sync:close-salesforce-hubspot",
        "sync:hubspot-close",
        "sync:hubspot-close-salesforce",
        "sync:hubspot-salesforce",
        "sync:hubspot-salesforce-close",
        "sync:salesforce-close",
        "sync:salesforce-close-hubspot",
        "sync:salesforce-hubspot",
        "sync:salesforce-hubspot-close",
    ];
    let pair: Vec<&str> = ["sync-crm:close", "sync-crm:hubspot"]
        .into_iter()
        .chain(every_set)
        .collect();
    assert_eq!(lease_names(&cfg.sync.crms), pair);
    assert_eq!(
        lease_names(&config().sync.crms),
        lease_names(&cfg.sync.crms),
        "whatever the config's order"
    );
    let three: Vec<&str> = ["sync-crm:close", "sync-crm:hubspot", "sync-crm:salesforce"]
        .into_iter()
        .chain(every_set)
        .collect();
    assert_eq!(
        lease_names(&[Crm::Salesforce, Crm::Close, Crm::HubSpot]),
        three,
        "each CRM, then every order of every set, sorted"
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
    let engine = engine_without_overlap(&w, config(), None);
    refused_by_older(&w, &engine).await;
    // Once the older process is done (killed mid-run: it left its cursors and a delete
    // unsettled under its name), the run goes on and takes both over. Its cursors are
    // those of a real earlier run, past a lead synced then.
    w.store.release_lease(&older).await.expect("store");
    w.settle().await;
    assert_eq!(engine.run().await.expect("run").created, 1);
    read_own_writes_back(&w, &engine).await;
    let stored = rename_cursors(&w, "close-hubspot", "hubspot-close").await;
    let older = w
        .hold_lease(
            "sync:hubspot-close",
            "crmkit-sync-older",
            Duration::from_secs(60),
        )
        .await;
    refused_by_older_after_a_run(&w, &engine).await;
    let lead = open_delete(&w, "hubspot-close", IntentState::Sent).await;
    w.store.release_lease(&older).await.expect("store");
    w.settle().await;
    let report = engine.run().await.expect("run");
    assert_eq!(report.created, 0, "{report:?}");
    assert_eq!(report.recovered, 1, "{report:?}");
    assert!(
        !w.close_has_lead(&lead).await,
        "the older run's delete was sent again"
    );
    assert!(w.unsettled_intents().await.is_empty());
    // Acme, read again from the start of the feeds, would be an echo.
    assert_eq!(report.echoes, 0, "{report:?}");
    assert_cursors_moved(&w, "hubspot-close", "close-hubspot", &stored).await;
}

/// Runs `engine` while an older crmkit holds `sync:hubspot-close`, after a first run synced
/// Acme: refused, naming that lease, and nothing more is created.
async fn refused_by_older_after_a_run(w: &World, engine: &Engine) {
    let e = engine
        .run()
        .await
        .expect_err("the older process holds the pair");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("\"sync:hubspot-close\""), "{e}");
    assert_eq!(w.hs_all("companies", "name").await.len(), 1, "nothing more");
}

/// A delete an interrupted run of `pair` left open, in state `state` (pending or sent), of a
/// Close lead made for it ("Gone Inc"): the lead's id.
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

#[tokio::test]
async fn runs_over_different_sets_sharing_a_crm_never_overlap() {
    let t = super::activities::Three::new().await;
    let w = &t.w;
    w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    w.settle().await;
    slow_hubspot(w, 150);
    let pair = w.engine(config());
    let three = t.engine_with(|c| c.activity.enabled = false);
    // The three-way run starts once the pair's run holds its leases.
    let second = async {
        for _ in 0..2_000 {
            if w.store
                .lease("sync-crm:close")
                .await
                .expect("store")
                .is_some()
            {
                return three.run().await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the pair's run never took its leases");
    };
    let (first, second) = tokio::join!(pair.run(), second);
    assert_eq!(first.expect("the pair runs").created, 1);
    let e = second.expect_err("refused while the pair runs");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("\"sync-crm:close\""), "{e}");
    assert_eq!(w.hs_all("companies", "name").await.len(), 1, "created once");
}

#[tokio::test]
async fn one_store_serves_one_set_of_crms_which_may_grow() {
    let t = super::activities::Three::new().await;
    let w = &t.w;
    w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    w.settle().await;
    let pair = w.engine(config());
    assert_eq!(pair.run().await.expect("run").created, 1);
    // Growing the pair into a three-way sync is allowed.
    let three = t.engine_with(|c| c.activity.enabled = false);
    w.settle().await;
    assert_eq!(three.run().await.expect("grown").created, 1);
    // Shrinking it back is refused, a dry run too, naming both sets; nothing is written.
    w.close_lead(json!({"name": "Initech", "url": "https://initech.com"}))
        .await;
    w.settle().await;
    for e in [
        pair.run().await.expect_err("shrunk"),
        pair.dry_run().await.expect_err("shrunk"),
    ] {
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        let text = e.to_string();
        for part in [
            "close-hubspot-salesforce",
            "close-hubspot",
            "one store serves one set of CRMs",
            "another database",
        ] {
            assert!(text.contains(part), "{part:?} in {text}");
        }
        assert!(
            !text.contains("  "),
            "one sentence, one space apart: {text}"
        );
    }
    assert_eq!(
        w.hs_all("companies", "name").await.len(),
        1,
        "nothing synced"
    );
    for name in lease_names(&config().sync.crms) {
        assert_eq!(w.store.lease(&name).await.expect("store"), None, "{name}");
    }
}

#[tokio::test]
async fn a_pair_sharing_a_crm_with_the_stores_pair_is_refused() {
    let w = World::new().await;
    // A Close-Salesforce sync ran on this store (as an older crmkit named it) and created a
    // record.
    let run = w.store.start_run("salesforce-close").await.expect("store");
    let mut counts = RunCounts::default();
    counts.created = 1;
    w.store
        .finish_run(&run.id, RunStatus::Succeeded, &counts, &[])
        .await
        .expect("store");
    w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    w.settle().await;
    let e = w
        .engine(config())
        .run()
        .await
        .expect_err("another pair sharing Close");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    for part in [
        "close-salesforce",
        "\"salesforce-close\": 1 runs that wrote to a CRM",
        "created again",
    ] {
        assert!(e.to_string().contains(part), "{part:?} in {e}");
    }
    assert!(w.hs_all("companies", "name").await.is_empty());
    assert_eq!(
        w.store.runs("close-hubspot", 10).await.expect("store"),
        [],
        "no run started"
    );
}

#[tokio::test]
async fn a_failed_run_of_another_set_that_wrote_nothing_does_not_lock_the_store() {
    let w = World::new().await;
    // A first three-way sync failed at once (bad Salesforce credentials), writing nothing,
    // and a Close-Salesforce one was killed before it read anything.
    let run = w
        .store
        .start_run("close-hubspot-salesforce")
        .await
        .expect("store");
    w.store
        .finish_run(&run.id, RunStatus::Failed, &RunCounts::default(), &[])
        .await
        .expect("store");
    w.store.start_run("close-salesforce").await.expect("store");
    w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    w.settle().await;
    let report = w.engine(config()).run().await.expect("back to the pair");
    assert_eq!(report.created, 1, "{report:?}");
}

#[tokio::test]
async fn links_of_another_set_tie_the_store_even_when_their_run_wrote_nothing() {
    let w = World::new().await;
    // A three-way run linked a Close lead and a Salesforce account by their domain, then
    // failed before any write or cursor: the link holds both sides' bases.
    w.store
        .insert_link(
            &crmkit_store::NewLink::new(ObjectKind::Company)
                .crm_id(Crm::Close, "lead_matched")
                .crm_id(Crm::Salesforce, "001000000000001AAA"),
        )
        .await
        .expect("store");
    w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    w.settle().await;
    let e = w
        .engine(config())
        .run()
        .await
        .expect_err("a pair sharing Close with the linked set");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(
        e.to_string().contains("\"close-salesforce\": 1 links"),
        "{e}"
    );
    assert!(w.hs_all("companies", "name").await.is_empty());
}

#[tokio::test]
async fn a_run_is_refused_while_an_older_crmkit_syncs_another_set_sharing_a_crm() {
    let w = World::new().await;
    w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    w.settle().await;
    // An older crmkit (no `sync-crm:*` leases) syncing `[salesforce, close]` during the
    // upgrade of this one.
    let older = w
        .hold_lease(
            "sync:salesforce-close",
            "crmkit-sync-older",
            Duration::from_secs(60),
        )
        .await;
    let engine = w.engine(config());
    let e = engine
        .run()
        .await
        .expect_err("the older process holds Close");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("\"sync:salesforce-close\""), "{e}");
    assert!(w.hs_all("companies", "name").await.is_empty());
    for name in ["sync-crm:close", "sync:close-hubspot"] {
        assert_eq!(w.store.lease(name).await.expect("store"), None, "{name}");
    }
    w.store.release_lease(&older).await.expect("store");
    assert_eq!(engine.run().await.expect("run").created, 1);
}
