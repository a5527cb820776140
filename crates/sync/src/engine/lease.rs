//! The run's lease: one run at a time per set of CRMs, kept alive in the background and
//! checked by every store transaction of the run (fencing).
//!
//! - **Name.** A set of CRMs has one name whatever the order of `[sync] crms`: the names
//!   sorted and joined (`close-hubspot`), for the lease (`sync:close-hubspot`), the cursors,
//!   the retry list, the intents and the runs. Cursors stored by an older crmkit under the
//!   config's order are moved to the canonical name once ([`Engine::adopt_legacy_state`]),
//!   and intents it left unsettled under that name are reconciled too.
//! - **Renewal.** A background task renews the lease every third of its time to live while
//!   the run goes on, so a long kind cannot outlive it; the task ends with the run.
//! - **Fencing.** Every store transaction of the run first checks, on the database, that the
//!   lease is still this run's ([`crmkit_store::Tx::fence`]). A run whose lease was lost (its
//!   renewal failed, it expired or another process took it over) stops with an error saying
//!   so before its next write, to the store or to a CRM.

use std::sync::atomic::Ordering;

use crmkit_store::Lease;

use super::*;

/// The canonical name of a set of CRMs: their names sorted and joined with `-`.
pub fn pair_name(crms: &[Crm]) -> String {
    let mut names: Vec<String> = crms.iter().map(Crm::to_string).collect();
    names.sort();
    names.join("-")
}

/// The name older crmkit versions used: the CRMs in the config's order, when that differs.
pub(super) fn legacy_pair_name(crms: &[Crm]) -> Option<String> {
    let old = crms
        .iter()
        .map(Crm::to_string)
        .collect::<Vec<_>>()
        .join("-");
    (old != pair_name(crms)).then_some(old)
}

/// A held lease and the task renewing it; [`Held::stop`] (or dropping it, when a run's
/// future is dropped midway) ends the renewal, so the lease expires if not released.
pub(super) struct Held {
    lease: Lease,
    renewal: tokio::task::JoinHandle<()>,
}

impl Held {
    /// Ends the renewal task (the lease itself is released by the caller).
    pub(super) fn stop(self) -> Lease {
        self.renewal.abort();
        self.lease.clone()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

impl Engine {
    /// Takes the pair's lease and renews it in the background; `None` when another run
    /// holds it.
    pub(super) async fn hold_lease(&self, name: &str) -> Result<Option<Held>> {
        let holder = format!(
            "crmkit-sync-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let Some(lease) = self
            .store
            .acquire_lease(name, &holder, self.lease_ttl)
            .await
            .map_err(store_err)?
        else {
            return Ok(None);
        };
        self.lost.store(false, Ordering::SeqCst);
        *self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(lease.clone());
        let store = self.store.clone();
        let lost = Arc::clone(&self.lost);
        let ttl = self.lease_ttl;
        let mut current = lease.clone();
        let renewal = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                match store.renew_lease(&current, ttl).await {
                    Ok(l) => current = l,
                    Err(crmkit_store::Error::LeaseLost { .. }) => {
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    // A passing store failure: the next tick tries again, and the fence
                    // stops the run if the lease ran out meanwhile.
                    Err(_) => {}
                }
            }
        });
        Ok(Some(Held { lease, renewal }))
    }

    /// Forgets the run's lease (after it was released).
    pub(super) fn drop_lease(&self) {
        *self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Fails once the run's lease is known lost, so nothing more is written.
    pub(super) fn ensure_leased(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(self.lease_lost());
        }
        Ok(())
    }

    fn lease_lost(&self) -> Error {
        Error::new(
            ErrorKind::Conflict,
            format!(
                "the sync lease of {} was lost (it expired or another process took it over): \
                 this run stopped writing; the next run picks up where it stopped",
                self.pair
            ),
        )
    }

    /// A store transaction, fenced by the run's lease when there is one: once another
    /// process took the pair over, it fails (and the run stops) instead of writing.
    pub(super) async fn tx(&self) -> Result<crmkit_store::Tx> {
        self.ensure_leased()?;
        let lease = self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let begun = match &lease {
            Some(lease) => self.store.begin_fenced(lease).await,
            None => self.store.begin().await,
        };
        match begun {
            Ok(tx) => Ok(tx),
            Err(crmkit_store::Error::LeaseLost { .. }) => {
                self.lost.store(true, Ordering::SeqCst);
                Err(self.lease_lost())
            }
            Err(e) => Err(store_err(e)),
        }
    }

    /// Moves cursors stored under the config-order name of an older crmkit to the canonical
    /// name, once: a cursor already stored under the canonical name is kept.
    pub(super) async fn adopt_legacy_state(&self) -> Result<()> {
        let Some(old) = legacy_pair_name(&self.config.sync.crms) else {
            return Ok(());
        };
        let cursors = self.store.cursors(&old).await.map_err(store_err)?;
        let mut tx = self.tx().await?;
        for c in cursors {
            let key = CursorKey::new(self.pair.clone(), c.key.crm, c.key.object);
            if tx.cursor(&key).await.map_err(store_err)?.is_none() {
                tx.set_cursor(&key, &c.value).await.map_err(store_err)?;
            }
            tx.delete_cursor(&c.key).await.map_err(store_err)?;
        }
        tx.commit().await.map_err(store_err)
    }
}
