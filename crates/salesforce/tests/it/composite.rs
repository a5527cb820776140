//! sObject collections against a fake that checks the documented request shape.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use crmkit_core::ErrorKind;
use crmkit_salesforce::sobjects::Fields;
use serde_json::{Value, json};

use crate::{client, serve};

fn account(name: &str) -> Fields {
    let mut f = Fields::new();
    f.insert("Name".into(), json!(name));
    f
}

#[tokio::test]
async fn collections_cut_200_per_call_and_report_each_record() {
    let calls = Arc::new(AtomicU32::new(0));
    let n = calls.clone();
    let app = Router::new().route(
        "/services/data/v59.0/composite/sobjects",
        post(move |axum::Json(body): axum::Json<Value>| {
            let n = n.clone();
            async move {
                n.fetch_add(1, Ordering::SeqCst);
                assert_eq!(body["allOrNone"], false);
                let records = body["records"].as_array().expect("records").clone();
                assert!(records.len() <= 200);
                let out: Vec<Value> = records
                    .iter()
                    .map(|r| {
                        assert_eq!(r["attributes"]["type"], "Account");
                        let name = r["Name"].as_str().unwrap_or_default();
                        if name.is_empty() {
                            json!({"success":false,"errors":[{"statusCode":"REQUIRED_FIELD_MISSING","message":"Required fields are missing: [Name]","fields":["Name"]}]})
                        } else {
                            json!({"id": format!("001{name:0>15}"),"success":true,"errors":[]})
                        }
                    })
                    .collect();
                axum::Json(Value::Array(out)).into_response()
            }
        })
        .patch(|axum::Json(body): axum::Json<Value>| async move {
            let out: Vec<Value> = body["records"]
                .as_array()
                .expect("records")
                .iter()
                .map(|r| json!({"id": r["Id"], "success": true, "errors": []}))
                .collect();
            axum::Json(Value::Array(out))
        })
        .delete(|Query(q): Query<Vec<(String, String)>>| async move {
            let ids = q.iter().find(|(k, _)| k == "ids").map(|(_, v)| v.clone()).unwrap_or_default();
            assert!(q.contains(&("allOrNone".into(), "false".into())));
            let out: Vec<Value> = ids
                .split(',')
                .map(|id| {
                    if id.ends_with("GONE") {
                        json!({"id": id, "success": false, "errors": [{"statusCode":"ENTITY_IS_DELETED","message":"entity is deleted","fields":[]}]})
                    } else {
                        json!({"id": id, "success": true, "errors": []})
                    }
                })
                .collect();
            (StatusCode::OK, axum::Json(Value::Array(out)))
        }),
    );
    let c = client(&serve(app).await, "collections");
    let mut records: Vec<Fields> = (0..250).map(|i| account(&format!("n{i}"))).collect();
    records[7] = account("");
    let results = c.collections("Account").create(records).await;
    assert_eq!(results.len(), 250);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "200 + 50");
    assert_eq!(
        results[0].as_ref().expect("ok").as_str(),
        format!("001{:0>15}", "n0")
    );
    assert_eq!(
        results[249].as_ref().expect("ok").as_str(),
        format!("001{:0>15}", "n249")
    );
    let e = results[7].as_ref().expect_err("no name");
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert_eq!(e.record(), Some("Account #7"));
    assert_eq!(e.field_errors()[0].field, "Name");
    assert!(e.to_string().contains("REQUIRED_FIELD_MISSING"), "{e}");

    let mut patch = account("Renamed");
    patch.insert("Id".into(), json!("001000000000000n0"));
    let updated = c
        .collections("Account")
        .update(vec![patch, account("no id")])
        .await;
    assert!(updated[0].is_ok());
    assert_eq!(
        updated[1].as_ref().expect_err("no id").kind(),
        ErrorKind::Validation
    );

    let deleted = c
        .collections("Account")
        .delete(vec!["001A".into(), "001GONE".into(), "bad/id".into()])
        .await;
    assert_eq!(deleted.len(), 3);
    assert!(deleted[0].is_ok());
    assert_eq!(
        deleted[1].as_ref().expect_err("gone").kind(),
        ErrorKind::NotFound
    );
    // A bad id fails alone and never leaves.
    assert_eq!(
        deleted[2].as_ref().expect_err("bad").kind(),
        ErrorKind::Validation
    );
}
