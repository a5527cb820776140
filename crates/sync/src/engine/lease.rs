//! The run's lease: one run at a time per set of CRMs, and per CRM, kept alive in the
//! background and checked by every store transaction of the run and before every CRM write
//! (fencing).
//!
//! - **Name.** A set of CRMs has one name whatever the order of `[sync] crms`: the names
//!   sorted and joined (`close-hubspot`), for the lease (`sync:close-hubspot`), the cursors,
//!   the retry list, the intents and the runs. Cursors stored by an older crmkit under
//!   another order (its config's) are moved to the canonical name once
//!   ([`Engine::adopt_legacy_state`]), and intents it left unsettled under such a name are
//!   reconciled too, whatever this config's order. The intents and retry entries of a
//!   smaller set of the CRMs (a pair grown into a three-way sync) are taken over as well,
//!   its cursors not ([`subset_pair_names`]).
//! - **The legacy leases.** An older crmkit takes its lease under the config's order
//!   (`sync:hubspot-close`) and knows nothing of the canonical name, and during a rolling
//!   upgrade it may be configured in another order than the new process, or sync another
//!   set sharing a CRM. So that an old and a new process never run on the same CRMs at
//!   once, every run holds the lease under the name of *every* order of *every* set of 2 or
//!   more CRMs sharing one of its CRMs ([`lease_names`]: its own set's, 2 names for two CRMs
//!   or 6 for three, and the other sets'; with three CRMs known, all 12), whatever its own
//!   config's order, for its whole duration: it takes them one after the
//!   other in sorted order (so two new processes never each hold a name the other waits
//!   for), renews them together, fences with all of them and releases all of them. If one
//!   is held by another live holder the run does not start, says which lease is held, and
//!   gives back the ones it already took.
//! - **One lease per CRM.** Runs over different sets of CRMs sharing a CRM (`[close,
//!   hubspot]` and `[close, hubspot, salesforce]`) share the links, so a run also holds
//!   `sync-crm:<crm>` ([`crm_lease_name`]) for each of its CRMs, taken, renewed, fenced with
//!   and released with the others: no two runs touching one CRM overlap.
//! - **One store, one set of CRMs.** Even one after the other, two sets sharing a CRM would
//!   share each CRM's last synced values (the base a change is told from), so a change one
//!   run synced would never reach the other's third CRM: a run refuses to start when the
//!   store holds cursors, runs that wrote or write intents of another set sharing a CRM
//!   that is not part of its own ([`Engine::check_crm_set`]); a run that wrote nothing (it
//!   failed at once) does not count. Growing a pair into a three-way sync is allowed.
//! - **Renewal.** A background task renews the leases every third of their time to live
//!   while the run goes on, so a long kind cannot outlive them; the task ends with the run.
//! - **Fencing.** Every store transaction of the run first checks, on the database, that the
//!   leases are still this run's ([`crmkit_store::Tx::fence`]). A write to a CRM is preceded
//!   by such a transaction too: the one recording (or, when reconciling, marking) its intent
//!   as sent, once per record in `apply` (where each write is recorded anyway) and once per
//!   batch of resent deletes in `reconcile`. A run whose lease was lost (its renewal failed,
//!   it expired or another process took it over) stops with an error saying so before its
//!   next write, to the store or to a CRM; only a takeover in the moment between that check
//!   and the CRM request itself goes unseen.

use std::sync::atomic::Ordering;

use crmkit_store::Lease;

use super::*;

/// The canonical name of a set of CRMs: their names sorted and joined with `-`.
pub fn pair_name(crms: &[Crm]) -> String {
    let mut names: Vec<String> = crms.iter().map(Crm::to_string).collect();
    names.sort();
    names.join("-")
}

/// The names older crmkit versions may have used for `crms`: the CRMs in their config's
/// order, so every order but the sorted one. The config's own order comes first (its
/// cursors are the ones this config's older runs stored), then the others, sorted.
pub(super) fn legacy_pair_names(crms: &[Crm]) -> Vec<String> {
    let canonical = pair_name(crms);
    let own = crms
        .iter()
        .map(Crm::to_string)
        .collect::<Vec<_>>()
        .join("-");
    let names: Vec<String> = crms.iter().map(Crm::to_string).collect();
    let mut others: Vec<String> = orders(&names)
        .into_iter()
        .map(|order| order.join("-"))
        .filter(|name| *name != canonical && *name != own)
        .collect();
    others.sort();
    others.dedup();
    (own != canonical)
        .then_some(own)
        .into_iter()
        .chain(others)
        .collect()
}

/// Every name a run of a set of 2 or more of `crms`' CRMs stored its state under (every
/// order of every such set, the canonical [`pair_name`] of `crms` left out): where the
/// intents and retry entries a run of `crms` takes over are, since a pair grown into a
/// three-way sync leaves its writes open under the pair's name.
pub(super) fn subset_pair_names(crms: &[Crm]) -> Vec<String> {
    let canonical = pair_name(crms);
    let mut out: Vec<String> = sets(crms)
        .iter()
        .flat_map(|set| orders(set))
        .map(|order| order.join("-"))
        .filter(|name| *name != canonical)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Every set of 2 or more of `crms`, each in `crms`' order.
fn sets(crms: &[Crm]) -> Vec<Vec<String>> {
    let names: Vec<String> = crms.iter().map(Crm::to_string).collect();
    // Every subset by its bit mask.
    (1u32..(1 << names.len()))
        .map(|mask| {
            names
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, n)| n.clone())
                .collect::<Vec<_>>()
        })
        .filter(|set| set.len() >= 2)
        .collect()
}

/// The leases a run of `crms` holds, in the order it takes them (sorted, so the
/// `sync-crm:<crm>` ones come first):
/// - `sync-crm:<crm>` for each of its CRMs, so no two runs touching one CRM overlap
///   whatever their sets (see [`crm_lease_name`]);
/// - `sync:<the CRMs in that order>` for every order of every set of 2 or more CRMs
///   sharing one of its CRMs (its own set among them, the canonical `sync:<pair_name>`
///   too): an older crmkit knows nothing of `sync-crm:*` and takes only the lease of its
///   config's order, whichever that is, so during a rolling upgrade a new run must hold
///   that name to never sync the same CRMs at the same time, whether the old process
///   syncs this set or another one sharing a CRM (`[close, salesforce]` beside
///   `[close, hubspot]`).
pub fn lease_names(crms: &[Crm]) -> Vec<String> {
    let all = [Crm::Close, Crm::HubSpot, Crm::Salesforce];
    let sharing: Vec<String> = sets(&all)
        .into_iter()
        .filter(|set| crms.iter().any(|crm| set.contains(&crm.to_string())))
        .flat_map(|set| orders(&set))
        .map(|order| format!("sync:{}", order.join("-")))
        .collect();
    let mut out: Vec<String> = crms
        .iter()
        .map(|crm| crm_lease_name(*crm))
        .chain(sharing)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The lease every run touching `crm` holds (`sync-crm:close`), whatever its other CRMs: runs
/// over different sets sharing a CRM (`[close, hubspot]` and `[close, hubspot, salesforce]`)
/// would otherwise run at once on the same links and create records twice.
pub fn crm_lease_name(crm: Crm) -> String {
    format!("sync-crm:{crm}")
}

/// The set of CRMs a stored pair name names (`hubspot-close`: Close and HubSpot), `None`
/// when a part is not a CRM's name.
fn crms_of(pair: &str) -> Option<BTreeSet<Crm>> {
    pair.split('-')
        .map(|part| {
            [Crm::Close, Crm::HubSpot, Crm::Salesforce]
                .into_iter()
                .find(|crm| crm.to_string() == part)
        })
        .collect()
}

/// Every order of `items` (n! of them; `[sync] crms` has two or three).
fn orders(items: &[String]) -> Vec<Vec<String>> {
    if items.is_empty() {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for (i, first) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(i);
        for mut tail in orders(&rest) {
            tail.insert(0, first.clone());
            out.push(tail);
        }
    }
    out
}

/// The held leases and the task renewing them; [`Held::stop`] (or dropping it, when a run's
/// future is dropped midway) ends the renewal, so the leases expire if not released.
pub(super) struct Held {
    leases: Vec<Lease>,
    renewal: tokio::task::JoinHandle<()>,
}

impl Held {
    /// Ends the renewal task (the leases themselves are released by the caller).
    pub(super) fn stop(self) -> Vec<Lease> {
        self.renewal.abort();
        self.leases.clone()
    }
}

/// Takes every lease a sync of `crms` holds ([`lease_names`], in that order) for `ttl`,
/// under a holder name of this process (`crmkit-sync-<pid>-<time>`, which
/// `crmkit sync`'s freeing of a killed process's leases reads); `Err(name)` when another
/// holder holds lease `name`. A lease already taken is released again when a later one
/// cannot be taken (held, or a store failure). Shared by runs and by the commands that must
/// not overlap one (`crmkit sync retry reset`, `crmkit conflicts resolve`).
pub async fn take_leases(
    store: &Store,
    crms: &[Crm],
    ttl: std::time::Duration,
) -> Result<std::result::Result<Vec<Lease>, String>> {
    let holder = format!(
        "crmkit-sync-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let mut leases = Vec::new();
    for name in lease_names(crms) {
        match store.acquire_lease(&name, &holder, ttl).await {
            Ok(Some(lease)) => leases.push(lease),
            Ok(None) => {
                release_leases(store, &leases).await.ok();
                return Ok(Err(name));
            }
            Err(e) => {
                release_leases(store, &leases).await.ok();
                return Err(store_err(e));
            }
        }
    }
    Ok(Ok(leases))
}

/// Renews `leases` for `ttl` every third of it, in a task of its own, until the task is
/// aborted; sets `lost` (and stops) once one of them is known lost (expired and taken over),
/// so its holder writes nothing more. Shared by runs and by the commands that hold a run's
/// leases for longer than a moment (`crmkit conflicts resolve`).
pub fn renew_leases(
    store: Store,
    mut leases: Vec<Lease>,
    ttl: std::time::Duration,
    lost: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(ttl / 3).await;
            for lease in &mut leases {
                match store.renew_lease(lease, ttl).await {
                    Ok(l) => *lease = l,
                    Err(crmkit_store::Error::LeaseLost { .. }) => {
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    // A passing store failure: the next tick tries again, and the fence
                    // stops the holder if the lease ran out meanwhile.
                    Err(_) => {}
                }
            }
        }
    })
}

/// Gives `leases` back, each even when giving back another failed; the first failure is
/// returned. A lease no longer held (expired, taken over) is left alone.
pub async fn release_leases(store: &Store, leases: &[Lease]) -> Result<()> {
    let mut out = Ok(());
    for lease in leases {
        if let Err(e) = store.release_lease(lease).await {
            if out.is_ok() {
                out = Err(store_err(e));
            }
        }
    }
    out
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

impl Engine {
    /// Takes the run's leases ([`lease_names`]) and renews them in the background;
    /// `Err(name)` when another holder holds lease `name`. A lease already taken is
    /// released again when a later one cannot be taken (held, or a store failure).
    pub(super) async fn hold_leases(&self) -> Result<std::result::Result<Held, String>> {
        let leases = match take_leases(&self.store, &self.config.sync.crms, self.lease_ttl).await? {
            Ok(leases) => leases,
            Err(name) => return Ok(Err(name)),
        };
        self.lost.store(false, Ordering::SeqCst);
        *self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = leases.clone();
        let renewal = renew_leases(
            self.store.clone(),
            leases.clone(),
            self.lease_ttl,
            Arc::clone(&self.lost),
        );
        Ok(Ok(Held { leases, renewal }))
    }

    /// Forgets the run's leases (before they are released).
    pub(super) fn drop_lease(&self) {
        self.lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
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

    /// A store transaction, fenced by each of the run's leases when it holds them: once
    /// another process took the pair over (under any of its names), it fails (and the run stops)
    /// instead of writing.
    pub(super) async fn tx(&self) -> Result<crmkit_store::Tx> {
        self.ensure_leased()?;
        let leases = self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let begun = async {
            let mut tx = self.store.begin().await?;
            // One query for every lease, as every transaction of the run pays for it.
            tx.fence_all(&leases).await?;
            Ok::<_, crmkit_store::Error>(tx)
        }
        .await;
        match begun {
            Ok(tx) => Ok(tx),
            Err(crmkit_store::Error::LeaseLost { .. }) => {
                self.lost.store(true, Ordering::SeqCst);
                Err(self.lease_lost())
            }
            Err(e) => Err(store_err(e)),
        }
    }

    /// Refuses, with a configuration error naming both sets and the state found, a run over
    /// this engine's CRMs when the store holds sync state that moved something (cursors,
    /// runs that wrote, write intents or links, [`crmkit_store::Store::sync_pairs`]) of
    /// another set of CRMs that shares a CRM with this one and is not a subset of it. A run
    /// that wrote and linked nothing (a first three-way run failing on bad credentials) does
    /// not count, so it never locks the store against going back to the pair; one that
    /// linked records and failed before writing does, as its links hold every side's base.
    ///
    /// The links and, in each link, every CRM's last synced values (the base a change is
    /// told from) are shared by every run of a store: a Close change a `close-hubspot` run
    /// synced becomes Close's base, so a `close-salesforce` run on the same store would
    /// never see it. Growing a set (a pair into a three-way sync) is allowed: the bigger
    /// run reads every one of its CRMs' changes from its own cursors and writes to all of
    /// them. Shrinking it, or another set sharing a CRM, is not.
    pub(super) async fn check_crm_set(&self) -> Result<()> {
        let mine: BTreeSet<Crm> = self.config.sync.crms.iter().copied().collect();
        for state in self.store.sync_pairs().await.map_err(store_err)? {
            let Some(theirs) = crms_of(&state.pair) else {
                continue;
            };
            if theirs.is_disjoint(&mine) || theirs.is_subset(&mine) {
                continue;
            }
            let theirs: Vec<Crm> = theirs.into_iter().collect();
            let found: Vec<String> = [
                (state.cursors, "change-feed cursors"),
                (state.writing_runs, "runs that wrote to a CRM"),
                (state.intents, "write intents"),
                (state.links, "links"),
            ]
            .into_iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
            return Err(Error::config(format!(
                "this store holds the sync state of {} ([sync] crms = {theirs:?}; found \
                 under {:?}: {}), which shares a CRM with this sync of {} but is not part \
                 of it: one store serves one set of CRMs (it may grow into more CRMs, never \
                 shrink or pair them differently, since the links and each CRM's last \
                 synced values are shared). Go on with [sync] crms = {theirs:?} (or a set \
                 holding them), or use another database for this set (--database-url or \
                 DATABASE_URL), knowing that a new database starts with no links: every \
                 record is matched again, and those no natural key matches (deals, \
                 activities) are created again in the other CRMs",
                pair_name(&theirs),
                state.pair,
                found.join(", "),
                self.pair
            )));
        }
        Ok(())
    }

    /// Moves the sync state stored under another name to the canonical name, once, in one
    /// fenced transaction:
    /// - **cursors** stored under the name of another order of the CRMs (an older
    ///   crmkit's, [`legacy_pair_names`]): a cursor already stored under the canonical name
    ///   is kept, and of two older names holding one, the first listed wins (the config's
    ///   own order). A smaller set's cursors (a pair grown into a three-way sync) are left
    ///   alone: they skip what that set read, which this run must read too, for its other
    ///   CRMs;
    /// - **retry entries** stored under the name of this set in another order or of a
    ///   smaller set of its CRMs ([`subset_pair_names`]), as they are (attempts, next
    ///   attempt, given-up state, reason), so a record an older or smaller run deferred is
    ///   retried and listed; where two names hold the same record, the entry kept is the
    ///   one still retried, or of two retried, the one due first (an entry given up under
    ///   one name but waiting under another is tried again rather than left alone).
    ///
    /// Every moved cursor and retry entry is removed from its old name.
    pub(super) async fn adopt_legacy_state(&self) -> Result<()> {
        let mut cursors = Vec::new();
        for old in legacy_pair_names(&self.config.sync.crms) {
            cursors.extend(self.store.cursors(&old).await.map_err(store_err)?);
        }
        let mut retries = Vec::new();
        for old in subset_pair_names(&self.config.sync.crms) {
            retries.extend(self.store.retries(&old, None).await.map_err(store_err)?);
        }
        if cursors.is_empty() && retries.is_empty() {
            return Ok(());
        }
        let mut tx = self.tx().await?;
        for c in cursors {
            let key = CursorKey::new(self.pair.clone(), c.key.crm, c.key.object);
            if tx.cursor(&key).await.map_err(store_err)?.is_none() {
                tx.set_cursor(&key, &c.value).await.map_err(store_err)?;
            }
            tx.delete_cursor(&c.key).await.map_err(store_err)?;
        }
        for old in retries {
            let mut moved = old.clone();
            moved.pair = self.pair.clone();
            let kept = tx.retry(&self.pair, &old.record).await.map_err(store_err)?;
            if kept.is_none_or(|kept| retried_sooner(&moved, &kept)) {
                tx.put_retry(&moved).await.map_err(store_err)?;
            }
            tx.clear_retry(&old.pair, &old.record)
                .await
                .map_err(store_err)?;
        }
        tx.commit().await.map_err(store_err)
    }
}

/// Whether retry entry `a` should be kept over `b` (of the same record): it is still
/// retried and `b` is given up, or both are retried and `a` is due first.
fn retried_sooner(a: &crmkit_store::Retry, b: &crmkit_store::Retry) -> bool {
    match (a.next_attempt_at, b.next_attempt_at) {
        (Some(a), Some(b)) => a < b,
        (Some(_), None) => true,
        (None, _) => false,
    }
}
