//! The retry list: failed records back off, are given up after the last attempt (and stay
//! listed), and leave the list once they sync.

use std::time::Duration;

use crmkit_core::{Crm, ObjectKind, RecordRef};
use crmkit_store::{CursorKey, RetryPolicy};

use crate::support::{TestDb, both_backends};

both_backends!(
    failures_back_off_and_are_given_up_but_kept,
    a_record_is_listed_before_the_cursor_passes_it,
    given_up_entries_are_re_armed_by_a_reset,
    an_entry_is_stored_as_it_is_under_another_pair,
    a_merge_noted_on_an_entry_stays_until_it_leaves_the_list
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

async fn given_up_entries_are_re_armed_by_a_reset(db: TestDb) {
    let s = &db.store;
    let policy = RetryPolicy {
        first_delay: Duration::from_secs(3600),
        max_delay: Duration::from_secs(3600),
        max_attempts: 2,
    };
    let pair = "close-hubspot";
    let gone = RecordRef::new(Crm::HubSpot, ObjectKind::Person, "101");
    let also = RecordRef::new(Crm::Close, ObjectKind::Company, "lead_1");
    let waiting = RecordRef::new(Crm::Close, ObjectKind::Deal, "oppo_1");
    for r in [&gone, &gone, &also, &also, &waiting] {
        s.record_retry(pair, r, "refused", &policy).await.unwrap();
    }
    s.record_retry("close-salesforce", &gone, "refused", &policy)
        .await
        .unwrap();
    s.record_retry("close-salesforce", &gone, "refused", &policy)
        .await
        .unwrap();

    // One record: due now, attempts from zero, the reason and first failure kept.
    let before = s.retries(pair, Some(ObjectKind::Person)).await.unwrap();
    assert!(before[0].given_up());
    let now = chrono::Utc::now();
    let one = s.reset_retry(pair, &gone).await.unwrap().expect("listed");
    assert!(!one.given_up());
    assert!(one.due(now + chrono::Duration::seconds(1)), "{one:?}");
    assert_eq!(one.attempts, 0);
    assert_eq!(one.reason, "refused");
    assert_eq!(one.first_failed_at, before[0].first_failed_at);
    // Failing again counts from one, with the first back-off.
    let again = s
        .record_retry(pair, &gone, "refused", &policy)
        .await
        .unwrap();
    assert_eq!(again.attempts, 1);
    assert!(!again.given_up());
    // A record not listed: nothing.
    let absent = RecordRef::new(Crm::Close, ObjectKind::Person, "cont_9");
    assert_eq!(s.reset_retry(pair, &absent).await.unwrap(), None);
    assert!(s.retries(pair, Some(ObjectKind::Person)).await.unwrap()[0].attempts == 1);

    // Every given-up entry of the pair, and only those: the waiting one keeps its back-off,
    // the other pair's given-up entry stays given up.
    let waiting_before = s.retries(pair, Some(ObjectKind::Deal)).await.unwrap();
    let all = s.reset_given_up(pair).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.record.clone()).collect::<Vec<_>>(),
        vec![also.clone()]
    );
    assert!(all[0].due(chrono::Utc::now() + chrono::Duration::seconds(1)));
    assert_eq!(
        s.retries(pair, Some(ObjectKind::Deal)).await.unwrap(),
        waiting_before
    );
    assert!(s.retries("close-salesforce", None).await.unwrap()[0].given_up());
    assert!(s.reset_given_up(pair).await.unwrap().is_empty());
}

/// [`Store::put_retry`](crmkit_store::Store::put_retry) keeps everything of an entry moved
/// to another pair name: attempts, times, given-up state and reason.
async fn an_entry_is_stored_as_it_is_under_another_pair(db: TestDb) {
    let s = &db.store;
    let policy = RetryPolicy {
        first_delay: Duration::from_secs(3600),
        max_delay: Duration::from_secs(3600),
        max_attempts: 2,
    };
    let rec = RecordRef::new(Crm::HubSpot, ObjectKind::Person, "101");
    let waiting = RecordRef::new(Crm::Close, ObjectKind::Company, "lead_1");
    s.record_retry("hubspot-close", &rec, "first", &policy)
        .await
        .unwrap();
    let given_up = s
        .record_retry("hubspot-close", &rec, "no company", &policy)
        .await
        .unwrap();
    assert!(given_up.given_up());
    let due = s
        .record_retry("hubspot-close", &waiting, "refused", &policy)
        .await
        .unwrap();
    // The target pair holds an entry of the same record already: it is replaced.
    s.record_retry("close-hubspot", &rec, "other", &policy)
        .await
        .unwrap();
    for entry in [&given_up, &due] {
        let mut moved = entry.clone();
        moved.pair = "close-hubspot".into();
        s.put_retry(&moved).await.unwrap();
        assert_eq!(
            s.retry("close-hubspot", &entry.record).await.unwrap(),
            Some(moved)
        );
    }
    assert_eq!(s.retries("close-hubspot", None).await.unwrap().len(), 2);
    assert_eq!(s.retries("hubspot-close", None).await.unwrap().len(), 2);
}

/// A merge noted on an entry ([`Store::remember_merge`](crmkit_store::Store::remember_merge))
/// stays through later failures and a move to another pair name, and goes with the entry.
async fn a_merge_noted_on_an_entry_stays_until_it_leaves_the_list(db: TestDb) {
    let s = &db.store;
    let policy = RetryPolicy::default();
    let winner = RecordRef::new(Crm::HubSpot, ObjectKind::Deal, "202");
    assert!(
        !s.remember_merge("close-hubspot", &winner, "201")
            .await
            .unwrap(),
        "not listed: nothing noted"
    );
    let mut tx = s.begin().await.unwrap();
    let first = tx
        .record_retry("close-hubspot", &winner, "stage not mapped", &policy)
        .await
        .unwrap();
    assert_eq!(first.merged_from, None);
    assert!(
        tx.remember_merge("close-hubspot", &winner, "201")
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let again = s
        .record_retry("close-hubspot", &winner, "stage still not mapped", &policy)
        .await
        .unwrap();
    assert_eq!(again.attempts, 2);
    assert_eq!(again.merged_from.as_deref(), Some("201"));
    // A second record merged into it while it waits: both merges are kept, once each.
    for loser in ["203", "201"] {
        assert!(
            s.remember_merge("close-hubspot", &winner, loser)
                .await
                .unwrap()
        );
    }
    let again = s.retry("close-hubspot", &winner).await.unwrap().unwrap();
    assert_eq!(again.merged_losers().collect::<Vec<_>>(), ["201", "203"]);
    // An id that would read back as two is refused, and nothing is noted; so is the
    // winner's own id (a record is never merged into itself).
    for bad in ["204\n205", "202"] {
        assert!(
            s.remember_merge("close-hubspot", &winner, bad)
                .await
                .is_err(),
            "{bad:?}"
        );
    }
    let again = s.retry("close-hubspot", &winner).await.unwrap().unwrap();
    assert_eq!(again.merged_losers().collect::<Vec<_>>(), ["201", "203"]);
    let mut moved = again.clone();
    moved.pair = "hubspot-close".into();
    s.put_retry(&moved).await.unwrap();
    assert_eq!(
        s.retry("hubspot-close", &winner).await.unwrap(),
        Some(moved)
    );
    assert!(s.clear_retry("close-hubspot", &winner).await.unwrap());
    s.record_retry("close-hubspot", &winner, "refused", &policy)
        .await
        .unwrap();
    assert_eq!(
        s.retry("close-hubspot", &winner)
            .await
            .unwrap()
            .unwrap()
            .merged_from,
        None,
        "a new entry holds no merge"
    );
}
