//! Keyset slicing: read every record of a collection ordered by (modification time, id)
//! without offsets, so nothing is skipped when records change while a listing runs and no
//! server-side result cap (Close's `_skip` ceiling, HubSpot's 10,000 search results) is hit.
//!
//! Each page is a fresh query "time ≥ the last instant read, time < an upper bound fixed when
//! the run started", and the ids already read at that instant are dropped from its answer.
//! When a whole page shares one instant, the slicer keeps the same query and follows the
//! CRM's own page token until a record later than that instant appears, then queries afresh
//! from there; it never narrows a bound, so it assumes nothing about the precision at which
//! the CRM compares times. Each page is sorted by (time, id) before use, so a page that
//! comes back out of order loses nothing. A resumed run starts an
//! overlap window earlier, so records indexed late (written with an older time than the
//! newest one read) are still seen: delivery is at least once, never at most once.
//!
//! The CRM-specific part is a `fetch` function that runs one [`SliceRequest`].
//!
//! ```
//! # use crmkit_core::keyset::*;
//! # use chrono::{DateTime, Utc};
//! # async fn demo(rows: Vec<(DateTime<Utc>, String)>) -> crmkit_core::Result<()> {
//! use futures::TryStreamExt;
//! let config = KeysetConfig::new(100);
//! let rows = std::sync::Arc::new(rows);
//! let all: Vec<Sliced<(DateTime<Utc>, String)>> = slices(
//!     config,
//!     None,
//!     |row: &(DateTime<Utc>, String)| Ok(row.clone()),
//!     move |req: SliceRequest| {
//!         let rows = rows.clone();
//!         async move {
//!             let items = rows.iter().filter(|r| req.contains(r.0)).take(req.limit).cloned().collect();
//!             Ok(SlicePage { items, next: None })
//!         }
//!     },
//! )
//! .try_collect()
//! .await?;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::future::Future;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::connector::ChangeCursor;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Crm;

/// A position in a keyset listing: every record older than `time` was read, and of the
/// records at exactly `time`, the ones in `ids` (at most [`MAX_CURSOR_IDS`] of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysetCursor {
    /// The newest modification time read.
    #[serde(rename = "t")]
    pub time: DateTime<Utc>,
    /// The ids read at `time`.
    pub ids: Vec<String>,
}

impl KeysetCursor {
    /// The cursor as an opaque string, to persist and hand back later.
    pub fn encode(&self) -> String {
        format!("k1.{}", serde_json::Value::from(self.to_json()))
    }

    fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert(
            "t".into(),
            self.time
                .to_rfc3339_opts(SecondsFormat::Micros, true)
                .into(),
        );
        m.insert("ids".into(), self.ids.clone().into());
        m
    }

    /// Reads a string made by [`KeysetCursor::encode`].
    pub fn decode(s: &str) -> Result<Self> {
        s.strip_prefix("k1.")
            .and_then(|json| serde_json::from_str(json).ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Validation,
                    "this change cursor was not made by crmkit's keyset slicer",
                )
            })
    }
}

/// Where a change feed over several object types stands: a keyset position per type and
/// the time before which its tombstones were reported. Connectors keep it in their
/// [`ChangeCursor`] under a prefix of their own (see [`ChangeCursor::with_state`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedPosition {
    /// Keyset position per object type.
    #[serde(rename = "u", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_type: BTreeMap<String, KeysetCursor>,
    /// Tombstones (deletions, archives) before this time were reported.
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub tombstones_before: Option<DateTime<Utc>>,
}

impl FeedPosition {
    /// This position as the cursor of the connector whose cursors start with `prefix`.
    pub fn encode(&self, prefix: &str) -> ChangeCursor {
        ChangeCursor::with_state(prefix, self)
    }

    /// The position in `cursor`, made by `crm`'s connector with `prefix`; any other cursor
    /// is a validation error naming `crm`.
    pub fn decode(cursor: &ChangeCursor, prefix: &str, crm: Crm) -> Result<Self> {
        cursor.state(prefix, crm)
    }
}

/// One query the slicer needs answered: records with `from ≤ time < until`, oldest first,
/// at most `limit` of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceRequest {
    /// Inclusive lower bound; `None` means from the beginning.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound, fixed for the whole run.
    pub until: DateTime<Utc>,
    /// Records per page.
    pub limit: usize,
    /// The CRM's own page token, set only when paging through records that share one instant.
    pub page: Option<String>,
}

impl SliceRequest {
    /// The upper bound to send, or `None` for a run without one (a listing configured with
    /// `until(DateTime::<Utc>::MAX_UTC)`, which reads everything there is, whatever the
    /// clocks say).
    pub fn upper_bound(&self) -> Option<DateTime<Utc>> {
        (self.until != DateTime::<Utc>::MAX_UTC).then_some(self.until)
    }

    /// Whether `time` falls in this request's range (for fakes and client-side filtering).
    pub fn contains(&self, time: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| time >= f) && time < self.until
    }
}

/// One answer to a [`SliceRequest`].
#[derive(Debug, Clone)]
pub struct SlicePage<T> {
    /// The records, oldest first.
    pub items: Vec<T>,
    /// The CRM's token for the next page of the same query, `None` when it was the last.
    pub next: Option<String>,
}

/// How a keyset run pages.
#[derive(Debug, Clone, Copy)]
pub struct KeysetConfig {
    /// Records per page.
    pub page_size: usize,
    /// How far before a resumed cursor to start again, for late-indexed records.
    pub overlap: Duration,
    /// The exclusive upper bound: records changed after the run started are left for the
    /// next run instead of shifting the pages of this one.
    pub until: DateTime<Utc>,
    /// Whether an error means the CRM's page token expired (search cursors live about 30 s);
    /// such a token is dropped and the crowded instant is read again from its first page.
    pub expired_token: fn(&Error) -> bool,
}

fn never(_: &Error) -> bool {
    false
}

/// How often one crowded instant may be restarted after expired page tokens without any
/// new record in between, before the error is handed to the caller.
const MAX_TIE_RESTARTS: u32 = 3;

impl KeysetConfig {
    /// Pages of `page_size` (at least 1), no overlap, bounded by now.
    pub fn new(page_size: usize) -> Self {
        Self {
            page_size: page_size.max(1),
            overlap: Duration::zero(),
            until: Utc::now(),
            expired_token: never,
        }
    }

    /// Starts resumed runs `overlap` earlier than their cursor.
    pub fn overlap(mut self, overlap: Duration) -> Self {
        self.overlap = overlap;
        self
    }

    /// Fixes the upper bound (tests, or several feeds that must share one bound).
    pub fn until(mut self, until: DateTime<Utc>) -> Self {
        self.until = until;
        self
    }

    /// Tells the slicer which errors mean "this page token expired".
    pub fn expired_token(mut self, is_expired: fn(&Error) -> bool) -> Self {
        self.expired_token = is_expired;
        self
    }
}

/// A record from a keyset run and the cursor that resumes just after it.
#[derive(Debug, Clone)]
pub struct Sliced<T> {
    /// The record.
    pub item: T,
    /// Resume here to continue after this record.
    pub cursor: KeysetCursor,
}

/// The most ids a handed-out [`KeysetCursor`] carries. An import or workflow can stamp
/// thousands of records with one modification time; a cursor listing all of them would
/// grow with each record, and a run would spend quadratic time and bytes on cursors. A
/// cursor keeps the first ids read at its instant only: still a true statement ("these
/// were read"), so a run resumed from it reads the instant's other records again —
/// at-least-once, like the overlap window — and nothing is skipped. Within a run the
/// slicer remembers every id (in a set), so a run itself never repeats a record.
pub const MAX_CURSOR_IDS: usize = 256;

/// A (time, ids read at that time) mark that only moves forward.
#[derive(Debug, Clone, Default)]
struct Mark {
    time: Option<DateTime<Utc>>,
    /// In reading order (the cursor keeps the first ones).
    ids: Vec<String>,
    /// The same ids, for constant-time look-ups.
    seen: HashSet<String>,
}

impl Mark {
    fn new(time: Option<DateTime<Utc>>, ids: Vec<String>) -> Self {
        let seen = ids.iter().cloned().collect();
        Mark { time, ids, seen }
    }

    fn has(&self, time: DateTime<Utc>, id: &str) -> bool {
        self.time == Some(time) && self.seen.contains(id)
    }

    fn advance(&mut self, time: DateTime<Utc>, id: &str) {
        match self.time {
            Some(t) if t > time => {}
            Some(t) if t == time => {
                if self.seen.insert(id.to_string()) {
                    self.ids.push(id.to_string());
                }
            }
            _ => *self = Mark::new(Some(time), vec![id.to_string()]),
        }
    }
}

/// Paging through one crowded instant: the same `[t, until)` query, page after page.
#[derive(Debug, Clone, Default)]
struct Tie {
    /// The CRM's token for the next page; `None` is the query's first page.
    page: Option<String>,
    /// Pages of this walk that brought nothing new.
    stale_pages: usize,
    /// Restarts after an expired token since the last new record.
    restarts: u32,
}

struct Run<T> {
    /// Where the next query starts; its ids are dropped from the answer.
    scan: Mark,
    /// The cursor handed out: never behind the one the run started from.
    mark: Mark,
    /// Set while paging through one crowded instant with the CRM's token.
    tie: Option<Tie>,
    done: bool,
    out: VecDeque<Sliced<T>>,
}

/// Every record in `[start - overlap, config.until)` (everything when `start` is `None`),
/// oldest first, each with its resume cursor. `key` gives a record's (modification time,
/// id); `fetch` runs one query against the CRM.
pub fn slices<'a, T, K, F, Fut>(
    config: KeysetConfig,
    start: Option<KeysetCursor>,
    key: K,
    fetch: F,
) -> BoxStream<'a, Result<Sliced<T>>>
where
    T: Send + 'a,
    K: Fn(&T) -> Result<(DateTime<Utc>, String)> + Send + Sync + 'a,
    F: Fn(SliceRequest) -> Fut + Send + Sync + 'a,
    Fut: Future<Output = Result<SlicePage<T>>> + Send + 'a,
{
    let (scan, mark) = match start {
        None => (Mark::default(), Mark::default()),
        Some(c) => {
            let mark = Mark::new(Some(c.time), c.ids.clone());
            let scan = if config.overlap > Duration::zero() {
                Mark::new(c.time.checked_sub_signed(config.overlap), Vec::new())
            } else {
                mark.clone()
            };
            (scan, mark)
        }
    };
    let run = Run {
        scan,
        mark,
        tie: None,
        done: false,
        out: VecDeque::new(),
    };
    let ctx = std::sync::Arc::new((key, fetch));
    stream::try_unfold(run, move |mut run| {
        let ctx = ctx.clone();
        async move {
            loop {
                if let Some(next) = run.out.pop_front() {
                    return Ok(Some((next, run)));
                }
                if run.done {
                    return Ok(None);
                }
                step(&mut run, &config, &ctx.0, &ctx.1).await?;
            }
        }
    })
    .boxed()
}

/// Runs one query and queues what it brings that was not read yet.
///
/// The query is always `[scan time, until)`: no bound is narrowed, so nothing depends on
/// the precision at which the CRM compares times (Close's look like milliseconds, its
/// documented examples like seconds). Inside a crowded instant the slicer follows the CRM's
/// page token until a record later than that instant shows up, then queries afresh from
/// there.
async fn step<T, K, F, Fut>(
    run: &mut Run<T>,
    config: &KeysetConfig,
    key: &K,
    fetch: &F,
) -> Result<()>
where
    K: Fn(&T) -> Result<(DateTime<Utc>, String)>,
    F: Fn(SliceRequest) -> Fut,
    Fut: Future<Output = Result<SlicePage<T>>>,
{
    let req = SliceRequest {
        from: run.scan.time,
        until: config.until,
        limit: config.page_size,
        page: run.tie.as_ref().and_then(|t| t.page.clone()),
    };
    if req.from.is_some_and(|f| f >= req.until) {
        run.done = true;
        return Ok(());
    }
    let page = match fetch(req.clone()).await {
        Ok(page) => page,
        Err(e) if req.page.is_some() && (config.expired_token)(&e) => {
            // The ids read at this instant are kept, so reading it again from its first
            // page only costs requests.
            let tie = run.tie.get_or_insert_with(Tie::default);
            if tie.restarts >= MAX_TIE_RESTARTS {
                return Err(e);
            }
            tie.restarts += 1;
            tie.page = None;
            tie.stale_pages = 0;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let mut keyed = Vec::with_capacity(page.items.len());
    for item in page.items {
        let (time, id) = key(&item)?;
        keyed.push((time, id, item));
    }
    // A page out of order (coarser sorting than the times shown, odd tie breaks) must not
    // lose records: place each by its own key.
    keyed.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let full = page.next.is_some();
    let at = run.scan.time;
    let (mut fresh, mut below, mut later, mut past_bound) = (0usize, 0usize, false, false);
    for (time, id, item) in keyed {
        if time >= req.until {
            // The server ignored the upper bound; what follows is for the next run.
            past_bound = true;
            break;
        }
        if req.from.is_some_and(|f| time < f) {
            below += 1;
            continue;
        }
        if run.scan.has(time, &id) {
            continue;
        }
        later |= at.is_some_and(|t| time > t);
        run.scan.advance(time, &id);
        run.mark.advance(time, &id);
        fresh += 1;
        let cursor = KeysetCursor {
            // `mark` has a time: it was just advanced.
            time: run.mark.time.unwrap_or(time),
            ids: run.mark.ids.iter().take(MAX_CURSOR_IDS).cloned().collect(),
        };
        run.out.push_back(Sliced { item, cursor });
    }
    if full && fresh == 0 && below > 0 {
        return Err(Error::bad_response(
            "the CRM answered a full page of records older than the range asked for; \
             it does not honour the lower bound, so paging cannot progress",
        ));
    }
    if past_bound || !full {
        // The query `[scan time, until)` is read to its end, in a tie walk or not.
        run.tie = None;
        run.done = true;
        return Ok(());
    }
    if run.tie.is_some() && later {
        // Past the crowded instant: later records come from a fresh query.
        run.tie = None;
        return Ok(());
    }
    let next = page.next;
    match run.tie.as_mut() {
        Some(tie) => {
            if next.is_some() && tie.page == next {
                return Err(Error::bad_response(
                    "the CRM answered the same page token twice; paging cannot progress",
                ));
            }
            if fresh > 0 {
                tie.restarts = 0;
            } else {
                tie.stale_pages += 1;
                if tie.stale_pages > stale_page_budget(&run.scan, config.page_size) {
                    return Err(Error::bad_response(
                        "the CRM keeps answering records already read at one instant; \
                         paging cannot progress",
                    ));
                }
            }
            tie.page = next;
        }
        None if fresh > 0 => {}
        None => {
            if run.scan.time.is_none() {
                return Err(Error::bad_response(
                    "the CRM answered a full page of records the slicer cannot place",
                ));
            }
            // A full page of records already read at the scan instant: more share it than
            // a page holds, so page through it with the CRM's token.
            run.tie = Some(Tie {
                page: next,
                stale_pages: 1,
                restarts: 0,
            });
        }
    }
    Ok(())
}

/// How many pages of one walk through an instant may bring nothing new: the ids already
/// read there fill at most this many pages (one more for storage order).
fn stale_page_budget(scan: &Mark, page_size: usize) -> usize {
    scan.ids.len().div_ceil(page_size.max(1)) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    type Row = (DateTime<Utc>, String);

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid")
    }

    /// An in-memory CRM: sorted by time only (ties in storage order, like a real index),
    /// offset page tokens, and a log of the requests it answered.
    #[derive(Clone, Default)]
    struct Fake {
        rows: Arc<Mutex<Vec<Row>>>,
        requests: Arc<Mutex<Vec<SliceRequest>>>,
    }

    impl Fake {
        fn with(rows: Vec<Row>) -> Self {
            let f = Fake::default();
            *f.rows.lock().unwrap() = rows;
            f
        }

        fn answer(&self, req: SliceRequest) -> Result<SlicePage<Row>> {
            self.requests.lock().unwrap().push(req.clone());
            let mut hits: Vec<Row> = self
                .rows
                .lock()
                .unwrap()
                .iter()
                .filter(|r| req.contains(r.0))
                .cloned()
                .collect();
            hits.sort_by_key(|r| r.0);
            let offset: usize = req
                .page
                .as_deref()
                .map_or(Ok(0), str::parse)
                .map_err(|_| Error::bad_response("bad token"))?;
            let items: Vec<Row> = hits.iter().skip(offset).take(req.limit).cloned().collect();
            let end = offset + items.len();
            Ok(SlicePage {
                items,
                next: (end < hits.len()).then(|| end.to_string()),
            })
        }

        async fn run(&self, config: KeysetConfig, start: Option<KeysetCursor>) -> Vec<Sliced<Row>> {
            let me = self.clone();
            read(config, start, move |req| {
                let me = me.clone();
                async move { me.answer(req) }
            })
            .await
            .expect("run succeeds")
        }
    }

    /// Reads every slice from `start` through `fetch`, or the first error.
    async fn read<F, Fut>(
        config: KeysetConfig,
        start: Option<KeysetCursor>,
        fetch: F,
    ) -> Result<Vec<Sliced<Row>>>
    where
        F: Fn(SliceRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<SlicePage<Row>>> + Send + 'static,
    {
        slices(config, start, |r: &Row| Ok(r.clone()), fetch)
            .try_collect()
            .await
    }

    fn ids(out: &[Sliced<Row>]) -> Vec<String> {
        out.iter().map(|s| s.item.1.clone()).collect()
    }

    #[tokio::test]
    async fn many_records_sharing_one_instant_cross_page_boundaries_once_each() {
        let mut rows: Vec<Row> = (0..7).map(|i| (at(1), format!("a{i}"))).collect();
        rows.extend((0..25).map(|i| (at(2), format!("b{i:02}"))));
        rows.extend((0..3).map(|i| (at(3), format!("c{i}"))));
        let fake = Fake::with(rows.clone());
        let out = fake.run(KeysetConfig::new(10).until(at(100)), None).await;
        let mut got = ids(&out);
        let n = got.len();
        got.sort();
        got.dedup();
        assert_eq!(n, rows.len(), "no duplicates within one run");
        assert_eq!(got.len(), rows.len(), "every record seen");
        // Times never go backwards and the last cursor covers the newest instant.
        assert!(out.windows(2).all(|w| w[0].item.0 <= w[1].item.0));
        assert_eq!(out.last().unwrap().cursor.time, at(3));
        assert!(
            fake.requests
                .lock()
                .unwrap()
                .iter()
                .any(|r| r.page.is_some()),
            "the crowded instant was paged with the CRM's token"
        );
    }

    #[tokio::test]
    async fn resuming_from_any_cursor_misses_nothing() {
        let rows: Vec<Row> = (0..40).map(|i| (at(i / 6), format!("r{i:02}"))).collect();
        let fake = Fake::with(rows.clone());
        let config = KeysetConfig::new(4).until(at(100));
        let full = fake.run(config, None).await;
        for stop in [0, 3, 5, 6, 13, 39] {
            let resumed = fake.run(config, Some(full[stop].cursor.clone())).await;
            let mut seen: Vec<String> = ids(&full[..=stop]);
            seen.extend(ids(&resumed));
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), rows.len(), "resumed after record {stop}");
            assert!(
                !ids(&resumed).contains(&full[stop].item.1),
                "the record the cursor points at is not read again"
            );
        }
    }

    #[tokio::test]
    async fn cursor_round_trips_as_an_opaque_string() {
        let c = KeysetCursor {
            time: at(5) + Duration::microseconds(123_456),
            ids: vec!["lead_1".into(), "lead,\"2".into()],
        };
        assert_eq!(KeysetCursor::decode(&c.encode()).unwrap(), c);
        assert_eq!(
            KeysetCursor::decode("2024-01-01").unwrap_err().kind(),
            ErrorKind::Validation
        );
    }

    #[tokio::test]
    async fn records_changed_during_a_run_wait_for_the_next_one() {
        let rows: Vec<Row> = (0..10).map(|i| (at(i), format!("r{i}"))).collect();
        let fake = Fake::with(rows);
        let me = fake.clone();
        let config = KeysetConfig::new(3).until(at(50));
        // Every fetch moves r0 to "now" (after the bound), as a user editing it would.
        let out: Vec<Sliced<Row>> = read(config, None, move |req| {
            let me = me.clone();
            async move {
                let page = me.answer(req);
                let mut rows = me.rows.lock().unwrap();
                if let Some(r) = rows.iter_mut().find(|r| r.1 == "r0") {
                    r.0 = at(60);
                }
                page
            }
        })
        .await
        .unwrap();
        assert_eq!(ids(&out).len(), 10, "no record skipped while others moved");
        let next = fake
            .run(
                KeysetConfig::new(3).until(at(100)),
                Some(out.last().unwrap().cursor.clone()),
            )
            .await;
        assert_eq!(ids(&next), vec!["r0".to_string()]);
    }

    #[tokio::test]
    async fn overlap_rereads_late_indexed_records_without_moving_the_cursor_back() {
        let fake = Fake::with((0..5).map(|i| (at(10 + i), format!("r{i}"))).collect());
        let first = fake.run(KeysetConfig::new(2).until(at(20)), None).await;
        let cursor = first.last().unwrap().cursor.clone();
        // Indexed after the first run, with a time older than its cursor.
        fake.rows.lock().unwrap().push((at(13), "late".into()));
        let config = KeysetConfig::new(2)
            .until(at(30))
            .overlap(Duration::seconds(5));
        let second = fake.run(config, Some(cursor.clone())).await;
        assert!(ids(&second).contains(&"late".to_string()));
        assert!(second.iter().all(|s| s.cursor.time >= cursor.time));
        let mut counts: HashMap<String, usize> = HashMap::new();
        for s in &second {
            *counts.entry(s.item.1.clone()).or_default() += 1;
        }
        assert!(counts.values().all(|&n| n == 1));
    }

    #[tokio::test]
    async fn an_unplaceable_full_page_is_an_error_not_a_loop() {
        let fetch = |_req: SliceRequest| async {
            Ok(SlicePage {
                items: vec![(at(1), "x".to_string())],
                next: Some("again".into()),
            })
        };
        let key = |r: &Row| -> Result<Row> { Ok(r.clone()) };
        // The server keeps answering the same page whatever is asked: the slicer must stop.
        let out: Result<Vec<Sliced<Row>>> =
            slices(KeysetConfig::new(1).until(at(10)), None, key, fetch)
                .try_collect()
                .await;
        assert_eq!(out.unwrap_err().kind(), ErrorKind::BadResponse);
    }

    /// A CRM that compares range bounds at millisecond precision (truncating them) and
    /// holds more records at one instant than a page (review finding 3).
    #[tokio::test]
    async fn millisecond_precision_bounds_still_read_a_crowded_instant_whole() {
        use chrono::DurationRound;
        let ms = |n: i64| DateTime::from_timestamp_millis(1_700_000_000_000 + n).expect("valid");
        let rows: Vec<Row> = (0..5)
            .map(|i| (ms(1), format!("a{i}")))
            .chain([(ms(5), "z".to_string())])
            .collect();
        let calls = Arc::new(Mutex::new(0usize));
        let counter = calls.clone();
        let rows = Arc::new(rows);
        let fetch = move |req: SliceRequest| {
            let rows = rows.clone();
            let calls = counter.clone();
            async move {
                *calls.lock().unwrap() += 1;
                let tr = |t: DateTime<Utc>| t.duration_trunc(Duration::milliseconds(1)).unwrap();
                let hits: Vec<Row> = rows
                    .iter()
                    .filter(|r| req.from.is_none_or(|f| r.0 >= tr(f)) && r.0 < tr(req.until))
                    .cloned()
                    .collect();
                let off: usize = req.page.as_deref().map_or(0, |p| p.parse().unwrap());
                let items: Vec<Row> = hits.iter().skip(off).take(req.limit).cloned().collect();
                let end = off + items.len();
                Ok(SlicePage {
                    items,
                    next: (end < hits.len()).then(|| end.to_string()),
                })
            }
        };
        let out: Vec<Sliced<Row>> = read(KeysetConfig::new(2).until(ms(100)), None, fetch)
            .await
            .unwrap();
        let mut got = ids(&out);
        got.sort();
        assert_eq!(got, ["a0", "a1", "a2", "a3", "a4", "z"]);
        assert!(
            *calls.lock().unwrap() <= 6,
            "{} requests",
            calls.lock().unwrap()
        );
    }

    /// A page whose items are not ascending (review finding 7): both records are read.
    #[tokio::test]
    async fn an_out_of_order_page_loses_nothing() {
        let t = at(0);
        let fetch = move |_req: SliceRequest| async move {
            Ok(SlicePage {
                items: vec![
                    (t + Duration::microseconds(900), "b".to_string()),
                    (t + Duration::microseconds(100), "a".to_string()),
                ],
                next: None,
            })
        };
        let out: Vec<Sliced<Row>> = read(KeysetConfig::new(10).until(at(10)), None, fetch)
            .await
            .unwrap();
        assert_eq!(ids(&out), ["a", "b"]);
        assert_eq!(out[1].cursor.time, t + Duration::microseconds(900));
    }

    #[tokio::test]
    async fn a_full_page_below_the_lower_bound_is_an_error_not_a_loop() {
        // The server ignores the lower bound and always answers the oldest records.
        let fake = Fake::with((0..10).map(|i| (at(i), format!("r{i}"))).collect());
        let me = fake.clone();
        let out: Result<Vec<Sliced<Row>>> = read(
            KeysetConfig::new(3).until(at(100)),
            None,
            move |mut req: SliceRequest| {
                let me = me.clone();
                req.from = None;
                async move { me.answer(req) }
            },
        )
        .await;
        assert_eq!(out.unwrap_err().kind(), ErrorKind::BadResponse);
        assert!(fake.requests.lock().unwrap().len() <= 3);
    }

    #[tokio::test]
    async fn a_crowded_instant_answered_with_only_records_already_read_is_an_error() {
        // Fresh page tokens every time, but always the same record: the walk through its
        // instant brings nothing new and must stop instead of looping.
        let served = Arc::new(Mutex::new(0usize));
        let fetch = move |_req: SliceRequest| {
            let served = served.clone();
            async move {
                let mut n = served.lock().unwrap();
                *n += 1;
                Ok(SlicePage {
                    items: vec![(at(1), "x".to_string())],
                    next: Some(format!("p{n}")),
                })
            }
        };
        let out: Result<Vec<Sliced<Row>>> =
            read(KeysetConfig::new(1).until(at(10)), None, fetch).await;
        assert_eq!(out.unwrap_err().kind(), ErrorKind::BadResponse);
    }

    #[tokio::test]
    async fn an_expired_page_token_restarts_the_crowded_instant() {
        let rows: Vec<Row> = (0..9).map(|i| (at(1), format!("a{i}"))).collect();
        let fake = Fake::with(rows);
        let me = fake.clone();
        let expired = Arc::new(Mutex::new(false));
        let once = expired.clone();
        let out: Vec<Sliced<Row>> = read(
            KeysetConfig::new(2)
                .until(at(10))
                .expired_token(|e| e.message().contains("expired")),
            None,
            move |req: SliceRequest| {
                let me = me.clone();
                let once = once.clone();
                async move {
                    // The first token deep in the instant has expired by the time it is used.
                    if req.page.as_deref() == Some("6") && !*once.lock().unwrap() {
                        *once.lock().unwrap() = true;
                        return Err(Error::new(ErrorKind::Validation, "cursor expired"));
                    }
                    me.answer(req)
                }
            },
        )
        .await
        .unwrap();
        assert!(*expired.lock().unwrap(), "the token expired once");
        let mut got = ids(&out);
        let n = got.len();
        got.sort();
        got.dedup();
        assert_eq!((n, got.len()), (9, 9), "every record once");
    }

    #[tokio::test]
    async fn an_upper_bound_at_the_end_of_time_does_not_panic() {
        let fake = Fake::with(vec![(DateTime::<Utc>::MAX_UTC, "end".into())]);
        let out = fake
            .run(KeysetConfig::new(1).until(DateTime::<Utc>::MAX_UTC), None)
            .await;
        assert!(out.is_empty(), "the bound is exclusive");
    }
    #[tokio::test]
    async fn a_crowded_instant_keeps_cursors_small_and_a_resume_rereads_only_that_instant() {
        let mut rows: Vec<Row> = vec![(at(1), "early".into())];
        rows.extend((0..600).map(|i| (at(2), format!("t{i:03}"))));
        let fake = Fake::with(rows);
        let config = KeysetConfig::new(50)
            .overlap(Duration::zero())
            .until(at(100));
        let out = fake.run(config, None).await;
        assert_eq!(out.len(), 601, "each record once");
        assert!(out.iter().all(|s| s.cursor.ids.len() <= MAX_CURSOR_IDS));
        let last = out.last().expect("some").cursor.clone();
        assert_eq!((last.time, last.ids.len()), (at(2), MAX_CURSOR_IDS));
        let again = fake.run(config, Some(last.clone())).await;
        let got = ids(&again);
        assert_eq!(
            got.len(),
            600 - MAX_CURSOR_IDS,
            "only the instant's uncounted ids"
        );
        assert!(
            got.iter()
                .all(|id| id.starts_with('t') && !last.ids.contains(id))
        );
    }
}
