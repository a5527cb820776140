//! Associations v4 batch read against a fake that pages each record's associations, answers
//! 207s with per-record errors and refuses more than 1,000 inputs, as HubSpot does.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use crmkit_hubspot::ObjectType;
use serde_json::{Value, json};

use crate::{client, serve};

/// Associations per page of one record.
const PAGE: usize = 2;

/// How many companies contact `id` has: contact 7 has five (three pages), the others one.
fn companies_of(id: u64) -> usize {
    if id == 7 { 5 } else { 1 }
}

async fn read(
    State(sizes): State<Arc<Mutex<Vec<usize>>>>,
    axum::Json(body): axum::Json<Value>,
) -> axum::response::Response {
    let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
    sizes.lock().expect("sizes").push(inputs.len());
    if inputs.len() > 1_000 {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"status":"error","message":"Batch read limited to 1000 inputs","category":"VALIDATION_ERROR"})),
        )
            .into_response();
    }
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for i in inputs {
        let id = i["id"].as_str().unwrap_or_default().to_string();
        let n: u64 = id.parse().unwrap_or(0);
        match n {
            // A failure of this one record, in a 207.
            8 => errors.push(json!({"status":"error","category":"INTERNAL_ERROR","message":"Something went wrong","context":{"ids":[id]}})),
            // HubSpot's answer for a record with none of the type asked for.
            9 => errors.push(json!({"status":"error","category":"OBJECT_NOT_FOUND","subCategory":"crm.associations.NO_ASSOCIATIONS_FOUND","message":format!("No company is associated with contact {id}."),"context":{"fromObjectId":[id]}})),
            // Not mentioned at all.
            10 => {}
            _ => {
                let start: usize = i["after"]
                    .as_str()
                    .and_then(|a| a.strip_prefix("p"))
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(0);
                let total = companies_of(n);
                let to: Vec<Value> = (start..total.min(start + PAGE))
                    .map(|k| json!({"toObjectId": n * 100 + k as u64, "associationTypes": [{"category":"HUBSPOT_DEFINED","typeId":279,"label":null}]}))
                    .collect();
                let mut r = json!({"from": {"id": id}, "to": to});
                if start + PAGE < total {
                    r["paging"] = json!({"next": {"after": format!("p{}", start + PAGE)}});
                }
                results.push(r);
            }
        }
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    (
        status,
        axum::Json(
            json!({"status":"COMPLETE","results":results,"errors":errors,"numErrors":errors.len(),
                          "startedAt":"2025-01-01T00:00:00Z","completedAt":"2025-01-01T00:00:00Z"}),
        ),
    )
        .into_response()
}

#[tokio::test]
async fn batch_read_pages_chunks_and_reports_each_record() {
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route(
            "/crm/v4/associations/contacts/companies/batch/read",
            post(read),
        )
        .with_state(sizes.clone());
    let c = client(&serve(app).await, "assoc-batch-read");
    let ids: Vec<String> = (1..=1_500).map(|i| i.to_string()).collect();
    let (found, errors) = c
        .associations()
        .batch_read(&ObjectType::Contacts, &ObjectType::Companies, &ids)
        .await
        .expect("read");
    let sizes = sizes.lock().expect("sizes").clone();
    assert_eq!(sizes[..2], [1_000, 500], "chunks of at most 1,000");
    assert!(
        sizes[2..].iter().all(|n| *n == 1),
        "then only contact 7: {sizes:?}"
    );
    assert_eq!(sizes.len(), 4, "contact 7's three pages: {sizes:?}");

    let seven = found.iter().find(|a| a.from_id == "7").expect("7 read");
    let companies: Vec<&str> = seven.to.iter().map(|a| a.to_object_id.as_str()).collect();
    assert_eq!(companies, ["700", "701", "702", "703", "704"], "every page");
    let nine = found.iter().find(|a| a.from_id == "9").expect("9 read");
    assert!(nine.to.is_empty(), "HubSpot said none is associated");
    assert_eq!(found.len(), 1_498, "all but 8 and 10");
    assert_eq!(found[0].from_id, "1", "in the order asked");

    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].record(), Some("contacts 8"));
    assert!(
        errors[0].message().contains("Something went wrong"),
        "{}",
        errors[0]
    );
    assert!(
        found.iter().all(|a| a.from_id != "8"),
        "a failure is not 'no company'"
    );
    assert_eq!(errors[1].record(), Some("contacts 10"));
    assert!(
        errors[1].message().contains("did not report"),
        "{}",
        errors[1]
    );
}
