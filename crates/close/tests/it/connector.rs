//! The `Connector` contract on Close, against the sandbox: patch updates, the change feed
//! (at least once, tombstones, skipped records), idempotent creates, and listings past the
//! `_skip` ceiling.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crmkit_close::{Client, CloseConnector, Contact, LeadFields, Opportunity, Patch};
use crmkit_core::connector::{Marked, SkipReason};
use crmkit_core::http::{ApiRequest, Method};
use crmkit_core::{
    Change, ChangeCursor, Company, Connector, Crm, ErrorKind, ObjectKind, Record, RecordRef,
    SecretString,
};
use crmkit_sandbox::close::{CloseSandbox, RunningClose};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use super::{client, opportunities_in_tens, sandbox};

/// Every change of `kind` after `since`.
async fn run(conn: &CloseConnector, kind: ObjectKind, since: Option<ChangeCursor>) -> Vec<Change> {
    conn.changes(kind, since)
        .try_collect()
        .await
        .expect("feed runs")
}

fn upserts(changes: &[Change]) -> Vec<&Record> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Upsert { record, .. } => Some(record),
            _ => None,
        })
        .collect()
}

fn writes(sb: &RunningClose) -> usize {
    sb.stats()
        .requests
        .iter()
        .filter(|r| r.method != "GET" && r.path != "data/search/" && r.path != "/data/search/")
        .count()
}

/// One record of `kind` as the change feed delivers it (its `raw` holds the listing fields).
async fn from_feed(
    conn: &CloseConnector,
    kind: ObjectKind,
    wanted: impl Fn(&Record) -> bool,
) -> Record {
    let changes = run(conn, kind, None).await;
    upserts(&changes)
        .into_iter()
        .find(|r| wanted(r))
        .cloned()
        .unwrap_or_else(|| panic!("a seeded {kind} record in the feed"))
}

/// One record of `kind` read through the connector's `get`.
async fn first(
    conn: &CloseConnector,
    kind: ObjectKind,
    wanted: impl Fn(&Record) -> bool,
) -> Record {
    let found = from_feed(conn, kind, wanted).await;
    conn.get(kind, found.id().expect("id")).await.expect("get")
}

/// Which seeded record a test wants.
type Pick = Box<dyn Fn(&Record) -> bool>;

#[tokio::test]
async fn a_record_read_and_written_back_unchanged_changes_nothing() {
    // Enough seeded leads that every kind picked below exists: a lead has 0–2 deals, every
    // 3rd lead has emails and every 5th a meeting.
    let sb = sandbox(15).await;
    let conn = CloseConnector::new(client(&sb, "k"));
    let activity = |kind: crmkit_core::ActivityKind| -> (ObjectKind, Pick) {
        (
            ObjectKind::Activity,
            Box::new(move |r| matches!(r, Record::Activity(a) if a.kind == kind)),
        )
    };
    let picks: [(ObjectKind, Pick); 7] = [
        (ObjectKind::Company, Box::new(|_| true)),
        (
            ObjectKind::Person,
            Box::new(
                |r| matches!(r, Record::Person(p) if !p.emails.is_empty() && !p.phones.is_empty()),
            ),
        ),
        (ObjectKind::Deal, Box::new(|_| true)),
        activity(crmkit_core::ActivityKind::Call),
        activity(crmkit_core::ActivityKind::Note),
        activity(crmkit_core::ActivityKind::Email),
        activity(crmkit_core::ActivityKind::Meeting),
    ];
    for (kind, wanted) in picks {
        // Read through the change feed (what a sync engine holds) and through `get`.
        let fed = from_feed(&conn, kind, &wanted).await;
        let before = conn.get(kind, fed.id().expect("id")).await.unwrap();
        for (how, record) in [("feed", fed), ("get", before.clone())] {
            sb.reset_stats();
            let out = conn.update(vec![record]).await;
            assert_eq!(
                out.succeeded().count(),
                1,
                "{kind} ({how}): {:?}",
                out.results
            );
            assert_eq!(
                writes(&sb),
                0,
                "{kind} ({how}): an unchanged record sends nothing"
            );
        }
        let id = before.id().expect("id");
        let after = conn.get(kind, id).await.unwrap();
        assert_eq!(after, before, "{kind}: every field the same");
    }
}

#[tokio::test]
async fn a_patched_contact_keeps_its_emails_and_phones() {
    // Needs a sandbox whose PUT is partial on contacts too (Close's is, A3).
    let sb = sandbox(2).await;
    let conn = CloseConnector::new(client(&sb, "k"));
    let Record::Person(mut p) = first(
        &conn,
        ObjectKind::Person,
        |r| matches!(r, Record::Person(p) if !p.emails.is_empty() && !p.phones.is_empty()),
    )
    .await
    else {
        panic!("person")
    };
    let (emails, phones) = (p.emails.clone(), p.phones.clone());
    p.title = Some("Chief Patch Officer".into());
    let id = p.id.clone().unwrap();
    sb.reset_stats();
    let out = conn.update(vec![Record::Person(p)]).await;
    assert_eq!(out.succeeded().count(), 1, "{:?}", out.results);
    assert_eq!(writes(&sb), 1);
    let Record::Person(now) = conn.get(ObjectKind::Person, &id).await.unwrap() else {
        panic!("person")
    };
    assert_eq!(now.title.as_deref(), Some("Chief Patch Officer"));
    assert_eq!(
        (now.emails, now.phones),
        (emails, phones),
        "lists untouched"
    );
}

#[tokio::test]
async fn updates_send_only_what_changed() {
    let sb = sandbox(2).await;
    let conn = CloseConnector::new(client(&sb, "k"));
    // Without `raw`, only the fields that are set go out: nothing is emptied.
    let Record::Company(lead) = first(&conn, ObjectKind::Company, |_| true).await else {
        panic!("company")
    };
    let bare = Company {
        id: lead.id.clone(),
        description: Some("Patched from a bare record".into()),
        ..Company::default()
    };
    let out = conn.update(vec![Record::Company(bare)]).await;
    assert_eq!(out.succeeded().count(), 1, "{:?}", out.results);
    let Record::Company(now) = conn
        .get(ObjectKind::Company, lead.id.as_deref().unwrap())
        .await
        .unwrap()
    else {
        panic!("company")
    };
    assert_eq!(
        now.description.as_deref(),
        Some("Patched from a bare record")
    );
    assert_eq!((now.name, now.url), (lead.name, lead.url));

    // A deal whose name was read from its lead keeps an empty note: nothing is copied over.
    let c = client(&sb, "k");
    let opp: Opportunity = c
        .opportunities()
        .create(&json!({"lead_id": lead.id, "note": ""}))
        .await
        .unwrap();
    let before = conn.get(ObjectKind::Deal, &opp.id).await.unwrap();
    sb.reset_stats();
    let out = conn.update(vec![before]).await;
    assert_eq!(out.succeeded().count(), 1, "{:?}", out.results);
    assert_eq!(writes(&sb), 0, "a deal with an empty note sends nothing");
    let stored: Opportunity = c.opportunities().get(&opp.id).await.unwrap();
    assert_eq!(stored.note.as_deref().unwrap_or(""), "");

    // Clearing is explicit: a Patch::Clear, or a field the caller emptied after reading it.
    let lead_id = lead.id.unwrap();
    c.leads()
        .update(
            &lead_id,
            &LeadFields {
                url: Patch::Clear,
                ..LeadFields::default()
            },
        )
        .await
        .unwrap();
    let Record::Company(cleared) = conn.get(ObjectKind::Company, &lead_id).await.unwrap() else {
        panic!("company")
    };
    assert_eq!(cleared.url, None);
    assert_eq!(
        cleared.description.as_deref(),
        Some("Patched from a bare record")
    );
}

#[tokio::test]
async fn the_change_feed_sees_every_change_made_while_it_runs() {
    let sb = sandbox(0).await;
    let c = client(&sb, "k");
    let conn = CloseConnector::new(c.clone()).with_page_size(7);
    let mut ids = Vec::new();
    for i in 0..30 {
        let lead: crmkit_close::Lead = c
            .leads()
            .create(&super::named(&format!("Feed {i}")))
            .await
            .unwrap();
        ids.push(lead.id);
    }
    // Run 1, changing records between its pages: updates of read and unread records,
    // creations and deletions.
    let mut feed = conn.changes(ObjectKind::Company, None);
    let mut first_run = Vec::new();
    let mut created = Vec::new();
    let (updated, deleted) = (
        vec![ids[0].clone(), ids[20].clone()],
        vec![ids[1].clone(), ids[25].clone()],
    );
    while let Some(change) = feed.try_next().await.unwrap() {
        if first_run.len() == 8 {
            for id in &updated {
                c.leads()
                    .update(id, &json!({"name": format!("Renamed {id}")}))
                    .await
                    .unwrap();
            }
            for id in &deleted {
                c.leads().delete(id).await.unwrap();
            }
            for i in 0..3 {
                let lead: crmkit_close::Lead = c
                    .leads()
                    .create(&super::named(&format!("Late {i}")))
                    .await
                    .unwrap();
                created.push(lead.id);
            }
        }
        first_run.push(change);
    }
    drop(feed);
    let cursor = first_run.last().unwrap().cursor().clone();
    let second_run = run(&conn, ObjectKind::Company, Some(cursor)).await;

    let seen: HashMap<String, String> = upserts(&first_run)
        .into_iter()
        .chain(upserts(&second_run))
        .filter_map(|r| match r {
            Record::Company(c) => Some((c.id.clone()?, c.name.clone())),
            _ => None,
        })
        .collect();
    for id in ids
        .iter()
        .chain(&created)
        .filter(|id| !deleted.contains(id))
    {
        assert!(seen.contains_key(id), "{id} was never seen");
    }
    for id in &updated {
        let renamed = upserts(&second_run).into_iter().any(|r| {
            r.id() == Some(id.as_str())
                && matches!(r, Record::Company(c) if c.name.starts_with("Renamed"))
        });
        assert!(renamed, "the update of {id} is seen by the next run");
    }
    let tombstones: HashSet<&str> = second_run
        .iter()
        .filter_map(|c| match c {
            Change::Deleted { record, .. } => Some(record.id.as_str()),
            _ => None,
        })
        .collect();
    for id in &deleted {
        assert!(
            tombstones.contains(id.as_str()),
            "{id} comes out as a tombstone"
        );
    }
    // A cursor from another connector is refused, not misread.
    let e = conn
        .changes(ObjectKind::Company, Some(ChangeCursor("2024-01-01".into())))
        .try_next()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
}

#[tokio::test]
async fn a_lead_merge_is_one_merged_deletion_and_moves_its_children_as_upserts() {
    let sb = sandbox(0).await;
    let c = client(&sb, "k");
    let conn = CloseConnector::new(c.clone());
    let post = |path: &'static str, body: Value| {
        let c = c.clone();
        async move { c.raw(&ApiRequest::post(path, body)).await.expect(path) }
    };
    let source = post(
        "lead/",
        json!({"name": "Source", "contacts": [{"name": "Sam Source"}]}),
    )
    .await;
    let (source_id, contact_id) = (
        source["id"].as_str().unwrap().to_string(),
        source["contacts"][0]["id"].as_str().unwrap().to_string(),
    );
    let dest = post(
        "lead/",
        json!({"name": "Destination", "contacts": [{"name": "Dee Dest"}]}),
    )
    .await;
    let dest_id = dest["id"].as_str().unwrap().to_string();
    let deal = post(
        "opportunity/",
        json!({"lead_id": source_id, "note": "Deal"}),
    )
    .await;
    let note = post(
        "activity/note/",
        json!({"lead_id": source_id, "note": "Met"}),
    )
    .await;
    let kinds = [
        ObjectKind::Company,
        ObjectKind::Person,
        ObjectKind::Deal,
        ObjectKind::Activity,
    ];
    let mut cursors = Vec::new();
    for kind in kinds {
        let first = run(&conn, kind, None).await;
        cursors.push(
            first
                .last()
                .expect("a record of each kind")
                .cursor()
                .clone(),
        );
    }
    post(
        "lead/merge/",
        json!({"source": source_id, "destination": dest_id}),
    )
    .await;
    for (kind, cursor) in kinds.into_iter().zip(cursors) {
        let changes = run(&conn, kind, Some(cursor)).await;
        let deleted: Vec<(&str, Option<&str>)> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Deleted {
                    record,
                    merged_into,
                    ..
                } => Some((record.id.as_str(), merged_into.as_deref())),
                _ => None,
            })
            .collect();
        let malformed = changes.iter().any(|c| {
            matches!(
                c,
                Change::Skipped {
                    cause: SkipReason::Malformed,
                    ..
                }
            )
        });
        assert!(!malformed, "{kind}: {changes:?}");
        let upserted: Vec<&str> = upserts(&changes).iter().filter_map(|r| r.id()).collect();
        match kind {
            ObjectKind::Company => {
                assert_eq!(
                    deleted,
                    [(source_id.as_str(), Some(dest_id.as_str()))],
                    "one deletion, merged into the destination"
                );
                assert!(upserted.contains(&dest_id.as_str()), "{upserted:?}");
            }
            _ => {
                assert_eq!(deleted, [], "{kind}: moved, not deleted");
                let moved = match kind {
                    ObjectKind::Person => contact_id.as_str(),
                    ObjectKind::Deal => deal["id"].as_str().unwrap(),
                    _ => note["id"].as_str().unwrap(),
                };
                assert!(
                    upserted.contains(&moved),
                    "{kind}: the moved record is an upsert: {upserted:?}"
                );
            }
        }
    }
}

/// Two leads with a contact each, and each kind's feed read once: the sandbox, a client and
/// connector for it, (source, its contact, destination, its contact), and the cursors of
/// Company and Person.
async fn two_leads_read() -> (
    RunningClose,
    Client,
    CloseConnector,
    [String; 4],
    Vec<ChangeCursor>,
) {
    let sb = sandbox(0).await;
    let c = client(&sb, "k");
    let conn = CloseConnector::new(c.clone());
    let mut ids = Vec::new();
    for name in ["Source", "Destination"] {
        let lead = c
            .raw(&ApiRequest::post(
                "lead/",
                json!({"name": name, "contacts": [{"name": format!("{name} Person")}]}),
            ))
            .await
            .expect("lead");
        ids.push(lead["id"].as_str().unwrap().to_string());
        ids.push(lead["contacts"][0]["id"].as_str().unwrap().to_string());
    }
    let mut cursors = Vec::new();
    for kind in [ObjectKind::Company, ObjectKind::Person] {
        let first = run(&conn, kind, None).await;
        cursors.push(first.last().expect("a change").cursor().clone());
    }
    (sb, c, conn, ids.try_into().expect("four ids"), cursors)
}

/// The feed's tombstones and gone records: (id, merged_into) of each `Deleted`, ids `Gone`.
fn removals(changes: &[Change]) -> (Vec<(String, Option<String>)>, Vec<String>) {
    let mut deleted = Vec::new();
    let mut gone = Vec::new();
    for c in changes {
        match c {
            Change::Deleted {
                record,
                merged_into,
                ..
            } => deleted.push((record.id.clone(), merged_into.clone())),
            Change::Gone { record, .. } => gone.push(record.id.clone()),
            _ => {}
        }
    }
    (deleted, gone)
}

/// Merge `meta` naming `source` and `destination`.
fn merge_meta(source: &str, destination: &str) -> Value {
    json!({"merge_source_lead_id": source, "merge_destination_lead_id": destination})
}

#[tokio::test]
async fn a_contact_deleted_in_a_merge_is_gone_not_a_tombstone() {
    let (sb, c, conn, [source, _, dest, contact], cursors) = two_leads_read().await;
    // Close may delete a child in a merge (and re-create it under another id): the sandbox's
    // merge does not, so its deletion is made, then given the merge's `meta`.
    c.raw(&ApiRequest::new(
        Method::DELETE,
        format!("contact/{contact}/"),
    ))
    .await
    .expect("deleted");
    sb.edit_events(|e| {
        if e["object_id"] == json!(contact) {
            e["meta"] = merge_meta(&source, &dest);
        }
    });
    let changes = run(&conn, ObjectKind::Person, Some(cursors[1].clone())).await;
    let (deleted, gone) = removals(&changes);
    assert_eq!(deleted, [], "no tombstone: {changes:?}");
    assert_eq!(gone, [contact], "{changes:?}");
    let Some(Change::Gone { reason, .. }) =
        changes.iter().find(|c| matches!(c, Change::Gone { .. }))
    else {
        unreachable!()
    };
    assert!(
        reason.contains(&source) && reason.contains(&dest),
        "{reason}"
    );
}

#[tokio::test]
async fn a_lead_deleted_with_merge_meta_it_is_not_the_source_of_is_gone() {
    let (sb, c, conn, [source, _, dest, _], cursors) = two_leads_read().await;
    let third = c
        .raw(&ApiRequest::post("lead/", json!({"name": "Third"})))
        .await
        .expect("lead")["id"]
        .as_str()
        .unwrap()
        .to_string();
    for id in [&third, &dest] {
        c.raw(&ApiRequest::new(Method::DELETE, format!("lead/{id}/")))
            .await
            .expect("deleted");
    }
    // Both deletions carry the meta of a merge of `source` into `dest`: the destination's
    // own, and a lead's that is neither.
    sb.edit_events(|e| {
        if e["object_type"] == "lead" && e["action"] == "deleted" {
            e["meta"] = merge_meta(&source, &dest);
        }
    });
    let changes = run(&conn, ObjectKind::Company, Some(cursors[0].clone())).await;
    let (deleted, mut gone) = removals(&changes);
    gone.sort();
    let mut want = vec![third, dest];
    want.sort();
    assert_eq!(deleted, [], "neither is merged nor deleted: {changes:?}");
    assert_eq!(gone, want, "{changes:?}");
}

#[tokio::test]
async fn a_merged_event_makes_a_source_deletion_without_meta_a_merge() {
    let (sb, c, conn, [source, source_contact, dest, _], cursors) = two_leads_read().await;
    c.raw(&ApiRequest::post(
        "lead/merge/",
        json!({"source": source, "destination": dest}),
    ))
    .await
    .expect("merged");
    // Folded with an earlier action, the source's deletion lost its merge `meta`; the
    // `merged` event keeps it.
    sb.edit_events(|e| {
        if e["action"] == "deleted" {
            e["meta"] = json!({});
        }
    });
    let changes = run(&conn, ObjectKind::Company, Some(cursors[0].clone())).await;
    assert_eq!(
        removals(&changes),
        (vec![(source.clone(), Some(dest.clone()))], vec![]),
        "one merge, not a second tombstone"
    );
    let people = run(&conn, ObjectKind::Person, Some(cursors[1].clone())).await;
    let (deleted, gone) = removals(&people);
    assert_eq!((deleted, gone), (vec![], vec![]), "{people:?}");
    assert!(
        upserts(&people)
            .iter()
            .any(|r| r.id() == Some(source_contact.as_str())),
        "the moved contact is an upsert"
    );
}

#[tokio::test]
async fn the_destination_deleted_after_a_merge_is_a_tombstone() {
    let (_sb, c, conn, [source, _, dest, dest_contact], cursors) = two_leads_read().await;
    c.raw(&ApiRequest::post(
        "lead/merge/",
        json!({"source": source, "destination": dest}),
    ))
    .await
    .expect("merged");
    c.raw(&ApiRequest::new(Method::DELETE, format!("lead/{dest}/")))
        .await
        .expect("deleted");
    let changes = run(&conn, ObjectKind::Company, Some(cursors[0].clone())).await;
    let (mut deleted, gone) = removals(&changes);
    deleted.sort();
    let mut want = vec![(source, Some(dest.clone())), (dest, None)];
    want.sort();
    assert_eq!(deleted, want, "a genuine deletion stays one: {changes:?}");
    assert_eq!(gone, Vec::<String>::new());
    let people = run(&conn, ObjectKind::Person, Some(cursors[1].clone())).await;
    let (deleted, _) = removals(&people);
    assert!(
        deleted.contains(&(dest_contact, None)),
        "its own contact is deleted with it: {people:?}"
    );
}

#[tokio::test]
async fn activities_without_a_unified_form_are_reported_not_fatal() {
    let sb = sandbox(2).await;
    let c = client(&sb, "k");
    let leads: Vec<crmkit_close::Lead> = c.leads().list().stream().try_collect().await.unwrap();
    let lead_id = leads[0].id.clone();
    let sms = c
        .raw(&ApiRequest::post(
            "activity/sms/",
            json!({"lead_id": lead_id, "text": "hi", "status": "inbox", "direction": "inbound"}),
        ))
        .await
        .unwrap();
    let sms_id = sms["id"].as_str().unwrap().to_string();
    let conn = CloseConnector::new(c);
    let changes = run(&conn, ObjectKind::Activity, None).await;
    let skipped: Vec<(&str, SkipReason, &str)> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Skipped {
                record,
                cause,
                reason,
                ..
            } => Some((record.id.as_str(), *cause, reason.as_str())),
            _ => None,
        })
        .collect();
    assert!(
        skipped.iter().any(|(id, cause, reason)| *id == sms_id
            && *cause == SkipReason::Unmappable
            && reason.contains("SMS")),
        "{skipped:?}"
    );
    assert!(
        skipped
            .iter()
            .all(|(_, cause, _)| *cause == SkipReason::Unmappable),
        "no seeded activity fails to map: {skipped:?}"
    );
    assert!(
        upserts(&changes).len() >= 4,
        "the mappable activities still come out"
    );
}

/// A sandbox with a text custom field on leads, and a connector keeping markers in it.
async fn marked_setup() -> (RunningClose, Client, CloseConnector, String) {
    let sb = sandbox(0).await;
    let c = client(&sb, "k");
    let cf: Value = c
        .raw(&ApiRequest::post(
            "custom_field/lead/",
            json!({"name": "crmkit marker", "type": "text"}),
        ))
        .await
        .unwrap();
    let cf_id = cf["id"].as_str().unwrap().to_string();
    let conn = CloseConnector::new(c.clone()).with_marker_field(&cf_id);
    (sb, c, conn, cf_id)
}

fn marked(name: &str, marker: &str) -> Marked {
    Marked {
        record: Record::Company(Company {
            name: name.into(),
            ..Company::default()
        }),
        marker: marker.into(),
    }
}

#[tokio::test]
async fn a_marked_create_interrupted_and_repeated_creates_once() {
    let (sb, c, conn, cf_id) = marked_setup().await;
    assert_eq!(
        conn.find_by_marker(ObjectKind::Company, "hubspot:company:42")
            .await
            .unwrap(),
        None
    );
    // The sandbox has no "processed, then the connection dropped" fault yet: the interrupted
    // create is simulated by creating the marked lead directly, as Close would have, and
    // the restarted sync then sends the same create.
    let done: Value = c
        .raw(&ApiRequest::post(
            "lead/",
            json!({"name": "Acme", format!("custom.{cf_id}"): "hubspot:company:42"}),
        ))
        .await
        .unwrap();
    let done_id = done["id"].as_str().unwrap().to_string();
    let again = conn
        .create_marked(vec![marked("Acme", "hubspot:company:42")])
        .await;
    assert_eq!(again.results[0].as_ref().unwrap().id, done_id);
    assert_eq!(sb.count("lead"), 1);
    // A marker that only contains the wanted one is not a match: values compare exactly.
    let near = conn
        .create_marked(vec![marked("Acme 2", "hubspot:company:4")])
        .await;
    let near_ref = near.results[0].as_ref().unwrap().clone();
    assert_ne!(near_ref.id, done_id);
    assert_eq!(sb.count("lead"), 2);
    assert_eq!(
        conn.find_by_marker(ObjectKind::Company, "hubspot:company:4")
            .await
            .unwrap(),
        Some(near_ref)
    );
    // Without a marker field the contract says so instead of creating blindly.
    let plain = CloseConnector::new(c);
    let e = plain
        .create_marked(vec![marked("Other", "hubspot:company:7")])
        .await;
    assert_eq!(e.results[0].as_ref().unwrap_err().kind(), ErrorKind::Config);
    assert_eq!(sb.count("lead"), 2);
}

#[tokio::test]
async fn a_missed_marker_is_also_looked_up_in_the_event_log_before_creating() {
    let (sb, _c, conn, _cf) = marked_setup().await;
    sb.reset_stats();
    let out = conn
        .create_marked(vec![marked("Fresh", "hubspot:company:9")])
        .await;
    assert_eq!(out.succeeded().count(), 1, "{:?}", out.results);
    let paths: Vec<String> = sb
        .stats()
        .requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path.trim_start_matches('/')))
        .collect();
    let event = paths.iter().position(|p| p.starts_with("GET event/"));
    let create = paths.iter().position(|p| p == "POST lead/");
    assert!(
        matches!((event, create), (Some(e), Some(c)) if e < c),
        "the event log is read before the create: {paths:?}"
    );
}

#[tokio::test]
async fn the_same_marker_twice_in_one_batch_creates_once() {
    let (sb, _c, conn, _cf) = marked_setup().await;
    let out = conn
        .create_marked(vec![
            marked("Acme", "sf:001"),
            marked("Other", "sf:002"),
            marked("Acme again", "sf:001"),
        ])
        .await;
    let refs: Vec<&RecordRef> = out.succeeded().collect();
    assert_eq!(refs.len(), 3, "{:?}", out.results);
    assert_eq!(refs[0], refs[2]);
    assert_ne!(refs[0], refs[1]);
    assert_eq!(sb.count("lead"), 2);
}

#[tokio::test]
async fn built_in_activities_are_created_once_by_their_natural_key() {
    let (sb, c, conn, _cf_id) = marked_setup().await;
    let lead = c
        .raw(&ApiRequest::post("lead/", json!({"name": "Acme"})))
        .await
        .expect("lead")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let at = chrono::DateTime::parse_from_rfc3339("2025-03-01T10:15:00Z")
        .expect("time")
        .to_utc();
    let note = |body: &str| {
        let mut n = crmkit_core::Activity::new(crmkit_core::ActivityKind::Note);
        n.body = Some(body.into());
        n.company_id = Some(lead.clone());
        n.occurred_at = Some(at);
        Marked {
            record: Record::Activity(n),
            marker: "hubspot:activity:1".into(),
        }
    };
    let before = sb.count("activity");
    let first = conn.create_marked(vec![note("Intro  call\n")]).await;
    let made = first.results[0].as_ref().expect("created").clone();
    assert_eq!(sb.count("activity"), before + 1);
    // A retry after an interruption: same lead, type, time and text (whitespace aside).
    let again = conn.create_marked(vec![note(" Intro call")]).await;
    assert_eq!(again.results[0].as_ref().expect("found"), &made);
    assert_eq!(sb.count("activity"), before + 1, "nothing created twice");
    assert_eq!(
        conn.find_created(&note("Intro call"))
            .await
            .expect("lookup"),
        Some(made.clone())
    );
    // Another text is another activity.
    assert_eq!(
        conn.find_created(&note("Other")).await.expect("lookup"),
        None
    );
    let other = conn.create_marked(vec![note("Other")]).await;
    assert_ne!(other.results[0].as_ref().expect("created"), &made);
    // Another second is another activity too, and does not hide the first.
    let mut later = note("Intro call");
    if let Record::Activity(a) = &mut later.record {
        a.occurred_at = Some(at + chrono::Duration::seconds(1));
    }
    assert_eq!(conn.find_created(&later).await.expect("lookup"), None);
    let later = conn.create_marked(vec![later]).await;
    assert_ne!(later.results[0].as_ref().expect("created"), &made);
    assert_eq!(
        conn.find_created(&note("Intro call"))
            .await
            .expect("lookup"),
        Some(made.clone()),
        "the one of that second"
    );
    // The marker alone cannot find a built-in activity.
    let e = conn
        .find_by_marker(ObjectKind::Activity, "hubspot:activity:1")
        .await
        .expect_err("no marker field on activities");
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("natural key"), "{e}");
}

#[tokio::test]
async fn batch_writes_report_per_record_in_input_order() {
    let sb = sandbox(1).await;
    let conn = CloseConnector::new(client(&sb, "k"));
    let good = |n: &str| {
        Record::Company(Company {
            name: n.into(),
            ..Company::default()
        })
    };
    let out = conn
        .update(vec![
            good("Nameless"),
            Record::Company(Company {
                id: Some("lead_doesnotexist00000000".into()),
                name: "x".into(),
                ..Company::default()
            }),
        ])
        .await;
    let errors: Vec<_> = out.failed().collect();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].1.kind(), ErrorKind::Validation);
    assert!(
        errors[0].1.to_string().contains("needs the record's id"),
        "{}",
        errors[0].1
    );
    assert_eq!(errors[1].1.kind(), ErrorKind::NotFound);
    assert!(
        errors[1].1.to_string().contains("lead_doesnotexist"),
        "{}",
        errors[1].1
    );
    let created = conn.create(vec![good("A"), good("B"), good("C")]).await;
    let names: Vec<String> =
        futures::stream::iter(created.succeeded().cloned().collect::<Vec<RecordRef>>())
            .then(|r| {
                let conn = conn.clone();
                async move { conn.get(r.object, &r.id).await.unwrap() }
            })
            .map(|r| match r {
                Record::Company(c) => c.name,
                _ => String::new(),
            })
            .collect()
            .await;
    assert_eq!(names, ["A", "B", "C"]);
    assert_eq!(created.results[0].as_ref().unwrap().crm, Crm::Close);
}

#[tokio::test]
async fn find_activity_takes_one_call() {
    let sb = sandbox(2).await;
    let c = client(&sb, "k");
    let conn = CloseConnector::new(c.clone());
    let meeting = first(
        &conn,
        ObjectKind::Activity,
        |r| matches!(r, Record::Activity(a) if a.kind == crmkit_core::ActivityKind::Meeting),
    )
    .await;
    sb.reset_stats();
    let (collection, found) = c.find_activity(meeting.id().unwrap()).await.unwrap();
    assert_eq!(collection, "activity/meeting/");
    assert_eq!(found["id"], meeting.id().unwrap());
    assert_eq!(
        sb.stats().requests.len(),
        1,
        "one request, whatever the type"
    );
    let e = c.find_activity("acti_doesnotexist0000").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_meeting_is_updated_without_its_raw() {
    let sb = sandbox(2).await;
    let conn = CloseConnector::new(client(&sb, "k"));
    let meeting = from_feed(
        &conn,
        ObjectKind::Activity,
        |r| matches!(r, Record::Activity(a) if a.kind == crmkit_core::ActivityKind::Meeting),
    )
    .await;
    let mut bare = crmkit_core::Activity::new(crmkit_core::ActivityKind::Meeting);
    bare.id = meeting.id().map(str::to_string);
    bare.body = Some("Agenda, rewritten".into());
    let out = conn.update(vec![Record::Activity(bare)]).await;
    assert_eq!(out.succeeded().count(), 1, "{:?}", out.results);
    let Record::Activity(now) = conn
        .get(ObjectKind::Activity, meeting.id().unwrap())
        .await
        .unwrap()
    else {
        panic!("activity")
    };
    assert_eq!(now.body.as_deref(), Some("Agenda, rewritten"));
}

/// A sandbox of 40 leads whose `_skip` ceiling (20) is below its number of contacts and
/// opportunities, and a client for it.
async fn past_the_skip_ceiling() -> (RunningClose, Client) {
    let sb = CloseSandbox::builder()
        .seed(5)
        .leads(40)
        .max_skip(20)
        .start()
        .await
        .unwrap();
    let c = client(&sb, "k");
    (sb, c)
}

/// Asserts that `ids` lists each of the sandbox's `total` objects once, past the ceiling.
fn assert_each_once(ids: &[&str], total: usize) {
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), total);
    assert_eq!(unique.len(), ids.len(), "no duplicates");
    assert!(ids.len() > 30, "{}", ids.len());
}

#[tokio::test]
async fn contacts_list_by_keyset_search_without_offsets() {
    // Contacts page by keyset over /data/search/: no offsets, so no ceiling to meet.
    let (sb, c) = past_the_skip_ceiling().await;
    let contacts: Vec<Contact> = c
        .contacts()
        .list()
        .limit(10)
        .stream()
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<&str> = contacts.iter().map(|x| x.id.as_str()).collect();
    assert_each_once(&ids, sb.count("contact"));
}

#[tokio::test]
async fn opportunities_learn_the_skip_ceiling_from_the_server() {
    // Needs a sandbox whose 400 names the ceiling as Close's does ("max_skip = N").
    let (sb, c) = past_the_skip_ceiling().await;
    let opps = opportunities_in_tens(&c).await;
    let ids: Vec<&str> = opps.iter().map(|x| x.id.as_str()).collect();
    assert_each_once(&ids, sb.count("opportunity"));
}

#[tokio::test]
async fn the_sandbox_root_works_as_base_url_and_a_wrong_one_says_so() {
    let sb = sandbox(1).await;
    let root = Client::builder()
        .api_key(SecretString::from("k"))
        .base_url(sb.base_url())
        .build()
        .unwrap();
    root.me()
        .await
        .expect("the server root is completed to the API root");
    let wrong = Client::builder()
        .api_key(SecretString::from("k"))
        .base_url(format!("{}/v2/", sb.base_url().trim_end_matches('/')))
        .retry(super::fast_retry())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let e = wrong.me().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("base URL is probably wrong"), "{e}");
}

#[tokio::test]
async fn a_childs_tombstone_names_its_lead_only_when_the_leads_deletion_took_it() {
    let (sb, c, conn, [first, alone, second, taken], cursors) = two_leads_read().await;
    let delete = |path: String| {
        let c = c.clone();
        async move {
            c.raw(&ApiRequest::new(Method::DELETE, path))
                .await
                .expect("deleted")
        }
    };
    // A lead with two contacts, and their ids.
    let lead = |name: &'static str| {
        let c = c.clone();
        async move {
            let l = c
                .raw(&ApiRequest::post(
                    "lead/",
                    json!({"name": name, "contacts": [{"name": format!("{name} A")},
                                                      {"name": format!("{name} B")}]}),
                ))
                .await
                .expect("lead");
            let id = |v: &Value| v["id"].as_str().unwrap().to_string();
            (id(&l), [id(&l["contacts"][0]), id(&l["contacts"][1])])
        }
    };
    let (late, late_contacts) = lead("Late").await;
    let (unasked, [unasked_contact, _]) = lead("Unasked").await;
    let (alive, [alive_contact, alive_unasked]) = lead("Alive").await;
    // The first lead's contact is deleted on its own, then the lead (two requests: different
    // `request_id`s); the second lead is deleted with its contact.
    delete(format!("contact/{alone}/")).await;
    delete(format!("lead/{first}/")).await;
    delete(format!("lead/{second}/")).await;
    // Deleted with its contacts, but its own `deleted` event is not in the log yet.
    delete(format!("lead/{late}/")).await;
    // Deleted with its contacts, whose `deleted` events carry no `request_id`.
    delete(format!("lead/{unasked}/")).await;
    // Two contacts deleted alone under a lead that lives on, one without a `request_id`.
    delete(format!("contact/{alive_contact}/")).await;
    delete(format!("contact/{alive_unasked}/")).await;
    sb.edit_events(|e| {
        if e["object_id"] == json!(late) && e["action"] == "deleted" {
            e["action"] = json!("not_logged_yet");
        }
        if e["object_type"] == "contact"
            && (e["lead_id"] == json!(unasked) || e["object_id"] == json!(alive_unasked))
        {
            e["request_id"] = Value::Null;
        }
    });
    sb.reset_stats();
    let changes = run(&conn, ObjectKind::Person, Some(cursors[1].clone())).await;
    let parents: HashMap<&str, Option<&str>> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Deleted { record, parent, .. } => {
                Some((record.id.as_str(), parent.as_ref().map(|p| p.id.as_str())))
            }
            _ => None,
        })
        .collect();
    let mut want: HashMap<&str, Option<&str>> = HashMap::from([
        // Its lead's deletion has another request_id.
        (alone.as_str(), None),
        (taken.as_str(), Some(second.as_str())),
        (unasked_contact.as_str(), Some(unasked.as_str())),
        // The lead lives on.
        (alive_contact.as_str(), None),
        (alive_unasked.as_str(), None),
    ]);
    for c in &late_contacts {
        // No `deleted` event of the lead is visible, but Close answers 404 for it.
        want.insert(c.as_str(), Some(late.as_str()));
    }
    for (id, p) in &want {
        assert_eq!(parents.get(id), Some(p), "{id}: {parents:?}");
    }
    // Each lead is asked for once, however many children name it; a lead whose deletion
    // event shares the child's request_id, or whose deletion has another, is not asked for.
    let asked = |l: &str| {
        sb.stats()
            .requests
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with(&format!("lead/{l}/")))
            .count()
    };
    assert_eq!(asked(&late), 1);
    assert_eq!(asked(&unasked), 1);
    assert_eq!(asked(&alive), 1);
    assert_eq!(asked(&first), 0);
    assert_eq!(asked(&second), 0);
}

#[tokio::test]
async fn a_failed_lead_lookup_fails_the_page_and_skips_no_tombstone() {
    let (sb, c, conn, [_, _, lead, contact], cursors) = two_leads_read().await;
    c.raw(&ApiRequest::new(Method::DELETE, format!("lead/{lead}/")))
        .await
        .expect("deleted");
    sb.edit_events(|e| {
        if e["object_id"] == json!(lead) && e["action"] == "deleted" {
            e["action"] = json!("not_logged_yet");
        }
    });
    sb.set_faults(crmkit_sandbox::faults::Faults {
        rate_500: 1.0,
        route: Some(format!("GET /lead/{lead}/")),
        ..Default::default()
    });
    let mut feed = conn.changes(ObjectKind::Person, Some(cursors[1].clone()));
    let mut failed = false;
    while let Some(item) = feed.next().await {
        match item {
            Ok(Change::Deleted { record, .. }) => {
                panic!("{} came out without its lookup", record.id)
            }
            Ok(_) => {}
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    drop(feed);
    assert!(failed, "the failed GET lead/{lead}/ fails the page");
    sb.set_faults(crmkit_sandbox::faults::Faults::default());
    let changes = run(&conn, ObjectKind::Person, Some(cursors[1].clone())).await;
    let parent = changes.iter().find_map(|c| match c {
        Change::Deleted { record, parent, .. } if record.id == contact => Some(parent.clone()),
        _ => None,
    });
    assert_eq!(
        parent.flatten().map(|p| p.id),
        Some(lead),
        "read again once Close answers: {changes:?}"
    );
}
