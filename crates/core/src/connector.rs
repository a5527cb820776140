//! The `Connector` trait that every CRM implements.
//!
//! The sync engine and the CLI work with any CRM through this trait alone: list what changed
//! since a cursor, read one record, write records in batches with per-record results, and
//! search with the CRM's own query language.

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::{Crm, ObjectKind, Record, RecordRef};

/// An opaque position in a CRM's change feed. Persist it after the records it covers are
/// stored; hand it back to resume.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChangeCursor(pub String);

/// One record from a change feed, with the cursor that resumes just after it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The record as it is now.
    pub record: Record,
    /// Resume here to skip this record and everything before it.
    pub cursor: ChangeCursor,
}

/// Per-record results of a batch write, in input order. A batch never fails as a whole: each
/// record succeeds or fails on its own, so nothing is half-applied in silence.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// One result per input record, in the same order.
    pub results: Vec<Result<RecordRef>>,
}

impl BatchOutcome {
    /// The references of the records that were written.
    pub fn succeeded(&self) -> impl Iterator<Item = &RecordRef> {
        self.results.iter().filter_map(|r| r.as_ref().ok())
    }

    /// The failures, with the index of the input record each belongs to.
    pub fn failed(&self) -> impl Iterator<Item = (usize, &crate::Error)> {
        self.results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
    }
}

/// What every CRM connector can do, in the unified vocabulary.
#[async_trait]
pub trait Connector: Send + Sync {
    /// Which CRM this connector talks to.
    fn crm(&self) -> Crm;

    /// Records of `kind` changed at or after `since` (everything when `None`), oldest first,
    /// as a stream with bounded memory.
    fn changes(
        &self,
        kind: ObjectKind,
        since: Option<ChangeCursor>,
    ) -> BoxStream<'_, Result<Change>>;

    /// Reads one record.
    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Record>;

    /// Creates records; each result carries the new id or that record's error.
    async fn create(&self, records: Vec<Record>) -> BatchOutcome;

    /// Updates records (each must carry its id) with the fields they hold.
    async fn update(&self, records: Vec<Record>) -> BatchOutcome;

    /// Deletes records.
    async fn delete(&self, refs: Vec<RecordRef>) -> BatchOutcome;

    /// Searches records of `kind` with the CRM's own query language.
    fn search(&self, kind: ObjectKind, query: &str) -> BoxStream<'_, Result<Record>>;
}
