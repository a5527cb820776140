//! Echoes: feed records that are our own writes coming back (or changes to fields that are
//! not synced). A linked group made only of echoes changed nowhere, so it is dropped before
//! the engine reads its other sides: a re-sync after a large write costs the listings, not
//! a read per record.

use std::collections::HashSet;

use super::*;

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
