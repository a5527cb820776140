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

#[tokio::test]
async fn get_deleted_serves_15_days_from_where_its_log_starts() {
    let sb = SalesforceSandbox::builder()
        .exact_replication()
        .start()
        .await
        .expect("starts");
    let api = Sf::new(&sb);
    let at = |d: chrono::DateTime<chrono::Utc>| d.to_rfc3339();
    let now = chrono::Utc::now();
    let end = at(now + chrono::Duration::minutes(1));
    let deleted = |start: String| {
        let api = &api;
        let end = end.clone();
        async move {
            api.get(
                "/sobjects/Contact/deleted/",
                &[("start", start.as_str()), ("end", end.as_str())],
            )
            .await
        }
    };
    // 16 days back is past the window getDeleted answers for; getUpdated still takes it.
    let r = deleted(at(now - chrono::Duration::days(16))).await;
    assert_eq!((r.status, code(&r.body)), (400, "INVALID_REPLICATION_DATE"));
    let u = api
        .get(
            "/sobjects/Contact/updated/",
            &[
                ("start", at(now - chrono::Duration::days(16)).as_str()),
                ("end", end.as_str()),
            ],
        )
        .await;
    assert_eq!(u.status, 200, "{}", u.body);
    // The log starts at midnight UTC 15 days before the day of the call.
    let ok = deleted(at(now - chrono::Duration::days(14))).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let window = (now - chrono::Duration::days(15))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let earliest = ok.body["earliestDateAvailable"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        earliest,
        window.format("%Y-%m-%dT%H:%M:%S.000+0000").to_string()
    );
    // An end not after the start is refused.
    let r = api
        .get(
            "/sobjects/Contact/deleted/",
            &[("start", end.as_str()), ("end", end.as_str())],
        )
        .await;
    assert_eq!((r.status, code(&r.body)), (400, "INVALID_REPLICATION_DATE"));

    // Emptying the Recycle Bin moves the log's start: an earlier start is answered, with an
    // `earliestDateAvailable` later than it (the caller must resync) and no purged deletion.
    let gone = api
        .post("/sobjects/Contact", &json!({"LastName": "Purged"}))
        .await;
    let gone = gone.body["id"].as_str().unwrap_or_default().to_string();
    let r = api.delete(&format!("/sobjects/Contact/{gone}")).await;
    assert_eq!(r.status, 204);
    let from = now - chrono::Duration::days(1);
    assert!(deleted(at(from)).await.body.to_string().contains(&gone));
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    sb.purge_deletions();
    let r = deleted(at(from)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let earliest = r.body["earliestDateAvailable"].as_str().unwrap_or_default();
    assert!(
        earliest
            > from
                .format("%Y-%m-%dT%H:%M:%S.000+0000")
                .to_string()
                .as_str(),
        "{earliest}"
    );
    assert_eq!(r.body["deletedRecords"], json!([]), "{}", r.body);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let later = deleted(at(chrono::Utc::now())).await;
    assert_eq!(later.status, 200, "{}", later.body);
    let earliest = later.body["earliestDateAvailable"]
        .as_str()
        .unwrap_or_default();
    assert!(earliest > window.to_rfc3339().as_str(), "{earliest}");

    // Time passes on the org's clock: the window moves with it.
    sb.advance_clock(std::time::Duration::from_secs(20 * 86_400));
    let r = deleted(at(now + chrono::Duration::days(2))).await;
    assert_eq!((r.status, code(&r.body)), (400, "INVALID_REPLICATION_DATE"));
}

#[tokio::test]
async fn whole_minute_spans_must_be_more_than_a_minute_apart() {
    let sb = SalesforceSandbox::builder().start().await.expect("starts");
    let api = Sf::new(&sb);
    let base = chrono::Utc::now() - chrono::Duration::minutes(10);
    let t = |m: i64, s: u32| {
        use chrono::Timelike;
        (base + chrono::Duration::minutes(m))
            .with_second(s)
            .expect("second")
            .to_rfc3339()
    };
    // 12:00:05 → 12:01:55 is 12:00 → 12:01 once seconds are ignored: one minute, refused.
    let r = api
        .get(
            "/sobjects/Account/deleted/",
            &[("start", t(0, 5).as_str()), ("end", t(1, 55).as_str())],
        )
        .await;
    assert_eq!((r.status, code(&r.body)), (400, "INVALID_REPLICATION_DATE"));
    let r = api
        .get(
            "/sobjects/Account/deleted/",
            &[("start", t(0, 55).as_str()), ("end", t(2, 5).as_str())],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let covered = r.body["latestDateCovered"].as_str().unwrap_or_default();
    assert!(covered.ends_with(":00.000+0000"), "{covered}");
}
