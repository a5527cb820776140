//! Leases: exclusion between processes, renewal, release and expiry.

use std::time::Duration;

use crmkit_core::{Crm, ObjectKind};
use crmkit_store::{CursorKey, Error};

use crate::support::{TestDb, both_backends};

both_backends!(
    one_holder_at_a_time,
    a_dead_holder_loses_its_lease,
    racing_processes_never_share_a_lease
);

const LONG: Duration = Duration::from_secs(60);
/// Long enough that a slow machine does not see it expire between two calls.
const SHORT: Duration = Duration::from_millis(1500);

async fn one_holder_at_a_time(db: TestDb) {
    let s = &db.store;
    let a = s
        .acquire_lease("sync:close-hubspot", "a", LONG)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.holder.as_str(), a.token), ("a", 1));
    assert_eq!(
        s.acquire_lease("sync:close-hubspot", "b", LONG)
            .await
            .unwrap(),
        None
    );
    // Not even the holder takes it twice: it renews.
    assert_eq!(
        s.acquire_lease("sync:close-hubspot", "a", LONG)
            .await
            .unwrap(),
        None
    );
    // Another name is another lease.
    assert!(
        s.acquire_lease("sync:close-salesforce", "b", LONG)
            .await
            .unwrap()
            .is_some()
    );
    let renewed = s.renew_lease(&a, Duration::from_secs(120)).await.unwrap();
    assert!(renewed.expires_at > a.expires_at);
    assert_eq!(
        s.lease("sync:close-hubspot").await.unwrap(),
        Some(renewed.clone())
    );
    assert!(s.release_lease(&renewed).await.unwrap());
    assert_eq!(s.lease("sync:close-hubspot").await.unwrap(), None);
    let b = s
        .acquire_lease("sync:close-hubspot", "b", LONG)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.token, 2, "the fencing token survives a release");
    let e = s.renew_lease(&renewed, LONG).await.unwrap_err();
    assert!(
        matches!(&e, Error::LeaseLost { holder, .. } if holder == "a"),
        "{e}"
    );
    assert!(!s.release_lease(&renewed).await.unwrap());
    assert_eq!(
        s.lease("sync:close-hubspot").await.unwrap().unwrap().holder,
        "b"
    );
    assert!(matches!(
        s.acquire_lease("x", "a", Duration::ZERO).await,
        Err(Error::InvalidInput { .. })
    ));
}

async fn a_dead_holder_loses_its_lease(db: TestDb) {
    let dead = db.open_another().await;
    let lease = dead
        .acquire_lease("worker", "dead", SHORT)
        .await
        .unwrap()
        .unwrap();
    dead.close().await;
    let s = &db.store;
    assert_eq!(
        s.acquire_lease("worker", "alive", LONG).await.unwrap(),
        None
    );
    tokio::time::sleep(SHORT + Duration::from_millis(300)).await;
    let taken = s
        .acquire_lease("worker", "alive", LONG)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.token, lease.token + 1);
    // The dead holder, come back, cannot renew.
    assert!(matches!(
        s.renew_lease(&lease, LONG).await,
        Err(Error::LeaseLost { .. })
    ));
}

async fn racing_processes_never_share_a_lease(db: TestDb) {
    let handles = [db.store.clone(), db.open_another().await];
    for round in 0..10 {
        let name = format!("race-{round}");
        let mut tasks = Vec::new();
        for (h, store) in handles.iter().enumerate() {
            for t in 0..4 {
                let store = store.clone();
                let name = name.clone();
                tasks.push(tokio::spawn(async move {
                    store
                        .acquire_lease(&name, &format!("p{h}-t{t}"), LONG)
                        .await
                }));
            }
        }
        let mut winners = Vec::new();
        for t in tasks {
            if let Some(lease) = t.await.unwrap().unwrap() {
                winners.push(lease.holder);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let held = db.store.lease(&name).await.unwrap().unwrap();
        assert_eq!(held.holder, winners[0]);
        assert_eq!(held.token, 1);
    }
}

both_backends!(
    a_stale_holder_cannot_commit_fenced_work,
    one_fence_checks_every_lease
);

/// A holder that stalled past its time to live while another took the lease over cannot
/// commit a fenced transaction; the new holder can. The local deadline is at most the time
/// to live away.
async fn a_stale_holder_cannot_commit_fenced_work(db: TestDb) {
    let s = &db.store;
    let asked = std::time::Instant::now();
    let a = s.acquire_lease("pair", "a", SHORT).await.unwrap().unwrap();
    let deadline = a
        .local_deadline
        .expect("a taken lease has a local deadline");
    assert!(deadline <= std::time::Instant::now() + SHORT && deadline >= asked);
    // While held, fenced work commits.
    let mut tx = s.begin_fenced(&a).await.unwrap();
    tx.set_cursor(&key(), "c1").await.unwrap();
    tx.commit().await.unwrap();

    tokio::time::sleep(SHORT + Duration::from_millis(300)).await;
    let b = s.acquire_lease("pair", "b", LONG).await.unwrap().unwrap();
    // A wakes up, writes, then checks its lease: the transaction is lost.
    let mut tx = s.begin().await.unwrap();
    tx.set_cursor(&key(), "stale").await.unwrap();
    let e = tx.fence(&a).await.unwrap_err();
    assert!(
        matches!(&e, Error::LeaseLost { holder, .. } if holder == "a"),
        "{e}"
    );
    let e = tx.commit().await.unwrap_err();
    assert!(matches!(e, Error::TxAborted), "{e}");
    assert!(matches!(
        s.begin_fenced(&a).await,
        Err(Error::LeaseLost { .. })
    ));
    let mut tx = s.begin_fenced(&b).await.unwrap();
    assert_eq!(
        tx.cursor(&key()).await.unwrap().map(|c| c.value).as_deref(),
        Some("c1")
    );
    tx.commit().await.unwrap();
}

fn key() -> CursorKey {
    CursorKey::new("pair", Crm::Close, ObjectKind::Company)
}

/// [`Tx::fence_all`](crmkit_store::Tx::fence_all) passes while every lease is held and names
/// the one lost otherwise: released, taken over (another holder, a higher token) or never
/// taken under that name.
async fn one_fence_checks_every_lease(db: TestDb) {
    let s = &db.store;
    let a = s
        .acquire_lease("sync:a", "me", LONG)
        .await
        .unwrap()
        .unwrap();
    let b = s
        .acquire_lease("sync:b", "me", LONG)
        .await
        .unwrap()
        .unwrap();
    let c = s
        .acquire_lease("sync:c", "me", LONG)
        .await
        .unwrap()
        .unwrap();
    let mut tx = s.begin().await.unwrap();
    tx.fence_all(&[a.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    tx.set_cursor(&key(), "c1").await.unwrap();
    tx.commit().await.unwrap();

    // B released and taken by another holder: the fence names it, whatever its place.
    s.release_lease(&b).await.unwrap();
    s.acquire_lease("sync:b", "other", LONG)
        .await
        .unwrap()
        .unwrap();
    let mut tx = s.begin().await.unwrap();
    let e = tx
        .fence_all(&[a.clone(), b.clone(), c.clone()])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::LeaseLost { name, .. } if name == "sync:b"),
        "{e}"
    );
    assert!(matches!(tx.commit().await, Err(Error::TxAborted)));

    // The same holder with an older token (taken again since) is lost too.
    s.release_lease(&c).await.unwrap();
    s.acquire_lease("sync:c", "me", LONG)
        .await
        .unwrap()
        .unwrap();
    let mut tx = s.begin().await.unwrap();
    let e = tx.fence_all(&[a.clone(), c.clone()]).await.unwrap_err();
    assert!(
        matches!(&e, Error::LeaseLost { name, .. } if name == "sync:c"),
        "{e}"
    );
    drop(tx);

    // A lease whose name was never taken is not held.
    let mut ghost = a.clone();
    ghost.name = "sync:ghost".into();
    let mut tx = s.begin().await.unwrap();
    let e = tx.fence_all(&[a.clone(), ghost]).await.unwrap_err();
    assert!(
        matches!(&e, Error::LeaseLost { name, .. } if name == "sync:ghost"),
        "{e}"
    );
    drop(tx);
    let mut tx = s.begin().await.unwrap();
    tx.fence_all(&[a]).await.unwrap();
    tx.commit().await.unwrap();
}
