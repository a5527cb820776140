//! Search against a fake that evaluates filters, sorts by time and refuses paging past its
//! result cap, as HubSpot does at 10,000 (here 50, so the test stays small).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use chrono::DateTime;
use crmkit_core::ErrorKind;
use crmkit_hubspot::search::Direction;
use crmkit_hubspot::{Filter, FilterGroup, SearchRequest};
use futures::TryStreamExt;
use serde_json::{Value, json};

use crate::{fast_retry, serve};

/// A client whose search budget does not slow the test down.
fn client(base: &str, token: &str) -> crmkit_hubspot::Client {
    crmkit_hubspot::Client::builder()
        .access_token(crmkit_core::SecretString::from(token.to_string()))
        .base_url(base)
        .search_per_second(1_000)
        .tier(crmkit_hubspot::RateTier::Custom(10_000))
        .retry(fast_retry())
        .build()
        .expect("client builds")
}

const CAP: usize = 50;

struct World {
    /// (id, modification time in ms, lifecycle stage).
    rows: Vec<(u64, i64, &'static str)>,
    calls: usize,
    /// Results reachable through `after` (HubSpot's is 10,000).
    cap: usize,
    /// The largest `after` offset asked for.
    deepest: usize,
    /// Ids the fake moved to a new modification time while a search ran.
    moved: Vec<u64>,
}

fn matches(row: &(u64, i64, &str), f: &Value) -> bool {
    let value = f["value"].as_str().unwrap_or_default();
    let (left, right): (i64, i64) = match f["propertyName"].as_str() {
        Some("hs_lastmodifieddate") => (row.1, value.parse().unwrap_or(i64::MIN)),
        Some("hs_object_id") => (row.0 as i64, value.parse().unwrap_or(i64::MIN)),
        Some("lifecyclestage") => return (f["operator"] == "EQ") == (row.2 == value),
        _ => return false,
    };
    match f["operator"].as_str() {
        Some("GTE") => left >= right,
        Some("LT") => left < right,
        Some("GT") => left > right,
        Some("EQ") => left == right,
        _ => false,
    }
}

async fn search(
    State(w): State<Arc<Mutex<World>>>,
    axum::Json(body): axum::Json<Value>,
) -> impl IntoResponse {
    let mut w = w.lock().expect("world");
    w.calls += 1;
    let groups = body["filterGroups"].as_array().cloned().unwrap_or_default();
    let mut hits: Vec<(u64, i64, &str)> = w
        .rows
        .iter()
        .filter(|r| {
            groups.is_empty()
                || groups.iter().any(|g| {
                    g["filters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .all(|f| matches(r, f))
                })
        })
        .cloned()
        .collect();
    // Ascending by time or by id. Records sharing an instant come in no defined order on
    // HubSpot (one sort rule only): here a scrambled one.
    match body["sorts"][0]["propertyName"].as_str() {
        Some("hs_object_id") => hits.sort_by_key(|r| r.0),
        Some("hs_lastmodifieddate") | None => hits.sort_by_key(|r| (r.1, r.0 * 7_919 % 10_007)),
        Some(other) => panic!("this fake cannot sort by {other}"),
    }
    let after: usize = body["after"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let limit = body["limit"].as_u64().unwrap_or(10) as usize;
    w.deepest = w.deepest.max(after);
    if after + limit > w.cap {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"status":"error","message":"paging past the cap","correlationId":"c","category":"VALIDATION_ERROR"})),
        )
            .into_response();
    }
    let page: Vec<Value> = hits
        .iter()
        .skip(after)
        .take(limit)
        .map(|r| {
            let t = DateTime::from_timestamp_millis(r.1).expect("t").to_rfc3339();
            json!({"id": r.0.to_string(), "properties": {"hs_lastmodifieddate": t, "hs_object_id": r.0.to_string()},
                   "createdAt": t, "updatedAt": t, "archived": false})
        })
        .collect();
    let mut answer = json!({"total": hits.len(), "results": page});
    if after + limit < hits.len() {
        answer["paging"] = json!({"next": {"after": (after + limit).to_string()}});
    }
    axum::Json(answer).into_response()
}

async fn fake(rows: Vec<(u64, i64, &'static str)>) -> (String, Arc<Mutex<World>>) {
    fake_capped(rows, CAP).await
}

fn world(rows: Vec<(u64, i64, &'static str)>, cap: usize) -> Arc<Mutex<World>> {
    Arc::new(Mutex::new(World {
        rows,
        calls: 0,
        cap,
        deepest: 0,
        moved: Vec::new(),
    }))
}

async fn fake_capped(
    rows: Vec<(u64, i64, &'static str)>,
    cap: usize,
) -> (String, Arc<Mutex<World>>) {
    let w = world(rows, cap);
    let app = Router::new()
        .route("/crm/v3/objects/deals/search", post(search))
        .with_state(w.clone());
    (serve(app).await, w)
}

#[tokio::test]
async fn search_all_reads_past_the_cap_without_duplicates_through_crowded_instants() {
    // 400 records: most share their instant with six others, and 25 share one instant,
    // more than two pages of ten.
    let mut rows: Vec<(u64, i64, &str)> = (0..375u64)
        .map(|i| {
            (
                i + 1,
                1_700_000_000_000 + (i / 7) as i64 * 1000,
                if i % 2 == 0 { "lead" } else { "customer" },
            )
        })
        .collect();
    rows.extend((0..25u64).map(|i| (1000 + i, 1_700_000_100_000, "lead")));
    let (base, world) = fake(rows.clone()).await;
    let c = client(&base, "search-all");
    let got: Vec<_> = c
        .deals()
        .search_all(SearchRequest::new().limit(10))
        .try_collect()
        .await
        .expect("complete");
    let mut ids: Vec<u64> = got.iter().map(|o| o.id.parse().expect("id")).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "no duplicates");
    assert_eq!(n, 400, "nothing cut at the cap");

    let leads: Vec<_> = c
        .deals()
        .search_all(
            SearchRequest::new()
                .filter(Filter::eq("lifecyclestage", "lead"))
                .limit(10),
        )
        .try_collect()
        .await
        .expect("complete");
    let want = rows.iter().filter(|r| r.2 == "lead").count();
    assert_eq!(leads.len(), want);
    assert!(world.lock().expect("w").calls > 40);
}

#[tokio::test]
async fn search_all_walks_instants_fuller_than_the_cap_by_id() {
    // 10,600 records at four instants, 10,076 of them at one: more than HubSpot's 10,000
    // results reachable through `after`. Ids interleave across instants.
    let crowded = 1_700_000_050_000;
    let rows: Vec<(u64, i64, &str)> = (1..=10_600u64)
        .map(|id| {
            let t = match id % 50 {
                0 => 1_700_000_000_000,
                1 => 1_700_000_100_000,
                2 if id < 5_000 => 1_700_000_200_000,
                _ => crowded,
            };
            (id * 3, t, "lead")
        })
        .collect();
    assert!(rows.iter().filter(|r| r.1 == crowded).count() > 10_000);
    let (base, world) = fake_capped(rows, 10_000).await;
    let c = client(&base, "search-crowded");
    let got: Vec<_> = c
        .deals()
        .search_all(SearchRequest::new())
        .try_collect()
        .await
        .expect("complete");
    let mut ids: Vec<u64> = got.iter().map(|o| o.id.parse().expect("id")).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "no duplicates");
    assert_eq!(ids, (1..=10_600u64).map(|i| i * 3).collect::<Vec<_>>());
    let times: Vec<_> = got
        .iter()
        .map(|o| o.property("hs_lastmodifieddate").expect("time").to_string())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "oldest change first");
    let w = world.lock().expect("w");
    assert_eq!(w.deepest, 0, "no offsets sent");
    assert!(w.calls < 10_600 / 200 * 2 + 10, "{} requests", w.calls);
}

#[tokio::test]
async fn one_page_and_requests_refused_before_sending() {
    let (base, world) = fake((1..=30).map(|i| (i, 1_000 * i as i64, "lead")).collect()).await;
    let c = client(&base, "search-page");
    let page = c
        .deals()
        .search(&SearchRequest::new().limit(20))
        .await
        .expect("page");
    assert_eq!(page.total, 30);
    assert_eq!(page.results.len(), 20);
    assert_eq!(page.next_after(), Some("20"));
    let calls = world.lock().expect("w").calls;

    let too_many = (0..6).fold(SearchRequest::new(), |r, i| {
        r.or(FilterGroup::new(Filter::eq(
            "lifecyclestage",
            format!("s{i}"),
        )))
    });
    let e = c.deals().search(&too_many).await.expect_err("6 groups");
    assert_eq!(e.kind(), ErrorKind::Validation);
    // Six filters in a group leave no room for the two filters search_all adds.
    let full = (0..6).fold(SearchRequest::new(), |r, i| {
        r.filter(Filter::eq("lifecyclestage", format!("s{i}")))
    });
    let e = c
        .deals()
        .search_all(full)
        .try_collect::<Vec<_>>()
        .await
        .expect_err("no room");
    assert!(e.message().contains("two filters"), "{e}");
    // Five leave room for one only: the walk by id adds a time and an id filter.
    let five = (0..5).fold(SearchRequest::new(), |r, i| {
        r.filter(Filter::eq("lifecyclestage", format!("s{i}")))
    });
    let e = c
        .deals()
        .search_all(five)
        .try_collect::<Vec<_>>()
        .await
        .expect_err("no room for two");
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert_eq!(world.lock().expect("w").calls, calls, "nothing sent");
    // Three groups of four: 12 + 2 × 3 = 18 filters, the most allowed in all.
    let group = |i: usize| FilterGroup {
        filters: (0..4)
            .map(|j| Filter::eq("lifecyclestage", format!("g{i}f{j}")))
            .collect(),
    };
    let fits = (0..3).fold(SearchRequest::new().limit(10), |r, i| r.or(group(i)));
    let none: Vec<_> = c
        .deals()
        .search_all(fits.clone())
        .try_collect()
        .await
        .expect("18 filters in all are allowed");
    assert!(none.is_empty());
    let calls = world.lock().expect("w").calls;
    let e = c
        .deals()
        .search_all(fits.or(FilterGroup::new(Filter::eq("lifecyclestage", "x"))))
        .try_collect::<Vec<_>>()
        .await
        .expect_err("13 + 2 × 4 = 21 filters");
    assert!(e.message().contains("at most 18"), "{e}");
    let sorted = SearchRequest::new().sort("amount", Direction::Ascending);
    let e = c
        .deals()
        .search_all(sorted)
        .try_collect::<Vec<_>>()
        .await
        .expect_err("own order");
    assert_eq!(e.kind(), ErrorKind::Config);
    assert_eq!(world.lock().expect("w").calls, calls, "nothing sent");
}

/// A fake whose records keep changing while a run reads them: every search moves one
/// record that has not been returned yet to a later instant inside the run's range.
async fn moving(
    State(w): State<Arc<Mutex<World>>>,
    body: axum::Json<Value>,
) -> axum::response::Response {
    {
        let mut world = w.lock().expect("world");
        let n = world.calls;
        let len = world.rows.len();
        // Move a record from the back half to just after the newest instant of the data.
        let moved = world.rows.get_mut(len - 1 - n % (len / 2)).map(|row| {
            row.1 = 1_700_000_500_000 + n as i64;
            row.0
        });
        world.moved.extend(moved);
    }
    search(State(w), body).await.into_response()
}

#[tokio::test]
async fn search_all_ends_and_misses_nothing_while_records_change() {
    let rows: Vec<(u64, i64, &'static str)> = (0..120u64)
        .map(|i| (i + 1, 1_700_000_000_000 + (i / 4) as i64 * 1000, "lead"))
        .collect();
    let w = world(rows, CAP);
    let app = Router::new()
        .route("/crm/v3/objects/deals/search", post(moving))
        .with_state(w.clone());
    let c = client(&serve(app).await, "search-moving");
    let got: Vec<_> = c
        .deals()
        .search_all(SearchRequest::new().limit(10))
        .try_collect()
        .await
        .expect("ends");
    let mut reads: std::collections::BTreeMap<u64, usize> = std::collections::BTreeMap::new();
    for o in &got {
        *reads.entry(o.id.parse().expect("id")).or_default() += 1;
    }
    // Every record exists throughout and ends inside the range, so each is read at least
    // once.
    assert_eq!(
        reads.keys().copied().collect::<Vec<_>>(),
        (1..=120).collect::<Vec<_>>()
    );
    // Only a record the fake moved may be read again (at its old and each new instant);
    // a record that never changed is read exactly once.
    let moved = w.lock().expect("world").moved.clone();
    assert!(!moved.is_empty(), "the fake moved records during the run");
    for (id, n) in &reads {
        let moves = moved.iter().filter(|m| *m == id).count();
        assert!(
            *n <= 1 + moves,
            "id {id} read {n} times but moved {moves} times"
        );
    }
}
