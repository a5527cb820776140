use std::time::Duration;

use crmkit_close::webhook::{DEFAULT_TOLERANCE, sign, verify};
use crmkit_core::{ErrorKind, SecretString};
use serde_json::Value;

fn vector() -> (SecretString, String, Vec<u8>, String) {
    let text = include_str!("../fixtures/close/webhook-signature-test-vector.json");
    let v: Value = serde_json::from_str(text).unwrap();
    let v = &v["vectors"][0];
    (
        SecretString::from(v["signature_key_hex"].as_str().unwrap().to_string()),
        v["close-sig-timestamp"].as_str().unwrap().to_string(),
        v["body"].as_str().unwrap().as_bytes().to_vec(),
        v["expected_close-sig-hash"].as_str().unwrap().to_string(),
    )
}

#[test]
fn the_vector_verifies_and_parses() {
    let (key, ts, body, hash) = vector();
    assert_eq!(sign(&key, &ts, &body).unwrap(), hash);
    let now: i64 = ts.parse::<i64>().unwrap() + 10;
    let d = verify(&key, &hash, &ts, &body, now, DEFAULT_TOLERANCE).unwrap();
    assert_eq!(d.subscription_id, "whsub_test");
    assert_eq!(d.event.object_type, "lead");
    assert_eq!(d.event.action, "created");
}

#[test]
fn tampering_is_refused() {
    let (key, ts, body, hash) = vector();
    let now: i64 = ts.parse().unwrap();
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let e = verify(&key, &hash, &ts, &tampered, now, DEFAULT_TOLERANCE).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert!(e.to_string().contains("does not match"), "{e}");

    let other_ts = (now + 1).to_string();
    assert!(verify(&key, &hash, &other_ts, &body, now, DEFAULT_TOLERANCE).is_err());

    let other_key = SecretString::from("00".repeat(32));
    assert!(verify(&other_key, &hash, &ts, &body, now, DEFAULT_TOLERANCE).is_err());

    assert!(verify(&key, "not-hex", &ts, &body, now, DEFAULT_TOLERANCE).is_err());
}

#[test]
fn stale_or_future_deliveries_are_replays() {
    let (key, ts, body, hash) = vector();
    let sent: i64 = ts.parse().unwrap();
    let e = verify(&key, &hash, &ts, &body, sent + 301, DEFAULT_TOLERANCE).unwrap_err();
    assert!(e.to_string().contains("replay window"), "{e}");
    assert!(verify(&key, &hash, &ts, &body, sent - 301, DEFAULT_TOLERANCE).is_err());
    assert!(
        verify(
            &key,
            &hash,
            &ts,
            &body,
            sent + 301,
            Duration::from_secs(600)
        )
        .is_ok()
    );
}
