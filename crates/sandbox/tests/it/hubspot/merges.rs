//! Merges, GDPR deletes, unknown routes and faults aimed through the admin endpoint.

use crmkit_sandbox::faults::Faults;
use serde_json::{Value, json};

use super::{Hs, hubspot};

async fn make(hs: &Hs, props: Value) -> String {
    let a = hs
        .post("/crm/v3/objects/contacts", &json!({"properties": props}))
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["id"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_merge_keeps_the_primary_values_and_fills_the_gaps() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    let primary = make(&hs, json!({"email": "p@x.io", "firstname": "Pat"})).await;
    let other = make(
        &hs,
        json!({"email": "o@x.io", "firstname": "Oli", "jobtitle": "CTO"}),
    )
    .await;
    let a = hs
        .post(
            "/crm/v3/objects/contacts/merge",
            &json!({"primaryObjectId": primary, "objectIdToMerge": other}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let p = &a.body["properties"];
    assert_eq!(p["firstname"], json!("Pat"));
    assert_eq!(p["jobtitle"], json!("CTO"));
    assert_eq!(p["hs_additional_emails"], json!("o@x.io"));
    assert_eq!(p["hs_merged_object_ids"], json!(other));
    // The merged-away id answers with the winner, and is not listed as archived.
    let old = hs
        .get(&format!("/crm/v3/objects/contacts/{other}"), &[])
        .await;
    assert_eq!(old.status, 200);
    assert_eq!(old.body["id"], json!(primary));
    let archived = hs
        .get("/crm/v3/objects/contacts", &[("archived", "true")])
        .await;
    assert_eq!(archived.body["results"], json!([]));
    assert_eq!(sb.count("contacts"), 1);
    let again = hs
        .post(
            "/crm/v3/objects/contacts/merge",
            &json!({"primaryObjectId": primary, "objectIdToMerge": other}),
        )
        .await;
    assert_eq!(again.status, 404);
    // hs_merged_object_ids is HubSpot's to write.
    let refused = hs
        .patch(
            &format!("/crm/v3/objects/contacts/{primary}"),
            &json!({"properties": {"hs_merged_object_ids": "1"}}),
        )
        .await;
    assert_eq!(refused.status, 400);
}

#[tokio::test]
async fn a_gdpr_delete_leaves_nothing_behind_and_frees_the_email() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    let id = make(&hs, json!({"email": "g@x.io"})).await;
    let a = hs
        .post(
            "/crm/v3/objects/contacts/gdpr-delete",
            &json!({"objectId": "g@x.io", "idProperty": "email"}),
        )
        .await;
    assert_eq!(a.status, 204);
    let archived = hs
        .get(
            &format!("/crm/v3/objects/contacts/{id}"),
            &[("archived", "true")],
        )
        .await;
    assert_eq!(archived.status, 404);
    make(&hs, json!({"email": "g@x.io"})).await;
}

#[tokio::test]
async fn unknown_routes_and_types_answer_json_errors() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    let a = hs.get("/crm/v3/nothing-here", &[]).await;
    assert_eq!(a.status, 404);
    assert!(a.content_type().starts_with("application/json"));
    let b = hs.get("/crm/v3/objects/widgets", &[]).await;
    assert_eq!(b.status, 400);
    assert_eq!(
        b.body["message"],
        json!("Unable to infer object type from: widgets")
    );
    let long = "x".repeat(3_001);
    let c = hs
        .post("/crm/v3/objects/contacts/search", &json!({"query": long}))
        .await;
    assert_eq!(c.status, 400);
}

#[tokio::test]
async fn faults_aimed_at_one_route_leave_the_others_alone() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    let faults = Faults {
        rate_503: 1.0,
        route: Some("POST /crm/v3/objects/deals".into()),
        ..Faults::default()
    };
    let put = hs
        .http
        .put(format!("{}/_sandbox/faults", hs.root))
        .json(&faults)
        .send()
        .await
        .expect("answers");
    assert_eq!(put.status().as_u16(), 204);
    let refused = hs
        .post(
            "/crm/v3/objects/deals",
            &json!({"properties": {"dealname": "x"}}),
        )
        .await;
    assert_eq!(refused.status, 503);
    assert!(refused.content_type().starts_with("application/json"));
    assert_eq!(hs.get("/crm/v3/objects/deals", &[]).await.status, 200);
    assert_eq!(sb.count("deals"), 0);
}
