//! Settling the writes an interrupted run left open, before anything new is planned.

use super::*;

impl Engine {
    /// Settles the writes an interrupted run left `pending` or `sent`: a create is looked up
    /// by its marker (found: the link gets its id; not found: it never happened and is
    /// planned again), an update is planned again (the link's hashes were not moved), a
    /// delete is sent again.
    pub(super) async fn reconcile(&self, report: &mut Report) -> Result<()> {
        // Intents an older crmkit left under the config-order name are this pair's too.
        let mut intents = self
            .store
            .unsettled_intents(&self.pair)
            .await
            .map_err(store_err)?;
        if let Some(old) = lease::legacy_pair_name(&self.config.sync.crms) {
            intents.extend(
                self.store
                    .unsettled_intents(&old)
                    .await
                    .map_err(store_err)?,
            );
        }
        for intent in intents {
            if !self.config.sync.crms.contains(&intent.crm) {
                continue;
            }
            match intent.op {
                IntentOp::Create => {
                    let marker = intent.payload["marker"].as_str().unwrap_or_default();
                    match self
                        .conn(intent.crm)
                        .find_by_marker(intent.object, marker)
                        .await
                    {
                        Ok(Some(found)) => {
                            if let Some(link) = match &intent.link {
                                Some(id) => self.store.link(id).await.map_err(store_err)?,
                                None => None,
                            } {
                                if link.crm_id(intent.crm).is_none() {
                                    if let Err(e) =
                                        fenced!(self, set_crm_id(&link, intent.crm, &found.id))
                                    {
                                        self.ensure_leased()?;
                                        report.errors.push(format!(
                                            "linking {found}, created before an interruption: {e}"
                                        ));
                                        continue;
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
                    self.ensure_leased()?;
                    let out = self.conn(intent.crm).delete(vec![target.clone()]).await;
                    match out.results.into_iter().next() {
                        Some(Ok(_)) => {
                            fenced!(self, settle_intent(&intent.id, Some(id)))?;
                            report.recovered += 1;
                        }
                        Some(Err(e)) if e.kind() == ErrorKind::NotFound => {
                            fenced!(self, settle_intent(&intent.id, Some(id)))?;
                            report.recovered += 1;
                        }
                        Some(Err(e)) => report.errors.push(format!("deleting {target}: {e}")),
                        None => {}
                    }
                }
            }
        }
        Ok(())
    }
}
