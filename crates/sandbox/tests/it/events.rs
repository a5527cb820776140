//! `GET /event/`: the spec's filter combinations, newest first, null data and the whole
//! prior object on deletes, one `request_id` per request, `_limit` capped at 50, cursor
//! paging both ways, and no events for a refused write.

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
    assert!(first.body["cursor_previous"].is_null());
    // From the second page, the previous cursor reads the first page again.
    let back = second.body["cursor_previous"].as_str().unwrap_or_default();
    let again = api
        .get("event/", &[filter[0], filter[1], ("_cursor", back)])
        .await;
    assert_eq!(ids(&again.body), ids(&first.body));
}

#[tokio::test]
async fn a_delete_carries_the_prior_object_and_one_request_shares_one_request_id() {
    let sb = sandbox(0).await;
    let api = Api::new(&sb);
    let lead = api
        .post(
            "lead/",
            &json!({"name": "Gone", "description": "d",
                    "contacts": [{"name": "Ann"}, {"name": "Bob"}]}),
        )
        .await;
    assert_eq!(lead.status, 200, "{}", lead.body);
    let id = lead.body["id"].as_str().unwrap_or_default().to_string();
    let opp = api
        .post(
            "opportunity/",
            &json!({"lead_id": id, "value": 100, "note": "n"}),
        )
        .await;
    assert_eq!(opp.status, 200, "{}", opp.body);
    let opp_id = opp.body["id"].as_str().unwrap_or_default().to_string();
    let created = api.get("event/", &[("lead_id", id.as_str())]).await.body;
    let create_requests: HashSet<&str> = created["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["object_type"] != "opportunity")
        .filter_map(|e| e["request_id"].as_str())
        .collect();
    assert_eq!(create_requests.len(), 1, "the lead and its nested contacts");
    assert_eq!(api.delete(&format!("lead/{id}/")).await.status, 200);
    let log = api
        .get("event/", &[("object_type", "lead"), ("action", "deleted")])
        .await
        .body;
    let deleted = &log["data"][0];
    assert_eq!(deleted["object_id"], id.as_str());
    assert!(deleted["data"].is_null());
    assert_eq!(deleted["previous_data"]["name"], "Gone");
    assert_eq!(deleted["previous_data"]["description"], "d");
    assert_eq!(deleted["previous_data"]["id"], id.as_str());
    // The tombstone is rendered before the cascade, so it still holds the lead's children.
    let nested = |key: &str, field: &str| -> Vec<String> {
        let mut v: Vec<String> = deleted["previous_data"][key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c[field].as_str().map(str::to_string))
            .collect();
        v.sort_unstable();
        v
    };
    let mut contact_ids: Vec<String> = lead.body["contacts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .collect();
    contact_ids.sort_unstable();
    assert_eq!(contact_ids.len(), 2);
    assert_eq!(nested("contacts", "id"), contact_ids);
    assert_eq!(nested("contacts", "name"), ["Ann", "Bob"]);
    assert_eq!(nested("opportunities", "id"), [opp_id]);
    assert_eq!(deleted["previous_data"]["opportunities"][0]["value"], 100);
    let request = deleted["request_id"].as_str().unwrap_or_default();
    let cascade = api.get("event/", &[("request_id", request)]).await.body;
    // The lead, two contacts and one opportunity, all from one DELETE: Close logs a
    // `deleted` event for each child of a deleted lead too.
    assert_eq!(ids(&cascade).len(), 4, "{cascade}");
    let opp = cascade["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["object_type"] == "opportunity");
    assert_eq!(
        opp.map(|e| e["previous_data"]["value"].clone()),
        Some(json!(100))
    );
}

#[tokio::test]
async fn a_refused_write_leaves_no_row_and_no_event() {
    let sb = sandbox(0).await;
    let api = Api::new(&sb);
    let leads_before = ids(&api.get("lead/", &[]).await.body).len();
    // A contact without lead_id whose custom field is unknown: no lead may be left behind.
    let a = api
        .post(
            "contact/",
            &json!({"name": "Orphan", "custom.cf_nope": "x"}),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    // A lead whose second nested contact is invalid: neither the lead nor the first contact.
    let b = api
        .post(
            "lead/",
            &json!({"name": "Half", "contacts": [{"name": "Ok"},
                    {"name": "Bad", "emails": [{"email": "not-an-address"}]}]}),
        )
        .await;
    assert_eq!(b.status, 400, "{}", b.body);
    assert!(
        b.body["field-errors"]["contacts.1.emails.0.email"].is_string(),
        "{}",
        b.body
    );
    assert_eq!(ids(&api.get("lead/", &[]).await.body).len(), leads_before);
    assert!(ids(&api.get("contact/", &[]).await.body).is_empty());
    assert!(ids(&api.get("event/", &[]).await.body).is_empty());
    // Without lead_id, a valid contact gets its lead, and both are in the event log.
    let c = api.post("contact/", &json!({"name": "Solo"})).await;
    assert_eq!(c.status, 200, "{}", c.body);
    let lead = c.body["lead_id"].as_str().unwrap_or_default();
    let lead_events = api.get("event/", &[("lead_id", lead)]).await.body;
    let kinds: Vec<&str> = lead_events["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["object_type"].as_str())
        .collect();
    assert_eq!(kinds, ["contact", "lead"]);
}
