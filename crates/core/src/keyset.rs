//! Keyset slicing: read every record of a collection ordered by (modification time, id)
//! without offsets, so nothing is skipped when records change while a listing runs and no
//! server-side result cap (Close's `_skip` ceiling, HubSpot's 10,000 search results) is hit.
//!
//! Each page is a fresh query "time ≥ the last instant read, time < an upper bound fixed when
//! the run started", and the ids already read at that instant are dropped from its answer.
//! When a whole page shares one instant, the slicer pages through that single instant with
//! the CRM's own page token and then moves one microsecond on. A resumed run starts an
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

use std::collections::VecDeque;
use std::future::Future;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// A position in a keyset listing: every record older than `time` was read, and of the
/// records at exactly `time`, the ones in `ids`.
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
}

impl KeysetConfig {
    /// Pages of `page_size` (at least 1), no overlap, bounded by now.
    pub fn new(page_size: usize) -> Self {
        Self {
            page_size: page_size.max(1),
            overlap: Duration::zero(),
            until: Utc::now(),
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
}

/// A record from a keyset run and the cursor that resumes just after it.
#[derive(Debug, Clone)]
pub struct Sliced<T> {
    /// The record.
    pub item: T,
    /// Resume here to continue after this record.
    pub cursor: KeysetCursor,
}

/// A (time, ids read at that time) mark that only moves forward.
#[derive(Debug, Clone, Default)]
struct Mark {
    time: Option<DateTime<Utc>>,
    ids: Vec<String>,
}

impl Mark {
    fn has(&self, time: DateTime<Utc>, id: &str) -> bool {
        self.time == Some(time) && self.ids.iter().any(|i| i == id)
    }

    fn advance(&mut self, time: DateTime<Utc>, id: &str) {
        match self.time {
            Some(t) if t > time => {}
            Some(t) if t == time => {
                if !self.ids.iter().any(|i| i == id) {
                    self.ids.push(id.to_string());
                }
            }
            _ => {
                self.time = Some(time);
                self.ids = vec![id.to_string()];
            }
        }
    }
}

struct Run<T> {
    /// Where the next query starts; its ids are dropped from the answer.
    scan: Mark,
    /// The cursor handed out: never behind the one the run started from.
    mark: Mark,
    /// Paging through one crowded instant with the CRM's token.
    tie: Option<Option<String>>,
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
            let mark = Mark {
                time: Some(c.time),
                ids: c.ids.clone(),
            };
            let scan = if config.overlap > Duration::zero() {
                Mark {
                    time: c.time.checked_sub_signed(config.overlap),
                    ids: Vec::new(),
                }
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
    let tie_instant = run.tie.is_some().then_some(run.scan.time).flatten();
    let req = match (&run.tie, tie_instant) {
        (Some(page), Some(t)) => SliceRequest {
            from: Some(t),
            until: (t + Duration::microseconds(1)).min(config.until),
            limit: config.page_size,
            page: page.clone(),
        },
        _ => SliceRequest {
            from: run.scan.time,
            until: config.until,
            limit: config.page_size,
            page: None,
        },
    };
    if req.from.is_some_and(|f| f >= req.until) {
        run.done = true;
        return Ok(());
    }
    let page = fetch(req.clone()).await?;
    let mut fresh = 0usize;
    let mut past_bound = false;
    for item in page.items {
        let (time, id) = key(&item)?;
        if time >= req.until {
            // The server ignored the upper bound; what follows is for the next run.
            past_bound = true;
            break;
        }
        if run.scan.time.is_some_and(|s| time < s) || run.scan.has(time, &id) {
            continue;
        }
        run.scan.advance(time, &id);
        run.mark.advance(time, &id);
        fresh += 1;
        let cursor = KeysetCursor {
            // `mark` has a time: it was just advanced.
            time: run.mark.time.unwrap_or(time),
            ids: run.mark.ids.clone(),
        };
        run.out.push_back(Sliced { item, cursor });
    }
    match (&run.tie, page.next) {
        (Some(current), Some(next)) if current.as_deref() == Some(next.as_str()) => {
            return Err(Error::bad_response(
                "the CRM answered the same page token twice; paging cannot progress",
            ));
        }
        (Some(_), Some(next)) if !past_bound => run.tie = Some(Some(next)),
        (Some(_), _) => {
            // The crowded instant is read through: go on just after it.
            run.tie = None;
            if let Some(t) = run.scan.time {
                run.scan = Mark {
                    time: Some(t + Duration::microseconds(1)),
                    ids: Vec::new(),
                };
            }
        }
        (None, None) => run.done = true,
        (None, Some(_)) if past_bound => run.done = true,
        (None, Some(_)) if fresh == 0 => {
            if run.scan.time.is_none() {
                return Err(Error::bad_response(
                    "the CRM answered a full page of records the slicer cannot place",
                ));
            }
            run.tie = Some(None);
        }
        (None, Some(_)) => {}
    }
    Ok(())
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
            slices(
                config,
                start,
                |r: &Row| Ok(r.clone()),
                move |req| {
                    let me = me.clone();
                    async move { me.answer(req) }
                },
            )
            .try_collect()
            .await
            .expect("run succeeds")
        }
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
        let out: Vec<Sliced<Row>> = slices(
            config,
            None,
            |r: &Row| Ok(r.clone()),
            move |req| {
                let me = me.clone();
                async move {
                    let page = me.answer(req);
                    let mut rows = me.rows.lock().unwrap();
                    if let Some(r) = rows.iter_mut().find(|r| r.1 == "r0") {
                        r.0 = at(60);
                    }
                    page
                }
            },
        )
        .try_collect()
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
}
