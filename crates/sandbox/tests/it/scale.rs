//! Realistic accounts: 20,000 seeded leads, listed in full past the `_skip` ceiling with
//! `query=` slices, and searched with a cursor. No timing is asserted here; speed targets
//! live in the benchmarks.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::{Api, sandbox};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_leads_seed_list_and_search() {
    let sb = sandbox(20_000).await;
    assert_eq!(sb.count("lead"), 20_000);
    let api = Api::new(&sb);
    let mut seen = HashSet::new();
    let mut after = String::from("2000-01-01");
    loop {
        let q = format!(r#"sort:created date_created > "{after}""#);
        let page = api
            .get(
                "lead/",
                &[
                    ("query", q.as_str()),
                    ("_limit", "200"),
                    ("_fields", "id,date_created"),
                ],
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let rows = page.body["data"].as_array().cloned().unwrap_or_default();
        for r in &rows {
            assert!(seen.insert(r["id"].as_str().unwrap_or_default().to_string()));
        }
        match rows.last().and_then(|r| r["date_created"].as_str()) {
            Some(last) if page.body["has_more"] == true => after = last.to_string(),
            _ => break,
        }
    }
    assert_eq!(seen.len(), 20_000);
    let body = json!({"query": {"type": "and", "queries": [
        {"type": "object_type", "object_type": "lead"},
        {"type": "field_condition",
         "field": {"type": "regular_field", "object_type": "lead", "field_name": "date_created"},
         "condition": {"type": "moment_range", "on_or_after": {"type": "fixed_utc", "value": "2025-06-01T00:00:00+00:00"}, "before": null}}]},
        "sort": [{"direction": "desc", "field": {"type": "regular_field", "object_type": "lead",
                  "field_name": "date_created"}}],
        "_limit": 200});
    let first = api.post("data/search/", &body).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["data"].as_array().map(Vec::len), Some(200));
    assert!(matches!(first.body["cursor"], Value::String(_)));
}
