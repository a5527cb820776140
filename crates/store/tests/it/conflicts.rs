//! Conflicts, the review queue and the audit trail.

use crmkit_core::{Crm, ObjectKind};
use crmkit_store::{ConflictStatus, Error, NewAuditEntry, NewConflict, NewLink, ReviewStatus};
use serde_json::json;

use crate::support::{TestDb, both_backends};

both_backends!(
    conflicts_open_once_and_resolve_once,
    settled_conflicts_are_superseded,
    reviews_queue_ambiguous_matches,
    every_field_change_is_audited
);

async fn conflicts_open_once_and_resolve_once(db: TestDb) {
    let s = &db.store;
    let link = s
        .insert_link(
            &NewLink::new(ObjectKind::Person)
                .crm_id(Crm::Close, "cont_c")
                .crm_id(Crm::HubSpot, "31"),
        )
        .await
        .unwrap();
    let new = NewConflict::new(link.id.clone(), ObjectKind::Person, "phone")
        .value(Crm::Close, json!("+1 555 0100"))
        .value(Crm::HubSpot, json!("+1 555 0199"));
    let c = s.open_conflict(&new).await.unwrap();
    assert_eq!(c.status, ConflictStatus::Open);
    assert_eq!(c.values[&Crm::HubSpot], json!("+1 555 0199"));
    assert!(!c.values.contains_key(&Crm::Salesforce));
    // Seen again by the next run with new values: the same conflict, updated.
    let again = s
        .open_conflict(
            &NewConflict::new(link.id.clone(), ObjectKind::Person, "phone")
                .value(Crm::Close, json!("+1 555 0100"))
                .value(Crm::HubSpot, json!(null)),
        )
        .await
        .unwrap();
    assert_eq!(again.id, c.id);
    assert_eq!(again.values[&Crm::HubSpot], json!(null));
    let other = s
        .open_conflict(
            &NewConflict::new(link.id.clone(), ObjectKind::Person, "email")
                .value(Crm::Close, json!("a@x.example"))
                .value(Crm::HubSpot, json!("b@x.example")),
        )
        .await
        .unwrap();
    let open: Vec<_> = s
        .open_conflicts(10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(open, vec![c.id.clone(), other.id.clone()]);
    // One value is not a conflict.
    let e = s
        .open_conflict(
            &NewConflict::new(link.id.clone(), ObjectKind::Person, "x").value(Crm::Close, json!(1)),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");

    let resolved = s
        .resolve_conflict(&c.id, &json!("+1 555 0100"), "ada@ops.example")
        .await
        .unwrap();
    assert_eq!(resolved.status, ConflictStatus::Resolved);
    assert_eq!(resolved.resolution, Some(json!("+1 555 0100")));
    assert_eq!(resolved.resolved_by.as_deref(), Some("ada@ops.example"));
    assert!(resolved.resolved_at.is_some());
    let e = s
        .resolve_conflict(&c.id, &json!("x"), "bob")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidState { from, .. } if from == "resolved"),
        "{e}"
    );
    assert_eq!(s.conflict(&c.id).await.unwrap(), Some(resolved));
    let open: Vec<_> = s
        .open_conflicts(10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(open, vec![other.id]);
    assert_eq!(s.link_conflicts(&link.id).await.unwrap().len(), 2);
    // After resolution, a new disagreement on the same field is a new conflict.
    let fresh = s.open_conflict(&new).await.unwrap();
    assert_ne!(fresh.id, c.id);
}

async fn reviews_queue_ambiguous_matches(db: TestDb) {
    let s = &db.store;
    let candidates = json!({"record": {"crm": "hubspot", "id": "44"}, "links": ["a", "b"]});
    let r = s
        .enqueue_review(
            ObjectKind::Company,
            &candidates,
            "two companies share acme.example",
        )
        .await
        .unwrap();
    assert_eq!(r.status, ReviewStatus::Open);
    // The same case queued again (a feed reporting it again) is the same review.
    let same = s
        .enqueue_review(
            ObjectKind::Company,
            &candidates,
            "two companies share acme.example",
        )
        .await
        .unwrap();
    assert_eq!(same.id, r.id);
    let r2 = s
        .enqueue_review(ObjectKind::Person, &json!([]), "no email")
        .await
        .unwrap();
    let open: Vec<_> = s
        .open_reviews(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(open, vec![r.id.clone(), r2.id.clone()]);
    let decided = s
        .decide_review(&r.id, ReviewStatus::Resolved, &json!({"link": "a"}), "ada")
        .await
        .unwrap();
    assert_eq!(decided.decision, Some(json!({"link": "a"})));
    assert_eq!(decided.candidates, candidates);
    assert!(matches!(
        s.decide_review(&r.id, ReviewStatus::Dismissed, &json!(null), "bob")
            .await,
        Err(Error::InvalidState { .. })
    ));
    assert!(matches!(
        s.decide_review(&r2.id, ReviewStatus::Open, &json!(null), "bob")
            .await,
        Err(Error::InvalidInput { .. })
    ));
    let open: Vec<_> = s
        .open_reviews(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(open, vec![r2.id.clone()]);
    // Once decided, the same case seen again is a new review.
    let later = s
        .enqueue_review(
            ObjectKind::Company,
            &candidates,
            "two companies share acme.example",
        )
        .await
        .unwrap();
    assert_ne!(later.id, r.id);
    assert_eq!(s.open_reviews(10).await.unwrap().len(), 2);
}

async fn settled_conflicts_are_superseded(db: TestDb) {
    let s = &db.store;
    let link = s
        .insert_link(
            &NewLink::new(ObjectKind::Person)
                .crm_id(Crm::Close, "cont_c")
                .crm_id(Crm::HubSpot, "31")
                .crm_id(Crm::Salesforce, "003"),
        )
        .await
        .unwrap();
    let open = |field: &str, with_salesforce: bool| {
        let mut new = NewConflict::new(link.id.clone(), ObjectKind::Person, field)
            .value(Crm::Close, json!("a"))
            .value(Crm::HubSpot, json!("b"));
        if with_salesforce {
            new = new.value(Crm::Salesforce, json!("c"));
        }
        new
    };
    let title = s.open_conflict(&open("title", false)).await.unwrap();
    let phone = s.open_conflict(&open("phone", false)).await.unwrap();
    let name = s.open_conflict(&open("name", true)).await.unwrap();
    let decided = s.open_conflict(&open("city", false)).await.unwrap();
    s.resolve_conflict(&decided.id, &json!("a"), "ada")
        .await
        .unwrap();
    let closed = s
        .supersede_conflicts(
            &link.id,
            &["phone".to_string()],
            &[Crm::Close, Crm::HubSpot],
            "crmkit sync",
        )
        .await
        .unwrap();
    let ids: Vec<_> = closed.iter().map(|c| c.id.clone()).collect();
    assert_eq!(
        ids,
        vec![title.id.clone()],
        "phone is still held apart, name has a CRM not read, city was decided"
    );
    assert_eq!(closed[0].status, ConflictStatus::Resolved);
    assert_eq!(closed[0].resolved_by.as_deref(), Some("crmkit sync"));
    let still: Vec<_> = s
        .open_conflicts(10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(still, vec![phone.id, name.id]);
    let city = s.conflict(&decided.id).await.unwrap().unwrap();
    assert_eq!(
        city.resolved_by.as_deref(),
        Some("ada"),
        "a decision is kept"
    );
}

async fn every_field_change_is_audited(db: TestDb) {
    let s = &db.store;
    let run = s.start_run("p").await.unwrap();
    let link = s
        .insert_link(&NewLink::new(ObjectKind::Company).crm_id(Crm::Close, "lead_audit"))
        .await
        .unwrap();
    let entries = vec![
        NewAuditEntry::new(link.id.clone(), Crm::HubSpot, "name", "sync:close")
            .run(run.id.clone())
            .change(Some(json!("Acme")), Some(json!("Acme Inc"))),
        NewAuditEntry::new(link.id.clone(), Crm::HubSpot, "phone", "sync:close")
            .run(run.id.clone())
            .change(None, Some(json!("+1 555 0100"))),
        NewAuditEntry::new(link.id.clone(), Crm::Close, "industry", "conflict:manual")
            .change(Some(json!("Retail")), None),
    ];
    let written = s.record_audit(&entries).await.unwrap();
    assert_eq!(written.len(), 3);
    let of_link = s.link_audit(&link.id).await.unwrap();
    assert_eq!(of_link, written);
    assert_eq!(of_link[1].before, None);
    assert_eq!(of_link[2].after, None);
    assert_eq!(of_link[2].run, None);
    let fields: Vec<_> = s
        .run_audit(&run.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(fields, vec!["name", "phone"]);
    // The audit outlives the link.
    s.delete_link(&link).await.unwrap();
    assert_eq!(s.link_audit(&link.id).await.unwrap().len(), 3);
}

both_backends!(racing_openers_leave_one_open_conflict);

/// Processes opening the same conflict at once leave one open conflict, and a conflict
/// resolved meanwhile keeps the values it was resolved against.
async fn racing_openers_leave_one_open_conflict(db: TestDb) {
    let s = &db.store;
    let link = s
        .insert_link(&NewLink::new(ObjectKind::Person).crm_id(Crm::Close, "cont_r"))
        .await
        .unwrap();
    let new = |v: u32| {
        NewConflict::new(link.id.clone(), ObjectKind::Person, "phone")
            .value(Crm::Close, json!(v))
            .value(Crm::HubSpot, json!("x"))
    };
    let stores = [s.clone(), db.open_another().await, db.open_another().await];
    let mut tasks = Vec::new();
    for (i, store) in stores.iter().enumerate() {
        for j in 0..3 {
            let store = store.clone();
            let new = new(u32::try_from(i * 3 + j).unwrap());
            tasks.push(tokio::spawn(async move { store.open_conflict(&new).await }));
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let of_link = s.link_conflicts(&link.id).await.unwrap();
    assert_eq!(of_link.len(), 1, "{of_link:?}");
    let open = &of_link[0];
    let resolved = s
        .resolve_conflict(&open.id, &json!("close"), "ann")
        .await
        .unwrap();
    // Seen again after the resolution: a new conflict; the resolved one is untouched.
    let reopened = s.open_conflict(&new(99)).await.unwrap();
    assert_ne!(reopened.id, open.id);
    assert_eq!(s.conflict(&open.id).await.unwrap().unwrap(), resolved);
    assert_eq!(s.open_conflicts(10).await.unwrap().len(), 1);
}
