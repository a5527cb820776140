//! Echoes: feed records that are our own writes coming back (or changes to fields that are
//! not synced). A linked group made only of echoes changed nowhere, so it is dropped before
//! the engine reads its other sides: a re-sync after a large write costs the listings, not
//! a read per record.
//!
//! A CRM's cascade of a deletion crmkit made is an echo too. Under `propagate` the engine
//! deletes a record's counterparts; where the CRM deletes that record's children with it
//! (Close deletes a lead's contacts, opportunities and activities), their tombstones
//! come back through the feed. Nobody deleted those children: taken as deletions, they
//! would be propagated in turn (a company deleted in HubSpot, which keeps its contacts,
//! would delete those contacts through Close). So every propagated delete of what a
//! tombstone can name as its parent ([`noted`]: a Close lead) is noted as an account fact of
//! its target ([`deleted_fact`]), written with its intent before the delete is sent (so a
//! crash between the delete and its settlement keeps it), kept while the delete is open,
//! done, or failed with an unknown effect, and forgotten when the CRM refused it; a tombstone whose connector names a `parent` noted so
//! ([`Engine::cascade_echoes`]) is not a deletion: its side of its link is noted gone
//! (neither created again there nor deleted elsewhere) and the run reports it
//! ([`Report::cascades`]), in this run or any later one. The Close feed names a child's
//! lead when the lead's own deletion, in the same request, took the child, or when the lead
//! is deleted and its deletion's event is not visible (yet); so a child a user deleted on
//! its own is taken for a cascade only in that last case, where crmkit's note decides.

use std::collections::HashSet;

use super::*;

/// The account fact noting that crmkit deleted record `id` of `kind` as a propagated
/// delete; its value is the deletion it propagated.
pub(super) fn deleted_fact(kind: ObjectKind, id: &str) -> String {
    format!("deleted {kind} {id}")
}

/// Whether a propagated delete of `target` (of `kind`) is noted ([`deleted_fact`]): only
/// what a tombstone can name as its `parent`, a Close lead (the one connector that names
/// parents, see `crmkit_close`); a note of anything else would never be looked up.
pub(super) fn noted(kind: ObjectKind, target: &RecordRef) -> bool {
    kind == ObjectKind::Company && target.crm == Crm::Close
}

/// A tombstone that was its CRM's cascade of a deletion crmkit made itself: not propagated
/// (see the module docs of `echo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cascade {
    /// The record its CRM deleted together with its parent.
    pub record: RecordRef,
    /// The parent, which crmkit deleted.
    pub parent: RecordRef,
    /// The deletion crmkit propagated to the parent (`hubspot:company:123`).
    pub because: String,
}

impl std::fmt::Display for Cascade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} was deleted by its CRM with {}, which crmkit deleted because {} was deleted: \
             not a user's deletion, so not propagated (its linked records stay)",
            self.record, self.parent, self.because
        )
    }
}

impl Engine {
    /// Takes out of `deletes` the tombstones whose parent (`parents`, as their feeds named
    /// it) crmkit deleted as a propagated delete ([`deleted_fact`]), and notes each one's
    /// side of its link gone (in a run: `run` is set) and reports it once, when newly noted.
    /// Returns the records taken out.
    pub(super) async fn cascade_echoes(
        &self,
        kind: ObjectKind,
        deletes: &mut BTreeSet<(Crm, String)>,
        parents: BTreeMap<(Crm, String), RecordRef>,
        run: Option<&RunId>,
        report: &mut Report,
    ) -> Result<Vec<RecordRef>> {
        let parents: Vec<((Crm, String), RecordRef)> = parents
            .into_iter()
            .filter(|(key, _)| deletes.contains(key))
            .collect();
        if parents.is_empty() {
            return Ok(Vec::new());
        }
        // One lookup per CRM for every parent of the run.
        let mut deleted_by_us: BTreeMap<&RecordRef, String> = BTreeMap::new();
        let wanted: BTreeSet<&RecordRef> = parents.iter().map(|(_, p)| p).collect();
        for crm in self.config.sync.crms.iter().copied() {
            let of_crm: Vec<&RecordRef> = wanted.iter().copied().filter(|p| p.crm == crm).collect();
            if of_crm.is_empty() {
                continue;
            }
            let names: Vec<String> = of_crm
                .iter()
                .map(|p| deleted_fact(p.object, &p.id))
                .collect();
            let found = self
                .store
                .account_facts(crm, &names)
                .await
                .map_err(store_err)?;
            for (p, because) in of_crm.into_iter().zip(found) {
                if let Some(because) = because {
                    deleted_by_us.insert(p, because);
                }
            }
        }
        let mut echoed: Vec<(RecordRef, RecordRef, String)> = Vec::new();
        for ((crm, id), parent) in &parents {
            let Some(because) = deleted_by_us.get(parent) else {
                continue;
            };
            deletes.remove(&(*crm, id.clone()));
            echoed.push((
                RecordRef::new(*crm, kind, id.clone()),
                parent.clone(),
                because.clone(),
            ));
        }
        let refs: Vec<RecordRef> = echoed.iter().map(|(r, _, _)| r.clone()).collect();
        let found = self
            .store
            .links_by_records(&refs)
            .await
            .map_err(store_err)?;
        for ((record, parent, because), link) in echoed.into_iter().zip(found) {
            // Noted already (a tombstone a feed's overlap window brings again): said once.
            let Some(link) = link.filter(|l| l.hash(record.crm) != Some(DELETED)) else {
                continue;
            };
            if run.is_some() {
                self.mark_deleted(&link, record.crm).await?;
            }
            report.cascades.push(Cascade {
                record,
                parent,
                because,
            });
        }
        Ok(refs)
    }
}

/// Removes from `groups` every group that is only echoes (see [`is_echo`]) and returns how
/// many feed records those groups held, for [`Report::echoes`]. A group with a record on
/// the retry list (`listed`) always stays: its last sync failed, so a side that holds its
/// stored hash may still owe the others a change, and dropped here the record would leave
/// the list as if it had synced.
pub(super) fn drop_echoes(
    kind: ObjectKind,
    crms: &[Crm],
    groups: &mut BTreeMap<String, (LinkState, Sides)>,
    unlinked: &[Seen],
    listed: &BTreeSet<RecordRef>,
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
        let on_list = || {
            state
                .ids
                .iter()
                .any(|(c, id)| listed.contains(&RecordRef::new(c, kind, id.clone())))
        };
        if is_echo(crms, state, sides) && !matched() && !on_list() {
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
fn is_echo(crms: &[Crm], state: &LinkState, sides: &Sides) -> bool {
    let synced =
        |c: &Crm| state.ids.contains_key(c) && state.hashes.get(c).is_some_and(|h| h != DELETED);
    !sides.is_empty()
        && crms.iter().all(synced)
        && sides
            .values()
            .all(|s| s.fed && state.hashes.get(&s.crm).map(String::as_str) == Some(s.hash.as_str()))
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
            .tiers()
            .flatten()
            .map(str::to_string)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use crmkit_core::Company;

    use super::*;

    const ALL: [Crm; 3] = [Crm::Close, Crm::HubSpot, Crm::Salesforce];

    fn seen(crm: Crm, id: &str, name: &str, fed: bool) -> Seen {
        let cfg = Config::new(ALL.to_vec()).company;
        let record = Record::Company(Company {
            id: Some(id.into()),
            name: name.into(),
            domain: Some(format!("{}.com", name.to_lowercase())),
            ..Company::default()
        });
        Seen::new(crm, record, &cfg, fed).expect("maps")
    }

    /// A link of "Acme" in all three CRMs, as the last sync stored it.
    fn link() -> LinkState {
        let mut state = LinkState {
            key: "l1".into(),
            ..LinkState::default()
        };
        for crm in ALL {
            let s = seen(crm, &format!("{crm}-1"), "Acme", false);
            state.ids.insert(crm, s.id().to_string());
            state.hashes.insert(crm, s.hash.to_string());
        }
        state
    }

    fn groups(state: LinkState, sides: Vec<Seen>) -> BTreeMap<String, (LinkState, Sides)> {
        let sides = sides.into_iter().map(|s| (s.crm, s)).collect();
        BTreeMap::from([(state.key.clone(), (state, sides))])
    }

    #[test]
    fn a_group_of_echoes_in_three_crms_is_counted_and_dropped() {
        let mut g = groups(
            link(),
            vec![
                seen(Crm::HubSpot, "hubspot-1", "Acme", true),
                seen(Crm::Salesforce, "salesforce-1", "Acme", true),
            ],
        );
        assert_eq!(
            drop_echoes(ObjectKind::Company, &ALL, &mut g, &[], &none()),
            2
        );
        assert!(g.is_empty());
    }

    #[test]
    fn one_real_change_keeps_the_group_whatever_the_other_sides_echo() {
        let mut g = groups(
            link(),
            vec![
                seen(Crm::HubSpot, "hubspot-1", "Acme", true),
                seen(Crm::Salesforce, "salesforce-1", "Acme Renamed", true),
            ],
        );
        assert_eq!(
            drop_echoes(ObjectKind::Company, &ALL, &mut g, &[], &none()),
            0
        );
        assert_eq!(g.len(), 1, "completed and planned");
    }

    #[test]
    fn a_link_missing_a_side_or_holding_a_deletion_is_not_an_echo() {
        let mut missing = link();
        missing.ids.remove(&Crm::Salesforce);
        missing.hashes.remove(&Crm::Salesforce);
        let mut deleted = link();
        deleted.hashes.insert(Crm::Salesforce, DELETED.into());
        let mut unhashed = link();
        unhashed.hashes.remove(&Crm::Close);
        for state in [missing, deleted, unhashed] {
            let mut g = groups(state, vec![seen(Crm::HubSpot, "hubspot-1", "Acme", true)]);
            assert_eq!(
                drop_echoes(ObjectKind::Company, &ALL, &mut g, &[], &none()),
                0
            );
            assert_eq!(g.len(), 1);
        }
        // Two CRMs synced: the link's Salesforce side does not matter.
        let mut missing = link();
        missing.ids.remove(&Crm::Salesforce);
        let mut g = groups(missing, vec![seen(Crm::HubSpot, "hubspot-1", "Acme", true)]);
        let pair = [Crm::Close, Crm::HubSpot];
        assert_eq!(
            drop_echoes(ObjectKind::Company, &pair, &mut g, &[], &none()),
            1
        );
    }

    #[test]
    fn an_echo_an_unlinked_record_may_match_stays_for_the_planner() {
        let unlinked = [seen(Crm::Close, "close-2", "ACME", true)];
        let mut g = groups(link(), vec![seen(Crm::HubSpot, "hubspot-1", "Acme", true)]);
        assert_eq!(
            drop_echoes(ObjectKind::Company, &ALL, &mut g, &unlinked, &none()),
            0
        );
        assert_eq!(g.len(), 1);
        let other = [seen(Crm::Close, "close-3", "Globex", true)];
        assert_eq!(
            drop_echoes(ObjectKind::Company, &ALL, &mut g, &other, &none()),
            1
        );
    }

    fn none() -> BTreeSet<RecordRef> {
        BTreeSet::new()
    }

    #[test]
    fn an_echo_of_a_record_on_the_retry_list_stays_to_be_planned() {
        // The Close side failed to reach HubSpot last run; HubSpot's side reads as stored.
        let listed = BTreeSet::from([RecordRef::new(Crm::Close, ObjectKind::Company, "close-1")]);
        let mut g = groups(link(), vec![seen(Crm::HubSpot, "hubspot-1", "Acme", true)]);
        assert_eq!(
            drop_echoes(ObjectKind::Company, &ALL, &mut g, &[], &listed),
            0
        );
        assert_eq!(g.len(), 1);
    }
}
