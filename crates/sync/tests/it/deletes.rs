//! Delete policies.

use crmkit_core::http::{ApiRequest, Method};
use crmkit_core::{Crm, ErrorKind, ObjectKind, RecordRef};
use crmkit_sync::config::DeletePolicy;

use super::{World, config, linked_acme};

async fn delete_close_lead(w: &World, id: &str) {
    w.close
        .raw(&ApiRequest::new(Method::DELETE, format!("lead/{id}/")))
        .await
        .expect("deleted");
    w.settle().await;
}

async fn hs_exists(w: &World, id: &str) -> bool {
    match w
        .hs
        .raw(&ApiRequest::get(format!("crm/v3/objects/companies/{id}")))
        .await
    {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => panic!("reading the company: {e}"),
    }
}

#[tokio::test]
async fn propagate_deletes_the_linked_records() {
    let w = World::new().await;
    let mut c = config();
    c.company.delete = DeletePolicy::Propagate;
    let engine = w.engine(c);
    let (close, hs) = linked_acme(&w, &engine).await;
    delete_close_lead(&w, &close).await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(r.deleted, 1, "{r:?}");
    assert!(!hs_exists(&w, &hs).await, "archived in HubSpot");
    let link = w
        .store
        .link_by_record(&RecordRef::new(Crm::HubSpot, ObjectKind::Company, hs))
        .await
        .expect("store");
    assert!(link.is_none(), "the link is gone");
}

#[tokio::test]
async fn ignore_and_flag_leave_the_other_records_alone() {
    for policy in [DeletePolicy::Ignore, DeletePolicy::Flag] {
        let w = World::new().await;
        let mut c = config();
        c.company.delete = policy;
        let engine = w.engine(c);
        let (close, hs) = linked_acme(&w, &engine).await;
        delete_close_lead(&w, &close).await;
        w.reset_stats();
        let r = engine.run().await.expect("run");
        assert!(r.errors.is_empty(), "{r:?}");
        assert!(!r.wrote(), "{policy:?}: {r:?}");
        assert_eq!(w.writes(), Vec::<String>::new(), "{policy:?}");
        assert!(hs_exists(&w, &hs).await, "{policy:?}");
        // The tombstone is read again (the feed's overlap window): not reported twice.
        w.settle().await;
        let again = engine.run().await.expect("run");
        assert!(
            again.flagged.is_empty() && again.deletes_ignored == 0,
            "{again:?}"
        );
        let reviews = w.store.open_reviews(10).await.expect("store");
        match policy {
            DeletePolicy::Flag => {
                assert_eq!(r.flagged.len(), 1);
                assert_eq!(reviews.len(), 1, "queued for review");
            }
            _ => {
                assert_eq!(r.deletes_ignored, 1);
                assert!(reviews.is_empty());
            }
        }
    }
}

/// A Close lead with contact Bob, synced to HubSpot by a first run of `engine`: the Close
/// contact id and the HubSpot contact id.
async fn linked_bob(w: &World, engine: &crmkit_sync::Engine) -> (String, String) {
    let lead = w
        .close_lead(
            serde_json::json!({"name": "Acme", "url": "https://acme.com",
            "contacts": [{"name": "Bob Stone", "emails": [{"email": "bob@acme.com"}]}]}),
        )
        .await;
    let contact = w.close_get(&format!("lead/{lead}/")).await["contacts"][0]["id"]
        .as_str()
        .expect("contact id")
        .to_string();
    w.settle().await;
    let first = engine.run().await.expect("first run");
    assert!(first.errors.is_empty(), "{first:?}");
    let link = w
        .store
        .link_by_record(&RecordRef::new(
            Crm::Close,
            ObjectKind::Person,
            contact.clone(),
        ))
        .await
        .expect("store")
        .expect("linked");
    let hs = link.crm_id(Crm::HubSpot).expect("in HubSpot").to_string();
    (contact, hs)
}

async fn close_contact_exists(w: &World, id: &str) -> bool {
    match w
        .close
        .raw(&ApiRequest::get(format!("contact/{id}/")))
        .await
    {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => panic!("reading the contact: {e}"),
    }
}

#[tokio::test]
async fn a_record_not_found_without_a_tombstone_is_flagged_not_propagated() {
    let w = World::new().await;
    let mut c = config();
    c.person.delete = DeletePolicy::Propagate;
    let engine = w.engine(c);
    let (contact, hs) = linked_bob(&w, &engine).await;
    // Gone from HubSpot with no tombstone (a GDPR delete is in no archived listing; a merge
    // or lost permission looks the same), while Bob changes in Close.
    w.hs.raw(&ApiRequest::post(
        "crm/v3/objects/contacts/gdpr-delete",
        serde_json::json!({"objectId": hs}),
    ))
    .await
    .expect("gdpr delete");
    w.close_update(
        &format!("contact/{contact}/"),
        serde_json::json!({"title": "CTO"}),
    )
    .await;
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert_eq!(r.deleted, 0, "{r:?}");
    assert!(
        close_contact_exists(&w, &contact).await,
        "not deleted in Close"
    );
    assert_eq!(
        r.flagged,
        vec![RecordRef::new(Crm::HubSpot, ObjectKind::Person, hs)],
        "{r:?}"
    );
    assert_eq!(w.store.open_reviews(10).await.expect("store").len(), 1);
}

#[tokio::test]
async fn a_merge_moves_the_link_to_the_winner_and_deletes_nothing() {
    let w = World::new().await;
    let mut c = config();
    c.person.delete = DeletePolicy::Propagate;
    let engine = w.engine(c);
    let (contact, loser) = linked_bob(&w, &engine).await;
    // Bob's HubSpot contact is merged into another, not linked yet.
    let winner = w
        .hs_create(
            "contacts",
            serde_json::json!({"email": "robert@acme.com", "firstname": "Robert", "lastname": "Stone"}),
        )
        .await;
    w.hs.raw(&ApiRequest::post(
        "crm/v3/objects/contacts/merge",
        serde_json::json!({"primaryObjectId": winner, "objectIdToMerge": loser}),
    ))
    .await
    .expect("merged");
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert_eq!(r.deleted, 0, "{r:?}");
    assert_eq!(r.relinked, 1, "{r:?}");
    assert!(
        close_contact_exists(&w, &contact).await,
        "not deleted in Close"
    );
    let link = w
        .store
        .link_by_record(&RecordRef::new(Crm::HubSpot, ObjectKind::Person, winner))
        .await
        .expect("store")
        .expect("the winner is linked");
    assert_eq!(link.crm_id(Crm::Close), Some(contact.as_str()));
    let people = w.close_get("contact/?_limit=100").await;
    assert_eq!(
        people["data"].as_array().map(Vec::len),
        Some(1),
        "no second Close contact for the winner: {people}"
    );
}
