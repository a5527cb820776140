//! The client against recorded real Close exchanges: it must send the recorded method, path
//! and body shape, and parse the real answers, errors included.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use crmkit_close::Client;
use crmkit_core::{ErrorKind, SecretString};
use serde_json::Value;

/// One recorded exchange.
#[derive(Clone)]
struct Exchange {
    method: String,
    path: String,
    body: Option<Value>,
    status: u16,
    headers: Vec<(String, String)>,
    response: String,
}

fn load(name: &str) -> Vec<Exchange> {
    let path = format!(
        "{}/tests/fixtures/close/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let url = x["request"]["url"].as_str().unwrap();
            let path = url
                .split("/api/v1")
                .nth(1)
                .unwrap()
                .split('?')
                .next()
                .unwrap()
                .to_string();
            let body = x["request"]["body"]
                .as_str()
                .filter(|b| !b.is_empty())
                .and_then(|b| serde_json::from_str(b).ok());
            Exchange {
                method: x["request"]["method"].as_str().unwrap().to_uppercase(),
                path,
                body,
                status: x["response"]["status_code"].as_u64().unwrap() as u16,
                headers: x["response"]["headers"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter(|(k, _)| {
                        !["content-length", "connection", "set-cookie"]
                            .contains(&k.to_lowercase().as_str())
                    })
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
                response: x["response"]["body"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            }
        })
        .collect()
}

#[derive(Clone, Default)]
struct Replay {
    queue: Arc<Mutex<Vec<Exchange>>>,
    problems: Arc<Mutex<Vec<String>>>,
    seen: Arc<Mutex<Vec<(Instant, String)>>>,
}

async fn answer(
    State(r): State<Replay>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_start_matches("/api/v1").to_string();
    r.seen
        .lock()
        .unwrap()
        .push((Instant::now(), format!("{method} {path}")));
    let mut queue = r.queue.lock().unwrap();
    if queue.is_empty() {
        let msg = format!("unexpected request {method} {path}: no recorded exchange left");
        r.problems.lock().unwrap().push(msg.clone());
        return (StatusCode::IM_A_TEAPOT, msg).into_response();
    }
    let ex = queue.remove(0);
    let mut problems = Vec::new();
    if ex.method != method.as_str() || ex.path != path {
        problems.push(format!(
            "expected {} {}, got {method} {path}",
            ex.method, ex.path
        ));
    }
    if headers.get("authorization").is_none() {
        problems.push("no Authorization header".into());
    }
    if let Some(want) = &ex.body {
        let got: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if &got != want {
            problems.push(format!("body differs: expected {want}, got {got}"));
        }
    }
    if !problems.is_empty() {
        r.problems.lock().unwrap().extend(problems.clone());
        return (StatusCode::IM_A_TEAPOT, problems.join("; ")).into_response();
    }
    let mut resp = (StatusCode::from_u16(ex.status).unwrap(), ex.response).into_response();
    for (k, v) in ex.headers {
        resp.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    resp
}

async fn replay(exchanges: Vec<Exchange>) -> (Client, Replay) {
    let r = Replay {
        queue: Arc::new(Mutex::new(exchanges)),
        ..Replay::default()
    };
    let app = axum::Router::new().fallback(answer).with_state(r.clone());
    let addr = super::serve(app).await;
    let client = Client::builder()
        .api_key(SecretString::from("FAKE_CLOSEIO_TOKEN"))
        .base_url(format!("http://{addr}/api/v1/"))
        .retry(super::fast_retry())
        .build()
        .unwrap();
    (client, r)
}

fn assert_clean(r: &Replay) {
    let problems = r.problems.lock().unwrap();
    assert!(problems.is_empty(), "replay server saw: {problems:?}");
    assert!(
        r.queue.lock().unwrap().is_empty(),
        "not every recorded exchange was requested"
    );
}

#[tokio::test]
async fn get_lead_parses_the_real_answer() {
    let (client, r) = replay(load("get_lead")).await;
    let lead = client
        .leads()
        .get("lead_ibiNeZe7yE0ZoJZQUKm0Eymg0nxDH2xb5fHg8IzBsAm")
        .await
        .unwrap();
    assert_clean(&r);
    assert_eq!(lead.id, "lead_ibiNeZe7yE0ZoJZQUKm0Eymg0nxDH2xb5fHg8IzBsAm");
    assert_eq!(lead.addresses[0]["city"], "San Francisco");
    assert!(lead.updated_at().is_some());
    assert!(!lead.custom().is_empty(), "custom.* fields are kept");
}

#[tokio::test]
async fn create_lead_sends_the_recorded_body() {
    let recorded = load("create_lead");
    let body = recorded[0].body.clone().unwrap();
    let (client, r) = replay(recorded).await;
    let lead = client.leads().create(&body).await.unwrap();
    assert_clean(&r);
    assert_eq!(lead.name.as_deref(), Some("Bluth Company"));
}

#[tokio::test]
async fn create_note_posts_to_the_note_endpoint() {
    let recorded = load("create_note");
    let body = recorded[0].body.clone().unwrap();
    let (client, r) = replay(recorded).await;
    let note = client.activities_of("note").create(&body).await.unwrap();
    assert_clean(&r);
    assert_eq!(note.kind, "Note");
    assert_eq!(note.note.as_deref(), Some("this is a test note."));
}

#[tokio::test]
async fn validation_error_keeps_field_messages() {
    let (client, r) = replay(load("create_lead_error")).await;
    let e = client
        .leads()
        .create(&serde_json::json!({"status_id": "foo"}))
        .await
        .unwrap_err();
    assert_clean(&r);
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert_eq!(e.status(), Some(400));
    assert_eq!(e.field_errors()[0].field, "status");
    assert!(e.to_string().contains("Not a valid choice"), "{e}");
}

#[tokio::test]
async fn bad_key_is_an_auth_error_and_not_retried() {
    let (client, r) = replay(load("get_lead_invalid_key")).await;
    let e = client
        .leads()
        .get("lead_ibiNeZe7yE0ZoJZQUKm0Eymg0nxDH2xb5fHg8IzBsAm")
        .await
        .unwrap_err();
    assert_clean(&r);
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert!(e.message().contains("could not verify"), "{e}");
    assert_eq!(r.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn unknown_objects_are_not_found() {
    let (client, r) = replay(load("get_lead_unknown")).await;
    let e = client.leads().get("wibble").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.to_string().contains("Lead matching query does not exist"),
        "{e}"
    );
    assert_clean(&r);

    let (client, r) = replay(load("update_opportunity_unknown")).await;
    let e = client
        .opportunities()
        .update("wobble", &serde_json::json!({"value": 24}))
        .await
        .unwrap_err();
    assert_clean(&r);
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn lead_statuses_list_parses() {
    use futures::TryStreamExt;
    let (client, r) = replay(load("get_lead_statuses")).await;
    let statuses: Vec<crmkit_close::Status> = client
        .lead_statuses()
        .list()
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_clean(&r);
    assert!(!statuses.is_empty());
    assert!(statuses.iter().all(|s| s.id.starts_with("stat_")));
}

#[tokio::test]
async fn recorded_429_is_waited_out_then_retried() {
    let recorded = load("find_leads_rate_limit");
    // Replay the recorded 429 and then the recorded success for the same request.
    let mut ok = recorded[1].clone();
    ok.path = recorded[0].path.clone();
    let (client, r) = replay(vec![recorded[0].clone(), ok]).await;
    let start = Instant::now();
    let page = client
        .raw(&crmkit_core::http::ApiRequest::get("lead/").query("query", "Minogue OR Princess"))
        .await
        .unwrap();
    assert_clean(&r);
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    // X-Rate-Limit-Reset was 0.595956 s.
    assert!(
        start.elapsed() >= Duration::from_millis(590),
        "waited only {:?}",
        start.elapsed()
    );
}
