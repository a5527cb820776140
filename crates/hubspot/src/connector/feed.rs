//! The HubSpot change feed: keyset slices over CRM search on the modification time
//! (`lastmodifieddate` for contacts, `hs_lastmodifieddate` otherwise) for upserts, and the
//! archived listing for tombstones.
//!
//! - **Upper bound.** Fixed at the start of each run from the `Date` header of one cheap
//!   list request (HubSpot's clock, RFC 9110 §6.6.1), so a client clock running ahead moves
//!   no bound past records HubSpot has not indexed; an answer without the header is an
//!   error rather than a fall back to the local clock.
//! - **Overlap.** A resumed run starts the configured overlap (default one minute) before
//!   its cursor: the search index lags writes by a few seconds (HubSpot CRM search guide).
//! - **Checkpoint.** A run that read every object type of the kind up to its bound, and the
//!   archived list, without a failure ends with a [`Change::Checkpoint`] moving each type's
//!   position that is behind the bound up to it (no ids: none at the bound was read), when
//!   that moves the cursor of its last change. Nothing before the bound is left to deliver
//!   but what the index had not caught up with, which the next run's overlap (the bound
//!   less the overlap, not twice) reads again; HubSpot's current second is past the bound.
//!   So after a mass change (10,000 records created in a few seconds), the first run that
//!   starts more than the overlap after it, having read it, leaves it behind: without the
//!   checkpoint each later run would read the minute before the newest record again, all
//!   10,000 records, until something newer changed. A run whose slice (or archived list)
//!   fails yields none, even when polled on past the error.
//! - **Associations.** Search answers carry no associations, so each page of up to 100
//!   records has its company and contact links read with one associations v4 batch read
//!   per linked type; of several associated companies the primary one is the link (see
//!   [`crate::associations::sort_by_preference`]).
//! - **Tombstones.** `GET /crm/v3/objects/{type}?archived=true` lists archived records with
//!   `archivedAt` (crm-objects-*-v3.json). It has no time filter or order, so every run
//!   reads the whole archived list — one request per 100 archived records of each object
//!   type, each run, whatever the cursor (HubSpot keeps archived records about 90 days, so
//!   the list is bounded by what was archived in that time) — and reports only what was
//!   archived in `[watermark - overlap, until)`: a record archived before the cursor's
//!   watermark is skipped, not reported again each run. Limits: HubSpot keeps archived
//!   records restorable for 90 days only (HubSpot knowledge base, "Restore deleted
//!   records"), so a cursor older than that may miss tombstones; GDPR deletes are not in
//!   the archived list and are not reported (webhooks report those); the first run reports
//!   none (nothing to remove).
//! - **Merges.** A merged-away contact, company or deal is in no listing; its id stays in the
//!   winner's `hs_merged_object_ids`, and the merge changes the winner, so the winner's
//!   upsert comes with a [`Change::Deleted`] for each id merged into it, `merged_into` the
//!   winner's id, just before it (and again whenever the winner changes: at-least-once).
//! - **Lean search.** The search asks only for `hs_object_id` and the modification time
//!   (the keyset's keys); each page of up to 100 records is then read in full with one
//!   batch read (see `upserts`), because a search body is capped at 3,000 characters and a
//!   portal's custom property names pass that. A record the search found but the batch
//!   read could not return (archived in between, say) comes out as [`Change::Skipped`]
//!   (`Malformed`, with HubSpot's reason), never dropped.
//! - **Cursor.** Opaque, `hs1.` + JSON of one keyset position per object type and the
//!   archive watermark. The object types of a kind (the five activity types) are read one
//!   after another, each from its own position, and every cursor carries the final
//!   positions of the types read before it: resuming from a run's last cursor resumes each
//!   type where it stopped, so a run with nothing changed delivers only the overlap window
//!   again (nothing with a zero overlap). A position lists at most
//!   [`crmkit_core::keyset::MAX_CURSOR_IDS`] ids read at its instant, so a crowded instant
//!   (an import stamping thousands of records with one time) keeps cursors small; a run
//!   resumed in such an instant reads its other records again (at least once). Tombstones
//!   carry the watermark the run started from, so a run that stops among them reads them
//!   again; the watermark moves to the run's bound with the first upsert after them, or
//!   with the checkpoint. Checkpoints write the same format, so older cursors read as
//!   before.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use crmkit_core::connector::{Change, SkipReason};
use crmkit_core::http::ApiRequest;
use crmkit_core::keyset::{FeedPosition as FeedCursor, KeysetConfig, KeysetCursor, Sliced};
use crmkit_core::{ChangeCursor, Crm, Error, ObjectKind, RecordRef, Result};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use super::mapping::{linked, object_types, to_record};
use crate::Client;
use crate::associations::{AssociationsOf, sort_by_preference};
use crate::batch::BATCH_SIZE;
use crate::objects::{AssociatedId, AssociatedIds, HubSpotObject, ObjectType, ReadOptions};
use crate::search::SearchRequest;

/// The feed's cursors start with this (the format's version).
const PREFIX: &str = "hs1.";

fn decode(cursor: &ChangeCursor) -> Result<FeedCursor> {
    FeedCursor::decode(cursor, PREFIX, Crm::HubSpot)
}

/// How one run reads.
#[derive(Clone)]
pub(super) struct FeedConfig {
    pub overlap: Duration,
    pub page_size: usize,
}

/// The change feed of `kind` after `since`; `properties` gives the properties to read per
/// object type.
pub(super) fn changes(
    client: &Client,
    kind: ObjectKind,
    since: Option<ChangeCursor>,
    config: FeedConfig,
    properties: BTreeMap<String, Vec<String>>,
) -> BoxStream<'static, Result<Change>> {
    let start = match since.as_ref().map(decode).transpose() {
        Ok(c) => c.unwrap_or_default(),
        Err(e) => return stream::once(async { Err(e) }).boxed(),
    };
    let client = client.clone();
    stream::once(async move {
        let until = server_now(&client, &object_types(kind)[0]).await?;
        let tomb = tombstones(&client, kind, &start, until, config.overlap);
        let mut moving = start.clone();
        moving.tombstones_before = Some(until);
        // One position for the whole run, shared by the type streams (which run one after
        // another): each cursor a type emits carries the final positions of the types before
        // it, so resuming from the last cursor resumes every type where it stopped.
        let moving = Arc::new(Mutex::new(moving));
        let mut ups = Vec::new();
        for t in object_types(kind) {
            let props = properties.get(t.as_str()).cloned().unwrap_or_default();
            ups.push(upserts(
                &client,
                t.clone(),
                start.per_type.get(t.as_str()).cloned(),
                Arc::clone(&moving),
                until,
                &config,
                props,
            ));
        }
        let names: Vec<String> = object_types(kind)
            .iter()
            .map(|t| t.as_str().to_string())
            .collect();
        Ok::<_, Error>(with_checkpoint(
            tomb.chain(stream::iter(ups).flatten()).boxed(),
            names,
            until,
        ))
    })
    .try_flatten()
    .boxed()
}

/// `changes` followed, once every one of them was read without a failure, by a
/// [`Change::Checkpoint`] whose positions are moved up to `until` for each of `types` that
/// stands behind it (the archive watermark is `until` already), when that moves the cursor
/// of the last change (or no change carried one).
///
/// Nothing before `until` is left to deliver: the run read every type up to it, and `until`
/// is HubSpot's clock rounded down to its second, so the records of that second are still
/// ahead. Records committed before `until` but indexed after their slice was searched are
/// read again by the next run, which starts the overlap before the position.
fn with_checkpoint(
    changes: BoxStream<'static, Result<Change>>,
    types: Vec<String>,
    until: DateTime<Utc>,
) -> BoxStream<'static, Result<Change>> {
    // What the stream handed out so far: the last cursor, and whether anything failed (a
    // consumer polling on after an error must not be handed a checkpoint past what it did
    // not read).
    let seen = Arc::new(Mutex::new((None::<ChangeCursor>, false)));
    let track = Arc::clone(&seen);
    let changes = changes.inspect(move |c| {
        let mut seen = track
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match c {
            Ok(c) => seen.0 = Some(c.cursor().clone()),
            Err(_) => seen.1 = true,
        }
    });
    let end = stream::once(async move {
        let (last, failed) = seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if failed {
            return None;
        }
        let mut at = match last.as_ref().map(decode).transpose() {
            Ok(at) => at.unwrap_or_default(),
            Err(e) => return Some(Err(e)),
        };
        let before = last.is_some().then(|| at.clone());
        at.tombstones_before = Some(until);
        for t in types {
            if at.per_type.get(&t).is_none_or(|p| p.time < until) {
                at.per_type.insert(
                    t,
                    KeysetCursor {
                        time: until,
                        ids: Vec::new(),
                    },
                );
            }
        }
        (before.as_ref() != Some(&at)).then(|| {
            Ok(Change::Checkpoint {
                cursor: at.encode(PREFIX),
            })
        })
    })
    .filter_map(futures::future::ready);
    changes.chain(end).boxed()
}

/// HubSpot's clock, from the `Date` header of a one-record list (whole seconds, rounded
/// down: the second it names is read again next run).
async fn server_now(client: &Client, t: &ObjectType) -> Result<DateTime<Utc>> {
    let req = ApiRequest::get(format!("crm/v3/objects/{}", t.as_str())).query("limit", "1");
    let resp = client.transport().send(&req).await?;
    // The local clock is no stand-in: one running ahead would fix the run's upper bound past
    // records HubSpot has not indexed yet, and the next run would start after them.
    resp.server_date().ok_or_else(|| {
        Error::bad_response(
            "HubSpot sent no Date header, so the change feed cannot take its bound from HubSpot's clock",
        )
        .with_crm(Crm::HubSpot)
    })
}

/// Records archived in `[watermark - overlap, until)`, per object type of `kind`.
fn tombstones(
    client: &Client,
    kind: ObjectKind,
    start: &FeedCursor,
    until: DateTime<Utc>,
    overlap: Duration,
) -> BoxStream<'static, Result<Change>> {
    let Some(since) = start.tombstones_before else {
        return stream::empty().boxed();
    };
    let from = since
        .checked_sub_signed(overlap)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let cursor = start.encode(PREFIX);
    let client = client.clone();
    let lists = object_types(kind).iter().map(move |t| {
        let cursor = cursor.clone();
        client
            .objects(t.clone())
            .list(
                ReadOptions::default()
                    .archived(true)
                    .properties(["hs_object_id"]),
                crate::objects::MAX_LIST_PAGE,
            )
            .try_filter_map(move |o| {
                let at = o
                    .archived_at
                    .as_deref()
                    .and_then(crmkit_core::time::parse_timestamp);
                let change = at
                    .filter(|t| *t >= from && *t < until)
                    .map(|t| Change::Deleted {
                        record: RecordRef::new(Crm::HubSpot, kind, o.id),
                        at: Some(t),
                        merged_into: None,
                        parent: None,
                        cursor: cursor.clone(),
                    });
                futures::future::ready(Ok(change))
            })
    });
    stream::iter(lists).flatten().boxed()
}

/// One object type's upserts from its own position `start`; each cursor is the shared run
/// position `base` with this type's position moved to the record.
///
/// The search asks only for the keyset keys (id and modification time): a search body is
/// capped at 3,000 characters (HubSpot CRM search guide, "Limitations"), which a list of
/// every custom property of a portal passes. Each page's full `properties` are then read
/// with one batch read per 100 ids ([`hydrate`]), which has no such cap.
fn upserts(
    client: &Client,
    t: ObjectType,
    start: Option<KeysetCursor>,
    base: Arc<Mutex<FeedCursor>>,
    until: DateTime<Utc>,
    config: &FeedConfig,
    properties: Vec<String>,
) -> BoxStream<'static, Result<Change>> {
    let keyset = KeysetConfig::new(config.page_size)
        .overlap(config.overlap)
        .until(until);
    let req = SearchRequest::new().properties(keys(&t));
    let client2 = client.clone();
    let t2 = t.clone();
    client
        .objects(t.clone())
        .search_slices(req, start, keyset)
        .try_chunks(BATCH_SIZE)
        .map_err(|e| e.1)
        .and_then(move |page| {
            let client = client2.clone();
            let t = t2.clone();
            let properties = properties.clone();
            async move {
                let ids = page.iter().map(|s| s.item.id.clone()).collect();
                let full = hydrate(&client, &t, ids, &properties).await;
                let mut read = Vec::new();
                let mut failed = BTreeMap::new();
                for (i, (s, o)) in page.into_iter().zip(full).enumerate() {
                    match o {
                        Ok(o) => read.push((
                            i,
                            Sliced {
                                item: o,
                                cursor: s.cursor,
                            },
                        )),
                        Err(e) => {
                            failed.insert(i, (s, e));
                        }
                    }
                }
                let linked = with_links(&client, &t, read, |r| &mut r.1.item).await?;
                let mut rows: Vec<(usize, Row)> = linked
                    .into_iter()
                    .map(|(i, s)| (i, Row::Read(s)))
                    .chain(failed.into_iter().map(|(i, (s, e))| (i, Row::Failed(s, e))))
                    .collect();
                rows.sort_by_key(|r| r.0);
                Ok(rows.into_iter().map(|r| r.1).collect::<Vec<_>>())
            }
        })
        .map_ok(move |page| {
            // Built here, page by page, while the earlier types' streams are done: the
            // shared position then holds their final cursors.
            let mut out = Vec::new();
            // A poisoned lock still holds a valid position (each insert is one whole step).
            let mut base = base
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for row in page {
                match row {
                    Row::Read(s) => {
                        // Merged-away ids first, under the cursor before the winner: a run
                        // that stops among them reads the winner (and them) again.
                        out.extend(
                            merged_away(&t, &s.item, base.encode(PREFIX))
                                .into_iter()
                                .map(Ok),
                        );
                        base.per_type.insert(t.as_str().to_string(), s.cursor);
                        out.push(Ok(to_change(&t, &s.item, base.encode(PREFIX))));
                    }
                    Row::Failed(s, e) => {
                        base.per_type.insert(t.as_str().to_string(), s.cursor);
                        out.push(Ok(Change::Skipped {
                            record: RecordRef::new(
                                Crm::HubSpot,
                                super::mapping::kind_of(&t).unwrap_or(ObjectKind::Activity),
                                s.item.id,
                            ),
                            cause: SkipReason::Malformed,
                            reason: format!("found by the search but not read back: {e}"),
                            cursor: base.encode(PREFIX),
                        }));
                    }
                }
            }
            stream::iter(out)
        })
        .try_flatten()
        .boxed()
}

/// A record of a feed page: read in full, or found by the search but not readable.
enum Row {
    Read(Sliced<HubSpotObject>),
    Failed(Sliced<HubSpotObject>, Error),
}

/// The properties a lean search asks for: the keyset's keys.
pub(super) fn keys(t: &ObjectType) -> [&'static str; 2] {
    ["hs_object_id", t.modified_property()]
}

/// The objects with `ids` (of type `t`) read with `properties`, in the order of `ids`, one
/// batch read per 100 ids; a record that could not be read is its own error (say, archived
/// between the search and the read), never left out.
pub(super) async fn hydrate(
    client: &Client,
    t: &ObjectType,
    ids: Vec<String>,
    properties: &[String],
) -> Vec<Result<HubSpotObject>> {
    let options = ReadOptions::default().properties(properties.iter().cloned());
    client
        .objects(t.clone())
        .batch_read(ids, &options, None)
        .await
}

/// The page (at most 100 records of type `t`) with each record's associations to the
/// types its kind links to, in the shape of a v3 read with `associations`, read through
/// associations v4 because only v4 tells the primary association from the others: each
/// list is in [`sort_by_preference`] order, so the mapping's "first associated" is the
/// primary company (else the unlabelled one, else the lowest id), and `raw` keeps that
/// order for the links an update compares against.
pub(super) async fn with_links<T>(
    client: &Client,
    t: &ObjectType,
    mut page: Vec<T>,
    object: fn(&mut T) -> &mut HubSpotObject,
) -> Result<Vec<T>> {
    if page.is_empty() {
        return Ok(page);
    }
    let ids: Vec<String> = page.iter_mut().map(|s| object(s).id.clone()).collect();
    for to in linked(t) {
        // `batch_read` reads "none is associated" as an empty list; what is left in the
        // errors is a record whose links could not be read, which must not pass for none.
        let (found, failed) = client.associations().batch_read(t, to, &ids).await?;
        if let Some(e) = failed.into_iter().next() {
            return Err(e);
        }
        // The linked record is the first one: primary, else unlabelled, else lowest id.
        let by_id: BTreeMap<String, AssociationsOf> = found
            .into_iter()
            .map(|mut a| {
                sort_by_preference(t, to, &mut a.to);
                (a.from_id.clone(), a)
            })
            .collect();
        for s in &mut page {
            let item = object(s);
            let results = by_id
                .get(&item.id)
                .map(|a| {
                    a.to.iter()
                        .map(|x| AssociatedId {
                            id: x.to_object_id.clone(),
                            kind: format!("{}_to_{}", t.as_str(), to.as_str()),
                        })
                        .collect()
                })
                .unwrap_or_default();
            item.associations
                .get_or_insert_with(BTreeMap::new)
                .insert(to.as_str().to_string(), AssociatedIds { results });
        }
    }
    Ok(page)
}

/// Tombstones for the records merged into `o`: HubSpot lists merged-away records nowhere,
/// not even as archived, and keeps their ids in the winner's `hs_merged_object_ids`
/// (semicolon-separated; developers.hubspot.com/changelog/updated-merge-functionality-for-contacts-and-companies
/// on what a merge leaves behind). They come again each time the winner changes
/// (at-least-once), dated with the winner's modification.
fn merged_away(t: &ObjectType, o: &HubSpotObject, cursor: ChangeCursor) -> Vec<Change> {
    let Some(kind) = super::mapping::kind_of(t) else {
        return Vec::new();
    };
    let at = o
        .updated_at
        .as_deref()
        .and_then(crmkit_core::time::parse_timestamp);
    o.property("hs_merged_object_ids")
        .unwrap_or_default()
        .split(';')
        .map(str::trim)
        .filter(|id| !id.is_empty() && *id != o.id)
        .map(|id| Change::Deleted {
            record: RecordRef::new(Crm::HubSpot, kind, id),
            at,
            merged_into: Some(o.id.clone()),
            parent: None,
            cursor: cursor.clone(),
        })
        .collect()
}

fn to_change(t: &ObjectType, o: &HubSpotObject, cursor: ChangeCursor) -> Change {
    match to_record(t, o) {
        Ok(record) => Change::Upsert { record, cursor },
        Err(e) => Change::Skipped {
            record: RecordRef::new(
                Crm::HubSpot,
                super::mapping::kind_of(t).unwrap_or(ObjectKind::Activity),
                o.id.clone(),
            ),
            cause: SkipReason::Malformed,
            reason: e.to_string(),
            cursor,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmkit_core::ErrorKind;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let c = FeedCursor {
            tombstones_before: Some(DateTime::<Utc>::UNIX_EPOCH),
            ..FeedCursor::default()
        };
        let enc = c.encode(PREFIX);
        assert!(enc.0.starts_with("hs1."));
        assert_eq!(
            decode(&enc).expect("decodes").tombstones_before,
            c.tombstones_before
        );
        let e = decode(&ChangeCursor("close1.{}".into())).expect_err("foreign");
        assert_eq!(e.kind(), ErrorKind::Validation);
    }
}
