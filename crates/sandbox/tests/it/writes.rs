//! Writes: PUT is a partial update on every collection, meetings cannot be created,
//! `id__in` finds activities of any type, a contact always belongs to a lead, and a lead
//! merge moves the source's children to the destination and logs one `merged` event.

use serde_json::{Value, json};

use crate::{Api, ids, sandbox};

/// Creates at `path` with `create`, PUTs `change`, and checks that the changed fields took
/// and every other created field kept its value.
async fn partial(api: &Api, path: &str, create: Value, change: Value, kept: &[&str]) {
    let made = api.post(path, &create).await;
    assert!(
        made.status == 200 || made.status == 201,
        "{path}: {}",
        made.body
    );
    let id = made.body["id"].as_str().unwrap_or_default().to_string();
    let one = format!("{path}{id}/");
    let put = api.put(&one, &change).await;
    assert_eq!(put.status, 200, "{one}: {}", put.body);
    let now = api.get(&one, &[]).await;
    assert_eq!(now.status, 200, "{one}");
    for (k, v) in change.as_object().into_iter().flatten() {
        assert_eq!(&now.body[k.as_str()], v, "{path}: {k} changed");
    }
    for k in kept {
        assert!(!made.body[*k].is_null(), "{path}: {k} was created");
        assert_eq!(now.body[*k], made.body[*k], "{path}: {k} kept");
    }
}

#[tokio::test]
async fn put_is_a_partial_update_on_every_collection() {
    let sb = sandbox(1).await;
    let api = Api::new(&sb);
    let lead = api.get("lead/", &[]).await.body["data"][0]["id"].clone();
    partial(
        &api,
        "lead/",
        json!({"name": "Partial Co", "description": "Keeps", "url": "https://p.example"}),
        json!({"name": "Partial Co 2"}),
        &["description", "url", "status_id"],
    )
    .await;
    partial(
        &api,
        "contact/",
        json!({"lead_id": lead, "name": "Pat", "title": "CFO",
               "emails": [{"email": "pat@p.example"}], "phones": [{"phone": "+16505551234"}]}),
        json!({"title": "CEO"}),
        &["name", "emails", "phones"],
    )
    .await;
    partial(
        &api,
        "opportunity/",
        json!({"lead_id": lead, "note": "Big", "value": 50000, "confidence": 40}),
        json!({"confidence": 60}),
        &["note", "value", "status_id"],
    )
    .await;
    partial(
        &api,
        "activity/note/",
        json!({"lead_id": lead, "note": "Keeps", "title": "Before"}),
        json!({"title": "After"}),
        &["note", "lead_id"],
    )
    .await;
    partial(
        &api,
        "activity/call/",
        json!({"lead_id": lead, "note": "Keeps", "duration": 60}),
        json!({"duration": 90}),
        &["note", "direction"],
    )
    .await;
    partial(
        &api,
        "activity/email/",
        json!({"lead_id": lead, "status": "draft", "subject": "Keeps", "body_text": "Hi"}),
        json!({"body_text": "Hello"}),
        &["subject", "status"],
    )
    .await;
    partial(
        &api,
        "activity/sms/",
        json!({"lead_id": lead, "text": "Keeps", "remote_phone": "+16505551234"}),
        json!({"text": "Changed"}),
        &["remote_phone", "lead_id"],
    )
    .await;
    partial(
        &api,
        "task/",
        json!({"lead_id": lead, "text": "Keeps", "date": "2026-03-01"}),
        json!({"is_complete": true}),
        &["text", "date"],
    )
    .await;
    partial(
        &api,
        "status/lead/",
        json!({"label": "Warm"}),
        json!({"label": "Hot"}),
        &["organization_id", "date_created"],
    )
    .await;
    let pipeline = api.post("pipeline/", &json!({"name": "Renewals"})).await;
    let pipe_id = pipeline.body["id"].clone();
    partial(
        &api,
        "status/opportunity/",
        json!({"label": "Open", "type": "active", "pipeline_id": pipe_id}),
        json!({"label": "Opened"}),
        &["type", "pipeline_id"],
    )
    .await;
    partial(
        &api,
        "pipeline/",
        json!({"name": "Expansion"}),
        json!({"name": "Expansion 2"}),
        &["organization_id", "date_created"],
    )
    .await;
    partial(
        &api,
        "custom_field/lead/",
        json!({"name": "Tier", "type": "choices", "choices": ["A", "B"]}),
        json!({"name": "Tier 2"}),
        &["type", "choices"],
    )
    .await;
    partial(
        &api,
        "webhook/",
        json!({"url": "https://hooks.example/x", "verify_ssl": false,
               "events": [{"object_type": "lead", "action": "created"}]}),
        json!({"status": "paused"}),
        &["url", "events", "verify_ssl", "signature_key"],
    )
    .await;
}

#[tokio::test]
async fn a_seeded_meeting_keeps_unsent_fields_on_put() {
    let sb = sandbox(1).await;
    let api = Api::new(&sb);
    let meetings = api.get("activity/meeting/", &[]).await;
    let m = meetings.body["data"][0].clone();
    let id = m["id"].as_str().unwrap_or_default();
    let put = api
        .put(
            &format!("activity/meeting/{id}/"),
            &json!({"note": "Agenda"}),
        )
        .await;
    assert_eq!(put.status, 200);
    assert_eq!(put.body["note"], "Agenda");
    assert_eq!(put.body["title"], m["title"]);
    assert_eq!(put.body["duration"], m["duration"]);
}

#[tokio::test]
async fn meetings_cannot_be_created() {
    let sb = sandbox(1).await;
    let api = Api::new(&sb);
    let lead = api.get("lead/", &[]).await.body["data"][0]["id"].clone();
    let a = api
        .post(
            "activity/meeting/",
            &json!({"lead_id": lead, "title": "Nope"}),
        )
        .await;
    assert!(a.status == 405 || a.status == 404, "{}", a.status);
    let after = api.get("activity/meeting/", &[]).await;
    assert_eq!(ids(&after.body).len(), 1);
}

#[tokio::test]
async fn id_in_finds_activities_of_any_type() {
    let sb = sandbox(1).await;
    let api = Api::new(&sb);
    let lead = api.get("lead/", &[]).await.body["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let all = api.get("activity/", &[("lead_id", lead.as_str())]).await;
    let all_ids = ids(&all.body);
    let mut types: Vec<String> = all.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["_type"].as_str().map(str::to_string))
        .collect();
    types.sort();
    assert_eq!(types, ["Call", "Email", "Meeting", "Note"]);
    let joined = all_ids.join(",");
    let found = api.get("activity/", &[("id__in", joined.as_str())]).await;
    let mut got = ids(&found.body);
    got.sort();
    let mut want = all_ids.clone();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn fields_close_does_not_document_are_dropped_on_every_collection() {
    let sb = sandbox(1).await;
    let api = Api::new(&sb);
    let lead = api.get("lead/", &[]).await.body["data"][0]["id"].clone();
    // (collection, a valid create body, fields that must not be stored)
    let cases = [
        ("lead/", json!({"name": "Typo Co"}), "descripton"),
        ("contact/", json!({"lead_id": lead, "name": "Ty"}), "email"),
        (
            "opportunity/",
            json!({"lead_id": lead, "value": 100}),
            "amount",
        ),
        ("task/", json!({"lead_id": lead, "text": "Call"}), "due"),
        (
            "activity/note/",
            json!({"lead_id": lead, "note": "n"}),
            "body",
        ),
        ("activity/call/", json!({"lead_id": lead}), "disposition"),
    ];
    for (path, create, unknown) in cases {
        let mut body = create.clone();
        body[unknown] = json!("x");
        body["display_name"] = json!("echo");
        body["lead_name"] = json!("echo");
        let made = api.post(path, &body).await;
        assert_eq!(made.status, 200, "{path}: {}", made.body);
        assert!(made.body.get(unknown).is_none(), "{path}: {unknown} stored");
        let id = made.body["id"].as_str().unwrap_or_default();
        let one = format!("{path}{id}/");
        let put = api
            .put(
                &one,
                &json!({unknown: "y", "date_updated": "2020-01-01T00:00:00+00:00"}),
            )
            .await;
        assert_eq!(put.status, 200, "{one}: {}", put.body);
        let now = api.get(&one, &[]).await.body;
        assert!(now.get(unknown).is_none(), "{one}: {unknown} stored");
        assert_ne!(now["date_updated"], "2020-01-01T00:00:00+00:00", "{one}");
        if path != "lead/" {
            assert!(
                now.get("display_name").is_none(),
                "{one}: display_name stored"
            );
        }
        if path != "opportunity/" {
            assert!(now.get("lead_name").is_none(), "{one}: lead_name stored");
        }
    }
    // The recorded misspelling of the review: a lead PUT with `descripton` and `emails`.
    let one = format!("lead/{}/", lead.as_str().unwrap_or_default());
    let before = api.get(&one, &[]).await.body;
    let put = api
        .put(
            &one,
            &json!({"descripton": "typo", "emails": ["x@y.example"]}),
        )
        .await;
    assert_eq!(put.status, 200);
    let after = api.get(&one, &[]).await.body;
    assert!(after.get("descripton").is_none() && after.get("emails").is_none());
    assert_eq!(after["description"], before["description"]);
}

#[tokio::test]
async fn a_null_lead_id_makes_a_lead_on_create_and_is_refused_on_update() {
    let sb = sandbox(0).await;
    let api = Api::new(&sb);
    let made = api
        .post("contact/", &json!({"name": "Ann Null", "lead_id": null}))
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let lead_id = made.body["lead_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(lead_id.starts_with("lead_"), "{}", made.body);
    let lead = api.get(&format!("lead/{lead_id}/"), &[]).await;
    assert_eq!(lead.status, 200);
    assert_eq!(lead.body["name"], "Ann Null");
    assert_eq!(
        ids(&json!({"data": lead.body["contacts"]})),
        [made.body["id"].clone()]
    );

    let id = made.body["id"].as_str().unwrap_or_default().to_string();
    let orphan = api
        .put(&format!("contact/{id}/"), &json!({"lead_id": null}))
        .await;
    assert_eq!(orphan.status, 400, "{}", orphan.body);
    assert_eq!(
        orphan.body["field-errors"]["lead"],
        "This field may not be null."
    );
    let kept = api.get(&format!("contact/{id}/"), &[]).await;
    assert_eq!(kept.body["lead_id"], lead_id.as_str());
    let listed = api.get("contact/", &[("lead_id", lead_id.as_str())]).await;
    assert_eq!(ids(&listed.body), [id]);
}

#[tokio::test]
async fn a_lead_merge_moves_the_children_and_logs_the_documented_events() {
    let sb = sandbox(0).await;
    let api = Api::new(&sb);
    let made = |name: &str| {
        json!({"name": name, "description": format!("{name}'s"),
               "contacts": [{"name": format!("{name} Person")}]})
    };
    let source_body = api.post("lead/", &made("Source")).await.body;
    let source = source_body["id"].as_str().unwrap_or_default().to_string();
    let source_contact = source_body["contacts"][0]["id"].clone();
    assert!(source_contact.is_string(), "{source_body}");
    let dest = api.post("lead/", &made("Destination")).await.body["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for (body, status) in [
        (json!({"source": source}), 400),
        (json!({"source": source, "destination": source}), 400),
        (json!({"source": "lead_none", "destination": dest}), 404),
    ] {
        let a = api.post("lead/merge/", &body).await;
        assert_eq!(a.status, status, "{body}: {}", a.body);
    }
    let merged = api
        .post(
            "lead/merge/",
            &json!({"source": source, "destination": dest}),
        )
        .await;
    assert_eq!(merged.status, 200, "{}", merged.body);
    assert_eq!(api.get(&format!("lead/{source}/"), &[]).await.status, 404);
    let lead = api.get(&format!("lead/{dest}/"), &[]).await.body;
    assert_eq!(lead["name"], "Destination", "its own fields kept: {lead}");
    assert_eq!(lead["description"], "Destination's");
    let mut people: Vec<&str> = lead["contacts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    people.sort_unstable();
    assert_eq!(people, ["Destination Person", "Source Person"]);
    let log = api
        .get("event/", &[("object_type", "lead"), ("action", "merged")])
        .await;
    let events = log.body["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 1, "{}", log.body);
    assert_eq!(events[0]["object_id"], json!(dest));
    // "`lead_id` and `data` contain the lead ID and data of the resulting (destination) lead"
    assert_eq!(events[0]["lead_id"], json!(dest));
    assert_eq!(events[0]["data"]["id"], json!(dest));
    assert_eq!(events[0]["meta"]["merge_source_lead_id"], json!(source));
    assert_eq!(events[0]["meta"]["merge_destination_lead_id"], json!(dest));
    // developer.close.com/api/resources/events/list-of-event-types: a merge also logs
    // `updated` and `deleted` events for the leads and the objects involved, all naming both
    // leads in `meta`.
    let merge_meta = |e: &Value| {
        e["meta"]["merge_source_lead_id"] == json!(source)
            && e["meta"]["merge_destination_lead_id"] == json!(dest)
    };
    let logged = |object_type: &'static str, action: &'static str| {
        let api = &api;
        async move {
            let page = api
                .get(
                    "event/",
                    &[("object_type", object_type), ("action", action)],
                )
                .await;
            page.body["data"].as_array().cloned().unwrap_or_default()
        }
    };
    let deleted = logged("lead", "deleted").await;
    assert_eq!(deleted.len(), 1, "the source's deletion: {deleted:?}");
    assert_eq!(deleted[0]["object_id"], json!(source));
    assert!(merge_meta(&deleted[0]), "{}", deleted[0]);
    assert_eq!(deleted[0]["data"], Value::Null);
    assert_eq!(
        deleted[0]["previous_data"]["contacts"][0]["id"], source_contact,
        "the source as it was before the merge"
    );
    let updated = logged("lead", "updated").await;
    assert_eq!(updated.len(), 1, "the destination's update: {updated:?}");
    assert_eq!(updated[0]["object_id"], json!(dest));
    assert!(merge_meta(&updated[0]), "{}", updated[0]);
    let moved = logged("contact", "updated").await;
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0]["object_id"], source_contact);
    assert_eq!(moved[0]["lead_id"], json!(dest));
    assert_eq!(moved[0]["previous_data"]["lead_id"], json!(source));
    assert!(merge_meta(&moved[0]), "{}", moved[0]);
    assert!(
        logged("contact", "deleted").await.is_empty(),
        "a moved contact is not deleted"
    );
    let request = events[0]["request_id"].as_str().unwrap_or_default();
    let all = api.get("event/", &[("request_id", request)]).await.body;
    let all = all["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        all.len(),
        4,
        "moved contact, source, destination, merge: {all:?}"
    );
    assert!(all.iter().all(merge_meta), "{all:?}");

    // developer.close.com/api/resources/activities/lead-merges: a LeadMerge activity.
    let merges = api
        .get("activity/lead_merge/", &[("lead_id", dest.as_str())])
        .await;
    assert_eq!(merges.status, 200, "{}", merges.body);
    let merges = merges.body["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(merges.len(), 1, "{merges:?}");
    let m = &merges[0];
    assert_eq!(m["_type"], "LeadMerge");
    assert_eq!(m["source_lead_id"], json!(source));
    assert_eq!(m["destination_lead_id"], json!(dest));
    assert_eq!(m["source_display_name"], "Source");
    assert_eq!(m["destination_display_name"], "Destination");
    assert_eq!(m["merge_status"], "completed");
    assert_eq!(m["error_message"], Value::Null);
    let id = m["id"].as_str().unwrap_or_default();
    let one = api.get(&format!("activity/lead_merge/{id}/"), &[]).await;
    assert_eq!(one.body["id"], m["id"], "{}", one.body);
    let written = api
        .post(
            "activity/lead_merge/",
            &json!({"lead_id": dest, "source_lead_id": source}),
        )
        .await;
    assert_eq!(
        written.status, 405,
        "only a merge makes one: {}",
        written.body
    );
}
