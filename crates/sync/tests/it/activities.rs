//! Activities across Close, HubSpot and Salesforce: created once in the others under the
//! linked company, edits carried across, quiet when nothing changed, and no duplicate after
//! an interrupted create, whether found by marker (HubSpot, Salesforce) or by natural key
//! (Close's built-in activities hold no marker).

use std::sync::Arc;
use std::time::Duration;

use crmkit_core::{
    Activity, ActivityKind, Connector, Crm, ObjectKind, Record, RecordRef, SecretString,
};
use crmkit_salesforce::{Client as SalesforceClient, SalesforceConnector};
use crmkit_sandbox::salesforce::{Auth, Config as SfConfig, RunningSalesforce, SalesforceSandbox};
use crmkit_store::{IntentOp, LinkUpdate, NewIntent};
use crmkit_sync::config::{Config, PolicyKind};
use crmkit_sync::engine::{Engine, Report};
use serde_json::{Value, json};

use super::World;

/// The two-CRM world plus a Salesforce sandbox and its connector (marker field
/// `External_Id__c`, the external id field every sandbox object has).
pub(super) struct Three {
    /// The two-CRM world.
    pub(super) w: World,
    /// The Salesforce sandbox.
    pub(super) sf_sb: RunningSalesforce,
    sf: Arc<dyn Connector>,
    /// The Salesforce connector of `sf`, to build variants of.
    pub(super) sf_conn: SalesforceConnector,
}

impl Three {
    /// The world, a Salesforce sandbox with no records, and its connector.
    pub(super) async fn new() -> Three {
        let w = World::new().await;
        let sf_sb = SalesforceSandbox::builder()
            .config(SfConfig {
                replication_whole_minutes: false,
                ..SfConfig::default()
            })
            .auth(Auth {
                session_tokens: vec!["t".into()],
                ..Auth::default()
            })
            .companies(0)
            .start()
            .await
            .expect("Salesforce sandbox starts");
        let client = SalesforceClient::builder()
            .instance_url(sf_sb.instance_url())
            .access_token(SecretString::from("t".to_string()))
            .retry(crmkit_core::http::retry::RetryPolicy {
                base_delay: Duration::from_millis(20),
                ..Default::default()
            })
            .build()
            .expect("client");
        let sf_conn = SalesforceConnector::new(client).with_marker_field("External_Id__c");
        let sf: Arc<dyn Connector> = Arc::new(sf_conn.clone());
        Three {
            w,
            sf_sb,
            sf,
            sf_conn,
        }
    }

    fn engine(&self) -> Engine {
        self.engine_with(|_| {})
    }

    /// An engine over the three CRMs, activities on, with `tweak` applied to its config.
    pub(super) fn engine_with(&self, tweak: impl FnOnce(&mut Config)) -> Engine {
        let mut c = Config::new(vec![Crm::Close, Crm::HubSpot, Crm::Salesforce]);
        c.deal.enabled = false;
        c.activity.enabled = true;
        tweak(&mut c);
        let mut conns = self.w.connectors.clone();
        conns.push(self.sf.clone());
        Engine::new(c, self.w.store.clone(), conns).expect("engine")
    }

    /// A Close lead "Acme" linked, after a first run, to the HubSpot company and the
    /// Salesforce Account made for it: the three ids.
    pub(super) async fn acme(&self, engine: &Engine) -> (String, String, String) {
        let lead = self
            .w
            .close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
            .await;
        self.clean_run(engine, "first run").await;
        let company = RecordRef::new(Crm::Close, ObjectKind::Company, lead.clone());
        let hs = self.w.linked_id(&company, Crm::HubSpot).await;
        let account = self.w.linked_id(&company, Crm::Salesforce).await;
        (lead, hs, account)
    }

    /// Lets the changes made so far into the feeds and runs `engine`, which must report no
    /// error: its report (`what` names the run should it fail).
    pub(super) async fn clean_run(&self, engine: &Engine, what: &str) -> Report {
        self.w.settle().await;
        let report = engine.run().await.expect(what);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(report.notices.is_empty(), "{:?}", report.notices);
        report
    }

    /// A [`Three::clean_run`] that must also write nothing.
    async fn quiet_run(&self, engine: &Engine, what: &str) {
        let quiet = self.clean_run(engine, what).await;
        assert!(!quiet.wrote(), "{quiet:?}");
    }

    /// Creates `a` through `crm`'s connector: its id.
    async fn create(&self, crm: Crm, a: Activity) -> String {
        let out = self.conn(crm).create(vec![Record::Activity(a)]).await;
        out.results[0]
            .as_ref()
            .unwrap_or_else(|e| panic!("{crm} activity created: {e}"))
            .id
            .clone()
    }

    /// Writes `edit` into `crm`'s activity `id` through the connector.
    async fn edit(&self, crm: Crm, id: &str, edit: impl FnOnce(&mut Activity)) {
        let mut a = self.activity(crm, id).await;
        edit(&mut a);
        let out = self.conn(crm).update(vec![Record::Activity(a)]).await;
        out.results[0]
            .as_ref()
            .unwrap_or_else(|e| panic!("{crm} activity {id} updated: {e}"));
    }

    /// Runs until nothing is left to do, and checks that nothing was: two runs write and
    /// report nothing, give nothing up, and leave the retry list empty (a record noted for
    /// what a CRM cannot take is never put on it).
    async fn settled(&self, engine: &Engine) {
        for _ in 0..2 {
            self.w.settle().await;
            let quiet = engine.run().await.expect("run");
            assert!(
                quiet.errors.is_empty() && quiet.notices.is_empty(),
                "not reported again: {:?} {:?}",
                quiet.errors,
                quiet.notices
            );
            assert!(!quiet.wrote(), "{quiet:?}");
            assert!(quiet.given_up.is_empty(), "{quiet:?}");
        }
        let listed = self
            .w
            .store
            .retries(engine.pair(), None)
            .await
            .expect("list");
        assert!(listed.is_empty(), "not retried for good: {listed:?}");
    }

    /// Requests that wrote to Salesforce since `since` requests were logged (the connector
    /// reads with GET: queries, records, describes).
    fn sf_writes(&self, since: usize) -> Vec<String> {
        self.sf_sb
            .stats()
            .requests
            .into_iter()
            .skip(since)
            .filter(|r| r.method != "GET")
            .map(|r| format!("salesforce {} {}", r.method, r.path))
            .collect()
    }

    pub(super) fn conn(&self, crm: Crm) -> &dyn Connector {
        match crm {
            Crm::Close => self.w.connectors[0].as_ref(),
            Crm::HubSpot => self.w.connectors[1].as_ref(),
            Crm::Salesforce => self.sf.as_ref(),
        }
    }

    async fn activity(&self, crm: Crm, id: &str) -> Activity {
        match self.conn(crm).get(ObjectKind::Activity, id).await {
            Ok(Record::Activity(a)) => a,
            other => panic!("{crm} activity {id}: {other:?}"),
        }
    }

    /// A Close activity of `kind` (`note`, `call`) on `lead`.
    async fn close_activity(&self, kind: &str, body: Value) -> String {
        let v = self
            .w
            .close
            .raw(&crmkit_core::http::ApiRequest::post(
                format!("activity/{kind}/"),
                body,
            ))
            .await
            .expect("activity created");
        v["id"].as_str().expect("id").to_string()
    }

    /// The Close activities of `lead` of type `kind` (`note`, `call`).
    async fn close_activities(&self, kind: &str, lead: &str) -> Vec<Value> {
        let v = self
            .w
            .close_get(&format!("activity/{kind}/?lead_id={lead}"))
            .await;
        v["data"].as_array().cloned().unwrap_or_default()
    }

    /// A HubSpot note on company `company`, made outside the sync.
    async fn hs_note(&self, company: &str, body: &str) -> String {
        let mut n = Activity::new(ActivityKind::Note);
        n.body = Some(body.into());
        n.company_id = Some(company.into());
        n.occurred_at = Some(chrono::Utc::now());
        let out = self
            .conn(Crm::HubSpot)
            .create(vec![Record::Activity(n)])
            .await;
        out.results[0].as_ref().expect("note created").id.clone()
    }

    /// Rewinds to the instant after `crm` created the copy of `source` and before its id
    /// was stored: the link lacks it and the create's intent is still `sent`.
    async fn interrupt(&self, engine: &Engine, source: &RecordRef, crm: Crm) {
        let id = self.w.linked_id(source, crm).await;
        let mut sent = self.activity(crm, &id).await;
        sent.id = None;
        sent.raw = Value::Null;
        let link = self
            .w
            .store
            .link_by_record(source)
            .await
            .expect("store")
            .expect("linked");
        let link = self.w.store.unlink(&link, crm).await.expect("store");
        // Nor were its hash and values stored.
        let link = self
            .w
            .store
            .update_link(&link, &LinkUpdate::new().hash(crm, None).fields(crm, None))
            .await
            .expect("store");
        let marker = format!("{}:activity:{}", source.crm, source.id);
        let intent = self
            .w
            .store
            .record_intent(
                &NewIntent::new(
                    crm,
                    ObjectKind::Activity,
                    IntentOp::Create,
                    format!("interrupted-run:create:{crm}:{marker}"),
                    json!({"marker": marker, "record": Record::Activity(sent)}),
                )
                .pair(engine.pair())
                .link(link.id.clone()),
            )
            .await
            .expect("store");
        self.w
            .store
            .mark_intent_sent(&intent.id)
            .await
            .expect("store");
    }
}

fn close_ref(id: &str) -> RecordRef {
    RecordRef::new(Crm::Close, ObjectKind::Activity, id)
}

#[tokio::test]
async fn activities_reach_every_crm_under_the_linked_company_and_edits_follow() {
    let t = Three::new().await;
    let engine = t.engine();
    let lead =
        t.w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
            .await;
    let note = t
        .close_activity(
            "note",
            json!({"lead_id": lead, "note": "Intro notes", "activity_at": "2025-03-01T10:15:00.000000+00:00"}),
        )
        .await;
    let call = t
        .close_activity(
            "call",
            json!({"lead_id": lead, "note": "Discussed pricing", "direction": "outbound", "duration": 120,
                   "activity_at": "2025-03-02T09:00:00.000000+00:00"}),
        )
        .await;
    let first = t.clean_run(&engine, "first run").await;
    assert_eq!(
        first.created,
        2 + 4,
        "Acme and two activities, twice: {first:?}"
    );
    let company = RecordRef::new(Crm::Close, ObjectKind::Company, lead.clone());
    let (hs_company, account) = (
        t.w.linked_id(&company, Crm::HubSpot).await,
        t.w.linked_id(&company, Crm::Salesforce).await,
    );

    // HubSpot: a note and a call, associated with the linked company.
    let hs_note = t
        .activity(
            Crm::HubSpot,
            &t.w.linked_id(&close_ref(&note), Crm::HubSpot).await,
        )
        .await;
    assert_eq!(hs_note.kind, ActivityKind::Note);
    assert_eq!(hs_note.body.as_deref(), Some("Intro notes"));
    assert_eq!(hs_note.company_id.as_deref(), Some(hs_company.as_str()));
    let hs_call_id = t.w.linked_id(&close_ref(&call), Crm::HubSpot).await;
    let hs_call = t.activity(Crm::HubSpot, &hs_call_id).await;
    assert_eq!(hs_call.kind, ActivityKind::Call);
    assert_eq!(
        (hs_call.duration_secs, hs_call.direction.as_deref()),
        (Some(120), Some("outbound"))
    );
    assert_eq!(hs_call.company_id.as_deref(), Some(hs_company.as_str()));
    assert_eq!(t.w.hs_sb.count("notes"), 1);

    // Salesforce: Tasks under the linked Account; a note is a completed Task.
    let sf_note_id = t.w.linked_id(&close_ref(&note), Crm::Salesforce).await;
    let sf_note = t.activity(Crm::Salesforce, &sf_note_id).await;
    assert_eq!(sf_note.raw["WhatId"], json!(account));
    assert_eq!(
        (sf_note.kind, sf_note.completed),
        (ActivityKind::Task, Some(true))
    );
    assert_eq!(sf_note.body.as_deref(), Some("Intro notes"));
    let sf_call = t
        .activity(
            Crm::Salesforce,
            &t.w.linked_id(&close_ref(&call), Crm::Salesforce).await,
        )
        .await;
    assert_eq!(sf_call.kind, ActivityKind::Call);
    assert_eq!(sf_call.raw["WhatId"], json!(account));
    assert_eq!(t.sf_sb.count("Task"), 2);

    // A HubSpot note reaches Close (on the lead) and Salesforce.
    let from_hs = t.hs_note(&hs_company, "Sent the proposal").await;
    let second = t.clean_run(&engine, "second run").await;
    assert_eq!(second.created, 2, "{second:?}");
    let hs_ref = RecordRef::new(Crm::HubSpot, ObjectKind::Activity, from_hs);
    let in_close = t
        .activity(Crm::Close, &t.w.linked_id(&hs_ref, Crm::Close).await)
        .await;
    assert_eq!(
        (
            in_close.kind,
            in_close.body.as_deref(),
            in_close.company_id.as_deref()
        ),
        (
            ActivityKind::Note,
            Some("Sent the proposal"),
            Some(lead.as_str())
        )
    );
    assert_eq!(t.close_activities("note", &lead).await.len(), 2);

    // An edit in Close propagates to both.
    t.w.close_update(
        &format!("activity/call/{call}/"),
        json!({"note": "Discussed pricing and terms"}),
    )
    .await;
    let third = t.clean_run(&engine, "third run").await;
    assert_eq!((third.created, third.updated), (0, 2), "{third:?}");
    let hs_call = t.activity(Crm::HubSpot, &hs_call_id).await;
    assert_eq!(hs_call.body.as_deref(), Some("Discussed pricing and terms"));

    // Nothing changed: nothing written.
    t.w.settle().await;
    t.w.reset_stats();
    let fourth = engine.run().await.expect("fourth run");
    assert!(fourth.errors.is_empty(), "{:?}", fourth.errors);
    assert!(!fourth.wrote(), "{fourth:?}");
    assert_eq!(t.w.writes(), Vec::<String>::new());
    assert_eq!((t.w.hs_sb.count("notes"), t.w.hs_sb.count("calls")), (2, 1));
    assert_eq!(t.sf_sb.count("Task"), 3);
}

#[tokio::test]
async fn an_interrupted_activity_create_is_found_by_marker_or_natural_key_not_made_twice() {
    let t = Three::new().await;
    let engine = t.engine();
    let lead =
        t.w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
            .await;
    let note = t
        .close_activity("note", json!({"lead_id": lead, "note": "Intro notes"}))
        .await;
    let note_at = t.activity(Crm::Close, &note).await.occurred_at;
    t.clean_run(&engine, "first run").await;
    let company = RecordRef::new(Crm::Close, ObjectKind::Company, lead.clone());
    let hs_company = t.w.linked_id(&company, Crm::HubSpot).await;
    let from_hs = t.hs_note(&hs_company, "Sent the proposal").await;
    let second = t.clean_run(&engine, "second run").await;
    assert_eq!(second.created, 2, "{second:?}");

    // Interrupted: the Close note's copies in HubSpot and Salesforce (found by marker), and
    // the HubSpot note's copy in Close (no marker: found by lead, type, time and text).
    let hs_ref = RecordRef::new(Crm::HubSpot, ObjectKind::Activity, from_hs);
    t.interrupt(&engine, &close_ref(&note), Crm::HubSpot).await;
    t.interrupt(&engine, &close_ref(&note), Crm::Salesforce)
        .await;
    t.interrupt(&engine, &hs_ref, Crm::Close).await;

    let third = t.clean_run(&engine, "third run").await;
    assert_eq!(third.recovered, 3, "{third:?}");
    assert_eq!(third.created, 0, "nothing made twice: {third:?}");
    // The recovered copies are known as written: the Salesforce Task's day is not taken for
    // a new time of the note, nothing is written back.
    assert_eq!(third.updated, 0, "{third:?}");
    let close_note = t.activity(Crm::Close, &note).await;
    assert_eq!(close_note.occurred_at, note_at);
    assert_eq!(t.close_activities("note", &lead).await.len(), 2);
    assert_eq!(t.w.hs_sb.count("notes"), 2);
    assert_eq!(t.sf_sb.count("Task"), 2);
    assert!(t.w.unsettled_intents().await.is_empty());
    for (r, crm) in [
        (close_ref(&note), Crm::HubSpot),
        (close_ref(&note), Crm::Salesforce),
        (hs_ref, Crm::Close),
    ] {
        t.w.linked_id(&r, crm).await;
    }

    // And a run after that changes nothing.
    t.quiet_run(&engine, "fourth run").await;
}

#[tokio::test]
async fn an_activity_a_crm_cannot_hold_is_reported_not_retried() {
    let w = World::new().await;
    let mut c = super::config();
    c.activity.enabled = true;
    let engine = w.engine(c);
    let (_lead, hs_company) = super::linked_acme(&w, &engine).await;
    let mut meeting = Activity::new(ActivityKind::Meeting);
    meeting.subject = Some("Kick-off".into());
    meeting.company_id = Some(hs_company);
    meeting.occurred_at = Some(chrono::Utc::now());
    let hs = w.connectors[1]
        .create(vec![Record::Activity(meeting)])
        .await;
    hs.results[0].as_ref().expect("meeting created");
    w.settle().await;
    let before = w.close_sb.count("activity");

    let run = engine.run().await.expect("run");
    // A notice: nothing a later run could do, so no failure and nothing to retry.
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.retrying, 0, "{run:?}");
    assert_eq!(run.notices.len(), 1, "{:?}", run.notices);
    assert!(
        run.notices[0].contains("cannot create meetings"),
        "{:?}",
        run.notices
    );
    w.settle().await;
    let again = engine.run().await.expect("run");
    assert!(again.errors.is_empty(), "not retried: {:?}", again.errors);
    assert!(again.notices.is_empty(), "not again: {:?}", again.notices);
    assert_eq!(
        w.close_sb.count("activity"),
        before,
        "nothing made in Close"
    );
}

#[tokio::test]
async fn an_activity_whose_company_is_not_linked_waits_and_is_reported() {
    let w = World::new().await;
    let mut c = super::config();
    c.activity.enabled = true;
    let engine = w.engine(c);
    // Two Close leads fit one HubSpot company: the match goes to review, nothing is linked.
    w.close_lead(json!({"name": "Acme Inc"})).await;
    w.close_lead(json!({"name": "Acme LLC"})).await;
    let hs_company = w.hs_create("companies", json!({"name": "Acme"})).await;
    let mut note = Activity::new(ActivityKind::Note);
    note.body = Some("Call back Monday".into());
    note.company_id = Some(hs_company);
    note.occurred_at = Some(chrono::Utc::now());
    let made = w.connectors[1].create(vec![Record::Activity(note)]).await;
    let note = made.results[0].as_ref().expect("note created").id.clone();
    w.settle().await;
    let before = w.close_sb.count("activity");

    let run = engine.run().await.expect("run");
    assert!(!run.ambiguous.is_empty(), "{run:?}");
    let waiting: Vec<&String> = run.errors.iter().filter(|e| e.contains(&note)).collect();
    assert_eq!(waiting.len(), 1, "{:?}", run.errors);
    assert!(
        waiting[0].contains("its company is not linked there"),
        "{waiting:?}"
    );
    assert_eq!(
        w.close_sb.count("activity"),
        before,
        "not created under no lead"
    );
}

/// Three CRMs: a record deleted in one of them (policy `ignore`) does not stop the other
/// two from syncing, and is not created again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_deleted_in_one_of_three_crms_leaves_the_other_two_syncing() {
    let t = Three::new().await;
    let mut c = Config::new(vec![Crm::Close, Crm::HubSpot, Crm::Salesforce]);
    c.deal.enabled = false;
    c.sync.retry.first_delay_seconds = 0;
    let mut conns = t.w.connectors.clone();
    conns.push(t.sf.clone());
    let engine = Engine::new(c, t.w.store.clone(), conns).expect("engine");
    let lead =
        t.w.close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
            .await;
    t.clean_run(&engine, "first run").await;
    let company = RecordRef::new(Crm::Close, ObjectKind::Company, lead.clone());
    let (hs, account) = (
        t.w.linked_id(&company, Crm::HubSpot).await,
        t.w.linked_id(&company, Crm::Salesforce).await,
    );
    assert_eq!(t.sf_sb.count("Account"), 1);

    // The Account is deleted in Salesforce while the lead is renamed in Close.
    let out =
        t.sf.delete(vec![RecordRef::new(
            Crm::Salesforce,
            ObjectKind::Company,
            account.clone(),
        )])
        .await;
    assert!(out.results[0].is_ok(), "{:?}", out.results);
    t.w.close_update(&format!("lead/{lead}/"), json!({"name": "Acme Renamed"}))
        .await;
    t.w.settle().await;
    for _ in 0..3 {
        engine.run().await.expect("run");
        t.w.settle().await;
    }
    let name = match t.conn(Crm::HubSpot).get(ObjectKind::Company, &hs).await {
        Ok(Record::Company(c)) => c.name,
        other => panic!("HubSpot company {hs}: {other:?}"),
    };
    assert_eq!(name, "Acme Renamed", "Close and HubSpot keep syncing");
    assert_eq!(
        t.sf_sb.count("Account"),
        0,
        "the deleted Account is not made again"
    );
    let quiet = engine.run().await.expect("quiet run");
    assert!(!quiet.wrote(), "{quiet:?}");
}

fn at(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.to_utc())
}

/// Under `primary`, a field only some CRMs' activities have (a Salesforce Task's
/// `completed`, its time kept as a day) is not planned as a write to the CRM that cannot
/// hold it: an edit is counted once per CRM it is sent to, and nothing is sent to Close.
#[tokio::test]
async fn under_primary_an_edit_counts_only_the_updates_sent() {
    let t = Three::new().await;
    let engine = t.engine_with(|c| {
        c.activity.conflict.policy = Some(PolicyKind::Primary);
        c.activity.conflict.primary = Some(Crm::Close);
    });
    let (lead, _, _) = t.acme(&engine).await;
    let call = t
        .close_activity(
            "call",
            json!({"lead_id": lead, "note": "Discussed pricing", "direction": "outbound", "duration": 120,
                   "activity_at": "2025-03-02T09:00:00.000000+00:00"}),
        )
        .await;
    let first = t.clean_run(&engine, "run").await;
    assert_eq!(first.created, 2, "{first:?}");
    // The Salesforce Task holds what a Close call has not: whether it is done, and a day
    // instead of a time.
    let sf_id = t.w.linked_id(&close_ref(&call), Crm::Salesforce).await;
    let sf_call = t.activity(Crm::Salesforce, &sf_id).await;
    assert_eq!(sf_call.completed, Some(false));
    assert_eq!(sf_call.occurred_at, at("2025-03-02T00:00:00Z"));
    assert_eq!(
        (sf_call.duration_secs, sf_call.direction.as_deref()),
        (Some(120), Some("outbound"))
    );

    t.w.close_update(
        &format!("activity/call/{call}/"),
        json!({"note": "Discussed pricing and terms"}),
    )
    .await;
    t.w.settle().await;
    t.w.reset_stats();
    let sf_before = t.sf_sb.stats().requests.len();
    let second = engine.run().await.expect("run");
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    let planned: Vec<(Crm, Vec<String>)> = second
        .plans
        .iter()
        .flat_map(|p| p.updates())
        .map(|(_, u)| {
            (
                u.target.crm,
                u.changes.iter().map(|c| c.field.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(
        planned,
        vec![
            (Crm::HubSpot, vec!["body".to_string()]),
            (Crm::Salesforce, vec!["body".to_string()]),
        ],
        "no `completed` for Close, no time of day for the Task"
    );
    assert_eq!((second.created, second.updated), (0, 2), "{second:?}");
    let writes = t.w.writes();
    assert!(
        writes.iter().all(|w| !w.starts_with("close")),
        "nothing sent to Close: {writes:?}"
    );
    assert_eq!(writes.len(), 1, "the HubSpot call: {writes:?}");
    assert_eq!(t.sf_writes(sf_before).len(), 1, "the Salesforce Task");
    let sf_call = t.activity(Crm::Salesforce, &sf_id).await;
    assert_eq!(sf_call.body.as_deref(), Some("Discussed pricing and terms"));
    let close_call = t.activity(Crm::Close, &call).await;
    assert_eq!(close_call.occurred_at, at("2025-03-02T09:00:00Z"));

    t.quiet_run(&engine, "run").await;
}

/// An email logged in Close reaches HubSpot as an email engagement and Salesforce as a
/// Task of the Email subtype, under the linked company. Close keeps a sent email as it is
/// (only drafts can be modified): an edit made in HubSpot reaches Salesforce, and Close's
/// refusal is reported once, not retried as a failure.
#[tokio::test]
async fn an_email_reaches_every_crm_and_an_edit_follows_where_it_can() {
    let t = Three::new().await;
    // Retries due at the next run: a record noted would be read again were it listed.
    let engine = t.engine_with(|c| c.sync.retry.first_delay_seconds = 0);
    let (lead, hs_company, account) = t.acme(&engine).await;
    let email = t
        .close_activity(
            "email",
            json!({"lead_id": lead, "status": "sent", "subject": "Proposal", "body_text": "Attached, as promised.",
                   "activity_at": "2025-03-03T08:30:00.000000+00:00"}),
        )
        .await;
    let first = t.clean_run(&engine, "run").await;
    assert_eq!(first.created, 2, "{first:?}");

    let hs_id = t.w.linked_id(&close_ref(&email), Crm::HubSpot).await;
    let hs = t.activity(Crm::HubSpot, &hs_id).await;
    assert_eq!(
        (
            hs.kind,
            hs.subject.as_deref(),
            hs.body.as_deref(),
            hs.direction.as_deref()
        ),
        (
            ActivityKind::Email,
            Some("Proposal"),
            Some("Attached, as promised."),
            Some("outbound")
        )
    );
    assert_eq!(hs.occurred_at, at("2025-03-03T08:30:00Z"));
    assert_eq!(hs.company_id.as_deref(), Some(hs_company.as_str()));
    assert_eq!(t.w.hs_sb.count("emails"), 1);
    let sf_id = t.w.linked_id(&close_ref(&email), Crm::Salesforce).await;
    let sf = t.activity(Crm::Salesforce, &sf_id).await;
    assert_eq!(
        (sf.kind, sf.subject.as_deref(), sf.body.as_deref()),
        (
            ActivityKind::Email,
            Some("Proposal"),
            Some("Attached, as promised.")
        )
    );
    assert_eq!(sf.raw["TaskSubtype"], json!("Email"));
    assert_eq!(sf.raw["WhatId"], json!(account));
    assert_eq!(
        sf.occurred_at,
        at("2025-03-03T00:00:00Z"),
        "a Task keeps the day"
    );

    // Edited in HubSpot: Salesforce follows; the sent Close email cannot be modified.
    t.w.hs_update("emails", &hs_id, &[("hs_email_subject", "Proposal v2")])
        .await;
    t.w.settle().await;
    t.w.reset_stats();
    let second = engine.run().await.expect("run");
    assert_eq!((second.created, second.updated), (0, 1), "{second:?}");
    assert!(second.errors.is_empty(), "a notice only: {second:?}");
    assert_eq!(second.notices.len(), 1, "{:?}", second.notices);
    assert!(
        second.notices[0].contains(&email) && second.notices[0].contains("only draft emails"),
        "{:?}",
        second.notices
    );
    assert!(
        t.w.writes().iter().all(|w| !w.starts_with("close")),
        "{:?}",
        t.w.writes()
    );
    let sf = t.activity(Crm::Salesforce, &sf_id).await;
    assert_eq!(sf.subject.as_deref(), Some("Proposal v2"));
    let close = t.activity(Crm::Close, &email).await;
    assert_eq!(close.subject.as_deref(), Some("Proposal"));

    // Nothing changed since: nothing written, nothing reported again.
    t.settled(&engine).await;
    // The email planned again (another edit in HubSpot): the subject Close keeps, which no
    // edit can change, is no conflict to decide.
    t.w.hs_update(
        "emails",
        &hs_id,
        &[("hs_email_text", "Attached, as promised. v2")],
    )
    .await;
    t.w.settle().await;
    let third = engine.run().await.expect("run");
    assert_eq!(third.updated, 1, "{third:?}");
    assert!(third.conflicts.is_empty(), "{third:?}");
    let open = t.w.store.open_conflicts(10).await.expect("store");
    assert!(open.is_empty(), "{open:?}");
}

/// A Salesforce Event reaches HubSpot as a meeting under the linked company, and an edit
/// follows; Close's API creates no meetings, which is reported when the Event changes,
/// never retried into a failure.
#[tokio::test]
async fn a_salesforce_event_becomes_a_hubspot_meeting_and_close_reports_it_once() {
    let t = Three::new().await;
    // Retries due at the next run: a record noted would be read again were it listed.
    let engine = t.engine_with(|c| c.sync.retry.first_delay_seconds = 0);
    let (_lead, hs_company, account) = t.acme(&engine).await;
    let mut event = Activity::new(ActivityKind::Meeting);
    event.subject = Some("Kick-off".into());
    event.body = Some("Agenda: scope, dates".into());
    event.occurred_at = at("2025-03-05T14:00:00Z");
    event.duration_secs = Some(1800);
    event.company_id = Some(account.clone());
    let event = t.create(Crm::Salesforce, event).await;
    assert_eq!(t.sf_sb.count("Event"), 1);
    let close_before = t.w.close_sb.count("activity");
    t.w.settle().await;

    let first = engine.run().await.expect("run");
    assert_eq!(first.created, 1, "{first:?}");
    assert!(first.errors.is_empty(), "a notice only: {first:?}");
    assert_eq!(first.notices.len(), 1, "{:?}", first.notices);
    assert!(
        first.notices[0].contains(&event) && first.notices[0].contains("cannot create meetings"),
        "{:?}",
        first.notices
    );
    let sf_ref = RecordRef::new(Crm::Salesforce, ObjectKind::Activity, event.clone());
    let hs_id = t.w.linked_id(&sf_ref, Crm::HubSpot).await;
    let hs = t.activity(Crm::HubSpot, &hs_id).await;
    assert_eq!(
        (hs.kind, hs.subject.as_deref(), hs.body.as_deref()),
        (
            ActivityKind::Meeting,
            Some("Kick-off"),
            Some("Agenda: scope, dates")
        )
    );
    assert_eq!(hs.occurred_at, at("2025-03-05T14:00:00Z"));
    assert_eq!(hs.company_id.as_deref(), Some(hs_company.as_str()));
    assert_eq!(t.w.hs_sb.count("meetings"), 1);

    t.edit(Crm::Salesforce, &event, |a| {
        a.subject = Some("Kick-off (moved)".into());
    })
    .await;
    t.w.settle().await;
    let second = engine.run().await.expect("run");
    assert_eq!((second.created, second.updated), (0, 1), "{second:?}");
    assert!(second.errors.is_empty(), "{second:?}");
    assert!(
        second
            .notices
            .iter()
            .all(|e| e.contains("cannot create meetings")),
        "{:?}",
        second.notices
    );
    let hs = t.activity(Crm::HubSpot, &hs_id).await;
    assert_eq!(hs.subject.as_deref(), Some("Kick-off (moved)"));

    t.settled(&engine).await;
    assert_eq!(t.w.close_sb.count("activity"), close_before);
    assert_eq!(t.w.hs_sb.count("meetings"), 1);
}

/// A HubSpot task reaches Salesforce as a Task under the linked Account, and marking it
/// done there follows; Close tasks are not activities, which is reported, not retried.
#[tokio::test]
async fn a_hubspot_task_becomes_a_salesforce_task_and_its_completion_follows() {
    let t = Three::new().await;
    // Retries due at the next run: a record noted would be read again were it listed.
    let engine = t.engine_with(|c| c.sync.retry.first_delay_seconds = 0);
    let (_lead, hs_company, account) = t.acme(&engine).await;
    let mut task = Activity::new(ActivityKind::Task);
    task.subject = Some("Send the contract".into());
    task.body = Some("Before Friday".into());
    task.completed = Some(false);
    task.occurred_at = at("2025-03-07T09:00:00Z");
    task.company_id = Some(hs_company.clone());
    let task = t.create(Crm::HubSpot, task).await;
    let close_before = t.w.close_sb.count("activity");
    t.w.settle().await;

    let first = engine.run().await.expect("run");
    assert_eq!(first.created, 1, "{first:?}");
    assert!(first.errors.is_empty(), "a notice only: {first:?}");
    assert_eq!(first.notices.len(), 1, "{:?}", first.notices);
    assert!(
        first.notices[0].contains(&task)
            && first.notices[0].contains("Close tasks are not activities"),
        "{:?}",
        first.notices
    );
    let hs_ref = RecordRef::new(Crm::HubSpot, ObjectKind::Activity, task.clone());
    let sf_id = t.w.linked_id(&hs_ref, Crm::Salesforce).await;
    let sf = t.activity(Crm::Salesforce, &sf_id).await;
    assert_eq!(
        (
            sf.kind,
            sf.subject.as_deref(),
            sf.body.as_deref(),
            sf.completed
        ),
        (
            ActivityKind::Task,
            Some("Send the contract"),
            Some("Before Friday"),
            Some(false)
        )
    );
    assert_eq!(sf.raw["WhatId"], json!(account));
    assert_eq!(sf.occurred_at, at("2025-03-07T00:00:00Z"));

    t.w.hs_update("tasks", &task, &[("hs_task_status", "COMPLETED")])
        .await;
    t.w.settle().await;
    let second = engine.run().await.expect("run");
    assert_eq!((second.created, second.updated), (0, 1), "{second:?}");
    let sf = t.activity(Crm::Salesforce, &sf_id).await;
    assert_eq!(
        (sf.completed, sf.raw["Status"].clone()),
        (Some(true), json!("Completed"))
    );

    t.settled(&engine).await;
    assert_eq!(t.w.close_sb.count("activity"), close_before);
    assert_eq!(t.w.close_sb.count("task"), 0, "nor made a Close task");
}
