//! Records gone without a deletion: merged into another record, or answering "not found"
//! with no tombstone in their CRM's deletion feed. Neither is ever propagated as a delete.
//!
//! - **Merges** ([`Change::Deleted`] with `merged_into`, from HubSpot's merges): the merged
//!   record's data lives on in the winner. When the winner is not linked yet, the loser's
//!   link takes the winner's id (relinked), so the counterparts now follow the winner; when
//!   the winner is linked to other records too, the two links would have to be merged: that
//!   goes to the review queue, and the loser's side is noted as gone so it is not created
//!   again.
//! - **Not found without a tombstone** while completing a linked group: it may be a merge,
//!   or a record these credentials may no longer see, not a deletion. Under
//!   `delete = "propagate"` it is flagged for review and noted as gone, and the other
//!   records are left alone; under `ignore` and `flag` it is handled like a deletion, which
//!   deletes nothing either.

use super::*;

/// Why a gone record goes to review.
const NOT_FOUND_REASON: &str = "not found, with no deletion in its CRM's feed (merged, or no \
    longer visible to these credentials?): the linked records were not deleted; check it, \
    then delete them or restore it";

impl Engine {
    /// Follows the merges a feed reported: relinks, or queues for review.
    pub(super) async fn follow_merges(
        &self,
        kind: ObjectKind,
        merges: Vec<(RecordRef, String)>,
        report: &mut Report,
    ) -> Result<()> {
        for (loser, winner_id) in merges {
            let Some(link) = self.store.link_by_record(&loser).await.map_err(store_err)? else {
                continue;
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
                    fenced!(self, set_crm_id(&link, loser.crm, &winner_id))?;
                    report.relinked += 1;
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
                    fenced!(
                        self,
                        enqueue_review(
                            kind,
                            &what,
                            "merged into a record that is linked to other records: merge \
                             their counterparts by hand (nothing was deleted)"
                        )
                    )?;
                    self.mark_deleted(&link, loser.crm).await?;
                    report.flagged.push(loser);
                }
            }
        }
        Ok(())
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
}

/// A link's records as text, for the review queue.
fn describe_link(kind: ObjectKind, link: &Link) -> Vec<String> {
    link_state(link)
        .ids
        .iter()
        .map(|(c, id)| RecordRef::new(c, kind, id.clone()).to_string())
        .collect()
}
