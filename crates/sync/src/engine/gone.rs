//! Records gone without a deletion: merged into another record, or answering "not found"
//! with no tombstone in their CRM's deletion feed. Neither is ever propagated as a delete.
//!
//! - **Merges** ([`Change::Deleted`] with `merged_into`, from HubSpot's contact, company and
//!   deal merges and Close's lead merges): the merged
//!   record's data lives on in the winner. When the winner is not linked yet, the loser's
//!   link takes the winner's id (relinked), so the counterparts now follow the winner; when
//!   the winner is linked to other records too, the two links would have to be merged: that
//!   goes to the review queue, and the loser's side is noted as gone so it is not created
//!   again. The relinked side's base is the winner's own values ([`Engine::relink`]); a
//!   winner that cannot be read or mapped is not relinked: held for the next run on a
//!   connection failure; put on the retry list with the merge noted when the configuration
//!   lacks a mapping for it (an unmapped stage), so the kind's cursors move on and the merge
//!   is followed (relinked, or queued for review) by the run that retries the winner once it
//!   is mappable, never created again meanwhile (changes to records linked to the loser
//!   wait with it on the retry list, since their link still names the loser, which cannot
//!   be read, and a deletion of one goes to review rather than to the loser's id); else
//!   (gone again) queued for review, once however often the feed reports the merge again.
//!   A chain of merges read in one run (A merged into B, B into C, whatever order the feed
//!   gives them in) is followed to its end: the link takes C, the record that
//!   survives, never B, which is gone too. A loop of merges (A into B and B into A: never
//!   made by a CRM, but a feed is input) names no survivor: each linked record on it, or
//!   merged into it, goes to the review queue and its link is left as it was (relinking A
//!   onto B and B onto A would swap the two links' records).
//! - **Removed by a merge, successor unknown** ([`Change::Gone`]: a Close contact,
//!   opportunity or activity whose own `deleted` event is part of a lead merge, or a lead
//!   deleted in a merge it is not the source of): its data may live on under another id, so
//!   under every delete policy it is flagged for review and noted as gone, and nothing is
//!   deleted or relinked.
//! - **Not found without a tombstone** while completing a linked group: it may be a merge,
//!   or a record these credentials may no longer see, not a deletion. Under
//!   `delete = "propagate"` it is flagged for review and noted as gone, and the other
//!   records are left alone; under `ignore` and `flag` it is handled like a deletion, which
//!   deletes nothing either.
//!
//! The winner's base is read at run time, not at the merge: an edit made to the winner
//! between the merge and the run becomes part of its base, so it counts as a value the
//! winner held, not as its edit. Where it differs from the others', the conflict rule
//! decides as for any value nobody changed: under `primary` with another CRM primary it is
//! overwritten by that CRM's value; else it is kept and queued as a conflict.

use super::*;
use crate::config::EntityConfig;

/// Why a gone record goes to review.
const NOT_FOUND_REASON: &str = "not found, with no deletion in its CRM's feed (merged, or no \
    longer visible to these credentials?): the linked records were not deleted; check it, \
    then delete them or restore it";

impl Engine {
    /// Follows the merges a feed reported: relinks, or queues for review. A relinked
    /// winner's record (from `upserts` when the feed brought it, else read now) joins
    /// `upserts`, so the run plans its link against the very values stored as its base.
    pub(super) async fn follow_merges(
        &self,
        kind: ObjectKind,
        cfg: &EntityConfig,
        merges: Vec<(RecordRef, String)>,
        upserts: &mut BTreeMap<(Crm, String), Record>,
        failures: &mut retry::Failures,
        report: &mut Report,
    ) -> Result<()> {
        let survivors = survivors(merges);
        self.note_merges(&survivors).await?;
        for (loser, survivor) in survivors {
            let Some(link) = self.store.link_by_record(&loser).await.map_err(store_err)? else {
                continue;
            };
            let winner_id = match survivor {
                Survivor::Record(id) => id,
                Survivor::Loop(ids) => {
                    let what = json!({
                        "merged": loser.to_string(),
                        "loop": ids
                            .iter()
                            .map(|id| RecordRef::new(loser.crm, kind, id.clone()).to_string())
                            .collect::<Vec<_>>(),
                        "linked": describe_link(kind, &link),
                    });
                    fenced!(
                        self,
                        enqueue_review(
                            kind,
                            &what,
                            "its merges form a loop, so no record survives them: find the \
                             record that remains and relink it by hand (nothing was relinked \
                             or deleted)"
                        )
                    )?;
                    report.flagged.push(loser);
                    continue;
                }
            };
            let winner = RecordRef::new(loser.crm, kind, winner_id.clone());
            match self
                .store
                .link_by_record(&winner)
                .await
                .map_err(store_err)?
            {
                // Already followed (the feed reports a merge again whenever the winner
                // changes).
                Some(w) if w.id == link.id => {}
                None => {
                    // The feed's record when it brought one, so the plan compares the
                    // winner with exactly the values stored as its base; else read now.
                    let got = match upserts.get(&(winner.crm, winner_id.clone())) {
                        Some(r) => Ok(r.clone()),
                        None => self.conn(winner.crm).get(kind, &winner_id).await,
                    };
                    // Not relinked without the winner's values as its base: without one,
                    // every value it holds would count as its edit and overwrite the others.
                    // A winner the configuration cannot map yet (an unmapped stage) waits on
                    // the retry list with the merge noted, so the kind's other records move
                    // on; once mappable it is relinked rather than created anew. A failure
                    // of the connection holds the merge: it is read again next run.
                    let seen = match got.map(|r| Seen::new(winner.crm, r, cfg, true)) {
                        Ok(Err(e)) if e.kind() == ErrorKind::Config => {
                            let why = format!("{loser} was merged into it: {e}");
                            report.errors.push(format!("{winner}: {why}"));
                            // Planned as a record of its own, it would fail to map again.
                            upserts.remove(&(winner.crm, winner_id));
                            failures.wait_merge(winner, &loser, why);
                            continue;
                        }
                        other => other.and_then(|seen| seen),
                    };
                    match seen {
                        Err(e) if retry::of_the_connection(&e) => {
                            let why =
                                format!("reading {winner}, which {loser} was merged into: {e}");
                            failures.error(&e, [loser], &why);
                            report.errors.push(why);
                        }
                        Ok(seen) => {
                            self.relink(&link, &loser, &seen).await?;
                            upserts
                                .entry((winner.crm, winner_id))
                                .or_insert(*seen.record);
                            report.relinked += 1;
                        }
                        // Already queued: the feed reports the merge again (Close re-reads
                        // its recent deletions, HubSpot reports it whenever the winner
                        // changes).
                        Err(_) if link.hash(loser.crm) == Some(DELETED) => {}
                        // It cannot be read (gone again): a person links it; nothing is
                        // deleted or overwritten meanwhile.
                        Err(e) => {
                            let what = json!({
                                "merged": loser.to_string(),
                                "into": winner.to_string(),
                                "linked": describe_link(kind, &link),
                            });
                            let why = format!(
                                "merged into a record that could not be read ({e}): link it \
                                 to the counterparts by hand (nothing was deleted)"
                            );
                            self.queue_merge(kind, &link, &loser, &what, &why).await?;
                            report.errors.push(format!("{loser}: {why}"));
                            report.flagged.push(loser);
                        }
                    }
                }
                Some(w) => {
                    if link.hash(loser.crm) == Some(DELETED) {
                        continue;
                    }
                    let what = json!({
                        "merged": loser.to_string(),
                        "into": winner.to_string(),
                        "linked": describe_link(kind, &link),
                        "winner_linked": describe_link(kind, &w),
                    });
                    self.queue_merge(
                        kind,
                        &link,
                        &loser,
                        &what,
                        "merged into a record that is linked to other records: merge their \
                         counterparts by hand (nothing was deleted)",
                    )
                    .await?;
                    report.flagged.push(loser);
                }
            }
        }
        Ok(())
    }

    /// Notes each merge with a survivor as an account fact ([`merged_fact`], the loser's
    /// id → the survivor's), in one fenced transaction, before anything else is done with
    /// it: whether its loser was linked, is relinked now, waits or goes to review, a stored
    /// base naming the loser reads as naming the survivor ([`RefTable::merged`]), so a record
    /// the merge moved to the survivor (a contact to the winning company) is not taken for
    /// someone's move. A loop notes nothing: no record survives it.
    async fn note_merges(&self, survivors: &[(RecordRef, Survivor)]) -> Result<()> {
        let facts: Vec<(&RecordRef, &str)> = survivors
            .iter()
            .filter_map(|(loser, s)| match s {
                Survivor::Record(id) if *id != loser.id => Some((loser, id.as_str())),
                _ => None,
            })
            .collect();
        if facts.is_empty() {
            return Ok(());
        }
        let mut tx = self.tx().await?;
        for (loser, winner) in facts {
            tx.set_account_fact(loser.crm, &merged_fact(loser.object, &loser.id), winner)
                .await
                .map_err(store_err)?;
        }
        tx.commit().await.map_err(store_err)
    }

    /// Queues a merge that is not followed (or a record a merge removed, see
    /// [`Self::flag_removed`]) for review, with `loser`'s side noted as gone and its retry
    /// entry dropped, in one fenced transaction: a review without the side noted
    /// as gone would have the loser created again; a side noted gone without its review,
    /// the merge forgotten.
    async fn queue_merge(
        &self,
        kind: ObjectKind,
        link: &Link,
        loser: &RecordRef,
        what: &Value,
        why: &str,
    ) -> Result<()> {
        let mut tx = self.tx().await?;
        tx.enqueue_review(kind, what, why)
            .await
            .map_err(store_err)?;
        tx.update_link(
            link,
            &LinkUpdate::new().hash(loser.crm, Some(DELETED.to_string())),
        )
        .await
        .map_err(store_err)?;
        tx.clear_retry(&self.pair, loser).await.map_err(store_err)?;
        tx.commit().await.map_err(store_err)
    }

    /// Moves `link`'s side from `loser` to the merge winner `seen`, in one fenced
    /// transaction with the bases and the loser's retry entry.
    ///
    /// The new id clears the side's stored hash and base (the store does so whenever a
    /// side's id changes): they described the loser. The winner's own values become its
    /// base, so none of them counts as an edit of that side: where they differ from the
    /// others' and nobody changes them, `primary` decides, or a conflict is queued
    /// ([`crate::resolve::resolve`]). Gaps are filled both ways: a field only the winner
    /// holds, which no other side's base has, is left out of its base, so it counts as the
    /// winner's addition and fills the others' gaps; a field the winner lacks is in neither
    /// its value nor its base, so where the others hold it alike and nobody changed it, it
    /// fills the winner's gap (resolution fills a side that never held a field). The other
    /// sides' bases are left as they were: they hold what was last synced to them, so a
    /// user's clear or edit there since is still seen as a change and wins as one. No hash is
    /// stored, so the run plans the link (and shows any difference) now, then stores it as
    /// for any side. The loser's retry entry goes: it can never be read again, and the winner
    /// is synced in its place. The merge was noted as an account fact before
    /// ([`Self::note_merges`]).
    async fn relink(&self, link: &Link, loser: &RecordRef, seen: &Seen) -> Result<()> {
        let others: Vec<&serde_json::Map<String, Value>> = self
            .config
            .sync
            .crms
            .iter()
            .copied()
            .filter(|c| *c != loser.crm && link.hash(*c) != Some(DELETED))
            .filter_map(|c| link.fields(c).and_then(Value::as_object))
            .collect();
        let base: FieldMap = seen
            .fields
            .iter()
            .filter(|(f, _)| others.is_empty() || others.iter().any(|o| o.contains_key(f.as_str())))
            .map(|(f, v)| (*f, v.clone()))
            .collect();
        let update = LinkUpdate::new().fields(loser.crm, Some(fields_json(&base)));
        let mut tx = self.tx().await?;
        let moved = tx
            .set_crm_id(link, loser.crm, seen.id())
            .await
            .map_err(store_err)?;
        tx.update_link(&moved, &update).await.map_err(store_err)?;
        tx.clear_retry(&self.pair, loser).await.map_err(store_err)?;
        tx.commit().await.map_err(store_err)
    }

    /// Flags a linked record that answered "not found" without a tombstone under
    /// `delete = "propagate"`: queued for review and noted as gone; nothing is deleted.
    pub(super) async fn flag_not_found(
        &self,
        kind: ObjectKind,
        gone: RecordRef,
        link: &Link,
        report: &mut Report,
    ) -> Result<()> {
        if link.hash(gone.crm) == Some(DELETED) {
            return Ok(());
        }
        let what = json!({
            "not_found": gone.to_string(),
            "linked": describe_link(kind, link),
        });
        fenced!(self, enqueue_review(kind, &what, NOT_FOUND_REASON))?;
        self.mark_deleted(link, gone.crm).await?;
        report
            .errors
            .push(format!("{gone}: {NOT_FOUND_REASON}; queued for review"));
        report.flagged.push(gone);
        Ok(())
    }

    /// Flags the linked records a feed said a merge removed without naming their successor
    /// ([`Change::Gone`]), under every delete policy: queued for review with what their CRM
    /// said, and noted as gone; nothing is deleted or relinked. An unlinked one needs nothing.
    pub(super) async fn flag_removed(
        &self,
        kind: ObjectKind,
        removed: BTreeMap<(Crm, String), String>,
        report: &mut Report,
    ) -> Result<()> {
        let refs: Vec<RecordRef> = removed
            .keys()
            .map(|(crm, id)| RecordRef::new(*crm, kind, id.clone()))
            .collect();
        let found = self
            .store
            .links_by_records(&refs)
            .await
            .map_err(store_err)?;
        for ((gone, reason), link) in refs.into_iter().zip(removed.into_values()).zip(found) {
            let Some(link) = link.filter(|l| l.hash(gone.crm) != Some(DELETED)) else {
                continue;
            };
            let what = json!({
                "removed": gone.to_string(),
                "linked": describe_link(kind, &link),
            });
            let why = format!(
                "{reason}: the linked records were not deleted; find where its data went and \
                 link them to it, or delete them"
            );
            // As for a merge: a review without the side noted as gone would have it read (and
            // answer "not found") again; a side noted gone without its review, the link
            // forgotten.
            self.queue_merge(kind, &link, &gone, &what, &why).await?;
            report
                .errors
                .push(format!("{gone}: {why}; queued for review"));
            report.flagged.push(gone);
        }
        Ok(())
    }
}

/// What a merged-away record's chain of merges ends at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Survivor {
    /// The record that survives it (the chain's end).
    Record(String),
    /// The chain comes round: these records (sorted) merge into each other, and none of
    /// them is known to survive.
    Loop(Vec<String>),
}

/// Each merged-away record with what survives it: the end of its chain of merges (A into B
/// and B into C: A's survivor is C), whatever order the merges came in, or the loop its
/// chain runs into. A record merged into itself names no other record: its chain ends at it.
fn survivors(merges: Vec<(RecordRef, String)>) -> Vec<(RecordRef, Survivor)> {
    let into: BTreeMap<(Crm, &str), &str> = merges
        .iter()
        .map(|(loser, winner)| ((loser.crm, loser.id.as_str()), winner.as_str()))
        .collect();
    let end = |loser: &RecordRef| {
        let mut path = vec![loser.id.as_str()];
        let mut at = loser.id.as_str();
        while let Some(&next) = into.get(&(loser.crm, at)) {
            if next == at {
                break;
            }
            if let Some(start) = path.iter().position(|&p| p == next) {
                let mut ring: Vec<String> = path[start..].iter().map(|p| p.to_string()).collect();
                ring.sort();
                return Survivor::Loop(ring);
            }
            path.push(next);
            at = next;
        }
        Survivor::Record(at.to_string())
    };
    merges
        .iter()
        .map(|(loser, _)| (loser.clone(), end(loser)))
        .collect()
}

/// The name of the account fact noting that the record `id` of `kind` was merged into the
/// record the fact holds (see [`Engine::note_merges`]).
pub(super) fn merged_fact(kind: ObjectKind, id: &str) -> String {
    format!("merged {kind} {id}")
}

/// A link's records as text, for the review queue.
fn describe_link(kind: ObjectKind, link: &Link) -> Vec<String> {
    link_state(link)
        .ids
        .iter()
        .map(|(c, id)| RecordRef::new(c, kind, id.clone()).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn company(id: &str) -> RecordRef {
        RecordRef::new(Crm::Close, ObjectKind::Company, id)
    }

    #[test]
    fn a_chain_of_merges_ends_at_the_surviving_record_in_either_order() {
        let ab = (company("a"), "b".to_string());
        let bc = (company("b"), "c".to_string());
        for merges in [vec![ab.clone(), bc.clone()], vec![bc, ab]] {
            let got: BTreeMap<String, Survivor> = survivors(merges)
                .into_iter()
                .map(|(l, w)| (l.id, w))
                .collect();
            assert_eq!(got["a"], Survivor::Record("c".into()));
            assert_eq!(got["b"], Survivor::Record("c".into()));
        }
    }

    #[test]
    fn a_loop_of_merges_ends() {
        let ring = Survivor::Loop(vec!["a".into(), "b".into()]);
        let got = survivors(vec![
            (company("a"), "b".to_string()),
            (company("b"), "a".to_string()),
            (company("c"), "a".to_string()),
        ]);
        assert_eq!(
            got,
            [
                (company("a"), ring.clone()),
                (company("b"), ring.clone()),
                (company("c"), ring),
            ],
            "no survivor: neither is relinked onto the other"
        );
    }

    #[test]
    fn a_record_merged_into_itself_survives() {
        let got = survivors(vec![
            (company("a"), "a".to_string()),
            (company("c"), "a".to_string()),
        ]);
        assert_eq!(
            got,
            [
                (company("a"), Survivor::Record("a".into())),
                (company("c"), Survivor::Record("a".into())),
            ]
        );
    }

    #[test]
    fn merges_in_other_crms_do_not_chain() {
        let got = survivors(vec![
            (company("a"), "b".to_string()),
            (
                RecordRef::new(Crm::HubSpot, ObjectKind::Company, "b"),
                "c".to_string(),
            ),
        ]);
        assert_eq!(got[0].1, Survivor::Record("b".into()));
    }
}
