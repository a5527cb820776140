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

#[test]
fn hostile_headers_and_keys_are_clear_errors() {
    let (key, ts, body, hash) = vector();
    let now: i64 = ts.parse().unwrap();
    let e = verify(
        &key,
        &hash,
        "-9223372036854775808",
        &body,
        now,
        DEFAULT_TOLERANCE,
    )
    .unwrap_err();
    assert!(e.to_string().contains("replay window"), "{e}");
    let e = verify(&key, &hash, &ts, &body, i64::MIN, DEFAULT_TOLERANCE).unwrap_err();
    assert!(e.to_string().contains("replay window"), "{e}");
    let e = verify(&key, "zz", &ts, &body, now, DEFAULT_TOLERANCE).unwrap_err();
    assert!(e.to_string().contains("not hex"), "{e}");
    let empty = SecretString::from(String::new());
    let forged = sign(&SecretString::from("00".to_string()), &ts, &body).unwrap();
    let e = verify(&empty, &forged, &ts, &body, now, DEFAULT_TOLERANCE).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("empty"), "{e}");
    assert!(
        sign(&empty, &ts, &body).is_err(),
        "nobody signs with an empty key"
    );
    let e = verify(
        &SecretString::from("xyz".to_string()),
        &hash,
        &ts,
        &body,
        now,
        DEFAULT_TOLERANCE,
    )
    .unwrap_err();
    assert!(e.to_string().contains("not hex"), "{e}");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn any_header_values_are_refused_without_panicking(
            key in "\\PC{0,70}",
            hash in "\\PC{0,70}",
            ts in prop_oneof![any::<i64>().prop_map(|n| n.to_string()), "\\PC{0,24}"],
            now in any::<i64>(),
            tolerance in any::<u64>(),
            body in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let r = verify(
                &SecretString::from(key),
                &hash,
                &ts,
                &body,
                now,
                Duration::from_secs(tolerance),
            );
            // Random input never carries a valid signature for a parseable body.
            prop_assert!(r.is_err());
        }

        #[test]
        fn a_signature_verifies_only_for_its_own_body(
            body in prop::collection::vec(any::<u8>(), 1..64),
            flip in any::<prop::sample::Index>(),
        ) {
            let (key, ts, _, _) = vector();
            let now: i64 = ts.parse().unwrap();
            let hash = sign(&key, &ts, &body).unwrap();
            let mut other = body.clone();
            let i = flip.index(other.len());
            other[i] ^= 0x01;
            let e = verify(&key, &hash, &ts, &other, now, DEFAULT_TOLERANCE).unwrap_err();
            prop_assert!(e.to_string().contains("does not match"));
        }
    }
}
