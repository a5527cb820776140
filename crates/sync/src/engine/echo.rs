//! Echoes: feed records that are our own writes coming back (or changes to fields that are
//! not synced). A linked group made only of echoes changed nowhere, so it is dropped before
//! the engine reads its other sides: a re-sync after a large write costs the listings, not
//! a read per record.

use std::collections::HashSet;

use super::*;

/// Removes from `groups` every group that is only echoes (see [`is_echo`]) and returns how
/// many feed records those groups held, for [`Report::echoes`].
pub(super) fn drop_echoes(
    kind: ObjectKind,
    crms: &[Crm],
    groups: &mut BTreeMap<String, (LinkState, BTreeMap<Crm, Seen>)>,
    unlinked: &[Seen],
) -> usize {
    // A linked record's sides are candidates the planner matches unlinked records against
    // (a match with a complete group is queued as ambiguous): a group an unlinked record
    // of this run may match stays, whatever its hashes.
    let wanted: HashSet<String> = if matching::matchable(kind) {
        unlinked
            .iter()
            .flat_map(|s| loose_keys(&s.record))
            .collect()
    } else {
        HashSet::new()
    };
    let mut echoes = 0;
    groups.retain(|_, (state, sides)| {
        let matched = || {
            sides
                .values()
                .flat_map(|s| loose_keys(&s.record))
                .any(|k| wanted.contains(&k))
        };
        if is_echo(crms, state, sides) && !matched() {
            echoes += sides.len();
            false
        } else {
            true
        }
    });
    echoes
}

/// Whether a linked group read from the feeds changed nowhere: every side read holds the
/// hash stored for it at the last sync, and the link holds a live record with a stored
/// hash in every CRM synced, so there is nothing to create and nothing to tell the planner
/// about the sides not read. A side that did change (in any of two or three CRMs) keeps
/// the whole group, which is then completed and planned as before.
///
/// A group whose last plan failed or was deferred is never one: its link keeps the hashes
/// from before, which the side read now does not match. Groups with a tombstone this run
/// were taken out as deletions before this is asked.
fn is_echo(crms: &[Crm], state: &LinkState, sides: &BTreeMap<Crm, Seen>) -> bool {
    let synced =
        |c: &Crm| state.ids.contains_key(c) && state.hashes.get(c).is_some_and(|h| h != DELETED);
    !sides.is_empty()
        && crms.iter().all(synced)
        && sides
            .values()
            .all(|s| s.fed && state.hashes.get(&s.crm) == Some(&s.hash))
}

/// Every matching key a record could be found by, whatever its tier. Deals are keyed by
/// name alone: their full key needs their company's link, which is more than this check
/// needs (a key too many only keeps a group it could have dropped).
fn loose_keys(record: &Record) -> Vec<String> {
    match record {
        Record::Deal(d) => matching::normalize_company_name(&d.name)
            .map(|n| format!("deal:{n}"))
            .into_iter()
            .collect(),
        other => matching::keys(other, None)
            .tiers
            .into_iter()
            .flatten()
            .collect(),
    }
}
