//! Schema migrations: applied on open, recorded, idempotent.

use crmkit_store::{Error, Store};

use crate::support::{TestDb, both_backends};

both_backends!(
    migrations_are_idempotent,
    a_newer_schema_is_refused,
    processes_opening_at_once_migrate_once,
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
    cleanup.run().await;
}
