//! The request gate: Close's rate-limit headers, and faults aimed at one route, including a
//! write that is applied while the client sees a dropped connection.

use std::time::Duration;

use crmkit_sandbox::close::CloseSandbox;
use crmkit_sandbox::faults::{Fault, Faults};
use serde_json::json;

use crate::{Api, ids, sandbox};

fn integer(h: &reqwest::header::HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.parse().ok()
}

#[tokio::test]
async fn answers_carry_the_combined_header_with_an_integer_reset() {
    let sb = sandbox(0).await;
    let api = Api::new(&sb);
    let a = api.get("me/", &[]).await;
    assert_eq!(a.status, 200);
    let h = a.headers["ratelimit"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    let parts: Vec<(&str, &str)> = h.split(", ").filter_map(|p| p.split_once('=')).collect();
    let names: Vec<&str> = parts.iter().map(|(k, _)| *k).collect();
    assert_eq!(names, ["limit", "remaining", "reset"], "{h}");
    assert!(parts.iter().all(|(_, v)| v.parse::<u64>().is_ok()), "{h}");
}

#[tokio::test]
async fn a_429_carries_retry_after_and_ratelimit_reset() {
    let sb = CloseSandbox::builder()
        .rate_limit(2, Duration::from_secs(30))
        .start()
        .await
        .expect("starts");
    let api = Api::new(&sb);
    assert_eq!(api.get("lead/", &[]).await.status, 200);
    assert_eq!(api.get("lead/", &[]).await.status, 200);
    let refused = api.get("lead/", &[]).await;
    assert_eq!(refused.status, 429);
    let retry = integer(&refused.headers, "retry-after").unwrap_or(0);
    assert!((1..=30).contains(&retry), "{retry}");
    assert_eq!(integer(&refused.headers, "ratelimit-reset"), Some(retry));
    let combined = refused.headers["ratelimit"].to_str().unwrap_or_default();
    assert_eq!(combined, format!("limit=2, remaining=0, reset={retry}"));
    let group = refused.body["error"]["rate_endpoint_group"]
        .as_str()
        .unwrap_or_default();
    assert!(!group.is_empty() && group.chars().all(|c| c.is_ascii_hexdigit()));
    // Another endpoint group has its own window.
    assert_eq!(api.get("contact/", &[]).await.status, 200);
}

#[tokio::test]
async fn faults_can_aim_at_one_route_through_the_admin_endpoint() {
    let sb = sandbox(0).await;
    let api = Api::new(&sb);
    let faults = json!({"next": ["server_error"], "route": "POST /lead/"});
    let set = reqwest::Client::new()
        .put(format!("{}/_sandbox/faults", sb.base_url()))
        .json(&faults)
        .send()
        .await
        .expect("admin answers");
    assert_eq!(set.status().as_u16(), 204);
    assert_eq!(api.get("lead/", &[]).await.status, 200);
    assert_eq!(
        api.post("contact/", &json!({"name": "Free"})).await.status,
        200
    );
    assert_eq!(api.post("lead/", &json!({"name": "Hit"})).await.status, 500);
    assert_eq!(
        api.post("lead/", &json!({"name": "Through"})).await.status,
        200
    );
}

#[tokio::test]
async fn processed_then_dropped_applies_the_write_without_an_answer() {
    let sb = sandbox(0).await;
    sb.set_faults(Faults {
        next: vec![Fault::ProcessedThenDrop],
        route: Some("POST /lead/".into()),
        ..Faults::default()
    });
    let api = Api::new(&sb);
    let sent = api
        .raw(reqwest::Method::POST, "lead/")
        .json(&json!({"name": "Half Seen Co"}))
        .send()
        .await;
    assert!(sent.is_err(), "the client sees a broken connection");
    let found = api
        .get("lead/", &[("query", r#"name:"Half Seen Co""#)])
        .await;
    assert_eq!(ids(&found.body).len(), 1, "the write was applied");
    let log = sb.stats().requests;
    assert!(log.iter().any(|r| r.method == "POST" && r.status == 0));
}
