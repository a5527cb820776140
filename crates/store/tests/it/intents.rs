//! The write-intent log: lifecycle, unique markers, and the unsettled listing used after a
//! crash.

use crmkit_core::{Crm, ObjectKind};
use crmkit_store::{Error, IntentOp, IntentState, NewIntent, NewLink};
use serde_json::json;

use crate::support::{TestDb, both_backends};

both_backends!(
    intents_go_pending_sent_settled_or_failed,
    unsettled_intents_survive_a_restart
);

async fn intents_go_pending_sent_settled_or_failed(db: TestDb) {
    let s = &db.store;
    let run = s.start_run("p").await.unwrap();
    let link = s
        .insert_link(&NewLink::new(ObjectKind::Company).crm_id(Crm::Close, "lead_i"))
        .await
        .unwrap();
    let new = NewIntent::new(
        Crm::HubSpot,
        ObjectKind::Company,
        IntentOp::Create,
        "crmkit:lead_i",
        json!({"properties": {"name": "Acme"}}),
    )
    .run(run.id.clone())
    .link(link.id.clone());
    let intent = s.record_intent(&new).await.unwrap();
    assert_eq!(intent.state, IntentState::Pending);
    assert_eq!(intent.payload, json!({"properties": {"name": "Acme"}}));
    assert_eq!(s.intent(&intent.id).await.unwrap().as_ref(), Some(&intent));
    // The marker is an idempotency key: recording it twice is refused.
    let e = s.record_intent(&new).await.unwrap_err();
    assert!(
        matches!(&e, Error::MarkerTaken { marker } if marker == "crmkit:lead_i"),
        "{e}"
    );
    assert_eq!(
        s.intent_by_marker("crmkit:lead_i")
            .await
            .unwrap()
            .unwrap()
            .id,
        intent.id
    );

    let sent = s.mark_intent_sent(&intent.id).await.unwrap();
    assert_eq!(sent.state, IntentState::Sent);
    let settled = s.settle_intent(&intent.id, Some("9001")).await.unwrap();
    assert_eq!(settled.state, IntentState::Settled);
    assert_eq!(settled.result_id.as_deref(), Some("9001"));
    // Settled is final.
    for e in [
        s.fail_intent(&intent.id, "late").await.unwrap_err(),
        s.mark_intent_sent(&intent.id).await.unwrap_err(),
    ] {
        assert!(
            matches!(&e, Error::InvalidState { from, .. } if from == "settled"),
            "{e}"
        );
    }

    let other = s
        .record_intent(&NewIntent::new(
            Crm::Close,
            ObjectKind::Company,
            IntentOp::Update,
            "crmkit:lead_i:2",
            json!({"name": "Acme Inc"}),
        ))
        .await
        .unwrap();
    let failed = s.fail_intent(&other.id, "400 invalid name").await.unwrap();
    assert_eq!(failed.state, IntentState::Failed);
    assert_eq!(failed.error.as_deref(), Some("400 invalid name"));
    assert!(matches!(
        s.settle_intent(&other.id, None).await,
        Err(Error::InvalidState { .. })
    ));
    let of_run: Vec<_> = s
        .run_intents(&run.id)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(of_run, vec![intent.id]);
    assert!(s.unsettled_intents("p").await.unwrap().is_empty());
    assert!(s.all_unsettled_intents().await.unwrap().is_empty());
}

async fn unsettled_intents_survive_a_restart(db: TestDb) {
    let markers = ["m1", "m2", "m3", "m4"];
    let mut ids = Vec::new();
    for m in markers {
        let i = db
            .store
            .record_intent(&NewIntent::new(
                Crm::Salesforce,
                ObjectKind::Person,
                IntentOp::Create,
                m,
                json!({"LastName": m}),
            ))
            .await
            .unwrap();
        ids.push(i.id);
    }
    db.store.mark_intent_sent(&ids[1]).await.unwrap();
    db.store
        .settle_intent(&ids[2], Some("003xx"))
        .await
        .unwrap();
    // The process "dies": a new handle sees what was pending or sent, oldest first.
    db.store.close().await;
    let after = db.open_another().await;
    let unsettled = after.all_unsettled_intents().await.unwrap();
    let seen: Vec<_> = unsettled
        .iter()
        .map(|i| (i.marker.as_str(), i.state))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("m1", IntentState::Pending),
            ("m2", IntentState::Sent),
            ("m4", IntentState::Pending)
        ]
    );
}

both_backends!(a_failed_operation_leaves_the_tx_usable);

/// A failed operation in a `Tx` undoes only itself: the writes before and after it commit,
/// on PostgreSQL (where a failed statement aborts the transaction) as on SQLite.
async fn a_failed_operation_leaves_the_tx_usable(db: TestDb) {
    let s = &db.store;
    let new = NewIntent::new(
        Crm::HubSpot,
        ObjectKind::Company,
        IntentOp::Create,
        "crmkit:dup",
        json!({}),
    );
    s.record_intent(&new).await.unwrap();
    let mut tx = s.begin().await.unwrap();
    let before = tx
        .insert_link(&NewLink::new(ObjectKind::Company).crm_id(Crm::Close, "lead_before"))
        .await
        .unwrap();
    let e = tx.record_intent(&new).await.unwrap_err();
    assert!(matches!(e, Error::MarkerTaken { .. }), "{e}");
    // The holder can be looked up in the same transaction.
    assert!(tx.intent_by_marker("crmkit:dup").await.unwrap().is_some());
    // A taken CRM id fails the same way and also leaves the transaction usable.
    let e = tx
        .insert_link(&NewLink::new(ObjectKind::Company).crm_id(Crm::Close, "lead_before"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::CrmIdTaken { .. }), "{e}");
    let after = tx
        .insert_link(&NewLink::new(ObjectKind::Company).crm_id(Crm::Close, "lead_after"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.link(&before.id).await.unwrap().as_ref(), Some(&before));
    assert_eq!(s.link(&after.id).await.unwrap().as_ref(), Some(&after));
}

both_backends!(unsettled_intents_are_listed_per_pair);

/// Two pairs syncing on one database each see only their own unsettled intents: one
/// process restarting must not reconcile the other's writes in flight.
async fn unsettled_intents_are_listed_per_pair(db: TestDb) {
    let s = &db.store;
    let run_a = s.start_run("a").await.unwrap();
    let intent = |marker: &str| {
        NewIntent::new(
            Crm::HubSpot,
            ObjectKind::Company,
            IntentOp::Create,
            marker,
            json!({}),
        )
    };
    // The pair of its run, or given outright.
    let a = s.record_intent(&intent("a1").run(run_a.id)).await.unwrap();
    let b = s.record_intent(&intent("b1").pair("b")).await.unwrap();
    assert_eq!((a.pair.as_str(), b.pair.as_str()), ("a", "b"));
    let of = |pair: &'static str| async move {
        s.unsettled_intents(pair)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.marker)
            .collect::<Vec<_>>()
    };
    assert_eq!(of("a").await, vec!["a1"]);
    assert_eq!(of("b").await, vec!["b1"]);
    assert_eq!(s.all_unsettled_intents().await.unwrap().len(), 2);
    let read = s.intent(&a.id).await.unwrap().unwrap();
    assert_eq!(read, a);
}
