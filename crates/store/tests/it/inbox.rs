//! The webhook inbox: stored, claimed by one worker at a time, processed once.

use std::collections::HashSet;
use std::time::Duration;

use crmkit_core::Crm;
use serde_json::json;

use crate::support::{TestDb, both_backends};

both_backends!(
    claim_process_and_reclaim,
    concurrent_claimers_never_share_a_row
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

    let claimed = s
        .inbox_claim("w1", Duration::from_millis(300), 10)
        .await
        .unwrap();
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
        s.inbox_claim("w2", Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.inbox_mark_processed(&first.id).await.unwrap());
    assert!(!s.inbox_mark_processed(&first.id).await.unwrap());
    // w1 "dies" holding the second item: after its claim expires, w2 gets it.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let reclaimed = s
        .inbox_claim("w2", Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].id, second.id);
    assert_eq!(reclaimed[0].attempts, 2);
    // Released, it can be claimed again at once; processed, never again.
    assert!(!s.inbox_release(&second.id, "w1").await.unwrap());
    assert!(s.inbox_release(&second.id, "w2").await.unwrap());
    assert_eq!(
        s.inbox_claim("w3", Duration::from_secs(60), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(s.inbox_mark_processed(&second.id).await.unwrap());
    assert!(
        s.inbox_claim("w4", Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.inbox_unprocessed_count().await.unwrap(), 0);
    assert!(matches!(
        s.inbox_mark_processed(&crmkit_store::InboxId::new("missing"))
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
                        .inbox_claim(&me, Duration::from_secs(60), 3)
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
