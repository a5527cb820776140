//! Listings that must not lose or repeat records: keyset slices on `date_created` for
//! opportunities, offsets only where no slicing is documented, learned page ceilings, and
//! the change feed's tombstones.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::Query as UrlQuery;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use crmkit_close::{Client, CloseConnector, Contact, Opportunity, User};
use crmkit_core::connector::Change;
use crmkit_core::http::TransportEvent;
use crmkit_core::{ChangeCursor, Connector, ErrorKind, ObjectKind, SecretString};
use crmkit_sandbox::close::{CloseSandbox, RunningClose};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use super::{client, fast_retry, opportunities_in_tens, sandbox, serve};

/// Every request a client sent: its path and query.
type Sent = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

/// A client that knows the sandbox's `_skip` ceiling of 20, and what it sent.
fn ceiling_client(sb: &RunningClose) -> (Client, Sent) {
    let sent: Sent = Arc::default();
    let log = sent.clone();
    let c = Client::builder()
        .api_key(SecretString::from("k"))
        .base_url(sb.api_url())
        .retry(fast_retry())
        .max_skip(20)
        .observer(Arc::new(move |e: &TransportEvent<'_>| {
            if let TransportEvent::Admitted { request, .. } = e {
                log.lock()
                    .unwrap()
                    .push((request.path.clone(), request.query.clone()));
            }
        }))
        .build()
        .unwrap();
    (c, sent)
}

/// The queries of the requests to `path`.
fn queries(sent: &Sent, path: &str) -> Vec<Vec<(String, String)>> {
    sent.lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == path)
        .map(|(_, q)| q.clone())
        .collect()
}

fn has(q: &[(String, String)], key: &str, value: Option<&str>) -> bool {
    q.iter()
        .any(|(k, v)| k == key && value.is_none_or(|want| v == want))
}

#[tokio::test]
async fn a_delete_during_an_opportunity_listing_skips_no_live_record() {
    let sb = CloseSandbox::builder()
        .seed(5)
        .leads(10)
        .start()
        .await
        .unwrap();
    let c = client(&sb, "k");
    let before = sb.count("opportunity");
    assert!(before > 5, "enough opportunities for two pages: {before}");
    let mut stream = c.opportunities().list().limit(5).stream();
    let mut seen = Vec::new();
    while let Some(o) = stream.next().await {
        let o: Opportunity = o.unwrap();
        seen.push(o.id.clone());
        if seen.len() == 5 {
            // Someone deletes an opportunity the listing already returned: with offsets,
            // every later one would move up a place and one would never be listed.
            c.opportunities().delete(&seen[0]).await.unwrap();
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    assert_eq!(unique.len(), before, "every live opportunity was listed");
}

#[tokio::test]
async fn opportunities_sharing_one_date_created_are_listed_once_each_past_pages() {
    let sb = CloseSandbox::builder().max_skip(20).start().await.unwrap();
    let (c, sent) = ceiling_client(&sb);
    let lead: crmkit_close::Lead = c.leads().create(&super::named("Many")).await.unwrap();
    // 4 early, 25 at one instant (three pages of ten), 6 later.
    let stamps = (0..4)
        .map(|i| format!("2026-01-01T00:00:0{i}.000000+00:00"))
        .chain((0..25).map(|_| "2026-02-01T00:00:00.000000+00:00".to_string()))
        .chain((0..6).map(|i| format!("2026-03-01T00:00:0{i}.000000+00:00")));
    for (i, at) in stamps.enumerate() {
        c.opportunities()
            .create(&json!({"lead_id": lead.id, "note": format!("O{i}"), "date_created": at}))
            .await
            .unwrap();
    }
    let opps = opportunities_in_tens(&c).await;
    let ids: HashSet<&str> = opps.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(opps.len(), 35, "each once");
    assert_eq!(ids.len(), 35);
    let pages: Vec<_> = queries(&sent, "opportunity/")
        .into_iter()
        .filter(|q| has(q, "_limit", None))
        .collect();
    // Ordered by date_created; a listing sends no upper bound of its own, so no client
    // clock can hide recent objects.
    assert!(
        pages
            .iter()
            .all(|q| has(q, "_order_by", Some("date_created")) && !has(q, "date_created__lt", None)),
        "{pages:?}"
    );
    assert!(
        pages.iter().any(|q| has(q, "_skip", Some("10"))),
        "the crowded instant was paged with _skip: {pages:?}"
    );
}

#[tokio::test]
async fn a_listing_refuses_its_own_ordering_and_merges_its_own_range() {
    let sb = CloseSandbox::builder().start().await.unwrap();
    let (c, sent) = ceiling_client(&sb);
    let e = c
        .opportunities()
        .list()
        .filter("_order_by", "-value")
        .stream()
        .try_next()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().contains("date_created__gte"), "{}", e.message());

    let lead: crmkit_close::Lead = c.leads().create(&super::named("Range")).await.unwrap();
    for at in ["2026-01-01", "2026-02-01", "2026-03-01"] {
        c.opportunities()
            .create(
                &json!({"lead_id": lead.id, "date_created": format!("{at}T00:00:00.000000+00:00")}),
            )
            .await
            .unwrap();
    }
    let opps: Vec<Opportunity> = c
        .opportunities()
        .list()
        .filter("date_created__gte", "2026-02-01T00:00:00+00:00")
        .filter("date_created__lt", "2026-03-01T00:00:00+00:00")
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(opps.len(), 1);
    for q in queries(&sent, "opportunity/")
        .iter()
        .filter(|q| has(q, "_limit", None))
    {
        let count = |key: &str| q.iter().filter(|(k, _)| k == key).count();
        assert_eq!(count("date_created__gte"), 1, "sent once: {q:?}");
        assert_eq!(count("date_created__lt"), 1, "sent once: {q:?}");
        assert_eq!(count("_order_by"), 1, "sent once: {q:?}");
    }
}

#[tokio::test]
async fn a_filtered_contact_listing_stops_at_the_skip_ceiling_with_a_clear_error() {
    let sb = CloseSandbox::builder().max_skip(20).start().await.unwrap();
    let (c, sent) = ceiling_client(&sb);
    let lead: crmkit_close::Lead = c.leads().create(&super::named("Crowded")).await.unwrap();
    for i in 0..35 {
        c.contacts()
            .create(&json!({"lead_id": lead.id, "name": format!("C{i}")}))
            .await
            .unwrap();
    }
    // `lead_id` is the one documented contact filter; it forces offsets.
    let got: Vec<crmkit_core::Result<Contact>> = c
        .contacts()
        .list()
        .filter("lead_id", lead.id.clone())
        .limit(10)
        .stream()
        .collect()
        .await;
    let ok = got.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 30, "pages at _skip 0, 10 and 20");
    let e = got.iter().find_map(|r| r.as_ref().err()).expect("an error");
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().contains("_skip 20"), "{}", e.message());
    assert!(
        sb.stats().requests.iter().all(|r| r.status == 200),
        "the client stops before asking past the ceiling"
    );
    assert!(
        queries(&sent, "contact/")
            .iter()
            .any(|q| has(q, "_skip", Some("20"))),
        "the listing used offsets"
    );
}

/// Serves `app` as a fake Close and returns a client for it.
async fn client_of(app: axum::Router) -> Client {
    let addr = serve(app).await;
    Client::builder()
        .api_key(SecretString::from("k"))
        .base_url(format!("http://{addr}"))
        .retry(fast_retry())
        .build()
        .unwrap()
}

/// A Close-like `/user/` whose largest page is 3, answering bigger ones with the
/// flask-mongorest 400.
async fn small_page_server(limits: Arc<Mutex<Vec<usize>>>) -> Client {
    let users: Vec<Value> = (0..7)
        .map(|i| json!({"id": format!("user_{i}"), "email": format!("u{i}@example.com")}))
        .collect();
    let app = axum::Router::new().route(
        "/api/v1/user/",
        get(move |UrlQuery(q): UrlQuery<HashMap<String, String>>| {
            let users = users.clone();
            let limits = limits.clone();
            async move {
                let limit: usize = q.get("_limit").and_then(|l| l.parse().ok()).unwrap_or(100);
                let skip: usize = q.get("_skip").and_then(|l| l.parse().ok()).unwrap_or(0);
                limits.lock().unwrap().push(limit);
                if limit > 3 {
                    let body = json!({"error": "The limit you set is larger than the maximum limit for this resource (max_limit = 3)."});
                    return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
                }
                let page: Vec<Value> = users.iter().skip(skip).take(limit).cloned().collect();
                let has_more = skip + page.len() < users.len();
                axum::Json(json!({"data": page, "has_more": has_more})).into_response()
            }
        }),
    );
    client_of(app).await
}

#[tokio::test]
async fn a_max_limit_answer_is_learned_and_the_page_asked_again() {
    let limits = Arc::new(Mutex::new(Vec::new()));
    let c = small_page_server(limits.clone()).await;
    let users: Vec<User> = c
        .users()
        .list()
        .limit(50)
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(users.len(), 7);
    let asked = limits.lock().unwrap().clone();
    assert_eq!(asked, vec![50, 3, 3, 3], "learned once, then kept");
}

#[tokio::test]
async fn page_sizes_are_capped_at_known_good_sizes() {
    let sb = sandbox(3).await;
    let (c, sent) = ceiling_client(&sb);
    let _: Vec<Value> = c
        .resource::<Value>("activity/")
        .list()
        .limit(5000)
        .stream()
        .try_collect()
        .await
        .unwrap();
    let pages = queries(&sent, "activity/");
    assert!(!pages.is_empty());
    assert!(
        pages.iter().all(|q| has(q, "_limit", Some("100"))),
        "{pages:?}"
    );
}

fn tombstones(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Deleted { record, .. } => Some(record.id.clone()),
            _ => None,
        })
        .collect()
}

async fn drain(
    conn: &CloseConnector,
    kind: ObjectKind,
    since: Option<ChangeCursor>,
) -> Vec<Change> {
    conn.changes(kind, since)
        .try_collect()
        .await
        .expect("feed runs")
}

#[tokio::test]
async fn a_tombstone_read_interrupted_resumes_inside_its_window() {
    let sb = sandbox(0).await;
    let c = client(&sb, "k");
    let conn = CloseConnector::new(c.clone());
    let mut ids = Vec::new();
    for i in 0..4 {
        let lead: crmkit_close::Lead = c
            .leads()
            .create(&super::named(&format!("T{i}")))
            .await
            .unwrap();
        ids.push(lead.id);
    }
    let first = drain(&conn, ObjectKind::Company, None).await;
    let cursor = first.last().expect("upserts").cursor().clone();
    for id in &ids[..3] {
        c.leads().delete(id).await.unwrap();
    }
    // The consumer stops after the first tombstone and resumes from its cursor.
    let mut feed = conn.changes(ObjectKind::Company, Some(cursor));
    let one = feed.try_next().await.unwrap().expect("a tombstone");
    drop(feed);
    let Change::Deleted { record, cursor, .. } = &one else {
        panic!("tombstones come first: {one:?}")
    };
    let rest = drain(&conn, ObjectKind::Company, Some(cursor.clone())).await;
    let mut all: HashSet<String> = tombstones(&rest).into_iter().collect();
    all.insert(record.id.clone());
    let expected: HashSet<String> = ids[..3].iter().cloned().collect();
    assert_eq!(all, expected);
    // The finished run's cursor has moved the deletion watermark on: no tombstone again
    // beyond the re-read overlap, and the overlap re-reads are the same three.
    let last = rest.last().expect("changes").cursor().clone();
    let again = drain(&conn, ObjectKind::Company, Some(last)).await;
    assert!(tombstones(&again).iter().all(|id| expected.contains(id)));
}

#[tokio::test]
async fn deleting_a_lead_gives_tombstones_for_its_contacts_and_opportunities() {
    let sb = sandbox(2).await;
    let c = client(&sb, "k");
    let conn = CloseConnector::new(c.clone());
    let leads: Vec<crmkit_close::Lead> = c.leads().list().stream().try_collect().await.unwrap();
    let victim = leads[0].id.clone();
    let contacts: Vec<Contact> = c
        .contacts()
        .list()
        .filter("lead_id", victim.clone())
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert!(!contacts.is_empty());
    let person_cursor = drain(&conn, ObjectKind::Person, None)
        .await
        .last()
        .expect("contacts")
        .cursor()
        .clone();
    c.leads().delete(&victim).await.unwrap();
    let after = tombstones(&drain(&conn, ObjectKind::Person, Some(person_cursor)).await);
    for contact in &contacts {
        assert!(
            after.contains(&contact.id),
            "{} has a tombstone",
            contact.id
        );
    }
}

#[tokio::test]
async fn a_deletion_watermark_older_than_the_event_log_asks_for_a_resync() {
    let sb = sandbox(0).await;
    let conn = CloseConnector::new(client(&sb, "k"));
    let old = chrono::Utc::now() - chrono::Duration::days(40);
    let cursor = ChangeCursor(format!("close1.{}", json!({"deletes": old.to_rfc3339()})));
    let e = conn
        .changes(ObjectKind::Company, Some(cursor))
        .try_next()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().contains("resync"), "{}", e.message());
}

/// A Close-like server for the change feed: its clock says 2020-01-01 whatever the
/// client's says, it compares `moment_range` bounds at millisecond precision, accepts only
/// the `on_or_after`/`before` form, and 12 of its leads share one `date_updated`.
async fn feed_server(bounds: Arc<Mutex<Vec<(Value, Value)>>>) -> Client {
    let stamp = |ms: u32| format!("2019-12-31T10:00:00.{ms:03}000+00:00");
    let rows: Vec<Value> = (0..3)
        .map(|i| (format!("lead_a{i}"), stamp(1)))
        .chain((0..12).map(|i| (format!("lead_b{i:02}"), stamp(2))))
        .chain((0..2).map(|i| (format!("lead_c{i}"), stamp(3))))
        .map(|(id, t)| {
            json!({"id": id, "name": id, "display_name": id, "date_created": t, "date_updated": t})
        })
        .collect();
    let date = [(axum::http::header::DATE, "Wed, 01 Jan 2020 00:00:00 GMT")];
    let app = axum::Router::new()
        .route(
            "/api/v1/event/",
            get(
                move || async move { (date, axum::Json(json!({"data": [], "cursor_next": null}))) },
            ),
        )
        .route(
            "/api/v1/custom_field_schema/lead/",
            get(|| async { axum::Json(json!({"fields": []})) }),
        )
        .route(
            "/api/v1/data/search/",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let rows = rows.clone();
                let bounds = bounds.clone();
                async move {
                    let cond = &body["query"]["queries"][1]["condition"];
                    if cond.get("gte").is_some() || cond.get("lt").is_some() {
                        let e = json!({"error": "unknown moment_range keys"});
                        return (StatusCode::BAD_REQUEST, axum::Json(e)).into_response();
                    }
                    bounds
                        .lock()
                        .unwrap()
                        .push((cond["on_or_after"].clone(), cond["before"].clone()));
                    // Millisecond precision: bounds are truncated, as a date index would.
                    let ms = |m: &Value| {
                        m["value"].as_str().map(|v| {
                            let t = chrono::DateTime::parse_from_rfc3339(v).unwrap();
                            t.timestamp_millis()
                        })
                    };
                    let (from, until) = (ms(&cond["on_or_after"]), ms(&cond["before"]));
                    let hits: Vec<&Value> = rows
                        .iter()
                        .filter(|r| {
                            let t = chrono::DateTime::parse_from_rfc3339(
                                r["date_updated"].as_str().unwrap(),
                            )
                            .unwrap()
                            .timestamp_millis();
                            from.is_none_or(|f| t >= f) && until.is_none_or(|u| t < u)
                        })
                        .collect();
                    let skip: usize = body["cursor"].as_str().map_or(0, |c| c.parse().unwrap());
                    let limit = body["_limit"].as_u64().unwrap() as usize;
                    let page: Vec<&Value> = hits.iter().skip(skip).take(limit).copied().collect();
                    let end = skip + page.len();
                    let cursor = (end < hits.len()).then(|| end.to_string());
                    axum::Json(json!({"data": page, "cursor": cursor})).into_response()
                }
            }),
        );
    client_of(app).await
}

#[tokio::test]
async fn the_feed_reads_a_crowded_instant_across_pages_on_the_servers_clock() {
    let bounds = Arc::new(Mutex::new(Vec::new()));
    let conn = CloseConnector::new(feed_server(bounds.clone()).await).with_page_size(5);
    let changes = drain(&conn, ObjectKind::Company, None).await;
    let ids: Vec<String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Upsert { record, .. } => record.id().map(str::to_string),
            _ => None,
        })
        .collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), 17, "each lead once: {ids:?}");
    assert_eq!(unique.len(), 17);
    let bounds = bounds.lock().unwrap().clone();
    assert!(bounds.len() <= 8, "{} searches", bounds.len());
    // The upper bound is Close's clock (the end of the second its Date header names), not
    // the client's.
    for (_, before) in &bounds {
        assert_eq!(before["type"], "fixed_utc");
        assert!(
            before["value"]
                .as_str()
                .is_some_and(|v| v.starts_with("2020-01-01T00:00:01")),
            "{before}"
        );
    }
    let last = changes.last().unwrap().cursor().0.clone();
    assert!(last.contains("2020-01-01T00:00:01"), "{last}");
}

#[tokio::test]
async fn a_filter_close_would_ignore_on_leads_or_contacts_is_refused() {
    let sb = CloseSandbox::builder()
        .seed(3)
        .leads(5)
        .start()
        .await
        .unwrap();
    let c = super::client(&sb, "k");
    let e = c
        .leads()
        .list()
        .filter("status_id", "stat_x")
        .stream()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().contains("`status_id`"), "{e}");
    assert!(
        sb.stats().requests.is_empty(),
        "refused before anything is sent"
    );
    let contact: Contact = c
        .contacts()
        .list()
        .stream()
        .try_next()
        .await
        .unwrap()
        .unwrap();
    let lead_id = contact.lead_id.clone().unwrap();
    let of_lead: Vec<Contact> = c
        .contacts()
        .list()
        .filter("lead_id", lead_id.clone())
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert!(!of_lead.is_empty());
    assert!(
        of_lead
            .iter()
            .all(|k| k.lead_id.as_deref() == Some(lead_id.as_str()))
    );
}
