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
}

fn matches(row: &(u64, i64, &str), f: &Value) -> bool {
    let value = f["value"].as_str().unwrap_or_default();
    let (left, right): (i64, i64) = match f["propertyName"].as_str() {
        Some("hs_lastmodifieddate") => (row.1, value.parse().unwrap_or(i64::MIN)),
        Some("lifecyclestage") => return (f["operator"] == "EQ") == (row.2 == value),
        _ => return false,
    };
    match f["operator"].as_str() {
        Some("GTE") => left >= right,
        Some("LT") => left < right,
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
    // The only order this fake knows; search_all must ask for it.
    if let Some(sort) = body["sorts"].get(0) {
        assert_eq!(sort["propertyName"], "hs_lastmodifieddate");
    }
    hits.sort_by_key(|r| (r.1, r.0));
    let after: usize = body["after"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let limit = body["limit"].as_u64().unwrap_or(10) as usize;
    if after + limit > CAP {
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
    let w = Arc::new(Mutex::new(World { rows, calls: 0 }));
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
    // Six filters in a group leave no room for search_all's two time bounds.
    let full = (0..6).fold(SearchRequest::new(), |r, i| {
        r.filter(Filter::eq("lifecyclestage", format!("s{i}")))
    });
    let e = c
        .deals()
        .search_all(full)
        .try_collect::<Vec<_>>()
        .await
        .expect_err("no room");
    assert!(e.message().contains("two time filters"), "{e}");
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
        if let Some(row) = world.rows.get_mut(len - 1 - n % (len / 2)) {
            row.1 = 1_700_000_500_000 + n as i64;
        }
    }
    search(State(w), body).await.into_response()
}

#[tokio::test]
async fn search_all_ends_and_misses_nothing_while_records_change() {
    let rows: Vec<(u64, i64, &'static str)> = (0..120u64)
        .map(|i| (i + 1, 1_700_000_000_000 + (i / 4) as i64 * 1000, "lead"))
        .collect();
    let w = Arc::new(Mutex::new(World { rows, calls: 0 }));
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
    let mut ids: Vec<u64> = got.iter().map(|o| o.id.parse().expect("id")).collect();
    ids.sort_unstable();
    ids.dedup();
    // Every record exists throughout and ends inside the range, so each is read at least
    // once (a moved one may be read at its old and its new instant).
    assert_eq!(ids, (1..=120).collect::<Vec<_>>());
    assert!(got.len() < 240, "no runaway re-reading: {}", got.len());
}
