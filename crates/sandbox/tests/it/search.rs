//! `POST /data/search/`: result shapes with and without `_fields` (and the wrong shape
//! refused), clamped `_limit`, cursor paging in the requested order without gaps or repeats
//! (and forged cursors answered), `exact_value` text and `has_related` from any object.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::{Api, ids, sandbox};

fn leads_query() -> Value {
    json!({"type": "and", "queries": [{"type": "object_type", "object_type": "lead"}]})
}

#[tokio::test]
async fn without_fields_each_result_is_only_its_type_and_id() {
    let sb = sandbox(5).await;
    let api = Api::new(&sb);
    let a = api
        .post("data/search/", &json!({"query": leads_query()}))
        .await;
    assert_eq!(a.status, 200);
    let first = a.body["data"][0].as_object().cloned().unwrap_or_default();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(keys, ["__object_type", "id"]);
    assert_eq!(first["__object_type"], "lead");
}

#[tokio::test]
async fn fields_are_named_per_object_type_and_all_is_not_special() {
    let sb = sandbox(5).await;
    let api = Api::new(&sb);
    let cf = format!("custom.{}", sb.seed_ids().industry_field);
    let named = api
        .post(
            "data/search/",
            &json!({"query": leads_query(), "_fields": {"lead": ["id", "name", cf, "no_such_field"]}}),
        )
        .await;
    let item = named.body["data"][0]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = vec!["__object_type", "id", "name", cf.as_str()];
    want.sort_unstable();
    assert_eq!(keys, want);
    let all = api
        .post(
            "data/search/",
            &json!({"query": leads_query(), "_fields": {"lead": ["_all"]}}),
        )
        .await;
    let item = all.body["data"][0].as_object().cloned().unwrap_or_default();
    assert_eq!(item.keys().collect::<Vec<_>>(), ["__object_type"]);
}

#[tokio::test]
async fn the_limit_is_clamped_to_200() {
    let sb = sandbox(210).await;
    let api = Api::new(&sb);
    let a = api
        .post(
            "data/search/",
            &json!({"query": leads_query(), "_limit": 500}),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(ids(&a.body).len(), 200);
    assert!(a.body["cursor"].is_string());
}

/// Every result of a search, following its cursor to the end.
pub(crate) async fn page_all(api: &Api, body: Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut body = body;
    loop {
        let a = api.post("data/search/", &body).await;
        assert_eq!(a.status, 200, "{}", a.body);
        out.extend(a.body["data"].as_array().cloned().unwrap_or_default());
        match &a.body["cursor"] {
            Value::String(c) => body["cursor"] = json!(c),
            _ => return out,
        }
    }
}

#[tokio::test]
async fn cursor_pages_follow_the_sort_without_gaps() {
    let sb = sandbox(95).await;
    let api = Api::new(&sb);
    for direction in ["asc", "desc"] {
        let items = page_all(
            &api,
            json!({"query": leads_query(), "_limit": 20,
                   "_fields": {"lead": ["id", "date_created"]},
                   "sort": [{"direction": direction, "field": {"type": "regular_field",
                             "object_type": "lead", "field_name": "date_created"}}]}),
        )
        .await;
        let unique: HashSet<&str> = items.iter().filter_map(|i| i["id"].as_str()).collect();
        assert_eq!((items.len(), unique.len()), (95, 95));
        let stamps: Vec<&str> = items
            .iter()
            .filter_map(|i| i["date_created"].as_str())
            .collect();
        let ordered = stamps.windows(2).all(|w| match direction {
            "asc" => w[0] <= w[1],
            _ => w[0] >= w[1],
        });
        assert!(ordered, "{direction}: {stamps:?}");
    }
    let unsorted = page_all(&api, json!({"query": leads_query(), "_limit": 30})).await;
    let unique: HashSet<&str> = unsorted.iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(unique.len(), 95);
}

#[tokio::test]
async fn a_bad_cursor_is_refused() {
    let sb = sandbox(1).await;
    let api = Api::new(&sb);
    let a = api
        .post(
            "data/search/",
            &json!({"query": leads_query(), "cursor": "nope"}),
        )
        .await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn hostile_cursors_get_an_answer_never_a_dropped_connection() {
    let sb = sandbox(3).await;
    let api = Api::new(&sb);
    let max = u64::MAX;
    let min = i64::MIN;
    let sorts = [
        json!([]),
        json!([{"field": {"field_name": "date_created"}, "direction": "desc"}]),
        json!([{"field": {"field_name": "name"}, "direction": "asc"}]),
    ];
    for sort in &sorts {
        // A real cursor's sort tag, so the forged positions reach the walk.
        let real = api
            .post(
                "data/search/",
                &json!({"query": leads_query(), "_limit": 1, "sort": sort}),
            )
            .await;
        let tag = real.body["cursor"]
            .as_str()
            .and_then(|c| c.split('.').nth(2))
            .unwrap_or_default()
            .to_string();
        assert!(!tag.is_empty(), "{}", real.body);
        let cursors = [
            format!("sbx3.{max}.{tag}.s.0"),
            format!("sbx3.{}.{tag}.s.0", 1u64 << 40),
            format!("sbx3.0.{tag}.s.{max}"),
            format!("sbx3.{max}.{tag}.o.{max}"),
            format!("sbx3.0.{tag}.o.{max}"),
            format!("sbx3.0.{tag}.t.{min}."),
            format!("sbx3.0.{tag}.t.{}.zzz", i64::MAX),
            format!("sbx3.1.{tag}.t.1"),
            format!("sbx3.1.{tag}.q.1"),
        ];
        for cursor in &cursors {
            for results_limit in [json!(null), json!(max), json!(1)] {
                let a = api
                    .post(
                        "data/search/",
                        &json!({"query": leads_query(), "_limit": 1, "cursor": cursor,
                                "sort": sort, "results_limit": results_limit}),
                    )
                    .await;
                assert!(
                    a.status == 200 || a.status == 400,
                    "{cursor} {sort}: {}",
                    a.status
                );
            }
        }
    }
    // The server still answers after all of them.
    let a = api
        .post("data/search/", &json!({"query": leads_query()}))
        .await;
    assert_eq!(ids(&a.body).len(), 3);
}

#[tokio::test]
async fn fields_in_any_shape_but_a_map_of_lists_is_refused() {
    let sb = sandbox(2).await;
    let api = Api::new(&sb);
    for fields in [
        json!(["id", "name"]),
        json!("name"),
        json!({"lead": "name"}),
        json!({"lead": [1]}),
    ] {
        let a = api
            .post(
                "data/search/",
                &json!({"query": leads_query(), "_fields": fields}),
            )
            .await;
        assert_eq!(a.status, 400, "{fields}");
    }
}

fn contacts_where(field: &str, condition: Value) -> Value {
    json!({"type": "and", "queries": [
        {"type": "object_type", "object_type": "contact"},
        {"type": "field_condition", "field": {"type": "regular_field", "field_name": field},
         "condition": condition}]})
}

#[tokio::test]
async fn exact_value_compares_the_whole_value_and_has_related_works_from_any_object() {
    let sb = sandbox(0).await;
    let api = Api::new(&sb);
    let lead = api
        .post(
            "lead/",
            &json!({"name": "Rel", "contacts": [{"name": "Ann Lee"}, {"name": "Bob Lee"}]}),
        )
        .await
        .body;
    let lead_id = lead["id"].as_str().unwrap_or_default();
    let ann = lead["contacts"][0]["id"].as_str().unwrap_or_default();
    let bob = lead["contacts"][1]["id"].as_str().unwrap_or_default();
    let exact = |v: &str| {
        contacts_where(
            "name",
            json!({"type": "text", "mode": "exact_value", "value": v}),
        )
    };
    let hits = api
        .post("data/search/", &json!({"query": exact("ann lee")}))
        .await;
    assert_eq!(ids(&hits.body), [ann]);
    let none = api
        .post("data/search/", &json!({"query": exact("Ann")}))
        .await;
    assert!(ids(&none.body).is_empty(), "a word is not the whole value");
    let call = api
        .post(
            "activity/call/",
            &json!({"lead_id": lead_id, "contact_id": ann, "note": "zebra"}),
        )
        .await;
    assert_eq!(call.status, 200, "{}", call.body);
    let opp = api
        .post(
            "opportunity/",
            &json!({"lead_id": lead_id, "contact_id": bob, "note": "o"}),
        )
        .await;
    assert_eq!(opp.status, 200, "{}", opp.body);
    // Contact → activity: only the contact the call points at.
    let q = json!({"type": "and", "queries": [
        {"type": "object_type", "object_type": "contact"},
        {"type": "has_related", "related_object_type": "activity", "related_query":
            {"type": "field_condition", "field": {"type": "regular_field", "field_name": "note"},
             "condition": {"type": "text", "mode": "full_words", "value": "zebra"}}}]});
    let hits = api.post("data/search/", &json!({"query": q})).await;
    assert_eq!(ids(&hits.body), [ann]);
    // Opportunity → contact: the contact it points at.
    let q = json!({"type": "and", "queries": [
        {"type": "object_type", "object_type": "opportunity"},
        {"type": "has_related", "related_object_type": "contact", "related_query":
            {"type": "field_condition", "field": {"type": "regular_field", "field_name": "name"},
             "condition": {"type": "text", "mode": "full_words", "value": "bob"}}}]});
    let hits = api.post("data/search/", &json!({"query": q})).await;
    assert_eq!(
        ids(&hits.body),
        [opp.body["id"].as_str().unwrap_or_default()]
    );
    // Opportunity → lead.
    let q = json!({"type": "and", "queries": [
        {"type": "object_type", "object_type": "opportunity"},
        {"type": "has_related", "related_object_type": "lead", "related_query":
            {"type": "field_condition", "field": {"type": "regular_field", "field_name": "name"},
             "condition": {"type": "text", "mode": "full_words", "value": "rel"}}}]});
    let hits = api.post("data/search/", &json!({"query": q})).await;
    assert_eq!(ids(&hits.body).len(), 1);
}
