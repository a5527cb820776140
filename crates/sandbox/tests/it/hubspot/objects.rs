//! CRM v3 objects: status codes, error bodies, maintained properties, paging, email uniqueness.

use serde_json::json;

use super::{Hs, hubspot, ids};

#[tokio::test]
async fn create_read_patch_archive_with_exact_status_codes() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    let created = hs
        .post(
            "/crm/v3/objects/contacts",
            &json!({"properties": {"email": "ann@acme.com", "firstname": "Ann", "company": 17}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(created.content_type().starts_with("application/json"));
    let id = created.body["id"].as_str().unwrap_or_default().to_string();
    let p = &created.body["properties"];
    assert_eq!(p["hs_object_id"], json!(id));
    assert_eq!(p["company"], json!("17"), "values are strings");
    assert_eq!(p["createdate"], p["lastmodifieddate"]);
    assert_eq!(created.body["archived"], json!(false));
    assert_eq!(created.body["createdAt"], p["createdate"]);

    // Times are the write's millisecond, so the patch waits for a later one.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let patched = hs
        .patch(
            &format!("/crm/v3/objects/0-1/{id}"),
            &json!({"properties": {"lastname": "Lee"}}),
        )
        .await;
    assert_eq!(patched.status, 200);
    let got = hs
        .get(
            &format!("/crm/v3/objects/contact/{id}"),
            &[
                ("properties", "firstname,lastname,jobtitle"),
                ("propertiesWithHistory", "lastname"),
            ],
        )
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.body["properties"]["firstname"],
        json!("Ann"),
        "a patch keeps other values"
    );
    assert_eq!(got.body["properties"]["lastname"], json!("Lee"));
    assert_eq!(got.body["properties"]["jobtitle"], json!(null));
    assert_eq!(
        got.body["propertiesWithHistory"]["lastname"][0]["value"],
        json!("Lee")
    );
    assert!(got.body["updatedAt"].as_str() > got.body["createdAt"].as_str());

    let by_email = hs
        .get(
            "/crm/v3/objects/contacts/ANN@acme.com",
            &[("idProperty", "email")],
        )
        .await;
    assert_eq!(by_email.body["id"], json!(id));

    let gone = hs.delete(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_eq!(gone.status, 204);
    assert!(gone.headers.get("content-type").is_none());
    let missing = hs.get(&format!("/crm/v3/objects/contacts/{id}"), &[]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["category"], json!("OBJECT_NOT_FOUND"));
    let archived = hs
        .get(
            &format!("/crm/v3/objects/contacts/{id}"),
            &[("archived", "true")],
        )
        .await;
    assert_eq!(archived.body["archived"], json!(true));
}

#[tokio::test]
async fn an_unknown_property_is_a_400_with_hubspots_error_body() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    let a = hs
        .post(
            "/crm/v3/objects/deals",
            &json!({"properties": {"dealname": "x", "colour": "red"}}),
        )
        .await;
    assert_eq!(a.status, 400);
    assert!(a.content_type().starts_with("application/json"));
    for field in ["status", "message", "correlationId", "category", "errors"] {
        assert!(!a.body[field].is_null(), "{field} in {}", a.body);
    }
    assert_eq!(a.body["category"], json!("VALIDATION_ERROR"));
    assert!(
        a.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("colour")
    );
    let read_only = hs
        .post(
            "/crm/v3/objects/deals",
            &json!({"properties": {"hs_object_id": "1"}}),
        )
        .await;
    assert_eq!(read_only.status, 400);
    assert_eq!(sb.count("deals"), 0);
}

#[tokio::test]
async fn a_second_contact_with_the_same_email_is_a_409_naming_the_first() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    let first = hs
        .post(
            "/crm/v3/objects/contacts",
            &json!({"properties": {"email": "bo@x.io"}}),
        )
        .await;
    let id = first.body["id"].as_str().unwrap_or_default().to_string();
    let again = hs
        .post(
            "/crm/v3/objects/contacts",
            &json!({"properties": {"email": "BO@x.io"}}),
        )
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["category"], json!("CONFLICT"));
    assert_eq!(
        again.body["message"],
        json!(format!("Contact already exists. Existing ID: {id}"))
    );
}

#[tokio::test]
async fn lists_page_with_after_and_stop_without_paging() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    for i in 0..5 {
        let a = hs
            .post(
                "/crm/v3/objects/companies",
                &json!({"properties": {"name": format!("C{i}")}}),
            )
            .await;
        assert_eq!(a.status, 201);
    }
    let mut seen = vec![];
    let mut after = String::new();
    loop {
        let mut q = vec![("limit", "2")];
        if !after.is_empty() {
            q.push(("after", after.as_str()));
        }
        let page = hs.get("/crm/v3/objects/0-2", &q).await;
        assert_eq!(page.status, 200);
        seen.extend(ids(&page.body));
        match page.body["paging"]["next"]["after"].as_str() {
            Some(next) => after = next.to_string(),
            None => {
                assert!(page.body.get("paging").is_none());
                break;
            }
        }
    }
    assert_eq!(seen.len(), 5);
    let big = hs
        .get("/crm/v3/objects/companies", &[("limit", "500")])
        .await;
    assert_eq!(ids(&big.body).len(), 5);
    let props = &big.body["results"][0]["properties"];
    assert!(props.get("hs_lastmodifieddate").is_some() && props.get("lastmodifieddate").is_none());
}

#[tokio::test]
async fn the_seeded_world_has_associated_contacts_and_deals() {
    let sb = hubspot(20).await;
    let hs = Hs::new(&sb);
    let companies = sb.count("companies");
    assert!((5..20).contains(&companies), "{companies}");
    let page = hs
        .get(
            "/crm/v3/objects/contacts",
            &[("limit", "1"), ("associations", "companies,deals")],
        )
        .await;
    let c = &page.body["results"][0];
    assert_eq!(
        c["associations"]["companies"]["results"][0]["type"],
        json!("contact_to_company")
    );
    let deals = hs
        .get(
            "/crm/v3/objects/deals",
            &[("limit", "100"), ("properties", "pipeline,dealstage")],
        )
        .await;
    let stages = [
        "appointmentscheduled",
        "presentationscheduled",
        "contractsent",
        "closedwon",
        "closedlost",
    ];
    for d in deals.body["results"].as_array().into_iter().flatten() {
        assert_eq!(d["properties"]["pipeline"], json!("default"));
        assert!(stages.contains(&d["properties"]["dealstage"].as_str().unwrap_or_default()));
    }
}

#[tokio::test]
async fn default_properties_exist_and_calculated_ones_are_read_only() {
    let sb = super::hubspot(0).await;
    let hs = super::Hs::new(&sb);
    let co = hs
        .post(
            "/crm/v3/objects/companies",
            &serde_json::json!({"properties": {"name": "Acme", "lifecyclestage": "customer",
                "industry": "COMPUTER_SOFTWARE", "domain": "acme.io", "website": "acme.io"}}),
        )
        .await;
    assert_eq!(co.status, 201, "{}", co.body);
    let contact = hs
        .post(
            "/crm/v3/objects/contacts",
            &serde_json::json!({"properties": {"email": "a@acme.io", "lifecyclestage": "lead",
                "company": "Acme", "jobtitle": "CTO", "phone": "1", "website": "acme.io",
                "associatedcompanyid": co.body["id"]}}),
        )
        .await;
    assert_eq!(contact.status, 201, "{}", contact.body);
    let deal = hs
        .post(
            "/crm/v3/objects/deals",
            &serde_json::json!({"properties": {"dealname": "D", "deal_currency_code": "EUR",
                "dealstage": "qualifiedtobuy", "closedate": "2026-01-01T00:00:00.000Z",
                "hubspot_owner_id": "1"}}),
        )
        .await;
    assert_eq!(deal.status, 201, "{}", deal.body);
    assert_eq!(
        deal.body["properties"]["hs_deal_stage_probability"],
        serde_json::json!("0.4")
    );
    let id = deal.body["id"].as_str().unwrap_or_default().to_string();
    let moved = hs
        .patch(
            &format!("/crm/v3/objects/deals/{id}"),
            &serde_json::json!({"properties": {"dealstage": "contractsent"}}),
        )
        .await;
    assert_eq!(
        moved.body["properties"]["hs_deal_stage_probability"],
        serde_json::json!("0.9")
    );
    for (prop, value) in [("hs_deal_stage_probability", "0.5"), ("hs_object_id", "1")] {
        let refused = hs
            .patch(
                &format!("/crm/v3/objects/deals/{id}"),
                &serde_json::json!({"properties": {prop: value}}),
            )
            .await;
        assert_eq!(refused.status, 400, "{prop}");
        assert_eq!(
            refused.body["category"],
            serde_json::json!("VALIDATION_ERROR")
        );
    }
    let def = hs
        .get("/crm/v3/properties/deals/hs_deal_stage_probability", &[])
        .await;
    assert_eq!(
        def.body["modificationMetadata"]["readOnlyValue"],
        serde_json::json!(true)
    );
}
