//! Webhook delivery through the shared layer: signed, and retried after a failure.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use crmkit_sandbox::close::{CloseSandbox, sign};
use serde_json::json;

use crate::Api;

type Seen = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

#[tokio::test]
async fn deliveries_are_signed_and_retried_after_a_failure() {
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
                let h = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                seen.lock().unwrap_or_else(|p| p.into_inner()).push((
                    h("close-sig-hash"),
                    h("close-sig-timestamp"),
                    body.to_vec(),
                ));
                StatusCode::OK
            }
        }),
    );
    let served = crmkit_sandbox::server::serve(receiver, ([127, 0, 0, 1], 0).into())
        .await
        .expect("receiver starts");
    let sb = CloseSandbox::builder()
        .webhook_retry(Duration::from_millis(20), 4)
        .start()
        .await
        .expect("starts");
    let api = Api::new(&sb);
    let sub = api
        .post(
            "webhook/",
            &json!({"url": format!("http://{}/hook", served.addr()),
                    "events": [{"object_type": "lead", "action": "created"}]}),
        )
        .await;
    assert_eq!(sub.status, 201);
    let key = sub.body["signature_key"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    api.post("lead/", &json!({"name": "Hooked"})).await;
    for _ in 0..200 {
        if sb.stats().webhook_delivered > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let stats = sb.stats();
    assert_eq!((stats.webhook_delivered, stats.webhook_attempts), (1, 2));
    let got = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (hash, ts, body) = &got[0];
    assert_eq!(sign(&key, ts, body).as_deref(), Some(hash.as_str()));
    let event: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    assert_eq!(event["event"]["data"]["name"], "Hooked");
}
