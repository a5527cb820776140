//! Close webhooks: signature verification with a replay window, the delivery envelope, and
//! the event log (`/event/`) as a stream.
//!
//! `close-sig-hash` is the hex HMAC-SHA256, keyed with the hex-decoded `signature_key`, of
//! `close-sig-timestamp` followed by the raw body. Verify the raw bytes before parsing them.

use std::time::Duration;

use crmkit_core::http::ApiRequest;
use crmkit_core::http::paginate::{Page, paginate};
use crmkit_core::{Crm, Error, ErrorKind, ExposeSecret, Result, SecretString};
use futures::StreamExt;
use futures::stream::BoxStream;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::client::Client;
use crate::models::Event;

/// How old a delivery may be before it is refused as a replay (Close documents no window;
/// five minutes is the common choice).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A delivery: the subscription it is for and the event.
#[derive(Debug, Clone, Deserialize)]
pub struct Delivery {
    /// `whsub_…`.
    pub subscription_id: String,
    /// The event.
    pub event: Event,
}

fn mac(key: &SecretString) -> Result<Hmac<Sha256>> {
    let bytes = hex::decode(key.expose_secret().trim())
        .map_err(|_| Error::config("the webhook signature key is not hex").with_crm(Crm::Close))?;
    // HMAC accepts an empty key, and anyone could then sign: refuse it.
    if bytes.is_empty() {
        return Err(Error::config("the webhook signature key is empty").with_crm(Crm::Close));
    }
    Hmac::<Sha256>::new_from_slice(&bytes)
        .map_err(|_| Error::config("the webhook signature key is unusable").with_crm(Crm::Close))
}

/// Computes `close-sig-hash` for `timestamp` and `body`; for tests and for sending.
pub fn sign(key: &SecretString, timestamp: &str, body: &[u8]) -> Result<String> {
    let mut m = mac(key)?;
    m.update(timestamp.as_bytes());
    m.update(body);
    Ok(hex::encode(m.finalize().into_bytes()))
}

fn reject(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Auth, message).with_crm(Crm::Close)
}

/// Checks a delivery's signature (in constant time) and age, then parses it.
///
/// `now_unix` is the current time in Unix seconds, a parameter so tests control it.
pub fn verify(
    key: &SecretString,
    sig_hash: &str,
    sig_timestamp: &str,
    body: &[u8],
    now_unix: i64,
    tolerance: Duration,
) -> Result<Delivery> {
    let ts: i64 = sig_timestamp.trim().parse().map_err(|_| {
        reject(format!(
            "close-sig-timestamp {sig_timestamp:?} is not a Unix time"
        ))
    })?;
    // In i128: a timestamp of i64::MIN must not overflow the subtraction.
    let age = i128::from(now_unix) - i128::from(ts);
    if age.unsigned_abs() > u128::from(tolerance.as_secs()) {
        return Err(reject(format!(
            "the delivery is {age} s old, outside the {} s replay window",
            tolerance.as_secs()
        )));
    }
    let expected = hex::decode(sig_hash.trim()).map_err(|_| reject("close-sig-hash is not hex"))?;
    let mut m = mac(key)?;
    m.update(sig_timestamp.trim().as_bytes());
    m.update(body);
    m.verify_slice(&expected)
        .map_err(|_| reject("close-sig-hash does not match the body and timestamp"))?;
    serde_json::from_slice::<Delivery>(body).map_err(|e| {
        Error::new(
            ErrorKind::Validation,
            format!("the webhook body is not a Close event: {e}"),
        )
        .with_crm(Crm::Close)
    })
}

/// Verifies a delivery from its HTTP headers (`close-sig-hash`, `close-sig-timestamp`).
pub fn verify_headers(
    key: &SecretString,
    headers: &crmkit_core::http::HeaderMap,
    body: &[u8],
    now_unix: i64,
    tolerance: Duration,
) -> Result<Delivery> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| reject(format!("the {name} header is missing")))
    };
    verify(
        key,
        get("close-sig-hash")?,
        get("close-sig-timestamp")?,
        body,
        now_unix,
        tolerance,
    )
}

/// Filters of the event log; Close accepts only some combinations (see its docs).
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// `lead`, `opportunity`, `activity.call`…
    pub object_type: Option<String>,
    /// `created`, `updated`, `deleted`…
    pub action: Option<String>,
    /// One object.
    pub object_id: Option<String>,
    /// Everything about one lead.
    pub lead_id: Option<String>,
    /// Events at or after this ISO time.
    pub date_updated_gte: Option<String>,
}

#[derive(Deserialize)]
struct EventPage {
    data: Vec<Event>,
    cursor_next: Option<String>,
}

impl Client {
    /// The event log, newest first, following `cursor_next`.
    pub fn events(&self, q: EventQuery) -> BoxStream<'static, Result<Event>> {
        let client = self.clone();
        paginate(None::<String>, move |cursor| {
            let client = client.clone();
            let q = q.clone();
            async move {
                let mut req = ApiRequest::get("event/").query("_limit", "50");
                for (k, v) in [
                    ("object_type", q.object_type),
                    ("action", q.action),
                    ("object_id", q.object_id),
                    ("lead_id", q.lead_id),
                    ("date_updated__gte", q.date_updated_gte),
                    ("_cursor", cursor),
                ] {
                    if let Some(v) = v {
                        req = req.query(k, v);
                    }
                }
                let page: EventPage = client.json(&req).await?;
                Ok(Page {
                    items: page.data,
                    next: page.cursor_next.map(Some),
                })
            }
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "058bfb6a3d8cfdc4da7c3be5901b16ae11da982b46a25fb2cd7016e97a140a1c";

    #[test]
    fn signing_matches_a_known_hash() {
        let body = br#"{"event": {"object_type": "lead", "action": "created"}, "subscription_id": "whsub_test"}"#;
        let sig = sign(&SecretString::from(KEY), "1544271440", body).unwrap();
        assert_eq!(
            sig,
            "9c4096f9ba627e1c401d47a9e0016f58d44379927324f7fe7530c14397f14864"
        );
    }
}
