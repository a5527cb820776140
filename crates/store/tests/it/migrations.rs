//! Schema migrations: applied on open, recorded, idempotent.

use crmkit_store::{Error, Store};

use crate::support::{TestDb, both_backends};

both_backends!(
    migrations_are_idempotent,
    a_newer_schema_is_refused,
    processes_opening_at_once_migrate_once,
    an_older_database_is_upgraded_in_place,
    a_failing_migration_leaves_nothing_behind,
    a_retry_list_from_before_merge_notes_is_kept,
);

async fn migrations_are_idempotent(db: TestDb) {
    let latest = Store::latest_schema_version();
    assert!(latest >= 2);
    assert_eq!(db.store.schema_version().await.unwrap(), latest);
    // Opening applied everything: migrating again, twice, applies nothing.
    assert_eq!(db.store.migrate().await.unwrap(), 0);
    assert_eq!(db.store.migrate().await.unwrap(), 0);
    // So does opening a second handle, and the data written before survives it.
    let key = crmkit_store::CursorKey::new(
        "p",
        crmkit_core::Crm::Close,
        crmkit_core::ObjectKind::Company,
    );
    db.store.set_cursor(&key, "c1").await.unwrap();
    let again = db.open_another().await;
    assert_eq!(again.schema_version().await.unwrap(), latest);
    assert_eq!(again.migrate().await.unwrap(), 0);
    assert_eq!(again.cursor(&key).await.unwrap().unwrap().value, "c1");
}

async fn a_newer_schema_is_refused(db: TestDb) {
    let latest = Store::latest_schema_version();
    db.raw(&format!(
        "INSERT INTO crmkit_migrations (version, name, applied_at) VALUES ({}, 'future', 0)",
        latest + 1
    ))
    .await;
    match Store::open(&db.url).await {
        Err(Error::SchemaTooNew { found, known }) => {
            assert_eq!((found, known), (latest + 1, latest));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

async fn processes_opening_at_once_migrate_once(db: TestDb) {
    let (url, cleanup) = crate::support::fresh(db.kind).await;
    // The checks run in a task so that the fresh database is removed even if one fails.
    let checks = tokio::spawn(async move {
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { Store::open(&url).await })
            })
            .collect();
        let mut stores = Vec::new();
        for o in opens {
            stores.push(o.await.unwrap().expect("every concurrent open succeeds"));
        }
        for s in &stores {
            assert_eq!(
                s.schema_version().await.unwrap(),
                Store::latest_schema_version()
            );
            assert_eq!(s.migrate().await.unwrap(), 0);
        }
        // The schema works from every handle.
        let key = crmkit_store::CursorKey::new(
            "p",
            crmkit_core::Crm::HubSpot,
            crmkit_core::ObjectKind::Deal,
        );
        stores[0].set_cursor(&key, "x").await.unwrap();
        assert_eq!(stores[3].cursor(&key).await.unwrap().unwrap().value, "x");
        for s in stores {
            s.close().await;
        }
    })
    .await;
    cleanup.run().await;
    if let Err(e) = checks {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Undoes migration 10 (merges noted on the retry list).
async fn undo_10(db: &TestDb) {
    db.raw("ALTER TABLE sync_retries DROP COLUMN merged_from")
        .await;
    db.raw("DELETE FROM crmkit_migrations WHERE version = 10")
        .await;
}

/// Undoes migrations 10 and 9 (facts learned about CRM accounts).
async fn undo_9(db: &TestDb) {
    undo_10(db).await;
    db.raw("DROP TABLE account_facts").await;
    db.raw("DELETE FROM crmkit_migrations WHERE version = 9")
        .await;
}

/// Undoes migrations 10, 9, 8 (attempts reset, data only) and 7 (inbox body encoding, errors,
/// dead letters).
async fn undo_7(db: &TestDb) {
    undo_9(db).await;
    db.raw("DELETE FROM crmkit_migrations WHERE version = 8")
        .await;
    for column in ["body_encoding", "last_error", "dead_at"] {
        db.raw(&format!("ALTER TABLE webhook_inbox DROP COLUMN {column}"))
            .await;
    }
    db.raw("DELETE FROM crmkit_migrations WHERE version = 7")
        .await;
}

/// Undoes migrations 7 and 6 (the retry list).
async fn undo_6(db: &TestDb) {
    undo_7(db).await;
    db.raw("DROP TABLE sync_retries").await;
    db.raw("DELETE FROM crmkit_migrations WHERE version = 6")
        .await;
}

/// Undoes migrations 6 and 5 (intents per pair, one open conflict per field).
async fn undo_5(db: &TestDb) {
    undo_6(db).await;
    db.raw("DROP INDEX sync_conflicts_open").await;
    db.raw("DROP INDEX write_intents_pair").await;
    db.raw("ALTER TABLE write_intents DROP COLUMN pair").await;
    db.raw("DELETE FROM crmkit_migrations WHERE version = 5")
        .await;
}

/// Takes the database back to schema version 3 (before the per-side field values).
async fn downgrade_to_3(db: &TestDb) {
    undo_5(db).await;
    for side in ["close", "hubspot", "salesforce"] {
        db.raw(&format!(
            "ALTER TABLE crm_sync_records DROP COLUMN {side}_fields"
        ))
        .await;
    }
    db.raw("DELETE FROM crmkit_migrations WHERE version = 4")
        .await;
}

/// Takes the database back to schema version 2 (before the inbox delivery ids).
async fn downgrade_to_2(db: &TestDb) {
    downgrade_to_3(db).await;
    db.raw("DROP INDEX webhook_inbox_delivery").await;
    db.raw("ALTER TABLE webhook_inbox DROP COLUMN delivery_id")
        .await;
    db.raw("DELETE FROM crmkit_migrations WHERE version = 3")
        .await;
}

async fn an_older_database_is_upgraded_in_place(db: TestDb) {
    assert_eq!(
        Store::latest_schema_version(),
        10,
        "update this test for new migrations"
    );
    let s = &db.store;
    let link = s
        .insert_link(
            &crmkit_store::NewLink::new(crmkit_core::ObjectKind::Company)
                .crm_id(crmkit_core::Crm::Close, "lead_old"),
        )
        .await
        .unwrap();
    downgrade_to_2(&db).await;
    assert_eq!(s.schema_version().await.unwrap(), 2);
    // A webhook stored by a build of that time: body as received, attempts counted with no
    // cap.
    let body = r#"{"event":{"id":"ev_1"}}"#;
    db.raw(&format!(
        "INSERT INTO webhook_inbox (id, crm, received_at, body, headers, attempts) \
         VALUES ('old_1', 'close', 1700000000000, '{body}', '{{}}', 40)"
    ))
    .await;
    assert_eq!(s.migrate().await.unwrap(), 8);
    assert_eq!(s.schema_version().await.unwrap(), 10);
    // A link from before migration 4 has no field values, and can be given some.
    let old = s.link(&link.id).await.unwrap().unwrap();
    assert_eq!(old.fields(crmkit_core::Crm::Close), None);
    let v = serde_json::json!({"name": "Old Co"});
    let new = s
        .update_link(
            &old,
            &crmkit_store::LinkUpdate::new().fields(crmkit_core::Crm::Close, Some(v.clone())),
        )
        .await
        .unwrap();
    assert_eq!(new.fields(crmkit_core::Crm::Close), Some(&v));
    // It reads back unchanged, and is claimed, not made a dead letter by its old attempts.
    let kept = crmkit_store::InboxId::new("old_1".to_owned());
    let item = s.inbox_item(&kept).await.unwrap().unwrap();
    assert_eq!(item.delivery_id, None);
    assert_eq!(item.body, body);
    let claimed = s
        .inbox_claim("w1", std::time::Duration::from_secs(60), 10, 3)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].body, body);
    assert_eq!(claimed[0].attempts, 1);
    assert!(
        s.inbox_insert_once(crmkit_core::Crm::Close, "e1", "{}", &serde_json::json!({}))
            .await
            .unwrap()
            .is_some()
    );
}

async fn a_failing_migration_leaves_nothing_behind(db: TestDb) {
    downgrade_to_3(&db).await;
    // Forget that migration 3 ran but keep its column: applying it again fails midway.
    db.raw("DROP INDEX webhook_inbox_delivery").await;
    db.raw("DELETE FROM crmkit_migrations WHERE version = 3")
        .await;
    let e = db.store.migrate().await.unwrap_err();
    match &e {
        Error::Migration { version, .. } => assert_eq!(*version, 3),
        other => panic!("expected a Migration error, got {other:?}"),
    }
    assert!(e.to_string().contains("webhook inbox delivery ids"), "{e}");
    // Its row was rolled back with it: the database still says version 2, and a store that
    // opens it reports the same failure rather than a half-migrated schema.
    assert_eq!(db.store.schema_version().await.unwrap(), 2);
    assert!(matches!(
        Store::open(&db.url).await,
        Err(Error::Migration { version: 3, .. })
    ));
    // Repaired by hand, it migrates.
    db.raw("ALTER TABLE webhook_inbox DROP COLUMN delivery_id")
        .await;
    assert_eq!(db.store.migrate().await.unwrap(), 8);
    assert_eq!(db.store.schema_version().await.unwrap(), 10);
}

/// A retry entry stored before migration 10 is kept through it, holds no merge, and can be
/// given one.
async fn a_retry_list_from_before_merge_notes_is_kept(db: TestDb) {
    let s = &db.store;
    let deal = crmkit_core::RecordRef::new(
        crmkit_core::Crm::HubSpot,
        crmkit_core::ObjectKind::Deal,
        "202",
    );
    let before = s
        .record_retry(
            "close-hubspot",
            &deal,
            "stage not mapped",
            &Default::default(),
        )
        .await
        .unwrap();
    undo_10(&db).await;
    assert_eq!(s.migrate().await.unwrap(), 1);
    assert_eq!(s.retry("close-hubspot", &deal).await.unwrap(), Some(before));
    assert!(
        s.remember_merge("close-hubspot", &deal, "201")
            .await
            .unwrap()
    );
    assert_eq!(
        s.retry("close-hubspot", &deal)
            .await
            .unwrap()
            .unwrap()
            .merged_from
            .as_deref(),
        Some("201")
    );
}
