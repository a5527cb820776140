//! Reads, lists, creates, patches and archives against a fake.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use crmkit_core::ErrorKind;
use crmkit_hubspot::{Properties, ReadOptions};
use futures::TryStreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;

use crate::{Log, client, log, serve};

fn record(id: u32) -> Value {
    json!({"id": id.to_string(), "properties": {"hs_object_id": id.to_string()},
           "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-01T00:00:00Z", "archived": false})
}

async fn list(
    State(log): State<Log>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    log.lock()
        .expect("log")
        .push((format!("list {q:?}"), Value::Null));
    let start: u32 = q
        .get("after")
        .and_then(|a| a.strip_prefix("c"))
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let limit: u32 = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
    let end = (start + limit).min(25);
    let results: Vec<Value> = (start..end).map(record).collect();
    let mut page = json!({"results": results});
    if end < 25 {
        page["paging"] = json!({"next": {"after": format!("c{end}"), "link": "?after=…"}});
    }
    axum::Json(page)
}

async fn create(State(log): State<Log>, axum::Json(body): axum::Json<Value>) -> impl IntoResponse {
    log.lock()
        .expect("log")
        .push(("create".into(), body.clone()));
    let mut r = record(900);
    r["properties"] = body["properties"].clone();
    (StatusCode::CREATED, axum::Json(r))
}

async fn item(Path(id): Path<String>) -> impl IntoResponse {
    if id == "404" {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"status":"error","message":"resource not found","correlationId":"c-404","category":"OBJECT_NOT_FOUND"})),
        )
            .into_response();
    }
    axum::Json(record(id.parse().unwrap_or(1))).into_response()
}

async fn patch(
    State(log): State<Log>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    axum::Json(body): axum::Json<Value>,
) -> impl IntoResponse {
    log.lock()
        .expect("log")
        .push((format!("patch {id} {q:?}"), body.clone()));
    if body["properties"].get("bogus").is_some() {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"status":"error","message":"Property values were not valid","correlationId":"c-1","category":"VALIDATION_ERROR",
                "errors":[{"message":"Property \"bogus\" does not exist","code":"PROPERTY_DOESNT_EXIST","context":{"propertyName":["bogus"]}}]})),
        )
            .into_response();
    }
    axum::Json(record(7)).into_response()
}

async fn archive() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn fake() -> (String, Log) {
    let l = log();
    let app = Router::new()
        .route("/crm/v3/objects/contacts", get(list).post(create))
        .route(
            "/crm/v3/objects/contacts/{id}",
            get(item).patch(patch).delete(archive),
        )
        .route("/crm/v3/objects/deals", post(create))
        .with_state(l.clone());
    (serve(app).await, l)
}

#[tokio::test]
async fn lists_every_page_over_after() {
    let (base, seen) = fake().await;
    let c = client(&base, "objects-list");
    let all: Vec<_> = c
        .contacts()
        .list(ReadOptions::default().properties(["email"]), 10)
        .try_collect()
        .await
        .expect("lists");
    let ids: Vec<u32> = all.iter().map(|o| o.id.parse().expect("numeric")).collect();
    assert_eq!(ids, (0..25).collect::<Vec<_>>());
    assert_eq!(seen.lock().expect("log").len(), 3);
}

#[tokio::test]
async fn create_patch_archive_and_errors() {
    let (base, seen) = fake().await;
    let c = client(&base, "objects-write");
    let mut p = Properties::new();
    p.insert("email".into(), "a@b.com".into());
    let made = c.contacts().create(&p, &[]).await.expect("201 is success");
    assert_eq!(made.property("email"), Some("a@b.com"));
    let deal = c
        .objects("0-3")
        .create(&p, &[])
        .await
        .expect("0-3 is deals");
    assert_eq!(deal.id, "900");

    c.contacts().update("7", &p).await.expect("patched");
    c.contacts()
        .update_by("email", "a@b.com", &p)
        .await
        .expect("patched by email");
    let log = seen.lock().expect("log").clone();
    assert_eq!(
        log[2].1,
        json!({"properties": {"email": "a@b.com"}}),
        "only what was set"
    );
    assert!(log[3].0.contains("idProperty"), "{}", log[3].0);

    let mut bad = Properties::new();
    bad.insert("bogus".into(), "x".into());
    let e = c.contacts().update("7", &bad).await.expect_err("400");
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert_eq!(e.field_errors()[0].field, "bogus");
    assert!(e.message().contains("c-1"), "{e}");

    c.contacts().archive("7").await.expect("204 is success");
    let e = c
        .contacts()
        .get("404", &ReadOptions::default())
        .await
        .expect_err("missing");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let got = c
        .contacts()
        .get("12", &ReadOptions::default())
        .await
        .expect("found");
    assert_eq!(got.id, "12");
}
