//! The per-record retry list: a record that cannot be synced goes on it and the kind's
//! cursors move on; it is read again when due and leaves the list once it syncs. A record
//! the CRM refuses is given up (still listed and reported) after the configured attempts;
//! one waiting for its parent to be linked is never given up.

use std::sync::Arc;

use crmkit_core::{Connector, Crm, ObjectKind, RecordRef};
use crmkit_hubspot::HubSpotConnector;
use crmkit_store::{CursorKey, NewLink};
use crmkit_sync::engine::Engine;
use serde_json::json;

use super::{Db, World, config};

/// The world's connectors, with a HubSpot feed that re-reads no overlap window, so a record
/// is delivered once and only the retry list can bring it back.
fn without_overlap(w: &World) -> Vec<Arc<dyn Connector>> {
    let hs = HubSpotConnector::new(w.hs.clone())
        .with_marker_property_for(ObjectKind::Person, "crmkit_id")
        .with_overlap(std::time::Duration::ZERO);
    vec![w.connectors[0].clone(), Arc::new(hs)]
}

#[tokio::test]
async fn a_contact_waiting_for_its_company_is_retried_never_given_up_until_it_syncs() {
    let w = World::new().await;
    let mut c = config();
    // Companies are not synced by this engine: the contact's company gets linked by hand.
    c.company.enabled = false;
    c.sync.retry.first_delay_seconds = 0;
    c.sync.retry.max_attempts = 2;
    let engine = Engine::new(c, w.store.clone(), without_overlap(&w)).expect("engine");
    let company = w
        .hs_create("companies", json!({"name": "Acme", "domain": "acme.com"}))
        .await;
    let contact = w
        .hs_create_linked(
            "contacts",
            json!({"email": "bob@acme.com", "firstname": "Bob", "lastname": "Stone"}),
            Some(&company),
        )
        .await;
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
    let engine = Engine::new(c, w.store.clone(), without_overlap(&w)).expect("engine");
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
