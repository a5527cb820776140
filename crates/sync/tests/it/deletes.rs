//! Delete policies.

use crmkit_core::http::{ApiRequest, Method};
use crmkit_core::{Crm, ErrorKind, ObjectKind, RecordRef};
use crmkit_sync::config::DeletePolicy;

use super::{World, config, linked_acme};

async fn delete_close_lead(w: &World, id: &str) {
    w.close
        .raw(&ApiRequest::new(Method::DELETE, format!("lead/{id}/")))
        .await
        .expect("deleted");
    w.settle().await;
}

async fn hs_exists(w: &World, id: &str) -> bool {
    match w
        .hs
        .raw(&ApiRequest::get(format!("crm/v3/objects/companies/{id}")))
        .await
    {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => panic!("reading the company: {e}"),
    }
}

#[tokio::test]
async fn propagate_deletes_the_linked_records() {
    let w = World::new().await;
    let mut c = config();
    c.company.delete = DeletePolicy::Propagate;
    let engine = w.engine(c);
    let (close, hs) = linked_acme(&w, &engine).await;
    delete_close_lead(&w, &close).await;
    let r = engine.run().await.expect("run");
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(r.deleted, 1, "{r:?}");
    assert!(!hs_exists(&w, &hs).await, "archived in HubSpot");
    let link = w
        .store
        .link_by_record(&RecordRef::new(Crm::HubSpot, ObjectKind::Company, hs))
        .await
        .expect("store");
    assert!(link.is_none(), "the link is gone");
}

#[tokio::test]
async fn ignore_and_flag_leave_the_other_records_alone() {
    for policy in [DeletePolicy::Ignore, DeletePolicy::Flag] {
        let w = World::new().await;
        let mut c = config();
        c.company.delete = policy;
        let engine = w.engine(c);
        let (close, hs) = linked_acme(&w, &engine).await;
        delete_close_lead(&w, &close).await;
        w.reset_stats();
        let r = engine.run().await.expect("run");
        assert!(r.errors.is_empty(), "{r:?}");
        assert!(!r.wrote(), "{policy:?}: {r:?}");
        assert_eq!(w.writes(), Vec::<String>::new(), "{policy:?}");
        assert!(hs_exists(&w, &hs).await, "{policy:?}");
        // The tombstone is read again (the feed's overlap window): not reported twice.
        w.settle().await;
        let again = engine.run().await.expect("run");
        assert!(
            again.flagged.is_empty() && again.deletes_ignored == 0,
            "{again:?}"
        );
        let reviews = w.store.open_reviews(10).await.expect("store");
        match policy {
            DeletePolicy::Flag => {
                assert_eq!(r.flagged.len(), 1);
                assert_eq!(reviews.len(), 1, "queued for review");
            }
            _ => {
                assert_eq!(r.deletes_ignored, 1);
                assert!(reviews.is_empty());
            }
        }
    }
}
