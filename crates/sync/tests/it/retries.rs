//! The per-record retry list: a record that cannot be synced goes on it and the kind's
//! cursors move on; it is read again when due and leaves the list once it syncs. A record
//! the CRM refuses is given up (still listed and reported) after the configured attempts;
//! one waiting for its parent to be linked is never given up.

use std::sync::Arc;

use crmkit_core::{Connector, Crm, ObjectKind, RecordRef};
use crmkit_hubspot::HubSpotConnector;
use crmkit_store::{CursorKey, NewLink};
use crmkit_sync::config::Config;
use crmkit_sync::engine::Engine;
use serde_json::json;

use super::{Db, World, config};

/// An engine with config `c` over the world's connectors, with a HubSpot feed that re-reads
/// no overlap window, so a record is delivered once and only the retry list can bring it
/// back.
fn engine_without_overlap(w: &World, c: Config) -> Engine {
    let hs = HubSpotConnector::new(w.hs.clone())
        .with_marker_property_for(ObjectKind::Person, "crmkit_id")
        .with_overlap(std::time::Duration::ZERO);
    let connectors: Vec<Arc<dyn Connector>> = vec![w.connectors[0].clone(), Arc::new(hs)];
    Engine::new(c, w.store.clone(), connectors).expect("engine")
}

/// HubSpot company Acme (acme.com), made outside the sync: its id.
async fn hs_acme(w: &World) -> String {
    w.hs_create("companies", json!({"name": "Acme", "domain": "acme.com"}))
        .await
}

/// HubSpot contact Bob under company `company`, made outside the sync: his id.
async fn hs_bob(w: &World, company: &str) -> String {
    w.hs_create_linked(
        "contacts",
        json!({"email": "bob@acme.com", "firstname": "Bob", "lastname": "Stone"}),
        Some(company),
    )
    .await
}

/// HubSpot contact Bob under company `company`, with a phone Close refuses ("Enter a valid
/// phone number."): the record.
async fn refused_bob(w: &World, company: &str) -> RecordRef {
    let bob = w
        .hs_create_linked(
            "contacts",
            json!({"email": "bob@acme.com", "firstname": "Bob", "lastname": "Stone", "phone": "call me maybe"}),
            Some(company),
        )
        .await;
    RecordRef::new(Crm::HubSpot, ObjectKind::Person, bob)
}

#[tokio::test]
async fn a_contact_waiting_for_its_company_is_retried_never_given_up_until_it_syncs() {
    let w = World::new().await;
    let mut c = config();
    // Companies are not synced by this engine: the contact's company gets linked by hand.
    c.company.enabled = false;
    c.sync.retry.first_delay_seconds = 0;
    c.sync.retry.max_attempts = 2;
    let engine = engine_without_overlap(&w, c);
    let company = hs_acme(&w).await;
    let contact = hs_bob(&w, &company).await;
    let bob = RecordRef::new(Crm::HubSpot, ObjectKind::Person, contact.clone());
    w.settle().await;

    // Its company is not linked to a Close lead: not created, listed, and the HubSpot
    // people cursor moves on anyway.
    let first = engine.run().await.expect("run");
    assert_eq!(first.created, 0, "{first:?}");
    assert!(!first.errors.is_empty(), "{first:?}");
    let listed = w.store.retries(engine.pair(), None).await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].record, bob);
    assert_eq!(listed[0].attempts, 1);
    let key = CursorKey::new(engine.pair(), Crm::HubSpot, ObjectKind::Person);
    assert!(w.store.cursor(&key).await.expect("cursor").is_some());

    // Unchanged, it is read again from the list (the feed does not bring it) and waits
    // again: past `max_attempts` it is still retrying, never given up, as nothing in it is
    // wrong.
    for _ in 0..3 {
        w.settle().await;
        let again = engine.run().await.expect("run");
        assert_eq!(again.retried, 1, "{again:?}");
        assert!(again.given_up.is_empty(), "{again:?}");
        assert_eq!(again.retrying, 1, "{again:?}");
    }
    let listed = w.store.retries(engine.pair(), None).await.expect("list");
    assert!(!listed[0].given_up(), "{listed:?}");

    // Its company gets linked: read again from the list, unchanged, it syncs and leaves
    // the list.
    let lead = w.close_lead(json!({"name": "Acme"})).await;
    w.store
        .upsert_link(
            &NewLink::new(ObjectKind::Company)
                .crm_id(Crm::Close, lead.clone())
                .crm_id(Crm::HubSpot, company.clone()),
        )
        .await
        .expect("link");
    w.settle().await;
    let last = engine.run().await.expect("run");
    assert!(last.errors.is_empty(), "{last:?}");
    assert_eq!(last.created, 1, "{last:?}");
    assert!(last.given_up.is_empty(), "{last:?}");
    assert!(
        w.store
            .retries(engine.pair(), None)
            .await
            .expect("list")
            .is_empty()
    );
    let contacts = w.close_get(&format!("contact/?lead_id={lead}")).await;
    assert_eq!(
        contacts["data"].as_array().map(Vec::len),
        Some(1),
        "{contacts}"
    );
}

#[tokio::test]
async fn a_record_deferred_for_its_parent_syncs_once_the_parent_is_linked_unchanged() {
    deferred_then_linked(Db::Sqlite).await;
}

#[tokio::test]
async fn a_record_deferred_for_its_parent_syncs_once_the_parent_is_linked_on_postgres() {
    deferred_then_linked(Db::Postgres).await;
}

async fn deferred_then_linked(db: Db) {
    let w = World::on(db).await;
    let mut c = config();
    c.company.enabled = false;
    c.sync.retry.first_delay_seconds = 0;
    let engine = engine_without_overlap(&w, c);
    let company = w
        .hs_create(
            "companies",
            json!({"name": "Initech", "domain": "initech.com"}),
        )
        .await;
    w.hs_create_linked(
        "contacts",
        json!({"email": "peter@initech.com", "firstname": "Peter", "lastname": "Gibbons"}),
        Some(&company),
    )
    .await;
    w.settle().await;
    let first = engine.run().await.expect("run");
    assert_eq!(first.created, 0, "{first:?}");
    // The parent is linked (say, a review decided); the contact did not change since.
    let lead = w.close_lead(json!({"name": "Initech"})).await;
    w.store
        .upsert_link(
            &NewLink::new(ObjectKind::Company)
                .crm_id(Crm::Close, lead.clone())
                .crm_id(Crm::HubSpot, company),
        )
        .await
        .expect("link");
    w.settle().await;
    let second = engine.run().await.expect("run");
    assert!(second.errors.is_empty(), "{second:?}");
    assert_eq!(second.created, 1, "created from the retry list: {second:?}");
    let contacts = w.close_get(&format!("contact/?lead_id={lead}")).await;
    assert_eq!(
        contacts["data"].as_array().map(Vec::len),
        Some(1),
        "{contacts}"
    );
    w.finish().await;
}

/// Moves every cursor and retry entry of `from` to pair name `to`, as an older crmkit
/// configured in another order would have stored them.
async fn rename_state(w: &World, from: &str, to: &str) {
    for c in w.store.cursors(from).await.expect("store") {
        let key = CursorKey::new(to, c.key.crm, c.key.object);
        w.store.set_cursor(&key, &c.value).await.expect("store");
        w.store.delete_cursor(&c.key).await.expect("store");
    }
    for r in w.store.retries(from, None).await.expect("store") {
        let mut moved = r.clone();
        moved.pair = to.into();
        w.store.put_retry(&moved).await.expect("store");
        w.store.clear_retry(from, &r.record).await.expect("store");
    }
}

#[tokio::test]
async fn a_record_an_older_crmkit_deferred_under_another_order_is_retried() {
    let w = World::new().await;
    let mut c = config();
    c.company.enabled = false;
    c.sync.retry.first_delay_seconds = 0;
    let engine = engine_without_overlap(&w, c);
    let company = hs_acme(&w).await;
    let contact = hs_bob(&w, &company).await;
    w.settle().await;
    let first = engine.run().await.expect("run");
    assert_eq!(first.created, 0, "{first:?}");
    // As an older crmkit configured `[hubspot, close]` left it: the contact waiting for its
    // company on the retry list, and the cursor past it, under its name.
    rename_state(&w, "close-hubspot", "hubspot-close").await;
    let old = w.store.retries("hubspot-close", None).await.expect("list");
    assert_eq!(old.len(), 1, "{old:?}");
    assert_eq!(
        old[0].record,
        RecordRef::new(Crm::HubSpot, ObjectKind::Person, contact)
    );

    let lead = w.close_lead(json!({"name": "Acme"})).await;
    w.store
        .upsert_link(
            &NewLink::new(ObjectKind::Company)
                .crm_id(Crm::Close, lead.clone())
                .crm_id(Crm::HubSpot, company),
        )
        .await
        .expect("link");
    w.settle().await;
    let second = engine.run().await.expect("run");
    assert!(second.errors.is_empty(), "{second:?}");
    assert_eq!(
        second.created, 1,
        "created from the moved entry: {second:?}"
    );
    for pair in ["hubspot-close", "close-hubspot"] {
        assert!(
            w.store.retries(pair, None).await.expect("list").is_empty(),
            "{pair}"
        );
    }
    let contacts = w.close_get(&format!("contact/?lead_id={lead}")).await;
    assert_eq!(
        contacts["data"].as_array().map(Vec::len),
        Some(1),
        "{contacts}"
    );
}

#[tokio::test]
async fn of_two_names_listing_a_record_the_entry_still_retried_is_kept() {
    let w = World::new().await;
    let rec = RecordRef::new(Crm::HubSpot, ObjectKind::Person, "404");
    let policy = crmkit_store::RetryPolicy {
        first_delay: std::time::Duration::from_secs(3600),
        max_delay: std::time::Duration::from_secs(3600),
        max_attempts: 2,
    };
    // Given up under the canonical name, waiting (not due before the run ends) under the
    // older name: the waiting one is kept, as it is.
    for _ in 0..2 {
        w.store
            .record_retry("close-hubspot", &rec, "refused", &policy)
            .await
            .expect("store");
    }
    let waiting = w
        .store
        .record_retry("hubspot-close", &rec, "no company yet", &policy)
        .await
        .expect("store");
    // Another record only the older name lists, given up: moved as it is.
    let other = RecordRef::new(Crm::Close, ObjectKind::Company, "lead_gone");
    let mut given_up = None;
    for _ in 0..2 {
        given_up = Some(
            w.store
                .record_retry("hubspot-close", &other, "refused", &policy)
                .await
                .expect("store"),
        );
    }
    w.engine(config()).run().await.expect("run");
    let mut expected = waiting.clone();
    expected.pair = "close-hubspot".into();
    assert_eq!(
        w.store.retry("close-hubspot", &rec).await.expect("store"),
        Some(expected)
    );
    let mut expected = given_up.expect("recorded");
    expected.pair = "close-hubspot".into();
    assert_eq!(
        w.store.retry("close-hubspot", &other).await.expect("store"),
        Some(expected)
    );
    assert!(
        w.store
            .retries("hubspot-close", None)
            .await
            .expect("list")
            .is_empty()
    );
}

/// A record the CRM refuses on every attempt: a HubSpot contact whose phone Close rejects
/// ("Enter a valid phone number."; Close keeps phones in E.164). It goes on the retry list
/// while the cursor moves past it, is tried again when due, each wait twice the last
/// (`[sync.retry]`), and after `max_attempts` it is given up and reported by id and reason.
/// Its colleague of the same run syncs as usual.
#[tokio::test]
async fn a_record_the_crm_refuses_every_time_backs_off_and_is_given_up() {
    let w = World::new().await;
    let mut c = config();
    c.sync.retry.first_delay_seconds = 1;
    c.sync.retry.max_delay_seconds = 3600;
    c.sync.retry.max_attempts = 3;
    let engine = engine_without_overlap(&w, c);
    let company = hs_acme(&w).await;
    let ann = w
        .hs_create_linked(
            "contacts",
            json!({"email": "ann@acme.com", "firstname": "Ann", "lastname": "Lee", "phone": "+14155550100"}),
            Some(&company),
        )
        .await;
    let bob = refused_bob(&w, &company).await;
    w.settle().await;

    let first = engine.run().await.expect("run");
    assert_eq!(first.created, 2, "Acme and Ann: {first:?}");
    assert_eq!(first.errors.len(), 1, "{:?}", first.errors);
    assert!(
        first.errors[0].contains(&bob.id) && first.errors[0].contains("valid phone number"),
        "{:?}",
        first.errors
    );
    let ann_link = w
        .store
        .link_by_record(&RecordRef::new(Crm::HubSpot, ObjectKind::Person, ann))
        .await
        .expect("store")
        .expect("Ann is linked");
    let ann_close = ann_link.crm_id(Crm::Close).expect("Ann is in Close");
    assert_eq!(
        w.close_get(&format!("contact/{ann_close}/")).await["name"],
        json!("Ann Lee")
    );
    let key = CursorKey::new(engine.pair(), Crm::HubSpot, ObjectKind::Person);
    assert!(
        w.store.cursor(&key).await.expect("cursor").is_some(),
        "the cursor moves past Bob"
    );

    // Each failure counts an attempt and doubles the wait: 1 s, then 2 s.
    for (attempts, wait) in [(1, 1), (2, 2)] {
        let listed = w.store.retries(engine.pair(), None).await.expect("list");
        assert_eq!(listed.len(), 1, "{listed:?}");
        let entry = &listed[0];
        assert_eq!((&entry.record, entry.attempts), (&bob, attempts));
        assert!(entry.reason.contains("valid phone number"), "{entry:?}");
        let due = entry.next_attempt_at.expect("due again, not given up");
        assert_eq!(
            (due - entry.last_failed_at).num_seconds(),
            wait,
            "{entry:?}"
        );
        // Read again from the list once due (the feed, past it, does not bring it back).
        let until_due = (due - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(until_due + std::time::Duration::from_millis(50)).await;
        let again = engine.run().await.expect("run");
        assert_eq!(again.retried, 1, "{again:?}");
        assert_eq!(again.created, 0, "{again:?}");
        assert_eq!(again.errors.len(), 1, "{:?}", again.errors);
    }

    // The third failure was the last: given up, reported by id and reason, kept listed.
    let listed = w.store.retries(engine.pair(), None).await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].given_up(), "{listed:?}");
    assert_eq!(listed[0].attempts, 3);
    for _ in 0..2 {
        w.settle().await;
        let later = engine.run().await.expect("run");
        assert_eq!(later.retried, 0, "not tried again: {later:?}");
        assert!(later.errors.is_empty(), "{:?}", later.errors);
        assert_eq!(later.given_up.len(), 1, "{later:?}");
        let g = &later.given_up[0];
        assert_eq!((&g.record, g.attempts), (&bob, 3));
        assert!(g.reason.contains("valid phone number"), "{g:?}");
    }
    let contacts = w.close_get("contact/?_limit=100").await;
    assert_eq!(
        contacts["data"].as_array().map(Vec::len),
        Some(1),
        "only Ann: {contacts}"
    );
}

/// Back-off holds: a refused record is not tried again before it is due, however many runs
/// come in between (an hour away here, by `first_delay_seconds`).
#[tokio::test]
async fn a_refused_record_is_not_tried_again_before_it_is_due() {
    let w = World::new().await;
    let mut c = config();
    c.sync.retry.first_delay_seconds = 3600;
    let engine = engine_without_overlap(&w, c);
    let company = hs_acme(&w).await;
    let bob = refused_bob(&w, &company).await;
    w.settle().await;
    let first = engine.run().await.expect("run");
    assert_eq!(first.errors.len(), 1, "{:?}", first.errors);
    let listed = w.store.retries(engine.pair(), None).await.expect("list");
    assert_eq!((&listed[0].record, listed[0].attempts), (&bob, 1));
    let due = listed[0].next_attempt_at.expect("due again");
    assert_eq!((due - listed[0].last_failed_at).num_seconds(), 3600);

    for _ in 0..2 {
        w.settle().await;
        let run = engine.run().await.expect("run");
        assert_eq!(run.retried, 0, "not due: {run:?}");
        assert!(run.errors.is_empty(), "{:?}", run.errors);
        assert_eq!(run.retrying, 1, "{run:?}");
    }
    let listed = w.store.retries(engine.pair(), None).await.expect("list");
    assert_eq!(listed[0].attempts, 1, "{listed:?}");
    assert_eq!(listed[0].next_attempt_at, Some(due));
}
