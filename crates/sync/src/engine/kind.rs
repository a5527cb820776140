//! One kind's run: pull every feed since its cursor, complete linked groups, plan, apply,
//! then move the cursors.

use super::*;

/// How many merges in a row a reference to a merged-away record is followed through.
const MERGE_HOPS: usize = 16;

impl Engine {
    /// Syncs one kind; `parents_held` says a kind synced before it in this run kept its
    /// cursor. Returns whether this kind kept its cursor (the next run reads its changes
    /// again).
    pub(super) async fn run_kind(
        &self,
        kind: ObjectKind,
        run: Option<&RunId>,
        parents_held: bool,
        report: &mut Report,
    ) -> Result<bool> {
        let Some(cfg) = self.config.entity(kind) else {
            return Ok(false);
        };
        let crms = self.config.sync.crms.clone();

        // 1. Pull every feed since its cursor. A record delivered twice (the overlap window)
        // keeps its latest state.
        let mut upserts: BTreeMap<(Crm, String), Record> = BTreeMap::new();
        let mut deletes: BTreeSet<(Crm, String)> = BTreeSet::new();
        // Records merged away, with the id of the record each was merged into.
        let mut merges: Vec<(RecordRef, String)> = Vec::new();
        // Records a merge removed without naming a successor, with what their CRM said.
        let mut removed: BTreeMap<(Crm, String), String> = BTreeMap::new();
        // Deleted records whose feed named the record they were deleted with (a Close
        // contact and its lead): a cascade of crmkit's own delete is no deletion.
        let mut parents: BTreeMap<(Crm, String), RecordRef> = BTreeMap::new();
        let mut failures = retry::Failures::default();
        let mut cursors: BTreeMap<Crm, ChangeCursor> = BTreeMap::new();
        for crm in &crms {
            let key = CursorKey::new(self.pair.clone(), *crm, kind);
            let since = self
                .store
                .cursor(&key)
                .await
                .map_err(store_err)?
                .map(|c| ChangeCursor(c.value));
            let mut feed = self.conn(*crm).changes(kind, since);
            while let Some(change) = feed.try_next().await? {
                report.read += usize::from(!matches!(change, Change::Checkpoint { .. }));
                cursors.insert(*crm, change.cursor().clone());
                match change {
                    Change::Upsert { record, .. } => {
                        let Some(id) = record.id().map(str::to_string) else {
                            continue;
                        };
                        deletes.remove(&(*crm, id.clone()));
                        removed.remove(&(*crm, id.clone()));
                        parents.remove(&(*crm, id.clone()));
                        upserts.insert((*crm, id), record);
                    }
                    // Merged, not deleted: never propagated as a delete.
                    Change::Deleted {
                        record,
                        merged_into: Some(into),
                        ..
                    } => {
                        upserts.remove(&(*crm, record.id.clone()));
                        merges.push((record, into));
                    }
                    Change::Deleted { record, parent, .. } => {
                        upserts.remove(&(*crm, record.id.clone()));
                        // Once said to be gone by a merge, a plain tombstone of the same
                        // record does not make it a deletion to mirror.
                        if !removed.contains_key(&(*crm, record.id.clone())) {
                            // A tombstone that names no parent (the lead's nested one and the
                            // contact's own may both come) leaves the one that does.
                            if let Some(parent) = parent {
                                parents.insert((*crm, record.id.clone()), parent);
                            }
                            deletes.insert((*crm, record.id));
                        }
                    }
                    // Removed, not deleted, and not followable: never propagated as a delete.
                    Change::Gone { record, reason, .. } => {
                        let key = (*crm, record.id);
                        upserts.remove(&key);
                        deletes.remove(&key);
                        parents.remove(&key);
                        removed.insert(key, reason);
                    }
                    Change::Skipped {
                        record,
                        cause: SkipReason::Malformed,
                        reason,
                        ..
                    } => {
                        // Its cursor may pass it: it goes on the retry list.
                        report
                            .errors
                            .push(format!("{record}: could not be read: {reason}"));
                        failures.record(record, format!("could not be read: {reason}"));
                    }
                    Change::Skipped { .. } | Change::Checkpoint { .. } => {}
                }
            }
        }

        // A CRM's cascade of a deletion crmkit made (a Close lead deleted as a propagated
        // delete takes its contacts) is an echo of that write, not a user's deletion: noted,
        // never propagated.
        let cascaded = self
            .cascade_echoes(kind, &mut deletes, parents, run, report)
            .await?;

        let mut listed = Vec::new();
        if run.is_some() {
            // Merges first, so a winner relinked now joins its link's group below; with them
            // the merges waiting on a winner that could not be mapped, now due or changed.
            let waiting = self
                .store
                .retries(&self.pair, Some(kind))
                .await
                .map_err(store_err)?;
            let waiting =
                retry::waiting_merges(&waiting, &crms, &upserts, &merges, chrono::Utc::now());
            merges.extend(waiting);
            self.follow_merges(kind, cfg, merges, &mut upserts, &mut failures, report)
                .await?;
            self.flag_removed(kind, removed, report).await?;
            // Records on the retry list that are due, read again and planned with the feeds'.
            // Listed after the merges, whose followed losers left the list.
            listed = self
                .store
                .retries(&self.pair, Some(kind))
                .await
                .map_err(store_err)?;
            self.read_due(
                &listed,
                &mut upserts,
                &deletes,
                &cascaded,
                &mut failures,
                report,
            )
            .await?;
        }
        // The records merged into a winner still waiting to be mapped: their links name them
        // until the merge is followed. Read, one answers "not found" (taken for gone:
        // flagged for review under `propagate`) or, from HubSpot, with the winner under the
        // winner's id (a failed read); deleted, it would be the target of a propagated
        // delete. Their groups wait with the merge instead, their changed records on the
        // retry list, and a deletion linked to one goes to review.
        let waiting_losers = if run.is_some() {
            retry::waiting_losers(&listed)
        } else {
            let stored = self
                .store
                .retries(&self.pair, Some(kind))
                .await
                .map_err(store_err)?;
            retry::waiting_losers(&stored)
        };
        let seen_now: BTreeSet<RecordRef> = upserts
            .keys()
            .chain(deletes.iter())
            .map(|(crm, id)| RecordRef::new(*crm, kind, id.clone()))
            .chain(cascaded)
            .collect();

        // 2. Map, and sort into linked and unlinked records.
        let mut input = Input::default();
        let mut groups: BTreeMap<String, (LinkState, Sides)> = BTreeMap::new();
        let mut links: BTreeMap<String, Link> = BTreeMap::new();
        let mut mapped: Vec<Seen> = Vec::new();
        for ((crm, id), record) in upserts {
            match Seen::new(crm, record, cfg, true) {
                Ok(s) => mapped.push(s),
                Err(e) => {
                    report.errors.push(e.to_string());
                    let r = RecordRef::new(crm, kind, id);
                    if e.kind() == ErrorKind::Config {
                        failures.wait(r, e.to_string());
                    } else {
                        failures.record(r, e.to_string());
                    }
                }
            }
        }
        // One lookup per few hundred records, not a query each.
        let refs: Vec<RecordRef> = mapped.iter().map(Seen::reference).collect();
        let found = self
            .store
            .links_by_records(&refs)
            .await
            .map_err(store_err)?;
        for (seen, link) in mapped.into_iter().zip(found) {
            match link {
                Some(link) => {
                    let key = link.id.to_string();
                    let entry = groups
                        .entry(key.clone())
                        .or_insert_with(|| (link_state(&link), Sides::new()));
                    entry.1.insert(seen.crm, seen);
                    links.insert(key, link);
                }
                None => input.unlinked.push(seen),
            }
        }
        let gone: Vec<RecordRef> = deletes
            .into_iter()
            .map(|(crm, id)| RecordRef::new(crm, kind, id))
            .collect();
        let found = self
            .store
            .links_by_records(&gone)
            .await
            .map_err(store_err)?;
        for (r, link) in gone.into_iter().zip(found) {
            // A deletion already noted (a tombstone the feed's overlap window brings again)
            // changes nothing: the group is planned without that side.
            if let Some(link) = link.filter(|l| l.hash(r.crm) != Some(DELETED)) {
                // Changes read in the other CRMs in this run are planned again on a later
                // run, without the deleted side, rather than dropped with the group.
                if let Some((_, sides)) = groups.remove(link.id.as_str()) {
                    let others_stay = cfg.delete != DeletePolicy::Propagate;
                    for s in sides.values().filter(|s| s.fed && others_stay) {
                        failures.record(
                            s.reference(),
                            format!("planned again without its linked {r}, deleted"),
                        );
                    }
                }
                input.deleted.push((r, link_state(&link)));
                links.insert(link.id.to_string(), link);
            }
        }
        // The records of an ambiguous match still open in the review queue stay out of the
        // plan until a person decides: planned again, one of them read without the others
        // (changed later, or its feed re-read after an interrupted run while theirs had
        // moved on) would find no candidate and be created in the other CRMs, a duplicate of
        // the records it is ambiguous with.
        let in_review = self.in_review(kind).await?;
        if !in_review.is_empty() {
            input
                .unlinked
                .retain(|s| !in_review.contains(&s.reference().to_string()));
        }
        // Stored links an unlinked record may belong to (matched in an earlier run, not
        // linked in its CRM yet).
        for s in &input.unlinked {
            for link in self.stored_candidates(kind, s).await? {
                if link.crm_id(s.crm).is_none() && !groups.contains_key(link.id.as_str()) {
                    groups.insert(link.id.to_string(), (link_state(&link), Sides::new()));
                    links.insert(link.id.to_string(), link);
                }
            }
        }
        // Groups of nothing but echoes changed nowhere: counted and dropped before any read.
        let on_list: BTreeSet<RecordRef> = listed.iter().map(|r| r.record.clone()).collect();
        report.echoes += echo::drop_echoes(kind, &crms, &mut groups, &input.unlinked, &on_list);
        // Groups whose link names a record merged into a winner still waiting: they wait too.
        if !waiting_losers.is_empty() {
            groups.retain(|_, (state, sides)| {
                // A side noted gone is not read anyway: the group is planned without it.
                let Some((loser, winner)) = state
                    .ids
                    .iter()
                    .filter(|(crm, _)| state.hashes.get(crm).is_none_or(|h| h != DELETED))
                    .map(|(crm, id)| RecordRef::new(crm, kind, id.clone()))
                    .find_map(|r| waiting_losers.get_key_value(&r))
                else {
                    return true;
                };
                let why = format!(
                    "waits for the merge of its linked {loser} into {winner} \
                     (which waits to be mapped)"
                );
                for s in sides.values().filter(|s| s.fed) {
                    report.errors.push(format!("{}: {why}", s.reference()));
                    // Never given up: the wait ends when the winner is mapped.
                    failures.wait(s.reference(), why.clone());
                }
                false
            });
        }
        // Complete each linked record with the sides that did not change.
        let mut missing: Vec<(String, RecordRef)> = Vec::new();
        for (key, (state, sides)) in &groups {
            for (crm, id) in &state.ids {
                // A side known to be gone is not read again (it would answer "not found"
                // and take the group with it); the planner leaves it out.
                let gone = state.hashes.get(&crm).is_some_and(|h| h == DELETED);
                if crms.contains(&crm) && !sides.contains_key(&crm) && !gone {
                    missing.push((key.clone(), RecordRef::new(crm, kind, id.clone())));
                }
            }
        }
        let read = self.read_many(missing).await;
        for (key, r, got) in read {
            match got {
                Ok(record) => match Seen::new(r.crm, record, cfg, false) {
                    Ok(seen) => {
                        if let Some(g) = groups.get_mut(&key) {
                            g.1.insert(r.crm, seen);
                        }
                    }
                    Err(e) => {
                        report.errors.push(e.to_string());
                        if let Some((_, sides)) = groups.remove(&key) {
                            let why = format!("its linked {r} cannot be mapped: {e}");
                            for s in sides.values() {
                                failures.record(s.reference(), why.clone());
                            }
                        }
                    }
                },
                // Gone without a tombstone reaching us: maybe merged or hidden from us, not
                // deleted. Under `propagate` it is flagged, never deleted elsewhere; under
                // `ignore` and `flag` a deletion deletes nothing anyway.
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    if let Some((state, sides)) = groups.remove(&key) {
                        // The changes read in the other CRMs are planned again on a later
                        // run, without the gone side (its hash is `DELETED` by then), so
                        // with three CRMs the other two keep syncing.
                        for s in sides.values().filter(|s| s.fed) {
                            failures.record(
                                s.reference(),
                                format!("planned again without its linked {r}, which is gone"),
                            );
                        }
                        match (cfg.delete, run, links.get(&key)) {
                            (DeletePolicy::Propagate, Some(_), Some(link)) => {
                                self.flag_not_found(kind, r, link, report).await?;
                            }
                            (DeletePolicy::Propagate, _, _) => {}
                            _ => input.deleted.push((r, state)),
                        }
                    }
                }
                Err(e) => {
                    let why = format!("reading its linked {r}: {e}");
                    report.errors.push(format!("reading {r}: {e}"));
                    if let Some((_, sides)) = groups.remove(&key) {
                        failures.error(&e, sides.values().map(Seen::reference), &why);
                    }
                }
            }
        }
        input.linked = groups.into_values().collect();

        // 3. References, translated through the links of the kinds synced before; the Close
        // account's phone country code, as learned from read-backs of earlier writes.
        let refs = self.ref_table(&input).await?;
        if self.connectors.contains_key(&Crm::Close) {
            input.close_country_code = self
                .store
                .account_fact(Crm::Close, readback::CLOSE_COUNTRY_CODE)
                .await
                .map_err(store_err)?;
        }

        // 4. Plan.
        let mut plan = plan::plan(&self.config, kind, input, &refs);
        report.echoes += plan.echoes;
        // A deletion to propagate to a record merged into a waiting winner would delete by
        // the merged id, which may answer for the winner, holding both records' data: it
        // goes to review instead.
        for d in &mut plan.deletions {
            let Some((loser, winner)) = d
                .targets
                .iter()
                .find_map(|t| waiting_losers.get_key_value(t))
            else {
                continue;
            };
            report.errors.push(format!(
                "{}: deleted while its linked {loser} waits to be merged into {winner}: \
                 not propagated, queued for review",
                d.deleted
            ));
            d.policy = DeletePolicy::Flag;
            d.targets.clear();
        }
        // A record that could not be planned (a failed patch, a create whose parent is not
        // linked yet) is reported by id and reason and goes on the retry list; it does not
        // hold the cursor: a parent that stays unlinked (in review, or lost by an
        // interrupted run) would hold the kind forever.
        for e in &plan.errors {
            report.errors.push(format!("{}: {}", e.record, e.message));
            failures.wait(e.record.clone(), e.message.clone());
        }
        // What was done otherwise, or could never be done, is noted only: its group is
        // stored as synced, and waiting would change nothing.
        for n in &plan.notices {
            report.notices.push(format!("{}: {}", n.record, n.message));
        }
        report.ambiguous.extend(plan.ambiguous.iter().cloned());
        let Some(run) = run else {
            // A dry run lists every conflict its plan would queue; a run, those it opens
            // (see `apply`).
            for g in &plan.groups {
                for c in &g.conflicts {
                    report.conflicts.push(QueuedConflict::new(kind, g, c));
                }
            }
            report.plans.push(plan);
            return Ok(false);
        };
        // A deferred record does hold the cursor when the parent it may wait for could not
        // be written in this run (the parent's kind kept its cursor, so the parent is retried
        // next run): otherwise a person deferred for a company whose create failed (a 5xx)
        // would never be read again once the company is made.
        if parents_held && plan.groups.iter().any(|g| g.deferred) {
            failures.hold();
        }

        // 5. Apply; the cursors move only when everything they cover is stored: a record
        // that failed on its own is on the retry list by then (same transaction), and a
        // connection failure keeps every cursor of the kind where it was, so the next run
        // reads the same changes again, idempotently.
        self.apply(kind, run, &plan, &mut links, &mut failures, report)
            .await?;
        report.plans.push(plan);
        self.settle_kind(kind, &listed, &seen_now, failures, cursors, report)
            .await
    }

    /// The records (`crm:kind:id`) named by the open ambiguous-match reviews of `kind`.
    async fn in_review(&self, kind: ObjectKind) -> Result<BTreeSet<String>> {
        if !matching::matchable(kind) {
            return Ok(BTreeSet::new());
        }
        let reviews = self
            .store
            .open_reviews(OPEN_REVIEWS_READ)
            .await
            .map_err(store_err)?;
        let mut out = BTreeSet::new();
        for r in reviews.iter().filter(|r| r.entity == kind) {
            let record = r.candidates.get("record").into_iter();
            let candidates = r
                .candidates
                .get("candidates")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            out.extend(
                record
                    .chain(candidates)
                    .filter_map(Value::as_str)
                    .map(str::to_string),
            );
        }
        Ok(out)
    }

    /// Stored links an unlinked record matches by e-mail or domain.
    async fn stored_candidates(&self, kind: ObjectKind, s: &Seen) -> Result<Vec<Link>> {
        let mut out = Vec::new();
        match &*s.record {
            Record::Person(p) => {
                for e in p.emails.iter().filter_map(|e| matching::normalize_email(e)) {
                    out.extend(
                        self.store
                            .links_by_email(kind, &e)
                            .await
                            .map_err(store_err)?,
                    );
                }
            }
            Record::Company(c) => {
                let domain = c
                    .domain
                    .as_deref()
                    .and_then(matching::normalize_domain)
                    .or_else(|| c.url.as_deref().and_then(matching::normalize_domain));
                if let Some(d) = domain {
                    out.extend(
                        self.store
                            .links_by_domain(kind, &d)
                            .await
                            .map_err(store_err)?,
                    );
                }
            }
            _ => {}
        }
        Ok(out)
    }

    /// The links of every record a reference field of `input` points at (in a side's value
    /// or its stored base), with the sides noted gone, and for a record merged away since
    /// (a reference naming it, or any side of those links noted gone), the merges noted to
    /// the record it went into.
    async fn ref_table(&self, input: &Input) -> Result<RefTable> {
        let mut wanted: BTreeSet<RecordRef> = BTreeSet::new();
        // The references each side holds now, and those its stored base held: a side's
        // change of a reference (a contact moved to another lead) is seen only when both
        // are compared as the anchor CRM's ids.
        let now = input
            .unlinked
            .iter()
            .chain(input.linked.iter().flat_map(|(_, s)| s.values()))
            .map(|s| (s.crm, &s.fields));
        let before = input.linked.iter().flat_map(|(l, _)| l.bases.iter());
        for (crm, fields) in now.chain(before) {
            for (field, v) in fields {
                if let Some(rk) = reference_kind(field) {
                    wanted.insert(RecordRef::new(crm, rk, crate::values::reference_id(v)));
                }
            }
        }
        let mut table = RefTable::default();
        let mut done: BTreeSet<String> = BTreeSet::new();
        let wanted: Vec<RecordRef> = wanted.into_iter().collect();
        let found = self
            .store
            .links_by_records(&wanted)
            .await
            .map_err(store_err)?;
        let mut unlinked = Vec::new();
        // A side noted gone may be a merge's loser whose merge went to review (its link still
        // names it): its survivor is looked up, for a reference naming it and for a record
        // to create under it.
        let mut gone_sides: BTreeSet<RecordRef> = BTreeSet::new();
        for (r, link) in wanted.iter().zip(found) {
            match link {
                Some(link) => {
                    for crm in self.config.sync.crms.iter().copied() {
                        if let (Some(DELETED), Some(id)) = (link.hash(crm), link.crm_id(crm)) {
                            gone_sides.insert(RecordRef::new(crm, r.object, id));
                        }
                    }
                    add_link(&mut table, &mut done, r.object, &link);
                }
                None => unlinked.push(Pending::unlinked(r)),
            }
        }
        unlinked.extend(gone_sides.iter().map(Pending::apart));
        self.merged_references(&mut table, &mut done, unlinked)
            .await?;
        Ok(table)
    }

    /// Adds to `table` the merges noted from each of `pending` and the link of the record
    /// each went into: a record merged away (a base from before the merge names it) stands
    /// for it, through as many merges as were noted. A chain that reaches a record whose
    /// link still names it, noted gone (a merge sent to review), goes on from there, its
    /// end then read as [`RefTable::merged_apart`]. Each hop is one query per CRM for the
    /// merges of every id still unresolved, and one for the winners' links.
    async fn merged_references(
        &self,
        table: &mut RefTable,
        done: &mut BTreeSet<String>,
        mut pending: Vec<Pending<'_>>,
    ) -> Result<()> {
        for _ in 0..MERGE_HOPS {
            let mut next = Vec::new();
            for crm in self.config.sync.crms.iter().copied() {
                let of_crm: Vec<&Pending<'_>> =
                    pending.iter().filter(|p| p.from.crm == crm).collect();
                if of_crm.is_empty() {
                    continue;
                }
                let names: Vec<String> = of_crm
                    .iter()
                    .map(|p| gone::merged_fact(p.from.object, &p.at))
                    .collect();
                let winners = self
                    .store
                    .account_facts(crm, &names)
                    .await
                    .map_err(store_err)?;
                let merged: Vec<(&Pending<'_>, RecordRef)> = of_crm
                    .into_iter()
                    .zip(winners)
                    .filter_map(|(p, w)| w.map(|w| (p, RecordRef::new(crm, p.from.object, w))))
                    .collect();
                let now: Vec<RecordRef> = merged.iter().map(|(_, w)| w.clone()).collect();
                let links = self.store.links_by_records(&now).await.map_err(store_err)?;
                for ((p, winner), link) in merged.into_iter().zip(links) {
                    let r = p.from;
                    if p.apart {
                        table.merged_apart(r.object, crm, &r.id, &winner.id);
                    } else {
                        table.merged(r.object, crm, &r.id, &winner.id);
                    }
                    let apart = match link {
                        Some(link) => {
                            add_link(table, done, r.object, &link);
                            if link.hash(crm) != Some(DELETED) {
                                continue;
                            }
                            true
                        }
                        None => p.apart,
                    };
                    next.push(Pending {
                        from: r,
                        at: winner.id,
                        apart,
                    });
                }
            }
            if next.is_empty() {
                break;
            }
            pending = next;
        }
        Ok(())
    }
}

/// A reference whose merges are to be looked up ([`Engine::merged_references`]).
struct Pending<'a> {
    /// The reference as a base holds it.
    from: &'a RecordRef,
    /// The id whose merge is looked up next (the reference's, then each winner's).
    at: String,
    /// Whether the chain passed a record whose link still names it, noted gone.
    apart: bool,
}

impl<'a> Pending<'a> {
    /// A reference no link holds.
    fn unlinked(from: &'a RecordRef) -> Self {
        Self {
            from,
            at: from.id.clone(),
            apart: false,
        }
    }

    /// A record its link notes gone.
    fn apart(from: &'a RecordRef) -> Self {
        Self {
            apart: true,
            ..Self::unlinked(from)
        }
    }
}

/// Adds `link`'s ids to `table` as one record of `kind`, once however many references name
/// it (`done` holds the links added).
fn add_link(table: &mut RefTable, done: &mut BTreeSet<String>, kind: ObjectKind, link: &Link) {
    if done.insert(link.id.to_string()) {
        let ids = link_state(link).ids;
        for (crm, id) in &ids {
            if link.hash(crm) == Some(DELETED) {
                table.gone(kind, crm, id);
            }
        }
        table.link(kind, ids);
    }
}
