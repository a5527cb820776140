//! `SalesforceConnector` against the sandbox: the change feed with resume and tombstones,
//! patches, idempotent creates, activities, per-record outcomes.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use crmkit_core::connector::{Change, Marked};
use crmkit_core::{
    Activity, ActivityKind, Company, Connector, Deal, ErrorKind, Money, ObjectKind, Person, Record,
    RecordRef,
};
use crmkit_salesforce::SalesforceConnector;
use futures::TryStreamExt;
use serde_json::Value;

use crate::sandbox::{jwt_client, strict};

fn company(name: &str) -> Record {
    Record::Company(Company {
        name: name.into(),
        url: Some(format!("https://www.{}.example", name.to_lowercase())),
        ..Company::default()
    })
}

/// Waits until the sandbox's clock is in a later second, so the feed's bound (the `Date`
/// header, whole seconds) covers what was just written.
async fn next_second() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

#[tokio::test]
async fn the_feed_reads_everything_in_keyset_pages_resumes_and_reports_deletions() {
    let sandbox = strict(40, 2000).await;
    let conn = SalesforceConnector::new(jwt_client(&sandbox)).with_page_size(3);
    next_second().await;
    let mut first: Vec<Change> = conn
        .changes(ObjectKind::Company, None)
        .try_collect()
        .await
        .expect("feed");
    let cursor = first.last().expect("changes").cursor().clone();
    // The seeded accounts were last changed long before the run's bound: it ends on a
    // checkpoint there.
    assert!(matches!(first.pop(), Some(Change::Checkpoint { .. })));
    let accounts = sandbox.count("Account");
    assert!(accounts > 3);
    assert_eq!(first.len(), accounts, "every account once");
    let ids: HashSet<&str> = first.iter().filter_map(Change::id).collect();
    assert_eq!(ids.len(), accounts);
    let mut last_time = None;
    for c in &first {
        let Change::Upsert { record, .. } = c else {
            panic!("only upserts on a first run: {c:?}")
        };
        assert!(record.updated_at() >= last_time, "oldest first");
        last_time = record.updated_at();
    }

    // Nothing changed: a resumed run re-reads at most the overlap window.
    let again: Vec<Change> = conn
        .changes(ObjectKind::Company, Some(cursor.clone()))
        .try_collect()
        .await
        .expect("feed");
    assert!(
        again
            .iter()
            .all(|c| matches!(c, Change::Upsert { .. } | Change::Checkpoint { .. }))
    );

    let created = conn.create(vec![company("Fresh")]).await;
    let fresh = created.results[0].as_ref().expect("created").clone();
    let victim = first[0].id().expect("id").to_string();
    let gone = conn
        .delete(vec![RecordRef::new(
            crmkit_core::Crm::Salesforce,
            ObjectKind::Company,
            victim.clone(),
        )])
        .await;
    assert!(gone.results[0].is_ok());
    next_second().await;
    let later: Vec<Change> = conn
        .changes(ObjectKind::Company, Some(cursor))
        .try_collect()
        .await
        .expect("feed");
    let tombstones: Vec<&str> = later
        .iter()
        .filter_map(|c| match c {
            Change::Deleted { record, .. } => Some(record.id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(tombstones, vec![victim.as_str()]);
    assert!(
        matches!(later.first(), Some(Change::Deleted { .. })),
        "tombstones come first"
    );
    assert!(later.iter().any(|c| c.id() == Some(fresh.id.as_str())));
    assert!(!later.iter().any(
        |c| matches!(c, Change::Upsert { record, .. } if record.id() == Some(victim.as_str()))
    ));
    let foreign = crmkit_core::ChangeCursor("hs1.{}".into());
    let e = conn
        .changes(ObjectKind::Company, Some(foreign))
        .try_collect::<Vec<_>>()
        .await
        .expect_err("foreign cursor");
    assert_eq!(e.kind(), ErrorKind::Validation);
}

#[tokio::test]
async fn the_feed_reads_every_batch_when_salesforce_answers_shorter_than_the_limit() {
    // Batches of 2 rows under a LIMIT of 5: each keyset query is answered in three
    // batches, and only the whole answer says whether the slice is finished.
    let sandbox = strict(23, 2).await;
    let conn = SalesforceConnector::new(jwt_client(&sandbox)).with_page_size(5);
    next_second().await;
    let first: Vec<Change> = conn
        .changes(ObjectKind::Company, None)
        .try_collect()
        .await
        .expect("feed");
    let first: Vec<Change> = first
        .into_iter()
        .filter(|c| !matches!(c, Change::Checkpoint { .. }))
        .collect();
    let accounts = sandbox.count("Account");
    assert!(accounts > 5);
    let ids: HashSet<&str> = first.iter().filter_map(Change::id).collect();
    assert_eq!(ids.len(), accounts, "no account skipped");
    assert_eq!(first.len(), accounts, "every account once");
}

#[tokio::test]
async fn a_cursor_older_than_the_deletion_log_stops_for_a_resync_and_stays_put() {
    let sandbox = strict(3, 2000).await;
    let conn = SalesforceConnector::new(jwt_client(&sandbox));
    next_second().await;
    let first: Vec<Change> = conn
        .changes(ObjectKind::Company, None)
        .try_collect()
        .await
        .expect("feed");
    let cursor = first.last().expect("changes").cursor().clone();
    let json = cursor.0.strip_prefix("sf1.").expect("salesforce cursor");
    let mut state: Value = serde_json::from_str(json).expect("cursor state");
    // Deletions last read 20 days ago: getDeleted no longer answers for all of them.
    let old = Utc::now() - chrono::Duration::days(20);
    state["d"] = Value::String(old.to_rfc3339());
    let stale = crmkit_core::ChangeCursor(format!("sf1.{state}"));
    let mut feed = conn.changes(ObjectKind::Company, Some(stale));
    let e = match feed.try_next().await {
        Err(e) => e,
        Ok(c) => panic!("a stale cursor must stop the run before any change: {c:?}"),
    };
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.to_string().contains("full resync"), "{e}");
}

#[tokio::test]
async fn a_quiet_feed_keeps_its_cursor_fresh_past_the_deletion_window() {
    let sandbox = strict(3, 2000).await;
    // The org's clock is moved weeks ahead of this machine's.
    let conn = SalesforceConnector::new(jwt_client(&sandbox))
        .with_clock_tolerance(Duration::from_secs(30 * 86_400));
    next_second().await;
    let first: Vec<Change> = conn
        .changes(ObjectKind::Company, None)
        .try_collect()
        .await
        .expect("feed");
    let mut cursor = first.last().expect("changes").cursor().clone();
    // 18 days without a single change, read every 6 days: longer than getDeleted keeps
    // deletions, so only checkpoints keep the cursor usable.
    for _ in 0..3 {
        sandbox.advance_clock(Duration::from_secs(6 * 86_400));
        let quiet: Vec<Change> = conn
            .changes(ObjectKind::Company, Some(cursor.clone()))
            .try_collect()
            .await
            .expect("a quiet run works");
        assert!(
            quiet.iter().all(|c| matches!(c, Change::Checkpoint { .. })),
            "nothing changed: {quiet:?}"
        );
        cursor = quiet
            .last()
            .expect("a quiet run still moves its cursor")
            .cursor()
            .clone();
    }
    let created = conn.create(vec![company("Awake")]).await;
    let fresh = created.results[0].as_ref().expect("created").clone();
    let victim = first[0].id().expect("id").to_string();
    let gone = conn
        .delete(vec![RecordRef::new(
            crmkit_core::Crm::Salesforce,
            ObjectKind::Company,
            victim.clone(),
        )])
        .await;
    assert!(gone.results[0].is_ok());
    next_second().await;
    let later: Vec<Change> = conn
        .changes(ObjectKind::Company, Some(cursor.clone()))
        .try_collect()
        .await
        .expect("the feed still works after 18 quiet days");
    assert!(
        later
            .iter()
            .any(|c| matches!(c, Change::Deleted { record, .. } if record.id == victim))
    );
    assert!(later.iter().any(|c| c.id() == Some(fresh.id.as_str())));

    // Deletions purged from the log (the Recycle Bin emptied) since the cursor: resync.
    let cursor = later.last().expect("changes").cursor().clone();
    next_second().await;
    sandbox.purge_deletions();
    let e = conn
        .changes(ObjectKind::Company, Some(cursor))
        .try_collect::<Vec<_>>()
        .await
        .expect_err("purged deletions");
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.to_string().contains("full resync"), "{e}");
}

#[tokio::test]
async fn records_sharing_one_stamp_and_their_deletions_are_all_read() {
    let sandbox = strict(2, 2000).await;
    let conn = SalesforceConnector::new(jwt_client(&sandbox)).with_page_size(3);
    next_second().await;
    let start: Vec<Change> = conn
        .changes(ObjectKind::Company, None)
        .try_collect()
        .await
        .expect("feed");
    let cursor = start.last().expect("changes").cursor().clone();
    // One collection call: the records share whole-second stamps.
    let made = conn
        .create((0..40).map(|i| company(&format!("Tie{i}"))).collect())
        .await;
    let ids: HashSet<String> = made
        .results
        .iter()
        .map(|r| r.as_ref().expect("created").id.clone())
        .collect();
    assert_eq!(ids.len(), 40);
    next_second().await;
    let run: Vec<Change> = conn
        .changes(ObjectKind::Company, Some(cursor))
        .try_collect()
        .await
        .expect("feed");
    let seen: HashSet<String> = run
        .iter()
        .filter_map(Change::id)
        .map(str::to_string)
        .collect();
    assert!(ids.is_subset(&seen), "every tied record read");
    let cursor = run.last().expect("changes").cursor().clone();
    let gone = conn
        .delete(
            ids.iter()
                .map(|id| {
                    RecordRef::new(
                        crmkit_core::Crm::Salesforce,
                        ObjectKind::Company,
                        id.clone(),
                    )
                })
                .collect(),
        )
        .await;
    assert!(gone.results.iter().all(Result::is_ok));
    // Two runs, as a scheduler makes them: together they report every deletion.
    let mut tombstones = HashSet::new();
    let mut cursor = cursor;
    for _ in 0..2 {
        next_second().await;
        let run: Vec<Change> = conn
            .changes(ObjectKind::Company, Some(cursor.clone()))
            .try_collect()
            .await
            .expect("feed");
        for c in &run {
            if let Change::Deleted { record, .. } = c {
                tombstones.insert(record.id.clone());
            }
        }
        if let Some(last) = run.last() {
            cursor = last.cursor().clone();
        }
    }
    assert_eq!(tombstones, ids, "every deletion reported");
}

#[tokio::test]
async fn updates_are_patches_and_an_unchanged_record_sends_nothing() {
    let sandbox = strict(6, 2000).await;
    let conn = SalesforceConnector::new(jwt_client(&sandbox));
    let made = conn.create(vec![company("Patchy")]).await;
    let id = made.results[0].as_ref().expect("created").id.clone();
    let read = conn.get(ObjectKind::Company, &id).await.expect("read");
    let Record::Company(c) = &read else {
        panic!("company")
    };
    assert_eq!(c.domain.as_deref(), Some("patchy.example"));

    let before = sandbox.stats().requests.len();
    let same = conn.update(vec![read.clone()]).await;
    assert!(same.results[0].is_ok());
    assert_eq!(sandbox.stats().requests.len(), before, "nothing sent");

    let mut changed = c.clone();
    changed.description = Some("Now described".into());
    changed.url = None;
    changed.domain = None;
    let out = conn.update(vec![Record::Company(changed)]).await;
    assert!(out.results[0].is_ok(), "{:?}", out.results);
    let back = conn.get(ObjectKind::Company, &id).await.expect("read");
    let Record::Company(b) = back else {
        panic!("company")
    };
    assert_eq!(b.description.as_deref(), Some("Now described"));
    assert_eq!(b.url, None, "a field cleared from raw is cleared");
    assert_eq!(b.domain, None);
    assert_eq!(b.name, "Patchy");

    // Without raw, only fields that are set are sent: the description stays.
    let bare = Record::Company(Company {
        id: Some(id.clone()),
        name: "Patchy Renamed".into(),
        ..Company::default()
    });
    assert!(conn.update(vec![bare]).await.results[0].is_ok());
    let Record::Company(b) = conn.get(ObjectKind::Company, &id).await.expect("read") else {
        panic!("company")
    };
    assert_eq!(b.name, "Patchy Renamed");
    assert_eq!(b.description.as_deref(), Some("Now described"));

    let missing = Record::Company(Company {
        id: Some("001000000000000AAA".into()),
        name: "Ghost".into(),
        ..Company::default()
    });
    let out = conn.update(vec![missing]).await;
    let e = out.results[0].as_ref().expect_err("missing");
    assert!(e.record().is_some_and(|r| r.contains("Ghost")), "{e}");
}

#[tokio::test]
async fn marked_creates_are_idempotent_and_share_results_within_a_batch() {
    let sandbox = strict(0, 2000).await;
    let conn = SalesforceConnector::new(jwt_client(&sandbox)).with_marker_field("External_Id__c");
    let batch = || {
        vec![
            Marked {
                record: company("One"),
                marker: "src-1".into(),
            },
            Marked {
                record: company("Two"),
                marker: "src-2".into(),
            },
            Marked {
                record: company("One again"),
                marker: "src-1".into(),
            },
            Marked {
                record: Record::Company(Company::default()),
                marker: "src-bad".into(),
            },
        ]
    };
    let first = conn.create_marked(batch()).await;
    let a = first.results[0].as_ref().expect("one").clone();
    assert_eq!(first.results[2].as_ref().expect("shared"), &a);
    assert!(first.results[3].is_err(), "a nameless account is refused");
    assert_eq!(sandbox.count("Account"), 2);
    let second = conn.create_marked(batch()).await;
    assert_eq!(second.results[0].as_ref().expect("found"), &a);
    assert_eq!(sandbox.count("Account"), 2, "no second record");
    assert_eq!(
        conn.find_by_marker(ObjectKind::Company, "src-2")
            .await
            .expect("lookup"),
        second.results[1].as_ref().ok().cloned()
    );
    assert_eq!(
        conn.find_by_marker(ObjectKind::Company, "nope' OR Name != '")
            .await
            .expect("lookup"),
        None
    );
    let unconfigured = SalesforceConnector::new(jwt_client(&sandbox));
    let e = unconfigured
        .create_marked(batch())
        .await
        .results
        .remove(0)
        .expect_err("no marker field");
    assert_eq!(e.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn markers_match_without_case_as_the_external_id_field_does() {
    let sandbox = strict(0, 2000).await;
    let conn = SalesforceConnector::new(jwt_client(&sandbox)).with_marker_field("External_Id__c");
    let marked = |name: &str, marker: &str| Marked {
        record: company(name),
        marker: marker.into(),
    };
    let first = conn
        .create_marked(vec![
            marked("Upper", "SRC-1"),
            marked("Mixed", "Case-X"),
            marked("Mixed again", "case-x"),
        ])
        .await;
    let upper = first.results[0].as_ref().expect("created").clone();
    assert_eq!(
        first.results[1].as_ref().expect("created"),
        first.results[2].as_ref().expect("shared"),
        "one value to Salesforce, one record"
    );
    assert_eq!(sandbox.count("Account"), 2);
    // Found in any case, and left untouched.
    let again = conn.create_marked(vec![marked("Renamed", "src-1")]).await;
    assert_eq!(again.results[0].as_ref().expect("found"), &upper);
    let stored = conn
        .get(ObjectKind::Company, &upper.id)
        .await
        .expect("reads");
    let Record::Company(stored) = stored else {
        panic!("a company: {stored:?}")
    };
    assert_eq!(stored.name, "Upper", "a found record is not overwritten");
    assert_eq!(
        conn.find_by_marker(ObjectKind::Company, "Src-1")
            .await
            .expect("lookup"),
        Some(upper)
    );
    assert_eq!(sandbox.count("Account"), 2);
}

#[tokio::test]
async fn marked_creates_above_the_bulk_threshold_go_through_an_upsert_job_safe_to_retry() {
    let sandbox = crmkit_sandbox::salesforce::SalesforceSandbox::builder()
        .start()
        .await
        .expect("sandbox");
    let conn = SalesforceConnector::new(crate::bulk::bulk_client(&sandbox, 2))
        .with_marker_field("External_Id__c");
    let before = sandbox.count("Account");
    let batch = || {
        ["Alpha", "Beta", "Gamma"]
            .iter()
            .map(|n| Marked {
                record: company(n),
                marker: format!("bulk-{n}"),
            })
            .collect::<Vec<_>>()
    };
    // The job is closed and runs, but its results cannot be read.
    sandbox.set_faults(crate::bulk::unreadable_jobs());
    let first = conn.create_marked(batch()).await;
    assert!(first.results.iter().all(Result::is_err), "{first:?}");
    sandbox.set_faults(crmkit_sandbox::faults::Faults::default());
    let jobs: Value = conn
        .client()
        .json(&crmkit_core::http::ApiRequest::get("jobs/ingest"))
        .await
        .expect("jobs");
    let job = &jobs["records"][0];
    assert_eq!(job["operation"], "upsert", "{jobs}");
    assert_eq!(job["externalIdFieldName"], "External_Id__c");
    // The retry finds what the job made: nothing twice.
    let again = conn.create_marked(batch()).await;
    assert!(again.results.iter().all(Result::is_ok), "{again:?}");
    assert_eq!(sandbox.count("Account"), before + 3);
}

#[tokio::test]
async fn a_deals_person_round_trips_through_its_primary_contact_role() {
    let sandbox = strict(0, 2000).await;
    let conn = SalesforceConnector::new(jwt_client(&sandbox));
    let person = |name: &str| {
        Record::Person(Person {
            name: name.into(),
            ..Person::default()
        })
    };
    let people = conn
        .create(vec![person("Ada Lovelace"), person("Charles Babbage")])
        .await;
    let ada = people.results[0].as_ref().expect("ada").id.clone();
    let charles = people.results[1].as_ref().expect("charles").id.clone();
    let deal = Record::Deal(Deal {
        name: "Engines".into(),
        stage_id: Some("Prospecting".into()),
        close_date: Some(Utc::now()),
        person_id: Some(ada.clone()),
        ..Deal::default()
    });
    let id = conn.create(vec![deal]).await.results[0]
        .as_ref()
        .expect("deal")
        .id
        .clone();
    let read = |conn: &SalesforceConnector| {
        let (conn, id) = (conn.clone(), id.clone());
        async move {
            match conn.get(ObjectKind::Deal, &id).await.expect("deal") {
                Record::Deal(d) => d,
                other => panic!("a deal: {other:?}"),
            }
        }
    };
    let d = read(&conn).await;
    assert_eq!(d.person_id.as_deref(), Some(ada.as_str()));
    // Read and written back unchanged: nothing to send.
    let out = conn.update(vec![Record::Deal(d.clone())]).await;
    assert!(out.results[0].is_ok());
    // Another person: the primary contact role moves.
    let mut moved = d.clone();
    moved.person_id = Some(charles.clone());
    let out = conn.update(vec![Record::Deal(moved)]).await;
    assert!(out.results[0].is_ok(), "{:?}", out.results[0]);
    let d = read(&conn).await;
    assert_eq!(d.person_id.as_deref(), Some(charles.as_str()));
    // And back to the first, whose role exists already: still one primary.
    let mut back = d.clone();
    back.person_id = Some(ada.clone());
    assert!(conn.update(vec![Record::Deal(back)]).await.results[0].is_ok());
    let d = read(&conn).await;
    assert_eq!(d.person_id.as_deref(), Some(ada.as_str()));
    let roles: Vec<_> = conn
        .client()
        .query(format!(
            "SELECT ContactId FROM OpportunityContactRole WHERE OpportunityId = '{id}' AND IsPrimary = true"
        ))
        .try_collect()
        .await
        .expect("roles");
    assert_eq!(roles.len(), 1, "{roles:?}");
    // No person.
    let mut none = d.clone();
    none.person_id = None;
    assert!(conn.update(vec![Record::Deal(none)]).await.results[0].is_ok());
    assert_eq!(read(&conn).await.person_id, None);
}

#[tokio::test]
async fn people_deals_and_activities_round_trip() {
    let sandbox = strict(0, 2000).await;
    let conn = SalesforceConnector::new(jwt_client(&sandbox));
    let acc = conn.create(vec![company("Acme")]).await.results[0]
        .as_ref()
        .expect("account")
        .id
        .clone();
    let person = Record::Person(Person {
        name: "Ada Lovelace".into(),
        title: Some("Analyst".into()),
        emails: vec!["ada@example.com".into()],
        company_id: Some(acc.clone()),
        ..Person::default()
    });
    let deal = Record::Deal(Deal {
        name: "Engines".into(),
        amount: Some(Money::new(1_234_550, "USD")),
        stage_id: Some("Prospecting".into()),
        close_date: Some(Utc::now()),
        company_id: Some(acc.clone()),
        ..Deal::default()
    });
    let mut call = Activity::new(ActivityKind::Call);
    call.subject = Some("Intro call".into());
    call.duration_secs = Some(300);
    call.direction = Some("outbound".into());
    call.company_id = Some(acc.clone());
    let mut meeting = Activity::new(ActivityKind::Meeting);
    meeting.subject = Some("Kick-off".into());
    meeting.occurred_at = Some(Utc::now());
    meeting.duration_secs = Some(1800);
    let note = Activity::new(ActivityKind::Note);
    let out = conn
        .create(vec![
            person,
            deal,
            Record::Activity(call),
            Record::Activity(meeting),
            Record::Activity(note),
        ])
        .await;
    let e = out.results[4].as_ref().expect_err("notes are refused");
    assert_eq!(e.kind(), ErrorKind::Validation);
    let refs: Vec<RecordRef> = out.results[..4]
        .iter()
        .map(|r| r.as_ref().expect("created").clone())
        .collect();
    let Record::Person(p) = conn
        .get(ObjectKind::Person, &refs[0].id)
        .await
        .expect("person")
    else {
        panic!("person")
    };
    assert_eq!(p.name, "Ada Lovelace");
    assert_eq!(p.company_id.as_deref(), Some(acc.as_str()));
    let Record::Deal(d) = conn.get(ObjectKind::Deal, &refs[1].id).await.expect("deal") else {
        panic!("deal")
    };
    assert_eq!(d.amount, Some(Money::new(1_234_550, "USD")));
    assert_eq!(d.stage_id.as_deref(), Some("Prospecting"));
    let Record::Activity(c) = conn
        .get(ObjectKind::Activity, &refs[2].id)
        .await
        .expect("call")
    else {
        panic!("activity")
    };
    assert_eq!(c.kind, ActivityKind::Call);
    assert_eq!(c.duration_secs, Some(300));
    let Record::Activity(m) = conn
        .get(ObjectKind::Activity, &refs[3].id)
        .await
        .expect("meeting")
    else {
        panic!("activity")
    };
    assert_eq!(m.kind, ActivityKind::Meeting);
    assert_eq!(m.duration_secs, Some(1800));

    next_second().await;
    let feed: Vec<Change> = conn
        .changes(ObjectKind::Activity, None)
        .try_collect()
        .await
        .expect("feed");
    let kinds: Vec<ActivityKind> = feed
        .iter()
        .filter_map(|c| match c {
            Change::Upsert {
                record: Record::Activity(a),
                ..
            } => Some(a.kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        vec![ActivityKind::Call, ActivityKind::Meeting],
        "Tasks, then Events"
    );
    let found: Vec<Record> = conn
        .search(ObjectKind::Person, "lovelace")
        .try_collect()
        .await
        .expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].raw()["Email"], Value::from("ada@example.com"));
}

#[tokio::test]
async fn people_can_be_leads_with_their_company_in_custom() {
    let sandbox = strict(0, 2000).await;
    let conn = SalesforceConnector::new(jwt_client(&sandbox)).with_leads();
    let mut lead = Person {
        name: "Grace Hopper".into(),
        emails: vec!["grace@example.com".into()],
        ..Person::default()
    };
    let refused = conn.create(vec![Record::Person(lead.clone())]).await;
    let e = refused.results[0].as_ref().expect_err("no company");
    assert!(e.field_errors().iter().any(|f| f.field == "Company"), "{e}");
    lead.custom
        .insert("Company".into(), Value::from("Compilers Inc"));
    let made = conn.create(vec![Record::Person(lead)]).await;
    let r = made.results[0].as_ref().expect("created");
    assert!(r.id.starts_with("00Q"), "a Lead id: {}", r.id);
    assert_eq!(sandbox.count("Lead"), 1);
    assert_eq!(sandbox.count("Contact"), 0);
    let Record::Person(p) = conn.get(ObjectKind::Person, &r.id).await.expect("read") else {
        panic!("person")
    };
    assert_eq!(p.name, "Grace Hopper");
    assert_eq!(p.custom["Company"], "Compilers Inc");
}

#[tokio::test]
async fn get_many_reads_through_collections_in_order_and_reports_each_missing_id() {
    let sandbox = strict(0, 2000).await;
    let conn = SalesforceConnector::new(jwt_client(&sandbox));
    let out = conn
        .create((0..250).map(|i| company(&format!("Co{i}"))).collect())
        .await;
    let mut ids: Vec<String> = out
        .results
        .iter()
        .map(|r| r.as_ref().expect("created").id.clone())
        .collect();
    assert_eq!(ids.len(), 250);
    let gone = ids.pop().expect("one");
    let out = conn
        .delete(vec![RecordRef::new(
            crmkit_core::Crm::Salesforce,
            ObjectKind::Company,
            gone.clone(),
        )])
        .await;
    assert_eq!(out.failed().count(), 0, "{:?}", out.results);
    ids.reverse();
    ids.insert(100, gone);
    let before = sandbox.stats().requests.len();
    let got = conn.get_many(ObjectKind::Company, &ids).await;
    let calls: Vec<String> = sandbox.stats().requests[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(got.len(), 250);
    // 250 ids in calls of at most 200, never one read per record.
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls
            .iter()
            .all(|c| c.starts_with("GET ") && c.ends_with("/composite/sobjects/Account")),
        "{calls:?}"
    );
    let missing = got[100].as_ref().expect_err("deleted");
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    // Every other place holds its own record, as `get` reads it.
    for at in [0, 99, 101, 249] {
        let one = conn
            .get(ObjectKind::Company, &ids[at])
            .await
            .expect("reads");
        assert_eq!(got[at].as_ref().expect("found"), &one, "place {at}");
    }
    assert_eq!(got.iter().filter(|r| r.is_ok()).count(), 249);

    // Activities: tasks and events told apart by their ids, in the order asked.
    let mut call = Activity::new(ActivityKind::Call);
    call.subject = Some("Intro call".into());
    let mut meeting = Activity::new(ActivityKind::Meeting);
    meeting.subject = Some("Kick-off".into());
    meeting.occurred_at = Some(Utc::now());
    meeting.duration_secs = Some(1800);
    let out = conn
        .create(vec![Record::Activity(meeting), Record::Activity(call)])
        .await;
    let acts: Vec<String> = out
        .results
        .iter()
        .map(|r| r.as_ref().expect("created").id.clone())
        .collect();
    let got = conn
        .get_many(ObjectKind::Activity, &[acts[1].clone(), acts[0].clone()])
        .await;
    let kinds: Vec<ActivityKind> = got
        .iter()
        .map(|r| match r {
            Ok(Record::Activity(a)) => a.kind,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, [ActivityKind::Call, ActivityKind::Meeting]);
}

#[tokio::test]
async fn markers_match_exactly_on_a_non_unique_or_case_sensitive_external_id_field() {
    for field in ["Legacy_Id__c", "Source_Key__c"] {
        let sandbox = strict(0, 2000).await;
        let conn = SalesforceConnector::new(jwt_client(&sandbox)).with_marker_field(field);
        let marked = |name: &str, marker: &str| Marked {
            record: company(name),
            marker: marker.into(),
        };
        let first = conn
            .create_marked(vec![marked("Upper", "SRC-1"), marked("Lower", "src-1")])
            .await;
        let upper = first.results[0].as_ref().expect("created").clone();
        let lower = first.results[1].as_ref().expect("created").clone();
        assert_ne!(
            upper, lower,
            "{field}: two values to Salesforce, two records"
        );
        assert_eq!(sandbox.count("Account"), 2, "{field}");
        let again = conn.create_marked(vec![marked("Again", "src-1")]).await;
        assert_eq!(again.results[0].as_ref().expect("found"), &lower, "{field}");
        assert_eq!(
            conn.find_by_marker(ObjectKind::Company, "Src-1")
                .await
                .expect("lookup"),
            None,
            "{field}"
        );
        assert_eq!(sandbox.count("Account"), 2, "{field}");
    }
}
