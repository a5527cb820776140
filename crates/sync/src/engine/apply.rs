//! Writing a plan: review queue, deletions, links, intents, batched creates and updates,
//! read-back and stored hashes.

use super::*;

impl Engine {
    /// Notes on `link` that its record in `crm` is deleted.
    pub(super) async fn mark_deleted(&self, link: &Link, crm: Crm) -> Result<()> {
        fenced!(
            self,
            update_link(
                link,
                &LinkUpdate::new().hash(crm, Some(DELETED.to_string()))
            )
        )
        .map(|_| ())
    }

    /// Records a write as an intent, marked sent, before it is sent: a fenced transaction,
    /// so it is also the check on the database that the run still holds its lease right
    /// before the CRM write. `None` (and an error in the report) when the store refuses it,
    /// so the write is not sent; an error when the lease was lost, which stops the run.
    async fn intent(
        &self,
        new: NewIntent,
        report: &mut Report,
    ) -> Result<Option<crmkit_store::Intent>> {
        self.intent_noting(new, None, report).await
    }

    /// [`Engine::intent`], storing with it the account fact `fact` (CRM, name, value) in the
    /// same transaction.
    async fn intent_noting(
        &self,
        new: NewIntent,
        fact: Option<(Crm, &str, &str)>,
        report: &mut Report,
    ) -> Result<Option<crmkit_store::Intent>> {
        // Tagged with the pair, so only a run holding this pair's lease reconciles it.
        let new = new.pair(self.pair.clone());
        let recorded = async {
            let mut tx = self.tx().await?;
            if let Some((crm, name, value)) = fact {
                tx.set_account_fact(crm, name, value)
                    .await
                    .map_err(store_err)?;
            }
            let pending = tx.record_intent(&new).await.map_err(store_err)?;
            let sent = tx.mark_intent_sent(&pending.id).await.map_err(store_err)?;
            tx.commit().await.map_err(store_err)?;
            Ok::<_, Error>(sent)
        }
        .await;
        match recorded {
            Ok(i) => Ok(Some(i)),
            Err(e) => {
                self.ensure_leased()?;
                report.errors.push(format!("recording a write: {e}"));
                Ok(None)
            }
        }
    }

    /// Settles (`Ok`: the id written) or fails an intent after the CRM answered.
    async fn settle(
        &self,
        intent: &crmkit_store::Intent,
        outcome: std::result::Result<&str, String>,
    ) -> Result<()> {
        match outcome {
            Ok(id) => fenced!(self, settle_intent(&intent.id, Some(id))),
            Err(e) => fenced!(self, fail_intent(&intent.id, &e)),
        }
        .map(|_| ())
    }

    /// Links `made`, created for `link`'s group, with the fields `sent` as its base, in one
    /// fenced transaction: linked without a base, a record whose read-back fails, or whose
    /// group fails elsewhere, would be new to the link next run, and under
    /// `last_write_wins` its CRM's shaping of a value (Close's E.164 of a phone number), the
    /// latest write, would overwrite the source's own. The hash [`plan::SENT`] has the next
    /// run take what it reads then as the base, but for a field someone edited meanwhile; a
    /// read-back that succeeds replaces both.
    async fn link_created(&self, link: &Link, made: &RecordRef, sent: &Sent) -> Result<Link> {
        let base: FieldMap = sent
            .iter()
            .filter_map(|(f, v)| v.clone().map(|v| (*f, v)))
            .collect();
        let update = stored_side(LinkUpdate::new(), made.crm, plan::SENT, &base);
        let mut tx = self.tx().await?;
        let linked = tx
            .set_crm_id(link, made.crm, &made.id)
            .await
            .map_err(store_err)?;
        let linked = tx.update_link(&linked, &update).await.map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok(linked)
    }

    /// Adds what was written to a relinked merge winner (a side with a base but no hash,
    /// see `Engine::relink`; `written` holds only those) in a group that failed elsewhere or
    /// waits to that side's base, as one fenced write per link. Such a group stores no new
    /// base, so without this a value filled into the winner's gap would count as never held
    /// there again next run, and be filled again over a user's clear of it.
    ///
    /// What joins the base is what the read-back showed the CRM kept of each field written
    /// (`kept`, the side's base as judged after any write), not the value sent: a value the
    /// CRM dropped would otherwise read as a clear next run and be cleared in the other
    /// CRMs. Only where the read-back failed too is the value sent taken: leaving the base
    /// as it was would have the next run fill the gap again over a user's clear, a loss
    /// more likely than a CRM dropping a value it accepted.
    async fn keep_relinked_writes(
        &self,
        written: &[(usize, RecordRef, Sent)],
        failed: &BTreeSet<usize>,
        group_links: &[Option<Link>],
        kept: &BTreeMap<(usize, Crm), FieldMap>,
    ) -> Result<()> {
        // One update per link, all its written winners' sides together: the link is
        // version-checked, so a second update of the same link would find it stale.
        let mut per_link: BTreeMap<usize, LinkUpdate> = BTreeMap::new();
        for (i, target, sent) in written.iter().filter(|(i, _, _)| failed.contains(i)) {
            let Some(link) = group_links.get(*i).and_then(Option::as_ref) else {
                continue;
            };
            let Some(mut base) = link_state(link).bases.remove(&target.crm) else {
                continue;
            };
            join_written(&mut base, sent, kept.get(&(*i, target.crm)));
            let update = per_link.remove(i).unwrap_or_default();
            per_link.insert(*i, stored_base(update, target.crm, &base));
        }
        for (i, update) in per_link {
            if let Some(link) = group_links.get(i).and_then(Option::as_ref) {
                fenced!(self, update_link(link, &update))?;
            }
        }
        Ok(())
    }

    /// Writes `plan`; what failed goes into `failures`.
    pub(super) async fn apply(
        &self,
        kind: ObjectKind,
        run: &RunId,
        plan: &Plan,
        links: &mut BTreeMap<String, Link>,
        failures: &mut retry::Failures,
        report: &mut Report,
    ) -> Result<()> {
        let cfg = self
            .config
            .entity(kind)
            .cloned()
            .unwrap_or_else(|| self.config.company.clone());

        // Ambiguous matches go to the review queue.
        for a in &plan.ambiguous {
            let candidates = json!({
                "record": a.record.to_string(),
                "candidates": a.candidates.iter().map(ToString::to_string).collect::<Vec<_>>(),
            });
            fenced!(
                self,
                enqueue_review(
                    kind,
                    &candidates,
                    "ambiguous match: several records fit; link one by hand"
                )
            )?;
        }

        // Deletions. A record whose own deletion this plan holds was deleted by someone
        // else: deleting it too is no deletion of ours.
        let deleted_now: BTreeSet<&RecordRef> = plan.deletions.iter().map(|d| &d.deleted).collect();
        // Links a deletion of this plan removed: a record deleted in two CRMs is two
        // deletions of one link, and the first one's deletes leave the second nothing to do.
        let mut unlinked = BTreeSet::new();
        for d in &plan.deletions {
            let Some(link) = links.get(&d.link).cloned() else {
                continue;
            };
            if unlinked.contains(&link.id) {
                continue;
            }
            match d.policy {
                // The link keeps the deleted id, so the record is not created again from the
                // others; they stay as they are. The side's hash becomes `DELETED`, so a
                // tombstone read again (overlap windows) is not reported twice.
                _ if link.hash(d.deleted.crm) == Some(DELETED) => {}
                DeletePolicy::Ignore => {
                    self.mark_deleted(&link, d.deleted.crm).await?;
                    report.deletes_ignored += 1;
                }
                DeletePolicy::Flag => {
                    let what = json!({
                        "deleted": d.deleted.to_string(),
                        "linked": link_state(&link).ids.iter()
                            .map(|(c, id)| RecordRef::new(c, kind, id.clone()).to_string())
                            .collect::<Vec<_>>(),
                    });
                    fenced!(
                        self,
                        enqueue_review(
                            kind,
                            &what,
                            "deleted in one CRM, not deleted in the others (delete = \"flag\", or a merge \
                             of a linked record waits): delete them or restore it"
                        )
                    )?;
                    self.mark_deleted(&link, d.deleted.crm).await?;
                    report.flagged.push(d.deleted.clone());
                }
                DeletePolicy::Propagate => {
                    let mut all_gone = true;
                    let because = d.deleted.to_string();
                    for target in &d.targets {
                        // Noted as crmkit's own deletion with its intent, before it is sent:
                        // a CRM's cascade of it (Close's lead takes its contacts) is then
                        // known for an echo, in this run or a later one, and after a crash
                        // between the delete and its settlement (see `echo`). Only what a
                        // tombstone can name as its parent is noted (`echo::noted`). The note
                        // stays while the delete is unsettled or done ("not found" may be the
                        // answer to a retry of a delete that arrived) and after a failure
                        // that may have followed the deletion (a dropped connection, a
                        // timeout, a 5xx: Close may have deleted the lead and its contacts,
                        // whose tombstones the next kinds of this very run read). It is
                        // forgotten only when the CRM refused the request ([`refused`]): the
                        // record lives on, and a later deletion of it is not ours (a failed
                        // delete is sent again, noted again, next run). A side
                        // its link notes gone, or whose deletion this run read, is not
                        // deleted by us; the intent says whether it was noted, for
                        // `reconcile`.
                        let fact = echo::deleted_fact(kind, &target.id);
                        let ours = echo::noted(kind, target)
                            && link.hash(target.crm) != Some(DELETED)
                            && !deleted_now.contains(target);
                        let noted = ours.then_some((target.crm, fact.as_str(), because.as_str()));
                        let new = NewIntent::new(
                            target.crm,
                            kind,
                            IntentOp::Delete,
                            format!("{run}:delete:{target}"),
                            json!({"id": target.id, "because": d.deleted.to_string(), "noted": ours}),
                        )
                        .run(run.clone())
                        .link(link.id.clone());
                        let Some(intent) = self.intent_noting(new, noted, report).await? else {
                            all_gone = false;
                            failures.hold();
                            continue;
                        };
                        // Recording the intent was the fenced check that the lease is still
                        // this run's; the flag covers a loss the renewal saw since.
                        self.ensure_leased()?;
                        let out = self.conn(target.crm).delete(vec![target.clone()]).await;
                        let result =
                            out.results.into_iter().next().unwrap_or_else(|| {
                                Err(Error::bad_response("no result for a delete"))
                            });
                        match result {
                            Ok(_) => {
                                report.deleted += 1;
                                self.settle(&intent, Ok(&target.id)).await?;
                            }
                            Err(e) if e.kind() == ErrorKind::NotFound => {
                                self.settle(&intent, Ok(&target.id)).await?;
                            }
                            // Only the tombstone tells of the deletion, and the cursor past
                            // it would lose it: a failed delete holds the cursor.
                            Err(e) => {
                                all_gone = false;
                                failures.hold();
                                self.settle(&intent, Err(e.to_string())).await?;
                                if ours && refused(e.kind()) {
                                    fenced!(self, forget_account_fact(target.crm, &fact))?;
                                }
                                report.errors.push(format!("deleting {target}: {e}"));
                            }
                        }
                    }
                    if all_gone {
                        fenced!(self, delete_link(&link))?;
                        unlinked.insert(link.id.clone());
                    }
                }
            }
        }

        // Links for every group, before anything is written: a create's intent names its
        // link, so after a crash the created record is found by its marker and linked.
        let mut group_links: Vec<Option<Link>> = Vec::with_capacity(plan.groups.len());
        for g in &plan.groups {
            let existing = g.link.as_ref().and_then(|k| links.get(k)).cloned();
            // A deferred group gets no new link: linked with its create missing, the record
            // would look synced and never be created.
            if g.deferred && existing.is_none() {
                group_links.push(None);
                continue;
            }
            let link = match existing {
                Some(l) if g.ids.iter().all(|(c, id)| l.crm_id(c) == Some(id)) => l,
                _ => {
                    let mut new = NewLink::new(kind);
                    for (c, id) in &g.ids {
                        new = new.crm_id(c, id.clone());
                    }
                    new = match_attributes(new, plan, g);
                    match fenced!(self, upsert_link(&new)) {
                        Ok(up) => {
                            if g.link.is_none() && g.ids.len() > 1 {
                                report.linked += 1;
                            }
                            up.link
                        }
                        Err(e) => {
                            let why = format!("linking {}: {e}", describe_ids(kind, &g.ids));
                            failures.error(&e, retry::group_refs(kind, &g.ids), &why);
                            report.errors.push(why);
                            group_links.push(None);
                            continue;
                        }
                    }
                }
            };
            // The source of a create gets its base (what it holds now, which the create
            // copies) before the create is sent: if the run stops before the hashes are
            // stored, the recovering run still tells an edit of the source from one of the
            // created record. Without it, the source would be new to the link and could
            // neither propagate an edit nor be told from one ([`crate::resolve`]).
            let link = match source_base(&link, g) {
                None => link,
                Some(update) => match fenced!(self, update_link(&link, &update)) {
                    Ok(l) => l,
                    Err(e) => {
                        self.ensure_leased()?;
                        let why =
                            format!("storing the base of {}: {e}", describe_ids(kind, &g.ids));
                        failures.error(&e, retry::group_refs(kind, &g.ids), &why);
                        report.errors.push(why);
                        group_links.push(None);
                        continue;
                    }
                },
            };
            // The report counts the conflicts this run opens: one still open from an earlier
            // run (the record planned again, its values still apart) is only refreshed.
            let open: BTreeSet<String> = if g.conflicts.is_empty() {
                BTreeSet::new()
            } else {
                self.store
                    .link_conflicts(&link.id)
                    .await
                    .map_err(store_err)?
                    .into_iter()
                    .filter(|c| c.status == crmkit_store::ConflictStatus::Open)
                    .map(|c| c.field)
                    .collect()
            };
            for c in &g.conflicts {
                let mut new = NewConflict::new(link.id.clone(), kind, c.field);
                for (crm, v) in &c.values {
                    new = new.value(*crm, v.clone().unwrap_or(Value::Null));
                }
                fenced!(self, open_conflict(&new))?;
                if !open.contains(c.field.as_str()) {
                    report.conflicts.push(QueuedConflict::new(kind, g, c));
                }
            }
            group_links.push(Some(link));
        }

        // Creates and updates, batched per CRM, each recorded as an intent first. A deferred
        // group keeps its old hashes and bases, so it is planned again.
        let mut failed: BTreeSet<usize> = plan
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.deferred)
            .map(|(i, _)| i)
            .collect();
        // What was written where, with the fields sent (for the read-back).
        let mut written: Vec<(usize, RecordRef, Sent)> = Vec::new();
        let mut audit: Vec<NewAuditEntry> = Vec::new();
        for crm in &self.config.sync.crms {
            let creates: Vec<(usize, &plan::Create)> = plan
                .creates()
                .filter(|(i, c)| c.target == *crm && group_links[*i].is_some())
                .collect();
            for chunk in creates.chunks(WRITE_BATCH) {
                let mut sent = Vec::new();
                for (i, c) in chunk {
                    let Some(link) = &group_links[*i] else {
                        continue;
                    };
                    let new = NewIntent::new(
                        *crm,
                        kind,
                        IntentOp::Create,
                        format!("{run}:create:{crm}:{}", c.marker),
                        // The record too: a connector that finds creates by a natural key
                        // rather than the marker (Close activities) needs it to reconcile.
                        json!({"marker": c.marker, "source": c.source.to_string(), "fields": c.fields,
                               "record": c.record}),
                    )
                    .run(run.clone())
                    .link(link.id.clone());
                    match self.intent(new, report).await? {
                        Some(intent) => sent.push((*i, *c, intent)),
                        None => {
                            failures.hold();
                            failed.insert(*i);
                        }
                    }
                }
                // Every intent refused: nothing to send. Otherwise the last intent's fenced
                // transaction was the check on the database just before the batch.
                if sent.is_empty() {
                    continue;
                }
                let batch = sent
                    .iter()
                    .map(|(_, c, _)| Marked {
                        record: c.record.clone(),
                        marker: c.marker.clone(),
                    })
                    .collect();
                self.ensure_leased()?;
                let out = self.conn(*crm).create_marked(batch).await;
                for ((i, c, intent), r) in sent.into_iter().zip(per_input(out.results)) {
                    let Some(r) = r else {
                        failures.hold();
                        failed.insert(i);
                        report.errors.push(format!(
                            "{crm} reported no outcome for the create from {}; its intent stays open for the next run to reconcile",
                            c.source
                        ));
                        continue;
                    };
                    match r {
                        Ok(made) => {
                            report.created += 1;
                            if let Some(link) = group_links[i].take() {
                                match self.link_created(&link, &made, &c.fields).await {
                                    Ok(l) => {
                                        for (field, v) in &c.fields {
                                            audit.push(
                                                NewAuditEntry::new(
                                                    l.id.clone(),
                                                    *crm,
                                                    *field,
                                                    format!("sync:{}", c.source.crm),
                                                )
                                                .run(run.clone())
                                                .change(None, v.clone()),
                                            );
                                        }
                                        group_links[i] = Some(l);
                                    }
                                    Err(e) => {
                                        let why = format!(
                                            "linking {made} created from {}: {e}",
                                            c.source
                                        );
                                        failed.insert(i);
                                        failures.error(
                                            &e,
                                            retry::group_refs(kind, &plan.groups[i].ids),
                                            &why,
                                        );
                                        report.errors.push(why);
                                        group_links[i] = Some(link);
                                    }
                                }
                            }
                            self.settle(&intent, Ok(&made.id)).await?;
                            written.push((i, made, c.fields.clone()));
                        }
                        Err(e) => {
                            failed.insert(i);
                            self.settle(&intent, Err(e.to_string())).await?;
                            let why = format!("creating {} in {crm}: {e}", c.source);
                            failures.error(&e, retry::group_refs(kind, &plan.groups[i].ids), &why);
                            report.errors.push(why);
                        }
                    }
                }
            }
            let updates: Vec<(usize, &plan::Update)> = plan
                .updates()
                .filter(|(i, u)| u.target.crm == *crm && group_links[*i].is_some())
                .collect();
            for chunk in updates.chunks(WRITE_BATCH) {
                let mut sent = Vec::new();
                for (i, u) in chunk {
                    let Some(link) = &group_links[*i] else {
                        continue;
                    };
                    let new = NewIntent::new(
                        *crm,
                        kind,
                        IntentOp::Update,
                        format!("{run}:update:{}", u.target),
                        json!({"id": u.target.id, "changes": u.changes}),
                    )
                    .run(run.clone())
                    .link(link.id.clone());
                    match self.intent(new, report).await? {
                        Some(intent) => sent.push((*i, *u, intent)),
                        None => {
                            failures.hold();
                            failed.insert(*i);
                        }
                    }
                }
                // As for creates: the last intent's fenced transaction was the check.
                if sent.is_empty() {
                    continue;
                }
                let batch = sent
                    .iter()
                    .map(|(_, u, _)| Record::clone(&u.record))
                    .collect();
                self.ensure_leased()?;
                let out = self.conn(*crm).update(batch).await;
                for ((i, u, intent), r) in sent.into_iter().zip(per_input(out.results)) {
                    let Some(r) = r else {
                        failures.hold();
                        failed.insert(i);
                        report.errors.push(format!(
                            "{crm} reported no outcome for the update of {}; its intent stays open for the next run to reconcile",
                            u.target
                        ));
                        continue;
                    };
                    match r {
                        Ok(_) => {
                            report.updated += 1;
                            self.settle(&intent, Ok(&u.target.id)).await?;
                            if let Some(link) = &group_links[i] {
                                let winners: BTreeMap<&str, Crm> = plan.groups[i]
                                    .decisions
                                    .iter()
                                    .map(|d| (d.field.as_str(), d.winner))
                                    .collect();
                                for ch in &u.changes {
                                    let source = winners.get(ch.field.as_str()).map_or_else(
                                        || "sync".to_string(),
                                        |w| format!("sync:{w}"),
                                    );
                                    audit.push(
                                        NewAuditEntry::new(link.id.clone(), *crm, ch.field, source)
                                            .run(run.clone())
                                            .change(ch.from.clone(), ch.to.clone()),
                                    );
                                }
                            }
                            let sent = u
                                .changes
                                .iter()
                                .map(|ch| (ch.field, ch.to.clone()))
                                .collect();
                            written.push((i, u.target.clone(), sent));
                        }
                        Err(e) => {
                            failed.insert(i);
                            self.settle(&intent, Err(e.to_string())).await?;
                            let why = format!("updating {}: {e}", u.target);
                            failures.error(&e, retry::group_refs(kind, &plan.groups[i].ids), &why);
                            report.errors.push(why);
                        }
                    }
                }
            }
        }
        if !audit.is_empty() {
            fenced!(self, record_audit(&audit))?;
        }

        // Hashes: what each side holds now. Written records are read back, so a CRM that
        // normalises or ignores a value does not make our own write look like its change;
        // an edit someone made meanwhile is not taken as synced (see `readback`).
        let mut hashes: Vec<PerCrm<(FieldsHash, FieldMap)>> =
            plan.groups.iter().map(|g| g.seen.clone()).collect();
        // Writes to relinked merge winners, kept should their group fail (read-backs
        // included) or wait: see `keep_relinked_writes`.
        let relinked_writes: Vec<(usize, RecordRef, Sent)> = written
            .iter()
            .filter(|(i, r, _)| {
                group_links[*i]
                    .as_ref()
                    .is_some_and(|l| l.hash(r.crm).is_none() && l.fields(r.crm).is_some())
            })
            .cloned()
            .collect();
        // A relinked winner's write is read back even where its group failed, so what the
        // CRM kept of it can join its base.
        let relinked: BTreeSet<(usize, Crm)> = relinked_writes
            .iter()
            .map(|(i, r, _)| (*i, r.crm))
            .collect();
        let mut kept: BTreeMap<(usize, Crm), FieldMap> = BTreeMap::new();
        let reads = self
            .read_many(
                written
                    .into_iter()
                    .filter(|(i, r, _)| !failed.contains(i) || relinked.contains(&(*i, r.crm)))
                    .map(|(i, r, sent)| ((i, sent), r))
                    .collect(),
            )
            .await;
        // The country code Close was seen to give a number we sent without one: stored, so
        // later runs tell Close's form of such a number from another number (see
        // `readback::CountryCode`). Only the first one seen is stored, and a stored code is
        // never replaced: a person who gives the number another code in the second between
        // our write and our read-back would otherwise have their code learned as the
        // account's, and every linked number judged by it.
        let mut code_seen: Option<String> = None;
        for ((i, sent), r, got) in reads {
            match got.and_then(|rec| Seen::new(r.crm, rec, &cfg, false)) {
                Ok(seen) => {
                    if code_seen.is_none() {
                        code_seen = readback::country_code_seen(r.crm, &seen.fields, &sent);
                    }
                    let before = plan.groups[i].seen.get(&r.crm).map(|(_, f)| f);
                    let old_base = group_links[i]
                        .as_ref()
                        .and_then(|l| link_state(l).bases.remove(&r.crm));
                    let stored = match readback::base_after_write(
                        r.crm,
                        &seen.fields,
                        before,
                        &sent,
                        old_base.as_ref(),
                    ) {
                        None => (seen.hash, seen.fields),
                        Some(base) => {
                            report.edited_meanwhile.push(r.clone());
                            (crate::resolve::hash(&base), base)
                        }
                    };
                    if relinked.contains(&(i, r.crm)) {
                        kept.insert((i, r.crm), stored.1.clone());
                    }
                    hashes[i].insert(r.crm, stored);
                }
                Err(e) => {
                    failed.insert(i);
                    let why = format!("reading back {r}: {e}");
                    failures.error(&e, retry::group_refs(kind, &plan.groups[i].ids), &why);
                    report.errors.push(why);
                }
            }
        }
        if let Some(code) = code_seen {
            let known = self
                .store
                .account_fact(Crm::Close, readback::CLOSE_COUNTRY_CODE)
                .await
                .map_err(store_err)?;
            if known.is_none() {
                fenced!(
                    self,
                    set_account_fact(Crm::Close, readback::CLOSE_COUNTRY_CODE, &code)
                )?;
            }
        }
        self.keep_relinked_writes(&relinked_writes, &failed, &group_links, &kept)
            .await?;
        for (i, link) in group_links.into_iter().enumerate() {
            // A group with a failed write keeps its old hashes, so the next run plans it again.
            let (Some(link), false) = (link, failed.contains(&i)) else {
                continue;
            };
            let mut update = LinkUpdate::new();
            let mut any = false;
            for (crm, (h, fields)) in &hashes[i] {
                if link.hash(crm) != Some(h.as_str()) {
                    update = update.hash(crm, Some(h.to_string()));
                    any = true;
                }
                // The side's values are the base that tells next run's changes (and clears)
                // on that side from the fields it left alone.
                let values = fields_json(fields);
                if link.fields(crm) != Some(&values) {
                    update = update.fields(crm, Some(values));
                    any = true;
                }
            }
            if any {
                // A side changed, so an open conflict of the link may be settled: its values
                // agree now, or an edit or rule decided it this run. Closed with the new
                // bases, so a later `conflicts resolve` cannot write its stale values; the
                // fields still held apart were queued again above and stay open. A link made
                // this run has no older conflicts.
                let g = &plan.groups[i];
                // A field skipped this run (a reference not comparable yet) was not settled
                // either: its conflict stays open too.
                let still_open: Vec<String> = g
                    .conflicts
                    .iter()
                    .map(|c| c.field)
                    .chain(g.skipped.iter().copied())
                    .map(|f| f.to_string())
                    .collect();
                let seen: Vec<Crm> = hashes[i].iter().map(|(c, _)| c).collect();
                let stored = async {
                    let mut tx = self.tx().await?;
                    tx.update_link(&link, &update).await.map_err(store_err)?;
                    if g.link.is_some() {
                        tx.supersede_conflicts(&link.id, &still_open, &seen, SETTLED_BY)
                            .await
                            .map_err(store_err)?;
                    }
                    tx.commit().await.map_err(store_err)
                }
                .await;
                if let Err(e) = stored {
                    let why = format!("storing hashes of link {}: {e}", link.id);
                    failures.error(&e, retry::group_refs(kind, &plan.groups[i].ids), &why);
                    report.errors.push(why);
                }
            }
        }
        Ok(())
    }
}

/// Joins the fields `sent` to a relinked winner to its `base`: each as the read-back showed
/// the CRM kept it (`kept`, the side's base as judged after the write: a value it dropped
/// is absent, one someone edited meanwhile is the old base's), or as sent where there is
/// no read-back (see `Engine::keep_relinked_writes`).
fn join_written(base: &mut FieldMap, sent: &Sent, kept: Option<&FieldMap>) {
    for (f, v) in sent {
        match kept.map_or(v.as_ref(), |k| k.get(f)) {
            Some(v) => base.insert(*f, v.clone()),
            None => base.remove(f),
        };
    }
}

/// Who closes the conflicts a run found settled.
const SETTLED_BY: &str = "crmkit sync";

/// The fields a write sent (`None`: cleared).
type Sent = crate::values::Writes;

/// The matching attributes of a group's first side, stored on its link so records seen in
/// later runs can match it.
fn match_attributes(mut new: NewLink, plan: &Plan, g: &plan::Group) -> NewLink {
    let Some((_, (_, fields))) = g.seen.iter().next() else {
        return new;
    };
    match plan.kind {
        ObjectKind::Person => {
            let first = fields
                .get("emails")
                .and_then(|v| v.as_array())
                .and_then(|a| a.first())
                .and_then(|v| v.as_str())
                .and_then(matching::normalize_email);
            if let Some(e) = first {
                new = new.email(e);
            }
        }
        ObjectKind::Company => {
            let domain = fields
                .get("domain")
                .and_then(|v| v.as_str())
                .and_then(matching::normalize_domain)
                .or_else(|| {
                    fields
                        .get("url")
                        .and_then(|v| v.as_str())
                        .and_then(matching::normalize_domain)
                });
            if let Some(d) = domain {
                new = new.domain(d);
            }
            if let Some(n) = fields
                .get("name")
                .and_then(|v| v.as_str())
                .and_then(matching::normalize_company_name)
            {
                new = new.company_name(n);
            }
        }
        _ => {}
    }
    new
}

/// The update giving the source of `g`'s creates its current values as its base, when the
/// group creates anything and `link` holds no hash or base for the source yet. A deferred group
/// keeps its old hashes and bases (a change held back would otherwise look synced): its
/// source, if a create of it is interrupted, gets its base at recovery.
fn source_base(link: &Link, g: &plan::Group) -> Option<LinkUpdate> {
    let source = g.creates.first()?.source.crm;
    // A relinked merge winner has a base but no hash yet: its relink base stands.
    if g.deferred || link.hash(source).is_some() || link.fields(source).is_some() {
        return None;
    }
    let (hash, fields) = g.seen.get(&source)?;
    Some(stored_side(
        LinkUpdate::new(),
        source,
        hash.as_str(),
        fields,
    ))
}

fn describe_ids(kind: ObjectKind, ids: &PerCrm<String>) -> String {
    ids.iter()
        .map(|(c, id)| RecordRef::new(c, kind, id.clone()).to_string())
        .collect::<Vec<_>>()
        .join(" + ")
}

/// A batch's results, one per input whatever the connector answered: `None` for an input it
/// reported nothing for, so a short answer never lets the others pass as written.
pub(super) fn per_input<T>(results: Vec<T>) -> impl Iterator<Item = Option<T>> {
    results
        .into_iter()
        .map(Some)
        .chain(std::iter::repeat_with(|| None))
}

/// Whether a failure of kind `kind` is the CRM refusing a request it did not carry out
/// (credentials, permission, input, state, or crmkit's own configuration), rather than one
/// whose effect is unknown (a dropped connection, a timeout, a 5xx, an answer that could
/// not be read). A rate limit or a used-up quota is not a refusal here: the transport
/// returns the last attempt's error, and one ending a retry of a timed-out or dropped
/// delete says nothing of whether the first attempt deleted the record.
fn refused(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Auth
            | ErrorKind::Forbidden
            | ErrorKind::Validation
            | ErrorKind::Conflict
            | ErrorKind::Config
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(pairs: &[(&str, Value)]) -> FieldMap {
        pairs
            .iter()
            .map(|(k, v)| (Field::intern(k), v.clone()))
            .collect()
    }

    /// A relinked HubSpot winner (its own values its base) whose gap was filled with two
    /// e-mails in a group that failed elsewhere, read back as `read_back`: the base joined.
    fn joined(read_back: Option<&FieldMap>) -> FieldMap {
        let own = map(&[("name", json!("Robert Stone"))]);
        let sent = Sent::from([(
            Field::intern("emails"),
            Some(json!(["bob@acme.com", "bob@home.example"])),
        )]);
        let kept = read_back.map(|r| {
            readback::base_after_write(Crm::HubSpot, r, Some(&own), &sent, Some(&own))
                .unwrap_or_else(|| r.clone())
        });
        let mut base = own.clone();
        join_written(&mut base, &sent, kept.as_ref());
        base
    }

    #[test]
    fn a_relinked_winner_keeps_in_its_base_what_the_crm_kept_of_a_write_not_what_was_sent() {
        // HubSpot holds one e-mail of the two sent: stored as sent, the next run would read
        // the second's absence as a removal in HubSpot and remove it from the other CRMs.
        let read_back = map(&[
            ("name", json!("Robert Stone")),
            ("emails", json!(["bob@acme.com"])),
        ]);
        assert_eq!(
            joined(Some(&read_back)),
            map(&[
                ("name", json!("Robert Stone")),
                ("emails", json!(["bob@acme.com"]))
            ])
        );
        // Someone put their own value there between our write and our read-back: it is
        // their edit, so the field stays out of the base (a change next run, not synced).
        let theirs = map(&[
            ("name", json!("Robert Stone")),
            ("emails", json!(["robert@other.example"])),
        ]);
        assert_eq!(
            joined(Some(&theirs)),
            map(&[("name", json!("Robert Stone"))])
        );
        // No read-back: the value sent.
        assert_eq!(
            joined(None)[&Field::intern("emails")],
            json!(["bob@acme.com", "bob@home.example"])
        );
    }

    #[test]
    fn a_short_batch_answer_leaves_the_unanswered_inputs_without_an_outcome() {
        let inputs = ["a", "b", "c"];
        let paired: Vec<_> = inputs.iter().zip(per_input(vec![1, 2])).collect();
        assert_eq!(paired, [(&"a", Some(1)), (&"b", Some(2)), (&"c", None)]);
    }
}
