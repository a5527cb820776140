//! Delete policies.

use crmkit_core::http::{ApiRequest, Method};
use crmkit_core::{Crm, ErrorKind, ObjectKind, Record, RecordRef};
use crmkit_sync::config::DeletePolicy;

use super::activities::Three;
use super::{Db, World, config, linked_acme, linked_bob, linked_contact};

async fn delete_close_lead(w: &World, id: &str) {
    w.close
        .raw(&ApiRequest::new(Method::DELETE, format!("lead/{id}/")))
        .await
        .expect("deleted");
    w.settle().await;
}

/// Whether HubSpot `object` (`companies`, `contacts`) `id` can be read (not archived).
async fn hs_object_exists(w: &World, object: &str, id: &str) -> bool {
    match w
        .hs
        .raw(&ApiRequest::get(format!("crm/v3/objects/{object}/{id}")))
        .await
    {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => panic!("reading {object} {id}: {e}"),
    }
}

async fn hs_exists(w: &World, id: &str) -> bool {
    hs_object_exists(w, "companies", id).await
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
    merge_hs_contacts(&w, &winner, &loser).await;
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

/// Merges HubSpot `object` (`contacts`, `companies`) `loser` into `winner`
/// (`POST /crm/v3/objects/<object>/merge`).
async fn merge_hs(w: &World, object: &str, winner: &str, loser: &str) {
    w.hs.raw(&ApiRequest::post(
        format!("crm/v3/objects/{object}/merge"),
        serde_json::json!({"primaryObjectId": winner, "objectIdToMerge": loser}),
    ))
    .await
    .expect("merged");
}

async fn merge_hs_contacts(w: &World, winner: &str, loser: &str) {
    merge_hs(w, "contacts", winner, loser).await;
}

async fn merge_hs_companies(w: &World, winner: &str, loser: &str) {
    merge_hs(w, "companies", winner, loser).await;
}

/// Removes HubSpot contact `contact`'s association with company `company` (associations
/// v4 batch archive).
async fn unassociate_hs_contact(w: &World, contact: &str, company: &str) {
    w.hs.raw(&ApiRequest::post(
        "crm/v4/associations/contacts/companies/batch/archive",
        serde_json::json!({"inputs": [{"from": {"id": contact}, "to": [{"id": company}]}]}),
    ))
    .await
    .expect("association removed");
}

/// HubSpot contact `id` as the connector reads it.
async fn hs_person(w: &World, id: &str) -> crmkit_core::Person {
    match w.connectors[1].get(ObjectKind::Person, id).await {
        Ok(Record::Person(p)) => p,
        other => panic!("HubSpot contact {id}: {other:?}"),
    }
}

/// A Close lead Globex (globex.com), not synced yet.
async fn globex(w: &World) -> String {
    w.close_lead(serde_json::json!({"name": "Globex", "url": "https://globex.com"}))
        .await
}

/// Merges Close lead `source` into `destination` (`POST /lead/merge/`).
async fn merge_close_leads(w: &World, source: &str, destination: &str) {
    w.close
        .raw(&ApiRequest::post(
            "lead/merge/",
            serde_json::json!({"source": source, "destination": destination}),
        ))
        .await
        .expect("merged");
}

/// The Close lead Close contact `contact` is under.
async fn close_lead_of(w: &World, contact: &str) -> String {
    w.close_get(&format!("contact/{contact}/")).await["lead_id"]
        .as_str()
        .expect("lead id")
        .to_string()
}

/// The HubSpot company linked to Close lead `lead`, if it is linked.
async fn hs_company_of(w: &World, lead: &str) -> Option<String> {
    close_company_link(w, lead)
        .await
        .and_then(|l| l.crm_id(Crm::HubSpot).map(str::to_string))
}

/// The link holding Close company `id`.
async fn close_company_link(w: &World, id: &str) -> Option<crmkit_store::Link> {
    w.store
        .link_by_record(&RecordRef::new(Crm::Close, ObjectKind::Company, id))
        .await
        .expect("store")
}

#[tokio::test]
async fn a_close_merge_under_propagate_deletes_neither_the_company_nor_its_moved_contacts() {
    // Close logs the merged-away lead's own `deleted` event (with merge `meta`, its contacts
    // in `previous_data`) beside the `merged` one: neither may become a deletion.
    let w = World::new().await;
    let mut c = config();
    c.company.delete = DeletePolicy::Propagate;
    c.person.delete = DeletePolicy::Propagate;
    let engine = w.engine(c);
    let (contact, hs_contact) = linked_bob(&w, &engine).await;
    let lead = close_lead_of(&w, &contact).await;
    let hs_company = hs_company_of(&w, &lead).await.expect("Acme is linked");
    let other = w.close_lead(serde_json::json!({"name": "Acme Two"})).await;
    merge_close_leads(&w, &lead, &other).await;
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(r.deleted, 0, "{r:?}");
    assert!(
        hs_exists(&w, &hs_company).await,
        "the HubSpot company stays"
    );
    w.hs.raw(&ApiRequest::get(format!(
        "crm/v3/objects/contacts/{hs_contact}"
    )))
    .await
    .expect("the HubSpot contact stays");
    let link = w
        .store
        .link_by_record(&RecordRef::new(Crm::Close, ObjectKind::Person, contact))
        .await
        .expect("store")
        .expect("Bob keeps his link");
    assert_eq!(link.crm_id(Crm::HubSpot), Some(hs_contact.as_str()));
    let moved = close_company_link(&w, &other)
        .await
        .expect("the winner is linked");
    assert_eq!(moved.crm_id(Crm::HubSpot), Some(hs_company.as_str()));
}

/// A contact moved by a company merge is not taken for an edit of its company: HubSpot
/// moves Bob to Globex, then Close merges Bob's lead into another (Bob moves with the
/// merge) and his Close record is edited later. The only move anyone made is HubSpot's, and
/// it reaches Close although Close's record is the newer (`last_write_wins`); the run after
/// writes nothing. Whether the link follows the merge (the winner is not linked yet) or the
/// merge goes to review (the winner is linked to other records, so its link still names the
/// merged-away lead), the merge is noted and read as such.
#[tokio::test]
async fn a_contact_moved_by_a_followed_merge_does_not_undo_a_move_in_the_other_crm() {
    contact_moved_by_a_merge(Db::Sqlite, Winner::Unlinked).await;
}

#[tokio::test]
async fn a_contact_moved_by_a_followed_merge_does_not_undo_a_move_on_postgres() {
    contact_moved_by_a_merge(Db::Postgres, Winner::Unlinked).await;
}

#[tokio::test]
async fn a_contact_moved_by_a_merge_sent_to_review_does_not_undo_a_move_in_the_other_crm() {
    contact_moved_by_a_merge(Db::Sqlite, Winner::Linked).await;
}

/// Whether a merge's winner is linked before the merge.
#[derive(PartialEq)]
enum Winner {
    Unlinked,
    Linked,
}

async fn contact_moved_by_a_merge(db: Db, winner: Winner) {
    let w = World::on(db).await;
    let engine = w.engine(config());
    let globex = globex(&w).await;
    let two = serde_json::json!({"name": "Acme Two", "url": "https://acme-two.com"});
    let linked_other = match winner {
        Winner::Linked => Some(w.close_lead(two.clone()).await),
        Winner::Unlinked => None,
    };
    let (contact, hs_contact) = linked_bob(&w, &engine).await;
    let lead = close_lead_of(&w, &contact).await;
    let hs_globex = hs_company_of(&w, &globex).await.expect("Globex is linked");

    w.hs_update(
        "contacts",
        &hs_contact,
        &[("associatedcompanyid", hs_globex.as_str())],
    )
    .await;
    let other = match linked_other {
        Some(other) => other,
        None => w.close_lead(two).await,
    };
    merge_close_leads(&w, &lead, &other).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    w.close_update(
        &format!("contact/{contact}/"),
        serde_json::json!({"title": "CTO"}),
    )
    .await;
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    let merged = RecordRef::new(Crm::Close, ObjectKind::Company, lead.clone());
    match winner {
        Winner::Unlinked => assert_eq!(r.relinked, 1, "{r:?}"),
        Winner::Linked => {
            assert_eq!(r.relinked, 0, "{r:?}");
            assert_eq!(r.flagged, [merged], "the merge goes to review: {r:?}");
        }
    }
    let in_close = w.close_get(&format!("contact/{contact}/")).await;
    assert_eq!(in_close["lead_id"], globex.as_str(), "{r:?}");
    let in_hubspot = hs_person(&w, &hs_contact).await;
    assert_eq!(in_hubspot.company_id.as_deref(), Some(hs_globex.as_str()));
    assert_eq!(in_hubspot.title.as_deref(), Some("CTO"));

    w.settle().await;
    w.reset_stats();
    let again = engine.run().await.expect("run after");
    assert!(!again.wrote(), "{again:?}");
    w.finish().await;
}

/// A merge of records crmkit never linked (both made and merged between two runs) is noted
/// too, so a base that names the merged-away record (stored while it was not linked) reads
/// as naming the survivor rather than as a move.
#[tokio::test]
async fn a_merge_of_records_never_linked_is_noted() {
    let w = World::new().await;
    let engine = w.engine(config());
    linked_acme(&w, &engine).await;
    let gone = w.close_lead(serde_json::json!({"name": "Initech"})).await;
    let kept = w
        .close_lead(serde_json::json!({"name": "Initech Two"}))
        .await;
    merge_close_leads(&w, &gone, &kept).await;
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(r.relinked, 0, "{r:?}");
    let noted = w
        .store
        .account_fact(Crm::Close, &format!("merged company {gone}"))
        .await
        .expect("store");
    assert_eq!(noted.as_deref(), Some(kept.as_str()));
}

#[tokio::test]
async fn a_chain_of_merges_moves_the_link_to_the_surviving_record() {
    let w = World::new().await;
    let engine = w.engine(config());
    let (a, hs) = linked_acme(&w, &engine).await;
    // B and C are new and not linked yet; A goes into B, then B into C, before the next
    // run: Close's event log gives the two merges newest first (B into C, then A into B).
    let b = w.close_lead(serde_json::json!({"name": "Acme B"})).await;
    let c = w.close_lead(serde_json::json!({"name": "Acme C"})).await;
    merge_close_leads(&w, &a, &b).await;
    merge_close_leads(&w, &b, &c).await;
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(r.deleted, 0, "{r:?}");
    assert_eq!(r.relinked, 1, "{r:?}");
    assert!(r.flagged.is_empty(), "{r:?}");
    let link = close_company_link(&w, &c).await.expect("C is linked");
    assert_eq!(link.crm_id(Crm::HubSpot), Some(hs.as_str()));
    assert!(close_company_link(&w, &b).await.is_none(), "B is gone");
    assert!(hs_exists(&w, &hs).await);
    assert_eq!(
        w.hs_all("companies", "name").await.len(),
        1,
        "no second HubSpot company for C"
    );
}

#[tokio::test]
async fn a_chain_of_merges_into_a_linked_record_goes_to_review() {
    let w = World::new().await;
    let engine = w.engine(config());
    let (a, hs_a) = linked_acme(&w, &engine).await;
    let c = w
        .close_lead(serde_json::json!({"name": "Beta", "url": "https://beta.example"}))
        .await;
    w.settle().await;
    let second = engine.run().await.expect("second run");
    assert_eq!(second.created, 1, "{second:?}");
    let hs_c = hs_company_of(&w, &c).await.expect("C is linked");
    let b = w.close_lead(serde_json::json!({"name": "Acme B"})).await;
    merge_close_leads(&w, &a, &b).await;
    merge_close_leads(&w, &b, &c).await;
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert_eq!(r.deleted, 0, "{r:?}");
    assert_eq!(r.relinked, 0, "{r:?}");
    assert_eq!(
        r.flagged,
        vec![RecordRef::new(Crm::Close, ObjectKind::Company, a.clone())],
        "A's link and C's link would have to be merged: {r:?}"
    );
    let reviews = w.store.open_reviews(10).await.expect("store");
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert!(
        reviews[0]
            .candidates
            .to_string()
            .contains(&RecordRef::new(Crm::Close, ObjectKind::Company, c.clone()).to_string()),
        "the review names C, the surviving record: {:?}",
        reviews[0].candidates
    );
    let link_c = close_company_link(&w, &c).await.expect("C keeps its link");
    assert_eq!(link_c.crm_id(Crm::HubSpot), Some(hs_c.as_str()));
    assert!(
        close_company_link(&w, &b).await.is_none(),
        "B is linked nowhere"
    );
    assert!(hs_exists(&w, &hs_a).await && hs_exists(&w, &hs_c).await);
}

#[tokio::test]
async fn a_merge_winner_keeps_its_values_and_differences_are_queued_as_conflicts() {
    let w = World::new().await;
    let engine = w.engine(config());
    let (contact, loser) = linked_contact(
        &w,
        &engine,
        serde_json::json!({"name": "Acme", "url": "https://acme.com",
        "contacts": [{"name": "Bob Stone", "title": "CTO",
            "emails": [{"email": "bob@acme.com"}]}]}),
    )
    .await;
    // The winner holds other values than the loser (whose values were Close's, synced):
    // after the merge each CRM keeps its own, the differences are queued as conflicts
    // (last_write_wins: nobody changed them), and the winner's phone, which no CRM held,
    // fills Close's gap. Its e-mails (its own first, the loser's after) are a difference
    // too: Close, holding only the loser's, could hold both.
    let winner = w
        .hs_create(
            "contacts",
            serde_json::json!({"email": "robert@acme.com", "firstname": "Robert",
                "lastname": "Stone", "jobtitle": "Founder", "phone": "+14155550100"}),
        )
        .await;
    // The loser failed once before the merge: its entry must not outlive it.
    let loser_ref = RecordRef::new(Crm::HubSpot, ObjectKind::Person, loser.clone());
    let due_now = crmkit_store::RetryPolicy {
        first_delay: std::time::Duration::ZERO,
        ..crmkit_store::RetryPolicy::default()
    };
    w.store
        .record_retry(engine.pair(), &loser_ref, "a write was refused", &due_now)
        .await
        .expect("store");
    merge_hs_contacts(&w, &winner, &loser).await;
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(r.relinked, 1, "{r:?}");
    let mut fields: Vec<&str> = r
        .conflicts
        .iter()
        .map(|c| c.conflict.field.as_str())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["emails", "name", "title"], "{:?}", r.conflicts);
    let listed = w.store.retries(engine.pair(), None).await.expect("store");
    assert!(
        listed.iter().all(|e| e.record != loser_ref),
        "the loser's retry entry went with it: {listed:?}"
    );
    w.settle().await;
    let again = engine.run().await.expect("next run");
    assert!(again.errors.is_empty(), "{again:?}");
    assert_eq!(again.updated, 0, "{again:?}");
    assert!(again.conflicts.is_empty(), "none opened again: {again:?}");
    let open = w.store.open_conflicts(10).await.expect("store");
    assert_eq!(open.len(), 3, "queued once each: {open:?}");
    let title = open.iter().find(|c| c.field == "title").expect("title");
    assert_eq!(title.values[&Crm::Close], "CTO");
    assert_eq!(title.values[&Crm::HubSpot], "Founder");
    let close = w.close_get(&format!("contact/{contact}/")).await;
    assert_eq!(close["name"], "Bob Stone", "Close's name kept: {close}");
    assert_eq!(close["title"], "CTO", "Close's title kept: {close}");
    let emails: Vec<&str> = close["emails"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["email"].as_str())
        .collect();
    assert_eq!(
        emails,
        ["bob@acme.com"],
        "Close's e-mail kept until the conflict is decided: {close}"
    );
    let phones: Vec<&str> = close["phones"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["phone"].as_str())
        .collect();
    assert_eq!(phones, ["+14155550100"], "Close's gap filled: {close}");
    let hs =
        w.hs.raw(&ApiRequest::get(format!(
            "crm/v3/objects/contacts/{winner}?properties=firstname,jobtitle,email"
        )))
        .await
        .expect("read");
    assert_eq!(hs["properties"]["firstname"], "Robert", "{hs}");
    assert_eq!(hs["properties"]["jobtitle"], "Founder", "{hs}");
    assert_eq!(hs["properties"]["email"], "robert@acme.com", "{hs}");
    // A later edit of the winner's phone propagates; the link, planned again, finds the
    // same differences, still one open conflict each, none reported as opened again.
    w.hs_update("contacts", &winner, &[("phone", "+14155550199")])
        .await;
    w.settle().await;
    let third = engine.run().await.expect("third run");
    assert!(third.errors.is_empty(), "{third:?}");
    assert_eq!(third.updated, 1, "{third:?}");
    assert!(third.conflicts.is_empty(), "{third:?}");
    let open = w.store.open_conflicts(10).await.expect("store");
    assert_eq!(open.len(), 3, "not queued again: {open:?}");
}

/// Close lead A "Acme", described "Maker of anvils", synced to HubSpot, then merged into
/// lead B of the same name and site, which has no description (the merge not run yet):
/// B's id and HubSpot's company id.
async fn acme_merged_into_one_without_description(
    w: &World,
    engine: &crmkit_sync::engine::Engine,
) -> (String, String) {
    let a = w
        .close_lead(
            serde_json::json!({"name": "Acme", "url": "https://acme.com",
            "description": "Maker of anvils"}),
        )
        .await;
    w.settle().await;
    let first = engine.run().await.expect("first run");
    assert!(first.errors.is_empty(), "{first:?}");
    let hs = close_company_link(w, &a)
        .await
        .expect("linked")
        .crm_id(Crm::HubSpot)
        .expect("in HubSpot")
        .to_string();
    let b = w
        .close_lead(serde_json::json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    merge_close_leads(w, &a, &b).await;
    w.settle().await;
    (b, hs)
}

#[tokio::test]
async fn a_value_only_the_losers_counterpart_holds_fills_the_winners_gap() {
    let w = World::new().await;
    let engine = w.engine(config());
    // A goes into B, which has no description (Close's merge keeps the destination's
    // fields): HubSpot's description, the loser's counterpart's, fills B's gap rather than
    // being left apart, neither written nor queued.
    let (b, hs) = acme_merged_into_one_without_description(&w, &engine).await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(r.relinked, 1, "{r:?}");
    let lead = w.close_get(&format!("lead/{b}/")).await;
    assert_eq!(
        lead["description"], "Maker of anvils",
        "B's gap filled: {lead}"
    );
    let (_, description) = super::hs_company(&w, &hs).await;
    assert_eq!(description, "Maker of anvils", "HubSpot's kept");
    w.settle().await;
    let again = engine.run().await.expect("next run");
    assert!(again.errors.is_empty(), "{again:?}");
    assert_eq!(again.updated, 0, "settled: {again:?}");
}

#[tokio::test]
async fn a_merge_into_a_record_that_cannot_be_read_goes_to_review_and_overwrites_nothing() {
    let w = World::new().await;
    let engine = w.engine(config());
    let (a, hs) = linked_acme(&w, &engine).await;
    // A goes into B, then B is deleted before the run: B cannot be read, so its values
    // cannot become its base. Relinked without one, they would count as its edits.
    let b = w
        .close_lead(serde_json::json!({"name": "Acme Holdings", "url": "https://holdings.example"}))
        .await;
    merge_close_leads(&w, &a, &b).await;
    delete_close_lead(&w, &b).await;
    let r = engine.run().await.expect("run");
    assert_eq!(r.relinked, 0, "{r:?}");
    assert_eq!(r.deleted, 0, "{r:?}");
    assert_eq!(
        r.flagged,
        vec![RecordRef::new(Crm::Close, ObjectKind::Company, a.clone())],
        "{r:?}"
    );
    let reviews = w.store.open_reviews(10).await.expect("store");
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert!(
        reviews[0].reason.contains("could not be read"),
        "{reviews:?}"
    );
    let link = close_company_link(&w, &a).await.expect("still linked");
    assert_eq!(link.hash(Crm::Close), Some("deleted"), "{link:?}");
    assert!(
        close_company_link(&w, &b).await.is_none(),
        "B is linked nowhere"
    );
    let (name, _) = super::hs_company(&w, &hs).await;
    assert_eq!(name, "Acme", "HubSpot's company untouched");
    // Close's feed gives the merge again (it re-reads its recent deletions): it is queued
    // once, not once a run.
    w.settle().await;
    let again = engine.run().await.expect("next run");
    assert!(again.flagged.is_empty(), "{again:?}");
    assert!(again.errors.is_empty(), "{again:?}");
    let reviews = w.store.open_reviews(10).await.expect("store");
    assert_eq!(reviews.len(), 1, "one open review: {reviews:?}");
}

#[tokio::test]
async fn a_contact_deleted_in_a_close_merge_is_flagged_never_propagated() {
    // Close logs `deleted` events for the objects involved in a merge, with the merge's
    // `meta`: a contact it deletes may live on under another id, so under `propagate` its
    // counterpart stays and the link goes to review.
    let w = World::new().await;
    let mut c = config();
    c.person.delete = DeletePolicy::Propagate;
    let engine = w.engine(c);
    let (contact, hs) = linked_bob(&w, &engine).await;
    let lead = close_lead_of(&w, &contact).await;
    let other = w.close_lead(serde_json::json!({"name": "Acme Two"})).await;
    w.close
        .raw(&ApiRequest::new(
            Method::DELETE,
            format!("contact/{contact}/"),
        ))
        .await
        .expect("deleted");
    // The sandbox's merge moves contacts; this deletion is given the merge's `meta` as
    // Close would log it.
    w.close_sb.edit_events(|e| {
        if e["object_id"] == serde_json::json!(contact) && e["action"] == "deleted" {
            e["meta"] = serde_json::json!({"merge_source_lead_id": lead,
                                           "merge_destination_lead_id": other});
        }
    });
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert_eq!(r.deleted, 0, "{r:?}");
    w.hs.raw(&ApiRequest::get(format!("crm/v3/objects/contacts/{hs}")))
        .await
        .expect("the HubSpot contact stays");
    let gone = RecordRef::new(Crm::Close, ObjectKind::Person, contact);
    assert_eq!(r.flagged, vec![gone.clone()], "{r:?}");
    let reviews = w.store.open_reviews(10).await.expect("store");
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    let link = w
        .store
        .link_by_record(&RecordRef::new(Crm::HubSpot, ObjectKind::Person, hs))
        .await
        .expect("store")
        .expect("the link is kept");
    assert_eq!(link.crm_id(Crm::Close), Some(gone.id.as_str()));
    // Read again (the event log's overlap window), it is not flagged twice.
    let again = engine.run().await.expect("run");
    assert!(again.flagged.is_empty(), "{again:?}");
    assert_eq!(w.store.open_reviews(10).await.expect("store").len(), 1);
}

#[tokio::test]
async fn a_filled_gap_whose_read_back_failed_is_not_filled_again_over_a_clear() {
    let w = World::new().await;
    let engine = w.engine(config());
    let (b, hs) = acme_merged_into_one_without_description(&w, &engine).await;
    // The gap fill reaches B, but reading B back fails: the group stores no new base.
    w.close_sb.set_faults(crmkit_sandbox::faults::Faults {
        rate_500: 1.0,
        route: Some(format!("GET /lead/{b}/")),
        ..Default::default()
    });
    let r = engine.run().await.expect("run");
    assert_eq!(r.relinked, 1, "{r:?}");
    assert!(!r.errors.is_empty(), "the read-back failed: {r:?}");
    w.close_sb
        .set_faults(crmkit_sandbox::faults::Faults::default());
    let lead = w.close_get(&format!("lead/{b}/")).await;
    assert_eq!(lead["description"], "Maker of anvils", "{lead}");
    // Someone clears it in B: the clear is B's change, never undone by another fill.
    w.close_update(
        &format!("lead/{b}/"),
        serde_json::json!({"description": ""}),
    )
    .await;
    w.settle().await;
    let next = engine.run().await.expect("next run");
    assert!(next.errors.is_empty(), "{next:?}");
    let lead = w.close_get(&format!("lead/{b}/")).await;
    assert!(
        lead["description"].as_str().is_none_or(str::is_empty),
        "B's clear kept: {lead}"
    );
    let (_, description) = super::hs_company(&w, &hs).await;
    assert!(
        description.as_str().is_none_or(str::is_empty),
        "the clear reached HubSpot: {description}"
    );
}

/// The description `crm`'s company `id` holds (empty: none).
async fn description(t: &Three, crm: Crm, id: &str) -> String {
    match t.conn(crm).get(ObjectKind::Company, id).await {
        Ok(Record::Company(c)) => c.description.unwrap_or_default(),
        other => panic!("{crm} company {id}: {other:?}"),
    }
}

/// Three CRMs: a user clears (or rewrites) a field in HubSpot while the Close lead linked
/// to it is merged into one that never held the field. The relink leaves the other CRMs'
/// bases as they were, so HubSpot's clear or edit is still its change and propagates to
/// Salesforce and the winner, whatever the rule: the old value is not copied back from
/// Salesforce over it (here even with Salesforce primary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_or_edit_made_in_another_crm_survives_a_merges_relink() {
    for now in ["", "Maker of rockets"] {
        let t = Three::new().await;
        let engine = t.engine_with(|c| {
            c.activity.enabled = false;
            c.company.conflict.primary = Some(Crm::Salesforce);
        });
        let a =
            t.w.close_lead(
                serde_json::json!({"name": "Acme", "url": "https://acme.com",
                "description": "Maker of anvils"}),
            )
            .await;
        t.clean_run(&engine, "first run").await;
        let company = RecordRef::new(Crm::Close, ObjectKind::Company, a.clone());
        let hs = t.w.linked_id(&company, Crm::HubSpot).await;
        let account = t.w.linked_id(&company, Crm::Salesforce).await;
        assert_eq!(
            description(&t, Crm::Salesforce, &account).await,
            "Maker of anvils"
        );
        t.w.hs_update("companies", &hs, &[("description", now)])
            .await;
        let b =
            t.w.close_lead(serde_json::json!({"name": "Acme", "url": "https://acme.com"}))
                .await;
        merge_close_leads(&t.w, &a, &b).await;
        let r = t.clean_run(&engine, "run").await;
        assert_eq!(r.relinked, 1, "{r:?}");
        assert!(r.conflicts.is_empty(), "{r:?}");
        for (crm, id) in [
            (Crm::Close, &b),
            (Crm::HubSpot, &hs),
            (Crm::Salesforce, &account),
        ] {
            assert_eq!(
                description(&t, crm, id).await,
                now,
                "HubSpot's change holds in {crm}"
            );
        }
        let again = t.clean_run(&engine, "next run").await;
        assert!(!again.wrote(), "settled: {again:?}");
    }
}

/// A company deleted in HubSpot under the default `delete = "ignore"` (its link keeps it,
/// noted deleted) takes its contacts' association with it, and a HubSpot user may remove a
/// contact's association with a company that lives on. Neither reaches Close as a clear of
/// the contact's company (Close keeps every contact under a lead and would refuse it on
/// every run; the user's clear is reported), and the contact's other edits still sync.
#[tokio::test]
async fn a_lost_association_is_no_clear_for_close_and_other_edits_sync() {
    for deleted in [true, false] {
        let w = World::new().await;
        let engine = w.engine(config());
        let (contact, hs_contact) = linked_bob(&w, &engine).await;
        let lead = close_lead_of(&w, &contact).await;
        let hs_co = hs_company_of(&w, &lead).await.expect("linked");
        if deleted {
            w.hs.raw(&ApiRequest::new(
                Method::DELETE,
                format!("crm/v3/objects/companies/{hs_co}"),
            ))
            .await
            .expect("deleted");
        }
        unassociate_hs_contact(&w, &hs_contact, &hs_co).await;
        w.hs_update(
            "contacts",
            &hs_contact,
            &[("associatedcompanyid", ""), ("jobtitle", "CTO")],
        )
        .await;
        w.settle().await;
        let r = engine.run().await.expect("run");
        if deleted {
            assert!(r.errors.is_empty(), "{r:?}");
        } else {
            // A user's clear is noted as not sent, once: not a failure, not retried.
            assert!(r.errors.is_empty() && r.retrying == 0, "{r:?}");
            assert_eq!(r.notices.len(), 1, "{r:?}");
            assert!(r.notices[0].contains("not cleared in close"), "{r:?}");
        }
        let in_close = w.close_get(&format!("contact/{contact}/")).await;
        assert_eq!(
            in_close["lead_id"],
            lead.as_str(),
            "deleted: {deleted}: {r:?}"
        );
        assert_eq!(in_close["title"], "CTO", "deleted: {deleted}: {r:?}");
        w.settle().await;
        let again = engine.run().await.expect("run after");
        assert!(again.errors.is_empty(), "deleted: {deleted}: {again:?}");
        assert!(again.notices.is_empty(), "deleted: {deleted}: {again:?}");
        assert!(!again.wrote(), "deleted: {deleted}: {again:?}");
        w.finish().await;
    }
}

/// A HubSpot user's removal of a contact's company, which Close cannot take, stays removed:
/// a later edit in Close neither re-adds the association nor queues a conflict, whichever
/// CRM is primary.
#[tokio::test]
async fn a_removed_association_close_cannot_take_is_not_re_added_by_a_later_edit() {
    use crmkit_sync::config::PolicyKind;
    for primary in [Crm::Close, Crm::HubSpot] {
        let w = World::new().await;
        let mut c = config();
        c.person.conflict.policy = Some(PolicyKind::Primary);
        c.person.conflict.primary = Some(primary);
        let engine = w.engine(c);
        let (contact, hs_contact) = linked_bob(&w, &engine).await;
        let lead = close_lead_of(&w, &contact).await;
        let hs_co = hs_company_of(&w, &lead).await.expect("linked");
        unassociate_hs_contact(&w, &hs_contact, &hs_co).await;
        w.hs_update("contacts", &hs_contact, &[("associatedcompanyid", "")])
            .await;
        w.settle().await;
        engine.run().await.expect("run");
        w.close_update(
            &format!("contact/{contact}/"),
            serde_json::json!({"title": "CTO"}),
        )
        .await;
        w.settle().await;
        let r = engine.run().await.expect("run after the edit");
        assert!(r.errors.is_empty(), "{primary}: {r:?}");
        assert!(r.conflicts.is_empty(), "{primary}: {r:?}");
        let in_hubspot = hs_person(&w, &hs_contact).await;
        assert_eq!(in_hubspot.company_id, None, "{primary}: {r:?}");
        assert_eq!(in_hubspot.title.as_deref(), Some("CTO"), "{primary}: {r:?}");
        w.settle().await;
        let again = engine.run().await.expect("run again");
        assert!(!again.wrote(), "{primary}: {again:?}");
        w.finish().await;
    }
}

/// HubSpot merges Acme's company into Globex's (both linked: the merge goes to review), and
/// a new contact is then added to Acme in Close: it is created in HubSpot under the company
/// that survived the merge, not under none, and that is reported. A later edit of the
/// contact in Close leaves its company as it is in both CRMs until the review decides,
/// HubSpot primary or not.
#[tokio::test]
async fn a_record_new_under_a_company_merged_away_under_review_goes_under_the_survivor() {
    use crmkit_sync::config::PolicyKind;
    for primary in [None, Some(Crm::HubSpot)] {
        let w = World::new().await;
        let mut c = config();
        if primary.is_some() {
            c.person.conflict.policy = Some(PolicyKind::Primary);
            c.person.conflict.primary = primary;
        }
        let engine = w.engine(c);
        let (ann, lead, hs_acme, hs_globex) = ann_under_a_merged_acme(&w, &engine).await;
        let r = engine.run().await.expect("run");
        // A notice: Ann is created, so the run is no failure and nothing is retried.
        assert!(r.errors.is_empty() && r.retrying == 0, "{primary:?}: {r:?}");
        assert_eq!(r.notices.len(), 1, "{primary:?}: {r:?}");
        let reported = format!(
            "created in hubspot under {hs_globex}: its company {hs_acme} was merged into it \
             (merge under review)"
        );
        assert!(r.notices[0].ends_with(&reported), "{primary:?}: {r:?}");
        let person = RecordRef::new(Crm::Close, ObjectKind::Person, ann.clone());
        let hs_ann = w.linked_id(&person, Crm::HubSpot).await;
        let in_hubspot = hs_person(&w, &hs_ann).await;
        assert_eq!(in_hubspot.company_id.as_deref(), Some(hs_globex.as_str()));
        w.close_update(
            &format!("contact/{ann}/"),
            serde_json::json!({"title": "CTO"}),
        )
        .await;
        w.settle().await;
        let r = engine.run().await.expect("run after the edit");
        assert!(r.errors.is_empty(), "{primary:?}: {r:?}");
        assert!(r.conflicts.is_empty(), "{primary:?}: {r:?}");
        let in_close = w.close_get(&format!("contact/{ann}/")).await;
        assert_eq!(in_close["lead_id"], lead.as_str(), "{primary:?}: {r:?}");
        let in_hubspot = hs_person(&w, &hs_ann).await;
        assert_eq!(in_hubspot.company_id.as_deref(), Some(hs_globex.as_str()));
        assert_eq!(
            in_hubspot.title.as_deref(),
            Some("CTO"),
            "{primary:?}: {r:?}"
        );
        w.finish().await;
    }
}

/// HubSpot merges Bob's company into another linked one (the merge goes to review, its
/// link still naming the merged-away company) and moves Bob with it; nobody moved him in
/// Close. Under every policy, Close primary included, Bob follows to the merge's winner's
/// counterpart in Close: his company is never written back to the merged-away one, which
/// HubSpot would refuse on every run.
#[tokio::test]
async fn a_move_made_by_a_merge_sent_to_review_is_followed_under_every_policy() {
    use crmkit_sync::config::PolicyKind;
    for (policy, primary) in [
        (PolicyKind::Primary, Some(Crm::Close)),
        (PolicyKind::LastWriteWins, None),
        (PolicyKind::Manual, None),
    ] {
        let w = World::new().await;
        let mut c = config();
        c.person.conflict.policy = Some(policy);
        c.person.conflict.primary = primary;
        let engine = w.engine(c);
        let globex = globex(&w).await;
        let (contact, hs_contact) = linked_bob(&w, &engine).await;
        let lead = close_lead_of(&w, &contact).await;
        let hs_acme = hs_company_of(&w, &lead).await.expect("Acme linked");
        let hs_globex = hs_company_of(&w, &globex).await.expect("Globex linked");
        merge_hs_companies(&w, &hs_globex, &hs_acme).await;
        w.hs_update(
            "contacts",
            &hs_contact,
            &[("associatedcompanyid", hs_globex.as_str())],
        )
        .await;
        w.settle().await;
        let r = engine.run().await.expect("run");
        assert!(r.errors.is_empty(), "{policy:?}: {r:?}");
        assert_eq!(r.flagged.len(), 1, "the merge goes to review: {r:?}");
        assert!(r.conflicts.is_empty(), "{policy:?}: {r:?}");
        let in_close = w.close_get(&format!("contact/{contact}/")).await;
        assert_eq!(in_close["lead_id"], globex.as_str(), "{policy:?}: {r:?}");
        w.settle().await;
        let again = engine.run().await.expect("run after");
        assert!(again.errors.is_empty(), "{policy:?}: {again:?}");
        assert!(!again.wrote(), "{policy:?}: {again:?}");
        w.finish().await;
    }
}

/// Archives HubSpot company `id`, as a user deleting it does (HubSpot keeps its contacts).
async fn delete_hs_company(w: &World, id: &str) {
    w.hs.raw(&ApiRequest::new(
        Method::DELETE,
        format!("crm/v3/objects/companies/{id}"),
    ))
    .await
    .expect("deleted");
    w.settle().await;
}

async fn hs_contact_exists(w: &World, id: &str) -> bool {
    hs_object_exists(w, "contacts", id).await
}

/// When Close, taking Bob with the lead crmkit deleted, reports his deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cascade {
    /// In the run that deleted the lead.
    SameRun,
    /// In a later run (people were not synced in the run that deleted the lead).
    LaterRun,
    /// In the run that deleted the lead, whose answer to the delete was lost (Close
    /// deleted it, then dropped the connection; the retry answers "not found").
    AnswerLost,
}

#[tokio::test]
async fn a_deletion_propagated_to_a_close_lead_does_not_delete_the_contacts_it_took_elsewhere() {
    company_deleted_in_hubspot(Db::Sqlite, Cascade::SameRun).await;
}

#[tokio::test]
async fn a_close_cascade_of_our_own_deletion_read_in_a_later_run_is_not_propagated() {
    company_deleted_in_hubspot(Db::Sqlite, Cascade::LaterRun).await;
}

#[tokio::test]
async fn a_close_cascade_of_our_own_deletion_whose_answer_was_lost_is_not_propagated() {
    company_deleted_in_hubspot(Db::Sqlite, Cascade::AnswerLost).await;
}

#[tokio::test]
async fn a_close_cascade_of_our_own_deletion_is_not_propagated_on_postgres() {
    company_deleted_in_hubspot(Db::Postgres, Cascade::SameRun).await;
}

/// With `propagate` for companies and people, Bob's company is deleted in HubSpot (which
/// keeps Bob): crmkit deletes the Close lead, Close deletes Bob with it, and that deletion,
/// crmkit's own write coming back, is not propagated: Bob stays in HubSpot, his Close side
/// noted gone, and the run says why.
async fn company_deleted_in_hubspot(db: Db, when: Cascade) {
    let w = World::on(db).await;
    let mut c = config();
    c.company.delete = DeletePolicy::Propagate;
    c.person.delete = DeletePolicy::Propagate;
    let engine = w.engine(c.clone());
    let (contact, hs_contact) = linked_bob(&w, &engine).await;
    let lead = close_lead_of(&w, &contact).await;
    let hs_co = hs_company_of(&w, &lead).await.expect("linked");
    delete_hs_company(&w, &hs_co).await;
    if when == Cascade::AnswerLost {
        w.close_sb.set_faults(crmkit_sandbox::faults::Faults {
            next: vec![crmkit_sandbox::faults::Fault::ProcessedThenDrop],
            route: Some(format!("DELETE /lead/{lead}/")),
            ..Default::default()
        });
    }
    let r = if when == Cascade::LaterRun {
        let mut companies = c.clone();
        companies.person.enabled = false;
        let first = w.engine(companies).run().await.expect("run");
        assert!(first.errors.is_empty(), "{first:?}");
        assert_eq!(first.deleted, 1, "the Close lead: {first:?}");
        assert!(first.cascades.is_empty(), "{first:?}");
        w.settle().await;
        engine.run().await.expect("run")
    } else {
        engine.run().await.expect("run")
    };
    w.close_sb
        .set_faults(crmkit_sandbox::faults::Faults::default());
    assert!(!w.close_has_lead(&lead).await, "the Close lead is deleted");
    assert!(
        !close_contact_exists(&w, &contact).await,
        "Close took Bob with his lead"
    );
    assert!(r.errors.is_empty(), "{r:?}");
    let deleted = match when {
        Cascade::SameRun => 1,
        // The lead alone in the earlier run; the retry of the lost delete found it gone.
        Cascade::LaterRun | Cascade::AnswerLost => 0,
    };
    assert_eq!(r.deleted, deleted, "{r:?}");
    assert!(w.unsettled_intents().await.is_empty());
    assert!(
        hs_contact_exists(&w, &hs_contact).await,
        "Bob stays in HubSpot: {r:?}"
    );
    let bob = RecordRef::new(Crm::Close, ObjectKind::Person, contact.clone());
    assert_eq!(r.cascades.len(), 1, "{r:?}");
    assert_eq!(r.cascades[0].record, bob);
    assert_eq!(
        r.cascades[0].parent,
        RecordRef::new(Crm::Close, ObjectKind::Company, lead.clone())
    );
    assert_eq!(r.cascades[0].because, format!("hubspot:company:{hs_co}"));
    assert!(
        hs_person(&w, &hs_contact)
            .await
            .emails
            .contains(&"bob@acme.com".to_string()),
        "and is readable"
    );
    let link = w
        .store
        .link_by_record(&bob)
        .await
        .expect("store")
        .expect("Bob's link is kept");
    assert_eq!(link.hash(Crm::Close), Some(crmkit_sync::plan::DELETED));
    assert_eq!(link.crm_id(Crm::HubSpot), Some(hs_contact.as_str()));
    // Nothing more to do: no write, no deletion, no second note (the event log's overlap
    // window brings the tombstones again).
    w.settle().await;
    w.reset_stats();
    let again = engine.run().await.expect("run");
    assert!(again.errors.is_empty(), "{again:?}");
    assert!(!again.wrote(), "{again:?}");
    assert_eq!(again.deleted, 0, "{again:?}");
    assert!(again.cascades.is_empty(), "{again:?}");
    assert_eq!(w.writes(), Vec::<String>::new());
    assert!(hs_contact_exists(&w, &hs_contact).await, "Bob stays");
    w.finish().await;
}

#[tokio::test]
async fn a_lead_a_user_deletes_in_close_takes_its_contacts_counterparts_with_it() {
    // README: under `propagate` a CRM's own cascade of a user's deletion counts as its
    // deletions: Close deletes the lead's contacts with it, and they are deleted in HubSpot.
    let w = World::new().await;
    let mut c = config();
    c.company.delete = DeletePolicy::Propagate;
    c.person.delete = DeletePolicy::Propagate;
    let engine = w.engine(c);
    let (contact, hs_contact) = linked_bob(&w, &engine).await;
    let lead = close_lead_of(&w, &contact).await;
    let hs_co = hs_company_of(&w, &lead).await.expect("linked");
    delete_close_lead(&w, &lead).await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    assert!(r.cascades.is_empty(), "{r:?}");
    assert_eq!(r.deleted, 2, "the company and Bob: {r:?}");
    assert!(!hs_exists(&w, &hs_co).await, "the company is archived");
    assert!(
        !hs_contact_exists(&w, &hs_contact).await,
        "Bob is archived in HubSpot"
    );
    let bob = RecordRef::new(Crm::Close, ObjectKind::Person, contact);
    assert!(
        w.store.link_by_record(&bob).await.expect("store").is_none(),
        "Bob's link is gone"
    );
}

/// Bob's company Acme merged in HubSpot into Globex (the merge goes to review, a run
/// checks), then Ann added under Acme's lead in Close: Ann's Close id, the lead, and
/// HubSpot's Acme and Globex.
async fn ann_under_a_merged_acme(
    w: &World,
    engine: &crmkit_sync::Engine,
) -> (String, String, String, String) {
    let globex = globex(w).await;
    let (contact, _) = linked_bob(w, engine).await;
    let lead = close_lead_of(w, &contact).await;
    let hs_acme = hs_company_of(w, &lead).await.expect("Acme linked");
    let hs_globex = hs_company_of(w, &globex).await.expect("Globex linked");
    merge_hs_companies(w, &hs_globex, &hs_acme).await;
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert_eq!(r.flagged.len(), 1, "the merge goes to review: {r:?}");
    let ann = w
        .close
        .raw(&ApiRequest::post(
            "contact/",
            serde_json::json!({"lead_id": lead, "name": "Ann Lee",
                           "emails": [{"email": "ann@acme.com"}]}),
        ))
        .await
        .expect("created");
    let ann = ann["id"].as_str().expect("id").to_string();
    w.settle().await;
    (ann, lead, hs_acme, hs_globex)
}

/// A contact created under a merge's survivor was created: noted (`notices`), not a
/// failure. The run is not partial, and the contact is not on the retry list.
#[tokio::test]
async fn a_create_under_a_survivor_is_a_notice_not_a_failure() {
    let w = World::new().await;
    let engine = w.engine(config());
    let (ann, _, hs_acme, hs_globex) = ann_under_a_merged_acme(&w, &engine).await;
    let noted = [format!(
        "close:person:{ann}: created in hubspot under {hs_globex}: its company {hs_acme} \
         was merged into it (merge under review)"
    )];
    // A dry run notes it as the run does.
    let dry = engine.dry_run().await.expect("dry run");
    assert!(dry.errors.is_empty(), "{dry:?}");
    assert_eq!(dry.notices, noted, "{dry:?}");
    let r = engine.run().await.expect("run");
    assert_eq!(r.created, 1, "{r:?}");
    assert!(
        r.errors.is_empty() && r.retrying == 0,
        "a successful create reported as not synced: {r:?}"
    );
    let listed = w.store.retries(engine.pair(), None).await.expect("store");
    assert!(listed.is_empty(), "nothing to retry: {listed:?}");
    assert_eq!(r.notices, noted, "{r:?}");
    let runs = w.store.runs(engine.pair(), 1).await.expect("store");
    assert_eq!(Some(&runs[0].id), r.run.as_ref(), "{runs:?}");
    assert_eq!(
        runs[0].status,
        crmkit_store::RunStatus::Succeeded,
        "not partial: {runs:?}"
    );
}

/// The account fact noting crmkit's propagated delete of Close lead `lead`.
async fn lead_delete_note(w: &World, lead: &str) -> Option<String> {
    w.store
        .account_fact(
            Crm::Close,
            &format!("deleted {} {lead}", ObjectKind::Company),
        )
        .await
        .expect("store")
}

/// A config propagating company and person deletions.
fn propagating() -> crmkit_sync::config::Config {
    let mut c = config();
    c.company.delete = DeletePolicy::Propagate;
    c.person.delete = DeletePolicy::Propagate;
    c
}

/// A user deletes Bob in Close, and (separately) Bob's company in HubSpot, before the same
/// run: Bob's deletion is a user's, made before crmkit deleted his lead (his `deleted`
/// event, naming the lead, is of another request than the lead's), so it is propagated.
#[tokio::test]
async fn a_users_contact_deletion_before_our_lead_delete_is_propagated() {
    let w = World::new().await;
    let engine = w.engine(propagating());
    let (contact, hs_contact) = linked_bob(&w, &engine).await;
    let lead = close_lead_of(&w, &contact).await;
    let hs_co = hs_company_of(&w, &lead).await.expect("linked");
    w.close
        .raw(&ApiRequest::new(
            Method::DELETE,
            format!("contact/{contact}/"),
        ))
        .await
        .expect("deleted");
    w.settle().await;
    delete_hs_company(&w, &hs_co).await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    assert!(!w.close_has_lead(&lead).await, "crmkit deleted the lead");
    assert!(
        r.cascades.is_empty(),
        "a user's deletion reported as a cascade: {r:?}"
    );
    assert!(
        !hs_contact_exists(&w, &hs_contact).await,
        "Bob, deleted by a user in Close, is archived in HubSpot: {r:?}"
    );
}

/// Bob linked, his HubSpot company deleted under propagate, and every answer to crmkit's
/// delete of his Close lead in a run made `fault` (a 500, or the delete carried out and its
/// answer lost): his Close and HubSpot ids and the lead's.
async fn bob_under_a_failed_lead_delete(
    w: &World,
    engine: &crmkit_sync::Engine,
    fault: crmkit_sandbox::faults::Faults,
) -> (String, String, String) {
    let (contact, hs_contact) = linked_bob(w, engine).await;
    let lead = close_lead_of(w, &contact).await;
    let hs_co = hs_company_of(w, &lead).await.expect("linked");
    delete_hs_company(w, &hs_co).await;
    w.close_sb.set_faults(crmkit_sandbox::faults::Faults {
        route: Some(format!("DELETE /lead/{lead}/")),
        ..fault
    });
    let r = engine.run().await.expect("run");
    w.close_sb
        .set_faults(crmkit_sandbox::faults::Faults::default());
    assert!(!r.errors.is_empty(), "the delete failed: {r:?}");
    (contact, hs_contact, lead)
}

fn answered_500() -> crmkit_sandbox::faults::Faults {
    crmkit_sandbox::faults::Faults {
        rate_500: 1.0,
        ..Default::default()
    }
}

/// crmkit's delete of the Close lead fails (Close answers 500 every time), so the lead
/// lives on; its note stays (a 500 says nothing of whether Close deleted it). A user then
/// deletes Bob in Close: no deletion of the lead took him, so his deletion is a user's,
/// propagated.
#[tokio::test]
async fn a_users_contact_deletion_under_a_lead_our_delete_failed_on_is_propagated() {
    let w = World::new().await;
    let engine = w.engine(propagating());
    let (contact, hs_contact, lead) =
        bob_under_a_failed_lead_delete(&w, &engine, answered_500()).await;
    assert!(w.close_has_lead(&lead).await, "the lead lives on");
    assert!(
        lead_delete_note(&w, &lead).await.is_some(),
        "the note stays"
    );
    w.close
        .raw(&ApiRequest::new(
            Method::DELETE,
            format!("contact/{contact}/"),
        ))
        .await
        .expect("deleted");
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert!(
        r.cascades.is_empty(),
        "a user's deletion reported as a cascade: {r:?}"
    );
    assert!(
        !hs_contact_exists(&w, &hs_contact).await,
        "Bob, deleted by a user in Close, is archived in HubSpot: {r:?}"
    );
}

/// crmkit's delete of the Close lead is answered 500; a user then deletes the lead in
/// Close, which takes Bob with it. crmkit cannot tell that deletion from its own carried
/// out behind the 500, so it errs on the side of keeping: Bob stays in HubSpot, reported
/// as kept.
#[tokio::test]
async fn a_lead_deleted_after_our_delete_of_it_answered_500_keeps_its_contacts_elsewhere() {
    let w = World::new().await;
    let engine = w.engine(propagating());
    let (_, hs_contact, lead) = bob_under_a_failed_lead_delete(&w, &engine, answered_500()).await;
    delete_close_lead(&w, &lead).await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(r.cascades.len(), 1, "{r:?}");
    assert!(
        hs_contact_exists(&w, &hs_contact).await,
        "Bob is kept in HubSpot: {r:?}"
    );
}

/// Close carries out crmkit's delete of the lead (and of Bob with it), but every answer of
/// the run is lost: the note stays, so Bob's cascade, read by the same run's people, is
/// crmkit's own, and Bob stays in HubSpot, where only his company was deleted.
#[tokio::test]
async fn a_lead_delete_whose_answers_are_all_lost_keeps_its_contacts_elsewhere() {
    let w = World::new().await;
    let engine = w.engine(propagating());
    let lost = crmkit_sandbox::faults::Faults {
        rate_processed_drop: 1.0,
        ..Default::default()
    };
    let (contact, hs_contact, lead) = bob_under_a_failed_lead_delete(&w, &engine, lost).await;
    assert!(
        !w.close_has_lead(&lead).await,
        "Close carried out the delete"
    );
    assert!(
        lead_delete_note(&w, &lead).await.is_some(),
        "the note stays"
    );
    assert!(
        hs_contact_exists(&w, &hs_contact).await,
        "Bob, deleted only by Close's cascade of crmkit's own delete, is kept in HubSpot"
    );
    // The next run settles the delete ("not found") and keeps Bob.
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    assert!(hs_contact_exists(&w, &hs_contact).await, "{r:?}");
    let bob = RecordRef::new(Crm::Close, ObjectKind::Person, contact);
    assert!(
        w.store.link_by_record(&bob).await.expect("store").is_some(),
        "Bob's link stays, his Close side noted gone"
    );
}

/// Bob (Close) is on the retry list when crmkit deletes his lead: his cascade tombstone is
/// an echo, and the run neither reads him again (he would be "not found") nor keeps him
/// listed.
#[tokio::test]
async fn a_cascaded_record_on_the_retry_list_is_not_read_again() {
    let w = World::new().await;
    let engine = w.engine(propagating());
    let (contact, _hs_contact) = linked_bob(&w, &engine).await;
    let lead = close_lead_of(&w, &contact).await;
    let hs_co = hs_company_of(&w, &lead).await.expect("linked");
    let bob = RecordRef::new(Crm::Close, ObjectKind::Person, contact.clone());
    let due_now = crmkit_store::RetryPolicy {
        first_delay: std::time::Duration::ZERO,
        ..crmkit_store::RetryPolicy::default()
    };
    w.store
        .record_retry(engine.pair(), &bob, "a write was refused", &due_now)
        .await
        .expect("store");
    delete_hs_company(&w, &hs_co).await;
    let r = engine.run().await.expect("run");
    assert_eq!(r.cascades.len(), 1, "{r:?}");
    assert!(r.errors.is_empty(), "{r:?}");
    let listed = w.store.retries(engine.pair(), None).await.expect("store");
    assert!(
        listed.iter().all(|e| e.record != bob),
        "Bob stays listed: {listed:?}"
    );
}

/// Only a Close lead is ever named as a tombstone's parent, so only a delete of one is
/// noted: a contact deletion propagated to HubSpot leaves no note.
#[tokio::test]
async fn only_a_propagated_delete_of_a_close_lead_is_noted() {
    let w = World::new().await;
    let engine = w.engine(propagating());
    let (contact, hs_contact) = linked_bob(&w, &engine).await;
    w.close
        .raw(&ApiRequest::new(
            Method::DELETE,
            format!("contact/{contact}/"),
        ))
        .await
        .expect("deleted");
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    assert!(!hs_contact_exists(&w, &hs_contact).await, "{r:?}");
    let note = w
        .store
        .account_fact(
            Crm::HubSpot,
            &format!("deleted {} {hs_contact}", ObjectKind::Person),
        )
        .await
        .expect("store");
    assert_eq!(note, None);
}

/// A delete of a Close lead left open by an interrupted run, not noted when first sent
/// (its payload says so: the lead's own deletion was read in that run), is sent again
/// without a note; one whose payload says nothing (an older crmkit's) is noted.
#[tokio::test]
async fn an_open_delete_is_noted_when_sent_again_only_if_it_was_at_first() {
    let w = World::new().await;
    let engine = w.engine(config());
    let mut leads = Vec::new();
    for (n, noted) in [Some(false), None].into_iter().enumerate() {
        let lead = w
            .close_lead(serde_json::json!({"name": format!("Gone {n}")}))
            .await;
        let mut payload = serde_json::json!({"id": lead, "because": "hubspot:company:1"});
        if let Some(noted) = noted {
            payload["noted"] = noted.into();
        }
        let open = w
            .store
            .record_intent(
                &crmkit_store::NewIntent::new(
                    Crm::Close,
                    ObjectKind::Company,
                    crmkit_store::IntentOp::Delete,
                    format!("interrupted-run:delete:{n}"),
                    payload,
                )
                .pair(engine.pair()),
            )
            .await
            .expect("store");
        w.store.mark_intent_sent(&open.id).await.expect("store");
        leads.push(lead);
    }
    let r = engine.run().await.expect("run");
    assert_eq!(r.recovered, 2, "{r:?}");
    assert!(w.unsettled_intents().await.is_empty());
    assert_eq!(lead_delete_note(&w, &leads[0]).await, None, "not noted");
    assert_eq!(
        lead_delete_note(&w, &leads[1]).await.as_deref(),
        Some("hubspot:company:1"),
        "noted, as before"
    );
}

/// A lead deleted in Close and its company in HubSpot, both read in one run: two deletions
/// of one link under `propagate`. The first deletes the link (the other side answers "not
/// found"), the second has nothing left to do; the run does not fail on the link gone, and
/// the contacts the user's lead deletion took are the user's deletions, propagated.
#[tokio::test]
async fn a_record_deleted_in_both_crms_in_one_run_deletes_its_link_once() {
    let w = World::new().await;
    let engine = w.engine(propagating());
    let (contact, hs_contact) = linked_bob(&w, &engine).await;
    let lead = close_lead_of(&w, &contact).await;
    let hs_co = hs_company_of(&w, &lead).await.expect("linked");
    delete_hs_company(&w, &hs_co).await;
    delete_close_lead(&w, &lead).await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    assert!(r.cascades.is_empty(), "{r:?}");
    assert!(
        close_company_link(&w, &lead).await.is_none(),
        "the link is gone"
    );
    assert!(
        !hs_contact_exists(&w, &hs_contact).await,
        "Bob, deleted with his lead by a user in Close, is archived in HubSpot: {r:?}"
    );
}
