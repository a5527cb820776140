//! An edit someone makes between our write and our read-back is not taken as synced.

use std::sync::Arc;

use async_trait::async_trait;
use crmkit_core::connector::{BatchOutcome, Marked};
use crmkit_core::http::ApiRequest;
use crmkit_core::{Change, ChangeCursor, Connector, Crm, ObjectKind, Record, RecordRef, Result};
use crmkit_hubspot::HubSpotConnector;
use crmkit_sandbox::faults::Faults;
use crmkit_sync::engine::Engine;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde_json::json;

use super::activities::Three;
use super::{World, config, hs_company, linked_acme, linked_bob};

/// A person's edit of a record, made right after the engine's update of it answered.
type Edit = Box<dyn Fn(RecordRef) -> BoxFuture<'static, ()> + Send + Sync>;

/// A real connector, with a person editing each record the engine updates right after the
/// update answered (before the engine reads it back).
struct EditAfterUpdate {
    inner: Arc<dyn Connector>,
    edit: Edit,
}

#[async_trait]
impl Connector for EditAfterUpdate {
    fn crm(&self) -> Crm {
        self.inner.crm()
    }
    fn changes(
        &self,
        kind: ObjectKind,
        since: Option<ChangeCursor>,
    ) -> BoxStream<'_, Result<Change>> {
        self.inner.changes(kind, since)
    }
    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Record> {
        self.inner.get(kind, id).await
    }
    async fn create(&self, records: Vec<Record>) -> BatchOutcome {
        self.inner.create(records).await
    }
    async fn create_marked(&self, records: Vec<Marked>) -> BatchOutcome {
        self.inner.create_marked(records).await
    }
    async fn find_by_marker(&self, kind: ObjectKind, marker: &str) -> Result<Option<RecordRef>> {
        self.inner.find_by_marker(kind, marker).await
    }
    async fn update(&self, records: Vec<Record>) -> BatchOutcome {
        let out = self.inner.update(records).await;
        for r in out.succeeded() {
            (self.edit)(r.clone()).await;
        }
        out
    }
    async fn delete(&self, refs: Vec<RecordRef>) -> BatchOutcome {
        self.inner.delete(refs).await
    }
    fn search(&self, kind: ObjectKind, query: &str) -> BoxStream<'_, Result<Record>> {
        self.inner.search(kind, query)
    }
}

#[tokio::test]
async fn an_edit_between_our_write_and_our_read_back_is_synced_next_run() {
    let w = World::new().await;
    let (close, hs) = linked_acme(&w, &w.engine(config())).await;
    w.close_update(&format!("lead/{close}/"), json!({"name": "Acme Inc"}))
        .await;
    w.settle().await;
    let racing = Engine::new(
        config(),
        w.store.clone(),
        vec![
            w.connectors[0].clone(),
            Arc::new(EditAfterUpdate {
                inner: Arc::new(
                    HubSpotConnector::new(w.hs.clone())
                        .with_marker_property_for(ObjectKind::Person, "crmkit_id"),
                ),
                // Someone edits the company's description in HubSpot.
                edit: {
                    let hs = w.hs.clone();
                    Box::new(move |r: RecordRef| {
                        let hs = hs.clone();
                        Box::pin(async move {
                            let props: crmkit_hubspot::Properties =
                                [("description".to_string(), "Edited in HubSpot".to_string())]
                                    .into_iter()
                                    .collect();
                            hs.objects("companies")
                                .update(&r.id, &props)
                                .await
                                .expect("the person's edit");
                        })
                    })
                },
            }),
        ],
    )
    .expect("engine");
    let first = racing.run().await.expect("run");
    assert_eq!(first.updated, 1, "{first:?}");
    assert_eq!(
        first.edited_meanwhile,
        vec![RecordRef::new(
            Crm::HubSpot,
            ObjectKind::Company,
            hs.clone()
        )],
        "{first:?}"
    );
    let (name, description) = hs_company(&w, &hs).await;
    assert_eq!(name, "Acme Inc");
    assert_eq!(description, "Edited in HubSpot");

    // The edit is HubSpot's change: the next run brings it to Close.
    w.settle().await;
    let second = w.engine(config()).run().await.expect("run");
    assert!(second.errors.is_empty(), "{second:?}");
    let lead = w.close_get(&format!("lead/{close}/")).await;
    assert_eq!(lead["description"], "Edited in HubSpot", "{second:?}");
    assert_eq!(lead["display_name"], "Acme Inc");
}

#[tokio::test]
async fn a_phone_changed_meanwhile_is_an_edit_not_normalisation() {
    let w = World::new().await;
    let (contact, hs) = linked_bob(&w, &w.engine(config())).await;

    // A US number without a country code in HubSpot, which Close would store as
    // +16505550100; someone gives the contact a London number in Close before our
    // read-back.
    w.hs_update("contacts", &hs, &[("phone", "(650) 555-0100")])
        .await;
    w.settle().await;
    let racing = Engine::new(
        config(),
        w.store.clone(),
        vec![
            Arc::new(EditAfterUpdate {
                inner: Arc::new(w.close_conn.clone()),
                // Someone gives the contact another phone number in Close.
                edit: {
                    let close = w.close.clone();
                    Box::new(move |r: RecordRef| {
                        let close = close.clone();
                        Box::pin(async move {
                            if r.object == ObjectKind::Person {
                                close
                                    .raw(&ApiRequest::put(
                                        format!("contact/{}/", r.id),
                                        json!({"phones": [{"phone": "+44 20 7946 0958",
                                            "type": "office"}]}),
                                    ))
                                    .await
                                    .expect("the person's edit");
                            }
                        })
                    })
                },
            }),
            w.connectors[1].clone(),
        ],
    )
    .expect("engine");
    let second = racing.run().await.expect("run");
    assert!(second.errors.is_empty(), "{second:?}");
    assert_eq!(
        second.edited_meanwhile,
        vec![RecordRef::new(
            Crm::Close,
            ObjectKind::Person,
            contact.clone()
        )],
        "{second:?}"
    );
    let phone = |v: &serde_json::Value| v["phones"][0]["phone"].clone();
    assert_eq!(
        phone(&w.close_get(&format!("contact/{contact}/")).await),
        "+442079460958"
    );

    // The London number is Close's change: the next run brings it to HubSpot.
    w.settle().await;
    let third = w.engine(config()).run().await.expect("run");
    assert!(third.errors.is_empty(), "{third:?}");
    assert_eq!(hs_phone(&w, &hs).await, "+442079460958", "{third:?}");
}

/// Sends HubSpot's `phone` for the linked contact through the engine to Close: Close's
/// phone after the run, and the run's report.
async fn phone_to_close(
    w: &World,
    hs: &str,
    contact: &str,
    phone: &str,
) -> (serde_json::Value, crmkit_sync::engine::Report) {
    w.hs_update("contacts", hs, &[("phone", phone)]).await;
    w.settle().await;
    let run = w.engine(config()).run().await.expect("run");
    assert!(run.errors.is_empty(), "{run:?}");
    assert!(run.edited_meanwhile.is_empty(), "{phone}: {run:?}");
    let now = w.close_get(&format!("contact/{contact}/")).await["phones"][0]["phone"].clone();
    (now, run)
}

#[tokio::test]
async fn close_e164_of_a_number_we_sent_stays_quiet_and_keeps_the_senders_text() {
    let w = World::new().await;
    let (contact, hs) = linked_bob(&w, &w.engine(config())).await;
    let learned = || async {
        w.store
            .account_fact(Crm::Close, "phone_country_code")
            .await
            .expect("store")
    };

    // The sandbox (and Close) reads a leading country code as the number's own: its E.164
    // is no edit, so nothing is written back over HubSpot's text, and the next run writes
    // nothing. It does not show the account's code.
    let sent = "1 650 555 0100";
    let (now, _) = phone_to_close(&w, &hs, &contact, sent).await;
    assert_eq!(now, "+16505550100");
    assert_eq!(hs_phone(&w, &hs).await, sent);
    w.settle().await;
    w.reset_stats();
    let again = w.engine(config()).run().await.expect("run");
    assert!(again.errors.is_empty(), "{again:?}");
    assert_eq!(w.writes(), Vec::<String>::new(), "{again:?}");
    assert_eq!(hs_phone(&w, &hs).await, sent);
    assert_eq!(learned().await, None);

    // A number without a code gets the account's (`+1` in the sandbox), which is learned.
    let (now, _) = phone_to_close(&w, &hs, &contact, "(650) 555-0100").await;
    assert_eq!(now, "+16505550100");
    assert_eq!(learned().await.as_deref(), Some("1"));
    w.settle().await;
    w.reset_stats();
    let again = w.engine(config()).run().await.expect("run");
    assert!(again.errors.is_empty(), "{again:?}");
    assert_eq!(w.writes(), Vec::<String>::new(), "{again:?}");

    // Another field changed later: the contact is planned again, and the two phones, held
    // apart by nobody's change, are one number with the learned code, not a conflict.
    w.hs_update("contacts", &hs, &[("jobtitle", "CTO")]).await;
    w.settle().await;
    let later = w.engine(config()).run().await.expect("run");
    assert!(later.errors.is_empty(), "{later:?}");
    assert!(later.conflicts.is_empty(), "{:?}", later.conflicts);
    assert_eq!(hs_phone(&w, &hs).await, "(650) 555-0100");
    assert_eq!(
        w.close_get(&format!("contact/{contact}/")).await["title"],
        "CTO"
    );
}

/// A HubSpot contact of the linked Acme with the phone `650-555-0100` (which Close keeps as
/// `+16505550100`), created in Close by a run in which Close answered every read of a
/// contact with 500s, so the create's read-back failed: the HubSpot and Close contact ids,
/// and the run.
async fn created_unread(w: &World) -> (String, String, crmkit_sync::engine::Report) {
    let (_, hs_company) = linked_acme(w, &w.engine(config())).await;
    let hs = w
        .hs_create_linked(
            "contacts",
            json!({"email": "ann@acme.com", "firstname": "Ann", "lastname": "Lee",
                   "phone": "650-555-0100"}),
            Some(&hs_company),
        )
        .await;
    w.settle().await;
    w.close_sb.set_faults(Faults {
        rate_500: 1.0,
        route: Some("GET /contact/cont_*".into()),
        ..Faults::default()
    });
    let run = w.engine(config()).run().await.expect("run");
    w.close_sb.set_faults(Faults::default());
    assert_eq!(run.created, 1, "{run:?}");
    assert!(
        run.errors.iter().any(|e| e.contains("reading back")),
        "{run:?}"
    );
    let person = RecordRef::new(Crm::HubSpot, ObjectKind::Person, hs.clone());
    let contact = w.linked_id(&person, Crm::Close).await;
    (hs, contact, run)
}

/// HubSpot contact `id`'s `phone`.
async fn hs_phone(w: &World, id: &str) -> serde_json::Value {
    w.hs.raw(&ApiRequest::get(format!(
        "crm/v3/objects/contacts/{id}?properties=phone"
    )))
    .await
    .expect("read")["properties"]["phone"]
        .clone()
}

#[tokio::test]
async fn a_create_whose_read_back_failed_does_not_overwrite_its_source_with_the_crms_form() {
    let w = World::new().await;
    let (hs, contact, _) = created_unread(&w).await;

    // Under last_write_wins Close's `+16505550100` is the latest write, but it is Close's
    // keeping of the number sent, not an edit: HubSpot keeps its own text.
    w.settle().await;
    let second = w.engine(config()).run().await.expect("run");
    assert!(second.errors.is_empty(), "{second:?}");
    assert_eq!(hs_phone(&w, &hs).await, "650-555-0100", "{second:?}");
    let close_phone = || async {
        w.close_get(&format!("contact/{contact}/")).await["phones"][0]["phone"].clone()
    };
    assert_eq!(close_phone().await, "+16505550100");
    w.settle().await;
    w.reset_stats();
    let quiet = w.engine(config()).run().await.expect("run");
    assert!(quiet.errors.is_empty(), "{quiet:?}");
    assert_eq!(w.writes(), Vec::<String>::new(), "{quiet:?}");
}

#[tokio::test]
async fn a_create_whose_group_failed_elsewhere_does_not_overwrite_its_source_with_the_crms_form() {
    let t = Three::new().await;
    let engine = t.engine_with(|_| {});
    let (_, hs_company, _) = t.acme(&engine).await;
    let hs =
        t.w.hs_create_linked(
            "contacts",
            json!({"email": "ann@acme.com", "firstname": "Ann", "lastname": "Lee",
                   "phone": "650-555-0100"}),
            Some(&hs_company),
        )
        .await;
    t.w.settle().await;
    // Created in Close, but Salesforce fails its create: the group fails.
    t.sf_sb.set_faults(Faults {
        rate_500: 1.0,
        route: Some("PATCH /services/data/v59.0/composite/sobjects/Contact/*".into()),
        ..Faults::default()
    });
    let first = engine.run().await.expect("run");
    t.sf_sb.set_faults(Faults::default());
    assert_eq!(first.created, 1, "{first:?}");
    assert!(!first.errors.is_empty(), "{first:?}");

    // Salesforce gets it now; Close's `+16505550100` overwrites neither HubSpot's text nor
    // what Salesforce is given.
    t.w.settle().await;
    let second = engine.run().await.expect("run");
    assert!(second.errors.is_empty(), "{second:?}");
    assert_eq!(second.created, 1, "{second:?}");
    assert_eq!(hs_phone(&t.w, &hs).await, "650-555-0100", "{second:?}");
}

#[tokio::test]
async fn an_edit_of_a_create_whose_read_back_failed_is_synced() {
    let w = World::new().await;
    let (hs, contact, _) = created_unread(&w).await;

    // Someone gives the created contact another number in Close before the next run: an
    // edit, synced to HubSpot even with HubSpot primary (the rule only settles edits that
    // disagree, and HubSpot made none).
    w.close_update(
        &format!("contact/{contact}/"),
        json!({"phones": [{"phone": "+44 20 7946 0958", "type": "office"}]}),
    )
    .await;
    w.settle().await;
    let mut c = config();
    c.person.conflict.primary = Some(Crm::HubSpot);
    let second = w.engine(c).run().await.expect("run");
    assert!(second.errors.is_empty(), "{second:?}");
    assert_eq!(hs_phone(&w, &hs).await, "+442079460958", "{second:?}");
}
