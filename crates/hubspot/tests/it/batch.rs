//! Batch writes against a fake that answers 207s, refuses whole batches with one invalid
//! input (as HubSpot does) and fails on demand.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use crmkit_core::ErrorKind;
use crmkit_hubspot::batch::{CreateInput, UpdateInput};
use crmkit_hubspot::{Properties, ReadOptions};
use serde_json::{Value, json};

use crate::{client, serve};

#[derive(Default)]
struct Seen {
    /// (endpoint, number of inputs) per request.
    calls: Vec<(String, usize)>,
}

type S = State<Arc<Mutex<Seen>>>;

fn note(s: &S, what: &str, body: &Value) -> Vec<Value> {
    let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
    s.lock()
        .expect("seen")
        .calls
        .push((what.into(), inputs.len()));
    inputs
}

fn invalid() -> axum::response::Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"status":"error","message":"Property values were not valid: Property \"bogus\" does not exist","correlationId":"c","category":"VALIDATION_ERROR"})),
    )
        .into_response()
}

async fn upsert(s: S, axum::Json(body): axum::Json<Value>) -> axum::response::Response {
    let inputs = note(&s, "upsert", &body);
    assert!(inputs.len() <= 100, "chunks of at most 100");
    if inputs
        .iter()
        .any(|i| i["properties"].get("bogus").is_some())
    {
        return invalid();
    }
    // A bad value the answer does not tie to an input: only halving can find it.
    if inputs.iter().any(|i| i["properties"]["firstname"] == "BAD") {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"status":"error","message":"Property values were not valid: a value is not allowed","correlationId":"c","category":"VALIDATION_ERROR"})),
        )
            .into_response();
    }
    let mut results = Vec::new();
    let mut errors = Vec::new();
    // Answer in reverse order, as nothing promises input order.
    for i in inputs.iter().rev() {
        let email = i["id"].as_str().unwrap_or_default();
        if email.starts_with("taken") {
            errors.push(json!({"status":"error","category":"CONFLICT","message":format!("Contact already exists. Existing ID: 1"),"context":{"ids":[email]},"errors":[],"links":{}}));
        } else {
            results.push(json!({"id": format!("id-{email}"), "new": email.starts_with("new"), "properties": {"email": email},
                                "createdAt":"2024-01-01T00:00:00Z","updatedAt":"2024-01-01T00:00:00Z","archived":false}));
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
            json!({"status":"COMPLETE","results":results,"errors":errors,"numErrors":errors.len()}),
        ),
    )
        .into_response()
}

async fn create(s: S, axum::Json(body): axum::Json<Value>) -> axum::response::Response {
    let inputs = note(&s, "create", &body);
    if inputs
        .iter()
        .any(|i| i["properties"]["firstname"] == "boom")
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal").into_response();
    }
    // HubSpot refuses a whole batch create when one contact's email exists.
    if inputs.iter().any(|i| {
        i["properties"]["email"]
            .as_str()
            .is_some_and(|e| e.starts_with("dup"))
    }) {
        return (
            StatusCode::CONFLICT,
            axum::Json(json!({"status":"error","message":"Contact already exists. Existing ID: 4242","correlationId":"c","category":"CONFLICT"})),
        )
            .into_response();
    }
    // Results come in no promised order; `untraced` ones lack their trace id.
    let traced = !inputs
        .iter()
        .any(|i| i["properties"]["firstname"] == "untraced");
    let results: Vec<Value> = inputs
        .iter()
        .rev()
        .filter(|i| i["properties"]["firstname"] != "lost")
        .map(|i| {
            let trace = i["objectWriteTraceId"].as_str().unwrap_or_default();
            let email = i["properties"]["email"].as_str().unwrap_or_default();
            let mut r = json!({"id": format!("id-{email}"), "properties": i["properties"], "archived": false});
            if traced {
                r["objectWriteTraceId"] = json!(trace);
            }
            r
        })
        .collect();
    (
        StatusCode::CREATED,
        axum::Json(json!({"status":"COMPLETE","results":results})),
    )
        .into_response()
}

async fn archive(s: S, axum::Json(body): axum::Json<Value>) -> StatusCode {
    note(&s, "archive", &body);
    StatusCode::NO_CONTENT
}

async fn read(s: S, axum::Json(body): axum::Json<Value>) -> axum::response::Response {
    let inputs = note(&s, "read", &body);
    assert_eq!(body["properties"], json!(["email"]));
    let (found, missing): (Vec<Value>, Vec<Value>) = inputs
        .into_iter()
        .partition(|i| i["id"].as_str().is_some_and(|id| id != "404"));
    let results: Vec<Value> = found
        .iter()
        .map(|i| json!({"id": i["id"], "properties": {"email": "x"}}))
        .collect();
    let ids: Vec<Value> = missing.iter().map(|i| i["id"].clone()).collect();
    let errors = if ids.is_empty() {
        vec![]
    } else {
        vec![
            json!({"status":"error","category":"OBJECT_NOT_FOUND","message":"Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.","context":{"ids":ids}}),
        ]
    };
    (
        StatusCode::MULTI_STATUS,
        axum::Json(json!({"status":"COMPLETE","results":results,"errors":errors})),
    )
        .into_response()
}

async fn fake() -> (String, Arc<Mutex<Seen>>) {
    let s = Arc::new(Mutex::new(Seen::default()));
    let app = Router::new()
        .route("/crm/v3/objects/contacts/batch/upsert", post(upsert))
        .route("/crm/v3/objects/contacts/batch/create", post(create))
        .route("/crm/v3/objects/contacts/batch/archive", post(archive))
        .route("/crm/v3/objects/contacts/batch/read", post(read))
        .with_state(s.clone());
    (serve(app).await, s)
}

fn props(pairs: &[(&str, &str)]) -> Properties {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn upserts_in_chunks_of_100_with_per_record_outcomes() {
    let (base, seen) = fake().await;
    let c = client(&base, "batch-upsert");
    let mut inputs: Vec<UpdateInput> = (0..250)
        .map(|i| UpdateInput {
            id: format!("new{i}@x.com"),
            properties: props(&[("firstname", "A")]),
        })
        .collect();
    inputs[3].id = "taken@x.com".into();
    inputs[120].properties = props(&[("bogus", "1")]);
    let out = c.contacts().batch_upsert("email", inputs).await;
    assert_eq!(out.len(), 250);
    for (i, r) in out.iter().enumerate() {
        match i {
            3 => {
                let e = r.as_ref().expect_err("conflict");
                assert_eq!(e.kind(), ErrorKind::Conflict);
                assert!(e.message().contains("Existing ID"), "{e}");
            }
            120 => {
                let e = r.as_ref().expect_err("invalid");
                assert_eq!(e.kind(), ErrorKind::Validation);
                assert!(e.message().contains("bogus"), "{e}");
            }
            _ => {
                let u = r.as_ref().expect("written");
                assert_eq!(u.object.id, format!("id-new{i}@x.com"), "in input order");
                assert!(u.created);
            }
        }
    }
    let calls = seen.lock().expect("seen").calls.clone();
    let sizes: Vec<usize> = calls.iter().map(|c| c.1).collect();
    // Three chunks; the second is refused whole for a property only input 120 carries, so
    // it gets that error and the other 99 are sent again once: four requests in all.
    let mut sorted = sizes.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [50, 99, 100, 100], "{sizes:?}");
}

#[tokio::test]
async fn a_property_every_input_carries_fails_the_chunk_in_one_request() {
    let (base, seen) = fake().await;
    let c = client(&base, "batch-stale");
    let inputs: Vec<UpdateInput> = (0..250)
        .map(|i| UpdateInput {
            id: format!("new{i}@x.com"),
            properties: props(&[("firstname", "A"), ("bogus", "1")]),
        })
        .collect();
    let out = c.contacts().batch_upsert("email", inputs).await;
    assert_eq!(out.len(), 250);
    for r in &out {
        let e = r.as_ref().expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().contains("bogus"), "{e}");
    }
    // One request per chunk, not 2n − 1 = 199.
    assert_eq!(seen.lock().expect("seen").calls.len(), 3);
}

#[tokio::test]
async fn halving_a_chunk_the_answer_does_not_explain_is_bounded() {
    let (base, seen) = fake().await;
    let c = client(&base, "batch-bounded");
    // Every input has a bad value: unbounded halving would cost 199 requests.
    let inputs: Vec<UpdateInput> = (0..100)
        .map(|i| UpdateInput {
            id: format!("new{i}@x.com"),
            properties: props(&[("firstname", "BAD")]),
        })
        .collect();
    let out = c.contacts().batch_upsert("email", inputs).await;
    assert!(out.iter().all(|r| {
        r.as_ref()
            .is_err_and(|e| e.message().contains("not allowed"))
    }));
    let calls = seen.lock().expect("seen").calls.len();
    assert!(
        calls <= 1 + 28,
        "at most 1 + 4·⌈log2 100⌉ requests, got {calls}"
    );

    // One bad record among 100 is still isolated within that budget.
    seen.lock().expect("seen").calls.clear();
    let mut inputs: Vec<UpdateInput> = (0..100)
        .map(|i| UpdateInput {
            id: format!("new{i}@x.com"),
            properties: props(&[("firstname", "A")]),
        })
        .collect();
    inputs[37].properties = props(&[("firstname", "BAD")]);
    let out = c.contacts().batch_upsert("email", inputs).await;
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r.is_err(), i == 37, "input {i}: {r:?}");
    }
    let calls = seen.lock().expect("seen").calls.len();
    assert!(calls <= 1 + 28, "{calls}");
}

#[tokio::test]
async fn a_failed_create_chunk_is_reported_per_record_not_resent() {
    let (base, seen) = fake().await;
    let c = client(&base, "batch-create");
    let mut inputs: Vec<CreateInput> = (0..150)
        .map(|i| CreateInput {
            properties: props(&[("email", &format!("c{i}@x.com"))]),
            associations: Vec::new(),
        })
        .collect();
    inputs[130].properties = props(&[("firstname", "boom")]);
    let out = c.contacts().batch_create(inputs).await;
    assert!(out[..100].iter().all(Result::is_ok));
    assert_eq!(out[7].as_ref().expect("created").id, "id-c7@x.com");
    for r in &out[100..] {
        let e = r.as_ref().expect_err("chunk failed");
        assert_eq!(e.kind(), ErrorKind::Transient);
        assert!(e.record().is_some());
    }
    let creates = seen.lock().expect("seen").calls.len();
    assert_eq!(
        creates, 2,
        "a create that may have happened is not sent again"
    );
}

#[tokio::test]
async fn reads_report_missing_ids_and_archives_succeed() {
    let (base, _) = fake().await;
    let c = client(&base, "batch-read");
    let out = c
        .contacts()
        .batch_read(
            vec!["1".into(), "404".into(), "3".into()],
            &ReadOptions::default().properties(["email"]),
            None,
        )
        .await;
    assert_eq!(out[0].as_ref().expect("1").id, "1");
    assert_eq!(
        out[1].as_ref().expect_err("404").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(out[2].as_ref().expect("3").id, "3");
    let archived = c
        .contacts()
        .batch_archive(vec!["1".into(), "2".into()])
        .await;
    assert!(archived.iter().all(Result::is_ok));
}

#[tokio::test]
async fn a_whole_batch_conflict_is_split_and_names_the_existing_record() {
    let (base, seen) = fake().await;
    let c = client(&base, "batch-conflict");
    let mut inputs: Vec<CreateInput> = (0..150)
        .map(|i| CreateInput {
            properties: props(&[("email", &format!("c{i}@x.com"))]),
            associations: Vec::new(),
        })
        .collect();
    inputs[42].properties = props(&[("email", "dup@x.com")]);
    let out = c.contacts().batch_create(inputs).await;
    for (i, r) in out.iter().enumerate() {
        if i == 42 {
            let e = r.as_ref().expect_err("conflict");
            assert_eq!(e.kind(), ErrorKind::Conflict);
            assert!(e.message().contains("Existing ID: 4242"), "{e}");
            assert_eq!(e.record(), Some("new contacts #42"));
        } else {
            let o = r.as_ref().expect("written despite the conflict");
            // The fake names each record after its email.
            assert_eq!(
                o.id,
                format!("id-c{i}@x.com"),
                "input {i} got its own result"
            );
        }
    }
    let sizes: Vec<usize> = seen
        .lock()
        .expect("seen")
        .calls
        .iter()
        .map(|c| c.1)
        .collect();
    assert!(sizes.contains(&1), "the conflict ended alone: {sizes:?}");
    assert!(sizes.len() <= 2 + 2 * 7, "{sizes:?}");
}

#[tokio::test]
async fn batch_results_are_matched_by_trace_id_never_by_position() {
    let (base, _) = fake().await;
    let c = client(&base, "batch-trace");
    let inputs = |marked: &str| -> Vec<CreateInput> {
        (0..3)
            .map(|i| CreateInput {
                properties: props(&[
                    ("email", &format!("t{i}@x.com")),
                    ("firstname", if i == 1 { marked } else { "A" }),
                ]),
                associations: Vec::new(),
            })
            .collect()
    };
    // Answered in reverse order, one record left out: the others still get their own.
    let out = c.contacts().batch_create(inputs("lost")).await;
    assert_eq!(out[0].as_ref().expect("0").id, "id-t0@x.com");
    assert_eq!(out[2].as_ref().expect("2").id, "id-t2@x.com");
    let e = out[1].as_ref().expect_err("not reported");
    assert!(e.message().contains("did not report"), "{e}");
    // Results that cannot be told apart are given to no input.
    let out = c.contacts().batch_create(inputs("untraced")).await;
    for r in out {
        let e = r.expect_err("not guessed");
        assert!(e.message().contains("did not report"), "{e}");
    }
}
