//! Cursors, and moving a cursor atomically with the links it covers.

use crmkit_core::{Crm, ObjectKind};
use crmkit_store::{CursorKey, Error, NewLink};

use crate::support::{TestDb, both_backends};

both_backends!(cursors_are_kept_per_feed, a_cursor_moves_with_its_links);

async fn cursors_are_kept_per_feed(db: TestDb) {
    let s = &db.store;
    let close = CursorKey::new("close-hubspot", Crm::Close, ObjectKind::Company);
    let hubspot = CursorKey::new("close-hubspot", Crm::HubSpot, ObjectKind::Company);
    let other_pair = CursorKey::new("close-salesforce", Crm::Close, ObjectKind::Company);
    assert_eq!(s.cursor(&close).await.unwrap(), None);
    s.set_cursor(&close, "c1").await.unwrap();
    s.set_cursor(&hubspot, "h1").await.unwrap();
    s.set_cursor(&other_pair, "x1").await.unwrap();
    s.set_cursor(&close, "c2").await.unwrap();
    assert_eq!(s.cursor(&close).await.unwrap().unwrap().value, "c2");
    let all = s.cursors("close-hubspot").await.unwrap();
    let values: Vec<_> = all.iter().map(|c| (c.key.crm, c.value.as_str())).collect();
    assert_eq!(values, vec![(Crm::Close, "c2"), (Crm::HubSpot, "h1")]);
    assert!(s.delete_cursor(&close).await.unwrap());
    assert!(!s.delete_cursor(&close).await.unwrap());
    assert_eq!(s.cursor(&close).await.unwrap(), None);
    assert_eq!(s.cursor(&other_pair).await.unwrap().unwrap().value, "x1");
}

async fn a_cursor_moves_with_its_links(db: TestDb) {
    let s = &db.store;
    let key = CursorKey::new("p", Crm::Close, ObjectKind::Company);
    s.set_cursor(&key, "before").await.unwrap();
    let existing = s
        .insert_link(&NewLink::new(ObjectKind::Company).crm_id(Crm::Close, "lead_taken"))
        .await
        .unwrap();

    // Rolled back: neither the link nor the cursor moved.
    let mut tx = s.begin().await.unwrap();
    let inside = tx
        .insert_link(&NewLink::new(ObjectKind::Company).crm_id(Crm::Close, "lead_a"))
        .await
        .unwrap();
    tx.set_cursor(&key, "after-a").await.unwrap();
    // The transaction sees its own writes.
    assert_eq!(tx.link(&inside.id).await.unwrap().as_ref(), Some(&inside));
    assert_eq!(tx.cursor(&key).await.unwrap().unwrap().value, "after-a");
    tx.rollback().await.unwrap();
    assert_eq!(s.link(&inside.id).await.unwrap(), None);
    assert_eq!(s.cursor(&key).await.unwrap().unwrap().value, "before");

    // A write that fails midway: the caller drops the transaction, the cursor stays.
    let mut tx = s.begin().await.unwrap();
    tx.insert_link(&NewLink::new(ObjectKind::Company).crm_id(Crm::Close, "lead_b"))
        .await
        .unwrap();
    let e = tx
        .insert_link(&NewLink::new(ObjectKind::Company).crm_id(Crm::Close, "lead_taken"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::CrmIdTaken { held_by: Some(h), .. } if *h == existing.id),
        "{e}"
    );
    drop(tx);
    assert_eq!(s.cursor(&key).await.unwrap().unwrap().value, "before");
    let lead_b = crmkit_core::RecordRef::new(Crm::Close, ObjectKind::Company, "lead_b");
    assert_eq!(s.link_by_record(&lead_b).await.unwrap(), None);

    // Committed: both at once.
    let mut tx = s.begin().await.unwrap();
    let committed = tx
        .insert_link(&NewLink::new(ObjectKind::Company).crm_id(Crm::Close, "lead_b"))
        .await
        .unwrap();
    tx.set_cursor(&key, "after-b").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.link_by_record(&lead_b).await.unwrap(), Some(committed));
    assert_eq!(s.cursor(&key).await.unwrap().unwrap().value, "after-b");
}
