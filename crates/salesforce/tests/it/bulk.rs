//! Bulk API 2.0 ingest and query jobs against a fake that keeps job state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use crmkit_core::ErrorKind;
use crmkit_core::SecretString;
use crmkit_salesforce::Client;
use crmkit_salesforce::sobjects::Fields;
use futures::TryStreamExt;
use serde_json::{Value, json};

use crate::{fast_retry, serve};

#[derive(Default)]
struct Jobs {
    csv: HashMap<String, String>,
    state: HashMap<String, (String, u32)>,
}

type Shared = Arc<Mutex<Jobs>>;

async fn create(
    State(jobs): State<Shared>,
    axum::Json(body): axum::Json<Value>,
) -> impl IntoResponse {
    assert_eq!(body["contentType"], "CSV");
    assert_eq!(body["operation"], "insert");
    let mut j = jobs.lock().expect("lock");
    let id = format!("750{}", j.state.len());
    j.state.insert(id.clone(), ("Open".into(), 0));
    axum::Json(json!({"id": id, "state": "Open", "object": body["object"], "operation": "insert"}))
}

async fn upload(
    State(jobs): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    assert_eq!(headers["content-type"], "text/csv");
    jobs.lock().expect("lock").csv.insert(id, body);
    StatusCode::CREATED
}

async fn patch_job(
    State(jobs): State<Shared>,
    Path(id): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> impl IntoResponse {
    assert_eq!(body["state"], "UploadComplete");
    jobs.lock()
        .expect("lock")
        .state
        .insert(id.clone(), ("UploadComplete".into(), 0));
    axum::Json(json!({"id": id, "state": "UploadComplete"}))
}

/// Reports `InProgress` once, then `JobComplete`.
async fn job(State(jobs): State<Shared>, Path(id): Path<String>) -> impl IntoResponse {
    let mut j = jobs.lock().expect("lock");
    let entry = j
        .state
        .entry(id.clone())
        .or_insert(("UploadComplete".into(), 0));
    entry.1 += 1;
    let state = if entry.1 < 2 {
        "InProgress"
    } else {
        "JobComplete"
    };
    axum::Json(
        json!({"id": id, "state": state, "numberRecordsProcessed": 3, "numberRecordsFailed": 1}),
    )
}

/// Splits the uploaded rows: names starting with `x` fail, the rest succeed, results in
/// reverse order (Salesforce promises no order).
fn results(jobs: &Shared, id: &str, ok: bool) -> String {
    let j = jobs.lock().expect("lock");
    let csv = j.csv.get(id).cloned().unwrap_or_default();
    let mut lines = csv.lines();
    let header = lines.next().unwrap_or_default().to_string();
    let mut out = if ok {
        format!("\"sf__Id\",\"sf__Created\",{header}\n")
    } else {
        format!("\"sf__Id\",\"sf__Error\",{header}\n")
    };
    let rows: Vec<&str> = lines.collect();
    for (i, row) in rows.iter().enumerate().rev() {
        let fails = row.starts_with('x') || row.starts_with("\"x");
        if ok && !fails {
            // Values come back as processed: a name with `  ` is echoed with one space.
            let row = row.replace("  ", " ");
            out.push_str(&format!("001000000000{i:03}AAA,true,{row}\n"));
        }
        if !ok && fails {
            out.push_str(&format!(
                ",REQUIRED_FIELD_MISSING:Required fields are missing: [Site],{row}\n"
            ));
        }
    }
    out
}

async fn successful(
    State(jobs): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> impl IntoResponse {
    assert_eq!(headers["accept"], "text/csv");
    results(&jobs, &id, true)
}

async fn failed(State(jobs): State<Shared>, Path(id): Path<String>) -> impl IntoResponse {
    results(&jobs, &id, false)
}

async fn query_job(axum::Json(body): axum::Json<Value>) -> impl IntoResponse {
    assert_eq!(body["operation"], "queryAll");
    axum::Json(json!({"id": "750Q", "state": "UploadComplete"}))
}

async fn query_results(Query(q): Query<HashMap<String, String>>) -> impl IntoResponse {
    match q.get("locator").map(String::as_str) {
        None => (
            [
                ("sforce-locator", "MTAwMDA"),
                ("sforce-numberofrecords", "2"),
            ],
            "\"Id\",\"Name\"\n\"001A\",\"Acme, Inc.\"\n\"001B\",\"Beta\"\n",
        ),
        Some("MTAwMDA") => (
            [("sforce-locator", "null"), ("sforce-numberofrecords", "1")],
            "\"Id\",\"Name\"\n\"001C\",\"Gamma\"\n",
        ),
        Some(other) => panic!("unknown locator {other}"),
    }
}

fn app() -> Router {
    let v = "/services/data/v59.0";
    Router::new()
        .route(&format!("{v}/jobs/ingest"), post(create))
        .route(&format!("{v}/jobs/ingest/{{id}}/batches"), put(upload))
        .route(
            &format!("{v}/jobs/ingest/{{id}}"),
            get(job).patch(patch_job),
        )
        .route(
            &format!("{v}/jobs/ingest/{{id}}/successfulResults/"),
            get(successful),
        )
        .route(
            &format!("{v}/jobs/ingest/{{id}}/failedResults/"),
            get(failed),
        )
        .route(
            &format!("{v}/jobs/ingest/{{id}}/unprocessedrecords/"),
            get(|| async { "\"Name\"\n" }),
        )
        .route(&format!("{v}/jobs/query"), post(query_job))
        .route(&format!("{v}/jobs/query/{{id}}"), get(job))
        .route(
            &format!("{v}/jobs/query/{{id}}/results"),
            get(query_results),
        )
        .with_state(Shared::default())
}

#[tokio::test]
async fn a_large_insert_goes_through_bulk_and_outcomes_come_back_in_input_order() {
    let base = serve(app()).await;
    let c = Client::builder()
        .access_token(SecretString::from("bulk"))
        .instance_url(&base)
        .retry(fast_retry())
        .bulk_threshold(3)
        .build()
        .expect("builds");
    let rows: Vec<Fields> = ["Acme, Inc.", "x-bad", "Beta"]
        .iter()
        .map(|n| {
            let mut f = Fields::new();
            f.insert("Name".into(), json!(n));
            f
        })
        .collect();
    let out = c.insert_many("Account", rows).await;
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].as_ref().expect("ok").as_str(), "001000000000000AAA");
    let e = out[1].as_ref().expect_err("failed");
    assert_eq!(e.kind(), ErrorKind::Validation, "{e}");
    assert_eq!(e.record(), Some("Account #1"));
    assert!(e.to_string().contains("REQUIRED_FIELD_MISSING"), "{e}");
    assert_eq!(out[2].as_ref().expect("ok").as_str(), "001000000000002AAA");
}

#[tokio::test]
async fn a_created_record_whose_echo_differs_is_unknown_not_retryable() {
    let base = serve(app()).await;
    let c = Client::builder()
        .access_token(SecretString::from("bulk"))
        .instance_url(&base)
        .retry(fast_retry())
        .bulk_threshold(2)
        .build()
        .expect("builds");
    let rows: Vec<Fields> = ["Acme", "Two  Spaces"]
        .iter()
        .map(|n| {
            let mut f = Fields::new();
            f.insert("Name".into(), json!(n));
            f
        })
        .collect();
    let out = c.insert_many("Account", rows).await;
    assert!(out[0].is_ok());
    let e = out[1].as_ref().expect_err("unmatched");
    assert_ne!(
        e.kind(),
        ErrorKind::Transient,
        "a retry would duplicate it: {e}"
    );
    assert!(e.to_string().contains("unknown"), "{e}");
}

#[tokio::test]
async fn a_bulk_query_streams_every_page_by_locator() {
    let base = serve(app()).await;
    let c = crate::client(&base, "bulk-query");
    let rows: Vec<_> = c
        .bulk_query("SELECT Id, Name FROM Account", true)
        .try_collect()
        .await
        .expect("rows");
    let names: Vec<&str> = rows.iter().filter_map(|r| r["Name"].as_str()).collect();
    assert_eq!(names, vec!["Acme, Inc.", "Beta", "Gamma"]);
}

/// A client of the lenient sandbox `sb` that switches to Bulk API 2.0 from `threshold`
/// records.
pub fn bulk_client(sb: &crmkit_sandbox::salesforce::RunningSalesforce, threshold: usize) -> Client {
    Client::builder()
        .access_token(SecretString::from("bulk"))
        .instance_url(sb.instance_url())
        .retry(fast_retry())
        .bulk_threshold(threshold)
        .build()
        .expect("builds")
}

#[tokio::test]
async fn an_upsert_job_record_without_its_key_fails_alone_and_is_never_sent() {
    let sb = crmkit_sandbox::salesforce::SalesforceSandbox::builder()
        .start()
        .await
        .expect("sandbox");
    let c = bulk_client(&sb, 2);
    let before = sb.count("Account");
    let row = |name: &str, key: Option<Value>| {
        let mut f = Fields::new();
        f.insert("Name".into(), json!(name));
        if let Some(key) = key {
            f.insert("External_Id__c".into(), key);
        }
        f
    };
    let out = c
        .upsert_many(
            "Account",
            "External_Id__c",
            vec![
                row("Keyed", Some(json!("K-1"))),
                row("Null key", Some(Value::Null)),
                row("No key", None),
                row("Blank key", Some(json!(" "))),
            ],
        )
        .await;
    assert!(out[0].is_ok(), "{:?}", out[0]);
    for r in &out[1..] {
        let e = r.as_ref().expect_err("no key");
        assert_eq!(e.kind(), ErrorKind::Validation, "{e}");
        assert!(e.to_string().contains("no External_Id__c"), "{e}");
    }
    assert_eq!(
        sb.count("Account"),
        before + 1,
        "only the keyed record is written"
    );
}

/// Every read of an ingest job (its state, its results) answers 500 from now on.
pub fn unreadable_jobs() -> crmkit_sandbox::faults::Faults {
    crmkit_sandbox::faults::Faults {
        rate_500: 1.0,
        route: Some("GET /services/data/v59.0/jobs/ingest/*".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_insert_job_closed_but_unreadable_is_outcome_unknown_never_retryable() {
    let sb = crmkit_sandbox::salesforce::SalesforceSandbox::builder()
        .start()
        .await
        .expect("sandbox");
    let c = bulk_client(&sb, 2);
    let before = sb.count("Account");
    sb.set_faults(unreadable_jobs());
    let rows: Vec<Fields> = ["Uno", "Dos", "Tres"]
        .iter()
        .map(|n| {
            let mut f = Fields::new();
            f.insert("Name".into(), json!(n));
            f
        })
        .collect();
    let out = c.insert_many("Account", rows).await;
    assert_eq!(out.len(), 3);
    for r in &out {
        let e = r.as_ref().expect_err("results unreadable");
        assert!(!e.is_retryable(), "a retry would create it twice: {e}");
        assert!(e.to_string().contains("unknown"), "{e}");
    }
    assert_eq!(
        sb.count("Account"),
        before + 3,
        "the job did create them: retrying would have duplicated them"
    );
}
