//! Links: lookups by any CRM id, unique CRM ids, optimistic concurrency, upsert and unlink.

use chrono::{TimeZone, Utc};
use crmkit_core::{Crm, ObjectKind, RecordRef};
use crmkit_store::{Error, LinkUpdate, NewLink};
use serde_json::json;

use crate::support::{TestDb, both_backends};

both_backends!(
    insert_and_look_up_by_every_id,
    a_crm_id_is_held_by_one_link,
    stale_writes_are_refused,
    racing_writers_one_wins,
    racing_inserts_of_one_crm_id,
    racing_upserts_of_one_record_make_one_link,
    upsert_creates_merges_and_refuses,
    unlink_and_hashes,
    field_values_per_side,
    list_pages_in_id_order,
    batch_lookups_answer_in_order_past_a_chunk,
);

async fn insert_and_look_up_by_every_id(db: TestDb) {
    let s = &db.store;
    let link = s
        .insert_link(
            &NewLink::new(ObjectKind::Company)
                .crm_id(Crm::Close, "lead_abc")
                .crm_id(Crm::HubSpot, "101")
                .domain("acme.example")
                .company_name("Acme"),
        )
        .await
        .unwrap();
    assert_eq!(link.version, 1);
    assert_eq!(link.close_id.as_deref(), Some("lead_abc"));
    assert_eq!(link.salesforce_id, None);
    for crm in [Crm::Close, Crm::HubSpot] {
        let record = link.record(crm).unwrap();
        assert_eq!(
            s.link_by_record(&record).await.unwrap().as_ref(),
            Some(&link)
        );
    }
    assert_eq!(s.link(&link.id).await.unwrap().as_ref(), Some(&link));
    assert_eq!(
        s.links_by_domain(ObjectKind::Company, "acme.example")
            .await
            .unwrap(),
        vec![link.clone()]
    );
    assert!(
        s.links_by_domain(ObjectKind::Person, "acme.example")
            .await
            .unwrap()
            .is_empty()
    );
    // The same HubSpot id on another kind of record is another record.
    let person = RecordRef::new(Crm::HubSpot, ObjectKind::Person, "101");
    assert_eq!(s.link_by_record(&person).await.unwrap(), None);
    let p = s
        .insert_link(&NewLink::from_record(&person).email("ada@acme.example"))
        .await
        .unwrap();
    assert_eq!(s.link_by_record(&person).await.unwrap().unwrap().id, p.id);
    assert_eq!(
        s.links_by_email(ObjectKind::Person, "ada@acme.example")
            .await
            .unwrap(),
        vec![p]
    );
    // A link without any CRM id is refused.
    let e = s
        .insert_link(&NewLink::new(ObjectKind::Deal))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
}

async fn a_crm_id_is_held_by_one_link(db: TestDb) {
    let s = &db.store;
    let a = s
        .insert_link(&NewLink::new(ObjectKind::Company).crm_id(Crm::Close, "lead_1"))
        .await
        .unwrap();
    let e = s
        .insert_link(&NewLink::new(ObjectKind::Company).crm_id(Crm::Close, "lead_1"))
        .await
        .unwrap_err();
    match &e {
        Error::CrmIdTaken {
            crm,
            crm_id,
            link,
            held_by,
            ..
        } => {
            assert_eq!((*crm, crm_id.as_str()), (Crm::Close, "lead_1"));
            assert_eq!(link, &None);
            assert_eq!(held_by.as_ref(), Some(&a.id));
        }
        other => panic!("expected CrmIdTaken, got {other:?}"),
    }
    assert!(e.to_string().contains(a.id.as_str()), "{e}");
    let b = s
        .insert_link(&NewLink::new(ObjectKind::Company).crm_id(Crm::HubSpot, "202"))
        .await
        .unwrap();
    let e = s.set_crm_id(&b, Crm::Close, "lead_1").await.unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains(a.id.as_str()) && message.contains(b.id.as_str()),
        "{message}"
    );
    assert!(
        message.contains("lead_1") && message.contains("close"),
        "{message}"
    );
    // Nothing was written.
    assert_eq!(s.link(&b.id).await.unwrap().unwrap(), b);
}

async fn stale_writes_are_refused(db: TestDb) {
    let s = &db.store;
    let read_1 = s
        .insert_link(&NewLink::new(ObjectKind::Person).crm_id(Crm::Close, "cont_1"))
        .await
        .unwrap();
    let read_2 = read_1.clone();
    let v2 = s
        .update_link(
            &read_1,
            &LinkUpdate::new().email(Some("new@x.example".into())),
        )
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    let e = s
        .update_link(
            &read_2,
            &LinkUpdate::new().email(Some("old@x.example".into())),
        )
        .await
        .unwrap_err();
    match &e {
        Error::VersionConflict {
            what,
            id,
            expected,
            found,
        } => {
            assert_eq!(
                (*what, id.as_str(), *expected, *found),
                ("link", read_1.id.as_str(), 1, 2)
            );
        }
        other => panic!("expected VersionConflict, got {other:?}"),
    }
    let stored = s.link(&read_1.id).await.unwrap().unwrap();
    assert_eq!(stored.email.as_deref(), Some("new@x.example"));
    assert_eq!(stored, v2);
    assert!(matches!(
        s.delete_link(&read_2).await,
        Err(Error::VersionConflict { .. })
    ));
    s.delete_link(&v2).await.unwrap();
    assert_eq!(s.link(&read_1.id).await.unwrap(), None);
    let e = s.set_hash(&v2, Crm::Close, "h").await.unwrap_err();
    assert!(matches!(e, Error::NotFound { what: "link", .. }), "{e}");
}

async fn racing_writers_one_wins(db: TestDb) {
    let first = db.store.clone();
    let second = db.open_another().await;
    let link = first
        .insert_link(&NewLink::new(ObjectKind::Deal).crm_id(Crm::HubSpot, "9"))
        .await
        .unwrap();
    for round in 0..5 {
        let current = first.link(&link.id).await.unwrap().unwrap();
        let (a, b) = (current.clone(), current.clone());
        let (f, s) = (first.clone(), second.clone());
        let ta =
            tokio::spawn(async move { f.set_hash(&a, Crm::HubSpot, &format!("a{round}")).await });
        let tb =
            tokio::spawn(async move { s.set_hash(&b, Crm::HubSpot, &format!("b{round}")).await });
        let outcomes = [ta.await.unwrap(), tb.await.unwrap()];
        let won: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "exactly one writer wins: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .any(|o| matches!(o, Err(Error::VersionConflict { .. }))),
            "{outcomes:?}"
        );
        let stored = first.link(&link.id).await.unwrap().unwrap();
        assert_eq!(&stored, won[0]);
        assert_eq!(stored.version, current.version + 1);
    }
}

async fn racing_inserts_of_one_crm_id(db: TestDb) {
    let handles = [db.store.clone(), db.open_another().await];
    for round in 0..10 {
        let id = format!("{round}0{round}");
        let mut tasks = Vec::new();
        for (h, store) in handles.iter().enumerate() {
            for t in 0..3 {
                let store = store.clone();
                let new = NewLink::new(ObjectKind::Company)
                    .crm_id(Crm::HubSpot, id.clone())
                    .crm_id(Crm::Close, format!("lead_{round}_{h}_{t}"));
                tasks.push(tokio::spawn(async move { store.insert_link(&new).await }));
            }
        }
        let mut created = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(link) => created.push(link),
                // Seen by the pre-check (naming the holder) or, when both inserts ran at once,
                // by the database's unique constraint: either way, which id of which CRM.
                Err(Error::CrmIdTaken {
                    crm: Crm::HubSpot,
                    crm_id,
                    link: None,
                    ..
                }) => {
                    assert_eq!(crm_id, id);
                }
                Err(e) => panic!("round {round}: unexpected {e}"),
            }
        }
        assert_eq!(created.len(), 1, "round {round}: {created:?}");
        let record = RecordRef::new(Crm::HubSpot, ObjectKind::Company, id.as_str());
        assert_eq!(
            db.store.link_by_record(&record).await.unwrap(),
            created.pop()
        );
    }
}

async fn racing_upserts_of_one_record_make_one_link(db: TestDb) {
    let handles = [db.store.clone(), db.open_another().await];
    for round in 0..10 {
        let close_id = format!("lead_race_{round}");
        let mut tasks = Vec::new();
        for (h, store) in handles.iter().enumerate() {
            for t in 0..3 {
                let store = store.clone();
                let new = NewLink::new(ObjectKind::Company)
                    .crm_id(Crm::Close, close_id.clone())
                    .company_name(format!("p{h}t{t}"));
                tasks.push(tokio::spawn(async move { store.upsert_link(&new).await }));
            }
        }
        let mut ids = Vec::new();
        let mut created = 0;
        for t in tasks {
            let up = t
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            created += usize::from(up.created);
            ids.push(up.link.id);
        }
        assert_eq!(created, 1, "round {round}");
        ids.dedup();
        assert_eq!(
            ids.len(),
            1,
            "round {round}: every upsert ended on one link"
        );
    }
}

async fn upsert_creates_merges_and_refuses(db: TestDb) {
    let s = &db.store;
    let created = s
        .upsert_link(&NewLink::new(ObjectKind::Company).crm_id(Crm::Close, "lead_u"))
        .await
        .unwrap();
    assert!(created.created);
    let merged = s
        .upsert_link(
            &NewLink::new(ObjectKind::Company)
                .crm_id(Crm::Close, "lead_u")
                .crm_id(Crm::Salesforce, "001000000000001AAA")
                .domain("u.example"),
        )
        .await
        .unwrap();
    assert!(!merged.created);
    assert_eq!(merged.link.id, created.link.id);
    assert_eq!(
        merged.link.salesforce_id.as_deref(),
        Some("001000000000001AAA")
    );
    assert_eq!(merged.link.domain.as_deref(), Some("u.example"));
    assert_eq!(merged.link.version, 2);
    // The same upsert again changes nothing, not even the version.
    let again = s
        .upsert_link(
            &NewLink::new(ObjectKind::Company).crm_id(Crm::Salesforce, "001000000000001AAA"),
        )
        .await
        .unwrap();
    assert_eq!(again.link, merged.link);
    // A different id for a side the link already holds is refused.
    let e = s
        .upsert_link(
            &NewLink::new(ObjectKind::Company)
                .crm_id(Crm::Close, "lead_u")
                .crm_id(Crm::Salesforce, "001000000000002AAA"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::CrmIdMismatch {
                crm: Crm::Salesforce,
                ..
            }
        ),
        "{e}"
    );
    // Ids of two different links in one upsert are refused, naming both.
    let other = s
        .insert_link(&NewLink::new(ObjectKind::Company).crm_id(Crm::HubSpot, "77"))
        .await
        .unwrap();
    let e = s
        .upsert_link(
            &NewLink::new(ObjectKind::Company)
                .crm_id(Crm::Close, "lead_u")
                .crm_id(Crm::HubSpot, "77"),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AmbiguousLinks { .. }), "{e}");
    let m = e.to_string();
    assert!(
        m.contains(other.id.as_str()) && m.contains(created.link.id.as_str()),
        "{m}"
    );
}

async fn unlink_and_hashes(db: TestDb) {
    let s = &db.store;
    let link = s
        .insert_link(
            &NewLink::new(ObjectKind::Person)
                .crm_id(Crm::Close, "cont_h")
                .crm_id(Crm::HubSpot, "5"),
        )
        .await
        .unwrap();
    let link = s.set_hash(&link, Crm::Close, "hc").await.unwrap();
    let link = s.set_hash(&link, Crm::HubSpot, "hh").await.unwrap();
    let at = Utc.timestamp_millis_opt(1_700_000_000_123).unwrap();
    let link = s
        .update_link(&link, &LinkUpdate::new().synced("u1", Crm::Close, at))
        .await
        .unwrap();
    let stored = s.link(&link.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.hash(Crm::Close), stored.hash(Crm::HubSpot)),
        (Some("hc"), Some("hh"))
    );
    assert_eq!(stored.sync_hash.as_deref(), Some("u1"));
    assert_eq!(stored.sync_source, Some(Crm::Close));
    assert_eq!(stored.last_synced_at, Some(at));
    assert_eq!(stored.version, 4);
    // Unlinking a side clears its id and its hash, and frees the id.
    let unlinked = s.unlink(&stored, Crm::HubSpot).await.unwrap();
    assert_eq!(
        (unlinked.hubspot_id.as_deref(), unlinked.hash(Crm::HubSpot)),
        (None, None)
    );
    assert_eq!(unlinked.hash(Crm::Close), Some("hc"));
    let freed = RecordRef::new(Crm::HubSpot, ObjectKind::Person, "5");
    assert_eq!(s.link_by_record(&freed).await.unwrap(), None);
    s.insert_link(&NewLink::from_record(&freed)).await.unwrap();
    // The last id cannot be unlinked.
    let e = s.unlink(&unlinked, Crm::Close).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
}

async fn field_values_per_side(db: TestDb) {
    let s = &db.store;
    let link = s
        .insert_link(
            &NewLink::new(ObjectKind::Person)
                .crm_id(Crm::Close, "cont_f")
                .crm_id(Crm::HubSpot, "77"),
        )
        .await
        .unwrap();
    assert_eq!(link.fields(Crm::Close), None);
    let close = json!({"name": "Ada", "emails": ["ada@acme.example"], "title": "CTO"});
    let hubspot = json!({"name": "Ada", "emails": ["ada@acme.example"]});
    let link = s
        .update_link(
            &link,
            &LinkUpdate::new()
                .fields(Crm::Close, Some(close.clone()))
                .fields(Crm::HubSpot, Some(hubspot.clone())),
        )
        .await
        .unwrap();
    let stored = s.link(&link.id).await.unwrap().unwrap();
    assert_eq!(stored.fields(Crm::Close), Some(&close));
    assert_eq!(stored.fields(Crm::HubSpot), Some(&hubspot));
    assert_eq!(stored.fields(Crm::Salesforce), None);
    // Only the side named changes; an explicit None clears it.
    let next = s
        .update_link(&stored, &LinkUpdate::new().fields(Crm::Close, None))
        .await
        .unwrap();
    let stored = s.link(&next.id).await.unwrap().unwrap();
    assert_eq!(stored.fields(Crm::Close), None);
    assert_eq!(stored.fields(Crm::HubSpot), Some(&hubspot));
    // A side's values describe its record: a new id there drops them, unless set with it.
    let moved = s
        .update_link(
            &stored,
            &LinkUpdate::new().crm_id(Crm::HubSpot, Some("78".into())),
        )
        .await
        .unwrap();
    assert_eq!(moved.fields(Crm::HubSpot), None);
    let stored = s.link(&moved.id).await.unwrap().unwrap();
    assert_eq!(stored.fields(Crm::HubSpot), None);
    let v = json!({"name": "Ada L"});
    let set = s
        .update_link(
            &stored,
            &LinkUpdate::new()
                .crm_id(Crm::HubSpot, Some("79".into()))
                .fields(Crm::HubSpot, Some(v.clone())),
        )
        .await
        .unwrap();
    assert_eq!(
        s.link(&set.id).await.unwrap().unwrap().fields(Crm::HubSpot),
        Some(&v)
    );
}

async fn list_pages_in_id_order(db: TestDb) {
    let s = &db.store;
    let mut ids = Vec::new();
    for i in 0..7 {
        let l = s
            .insert_link(&NewLink::new(ObjectKind::Deal).crm_id(Crm::Close, format!("oppo_{i}")))
            .await
            .unwrap();
        ids.push(l.id);
    }
    s.insert_link(&NewLink::new(ObjectKind::Company).crm_id(Crm::Close, "lead_x"))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .list_links(ObjectKind::Deal, after.as_ref(), 3)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        after = page.last().map(|l| l.id.clone());
        seen.extend(page.into_iter().map(|l| l.id));
    }
    ids.sort();
    assert_eq!(seen, ids);
}

async fn batch_lookups_answer_in_order_past_a_chunk(db: TestDb) {
    let s = &db.store;
    let n = crmkit_store::LOOKUP_CHUNK + 20;
    let mut asked = Vec::new();
    for i in 0..n {
        let link = s
            .insert_link(
                &NewLink::new(ObjectKind::Company)
                    .crm_id(Crm::Close, format!("lead_{i}"))
                    .crm_id(Crm::HubSpot, format!("{}", 1000 + i)),
            )
            .await
            .unwrap();
        // Asked by either side, newest first, with a missing id and an id of another kind
        // in between.
        let crm = if i % 2 == 0 { Crm::Close } else { Crm::HubSpot };
        asked.push((Some(link.clone()), link.record(crm).unwrap()));
    }
    asked.reverse();
    asked.insert(
        3,
        (
            None,
            RecordRef::new(Crm::Close, ObjectKind::Company, "lead_none"),
        ),
    );
    asked.insert(
        7,
        (
            None,
            RecordRef::new(Crm::Close, ObjectKind::Person, "lead_5"),
        ),
    );
    let refs: Vec<RecordRef> = asked.iter().map(|(_, r)| r.clone()).collect();
    let got = s.links_by_records(&refs).await.unwrap();
    assert_eq!(got.len(), refs.len());
    for ((want, r), got) in asked.iter().zip(&got) {
        assert_eq!(
            got.as_ref().map(|l| &l.id),
            want.as_ref().map(|l| &l.id),
            "{r}"
        );
        assert_eq!(got, &s.link_by_record(r).await.unwrap(), "{r}");
    }
    assert_eq!(s.links_by_records(&[]).await.unwrap(), Vec::new());
}
