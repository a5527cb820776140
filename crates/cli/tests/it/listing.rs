//! `close leads list` in each output format, across more than one page.

use std::collections::HashSet;

use serde_json::Value;

use crate::support::{crmkit, sandbox};

/// More than one page of 100, so the output spans pages.
const LEADS: usize = 130;

fn distinct_ids(rows: &[Value]) -> usize {
    rows.iter()
        .map(|r| r["id"].as_str().expect("each lead has an id").to_string())
        .collect::<HashSet<_>>()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_is_one_array_of_every_lead() {
    let sb = sandbox(LEADS).await;
    let out = crmkit(
        Some(sb.api_url()),
        &["close", "leads", "list", "--output", "json"],
    )
    .await;
    let rows: Vec<Value> = serde_json::from_str(&out).expect("one JSON array");
    assert_eq!(rows.len(), LEADS);
    assert_eq!(distinct_ids(&rows), LEADS);
    // Lead listings read through `/data/search/` with named scalar fields (no nested lists).
    assert!(
        rows.iter()
            .all(|r| r["display_name"].is_string() && r["date_updated"].is_string()),
        "objects with their fields, not bare ids"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_is_one_lead_per_line() {
    let sb = sandbox(LEADS).await;
    let out = crmkit(
        Some(sb.api_url()),
        &["close", "leads", "list", "--output", "ndjson"],
    )
    .await;
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    assert_eq!(rows.len(), LEADS);
    assert!(rows.iter().all(Value::is_object));
    assert_eq!(distinct_ids(&rows), LEADS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_has_a_header_and_a_row_per_lead() {
    let sb = sandbox(LEADS).await;
    let out = crmkit(
        Some(sb.api_url()),
        &["close", "leads", "list", "--output", "csv"],
    )
    .await;
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("id,display_name,status_label,url,date_updated")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), LEADS);
    assert!(rows.iter().all(|r| r.starts_with("lead_")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_stops_the_listing() {
    let sb = sandbox(LEADS).await;
    let out = crmkit(
        Some(sb.api_url()),
        &["close", "leads", "list", "--max", "7", "--output", "ndjson"],
    )
    .await;
    assert_eq!(out.lines().count(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_repeats_its_header_per_chunk_of_100() {
    let sb = sandbox(LEADS).await;
    let out = crmkit(Some(sb.api_url()), &["close", "leads", "list"]).await;
    let headers = out
        .lines()
        .filter(|l| l.trim_start().starts_with("ID "))
        .count();
    assert_eq!(headers, 2);
    assert_eq!(
        out.lines()
            .filter(|l| l.trim_start().starts_with("lead_"))
            .count(),
        LEADS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_filtered_by_lead_id_belong_to_that_lead() {
    let sb = sandbox(LEADS).await;
    let first = crmkit(
        Some(sb.api_url()),
        &["close", "leads", "list", "--max", "1", "--output", "ndjson"],
    )
    .await;
    let first: Value = serde_json::from_str(&first).expect("one lead");
    let lead = first["id"].as_str().expect("a lead id").to_string();
    let filter = format!("lead_id={lead}");
    let out = crmkit(
        Some(sb.api_url()),
        &[
            "close", "contacts", "list", "--filter", &filter, "--output", "json",
        ],
    )
    .await;
    let rows: Vec<Value> = serde_json::from_str(&out).expect("one JSON array");
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["lead_id"] == lead.as_str()));
}
