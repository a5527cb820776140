//! The per-record retry list in a run.
//!
//! The rule: a failure that belongs to *one record* (it cannot be read or mapped, the CRM
//! rejects its write, its parent is not linked yet, it is gone when read again) puts that
//! record on the store's retry list, and the kind's cursors move past it. A failure of the
//! *connection* (429, 5xx, a timeout or dropped connection, bad credentials, a used-up
//! quota, a store error) holds the kind's cursors instead, as before: the next run reads the
//! same changes again, no attempt is counted, so an outage never uses up a record's
//! attempts or gives it up. The list entries and the cursors are written in one fenced
//! transaction, so a record is on the list before a cursor passes it.
//!
//! Each kind's run first reads the records that are due ([`crmkit_store::Retry::due`]) with
//! [`Connector::get`] and plans them with the feed's changes (a record that is on the list
//! and changed again is simply planned from the feed). A listed record that synced leaves the
//! list; one that failed again counts an attempt and backs off; after the configured
//! `max_attempts` it is given up: kept on the list and reported (run report,
//! `crmkit sync status`, `crmkit sync retry list`), never retried or dropped in silence,
//! until a person re-arms it ([`crmkit_store::Store::reset_retry`], `crmkit sync retry
//! reset`): then it is due, and the next run reads it again. A record that only waits for
//! something outside it (a parent not linked yet, a mapping the configuration lacks) is
//! never given up: nothing in it is wrong, and it syncs unchanged once that is fixed. A merge
//! winner that cannot be mapped waits so too, with the merge noted on its entry
//! ([`crmkit_store::Retry::merged_from`]): the cursors move on, and the run that retries it
//! (or whose feed brings it) follows the merge ([`waiting_merges`]).

use crmkit_store::Retry;

use super::*;

/// What failed during one kind's run.
#[derive(Debug, Default)]
pub(super) struct Failures {
    /// A connection failure: the kind's cursors must not move.
    hold: bool,
    /// Records that failed on their own, with why: they go on the retry list.
    records: BTreeMap<RecordRef, String>,
    /// Records whose failure was the connection's: left on the list as they are.
    kept: BTreeSet<RecordRef>,
    /// Records waiting for something outside them (a parent to be linked, a mapping to be
    /// configured): listed with back-off but never given up, as nothing they hold is wrong.
    waiting: BTreeSet<RecordRef>,
    /// Merge winners waiting for a mapping, with the id of the record merged into each: the
    /// merge is noted on the winner's entry, to be followed when it syncs.
    merges: BTreeMap<RecordRef, Vec<String>>,
}

/// Whether `e` is a failure of the connection (or of our store) rather than of the record:
/// worth the same request again soon, and no reason to count against the record.
pub(super) fn of_the_connection(e: &Error) -> bool {
    e.is_retryable()
        || matches!(
            e.kind(),
            ErrorKind::Auth | ErrorKind::QuotaExhausted | ErrorKind::Config
        )
}

impl Failures {
    /// `record` failed on its own.
    pub(super) fn record(&mut self, record: RecordRef, reason: impl Into<String>) {
        self.records.entry(record).or_insert_with(|| reason.into());
    }

    /// `record` waits for something outside it: a parent not linked yet, or a mapping the
    /// configuration lacks (an unmapped stage). Listed like a failure, but never given up:
    /// once the parent is linked or the configuration fixed, it syncs on its next attempt.
    pub(super) fn wait(&mut self, record: RecordRef, reason: impl Into<String>) {
        self.waiting.insert(record.clone());
        self.record(record, reason);
    }

    /// `winner`, which `loser` was merged into, cannot be mapped yet (a stage the
    /// configuration lacks): it waits on the list with the merge noted, so the kind's
    /// cursors move on, and the run that retries it follows the merge.
    pub(super) fn wait_merge(
        &mut self,
        winner: RecordRef,
        loser: &RecordRef,
        reason: impl Into<String>,
    ) {
        // A merge of a record into itself (never made by a CRM, but a feed is input) would
        // be refused when noted, failing the run's settlement: the winner just waits.
        if loser.id == winner.id {
            return self.wait(winner, reason);
        }
        // Several records may be merged into one waiting winner: each merge is kept.
        let losers = self.merges.entry(winner.clone()).or_default();
        if !losers.contains(&loser.id) {
            losers.push(loser.id.clone());
        }
        self.wait(winner, reason);
    }

    /// Something failed that is not any one record's fault: the cursors stay.
    pub(super) fn hold(&mut self) {
        self.hold = true;
    }

    /// `records` could not be synced because of `e`: listed, or the cursors held when `e`
    /// is the connection's.
    pub(super) fn error(
        &mut self,
        e: &Error,
        records: impl IntoIterator<Item = RecordRef>,
        reason: &str,
    ) {
        if of_the_connection(e) {
            self.hold = true;
            self.kept.extend(records);
        } else {
            for r in records {
                self.record(r, reason);
            }
        }
    }

    /// Whether the kind's cursors may move.
    pub(super) fn cursors_may_move(&self) -> bool {
        !self.hold
    }
}

/// The records of a group, as references.
pub(super) fn group_refs(
    kind: ObjectKind,
    ids: &PerCrm<String>,
) -> impl Iterator<Item = RecordRef> + '_ {
    ids.iter()
        .map(move |(c, id)| RecordRef::new(c, kind, id.clone()))
}

/// The merges noted on `listed` entries (winners that could not be mapped) to follow in this
/// run, as the feed gives merges (the merged record, the winner's id): those of entries of
/// `crms` due at `now`, or whose winner this run's feeds brought (`upserts`), and not given
/// by the feeds again (`merges`).
pub(super) fn waiting_merges(
    listed: &[Retry],
    crms: &[Crm],
    upserts: &BTreeMap<(Crm, String), Record>,
    merges: &[(RecordRef, String)],
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<(RecordRef, String)> {
    listed
        .iter()
        .filter(|e| crms.contains(&e.record.crm))
        .filter(|e| e.due(now) || upserts.contains_key(&(e.record.crm, e.record.id.clone())))
        .flat_map(|e| {
            e.merged_losers()
                .map(|id| RecordRef::new(e.record.crm, e.record.object, id))
                .filter(|loser| !merges.iter().any(|(l, _)| l == loser))
                .map(|loser| (loser, e.record.id.clone()))
        })
        .collect()
}

/// The losers of the merges noted on `listed` entries (winners waiting to be mapped), each
/// with its winner: their links still name them until the merge is followed. A given-up
/// entry's notes are left out: it is retried no more, so nothing would end the wait.
pub(super) fn waiting_losers(listed: &[Retry]) -> BTreeMap<RecordRef, RecordRef> {
    listed
        .iter()
        .filter(|e| e.next_attempt_at.is_some())
        .flat_map(|e| {
            e.merged_losers().map(|id| {
                (
                    RecordRef::new(e.record.crm, e.record.object, id),
                    e.record.clone(),
                )
            })
        })
        .collect()
}

impl Engine {
    /// Reads again the due entries of `listed` (the retry list's entries of `kind`) not in
    /// this run's feeds, nor merge winners this run already read, nor `cascaded` (tombstones
    /// of this run taken for echoes of crmkit's own deletes: gone, and their entries leave
    /// the list as seen): each read record joins `upserts`; a record that cannot be read
    /// fails again.
    pub(super) async fn read_due(
        &self,
        listed: &[Retry],
        upserts: &mut BTreeMap<(Crm, String), Record>,
        deletes: &BTreeSet<(Crm, String)>,
        cascaded: &[RecordRef],
        failures: &mut Failures,
        report: &mut Report,
    ) -> Result<()> {
        let now = chrono::Utc::now();
        let due: Vec<RecordRef> = listed
            .iter()
            .filter(|r| r.due(now) && self.config.sync.crms.contains(&r.record.crm))
            .map(|r| r.record.clone())
            .filter(|r| {
                let key = (r.crm, r.id.clone());
                !upserts.contains_key(&key)
                    && !deletes.contains(&key)
                    && !cascaded.contains(r)
                    && !failures.merges.contains_key(r)
            })
            .collect();
        report.retried += due.len();
        let read = self
            .read_many(due.into_iter().map(|r| ((), r)).collect())
            .await;
        for ((), r, got) in read {
            match got {
                Ok(record) => {
                    upserts.insert((r.crm, r.id.clone()), record);
                }
                // No tombstone came for it: it may be merged away or hidden from us, not
                // deleted, so nothing is deleted; it stays listed (and is given up in time).
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    let why = format!("not found when read again (no deletion in its feed): {e}");
                    report.errors.push(format!("{r}: {why}"));
                    failures.record(r, why);
                }
                Err(e) => {
                    let why = format!("reading it again: {e}");
                    report.errors.push(format!("{r}: {why}"));
                    failures.error(&e, [r], &why);
                }
            }
        }
        Ok(())
    }

    /// Ends a kind's run in one fenced transaction: failed records onto the retry list,
    /// listed records that synced (`seen`, not failed) off it, and the cursors moved unless
    /// a connection failure holds them. Given-up records of the kind go into the report.
    /// Returns whether the cursors were held.
    pub(super) async fn settle_kind(
        &self,
        kind: ObjectKind,
        listed: &[Retry],
        seen: &BTreeSet<RecordRef>,
        failures: Failures,
        cursors: BTreeMap<Crm, ChangeCursor>,
        report: &mut Report,
    ) -> Result<bool> {
        let policy = self.config.sync.retry.policy();
        let mut tx = self.tx().await?;
        let patient = crmkit_store::RetryPolicy {
            max_attempts: u32::MAX,
            ..policy
        };
        for (record, reason) in &failures.records {
            let policy = if failures.waiting.contains(record) {
                &patient
            } else {
                &policy
            };
            tx.record_retry(&self.pair, record, reason, policy)
                .await
                .map_err(store_err)?;
        }
        for (winner, losers) in &failures.merges {
            for loser in losers {
                tx.remember_merge(&self.pair, winner, loser)
                    .await
                    .map_err(store_err)?;
            }
        }
        for entry in listed {
            let r = &entry.record;
            if seen.contains(r) && !failures.records.contains_key(r) && !failures.kept.contains(r) {
                tx.clear_retry(&self.pair, r).await.map_err(store_err)?;
            }
        }
        let held = !failures.cursors_may_move();
        if !held {
            for (crm, cursor) in cursors {
                let key = CursorKey::new(self.pair.clone(), crm, kind);
                tx.set_cursor(&key, &cursor.0).await.map_err(store_err)?;
            }
        }
        let now_listed = tx
            .retries(&self.pair, Some(kind))
            .await
            .map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        for entry in now_listed {
            if entry.given_up() {
                report.given_up.push(GivenUp {
                    record: entry.record,
                    attempts: entry.attempts,
                    reason: entry.reason,
                });
            } else {
                report.retrying += 1;
            }
        }
        Ok(held)
    }
}

/// A record the retry list gave up on: it failed every attempt and is not retried until
/// it changes again in its CRM, or a person re-arms its entry (`crmkit sync retry reset`).
#[derive(Debug, Clone, Serialize)]
pub struct GivenUp {
    /// The record.
    pub record: RecordRef,
    /// How many attempts failed.
    pub attempts: i64,
    /// Why the last one failed.
    pub reason: String,
}
