//! Associations v4: labelled and default creation, listing, batch read and removal.

use serde_json::{Value, json};

use super::{Hs, hubspot};

async fn make(hs: &Hs, kind: &str, props: Value) -> String {
    let a = hs
        .post(
            &format!("/crm/v3/objects/{kind}"),
            &json!({"properties": props}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["id"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn default_and_labelled_associations_are_seen_from_both_sides() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    let contact = make(&hs, "contacts", json!({"email": "c@x.io"})).await;
    let company = make(&hs, "companies", json!({"name": "X"})).await;
    let deal = make(&hs, "deals", json!({"dealname": "D"})).await;

    let d = hs
        .post(
            &format!("/crm/v4/objects/contact/{contact}/associations/default/company/{company}"),
            &json!({}),
        )
        .await;
    assert_eq!(d.status, 405, "default association is a PUT");
    let put = |path: String, body: Value| {
        let hs = &hs;
        async move {
            let r = hs
                .http
                .put(format!("{}{path}", hs.root))
                .bearer_auth(&hs.token)
                .json(&body)
                .send()
                .await
                .expect("answers");
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or_default(),
            )
        }
    };
    let (status, body) = put(
        format!("/crm/v4/objects/contacts/{contact}/associations/default/companies/{company}"),
        json!(null),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][0]["associationSpec"]["associationTypeId"],
        json!(279)
    );
    let (status, body) = put(
        format!("/crm/v4/objects/0-1/{contact}/associations/0-3/{deal}"),
        json!([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 4}]),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["toObjectTypeId"], json!("0-3"));

    let from_company = hs
        .get(
            &format!("/crm/v4/objects/companies/{company}/associations/contacts"),
            &[],
        )
        .await;
    assert_eq!(
        from_company.body["results"][0]["associationTypes"][0]["typeId"],
        json!(280)
    );
    let from_deal = hs
        .get(
            &format!("/crm/v4/objects/deals/{deal}/associations/contacts"),
            &[],
        )
        .await;
    assert_eq!(
        from_deal.body["results"][0]["associationTypes"][0]["typeId"],
        json!(3)
    );
    let v3 = hs
        .get(
            &format!("/crm/v3/objects/contacts/{contact}"),
            &[("associations", "companies")],
        )
        .await;
    assert_eq!(
        v3.body["associations"]["companies"]["results"][0]["id"],
        json!(company)
    );

    let read = hs
        .post(
            "/crm/v4/associations/contacts/companies/batch/read",
            &json!({"inputs": [{"id": contact}, {"id": "1"}]}),
        )
        .await;
    assert_eq!(read.status, 207);
    assert_eq!(
        read.body["results"][0]["to"][0]["toObjectId"].to_string(),
        company
    );

    let found = hs
        .post(
            "/crm/v3/objects/contacts/search",
            &json!({"filterGroups": [{"filters": [{"propertyName": "associations.company", "operator": "EQ", "value": company}]}]}),
        )
        .await;
    assert_eq!(crate::hubspot::ids(&found.body), vec![contact.to_string()]);

    let gone = hs
        .delete(&format!(
            "/crm/v4/objects/contacts/{contact}/associations/companies/{company}"
        ))
        .await;
    assert_eq!(gone.status, 204);
    let after = hs
        .get(
            &format!("/crm/v4/objects/companies/{company}/associations/contacts"),
            &[],
        )
        .await;
    assert_eq!(after.body["results"], json!([]));

    let batch = hs
        .post("/crm/v4/associations/deals/companies/batch/create", &json!({"inputs": [
            {"from": {"id": deal}, "to": {"id": company}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 341}]}]}))
        .await;
    assert_eq!(batch.status, 201, "{}", batch.body);
    let rev = hs
        .get(
            &format!("/crm/v4/objects/companies/{company}/associations/deals"),
            &[],
        )
        .await;
    assert_eq!(
        rev.body["results"][0]["associationTypes"][0]["typeId"],
        json!(342)
    );
}

async fn make_one(hs: &super::Hs, path: &str, props: serde_json::Value) -> String {
    let a = hs
        .post(path, &serde_json::json!({"properties": props}))
        .await;
    a.body["id"].as_str().unwrap_or_default().to_string()
}

async fn type_ids(hs: &super::Hs, contact: &str) -> Vec<u64> {
    let path = format!("/crm/v4/objects/contacts/{contact}/associations/companies");
    let a = hs.get(&path, &[]).await;
    let mut ids: Vec<u64> = a.body["results"][0]["associationTypes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["typeId"].as_u64())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn removing_one_label_keeps_the_others_but_removing_the_unlabeled_one_removes_all() {
    let sb = super::hubspot(0).await;
    let hs = super::Hs::new(&sb);
    let contact = make_one(
        &hs,
        "/crm/v3/objects/contacts",
        serde_json::json!({"email": "l@x.io"}),
    )
    .await;
    let company = make_one(
        &hs,
        "/crm/v3/objects/companies",
        serde_json::json!({"name": "L"}),
    )
    .await;
    let spec = |category: &str, id: u32| serde_json::json!({"associationCategory": category, "associationTypeId": id});
    let put = hs
        .put(
            &format!("/crm/v4/objects/contacts/{contact}/associations/companies/{company}"),
            &serde_json::json!([spec("HUBSPOT_DEFINED", 1), spec("USER_DEFINED", 1001)]),
        )
        .await;
    assert_eq!(put.status, 201);
    // The primary type brings the unlabelled one, and is labelled "Primary".
    assert_eq!(type_ids(&hs, &contact).await, [1, 279, 1001]);
    let listed = hs
        .get(
            &format!("/crm/v4/objects/contacts/{contact}/associations/companies"),
            &[],
        )
        .await;
    let primary = listed.body["results"][0]["associationTypes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["typeId"] == 1)
        .map(|t| t["label"].clone());
    assert_eq!(primary, Some(serde_json::json!("Primary")));
    let archive = |id: u32| {
        serde_json::json!({"inputs": [{"from": {"id": contact}, "to": {"id": company},
                                       "types": [spec("HUBSPOT_DEFINED", id)]}]})
    };
    let a = hs
        .post(
            "/crm/v4/associations/contacts/companies/batch/labels/archive",
            &archive(1),
        )
        .await;
    assert_eq!(a.status, 204);
    assert_eq!(type_ids(&hs, &contact).await, [279, 1001]);
    hs.post(
        "/crm/v4/associations/contacts/companies/batch/labels/archive",
        &archive(279),
    )
    .await;
    assert!(type_ids(&hs, &contact).await.is_empty());
}
