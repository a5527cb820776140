//! HubSpot webhooks: request signatures v1, v2 and v3, and batched event arrays as typed
//! events.
//!
//! | Version | Signed | Header | Output |
//! |---|---|---|---|
//! | v1 | `client_secret + body` | `X-HubSpot-Signature` (`-Version: v1`) | hex SHA-256 |
//! | v2 | `client_secret + method + URI + body` | `X-HubSpot-Signature` (`-Version: v2`) | hex SHA-256 |
//! | v3 | `method + URI + body + timestamp`, HMAC key = client secret | `X-HubSpot-Signature-v3` | base64 HMAC-SHA256 |
//!
//! (developers.hubspot.com/docs/apps/developer-platform/build-apps/authentication/request-validation;
//! hubspot-api-python `utils/signature.py`.) A v3 request whose `X-HubSpot-Request-Timestamp`
//! (epoch milliseconds) is more than five minutes away from now is refused as a replay, and
//! its URI is compared with only the escapes HubSpot decodes (`%3A`, `%2F`, `%3F`, `%40`,
//! `%21`, `%24`, `%27`, `%28`, `%29`, `%2A`, `%2C`, `%3B`) decoded. Every comparison is in
//! constant time. Verify the raw body before parsing it.

use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use crmkit_core::{Crm, Error, ErrorKind, ExposeSecret, Result, SecretString};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How far a v3 timestamp may be from now (hubspot-api-python
/// `Signature.MAX_ALLOWED_TIMESTAMP = 300` seconds).
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// The escapes HubSpot decodes in the URI before signing v3 requests.
const DECODED: [(&str, &str); 12] = [
    ("%3A", ":"),
    ("%2F", "/"),
    ("%3F", "?"),
    ("%40", "@"),
    ("%21", "!"),
    ("%24", "$"),
    ("%27", "'"),
    ("%28", "("),
    ("%29", ")"),
    ("%2A", "*"),
    ("%2C", ","),
    ("%3B", ";"),
];

fn reject(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Auth, message).with_crm(Crm::HubSpot)
}

fn secret(s: &SecretString) -> Result<&str> {
    let s = s.expose_secret();
    // Anyone could sign with an empty secret: refuse it.
    if s.is_empty() {
        return Err(Error::config("the app's client secret is empty").with_crm(Crm::HubSpot));
    }
    Ok(s)
}

/// `a == b` in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The URI with the escapes HubSpot decodes for v3 decoded (either hex case).
pub fn decode_uri(uri: &str) -> String {
    let mut out = uri.to_string();
    for (escape, plain) in DECODED {
        out = out
            .replace(escape, plain)
            .replace(&escape.to_ascii_lowercase(), plain);
    }
    out
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// The v1 signature of `body`.
pub fn sign_v1(client_secret: &SecretString, body: &[u8]) -> Result<String> {
    Ok(sha256_hex(&[secret(client_secret)?.as_bytes(), body]))
}

/// The v2 signature of a request: `uri` exactly as HubSpot called it, with scheme and query.
pub fn sign_v2(
    client_secret: &SecretString,
    method: &str,
    uri: &str,
    body: &[u8],
) -> Result<String> {
    Ok(sha256_hex(&[
        secret(client_secret)?.as_bytes(),
        method.as_bytes(),
        uri.as_bytes(),
        body,
    ]))
}

fn mac_v3(
    client_secret: &SecretString,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: &str,
) -> Result<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret(client_secret)?.as_bytes())
        .map_err(|_| Error::config("the client secret is unusable").with_crm(Crm::HubSpot))?;
    m.update(method.as_bytes());
    m.update(decode_uri(uri).as_bytes());
    m.update(body);
    m.update(timestamp.as_bytes());
    Ok(m)
}

/// The v3 signature of a request at `timestamp` (epoch milliseconds, as sent).
pub fn sign_v3(
    client_secret: &SecretString,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: &str,
) -> Result<String> {
    let m = mac_v3(client_secret, method, uri, body, timestamp)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes()))
}

fn verify_hex(expected: &str, given: &str) -> Result<()> {
    let given = hex::decode(given.trim()).map_err(|_| reject("the signature is not hex"))?;
    let expected = hex::decode(expected).map_err(|_| reject("the signature is not hex"))?;
    if constant_time_eq(&expected, &given) {
        Ok(())
    } else {
        Err(reject("the webhook signature does not match"))
    }
}

/// Checks a v1 signature (`X-HubSpot-Signature` with `-Version: v1`).
pub fn verify_v1(client_secret: &SecretString, body: &[u8], signature: &str) -> Result<()> {
    verify_hex(&sign_v1(client_secret, body)?, signature)
}

/// Checks a v2 signature (`X-HubSpot-Signature` with `-Version: v2`).
pub fn verify_v2(
    client_secret: &SecretString,
    method: &str,
    uri: &str,
    body: &[u8],
    signature: &str,
) -> Result<()> {
    verify_hex(&sign_v2(client_secret, method, uri, body)?, signature)
}

/// A request as received, for [`verify_v3`] and [`verify`].
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The HTTP method, such as `POST`.
    pub method: &'a str,
    /// The full URI HubSpot called: `https://host/path?query`.
    pub uri: &'a str,
    /// The raw body.
    pub body: &'a [u8],
}

/// Checks a v3 signature (`X-HubSpot-Signature-v3`) and that its timestamp
/// (`X-HubSpot-Request-Timestamp`, epoch ms) lies within [`MAX_AGE`] of `now`.
pub fn verify_v3(
    client_secret: &SecretString,
    request: Received<'_>,
    signature: &str,
    timestamp: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| reject("the request timestamp is not epoch milliseconds"))?;
    let age = now.timestamp_millis().saturating_sub(ts).unsigned_abs();
    if u128::from(age) > MAX_AGE.as_millis() {
        return Err(reject(format!(
            "the request timestamp is {} s away from now; at most {} s are accepted",
            age / 1000,
            MAX_AGE.as_secs()
        )));
    }
    let given = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| reject("the v3 signature is not base64"))?;
    mac_v3(
        client_secret,
        request.method,
        request.uri,
        request.body,
        timestamp.trim(),
    )?
    // `verify_slice` compares in constant time.
    .verify_slice(&given)
    .map_err(|_| reject("the webhook signature does not match"))
}

/// The signature headers of a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignatureHeaders<'a> {
    /// `X-HubSpot-Signature-v3`.
    pub signature_v3: Option<&'a str>,
    /// `X-HubSpot-Request-Timestamp`.
    pub timestamp: Option<&'a str>,
    /// `X-HubSpot-Signature` (v1 or v2).
    pub signature: Option<&'a str>,
    /// `X-HubSpot-Signature-Version` (`v1` or `v2`).
    pub version: Option<&'a str>,
}

/// Checks the v3 signature, the only version with a timestamp and so the only one that
/// refuses a replayed delivery. A request without `X-HubSpot-Signature-v3` is refused, so
/// an attacker cannot strip the v3 header and replay an old v1-signed body; apps still on
/// v1 or v2 call [`verify_any`] and accept that those versions carry no replay window.
pub fn verify(
    client_secret: &SecretString,
    request: Received<'_>,
    headers: SignatureHeaders<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    let sig = headers
        .signature_v3
        .ok_or_else(|| reject("the request carries no X-HubSpot-Signature-v3"))?;
    let ts = headers
        .timestamp
        .ok_or_else(|| reject("a v3 signature without X-HubSpot-Request-Timestamp"))?;
    verify_v3(client_secret, request, sig, ts, now)
}

/// Checks whichever signature the request carries, v3 first, then v2 or v1 (which HubSpot
/// still sends to apps configured for them). v1 and v2 carry no timestamp, so a delivery
/// checked by them can be replayed: prefer [`verify`].
pub fn verify_any(
    client_secret: &SecretString,
    request: Received<'_>,
    headers: SignatureHeaders<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    if headers.signature_v3.is_some() {
        return verify(client_secret, request, headers, now);
    }
    let sig = headers
        .signature
        .ok_or_else(|| reject("the request carries no HubSpot signature"))?;
    match headers.version.map(str::trim) {
        Some("v2") => verify_v2(
            client_secret,
            request.method,
            request.uri,
            request.body,
            sig,
        ),
        Some("v1") | None => verify_v1(client_secret, request.body, sig),
        Some(other) => Err(reject(format!("unknown signature version {other:?}"))),
    }
}

/// What happened, by `subscriptionType` (`contact.propertyChange`, …).
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// `*.creation`.
    Creation,
    /// `*.deletion`.
    Deletion,
    /// `*.restore`.
    Restore,
    /// `contact.privacyDeletion`.
    PrivacyDeletion,
    /// `*.propertyChange`.
    PropertyChange {
        /// The property.
        name: String,
        /// Its new value.
        value: Option<String>,
    },
    /// `*.merge`.
    Merge {
        /// The record kept.
        primary_object_id: Option<String>,
        /// The records merged into it.
        merged_object_ids: Vec<String>,
        /// The id of the merged record.
        new_object_id: Option<String>,
        /// Properties moved.
        number_of_properties_moved: Option<u64>,
    },
    /// `*.associationChange`.
    AssociationChange {
        /// The association type, such as `CONTACT_TO_COMPANY`.
        association_type: Option<String>,
        /// The record it starts from.
        from_object_id: Option<String>,
        /// The record it points to.
        to_object_id: Option<String>,
        /// Whether it was removed (else added).
        removed: bool,
        /// Whether it is the primary association.
        primary: bool,
    },
    /// Any other subscription type, by its action.
    Other(String),
}

/// One event of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// The event id.
    pub event_id: Option<String>,
    /// The subscription that matched.
    pub subscription_id: Option<String>,
    /// The HubSpot account.
    pub portal_id: Option<String>,
    /// The app.
    pub app_id: Option<String>,
    /// When it happened.
    pub occurred_at: Option<DateTime<Utc>>,
    /// The full subscription type, such as `contact.propertyChange`.
    pub subscription_type: String,
    /// The object type part (`contact`, `company`, `deal`, `object`…).
    pub object_type: String,
    /// The record concerned.
    pub object_id: Option<String>,
    /// Delivery attempt, from 0.
    pub attempt_number: u64,
    /// What caused the change (`CRM`, `API`, …).
    pub change_source: Option<String>,
    /// Who or what caused it (`userId:45678`).
    pub source_id: Option<String>,
    /// What happened.
    pub kind: EventKind,
    /// The event as sent.
    pub raw: Value,
}

/// An id HubSpot may send as a number or a string.
fn id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl WebhookEvent {
    /// Reads one event object.
    pub fn from_json(raw: Value) -> Result<Self> {
        let subscription_type = raw["subscriptionType"]
            .as_str()
            .ok_or_else(|| {
                Error::bad_response("a webhook event has no subscriptionType")
                    .with_crm(Crm::HubSpot)
            })?
            .to_string();
        let (object_type, action) = subscription_type
            .split_once('.')
            .unwrap_or(("", subscription_type.as_str()));
        let kind = match action {
            "creation" => EventKind::Creation,
            "deletion" => EventKind::Deletion,
            "restore" => EventKind::Restore,
            "privacyDeletion" => EventKind::PrivacyDeletion,
            "propertyChange" => EventKind::PropertyChange {
                name: raw["propertyName"].as_str().unwrap_or_default().to_string(),
                value: text(&raw["propertyValue"]),
            },
            "merge" => EventKind::Merge {
                primary_object_id: id(&raw["primaryObjectId"]),
                merged_object_ids: raw["mergedObjectIds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(id)
                    .collect(),
                new_object_id: id(&raw["newObjectId"]),
                number_of_properties_moved: raw["numberOfPropertiesMoved"].as_u64(),
            },
            "associationChange" => EventKind::AssociationChange {
                association_type: text(&raw["associationType"]),
                from_object_id: id(&raw["fromObjectId"]),
                to_object_id: id(&raw["toObjectId"]),
                removed: raw["associationRemoved"].as_bool().unwrap_or(false),
                primary: raw["isPrimaryAssociation"].as_bool().unwrap_or(false),
            },
            other => EventKind::Other(other.to_string()),
        };
        Ok(Self {
            event_id: id(&raw["eventId"]),
            subscription_id: id(&raw["subscriptionId"]),
            portal_id: id(&raw["portalId"]),
            app_id: id(&raw["appId"]),
            occurred_at: raw["occurredAt"]
                .as_i64()
                .and_then(DateTime::from_timestamp_millis),
            object_type: object_type.to_string(),
            object_id: id(&raw["objectId"]),
            attempt_number: raw["attemptNumber"].as_u64().unwrap_or(0),
            change_source: text(&raw["changeSource"]),
            source_id: text(&raw["sourceId"]),
            subscription_type,
            kind,
            raw,
        })
    }
}

/// Parses a delivery: a JSON array of events (a single object is taken as one event).
pub fn parse_events(body: &[u8]) -> Result<Vec<WebhookEvent>> {
    let json: Value = serde_json::from_slice(body).map_err(|e| {
        Error::bad_response(format!("the webhook body is not JSON: {e}")).with_crm(Crm::HubSpot)
    })?;
    match json {
        Value::Array(events) => events.into_iter().map(WebhookEvent::from_json).collect(),
        one @ Value::Object(_) => Ok(vec![WebhookEvent::from_json(one)?]),
        _ => Err(
            Error::bad_response("the webhook body is not an array of events")
                .with_crm(Crm::HubSpot),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_escapes_are_decoded() {
        assert_eq!(
            decode_uri("https://x.com/a%3Ab%2fc?q=%40%20%2C"),
            "https://x.com/a:b/c?q=@%20,"
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn an_empty_secret_is_refused() {
        let e = sign_v1(&SecretString::from(""), b"x").expect_err("empty");
        assert_eq!(e.kind(), ErrorKind::Config);
    }

    #[test]
    fn parses_every_event_kind_of_a_batch() {
        let body = br#"[
          {"eventId":1,"subscriptionId":12345,"portalId":62515,"appId":54321,"occurredAt":1564113600000,"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":123,"propertyName":"email","propertyValue":"a@b.com","changeSource":"CRM","changeFlag":"NEW","sourceId":"userId:45678"},
          {"eventId":2,"subscriptionType":"company.creation","objectId":5},
          {"eventId":3,"subscriptionType":"deal.deletion","objectId":6},
          {"eventId":4,"subscriptionType":"contact.merge","objectId":7,"primaryObjectId":7,"mergedObjectIds":[8,9],"newObjectId":10,"numberOfPropertiesMoved":3},
          {"eventId":5,"subscriptionType":"contact.associationChange","fromObjectId":7,"toObjectId":11,"associationType":"CONTACT_TO_COMPANY","associationRemoved":true,"isPrimaryAssociation":false},
          {"eventId":6,"subscriptionType":"contact.restore","objectId":7},
          {"eventId":7,"subscriptionType":"contact.privacyDeletion","objectId":7},
          {"eventId":8,"subscriptionType":"object.something","objectId":"7"}
        ]"#;
        let events = parse_events(body).expect("parses");
        assert_eq!(events.len(), 8);
        let e = &events[0];
        assert_eq!(e.object_type, "contact");
        assert_eq!(e.object_id.as_deref(), Some("123"));
        assert_eq!(e.portal_id.as_deref(), Some("62515"));
        assert_eq!(
            e.occurred_at,
            DateTime::from_timestamp_millis(1_564_113_600_000)
        );
        assert_eq!(
            e.kind,
            EventKind::PropertyChange {
                name: "email".into(),
                value: Some("a@b.com".into())
            }
        );
        assert_eq!(events[1].kind, EventKind::Creation);
        assert_eq!(events[2].kind, EventKind::Deletion);
        assert_eq!(
            events[3].kind,
            EventKind::Merge {
                primary_object_id: Some("7".into()),
                merged_object_ids: vec!["8".into(), "9".into()],
                new_object_id: Some("10".into()),
                number_of_properties_moved: Some(3),
            }
        );
        assert!(matches!(
            events[4].kind,
            EventKind::AssociationChange {
                removed: true,
                primary: false,
                ..
            }
        ));
        assert_eq!(events[5].kind, EventKind::Restore);
        assert_eq!(events[6].kind, EventKind::PrivacyDeletion);
        assert_eq!(events[7].kind, EventKind::Other("something".into()));
        assert!(parse_events(b"[{\"eventId\":1}]").is_err());
        assert!(parse_events(b"42").is_err());
    }
}
