//! Settling the writes an interrupted run left open, before anything new is planned.

use super::*;
use crate::values::Writes;

impl Engine {
    /// Stores the bases of a record recovered after an interruption (`found`, created by
    /// `intent`) and of its source, as a settled create would have, so the next run compares
    /// three ways: without them every value of a side would be taken as its change (or, for a
    /// side new to the link, as none), and a value the CRM holds coarser than the source (a
    /// Salesforce Task's day for an activity's time) would be copied back over the finer one.
    ///
    /// The created record's base is what it holds, except a field that reads back other than
    /// what the create sent (and not as the CRM's keeping of it, see [`readback`]): someone
    /// edited it before this run, so its base is the value sent and the edit is synced as that
    /// side's change. The source's base, when an older crmkit did not store it before sending
    /// the create, is what the create sent (the intent's fields; the created record's base for
    /// intents holding none), references left out as they name the target's records. A
    /// failure is reported; the sides then just stay without a base.
    async fn store_base(
        &self,
        link: &Link,
        found: &RecordRef,
        intent: &crmkit_store::Intent,
        report: &mut Report,
    ) -> Result<()> {
        let Some(cfg) = self.config.entity(found.object) else {
            return Ok(());
        };
        if link.hash(found.crm).is_some() {
            return Ok(());
        }
        let sent: Option<Writes> = serde_json::from_value(intent.payload["fields"].clone()).ok();
        let source = intent.payload["marker"]
            .as_str()
            .and_then(|m| m.split(':').next())
            .and_then(|c| serde_json::from_value::<Crm>(json!(c)).ok())
            .filter(|c| *c != found.crm && link.crm_id(*c).is_some() && link.hash(*c).is_none());
        let seen = self
            .conn(found.crm)
            .get(found.object, &found.id)
            .await
            .and_then(|r| Seen::new(found.crm, r, cfg, false));
        let stored = match seen {
            Ok(seen) => {
                let base = match &sent {
                    Some(sent) => readback::created_base(found.crm, &seen.fields, sent),
                    None => None,
                };
                let (hash, fields) = match base {
                    Some(base) => {
                        report.edited_meanwhile.push(found.clone());
                        (crate::resolve::hash(&base), base)
                    }
                    None => (seen.hash, seen.fields),
                };
                let mut update = stored_side(LinkUpdate::new(), found.crm, hash.as_str(), &fields);
                if let Some(source) = source {
                    let mut base: FieldMap = match &sent {
                        Some(sent) => sent
                            .iter()
                            .filter_map(|(f, v)| v.clone().map(|v| (*f, v)))
                            .collect(),
                        None => fields,
                    };
                    base.retain(|f, _| reference_kind(f).is_none());
                    let hash = crate::resolve::hash(&base);
                    update = stored_side(update, source, hash.as_str(), &base);
                }
                fenced!(self, update_link(link, &update)).map(|_| ())
            }
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            self.ensure_leased()?;
            report.errors.push(format!(
                "reading back {found}, created before an interruption: {e}"
            ));
        }
        Ok(())
    }

    /// Settles the writes an interrupted run of these CRMs, or of a smaller set of them, left
    /// `pending` or `sent`: a create is looked up
    /// with [`Connector::find_created`] (by its marker, or the natural key of a kind that
    /// holds none; found: the link gets its id; not found: it never happened and is planned
    /// again), an update is planned again (the link's hashes were not moved), a
    /// delete is sent again.
    pub(super) async fn reconcile(&self, report: &mut Report) -> Result<()> {
        // Intents an older crmkit left under its config-order name, whichever order that
        // was, are this pair's too, and so are those of a smaller set of these CRMs (a pair
        // grown into a three-way sync): left open, the bigger run would create again what
        // the smaller one's interrupted create made.
        let mut intents = self
            .store
            .unsettled_intents(&self.pair)
            .await
            .map_err(store_err)?;
        for old in lease::subset_pair_names(&self.config.sync.crms) {
            intents.extend(
                self.store
                    .unsettled_intents(&old)
                    .await
                    .map_err(store_err)?,
            );
        }
        // Deletes are resent last, a batch per CRM, each batch after one fenced check.
        let mut deletes: BTreeMap<Crm, Vec<(crmkit_store::Intent, RecordRef)>> = BTreeMap::new();
        for intent in intents {
            if !self.config.sync.crms.contains(&intent.crm) {
                continue;
            }
            match intent.op {
                IntentOp::Create => {
                    let marker = intent.payload["marker"].as_str().unwrap_or_default();
                    // Intents from before the record was kept hold only the marker.
                    let found =
                        match serde_json::from_value::<Record>(intent.payload["record"].clone()) {
                            Ok(record) => {
                                let sent = Marked {
                                    record,
                                    marker: marker.to_string(),
                                };
                                self.conn(intent.crm).find_created(&sent).await
                            }
                            Err(_) => {
                                self.conn(intent.crm)
                                    .find_by_marker(intent.object, marker)
                                    .await
                            }
                        };
                    match found {
                        Ok(Some(found)) => {
                            if let Some(link) = match &intent.link {
                                Some(id) => self.store.link(id).await.map_err(store_err)?,
                                None => None,
                            } {
                                if link.crm_id(intent.crm).is_none() {
                                    match fenced!(self, set_crm_id(&link, intent.crm, &found.id)) {
                                        Ok(link) => {
                                            self.store_base(&link, &found, &intent, report).await?
                                        }
                                        Err(e) => {
                                            self.ensure_leased()?;
                                            report.errors.push(format!(
                                                "linking {found}, created before an interruption: {e}"
                                            ));
                                            continue;
                                        }
                                    }
                                }
                            }
                            fenced!(self, settle_intent(&intent.id, Some(&found.id)))?;
                            report.recovered += 1;
                        }
                        Ok(None) => {
                            fenced!(
                                self,
                                fail_intent(
                                    &intent.id,
                                    "interrupted before the CRM created it; planned again"
                                )
                            )?;
                        }
                        Err(e) => report.errors.push(format!(
                            "looking up marker {marker:?} in {}: {e}",
                            intent.crm
                        )),
                    }
                }
                IntentOp::Update => {
                    fenced!(
                        self,
                        fail_intent(
                            &intent.id,
                            "interrupted; the record is planned again from its stored hashes"
                        )
                    )?;
                }
                IntentOp::Delete => {
                    let Some(id) = intent.payload["id"].as_str() else {
                        continue;
                    };
                    let target = RecordRef::new(intent.crm, intent.object, id);
                    deletes
                        .entry(intent.crm)
                        .or_default()
                        .push((intent, target));
                }
            }
        }
        for (crm, deletes) in deletes {
            for chunk in deletes.chunks(WRITE_BATCH) {
                self.resend_deletes(crm, chunk, report).await?;
            }
        }
        Ok(())
    }

    /// Sends the deletes of `batch` (intents of `crm` and their records) again, in one
    /// request, after one fenced store transaction marking them sent: the intents are this
    /// pair's, and only the run holding its lease may resend them, so a run whose lease was
    /// taken over (its local flag not yet set) stops here without deleting anything.
    async fn resend_deletes(
        &self,
        crm: Crm,
        batch: &[(crmkit_store::Intent, RecordRef)],
        report: &mut Report,
    ) -> Result<()> {
        let mut tx = self.tx().await?;
        for (intent, target) in batch {
            // Only a pending one moves: a sent one stays as it is (marking it again would
            // just rewrite its time).
            if intent.state == crmkit_store::IntentState::Pending {
                tx.mark_intent_sent(&intent.id).await.map_err(store_err)?;
            }
            // Noted as crmkit's own deletion if it was when first sent (its payload's
            // `noted`; an intent an older crmkit left says nothing, and may lack the note),
            // so the CRM's cascade of it is known for an echo.
            let noted = intent.payload["noted"].as_bool().unwrap_or(true)
                && echo::noted(target.object, target);
            let fact = echo::deleted_fact(target.object, &target.id);
            if noted
                && tx
                    .account_fact(crm, &fact)
                    .await
                    .map_err(store_err)?
                    .is_none()
            {
                let because = intent.payload["because"]
                    .as_str()
                    .unwrap_or("a deletion crmkit propagated");
                tx.set_account_fact(crm, &fact, because)
                    .await
                    .map_err(store_err)?;
            }
        }
        tx.commit().await.map_err(store_err)?;
        let targets = batch.iter().map(|(_, target)| target.clone()).collect();
        let out = self.conn(crm).delete(targets).await;
        for ((intent, target), r) in batch.iter().zip(apply::per_input(out.results)) {
            match r {
                Some(Ok(_)) => {}
                // Already gone: what the delete was for.
                Some(Err(e)) if e.kind() == ErrorKind::NotFound => {}
                Some(Err(e)) => {
                    report.errors.push(format!("deleting {target}: {e}"));
                    continue;
                }
                None => {
                    report.errors.push(format!(
                        "{crm} reported no outcome for the delete of {target}; its intent stays open for the next run"
                    ));
                    continue;
                }
            }
            fenced!(self, settle_intent(&intent.id, Some(&target.id)))?;
            report.recovered += 1;
        }
        Ok(())
    }
}
