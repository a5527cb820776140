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
use futures::TryStreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{Config, DeletePolicy};
use crate::matching;
use crate::per_crm::PerCrm;
use crate::plan::{self, Ambiguous, Input, LinkState, Plan, RefTable, Seen, Sides};
use crate::resolve::FieldConflict;
use crate::values::{Field, FieldMap, FieldsHash, reference_kind};

/// Runs one store write (`$method` of [`crmkit_store::Tx`]) in a transaction of its own,
/// fenced by the run's lease ([`Engine::tx`]): a run that lost its lease writes nothing.
macro_rules! fenced {
    ($engine:expr, $method:ident($($arg:expr),* $(,)?)) => {
        async {
            let mut tx = $engine.tx().await?;
            let out = tx.$method($($arg),*).await.map_err(store_err)?;
            tx.commit().await.map_err(store_err)?;
            Ok::<_, Error>(out)
        }
        .await
    };
}

mod apply;
mod echo;
mod gone;
mod kind;
mod lease;
mod read;
pub(crate) mod readback;
mod reconcile;
mod retry;

pub use echo::Cascade;
pub use lease::{
    crm_lease_name, lease_names, pair_name, release_leases, renew_leases, take_leases,
};
pub use readback::CLOSE_COUNTRY_CODE;
pub use retry::GivenUp;

/// Open reviews read per run and kind to leave their records alone (far more than a review
/// queue a person works through holds).
const OPEN_REVIEWS_READ: u32 = 100_000;

/// Records handed to a connector's batch write at once. Connectors split them into the
/// CRM's own batches (HubSpot 100, Salesforce collections 200) and take their bulk path
/// above its threshold (Salesforce Bulk API 2.0 from 2,000 records), so an initial
/// migration of thousands of records goes through the bulk paths.
const WRITE_BATCH: usize = 5_000;

use crate::plan::DELETED;

/// How long a run's lease lasts unless renewed (it is renewed in the background).
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
        | crmkit_store::Error::VersionConflict { .. }
        | crmkit_store::Error::LeaseLost { .. } => ErrorKind::Conflict,
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

impl QueuedConflict {
    /// Conflict `c` of group `g` of a plan of `kind`.
    fn new(kind: ObjectKind, g: &plan::Group, c: &FieldConflict) -> Self {
        QueuedConflict {
            records: g
                .ids
                .iter()
                .map(|(crm, id)| RecordRef::new(crm, kind, id.clone()))
                .collect(),
            conflict: c.clone(),
        }
    }
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
    /// Deletions put in the review queue (policy `flag`), and records gone without a
    /// deletion that were queued instead of deleted (not found with no tombstone under
    /// `propagate`, merged into a record linked to others).
    pub flagged: Vec<RecordRef>,
    /// Tombstones that were their CRM's cascade of a deletion crmkit made (Close's
    /// contacts of a lead crmkit deleted as a propagated delete): not a user's deletion, so
    /// not propagated; each one's side of its link is noted gone. Reported once, when
    /// noted.
    pub cascades: Vec<Cascade>,
    /// Links moved from a merged-away record to the record it was merged into.
    pub relinked: usize,
    /// Written records someone else edited between our write and our read-back: their
    /// edit is not taken as synced, so the next run syncs it.
    pub edited_meanwhile: Vec<RecordRef>,
    /// Field conflicts this run opened (changes that disagree under `manual`, values held
    /// apart that nobody changed); one already open on the same field of the record is not
    /// counted again. A dry run lists every conflict its plan would queue.
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
    /// Per-record failures; the run went on. Each makes the run partial, and a record the
    /// plan could not handle goes on the retry list.
    pub errors: Vec<String>,
    /// Per-record notices (`<crm>:<kind>:<id>: <what>`): what a run did otherwise than the
    /// change asked, or could never do, that no later run would change (a reference naming
    /// a record deleted there, not written; a create under a merge's survivor, or without
    /// its company; a Close company not cleared; a record that takes no edit or that its
    /// target can never hold). The rest of the record is synced: not failures, not retried,
    /// the run is not partial for them. Reported on the run that makes the change.
    pub notices: Vec<String>,
    /// Records read again from the retry list (they failed in an earlier run).
    pub retried: usize,
    /// Records on the retry list after the run, waiting for their next attempt.
    pub retrying: usize,
    /// Records on the retry list that failed every attempt: not retried until they change
    /// again, never dropped.
    pub given_up: Vec<GivenUp>,
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
    /// The leases of the run under way ([`lease_names`]; none between runs): every store
    /// transaction of the run is fenced by each.
    lease: std::sync::Mutex<Vec<crmkit_store::Lease>>,
    /// Set when the run's lease is known lost: nothing more is written.
    lost: Arc<std::sync::atomic::AtomicBool>,
    /// The lease's time to live.
    lease_ttl: std::time::Duration,
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
        let pair = pair_name(&config.sync.crms);
        Ok(Self {
            config,
            store,
            connectors,
            pair,
            lease: std::sync::Mutex::default(),
            lost: Arc::default(),
            lease_ttl: LEASE_TTL,
        })
    }

    /// Sets how long the run's lease lasts unless renewed (15 minutes by default); it is
    /// renewed every third of that while a run goes on, so another process can take the
    /// pair over that long after this one died.
    pub fn with_lease_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// The canonical name of this engine's CRMs ([`pair_name`], `close-hubspot`): its lease,
    /// cursors, retry list, intents and runs are stored under it.
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
            // A dry run's plan against another set's bases would mislead as much as a run.
            self.check_crm_set().await?;
            for kind in self.config.kinds() {
                self.run_kind(kind, None, false, &mut report).await?;
            }
            return Ok(report);
        }
        // One run at a time per pair, under its canonical name and every name an older
        // crmkit may take for it (any order of the CRMs).
        let held = match self.hold_leases().await? {
            Ok(held) => held,
            Err(name) => {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "another sync of {} (or of other CRMs including one of these) is \
                         running (it holds lease {name:?})",
                        self.pair
                    ),
                ));
            }
        };
        // Checked under the leases, so no run of another set starts meanwhile.
        let started = match self.check_crm_set().await {
            Ok(()) => self.store.start_run(&self.pair).await.map_err(store_err),
            Err(e) => Err(e),
        };
        let run = match started {
            Ok(run) => run,
            Err(e) => {
                let leases = held.stop();
                self.drop_lease();
                lease::release_leases(&self.store, &leases).await.ok();
                return Err(e);
            }
        };
        report.run = Some(run.id.clone());
        let mut outcome = self.adopt_legacy_state().await;
        if outcome.is_ok() {
            outcome = self.reconcile(&mut report).await;
        }
        if outcome.is_ok() {
            // Whether a kind synced before kept its cursor (a write failed or a record was
            // unreadable): the later kinds' records deferred for a parent of it are read
            // again next run, when that parent is retried.
            let mut held = false;
            for kind in self.config.kinds() {
                outcome = match self.run_kind(kind, Some(&run.id), held, &mut report).await {
                    Ok(kept) => {
                        held |= kept;
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                if outcome.is_err() {
                    break;
                }
            }
        }
        let leases = held.stop();
        self.drop_lease();
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
        let released = lease::release_leases(&self.store, &leases).await;
        outcome?;
        finished?;
        released?;
        Ok(report)
    }

    fn conn(&self, crm: Crm) -> &dyn Connector {
        // `new` checked that every configured CRM has one.
        self.connectors[&crm].as_ref()
    }
}

/// What `link` stores for its `crm` side after a write outside a sync run (`crmkit
/// conflicts resolve`) of `sent` to a record that held `before` (its mapped fields, read
/// just before the write) and reads back as `read_back`: the side's hash and base (the
/// last-synced values).
///
/// Only the fields sent take a new base, judged as a run judges its own writes
/// ([`readback::base_after_write`]: a value the CRM kept its own way is the base, someone
/// else's edit keeps the old base so the next run syncs it); every other field keeps its
/// old base, so an edit made to it since the last run is still seen as a change then. The
/// hash is the new base's, so the next run finds nothing new on a side that holds exactly
/// that.
///
/// A relinked merge winner (a base but no hash) keeps no hash (stored with one it would
/// stop being one): the written fields join its base, so a value written there counts as
/// held (a later clear of it is a change, never a gap to fill).
///
/// `None` for a side with no stored base: it is left as it is. Such a side is new to
/// the link, and the next run settles its values by the rule as on a first sync
/// ([`crate::resolve::resolve`]); its whole read-back as base would make every other value
/// it holds (an edit there, a value never synced) look synced, never reaching the rule,
/// and a base of the sent field alone would make those values look like edits that
/// overwrite the other CRMs. Unstored, it holds the chosen value like the others, so that
/// field agrees next run, and the rest is planned as it was before.
///
/// A side not written because it already holds the chosen value is stored by passing what
/// it holds as `read_back` and `before`, and that value as `sent`.
pub fn side_after_write(
    link: &Link,
    crm: Crm,
    read_back: &FieldMap,
    before: &FieldMap,
    sent: &crate::values::Writes,
) -> Option<(Option<FieldsHash>, FieldMap)> {
    let mut base = last_synced(link, crm, before)?;
    let judged = readback::base_after_write(crm, read_back, Some(before), sent, Some(&base))
        .unwrap_or_else(|| read_back.clone());
    for f in sent.keys() {
        match judged.get(f) {
            Some(v) => base.insert(*f, v.clone()),
            None => base.remove(f),
        };
    }
    let hash = link.hash(crm).map(|_| crate::resolve::hash(&base));
    Some((hash, base))
}

/// `crm`'s side of `link` as last synced, as a run judges it against `now` (what the record
/// holds): its stored base, or, for a created record not read back yet (hash
/// [`plan::SENT`]), the base rebuilt from what it holds as the next run would (the CRM's
/// reshaping of a sent value is its keeping, a real difference someone's edit). `None`
/// where no base is stored.
pub fn last_synced(link: &Link, crm: Crm, now: &FieldMap) -> Option<FieldMap> {
    let base = link_state(link).bases.remove(&crm)?;
    if link.hash(crm) != Some(plan::SENT) {
        return Some(base);
    }
    Some(sent_base(crm, &base, now))
}

/// The base of a created record stored as what its create sent (hash [`plan::SENT`]),
/// rebuilt against `now`, what it holds: the CRM's reshaping of a sent value is its keeping,
/// a real difference someone's edit ([`readback::created_base`]).
pub(crate) fn sent_base(crm: Crm, sent: &FieldMap, now: &FieldMap) -> FieldMap {
    let sent: crate::values::Writes = sent.iter().map(|(f, v)| (*f, Some(v.clone()))).collect();
    readback::created_base(crm, now, &sent).unwrap_or_else(|| now.clone())
}

fn link_state(link: &Link) -> LinkState {
    let mut ids = PerCrm::new();
    let mut hashes = PerCrm::new();
    let mut bases = PerCrm::new();
    for crm in [Crm::Close, Crm::HubSpot, Crm::Salesforce] {
        if let Some(serde_json::Value::Object(m)) = link.fields(crm) {
            bases.insert(
                crm,
                m.iter()
                    .map(|(k, v)| (Field::intern(k), v.clone()))
                    .collect(),
            );
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

/// `update` storing `hash` and `base` (the hash of and the values last synced to that side)
/// for the `crm` side of a link.
pub fn stored_side(update: LinkUpdate, crm: Crm, hash: &str, base: &FieldMap) -> LinkUpdate {
    stored_base(update.hash(crm, Some(hash.to_string())), crm, base)
}

/// `update` storing `base` (the values last synced) for the `crm` side of a link, its hash
/// left as it is (a relinked merge winner's stays unset).
pub fn stored_base(update: LinkUpdate, crm: Crm, base: &FieldMap) -> LinkUpdate {
    update.fields(crm, Some(fields_json(base)))
}

/// A side's mapped fields as the JSON object the store keeps.
fn fields_json(fields: &FieldMap) -> serde_json::Value {
    serde_json::Value::Object(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}
