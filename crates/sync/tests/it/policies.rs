//! Conflict policies: a field changed differently in both CRMs since the last run.

use std::time::Duration;

use crmkit_core::{Crm, ObjectKind, RecordRef};
use crmkit_sync::config::PolicyKind;
use serde_json::json;

use super::{Db, World, config, hs_company, linked_acme};

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
async fn a_conflict_settled_by_a_later_edit_is_closed() {
    let w = World::new().await;
    let mut c = config();
    c.company.conflict.policy = Some(PolicyKind::Manual);
    let engine = w.engine(c);
    let (close, hs) = linked_acme(&w, &engine).await;
    rename_both(&w, &close, &hs).await;
    let r = engine.run().await.expect("run");
    assert_eq!(r.conflicts.len(), 1, "{r:?}");
    // Still held apart: still open.
    w.settle().await;
    let again = engine.run().await.expect("run");
    assert!(again.errors.is_empty(), "{again:?}");
    assert_eq!(w.store.open_conflicts(10).await.expect("store").len(), 1);
    // A person settles it by editing Close: the edit propagates and the conflict, whose
    // values are stale now, is closed, so it can no longer be resolved with them.
    w.close_update(&format!("lead/{close}/"), json!({"name": "Acme Inc"}))
        .await;
    w.settle().await;
    let settled = engine.run().await.expect("run");
    assert!(settled.errors.is_empty(), "{settled:?}");
    assert_eq!(hs_company(&w, &hs).await.0, "Acme Inc");
    let open = w.store.open_conflicts(10).await.expect("store");
    assert!(open.is_empty(), "{open:?}");
    let link = w
        .store
        .link_by_record(&crmkit_core::RecordRef::new(
            Crm::Close,
            crmkit_core::ObjectKind::Company,
            close.clone(),
        ))
        .await
        .expect("store")
        .expect("linked");
    let closed = w.store.link_conflicts(&link.id).await.expect("store");
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0].resolved_by.as_deref(), Some("crmkit sync"));
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

/// A field changed in one CRM only is no conflict: it reaches the other CRM whatever the
/// policy. Here Close is the primary and `name` has its own rule naming Close, yet a rename
/// made in HubSpot alone reaches Close, and one made in Close alone reaches HubSpot.
#[tokio::test]
async fn a_change_made_in_one_crm_only_propagates_whatever_the_policy() {
    let w = World::new().await;
    let mut c = config();
    c.company.conflict.primary = Some(Crm::Close);
    c.company
        .conflict
        .fields
        .insert("name".into(), "close".into());
    let engine = w.engine(c);
    let (close, hs) = linked_acme(&w, &engine).await;
    w.settle().await;

    w.hs_update(
        "companies",
        &hs,
        &[("name", "Acme Renamed In HubSpot"), ("domain", "acme.io")],
    )
    .await;
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty() && r.conflicts.is_empty(), "{r:?}");
    let lead = w.close_get(&format!("lead/{close}/")).await;
    assert_eq!(lead["name"], "Acme Renamed In HubSpot", "{lead}");
    assert_eq!(hs_company(&w, &hs).await.0, "Acme Renamed In HubSpot");

    w.settle().await;
    w.close_update(
        &format!("lead/{close}/"),
        json!({"name": "Acme From Close"}),
    )
    .await;
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty() && r.conflicts.is_empty(), "{r:?}");
    assert_eq!(hs_company(&w, &hs).await.0, "Acme From Close");
    let lead = w.close_get(&format!("lead/{close}/")).await;
    assert_eq!(lead["name"], "Acme From Close");

    w.settle().await;
    w.reset_stats();
    let again = engine.run().await.expect("run");
    assert!(!again.wrote(), "{again:?}");
}

/// A value cleared in one CRM is cleared in the other (the stored per-side values tell a
/// clear from a field never filled), both ways.
#[tokio::test]
async fn a_clear_propagates_as_a_clear_both_ways() {
    clears_propagate(Db::Sqlite).await;
}

/// The same with the per-side values kept in PostgreSQL.
#[tokio::test]
async fn a_clear_propagates_on_postgres() {
    clears_propagate(Db::Postgres).await;
}

async fn clears_propagate(db: Db) {
    let w = World::on(db).await;
    let engine = w.engine(config());
    let (close, hs) = linked_acme(&w, &engine).await;
    w.close_update(
        &format!("lead/{close}/"),
        json!({"description": "Makes anvils"}),
    )
    .await;
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(hs_company(&w, &hs).await.1, "Makes anvils");

    // Cleared in HubSpot: cleared in Close.
    w.settle().await;
    w.hs_update("companies", &hs, &[("description", "")]).await;
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    let lead = w.close_get(&format!("lead/{close}/")).await;
    assert!(
        lead["description"].is_null() || lead["description"] == "",
        "cleared in Close: {lead}"
    );

    // Filled again and cleared in Close: cleared in HubSpot.
    w.settle().await;
    w.close_update(&format!("lead/{close}/"), json!({"description": "Back"}))
        .await;
    w.settle().await;
    engine.run().await.expect("run");
    assert_eq!(hs_company(&w, &hs).await.1, "Back");
    w.settle().await;
    w.close_update(&format!("lead/{close}/"), json!({"description": ""}))
        .await;
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    let d = hs_company(&w, &hs).await.1;
    assert!(d.is_null() || d == "", "cleared in HubSpot: {d}");

    w.settle().await;
    w.reset_stats();
    let again = engine.run().await.expect("run");
    assert!(!again.wrote(), "{again:?}");
    w.finish().await;
}

/// A conflict on a reference held apart is settled by a later move on one side, though no
/// record read in that run names the company the move left (only the side's stored base
/// does): the move is an edit, written to the other CRM with the run's other changes, and
/// the conflict is closed. Were the base's company not compared, the move would be stored
/// as the new base unsynced and the conflict left open with stale values.
#[tokio::test]
async fn a_reference_conflict_is_settled_by_a_later_move_to_another_company() {
    let w = World::new().await;
    let mut c = config();
    c.person.conflict.policy = Some(PolicyKind::Manual);
    let engine = w.engine(c);
    let mut companies = Vec::new();
    for (name, url) in [
        ("Acme", "https://acme.com"),
        ("Globex", "https://globex.com"),
        ("Initech", "https://initech.com"),
    ] {
        companies.push(w.close_lead(json!({"name": name, "url": url})).await);
    }
    w.settle().await;
    let first = engine.run().await.expect("run");
    assert!(first.errors.is_empty(), "{first:?}");
    let mut hs_companies = Vec::new();
    for lead in &companies {
        let r = RecordRef::new(Crm::Close, ObjectKind::Company, lead.clone());
        hs_companies.push(w.linked_id(&r, Crm::HubSpot).await);
    }
    // Bob is at Acme in Close and at Globex in HubSpot: linked by his e-mail, the companies
    // held apart make a conflict under `manual`.
    let contact = w
        .close
        .raw(&crmkit_core::http::ApiRequest::post(
            "contact/",
            json!({"lead_id": companies[0], "name": "Bob Stone",
                "emails": [{"email": "bob@acme.com", "type": "office"}]}),
        ))
        .await
        .expect("contact")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let bob_hs = w
        .hs_create(
            "contacts",
            json!({"firstname": "Bob", "lastname": "Stone", "email": "bob@acme.com",
                "associatedcompanyid": hs_companies[1]}),
        )
        .await;
    w.settle().await;
    let linked = engine.run().await.expect("run");
    assert!(linked.errors.is_empty(), "{linked:?}");
    let bob = RecordRef::new(Crm::Close, ObjectKind::Person, contact.clone());
    assert_eq!(w.linked_id(&bob, Crm::HubSpot).await, bob_hs);
    let open = w.store.open_conflicts(10).await.expect("store");
    assert_eq!(open.len(), 1, "{linked:?}");
    assert_eq!(open[0].field, "company", "{open:?}");

    // HubSpot moves Bob to Initech (its base, Globex, is referred to by no side now) while
    // Close renames him.
    w.hs_update(
        "contacts",
        &bob_hs,
        &[("associatedcompanyid", &hs_companies[2])],
    )
    .await;
    w.close_update(
        &format!("contact/{contact}/"),
        json!({"name": "Robert Stone"}),
    )
    .await;
    w.settle().await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(r.updated, 2, "the rename and the move are written: {r:?}");
    let name =
        w.hs.raw(&crmkit_core::http::ApiRequest::get(format!(
            "crm/v3/objects/contacts/{bob_hs}?properties=firstname,lastname"
        )))
        .await
        .expect("read");
    assert_eq!(name["properties"]["firstname"], "Robert", "{name}");
    let in_close = w.close_get(&format!("contact/{contact}/")).await;
    assert_eq!(in_close["lead_id"], companies[2].as_str(), "{r:?}");
    let still = w.store.open_conflicts(10).await.expect("store");
    assert!(still.is_empty(), "the move settled the company: {still:?}");

    w.settle().await;
    w.reset_stats();
    let again = engine.run().await.expect("run");
    assert!(!again.wrote(), "{again:?}");
}
