//! The webhook inbox: stored, claimed by one worker at a time, processed once.

use std::collections::HashSet;
use std::time::Duration;

use crmkit_core::Crm;
use serde_json::json;

use crate::support::{TestDb, both_backends};

/// Long enough that a slow machine does not see a claim expire between two calls.
const SHORT: Duration = Duration::from_millis(1500);

both_backends!(
    claim_process_and_reclaim,
    concurrent_claimers_never_share_a_row,
    a_retried_delivery_is_stored_once_and_old_items_are_pruned,
    a_body_with_nul_characters_is_stored_exactly,
    only_the_claimant_settles_and_used_up_items_become_dead_letters,
    releases_alone_never_make_a_dead_letter,
    an_unreadable_row_is_a_dead_letter_and_the_rest_is_delivered,
    a_slow_worker_past_its_claim_on_the_last_attempt_may_still_settle_it,
);

async fn claim_process_and_reclaim(db: TestDb) {
    let s = &db.store;
    let headers = json!({"close-sig-hash": "abc", "close-sig-timestamp": "1700000000"});
    let body = r#"{"event":{"action":"updated","object_type":"lead","object_id":"lead_1"}}"#;
    let first = s.inbox_insert(Crm::Close, body, &headers).await.unwrap();
    let second = s
        .inbox_insert(Crm::HubSpot, "[]", &json!({}))
        .await
        .unwrap();
    assert_eq!(s.inbox_unprocessed_count().await.unwrap(), 2);
    let stored = s.inbox_item(&first.id).await.unwrap().unwrap();
    assert_eq!((stored.body.as_str(), &stored.headers), (body, &headers));

    let claimed = s.inbox_claim("w1", SHORT, 10, 10).await.unwrap();
    let ids: Vec<_> = claimed.iter().map(|i| i.id.clone()).collect();
    assert_eq!(
        ids,
        vec![first.id.clone(), second.id.clone()],
        "oldest first"
    );
    assert!(
        claimed
            .iter()
            .all(|i| i.claimed_by.as_deref() == Some("w1") && i.attempts == 1)
    );
    // Claimed rows are not handed out again while the claim lasts.
    assert!(
        s.inbox_claim("w2", Duration::from_secs(60), 10, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.inbox_mark_processed(&first.id, "w1").await.unwrap());
    assert!(!s.inbox_mark_processed(&first.id, "w1").await.unwrap());
    // w1 "dies" holding the second item: after its claim expires, w2 gets it.
    tokio::time::sleep(SHORT + Duration::from_millis(300)).await;
    let reclaimed = s
        .inbox_claim("w2", Duration::from_secs(60), 10, 10)
        .await
        .unwrap();
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].id, second.id);
    assert_eq!(reclaimed[0].attempts, 2);
    // Released, it can be claimed again at once; processed, never again.
    assert!(!s.inbox_release(&second.id, "w1").await.unwrap());
    assert!(s.inbox_release(&second.id, "w2").await.unwrap());
    assert_eq!(
        s.inbox_claim("w3", Duration::from_secs(60), 10, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(s.inbox_mark_processed(&second.id, "w3").await.unwrap());
    assert!(
        s.inbox_claim("w4", Duration::from_secs(60), 10, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.inbox_unprocessed_count().await.unwrap(), 0);
    assert!(matches!(
        s.inbox_mark_processed(&crmkit_store::InboxId::new("missing"), "w1")
            .await,
        Err(crmkit_store::Error::NotFound { .. })
    ));
}

async fn concurrent_claimers_never_share_a_row(db: TestDb) {
    const ITEMS: usize = 60;
    let mut all = HashSet::new();
    for n in 0..ITEMS {
        let item = db
            .store
            .inbox_insert(Crm::HubSpot, &format!("[{{\"eventId\":{n}}}]"), &json!({}))
            .await
            .unwrap();
        all.insert(item.id);
    }
    let handles = [db.store.clone(), db.open_another().await];
    let mut workers = Vec::new();
    for (h, store) in handles.iter().enumerate() {
        for w in 0..4 {
            let store = store.clone();
            workers.push(tokio::spawn(async move {
                let me = format!("p{h}-w{w}");
                let mut got = Vec::new();
                loop {
                    let batch = store
                        .inbox_claim(&me, Duration::from_secs(60), 3, 10)
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        break;
                    }
                    got.extend(batch.into_iter().map(|i| i.id));
                }
                got
            }));
        }
    }
    let mut seen = Vec::new();
    for w in workers {
        seen.extend(w.await.unwrap());
    }
    let distinct: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), distinct.len(), "a row was claimed twice");
    assert_eq!(distinct, all, "every row was claimed");
}

async fn a_retried_delivery_is_stored_once_and_old_items_are_pruned(db: TestDb) {
    let s = &db.store;
    let body = r#"[{"eventId":100,"subscriptionType":"contact.creation","objectId":1}]"#;
    let first = s
        .inbox_insert_once(Crm::HubSpot, "100", body, &json!({}))
        .await
        .unwrap()
        .expect("a new delivery is stored");
    assert_eq!(first.delivery_id.as_deref(), Some("100"));
    // HubSpot retries it: nothing new is stored.
    assert_eq!(
        s.inbox_insert_once(Crm::HubSpot, "100", body, &json!({}))
            .await
            .unwrap(),
        None
    );
    // The same id from another CRM is another delivery; deliveries without ids never collide.
    assert!(
        s.inbox_insert_once(Crm::Close, "100", "{}", &json!({}))
            .await
            .unwrap()
            .is_some()
    );
    s.inbox_insert(Crm::Close, "{}", &json!({})).await.unwrap();
    s.inbox_insert(Crm::Close, "{}", &json!({})).await.unwrap();
    assert_eq!(s.inbox_unprocessed_count().await.unwrap(), 4);
    assert!(matches!(
        s.inbox_insert_once(Crm::Close, "", "{}", &json!({})).await,
        Err(crmkit_store::Error::InvalidInput { .. })
    ));

    // Pruning removes processed items only.
    let claimed = s
        .inbox_claim("w1", Duration::from_secs(60), 1, 10)
        .await
        .unwrap();
    assert_eq!(claimed[0].id, first.id);
    assert!(s.inbox_mark_processed(&first.id, "w1").await.unwrap());
    let later = chrono::Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(s.inbox_prune(later).await.unwrap(), 1);
    assert_eq!(s.inbox_item(&first.id).await.unwrap(), None);
    assert_eq!(s.inbox_unprocessed_count().await.unwrap(), 3);
    assert_eq!(s.inbox_prune(later).await.unwrap(), 0);
}

async fn a_body_with_nul_characters_is_stored_exactly(db: TestDb) {
    let s = &db.store;
    let body = "{\"note\":\"a\u{0}b\"}\u{0}tail é\\";
    let item = s
        .inbox_insert(Crm::Close, body, &json!({"x": "y\u{0}"}))
        .await
        .unwrap();
    let stored = s.inbox_item(&item.id).await.unwrap().unwrap();
    assert_eq!(stored.body, body);
    assert_eq!(stored.headers, json!({"x": "y\u{0}"}));
    let claimed = s
        .inbox_claim("w1", Duration::from_secs(60), 10, 10)
        .await
        .unwrap();
    assert_eq!(claimed[0].body, body);
}

async fn only_the_claimant_settles_and_used_up_items_become_dead_letters(db: TestDb) {
    let s = &db.store;
    let item = s
        .inbox_insert(Crm::HubSpot, "[]", &json!({}))
        .await
        .unwrap();
    let ttl = Duration::from_secs(60);
    assert_eq!(s.inbox_claim("w1", ttl, 10, 2).await.unwrap().len(), 1);
    // Another worker can neither mark it processed nor fail or release it.
    assert!(!s.inbox_mark_processed(&item.id, "w2").await.unwrap());
    assert!(!s.inbox_fail(&item.id, "w2", "not mine").await.unwrap());
    assert!(!s.inbox_release(&item.id, "w2").await.unwrap());
    // The claimant fails it: claimable again, with the error kept.
    assert!(
        s.inbox_fail(&item.id, "w1", "HubSpot answered 500")
            .await
            .unwrap()
    );
    let again = s.inbox_claim("w2", ttl, 10, 2).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
    assert_eq!(again[0].last_error.as_deref(), Some("HubSpot answered 500"));
    assert!(s.inbox_fail(&item.id, "w2", "still 500").await.unwrap());
    // Its attempts are used up: not claimed again, a dead letter, not counted as waiting.
    assert!(s.inbox_claim("w3", ttl, 10, 2).await.unwrap().is_empty());
    let dead = s.inbox_dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, item.id);
    assert_eq!(dead[0].last_error.as_deref(), Some("still 500"));
    assert!(dead[0].dead_at.is_some());
    assert_eq!(s.inbox_unprocessed_count().await.unwrap(), 0);
    assert!(!s.inbox_mark_processed(&item.id, "w2").await.unwrap());
    assert!(s.inbox_claim("w3", ttl, 10, 5).await.unwrap().is_empty());
    assert!(matches!(
        s.inbox_claim("w3", ttl, 10, 0).await,
        Err(crmkit_store::Error::InvalidInput { .. })
    ));
}

async fn releases_alone_never_make_a_dead_letter(db: TestDb) {
    let s = &db.store;
    let item = s.inbox_insert(Crm::Close, "{}", &json!({})).await.unwrap();
    let ttl = Duration::from_secs(60);
    // Workers shutting down give the item back, again and again: no attempt is used up.
    for _ in 0..3 {
        assert_eq!(s.inbox_claim("w1", ttl, 10, 2).await.unwrap().len(), 1);
        assert!(s.inbox_release(&item.id, "w1").await.unwrap());
    }
    let claimed = s.inbox_claim("w2", ttl, 10, 2).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempts, 1);
    assert!(s.inbox_dead_letters(10).await.unwrap().is_empty());
}

async fn an_unreadable_row_is_a_dead_letter_and_the_rest_is_delivered(db: TestDb) {
    let s = &db.store;
    let bad = s.inbox_insert(Crm::Close, "{}", &json!({})).await.unwrap();
    let good = s.inbox_insert(Crm::Close, "[]", &json!({})).await.unwrap();
    db.raw(&format!(
        "UPDATE webhook_inbox SET body = 'zz' WHERE id = '{}'",
        bad.id
    ))
    .await;
    let claimed = s
        .inbox_claim("w1", Duration::from_secs(60), 10, 3)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, good.id);
    assert_eq!(claimed[0].body, "[]");
    // The other is a dead letter saying why, its stored text kept, no longer waiting.
    assert_eq!(s.inbox_unprocessed_count().await.unwrap(), 1);
    let dead = s.inbox_dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, bad.id);
    assert_eq!(dead[0].body, "zz");
    assert!(dead[0].last_error.as_deref().unwrap().contains("hex"));
}

async fn a_slow_worker_past_its_claim_on_the_last_attempt_may_still_settle_it(db: TestDb) {
    let s = &db.store;
    let item = s.inbox_insert(Crm::Close, "{}", &json!({})).await.unwrap();
    assert_eq!(s.inbox_claim("w1", SHORT, 10, 1).await.unwrap().len(), 1);
    tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
    // Its claim expired on its last attempt; another claim does not bury it at once.
    assert!(
        s.inbox_claim("w2", SHORT * 4, 10, 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.inbox_dead_letters(10).await.unwrap().is_empty());
    assert!(s.inbox_mark_processed(&item.id, "w1").await.unwrap());
    assert!(s.inbox_dead_letters(10).await.unwrap().is_empty());
}
