//! The run loop: pull each CRM's changes since the stored cursor, plan, apply through the
//! connectors' batch methods, store links and hashes, then move the cursors.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crmkit_core::connector::Marked;
use crmkit_core::{
    Change, ChangeCursor, Connector, Crm, Error, ErrorKind, ObjectKind, Record, RecordRef, Result,
    SkipReason,
};
use crmkit_store::{
    CursorKey, IntentOp, Link, LinkUpdate, NewAuditEntry, NewConflict, NewIntent, NewLink,
    RunCounts, RunId, RunStatus, Store,
};
use futures::{StreamExt, TryStreamExt, stream};
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{Config, DeletePolicy};
use crate::matching;
use crate::plan::{self, Ambiguous, Input, LinkState, Plan, RefTable, Seen};
use crate::resolve::FieldConflict;
use crate::values::{FieldMap, reference_kind};

/// Reads in flight at once when completing links and reading written records back.
const READ_CONCURRENCY: usize = 8;

/// Records per batch write call.
const WRITE_BATCH: usize = 100;

/// The side hash of a linked record known to be deleted (no real hash looks like it).
const DELETED: &str = "deleted";

/// How long a run's lease lasts unless renewed (it is renewed between kinds).
const LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// A store failure as a crmkit error.
fn store_err(e: crmkit_store::Error) -> Error {
    let kind = match &e {
        crmkit_store::Error::InvalidUrl { .. } | crmkit_store::Error::SchemaTooNew { .. } => {
            ErrorKind::Config
        }
        crmkit_store::Error::CrmIdTaken { .. }
        | crmkit_store::Error::CrmIdMismatch { .. }
        | crmkit_store::Error::AmbiguousLinks { .. }
        | crmkit_store::Error::VersionConflict { .. } => ErrorKind::Conflict,
        _ => ErrorKind::Transient,
    };
    Error::new(kind, format!("sync store: {e}"))
}

/// A conflict queued for a person, with the records it concerns.
#[derive(Debug, Clone, Serialize)]
pub struct QueuedConflict {
    /// The linked records.
    pub records: Vec<RecordRef>,
    /// The field and each CRM's value.
    pub conflict: FieldConflict,
}

/// What a run did (or, dry, would do).
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Whether this was a dry run: planned, nothing written.
    pub dry_run: bool,
    /// The plan of each kind.
    pub plans: Vec<Plan>,
    /// Records created.
    pub created: usize,
    /// Records updated.
    pub updated: usize,
    /// Links made between existing records (matches).
    pub linked: usize,
    /// Records deleted (delete policy `propagate`).
    pub deleted: usize,
    /// Deletions left alone (policy `ignore`).
    pub deletes_ignored: usize,
    /// Deletions put in the review queue (policy `flag`).
    pub flagged: Vec<RecordRef>,
    /// Field conflicts queued (policy `manual`).
    pub conflicts: Vec<QueuedConflict>,
    /// Ambiguous matches queued.
    pub ambiguous: Vec<Ambiguous>,
    /// Feed records that were our own writes coming back (or changed nothing synced).
    pub echoes: usize,
    /// Changes read from the feeds.
    pub read: usize,
    /// Writes an interrupted earlier run left unsettled, settled now (creates found by
    /// their marker, deletes resent).
    pub recovered: usize,
    /// Per-record failures; the run went on.
    pub errors: Vec<String>,
    /// The stored run (not for dry runs).
    pub run: Option<RunId>,
}

impl Report {
    /// Whether the run wrote anything to a CRM.
    pub fn wrote(&self) -> bool {
        self.created + self.updated + self.deleted > 0
    }
}

/// The sync engine for one set of CRMs.
pub struct Engine {
    config: Config,
    store: Store,
    connectors: BTreeMap<Crm, Arc<dyn Connector>>,
    pair: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("pair", &self.pair)
            .field("crms", &self.connectors.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Engine {
    /// An engine keeping `config.sync.crms` in agreement through `connectors`, with its
    /// state in `store`. Every CRM of the config needs a connector.
    pub fn new(config: Config, store: Store, connectors: Vec<Arc<dyn Connector>>) -> Result<Self> {
        config.validate()?;
        let connectors: BTreeMap<Crm, Arc<dyn Connector>> =
            connectors.into_iter().map(|c| (c.crm(), c)).collect();
        for crm in &config.sync.crms {
            if !connectors.contains_key(crm) {
                return Err(Error::config(format!(
                    "no connector for {crm}, which [sync] crms lists"
                )));
            }
        }
        let pair = config
            .sync
            .crms
            .iter()
            .map(Crm::to_string)
            .collect::<Vec<_>>()
            .join("-");
        Ok(Self {
            config,
            store,
            connectors,
            pair,
        })
    }

    /// The name this engine's cursors are stored under (`close-hubspot`).
    pub fn pair(&self) -> &str {
        &self.pair
    }

    /// Runs one sync (or plans one, when `[sync] dry_run` is set).
    pub async fn run(&self) -> Result<Report> {
        self.run_with(self.config.sync.dry_run).await
    }

    /// Plans one sync and writes nothing: no CRM write, no link, no cursor.
    pub async fn dry_run(&self) -> Result<Report> {
        self.run_with(true).await
    }

    async fn run_with(&self, dry_run: bool) -> Result<Report> {
        let mut report = Report {
            dry_run,
            ..Report::default()
        };
        if dry_run {
            for kind in self.config.kinds() {
                self.run_kind(kind, None, &mut report).await?;
            }
            return Ok(report);
        }
        // One run at a time per pair.
        let lease_name = format!("sync:{}", self.pair);
        let holder = format!(
            "crmkit-sync-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let Some(mut lease) = self
            .store
            .acquire_lease(&lease_name, &holder, LEASE_TTL)
            .await
            .map_err(store_err)?
        else {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "another sync of {} is running (it holds lease {lease_name:?})",
                    self.pair
                ),
            ));
        };
        let run = self.store.start_run(&self.pair).await.map_err(store_err)?;
        report.run = Some(run.id.clone());
        let mut outcome = self.reconcile(&mut report).await;
        if outcome.is_ok() {
            for kind in self.config.kinds() {
                outcome = self.run_kind(kind, Some(&run.id), &mut report).await;
                if outcome.is_err() {
                    break;
                }
                match self.store.renew_lease(&lease, LEASE_TTL).await {
                    Ok(l) => lease = l,
                    Err(e) => {
                        outcome = Err(store_err(e));
                        break;
                    }
                }
            }
        }
        let mut counts = RunCounts::default();
        counts.read = report.read as u64;
        counts.created = report.created as u64;
        counts.updated = report.updated as u64;
        counts.deleted = report.deleted as u64;
        counts.skipped = report.echoes as u64;
        counts.failed = report.errors.len() as u64;
        counts.conflicts = report.conflicts.len() as u64;
        let mut errors: Vec<Value> = report
            .errors
            .iter()
            .map(|e| json!({"message": e}))
            .collect();
        let status = match &outcome {
            Err(e) => {
                errors.push(json!({"message": e.to_string(), "fatal": true}));
                RunStatus::Failed
            }
            Ok(()) if report.errors.is_empty() => RunStatus::Succeeded,
            Ok(()) => RunStatus::Partial,
        };
        let finished = self
            .store
            .finish_run(&run.id, status, &counts, &errors)
            .await
            .map_err(store_err);
        let released = self.store.release_lease(&lease).await.map_err(store_err);
        outcome?;
        finished?;
        released?;
        Ok(report)
    }

    /// Settles the writes an interrupted run left `pending` or `sent`: a create is looked up
    /// by its marker (found: the link gets its id; not found: it never happened and is
    /// planned again), an update is planned again (the link's hashes were not moved), a
    /// delete is sent again.
    async fn reconcile(&self, report: &mut Report) -> Result<()> {
        let intents = self
            .store
            .unsettled_intents(&self.pair)
            .await
            .map_err(store_err)?;
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
                                        self.store.set_crm_id(&link, intent.crm, &found.id).await
                                    {
                                        report.errors.push(format!(
                                            "linking {found}, created before an interruption: {}",
                                            store_err(e)
                                        ));
                                        continue;
                                    }
                                }
                            }
                            self.store
                                .settle_intent(&intent.id, Some(&found.id))
                                .await
                                .map_err(store_err)?;
                            report.recovered += 1;
                        }
                        Ok(None) => {
                            self.store
                                .fail_intent(
                                    &intent.id,
                                    "interrupted before the CRM created it; planned again",
                                )
                                .await
                                .map_err(store_err)?;
                        }
                        Err(e) => report.errors.push(format!(
                            "looking up marker {marker:?} in {}: {e}",
                            intent.crm
                        )),
                    }
                }
                IntentOp::Update => {
                    self.store
                        .fail_intent(
                            &intent.id,
                            "interrupted; the record is planned again from its stored hashes",
                        )
                        .await
                        .map_err(store_err)?;
                }
                IntentOp::Delete => {
                    let Some(id) = intent.payload["id"].as_str() else {
                        continue;
                    };
                    let target = RecordRef::new(intent.crm, intent.object, id);
                    let out = self.conn(intent.crm).delete(vec![target.clone()]).await;
                    match out.results.into_iter().next() {
                        Some(Ok(_)) => {
                            self.store
                                .settle_intent(&intent.id, Some(id))
                                .await
                                .map_err(store_err)?;
                            report.recovered += 1;
                        }
                        Some(Err(e)) if e.kind() == ErrorKind::NotFound => {
                            self.store
                                .settle_intent(&intent.id, Some(id))
                                .await
                                .map_err(store_err)?;
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

    fn conn(&self, crm: Crm) -> &dyn Connector {
        // `new` checked that every configured CRM has one.
        self.connectors[&crm].as_ref()
    }

    async fn run_kind(
        &self,
        kind: ObjectKind,
        run: Option<&RunId>,
        report: &mut Report,
    ) -> Result<()> {
        let Some(cfg) = self.config.entity(kind) else {
            return Ok(());
        };
        let crms = self.config.sync.crms.clone();

        // 1. Pull every feed since its cursor. A record delivered twice (the overlap window)
        // keeps its latest state.
        let mut upserts: BTreeMap<(Crm, String), Record> = BTreeMap::new();
        let mut deletes: BTreeSet<(Crm, String)> = BTreeSet::new();
        let mut held = false;
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
                report.read += 1;
                cursors.insert(*crm, change.cursor().clone());
                match change {
                    Change::Upsert { record, .. } => {
                        let Some(id) = record.id().map(str::to_string) else {
                            continue;
                        };
                        deletes.remove(&(*crm, id.clone()));
                        upserts.insert((*crm, id), record);
                    }
                    Change::Deleted { record, .. } => {
                        upserts.remove(&(*crm, record.id.clone()));
                        deletes.insert((*crm, record.id));
                    }
                    Change::Skipped {
                        record,
                        cause: SkipReason::Malformed,
                        reason,
                        ..
                    } => {
                        // Its cursor must not pass it: the next run reads it again.
                        held = true;
                        report
                            .errors
                            .push(format!("{record}: could not be read: {reason}"));
                    }
                    Change::Skipped { .. } => {}
                }
            }
        }

        // 2. Map, and sort into linked and unlinked records.
        let mut input = Input::default();
        let mut groups: BTreeMap<String, (LinkState, BTreeMap<Crm, Seen>)> = BTreeMap::new();
        let mut links: BTreeMap<String, Link> = BTreeMap::new();
        for ((crm, _), record) in upserts {
            let seen = match Seen::new(crm, record, cfg, true) {
                Ok(s) => s,
                Err(e) => {
                    held = true;
                    report.errors.push(e.to_string());
                    continue;
                }
            };
            match self
                .store
                .link_by_record(&seen.reference())
                .await
                .map_err(store_err)?
            {
                Some(link) => {
                    let key = link.id.to_string();
                    let entry = groups
                        .entry(key.clone())
                        .or_insert_with(|| (link_state(&link), BTreeMap::new()));
                    entry.1.insert(crm, seen);
                    links.insert(key, link);
                }
                None => input.unlinked.push(seen),
            }
        }
        for (crm, id) in deletes {
            let r = RecordRef::new(crm, kind, id);
            if let Some(link) = self.store.link_by_record(&r).await.map_err(store_err)? {
                groups.remove(link.id.as_str());
                input.deleted.push((r, link_state(&link)));
                links.insert(link.id.to_string(), link);
            }
        }
        // Stored links an unlinked record may belong to (matched in an earlier run, not
        // linked in its CRM yet).
        for s in &input.unlinked {
            for link in self.stored_candidates(kind, s).await? {
                if link.crm_id(s.crm).is_none() && !groups.contains_key(link.id.as_str()) {
                    groups.insert(link.id.to_string(), (link_state(&link), BTreeMap::new()));
                    links.insert(link.id.to_string(), link);
                }
            }
        }
        // Complete each linked record with the sides that did not change.
        let mut missing: Vec<(String, RecordRef)> = Vec::new();
        for (key, (state, sides)) in &groups {
            for (crm, id) in &state.ids {
                if crms.contains(crm) && !sides.contains_key(crm) {
                    missing.push((key.clone(), RecordRef::new(*crm, kind, id.clone())));
                }
            }
        }
        let read: Vec<(String, RecordRef, Result<Record>)> = stream::iter(missing)
            .map(|(key, r)| async move {
                let got = self.conn(r.crm).get(r.object, &r.id).await;
                (key, r, got)
            })
            .buffer_unordered(READ_CONCURRENCY)
            .collect()
            .await;
        for (key, r, got) in read {
            match got {
                Ok(record) => match Seen::new(r.crm, record, cfg, false) {
                    Ok(seen) => {
                        if let Some(g) = groups.get_mut(&key) {
                            g.1.insert(r.crm, seen);
                        }
                    }
                    Err(e) => {
                        held = true;
                        report.errors.push(e.to_string());
                        groups.remove(&key);
                    }
                },
                // Gone without a tombstone reaching us: a deletion like any other.
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    if let Some((state, _)) = groups.remove(&key) {
                        input.deleted.push((r, state));
                    }
                }
                Err(e) => {
                    held = true;
                    report.errors.push(format!("reading {r}: {e}"));
                    groups.remove(&key);
                }
            }
        }
        input.linked = groups.into_values().collect();

        // 3. References, translated through the links of the kinds synced before.
        let refs = self.ref_table(&input).await?;

        // 4. Plan.
        let plan = plan::plan(&self.config, kind, input, &refs);
        report.echoes += plan.echoes;
        // A record that could not be planned (a failed patch, a create whose parent is not
        // linked yet) is reported by id and reason but does not hold the cursor: a parent
        // that stays unlinked (in review, or lost by an interrupted run) would hold the kind
        // forever. It is planned again when it changes; a per-record retry list is the fix
        // still to come (see the README's notes).
        for e in &plan.errors {
            report.errors.push(format!("{}: {}", e.record, e.message));
        }
        report.ambiguous.extend(plan.ambiguous.iter().cloned());
        for g in &plan.groups {
            for c in &g.conflicts {
                report.conflicts.push(QueuedConflict {
                    records: g
                        .ids
                        .iter()
                        .map(|(crm, id)| RecordRef::new(*crm, kind, id.clone()))
                        .collect(),
                    conflict: c.clone(),
                });
            }
        }
        let Some(run) = run else {
            report.plans.push(plan);
            return Ok(());
        };

        // 5. Apply; the cursors move only when everything they cover is stored. A record
        // dropped before apply (unreadable, unmapped, deferred) keeps every cursor of the
        // kind where it was: the next run reads the same changes again, idempotently.
        let clean = self.apply(kind, run, &plan, &mut links, report).await?;
        report.plans.push(plan);
        if clean && !held {
            for (crm, cursor) in cursors {
                let key = CursorKey::new(self.pair.clone(), crm, kind);
                self.store
                    .set_cursor(&key, &cursor.0)
                    .await
                    .map_err(store_err)?;
            }
        }
        Ok(())
    }

    /// Stored links an unlinked record matches by e-mail or domain.
    async fn stored_candidates(&self, kind: ObjectKind, s: &Seen) -> Result<Vec<Link>> {
        let mut out = Vec::new();
        match &s.record {
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

    /// The links of every record a reference field of `input` points at.
    async fn ref_table(&self, input: &Input) -> Result<RefTable> {
        let mut wanted: BTreeSet<RecordRef> = BTreeSet::new();
        let all = input
            .unlinked
            .iter()
            .chain(input.linked.iter().flat_map(|(_, s)| s.values()));
        for s in all {
            for (field, v) in &s.fields {
                if let (Some(rk), Some(id)) = (reference_kind(field), v.as_str()) {
                    wanted.insert(RecordRef::new(s.crm, rk, id));
                }
            }
        }
        let mut table = RefTable::default();
        let mut done: BTreeSet<String> = BTreeSet::new();
        for r in wanted {
            if let Some(link) = self.store.link_by_record(&r).await.map_err(store_err)? {
                if done.insert(link.id.to_string()) {
                    table.link(r.object, link_state(&link).ids);
                }
            }
        }
        Ok(table)
    }

    /// Notes on `link` that its record in `crm` is deleted.
    async fn mark_deleted(&self, link: &Link, crm: Crm) -> Result<()> {
        self.store
            .update_link(
                link,
                &LinkUpdate::new().hash(crm, Some(DELETED.to_string())),
            )
            .await
            .map(|_| ())
            .map_err(store_err)
    }

    /// Records a write as an intent before it is sent; `None` (and an error in the report)
    /// when the store refuses it, so the write is not sent.
    async fn intent(&self, new: NewIntent, report: &mut Report) -> Option<crmkit_store::Intent> {
        // Tagged with the pair, so only a run holding this pair's lease reconciles it.
        let new = new.pair(self.pair.clone());
        match self.store.record_intent(&new).await {
            Ok(i) => match self.store.mark_intent_sent(&i.id).await {
                Ok(i) => Some(i),
                Err(e) => {
                    report
                        .errors
                        .push(format!("recording a write: {}", store_err(e)));
                    None
                }
            },
            Err(e) => {
                report
                    .errors
                    .push(format!("recording a write: {}", store_err(e)));
                None
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
            Ok(id) => self.store.settle_intent(&intent.id, Some(id)).await,
            Err(e) => self.store.fail_intent(&intent.id, &e).await,
        }
        .map(|_| ())
        .map_err(store_err)
    }

    /// Writes `plan`; returns whether every write succeeded.
    async fn apply(
        &self,
        kind: ObjectKind,
        run: &RunId,
        plan: &Plan,
        links: &mut BTreeMap<String, Link>,
        report: &mut Report,
    ) -> Result<bool> {
        let mut clean = true;
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
            self.store
                .enqueue_review(
                    kind,
                    &candidates,
                    "ambiguous match: several records fit; link one by hand",
                )
                .await
                .map_err(store_err)?;
        }

        // Deletions.
        for d in &plan.deletions {
            let Some(link) = links.get(&d.link).cloned() else {
                continue;
            };
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
                            .map(|(c, id)| RecordRef::new(*c, kind, id.clone()).to_string())
                            .collect::<Vec<_>>(),
                    });
                    self.store
                        .enqueue_review(kind, &what, "deleted in one CRM (delete = \"flag\"): delete the others or restore it")
                        .await
                        .map_err(store_err)?;
                    self.mark_deleted(&link, d.deleted.crm).await?;
                    report.flagged.push(d.deleted.clone());
                }
                DeletePolicy::Propagate => {
                    let mut all_gone = true;
                    for target in &d.targets {
                        let new = NewIntent::new(
                            target.crm,
                            kind,
                            IntentOp::Delete,
                            format!("{run}:delete:{target}"),
                            json!({"id": target.id, "because": d.deleted.to_string()}),
                        )
                        .run(run.clone())
                        .link(link.id.clone());
                        let Some(intent) = self.intent(new, report).await else {
                            all_gone = false;
                            clean = false;
                            continue;
                        };
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
                            Err(e) => {
                                all_gone = false;
                                clean = false;
                                self.settle(&intent, Err(e.to_string())).await?;
                                report.errors.push(format!("deleting {target}: {e}"));
                            }
                        }
                    }
                    if all_gone {
                        self.store.delete_link(&link).await.map_err(store_err)?;
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
                Some(l) if g.ids.iter().all(|(c, id)| l.crm_id(*c) == Some(id)) => l,
                _ => {
                    let mut new = NewLink::new(kind);
                    for (c, id) in &g.ids {
                        new = new.crm_id(*c, id.clone());
                    }
                    new = match_attributes(new, plan, g);
                    match self.store.upsert_link(&new).await {
                        Ok(up) => {
                            if g.link.is_none() && g.ids.len() > 1 {
                                report.linked += 1;
                            }
                            up.link
                        }
                        Err(e) => {
                            clean = false;
                            report.errors.push(format!(
                                "linking {}: {}",
                                describe_ids(kind, &g.ids),
                                store_err(e)
                            ));
                            group_links.push(None);
                            continue;
                        }
                    }
                }
            };
            for c in &g.conflicts {
                let mut new = NewConflict::new(link.id.clone(), kind, c.field.clone());
                for (crm, v) in &c.values {
                    new = new.value(*crm, v.clone().unwrap_or(Value::Null));
                }
                self.store.open_conflict(&new).await.map_err(store_err)?;
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
        let mut written: Vec<(usize, RecordRef)> = Vec::new();
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
                        json!({"marker": c.marker, "source": c.source.to_string(), "fields": c.fields}),
                    )
                    .run(run.clone())
                    .link(link.id.clone());
                    match self.intent(new, report).await {
                        Some(intent) => sent.push((*i, *c, intent)),
                        None => {
                            clean = false;
                            failed.insert(*i);
                        }
                    }
                }
                let batch = sent
                    .iter()
                    .map(|(_, c, _)| Marked {
                        record: c.record.clone(),
                        marker: c.marker.clone(),
                    })
                    .collect();
                let out = self.conn(*crm).create_marked(batch).await;
                for ((i, c, intent), r) in sent.into_iter().zip(per_input(out.results)) {
                    let Some(r) = r else {
                        clean = false;
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
                                match self.store.set_crm_id(&link, *crm, &made.id).await {
                                    Ok(l) => {
                                        for (field, v) in &c.fields {
                                            audit.push(
                                                NewAuditEntry::new(
                                                    l.id.clone(),
                                                    *crm,
                                                    field.clone(),
                                                    format!("sync:{}", c.source.crm),
                                                )
                                                .run(run.clone())
                                                .change(None, v.clone()),
                                            );
                                        }
                                        group_links[i] = Some(l);
                                    }
                                    Err(e) => {
                                        clean = false;
                                        failed.insert(i);
                                        report.errors.push(format!(
                                            "linking {made} created from {}: {}",
                                            c.source,
                                            store_err(e)
                                        ));
                                        group_links[i] = Some(link);
                                    }
                                }
                            }
                            self.settle(&intent, Ok(&made.id)).await?;
                            written.push((i, made));
                        }
                        Err(e) => {
                            clean = false;
                            failed.insert(i);
                            self.settle(&intent, Err(e.to_string())).await?;
                            report
                                .errors
                                .push(format!("creating {} in {crm}: {e}", c.source));
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
                    match self.intent(new, report).await {
                        Some(intent) => sent.push((*i, *u, intent)),
                        None => {
                            clean = false;
                            failed.insert(*i);
                        }
                    }
                }
                let batch = sent.iter().map(|(_, u, _)| u.record.clone()).collect();
                let out = self.conn(*crm).update(batch).await;
                for ((i, u, intent), r) in sent.into_iter().zip(per_input(out.results)) {
                    let Some(r) = r else {
                        clean = false;
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
                                        NewAuditEntry::new(
                                            link.id.clone(),
                                            *crm,
                                            ch.field.clone(),
                                            source,
                                        )
                                        .run(run.clone())
                                        .change(ch.from.clone(), ch.to.clone()),
                                    );
                                }
                            }
                            written.push((i, u.target.clone()));
                        }
                        Err(e) => {
                            clean = false;
                            failed.insert(i);
                            self.settle(&intent, Err(e.to_string())).await?;
                            report.errors.push(format!("updating {}: {e}", u.target));
                        }
                    }
                }
            }
        }
        if !audit.is_empty() {
            self.store.record_audit(&audit).await.map_err(store_err)?;
        }

        // Hashes: what each side holds now. Written records are read back, so a CRM that
        // normalises or ignores a value does not make our own write look like its change.
        let mut hashes: Vec<BTreeMap<Crm, (String, FieldMap)>> =
            plan.groups.iter().map(|g| g.seen.clone()).collect();
        let reads: Vec<(usize, RecordRef, Result<Record>)> = stream::iter(written)
            .filter(|(i, _)| futures::future::ready(!failed.contains(i)))
            .map(|(i, r)| async move {
                let got = self.conn(r.crm).get(r.object, &r.id).await;
                (i, r, got)
            })
            .buffer_unordered(READ_CONCURRENCY)
            .collect()
            .await;
        for (i, r, got) in reads {
            match got.and_then(|rec| Seen::new(r.crm, rec, &cfg, false)) {
                Ok(seen) => {
                    hashes[i].insert(r.crm, (seen.hash, seen.fields));
                }
                Err(e) => {
                    clean = false;
                    failed.insert(i);
                    report.errors.push(format!("reading back {r}: {e}"));
                }
            }
        }
        for (i, link) in group_links.into_iter().enumerate() {
            // A group with a failed write keeps its old hashes, so the next run plans it again.
            let (Some(link), false) = (link, failed.contains(&i)) else {
                continue;
            };
            let mut update = LinkUpdate::new();
            let mut any = false;
            for (crm, (h, fields)) in &hashes[i] {
                if link.hash(*crm) != Some(h.as_str()) {
                    update = update.hash(*crm, Some(h.clone()));
                    any = true;
                }
                // The side's values are the base that tells next run's changes (and clears)
                // on that side from the fields it left alone.
                let values = fields_json(fields);
                if link.fields(*crm) != Some(&values) {
                    update = update.fields(*crm, Some(values));
                    any = true;
                }
            }
            if any {
                if let Err(e) = self.store.update_link(&link, &update).await {
                    clean = false;
                    report.errors.push(format!(
                        "storing hashes of link {}: {}",
                        link.id,
                        store_err(e)
                    ));
                }
            }
        }
        Ok(clean)
    }
}

fn link_state(link: &Link) -> LinkState {
    let mut ids = BTreeMap::new();
    let mut hashes = BTreeMap::new();
    let mut bases = BTreeMap::new();
    for crm in [Crm::Close, Crm::HubSpot, Crm::Salesforce] {
        if let Some(serde_json::Value::Object(m)) = link.fields(crm) {
            bases.insert(crm, m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        }
        if let Some(id) = link.crm_id(crm) {
            ids.insert(crm, id.to_string());
        }
        if let Some(h) = link.hash(crm) {
            hashes.insert(crm, h.to_string());
        }
    }
    LinkState {
        key: link.id.to_string(),
        ids,
        hashes,
        bases,
    }
}

/// A side's mapped fields as the JSON object the store keeps.
fn fields_json(fields: &FieldMap) -> serde_json::Value {
    serde_json::Value::Object(fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

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

fn describe_ids(kind: ObjectKind, ids: &BTreeMap<Crm, String>) -> String {
    ids.iter()
        .map(|(c, id)| RecordRef::new(*c, kind, id.clone()).to_string())
        .collect::<Vec<_>>()
        .join(" + ")
}

/// A batch's results, one per input whatever the connector answered: `None` for an input it
/// reported nothing for, so a short answer never lets the others pass as written.
fn per_input<T>(results: Vec<T>) -> impl Iterator<Item = Option<T>> {
    results
        .into_iter()
        .map(Some)
        .chain(std::iter::repeat_with(|| None))
}

#[cfg(test)]
mod tests {
    use super::per_input;

    #[test]
    fn a_short_batch_answer_leaves_the_unanswered_inputs_without_an_outcome() {
        let inputs = ["a", "b", "c"];
        let paired: Vec<_> = inputs.iter().zip(per_input(vec![1, 2])).collect();
        assert_eq!(paired, [(&"a", Some(1)), (&"b", Some(2)), (&"c", None)]);
    }
}
