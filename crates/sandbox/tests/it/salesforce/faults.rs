//! Injected faults through the shared gate, answered in Salesforce's shapes.

use crmkit_sandbox::faults::{Fault, Faults};
use serde_json::json;

use super::{Sf, code, salesforce};

#[tokio::test]
async fn injected_faults_answer_like_salesforce() {
    let sb = salesforce(0).await;
    let api = Sf::new(&sb);
    sb.set_faults(Faults {
        next: vec![
            Fault::ServerError,
            Fault::RateLimit,
            Fault::Unavailable,
            Fault::ProcessedThenDrop,
        ],
        route: Some("POST /services/data/v59.0/sobjects/Account".into()),
        ..Faults::default()
    });
    let a = api.post("/sobjects/Account", &json!({"Name": "F"})).await;
    assert_eq!((a.status, code(&a.body)), (500, "UNKNOWN_EXCEPTION"));
    let a = api.post("/sobjects/Account", &json!({"Name": "F"})).await;
    assert_eq!((a.status, code(&a.body)), (403, "REQUEST_LIMIT_EXCEEDED"));
    let a = api.post("/sobjects/Account", &json!({"Name": "F"})).await;
    assert_eq!((a.status, code(&a.body)), (503, "SERVER_UNAVAILABLE"));
    // Other routes are untouched while the targeted one fails.
    assert_eq!(api.get("/limits", &[]).await.status, 200);
    let dropped = api
        .raw(reqwest::Method::POST, "/sobjects/Account")
        .json(&json!({"Name": "Applied"}))
        .send()
        .await;
    assert!(dropped.is_err(), "the connection is dropped");
    assert_eq!(sb.count("Account"), 1, "but the write was applied");
    let log = sb.stats();
    assert!(log.requests.iter().any(|r| r.status == 0));
}
