//! The planner: from what each CRM holds now and what was stored at the last sync, the
//! writes that bring the CRMs into agreement. Pure and in memory: nothing here does I/O.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use crmkit_core::{Crm, ObjectKind, Record, RecordRef, Result};
use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, DeletePolicy, EntityConfig};
use crate::matching::{self, Found, Index, Keys};
use crate::per_crm::PerCrm;
use crate::resolve::{self, Decision, FieldConflict, Side};
use crate::values::{self, Field, FieldMap, FieldsHash, Writes, reference_kind};

/// A record read from one CRM during this run, mapped to unified fields.
#[derive(Debug, Clone, Serialize)]
pub struct Seen {
    /// The CRM it was read from.
    pub crm: Crm,
    /// The record as the connector gave it (its `raw` makes updates patches). Boxed: a
    /// record is several hundred bytes and the planner moves its [`Seen`]s between lists
    /// several times, so they stay small.
    pub record: Box<Record>,
    /// Its synced fields, canonical, with references as this CRM's ids.
    pub fields: FieldMap,
    /// [`resolve::hash`] of `fields`.
    pub hash: FieldsHash,
    /// Whether it came from the change feed (rather than being read to complete a link).
    pub fed: bool,
}

impl Seen {
    /// Maps `record` of `crm` through `cfg`; fails for an unmapped deal stage.
    pub fn new(crm: Crm, record: Record, cfg: &EntityConfig, fed: bool) -> Result<Self> {
        let fields = values::extract(&record, crm, cfg)?;
        let hash = resolve::hash(&fields);
        Ok(Self {
            crm,
            record: Box::new(record),
            fields,
            hash,
            fed,
        })
    }

    /// The record's id in its CRM (empty for a record without one).
    pub fn id(&self) -> &str {
        self.record.id().unwrap_or_default()
    }

    /// A reference to the record.
    pub fn reference(&self) -> RecordRef {
        RecordRef::new(self.crm, self.record.kind(), self.id())
    }
}

/// The sides of one linked record: at most one [`Seen`] per CRM, held inline so grouping
/// records moves no record into a freshly allocated map node.
pub type Sides = PerCrm<Seen>;

/// What was stored about a link at the end of the last sync.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LinkState {
    /// The store's key for the link.
    pub key: String,
    /// The linked record's id in each CRM.
    pub ids: PerCrm<String>,
    /// The hash of each side's mapped fields as last read from or written to it.
    pub hashes: PerCrm<String>,
    /// Each side's mapped fields as last read from or written to it, when stored.
    pub bases: PerCrm<FieldMap>,
}

/// The side hash of a linked record known to be deleted (no real hash looks like it).
pub const DELETED: &str = "deleted";

/// The side hash of a record this sync created whose base is what its create sent, not yet
/// read back (the read-back failed, or its group failed elsewhere): the next run takes what
/// it reads then as the base, but for a field that reads back as someone's edit
/// ([`crate::engine::readback::created_base`]), so neither the CRM's shaping of a value
/// (Close's E.164 of a phone number) counts as an edit nor an edit goes unseen.
pub const SENT: &str = "sent";

/// Translates a record id of one CRM into the linked record's id in another.
pub trait Refs {
    /// The id in `to` of the record of `kind` that is `id` in `from`, if they are linked.
    fn translate(&self, kind: ObjectKind, from: Crm, id: &str, to: Crm) -> Option<String>;
    /// Where `id` was merged into a record whose link its own link could not follow (the
    /// merge went to review, so `id`'s link still names it, noted gone): the id in `to` of
    /// the record that survives it (in `from` itself, whether it is linked or not).
    fn survivor(&self, kind: ObjectKind, from: Crm, id: &str, to: Crm) -> Option<String>;
    /// Whether the record `id` of `kind` in `crm` is linked (a link names it, or the record
    /// it was merged into where its link followed the merge).
    fn is_linked(&self, kind: ObjectKind, crm: Crm, id: &str) -> bool;
    /// Whether the record `id` of `kind` in `crm` is noted gone (deleted, or merged away
    /// without its link following).
    fn is_gone(&self, kind: ObjectKind, crm: Crm, id: &str) -> bool;
}

/// [`Refs`] from an in-memory table: the links of the records a run's references name, and
/// the ids merged away into other records.
#[derive(Debug, Default, Clone)]
pub struct RefTable {
    groups: Vec<PerCrm<String>>,
    by_id: BTreeMap<(ObjectKind, Crm, String), usize>,
    merged: BTreeMap<(ObjectKind, Crm, String), String>,
    survivors: BTreeMap<(ObjectKind, Crm, String), String>,
    gone: BTreeSet<(ObjectKind, Crm, String)>,
}

impl RefTable {
    /// Records that `ids` are one record of `kind`.
    pub fn link(&mut self, kind: ObjectKind, ids: PerCrm<String>) {
        let n = self.groups.len();
        for (c, id) in &ids {
            self.by_id.insert((kind, c, id.clone()), n);
        }
        self.groups.push(ids);
    }

    /// Records that the record `old` of `kind` in `crm`, which no link holds any more, was
    /// merged into `now` there (the link followed the merge, or `old` was never linked):
    /// `translate` reads `old` as `now`, so a stored base from before the merge naming `old`
    /// compares equal to a current value naming `now`, and the merge's moving of a record
    /// to the winner is not taken for anyone's edit.
    pub fn merged(&mut self, kind: ObjectKind, crm: Crm, old: &str, now: &str) {
        self.merged
            .insert((kind, crm, old.to_string()), now.to_string());
    }

    /// Records that the record `old` of `kind` in `crm` was merged into `now` there while
    /// `old`'s link still names it, noted gone (the merge went to review): `translate` still
    /// reads `old` through its link, and `survivor` gives `now`'s id (see
    /// [`Refs::survivor`]).
    pub fn merged_apart(&mut self, kind: ObjectKind, crm: Crm, old: &str, now: &str) {
        self.survivors
            .insert((kind, crm, old.to_string()), now.to_string());
    }

    /// Records that the record `id` of `kind` in `crm` is noted gone in its link.
    pub fn gone(&mut self, kind: ObjectKind, crm: Crm, id: &str) {
        self.gone.insert((kind, crm, id.to_string()));
    }

    /// `id`, or the record it was merged into where its link followed the merge.
    fn current<'a>(&'a self, kind: ObjectKind, crm: Crm, id: &'a str) -> &'a str {
        // Most runs follow no merge: no key is built for an empty map.
        if self.merged.is_empty() {
            return id;
        }
        self.merged
            .get(&(kind, crm, id.to_string()))
            .map_or(id, String::as_str)
    }
}

impl Refs for RefTable {
    fn translate(&self, kind: ObjectKind, from: Crm, id: &str, to: Crm) -> Option<String> {
        let id = self.current(kind, from, id);
        if from == to {
            return Some(id.to_string());
        }
        let g = self.by_id.get(&(kind, from, id.to_string()))?;
        self.groups.get(*g)?.get(&to).cloned()
    }

    fn survivor(&self, kind: ObjectKind, from: Crm, id: &str, to: Crm) -> Option<String> {
        if self.survivors.is_empty() {
            return None;
        }
        let now = self.survivors.get(&(kind, from, id.to_string()))?;
        self.translate(kind, from, now, to)
    }

    fn is_linked(&self, kind: ObjectKind, crm: Crm, id: &str) -> bool {
        let id = self.current(kind, crm, id);
        self.by_id.contains_key(&(kind, crm, id.to_string()))
    }

    fn is_gone(&self, kind: ObjectKind, crm: Crm, id: &str) -> bool {
        if self.gone.is_empty() {
            return false;
        }
        let id = self.current(kind, crm, id);
        self.gone.contains(&(kind, crm, id.to_string()))
    }
}

/// A record to create in `target`, carrying an idempotency marker.
#[derive(Debug, Clone, Serialize)]
pub struct Create {
    /// The CRM to create it in.
    pub target: Crm,
    /// The record it copies.
    pub source: RecordRef,
    /// The idempotency marker (`<crm>:<kind>:<id>` of the source).
    pub marker: String,
    /// The fields set.
    pub fields: Writes,
    /// The record to send.
    pub record: Record,
}

/// One field an update changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// The unified field.
    pub field: Field,
    /// The value before (`None`: empty).
    pub from: Option<Value>,
    /// The value after (`None`: cleared).
    pub to: Option<Value>,
}

/// A patch to an existing record.
#[derive(Debug, Clone, Serialize)]
pub struct Update {
    /// The record changed.
    pub target: RecordRef,
    /// What changes, field by field.
    pub changes: Vec<FieldChange>,
    /// The record to send: the current one with the changes applied, so the connector
    /// sends only the changed fields. Boxed as the side's record is: it is moved out of the
    /// side, not copied.
    pub record: Box<Record>,
}

/// Everything planned for one linked (or newly matched) record.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The stored link, if it existed before this run.
    pub link: Option<String>,
    /// The record's id in each CRM it exists in.
    pub ids: PerCrm<String>,
    /// Each present side's hash and fields as read this run (stored as the new base for
    /// sides not written).
    pub seen: PerCrm<(FieldsHash, FieldMap)>,
    /// Patches.
    pub updates: Vec<Update>,
    /// Creates in CRMs that lack the record.
    pub creates: Vec<Create>,
    /// Field-level decisions where the CRMs differed.
    pub decisions: Vec<Decision>,
    /// Fields queued for a person.
    pub conflicts: Vec<FieldConflict>,
    /// Fields left alone this run: a reference a side holds whose record is not linked in
    /// the anchor CRM, so the values cannot be compared yet; one a side's base held to a
    /// record gone since while the side now references nothing; or one held apart, untouched
    /// since, because a value could not be written into another CRM. An open conflict on
    /// one stays open.
    pub skipped: Vec<Field>,
    /// A create or patch of this group could not be planned yet (its parent is not linked
    /// in the target, or its values do not fit): nothing of it is stored as synced and the
    /// kind's cursor stays, so the next run reads it again.
    pub deferred: bool,
}

/// An unlinked record that matched several candidates: for the review queue.
#[derive(Debug, Clone, Serialize)]
pub struct Ambiguous {
    /// The record.
    pub record: RecordRef,
    /// The candidates it matched.
    pub candidates: Vec<RecordRef>,
}

/// A deletion and what the delete policy makes of it.
#[derive(Debug, Clone, Serialize)]
pub struct Deletion {
    /// The record deleted in its CRM.
    pub deleted: RecordRef,
    /// The link it belonged to.
    pub link: String,
    /// The policy applied.
    pub policy: DeletePolicy,
    /// The linked records to delete (`propagate` only).
    pub targets: Vec<RecordRef>,
}

/// A record the plan could not handle, or handled otherwise than asked, and why.
#[derive(Debug, Clone, Serialize)]
pub struct PlanError {
    /// The record.
    pub record: RecordRef,
    /// Why.
    pub message: String,
}

/// The plan for one kind.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The kind planned.
    pub kind: ObjectKind,
    /// Linked or newly matched records with work to do.
    pub groups: Vec<Group>,
    /// Ambiguous matches (nothing is linked or created for them).
    pub ambiguous: Vec<Ambiguous>,
    /// Deletions.
    pub deletions: Vec<Deletion>,
    /// Records that could not be planned: their group is not stored as synced (or their
    /// write waits), and a later run plans them again (the engine puts each on the retry
    /// list).
    pub errors: Vec<PlanError>,
    /// Notices: what the plan did otherwise than the change asked, or could never do, that
    /// no later run would change (a reference naming a record deleted there, a create under
    /// a merge's survivor or without its company, a record that takes no edit, a record its
    /// target can never hold). Their group is stored as synced: not failures, not retried.
    pub notices: Vec<PlanError>,
    /// Linked records none of whose sides changed since the last sync.
    pub unchanged: usize,
    /// Feed records whose hash equals the stored one: our own writes coming back, or
    /// changes to fields that are not synced. Not sent anywhere.
    pub echoes: usize,
}

impl Plan {
    /// Every create, with its group index.
    pub fn creates(&self) -> impl Iterator<Item = (usize, &Create)> {
        self.groups
            .iter()
            .enumerate()
            .flat_map(|(i, g)| g.creates.iter().map(move |c| (i, c)))
    }

    /// Every update, with its group index.
    pub fn updates(&self) -> impl Iterator<Item = (usize, &Update)> {
        self.groups
            .iter()
            .enumerate()
            .flat_map(|(i, g)| g.updates.iter().map(move |u| (i, u)))
    }

    /// Whether the plan writes nothing to any CRM.
    pub fn is_empty(&self) -> bool {
        self.creates().next().is_none()
            && self.updates().next().is_none()
            && self.deletions.iter().all(|d| d.targets.is_empty())
    }
}

/// What the planner is given for one kind.
#[derive(Debug, Default)]
pub struct Input {
    /// Linked records: the stored link and every side read (a side missing here no longer
    /// exists in its CRM or is not linked yet).
    pub linked: Vec<(LinkState, Sides)>,
    /// Records with no link.
    pub unlinked: Vec<Seen>,
    /// Tombstones of linked records.
    pub deleted: Vec<(RecordRef, LinkState)>,
    /// The country code the Close account gives phone numbers sent without one, as learned
    /// from Close's read-backs of our writes (none yet: `None`). Linked phones held apart
    /// that nobody changed count as one number only with this code once it is learned: the
    /// values may predate the link, and `(650) 555-0100` against `+446505550100` are two
    /// numbers. Before, any code counts (see `readback::CountryCode`).
    pub close_country_code: Option<String>,
}

/// Plans `kind` from `input`. `refs` translates reference fields through links.
pub fn plan(config: &Config, kind: ObjectKind, input: Input, refs: &dyn Refs) -> Plan {
    let mut out = Plan {
        kind,
        // A group per changed link and per matched pair, typically: reserved so the list
        // of large groups is not copied as it grows.
        groups: Vec::with_capacity(input.linked.len() + input.unlinked.len() / 2),
        ambiguous: Vec::new(),
        deletions: Vec::new(),
        errors: Vec::new(),
        notices: Vec::new(),
        unchanged: 0,
        echoes: 0,
    };
    let Some(cfg) = config.entity(kind) else {
        return out;
    };
    let crms = &config.sync.crms;
    let anchor = crms[0];
    let close_code = input.close_country_code;

    // Deletions first: a record deleted and changed in one run is only deleted.
    let mut gone: BTreeSet<String> = BTreeSet::new();
    for (deleted, link) in input.deleted {
        gone.insert(link.key.clone());
        let targets = if cfg.delete == DeletePolicy::Propagate {
            link.ids
                .iter()
                .filter(|(c, _)| *c != deleted.crm)
                .map(|(c, id)| RecordRef::new(c, kind, id.clone()))
                .collect()
        } else {
            Vec::new()
        };
        out.deletions.push(Deletion {
            deleted,
            link: link.key,
            policy: cfg.delete,
            targets,
        });
    }

    // Matching: unlinked records against each other CRM's unlinked and linked records.
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Node {
        Free(usize),
        Linked(usize),
    }
    let mut linked = input.linked;
    if !gone.is_empty() {
        linked.retain(|(l, _)| !gone.contains(&l.key));
    }
    let unlinked = input.unlinked;
    let company_key = |s: &Seen| -> Option<String> {
        let Record::Deal(d) = &*s.record else {
            return None;
        };
        let id = d.company_id.as_deref()?;
        refs.translate(ObjectKind::Company, s.crm, id, anchor)
    };
    let key_of = |s: &Seen| -> Keys { matching::keys(&s.record, company_key(s).as_deref()) };
    let free_keys: Vec<Keys> = unlinked.iter().map(key_of).collect();
    let linked_keys: Vec<Keys> = linked
        .iter()
        .flat_map(|(_, sides)| sides.values())
        .map(key_of)
        .collect();
    // Each CRM's index sized for its records' keys up front: it is not rehashed as it grows.
    let mut index: PerCrm<Index<'_, usize>> = PerCrm::new();
    let mut sizes: PerCrm<usize> = PerCrm::new();
    let all_seen = unlinked.iter().zip(&free_keys).chain(
        linked
            .iter()
            .flat_map(|(_, s)| s.values())
            .zip(&linked_keys),
    );
    for (s, k) in all_seen {
        *sizes.get_or_insert_with(s.crm, Default::default) += k.len();
    }
    for (crm, n) in sizes {
        index.insert(crm, Index::with_capacity(n));
    }
    let mut nodes: Vec<Node> = Vec::with_capacity(unlinked.len() + linked.len());
    for (i, s) in unlinked.iter().enumerate() {
        index
            .get_or_insert_with(s.crm, Default::default)
            .insert(&free_keys[i], nodes.len());
        nodes.push(Node::Free(i));
    }
    let mut keys = linked_keys.iter();
    for (g, (_, sides)) in linked.iter().enumerate() {
        for (s, k) in sides.values().zip(&mut keys) {
            index
                .get_or_insert_with(s.crm, Default::default)
                .insert(k, nodes.len());
        }
        nodes.push(Node::Linked(g));
    }
    let mut parent: Vec<usize> = (0..nodes.len()).collect();
    fn root(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let mut ambiguous: BTreeSet<usize> = BTreeSet::new();
    let describe = |n: usize| -> Vec<RecordRef> {
        match nodes[n] {
            Node::Free(i) => vec![unlinked[i].reference()],
            Node::Linked(g) => linked[g].1.values().map(Seen::reference).collect(),
        }
    };
    if matching::matchable(kind) {
        // (claimant's CRM, node claimed, claimant): sorted, each node's claimants in a run.
        let mut claimed: Vec<(Crm, usize, usize)> = Vec::new();
        for (i, s) in unlinked.iter().enumerate() {
            for c in crms.iter().filter(|c| **c != s.crm) {
                let Some(idx) = index.get(c) else { continue };
                match idx.find(&free_keys[i]) {
                    Found::None => {}
                    Found::One(n) => claimed.push((s.crm, n, i)),
                    Found::Many(ns) => {
                        ambiguous.insert(i);
                        out.ambiguous.push(Ambiguous {
                            record: s.reference(),
                            candidates: ns.into_iter().flat_map(describe).collect(),
                        });
                    }
                }
            }
        }
        claimed.sort_unstable();
        let runs = || claimed.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1));
        // Queues claimant `i` of node `n` for review, once; whether it was queued now.
        let queue = |ambiguous: &mut BTreeSet<usize>, queued: &mut Vec<Ambiguous>, i, n| {
            let new = ambiguous.insert(i);
            if new {
                queued.push(Ambiguous {
                    record: unlinked[i].reference(),
                    candidates: describe(n),
                });
            }
            new
        };
        // Several claimants of one record: each is ambiguous.
        for run in runs().filter(|run| run.len() > 1) {
            for &(_, n, i) in run {
                queue(&mut ambiguous, &mut out.ambiguous, i, n);
            }
        }
        // The sole claimant of a record under review goes there with it: joined to it (the
        // record left out of its group), it would be created as a copy of the record
        // waiting in review. Repeated until none goes, as each may take its own claimant.
        let under_review = |ambiguous: &BTreeSet<usize>, n: usize| matches!(nodes[n], Node::Free(j) if ambiguous.contains(&j));
        loop {
            let mut more = false;
            for &(_, n, first) in runs().filter(|run| run.len() == 1).map(|run| &run[0]) {
                if under_review(&ambiguous, n) {
                    more |= queue(&mut ambiguous, &mut out.ambiguous, first, n);
                }
            }
            if !more {
                break;
            }
        }
        for &(_, n, first) in runs().filter(|run| run.len() == 1).map(|run| &run[0]) {
            if !ambiguous.contains(&first) && !under_review(&ambiguous, n) {
                let (a, b) = (root(&mut parent, first), root(&mut parent, n));
                parent[a] = b;
            }
        }
    }
    // Components: a consistent one becomes a group; one holding two records of a CRM is
    // ambiguous as a whole.
    // Sorted (root, node) pairs: each component's members in a run, in the order a map of
    // root → members would give, without a list allocated per component.
    let mut comps: Vec<(usize, usize)> = (0..nodes.len())
        .map(|n| (root(&mut parent, n), n))
        .collect();
    comps.sort_unstable();
    // Each linked node sits in exactly one component: its entry is taken in place (the
    // records are large; they are not copied into a second list first).
    let mut linked_taken = vec![false; linked.len()];
    let mut free_slots: Vec<Option<Seen>> = unlinked.into_iter().map(Some).collect();
    for members in comps.chunk_by(|a, b| a.0 == b.0) {
        let mut link: Option<LinkState> = None;
        let mut sides = Sides::new();
        // Whether the component holds two records of one CRM or two links (ambiguous as a
        // whole), told by a walk that takes nothing first: references for the review queue
        // are copied only then, not for a consistent component (nearly every one).
        let clash = {
            let mut held: PerCrm<()> = PerCrm::new();
            let mut links = 0;
            let mut twice = false;
            let mut hold = |c: Crm| twice |= held.insert(c, ()).is_some();
            for &(_, n) in members {
                match nodes[n] {
                    Node::Linked(g) if !linked_taken[g] => {
                        links += 1;
                        linked[g].1.keys().for_each(&mut hold);
                    }
                    Node::Free(i) if !ambiguous.contains(&i) => {
                        free_slots[i].iter().for_each(|s| hold(s.crm));
                    }
                    _ => {}
                }
            }
            twice || links > 1
        };
        // On a clash: the free members, and every member record (each free one's candidates
        // are all the others, the record it matched among them).
        let mut free_members = Vec::new();
        let mut member_refs = Vec::new();
        for &(_, n) in members {
            match nodes[n] {
                Node::Linked(g) => {
                    if std::mem::replace(&mut linked_taken[g], true) {
                        continue;
                    }
                    let (l, s) = std::mem::take(&mut linked[g]);
                    for (c, seen) in s {
                        if clash {
                            member_refs.push(seen.reference());
                            // Its link is not planned this run: a change waits on the retry
                            // list (a later run plans it without the records in review).
                            let stored = l.hashes.get(&c).map(String::as_str);
                            if stored.is_none_or(|h| seen.hash != *h) {
                                out.errors.push(PlanError {
                                    record: seen.reference(),
                                    message: "not synced this run: a record matching it went \
                                              to the review queue (retried from the retry list)"
                                        .to_string(),
                                });
                            }
                        }
                        sides.insert(c, seen);
                    }
                    link = Some(l);
                }
                Node::Free(i) => {
                    if ambiguous.contains(&i) {
                        free_slots[i] = None;
                        continue;
                    }
                    let Some(seen) = free_slots[i].take() else {
                        continue;
                    };
                    if clash {
                        free_members.push(seen.reference());
                        member_refs.push(seen.reference());
                    }
                    sides.insert(seen.crm, seen);
                }
            }
        }
        if sides.is_empty() && link.is_none() {
            continue;
        }
        if clash {
            for r in free_members {
                out.ambiguous.push(Ambiguous {
                    candidates: member_refs.iter().filter(|x| **x != r).cloned().collect(),
                    record: r,
                });
            }
            continue;
        }
        plan_group(
            config,
            cfg,
            kind,
            anchor,
            link,
            sides,
            refs,
            close_code.as_deref(),
            &mut out,
        );
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn plan_group(
    config: &Config,
    cfg: &EntityConfig,
    kind: ObjectKind,
    anchor: Crm,
    link: Option<LinkState>,
    sides: Sides,
    refs: &dyn Refs,
    close_code: Option<&str>,
    out: &mut Plan,
) {
    let stored = |c: Crm| {
        link.as_ref()
            .and_then(|l| l.hashes.get(&c))
            .map(String::as_str)
    };
    let mut any_changed = false;
    for s in sides.values() {
        if stored(s.crm).is_some_and(|h| s.hash == *h) {
            if s.fed {
                out.echoes += 1;
            }
        } else {
            any_changed = true;
        }
    }
    // A side whose record is known to be deleted is neither read nor created again.
    let gone_sides: PerCrm<()> = link.as_ref().map_or_else(PerCrm::new, |l| {
        l.hashes
            .iter()
            .filter(|(_, h)| *h == DELETED)
            .map(|(c, _)| (c, ()))
            .collect()
    });
    let gone = |c: &Crm| gone_sides.contains_key(c);
    let complete = config
        .sync
        .crms
        .iter()
        .all(|c| sides.contains_key(c) || gone(c));
    if link.is_some() && !any_changed && complete {
        out.unchanged += 1;
        return;
    }
    let Some(first) = config.sync.crms.iter().find_map(|c| sides.get(c)) else {
        return;
    };
    let first_crm = first.crm;
    // References compared across CRMs as the anchor CRM's ids.
    let mut skip: BTreeSet<Field> = BTreeSet::new();
    // References a base held to a record gone from the link table, where the side now
    // references nothing: left out of resolution only (see `base_to_anchor`).
    let mut gone_refs: BTreeSet<Field> = BTreeSet::new();
    let mut readings: Vec<Reading> = Vec::new();
    let mut comparable: PerCrm<Cow<'_, FieldMap>> = PerCrm::new();
    let mut bases: PerCrm<FieldMap> = PerCrm::new();
    // References a side holds now that cannot be translated yet (their target not linked).
    let mut untranslated: Vec<(RecordRef, Field)> = Vec::new();
    for s in sides.values() {
        // Only records holding references need a translated copy.
        let f = if s.fields.keys().any(|k| reference_kind(k).is_some()) {
            let mut f = s.fields.clone();
            let mut now = BTreeSet::new();
            to_anchor(&mut f, s.crm, anchor, refs, &mut now);
            untranslated.extend(now.iter().map(|f| (s.reference(), *f)));
            skip.extend(now);
            Cow::Owned(f)
        } else {
            Cow::Borrowed(&s.fields)
        };
        comparable.insert(s.crm, f);
        if let Some(b) = link.as_ref().and_then(|l| l.bases.get(&s.crm)) {
            let mut b = if stored(s.crm) == Some(SENT) {
                crate::engine::sent_base(s.crm, b, &s.fields)
            } else {
                b.clone()
            };
            values::upgrade_base(&mut b, &s.fields);
            base_to_anchor(
                &mut b,
                &s.fields,
                s.crm,
                anchor,
                refs,
                &mut gone_refs,
                &mut readings,
            );
            bases.insert(s.crm, b);
        }
    }
    settle_readings(readings, &mut bases, &comparable, &mut gone_refs);
    let side_list: Vec<Side<'_>> = config
        .sync
        .crms
        .iter()
        .filter_map(|c| sides.get(c))
        .map(|s| Side {
            crm: s.crm,
            fields: &comparable[&s.crm],
            base: bases.get(&s.crm),
            changed: stored(s.crm).is_none_or(|h| s.hash != *h),
            modified: s.record.updated_at(),
            // A base without a hash is a relinked merge winner's (see `Engine::relink`).
            relinked: stored(s.crm).is_none() && bases.contains_key(&s.crm),
        })
        .collect();
    // Left out of resolution: references not comparable now or in a base, and those held
    // apart since a value could not be written.
    let mut unsettled = gone_refs;
    unsettled.extend(skip.iter().copied());
    unsettled.extend(unwritable_apart(cfg, &side_list, &sides, anchor, refs));
    let mut resolution = resolve::resolve(cfg, &side_list, &unsettled);
    drop(side_list);
    // Values held apart that nobody changed are queued as conflicts, so they are seen,
    // unless the CRMs' own keeping of one value explains the difference (a Salesforce Task's
    // day for a time, a single e-mail of a list, a value a record cannot hold, Close's E.164
    // of a phone number with the account's learned country code, or any before one is).
    let diverged = std::mem::take(&mut resolution.diverged);
    for d in diverged {
        if !kept_alike(cfg, &sides, &d.conflict, close_code) {
            resolution.conflicts.push(d.conflict);
            continue;
        }
        // Held alike, each in its CRM's form: a gap listed (a relinked merge winner that
        // never held the field, the primary holding nothing) takes the value, as it takes
        // a value held equal (see `resolve`).
        let Some((holder, v)) = gap_filler(&d.conflict).filter(|_| !d.gaps.is_empty()) else {
            continue;
        };
        for crm in d.gaps {
            resolution
                .writes
                .get_or_insert_with(crm, Default::default)
                .insert(d.conflict.field, Some(v.clone()));
        }
        resolution.decisions.push(Decision {
            field: d.conflict.field,
            value: Some(v.clone()),
            winner: holder,
            rule: None,
        });
    }
    // The link's key and ids are moved into the group rather than copied; the link is
    // consumed here, so nothing can read it half-emptied later.
    let linked = link.is_some();
    let (key, mut stored_ids) = link.map_or((None, PerCrm::new()), |l| (Some(l.key), l.ids));
    let ids = sides
        .iter()
        .map(|(c, s)| {
            let stored = stored_ids.remove(&c).filter(|id| id == s.id());
            (c, stored.unwrap_or_else(|| s.id().to_string()))
        })
        .collect();
    let mut group = Group {
        link: key,
        ids,
        seen: PerCrm::new(),
        updates: Vec::with_capacity(resolution.writes.len()),
        creates: Vec::new(),
        decisions: resolution.decisions,
        conflicts: resolution.conflicts,
        skipped: unsettled.into_iter().collect(),
        deferred: false,
    };
    // A linked record whose reference cannot be translated yet is not stored as synced: its
    // bases stay, so the change is planned again once the referenced record is linked.
    if linked {
        for (record, field) in &untranslated {
            out.errors.push(PlanError {
                record: record.clone(),
                message: format!(
                    "its {field} is not linked in every CRM yet: not synced \
                     (retried from the retry list)"
                ),
            });
            group.deferred = true;
        }
    }
    // The agreed values: the first side's, with its writes applied.
    // Only creates need them: not built when every CRM holds the record.
    let mut agreed: FieldMap = if complete {
        FieldMap::new()
    } else {
        comparable[&first_crm].clone().into_owned()
    };
    drop(comparable);
    if let Some(w) = resolution.writes.get(&first_crm).filter(|_| !complete) {
        for (f, v) in w {
            match v {
                Some(v) => agreed.insert(*f, v.clone()),
                None => agreed.remove(f),
            };
        }
    }
    for skipped in &skip {
        agreed.remove(skipped);
    }
    // The source of creates, taken before any update takes its side's record.
    let source = (!complete).then(|| sides.get(&first_crm).map(Seen::reference));
    let mut sides = sides;
    for (crm, writes) in resolution.writes {
        let Some(s) = sides.get_mut(&crm) else {
            continue;
        };
        let Translated {
            mut writes,
            dropped,
            gone,
            ..
        } = from_anchor(writes, anchor, crm, refs, false);
        if !gone.is_empty() {
            // The value names a record deleted (or merged away) there: reported, and the
            // rest of the group is synced; no later run could write it: a notice.
            out.notices.push(PlanError {
                record: s.reference(),
                message: format!(
                    "{} not written: the record it names is deleted in {crm} \
                     (or merged away, under review)",
                    names(&gone)
                ),
            });
        }
        // A write the target cannot take (a field its record does not have, a value it keeps
        // already at its precision) would send nothing: it is not planned, so the report
        // counts only updates that send something.
        if crm == Crm::Close && writes.get("company").is_some_and(Option::is_none) {
            // Never sendable, and the group is synced: a notice.
            out.notices.push(PlanError {
                record: s.reference(),
                message: "its company is not cleared in close: every Close contact, \
                          opportunity and activity belongs to a lead"
                    .to_string(),
            });
        }
        writes.retain(|f, v| values::lands(&s.record, crm, cfg, *f, v.as_ref(), s.fields.get(f)));
        if !dropped.is_empty() {
            out.errors.push(PlanError {
                record: s.reference(),
                message: format!(
                    "{} not linked in {crm} yet: not written \
                     (retried from the retry list)",
                    names(&dropped)
                ),
            });
            group.deferred = true;
        }
        if writes.is_empty() {
            continue;
        }
        if let Some(why) = refuses_edits(&s.record, crm) {
            // No later run could write it either: reported when the record changes, not
            // each time a feed's overlap brings it back, and the group is stored as synced:
            // a notice.
            if any_changed {
                out.notices.push(PlanError {
                    record: s.reference(),
                    message: format!(
                        "not updated ({}): {why}",
                        writes
                            .keys()
                            .map(|f| f.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            continue;
        }
        let target = s.reference();
        // The patch is the side's own record, moved rather than copied: the side keeps its
        // fields and hash (stored as the base), and nothing reads its record again.
        let mut record = std::mem::replace(&mut s.record, Box::new(values::blank(kind)));
        if let Err(e) = values::apply(&mut record, crm, cfg, &writes) {
            out.errors.push(PlanError {
                record: target,
                message: e.to_string(),
            });
            group.deferred = true;
            continue;
        }
        let changes = writes
            .into_iter()
            .map(|(f, to)| FieldChange {
                field: f,
                from: s.fields.get(&f).cloned(),
                to,
            })
            .collect();
        group.updates.push(Update {
            target,
            changes,
            record,
        });
    }
    if let Some(Some(source)) = source {
        let first = sides.get(&first_crm).map_or(&agreed, |s| &s.fields);
        for crm in config
            .sync
            .crms
            .iter()
            .filter(|c| !sides.contains_key(c) && !gone(c))
        {
            let all: Writes = agreed.iter().map(|(k, v)| (*k, Some(v.clone()))).collect();
            let Translated {
                writes: fields,
                dropped,
                gone,
                survivors,
            } = from_anchor(all, anchor, *crm, refs, true);
            if !gone.is_empty() {
                // Its company or person is deleted there (or merged away, under review):
                // waiting would not bring it back. Close keeps every contact, opportunity
                // and activity under a lead, so without its company it is not created
                // there; otherwise it is created without the reference. Reported when the
                // record changes, not on every run, as a notice: the group is synced.
                let close = *crm == Crm::Close && gone.iter().any(|f| f.as_str() == "company");
                if any_changed {
                    out.notices.push(PlanError {
                        record: source.clone(),
                        message: format!(
                            "{} in {crm}: its {} names a record deleted there (or merged \
                             away, under review)",
                            if close {
                                "not created"
                            } else {
                                "created without it"
                            },
                            names(&gone)
                        ),
                    });
                }
                if close {
                    continue;
                }
            }
            // A record whose parent is not linked in the target yet waits: created without
            // it, it would land under no company (or, in Close, under a new lead of its own).
            let unlinked: Vec<&str> = first
                .keys()
                .filter(|f| {
                    reference_kind(f).is_some() && (skip.contains(*f) || dropped.contains(*f))
                })
                .map(|f| f.as_str())
                .collect();
            if !unlinked.is_empty() {
                out.errors.push(PlanError {
                    record: source.clone(),
                    message: format!(
                        "not created in {crm} yet: its {} is not linked there \
                         (retried from the retry list)",
                        unlinked.join(", ")
                    ),
                });
                group.deferred = true;
                continue;
            }
            let mut record = values::blank(kind);
            if let Err(e) = values::apply(&mut record, *crm, cfg, &fields) {
                // A record the target can never hold (a meeting for Close) is reported when
                // it changes, not each time a feed's overlap brings it back, and the rest of
                // the group is stored as synced: waiting would not make it fit.
                // That one is a notice; any other failure is an error, and the group waits.
                let never = e.kind() == crmkit_core::ErrorKind::Validation;
                if !never || any_changed {
                    let list = if never {
                        &mut out.notices
                    } else {
                        &mut out.errors
                    };
                    list.push(PlanError {
                        record: source.clone(),
                        message: format!("cannot create it in {crm}: {e}"),
                    });
                }
                group.deferred |= !never;
                continue;
            }
            // The fields the created record keeps, as audited and read back: a Close note
            // made from a Salesforce Task has no `completed`.
            let mut fields = fields;
            fields.retain(|f, _| values::holds(&record, *crm, cfg, *f));
            // Put under another record than its source's (a merge's survivor, the merge
            // under review): reported when the record changes, as a gone reference is, as a
            // notice: the record is created.
            if any_changed {
                for (field, merged, now) in &survivors {
                    out.notices.push(PlanError {
                        record: source.clone(),
                        message: format!(
                            "created in {crm} under {now}: its {field} {merged} was merged \
                             into it (merge under review)"
                        ),
                    });
                }
            }
            group.creates.push(Create {
                target: *crm,
                marker: format!("{}:{}:{}", source.crm, kind, source.id),
                source: source.clone(),
                fields,
                record,
            });
        }
    }
    group.seen = sides
        .into_iter()
        .map(|(c, s)| (c, (s.hash, s.fields)))
        .collect();
    out.groups.push(group);
}

/// Whether every two values of `conflict` (a field nobody changed, held apart) are one
/// value as the CRMs holding them keep it: alike in substance
/// ([`crate::engine::readback::kept_alike`]), a list the CRM holding it keeps fewer of
/// ([`kept_fewer`]), or one that would not land on the other's record ([`values::lands`]: a
/// field it cannot hold, a value it keeps at its precision; or a record that takes no edit
/// at all, a sent Close email). `close_code` is the Close account's phone country code, if
/// learned ([`Input`]).
fn kept_alike(
    cfg: &EntityConfig,
    sides: &Sides,
    conflict: &FieldConflict,
    close_code: Option<&str>,
) -> bool {
    let f = conflict.field;
    let held: Vec<(Crm, &Value)> = conflict
        .values
        .iter()
        .filter_map(|(c, v)| v.as_ref().map(|v| (*c, v)))
        .collect();
    let lands_on = |c: Crm, v: &Value| {
        sides.get(&c).is_none_or(|s| {
            refuses_edits(&s.record, c).is_none()
                && values::lands(&s.record, c, cfg, f, Some(v), s.fields.get(&f))
        })
    };
    held.iter().enumerate().all(|(i, &(ca, va))| {
        held[i + 1..].iter().all(|&(cb, vb)| {
            va == vb
                || crate::engine::readback::kept_alike(f, ca, va, cb, vb, close_code)
                || kept_fewer(f, ca, va, vb)
                || kept_fewer(f, cb, vb, va)
                || !lands_on(cb, va)
                || !lands_on(ca, vb)
        })
    })
}

/// The value of `c` (values held alike, each in its CRM's form) that fills a gap, with its
/// holder: the longest list, else the first held in the order Close, HubSpot, Salesforce
/// (a conflict's values are keyed by CRM), except that phone numbers are taken from a CRM
/// other than Close where one holds them (Close's E.164 is its own shaping of a number
/// typed in another form elsewhere).
fn gap_filler(c: &FieldConflict) -> Option<(Crm, &Value)> {
    let len = |v: &Value| v.as_array().map_or(1, Vec::len);
    let phones = c.field.as_str() == "phones";
    c.values
        .iter()
        .filter_map(|(crm, v)| v.as_ref().map(|v| (*crm, v)))
        .min_by_key(|(crm, v)| (std::cmp::Reverse(len(v)), phones && *crm == Crm::Close))
}

/// How many values of an `emails`/`phones` list `crm` can be written (`None`: the whole
/// list). Close contacts keep lists of both; HubSpot writes one e-mail (`email`; its
/// `hs_additional_emails` are read-only through the objects API) and two phones (`phone`,
/// `mobilephone`); Salesforce one e-mail (`Email`) and two phones (`Phone`, `MobilePhone`).
/// See the connectors' patch mappings.
fn list_capacity(crm: Crm, field: Field) -> Option<usize> {
    match (crm, field.as_str()) {
        (Crm::Close, _) => None,
        (Crm::HubSpot | Crm::Salesforce, "emails") => Some(1),
        (Crm::HubSpot | Crm::Salesforce, "phones") => Some(2),
        _ => None,
    }
}

/// Whether `fewer`, the `emails`/`phones` list `crm` holds, is what `crm` keeps of `more`,
/// another CRM's list: `crm` cannot be written the whole of `more`, the slots it can be
/// written hold what `more` would put there, and the rest of `fewer` is part of `more` too
/// (HubSpot's read-only extra e-mails). A CRM that could hold all of `more` (Close) holding
/// part of it is a difference: the rest would reach it if synced.
fn kept_fewer(field: Field, crm: Crm, fewer: &Value, more: &Value) -> bool {
    let (Value::Array(fewer), Value::Array(more)) = (fewer, more) else {
        return false;
    };
    let Some(cap) = list_capacity(crm, field) else {
        return false;
    };
    !fewer.is_empty()
        && fewer.len() < more.len()
        && cap < more.len()
        && fewer.iter().take(cap).eq(more.iter().take(cap))
        && fewer.iter().all(|v| more.contains(v))
}

/// Why `crm` takes no edit of `record` at all, if it does not (a sent Close email).
fn refuses_edits(record: &Record, crm: Crm) -> Option<&'static str> {
    match record {
        Record::Activity(a) => crate::activity::refuses_edits(crm, a),
        _ => None,
    }
}

/// Rewrites reference fields of a record of `crm` into the anchor CRM's ids; a reference
/// with no link yet is taken out of the comparison.
fn to_anchor(f: &mut FieldMap, crm: Crm, anchor: Crm, refs: &dyn Refs, skip: &mut BTreeSet<Field>) {
    translate_refs(f, crm, anchor, refs, |field, _, _| {
        skip.insert(field);
    });
}

/// A side's stored base reference read a second way, `(side, field, value)`: the reading
/// in which the side did not change the field (`None`: the field left out of its base).
type Reading = (Crm, Field, Option<Value>);

/// Rewrites the reference fields of a side's base into the anchor CRM's ids, as
/// [`to_anchor`] does its values (`now`, the side's current values, untranslated).
///
/// - A reference whose record is no longer linked (deleted, or merged away with no merge
///   noted) cannot be compared across CRMs, but where the side references a record now it
///   still tells whether the side changed the field since: it becomes a value no anchor id
///   equals, so the side counts as having changed the field exactly where its record now
///   references another record. Skipping the field instead would store the new reference
///   as the base unsynced, and the move (a contact put under another lead) would never
///   reach the other CRMs.
/// - Where the side references nothing now and the record its base named is gone (noted
///   deleted in its link, or in no link), the association went with the record: that is no
///   one's clear to spread (and a clear sent to a CRM whose records always belong to one,
///   a Close contact's lead, would be refused on every run). The field goes to `gone`,
///   left out of resolution this run, with the reading without it in `readings`.
/// - A reference to a record merged away while its link stayed (the merge went to review)
///   reads through that link, so the merge's moving of the record to the winner is this
///   side's change and the other CRMs follow it; the reading as the survivor, in which the
///   side changed nothing, goes to `readings` (a survivor in the anchor CRM whether it is
///   linked or not: its id is what the side holds after the merge either way).
///
/// The readings apply where another side really changed the field
/// ([`settle_readings`]): then a merge or a deletion is not taken for an edit that would
/// undo a user's.
fn base_to_anchor(
    b: &mut FieldMap,
    now: &FieldMap,
    crm: Crm,
    anchor: Crm,
    refs: &dyn Refs,
    gone: &mut BTreeSet<Field>,
    readings: &mut Vec<Reading>,
) {
    for (field, v) in b.iter_mut() {
        let Some(rk) = reference_kind(field) else {
            continue;
        };
        let id = values::reference_id(v);
        let translated = refs.translate(rk, crm, &id, anchor);
        if !now.contains_key(field.as_str()) && (translated.is_none() || refs.is_gone(rk, crm, &id))
        {
            gone.insert(*field);
            readings.push((crm, *field, None));
            continue;
        }
        let Some(a) = translated else {
            *v = Value::String(format!("{crm} {id}, no longer linked"));
            continue;
        };
        if let Some(s) = refs.survivor(rk, crm, &id, anchor).filter(|s| *s != a) {
            readings.push((crm, *field, Some(Value::String(s))));
        }
        *v = Value::String(a);
    }
}

/// Applies each of `readings` (see [`base_to_anchor`]) whose field another side changed:
/// the side's base takes the reading, so it is no changer and the other side's change
/// wins; a field left out of the base is compared again (taken out of `gone`). Elsewhere
/// the first reading stands: the merge's move propagates, a gone reference stays left out.
///
/// Another side changed the field where its value differs from its base and it has no
/// reading without a reference of its own. Against a survivor reading it must also differ
/// from its own survivor reading (a user's move, not a merge's); a field left out for a
/// gone reference is compared again for any change, a merge's move included, so the move
/// is followed rather than left out with the field.
fn settle_readings(
    readings: Vec<Reading>,
    bases: &mut PerCrm<FieldMap>,
    current: &PerCrm<Cow<'_, FieldMap>>,
    gone: &mut BTreeSet<Field>,
) {
    let changed = |bases: &PerCrm<FieldMap>, field: Field, but: Crm, users_only: bool| {
        bases.iter().any(|(c, b)| {
            let now = current.get(&c).and_then(|f| f.get(field.as_str()));
            c != but
                && b.get(field.as_str()) != now
                && readings
                    .iter()
                    .filter(|(rc, rf, _)| *rc == c && *rf == field)
                    .all(|(_, _, r)| r.is_some() && !(users_only && r.as_ref() == now))
        })
    };
    let apply: Vec<Reading> = readings
        .iter()
        .filter(|(crm, field, r)| changed(bases, *field, *crm, r.is_some()))
        .cloned()
        .collect();
    for (crm, field, reading) in apply {
        let Some(b) = bases.get_mut(&crm) else {
            continue;
        };
        match reading {
            Some(v) => {
                b.insert(field, v);
            }
            None => {
                b.remove(&field);
                gone.remove(&field);
            }
        }
    }
}

/// The reference fields of a link's synced sides that nobody changed since the last sync
/// and that differ only because a value could not be written into another of its CRMs: it
/// names a record noted gone there (a move to a company deleted in the other CRM), or it
/// is a clear that CRM does not take (a Close contact always has a lead). The difference
/// was reported (or is by design) when it arose; it is no one's change now, so it is
/// neither a conflict to queue nor the primary's to overwrite (which would undo the move
/// or re-add the association a user removed). So is a field where one value held accounts
/// for every side: each holds it or what a create from it wrote there (a record created
/// under a merge's survivor, or without the reference, in one CRM or several). Any later
/// change of the field is settled as usual.
fn unwritable_apart<'a>(
    cfg: &EntityConfig,
    side_list: &[Side<'a>],
    sides: &Sides,
    anchor: Crm,
    refs: &dyn Refs,
) -> Vec<Field> {
    if side_list.len() < 2 || side_list.iter().any(|s| s.base.is_none() || s.relinked) {
        return Vec::new();
    }
    let mut fields: Vec<Field> = side_list
        .iter()
        .flat_map(|s| s.fields.keys().copied())
        .filter(|f| reference_kind(f).is_some())
        .collect();
    fields.sort_unstable();
    fields.dedup();
    fields.retain(|field| {
        let value = |s: &Side<'a>| -> Option<&'a Value> { s.fields.get(field.as_str()) };
        let untouched = side_list
            .iter()
            .all(|s| s.base.and_then(|b| b.get(field.as_str())) == value(s));
        let cannot_take =
            |from: &Side<'a>, to: &Side<'a>| match (value(from), reference_kind(field)) {
                (Some(Value::String(id)), Some(rk)) => refs
                    .translate(rk, anchor, id, to.crm)
                    .is_some_and(|local| refs.is_gone(rk, to.crm, &local)),
                (None, _) => sides.get(&to.crm).is_some_and(|s| {
                    !values::lands(&s.record, to.crm, cfg, *field, None, s.fields.get(field))
                }),
                _ => false,
            };
        // Every two sides holding it apart are explained, one way or the other: a third
        // side's value that could be written is still the rule's to settle.
        let mut apart = side_list.iter().enumerate().flat_map(|(i, a)| {
            side_list[i + 1..]
                .iter()
                .filter(move |b| value(a) != value(b))
                .map(move |b| (a, b))
        });
        let first = apart.next();
        if !untouched || first.is_none() {
            return false;
        }
        if first
            .into_iter()
            .chain(apart)
            .all(|(a, b)| cannot_take(a, b) || cannot_take(b, a))
        {
            return true;
        }
        // Or one value held accounts for every side: each holds it, or what a create of
        // the record from it wrote there (its record's linked survivor of a merge under
        // review, or none where that record is gone), as anchor ids. The sides of a record
        // created so hold values no two of which need explain each other (Close's lead_1,
        // HubSpot's survivor, Salesforce's none).
        let rk = reference_kind(field);
        let image = |v: &Value, to: &Side<'a>| -> Option<Option<Value>> {
            let (Value::String(id), Some(rk)) = (v, rk) else {
                return None;
            };
            match written_ref(refs, rk, anchor, id, to.crm, true) {
                Written::Id(_) => Some(Some(v.clone())),
                Written::Survivor { now, .. } => {
                    let now = refs.translate(rk, to.crm, &now, anchor)?;
                    Some(Some(Value::String(now)))
                }
                Written::Gone => Some(None),
                Written::Unlinked => None,
            }
        };
        side_list.iter().filter_map(value).any(|v| {
            side_list.iter().all(|to| {
                value(to) == Some(v) || image(v, to).is_some_and(|i| i.as_ref() == value(to))
            })
        })
    });
    fields
}

/// Rewrites each reference field of `f` (ids of `crm`) into the anchor CRM's id of the
/// linked record; `untranslated` is given the field, its value and the id where there is
/// no link.
fn translate_refs(
    f: &mut FieldMap,
    crm: Crm,
    anchor: Crm,
    refs: &dyn Refs,
    mut untranslated: impl FnMut(Field, &mut Value, &str),
) {
    for (field, v) in f.iter_mut() {
        let Some(rk) = reference_kind(field) else {
            continue;
        };
        let id = values::reference_id(v);
        match refs.translate(rk, crm, &id, anchor) {
            Some(a) => *v = Value::String(a),
            None => untranslated(*field, v, &id),
        }
    }
}

/// The writes for `crm` with references as `crm`'s ids; references with no link in `crm`
/// are left out (and listed), and so are references to a record noted gone in `crm`
/// (listed apart: no later run can write them). With `to_survivor` (a record to create,
/// which must go somewhere), a reference to a record merged away under review names the
/// record that survives it instead, where that is linked and not noted gone; a patch is
/// not redirected: the review decides it.
fn from_anchor(
    mut writes: Writes,
    anchor: Crm,
    crm: Crm,
    refs: &dyn Refs,
    to_survivor: bool,
) -> Translated {
    let mut dropped = Vec::new();
    let mut gone = Vec::new();
    let mut survivors = Vec::new();
    writes.retain(|field, v| match (reference_kind(field), v) {
        (Some(rk), Some(Value::String(id))) => {
            match written_ref(refs, rk, anchor, id, crm, to_survivor) {
                Written::Id(local) => {
                    *id = local;
                    true
                }
                Written::Survivor { merged, now } => {
                    survivors.push((*field, merged, now.clone()));
                    *id = now;
                    true
                }
                Written::Gone => {
                    gone.push(*field);
                    false
                }
                Written::Unlinked => {
                    dropped.push(*field);
                    false
                }
            }
        }
        _ => true,
    });
    Translated {
        writes,
        dropped,
        gone,
        survivors,
    }
}

/// What a reference is written as in a CRM ([`written_ref`]).
enum Written {
    /// The linked record's id.
    Id(String),
    /// The id of the linked record that survives `merged`, the linked record merged away
    /// there under review (a create only).
    Survivor { merged: String, now: String },
    /// Nothing: the linked record is noted gone there.
    Gone,
    /// Nothing yet: the record is not linked there.
    Unlinked,
}

/// What the reference `id` (an id of the anchor CRM) of `kind` is written as in `crm`, as
/// [`from_anchor`] writes it: with `to_survivor`, a record noted gone there that was merged
/// away under review gives way to the record that survives it, where that is linked (one
/// merged away again or deleted since, with no link, names nothing a record can be put
/// under) and not noted gone.
fn written_ref(
    refs: &dyn Refs,
    kind: ObjectKind,
    anchor: Crm,
    id: &str,
    crm: Crm,
    to_survivor: bool,
) -> Written {
    let Some(local) = refs.translate(kind, anchor, id, crm) else {
        return Written::Unlinked;
    };
    if !refs.is_gone(kind, crm, &local) {
        return Written::Id(local);
    }
    let survivor = refs
        .survivor(kind, crm, &local, crm)
        .filter(|s| to_survivor && refs.is_linked(kind, crm, s) && !refs.is_gone(kind, crm, s));
    match survivor {
        Some(now) => Written::Survivor { merged: local, now },
        None => Written::Gone,
    }
}

/// The fields' names, for a message.
fn names(fields: &[Field]) -> String {
    fields
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes translated for one CRM ([`from_anchor`]).
struct Translated {
    /// What can be written.
    writes: Writes,
    /// References whose record is not linked in the CRM yet.
    dropped: Vec<Field>,
    /// References whose record is noted gone in the CRM.
    gone: Vec<Field>,
    /// References written as the survivor of their record, merged away under review:
    /// `(field, merged-away id, survivor id)`, ids of the CRM.
    survivors: Vec<(Field, String, String)>,
}

#[cfg(test)]
mod tests {
    use crmkit_core::{Company, Deal, Money, Person};
    use serde_json::json;

    use super::*;
    use crate::config::PolicyKind;

    fn cfg() -> Config {
        Config::new(vec![Crm::Close, Crm::HubSpot])
    }

    fn company(id: &str, name: &str, url: Option<&str>) -> Record {
        Record::Company(Company {
            id: Some(id.into()),
            name: name.into(),
            url: url.map(Into::into),
            ..Company::default()
        })
    }

    fn seen(c: &Config, crm: Crm, r: Record) -> Seen {
        let kind = r.kind();
        Seen::new(crm, r, c.entity(kind).unwrap(), true).unwrap()
    }

    #[test]
    fn a_list_held_in_part_is_kept_alike_only_by_a_crm_that_keeps_fewer() {
        let emails = Field::new("emails");
        let both = json!(["robert@acme.com", "bob@acme.com"]);
        // Close could hold both: its one address is a difference, whichever it is.
        assert!(!kept_fewer(
            emails,
            Crm::Close,
            &json!(["bob@acme.com"]),
            &both
        ));
        assert!(!kept_fewer(
            emails,
            Crm::Close,
            &json!(["robert@acme.com"]),
            &both
        ));
        // HubSpot is written one address: the first is what it keeps of both.
        assert!(kept_fewer(
            emails,
            Crm::HubSpot,
            &json!(["robert@acme.com"]),
            &both
        ));
        assert!(!kept_fewer(
            emails,
            Crm::HubSpot,
            &json!(["bob@acme.com"]),
            &both
        ));
        // Salesforce keeps two phones of three, not one.
        let phones = Field::new("phones");
        let three = json!(["+1", "+2", "+3"]);
        assert!(kept_fewer(
            phones,
            Crm::Salesforce,
            &json!(["+1", "+2"]),
            &three
        ));
        assert!(!kept_fewer(phones, Crm::Salesforce, &json!(["+1"]), &three));
    }

    #[test]
    fn unlinked_records_match_link_and_fill_or_create() {
        let c = cfg();
        let input = Input {
            unlinked: vec![
                seen(
                    &c,
                    Crm::Close,
                    company("lead_1", "Acme Inc", Some("https://acme.com")),
                ),
                seen(
                    &c,
                    Crm::HubSpot,
                    company("11", "ACME", Some("www.acme.com/x")),
                ),
                seen(&c, Crm::Close, company("lead_2", "Globex", None)),
            ],
            ..Input::default()
        };
        let p = plan(&c, ObjectKind::Company, input, &RefTable::default());
        assert!(p.ambiguous.is_empty() && p.errors.is_empty(), "{p:?}");
        assert_eq!(p.groups.len(), 2);
        let acme = p.groups.iter().find(|g| g.ids.len() == 2).expect("matched");
        assert_eq!(acme.ids[&Crm::HubSpot], "11");
        assert!(acme.creates.is_empty());
        let globex = p.groups.iter().find(|g| g.ids.len() == 1).expect("alone");
        let create = &globex.creates[0];
        assert_eq!(
            (create.target, create.marker.as_str()),
            (Crm::HubSpot, "close:company:lead_2")
        );
        assert_eq!(create.fields["name"], Some(json!("Globex")));
    }

    #[test]
    fn several_candidates_are_ambiguous_and_neither_linked_nor_created() {
        let c = cfg();
        let input = Input {
            unlinked: vec![
                seen(&c, Crm::Close, company("lead_1", "Acme Inc", None)),
                seen(&c, Crm::Close, company("lead_2", "Acme LLC", None)),
                seen(&c, Crm::HubSpot, company("11", "Acme", None)),
            ],
            ..Input::default()
        };
        let p = plan(&c, ObjectKind::Company, input, &RefTable::default());
        assert_eq!(
            p.ambiguous.len(),
            1 + 2,
            "HubSpot's record sees two, and both claim it"
        );
        let hs = p
            .ambiguous
            .iter()
            .find(|a| a.record.crm == Crm::HubSpot)
            .unwrap();
        assert_eq!(hs.candidates.len(), 2);
        assert!(p.groups.is_empty(), "{:?}", p.groups);
    }

    #[test]
    fn the_sole_match_of_a_record_under_review_waits_there_with_it_and_is_not_created() {
        let c = cfg();
        let a = Some("https://a.com");
        // Close's record matches two HubSpot records by domain (one of them linked): under
        // review. HubSpot's free record matches only it.
        let input = Input {
            linked: vec![linked(
                &c,
                company("lead_9", "Nine", Some("https://b.com")),
                company("99", "Ninety", a),
                None,
            )],
            unlinked: vec![
                seen(&c, Crm::Close, company("lead_1", "One", a)),
                seen(&c, Crm::HubSpot, company("11", "Eleven", a)),
            ],
            ..Input::default()
        };
        let p = plan(&c, ObjectKind::Company, input, &RefTable::default());
        assert_eq!(p.creates().count(), 0, "no copy of a record under review");
        let queued: Vec<&str> = p.ambiguous.iter().map(|a| a.record.id.as_str()).collect();
        assert_eq!(queued, ["lead_1", "11"]);
        assert_eq!(p.ambiguous[1].candidates.len(), 1);
        assert_eq!(p.ambiguous[1].candidates[0].id, "lead_1");
        assert!(p.groups.is_empty(), "{:?}", p.groups);
    }

    #[test]
    fn a_record_matching_into_a_linked_record_is_queued_with_every_record_it_joined() {
        let c = cfg();
        let website = Some("https://d.com");
        // Close's "Acme" (no website) matches HubSpot's by name, which matches the linked
        // pair by domain: one component holding two records of each CRM.
        let input = Input {
            // HubSpot's side of the link renamed since the last sync.
            linked: vec![linked(
                &c,
                company("lead_9", "Delta", website),
                company("99", "Delta Two", website),
                Some((
                    &company("lead_9", "Delta", website),
                    &company("99", "Delta", website),
                )),
            )],
            unlinked: vec![
                seen(&c, Crm::Close, company("lead_1", "Acme", None)),
                seen(&c, Crm::HubSpot, company("11", "Acme", website)),
            ],
            ..Input::default()
        };
        let p = plan(&c, ObjectKind::Company, input, &RefTable::default());
        assert!(
            p.groups.is_empty(),
            "nothing linked or written: {:?}",
            p.groups
        );
        let queued = |id: &str| {
            let a = p.ambiguous.iter().find(|a| a.record.id == id).unwrap();
            let mut ids: Vec<&str> = a.candidates.iter().map(|r| r.id.as_str()).collect();
            ids.sort_unstable();
            ids
        };
        assert_eq!(p.ambiguous.len(), 2, "{:?}", p.ambiguous);
        assert_eq!(queued("lead_1"), ["11", "99", "lead_9"]);
        assert_eq!(queued("11"), ["99", "lead_1", "lead_9"]);
        // The link's change is not lost: it waits on the retry list.
        let waiting: Vec<&str> = p.errors.iter().map(|e| e.record.id.as_str()).collect();
        assert_eq!(waiting, ["99"], "{:?}", p.errors);
    }

    fn linked(
        c: &Config,
        close: Record,
        hs: Record,
        base_from: Option<(&Record, &Record)>,
    ) -> (LinkState, Sides) {
        let sc = seen(c, Crm::Close, close);
        let sh = seen(c, Crm::HubSpot, hs);
        let (bc, bh) = match base_from {
            Some((a, b)) => (
                seen(c, Crm::Close, a.clone()),
                seen(c, Crm::HubSpot, b.clone()),
            ),
            None => (sc.clone(), sh.clone()),
        };
        let link = LinkState {
            key: "1".into(),
            ids: [
                (Crm::Close, sc.id().to_string()),
                (Crm::HubSpot, sh.id().to_string()),
            ]
            .into(),
            hashes: [
                (Crm::Close, bc.hash.to_string()),
                (Crm::HubSpot, bh.hash.to_string()),
            ]
            .into(),
            bases: [(Crm::Close, bc.fields), (Crm::HubSpot, bh.fields)].into(),
        };
        (link, [(Crm::Close, sc), (Crm::HubSpot, sh)].into())
    }

    /// Plans one linked record of `kind`.
    fn plan_linked(
        c: &Config,
        kind: ObjectKind,
        link: (LinkState, Sides),
        refs: &dyn Refs,
    ) -> Plan {
        let input = Input {
            linked: vec![link],
            ..Input::default()
        };
        plan(c, kind, input, refs)
    }

    #[test]
    fn an_unchanged_link_writes_nothing_and_an_echo_is_not_sent_back() {
        let c = cfg();
        let a = company("lead_1", "Acme", None);
        let b = company("11", "Acme", None);
        let p = plan(
            &c,
            ObjectKind::Company,
            Input {
                linked: vec![linked(&c, a.clone(), b.clone(), None)],
                ..Input::default()
            },
            &RefTable::default(),
        );
        assert!(p.is_empty() && p.groups.is_empty());
        assert_eq!((p.unchanged, p.echoes), (1, 2));

        let renamed = company("lead_1", "Acme Two", None);
        let p = plan(
            &c,
            ObjectKind::Company,
            Input {
                linked: vec![linked(&c, renamed, b.clone(), Some((&a, &b)))],
                ..Input::default()
            },
            &RefTable::default(),
        );
        let ups: Vec<_> = p.updates().collect();
        assert_eq!(ups.len(), 1);
        assert_eq!(
            ups[0].1.target,
            RecordRef::new(Crm::HubSpot, ObjectKind::Company, "11")
        );
        assert_eq!(
            ups[0].1.changes,
            vec![FieldChange {
                field: "name".into(),
                from: Some(json!("Acme")),
                to: Some(json!("Acme Two"))
            }]
        );
        assert_eq!(p.echoes, 1, "HubSpot's unchanged side");
    }

    #[test]
    fn a_field_the_target_cannot_hold_is_not_planned() {
        // `tier` is a Close custom field HubSpot has no property for.
        let mut c = cfg();
        c.company.custom.insert(
            "tier".into(),
            crate::config::CustomField {
                close: Some("custom.cf_tier".into()),
                ..crate::config::CustomField::default()
            },
        );
        let tiered = |id: &str, name: &str, tier: &str| {
            let mut r = company(id, name, None);
            r.custom_mut().insert("cf_tier".into(), json!(tier));
            r
        };
        let (a, b) = (
            tiered("lead_1", "Acme", "gold"),
            company("11", "Acme", None),
        );
        let plan_for = |close: Record| {
            plan(
                &c,
                ObjectKind::Company,
                Input {
                    linked: vec![linked(&c, close, b.clone(), Some((&a, &b)))],
                    ..Input::default()
                },
                &RefTable::default(),
            )
        };
        let p = plan_for(tiered("lead_1", "Acme", "platinum"));
        assert!(p.is_empty(), "nothing HubSpot can hold changed: {p:?}");
        let p = plan_for(tiered("lead_1", "Acme Two", "platinum"));
        let ups: Vec<_> = p.updates().collect();
        assert_eq!(ups.len(), 1);
        let fields: Vec<&str> = ups[0].1.changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["name"]);
    }

    #[test]
    fn values_held_apart_are_queued_unless_a_crm_keeping_them_explains_it() {
        // Each side's base is its own values (a relinked merge winner's, say): the names
        // differ only in case and punctuation, the urls for real. Close's description is
        // an edit, so the link is planned.
        let c = cfg();
        let with = |r: Record, description: Option<&str>| match r {
            Record::Company(co) => Record::Company(Company {
                description: description.map(Into::into),
                ..co
            }),
            other => other,
        };
        let close_base = company("lead_1", "Acme Inc", Some("https://a.example"));
        let hs = company("11", "ACME, inc.", Some("https://b.example"));
        let p = plan(
            &c,
            ObjectKind::Company,
            Input {
                linked: vec![linked(
                    &c,
                    with(close_base.clone(), Some("new")),
                    hs.clone(),
                    Some((&close_base, &hs)),
                )],
                ..Input::default()
            },
            &RefTable::default(),
        );
        let g = &p.groups[0];
        let fields: Vec<&str> = g.conflicts.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["url"], "{:?}", g.conflicts);
        let ups: Vec<_> = p.updates().collect();
        assert_eq!(ups.len(), 1, "{ups:?}");
        let changed: Vec<&str> = ups[0].1.changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(changed, ["description"], "nothing else written");
    }

    #[test]
    fn a_relinked_winners_gap_is_filled_from_values_held_alike_in_different_forms() {
        // Salesforce holds the number as typed, Close its E.164 of it; HubSpot's record is
        // a merge winner relinked with its own values as its base, never holding one: it
        // takes the number, in Salesforce's form (Close's is its own shaping).
        let c = Config::new(vec![Crm::Close, Crm::HubSpot, Crm::Salesforce]);
        let person = |id: &str, phones: &[&str]| {
            Record::Person(Person {
                id: Some(id.into()),
                name: "Bob Stone".into(),
                emails: vec!["bob@acme.com".into()],
                phones: phones.iter().map(|p| p.to_string()).collect(),
                ..Person::default()
            })
        };
        let sides: Sides = [
            (
                Crm::Close,
                seen(&c, Crm::Close, person("cont_1", &["+14155550100"])),
            ),
            (Crm::HubSpot, seen(&c, Crm::HubSpot, person("11", &[]))),
            (
                Crm::Salesforce,
                seen(&c, Crm::Salesforce, person("003A", &["(415) 555-0100"])),
            ),
        ]
        .into();
        let link = LinkState {
            key: "1".into(),
            ids: sides
                .iter()
                .map(|(crm, s)| (crm, s.id().to_string()))
                .collect(),
            hashes: [Crm::Close, Crm::Salesforce]
                .into_iter()
                .map(|crm| (crm, sides[&crm].hash.to_string()))
                .collect(),
            bases: sides
                .iter()
                .map(|(crm, s)| (crm, s.fields.clone()))
                .collect(),
        };
        let p = plan_linked(&c, ObjectKind::Person, (link, sides), &RefTable::default());
        assert!(
            p.groups[0].conflicts.is_empty(),
            "{:?}",
            p.groups[0].conflicts
        );
        let ups: Vec<_> = p.updates().collect();
        assert_eq!(ups.len(), 1, "{ups:?}");
        assert_eq!(ups[0].1.target.crm, Crm::HubSpot);
        let phones = ups[0]
            .1
            .changes
            .iter()
            .find(|ch| ch.field.as_str() == "phones");
        assert_eq!(
            phones.map(|ch| ch.to.clone()),
            Some(Some(json!(["(415) 555-0100"]))),
            "{ups:?}"
        );
    }

    #[test]
    fn manual_conflicts_write_nothing_for_the_field() {
        let mut c = cfg();
        c.company.conflict.policy = Some(PolicyKind::Manual);
        let a = company("lead_1", "Acme", None);
        let b = company("11", "Acme", None);
        let p = plan(
            &c,
            ObjectKind::Company,
            Input {
                linked: vec![linked(
                    &c,
                    company("lead_1", "Acme C", None),
                    company("11", "Acme H", None),
                    Some((&a, &b)),
                )],
                ..Input::default()
            },
            &RefTable::default(),
        );
        assert_eq!(p.groups[0].conflicts.len(), 1);
        assert!(p.is_empty());
    }

    #[test]
    fn references_are_translated_through_links_and_deals_match_within_their_company() {
        let c = cfg();
        let refs = company_links(&[("lead_1", "11")]);
        let person = Record::Person(Person {
            id: Some("cont_1".into()),
            name: "Ann".into(),
            emails: vec!["ann@acme.com".into()],
            company_id: Some("lead_1".into()),
            ..Person::default()
        });
        let p = plan(
            &c,
            ObjectKind::Person,
            Input {
                unlinked: vec![seen(&c, Crm::Close, person)],
                ..Input::default()
            },
            &refs,
        );
        let (_, create) = p.creates().next().expect("a create");
        assert_eq!(create.fields["company"], Some(json!("11")));
        let Record::Person(made) = &create.record else {
            panic!()
        };
        assert_eq!(made.company_id.as_deref(), Some("11"));

        let deal = |crm_company: &str, id: &str, amount| {
            Record::Deal(Deal {
                id: Some(id.into()),
                name: "Renewal 2025".into(),
                company_id: Some(crm_company.into()),
                amount: Some(Money::new(amount, "USD")),
                ..Deal::default()
            })
        };
        let p = plan(
            &c,
            ObjectKind::Deal,
            Input {
                unlinked: vec![
                    seen(&c, Crm::Close, deal("lead_1", "oppo_1", 10_000)),
                    seen(&c, Crm::HubSpot, deal("11", "d1", 10_000)),
                ],
                ..Input::default()
            },
            &refs,
        );
        assert_eq!(p.groups.len(), 1, "{p:?}");
        assert_eq!(p.groups[0].ids.len(), 2);
        assert!(p.is_empty(), "same values: a link and nothing to write");
    }

    #[test]
    fn a_reference_that_cannot_be_compared_yet_is_skipped_and_listed() {
        let c = cfg();
        let refs = company_links(&[("lead_1", "11"), ("lead_2", "12")]);
        // An empty company: the person is under none.
        let person = |id: &str, name: &str, company: &str| {
            Record::Person(Person {
                id: Some(id.into()),
                name: name.into(),
                emails: vec!["ann@acme.com".into()],
                company_id: (!company.is_empty()).then(|| company.into()),
                ..Person::default()
            })
        };
        let planned = |hs_now: &str, hs_base: &str| {
            let (link, sides) = linked(
                &c,
                person("cont_1", "Ann Lee", "lead_1"),
                person("21", "Ann", hs_now),
                Some((
                    &person("cont_1", "Ann", "lead_1"),
                    &person("21", "Ann", hs_base),
                )),
            );
            plan_linked(&c, ObjectKind::Person, (link, sides), &refs)
        };
        // HubSpot's record names company 99, linked nowhere: the company cannot be
        // compared this run, while the rename in Close is planned.
        let p = planned("99", "11");
        assert_eq!(p.groups.len(), 1, "{p:?}");
        assert_eq!(p.groups[0].skipped, [Field::new("company")], "{p:?}");
        assert_eq!(p.updates().count(), 1, "the rename still goes: {p:?}");
        assert!(
            p.updates()
                .all(|(_, u)| u.changes.iter().all(|c| c.field != "company")),
            "{p:?}"
        );

        // Its base names company 99 and its record company 12: HubSpot moved the person
        // from a company no longer linked to one that is, and the move goes to Close.
        let p = planned("12", "99");
        assert!(p.groups[0].skipped.is_empty(), "{p:?}");
        let to_close = p
            .updates()
            .find(|(_, u)| u.target.crm == Crm::Close)
            .expect("Close is patched");
        let moved = to_close.1.changes.iter().find(|c| c.field == "company");
        assert_eq!(
            moved.and_then(|c| c.to.clone()),
            Some(json!("lead_2")),
            "{p:?}"
        );

        // Its base names company 99 and its record none: the company it was under is gone
        // from the link table, and the association with it went too. That is no clear for
        // Close (a Close contact is always under a lead): the company is left alone.
        let p = planned("", "99");
        assert_eq!(p.groups[0].skipped, [Field::new("company")], "{p:?}");
        assert_eq!(close_change(&p, "company"), None, "{p:?}");
        assert_eq!(p.updates().count(), 1, "the rename still goes: {p:?}");
    }

    #[test]
    fn delete_policies() {
        for (policy, targets) in [
            (DeletePolicy::Ignore, 0),
            (DeletePolicy::Flag, 0),
            (DeletePolicy::Propagate, 1),
        ] {
            let mut c = cfg();
            c.company.delete = policy;
            let (link, _) = linked(
                &c,
                company("lead_1", "A", None),
                company("11", "A", None),
                None,
            );
            let p = plan(
                &c,
                ObjectKind::Company,
                Input {
                    deleted: vec![(
                        RecordRef::new(Crm::Close, ObjectKind::Company, "lead_1"),
                        link,
                    )],
                    ..Input::default()
                },
                &RefTable::default(),
            );
            assert_eq!(p.deletions.len(), 1);
            assert_eq!(p.deletions[0].targets.len(), targets, "{policy:?}");
            assert_eq!(p.deletions[0].policy, policy);
        }
    }

    /// HubSpot company 11 was merged into 12 and the link relinked ({lead_1, 12}): 11 is in
    /// no link any more, and the table knows the merge. HubSpot's contact follows the merge
    /// (11 -> 12), which is lead_1's record all along: no user moved it.
    fn merged_company_case(policy: PolicyKind, close_base: &str, close_now: &str) -> Plan {
        let mut refs = company_links(&[("lead_1", "12"), ("lead_2", "13")]);
        refs.merged(ObjectKind::Company, Crm::HubSpot, "11", "12");
        person_case(policy, &refs, (close_base, close_now), ("11", "12"))
    }

    /// A table linking each (Close lead, HubSpot company) pair.
    fn company_links(pairs: &[(&str, &str)]) -> RefTable {
        let mut refs = RefTable::default();
        for (lead, hs) in pairs {
            refs.link(
                ObjectKind::Company,
                [
                    (Crm::Close, lead.to_string()),
                    (Crm::HubSpot, hs.to_string()),
                ]
                .into(),
            );
        }
        refs
    }

    /// The plan of a contact linked in Close and HubSpot whose company was `(base, now)` in
    /// each (an empty id: under none), HubSpot's record modified after Close's.
    fn person_case(
        policy: PolicyKind,
        refs: &RefTable,
        close: (&str, &str),
        hs: (&str, &str),
    ) -> Plan {
        let mut c = cfg();
        c.person.conflict.policy = Some(policy);
        let person = |id: &str, company: &str, at: &str| {
            Record::Person(Person {
                id: Some(id.into()),
                name: "Ann".into(),
                emails: vec!["ann@acme.com".into()],
                company_id: (!company.is_empty()).then(|| company.into()),
                updated_at: crmkit_core::time::parse_timestamp(at),
                ..Person::default()
            })
        };
        let (link, sides) = linked(
            &c,
            person("cont_1", close.1, "2024-01-01T00:00:00Z"),
            person("21", hs.1, "2024-01-02T00:00:00Z"),
            Some((
                &person("cont_1", close.0, "2023-01-01T00:00:00Z"),
                &person("21", hs.0, "2023-01-01T00:00:00Z"),
            )),
        );
        plan_linked(&c, ObjectKind::Person, (link, sides), refs)
    }

    /// The change of `field` the plan makes to the HubSpot record, if any.
    fn hs_change(p: &Plan, field: &str) -> Option<FieldChange> {
        p.updates()
            .filter(|(_, u)| u.target.crm == Crm::HubSpot)
            .flat_map(|(_, u)| u.changes.iter())
            .find(|c| c.field == field)
            .cloned()
    }

    /// HubSpot company 11 (linked to lead_1) was merged into 12 (linked to lead_2), and the
    /// merge went to review: 11's link still names it, noted gone. lead_3 is linked to 13.
    fn merge_in_review() -> RefTable {
        let mut refs = company_links(&[("lead_1", "11"), ("lead_2", "12"), ("lead_3", "13")]);
        refs.gone(ObjectKind::Company, Crm::HubSpot, "11");
        refs.merged_apart(ObjectKind::Company, Crm::HubSpot, "11", "12");
        refs
    }

    #[test]
    fn a_move_made_by_a_merge_in_review_is_followed_where_nobody_moved_the_record() {
        for policy in [PolicyKind::LastWriteWins, PolicyKind::Manual] {
            let p = person_case(
                policy,
                &merge_in_review(),
                ("lead_1", "lead_1"),
                ("11", "12"),
            );
            let to = close_change(&p, "company").and_then(|c| c.to);
            assert_eq!(to, Some(json!("lead_2")), "{policy:?}: {p:?}");
            assert!(p.groups[0].conflicts.is_empty(), "{policy:?}: {p:?}");
        }
    }

    #[test]
    fn a_move_made_by_a_merge_in_review_never_undoes_a_users_move() {
        // Close's user moved the contact to lead_3; HubSpot's record, the newer, only
        // followed the merge.
        for policy in [PolicyKind::LastWriteWins, PolicyKind::Manual] {
            let p = person_case(
                policy,
                &merge_in_review(),
                ("lead_1", "lead_3"),
                ("11", "12"),
            );
            assert_eq!(close_change(&p, "company"), None, "{policy:?}: {p:?}");
            let to = hs_change(&p, "company").and_then(|c| c.to);
            assert_eq!(to, Some(json!("13")), "{policy:?}: {p:?}");
        }
    }

    #[test]
    fn a_reference_to_a_deleted_record_is_never_written() {
        // Close (primary) holds lead_1, whose HubSpot company 11 is deleted; HubSpot's
        // contact lost the association with it. Nothing is written to HubSpot's company.
        let mut refs = company_links(&[("lead_1", "11"), ("lead_3", "13")]);
        refs.gone(ObjectKind::Company, Crm::HubSpot, "11");
        let p = person_case(
            PolicyKind::LastWriteWins,
            &refs,
            ("lead_1", "lead_1"),
            ("11", ""),
        );
        assert_eq!(
            close_change(&p, "company"),
            None,
            "no clear for Close: {p:?}"
        );
        assert_eq!(p.groups[0].skipped, [Field::new("company")], "{p:?}");
        // Close's user moves a contact HubSpot holds under no company to lead_1, whose
        // HubSpot company is gone: reported, not written.
        let p = person_case(
            PolicyKind::LastWriteWins,
            &refs,
            ("lead_3", "lead_1"),
            ("", ""),
        );
        assert_eq!(hs_change(&p, "company"), None, "{p:?}");
        assert!(
            p.notices
                .iter()
                .any(|e| e.message.contains("deleted in hubspot")),
            "a notice: {p:?}"
        );
        assert!(p.errors.is_empty(), "not a failure: {p:?}");
        assert!(!p.groups[0].deferred, "{p:?}");
    }

    /// Close, HubSpot and Salesforce each linking lead_n, 1n and 001<letter>.
    fn three_crm_links() -> RefTable {
        let mut refs = RefTable::default();
        for (lead, hs, sf) in [
            ("lead_1", "11", "001A"),
            ("lead_2", "12", "001B"),
            ("lead_3", "13", "001C"),
        ] {
            refs.link(
                ObjectKind::Company,
                [
                    (Crm::Close, lead.to_string()),
                    (Crm::HubSpot, hs.to_string()),
                    (Crm::Salesforce, sf.to_string()),
                ]
                .into(),
            );
        }
        refs
    }

    /// A contact of Close, HubSpot and Salesforce (ids cont_1, 21, 003A), each with its
    /// company `(base, now)` (an empty id: under none), modified on the given day of 2024.
    fn three_crm_person(refs: &RefTable, companies: [(&str, &str, u32); 3]) -> Plan {
        let c = Config::new(vec![Crm::Close, Crm::HubSpot, Crm::Salesforce]);
        three_crm_person_in(&c, refs, companies, None)
    }

    /// [`three_crm_person`] under `c`, the record of `retitled` given a new title.
    fn three_crm_person_in(
        c: &Config,
        refs: &RefTable,
        companies: [(&str, &str, u32); 3],
        retitled: Option<Crm>,
    ) -> Plan {
        let mut ids = PerCrm::new();
        let mut hashes = PerCrm::new();
        let mut bases = PerCrm::new();
        let mut sides: Sides = PerCrm::new();
        let crms = [
            (Crm::Close, "cont_1"),
            (Crm::HubSpot, "21"),
            (Crm::Salesforce, "003A"),
        ];
        for ((crm, id), (base, now, day)) in crms.into_iter().zip(companies) {
            let person = |company: &str, day: u32| {
                Record::Person(Person {
                    id: Some(id.into()),
                    name: "Ann".into(),
                    emails: vec!["ann@acme.com".into()],
                    title: (day > 1 && retitled == Some(crm)).then(|| "VP".into()),
                    company_id: (!company.is_empty()).then(|| company.into()),
                    updated_at: crmkit_core::time::parse_timestamp(&format!(
                        "2024-01-{day:02}T00:00:00Z"
                    )),
                    ..Person::default()
                })
            };
            let b = seen(c, crm, person(base, 1));
            ids.insert(crm, id.to_string());
            hashes.insert(crm, b.hash.to_string());
            bases.insert(crm, b.fields);
            sides.insert(crm, seen(c, crm, person(now, day)));
        }
        let link = LinkState {
            key: "1".into(),
            ids,
            hashes,
            bases,
        };
        plan_linked(c, ObjectKind::Person, (link, sides), refs)
    }

    /// HubSpot company 11 (lead_1's) merged into 12 (lead_2's) under review, and
    /// Salesforce account 001A (lead_1's) deleted.
    fn survivor_and_gone_apart() -> RefTable {
        let mut refs = three_crm_links();
        refs.gone(ObjectKind::Company, Crm::HubSpot, "11");
        refs.merged_apart(ObjectKind::Company, Crm::HubSpot, "11", "12");
        refs.gone(ObjectKind::Company, Crm::Salesforce, "001A");
        refs
    }

    #[test]
    fn a_record_created_under_a_survivor_keeps_its_company_held_apart_in_three_crms() {
        // Ann, added in Close under lead_1: created in HubSpot under 12 (11 merged into it,
        // under review) and in Salesforce under none (001A deleted), both reported.
        let refs = survivor_and_gone_apart();
        let c = Config::new(vec![Crm::Close, Crm::HubSpot, Crm::Salesforce]);
        let person = Record::Person(Person {
            id: Some("cont_9".into()),
            name: "Ann".into(),
            emails: vec!["ann@acme.com".into()],
            company_id: Some("lead_1".into()),
            ..Person::default()
        });
        let input = Input {
            unlinked: vec![seen(&c, Crm::Close, person)],
            ..Input::default()
        };
        let p = plan(&c, ObjectKind::Person, input, &refs);
        let company = |crm: Crm| {
            p.groups[0]
                .creates
                .iter()
                .find(|x| x.target == crm)
                .map(|x| x.fields.get("company").cloned())
        };
        assert_eq!(
            company(Crm::HubSpot),
            Some(Some(Some(json!("12")))),
            "{p:?}"
        );
        assert_eq!(company(Crm::Salesforce), Some(None), "{p:?}");
        // Notices, not failures: both records are created, the group is synced.
        assert!(p.errors.is_empty() && !p.groups[0].deferred, "{p:?}");
        let notices: Vec<&str> = p.notices.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            notices,
            [
                "created in hubspot under 12: its company 11 was merged into it \
                 (merge under review)",
                "created without it in salesforce: its company names a record deleted \
                 there (or merged away, under review)",
            ],
            "{p:?}"
        );
        // The next run, Close's title edited: the company stays as it is everywhere, with
        // no conflict, under any policy, until the review decides the merge.
        for primary in [None, Some(Crm::HubSpot), Some(Crm::Salesforce)] {
            let mut c = Config::new(vec![Crm::Close, Crm::HubSpot, Crm::Salesforce]);
            if primary.is_some() {
                c.person.conflict.policy = Some(PolicyKind::Primary);
                c.person.conflict.primary = primary;
            }
            let p = three_crm_person_in(
                &c,
                &refs,
                [("lead_1", "lead_1", 2), ("12", "12", 2), ("", "", 2)],
                Some(Crm::Close),
            );
            let g = &p.groups[0];
            let company_written = p
                .updates()
                .any(|(_, u)| u.changes.iter().any(|ch| ch.field == "company"));
            assert!(!company_written, "{primary:?}: {p:?}");
            assert!(g.conflicts.is_empty(), "{primary:?}: {p:?}");
            assert_eq!(g.skipped, [Field::new("company")], "{primary:?}: {p:?}");
            let title = p
                .updates()
                .filter(|(_, u)| u.target.crm == Crm::HubSpot)
                .flat_map(|(_, u)| u.changes.iter())
                .find(|ch| ch.field == "title")
                .and_then(|ch| ch.to.clone());
            assert_eq!(title, Some(json!("VP")), "{primary:?}: {p:?}");
        }
        // A user's move afterwards is settled as usual: Close's move to lead_3 reaches both.
        let p = three_crm_person(
            &refs,
            [("lead_1", "lead_3", 3), ("12", "12", 2), ("", "", 2)],
        );
        assert!(p.groups[0].skipped.is_empty(), "{p:?}");
        assert_eq!(
            hs_change(&p, "company").and_then(|c| c.to),
            Some(json!("13"))
        );
    }

    #[test]
    fn a_users_move_wins_over_a_merge_in_review_into_an_unlinked_record() {
        // Close lead_1 was merged into lead_9 (linked nowhere, unreadable yet) under review,
        // which moved the contact there; HubSpot's user moved it 11 -> 13 meanwhile. The
        // merge's move is no one's edit against it: the user's move wins, Close's record
        // the newer notwithstanding.
        let mut refs = company_links(&[("lead_1", "11"), ("lead_3", "13")]);
        refs.gone(ObjectKind::Company, Crm::Close, "lead_1");
        refs.merged_apart(ObjectKind::Company, Crm::Close, "lead_1", "lead_9");
        let mut c = cfg();
        c.person.conflict.policy = Some(PolicyKind::LastWriteWins);
        let person = |id: &str, company: &str, at: &str| {
            Record::Person(Person {
                id: Some(id.into()),
                name: "Ann".into(),
                emails: vec!["ann@acme.com".into()],
                company_id: Some(company.into()),
                updated_at: crmkit_core::time::parse_timestamp(at),
                ..Person::default()
            })
        };
        let (link, sides) = linked(
            &c,
            person("cont_1", "lead_9", "2024-01-03T00:00:00Z"),
            person("21", "13", "2024-01-02T00:00:00Z"),
            Some((
                &person("cont_1", "lead_1", "2023-01-01T00:00:00Z"),
                &person("21", "11", "2023-01-01T00:00:00Z"),
            )),
        );
        let p = plan_linked(&c, ObjectKind::Person, (link, sides), &refs);
        let to = close_change(&p, "company").and_then(|c| c.to);
        assert_eq!(to, Some(json!("lead_3")), "{p:?}");
        assert_eq!(hs_change(&p, "company"), None, "{p:?}");
    }

    #[test]
    fn a_difference_a_writable_value_explains_is_still_the_rules_to_settle() {
        // Close lead_1, HubSpot none (a clear Close refused), Salesforce 001C: nobody
        // touched the company since. Salesforce's value could be written to both others, so
        // the primary (Salesforce) settles it when Close's title changes.
        let mut c = Config::new(vec![Crm::Close, Crm::HubSpot, Crm::Salesforce]);
        c.person.conflict.policy = Some(PolicyKind::Primary);
        c.person.conflict.primary = Some(Crm::Salesforce);
        let p = three_crm_person_in(
            &c,
            &three_crm_links(),
            [("lead_1", "lead_1", 2), ("", "", 2), ("001C", "001C", 2)],
            Some(Crm::Close),
        );
        assert!(p.groups[0].skipped.is_empty(), "{p:?}");
        let to = close_change(&p, "company").and_then(|c| c.to);
        assert_eq!(to, Some(json!("lead_3")), "{p:?}");
    }

    #[test]
    fn a_users_move_wins_over_merges_in_review_in_other_crms() {
        // HubSpot 11 -> 12 and Salesforce 001A -> 001B, both merges in review. HubSpot's
        // user then moved the contact to 13; Salesforce's contact was only moved by its
        // merge, and its record is the newest. The user's move reaches Close.
        let mut refs = three_crm_links();
        refs.gone(ObjectKind::Company, Crm::HubSpot, "11");
        refs.merged_apart(ObjectKind::Company, Crm::HubSpot, "11", "12");
        refs.gone(ObjectKind::Company, Crm::Salesforce, "001A");
        refs.merged_apart(ObjectKind::Company, Crm::Salesforce, "001A", "001B");
        let p = three_crm_person(
            &refs,
            [
                ("lead_1", "lead_1", 2),
                ("11", "13", 3),
                ("001A", "001B", 4),
            ],
        );
        let to = close_change(&p, "company").and_then(|c| c.to);
        assert_eq!(to, Some(json!("lead_3")), "{p:?}");
        // With Salesforce's account deleted instead (its contact under none), the move
        // is not left out with the field.
        let mut refs = three_crm_links();
        refs.gone(ObjectKind::Company, Crm::HubSpot, "11");
        refs.merged_apart(ObjectKind::Company, Crm::HubSpot, "11", "12");
        refs.gone(ObjectKind::Company, Crm::Salesforce, "001A");
        let p = three_crm_person(
            &refs,
            [("lead_1", "lead_1", 2), ("11", "13", 3), ("001A", "", 4)],
        );
        let to = close_change(&p, "company").and_then(|c| c.to);
        assert_eq!(to, Some(json!("lead_3")), "{p:?}");
        // And where HubSpot's contact was only moved by the merge, the merge's move is
        // followed, Salesforce's lost association notwithstanding.
        let p = three_crm_person(
            &refs,
            [("lead_1", "lead_1", 2), ("11", "12", 3), ("001A", "", 4)],
        );
        let to = close_change(&p, "company").and_then(|c| c.to);
        assert_eq!(to, Some(json!("lead_2")), "{p:?}");
    }

    #[test]
    fn a_new_record_under_a_company_gone_in_a_crm_is_created_elsewhere() {
        // A new Close contact under lead_1, whose HubSpot company 11 is deleted: created in
        // HubSpot under no company and in Salesforce under 001A, never waiting; where 11
        // was merged into 12 under review instead, created in HubSpot under 12.
        let mut refs = three_crm_links();
        refs.gone(ObjectKind::Company, Crm::HubSpot, "11");
        let mut merged = refs.clone();
        merged.merged_apart(ObjectKind::Company, Crm::HubSpot, "11", "12");
        let c = Config::new(vec![Crm::Close, Crm::HubSpot, Crm::Salesforce]);
        let new_ann = |refs: &RefTable| {
            let person = Record::Person(Person {
                id: Some("cont_9".into()),
                name: "Ann".into(),
                emails: vec!["ann@acme.com".into()],
                company_id: Some("lead_1".into()),
                ..Person::default()
            });
            let input = Input {
                unlinked: vec![seen(&c, Crm::Close, person)],
                ..Input::default()
            };
            plan(&c, ObjectKind::Person, input, refs)
        };
        let hs_company = |p: &Plan| {
            let to_hubspot = p.groups[0]
                .creates
                .iter()
                .find(|c| c.target == Crm::HubSpot);
            to_hubspot.map(|c| c.fields.get("company").cloned())
        };
        let p = new_ann(&merged);
        assert_eq!(hs_company(&p), Some(Some(Some(json!("12")))), "{p:?}");
        assert!(p.errors.is_empty() && !p.groups[0].deferred, "{p:?}");
        let notices: Vec<&str> = p.notices.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            notices,
            ["created in hubspot under 12: its company 11 was merged into it (merge under review)"],
            "reported: {p:?}"
        );
        // A survivor linked nowhere (deleted since) names nothing to go under.
        let mut unlinked = refs.clone();
        unlinked.merged_apart(ObjectKind::Company, Crm::HubSpot, "11", "99");
        let p = new_ann(&unlinked);
        assert_eq!(hs_company(&p), Some(None), "{p:?}");
        let p = new_ann(&refs);
        let g = &p.groups[0];
        assert!(!g.deferred, "{p:?}");
        let company = |crm: Crm| {
            g.creates
                .iter()
                .find(|c| c.target == crm)
                .map(|c| c.fields.get("company").cloned())
        };
        assert_eq!(company(Crm::HubSpot), Some(None), "{p:?}");
        assert_eq!(
            company(Crm::Salesforce),
            Some(Some(Some(json!("001A")))),
            "{p:?}"
        );
        assert_eq!(p.notices.len(), 1, "reported: {p:?}");
        assert!(
            p.notices[0]
                .message
                .starts_with("created without it in hubspot: "),
            "{p:?}"
        );
        assert!(p.errors.is_empty(), "not a failure: {p:?}");
    }

    #[test]
    fn a_move_that_could_not_be_written_is_not_undone_by_a_later_edit() {
        // Close's user moved the contact to lead_1, whose HubSpot company 11 is gone: not
        // written, and the bases were stored (Close lead_1, HubSpot 13). HubSpot's title is
        // edited later: neither the primary nor a conflict undoes the move.
        let mut refs = company_links(&[("lead_1", "11"), ("lead_3", "13")]);
        refs.gone(ObjectKind::Company, Crm::HubSpot, "11");
        let person = |id: &str, company: &str, title: &str| {
            Record::Person(Person {
                id: Some(id.into()),
                name: "Ann".into(),
                emails: vec!["ann@acme.com".into()],
                title: Some(title.into()),
                company_id: Some(company.into()),
                ..Person::default()
            })
        };
        for (policy, primary) in [
            (PolicyKind::Primary, Some(Crm::HubSpot)),
            (PolicyKind::Primary, Some(Crm::Close)),
            (PolicyKind::LastWriteWins, None),
            (PolicyKind::Manual, None),
        ] {
            let mut c = cfg();
            c.person.conflict.policy = Some(policy);
            c.person.conflict.primary = primary;
            let (link, sides) = linked(
                &c,
                person("cont_1", "lead_1", "CTO"),
                person("21", "13", "VP"),
                Some((
                    &person("cont_1", "lead_1", "CTO"),
                    &person("21", "13", "CTO"),
                )),
            );
            let p = plan_linked(&c, ObjectKind::Person, (link, sides), &refs);
            assert_eq!(close_change(&p, "company"), None, "{policy:?}: {p:?}");
            assert_eq!(hs_change(&p, "company"), None, "{policy:?}: {p:?}");
            assert!(p.groups[0].conflicts.is_empty(), "{policy:?}: {p:?}");
            assert!(p.errors.is_empty(), "{policy:?}: {p:?}");
            assert!(p.notices.is_empty(), "{policy:?}: {p:?}");
            let title = close_change(&p, "title").and_then(|c| c.to);
            assert_eq!(title, Some(json!("VP")), "{policy:?}: {p:?}");
        }
    }

    #[test]
    fn a_move_in_another_crm_reaches_a_side_whose_company_is_gone() {
        // HubSpot's base names company 99, in no link any more, and its contact is under
        // none; Close's user moved the contact lead_1 -> lead_2: the move reaches HubSpot.
        let refs = company_links(&[("lead_1", "11"), ("lead_2", "12")]);
        let p = person_case(
            PolicyKind::LastWriteWins,
            &refs,
            ("lead_1", "lead_2"),
            ("99", ""),
        );
        let to = hs_change(&p, "company").and_then(|c| c.to);
        assert_eq!(to, Some(json!("12")), "{p:?}");
        assert!(p.groups[0].skipped.is_empty(), "{p:?}");
    }

    /// The change of `field` the plan makes to the Close record, if any.
    fn close_change(p: &Plan, field: &str) -> Option<FieldChange> {
        p.updates()
            .filter(|(_, u)| u.target.crm == Crm::Close)
            .flat_map(|(_, u)| u.changes.iter())
            .find(|c| c.field == field)
            .cloned()
    }

    #[test]
    fn a_followed_merge_does_not_settle_a_reference_held_apart() {
        // Held apart under manual: Close lead_2, HubSpot 11 (lead_1). Nobody decided.
        let p = merged_company_case(PolicyKind::Manual, "lead_2", "lead_2");
        let written = p
            .updates()
            .any(|(_, u)| u.changes.iter().any(|ch| ch.field == "company"));
        assert!(!written, "a held-apart company overwritten: {p:?}");
        let queued: Vec<Field> = p.groups[0].conflicts.iter().map(|c| c.field).collect();
        assert_eq!(queued, [Field::new("company")], "{p:?}");
    }

    #[test]
    fn a_followed_merge_does_not_revert_an_edit_of_the_reference() {
        // Close moved the contact lead_1 -> lead_2; HubSpot only followed a company merge.
        let p = merged_company_case(PolicyKind::LastWriteWins, "lead_1", "lead_2");
        let close_company = close_change(&p, "company");
        assert_eq!(close_company, None, "Close's edit reverted: {p:?}");
    }

    #[test]
    fn a_clear_against_a_value_is_a_conflict_when_the_primary_holds_nothing() {
        // HubSpot primary, never held the description: a relinked merge winner (a base with
        // no hash), or a side synced without it (a base with its hash). Close cleared it,
        // Salesforce changed it: two changers disagree.
        for hs_synced in [false, true] {
            let mut c = Config::new(vec![Crm::Close, Crm::HubSpot, Crm::Salesforce]);
            c.company.conflict.primary = Some(Crm::HubSpot);
            let co = |id: &str, d: Option<&str>| {
                Record::Company(Company {
                    id: Some(id.into()),
                    name: "Acme".into(),
                    description: d.map(Into::into),
                    ..Company::default()
                })
            };
            let close = seen(&c, Crm::Close, co("lead_1", None));
            let hs = seen(&c, Crm::HubSpot, co("11", None));
            let sf = seen(&c, Crm::Salesforce, co("001A", Some("X")));
            let close_base = seen(&c, Crm::Close, co("lead_1", Some("Y")));
            let sf_base = seen(&c, Crm::Salesforce, co("001A", Some("Y")));
            let link = LinkState {
                key: "1".into(),
                ids: [
                    (Crm::Close, "lead_1".to_string()),
                    (Crm::HubSpot, "11".to_string()),
                    (Crm::Salesforce, "001A".to_string()),
                ]
                .into(),
                hashes: [
                    (Crm::Close, close_base.hash.to_string()),
                    (Crm::Salesforce, sf_base.hash.to_string()),
                ]
                .into_iter()
                .chain(hs_synced.then(|| (Crm::HubSpot, hs.hash.to_string())))
                .collect(),
                bases: [
                    (Crm::Close, close_base.fields.clone()),
                    (Crm::HubSpot, hs.fields.clone()),
                    (Crm::Salesforce, sf_base.fields.clone()),
                ]
                .into(),
            };
            let sides: Sides = [
                (Crm::Close, close),
                (Crm::HubSpot, hs),
                (Crm::Salesforce, sf),
            ]
            .into();
            let p = plan_linked(&c, ObjectKind::Company, (link, sides), &RefTable::default());
            let g = &p.groups[0];
            let filled = p
                .updates()
                .any(|(_, u)| u.changes.iter().any(|ch| ch.field == "description"));
            assert!(!filled, "nothing is written for the field: {p:?}");
            let queued: Vec<Field> = g.conflicts.iter().map(|c| c.field).collect();
            assert_eq!(
                queued,
                [Field::new("description")],
                "a clear against a value is queued (HubSpot synced: {hs_synced}): {p:?}"
            );
        }
    }

    /// Asserts that `p` reports one notice, containing `what`, and no failure, its group
    /// stored as synced (not deferred).
    fn noted_only(p: &Plan, what: &str) {
        assert!(p.errors.is_empty(), "not a failure: {p:?}");
        assert!(p.groups.iter().all(|g| !g.deferred), "not deferred: {p:?}");
        assert_eq!(p.notices.len(), 1, "{p:?}");
        assert!(p.notices[0].message.contains(what), "{p:?}");
    }

    #[test]
    fn a_company_clear_close_cannot_take_is_a_notice() {
        // HubSpot's user takes the contact out of its company: never sent to Close, whose
        // contacts belong to a lead; nothing a later run could do.
        let refs = company_links(&[("lead_1", "11")]);
        let p = person_case(
            PolicyKind::LastWriteWins,
            &refs,
            ("lead_1", "lead_1"),
            ("11", ""),
        );
        assert_eq!(close_change(&p, "company"), None, "{p:?}");
        noted_only(&p, "its company is not cleared in close");
    }

    #[test]
    fn an_edit_a_record_refuses_is_a_notice() {
        // A sent Close email, whose subject HubSpot's user edits: Close takes no edit of it.
        let mut c = cfg();
        c.activity.enabled = true;
        let email = |id: &str, subject: &str, at: &str| {
            let mut a = crmkit_core::Activity::new(crmkit_core::ActivityKind::Email);
            a.id = Some(id.into());
            a.subject = Some(subject.into());
            a.updated_at = crmkit_core::time::parse_timestamp(at);
            a.raw = json!({"status": "sent"});
            Record::Activity(a)
        };
        let (link, sides) = linked(
            &c,
            email("acti_1", "Hello", "2024-01-01T00:00:00Z"),
            email("31", "Hello again", "2024-01-02T00:00:00Z"),
            Some((
                &email("acti_1", "Hello", "2023-01-01T00:00:00Z"),
                &email("31", "Hello", "2023-01-01T00:00:00Z"),
            )),
        );
        let p = plan_linked(
            &c,
            ObjectKind::Activity,
            (link, sides),
            &RefTable::default(),
        );
        assert!(
            p.updates().all(|(_, u)| u.target.crm != Crm::Close),
            "{p:?}"
        );
        noted_only(&p, "not updated (subject): Close lets only draft emails");
    }

    #[test]
    fn a_contact_whose_close_lead_is_deleted_is_noted_not_created_there() {
        // A new HubSpot contact under 11, whose Close lead is deleted: a Close contact
        // needs a lead, so it is not created there; waiting would not bring the lead back.
        let mut refs = company_links(&[("lead_1", "11")]);
        refs.gone(ObjectKind::Company, Crm::Close, "lead_1");
        let c = cfg();
        let person = Record::Person(Person {
            id: Some("21".into()),
            name: "Ann".into(),
            emails: vec!["ann@acme.com".into()],
            company_id: Some("11".into()),
            ..Person::default()
        });
        let input = Input {
            unlinked: vec![seen(&c, Crm::HubSpot, person)],
            ..Input::default()
        };
        let p = plan(&c, ObjectKind::Person, input, &refs);
        assert!(p.creates().next().is_none(), "{p:?}");
        noted_only(
            &p,
            "not created in close: its company names a record deleted there",
        );
    }

    #[test]
    fn a_record_its_target_can_never_hold_is_a_notice() {
        // A HubSpot meeting: Close's API cannot create meetings, now or later.
        let mut c = cfg();
        c.activity.enabled = true;
        let mut meeting = crmkit_core::Activity::new(crmkit_core::ActivityKind::Meeting);
        meeting.id = Some("41".into());
        meeting.subject = Some("Kick-off".into());
        let input = Input {
            unlinked: vec![seen(&c, Crm::HubSpot, Record::Activity(meeting))],
            ..Input::default()
        };
        let p = plan(&c, ObjectKind::Activity, input, &RefTable::default());
        assert!(p.creates().next().is_none(), "{p:?}");
        noted_only(&p, "cannot create it in close: ");
    }
}
