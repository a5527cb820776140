//! The Salesforce change feed: keyset slices over SOQL on `(SystemModstamp, Id)` for
//! upserts, and getDeleted for tombstones.
//!
//! - **Keyset.** Each page is `SystemModstamp >= from AND SystemModstamp < until ORDER BY
//!   SystemModstamp, Id LIMIT n`; inside a crowded second it continues with
//!   `(SystemModstamp = t AND Id > last) OR SystemModstamp > t`, so records sharing one
//!   timestamp are never lost and no OFFSET is used. `SystemModstamp` changes on every
//!   change, by users and by the system (Object Reference, "System Fields").
//! - **Upper bound.** Fixed per run from the `Date` header of a `GET limits/` answer
//!   (Salesforce's clock), never from the local clock; a header more than the clock
//!   tolerance (default five minutes) away from the local clock stops the run with an
//!   error instead (refused rather than clamped: a clamp would hide a broken clock).
//! - **Tombstones.** `GET sobjects/{Type}/deleted/?start=&end=` for the window since the
//!   last run (less the overlap), reported before the upserts: a record deleted then
//!   undeleted ends as an upsert. getDeleted answers for no more than 15 days before the
//!   day of the call, or less when the Recycle Bin was purged
//!   (<https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_getdeleted.htm>),
//!   and an `earliestDateAvailable` later than the start means deletions were purged and
//!   the data must be resynced
//!   (<https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_getdeleted_getdeletedresult.htm>).
//!   So a cursor whose deletion watermark is older than 14 days, or older than
//!   `earliestDateAvailable`, stops the run with an [`ErrorKind::Validation`] error saying a
//!   full resync is needed, and its watermark is never moved past deletions not read.
//!   The first run reports none (there is nothing to remove yet), but asks getDeleted
//!   for the last two minutes all the same: its watermark is that answer's
//!   `latestDateCovered`, not the `Date` header.
//!   getDeleted takes whole minutes and wants its start more than a minute before its end
//!   (<https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_getdeleted.htm>),
//!   so its start is at least two whole minutes before the bound; an
//!   `INVALID_REPLICATION_DATE` answer (a start older than Salesforce serves) is the same
//!   "full resync needed" error. A purge of the Recycle Bin is not refused by Salesforce:
//!   it shows as an `earliestDateAvailable` later than the start, checked on every answer.
//! - **Checkpoint.** A run that read everything up to its bound ends with a
//!   [`Change::Checkpoint`] when its last change left a position behind: every sObject's
//!   position moves up to what getUpdated's `latestDateCovered` says the database has
//!   complete (never past the bound) and never backwards, so the next run, which starts
//!   each position's keyset one overlap window earlier, re-reads exactly one overlap before
//!   that mark (the mark itself takes no overlap off: that would re-read two); the
//!   deletion watermark is what getDeleted covered (its `latestDateCovered`, even when
//!   earlier than the last one, as Salesforce says the next start must be). So a quiet
//!   object, with no change for weeks, keeps a fresh cursor instead of falling out of
//!   getDeleted's 15 days. A run that fails midway yields none.
//! - **Cursor.** `sf1.` + JSON: one keyset position per sObject and the tombstone watermark
//!   (the format is unchanged by checkpoints, so older cursors read as before).
//!   Tombstones carry the watermark the run started from (all but the last, which carries
//!   the new one), so a run that stops among them reads them again.

use chrono::{DateTime, Duration, DurationRound, Utc};
use crmkit_core::connector::{Change, SkipReason};
use crmkit_core::http::ApiRequest;
use crmkit_core::keyset::{
    FeedPosition as FeedCursor, KeysetConfig, KeysetCursor, SlicePage, SliceRequest,
};
use crmkit_core::{ChangeCursor, Crm, Error, ErrorKind, ObjectKind, RecordRef, Result};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::mapping::to_record;
use crate::client::Client;
use crate::sobjects::Fields;
use crate::soql::{Condition, Soql};

/// The feed's cursors start with this (the format's version).
const PREFIX: &str = "sf1.";

fn decode(cursor: &ChangeCursor) -> Result<FeedCursor> {
    FeedCursor::decode(cursor, PREFIX, Crm::Salesforce)
}

/// How one run reads.
#[derive(Clone)]
pub(super) struct FeedConfig {
    pub overlap: Duration,
    pub page_size: usize,
    pub currency: String,
    /// How far Salesforce's `Date` header may be from the local clock.
    pub clock_tolerance: Duration,
}

/// How far back getDeleted is trusted: it answers for no more than 15 days before the
/// day of the call, so a day less leaves room for the day boundary.
const DELETED_SPAN: Duration = Duration::days(14);

/// The error of a cursor whose unread deletions Salesforce may no longer know.
fn resync_needed(kind: ObjectKind, since: DateTime<Utc>, why: &str) -> Error {
    Error::new(
        ErrorKind::Validation,
        format!(
            "this change cursor last read deletions at {since}, {why}: deletions may be lost, \
             so a full resync is needed (start the {kind:?} feed without a cursor)"
        ),
    )
    .with_crm(Crm::Salesforce)
}

/// The minute a replication date falls in: getUpdated and getDeleted ignore seconds.
fn minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::minutes(1)).unwrap_or(t)
}

/// The cursor a run that read everything before `until` may end on: each position moved
/// up to what Salesforce's own database says is complete (none moved back), for
/// `sobjects`.
///
/// The mark is `latestDateCovered` itself, not less the overlap: a position is where the
/// next run's keyset resumes, and the keyset starts a resumed run one overlap earlier
/// (`KeysetConfig::overlap`), so that run re-reads the one overlap window before the mark,
/// where a record committed late could still land.
///
/// `until` is the `Date` header of one answer, the web server's clock: a record committed
/// late (a long transaction stamps it before it is visible) or a skewed header could put it
/// past records not read yet. getUpdated's `latestDateCovered` is where the database itself
/// says no change still in flight starts earlier
/// (<https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_getupdated_getupdatedresult.htm>),
/// so the mark is never past it. An sObject whose answer has none keeps its position.
async fn checkpoint(
    client: &Client,
    mut at: FeedCursor,
    sobjects: &[String],
    until: DateTime<Utc>,
) -> Result<FeedCursor> {
    let behind = |at: &FeedCursor, s: &String, mark: DateTime<Utc>| {
        at.per_type.get(s).is_none_or(|p| p.time < mark)
    };
    // getUpdated wants its start more than a minute before its end, seconds cut.
    let from = minute(until) - Duration::minutes(2);
    for s in sobjects {
        // getUpdated ignores the seconds of its end, so what it covers is not past the
        // minute `until` falls in: a position there has nothing to gain from the call.
        if !behind(&at, s, minute(until)) {
            continue;
        }
        let covered = client
            .sobject(s)
            .updated(from, until)
            .await?
            .latest_date_covered
            .as_deref()
            .and_then(crmkit_core::time::parse_timestamp);
        let Some(covered) = covered else { continue };
        let mark = covered.min(until);
        if behind(&at, s, mark) {
            at.per_type.insert(
                s.clone(),
                KeysetCursor {
                    time: mark,
                    ids: Vec::new(),
                },
            );
        }
    }
    Ok(at)
}

/// The run's bound, Salesforce's `Date` header, refused when it is further than
/// `tolerance` from this machine's clock: a header far ahead would bound the run past what
/// the database holds, one far behind points at a broken clock on one side or the other.
fn checked_bound(date: DateTime<Utc>, tolerance: Duration) -> Result<DateTime<Utc>> {
    let skew = date.signed_duration_since(Utc::now());
    if skew.abs() > tolerance {
        return Err(Error::bad_response(format!(
            "Salesforce's Date header says {date}, {}s away from this machine's clock (at most \
             {}s allowed): the run is not bounded by a clock that far off, so nothing is read; \
             fix the clock, or allow more with `with_clock_tolerance`",
            skew.num_seconds(),
            tolerance.num_seconds()
        ))
        .with_crm(Crm::Salesforce));
    }
    Ok(date)
}

/// Where a run stands while its changes go out.
#[derive(Clone)]
struct Run {
    /// The cursor of the last change handed out.
    at: FeedCursor,
    /// Whether any change carried a cursor yet.
    carried: bool,
    /// Whether a slice failed.
    failed: bool,
}

/// The keyset page token: the last (time, id) of a full page.
#[derive(Serialize, Deserialize)]
struct Token(DateTime<Utc>, String);

fn stamp(f: &Fields) -> Result<(DateTime<Utc>, String)> {
    let id = f
        .get("Id")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_response("a record came back without Id"))?;
    let t = f
        .get("SystemModstamp")
        .and_then(Value::as_str)
        .and_then(crmkit_core::time::parse_timestamp)
        .ok_or_else(|| {
            Error::bad_response("a record came back without a readable SystemModstamp")
                .with_record(id.to_string())
        })?;
    Ok((t, id.to_string()))
}

/// One keyset query.
async fn fetch(
    client: &Client,
    sobject: &str,
    fields: &[String],
    req: SliceRequest,
) -> Result<SlicePage<Fields>> {
    let mut q = Soql::select(fields.iter().cloned()).from(sobject);
    let token: Option<Token> = req
        .page
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok());
    match (&token, req.from) {
        (Some(Token(t, id)), _) => {
            q = q.filter(
                Condition::eq("SystemModstamp", *t)
                    .and(Condition::gt("Id", id.as_str()))
                    .or(Condition::gt("SystemModstamp", *t)),
            );
        }
        (None, Some(from)) => q = q.filter(Condition::ge("SystemModstamp", from)),
        (None, None) => {}
    }
    if let Some(until) = req.upper_bound() {
        q = q.filter(Condition::lt("SystemModstamp", until));
    }
    let q = q
        .order_by("SystemModstamp")
        .order_by("Id")
        .limit(u32::try_from(req.limit).unwrap_or(2000).min(2000));
    // The whole answer, batch after batch until `done`: Salesforce may hand out fewer rows
    // per batch than the LIMIT (the batch size is only a hint, and wide rows or long-text
    // fields shrink it), so a short batch says nothing about the end of the slice. Only a
    // query read to its end with fewer rows than the LIMIT does.
    let records: Vec<Fields> = client.query(q.build()?).try_collect().await?;
    let next = if records.len() >= req.limit {
        records
            .last()
            .map(stamp)
            .transpose()?
            .map(|(t, id)| serde_json::to_string(&Token(t, id)).unwrap_or_default())
    } else {
        None
    };
    Ok(SlicePage {
        items: records,
        next,
    })
}

/// The change feed of `kind` over `sobjects` (with the fields to read of each) after
/// `since`.
pub(super) fn changes(
    client: &Client,
    kind: ObjectKind,
    sobjects: Vec<(String, Vec<String>)>,
    since: Option<ChangeCursor>,
    config: FeedConfig,
) -> BoxStream<'static, Result<Change>> {
    let start = match since.as_ref().map(decode).transpose() {
        Ok(c) => c.unwrap_or_default(),
        Err(e) => return stream::once(async move { Err(e) }).boxed(),
    };
    let client = client.clone();
    stream::once(async move {
        let resp = client.send(&ApiRequest::get("limits/")).await?;
        let until = resp.server_date().ok_or_else(|| {
            Error::bad_response(
                "Salesforce's answer has no Date header, so the run cannot be bounded by its clock",
            )
            .with_crm(Crm::Salesforce)
        })?;
        let until = checked_bound(until, config.clock_tolerance)?;
        // Tombstones of every sObject, oldest first.
        let mut tombstones = Vec::new();
        let mut covered = until;
        // A first run reports no deletion, but still asks getDeleted where its log is
        // complete: the watermark it starts from is that, not the Date header.
        let first = start.tombstones_before.is_none();
        let d = start.tombstones_before.unwrap_or(until);
        // Checked: a configured overlap of any length must not panic. getDeleted wants
        // its start more than a minute before its end, seconds cut: reading a little
        // further back only repeats tombstones.
        let from = d
            .checked_sub_signed(config.overlap)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
            .min(minute(until) - Duration::minutes(2));
        if !first && from < until - DELETED_SPAN {
            return Err(resync_needed(
                kind,
                d,
                "longer ago than Salesforce keeps deletions for getDeleted (15 days)",
            ));
        }
        for (sobject, _) in &sobjects {
            let del = match client.sobject(sobject).deleted(from, until).await {
                Ok(del) => del,
                Err(e) if e.message().starts_with("INVALID_REPLICATION_DATE") => {
                    return Err(resync_needed(
                        kind,
                        d,
                        &format!("and Salesforce refuses that start for {sobject}: {e}"),
                    ));
                }
                Err(e) => return Err(e),
            };
            if let Some(earliest) = del
                .earliest_date_available
                .as_deref()
                .and_then(crmkit_core::time::parse_timestamp)
                .filter(|e| !first && *e > minute(from))
            {
                return Err(resync_needed(
                    kind,
                    d,
                    &format!("before {sobject} deletions still known ({earliest})"),
                ));
            }
            // What the answer covers: its latestDateCovered, else the minute its end
            // was cut to.
            let c = del
                .latest_date_covered
                .as_deref()
                .and_then(crmkit_core::time::parse_timestamp)
                .unwrap_or_else(|| minute(until));
            covered = covered.min(c);
            if first {
                continue;
            }
            for r in del.deleted_records {
                let at = crmkit_core::time::parse_timestamp(&r.deleted_date);
                tombstones.push((at, r.id));
            }
        }
        tombstones.sort();
        let after_tombstones = FeedCursor {
            per_type: start.per_type.clone(),
            // What getDeleted covered, even when earlier than the last watermark: its next
            // start is its latestDateCovered (a deletion committed late lands before it).
            tombstones_before: Some(covered),
        };
        let n = tombstones.len();
        let deleted = {
            let start = start.clone();
            let last = after_tombstones.clone();
            stream::iter(
                tombstones
                    .into_iter()
                    .enumerate()
                    .map(move |(i, (at, id))| {
                        let cursor = if i + 1 == n { &last } else { &start };
                        Ok(Change::Deleted {
                            record: RecordRef::new(Crm::Salesforce, kind, id),
                            at,
                            merged_into: None,
                            parent: None,
                            cursor: cursor.encode(PREFIX),
                        })
                    }),
            )
        };
        // One cursor for the whole run: the positions of sObjects read earlier in it stay
        // in the cursors of the later ones. With it: whether a change carried it, and
        // whether a slice failed (a consumer polling on after an error must not be handed
        // a checkpoint past what it did not read).
        let names: Vec<String> = sobjects.iter().map(|(s, _)| s.clone()).collect();
        let shared = std::sync::Arc::new(std::sync::Mutex::new(Run {
            at: after_tombstones,
            carried: n > 0,
            failed: false,
        }));
        let last = shared.clone();
        let marks = client.clone();
        let upserts = stream::iter(sobjects)
            .map(move |(sobject, fields)| {
                let client = client.clone();
                let position = start.per_type.get(&sobject).cloned();
                let keyset = KeysetConfig::new(config.page_size)
                    .overlap(config.overlap)
                    .until(until);
                let fetch_sobject = sobject.clone();
                let slices = crmkit_core::keyset::slices(keyset, position, stamp, move |req| {
                    let client = client.clone();
                    let sobject = fetch_sobject.clone();
                    let fields = fields.clone();
                    async move { fetch(&client, &sobject, &fields, req).await }
                });
                let currency = config.currency.clone();
                let shared = shared.clone();
                slices.map(move |item| {
                    let mut run = shared.lock().unwrap_or_else(|p| p.into_inner());
                    let item = match item {
                        Ok(item) => item,
                        Err(e) => {
                            run.failed = true;
                            return Err(e);
                        }
                    };
                    run.at.per_type.insert(sobject.clone(), item.cursor.clone());
                    run.carried = true;
                    let cursor = run.at.encode(PREFIX);
                    drop(run);
                    Ok(match to_record(&sobject, &item.item, &currency) {
                        Ok(record) => Change::Upsert { record, cursor },
                        Err(e) => Change::Skipped {
                            record: RecordRef::new(
                                Crm::Salesforce,
                                kind,
                                item.item
                                    .get("Id")
                                    .and_then(Value::as_str)
                                    .unwrap_or_default(),
                            ),
                            cause: SkipReason::Malformed,
                            reason: e.to_string(),
                            cursor,
                        },
                    })
                })
            })
            .flatten();
        // Reached only when every slice was read to the bound.
        let end = stream::once(async move {
            let run = last.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if run.failed {
                return None;
            }
            match checkpoint(&marks, run.at.clone(), &names, until).await {
                Ok(moved) => (moved != run.at || !run.carried).then(|| {
                    Ok(Change::Checkpoint {
                        cursor: moved.encode(PREFIX),
                    })
                }),
                Err(e) => Some(Err(e)),
            }
        })
        .filter_map(futures::future::ready);
        Ok::<_, Error>(deleted.chain(upserts).chain(end))
    })
    .try_flatten()
    .boxed()
}
