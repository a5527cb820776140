//! Delivers events to webhook subscriptions: signed POSTs with retries, as Close does.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::State;
use crate::shared::webhook::{self, RetrySchedule};

/// `close-sig-hash` for `timestamp` and `body` with the hex `signature_key`.
pub fn sign(signature_key_hex: &str, timestamp: &str, body: &[u8]) -> Option<String> {
    let key = hex::decode(signature_key_hex).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(timestamp.as_bytes());
    mac.update(body);
    Some(hex::encode(mac.finalize().into_bytes()))
}

/// Takes events off the queue and hands each matching subscription its own delivery task.
pub(crate) async fn run(state: Arc<State>, mut events: mpsc::UnboundedReceiver<Value>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a plain HTTP client builds");
    while let Some(event) = events.recv().await {
        let targets: Vec<(String, String, String)> = {
            let data = state.read();
            data.rows("webhook")
                .filter(|s| s["status"] == "active")
                .filter(|s| {
                    s["events"].as_array().is_some_and(|evs| {
                        evs.iter().any(|e| {
                            e["object_type"] == event["object_type"]
                                && e["action"] == event["action"]
                        })
                    })
                })
                .map(|s| {
                    (
                        s["id"].as_str().unwrap_or_default().to_string(),
                        s["url"].as_str().unwrap_or_default().to_string(),
                        s["signature_key"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        };
        for (sub_id, url, key) in targets {
            let body = json!({"subscription_id": sub_id, "event": event}).to_string();
            tokio::spawn(deliver(state.clone(), http.clone(), url, key, body));
        }
    }
}

async fn deliver(state: Arc<State>, http: reqwest::Client, url: String, key: String, body: String) {
    // Close retries with exponential back-off up to every 20 minutes (developer.close.com/topics/webhooks).
    let schedule = RetrySchedule {
        base: state.config.webhook_retry_base,
        max_delay: Duration::from_secs(1200),
        attempts: state.config.webhook_attempts,
    };
    let headers = || {
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = sign(&key, &ts, body.as_bytes())?;
        Some(vec![("close-sig-hash", sig), ("close-sig-timestamp", ts)])
    };
    webhook::deliver(&http, &url, &body, schedule, &state.gate.stats, headers).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_documented_algorithm() {
        let key = "058bfb6a3d8cfdc4da7c3be5901b16ae11da982b46a25fb2cd7016e97a140a1c";
        let body = br#"{"event": {"object_type": "lead", "action": "created"}, "subscription_id": "whsub_test"}"#;
        assert_eq!(
            sign(key, "1544271440", body).unwrap(),
            "9c4096f9ba627e1c401d47a9e0016f58d44379927324f7fe7530c14397f14864"
        );
    }
}
