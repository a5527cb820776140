//! The retry list: failed records back off, are given up after the last attempt (and stay
//! listed), and leave the list once they sync.

use std::time::Duration;

use crmkit_core::{Crm, ObjectKind, RecordRef};
use crmkit_store::{CursorKey, RetryPolicy};

use crate::support::{TestDb, both_backends};

both_backends!(
    failures_back_off_and_are_given_up_but_kept,
    a_record_is_listed_before_the_cursor_passes_it
);

async fn failures_back_off_and_are_given_up_but_kept(db: TestDb) {
    let s = &db.store;
    let policy = RetryPolicy {
        first_delay: Duration::from_secs(60),
        max_delay: Duration::from_secs(150),
        max_attempts: 3,
    };
    let rec = RecordRef::new(Crm::HubSpot, ObjectKind::Person, "101");
    let other = RecordRef::new(Crm::Close, ObjectKind::Company, "lead_1");
    let first = s
        .record_retry("close-hubspot", &rec, "two e-mails", &policy)
        .await
        .unwrap();
    assert_eq!(first.attempts, 1);
    let wait = first.next_attempt_at.unwrap() - first.last_failed_at;
    assert_eq!(wait.num_seconds(), 60);
    assert!(!first.due(first.last_failed_at));
    let second = s
        .record_retry("close-hubspot", &rec, "still two e-mails", &policy)
        .await
        .unwrap();
    assert_eq!(second.attempts, 2);
    assert_eq!(second.first_failed_at, first.first_failed_at);
    assert_eq!(second.reason, "still two e-mails");
    // Doubled, then capped.
    let wait = second.next_attempt_at.unwrap() - second.last_failed_at;
    assert_eq!(wait.num_seconds(), 120);
    assert_eq!(policy.delay(3), Duration::from_secs(150));
    let third = s
        .record_retry("close-hubspot", &rec, "still two e-mails", &policy)
        .await
        .unwrap();
    assert!(third.given_up(), "{third:?}");
    assert!(!third.due(third.last_failed_at + chrono::Duration::days(365)));
    s.record_retry("close-hubspot", &other, "no stage map", &policy)
        .await
        .unwrap();
    s.record_retry("close-salesforce", &rec, "elsewhere", &policy)
        .await
        .unwrap();

    // Given up, it is still listed, per pair and per kind.
    let all = s.retries("close-hubspot", None).await.unwrap();
    assert_eq!(all.len(), 2);
    let people = s
        .retries("close-hubspot", Some(ObjectKind::Person))
        .await
        .unwrap();
    assert_eq!(people, vec![third]);
    // Synced: off the list, for that pair only.
    assert!(s.clear_retry("close-hubspot", &rec).await.unwrap());
    assert!(!s.clear_retry("close-hubspot", &rec).await.unwrap());
    assert!(
        s.retries("close-hubspot", Some(ObjectKind::Person))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.retries("close-salesforce", None).await.unwrap().len(), 1);
    // A policy that never retries is refused.
    let none = RetryPolicy {
        max_attempts: 0,
        ..policy
    };
    assert!(s.record_retry("p", &rec, "x", &none).await.is_err());
}

async fn a_record_is_listed_before_the_cursor_passes_it(db: TestDb) {
    let s = &db.store;
    let key = CursorKey::new("close-hubspot", Crm::HubSpot, ObjectKind::Person);
    let rec = RecordRef::new(Crm::HubSpot, ObjectKind::Person, "7");
    // Rolled back together: neither the entry nor the cursor.
    let mut tx = s.begin().await.unwrap();
    tx.record_retry("close-hubspot", &rec, "bad", &RetryPolicy::default())
        .await
        .unwrap();
    tx.set_cursor(&key, "past-7").await.unwrap();
    tx.rollback().await.unwrap();
    assert!(s.retries("close-hubspot", None).await.unwrap().is_empty());
    assert_eq!(s.cursor(&key).await.unwrap(), None);
    let mut tx = s.begin().await.unwrap();
    tx.record_retry("close-hubspot", &rec, "bad", &RetryPolicy::default())
        .await
        .unwrap();
    tx.set_cursor(&key, "past-7").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.retries("close-hubspot", None).await.unwrap().len(), 1);
}
