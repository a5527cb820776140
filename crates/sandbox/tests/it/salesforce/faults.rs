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
    // The injected rate limit is Salesforce's passing one, too many concurrent requests,
    // not its spent daily quota ("TotalRequests Limit exceeded.").
    let a = api.post("/sobjects/Account", &json!({"Name": "F"})).await;
    assert_eq!((a.status, code(&a.body)), (403, "REQUEST_LIMIT_EXCEEDED"));
    assert!(
        a.body[0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("ConcurrentRequests")),
        "{}",
        a.body
    );
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
    // Refused at the edge, the three injected failures used none of the daily quota: the
    // served `/limits` and the processed-then-dropped write did.
    assert_eq!(sb.api_usage().0, 2);
}
