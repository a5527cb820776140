//! `sqlite::memory:`: a private database living as long as its store.

use crmkit_core::{Crm, ObjectKind};
use crmkit_store::{Backend, CursorKey, Error, NewLink, Store};

#[tokio::test]
async fn an_in_memory_store_keeps_its_data_while_open() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    assert_eq!(
        store.schema_version().await.unwrap(),
        Store::latest_schema_version()
    );
    let key = CursorKey::new("p", Crm::Close, ObjectKind::Person);
    let mut tx = store.begin().await.unwrap();
    let link = tx
        .insert_link(&NewLink::new(ObjectKind::Person).crm_id(Crm::Close, "cont_m"))
        .await
        .unwrap();
    tx.set_cursor(&key, "m1").await.unwrap();
    tx.commit().await.unwrap();
    // Later calls use the same single connection, so they see the same database.
    assert_eq!(store.link(&link.id).await.unwrap(), Some(link));
    assert_eq!(store.cursor(&key).await.unwrap().unwrap().value, "m1");
    // Another in-memory store is another database.
    let other = Store::open("sqlite::memory:").await.unwrap();
    assert_eq!(other.cursor(&key).await.unwrap(), None);
}

#[tokio::test]
async fn unusable_urls_are_clear_errors() {
    for (url, says) in [("", "empty"), ("redis://127.0.0.1/0", "unsupported scheme")] {
        let e = Store::open(url).await.unwrap_err();
        assert!(matches!(e, Error::InvalidUrl { .. }), "{url}: {e:?}");
        assert!(e.to_string().contains(says), "{url}: {e}");
    }
}
