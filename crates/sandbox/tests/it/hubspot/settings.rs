//! Pipelines, property definitions (v3 and v2) and owners.

use serde_json::json;

use super::{Hs, hubspot};

#[tokio::test]
async fn the_default_deal_pipeline_has_the_default_stages() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    let a = hs.get("/crm/v3/pipelines/deals", &[]).await;
    assert_eq!(a.status, 200);
    let p = &a.body["results"][0];
    assert_eq!(p["id"], json!("default"));
    let ids: Vec<&str> = p["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "appointmentscheduled",
            "qualifiedtobuy",
            "presentationscheduled",
            "decisionmakerboughtin",
            "contractsent",
            "closedwon",
            "closedlost"
        ]
    );
    let won = hs
        .get("/crm/v3/pipelines/0-3/default/stages/closedwon", &[])
        .await;
    assert_eq!(won.body["metadata"]["isClosed"], json!("true"));
    assert_eq!(
        hs.get("/crm/v3/pipelines/deals/nope", &[]).await.status,
        404
    );
}

#[tokio::test]
async fn properties_list_in_v3_and_v2_and_a_custom_one_becomes_writable() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    let v3 = hs.get("/crm/v3/properties/contacts", &[]).await;
    assert_eq!(v3.status, 200);
    let names: Vec<&str> = v3.body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(names.contains(&"email") && names.contains(&"lastmodifieddate"));
    let v2 = hs.get("/properties/v2/contacts/properties", &[]).await;
    assert_eq!(v2.status, 200);
    assert!(
        v2.body
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p["name"] == "email"))
    );
    assert!(v2.content_type().starts_with("application/json"));

    let refused = hs
        .post(
            "/crm/v3/objects/contacts",
            &json!({"properties": {"shoe_size": "42"}}),
        )
        .await;
    assert_eq!(refused.status, 400);
    let def = json!({"name": "shoe_size", "label": "Shoe size", "type": "number", "fieldType": "number", "groupName": "contactinformation"});
    let made = hs.post("/crm/v3/properties/contacts", &def).await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(
        hs.post("/crm/v3/properties/contacts", &def).await.status,
        409
    );
    let ok = hs
        .post(
            "/crm/v3/objects/contacts",
            &json!({"properties": {"shoe_size": 42}}),
        )
        .await;
    assert_eq!(ok.status, 201);
    assert_eq!(ok.body["properties"]["shoe_size"], json!("42"));
}

#[tokio::test]
async fn owners_are_listed_and_found_by_id_or_user_id() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    let all = hs.get("/crm/v3/owners", &[]).await;
    assert_eq!(all.body["results"].as_array().map(Vec::len), Some(2));
    let id = all.body["results"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let user = all.body["results"][0]["userId"].to_string();
    assert_eq!(
        hs.get(&format!("/crm/v3/owners/{id}"), &[]).await.body["id"],
        json!(id)
    );
    let by_user = hs
        .get(
            &format!("/crm/v3/owners/{user}"),
            &[("idProperty", "userId")],
        )
        .await;
    assert_eq!(by_user.body["id"], json!(id));
}
