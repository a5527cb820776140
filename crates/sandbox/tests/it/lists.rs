//! `GET` lists: documented parameters only, `query=` evaluated, a `_limit` above the
//! resource's maximum refused with a 400, and the per-resource `_skip` ceiling.

use chrono::{DateTime, Duration, Utc};
use crmkit_sandbox::close::CloseSandbox;
use serde_json::json;

use crate::{Api, ids, sandbox};

/// When the seeded lead `i` was created and last updated.
/// When company `i` of a world of `n` was seeded: 37 minutes apart, the last at the origin.
fn seeded_at(n: i64, i: i64) -> String {
    let origin = DateTime::parse_from_rfc3339("2026-01-05T09:00:00Z")
        .expect("constant")
        .with_timezone(&Utc);
    (origin - Duration::minutes(37 * (n - 1 - i)))
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

#[tokio::test]
async fn leads_ignore_parameters_they_do_not_document() {
    let sb = sandbox(30).await;
    let api = Api::new(&sb);
    let plain = api.get("lead/", &[("_limit", "10")]).await;
    let noisy = api
        .get(
            "lead/",
            &[
                ("_limit", "10"),
                ("_order_by", "-date_created"),
                ("date_created__gte", "2030-01-01"),
                ("name", "nothing matches this"),
            ],
        )
        .await;
    assert_eq!(noisy.status, 200);
    assert_eq!(ids(&noisy.body), ids(&plain.body));
    assert_eq!(ids(&plain.body).len(), 10);
}

#[tokio::test]
async fn opportunities_tasks_and_activities_ignore_parameters_they_do_not_document() {
    let sb = sandbox(30).await;
    let api = Api::new(&sb);
    let lead = api.get("lead/", &[("_limit", "1")]).await.body["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let made = api
        .post("task/", &json!({"lead_id": lead, "text": "Call back"}))
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    // Documented but not modelled (`_group_by`, `query`, `view`, `thread_emails`), or not
    // documented for that collection at all (`name`, typos): each is ignored, not a
    // filter that matches nothing.
    let cases: [(&str, &[(&str, &str)]); 6] = [
        (
            "opportunity/",
            &[
                ("_group_by", "user_id"),
                ("query", "note:x"),
                ("is_stalled", "true"),
            ],
        ),
        (
            "opportunity/",
            &[("stauts_id", "stat_nope"), ("note", "nothing matches this")],
        ),
        (
            "task/",
            &[("view", "archive"), ("format", "x"), ("texxt", "nothing")],
        ),
        (
            "activity/",
            &[("thread_emails", "only"), ("note", "nothing matches this")],
        ),
        (
            "activity/",
            &[("activity_at", "2000-01-01"), ("sttaus", "x")],
        ),
        (
            "activity/note/",
            &[("lead_id__in", "lead_nope"), ("made_up", "1")],
        ),
    ];
    for (path, noise) in cases {
        let plain = api.get(path, &[("_limit", "10")]).await;
        let mut query = vec![("_limit", "10")];
        query.extend_from_slice(noise);
        let noisy = api.get(path, &query).await;
        assert_eq!(noisy.status, 200, "{path} {noise:?}: {}", noisy.body);
        assert!(!ids(&plain.body).is_empty(), "{path}");
        assert_eq!(ids(&noisy.body), ids(&plain.body), "{path} {noise:?}");
    }
    // A documented filter still filters.
    let lead_opps = api.get("opportunity/", &[("lead_id", &lead)]).await;
    assert!(
        lead_opps.body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|o| o["lead_id"] == lead.as_str())
    );
    let none = api
        .get("opportunity/", &[("status_label", "No Such Stage")])
        .await;
    assert_eq!(none.body["total_results"], 0);
    let open = api.get("task/", &[("is_complete", "false")]).await;
    assert!(ids(&open.body).contains(&made.body["id"].as_str().unwrap_or_default().to_string()));
}

#[tokio::test]
async fn contacts_take_lead_id_and_ignore_ordering() {
    let sb = sandbox(10).await;
    let api = Api::new(&sb);
    let leads = api.get("lead/", &[("_limit", "1")]).await;
    let lead = &leads.body["data"][0];
    let lead_id = lead["id"].as_str().unwrap_or_default();
    let mine = api.get("contact/", &[("lead_id", lead_id)]).await;
    assert_eq!(mine.status, 200);
    assert_eq!(ids(&mine.body), ids(&json!({"data": lead["contacts"]})));
    let all = api.get("contact/", &[]).await;
    let reordered = api
        .get(
            "contact/",
            &[
                ("_order_by", "-date_created"),
                ("date_created__lt", "2000-01-01"),
            ],
        )
        .await;
    assert_eq!(ids(&reordered.body), ids(&all.body));
    assert!(ids(&all.body).len() > 10);
}

#[tokio::test]
async fn opportunities_honour_order_and_date_filters() {
    let sb = sandbox(40).await;
    let api = Api::new(&sb);
    let desc = api
        .get("opportunity/", &[("_order_by", "-date_created")])
        .await;
    let stamps: Vec<String> = desc.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["date_created"].as_str().map(str::to_string))
        .collect();
    assert!(stamps.len() > 5);
    assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "{stamps:?}");
    let cut = seeded_at(40, 20);
    let recent = api
        .get("opportunity/", &[("date_created__gte", cut.as_str())])
        .await;
    let recent_ids = ids(&recent.body);
    assert!(!recent_ids.is_empty() && recent_ids.len() < stamps.len());
    assert!(
        recent.body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|o| o["date_created"].as_str().unwrap_or_default() >= cut.as_str())
    );
}

#[tokio::test]
async fn lead_query_is_evaluated_like_airbytes_slices() {
    let sb = sandbox(30).await;
    let api = Api::new(&sb);
    let q = format!(
        r#"sort:updated date_updated > "{}" date_updated <= "{}""#,
        seeded_at(30, 10),
        seeded_at(30, 20)
    );
    let slice = api.get("lead/", &[("query", q.as_str())]).await;
    assert_eq!(slice.status, 200);
    let stamps: Vec<&str> = slice.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["date_updated"].as_str())
        .collect();
    let expected: Vec<String> = (11..=20).map(|i| seeded_at(30, i)).collect();
    assert_eq!(stamps, expected);
    let desc = api
        .get("lead/", &[("query", "sort:-created"), ("_limit", "3")])
        .await;
    let created: Vec<&str> = desc.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["date_created"].as_str())
        .collect();
    assert_eq!(
        created,
        vec![seeded_at(30, 29), seeded_at(30, 28), seeded_at(30, 27)]
    );
}

#[tokio::test]
async fn lead_query_matches_names_and_statuses() {
    let sb = sandbox(20).await;
    let api = Api::new(&sb);
    let first = api.get("lead/", &[("_limit", "1")]).await;
    let id = first.body["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = first.body["data"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let by_name = api
        .get("lead/", &[("query", format!("name:\"{name}\"").as_str())])
        .await;
    assert!(ids(&by_name.body).contains(&id));
    assert!(
        by_name.body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|l| l["name"]
                .as_str()
                .unwrap_or_default()
                .contains(name.as_str()))
    );
    let moved = api
        .put(&format!("lead/{id}/"), &json!({"status": "Bad Fit"}))
        .await;
    assert_eq!(moved.status, 200);
    let bad_fit = api.get("lead/", &[("query", r#"status:"Bad Fit""#)]).await;
    assert_eq!(ids(&bad_fit.body), vec![id.clone()]);
    let both = api
        .get(
            "lead/",
            &[("query", r#"status:"Potential" AND name:zzzz-no-such"#)],
        )
        .await;
    assert_eq!(both.status, 200);
    assert!(ids(&both.body).is_empty());
}

#[tokio::test]
async fn lead_query_syntax_errors_are_400() {
    let sb = sandbox(0).await;
    let api = Api::new(&sb);
    for bad in [
        "date_updated >",
        r#"name:"unterminated"#,
        "(name:a)",
        "shoe_size:9",
    ] {
        let a = api.get("lead/", &[("query", bad)]).await;
        assert_eq!(a.status, 400, "{bad}");
        assert!(
            a.body["field-errors"]["query"].is_string(),
            "{bad}: {}",
            a.body
        );
    }
}

#[tokio::test]
async fn a_limit_above_the_maximum_is_refused_with_closes_message() {
    let sb = sandbox(230).await;
    let api = Api::new(&sb);
    // Airbyte's page sizes are within the maxima (airbyte source-close-com manifest.yaml).
    let leads = api.get("lead/", &[("_limit", "200")]).await;
    assert_eq!(leads.status, 200);
    assert_eq!(ids(&leads.body).len(), 200);
    assert_eq!(leads.body["has_more"], true);
    let too_many = api.get("lead/", &[("_limit", "201")]).await;
    assert_eq!(too_many.status, 400);
    assert_eq!(
        too_many.body["error"],
        "The limit you set is larger than the maximum limit for this resource (max_limit = 200)."
    );
    let default = api.get("lead/", &[]).await;
    assert_eq!(ids(&default.body).len(), 100);
    let activities = api.get("activity/", &[("_limit", "5000")]).await;
    assert_eq!(activities.status, 400);
    let totals_only = api.get("opportunity/", &[("_limit", "0")]).await;
    assert_eq!(totals_only.status, 200);
    assert_eq!(ids(&totals_only.body).len(), 0);
}

#[tokio::test]
async fn the_skip_ceiling_is_per_resource_with_closes_message() {
    let sb = sandbox(0).await;
    let api = Api::new(&sb);
    let message = |n: u32| {
        format!(
            "The skip you set is larger than the maximum skip for this resource (max_skip = {n}). Please refine your search query."
        )
    };
    let leads = api.get("lead/", &[("_skip", "10001")]).await;
    assert_eq!(leads.status, 400);
    assert_eq!(leads.body["error"], message(10_000));
    let activities = api.get("activity/", &[("_skip", "10001")]).await;
    assert_eq!(activities.status, 200);
    let deep = api.get("activity/", &[("_skip", "250001")]).await;
    assert_eq!(deep.status, 400);
    assert_eq!(deep.body["error"], message(250_000));

    let lowered = CloseSandbox::builder()
        .max_skip(20)
        .start()
        .await
        .expect("starts");
    let api = Api::new(&lowered);
    assert_eq!(api.get("task/", &[("_skip", "20")]).await.status, 200);
    let over = api.get("task/", &[("_skip", "21")]).await;
    assert_eq!(over.status, 400);
    assert_eq!(over.body["error"], message(20));
}

#[tokio::test]
async fn a_strict_upper_date_bound_keeps_the_microsecond_it_falls_inside() {
    let sb = sandbox(5).await;
    let api = Api::new(&sb);
    let opps = api.get("opportunity/", &[("_limit", "1")]).await;
    let at = opps.body["data"][0]["date_created"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let id = ids(&opps.body);
    assert_eq!(id.len(), 1, "{}", opps.body);
    // Half a microsecond after the opportunity was created.
    let nudged = at.replacen("+00:00", "5+00:00", 1);
    assert_ne!(nudged, at);
    let kept = api
        .get(
            "opportunity/",
            &[
                ("date_created__gte", at.as_str()),
                ("date_created__lt", nudged.as_str()),
            ],
        )
        .await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    assert!(ids(&kept.body).contains(&id[0]), "{}", kept.body);
    let exact = api
        .get(
            "opportunity/",
            &[
                ("date_created__gte", at.as_str()),
                ("date_created__lt", at.as_str()),
            ],
        )
        .await;
    assert_eq!(ids(&exact.body), Vec::<String>::new());
}
