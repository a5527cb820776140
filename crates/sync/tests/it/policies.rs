//! Conflict policies: a field changed differently in both CRMs since the last run.

use std::time::Duration;

use crmkit_core::Crm;
use crmkit_sync::config::PolicyKind;
use serde_json::json;

use super::{World, config, hs_company, linked_acme};

/// Renames Acme in Close, then (later) in HubSpot, and gives HubSpot a description.
async fn rename_both(w: &World, close: &str, hs: &str) {
    w.close_update(&format!("lead/{close}/"), json!({"name": "Acme Close"}))
        .await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    w.hs_update(
        "companies",
        hs,
        &[("name", "Acme HubSpot"), ("description", "From HubSpot")],
    )
    .await;
    w.settle().await;
}

#[tokio::test]
async fn primary_wins_and_the_others_only_fill_its_empty_fields() {
    let w = World::new().await;
    let mut c = config();
    c.company.conflict.primary = Some(Crm::Close);
    let engine = w.engine(c);
    let (close, hs) = linked_acme(&w, &engine).await;
    rename_both(&w, &close, &hs).await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty() && r.conflicts.is_empty(), "{r:?}");
    let lead = w.close_get(&format!("lead/{close}/")).await;
    assert_eq!(lead["name"], "Acme Close");
    assert_eq!(
        lead["description"], "From HubSpot",
        "Close's empty field filled"
    );
    assert_eq!(hs_company(&w, &hs).await.0, "Acme Close");
    w.settle().await;
    w.reset_stats();
    let again = engine.run().await.expect("run");
    assert!(!again.wrote(), "{again:?}");
    assert_eq!(w.writes(), Vec::<String>::new());
}

#[tokio::test]
async fn last_write_wins_by_each_crms_modification_time() {
    let w = World::new().await;
    let engine = w.engine(config());
    let (close, hs) = linked_acme(&w, &engine).await;
    rename_both(&w, &close, &hs).await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    let lead = w.close_get(&format!("lead/{close}/")).await;
    assert_eq!(lead["name"], "Acme HubSpot", "HubSpot changed it last");
    assert_eq!(hs_company(&w, &hs).await.0, "Acme HubSpot");
    let decision = r.plans[0].groups[0]
        .decisions
        .iter()
        .find(|d| d.field == "name")
        .expect("a decision on name");
    assert_eq!(decision.winner, Crm::HubSpot);
    assert_eq!(decision.rule.as_deref(), Some("last_write_wins"));
}

#[tokio::test]
async fn manual_queues_the_conflict_and_writes_nothing_for_the_field() {
    let w = World::new().await;
    let mut c = config();
    c.company.conflict.policy = Some(PolicyKind::Manual);
    let engine = w.engine(c);
    let (close, hs) = linked_acme(&w, &engine).await;
    rename_both(&w, &close, &hs).await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(r.conflicts.len(), 1, "{:?}", r.conflicts);
    assert_eq!(r.conflicts[0].conflict.field, "name");
    let lead = w.close_get(&format!("lead/{close}/")).await;
    assert_eq!(lead["name"], "Acme Close", "left as it was");
    assert_eq!(
        lead["description"], "From HubSpot",
        "one-sided change still flows"
    );
    assert_eq!(
        hs_company(&w, &hs).await.0,
        "Acme HubSpot",
        "left as it was"
    );
    let open = w.store.open_conflicts(10).await.expect("store");
    assert_eq!(open.len(), 1);
}

#[tokio::test]
async fn a_per_field_rule_overrides_the_policy() {
    let w = World::new().await;
    let mut c = config();
    c.company.conflict.policy = Some(PolicyKind::Manual);
    c.company
        .conflict
        .fields
        .insert("name".into(), "close".into());
    let engine = w.engine(c);
    let (close, hs) = linked_acme(&w, &engine).await;
    rename_both(&w, &close, &hs).await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty() && r.conflicts.is_empty(), "{r:?}");
    assert_eq!(hs_company(&w, &hs).await.0, "Acme Close");
}
