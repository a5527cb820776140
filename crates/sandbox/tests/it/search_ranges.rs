//! `POST /data/search/` sorted on a time field with a `moment_range` on it: keyset pages
//! through the narrowed index match a brute-force filter of the full listing in both
//! directions (ties included, cursors from outside the range too), a `before` with
//! sub-microsecond digits keeps the microsecond it falls inside, a sort must name its field,
//! and a cursor is valid only under the sort it was made with.

use std::collections::BTreeMap;
use std::time::Duration;

use crmkit_sandbox::close::CloseSandbox;

use serde_json::{Value, json};

use crate::search::page_all;
use crate::{Api, ids, sandbox};

/// Every contact as `(date_created, id)`, sorted: the order of the time index, ascending.
async fn all_contacts(api: &Api) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        let skip = out.len().to_string();
        let a = api
            .get("contact/", &[("_limit", "200"), ("_skip", skip.as_str())])
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        let rows = a.body["data"].as_array().cloned().unwrap_or_default();
        out.extend(rows.iter().filter_map(|r| {
            Some((
                r["date_created"].as_str()?.to_string(),
                r["id"].as_str()?.to_string(),
            ))
        }));
        if a.body["has_more"] != true {
            break;
        }
    }
    out.sort();
    out
}

/// A moment for a `moment_range`, or null.
fn moment(at: Option<&str>) -> Value {
    at.map_or(Value::Null, |v| json!({"type": "fixed_utc", "value": v}))
}

/// A contact search on `date_created` in `[on_or_after, before)`, sorted on it.
fn ranged(on_or_after: Option<&str>, before: Option<&str>, direction: &str, limit: u64) -> Value {
    json!({"query": {"type": "and", "queries": [
            {"type": "object_type", "object_type": "contact"},
            {"type": "field_condition",
             "field": {"type": "regular_field", "object_type": "contact", "field_name": "date_created"},
             "condition": {"type": "moment_range", "on_or_after": moment(on_or_after),
                           "before": moment(before)}}]},
           "sort": [{"direction": direction, "field": {"type": "regular_field",
                     "object_type": "contact", "field_name": "date_created"}}],
           "_limit": limit})
}

/// The ids, in index order for `direction`, of the contacts with `low <= date_created < high`.
fn expected(
    all: &[(String, String)],
    low: Option<&str>,
    high: Option<&str>,
    direction: &str,
) -> Vec<String> {
    let mut v: Vec<String> = all
        .iter()
        .filter(|(t, _)| low.is_none_or(|l| t.as_str() >= l) && high.is_none_or(|h| t.as_str() < h))
        .map(|(_, id)| id.clone())
        .collect();
    if direction == "desc" {
        v.reverse();
    }
    v
}

fn item_ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn ranged_time_sorted_pages_match_a_brute_force_filter_in_both_directions() {
    // Small pages make many requests: the rate limit is raised so only paging is tested.
    let sb = CloseSandbox::builder()
        .seed(11)
        .leads(95)
        .rate_limit(10_000, Duration::from_secs(10))
        .start()
        .await
        .expect("sandbox starts");
    let api = Api::new(&sb);
    let all = all_contacts(&api).await;
    // Contacts share their lead's date_created, so instants with several contacts are ties.
    let mut per_instant: BTreeMap<&str, usize> = BTreeMap::new();
    for (t, _) in &all {
        *per_instant.entry(t.as_str()).or_default() += 1;
    }
    let ties: Vec<&str> = per_instant
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(t, _)| *t)
        .collect();
    assert!(ties.len() >= 8, "too few tied instants: {}", ties.len());
    let low = ties[ties.len() / 4].to_string();
    let high = ties[3 * ties.len() / 4].to_string();
    let (low, high) = (Some(low.as_str()), Some(high.as_str()));
    let cases = [
        ("asc", low, high),
        ("desc", None, high),
        ("desc", low, high),
        ("asc", low, None),
    ];
    for (direction, on_or_after, before) in cases {
        let want = expected(&all, on_or_after, before, direction);
        assert!(want.len() > 3 * 7, "{direction}: a range of several pages");
        let got = item_ids(&page_all(&api, ranged(on_or_after, before, direction, 7)).await);
        assert_eq!(got, want, "{direction} {on_or_after:?}..{before:?}");
    }

    // An empty range answers one empty page.
    let empty = api.post("data/search/", &ranged(low, low, "asc", 7)).await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(
        (ids(&empty.body).len(), &empty.body["cursor"]),
        (0, &Value::Null)
    );

    // A cursor from before the range (asc) or after it (desc) resumes at the range's edge.
    for direction in ["asc", "desc"] {
        let outside = api
            .post("data/search/", &ranged(None, None, direction, 7))
            .await;
        let first = ids(&outside.body);
        let whole = expected(&all, low, high, direction);
        assert!(first.iter().all(|id| !whole.contains(id)), "{direction}");
        let mut body = ranged(low, high, direction, 7);
        body["cursor"] = outside.body["cursor"].clone();
        let got = item_ids(&page_all(&api, body).await);
        assert_eq!(got, whole, "{direction} from an outside cursor");
    }

    // A `before` half a microsecond after a tied instant keeps every contact at it.
    let high_text = high.unwrap_or_default();
    let nudged = high_text.replacen("+00:00", "5+00:00", 1);
    assert_ne!(nudged, high_text, "stamps end in +00:00");
    let mut want = expected(&all, low, Some(nudged.as_str()), "asc");
    let at_high = all.iter().filter(|(t, _)| t == high_text).count();
    assert_eq!(want.len(), expected(&all, low, high, "asc").len() + at_high);
    let got = item_ids(&page_all(&api, ranged(low, Some(&nudged), "asc", 7)).await);
    assert_eq!(got, want, "asc before {nudged}");
    want.reverse();
    let got = item_ids(&page_all(&api, ranged(low, Some(&nudged), "desc", 7)).await);
    assert_eq!(got, want, "desc before {nudged}");
}

#[tokio::test]
async fn a_sort_must_name_its_field() {
    let sb = sandbox(3).await;
    let api = Api::new(&sb);
    for sort in [
        json!([{"field": {"type": "custom_field", "custom_field_id": "cf_x"}, "direction": "asc"}]),
        json!([{"direction": "desc"}]),
        json!({"field": {"field_name": "date_created"}}),
    ] {
        let mut body = ranged(None, None, "asc", 7);
        body["sort"] = sort.clone();
        let a = api.post("data/search/", &body).await;
        assert_eq!(a.status, 400, "{sort}: {}", a.body);
    }
}

#[tokio::test]
async fn a_cursor_is_refused_under_another_sort() {
    let sb = sandbox(10).await;
    let api = Api::new(&sb);
    let first = api
        .post("data/search/", &ranged(None, None, "asc", 2))
        .await;
    let cursor = first.body["cursor"].clone();
    assert!(cursor.is_string(), "{}", first.body);
    let sorts = [
        json!([{"direction": "desc", "field": {"field_name": "date_created"}}]),
        json!([{"direction": "asc", "field": {"field_name": "date_updated"}}]),
        json!([{"direction": "asc", "field": {"field_name": "name"}}]),
        json!([{"direction": "asc", "field": {"field_name": "date_created"}},
               {"direction": "asc", "field": {"field_name": "name"}}]),
        Value::Null,
    ];
    for sort in sorts {
        let mut body = ranged(None, None, "asc", 2);
        body["sort"] = sort.clone();
        body["cursor"] = cursor.clone();
        let a = api.post("data/search/", &body).await;
        assert_eq!(a.status, 400, "{sort}: {}", a.body);
        assert!(a.body["field-errors"]["cursor"].is_string(), "{}", a.body);
    }
    let mut same = ranged(None, None, "asc", 2);
    same["cursor"] = cursor;
    assert_eq!(api.post("data/search/", &same).await.status, 200);
}
