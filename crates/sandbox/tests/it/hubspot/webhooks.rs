//! Webhooks: settings and subscriptions, batched deliveries signed with v3 and v1, retries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use crmkit_sandbox::hubspot::{HubSpotSandbox, sign_v1, sign_v3};
use serde_json::{Value, json};

use super::Hs;

type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

#[tokio::test]
async fn events_arrive_in_signed_batches_and_failures_are_retried() {
    let seen: Seen = Arc::default();
    let calls = Arc::new(Mutex::new(0u32));
    let (seen2, calls2) = (seen.clone(), calls.clone());
    let receiver = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let (seen, calls) = (seen2.clone(), calls2.clone());
            async move {
                let mut n = calls.lock().unwrap_or_else(|p| p.into_inner());
                *n += 1;
                if *n == 1 {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((headers, body.to_vec()));
                StatusCode::OK
            }
        }),
    );
    let served = crmkit_sandbox::server::serve(receiver, ([127, 0, 0, 1], 0).into())
        .await
        .expect("receiver starts");
    let sb = HubSpotSandbox::builder()
        .webhook_retry(Duration::from_millis(20), 4)
        .start()
        .await
        .expect("starts");
    let hs = Hs::new(&sb);
    let url = format!("http://{}/hook", served.addr());
    let put = hs
        .http
        .put(format!(
            "{}/webhooks/v3/1/settings?hapikey=dev-key",
            hs.root
        ))
        .json(&json!({"targetUrl": url}))
        .send()
        .await
        .expect("answers");
    assert_eq!(put.status().as_u16(), 200);
    for sub in [
        json!({"eventType": "contact.creation"}),
        json!({"eventType": "contact.propertyChange", "propertyName": "firstname"}),
    ] {
        let a = hs
            .http
            .post(format!(
                "{}/webhooks/v3/1/subscriptions?hapikey=dev-key",
                hs.root
            ))
            .json(&sub)
            .send()
            .await
            .expect("answers");
        assert_eq!(a.status().as_u16(), 201);
    }
    let made = hs
        .post("/crm/v3/objects/contacts/batch/create", &json!({"inputs": [
            {"properties": {"email": "a@x.io"}}, {"properties": {"email": "b@x.io"}}, {"properties": {"email": "c@x.io"}}]}))
        .await;
    assert_eq!(made.status, 201);
    let id = made.body["results"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    hs.patch(
        &format!("/crm/v3/objects/contacts/{id}"),
        &json!({"properties": {"firstname": "A", "lastname": "B"}}),
    )
    .await;
    let mut events: Vec<Value> = vec![];
    for _ in 0..100 {
        events = seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .flat_map(|(_, b)| serde_json::from_slice::<Vec<Value>>(b).unwrap_or_default())
            .collect();
        if events.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["subscriptionType"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "contact.creation",
            "contact.creation",
            "contact.creation",
            "contact.propertyChange"
        ]
    );
    assert_eq!(events[3]["propertyName"], json!("firstname"));
    assert_eq!(events[3]["objectId"].to_string(), id);
    let deliveries = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let creations_per_delivery: Vec<usize> = deliveries
        .iter()
        .map(|(_, b)| {
            serde_json::from_slice::<Vec<Value>>(b)
                .unwrap_or_default()
                .iter()
                .filter(|e| e["subscriptionType"] == "contact.creation")
                .count()
        })
        .collect();
    assert!(
        creations_per_delivery.contains(&3),
        "one request's events go out in one batch: {creations_per_delivery:?}"
    );
    // The retried delivery numbers its events' attempt 1, the others 0.
    let mut attempts: Vec<Vec<u64>> = deliveries
        .iter()
        .map(|(_, b)| {
            serde_json::from_slice::<Vec<Value>>(b)
                .unwrap_or_default()
                .iter()
                .map(|e| e["attemptNumber"].as_u64().unwrap_or(99))
                .collect()
        })
        .collect();
    attempts.sort();
    let retried: Vec<&Vec<u64>> = attempts.iter().filter(|a| a.contains(&1)).collect();
    assert_eq!(retried.len(), 1, "{attempts:?}");
    assert!(retried[0].iter().all(|n| *n == 1), "{attempts:?}");
    assert!(attempts.iter().flatten().all(|n| *n <= 1), "{attempts:?}");
    for (headers, body) in &deliveries {
        let h = |k: &str| {
            headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let ts = h("x-hubspot-request-timestamp");
        assert_eq!(
            h("x-hubspot-signature-v3"),
            sign_v3("sandbox-secret", "POST", &url, body, &ts)
        );
        assert_eq!(h("x-hubspot-signature"), sign_v1("sandbox-secret", body));
        let age = chrono::Utc::now().timestamp_millis() - ts.parse::<i64>().unwrap_or_default();
        assert!((0..300_000).contains(&age), "fresh timestamp: {age}");
    }
    // The sandbox counts an attempt once the answer is back, just after the receiver saw it.
    for _ in 0..50 {
        if sb.stats().webhook_delivered == deliveries.len() as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        sb.stats().webhook_attempts,
        deliveries.len() as u64 + 1,
        "the first attempt failed and was retried"
    );
}

#[tokio::test]
async fn a_developer_key_opens_only_the_developer_apis() {
    let sb = HubSpotSandbox::builder()
        .tokens(["pat-good"])
        .start()
        .await
        .expect("starts");
    let http = reqwest::Client::new();
    let crm = http
        .get(format!(
            "{}/crm/v3/objects/contacts?hapikey=anything",
            sb.base_url()
        ))
        .send()
        .await
        .expect("answers");
    assert_eq!(crm.status(), 401, "CRM APIs take no developer key");
    let dev = http
        .get(format!(
            "{}/webhooks/v3/1/settings?hapikey=anything",
            sb.base_url()
        ))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        dev.status(),
        401,
        "with tokens configured and no developer key, no key is accepted"
    );
}

#[tokio::test]
async fn a_restore_brings_a_record_back_and_sends_a_restore_event() {
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    let receiver = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let seen = seen2.clone();
            async move {
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((headers, body.to_vec()));
                StatusCode::OK
            }
        }),
    );
    let served = crmkit_sandbox::server::serve(receiver, ([127, 0, 0, 1], 0).into())
        .await
        .expect("receiver starts");
    let sb = HubSpotSandbox::builder().start().await.expect("starts");
    let hs = Hs::new(&sb);
    let url = format!("http://{}/hook", served.addr());
    hs.http
        .put(format!(
            "{}/webhooks/v3/1/settings?hapikey=dev-key",
            hs.root
        ))
        .json(&json!({"targetUrl": url}))
        .send()
        .await
        .expect("answers");
    hs.http
        .post(format!(
            "{}/webhooks/v3/1/subscriptions?hapikey=dev-key",
            hs.root
        ))
        .json(&json!({"eventType": "contact.restore"}))
        .send()
        .await
        .expect("answers");
    let made = hs
        .post(
            "/crm/v3/objects/contacts",
            &json!({"properties": {"email": "r@x.io"}}),
        )
        .await;
    let id = made.body["id"].as_str().unwrap_or_default().to_string();
    let before = made.body["updatedAt"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let gone = hs.delete(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_eq!(gone.status, 204);
    // Not archived: nothing to restore.
    let wrong = hs
        .http
        .post(format!("{}/_sandbox/hubspot/restore", hs.root))
        .json(&json!({"objectType": "contacts", "id": "1"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(wrong.status().as_u16(), 404);
    let restored = hs
        .http
        .post(format!("{}/_sandbox/hubspot/restore", hs.root))
        .json(&json!({"objectType": "contacts", "id": id}))
        .send()
        .await
        .expect("answers");
    assert_eq!(restored.status().as_u16(), 200);
    let back = hs.get(&format!("/crm/v3/objects/contacts/{id}"), &[]).await;
    assert_eq!(back.status, 200);
    assert_eq!(back.body["archived"], json!(false));
    assert!(back.body["updatedAt"].as_str().unwrap_or_default() > before.as_str());
    // Its email is taken again.
    let twin = hs
        .post(
            "/crm/v3/objects/contacts",
            &json!({"properties": {"email": "r@x.io"}}),
        )
        .await;
    assert_eq!(twin.status, 409);
    let mut events: Vec<Value> = vec![];
    for _ in 0..100 {
        events = seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .flat_map(|(_, b)| serde_json::from_slice::<Vec<Value>>(b).unwrap_or_default())
            .collect();
        if !events.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["subscriptionType"], json!("contact.restore"));
    assert_eq!(events[0]["objectId"].to_string(), id);
}
