//! The HubSpot connector against the HubSpot sandbox over loopback HTTP.

use std::time::Duration;

use crmkit_core::connector::{Change, Marked};
use crmkit_core::model::{Company, Person};
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
                ("hs_deal_stage_probability", "0.2"),
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
    assert!(first.iter().all(|c| matches!(c, Change::Upsert { .. })));
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

    // Kinds without a configured marker property are refused, never created unmarked.
    let out = conn
        .create_marked(vec![Marked {
            record: company("Unmarked"),
            marker: "m-1".into(),
        }])
        .await;
    assert_eq!(
        out.results[0].as_ref().err().map(|e| e.kind()),
        Some(crmkit_core::ErrorKind::Config)
    );
    assert_eq!(sb.count("companies"), 0);
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
