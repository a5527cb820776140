//! A connector wrapper that counts, per CRM and object, what a sync reads and writes: it
//! drives one progress counter per CRM and object (with the client's rate-limit waits) and
//! the summary table at the end.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use crmkit_core::{
    BatchOutcome, Change, ChangeCursor, Connector, Crm, Marked, ObjectKind, Record, RecordRef,
    Result,
};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::progress::Progress;
use crate::waits::Waits;

/// What was done with one CRM's records of one kind.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Tally {
    /// Changes read from the feed.
    pub read: u64,
    /// Records created (or found by their marker).
    pub created: u64,
    /// Records patched.
    pub updated: u64,
    /// Records deleted.
    pub deleted: u64,
    /// Writes the CRM refused or that failed.
    pub failed: u64,
}

/// Each CRM and object's tally and its progress counter (once something was counted).
type Tallies = BTreeMap<(Crm, ObjectKind), (Tally, Option<Arc<Progress>>)>;

/// Tallies and progress counters shared by the watched connectors of one command.
#[derive(Clone, Default)]
pub struct Board {
    inner: Arc<Mutex<Tallies>>,
    waits: Waits,
    show: bool,
}

impl Board {
    /// A board drawing counters (when `show` and stderr is a terminal) with `waits`' notes.
    pub fn new(waits: Waits, show: bool) -> Self {
        Self {
            inner: Arc::default(),
            waits,
            show,
        }
    }

    fn add(&self, crm: Crm, kind: ObjectKind, f: impl FnOnce(&mut Tally), n: u64) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (tally, bar) = map.entry((crm, kind)).or_default();
        f(tally);
        if bar.is_none() && self.show {
            *bar = Some(Arc::new(Progress::counter(
                &format!("{crm} {kind} records read or written"),
                &self.waits,
            )));
        }
        if let Some(bar) = bar {
            bar.inc(n);
        }
    }

    /// Clears the counters and returns the tallies.
    pub fn finish(&self) -> BTreeMap<(Crm, ObjectKind), Tally> {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.iter_mut()
            .map(|(k, (t, bar))| {
                if let Some(bar) = bar.take() {
                    bar.done();
                }
                (*k, *t)
            })
            .collect()
    }

    /// `inner` with its reads and writes counted here.
    pub fn watch(&self, inner: Arc<dyn Connector>) -> Arc<dyn Connector> {
        Arc::new(Watched {
            inner,
            board: self.clone(),
        })
    }

    fn outcome(&self, crm: Crm, kinds: &[ObjectKind], out: &BatchOutcome, what: fn(&mut Tally)) {
        for (kind, r) in kinds.iter().zip(&out.results) {
            match r {
                Ok(_) => self.add(crm, *kind, what, 1),
                Err(_) => self.add(crm, *kind, |t| t.failed += 1, 0),
            }
        }
    }
}

struct Watched {
    inner: Arc<dyn Connector>,
    board: Board,
}

#[async_trait]
impl Connector for Watched {
    fn crm(&self) -> Crm {
        self.inner.crm()
    }

    fn changes(
        &self,
        kind: ObjectKind,
        since: Option<ChangeCursor>,
    ) -> BoxStream<'_, Result<Change>> {
        let crm = self.crm();
        self.inner
            .changes(kind, since)
            .inspect(move |c| {
                // A checkpoint only moves the cursor: no record was read.
                if matches!(c, Ok(c) if !matches!(c, Change::Checkpoint { .. })) {
                    self.board.add(crm, kind, |t| t.read += 1, 1);
                }
            })
            .boxed()
    }

    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Record> {
        self.inner.get(kind, id).await
    }

    async fn create(&self, records: Vec<Record>) -> BatchOutcome {
        let kinds: Vec<ObjectKind> = records.iter().map(Record::kind).collect();
        let out = self.inner.create(records).await;
        self.board
            .outcome(self.crm(), &kinds, &out, |t| t.created += 1);
        out
    }

    async fn create_marked(&self, records: Vec<Marked>) -> BatchOutcome {
        let kinds: Vec<ObjectKind> = records.iter().map(|m| m.record.kind()).collect();
        let out = self.inner.create_marked(records).await;
        self.board
            .outcome(self.crm(), &kinds, &out, |t| t.created += 1);
        out
    }

    async fn find_by_marker(&self, kind: ObjectKind, marker: &str) -> Result<Option<RecordRef>> {
        self.inner.find_by_marker(kind, marker).await
    }

    async fn find_created(&self, created: &Marked) -> Result<Option<RecordRef>> {
        self.inner.find_created(created).await
    }

    async fn update(&self, records: Vec<Record>) -> BatchOutcome {
        let kinds: Vec<ObjectKind> = records.iter().map(Record::kind).collect();
        let out = self.inner.update(records).await;
        self.board
            .outcome(self.crm(), &kinds, &out, |t| t.updated += 1);
        out
    }

    async fn delete(&self, refs: Vec<RecordRef>) -> BatchOutcome {
        let kinds: Vec<ObjectKind> = refs.iter().map(|r| r.object).collect();
        let out = self.inner.delete(refs).await;
        self.board
            .outcome(self.crm(), &kinds, &out, |t| t.deleted += 1);
        out
    }

    fn search(&self, kind: ObjectKind, query: &str) -> BoxStream<'_, Result<Record>> {
        self.inner.search(kind, query)
    }
}
