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
//! A tombstone of a contact, opportunity or activity names its lead as its `parent` when
//! that lead's deletion may have taken it: the deleted lead for the children in its
//! `previous_data`; for a child's own `deleted` event, the event's `lead_id` when the lead's
//! own `deleted` event has the same `request_id` (Close gives every event of one API
//! request that request's id, developer.close.com/api/resources/events), asked of the event
//! log (`object_id` and `action`) once per lead a window's child events name. When no
//! `deleted` event of the lead is found (Close may show events late, or fold actions into
//! one) or the child's event has no `request_id`, the lead itself is asked for
//! (`GET lead/{id}/`, once per lead): a 404 says it is deleted, and it is named all the
//! same. A child deleted alone, before its lead (their `deleted` events have different
//! `request_id`s) or under a lead that lives on, names no parent. A consumer can then tell
//! the children a lead's deletion took with it when it deleted that lead itself (the sync
//! engine does not mirror those, and decides with its own note whether it deleted the
//! lead: see `crmkit_sync`). A failed request fails the page: nothing is skipped.
//!
//! Merges: per the same page, merging lead A into lead B logs a `lead` `merged` event
//! ("`lead_id` and `data` contain the lead ID and data of the resulting (destination) lead")
//! and also "`updated` and `deleted` events for the leads and any related objects involved
//! in the merge", every one with `merge_source_lead_id` and `merge_destination_lead_id` in
//! `meta`. A deletion event with `meta.merge_source_lead_id` is part of a merge, never a
//! plain deletion:
//! - the source lead's own `deleted` event (its `object_id` is `merge_source_lead_id`) is its
//!   one tombstone, `merged_into` the destination, and its `previous_data` gives no child
//!   tombstones, since its contacts and opportunities moved to the destination (their
//!   `updated` events make them upserts through the search slices). Close's own report of
//!   deleted leads reads merges the same way: a `lead` `deleted` event with
//!   `meta.merge_source_lead_id` is "Merged with another lead" (closeio/close-api-scripts,
//!   scripts/run_leads_deleted_report.py);
//! - any other deletion in a merge (a contact, opportunity or activity deleted by it, which
//!   Close may re-create under another id; a lead that is not the merge's source; a source
//!   whose event names no destination) is [`Change::Gone`]: removed, successor unknown, so
//!   a person looks at it and nothing is deleted elsewhere.
//!
//! Close may fold several actions on one object made close together into one event
//! (developer.close.com/api/resources/events: "existing events can be updated if multiple
//! actions to the same object happen in a short time frame"), and a merge runs in the
//! background (developer.close.com/api/resources/activities/lead-merges, `merge_status`), so
//! a source lead's deletion might reach us without its merge `meta`. The `lead` `merged`
//! events are read as a cross-check: each names a source and its destination in `meta`, and
//! a lead whose deletion carries no merge `meta` but which a `merged` event names as a
//! source is still merged into that destination (and its `previous_data` gives no child
//! tombstones). They are read from the window's start with no upper bound (a merge logged
//! after the window still says what became of the lead), all at once before the window's
//! deletions: one pair of ids per merge. The `merged` event itself is never a tombstone: it
//! would name the same lead twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use crmkit_core::connector::{Change, SkipReason};
use crmkit_core::http::ApiRequest;
use crmkit_core::keyset::{KeysetConfig, KeysetCursor};
use crmkit_core::{ChangeCursor, Crm, Error, ErrorKind, ObjectKind, RecordRef, Result};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::mapping::{activity_kind, to_record};
use crate::client::{Client, close_id};
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

/// The lead merge an event is part of, as (source, destination) from its `meta`: Close puts
/// both ids on every event a merge causes
/// (developer.close.com/api/resources/events/list-of-event-types). The destination is
/// `None` when the event does not name one.
fn merge_of(e: &Event) -> Option<(&str, Option<&str>)> {
    let source = e.meta.get("merge_source_lead_id")?.as_str()?;
    let destination = e
        .meta
        .get("merge_destination_lead_id")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty());
    Some((source, destination))
}

/// Source leads of the merges the `lead` `merged` events name, with their destinations.
type Merged = BTreeMap<String, String>;

/// What one deletion event says became of a record it removes.
#[derive(Debug, PartialEq, Eq)]
enum Fate {
    /// Deleted: a tombstone.
    Deleted,
    /// Merged into this lead, where its data lives on: no deletion to mirror.
    MergedInto(String),
    /// Removed by a merge without a successor Close names: [`Change::Gone`], with why.
    Gone(String),
}

/// The fate of the records a deletion event of `source` removes; `merged` holds the merges
/// the `lead` `merged` events of the window name.
fn fate(e: &Event, source: &Source, merged: &Merged) -> Fate {
    let own = e.object_id.as_deref();
    let Some((from, into)) = merge_of(e) else {
        // A source lead's deletion that reached us without its merge `meta` (folded).
        return match own.and_then(|id| merged.get(id)) {
            Some(into) if source.object_type == "lead" => Fate::MergedInto(into.clone()),
            _ => Fate::Deleted,
        };
    };
    let merge = format!(
        "lead {from} into {}",
        into.unwrap_or("a lead it does not name")
    );
    if source.object_type != "lead" {
        return Fate::Gone(format!(
            "deleted in Close by the merge of {merge}: it may live on under another id"
        ));
    }
    match into {
        Some(into) if own == Some(from) && into != from => Fate::MergedInto(into.to_string()),
        _ if own == Some(from) => Fate::Gone(format!(
            "merged away in Close, but the event names no other merge_destination_lead_id \
             ({merge})"
        )),
        _ => Fate::Gone(format!(
            "deleted in Close during the merge of {merge}, of which it is not the source"
        )),
    }
}

fn event_time(e: &Event) -> Option<DateTime<Utc>> {
    e.extra
        .get("date_updated")
        .and_then(Value::as_str)
        .or(e.date_created.as_deref())
        .and_then(crmkit_core::time::parse_timestamp)
}

/// The ids an event removes, per its source. A lead deleted in a merge (its event says so,
/// or a `merged` event names it as a source) removes none of its children: a merge source's
/// children moved to the destination, and any other child deleted in the merge has its own
/// `deleted` event, which says so.
fn removed_ids(e: &Event, removed: Removed, merged: &Merged) -> Vec<String> {
    match removed {
        Removed::Own => e.object_id.iter().cloned().collect(),
        Removed::Nested(_)
            if merge_of(e).is_some()
                || e.object_id
                    .as_ref()
                    .is_some_and(|id| merged.contains_key(id)) =>
        {
            Vec::new()
        }
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

/// The lead a deletion event of `source` names for its records' tombstones' `parent`.
#[derive(Debug, PartialEq, Eq)]
enum ParentLead<'a> {
    /// No lead: a lead's own deletion, or a child's that names no lead.
    None,
    /// This lead, whose deletion the event is: the children in its `previous_data`.
    Deleted(&'a str),
    /// This lead only if its deletion may have taken the child (see [`taken_with_lead`]):
    /// a contact's, opportunity's or activity's own `deleted` event (Close logs one for each
    /// child a lead's deletion takes with it, and one for a child deleted alone, both with
    /// the child's `lead_id`), with the event's `request_id` if it has one. "Multiple events
    /// from the same request can be associated by looking at the request identifier"
    /// (`request_id`, developer.close.com/api/resources/events), so the child went with its
    /// lead's deletion when the two share it.
    IfDeletedIn {
        lead: &'a str,
        request: Option<&'a str>,
    },
}

/// What a deletion event of `source` says of its records' lead (see [`ParentLead`]).
fn parent_lead<'a>(e: &'a Event, source: &Source) -> ParentLead<'a> {
    let nonempty = |s: &&str| !s.is_empty();
    match source.removed {
        Removed::Nested(_) => e
            .object_id
            .as_deref()
            .filter(nonempty)
            .map_or(ParentLead::None, ParentLead::Deleted),
        Removed::Own if source.object_type != "lead" => e
            .lead_id
            .as_deref()
            .filter(nonempty)
            .filter(|l| Some(*l) != e.object_id.as_deref())
            .map_or(ParentLead::None, |lead| ParentLead::IfDeletedIn {
                lead,
                request: request_id(e),
            }),
        Removed::Own => ParentLead::None,
    }
}

/// The `request_id` of an event: the API request that caused it.
fn request_id(e: &Event) -> Option<&str> {
    e.extra
        .get("request_id")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
}

/// What a feed has learnt of a lead that a child's `deleted` event names, each asked of
/// Close at most once per lead for a feed.
#[derive(Debug, Default)]
struct LeadSeen {
    /// The `request_id` of each of the lead's own `deleted` events in the event log (`None`
    /// for an event without one).
    deleted_in: Option<Vec<Option<String>>>,
    /// Whether `GET lead/{id}/` answered 404: the lead is deleted (or merged away).
    gone: Option<bool>,
}

/// What a feed knows of the leads its child events name, by lead id.
type LeadsSeen = std::sync::Mutex<BTreeMap<String, LeadSeen>>;

/// Whether lead `lead`'s deletion may have taken a child whose own `deleted` event has
/// `request` as its `request_id`, so that its tombstone names the lead as `parent`:
/// - the lead's own `deleted` event has the same `request_id`: yes;
/// - the lead's own `deleted` events all have another `request_id`: no, the child was
///   deleted by another request (alone, before its lead);
/// - otherwise (no `deleted` event of the lead in the log, one without a `request_id`, or a
///   child event without one) the lead itself is asked for: a 404 says it is deleted, its
///   event missing or not logged yet (Close may show events late, and advises re-reading a
///   few minutes back; it may fold actions into one event), and it is named; a lead that
///   exists is not.
///
/// Naming a parent says only that the lead is deleted: whether crmkit deleted it is for the
/// consumer to know (the sync engine keeps a note of its own lead deletions). Any failed
/// request is an error, so the page fails and nothing is skipped.
async fn taken_with_lead(
    client: &Client,
    known: &LeadsSeen,
    lead: &str,
    request: Option<&str>,
) -> Result<bool> {
    if let Some(request) = request {
        let deleted_in = lead_deleted_in(client, known, lead).await?;
        if deleted_in.iter().any(|r| r.as_deref() == Some(request)) {
            return Ok(true);
        }
        if !deleted_in.is_empty() && deleted_in.iter().all(Option::is_some) {
            return Ok(false);
        }
    }
    lead_gone(client, known, lead).await
}

/// The `request_id`s of lead `lead`'s own `deleted` events (`None` for one without), asked
/// of the event log once per lead for a feed (`known`).
async fn lead_deleted_in(
    client: &Client,
    known: &LeadsSeen,
    lead: &str,
) -> Result<Vec<Option<String>>> {
    if let Some(got) = known
        .lock()
        .expect("not poisoned")
        .get(lead)
        .and_then(|l| l.deleted_in.clone())
    {
        return Ok(got);
    }
    let mut requests = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let mut req = ApiRequest::get("event/")
            .query("object_id", lead)
            .query("action", "deleted")
            .query("_limit", "50");
        if let Some(c) = &page {
            req = req.query("_cursor", c.clone());
        }
        let got: EventPage = client.json(&req).await?;
        requests.extend(
            got.data
                .iter()
                .filter(|e| e.object_type == "lead")
                .map(|e| request_id(e).map(str::to_string)),
        );
        page = got.cursor_next;
        if page.is_none() {
            break;
        }
    }
    known
        .lock()
        .expect("not poisoned")
        .entry(lead.to_string())
        .or_default()
        .deleted_in = Some(requests.clone());
    Ok(requests)
}

/// Whether Close answers `GET lead/{lead}/` with a 404: the lead is deleted. Asked once per
/// lead for a feed (`known`); any other failure is an error.
async fn lead_gone(client: &Client, known: &LeadsSeen, lead: &str) -> Result<bool> {
    if let Some(gone) = known
        .lock()
        .expect("not poisoned")
        .get(lead)
        .and_then(|l| l.gone)
    {
        return Ok(gone);
    }
    let req = ApiRequest::get(format!("lead/{}/", close_id(lead)?)).query("_fields", "id");
    let gone = match client.raw(&req).await {
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::NotFound && e.status() == Some(404) => true,
        Err(e) => return Err(e),
    };
    known
        .lock()
        .expect("not poisoned")
        .entry(lead.to_string())
        .or_default()
        .gone = Some(gone);
    Ok(gone)
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
    let reads_leads = all.iter().any(|s| s.object_type == "lead");
    let window = Window { since, from, until };
    stream::once(async move {
        let merged = if reads_leads {
            merged_sources(&client, from).await?
        } else {
            Merged::new()
        };
        Ok::<_, Error>(deletions(
            client,
            kind,
            reading,
            Arc::new(merged),
            upserts,
            window,
        ))
    })
    .try_flatten()
    .boxed()
}

/// A deletion window being read: `[from, until)`, `since` the watermark it started from.
#[derive(Debug, Clone, Copy)]
struct Window {
    since: DateTime<Utc>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
}

/// The `lead` `merged` events logged since `from` (to now: see the module docs), as each
/// merge's source lead with its destination. An event naming no destination names no
/// merge to follow, and is left out.
async fn merged_sources(client: &Client, from: DateTime<Utc>) -> Result<Merged> {
    let mut merged = Merged::new();
    let mut page: Option<String> = None;
    loop {
        let mut req = ApiRequest::get("event/")
            .query("object_type", "lead")
            .query("action", "merged")
            .query("date_updated__gte", crmkit_core::time::format_close(from))
            .query("_limit", "50");
        if let Some(c) = &page {
            req = req.query("_cursor", c.clone());
        }
        let got: EventPage = client.json(&req).await?;
        let mut older = false;
        for e in &got.data {
            if event_time(e).is_some_and(|t| t < from) {
                // Newest first (A9): everything after this is older still.
                older = true;
                break;
            }
            if let Some((source, Some(into))) = merge_of(e) {
                if source != into {
                    merged.insert(source.to_string(), into.to_string());
                }
            }
        }
        page = got.cursor_next.filter(|_| !older);
        if page.is_none() {
            return Ok(merged);
        }
    }
}

/// The deletion events of `kind`'s sources in `window`, from where `reading` stands, as
/// changes; `merged` holds the merges the window's `merged` events name.
fn deletions(
    client: Client,
    kind: ObjectKind,
    reading: Reading,
    merged: Arc<Merged>,
    upserts: Option<KeysetCursor>,
    window: Window,
) -> BoxStream<'static, Result<Change>> {
    let Window { since, from, until } = window;
    let all = sources(kind);
    // What Close said of each lead a child's `deleted` event names (see [`taken_with_lead`]).
    let leads: Arc<LeadsSeen> = Arc::default();
    stream::try_unfold(reading, move |mut r| {
        let client = client.clone();
        let upserts = upserts.clone();
        let merged = merged.clone();
        let leads = leads.clone();
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
                let fate = fate(e, source, &merged);
                let ids = removed_ids(e, source.removed, &merged);
                let parent = match parent_lead(e, source) {
                    _ if ids.is_empty() || fate != Fate::Deleted => None,
                    ParentLead::None => None,
                    ParentLead::Deleted(lead) => Some(lead),
                    ParentLead::IfDeletedIn { lead, request } => {
                        taken_with_lead(&client, &leads, lead, request)
                            .await?
                            .then_some(lead)
                    }
                }
                .map(|l| RecordRef::new(Crm::Close, ObjectKind::Company, l));
                for id in ids {
                    let record = RecordRef::new(Crm::Close, kind, id);
                    out.push(Ok(match &fate {
                        Fate::Deleted => Change::Deleted {
                            record,
                            at: Some(t),
                            merged_into: None,
                            parent: parent.clone(),
                            cursor: cursor.clone(),
                        },
                        Fate::MergedInto(into) => Change::Deleted {
                            record,
                            at: Some(t),
                            merged_into: Some(into.clone()),
                            parent: None,
                            cursor: cursor.clone(),
                        },
                        Fate::Gone(reason) => Change::Gone {
                            record,
                            reason: reason.clone(),
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
        let none = Merged::new();
        let deleted = event(json!({
            "object_type": "lead", "action": "deleted", "object_id": "lead_1", "data": null,
            "previous_data": {"id": "lead_1",
                "contacts": [{"id": "cont_1"}, {"id": "cont_2"}],
                "opportunities": [{"id": "oppo_1"}]}
        }));
        assert_eq!(removed_ids(&deleted, Removed::Own, &none), ["lead_1"]);
        assert_eq!(
            fate(&deleted, &sources(ObjectKind::Company)[0], &none),
            Fate::Deleted
        );
        assert_eq!(
            removed_ids(&deleted, Removed::Nested("contacts"), &none),
            ["cont_1", "cont_2"]
        );
        assert_eq!(
            removed_ids(&deleted, Removed::Nested("opportunities"), &none),
            ["oppo_1"]
        );
        // Without previous_data (non-admins after an hour) nothing is guessed.
        let bare = event(json!({
            "object_type": "lead", "action": "deleted", "object_id": "lead_1"
        }));
        assert!(removed_ids(&bare, Removed::Nested("contacts"), &none).is_empty());
    }

    #[test]
    fn a_childs_tombstone_names_its_lead_as_parent() {
        let deleted = event(json!({
            "object_type": "lead", "action": "deleted", "object_id": "lead_1",
            "lead_id": "lead_1", "previous_data": {"contacts": [{"id": "cont_1"}]}
        }));
        // The lead's own tombstone has none; the contacts in its previous_data, the lead.
        assert_eq!(
            parent_lead(&deleted, &sources(ObjectKind::Company)[0]),
            ParentLead::None
        );
        assert_eq!(
            parent_lead(&deleted, &nested(ObjectKind::Person, "contacts")),
            ParentLead::Deleted("lead_1")
        );
        // A child's own deleted event: its lead_id, with the event's request_id if it has
        // one (whether the lead's deletion took it is asked of Close: `taken_with_lead`).
        for (kind, object_type) in [
            (ObjectKind::Person, "contact"),
            (ObjectKind::Deal, "opportunity"),
            (ObjectKind::Activity, "activity.note"),
        ] {
            let own = sources(kind)
                .iter()
                .find(|s| s.object_type == object_type)
                .copied()
                .unwrap();
            let child = event(json!({
                "object_type": object_type, "action": "deleted", "object_id": "x_1",
                "lead_id": "lead_1", "request_id": "req_1"
            }));
            assert_eq!(
                parent_lead(&child, &own),
                ParentLead::IfDeletedIn {
                    lead: "lead_1",
                    request: Some("req_1")
                },
                "{object_type}"
            );
            let unasked = event(json!({
                "object_type": object_type, "action": "deleted", "object_id": "x_1",
                "lead_id": "lead_1", "request_id": ""
            }));
            assert_eq!(
                parent_lead(&unasked, &own),
                ParentLead::IfDeletedIn {
                    lead: "lead_1",
                    request: None
                },
                "{object_type}"
            );
            let orphan = event(json!({
                "object_type": object_type, "action": "deleted", "object_id": "x_1",
                "request_id": "req_1"
            }));
            assert_eq!(
                parent_lead(&orphan, &own),
                ParentLead::None,
                "{object_type}"
            );
        }
    }

    /// The source that reads `kind`'s records nested under `key` of a deleted lead.
    fn nested(kind: ObjectKind, key: &'static str) -> Source {
        sources(kind)
            .iter()
            .find(|s| s.removed == Removed::Nested(key))
            .copied()
            .unwrap()
    }

    /// A `lead` `deleted` event of `id` with merge `meta`.
    fn lead_deleted_in_merge(id: &str, meta: Value) -> Event {
        event(json!({
            "object_type": "lead", "action": "deleted", "object_id": id, "data": null,
            "meta": meta,
            "previous_data": {"id": id, "contacts": [{"id": "cont_1"}],
                              "opportunities": [{"id": "oppo_1"}]}
        }))
    }

    #[test]
    fn a_merged_away_lead_is_merged_into_its_destination_and_its_children_stay() {
        let none = Merged::new();
        let merge = json!({"merge_source_lead_id": "lead_src",
                           "merge_destination_lead_id": "lead_dest"});
        let source_deleted = lead_deleted_in_merge("lead_src", merge.clone());
        let company = sources(ObjectKind::Company)[0];
        assert_eq!(
            removed_ids(&source_deleted, company.removed, &none),
            ["lead_src"]
        );
        assert_eq!(
            fate(&source_deleted, &company, &none),
            Fate::MergedInto("lead_dest".into())
        );
        for (kind, key) in [
            (ObjectKind::Person, "contacts"),
            (ObjectKind::Deal, "opportunities"),
        ] {
            assert!(
                removed_ids(&source_deleted, nested(kind, key).removed, &none).is_empty(),
                "moved {key} are no tombstones"
            );
        }
        // A merge deletion naming no destination is not taken for a deletion.
        let unnamed =
            lead_deleted_in_merge("lead_src", json!({"merge_source_lead_id": "lead_src"}));
        assert!(matches!(fate(&unnamed, &company, &none), Fate::Gone(_)));
    }

    #[test]
    fn a_child_deleted_in_a_merge_is_gone_not_deleted() {
        let none = Merged::new();
        let merge = json!({"merge_source_lead_id": "lead_src",
                           "merge_destination_lead_id": "lead_dest"});
        for (kind, object_type) in [
            (ObjectKind::Person, "contact"),
            (ObjectKind::Deal, "opportunity"),
            (ObjectKind::Activity, "activity.note"),
        ] {
            let deleted = event(json!({
                "object_type": object_type, "action": "deleted", "object_id": "obj_9",
                "meta": merge
            }));
            let own = sources(kind)[0];
            assert_eq!(removed_ids(&deleted, own.removed, &none), ["obj_9"]);
            let Fate::Gone(why) = fate(&deleted, &own, &none) else {
                panic!("{kind}: a deletion in a merge is no plain tombstone")
            };
            assert!(
                why.contains("lead_src") && why.contains("lead_dest"),
                "{why}"
            );
            // Without merge `meta` it is a deletion like any other.
            let plain = event(json!({
                "object_type": object_type, "action": "deleted", "object_id": "obj_9"
            }));
            assert_eq!(fate(&plain, &own, &none), Fate::Deleted, "{kind}");
        }
    }

    #[test]
    fn a_lead_deleted_in_a_merge_it_is_not_the_source_of_is_gone() {
        let none = Merged::new();
        let company = sources(ObjectKind::Company)[0];
        let merge = json!({"merge_source_lead_id": "lead_src",
                           "merge_destination_lead_id": "lead_dest"});
        // The destination itself, or a third lead, deleted with the merge's `meta`: not
        // merged into the destination, and not a plain deletion either.
        for id in ["lead_dest", "lead_other"] {
            let deleted = lead_deleted_in_merge(id, merge.clone());
            let Fate::Gone(why) = fate(&deleted, &company, &none) else {
                panic!("{id} is not merged into lead_dest, nor plainly deleted")
            };
            assert!(why.contains("not the source"), "{why}");
            for (kind, key) in [
                (ObjectKind::Person, "contacts"),
                (ObjectKind::Deal, "opportunities"),
            ] {
                assert!(
                    removed_ids(&deleted, nested(kind, key).removed, &none).is_empty(),
                    "{id}: its {key} come through their own events"
                );
            }
        }
        // A source "merged" into itself names no destination.
        let itself = lead_deleted_in_merge(
            "lead_src",
            json!({"merge_source_lead_id": "lead_src", "merge_destination_lead_id": "lead_src"}),
        );
        assert!(matches!(fate(&itself, &company, &none), Fate::Gone(_)));
    }

    #[test]
    fn a_source_deletion_without_meta_is_merged_when_a_merged_event_names_it() {
        let merged: Merged = [("lead_src".to_string(), "lead_dest".to_string())].into();
        let folded = event(json!({
            "object_type": "lead", "action": "deleted", "object_id": "lead_src", "data": null,
            "previous_data": {"id": "lead_src", "contacts": [{"id": "cont_1"}]}
        }));
        let company = sources(ObjectKind::Company)[0];
        assert_eq!(
            fate(&folded, &company, &merged),
            Fate::MergedInto("lead_dest".into())
        );
        let contacts = nested(ObjectKind::Person, "contacts");
        assert!(removed_ids(&folded, contacts.removed, &merged).is_empty());
        // The destination's own plain deletion stays one.
        let dest = event(json!({
            "object_type": "lead", "action": "deleted", "object_id": "lead_dest", "data": null,
            "previous_data": {"id": "lead_dest", "contacts": [{"id": "cont_2"}]}
        }));
        assert_eq!(fate(&dest, &company, &merged), Fate::Deleted);
        assert_eq!(removed_ids(&dest, contacts.removed, &merged), ["cont_2"]);
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
            // A merge's `merged` event is a cross-check, never a tombstone source: it
            // would name the merged-away lead a second time.
            assert!(sources(kind).iter().all(|s| s.action == "deleted"));
        }
    }
}
