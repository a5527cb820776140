//! Webhooks: the app's settings and subscriptions (`/webhooks/v3/{appId}/…`,
//! webhooks-v3.json) and delivery of CRM events in batches (up to 100 per POST; HubSpot
//! webhooks guide) signed with v3 (`X-HubSpot-Signature-v3`: base64 HMAC-SHA256 of method,
//! URI, body and timestamp with the app's client secret) and v1 (`X-HubSpot-Signature`).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::State;
use super::api_error::ApiError;
use super::data::iso;
use crate::shared::webhook::{self, RetrySchedule};

/// Events per delivery (HubSpot webhooks guide: "up to 100 events" per request).
const BATCH: usize = 100;

/// `X-HubSpot-Signature-v3` for one request: base64(HMAC-SHA256(secret, method + uri + body
/// + timestamp)) (HubSpot "Validating requests" guide, v3).
pub fn sign_v3(
    client_secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp_ms: &str,
) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()) else {
        return String::new();
    };
    mac.update(method.as_bytes());
    mac.update(uri.as_bytes());
    mac.update(body);
    mac.update(timestamp_ms.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `X-HubSpot-Signature` v1: hex(SHA-256(secret + body)) (HubSpot v1 request validation).
pub fn sign_v1(client_secret: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(client_secret.as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

/// The app's webhook settings and subscriptions.
#[derive(Debug, Default)]
pub(crate) struct Hooks {
    target: Option<Value>,
    subscriptions: Vec<Value>,
    next_id: u64,
}

/// `/webhooks/v3/{appId}/settings` and `/subscriptions[/{id}]`.
pub(crate) fn manage(
    state: &State,
    method: &axum::http::Method,
    app_id: &str,
    rest: &[&str],
    body: &Value,
) -> Result<(u16, Value), ApiError> {
    if app_id != state.config.app_id.to_string() {
        return Err(ApiError::not_found(format!("No app with id {app_id}")));
    }
    let mut hooks = state.hooks.lock().unwrap_or_else(|p| p.into_inner());
    let now = iso(chrono::Utc::now());
    use axum::http::Method as M;
    match (method, rest) {
        (&M::GET, ["settings"]) => hooks
            .target
            .clone()
            .map(|t| (200, t))
            .ok_or_else(|| ApiError::not_found("No webhook settings")),
        (&M::PUT, ["settings"]) => {
            let url = body["targetUrl"]
                .as_str()
                .filter(|u| u.starts_with("http"))
                .ok_or_else(|| ApiError::invalid("targetUrl must be an http(s) URL"))?;
            let settings = json!({"targetUrl": url,
                                  "throttling": body.get("throttling").cloned().unwrap_or_else(|| json!({"maxConcurrentRequests": 10})),
                                  "createdAt": now, "updatedAt": now});
            hooks.target = Some(settings.clone());
            Ok((200, settings))
        }
        (&M::DELETE, ["settings"]) => {
            hooks.target = None;
            Ok((204, Value::Null))
        }
        (&M::GET, ["subscriptions"]) => Ok((200, json!({"results": hooks.subscriptions}))),
        (&M::POST, ["subscriptions"]) => {
            let event = body["eventType"]
                .as_str()
                .filter(|e| e.contains('.'))
                .ok_or_else(|| ApiError::invalid("eventType is required, e.g. contact.creation"))?;
            hooks.next_id += 1;
            let sub = json!({"id": hooks.next_id.to_string(), "eventType": event,
                             "propertyName": body.get("propertyName").cloned().unwrap_or(Value::Null),
                             "active": body["active"].as_bool().unwrap_or(true),
                             "createdAt": now, "updatedAt": now});
            hooks.subscriptions.push(sub.clone());
            Ok((201, sub))
        }
        (&M::DELETE, ["subscriptions", id]) => {
            hooks.subscriptions.retain(|s| s["id"] != *id);
            Ok((204, Value::Null))
        }
        _ => Err(ApiError::not_found("No such webhooks path")),
    }
}

/// The subscriptions an event matches, with the event addressed to each.
fn fan_out(hooks: &Hooks, event: &Value, portal: u64, app: u64) -> Vec<Value> {
    hooks
        .subscriptions
        .iter()
        .filter(|s| s["active"] == json!(true) && s["eventType"] == event["subscriptionType"])
        .filter(|s| s["propertyName"].is_null() || s["propertyName"] == event["propertyName"])
        .map(|s| {
            let mut e = event.clone();
            e["subscriptionId"] = json!(
                s["id"]
                    .as_str()
                    .and_then(|i| i.parse::<u64>().ok())
                    .unwrap_or(0)
            );
            e["portalId"] = json!(portal);
            e["appId"] = json!(app);
            e["attemptNumber"] = json!(0);
            e
        })
        .collect()
}

/// Takes events off the queue, batches what arrived together and delivers each batch.
pub(crate) async fn run(state: Arc<State>, mut events: mpsc::UnboundedReceiver<Value>) {
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    else {
        return;
    };
    let mut next_event = 0u64;
    while let Some(first) = events.recv().await {
        // Let a request's events gather so they go out together.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut raw = vec![first];
        while raw.len() < BATCH * 10 {
            match events.try_recv() {
                Ok(e) => raw.push(e),
                Err(_) => break,
            }
        }
        let (url, out) = {
            let hooks = state.hooks.lock().unwrap_or_else(|p| p.into_inner());
            let Some(url) = hooks
                .target
                .as_ref()
                .and_then(|t| t["targetUrl"].as_str())
                .map(str::to_string)
            else {
                continue;
            };
            let out: Vec<Value> = raw
                .iter()
                .flat_map(|e| fan_out(&hooks, e, state.config.portal_id, state.config.app_id))
                .collect();
            (url, out)
        };
        for chunk in out.chunks(BATCH) {
            let chunk: Vec<Value> = chunk
                .iter()
                .map(|e| {
                    next_event += 1;
                    let mut e = e.clone();
                    e["eventId"] = json!(next_event);
                    e
                })
                .collect();
            tokio::spawn(deliver(state.clone(), http.clone(), url.clone(), chunk));
        }
    }
}

async fn deliver(state: Arc<State>, http: reqwest::Client, url: String, events: Vec<Value>) {
    // HubSpot retries a failed delivery up to 10 times over 24 hours (webhooks guide).
    let schedule = RetrySchedule {
        base: state.config.webhook_retry_base,
        max_delay: Duration::from_secs(8 * 3600),
        attempts: state.config.webhook_attempts,
    };
    let secret = state.config.oauth_client.1.clone();
    let attempt = |n: u32| {
        // Each retry numbers its events' `attemptNumber` from 0 (HubSpot webhooks guide,
        // event fields: "attemptNumber: Starting at 0, which number attempt this is to
        // notify your service of this event",
        // https://developers.hubspot.com/docs/api/webhooks#webhook-payloads).
        let events: Vec<Value> = events
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e["attemptNumber"] = json!(n);
                e
            })
            .collect();
        let body = Value::Array(events).to_string();
        let ts = chrono::Utc::now().timestamp_millis().to_string();
        let headers = vec![
            (
                "x-hubspot-signature-v3",
                sign_v3(&secret, "POST", &url, body.as_bytes(), &ts),
            ),
            ("x-hubspot-request-timestamp", ts),
            ("x-hubspot-signature", sign_v1(&secret, body.as_bytes())),
            ("x-hubspot-signature-version", "v1".to_string()),
        ];
        Some((body, headers))
    };
    webhook::deliver_each(
        &http,
        &url,
        webhook::Delivery::json(),
        schedule,
        &state.gate.stats,
        attempt,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_hubspots_vectors() {
        // hubspot-api-python tests/spec/utils/test_signature.py and HubSpot's validation docs.
        let secret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
        let body = b"{'example_field':'example_value'}";
        assert_eq!(
            sign_v3(
                secret,
                "POST",
                "https://www.example.com/webhook_uri",
                body,
                "1693657560000"
            ),
            "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="
        );
        assert_eq!(
            sign_v1(secret, body),
            "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750"
        );
    }
}
