//! Runs: start, progress, finish once.

use crmkit_store::{Error, RunCounts, RunStatus};
use serde_json::json;

use crate::support::{TestDb, both_backends};

both_backends!(
    a_run_starts_progresses_and_finishes_once,
    the_pairs_with_sync_state_are_listed
);

/// A pair has sync state once it has a cursor, a run that wrote, a write intent or a link
/// joining its CRMs stored; a run that wrote nothing is no state.
async fn the_pairs_with_sync_state_are_listed(db: TestDb) {
    let s = &db.store;
    assert!(s.sync_pairs().await.unwrap().is_empty());
    // Runs that wrote nothing: one failed at once, one killed before storing counts.
    let run = s.start_run("close-hubspot-salesforce").await.unwrap();
    s.finish_run(&run.id, RunStatus::Failed, &RunCounts::default(), &[])
        .await
        .unwrap();
    s.start_run("close-salesforce").await.unwrap();
    assert!(s.sync_pairs().await.unwrap().is_empty());
    // Two runs that wrote, one that read only.
    for (created, deleted) in [(1, 0), (0, 2), (0, 0)] {
        let run = s.start_run("close-hubspot").await.unwrap();
        let mut counts = RunCounts::default();
        counts.read = 5;
        counts.created = created;
        counts.deleted = deleted;
        s.finish_run(&run.id, RunStatus::Succeeded, &counts, &[])
            .await
            .unwrap();
    }
    let key = crmkit_store::CursorKey::new(
        "hubspot-salesforce",
        crmkit_core::Crm::HubSpot,
        crmkit_core::ObjectKind::Company,
    );
    s.set_cursor(&key, "c").await.unwrap();
    let key = crmkit_store::CursorKey::new(
        "close-hubspot",
        crmkit_core::Crm::Close,
        crmkit_core::ObjectKind::Company,
    );
    s.set_cursor(&key, "c").await.unwrap();
    // A killed run's intent, its counts never stored.
    s.record_intent(
        &crmkit_store::NewIntent::new(
            crmkit_core::Crm::Salesforce,
            crmkit_core::ObjectKind::Company,
            crmkit_store::IntentOp::Create,
            "m-1",
            json!({}),
        )
        .pair("close-salesforce"),
    )
    .await
    .unwrap();
    // Links, counted under the CRMs each joins: one alone joins nothing.
    use crmkit_core::Crm::{Close, HubSpot, Salesforce};
    for (i, crms) in [
        &[Close, HubSpot][..],
        &[Close, HubSpot],
        &[Close, HubSpot, Salesforce],
        &[Salesforce],
    ]
    .into_iter()
    .enumerate()
    {
        let mut new = crmkit_store::NewLink::new(crmkit_core::ObjectKind::Company);
        for crm in crms {
            new = new.crm_id(*crm, format!("{crm}-{i}"));
        }
        s.insert_link(&new).await.unwrap();
    }
    let found: Vec<(String, u64, u64, u64, u64)> = s
        .sync_pairs()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.pair, p.cursors, p.writing_runs, p.intents, p.links))
        .collect();
    assert_eq!(
        found,
        [
            ("close-hubspot".to_string(), 1, 2, 0, 2),
            ("close-hubspot-salesforce".to_string(), 0, 0, 0, 1),
            ("close-salesforce".to_string(), 0, 0, 1, 0),
            ("hubspot-salesforce".to_string(), 1, 0, 0, 0),
        ]
    );
}

async fn a_run_starts_progresses_and_finishes_once(db: TestDb) {
    let s = &db.store;
    let run = s.start_run("close-hubspot").await.unwrap();
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.finished_at, None);
    let mut counts = RunCounts::default();
    counts.read = 10;
    counts.created = 2;
    let progressed = s.update_run_counts(&run.id, &counts).await.unwrap();
    assert_eq!(progressed.counts, counts);
    counts.failed = 1;
    let errors = vec![json!({"record": "lead_1", "field": "email", "reason": "invalid"})];
    let finished = s
        .finish_run(&run.id, RunStatus::Partial, &counts, &errors)
        .await
        .unwrap();
    assert_eq!(finished.status, RunStatus::Partial);
    assert_eq!(finished.counts, counts);
    assert_eq!(finished.errors, errors);
    assert!(finished.finished_at.is_some());
    assert_eq!(s.run(&run.id).await.unwrap(), Some(finished.clone()));
    // A finished run stays finished.
    let e = s
        .finish_run(&run.id, RunStatus::Succeeded, &counts, &[])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidState { what: "run", .. }), "{e}");
    assert!(matches!(
        s.update_run_counts(&run.id, &counts).await,
        Err(Error::InvalidState { .. })
    ));
    let e = s
        .finish_run(
            &crmkit_store::RunId::new("nope"),
            RunStatus::Failed,
            &counts,
            &[],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { what: "run", .. }), "{e}");
    // Listing: newest first, per pair.
    let second = s.start_run("close-hubspot").await.unwrap();
    s.start_run("close-salesforce").await.unwrap();
    let listed: Vec<_> = s
        .runs("close-hubspot", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, vec![second.id, run.id]);
}
