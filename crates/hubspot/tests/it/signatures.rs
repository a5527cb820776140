//! The public signature vectors, plus tampered and stale requests.

use chrono::DateTime;
use crmkit_core::{ErrorKind, SecretString};
use crmkit_hubspot::webhook::{
    Received, SignatureHeaders, sign_v3, verify, verify_any, verify_v1, verify_v2, verify_v3,
};
use serde_json::Value;

const VECTORS: &str = include_str!("../fixtures/webhook-signature-vectors.json");

fn vectors() -> (SecretString, Vec<Value>) {
    let v: Value = serde_json::from_str(VECTORS).expect("fixture parses");
    let secret = SecretString::from(v["client_secret"].as_str().expect("secret").to_string());
    (secret, v["vectors"].as_array().expect("vectors").clone())
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

#[test]
fn every_public_vector_verifies_and_a_tampered_one_does_not() {
    let (secret, vectors) = vectors();
    assert_eq!(vectors.len(), 5);
    for v in &vectors {
        let body = s(v, "body").as_bytes();
        let expected = s(v, "expected");
        let req = Received {
            method: s(v, "method"),
            uri: s(v, "uri"),
            body,
        };
        let tampered = Received {
            body: b"{'example_field':'changed'}",
            ..req
        };
        match s(v, "version") {
            "v1" => {
                verify_v1(&secret, body, expected).expect("v1 verifies");
                let e = verify_v1(&secret, tampered.body, expected).expect_err("tampered");
                assert_eq!(e.kind(), ErrorKind::Auth);
                let headers = SignatureHeaders {
                    signature: Some(expected),
                    version: Some("v1"),
                    ..Default::default()
                };
                verify_any(&secret, req, headers, chrono::Utc::now()).expect("dispatches to v1");
                // `verify` insists on v3: a stripped v3 header cannot fall back to v1.
                let e = verify(&secret, req, headers, chrono::Utc::now()).expect_err("v3 only");
                assert_eq!(e.kind(), ErrorKind::Auth);
            }
            "v2" => {
                verify_v2(&secret, req.method, req.uri, body, expected).expect("v2 verifies");
                assert!(verify_v2(&secret, "PUT", req.uri, body, expected).is_err());
                assert!(
                    verify_v2(
                        &secret,
                        req.method,
                        "https://www.example.com/other",
                        body,
                        expected
                    )
                    .is_err()
                );
            }
            "v3" => {
                let ts = s(v, "timestamp");
                let now = DateTime::from_timestamp_millis(ts.parse::<i64>().expect("ms") + 60_000)
                    .expect("now");
                assert_eq!(
                    sign_v3(&secret, req.method, req.uri, body, ts).expect("signs"),
                    expected
                );
                verify_v3(&secret, req, expected, ts, now).expect("v3 verifies");
                let headers = SignatureHeaders {
                    signature_v3: Some(expected),
                    timestamp: Some(ts),
                    ..Default::default()
                };
                verify(&secret, req, headers, now).expect("dispatches to v3");
                assert!(verify_v3(&secret, tampered, expected, ts, now).is_err());
                let other_secret = SecretString::from("zzzz".to_string());
                assert!(verify_v3(&other_secret, req, expected, ts, now).is_err());
                // A URI with an escape HubSpot decodes signs the same as the plain one.
                let escaped = Received {
                    uri: "https%3A%2F%2Fwww.example.com%2Fwebhook_uri",
                    ..req
                };
                verify_v3(&secret, escaped, expected, ts, now).expect("decoded escapes");
                // Stale: more than five minutes old; and a timestamp changed after signing.
                let late =
                    DateTime::from_timestamp_millis(ts.parse::<i64>().expect("ms") + 300_001)
                        .expect("late");
                let e = verify_v3(&secret, req, expected, ts, late).expect_err("stale");
                assert!(e.message().contains("300"), "{e}");
                let moved = (ts.parse::<i64>().expect("ms") + 1).to_string();
                assert!(verify_v3(&secret, req, expected, &moved, now).is_err());
                assert!(verify_v3(&secret, req, "not base64!", ts, now).is_err());
            }
            other => panic!("unknown version {other}"),
        }
    }
    let none = verify(
        &secret,
        Received {
            method: "POST",
            uri: "https://x",
            body: b"",
        },
        SignatureHeaders::default(),
        chrono::Utc::now(),
    );
    assert_eq!(none.expect_err("unsigned").kind(), ErrorKind::Auth);
}
