//! getUpdated and getDeleted.

use crmkit_sandbox::salesforce::SalesforceSandbox;
use serde_json::json;

use super::{Sf, code};

#[tokio::test]
async fn updated_and_deleted_list_changes_in_the_span() {
    let sb = SalesforceSandbox::builder()
        .exact_replication()
        .start()
        .await
        .expect("starts");
    let api = Sf::new(&sb);
    let start = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let a = api
        .post("/sobjects/Contact", &json!({"LastName": "Kept"}))
        .await;
    let b = api
        .post("/sobjects/Contact", &json!({"LastName": "Dropped"}))
        .await;
    let (kept, dropped) = (a.body["id"].clone(), b.body["id"].clone());
    assert_eq!(
        api.delete(&format!(
            "/sobjects/Contact/{}",
            dropped.as_str().unwrap_or_default()
        ))
        .await
        .status,
        204
    );
    let end = (chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339();
    let u = api
        .get(
            "/sobjects/Contact/updated/",
            &[("start", &start), ("end", &end)],
        )
        .await;
    assert_eq!(u.status, 200, "{}", u.body);
    assert_eq!(u.body["ids"], json!([kept]));
    assert!(
        u.body["latestDateCovered"]
            .as_str()
            .is_some_and(|d| d.ends_with("+0000"))
    );
    let d = api
        .get(
            "/sobjects/Contact/deleted/",
            &[("start", &start), ("end", &end)],
        )
        .await;
    assert_eq!(d.body["deletedRecords"][0]["id"], dropped);
    assert!(d.body["deletedRecords"][0]["deletedDate"].is_string());
    assert!(d.body["earliestDateAvailable"].is_string());

    let old = (chrono::Utc::now() - chrono::Duration::days(31)).to_rfc3339();
    let r = api
        .get(
            "/sobjects/Contact/updated/",
            &[("start", &old), ("end", &end)],
        )
        .await;
    assert_eq!((r.status, code(&r.body)), (400, "INVALID_REPLICATION_DATE"));
}

#[tokio::test]
async fn by_default_the_span_is_in_whole_minutes() {
    let sb = SalesforceSandbox::builder().start().await.expect("starts");
    let api = Sf::new(&sb);
    let start = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    api.post("/sobjects/Account", &json!({"Name": "Now"})).await;
    let end = (chrono::Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    let u = api
        .get(
            "/sobjects/Account/updated/",
            &[("start", &start), ("end", &end)],
        )
        .await;
    // The current minute is not covered yet.
    assert_eq!(u.body["ids"], json!([]));
    let covered = u.body["latestDateCovered"].as_str().unwrap_or_default();
    assert!(covered.contains(":00.000+0000"), "{covered}");
}
