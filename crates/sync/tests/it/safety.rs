//! Dry runs write nothing; an interrupted create is found by its marker, never made twice,
//! an edit made to its source meanwhile still reaches it and one made to the created record
//! is not overwritten; one run at a time per pair.

use std::time::Duration;

use crmkit_core::http::ApiRequest;
use crmkit_core::{Crm, ErrorKind, ObjectKind, RecordRef};
use crmkit_store::{CursorKey, IntentOp, Link, LinkId, LinkUpdate, NewIntent};
use crmkit_sync::engine::Engine;
use serde_json::json;

use super::{Db, World, config};

#[tokio::test]
async fn a_dry_run_plans_and_writes_nothing() {
    let w = World::new().await;
    let lead = w
        .close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    w.hs_create(
        "companies",
        json!({"name": "Globex", "domain": "globex.com"}),
    )
    .await;
    w.settle().await;
    let engine = w.engine(config());
    w.reset_stats();
    let dry = engine.dry_run().await.expect("dry run");
    assert!(dry.dry_run && dry.run.is_none());
    let creates: usize = dry.plans.iter().map(|p| p.creates().count()).sum();
    assert_eq!(creates, 2, "{dry:?}");
    assert_eq!(dry.created, 0);
    assert_eq!(w.writes(), Vec::<String>::new());
    let r = RecordRef::new(Crm::Close, ObjectKind::Company, lead);
    assert!(w.store.link_by_record(&r).await.expect("store").is_none());
    let key = CursorKey::new(engine.pair(), Crm::Close, ObjectKind::Company);
    assert!(w.store.cursor(&key).await.expect("store").is_none());

    let real = engine.run().await.expect("run");
    assert_eq!(real.created, 2, "the same plan, applied: {real:?}");
}

/// The id of the first contact of Close lead `lead`.
async fn first_contact(w: &World, lead: &str) -> String {
    w.close_get(&format!("lead/{lead}/")).await["contacts"][0]["id"]
        .as_str()
        .expect("contact id")
        .to_string()
}

/// The link holding `r`, which must be linked.
async fn linked(w: &World, r: &RecordRef) -> Link {
    w.store
        .link_by_record(r)
        .await
        .expect("store")
        .expect("linked")
}

/// The create of Close contact `contact` in HubSpot as a run of `engine` interrupted after
/// sending it leaves it: its intent, for link `link`, recorded and marked sent, holding the
/// marker alone (as an older crmkit recorded it).
async fn sent_create(w: &World, engine: &Engine, contact: &str, link: &LinkId) {
    sent_create_of(w, engine, contact, link, None).await;
}

/// [`sent_create`], the intent also holding the fields the create sent (`fields`), as the
/// engine records them.
async fn sent_create_of(
    w: &World,
    engine: &Engine,
    contact: &str,
    link: &LinkId,
    fields: Option<serde_json::Value>,
) {
    let mut payload = json!({"marker": format!("close:person:{contact}")});
    if let Some(fields) = fields {
        payload["fields"] = fields;
    }
    let intent = w
        .store
        .record_intent(
            &NewIntent::new(
                Crm::HubSpot,
                ObjectKind::Person,
                IntentOp::Create,
                "interrupted-run:create",
                payload,
            )
            .pair(engine.pair())
            .link(link.clone()),
        )
        .await
        .expect("store");
    w.store.mark_intent_sent(&intent.id).await.expect("store");
}

#[tokio::test]
async fn a_create_interrupted_after_sending_is_found_by_its_marker_not_made_twice() {
    interrupted_create(Db::Sqlite).await;
}

#[tokio::test]
async fn an_interrupted_create_is_recovered_on_postgres() {
    interrupted_create(Db::Postgres).await;
}

async fn interrupted_create(db: Db) {
    let w = World::on(db).await;
    let engine = w.engine(config());
    // A contact without an email cannot be matched: only its marker can find it again.
    let (first, lead, contact, link) = synced_once(&w, &engine, json!({"name": "No Mail"})).await;
    assert_eq!(first.created, 2);
    let close_ref = RecordRef::new(Crm::Close, ObjectKind::Person, contact.clone());

    // Rewind to the instant after HubSpot created the contact and before its id was stored:
    // the link lacks it and the create's intent is still `sent`.
    let link = w.store.unlink(&link, Crm::HubSpot).await.expect("store");
    sent_create(&w, &engine, &contact, &link.id).await;

    w.settle().await;
    let second = engine.run().await.expect("second run");
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    assert_eq!(second.recovered, 1, "{second:?}");
    assert_eq!(second.created, 0, "nothing made twice: {second:?}");
    assert_eq!(w.hs_sb.count("contacts"), 1);
    let lead_now = w.close_get(&format!("lead/{lead}/")).await;
    assert_eq!(lead_now["contacts"].as_array().map(Vec::len), Some(1));
    let link = linked(&w, &close_ref).await;
    assert!(
        link.crm_id(Crm::HubSpot).is_some(),
        "the link has its HubSpot id back"
    );
    assert!(w.unsettled_intents().await.is_empty());
    w.finish().await;
}

#[tokio::test]
async fn an_edit_to_the_source_before_an_interrupted_create_is_recovered_reaches_it() {
    edit_before_recovery(None).await;
}

#[tokio::test]
async fn an_edit_to_the_source_before_recovery_wins_even_with_the_target_as_primary() {
    edit_before_recovery(Some(Crm::HubSpot)).await;
}

/// Close lead Acme with one contact (`contact`: its fields) synced by a first run of
/// `engine`, which reports no error: that run's report, the lead's and the contact's Close
/// ids and the contact's link.
async fn synced_once(
    w: &World,
    engine: &Engine,
    contact: serde_json::Value,
) -> (crmkit_sync::engine::Report, String, String, Link) {
    let lead = w
        .close_lead(json!({"name": "Acme", "url": "https://acme.com", "contacts": [contact]}))
        .await;
    w.settle().await;
    let first = engine.run().await.expect("first run");
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let contact = first_contact(w, &lead).await;
    let close_ref = RecordRef::new(Crm::Close, ObjectKind::Person, contact.clone());
    let link = linked(w, &close_ref).await;
    (first, lead, contact, link)
}

/// A Close contact ("No Mail", title CTO) synced once into HubSpot under `primary`.
struct Synced {
    w: World,
    engine: Engine,
    contact: String,
    link: Link,
    hs: String,
}

async fn synced_contact(primary: Option<Crm>) -> Synced {
    let w = World::new().await;
    let mut cfg = config();
    cfg.person.conflict.primary = primary;
    let engine = w.engine(cfg);
    let (_, _, contact, link) =
        synced_once(&w, &engine, json!({"name": "No Mail", "title": "CTO"})).await;
    let hs = link.crm_id(Crm::HubSpot).expect("created").to_string();
    Synced {
        w,
        engine,
        contact,
        link,
        hs,
    }
}

/// A Close contact's create in HubSpot interrupted after sending; its title edited in Close
/// before the run that recovers the create: the edit must reach HubSpot (under `primary`,
/// the recovered copy must not overwrite it either).
async fn edit_before_recovery(primary: Option<Crm>) {
    let Synced {
        w,
        engine,
        contact,
        link,
        hs,
    } = synced_contact(primary).await;

    // Rewind to where an interrupted run leaves it: the link made for the create holds the
    // source alone, with no hash or base yet, and the create's intent is `sent`.
    let link = w.store.unlink(&link, Crm::HubSpot).await.expect("store");
    let link = w
        .store
        .update_link(
            &link,
            &LinkUpdate::new()
                .hash(Crm::Close, None)
                .fields(Crm::Close, None),
        )
        .await
        .expect("store");
    sent_create(&w, &engine, &contact, &link.id).await;
    w.close_update(&format!("contact/{contact}/"), json!({"title": "CEO"}))
        .await;

    w.settle().await;
    let second = engine.run().await.expect("second run");
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    assert_eq!(second.recovered, 1, "{second:?}");
    assert_eq!(second.created, 0, "{second:?}");
    assert_eq!(second.updated, 1, "the edit went out: {second:?}");
    let got =
        w.hs.raw(&ApiRequest::get(format!(
            "crm/v3/objects/contacts/{hs}?properties=jobtitle"
        )))
        .await
        .expect("read");
    assert_eq!(got["properties"]["jobtitle"], "CEO", "{got}");
    let close = w.close_get(&format!("contact/{contact}/")).await;
    assert_eq!(close["title"], "CEO", "{close}");
    // And it stays: the next run finds both sides agreeing.
    w.settle().await;
    let third = engine.run().await.expect("third run");
    assert!(third.errors.is_empty() && !third.wrote(), "{third:?}");
}

#[tokio::test]
async fn an_edit_to_the_created_record_before_its_interrupted_create_is_recovered_is_kept() {
    edit_to_the_target_before_recovery(None).await;
}

#[tokio::test]
async fn an_edit_to_the_created_record_before_recovery_is_kept_with_the_source_as_primary() {
    edit_to_the_target_before_recovery(Some(Crm::Close)).await;
}

/// A Close contact's create in HubSpot interrupted after sending (the source's base stored
/// before the create, as the engine does); the created contact's title edited in HubSpot
/// before the run that recovers the create: the edit must not be overwritten by the
/// source's value, and reaches Close as HubSpot's change, whatever the rule.
async fn edit_to_the_target_before_recovery(primary: Option<Crm>) {
    let Synced {
        w,
        engine,
        contact,
        link,
        hs,
    } = synced_contact(primary).await;
    let sent = link.fields(Crm::HubSpot).expect("HubSpot's base").clone();

    // Rewind to where an interrupted run leaves it now: the link holds the source and its
    // base, the created record's id is missing, and the create's intent is `sent`.
    let link = w.store.unlink(&link, Crm::HubSpot).await.expect("store");
    sent_create_of(&w, &engine, &contact, &link.id, Some(sent)).await;
    w.hs_update("contacts", &hs, &[("jobtitle", "VP")]).await;

    w.settle().await;
    let second = engine.run().await.expect("second run");
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    assert_eq!(second.recovered, 1, "{second:?}");
    assert_eq!(second.created, 0, "{second:?}");
    let got =
        w.hs.raw(&ApiRequest::get(format!(
            "crm/v3/objects/contacts/{hs}?properties=jobtitle"
        )))
        .await
        .expect("read");
    assert_eq!(
        got["properties"]["jobtitle"], "VP",
        "not overwritten: {got}"
    );
    let close = w.close_get(&format!("contact/{contact}/")).await;
    assert_eq!(
        close["title"], "VP",
        "HubSpot's edit reached Close: {close}"
    );
    w.settle().await;
    let third = engine.run().await.expect("third run");
    assert!(third.errors.is_empty() && !third.wrote(), "{third:?}");
}

#[tokio::test]
async fn one_run_at_a_time_per_pair() {
    let w = World::new().await;
    let engine = w.engine(config());
    let held = w
        .hold_lease(
            &format!("sync:{}", engine.pair()),
            "someone-else",
            Duration::from_secs(60),
        )
        .await;
    let e = engine
        .run()
        .await
        .expect_err("refused while another run holds the lease");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("another sync"), "{e}");
    w.store.release_lease(&held).await.expect("store");
    engine.run().await.expect("runs once the lease is free");
}

#[tokio::test]
async fn a_create_a_pair_run_left_sent_is_recovered_by_the_three_way_sync_it_grew_into() {
    let t = super::activities::Three::new().await;
    let w = &t.w;
    let pair = w.engine(config());
    // A contact without an email cannot be matched: only its marker can find it again.
    let (first, _, contact, link) = synced_once(w, &pair, json!({"name": "No Mail"})).await;
    assert_eq!(first.created, 2);
    let close_ref = RecordRef::new(Crm::Close, ObjectKind::Person, contact.clone());
    // The pair's run killed after HubSpot created the contact, before its id was stored.
    let link = w.store.unlink(&link, Crm::HubSpot).await.expect("store");
    sent_create(w, &pair, &contact, &link.id).await;

    // The config then grows to three CRMs: the three-way run settles the pair's intent.
    let three = t.engine_with(|c| c.activity.enabled = false);
    w.settle().await;
    let report = three.run().await.expect("three-way run");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.recovered, 1, "{report:?}");
    assert_eq!(w.hs_sb.count("contacts"), 1, "not created again in HubSpot");
    let link = linked(w, &close_ref).await;
    assert!(
        link.crm_id(Crm::HubSpot).is_some(),
        "the link has its HubSpot id back"
    );
    assert!(w.unsettled_intents().await.is_empty());
}
