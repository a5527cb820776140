//! `GET /event/`: the spec's filter combinations, newest first, null data on deletes,
//! `_limit` capped at 50 and cursor paging.

use std::collections::HashSet;

use serde_json::json;

use crate::{Api, ids, sandbox};

#[tokio::test]
async fn only_the_listed_filter_combinations_are_accepted() {
    let sb = sandbox(0).await;
    let api = Api::new(&sb);
    for refused in [
        vec![("object_type", "lead")],
        vec![("object_id", "lead_x")],
        vec![("action", "created")],
        vec![("lead_id", "lead_x"), ("request_id", "req_x")],
    ] {
        let a = api.get("event/", &refused).await;
        assert_eq!(a.status, 400, "{refused:?}");
        assert!(
            a.body["errors"][0]
                .as_str()
                .is_some_and(|m| m.contains("combination"))
        );
    }
    for accepted in [
        vec![],
        vec![("object_type", "lead"), ("action", "deleted")],
        vec![("object_type", "lead"), ("object_id", "lead_x")],
        vec![("lead_id", "lead_x")],
        vec![
            ("lead_id", "lead_x"),
            ("object_type", "contact"),
            ("action", "created"),
        ],
        vec![("user_id", "user_x"), ("object_type", "lead")],
        vec![("request_id", "req_x")],
        vec![
            ("object_type", "lead"),
            ("action", "created"),
            ("date_updated__gte", "2020-01-01"),
            ("date_updated__lte", "2100-01-01"),
        ],
    ] {
        assert_eq!(
            api.get("event/", &accepted).await.status,
            200,
            "{accepted:?}"
        );
    }
}

#[tokio::test]
async fn events_come_newest_first_and_deletes_carry_no_data() {
    let sb = sandbox(0).await;
    let api = Api::new(&sb);
    let lead = api.post("lead/", &json!({"name": "Evented"})).await;
    let id = lead.body["id"].as_str().unwrap_or_default().to_string();
    api.put(&format!("lead/{id}/"), &json!({"description": "changed"}))
        .await;
    api.delete(&format!("lead/{id}/")).await;
    let log = api.get("event/", &[("lead_id", id.as_str())]).await;
    let actions: Vec<&str> = log.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["deleted", "updated", "created"]);
    assert!(log.body["data"][0]["data"].is_null());
    assert_eq!(log.body["data"][1]["data"]["description"], "changed");
    assert_eq!(log.body["data"][2]["data"]["name"], "Evented");
}

#[tokio::test]
async fn the_limit_is_capped_at_50_and_the_cursor_pages_back() {
    let sb = sandbox(0).await;
    let api = Api::new(&sb);
    for i in 0..60 {
        api.post("lead/", &json!({"name": format!("Lead {i}")}))
            .await;
    }
    let filter = [("object_type", "lead"), ("action", "created")];
    let first = api
        .get("event/", &[filter[0], filter[1], ("_limit", "500")])
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(ids(&first.body).len(), 50);
    assert_eq!(first.body["data"][0]["data"]["name"], "Lead 59");
    let cursor = first.body["cursor_next"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!cursor.is_empty());
    let second = api
        .get(
            "event/",
            &[filter[0], filter[1], ("_cursor", cursor.as_str())],
        )
        .await;
    assert_eq!(ids(&second.body).len(), 10);
    assert!(second.body["cursor_next"].is_null());
    assert_eq!(second.body["data"][9]["data"]["name"], "Lead 0");
    let all: HashSet<String> = ids(&first.body)
        .into_iter()
        .chain(ids(&second.body))
        .collect();
    assert_eq!(all.len(), 60);
}
