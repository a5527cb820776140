//! Canonical hashes of mapped fields, and field-level conflict resolution.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use crmkit_core::Crm;
use serde::Serialize;
use serde_json::Value;

use crate::config::{EntityConfig, Rule};
use crate::per_crm::PerCrm;
use crate::values::{Field, FieldMap, Writes};

/// The canonical hash of a record's mapped fields ([`crate::values::hash`]). Two records
/// with the same synced values hash the same whatever CRM or key order they came from; a
/// record whose hash equals the one stored for it has nothing new to sync.
pub fn hash(fields: &FieldMap) -> crate::values::FieldsHash {
    crate::values::hash(fields)
}

/// One CRM's side of a linked record, as resolution sees it.
#[derive(Debug, Clone)]
pub struct Side<'a> {
    /// The CRM.
    pub crm: Crm,
    /// Its current mapped values (references in a form comparable across CRMs).
    pub fields: &'a FieldMap,
    /// The values this side held when last synced, when known: a field differing from them
    /// was changed on this side.
    pub base: Option<&'a FieldMap>,
    /// Whether the record changed since last synced (its hash differs from the stored one).
    pub changed: bool,
    /// Whether the side's base was stored without a hash: a merge winner moved into the link
    /// in its loser's place, its own values as its base, not synced yet. A field it never
    /// held (in neither its value nor its base) is filled from the other sides where they
    /// hold it alike and nobody changed it.
    pub relinked: bool,
    /// The CRM's own modification time of the record.
    pub modified: Option<DateTime<Utc>>,
}

/// How one field was settled where the CRMs held different values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The unified field.
    pub field: Field,
    /// The value every CRM gets (`None`: cleared).
    pub value: Option<Value>,
    /// The CRM whose value won.
    pub winner: Crm,
    /// The rule that settled a real conflict (several CRMs changed it differently); `None`
    /// when only one CRM changed the field.
    pub rule: Option<String>,
}

/// A field left for a person to decide (the `manual` rule).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldConflict {
    /// The unified field.
    pub field: Field,
    /// Each CRM's value (`None`: empty).
    pub values: BTreeMap<Crm, Option<Value>>,
}

/// The outcome of resolving one linked record.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Resolution {
    /// The settled fields.
    pub decisions: Vec<Decision>,
    /// Fields queued as conflicts; nothing is written for them.
    pub conflicts: Vec<FieldConflict>,
    /// Per CRM: field → new value (`None` clears) to patch onto its record.
    pub writes: PerCrm<Writes>,
    /// Fields held differently that no rule settles here, nothing written for them: under
    /// `last_write_wins` or `manual` where every side has a base and no side changed the
    /// field since; under `primary` where the primary holds nothing (and did not clear it)
    /// and the others, the candidates to fill it, disagree. The planner queues them as
    /// conflicts unless the difference is one CRM's keeping of the other's value, and then
    /// fills the listed gaps ([`crate::plan::plan`]).
    pub diverged: Vec<Divergence>,
}

/// Values held apart that no rule settles (see [`Resolution::diverged`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    /// The field and each CRM's value.
    pub conflict: FieldConflict,
    /// The CRMs whose empty field is filled should the values turn out to be one value in
    /// each CRM's form: a relinked merge winner that never held the field, the `primary`
    /// CRM holding nothing.
    pub gaps: Vec<Crm>,
}

/// Settles every field on which `sides` disagree, per `cfg`'s rules. Fields in `skip` (a
/// reference that cannot be compared yet) are left alone.
///
/// For each field: the sides that changed it are those whose value differs from their base.
/// Where no side has a base (a first sync), every side that changed at all and holds a value
/// counts as a changer (an empty value is never taken for a deliberate clear). Where some
/// sides have a base, a side without one is *new to the link* (a record of a third CRM newly
/// matched in, the source of a create whose base an older crmkit never stored): it never
/// counts as a changer by itself; where no synced side changed the field, every side holding
/// a value is a candidate, as on a first sync (agreeing values fill the others' gaps).
/// One changer, or changers that agree, win whatever the rule: a value changed in one CRM
/// only propagates from there, a clear as a clear. Changers that disagree are a conflict,
/// settled by the rule: `primary` — the primary CRM's value if it has one, else (it holds
/// nothing and did not clear it) the changers' value, or where none changed it the value
/// the others hold, fills it where they agree, and where they disagree nothing is written
/// ([`Resolution::diverged`]: the planner queues a conflict, or fills the primary's gap
/// where the values are one in each CRM's form; a changer's clear against another's value
/// is queued as a conflict here); `last_write_wins` — the changer with
/// the latest modification time (ties: config order); `manual` — queued. Where values
/// differ but no side is known to have changed the field, `primary` still decides. A side
/// new to the link (no base, among sides with one) is never an edit: where no synced side
/// changed a field, the field is settled as on a first sync, every side holding a value a
/// candidate for the rule; where a synced side changed it, a newcomer holding another value
/// wins as the `primary` CRM, is queued with the edit under `manual`, and otherwise yields to
/// the edit (under `last_write_wins` too: its modification time is its record's, not the
/// field's); a newcomer holding nothing or the value the edit replaced (a changer's base
/// value) takes the edit. The other rules write nothing where values differ that none
/// changed, except that values held alike fill the gap of a side whose base never held the
/// field (a merge winner relinked in its loser's place); where every side has a base (a
/// *stale divergence*: the record a merge left, relinked with its own values as its base),
/// the field is listed in [`Resolution::diverged`] for the caller to queue as a conflict
/// unless a CRM's own shaping of the value explains the difference.
pub fn resolve<'a>(cfg: &EntityConfig, sides: &[Side<'a>], skip: &BTreeSet<Field>) -> Resolution {
    let mut out = Resolution::default();
    // Every side holding the same values leaves nothing to settle, whatever the bases say
    // (a field held alike by all is skipped below): the usual case of a newly matched pair
    // and of a side that changed back, settled without the field-by-field walk.
    if sides.windows(2).all(|w| w[0].fields == w[1].fields) {
        return out;
    }
    let any_based = sides.iter().any(|s| s.base.is_some());
    let newcomer = any_based && sides.iter().any(|s| s.base.is_none());
    // Every field any side or base holds, in order: a sorted list, cheaper than a set.
    let mut fields: Vec<Field> = Vec::new();
    for s in sides {
        fields.extend(s.fields.keys());
        if let Some(b) = s.base {
            fields.extend(b.keys());
        }
    }
    fields.sort_unstable();
    fields.dedup();
    for field in fields {
        if skip.contains(&field) {
            continue;
        }
        // Each side's value, looked up once per field for the first three sides (a side per
        // CRM, so all of them); a side is found by where it sits in `sides`, so two sides of
        // one CRM would still each be read as themselves.
        let mut cached: [Option<&'a Value>; 3] = [None; 3];
        for (slot, s) in cached.iter_mut().zip(sides) {
            *slot = s.fields.get(field.as_str());
        }
        let value = |s: &Side<'a>| match sides.iter().position(|x| std::ptr::eq(x, s)) {
            Some(i) if i < cached.len() => cached[i],
            _ => s.fields.get(field.as_str()),
        };
        let first = value(&sides[0]);
        if sides.iter().all(|s| value(s) == first) {
            continue;
        }
        let mut changers: Vec<&Side<'a>> = sides
            .iter()
            .filter(|s| match s.base {
                Some(b) => b.get(field.as_str()) != value(s),
                // Among sides with a base, one without is new to the link: what it holds
                // was never synced, so it is no edit (taken for one, it would overwrite the
                // synced sides whatever the rule).
                None => !any_based && s.changed && value(s).is_some(),
            })
            .collect();
        let rule = cfg.rule(&field);
        // A relinked merge winner that never held the field, not even in its base.
        let never_held = |s: &Side<'a>| {
            s.relinked
                && value(s).is_none()
                && s.base.is_some_and(|b| !b.contains_key(field.as_str()))
        };
        // The field held apart with no rule settling it, `gap` the sides it may fill.
        let diverged = |gap: &dyn Fn(&Side<'a>) -> bool| Divergence {
            conflict: FieldConflict {
                field,
                values: sides.iter().map(|s| (s.crm, value(s).cloned())).collect(),
            },
            gaps: sides.iter().filter(|s| gap(s)).map(|s| s.crm).collect(),
        };
        if newcomer && changers.is_empty() {
            // Nobody edited it since the last sync, and a side new to the link holds a value
            // never synced: the field is settled as a first sync would settle it, every side
            // holding a value a candidate. Agreeing values fill the others' gaps; a real
            // difference goes to the rule (the primary's value, the latest modification,
            // or a queued conflict), so a run that links the three records at once and one
            // that links them over two runs (a sync killed in between) agree.
            changers = sides.iter().filter(|s| value(s).is_some()).collect();
        } else if newcomer {
            // A synced side edited it, and a side new to the link may hold another value,
            // never synced: it is not overwritten unheard where the rule gives it a say: as
            // the primary it wins, and under `manual` a person decides. Under
            // `last_write_wins` the edit wins: the newcomer's modification time is its
            // record's, which says nothing of when this field got its value (a phone changed
            // yesterday would make a title set years ago look newer than today's edit). A
            // newcomer without a value takes the edit (a clear included), and so does one
            // holding the value the edit replaced: it holds what the synced sides held, as
            // one left alone. The value replaced is what a changer's base held: a value only
            // a side that left the field alone holds (held apart from the edited side, or a
            // relinked merge winner's own) was never what the edit replaced, and a primary
            // newcomer holding it keeps its say.
            let replaced: Vec<Option<&Value>> = changers
                .iter()
                .map(|c| c.base.and_then(|b| b.get(field.as_str())))
                .collect();
            let contenders = sides.iter().filter(|s| {
                s.base.is_none()
                    && value(s).is_some()
                    && !replaced.contains(&value(s))
                    && match rule {
                        Rule::Primary(p) => s.crm == p,
                        Rule::Manual => true,
                        Rule::LastWriteWins => false,
                    }
            });
            changers.extend(contenders);
        }
        let agree = changers
            .first()
            .is_some_and(|head| changers.iter().all(|s| value(s) == value(head)));
        let decided: Option<(Option<Value>, Crm, Option<Rule>)> = if agree {
            // One side changed the field (or all changers agree): it propagates from there,
            // whatever the rule; a rule only settles changes that disagree.
            let head = changers[0];
            Some((value(head).cloned(), head.crm, None))
        } else {
            match rule {
                Rule::Primary(p) => {
                    // Several sides changed it differently, or (no base) none is known to have
                    // changed it: the primary's value wins; when it has none, the primary keeps
                    // it cleared if it cleared it, and otherwise the others fill it.
                    let primary = sides.iter().find(|s| s.crm == p);
                    match primary.and_then(|s| value(s).map(|v| (v, s.crm))) {
                        Some((v, c)) => Some((Some(v.clone()), c, Some(rule))),
                        None => {
                            let cleared = primary.is_some_and(|s| {
                                s.base.is_some_and(|b| b.contains_key(field.as_str()))
                            });
                            // The fillers: the changers, or where none changed it, every side
                            // holding a value. Where they disagree nothing says which fills
                            // it, and taking one would overwrite the others' values: listed
                            // as diverged, a conflict unless the CRMs' forms explain it.
                            let fillers: Vec<&Side<'a>> = if changers.is_empty() {
                                sides.iter().filter(|s| value(s).is_some()).collect()
                            } else {
                                changers.clone()
                            };
                            let one = fillers
                                .first()
                                .is_some_and(|h| fillers.iter().all(|s| value(s) == value(h)));
                            if cleared {
                                Some((None, p, Some(rule)))
                            } else if one {
                                fillers
                                    .first()
                                    .map(|s| (value(s).cloned(), s.crm, Some(rule)))
                            } else if fillers.iter().any(|s| value(s).is_none()) {
                                // A clear against a value: no CRM's form of a value explains
                                // that, and filling the primary would overwrite the clear
                                // on its next change. A person decides.
                                out.conflicts.push(diverged(&|_| false).conflict);
                                None
                            } else {
                                let primary_gap = |s: &Side<'a>| s.crm == p && value(s).is_none();
                                out.diverged
                                    .push(diverged(&|s| primary_gap(s) || never_held(s)));
                                None
                            }
                        }
                    }
                }
                Rule::LastWriteWins | Rule::Manual => {
                    let Some(head) = changers.first() else {
                        // Nobody changed it. Two values held apart are listed, so the
                        // divergence is seen. Held alike, they fill the gap of a side that
                        // never held the field, not even in its base (a merge's winner
                        // relinked in its loser's place): no edit is undone by that, and
                        // the value is nobody's to keep apart. A side whose base holds the
                        // field and whose record lacks it cleared it: a change, settled
                        // above.
                        let mut held = sides.iter().filter_map(|s| value(s).map(|v| (s, v)));
                        let Some((holder, first_held)) = held.next() else {
                            continue;
                        };
                        if held.any(|(_, v)| v != first_held) {
                            if any_based {
                                out.diverged.push(diverged(&never_held));
                            }
                            continue;
                        }
                        if !sides.iter().any(never_held) {
                            continue;
                        }
                        for s in sides.iter().filter(|s| never_held(s)) {
                            out.writes
                                .get_or_insert_with(s.crm, Default::default)
                                .insert(field, Some(first_held.clone()));
                        }
                        out.decisions.push(Decision {
                            field,
                            value: Some(first_held.clone()),
                            winner: holder.crm,
                            rule: None,
                        });
                        continue;
                    };
                    if rule == Rule::Manual {
                        out.conflicts.push(FieldConflict {
                            field,
                            values: sides.iter().map(|s| (s.crm, value(s).cloned())).collect(),
                        });
                        None
                    } else {
                        let mut best = *head;
                        for s in &changers[1..] {
                            if s.modified > best.modified {
                                best = s;
                            }
                        }
                        Some((value(best).cloned(), best.crm, Some(rule)))
                    }
                }
            }
        };
        let Some((v, winner, by)) = decided else {
            continue;
        };
        let real_conflict = {
            let mut distinct: Vec<Option<&Value>> = Vec::new();
            for s in &changers {
                if !distinct.contains(&value(s)) {
                    distinct.push(value(s));
                }
            }
            distinct.len() > 1
        };
        for s in sides {
            if value(s) != v.as_ref() {
                out.writes
                    .get_or_insert_with(s.crm, Default::default)
                    .insert(field, v.clone());
            }
        }
        out.decisions.push(Decision {
            field,
            value: v,
            winner,
            rule: by.filter(|_| real_conflict).map(|r| r.to_string()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::{Config, FieldType, PolicyKind};

    fn map(pairs: &[(&str, Value)]) -> FieldMap {
        pairs
            .iter()
            .map(|(k, v)| (Field::intern(k), v.clone()))
            .collect()
    }

    /// One CRM's side as resolution sees it.
    fn side<'a>(
        crm: Crm,
        fields: &'a FieldMap,
        base: Option<&'a FieldMap>,
        changed: bool,
        modified: Option<DateTime<Utc>>,
    ) -> Side<'a> {
        Side {
            crm,
            fields,
            base,
            changed,
            modified,
            relinked: false,
        }
    }

    /// Close and HubSpot both changed since `base`, HubSpot the later.
    fn both_changed<'a>(
        close: &'a FieldMap,
        hs: &'a FieldMap,
        base: &'a FieldMap,
    ) -> [Side<'a>; 2] {
        [
            side(
                Crm::Close,
                close,
                Some(base),
                true,
                at("2024-01-01T00:00:00Z"),
            ),
            side(
                Crm::HubSpot,
                hs,
                Some(base),
                true,
                at("2024-01-02T00:00:00Z"),
            ),
        ]
    }

    fn at(s: &str) -> Option<DateTime<Utc>> {
        crmkit_core::time::parse_timestamp(s)
    }

    fn cfg() -> EntityConfig {
        Config::new(vec![Crm::Close, Crm::HubSpot]).company
    }

    #[test]
    fn a_primary_holding_nothing_is_filled_only_where_the_others_agree() {
        // Three CRMs, HubSpot primary with no description and none in its base; nobody
        // changed it. Close and Salesforce agree: HubSpot is filled. They disagree: no CRM
        // says which value is right, so nothing is overwritten and the field is listed
        // with HubSpot's gap (filled by the planner only where the forms explain it).
        let mut primary = cfg();
        primary.conflict.primary = Some(Crm::HubSpot);
        let empty = map(&[("name", json!("Acme"))]);
        let a = map(&[("name", json!("Acme")), ("description", json!("Anvils"))]);
        let b = map(&[("name", json!("Acme")), ("description", json!("Rockets"))]);
        fn three<'a>(close: &'a FieldMap, hs: &'a FieldMap, sf: &'a FieldMap) -> [Side<'a>; 3] {
            [
                side(Crm::Close, close, Some(close), false, None),
                side(Crm::HubSpot, hs, Some(hs), false, None),
                side(Crm::Salesforce, sf, Some(sf), false, None),
            ]
        }
        let r = resolve(&primary, &three(&a, &empty, &a), &BTreeSet::new());
        assert_eq!(r.writes.len(), 1, "{r:?}");
        assert_eq!(
            r.writes[&Crm::HubSpot].get(&Field::intern("description")),
            Some(&Some(json!("Anvils"))),
            "{r:?}"
        );
        let r = resolve(&primary, &three(&a, &empty, &b), &BTreeSet::new());
        assert!(r.writes.is_empty(), "nothing overwritten: {r:?}");
        assert_eq!(r.diverged.len(), 1, "{r:?}");
        assert_eq!(r.diverged[0].conflict.field, "description");
        assert_eq!(r.diverged[0].gaps, [Crm::HubSpot]);
    }

    #[test]
    fn hashes_ignore_key_order_and_number_forms() {
        let a = map(&[("a", json!(1)), ("b", json!("x"))]);
        let mut b = FieldMap::new();
        b.insert(
            "b".into(),
            crate::values::canonical(&json!(" x "), FieldType::Text).unwrap(),
        );
        b.insert(
            "a".into(),
            crate::values::canonical(&json!(1.0), FieldType::Number).unwrap(),
        );
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(hash(&a), hash(&map(&[("a", json!(2)), ("b", json!("x"))])));
        assert_eq!(hash(&a).as_str().len(), 32);
    }

    #[test]
    fn one_changed_side_wins_including_a_deliberate_clear() {
        let base = map(&[("name", json!("Acme")), ("url", json!("a.com"))]);
        let close = map(&[("name", json!("Acme 2"))]);
        let hs = base.clone();
        let sides = [
            side(Crm::Close, &close, Some(&base), true, None),
            side(Crm::HubSpot, &hs, Some(&base), false, None),
        ];
        let r = resolve(&cfg(), &sides, &BTreeSet::new());
        assert!(r.conflicts.is_empty());
        let hw = &r.writes[&Crm::HubSpot];
        assert_eq!(hw["name"], Some(json!("Acme 2")));
        assert_eq!(hw["url"], None, "cleared on Close, cleared on HubSpot");
        assert!(!r.writes.contains_key(&Crm::Close));
        assert!(
            r.decisions
                .iter()
                .all(|d| d.winner == Crm::Close && d.rule.is_none())
        );
    }

    #[test]
    fn without_a_base_empty_values_only_get_filled() {
        let close = map(&[("name", json!("Acme"))]);
        let hs = map(&[("name", json!("Acme")), ("url", json!("a.com"))]);
        let sides = [
            side(Crm::Close, &close, None, true, at("2024-01-02T00:00:00Z")),
            side(Crm::HubSpot, &hs, None, true, at("2024-01-01T00:00:00Z")),
        ];
        let r = resolve(&cfg(), &sides, &BTreeSet::new());
        assert_eq!(r.writes[&Crm::Close]["url"], Some(json!("a.com")));
        assert!(!r.writes.contains_key(&Crm::HubSpot));
    }

    #[test]
    fn values_held_apart_that_nobody_changed_are_listed_not_written() {
        // HubSpot's record was relinked after a merge, its own values stored as its base:
        // they differ from Close's, and neither side changed anything since.
        let close = map(&[("name", json!("Acme")), ("phone", json!("1"))]);
        let hs = map(&[("name", json!("Acme Inc")), ("url", json!("a.com"))]);
        let synced =
            |crm, fields| side(crm, fields, Some(fields), false, at("2024-01-01T00:00:00Z"));
        let relinked = Side {
            relinked: true,
            ..synced(Crm::HubSpot, &hs)
        };
        let sides = [synced(Crm::Close, &close), relinked];
        let mut manual = cfg();
        manual.conflict.policy = Some(PolicyKind::Manual);
        for c in [cfg(), manual] {
            let r = resolve(&c, &sides, &BTreeSet::new());
            // Nothing overwritten: only the relinked side's gap (a field it never held) is
            // filled; Close's lack of a url was synced as it is and stays.
            assert_eq!(r.writes.len(), 1, "{r:?}");
            assert_eq!(r.writes[&Crm::HubSpot].len(), 1, "{r:?}");
            assert_eq!(r.writes[&Crm::HubSpot]["phone"], Some(json!("1")));
            assert!(r.conflicts.is_empty());
            assert_eq!(r.diverged.len(), 1, "only the name, not the gaps: {r:?}");
            assert_eq!(r.diverged[0].conflict.field, "name");
            assert_eq!(
                r.diverged[0].conflict.values[&Crm::HubSpot],
                Some(json!("Acme Inc"))
            );
        }
        // `primary` still decides.
        let mut primary = cfg();
        primary.conflict.primary = Some(Crm::Close);
        let r = resolve(&primary, &sides, &BTreeSet::new());
        assert!(r.diverged.is_empty());
        assert_eq!(r.writes[&Crm::HubSpot]["name"], Some(json!("Acme")));
        // An edit made in Close since still propagates.
        let edited = map(&[("name", json!("Acme Corp")), ("phone", json!("1"))]);
        let sides = [
            Side {
                fields: &edited,
                base: Some(&close),
                changed: true,
                ..sides[0].clone()
            },
            sides[1].clone(),
        ];
        let r = resolve(&cfg(), &sides, &BTreeSet::new());
        assert_eq!(r.writes[&Crm::HubSpot]["name"], Some(json!("Acme Corp")));
        assert!(r.diverged.is_empty());
    }

    #[test]
    fn a_side_without_a_base_is_no_edit_and_is_settled_as_on_a_first_sync() {
        // A create recovered after an interruption by an older crmkit: the created side
        // (HubSpot) got a base, the source (Close) none, and HubSpot's title was edited
        // (later than Close's record) before the recovery read it back. Close's value is no
        // edit: the rule settles the two values as a first sync would.
        let close = map(&[("name", json!("Bob")), ("title", json!("CTO"))]);
        let hs = map(&[("name", json!("Bob")), ("title", json!("VP"))]);
        let sides = [
            side(Crm::Close, &close, None, true, at("2024-01-01T00:00:00Z")),
            side(
                Crm::HubSpot,
                &hs,
                Some(&hs),
                false,
                at("2024-01-02T00:00:00Z"),
            ),
        ];
        // last_write_wins: HubSpot's later edit wins; HubSpot is not written.
        let r = resolve(&cfg(), &sides, &BTreeSet::new());
        assert_eq!(r.writes[&Crm::Close]["title"], Some(json!("VP")), "{r:?}");
        assert!(!r.writes.contains_key(&Crm::HubSpot), "{r:?}");
        // manual: queued, nothing written.
        let mut manual = cfg();
        manual.conflict.policy = Some(PolicyKind::Manual);
        let r = resolve(&manual, &sides, &BTreeSet::new());
        assert!(r.writes.is_empty(), "{r:?}");
        assert_eq!(r.conflicts.len(), 1, "{r:?}");
        assert_eq!(r.conflicts[0].field, "title");
        // primary: the primary decides, whichever side is new.
        let mut primary = cfg();
        primary.conflict.primary = Some(Crm::HubSpot);
        let r = resolve(&primary, &sides, &BTreeSet::new());
        assert_eq!(r.writes[&Crm::Close]["title"], Some(json!("VP")), "{r:?}");
        assert!(!r.writes.contains_key(&Crm::HubSpot));
        // Without the new side counting as an edit, a newer synced side is never
        // overwritten by it, whatever the rule.
        for c in [cfg(), primary] {
            let r = resolve(&c, &sides, &BTreeSet::new());
            assert!(!r.writes.contains_key(&Crm::HubSpot), "{r:?}");
        }
    }

    #[test]
    fn a_gap_is_filled_only_where_nobody_changed_the_field() {
        // Close's record is a merge winner relinked with its own values as its base: it never
        // held the description HubSpot and Salesforce were synced with.
        let winner = map(&[("name", json!("Acme"))]);
        let synced = map(&[("name", json!("Acme")), ("description", json!("Anvils"))]);
        let t = at("2024-01-01T00:00:00Z");
        let sides = [
            Side {
                relinked: true,
                ..side(Crm::Close, &winner, Some(&winner), false, t)
            },
            side(Crm::HubSpot, &synced, Some(&synced), false, t),
            side(Crm::Salesforce, &synced, Some(&synced), false, t),
        ];
        let mut manual = cfg();
        manual.conflict.policy = Some(PolicyKind::Manual);
        for c in [cfg(), manual.clone()] {
            let r = resolve(&c, &sides, &BTreeSet::new());
            assert_eq!(
                r.writes[&Crm::Close]["description"],
                Some(json!("Anvils")),
                "{r:?}"
            );
            assert_eq!(r.writes.len(), 1, "{r:?}");
        }
        // A user cleared it in HubSpot since the last sync: the clear is a change and wins,
        // under every rule; the gap is not filled from Salesforce's old value.
        let cleared = map(&[("name", json!("Acme"))]);
        let sides = [
            sides[0].clone(),
            side(Crm::HubSpot, &cleared, Some(&synced), true, t),
            sides[2].clone(),
        ];
        for c in [cfg(), manual] {
            let r = resolve(&c, &sides, &BTreeSet::new());
            assert_eq!(r.writes[&Crm::Salesforce]["description"], None, "{r:?}");
            assert!(!r.writes.contains_key(&Crm::Close), "{r:?}");
            assert!(!r.writes.contains_key(&Crm::HubSpot), "{r:?}");
        }
    }

    #[test]
    fn an_edit_on_a_synced_side_and_a_new_sides_value_are_settled_by_the_rule() {
        // HubSpot's title was synced as "CTO" and edited to "VP" (on the 3rd); Salesforce's
        // record, newly matched in, holds "Founder" (modified on the 2nd), never synced; Close
        // holds the synced "CTO".
        let base = map(&[("name", json!("Bob")), ("title", json!("CTO"))]);
        let hs = map(&[("name", json!("Bob")), ("title", json!("VP"))]);
        let sf = map(&[("name", json!("Bob")), ("title", json!("Founder"))]);
        let sides = [
            side(
                Crm::Close,
                &base,
                Some(&base),
                false,
                at("2024-01-01T00:00:00Z"),
            ),
            side(
                Crm::HubSpot,
                &hs,
                Some(&base),
                true,
                at("2024-01-03T00:00:00Z"),
            ),
            side(Crm::Salesforce, &sf, None, true, at("2024-01-02T00:00:00Z")),
        ];
        let title = |r: &Resolution, c: Crm| r.writes.get(&c).and_then(|w| w.get("title")).cloned();
        // last_write_wins: the edit, even against a new side modified later (its record's
        // time, not the field's).
        let later = [
            sides[0].clone(),
            sides[1].clone(),
            Side {
                modified: at("2024-01-04T00:00:00Z"),
                ..sides[2].clone()
            },
        ];
        for s in [&sides, &later] {
            let r = resolve(&cfg(), s, &BTreeSet::new());
            assert_eq!(title(&r, Crm::Salesforce), Some(Some(json!("VP"))), "{r:?}");
            assert_eq!(title(&r, Crm::Close), Some(Some(json!("VP"))), "{r:?}");
            assert!(r.conflicts.is_empty(), "{r:?}");
        }
        // primary: the new side's value wins as the primary and yields as any other CRM.
        let mut primary = cfg();
        primary.conflict.primary = Some(Crm::Salesforce);
        let r = resolve(&primary, &sides, &BTreeSet::new());
        assert_eq!(
            title(&r, Crm::HubSpot),
            Some(Some(json!("Founder"))),
            "{r:?}"
        );
        assert_eq!(title(&r, Crm::Salesforce), None, "{r:?}");
        primary.conflict.primary = Some(Crm::Close);
        let r = resolve(&primary, &sides, &BTreeSet::new());
        assert_eq!(
            title(&r, Crm::Salesforce),
            Some(Some(json!("VP"))),
            "the edit wins over a new side that is not the primary: {r:?}"
        );
        // manual: queued, nothing written.
        let mut manual = cfg();
        manual.conflict.policy = Some(PolicyKind::Manual);
        let r = resolve(&manual, &sides, &BTreeSet::new());
        assert!(title(&r, Crm::Close).is_none() && title(&r, Crm::Salesforce).is_none());
        assert_eq!(r.conflicts.len(), 1, "{r:?}");
        // A new side holding the value the edit replaced takes the edit, whatever the rule.
        let old = [
            sides[0].clone(),
            sides[1].clone(),
            side(
                Crm::Salesforce,
                &base,
                None,
                true,
                at("2024-01-04T00:00:00Z"),
            ),
        ];
        primary.conflict.primary = Some(Crm::Salesforce);
        for c in [cfg(), primary, manual] {
            let r = resolve(&c, &old, &BTreeSet::new());
            assert_eq!(title(&r, Crm::Salesforce), Some(Some(json!("VP"))), "{r:?}");
            assert!(r.conflicts.is_empty(), "{r:?}");
        }
        // A value only a side that left the field alone holds is not what the edit
        // replaced: held apart from the edited side's base, or a relinked merge winner's
        // own, it was never synced to the edited side, so a primary newcomer holding it
        // keeps the primary's say.
        let apart = map(&[("name", json!("Bob")), ("title", json!("Founder"))]);
        for relinked in [false, true] {
            let held = [
                Side {
                    relinked,
                    ..side(
                        Crm::Close,
                        &apart,
                        Some(&apart),
                        false,
                        at("2024-01-01T00:00:00Z"),
                    )
                },
                sides[1].clone(),
                sides[2].clone(),
            ];
            let mut sf_primary = cfg();
            sf_primary.conflict.primary = Some(Crm::Salesforce);
            let r = resolve(&sf_primary, &held, &BTreeSet::new());
            assert_eq!(title(&r, Crm::Salesforce), None, "{r:?}");
            assert_eq!(
                title(&r, Crm::HubSpot),
                Some(Some(json!("Founder"))),
                "{r:?}"
            );
            assert_eq!(title(&r, Crm::Close), None, "{r:?}");
        }
        // A new side holding no value takes the edit, a clear included.
        let untitled = map(&[("name", json!("Bob"))]);
        let cleared = [
            sides[0].clone(),
            side(
                Crm::HubSpot,
                &untitled,
                Some(&base),
                true,
                at("2024-01-03T00:00:00Z"),
            ),
            side(
                Crm::Salesforce,
                &untitled,
                None,
                true,
                at("2024-01-04T00:00:00Z"),
            ),
        ];
        let r = resolve(&cfg(), &cleared, &BTreeSet::new());
        assert_eq!(title(&r, Crm::Close), Some(None), "{r:?}");
        assert_eq!(title(&r, Crm::Salesforce), None, "{r:?}");
    }

    #[test]
    fn a_side_new_to_a_based_link_never_overwrites_the_primary() {
        // Salesforce's record newly matched into a synced Close–HubSpot link.
        let synced = map(&[("name", json!("Acme Inc"))]);
        let sf = map(&[("name", json!("Acme Corporation"))]);
        let based = |crm, f| side(crm, f, Some(f), false, at("2024-01-02T00:00:00Z"));
        let sides = [
            based(Crm::Close, &synced),
            based(Crm::HubSpot, &synced),
            side(Crm::Salesforce, &sf, None, true, at("2024-01-01T00:00:00Z")),
        ];
        let mut c = Config::new(vec![Crm::Close, Crm::HubSpot, Crm::Salesforce]).company;
        c.conflict.primary = Some(Crm::Close);
        let r = resolve(&c, &sides, &BTreeSet::new());
        assert!(!r.writes.contains_key(&Crm::Close), "{r:?}");
        assert!(!r.writes.contains_key(&Crm::HubSpot), "{r:?}");
        assert_eq!(r.writes[&Crm::Salesforce]["name"], Some(json!("Acme Inc")));
    }

    #[test]
    fn a_side_new_to_a_based_link_fills_gaps_and_its_differences_go_to_the_rule() {
        let synced = map(&[("name", json!("Acme Inc"))]);
        let sf = map(&[("name", json!("Acme Corporation")), ("url", json!("a.com"))]);
        let based = |crm, f| side(crm, f, Some(f), false, at("2024-01-02T00:00:00Z"));
        let sides = [
            based(Crm::Close, &synced),
            based(Crm::HubSpot, &synced),
            side(Crm::Salesforce, &sf, None, true, at("2024-01-03T00:00:00Z")),
        ];
        let three = Config::new(vec![Crm::Close, Crm::HubSpot, Crm::Salesforce]).company;
        let mut manual = three.clone();
        manual.conflict.policy = Some(PolicyKind::Manual);
        // last_write_wins, as on a first sync of the three: Salesforce's record is the
        // latest write.
        let r = resolve(&three, &sides, &BTreeSet::new());
        for crm in [Crm::Close, Crm::HubSpot] {
            let w = &r.writes[&crm];
            assert_eq!(w["url"], Some(json!("a.com")), "a gap filled: {r:?}");
            assert_eq!(w["name"], Some(json!("Acme Corporation")), "{r:?}");
        }
        assert!(!r.writes.contains_key(&Crm::Salesforce), "{r:?}");
        // manual: the difference is queued; the gap is filled all the same.
        let r = resolve(&manual, &sides, &BTreeSet::new());
        for crm in [Crm::Close, Crm::HubSpot] {
            let w = &r.writes[&crm];
            assert_eq!(w["url"], Some(json!("a.com")), "a gap filled: {r:?}");
            assert!(!w.contains_key(&Field::new("name")), "{r:?}");
        }
        assert!(!r.writes.contains_key(&Crm::Salesforce), "{r:?}");
        assert_eq!(r.conflicts.len(), 1, "{r:?}");
        assert_eq!(r.conflicts[0].field, "name");
        assert!(r.diverged.is_empty(), "{r:?}");
    }

    #[test]
    fn each_policy_settles_a_real_conflict_its_way() {
        let base = map(&[("name", json!("Acme"))]);
        let close = map(&[
            ("name", json!("Acme C")),
            ("description", json!("from close")),
        ]);
        let hs = map(&[("name", json!("Acme H"))]);
        let sides = both_changed(&close, &hs, &base);
        let none = BTreeSet::new();

        let lww = resolve(&cfg(), &sides, &none);
        assert_eq!(lww.writes[&Crm::Close]["name"], Some(json!("Acme H")));
        assert_eq!(
            lww.writes[&Crm::HubSpot]["description"],
            Some(json!("from close"))
        );
        let d = lww.decisions.iter().find(|d| d.field == "name").unwrap();
        assert_eq!(
            (d.winner, d.rule.as_deref()),
            (Crm::HubSpot, Some("last_write_wins"))
        );

        let mut primary = cfg();
        primary.conflict.primary = Some(Crm::Close);
        let p = resolve(&primary, &sides, &none);
        assert_eq!(p.writes[&Crm::HubSpot]["name"], Some(json!("Acme C")));
        assert!(!p.writes.contains_key(&Crm::Close));

        let mut manual = cfg();
        manual.conflict.policy = Some(PolicyKind::Manual);
        let m = resolve(&manual, &sides, &none);
        assert_eq!(m.conflicts.len(), 1);
        assert_eq!(m.conflicts[0].field, "name");
        assert_eq!(m.conflicts[0].values[&Crm::HubSpot], Some(json!("Acme H")));
        assert!(
            !m.writes.contains_key(&Crm::Close),
            "nothing written for a manual field"
        );
        assert_eq!(
            m.writes[&Crm::HubSpot]["description"],
            Some(json!("from close")),
            "one changer is no conflict"
        );

        let mut per_field = manual.clone();
        per_field
            .conflict
            .fields
            .insert("name".into(), "hubspot".into());
        let f = resolve(&per_field, &sides, &none);
        assert!(f.conflicts.is_empty());
        assert_eq!(f.writes[&Crm::Close]["name"], Some(json!("Acme H")));
    }

    #[test]
    fn a_one_sided_change_propagates_whatever_the_policy() {
        // HubSpot alone renamed the record and cleared its description: under every rule
        // that reaches Close, even with Close as the primary.
        let base = map(&[("name", json!("Acme")), ("description", json!("old"))]);
        let close = base.clone();
        let hs = map(&[("name", json!("Acme Renamed"))]);
        let sides = [
            side(
                Crm::Close,
                &close,
                Some(&base),
                false,
                at("2024-01-03T00:00:00Z"),
            ),
            side(
                Crm::HubSpot,
                &hs,
                Some(&base),
                true,
                at("2024-01-01T00:00:00Z"),
            ),
        ];
        let mut primary = cfg();
        primary.conflict.primary = Some(Crm::Close);
        let mut manual = cfg();
        manual.conflict.policy = Some(PolicyKind::Manual);
        let mut per_field = cfg();
        per_field
            .conflict
            .fields
            .insert("name".into(), "close".into());
        for c in [cfg(), primary, manual, per_field] {
            let r = resolve(&c, &sides, &BTreeSet::new());
            assert!(r.conflicts.is_empty());
            assert!(!r.writes.contains_key(&Crm::HubSpot));
            let cw = &r.writes[&Crm::Close];
            assert_eq!(cw["name"], Some(json!("Acme Renamed")));
            assert_eq!(cw["description"], None, "the clear propagates");
            assert!(r.decisions.iter().all(|d| d.rule.is_none()));
        }
    }

    #[test]
    fn primary_wins_a_real_conflict_and_only_gets_its_gaps_filled() {
        let mut c = cfg();
        c.conflict.primary = Some(Crm::Close);
        // Both changed the name; only HubSpot has a url.
        let base = map(&[("name", json!("Acme"))]);
        let close = map(&[("name", json!("Acme C"))]);
        let hs = map(&[("name", json!("Acme H")), ("url", json!("acme.com"))]);
        let sides = both_changed(&close, &hs, &base);
        let r = resolve(&c, &sides, &BTreeSet::new());
        assert_eq!(r.writes[&Crm::HubSpot]["name"], Some(json!("Acme C")));
        assert_eq!(r.writes[&Crm::Close]["url"], Some(json!("acme.com")));
        let d = r.decisions.iter().find(|d| d.field == "name").unwrap();
        assert_eq!(d.rule.as_deref(), Some("primary = close"));
        // Without a base (first sync of a match) the primary decides where values differ.
        let close = map(&[("name", json!("Acme"))]);
        let hs = map(&[("name", json!("Acme Inc")), ("url", json!("acme.com"))]);
        let sides = [
            side(Crm::Close, &close, None, true, None),
            side(Crm::HubSpot, &hs, None, true, None),
        ];
        let r = resolve(&c, &sides, &BTreeSet::new());
        assert_eq!(r.writes[&Crm::HubSpot]["name"], Some(json!("Acme")));
        assert_eq!(r.writes[&Crm::Close]["url"], Some(json!("acme.com")));
    }

    #[test]
    fn skipped_fields_are_left_alone() {
        let close = map(&[("company", json!("lead_1"))]);
        let hs = map(&[("company", json!("9"))]);
        let sides = [
            side(Crm::Close, &close, None, true, None),
            side(Crm::HubSpot, &hs, None, true, None),
        ];
        let r = resolve(&cfg(), &sides, &[Field::new("company")].into());
        assert!(r.writes.is_empty() && r.decisions.is_empty());
    }

    #[test]
    fn each_side_is_read_as_itself_even_when_two_share_a_crm() {
        let (a, b) = (map(&[("name", json!("A"))]), map(&[("name", json!("B"))]));
        let close = |fields| side(Crm::Close, fields, None, true, None);
        let r = resolve(&cfg(), &[close(&a), close(&b)], &BTreeSet::new());
        assert_eq!(r.decisions.len(), 1, "the names differ: {r:?}");
    }
}
