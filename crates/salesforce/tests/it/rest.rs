//! sObject CRUD, upsert, describe, query streams and the daily budget against fakes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use crmkit_core::ErrorKind;
use crmkit_salesforce::sobjects::Fields;
use crmkit_salesforce::typed::Account;
use futures::TryStreamExt;
use serde_json::{Value, json};

use crate::{Log, client, fixture, log, seen, serve};

fn json_response(status: StatusCode, body: String) -> axum::response::Response {
    (status, [("content-type", "application/json")], body).into_response()
}

async fn record_route(
    State(log): State<Log>,
    method: Method,
    uri: Uri,
    Path((object, tail)): Path<(String, String)>,
    body: Bytes,
) -> axum::response::Response {
    log.lock().expect("log").push((
        format!("{method} {uri}"),
        String::from_utf8_lossy(&body).to_string(),
    ));
    match (method.as_str(), object.as_str(), tail.as_str()) {
        ("PATCH", "Account", "001D000000IqhSLIAZ") => StatusCode::NO_CONTENT.into_response(),
        ("DELETE", "Account", "001D000000IqhSLIAZ") => StatusCode::NO_CONTENT.into_response(),
        ("GET", "Account", "001D000000IqhSLIAZ") => json_response(
            StatusCode::OK,
            json!({"attributes":{"type":"Account","url":"/services/data/v59.0/sobjects/Account/001D000000IqhSLIAZ"},
                   "Id":"001D000000IqhSLIAZ","Name":"Acme","Website":"acme.example",
                   "SystemModstamp":"2024-05-01T10:00:00.000+0000","Tier__c":"Gold"})
            .to_string(),
        ),
        ("GET", "Account", "Nope") => json_response(
            StatusCode::NOT_FOUND,
            json!([{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]).to_string(),
        ),
        ("PATCH", "Account", t) if t.starts_with("Ext__c/") => {
            let value = t.trim_start_matches("Ext__c/");
            match value {
                "new" => json_response(
                    StatusCode::CREATED,
                    json!({"id":"001D000000IqhSLIAZ","success":true,"errors":[],"created":true}).to_string(),
                ),
                "old" => json_response(
                    StatusCode::OK,
                    json!({"id":"001D000000IqhSLIAZ","success":true,"errors":[],"created":false}).to_string(),
                ),
                _ => json_response(
                    StatusCode::MULTIPLE_CHOICES,
                    fixture("upsert_multiple_error_response.json"),
                ),
            }
        }
        _ => StatusCode::IM_A_TEAPOT.into_response(),
    }
}

async fn create_route(State(log): State<Log>, uri: Uri, body: Bytes) -> axum::response::Response {
    log.lock().expect("log").push((
        format!("POST {uri}"),
        String::from_utf8_lossy(&body).to_string(),
    ));
    json_response(StatusCode::CREATED, fixture("create_success_response.json"))
}

fn app(log: Log) -> Router {
    Router::new()
        .route(
            "/services/data/v59.0/sobjects/{object}/",
            axum::routing::post(create_route),
        )
        .route(
            "/services/data/v59.0/sobjects/{object}/{*tail}",
            any(record_route),
        )
        .with_state(log)
}

#[tokio::test]
async fn crud_sends_patches_and_typed_reads_keep_custom_fields() {
    let log = log();
    let c = client(&serve(app(log.clone())).await, "crud");
    let new = Account {
        name: Some("Acme".into()),
        ..Account::default()
    };
    let id = c.accounts().create(&new).await.expect("created");
    assert_eq!(id.as_str(), "some_id");
    let read = c.accounts().get("001D000000IqhSLIAZ").await.expect("read");
    assert_eq!(read.name.as_deref(), Some("Acme"));
    assert_eq!(read.other["Tier__c"], "Gold");
    let patch = Account {
        website: Some("acme.test".into()),
        ..Account::default()
    };
    c.accounts()
        .update("001D000000IqhSLIAZ", &patch)
        .await
        .expect("patched");
    c.accounts()
        .delete("001D000000IqhSLIAZ")
        .await
        .expect("deleted");
    let e = c.accounts().get("Nope").await.expect_err("missing");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let s = seen(&log);
    assert_eq!(s[0].0, "POST /services/data/v59.0/sobjects/Account/");
    assert_eq!(
        serde_json::from_str::<Value>(&s[0].1).expect("json"),
        json!({"Name":"Acme"})
    );
    assert_eq!(
        s[2].0,
        "PATCH /services/data/v59.0/sobjects/Account/001D000000IqhSLIAZ"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&s[2].1).expect("json"),
        json!({"Website":"acme.test"}),
        "only the field set is sent"
    );
    assert_eq!(
        s[3].0,
        "DELETE /services/data/v59.0/sobjects/Account/001D000000IqhSLIAZ"
    );
}

#[tokio::test]
async fn upsert_tells_created_from_updated_and_lists_several_matches() {
    let log = log();
    let c = client(&serve(app(log.clone())).await, "upsert");
    let mut body = Fields::new();
    body.insert("Name".into(), json!("Acme"));
    body.insert("Ext__c".into(), json!("dropped"));
    body.insert("Id".into(), json!("dropped"));
    let acc = c.sobject("Account");
    let created = acc.upsert("Ext__c", "new", &body).await.expect("created");
    assert!(created.created);
    assert_eq!(
        created.id.map(|i| i.into_string()).as_deref(),
        Some("001D000000IqhSLIAZ")
    );
    let updated = acc.upsert("Ext__c", "old", &body).await.expect("updated");
    assert!(!updated.created);
    let e = acc.upsert("Ext__c", "dup", &body).await.expect_err("300");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("2 records"), "{e}");
    assert!(e.to_string().contains("/sobjects/Whizbang/bar"), "{e}");
    let s = seen(&log);
    assert_eq!(
        serde_json::from_str::<Value>(&s[0].1).expect("json"),
        json!({"Name":"Acme"}),
        "neither Id nor the external id field is sent in the body"
    );
    let e = acc
        .upsert("Ext__c/x", "v", &body)
        .await
        .expect_err("bad field");
    assert_eq!(e.kind(), ErrorKind::Validation);
}

#[derive(serde::Deserialize)]
struct Q {
    q: String,
}

#[tokio::test]
async fn query_follows_next_records_url_and_fills_in_child_pages() {
    let calls = Arc::new(AtomicU32::new(0));
    let n = calls.clone();
    let app = Router::new()
        .route(
            "/services/data/v59.0/query/",
            get(move |Query(q): Query<Q>| {
                let n = n.clone();
                async move {
                    n.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(q.q, "SELECT Id, (SELECT Id FROM Contacts) FROM Account");
                    let mut first: Value =
                        serde_json::from_str(&fixture("query_paginated_first_page_response.json"))
                            .expect("fixture");
                    first["records"][0]["Contacts"] = json!({
                        "totalSize": 3, "done": false,
                        "nextRecordsUrl": "/services/data/v59.0/query/01gCHILD-2",
                        "records": [{"attributes":{"type":"Contact"},"Id":"c1"}]
                    });
                    json_response(StatusCode::OK, first.to_string())
                }
            }),
        )
        .route(
            "/services/data/v59.0/query/{locator}",
            get(|Path(locator): Path<String>| async move {
                match locator.as_str() {
                    "01gCHILD-2" => json_response(
                        StatusCode::OK,
                        json!({"totalSize":3,"done":false,"nextRecordsUrl":"/services/data/v59.0/query/01gCHILD-3",
                               "records":[{"attributes":{"type":"Contact"},"Id":"c2"}]})
                        .to_string(),
                    ),
                    "01gCHILD-3" => json_response(
                        StatusCode::OK,
                        json!({"totalSize":3,"done":true,"records":[{"attributes":{"type":"Contact"},"Id":"c3"}]})
                            .to_string(),
                    ),
                    _ => StatusCode::NOT_FOUND.into_response(),
                }
            }),
        )
        // The fixture's next page lives under another API version, as Salesforce may answer.
        .route(
            "/services/data/v59.0/query/01gD",
            get(|| async { json_response(StatusCode::OK, fixture("query_paginated_last_page_response.json")) }),
        );
    let c = client(&serve(app).await, "query");
    let rows: Vec<Fields> = c
        .query("SELECT Id, (SELECT Id FROM Contacts) FROM Account")
        .try_collect()
        .await
        .expect("reads");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["Text_Label"], "First Page");
    assert_eq!(rows[1]["Text_Label"], "Last Page");
    let kids: Vec<&str> = rows[0]["Contacts"]["records"]
        .as_array()
        .expect("children")
        .iter()
        .filter_map(|r| r["Id"].as_str())
        .collect();
    assert_eq!(kids, vec!["c1", "c2", "c3"]);
    assert_eq!(rows[0]["Contacts"]["done"], true);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn describe_is_read_once_and_reports_required_fields_and_picklists() {
    let calls = Arc::new(AtomicU32::new(0));
    let n = calls.clone();
    let app = Router::new().route(
        "/services/data/v59.0/sobjects/Whizbang/describe/",
        get(move || {
            let n = n.clone();
            async move {
                n.fetch_add(1, Ordering::SeqCst);
                json_response(
                    StatusCode::OK,
                    fixture("sobject_describe_success_response.json"),
                )
            }
        }),
    );
    let c = client(&serve(app).await, "describe");
    let d = c.sobject("Whizbang").describe().await.expect("describe");
    let again = c.sobject("Whizbang").describe().await.expect("cached");
    assert!(Arc::ptr_eq(&d, &again));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(d.name, "Whizbang");
    assert!(
        d.field("id").is_some(),
        "fields are found case-insensitively"
    );
    // Every field of the fixture is nillable or defaulted: none must be set on create.
    assert!(d.required_fields().is_empty());
    assert_eq!(d.fields.len(), 30);
    let owner = d.field("OwnerId").expect("owner");
    assert!(owner.createable && !owner.nillable && owner.defaulted_on_create);
    assert!(!owner.required_on_create());
    assert_eq!(&d.picklist("Picklist_Field")[..3], ["one", "two", "three"]);
    assert_eq!(d.picklist("Picklist_Field").len(), 10);
    assert!(d.picklist("Text_Field").is_empty());
}

#[tokio::test]
async fn the_daily_budget_follows_sforce_limit_info_and_a_403_stops_spending() {
    let calls = Arc::new(AtomicU32::new(0));
    let n = calls.clone();
    let app = Router::new().route(
        "/services/data/v59.0/sobjects/Account/{id}",
        get(move || {
            let n = n.clone();
            async move {
                let k = n.fetch_add(1, Ordering::SeqCst);
                if k == 0 {
                    // Two requests left today, by Salesforce's count.
                    (
                        StatusCode::OK,
                        [("content-type", "application/json"), ("sforce-limit-info", "api-usage=4998/5000")],
                        json!({"Id":"001D000000IqhSLIAZ"}).to_string(),
                    )
                        .into_response()
                } else {
                    (
                        StatusCode::FORBIDDEN,
                        [("content-type", "application/json"), ("sforce-limit-info", "api-usage=5000/5000")],
                        json!([{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]).to_string(),
                    )
                        .into_response()
                }
            }
        }),
    );
    let c = client(&serve(app).await, "daily");
    let acc = c.sobject("Account");
    acc.get("001D000000IqhSLIAZ", &[]).await.expect("first");
    let e = acc
        .get("001D000000IqhSLIAZ", &[])
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::QuotaExhausted, "{e}");
    assert!(e.to_string().contains("REQUEST_LIMIT_EXCEEDED"), "{e}");
    for _ in 0..3 {
        let e = acc.get("001D000000IqhSLIAZ", &[]).await.expect_err("local");
        assert_eq!(e.kind(), ErrorKind::QuotaExhausted, "{e}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2, "nothing more was sent");
}
