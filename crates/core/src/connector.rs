//! The `Connector` trait that every CRM implements, and the contract each implementation
//! keeps.
//!
//! The sync engine and the CLI work with any CRM through this trait alone.
//!
//! # The contract
//!
//! - **Change feed, at least once.** [`Connector::changes`] yields every record of a kind
//!   that changed since a cursor, oldest first, as [`Change`]s. Each change carries an opaque
//!   [`ChangeCursor`]; persist it after storing the change and hand it back to resume. A
//!   change may be delivered again after a resume (the feed re-reads an overlap window for
//!   records the CRM indexed late), but none is ever skipped: records changed while a run is
//!   going are left for the next run, which starts where this one stopped (see
//!   [`crate::keyset`]). Consumers must therefore be idempotent per record id. A feed may
//!   end with a [`Change::Checkpoint`], which carries no record, only a cursor to persist
//!   like any other.
//! - **Tombstones.** Deleted records come out as [`Change::Deleted`], from the CRM's own
//!   deletion log, so a mirror can remove them. A record that is gone because it was merged
//!   into another (HubSpot and Close merges) comes out the same way with `merged_into` set to the
//!   surviving record's id: its data was not deleted, so a mirror should follow the
//!   survivor rather than delete. A record the CRM says a merge removed without saying where
//!   its data went (a Close contact whose own `deleted` event carries merge `meta`) comes out
//!   as [`Change::Gone`]: not a deletion to mirror, and its successor is unknown, so a mirror
//!   should have a person look at it. Where a CRM deletes a record's children with it (Close
//!   deletes a lead's contacts, opportunities and activities), the tombstone of a child its
//!   parent's deletion took (or may have taken) names that parent in `parent`, so a mirror can tell a deletion it made itself (of the parent) from one a user
//!   made (see the sync engine). A record a read answers "not found" for without a
//!   tombstone is not known to be deleted (it may be merged, or hidden from these
//!   credentials).
//! - **Nothing unmappable is fatal.** A record the connector cannot express in the unified
//!   model comes out as [`Change::Skipped`] with the reason and the feed goes on. The
//!   [`SkipReason`] tells a design gap ([`SkipReason::Unmappable`]: an SMS, a status-change
//!   activity) from a record the connector failed to read ([`SkipReason::Malformed`]: the
//!   CRM's shape changed or the mapping has a bug), which a sync engine should alert on and
//!   resync, because the cursor has moved past it.
//! - **Updates are patches.** [`Connector::update`] changes only what the caller changed:
//!   when a record carries `raw` read from the CRM for this very record (same id), only
//!   fields whose unified value differs from what `raw` maps to are sent; otherwise (no
//!   `raw`, or the `raw` of another record or CRM) only fields that are set (`Some`,
//!   non-empty) are sent. Clearing is explicit: a typed field that `raw` had and the record
//!   now holds as `None` (or an empty list) is sent as a clear; a custom field is cleared
//!   only when its key is present in `custom` with `Value::Null`. A custom field missing
//!   from `custom` is left as it is, so a record built from another CRM's fields with only
//!   some custom fields mapped never wipes the others. A record read (through
//!   [`Connector::get`] or the change feed) and written back unchanged sends nothing. An
//!   update with nothing to send is a success without a request, so it does not check that
//!   the id exists.
//! - **Per-record batch outcomes.** Writes take many records and answer one result per
//!   record in input order ([`BatchOutcome`]); one bad record never fails the others, and
//!   each error names its record.
//! - **Idempotent creates.** [`Connector::create_marked`] stores an idempotency marker (an
//!   external id such as the source record's id) with each new record and first looks the
//!   marker up, so a sync interrupted after a create finds the record instead of creating it
//!   twice. [`Connector::find_by_marker`] is that lookup. Where the marker lives is the
//!   connector's choice (an external-id field, or a configured custom field). Records of one
//!   batch that share a marker are created once and all get that one result. A kind that
//!   cannot store a marker is refused with a [`crate::ErrorKind::Config`] error, never
//!   created without one, unless the connector finds its records by a natural key instead:
//!   then [`Connector::find_created`] is that lookup, and `create_marked` uses it before
//!   creating (Close's built-in activities, which have no custom fields, are found by their
//!   lead, type, time and text). A sync engine settling an interrupted create calls
//!   [`Connector::find_created`] with the record it sent, never `find_by_marker` alone.
//! - **Batch reads keep their places.** [`Connector::get_many`] answers one result per id,
//!   in the order of the ids: an id that names no record (never created, deleted, or of
//!   another kind) is that id's [`crate::ErrorKind::NotFound`], never left out, so no
//!   result ever shifts onto another id.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::model::{Crm, ObjectKind, Record, RecordRef};

/// An opaque position in a CRM's change feed. Persist it after the changes it covers are
/// stored; hand it back to resume.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChangeCursor(pub String);

impl ChangeCursor {
    /// A connector's cursor: `prefix` (which names the connector and the format's version,
    /// such as `close1.`) followed by the JSON of the connector's `state`.
    pub fn with_state<T: Serialize>(prefix: &str, state: &T) -> Self {
        Self(format!(
            "{prefix}{}",
            serde_json::to_string(state).unwrap_or_default()
        ))
    }

    /// The state in a cursor made by [`ChangeCursor::with_state`] with `prefix`. Any other
    /// cursor is a [`ErrorKind::Validation`] error saying it was not made by `crm`'s
    /// connector.
    pub fn state<T: DeserializeOwned>(&self, prefix: &str, crm: Crm) -> Result<T> {
        self.0
            .strip_prefix(prefix)
            .and_then(|json| serde_json::from_str(json).ok())
            .ok_or_else(|| {
                let name = match crm {
                    Crm::Close => "Close",
                    Crm::HubSpot => "HubSpot",
                    Crm::Salesforce => "Salesforce",
                };
                Error::new(
                    ErrorKind::Validation,
                    format!("this change cursor was not made by the {name} connector"),
                )
                .with_crm(crm)
            })
    }
}

/// One entry of a change feed, with the cursor that resumes just after it.
// Changes are streamed one at a time and almost all are upserts: boxing the record would
// add an allocation per change to save memory nobody holds.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Change {
    /// A record was created or updated; this is how it is now.
    Upsert {
        /// The record.
        record: Record,
        /// Resume here to continue after this change.
        cursor: ChangeCursor,
    },
    /// A record was deleted (a tombstone), or merged into another record.
    Deleted {
        /// The record that is gone.
        record: RecordRef,
        /// When it was deleted, if the CRM says.
        at: Option<DateTime<Utc>>,
        /// The id of the record it was merged into, when it is gone because of a merge
        /// (its data lives on in that record): not a deletion to mirror.
        merged_into: Option<String>,
        /// The record whose own deletion took it with it, where its CRM deletes such
        /// records with that one (a Close contact, opportunity or activity and its lead, in
        /// one request): the CRM's own cascade of its parent's deletion; also where the
        /// parent is deleted and the CRM does not tell whether its deletion took this one.
        /// `None` for a record known to be deleted on its own, and where the CRM has no such
        /// cascade or does not say.
        parent: Option<RecordRef>,
        /// Resume here to continue after this change.
        cursor: ChangeCursor,
    },
    /// A record removed from its CRM by something other than a deletion (a merge), whose
    /// successor the CRM does not name: its data may live on elsewhere, so it is not a
    /// deletion to mirror, and a mirror cannot follow it either (a person must).
    Gone {
        /// The record that is gone.
        record: RecordRef,
        /// What the CRM said, in words.
        reason: String,
        /// Resume here to continue after this change.
        cursor: ChangeCursor,
    },
    /// A record changed but was not turned into a unified record; reported, not fatal.
    Skipped {
        /// The record that was passed over.
        record: RecordRef,
        /// Whether it has no unified form by design, or failed to map.
        cause: SkipReason,
        /// Why, in words.
        reason: String,
        /// Resume here to continue after this change.
        cursor: ChangeCursor,
    },
    /// No record: the feed read everything up to a point and says so, so a consumer can
    /// persist a cursor even when nothing changed (a feed whose source forgets old history,
    /// such as Salesforce's 15-day deletion log, would otherwise go stale while idle).
    Checkpoint {
        /// Resume here.
        cursor: ChangeCursor,
    },
}

impl Change {
    /// The cursor that resumes just after this change.
    pub fn cursor(&self) -> &ChangeCursor {
        match self {
            Change::Upsert { cursor, .. }
            | Change::Deleted { cursor, .. }
            | Change::Gone { cursor, .. }
            | Change::Skipped { cursor, .. }
            | Change::Checkpoint { cursor } => cursor,
        }
    }

    /// The id of the record the change concerns.
    pub fn id(&self) -> Option<&str> {
        match self {
            Change::Upsert { record, .. } => record.id(),
            Change::Deleted { record, .. }
            | Change::Gone { record, .. }
            | Change::Skipped { record, .. } => Some(record.id.as_str()),
            Change::Checkpoint { .. } => None,
        }
    }
}

/// Why a change feed passed over a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The record has no unified form by design (an SMS, a status-change activity): expected,
    /// nothing to do.
    Unmappable,
    /// The record should have mapped but could not be read (its shape changed, or the
    /// connector has a bug): the record is missing downstream, so alert and resync.
    Malformed,
}

/// A record to create together with its idempotency marker.
#[derive(Debug, Clone)]
pub struct Marked {
    /// The record to create.
    pub record: Record,
    /// A value unique to this record in the source system (its id there, say).
    pub marker: String,
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

/// Reads in flight at once in the default [`Connector::get_many`]: enough to hide the
/// round trips, few enough to stay inside the CRMs' burst limits.
const GET_MANY_CONCURRENCY: usize = 8;

fn no_markers(crm: Crm) -> Error {
    Error::config(format!(
        "the {crm} connector has no idempotency marker configured"
    ))
    .with_crm(crm)
}

/// What every CRM connector can do, in the unified vocabulary.
#[async_trait]
pub trait Connector: Send + Sync {
    /// Which CRM this connector talks to.
    fn crm(&self) -> Crm;

    /// Changes to records of `kind` after `since` (everything when `None`), oldest first,
    /// as a stream with bounded memory: at least once, with tombstones and skipped records
    /// reported (see the module docs).
    fn changes(
        &self,
        kind: ObjectKind,
        since: Option<ChangeCursor>,
    ) -> BoxStream<'_, Result<Change>>;

    /// Reads one record.
    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Record>;

    /// Reads the records of `kind` with `ids`: one result per id, in the order of `ids`;
    /// an id that names no record is that id's [`crate::ErrorKind::NotFound`]. The default
    /// reads them one by one, a few at a time; a connector whose CRM documents a batch read
    /// overrides it.
    async fn get_many(&self, kind: ObjectKind, ids: &[String]) -> Vec<Result<Record>> {
        // Owned ids: a closure over borrowed ones is not `Send` for every lifetime, which
        // the boxed future of an async trait method needs.
        stream::iter(ids.to_vec())
            .map(|id| async move { self.get(kind, &id).await })
            .buffered(GET_MANY_CONCURRENCY)
            .collect()
            .await
    }

    /// Creates records; each result carries the new id or that record's error.
    async fn create(&self, records: Vec<Record>) -> BatchOutcome;

    /// Creates records that carry an idempotency marker: a record whose marker is already
    /// stored is not created again, its existing reference is returned instead.
    async fn create_marked(&self, records: Vec<Marked>) -> BatchOutcome {
        let crm = self.crm();
        BatchOutcome {
            results: records.iter().map(|_| Err(no_markers(crm))).collect(),
        }
    }

    /// Finds the record of `kind` created with `marker`, if any.
    async fn find_by_marker(&self, kind: ObjectKind, marker: &str) -> Result<Option<RecordRef>> {
        let _ = (kind, marker);
        Err(no_markers(self.crm()))
    }

    /// Finds the record that [`Connector::create_marked`] made (or would have found) for
    /// `created`: by its marker ([`Connector::find_by_marker`], the default), or, where a
    /// kind cannot hold a marker, by the natural key the connector matches on before
    /// creating (see the module docs).
    async fn find_created(&self, created: &Marked) -> Result<Option<RecordRef>> {
        self.find_by_marker(created.record.kind(), &created.marker)
            .await
    }

    /// Updates records (each must carry its id) as patches: only what changed is sent.
    async fn update(&self, records: Vec<Record>) -> BatchOutcome;

    /// Deletes records.
    async fn delete(&self, refs: Vec<RecordRef>) -> BatchOutcome;

    /// Searches records of `kind` with the CRM's own query language.
    fn search(&self, kind: ObjectKind, query: &str) -> BoxStream<'_, Result<Record>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Companies `a`…`z` (one letter ids); a later letter answers sooner, so reads finish
    /// out of order.
    struct Letters;

    #[async_trait]
    impl Connector for Letters {
        fn crm(&self) -> Crm {
            Crm::Close
        }
        fn changes(&self, _: ObjectKind, _: Option<ChangeCursor>) -> BoxStream<'_, Result<Change>> {
            stream::empty().boxed()
        }
        async fn get(&self, _: ObjectKind, id: &str) -> Result<Record> {
            let letter = id
                .bytes()
                .next()
                .filter(|b| id.len() == 1 && b.is_ascii_lowercase());
            let Some(b) = letter else {
                return Err(Error::new(ErrorKind::NotFound, format!("no {id}")));
            };
            tokio::time::sleep(std::time::Duration::from_millis(u64::from(b'z' - b))).await;
            Ok(Record::Company(crate::Company {
                id: Some(id.to_string()),
                ..crate::Company::default()
            }))
        }
        async fn create(&self, _: Vec<Record>) -> BatchOutcome {
            BatchOutcome::default()
        }
        async fn update(&self, _: Vec<Record>) -> BatchOutcome {
            BatchOutcome::default()
        }
        async fn delete(&self, _: Vec<RecordRef>) -> BatchOutcome {
            BatchOutcome::default()
        }
        fn search(&self, _: ObjectKind, _: &str) -> BoxStream<'_, Result<Record>> {
            stream::empty().boxed()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_get_many_keeps_each_result_in_its_ids_place() {
        let ids: Vec<String> = ["a", "zz", "m", "z", "b"].map(String::from).to_vec();
        let got = Letters.get_many(ObjectKind::Company, &ids).await;
        let read: Vec<std::result::Result<String, ErrorKind>> = got
            .into_iter()
            .map(|r| {
                r.map(|rec| rec.id().unwrap_or_default().to_string())
                    .map_err(|e| e.kind())
            })
            .collect();
        assert_eq!(
            read,
            [
                Ok("a".to_string()),
                Err(ErrorKind::NotFound),
                Ok("m".to_string()),
                Ok("z".to_string()),
                Ok("b".to_string()),
            ]
        );
    }

    #[test]
    fn a_cursor_state_round_trips_and_a_foreign_cursor_is_refused() {
        let c = ChangeCursor::with_state("x1.", &vec![1, 2]);
        assert_eq!(c.0, "x1.[1,2]");
        assert_eq!(
            c.state::<Vec<i32>>("x1.", Crm::HubSpot).ok(),
            Some(vec![1, 2])
        );
        let e = c
            .state::<Vec<i32>>("y1.", Crm::HubSpot)
            .expect_err("other prefix");
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.to_string().contains("HubSpot connector"), "{e}");
        let bad = ChangeCursor("x1.{".into());
        assert!(bad.state::<Vec<i32>>("x1.", Crm::Close).is_err());
    }
}
