//! Echoes: the records a run wrote come back in the next run's feeds and cost no read per
//! record, while a real change among them is still completed and propagated.

use std::sync::Arc;
use std::time::Duration;

use crmkit_core::{Crm, ObjectKind, RecordRef};
use crmkit_sync::engine::Engine;
use serde_json::json;

use crate::{World, config};

/// The Close lead ids read one by one (`GET …/lead/{id}/`) since the stats were reset.
fn single_lead_reads(w: &World, ids: &[String]) -> Vec<String> {
    let (skip, _) = *w.seen.lock().expect("lock");
    w.close_sb
        .stats()
        .requests
        .into_iter()
        .skip(skip)
        .filter(|r| r.method == "GET")
        .filter_map(|r| {
            ids.iter()
                .find(|id| r.path.contains(&format!("lead/{id}")))
                .cloned()
        })
        .collect()
}

#[tokio::test]
async fn echoes_are_not_read_again_and_a_real_change_among_them_still_syncs() {
    let w = World::new().await;
    // Without the Close feed's overlap window, the Close sides of the records HubSpot
    // sends back are not in this run's feed: the engine would have to read each of them.
    let close = w.close_conn.clone().with_overlap(Duration::ZERO);
    let engine = Engine::new(
        config(),
        w.store.clone(),
        vec![Arc::new(close), w.connectors[1].clone()],
    )
    .expect("engine");
    let mut leads = Vec::new();
    for name in ["Acme", "Globex", "Initech"] {
        let url = format!("https://{}.com", name.to_lowercase());
        leads.push(w.close_lead(json!({"name": name, "url": url})).await);
    }
    w.settle().await;
    let first = engine.run().await.expect("first run");
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!(first.created, 3);
    let mut hs = Vec::new();
    for id in &leads {
        let link = w
            .store
            .link_by_record(&RecordRef::new(Crm::Close, ObjectKind::Company, id.clone()))
            .await
            .expect("store")
            .expect("linked");
        hs.push(link.crm_id(Crm::HubSpot).expect("created").to_string());
    }

    // Globex really changes in HubSpot; Acme and Initech only come back as our creates.
    w.hs_update("companies", &hs[1], &[("description", "Now in steel")])
        .await;
    w.settle().await;
    w.reset_stats();
    let second = engine.run().await.expect("second run");
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    assert_eq!(
        second.echoes, 2,
        "Acme and Initech from HubSpot: {second:?}"
    );
    assert_eq!((second.created, second.updated), (0, 1), "{second:?}");
    let lead = w.close_get(&format!("lead/{}/", leads[1])).await;
    assert_eq!(lead["description"], "Now in steel");
    // The echoes' Close sides were never read one by one; the changed one was (read back
    // after the update).
    let reads = single_lead_reads(&w, &leads);
    assert!(
        !reads.contains(&leads[0]) && !reads.contains(&leads[2]),
        "{reads:?}"
    );
    assert!(reads.contains(&leads[1]), "{reads:?}");

    // The update comes back from Close as an echo: nothing is read or written.
    w.settle().await;
    w.reset_stats();
    let third = engine.run().await.expect("third run");
    assert!(third.errors.is_empty(), "{:?}", third.errors);
    assert!(!third.wrote(), "{third:?}");
    assert_eq!(w.writes(), Vec::<String>::new());
    assert_eq!(single_lead_reads(&w, &leads), Vec::<String>::new());
}
