//! The Close change feed: keyset slices over `/data/search/` on (`date_updated`, id) for
//! upserts, and the event log for tombstones.
//!
//! Every time bound comes from Close's clock, never the client's: the run's upper bound is
//! the `Date` header of an event-log request made when the run starts, so a client clock
//! running ahead cannot move the deletion watermark past deletions Close has not logged yet.
//! Deletions are re-read from five minutes (or the configured overlap, if longer) before
//! the watermark, as Close's event-log docs advise; a watermark older than the log's 30-day
//! retention is refused, since deletions may already be gone from the log.
//!
//! Tombstones cover: Company — `lead` deleted; Person and Deal — their own `deleted` events
//! and the `contacts` / `opportunities` inside a deleted lead's `previous_data` (Close deletes
//! a lead's children with it; `previous_data` reaches non-admins only for events under an
//! hour old); Activity — `deleted` events of notes, calls, emails and meetings. Activities
//! removed with their lead come only through their own `deleted` events, which Close says it
//! logs for a lead's children (developer.close.com/api/resources/events/list-of-event-types):
//! a deleted lead's `previous_data` does not hold its activities.
//!
//! Merges: per the same page, merging lead A into lead B logs a `lead` `merged` event on B
//! and also "`updated` and `deleted` events for the leads and any related objects involved
//! in the merge", every one with `merge_source_lead_id` and `merge_destination_lead_id` in
//! `meta`. An event with `meta.merge_source_lead_id` is read as part of a merge: the source
//! lead's `deleted` event is its one tombstone, `merged_into` the destination (so the
//! `merged` event itself is not read: it would name the same lead twice), and its
//! `previous_data` gives no child tombstones, since its contacts and opportunities moved to
//! the destination (their `updated` events make them upserts through the search slices).
//! Close's own report of deleted leads reads merges the same way: a `lead` `deleted` event
//! with `meta.merge_source_lead_id` is "Merged with another lead"
//! (closeio/close-api-scripts, scripts/run_leads_deleted_report.py). A
//! merge deletion naming no destination is skipped as malformed, never taken for a
//! deletion. An object's own `deleted` event stays a tombstone, in a merge or not: Close
//! says that object is gone.

use chrono::{DateTime, Duration, Utc};
use crmkit_core::connector::{Change, SkipReason};
use crmkit_core::http::ApiRequest;
use crmkit_core::keyset::{KeysetConfig, KeysetCursor};
use crmkit_core::{ChangeCursor, Crm, Error, ErrorKind, ObjectKind, RecordRef, Result};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::mapping::{activity_kind, to_record};
use crate::client::Client;
use crate::models::Event;

/// How far back deletions are re-read at least (developer.close.com/resources/event-log:
/// "scan the latest 5 minutes again").
const EVENT_OVERLAP: Duration = Duration::minutes(5);
/// The longest overlap honoured; a larger one is as good as a resync.
const MAX_OVERLAP: Duration = Duration::days(7);
/// Oldest deletion watermark still covered by the event log (30-day retention, A9 of
/// developer.close.com/resources/event-log), with a day of margin.
const RETENTION: Duration = Duration::days(29);

/// Where a Close change feed stands: the keyset position of the upserts, the time up to
/// which deletions were read, and the place inside a deletion window being read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FeedCursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upserts: Option<KeysetCursor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deletes: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<Pending>,
}

/// A deletion window `[deletes - overlap, until)` read part way: sources before `source`
/// are done, and of `source` every event at or after `before` was emitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    until: DateTime<Utc>,
    source: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<DateTime<Utc>>,
}

impl FeedCursor {
    fn encode(&self) -> ChangeCursor {
        ChangeCursor::with_state("close1.", self)
    }

    fn decode(c: &ChangeCursor) -> Result<Self> {
        c.state("close1.", Crm::Close)
    }
}

/// The object type Close searches for a kind.
pub(super) fn object_type(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Company => "lead",
        ObjectKind::Person => "contact",
        ObjectKind::Deal => "opportunity",
        ObjectKind::Activity => "activity",
    }
}

/// What a deletion event names as removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removed {
    /// The event's own object.
    Own,
    /// The objects listed under this key of the deleted lead's `previous_data`.
    Nested(&'static str),
}

/// One event-log query whose events are tombstones of some kind.
#[derive(Debug, Clone, Copy)]
struct Source {
    object_type: &'static str,
    action: &'static str,
    removed: Removed,
}

const fn src(object_type: &'static str, action: &'static str, removed: Removed) -> Source {
    Source {
        object_type,
        action,
        removed,
    }
}

/// The event-log queries whose events remove records of `kind` (A9; event object types
/// from developer.close.com/resources/event-log).
fn sources(kind: ObjectKind) -> &'static [Source] {
    // A merged-away lead comes through its own `deleted` event (see the module docs).
    const COMPANY: &[Source] = &[src("lead", "deleted", Removed::Own)];
    const PERSON: &[Source] = &[
        src("contact", "deleted", Removed::Own),
        src("lead", "deleted", Removed::Nested("contacts")),
    ];
    const DEAL: &[Source] = &[
        src("opportunity", "deleted", Removed::Own),
        src("lead", "deleted", Removed::Nested("opportunities")),
    ];
    const ACTIVITY: &[Source] = &[
        src("activity.note", "deleted", Removed::Own),
        src("activity.call", "deleted", Removed::Own),
        src("activity.email", "deleted", Removed::Own),
        src("activity.meeting", "deleted", Removed::Own),
    ];
    match kind {
        ObjectKind::Company => COMPANY,
        ObjectKind::Person => PERSON,
        ObjectKind::Deal => DEAL,
        ObjectKind::Activity => ACTIVITY,
    }
}

/// Whether the event is part of a lead merge: Close puts `meta.merge_source_lead_id` on every
/// event a merge causes (developer.close.com/api/resources/events/list-of-event-types).
fn in_merge(e: &Event) -> bool {
    e.meta
        .get("merge_source_lead_id")
        .is_some_and(Value::is_string)
}

/// What one deletion event says became of a record it removes.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    /// Deleted: a tombstone.
    Deleted,
    /// Merged into this lead, where its data lives on: no deletion to mirror.
    MergedInto(String),
    /// Removed by a merge whose destination the event does not name.
    MergedUnnamed,
}

/// The fate of the records a deletion event of `source` removes. Only a lead's own deletion
/// can be a merge's: the source lead is the one object a merge removes.
fn fate(e: &Event, source: &Source) -> Fate {
    if source.object_type != "lead" || source.removed != Removed::Own || !in_merge(e) {
        return Fate::Deleted;
    }
    match e.meta["merge_destination_lead_id"].as_str() {
        Some(into) if !into.is_empty() && e.object_id.as_deref() != Some(into) => {
            Fate::MergedInto(into.to_string())
        }
        _ => Fate::MergedUnnamed,
    }
}

fn event_time(e: &Event) -> Option<DateTime<Utc>> {
    e.extra
        .get("date_updated")
        .and_then(Value::as_str)
        .or(e.date_created.as_deref())
        .and_then(crmkit_core::time::parse_timestamp)
}

/// The ids an event removes, per its source. A lead merged away removes none of its
/// children: they moved to the destination lead.
fn removed_ids(e: &Event, removed: Removed) -> Vec<String> {
    match removed {
        Removed::Own => e.object_id.iter().cloned().collect(),
        Removed::Nested(_) if in_merge(e) => Vec::new(),
        Removed::Nested(key) => e
            .previous_data
            .get(key)
            .and_then(Value::as_array)
            .map(|children| {
                children
                    .iter()
                    .filter_map(|c| c["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// One search result as a change: an upsert, or a skip when it has no unified form.
fn to_change(kind: ObjectKind, raw: Value, cursor: ChangeCursor) -> Change {
    let id = raw["id"].as_str().unwrap_or_default().to_string();
    let skipped = |cause: SkipReason, reason: String| Change::Skipped {
        record: RecordRef::new(Crm::Close, kind, id.clone()),
        cause,
        reason,
        cursor: cursor.clone(),
    };
    if kind == ObjectKind::Activity {
        let close_type = raw["_type"].as_str().unwrap_or_default();
        if activity_kind(close_type).is_none() {
            return skipped(
                SkipReason::Unmappable,
                format!("Close {close_type:?} activities have no unified equivalent"),
            );
        }
    }
    match to_record(kind, raw) {
        Ok(record) => Change::Upsert {
            record,
            cursor: cursor.clone(),
        },
        Err(e) => skipped(SkipReason::Malformed, e.to_string()),
    }
}

/// The change feed of `kind` after `since`.
pub(super) fn changes(
    client: &Client,
    kind: ObjectKind,
    since: Option<ChangeCursor>,
    overlap: Duration,
    page_size: usize,
) -> BoxStream<'static, Result<Change>> {
    let start = match since.as_ref().map(FeedCursor::decode).transpose() {
        Ok(c) => c.unwrap_or_default(),
        Err(e) => return stream::once(async { Err(e) }).boxed(),
    };
    let overlap = overlap.clamp(Duration::zero(), MAX_OVERLAP);
    let client = client.clone();
    stream::once(async move {
        // Fixed for the run, on Close's clock: what changes after it is read next run.
        let now = server_now(&client, kind).await?;
        // A deletion window read part way is finished with its own bound.
        let until = start.pending.as_ref().map_or(now, |p| p.until.min(now));
        if let Some(deletes) = start.deletes {
            if now
                .checked_sub_signed(RETENTION)
                .is_some_and(|oldest| deletes < oldest)
            {
                return Err(Error::new(
                    ErrorKind::Validation,
                    format!(
                        "this change cursor last read deletions at {deletes}, longer ago than \
                         Close keeps its event log (30 days): deletions may be lost, so resync \
                         {kind}s from scratch (start the feed without a cursor)"
                    ),
                )
                .with_crm(Crm::Close));
            }
        }
        Ok(
            tombstones(&client, kind, &start, until, overlap).chain(upserts(
                &client,
                kind,
                start.upserts.clone(),
                until,
                overlap,
                page_size,
            )),
        )
    })
    .try_flatten()
    .boxed()
}

/// The end of Close's current second, from the `Date` header of an event-log request (RFC 9110 §6.6.1).
async fn server_now(client: &Client, kind: ObjectKind) -> Result<DateTime<Utc>> {
    let probe = sources(kind)[0];
    let resp = client
        .send(
            &ApiRequest::get("event/")
                .query("object_type", probe.object_type)
                .query("action", probe.action)
                .query("_limit", "1"),
        )
        .await?;
    resp.server_date()
        // The header has whole seconds: the second it names is read whole, and the next
        // run's deletion overlap (at least five minutes) covers that margin.
        .and_then(|t| t.checked_add_signed(Duration::seconds(1)))
        .ok_or_else(|| {
            Error::bad_response(
                "Close answered without a valid Date header; the change feed needs Close's clock",
            )
            .with_crm(Crm::Close)
        })
}

#[derive(Deserialize)]
struct EventPage {
    data: Vec<Event>,
    cursor_next: Option<String>,
}

/// Where the tombstone stream stands between pages.
struct Reading {
    source: usize,
    before: Option<DateTime<Utc>>,
    page: Option<String>,
    source_done: bool,
}

/// Deletions logged in `[watermark - overlap, until)` (none on a first run: there is
/// nothing to remove), one event-log page in memory at a time, newest first per source;
/// each carries a cursor that resumes inside the window if the run stops there.
fn tombstones(
    client: &Client,
    kind: ObjectKind,
    start: &FeedCursor,
    until: DateTime<Utc>,
    overlap: Duration,
) -> BoxStream<'static, Result<Change>> {
    let Some(since) = start.deletes else {
        return stream::empty().boxed();
    };
    // Never an overflow: a window reaching past the start of time reads everything.
    let from = since
        .checked_sub_signed(overlap.max(EVENT_OVERLAP))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let client = client.clone();
    let upserts = start.upserts.clone();
    let reading = match &start.pending {
        Some(p) => Reading {
            source: p.source,
            before: p.before,
            page: None,
            source_done: false,
        },
        None => Reading {
            source: 0,
            before: None,
            page: None,
            source_done: false,
        },
    };
    let all = sources(kind);
    stream::try_unfold(reading, move |mut r| {
        let client = client.clone();
        let upserts = upserts.clone();
        async move {
            if r.source_done {
                r = Reading {
                    source: r.source + 1,
                    before: None,
                    page: None,
                    source_done: false,
                };
            }
            let Some(source) = all.get(r.source) else {
                return Ok::<_, Error>(None);
            };
            let mut req = ApiRequest::get("event/")
                .query("object_type", source.object_type)
                .query("action", source.action)
                .query("date_updated__gte", crmkit_core::time::format_close(from))
                .query("_limit", "50");
            if let Some(b) = r.before {
                // Resuming inside the window: events newer than this were emitted.
                req = req.query("date_updated__lte", crmkit_core::time::format_close(b));
            }
            if let Some(c) = &r.page {
                req = req.query("_cursor", c.clone());
            }
            let page: EventPage = client.json(&req).await?;
            let mut out = Vec::new();
            let mut older = false;
            for e in &page.data {
                let Some(t) = event_time(e) else { continue };
                if t < from {
                    // Newest first (A9): everything after this is older still.
                    older = true;
                    break;
                }
                if t >= until {
                    continue;
                }
                let cursor = FeedCursor {
                    upserts: upserts.clone(),
                    deletes: Some(since),
                    pending: Some(Pending {
                        until,
                        source: r.source,
                        before: Some(t),
                    }),
                }
                .encode();
                let fate = fate(e, source);
                for id in removed_ids(e, source.removed) {
                    let record = RecordRef::new(Crm::Close, kind, id);
                    out.push(Ok(match &fate {
                        Fate::Deleted => Change::Deleted {
                            record,
                            at: Some(t),
                            merged_into: None,
                            cursor: cursor.clone(),
                        },
                        Fate::MergedInto(into) => Change::Deleted {
                            record,
                            at: Some(t),
                            merged_into: Some(into.clone()),
                            cursor: cursor.clone(),
                        },
                        Fate::MergedUnnamed => Change::Skipped {
                            record,
                            cause: SkipReason::Malformed,
                            reason: "merged away in Close, but the event names no \
                                     merge_destination_lead_id: not taken for a deletion"
                                .into(),
                            cursor: cursor.clone(),
                        },
                    }));
                }
            }
            r.page = page.cursor_next.filter(|_| !older);
            r.source_done = r.page.is_none();
            Ok(Some((stream::iter(out), r)))
        }
    })
    .try_flatten()
    .boxed()
}

fn upserts(
    client: &Client,
    kind: ObjectKind,
    start: Option<KeysetCursor>,
    until: DateTime<Utc>,
    overlap: Duration,
    page_size: usize,
) -> BoxStream<'static, Result<Change>> {
    let ot = object_type(kind);
    let fields: Vec<String> = crate::fields::listing(ot)
        .iter()
        .map(|f| f.to_string())
        .collect();
    let config = KeysetConfig::new(page_size).overlap(overlap).until(until);
    client
        .search_slices(ot, "date_updated", fields, config, start)
        .map_ok(move |s| {
            let cursor = FeedCursor {
                upserts: Some(s.cursor),
                deletes: Some(until),
                pending: None,
            }
            .encode();
            to_change(kind, s.item, cursor)
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let c = FeedCursor {
            upserts: Some(KeysetCursor {
                time: Utc::now(),
                ids: vec!["lead_1".into()],
            }),
            deletes: Some(Utc::now()),
            pending: Some(Pending {
                until: Utc::now(),
                source: 1,
                before: None,
            }),
        };
        let back = FeedCursor::decode(&c.encode()).unwrap();
        assert_eq!(back.upserts, c.upserts);
        let e = FeedCursor::decode(&ChangeCursor("2024-01-01".into())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
    }

    #[test]
    fn an_sms_is_skipped_with_a_reason() {
        let c = to_change(
            ObjectKind::Activity,
            json!({"id": "acti_1", "_type": "SMS"}),
            ChangeCursor("x".into()),
        );
        let Change::Skipped { record, reason, .. } = c else {
            panic!("skipped")
        };
        assert_eq!(record.id, "acti_1");
        assert!(reason.contains("SMS"));
    }

    /// A Close event from its JSON.
    fn event(v: Value) -> Event {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn cascaded_deletions_name_the_records_they_remove() {
        let deleted = event(json!({
            "object_type": "lead", "action": "deleted", "object_id": "lead_1", "data": null,
            "previous_data": {"id": "lead_1",
                "contacts": [{"id": "cont_1"}, {"id": "cont_2"}],
                "opportunities": [{"id": "oppo_1"}]}
        }));
        assert_eq!(removed_ids(&deleted, Removed::Own), ["lead_1"]);
        assert_eq!(
            fate(&deleted, &sources(ObjectKind::Company)[0]),
            Fate::Deleted
        );
        assert_eq!(
            removed_ids(&deleted, Removed::Nested("contacts")),
            ["cont_1", "cont_2"]
        );
        assert_eq!(
            removed_ids(&deleted, Removed::Nested("opportunities")),
            ["oppo_1"]
        );
        // Without previous_data (non-admins after an hour) nothing is guessed.
        let bare = event(json!({
            "object_type": "lead", "action": "deleted", "object_id": "lead_1"
        }));
        assert!(removed_ids(&bare, Removed::Nested("contacts")).is_empty());
    }

    #[test]
    fn a_merged_away_lead_is_merged_into_its_destination_and_its_children_stay() {
        let merge = json!({"merge_source_lead_id": "lead_src",
                           "merge_destination_lead_id": "lead_dest"});
        let source_deleted = event(json!({
            "object_type": "lead", "action": "deleted", "object_id": "lead_src", "data": null,
            "meta": merge,
            "previous_data": {"id": "lead_src", "contacts": [{"id": "cont_1"}],
                              "opportunities": [{"id": "oppo_1"}]}
        }));
        let company = sources(ObjectKind::Company)[0];
        assert_eq!(removed_ids(&source_deleted, company.removed), ["lead_src"]);
        assert_eq!(
            fate(&source_deleted, &company),
            Fate::MergedInto("lead_dest".into())
        );
        for (kind, key) in [
            (ObjectKind::Person, "contacts"),
            (ObjectKind::Deal, "opportunities"),
        ] {
            let nested = sources(kind)
                .iter()
                .find(|s| s.removed == Removed::Nested(key))
                .copied()
                .unwrap();
            assert!(
                removed_ids(&source_deleted, nested.removed).is_empty(),
                "moved {key} are no tombstones"
            );
        }
        // A child's own deletion is one, in a merge or not: Close says it is gone.
        let contact_deleted = event(json!({
            "object_type": "contact", "action": "deleted", "object_id": "cont_9", "meta": merge
        }));
        let person = sources(ObjectKind::Person)[0];
        assert_eq!(removed_ids(&contact_deleted, person.removed), ["cont_9"]);
        assert_eq!(fate(&contact_deleted, &person), Fate::Deleted);
        // A merge deletion naming no destination is not taken for a deletion.
        let unnamed = event(json!({
            "object_type": "lead", "action": "deleted", "object_id": "lead_src",
            "meta": {"merge_source_lead_id": "lead_src"}
        }));
        assert_eq!(fate(&unnamed, &company), Fate::MergedUnnamed);
    }

    #[test]
    fn every_kind_reads_its_own_deletions_first() {
        for kind in [
            ObjectKind::Company,
            ObjectKind::Person,
            ObjectKind::Deal,
            ObjectKind::Activity,
        ] {
            assert_eq!(sources(kind)[0].removed, Removed::Own);
            assert_eq!(sources(kind)[0].action, "deleted");
            // A merge is read from its deletions; its `merged` event would name the
            // merged-away lead a second time.
            assert!(sources(kind).iter().all(|s| s.action == "deleted"));
        }
    }
}
