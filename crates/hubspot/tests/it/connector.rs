//! The HubSpot connector against the HubSpot sandbox over loopback HTTP.

use std::time::Duration;

use crmkit_core::connector::{Change, Marked};
use crmkit_core::model::{Activity, ActivityKind, Company, Deal, Person};
use crmkit_core::{Connector, ObjectKind, Record};
use crmkit_hubspot::objects::NewAssociation;
use crmkit_hubspot::{HubSpotConnector, Properties};
use crmkit_sandbox::hubspot::{HubSpotSandbox, RunningHubSpot};
use futures::TryStreamExt;

use crate::client;

async fn sandbox() -> RunningHubSpot {
    HubSpotSandbox::builder()
        .burst_limit(1000, Duration::from_secs(10))
        .start()
        .await
        .expect("sandbox starts")
}

fn props(pairs: &[(&str, &str)]) -> Properties {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Requests that write: anything but reads, lists, searches and batch reads.
fn writes(sb: &RunningHubSpot) -> Vec<String> {
    sb.stats()
        .requests
        .into_iter()
        .filter(|r| {
            r.method != "GET" && !r.path.ends_with("/search") && !r.path.ends_with("/batch/read")
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn company(name: &str) -> Record {
    Record::Company(Company {
        name: name.into(),
        ..Company::default()
    })
}

#[tokio::test]
async fn records_read_and_written_back_unchanged_send_nothing_and_stay_the_same() {
    let sb = sandbox().await;
    let hs = client(&sb.base_url(), "conn-roundtrip");
    let co = hs
        .companies()
        .create(
            &props(&[
                ("name", "Acme"),
                ("domain", "acme.com"),
                ("website", "https://acme.com"),
                ("description", "Anvils"),
                ("industry", "RETAIL"),
            ]),
            &[],
        )
        .await
        .expect("company");
    let contact = hs
        .contacts()
        .create(
            &props(&[
                ("firstname", "Ada"),
                ("lastname", "Lovelace"),
                ("email", "ada@acme.com"),
                ("jobtitle", "CTO"),
                ("phone", "+15550001"),
                ("mobilephone", "+15550002"),
            ]),
            &[NewAssociation::hubspot_defined(co.id.clone(), 1)],
        )
        .await
        .expect("contact");
    let deal = hs
        .deals()
        .create(
            &props(&[
                ("dealname", "Big one"),
                ("amount", "1234.5"),
                ("dealstage", "appointmentscheduled"),
                ("pipeline", "default"),
                ("closedate", "2026-03-01T00:00:00.000Z"),
            ]),
            &[
                NewAssociation::hubspot_defined(co.id.clone(), 5),
                NewAssociation::hubspot_defined(contact.id.clone(), 3),
            ],
        )
        .await
        .expect("deal");
    let call = hs
        .calls()
        .create(
            &props(&[
                ("hs_timestamp", "2026-01-02T03:04:05.000Z"),
                ("hs_call_title", "Intro"),
                ("hs_call_body", "Talked"),
                ("hs_call_duration", "61500"),
                ("hs_call_direction", "OUTBOUND"),
            ]),
            &[NewAssociation::hubspot_defined(co.id.clone(), 182)],
        )
        .await
        .expect("call");

    let conn = HubSpotConnector::new(hs);
    let cases = [
        (ObjectKind::Company, co.id),
        (ObjectKind::Person, contact.id),
        (ObjectKind::Deal, deal.id),
        (ObjectKind::Activity, call.id),
    ];
    let mut read = Vec::new();
    for (kind, id) in &cases {
        read.push(conn.get(*kind, id).await.expect("reads"));
    }
    match &read[..] {
        [
            Record::Company(c),
            Record::Person(p),
            Record::Deal(d),
            Record::Activity(a),
        ] => {
            assert_eq!(c.domain.as_deref(), Some("acme.com"));
            assert_eq!(c.url.as_deref(), Some("https://acme.com"));
            assert_eq!(p.name, "Ada Lovelace");
            assert_eq!(p.emails, ["ada@acme.com"]);
            assert_eq!(p.phones, ["+15550001", "+15550002"]);
            assert_eq!(p.company_id, c.id);
            assert_eq!(d.amount.as_ref().map(|m| m.minor), Some(123450));
            assert_eq!(d.confidence, Some(20));
            assert_eq!(
                (d.company_id.clone(), d.person_id.clone()),
                (c.id.clone(), p.id.clone())
            );
            assert_eq!(a.duration_secs, Some(62));
            assert_eq!(a.direction.as_deref(), Some("outbound"));
            assert_eq!(a.company_id, c.id);
        }
        other => panic!("unexpected records {other:?}"),
    }
    let before = writes(&sb).len();
    let outcome = conn.update(read.clone()).await;
    assert_eq!(outcome.failed().count(), 0, "{:?}", outcome.results);
    assert_eq!(outcome.succeeded().count(), 4);
    assert_eq!(writes(&sb)[before..], [] as [String; 0], "nothing sent");
    for ((kind, id), first) in cases.iter().zip(&read) {
        assert_eq!(&conn.get(*kind, id).await.expect("reads again"), first);
    }

    // A changed field is sent alone, as a patch.
    let Record::Company(mut c) = read[0].clone() else {
        panic!("company")
    };
    c.description = None;
    let outcome = conn.update(vec![Record::Company(c)]).await;
    assert_eq!(outcome.failed().count(), 0, "{:?}", outcome.results);
    let Record::Company(after) = conn
        .get(ObjectKind::Company, &cases[0].1)
        .await
        .expect("reads")
    else {
        panic!("company")
    };
    assert_eq!(after.description, None);
    assert_eq!(after.name, "Acme");
    assert_eq!(
        after.custom.get("industry"),
        None,
        "industry is HubSpot-defined, not read"
    );
}

#[tokio::test]
async fn the_change_feed_sees_creates_updates_and_archives_across_runs() {
    let sb = sandbox().await;
    let conn = HubSpotConnector::new(client(&sb.base_url(), "conn-feed"));
    let made = conn
        .create(vec![company("One"), company("Two"), company("Three")])
        .await;
    let ids: Vec<String> = made.succeeded().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 3, "{:?}", made.results);
    // The run's bound is HubSpot's clock in whole seconds: let it pass the creates.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let first: Vec<Change> = conn
        .changes(ObjectKind::Company, None)
        .try_collect()
        .await
        .expect("first run");
    let seen: Vec<&str> = first.iter().filter_map(Change::id).collect();
    for id in &ids {
        assert!(seen.contains(&id.as_str()), "{id} in {seen:?}");
    }
    assert!(
        first
            .iter()
            .all(|c| matches!(c, Change::Upsert { .. } | Change::Checkpoint { .. }))
    );
    let cursor = first.last().expect("changes").cursor().clone();

    let Record::Company(mut one) = conn.get(ObjectKind::Company, &ids[0]).await.expect("reads")
    else {
        panic!("company")
    };
    one.name = "One renamed".into();
    assert_eq!(
        conn.update(vec![Record::Company(one)])
            .await
            .failed()
            .count(),
        0
    );
    let four = conn.create(vec![company("Four")]).await;
    let four = four.succeeded().next().expect("created").id.clone();
    let gone = crmkit_core::RecordRef::new(
        crmkit_core::Crm::HubSpot,
        ObjectKind::Company,
        ids[1].clone(),
    );
    assert_eq!(conn.delete(vec![gone]).await.failed().count(), 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let second: Vec<Change> = conn
        .changes(ObjectKind::Company, Some(cursor))
        .try_collect()
        .await
        .expect("second run");
    let renamed = second.iter().any(|c| {
        matches!(c, Change::Upsert { record: Record::Company(r), .. }
            if r.id.as_deref() == Some(ids[0].as_str()) && r.name == "One renamed")
    });
    assert!(renamed, "{second:?}");
    assert!(second.iter().any(|c| c.id() == Some(four.as_str())));
    let tombstone = second
        .iter()
        .any(|c| matches!(c, Change::Deleted { record, at: Some(_), .. } if record.id == ids[1]));
    assert!(tombstone, "archived record reported: {second:?}");
    assert!(
        !second
            .iter()
            .any(|c| matches!(c, Change::Upsert { .. }) && c.id() == Some(ids[1].as_str())),
        "an archived record is no upsert"
    );

    // A cursor from another connector is refused.
    let foreign = crmkit_core::ChangeCursor("close1.{}".into());
    let e = conn
        .changes(ObjectKind::Company, Some(foreign))
        .try_collect::<Vec<_>>()
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), crmkit_core::ErrorKind::Validation);
}

#[tokio::test]
async fn batch_writes_answer_per_record_and_one_failure_spares_the_others() {
    let sb = sandbox().await;
    let conn = HubSpotConnector::new(client(&sb.base_url(), "conn-batch"));
    let out = conn
        .create(vec![
            company("Good 1"),
            company("Good 2"),
            company("Good 3"),
        ])
        .await;
    let ids: Vec<String> = out.succeeded().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 3, "{:?}", out.results);
    let mut records = Vec::new();
    for id in &ids {
        records.push(conn.get(ObjectKind::Company, id).await.expect("reads"));
    }
    // Results come back in input order: each id reads back the name it was created with.
    for (r, name) in records.iter().zip(["Good 1", "Good 2", "Good 3"]) {
        assert!(matches!(r, Record::Company(c) if c.name == name), "{r:?}");
    }
    for r in &mut records {
        if let Record::Company(c) = r {
            c.name = format!("{} renamed", c.name);
        }
    }
    // The middle record names a company HubSpot does not have.
    records[1] = Record::Company(Company {
        id: Some("999999999".into()),
        name: "Ghost".into(),
        ..Company::default()
    });
    let out = conn.update(records).await;
    assert_eq!(out.results.len(), 3);
    assert!(
        out.results[0].is_ok() && out.results[2].is_ok(),
        "{:?}",
        out.results
    );
    let (i, e) = out.failed().next().expect("one failure");
    assert_eq!(i, 1);
    assert!(e.to_string().contains("Ghost"), "names its record: {e}");
    for (id, name) in [
        (&ids[0], "Good 1 renamed"),
        (&ids[1], "Good 2"),
        (&ids[2], "Good 3 renamed"),
    ] {
        let r = conn.get(ObjectKind::Company, id).await.expect("reads");
        assert!(matches!(&r, Record::Company(c) if c.name == name), "{r:?}");
    }
}

#[tokio::test]
async fn a_marked_create_repeated_creates_once() {
    let sb = sandbox().await;
    let conn = HubSpotConnector::new(client(&sb.base_url(), "conn-marked"));
    let person = |name: &str| {
        Record::Person(Person {
            name: name.into(),
            title: Some("Buyer".into()),
            ..Person::default()
        })
    };
    let marked = |name: &str| Marked {
        record: person(name),
        marker: "grace@navy.mil".into(),
    };
    let out = conn
        .create_marked(vec![marked("Grace Hopper"), marked("Grace Hopper")])
        .await;
    let first: Vec<String> = out.succeeded().map(|r| r.id.clone()).collect();
    assert_eq!(first.len(), 2, "{:?}", out.results);
    assert_eq!(first[0], first[1]);
    let again = conn.create_marked(vec![marked("Grace B. Hopper")]).await;
    assert_eq!(
        again.succeeded().next().map(|r| r.id.clone()),
        Some(first[0].clone())
    );
    assert_eq!(sb.count("contacts"), 1);
    let found = conn
        .find_by_marker(ObjectKind::Person, "grace@navy.mil")
        .await
        .expect("looks up");
    assert_eq!(found.map(|r| r.id), Some(first[0].clone()));
    let Record::Person(p) = conn
        .get(ObjectKind::Person, &first[0])
        .await
        .expect("reads")
    else {
        panic!("person")
    };
    assert_eq!(
        (p.name.as_str(), p.emails.clone()),
        ("Grace Hopper", vec!["grace@navy.mil".to_string()])
    );

    // Activities keep theirs in the default property, made on the engagement type on first
    // use: a repeated create finds the note instead of making a second one.
    let note = || {
        let mut n = Activity::new(ActivityKind::Note);
        n.body = Some("Intro".into());
        n.occurred_at = Some(chrono::Utc::now());
        Marked {
            record: Record::Activity(n),
            marker: "close:activity:acti_1".into(),
        }
    };
    let made = conn.create_marked(vec![note()]).await.results.remove(0);
    let made = made.expect("note created");
    let again = conn.create_marked(vec![note()]).await.results.remove(0);
    assert_eq!(again.expect("found"), made);
    assert_eq!(sb.count("notes"), 1);
    assert_eq!(
        conn.find_by_marker(ObjectKind::Activity, "close:activity:acti_1")
            .await
            .expect("looks up"),
        Some(made)
    );
}

#[tokio::test]
async fn text_search_finds_records_of_a_kind() {
    let sb = sandbox().await;
    let conn = HubSpotConnector::new(client(&sb.base_url(), "conn-search"));
    let out = conn
        .create(vec![company("Zebra Works"), company("Other")])
        .await;
    assert_eq!(out.failed().count(), 0, "{:?}", out.results);
    let found: Vec<Record> = conn
        .search(ObjectKind::Company, "Zebra")
        .try_collect()
        .await
        .expect("searches");
    let names: Vec<String> = found
        .iter()
        .filter_map(|r| match r {
            Record::Company(c) => Some(c.name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["Zebra Works"]);
}

#[tokio::test]
async fn an_activity_created_then_linked_reads_back_with_its_link() {
    let sb = sandbox().await;
    let conn = HubSpotConnector::new(client(&sb.base_url(), "conn-activity"));
    let co = conn.create(vec![company("Linked")]).await;
    let co = co.succeeded().next().expect("company").id.clone();
    let mut note = crmkit_core::Activity::new(crmkit_core::ActivityKind::Note);
    note.body = Some("Met at the fair".into());
    note.occurred_at = chrono::DateTime::from_timestamp(1_767_225_600, 0);
    let out = conn.create(vec![Record::Activity(note)]).await;
    let id = out.succeeded().next().expect("note").id.clone();
    let Record::Activity(mut a) = conn.get(ObjectKind::Activity, &id).await.expect("reads") else {
        panic!("activity")
    };
    assert_eq!(a.company_id, None);
    // A changed link is written through associations v4.
    a.company_id = Some(co.clone());
    let out = conn.update(vec![Record::Activity(a)]).await;
    assert_eq!(out.failed().count(), 0, "{:?}", out.results);
    let Record::Activity(a) = conn.get(ObjectKind::Activity, &id).await.expect("reads") else {
        panic!("activity")
    };
    assert_eq!(a.kind, crmkit_core::ActivityKind::Note);
    assert_eq!(a.body.as_deref(), Some("Met at the fair"));
    assert_eq!(
        a.occurred_at,
        chrono::DateTime::from_timestamp(1_767_225_600, 0)
    );
    assert_eq!(a.company_id, Some(co));
    let gone = crmkit_core::RecordRef::new(crmkit_core::Crm::HubSpot, ObjectKind::Activity, id);
    assert_eq!(conn.delete(vec![gone]).await.failed().count(), 0);
    assert_eq!(sb.count("notes"), 0);
}

fn deal(name: &str) -> Record {
    Record::Deal(Deal {
        name: name.into(),
        stage_id: Some("qualifiedtobuy".into()),
        pipeline_id: Some("default".into()),
        ..Deal::default()
    })
}

#[tokio::test]
async fn marked_companies_and_deals_are_created_once_through_a_unique_marker_property() {
    let sb = sandbox().await;
    let hs = client(&sb.base_url(), "conn-marked-co");
    let conn = HubSpotConnector::new(hs.clone());
    // Before any marked create the property does not exist: nothing carries a marker.
    assert_eq!(
        conn.find_by_marker(ObjectKind::Company, "co-1")
            .await
            .expect("looks up"),
        None
    );
    for (record, kind, marker, object) in [
        (
            company("Marked Co"),
            ObjectKind::Company,
            "co-1",
            "companies",
        ),
        (deal("Marked Deal"), ObjectKind::Deal, "deal-1", "deals"),
    ] {
        let once = conn
            .create_marked(vec![Marked {
                record: record.clone(),
                marker: marker.into(),
            }])
            .await;
        let first = once.succeeded().next().map(|r| r.id.clone());
        assert!(first.is_some(), "{:?}", once.results);
        // A second connector (a rerun after a crash) finds the record instead of making one.
        let rerun = HubSpotConnector::new(hs.clone());
        let twice = rerun
            .create_marked(vec![Marked {
                record,
                marker: marker.into(),
            }])
            .await;
        assert_eq!(twice.succeeded().next().map(|r| r.id.clone()), first);
        assert_eq!(sb.count(object), 1, "{object}");
        let found = rerun.find_by_marker(kind, marker).await.expect("looks up");
        assert_eq!(found.map(|r| r.id), first);
        let def = hs
            .properties(&crmkit_hubspot::ObjectType::from(object))
            .await
            .expect("properties")
            .into_iter()
            .find(|p| p.name == crmkit_hubspot::connector::DEFAULT_MARKER_PROPERTY)
            .expect("the marker property was created");
        assert!(def.has_unique_value, "{def:?}");
    }
}

#[tokio::test]
async fn deal_confidence_is_read_from_the_stage_and_never_written() {
    let sb = sandbox().await;
    let conn = HubSpotConnector::new(client(&sb.base_url(), "conn-confidence"));
    let Record::Deal(mut d) = deal("Confident") else {
        panic!("deal")
    };
    d.confidence = Some(75);
    let made = conn.create(vec![Record::Deal(d)]).await;
    let id = made
        .succeeded()
        .next()
        .map(|r| r.id.clone())
        .unwrap_or_else(|| panic!("created: {:?}", made.results));
    let Record::Deal(mut read) = conn.get(ObjectKind::Deal, &id).await.expect("reads") else {
        panic!("deal")
    };
    assert_eq!(read.confidence, Some(40), "the stage's probability");
    let before = writes(&sb).len();
    read.confidence = Some(90);
    let out = conn.update(vec![Record::Deal(read)]).await;
    assert_eq!(out.failed().count(), 0, "{:?}", out.results);
    assert_eq!(writes(&sb)[before..], [] as [String; 0], "nothing sent");
}

#[tokio::test]
async fn a_changed_company_link_keeps_the_labels_users_put_on_the_old_one() {
    let sb = sandbox().await;
    let hs = client(&sb.base_url(), "conn-labels");
    let conn = HubSpotConnector::new(hs.clone());
    let made = conn
        .create(vec![
            company("Old Co"),
            company("New Co"),
            company("Plain Co"),
        ])
        .await;
    let ids: Vec<String> = made.succeeded().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 3, "{:?}", made.results);
    let person = |name: &str, company: &str| {
        Record::Person(Person {
            name: name.into(),
            emails: vec![format!("{}@x.io", name.to_lowercase())],
            company_id: Some(company.to_string()),
            ..Person::default()
        })
    };
    let people = conn
        .create(vec![person("Labelled", &ids[0]), person("Plain", &ids[2])])
        .await;
    let pids: Vec<String> = people.succeeded().map(|r| r.id.clone()).collect();
    assert_eq!(pids.len(), 2, "{:?}", people.results);
    // A user labels the first contact's association to its company.
    hs.associations()
        .associate(
            &crmkit_hubspot::ObjectType::Contacts,
            &pids[0],
            &crmkit_hubspot::ObjectType::Companies,
            &ids[0],
            &[crmkit_hubspot::associations::AssociationSpec {
                association_category: crmkit_hubspot::associations::Category::UserDefined,
                association_type_id: 1001,
            }],
        )
        .await
        .expect("labelled");
    let mut moved = Vec::new();
    for pid in &pids {
        let Record::Person(mut p) = conn.get(ObjectKind::Person, pid).await.expect("reads") else {
            panic!("person")
        };
        p.company_id = Some(ids[1].clone());
        moved.push(Record::Person(p));
    }
    let out = conn.update(moved).await;
    assert_eq!(out.failed().count(), 0, "{:?}", out.results);
    let links = |pid: String| {
        let hs = hs.clone();
        async move {
            let mut v: Vec<(String, Vec<u32>)> = hs
                .associations()
                .list(
                    &crmkit_hubspot::ObjectType::Contacts,
                    &pid,
                    &crmkit_hubspot::ObjectType::Companies,
                )
                .map_ok(|a| {
                    let mut t: Vec<u32> = a.association_types.iter().map(|t| t.type_id).collect();
                    t.sort();
                    (a.to_object_id, t)
                })
                .try_collect()
                .await
                .expect("lists");
            v.sort();
            v
        }
    };
    let labelled = links(pids[0].clone()).await;
    let old = labelled.iter().find(|(id, _)| *id == ids[0]);
    let old_types = old.map(|(_, t)| t.clone()).unwrap_or_default();
    assert!(
        old_types.contains(&1001),
        "the label survives: {labelled:?}"
    );
    assert!(!old_types.contains(&1), "no longer primary: {labelled:?}");
    assert!(labelled.iter().any(|(id, _)| *id == ids[1]), "{labelled:?}");
    // Without labels the old association goes whole.
    let plain = links(pids[1].clone()).await;
    assert_eq!(plain.len(), 1, "{plain:?}");
    assert_eq!(plain[0].0, ids[1]);
}

/// A move to a company HubSpot refuses (deleted since) fails that record and leaves its old
/// company association in place: the contact is never left under no company.
#[tokio::test]
async fn a_refused_company_move_keeps_the_old_association() {
    let sb = sandbox().await;
    let hs = client(&sb.base_url(), "conn-refused-move");
    let conn = HubSpotConnector::new(hs.clone());
    let made = conn
        .create(vec![company("Old Co"), company("Gone Co")])
        .await;
    let ids: Vec<String> = made.succeeded().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 2, "{:?}", made.results);
    let people = conn
        .create(vec![Record::Person(Person {
            name: "Ann".into(),
            emails: vec!["ann@x.io".into()],
            company_id: Some(ids[0].clone()),
            ..Person::default()
        })])
        .await;
    let pid = people.succeeded().next().expect("created").id.clone();
    hs.raw(&crmkit_core::http::ApiRequest::new(
        crmkit_core::http::Method::DELETE,
        format!("crm/v3/objects/companies/{}", ids[1]),
    ))
    .await
    .expect("archived");
    let Record::Person(mut p) = conn.get(ObjectKind::Person, &pid).await.expect("reads") else {
        panic!("person")
    };
    p.company_id = Some(ids[1].clone());
    let out = conn.update(vec![Record::Person(p)]).await;
    assert_eq!(out.failed().count(), 1, "{:?}", out.results);
    let Record::Person(after) = conn.get(ObjectKind::Person, &pid).await.expect("reads") else {
        panic!("person")
    };
    assert_eq!(after.company_id.as_deref(), Some(ids[0].as_str()));
}

#[tokio::test]
async fn per_record_outcomes_keep_input_order_when_hubspot_shuffles_batch_results() {
    let sb = sandbox().await;
    let conn = HubSpotConnector::new(client(&sb.base_url(), "conn-shuffle"));
    sb.set_faults(crmkit_sandbox::faults::Faults {
        shuffle_batch_results: true,
        ..Default::default()
    });
    let names = ["S1", "S2", "S3", "S4"];
    let made = conn
        .create(names.iter().map(|n| company(n)).collect())
        .await;
    let ids: Vec<String> = made.succeeded().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 4, "{:?}", made.results);
    let mut records = Vec::new();
    for (id, name) in ids.iter().zip(names) {
        let r = conn.get(ObjectKind::Company, id).await.expect("reads");
        assert!(matches!(&r, Record::Company(c) if c.name == name), "{r:?}");
        records.push(r);
    }
    for r in &mut records {
        if let Record::Company(c) = r {
            c.description = Some(format!("about {}", c.name));
        }
    }
    // The third names a company HubSpot does not have: its failure stays in its place.
    records[2] = Record::Company(Company {
        id: Some("999999999".into()),
        name: "Ghost".into(),
        description: Some("boo".into()),
        ..Company::default()
    });
    let out = conn.update(records).await;
    let failed: Vec<usize> = out.failed().map(|(i, _)| i).collect();
    assert_eq!(failed, [2], "{:?}", out.results);
    for i in [0, 1, 3] {
        assert_eq!(
            out.results[i].as_ref().map(|r| r.id.clone()).ok(),
            Some(ids[i].clone())
        );
        let r = conn.get(ObjectKind::Company, &ids[i]).await.expect("reads");
        assert!(
            matches!(&r, Record::Company(c) if c.description.as_deref() == Some(&format!("about {}", names[i]))),
            "{r:?}"
        );
    }
    let marked = conn
        .create_marked(
            names
                .iter()
                .map(|n| Marked {
                    record: company(&format!("{n} marked")),
                    marker: format!("mk-{n}"),
                })
                .collect(),
        )
        .await;
    for (i, n) in names.iter().enumerate() {
        let id = marked.results[i]
            .as_ref()
            .map(|r| r.id.clone())
            .expect("created");
        let r = conn.get(ObjectKind::Company, &id).await.expect("reads");
        assert!(
            matches!(&r, Record::Company(c) if c.name == format!("{n} marked")),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn a_merged_away_contact_is_reported_as_deleted() {
    let sb = sandbox().await;
    let hs = client(&sb.base_url(), "conn-merge");
    let conn = HubSpotConnector::new(hs.clone());
    let made = conn
        .create(vec![
            Record::Person(Person {
                name: "Win Ner".into(),
                emails: vec!["w@x.io".into()],
                ..Person::default()
            }),
            Record::Person(Person {
                name: "Lo Ser".into(),
                emails: vec!["l@x.io".into()],
                ..Person::default()
            }),
        ])
        .await;
    let ids: Vec<String> = made.succeeded().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 2, "{:?}", made.results);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let first: Vec<Change> = conn
        .changes(ObjectKind::Person, None)
        .try_collect()
        .await
        .expect("first run");
    let cursor = first.last().expect("changes").cursor().clone();
    let merged = hs
        .transport()
        .send(&crmkit_core::http::ApiRequest::post(
            "crm/v3/objects/contacts/merge",
            serde_json::json!({"primaryObjectId": ids[0], "objectIdToMerge": ids[1]}),
        ))
        .await
        .expect("merged");
    assert_eq!(merged.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second: Vec<Change> = conn
        .changes(ObjectKind::Person, Some(cursor))
        .try_collect()
        .await
        .expect("second run");
    let gone = second.iter().position(|c| {
        matches!(c, Change::Deleted { record, merged_into: Some(into), .. }
            if record.id == ids[1] && *into == ids[0])
    });
    let winner = second
        .iter()
        .position(|c| matches!(c, Change::Upsert { .. }) && c.id() == Some(ids[0].as_str()));
    assert!(gone.is_some() && winner.is_some(), "{second:?}");
    assert!(
        gone < winner,
        "the tombstone comes before the winner: {second:?}"
    );
}

#[tokio::test]
async fn a_tombstone_older_than_the_cursor_is_not_reported_again() {
    let sb = sandbox().await;
    let conn =
        HubSpotConnector::new(client(&sb.base_url(), "conn-tomb")).with_overlap(Duration::ZERO);
    let made = conn.create(vec![company("Doomed")]).await;
    let doomed = made.succeeded().next().expect("created").id.clone();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let run = |cursor| async {
        let changes: Vec<Change> = conn
            .changes(ObjectKind::Company, cursor)
            .try_collect()
            .await
            .expect("runs");
        changes
    };
    let first = run(None).await;
    let cursor = first.last().expect("changes").cursor().clone();
    let gone = crmkit_core::RecordRef::new(
        crmkit_core::Crm::HubSpot,
        ObjectKind::Company,
        doomed.clone(),
    );
    assert_eq!(conn.delete(vec![gone]).await.failed().count(), 0);
    // An upsert after the tombstone moves the archive watermark past it.
    conn.create(vec![company("After")]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = run(Some(cursor)).await;
    let is_tomb = |c: &Change| matches!(c, Change::Deleted { record, .. } if record.id == doomed);
    assert!(second.iter().any(is_tomb), "{second:?}");
    let cursor = second.last().expect("changes").cursor().clone();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third = run(Some(cursor)).await;
    assert!(!third.iter().any(is_tomb), "reported once: {third:?}");
}

/// The types of each association from `from` `id` to companies, sorted.
async fn company_links(
    hs: &crmkit_hubspot::Client,
    from: &crmkit_hubspot::ObjectType,
    id: &str,
) -> Vec<(String, Vec<u32>)> {
    let mut v: Vec<(String, Vec<u32>)> = hs
        .associations()
        .list(from, id, &crmkit_hubspot::ObjectType::Companies)
        .map_ok(|a| {
            let mut t: Vec<u32> = a.association_types.iter().map(|t| t.type_id).collect();
            t.sort();
            (a.to_object_id, t)
        })
        .try_collect()
        .await
        .expect("lists");
    v.sort();
    v
}

#[tokio::test]
async fn after_a_labelled_link_changes_get_and_the_feed_read_the_new_primary_company() {
    use crmkit_hubspot::ObjectType;
    use crmkit_hubspot::associations::{AssociationSpec, Category};
    let sb = sandbox().await;
    let hs = client(&sb.base_url(), "conn-primary");
    let conn = HubSpotConnector::new(hs.clone());
    // A is made first, so it has the lower id and is listed first: "the first associated
    // company" would be A.
    let made = conn.create(vec![company("A Co"), company("B Co")]).await;
    let ids: Vec<String> = made.succeeded().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 2, "{:?}", made.results);
    let (a, b) = (ids[0].clone(), ids[1].clone());
    // Primary (plus the unlabelled type) on A, as HubSpot's UI makes them, then a user label.
    let contact = hs
        .contacts()
        .create(
            &props(&[("email", "moves@x.io"), ("firstname", "Mo")]),
            &[
                NewAssociation::hubspot_defined(a.clone(), 279),
                NewAssociation::hubspot_defined(a.clone(), 1),
            ],
        )
        .await
        .expect("contact");
    let deal = hs
        .deals()
        .create(
            &props(&[("dealname", "Moving deal")]),
            &[
                NewAssociation::hubspot_defined(a.clone(), 341),
                NewAssociation::hubspot_defined(a.clone(), 5),
            ],
        )
        .await
        .expect("deal");
    let label = [AssociationSpec {
        association_category: Category::UserDefined,
        association_type_id: 1001,
    }];
    for (t, id) in [
        (ObjectType::Contacts, &contact.id),
        (ObjectType::Deals, &deal.id),
    ] {
        hs.associations()
            .associate(&t, id, &ObjectType::Companies, &a, &label)
            .await
            .expect("labelled");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let cursor = conn
        .changes(ObjectKind::Person, None)
        .try_collect::<Vec<_>>()
        .await
        .expect("first run")
        .last()
        .expect("changes")
        .cursor()
        .clone();
    let deal_cursor = conn
        .changes(ObjectKind::Deal, None)
        .try_collect::<Vec<_>>()
        .await
        .expect("first run")
        .last()
        .expect("changes")
        .cursor()
        .clone();

    let Record::Person(mut p) = conn
        .get(ObjectKind::Person, &contact.id)
        .await
        .expect("reads")
    else {
        panic!("person")
    };
    assert_eq!(p.company_id.as_deref(), Some(a.as_str()));
    p.company_id = Some(b.clone());
    p.title = Some("Moved".into());
    let Record::Deal(mut d) = conn.get(ObjectKind::Deal, &deal.id).await.expect("reads") else {
        panic!("deal")
    };
    assert_eq!(d.company_id.as_deref(), Some(a.as_str()));
    d.company_id = Some(b.clone());
    d.name = "Moved deal".into();
    let out = conn.update(vec![Record::Person(p), Record::Deal(d)]).await;
    assert_eq!(out.failed().count(), 0, "{:?}", out.results);

    // A keeps the user's label without the primary one; B is primary.
    for (t, id, primary, unlabelled) in [
        (ObjectType::Contacts, &contact.id, 1, 279),
        (ObjectType::Deals, &deal.id, 5, 341),
    ] {
        let links = company_links(&hs, &t, id).await;
        assert_eq!(
            links,
            vec![
                (a.clone(), vec![unlabelled, 1001]),
                (b.clone(), vec![primary, unlabelled])
            ]
        );
    }

    let Record::Person(p) = conn
        .get(ObjectKind::Person, &contact.id)
        .await
        .expect("reads")
    else {
        panic!("person")
    };
    assert_eq!(p.company_id.as_deref(), Some(b.as_str()), "get: {p:?}");
    let Record::Deal(d) = conn.get(ObjectKind::Deal, &deal.id).await.expect("reads") else {
        panic!("deal")
    };
    assert_eq!(d.company_id.as_deref(), Some(b.as_str()), "get: {d:?}");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let people: Vec<Change> = conn
        .changes(ObjectKind::Person, Some(cursor))
        .try_collect()
        .await
        .expect("second run");
    let fed = people.iter().find_map(|c| match c {
        Change::Upsert {
            record: Record::Person(p),
            ..
        } if p.id.as_deref() == Some(contact.id.as_str()) => Some(p.company_id.clone()),
        _ => None,
    });
    assert_eq!(fed, Some(Some(b.clone())), "feed: {people:?}");
    let deals: Vec<Change> = conn
        .changes(ObjectKind::Deal, Some(deal_cursor))
        .try_collect()
        .await
        .expect("second run");
    let fed = deals.iter().find_map(|c| match c {
        Change::Upsert {
            record: Record::Deal(d),
            ..
        } if d.id.as_deref() == Some(deal.id.as_str()) => Some(d.company_id.clone()),
        _ => None,
    });
    assert_eq!(fed, Some(Some(b.clone())), "feed: {deals:?}");

    // Written back unchanged, nothing moves: the link read is the link written.
    let before = writes(&sb).len();
    let Record::Person(p) = conn
        .get(ObjectKind::Person, &contact.id)
        .await
        .expect("reads")
    else {
        panic!("person")
    };
    let out = conn.update(vec![Record::Person(p)]).await;
    assert_eq!(out.failed().count(), 0, "{:?}", out.results);
    assert_eq!(writes(&sb).len(), before, "{:?}", writes(&sb));
}

#[tokio::test]
async fn an_activity_feed_resumes_every_type_from_its_own_position() {
    let sb = sandbox().await;
    let conn =
        HubSpotConnector::new(client(&sb.base_url(), "review-act")).with_overlap(Duration::ZERO);
    let mut note = Activity::new(ActivityKind::Note);
    note.body = Some("n".into());
    note.occurred_at = Some(chrono::Utc::now());
    let mut call = Activity::new(ActivityKind::Call);
    call.body = Some("c".into());
    call.occurred_at = Some(chrono::Utc::now());
    let made = conn
        .create(vec![Record::Activity(note), Record::Activity(call)])
        .await;
    assert_eq!(made.failed().count(), 0, "{:?}", made.results);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let first: Vec<Change> = conn
        .changes(ObjectKind::Activity, None)
        .try_collect()
        .await
        .expect("run 1");
    // Two upserts and the run's checkpoint.
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(matches!(first.last(), Some(Change::Checkpoint { .. })));
    let cursor = first.last().expect("c").cursor().clone();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second: Vec<Change> = conn
        .changes(ObjectKind::Activity, Some(cursor))
        .try_collect()
        .await
        .expect("run 2");
    assert!(
        matches!(second.as_slice(), [Change::Checkpoint { .. }]),
        "nothing changed, yet run 2 delivered {second:?}"
    );
}

#[tokio::test]
async fn adding_a_phone_keeps_the_mobile_number_in_its_property() {
    let sb = sandbox().await;
    let hs = client(&sb.base_url(), "review-phone");
    let c = hs
        .contacts()
        .create(
            &props(&[
                ("firstname", "Ann"),
                ("lastname", "Lee"),
                ("email", "ann@x.com"),
                ("mobilephone", "+1555"),
            ]),
            &[],
        )
        .await
        .expect("contact");
    let conn = HubSpotConnector::new(hs.clone());
    let Record::Person(mut p) = conn.get(ObjectKind::Person, &c.id).await.expect("reads") else {
        panic!()
    };
    assert_eq!(p.phones, ["+1555"]);
    p.phones.push("+1777".into());
    assert_eq!(
        conn.update(vec![Record::Person(p)]).await.failed().count(),
        0
    );
    let after = hs
        .contacts()
        .get(
            &c.id,
            &crmkit_hubspot::ReadOptions::default().properties(["phone", "mobilephone"]),
        )
        .await
        .expect("read");
    assert_eq!(
        (after.property("phone"), after.property("mobilephone")),
        (Some("+1777"), Some("+1555")),
        "the mobile number stays, the new one fills the empty phone"
    );
}

#[tokio::test]
async fn renaming_a_lastname_only_contact_keeps_it_a_last_name() {
    let sb = sandbox().await;
    let hs = client(&sb.base_url(), "review-name");
    let c = hs
        .contacts()
        .create(&props(&[("lastname", "Smith"), ("email", "s@x.com")]), &[])
        .await
        .expect("contact");
    let conn = HubSpotConnector::new(hs.clone());
    let Record::Person(mut p) = conn.get(ObjectKind::Person, &c.id).await.expect("reads") else {
        panic!()
    };
    p.name = "Smyth".into();
    assert_eq!(
        conn.update(vec![Record::Person(p)]).await.failed().count(),
        0
    );
    let Record::Person(p) = conn.get(ObjectKind::Person, &c.id).await.expect("reads") else {
        panic!()
    };
    assert_eq!(p.name, "Smyth");
    let raw = hs
        .contacts()
        .get(
            &c.id,
            &crmkit_hubspot::ReadOptions::default().properties(["firstname", "lastname"]),
        )
        .await
        .expect("read");
    assert_eq!(
        (raw.property("firstname"), raw.property("lastname")),
        (None, Some("Smyth"))
    );
}

#[tokio::test]
async fn feed_and_search_read_every_custom_property_of_a_wide_portal() {
    let sb = sandbox().await;
    let hs = client(&sb.base_url(), "review-many-props");
    // 150 names of ~24 characters: far past the 3,000-character search body.
    for i in 0..150 {
        let new = crmkit_hubspot::schema::NewProperty {
            name: format!("custom_field_number_{i:03}"),
            label: format!("Custom {i}"),
            kind: "string".into(),
            field_type: "text".into(),
            group_name: "contactinformation".into(),
            description: None,
            options: Vec::new(),
            has_unique_value: None,
        };
        hs.create_property(&crmkit_hubspot::ObjectType::Contacts, &new)
            .await
            .expect("prop");
    }
    hs.contacts()
        .create(
            &props(&[("email", "m@x.com"), ("custom_field_number_149", "deep")]),
            &[],
        )
        .await
        .expect("contact");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let conn = HubSpotConnector::new(hs);
    let changes: Vec<Change> = conn
        .changes(ObjectKind::Person, None)
        .try_collect()
        .await
        .expect("feed runs");
    let [
        Change::Upsert {
            record: Record::Person(p),
            ..
        },
        Change::Checkpoint { .. },
    ] = changes.as_slice()
    else {
        panic!("one upsert and the run's checkpoint: {changes:?}")
    };
    assert_eq!(p.custom["custom_field_number_149"], "deep", "read in full");
    let found: Vec<Record> = conn
        .search(ObjectKind::Person, "m@x.com")
        .try_collect()
        .await
        .expect("search runs");
    let [Record::Person(p)] = found.as_slice() else {
        panic!("one person: {found:?}")
    };
    assert_eq!(p.custom["custom_field_number_149"], "deep", "read in full");
}

#[tokio::test]
async fn get_many_reads_in_batches_keeps_the_order_and_reports_each_missing_id() {
    let sb = sandbox().await;
    let conn = HubSpotConnector::new(client(&sb.base_url(), "conn-get-many"));
    let out = conn
        .create(vec![company("Linked"), company("Second")])
        .await;
    let ids: Vec<String> = out.succeeded().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 2, "{:?}", out.results);
    let asked = vec![ids[1].clone(), "999999999".to_string(), ids[0].clone()];
    let before = sb.stats().requests.len();
    let got = conn.get_many(ObjectKind::Company, &asked).await;
    let reads: Vec<String> = sb.stats().requests[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(got.len(), 3);
    // The same records `get` reads, in the order asked; the missing id is its own NotFound.
    for (i, at) in [(1, 0), (0, 2)] {
        let one = conn.get(ObjectKind::Company, &ids[i]).await.expect("reads");
        assert_eq!(got[at].as_ref().expect("found"), &one);
    }
    let missing = got[1].as_ref().expect_err("no such company");
    assert_eq!(
        missing.kind(),
        crmkit_core::ErrorKind::NotFound,
        "{missing}"
    );
    assert!(
        reads
            .iter()
            .all(|r| !r.starts_with("GET /crm/v3/objects/companies/")),
        "no single reads: {reads:?}"
    );
    assert!(
        reads.contains(&"POST /crm/v3/objects/companies/batch/read".to_string()),
        "{reads:?}"
    );

    // Activities are looked up type by type: a note and a call in one call, in order.
    let mut note = Activity::new(ActivityKind::Note);
    note.body = Some("Met at the fair".into());
    note.occurred_at = chrono::DateTime::from_timestamp(1_767_225_600, 0);
    let mut call = Activity::new(ActivityKind::Call);
    call.body = Some("Called back".into());
    call.occurred_at = chrono::DateTime::from_timestamp(1_767_225_600, 0);
    let out = conn
        .create(vec![Record::Activity(call), Record::Activity(note)])
        .await;
    let acts: Vec<String> = out.succeeded().map(|r| r.id.clone()).collect();
    assert_eq!(acts.len(), 2, "{:?}", out.results);
    let asked = vec![acts[1].clone(), "888888888".to_string(), acts[0].clone()];
    let got = conn.get_many(ObjectKind::Activity, &asked).await;
    let kinds: Vec<Option<ActivityKind>> = got
        .iter()
        .map(|r| match r {
            Ok(Record::Activity(a)) => Some(a.kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [Some(ActivityKind::Note), None, Some(ActivityKind::Call)]
    );
    assert_eq!(
        got[1].as_ref().expect_err("missing").kind(),
        crmkit_core::ErrorKind::NotFound
    );
}
