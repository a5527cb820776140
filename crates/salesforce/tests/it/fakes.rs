//! Behaviours the sandbox cannot show on demand, against small fakes: records sharing one
//! `SystemModstamp` across keyset pages, the per-client concurrency cap, publishing a
//! Platform Event, and the change feed against a database behind its web server's clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use crmkit_core::connector::Change;
use crmkit_core::{Connector, ErrorKind, ObjectKind, SecretString};
use crmkit_salesforce::{Client, SalesforceConnector};
use futures::TryStreamExt;
use serde_json::{Value, json};

use crate::{Log, client, fast_retry, log, seen, serve};

#[derive(serde::Deserialize)]
struct Q {
    q: String,
}

/// Seven accounts changed in the same second, answered the way Salesforce would answer the
/// feed's keyset queries: ordered by Id, after the `Id > '…'` of a tie walk, `LIMIT` applied.
async fn query(log: Log, Query(q): Query<Q>) -> axum::response::Response {
    log.lock()
        .expect("log")
        .push(("GET query".into(), q.q.clone()));
    let after =
        q.q.split("Id > '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .map(str::to_string);
    let limit: usize =
        q.q.rsplit("LIMIT ")
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(2000);
    let records: Vec<Value> = (1..=7)
        .map(|i| format!("001000000000{i:03}AAA"))
        .filter(|id| after.as_ref().is_none_or(|a| id.as_str() > a.as_str()))
        .take(limit)
        .map(|id| {
            json!({"attributes":{"type":"Account"},"Id": id,"Name": format!("Same second {id}"),
                   "SystemModstamp":"2024-05-01T10:00:00.000+0000"})
        })
        .collect();
    axum::Json(json!({"totalSize": records.len(), "done": true, "records": records}))
        .into_response()
}

#[tokio::test]
async fn records_sharing_one_timestamp_are_all_read_across_pages() {
    let log = log();
    let l = log.clone();
    let app = Router::new()
        .route(
            "/services/data/v59.0/query/",
            get(move |q| query(l.clone(), q)),
        )
        .route(
            "/services/data/v59.0/sobjects/Account/describe/",
            get(|| async {
                axum::Json(json!({"name":"Account","fields":[
                    {"name":"Id","type":"id"},{"name":"Name","type":"string"},
                    {"name":"SystemModstamp","type":"datetime"}]}))
            }),
        )
        .route(
            "/services/data/v59.0/limits/",
            get(|| async {
                axum::Json(json!({"DailyApiRequests":{"Max":15000,"Remaining":14000}}))
            }),
        )
        .route(
            "/services/data/v59.0/sobjects/Account/updated/",
            get(|| async {
                axum::Json(json!({"ids":[],"latestDateCovered":"2024-05-01T10:01:00.000+0000"}))
            }),
        )
        .route(
            "/services/data/v59.0/sobjects/Account/deleted/",
            get(|| async {
                axum::Json(
                    json!({"deletedRecords":[],"latestDateCovered":"2024-05-01T10:01:00.000+0000"}),
                )
            }),
        );
    let conn = SalesforceConnector::new(client(&serve(app).await, "ties")).with_page_size(3);
    let changes: Vec<Change> = conn
        .changes(ObjectKind::Company, None)
        .try_collect()
        .await
        .expect("feed");
    let ids: Vec<&str> = changes.iter().filter_map(Change::id).collect();
    let want: Vec<String> = (1..=7).map(|i| format!("001000000000{i:03}AAA")).collect();
    assert_eq!(
        ids,
        want.iter().map(String::as_str).collect::<Vec<_>>(),
        "each once, in order"
    );
    let queries: Vec<String> = seen(&log).into_iter().map(|(_, q)| q).collect();
    assert!(
        queries.iter().any(|q| q.contains("(SystemModstamp = 2024-05-01T10:00:00Z AND Id > '001000000000003AAA') OR SystemModstamp > 2024-05-01T10:00:00Z")),
        "the tie is walked by Id: {queries:#?}"
    );
    assert!(
        queries
            .iter()
            .all(|q| q.contains("ORDER BY SystemModstamp ASC, Id ASC LIMIT 3"))
    );
    assert!(queries.iter().all(|q| !q.contains("OFFSET")));
}

#[tokio::test]
async fn no_more_requests_are_in_flight_for_one_org_than_its_cap() {
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (n, p) = (now.clone(), peak.clone());
    let app = Router::new().route(
        "/services/data/v59.0/limits/",
        get(move || {
            let (n, p) = (n.clone(), p.clone());
            async move {
                let k = n.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(k, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                n.fetch_sub(1, Ordering::SeqCst);
                axum::Json(json!({}))
            }
        }),
    );
    let base = serve(app).await;
    // Two clients built apart, with different sessions, for the same org share its cap.
    let clients: Vec<Client> = ["cap-a", "cap-b"]
        .iter()
        .map(|token| {
            Client::builder()
                .access_token(SecretString::from(token.to_string()))
                .instance_url(&base)
                .retry(fast_retry())
                .max_concurrency(2)
                .build()
                .expect("builds")
        })
        .collect();
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let c = clients[i % 2].clone();
            tokio::spawn(async move { c.limits().await })
        })
        .collect();
    for call in calls {
        call.await.expect("joins").expect("answered");
    }
    assert_eq!(peak.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_platform_event_is_published_as_an_sobject() {
    let log = log();
    let l = log.clone();
    let app = Router::new().route(
        "/services/data/v59.0/sobjects/{event}/",
        post(
            move |axum::extract::Path(event): axum::extract::Path<String>, body: String| {
                let l = l.clone();
                async move {
                    l.lock().expect("log").push((event, body));
                    (
                        StatusCode::CREATED,
                        axum::Json(json!({"id":"e00xx0000000001AAA","success":true,"errors":[]})),
                    )
                }
            },
        ),
    );
    let c = client(&serve(app).await, "events");
    let mut payload = serde_json::Map::new();
    payload.insert("Order_Id__c".into(), json!("42"));
    let id = c
        .publish_event("Order_Placed__e", &payload)
        .await
        .expect("published");
    assert_eq!(id, "e00xx0000000001AAA");
    assert_eq!(
        seen(&log),
        vec![(
            "Order_Placed__e".to_string(),
            r#"{"Order_Id__c":"42"}"#.to_string()
        )]
    );
    let e = c
        .publish_event("Account", &payload)
        .await
        .expect_err("not an event");
    assert_eq!(e.kind(), ErrorKind::Config);
}

/// Salesforce's replication date format.
fn sf_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// An org with no Account changes whose web server's clock reads `date` and whose
/// getUpdated and getDeleted say their database is complete up to `updated` and `deleted`,
/// with the log of the SOQL queries it was asked.
async fn quiet_org(
    token: &str,
    date: chrono::DateTime<chrono::Utc>,
    updated: chrono::DateTime<chrono::Utc>,
    deleted: chrono::DateTime<chrono::Utc>,
) -> (SalesforceConnector, Log) {
    let log = log();
    let l = log.clone();
    let header = date.to_rfc2822().replace("+0000", "GMT");
    let app = Router::new()
        .route(
            "/services/data/v59.0/limits/",
            get(move || {
                let header = header.clone();
                async move { ([("date", header)], axum::Json(json!({}))) }
            }),
        )
        .route(
            "/services/data/v59.0/sobjects/Account/describe/",
            get(|| async {
                axum::Json(json!({"name":"Account","fields":[
                    {"name":"Id","type":"id"},{"name":"SystemModstamp","type":"datetime"}]}))
            }),
        )
        .route(
            "/services/data/v59.0/query/",
            get(move |Query(q): Query<Q>| {
                let l = l.clone();
                async move {
                    l.lock().expect("log").push(("GET query".into(), q.q));
                    axum::Json(json!({"totalSize":0,"done":true,"records":[]}))
                }
            }),
        )
        .route(
            "/services/data/v59.0/sobjects/Account/updated/",
            get(move || async move {
                axum::Json(json!({"ids":[],"latestDateCovered": sf_time(updated)}))
            }),
        )
        .route(
            "/services/data/v59.0/sobjects/Account/deleted/",
            get(move || async move {
                axum::Json(json!({"deletedRecords":[],
                    "earliestDateAvailable": sf_time(deleted - chrono::Duration::days(10)),
                    "latestDateCovered": sf_time(deleted)}))
            }),
        );
    (
        SalesforceConnector::new(client(&serve(app).await, token)),
        log,
    )
}

/// The cursor state a run ended on.
async fn last_state(conn: &SalesforceConnector, since: Option<String>) -> Value {
    let run: Vec<Change> = conn
        .changes(ObjectKind::Company, since.map(crmkit_core::ChangeCursor))
        .try_collect()
        .await
        .expect("feed");
    let last = run.last().expect("a checkpoint");
    assert!(matches!(last, Change::Checkpoint { .. }), "{run:?}");
    let json = last
        .cursor()
        .0
        .strip_prefix("sf1.")
        .expect("salesforce cursor");
    serde_json::from_str(json).expect("cursor state")
}

fn state_time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .expect("a time")
        .to_utc()
}

#[tokio::test]
async fn a_checkpoint_never_passes_what_the_database_says_is_complete() {
    // A long transaction still in flight: getUpdated covers only up to ten minutes ago,
    // getDeleted up to three, though the web server's clock says now.
    let now = chrono::Utc::now();
    // Whole seconds, as Salesforce's replication dates have.
    let covered = chrono::SubsecRound::trunc_subsecs(now - chrono::Duration::minutes(10), 0);
    let (conn, queries) = quiet_org(
        "late-commit",
        now,
        covered,
        now - chrono::Duration::minutes(3),
    )
    .await;
    let state = last_state(&conn, None).await;
    let watermark = state_time(&state["d"]);
    assert!(
        watermark <= now - chrono::Duration::minutes(3),
        "{watermark}"
    );
    let mark = state_time(&state["u"]["Account"]["t"]);
    assert!(
        mark <= covered,
        "the checkpoint {mark} passes latestDateCovered {covered}"
    );

    // The next run re-reads exactly one overlap window (a minute by default) before what
    // the database covered: not two, and not less.
    let cursor = format!("sf1.{state}");
    queries.lock().expect("log").clear();
    last_state(&conn, Some(cursor)).await;
    let start = crmkit_salesforce::soql::datetime(covered - chrono::Duration::minutes(1));
    let asked: Vec<String> = seen(&queries).into_iter().map(|(_, q)| q).collect();
    assert!(!asked.is_empty());
    assert!(
        asked
            .iter()
            .all(|q| q.contains(&format!("SystemModstamp >= {start} "))),
        "the next run starts at {start}: {asked:#?}"
    );
}

#[tokio::test]
async fn a_date_header_far_from_the_local_clock_stops_the_run() {
    let now = chrono::Utc::now();
    let ahead = now + chrono::Duration::hours(1);
    let (conn, _) = quiet_org("skewed", ahead, ahead, ahead).await;
    let e = conn
        .changes(ObjectKind::Company, None)
        .try_collect::<Vec<_>>()
        .await
        .expect_err("a skewed clock is refused");
    assert_eq!(e.kind(), ErrorKind::BadResponse);
    assert!(e.to_string().contains("Date header"), "{e}");
}

#[tokio::test]
async fn the_deletion_watermark_is_what_get_deleted_covered_even_when_earlier() {
    let now = chrono::Utc::now();
    let before = now - chrono::Duration::minutes(3);
    // Deletions still being committed: getDeleted covers less than the last run did.
    let covered = before - chrono::Duration::minutes(2);
    let (conn, _) = quiet_org("deleted-back", now, now, covered).await;
    let since = format!("sf1.{}", json!({"d": before.to_rfc3339()}));
    let state = last_state(&conn, Some(since)).await;
    let watermark = state_time(&state["d"]);
    assert_eq!(
        watermark.timestamp(),
        covered.timestamp(),
        "the next getDeleted starts at latestDateCovered"
    );
}
