//! Batch endpoints: the 100-input limit and 207 multi-status partial failures.

use serde_json::{Value, json};

use super::{Hs, hubspot};

#[tokio::test]
async fn more_than_100_inputs_is_a_400() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    let inputs: Vec<Value> = (0..101)
        .map(|i| json!({"properties": {"name": format!("c{i}")}}))
        .collect();
    let a = hs
        .post(
            "/crm/v3/objects/companies/batch/create",
            &json!({"inputs": inputs}),
        )
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(sb.count("companies"), 0);
    let hundred: Vec<Value> = (0..100)
        .map(|i| json!({"properties": {"name": format!("c{i}")}}))
        .collect();
    let ok = hs
        .post(
            "/crm/v3/objects/companies/batch/create",
            &json!({"inputs": hundred}),
        )
        .await;
    assert_eq!(ok.status, 201);
    assert_eq!(ok.body["status"], json!("COMPLETE"));
    assert_eq!(sb.count("companies"), 100);
}

#[tokio::test]
async fn partial_failures_are_a_207_with_num_errors() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    let made = hs
        .post(
            "/crm/v3/objects/contacts/batch/create",
            &json!({"inputs": [
            {"properties": {"email": "a@x.io"}}, {"properties": {"nope": "1"}}]}),
        )
        .await;
    assert_eq!(made.status, 207);
    assert_eq!(made.body["numErrors"], json!(1));
    assert_eq!(
        made.body["errors"][0]["category"],
        json!("VALIDATION_ERROR")
    );
    let id = made.body["results"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let read = hs
        .post(
            "/crm/v3/objects/contacts/batch/read",
            &json!({"inputs": [{"id": id}, {"id": "999999999"}], "properties": ["email"]}),
        )
        .await;
    assert_eq!(read.status, 207);
    assert_eq!(
        read.body["errors"][0]["context"]["ids"],
        json!(["999999999"])
    );
    assert_eq!(
        read.body["results"][0]["properties"]["email"],
        json!("a@x.io")
    );
    let upsert = hs
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            &json!({"inputs": [
            {"id": "a@x.io", "idProperty": "email", "properties": {"firstname": "A"}},
            {"id": "b@x.io", "idProperty": "email", "properties": {"firstname": "B"}}]}),
        )
        .await;
    assert_eq!(upsert.status, 200, "{}", upsert.body);
    let news: Vec<&Value> = upsert.body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| &r["new"])
        .collect();
    assert_eq!(news, [&json!(false), &json!(true)]);
    assert_eq!(
        upsert.body["results"][1]["properties"]["email"],
        json!("b@x.io")
    );
    let update = hs
        .post("/crm/v3/objects/contacts/batch/update", &json!({"inputs": [
            {"id": id, "properties": {"lastname": "Z"}}, {"id": "1", "properties": {"lastname": "Z"}}]}))
        .await;
    assert_eq!(update.status, 207);
    let archived = hs
        .post(
            "/crm/v3/objects/contacts/batch/archive",
            &json!({"inputs": [{"id": id}]}),
        )
        .await;
    assert_eq!(archived.status, 204);
    assert_eq!(sb.count("contacts"), 1);
}

#[tokio::test]
async fn the_shuffle_fault_answers_batches_out_of_input_order() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    let names: Vec<String> = (0..4).map(|i| format!("c{i}")).collect();
    let inputs: Vec<Value> = names
        .iter()
        .map(|n| json!({"properties": {"name": n}}))
        .collect();
    sb.set_faults(crmkit_sandbox::faults::Faults {
        shuffle_batch_results: true,
        route: Some("/crm/v3/objects/companies/batch/*".into()),
        ..Default::default()
    });
    let made = hs
        .post(
            "/crm/v3/objects/companies/batch/create",
            &json!({"inputs": inputs}),
        )
        .await;
    assert_eq!(made.status, 201);
    let got: Vec<&str> = made.body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["properties"]["name"].as_str())
        .collect();
    assert_eq!(got.len(), 4);
    assert!(
        got.iter().zip(&names).all(|(g, n)| g != n),
        "every result moved: {got:?}"
    );
    // Other routes keep their order.
    let list = hs.get("/crm/v3/objects/companies", &[]).await;
    let ids = super::ids(&list.body);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
}

#[tokio::test]
async fn custom_unique_properties_address_records_and_refuse_duplicates() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    for (name, unique) in [("crmkit_id", true), ("plain", false)] {
        let def = hs
            .post(
                "/crm/v3/properties/companies",
                &json!({"name": name, "label": name, "type": "string", "fieldType": "text",
                        "groupName": "companyinformation", "hasUniqueValue": unique}),
            )
            .await;
        assert_eq!(def.status, 201, "{}", def.body);
    }
    let made = hs
        .post(
            "/crm/v3/objects/companies",
            &json!({"properties": {"name": "Acme", "crmkit_id": "m1", "plain": "p"}}),
        )
        .await;
    assert_eq!(made.status, 201);
    let id = made.body["id"].clone();
    let one = hs
        .get(
            "/crm/v3/objects/companies/m1",
            &[("idProperty", "crmkit_id")],
        )
        .await;
    assert_eq!((one.status, &one.body["id"]), (200, &id));
    let read = hs
        .post(
            "/crm/v3/objects/companies/batch/read",
            &json!({"inputs": [{"id": "m1"}], "idProperty": "crmkit_id"}),
        )
        .await;
    assert_eq!(read.body["results"][0]["id"], id);
    // Only unique properties address records.
    let plain = hs
        .post(
            "/crm/v3/objects/companies/batch/read",
            &json!({"inputs": [{"id": "p"}], "idProperty": "plain"}),
        )
        .await;
    assert_eq!(plain.status, 400);
    // A second record may not take the value, on create or update.
    let twin = hs
        .post(
            "/crm/v3/objects/companies",
            &json!({"properties": {"name": "Twin", "crmkit_id": "m1"}}),
        )
        .await;
    assert_eq!(twin.status, 409, "{}", twin.body);
    assert_eq!(twin.body["category"], json!("CONFLICT"));
    let other = hs
        .post(
            "/crm/v3/objects/companies",
            &json!({"properties": {"name": "Other"}}),
        )
        .await;
    let other_id = other.body["id"].as_str().unwrap_or_default().to_string();
    let taken = hs
        .patch(
            &format!("/crm/v3/objects/companies/{other_id}"),
            &json!({"properties": {"crmkit_id": "m1"}}),
        )
        .await;
    assert_eq!(taken.status, 409);
    // Upserts by the property update the holder or create a new one.
    let up = hs
        .post(
            "/crm/v3/objects/companies/batch/upsert",
            &json!({"inputs": [
                {"id": "m1", "idProperty": "crmkit_id", "properties": {"name": "Acme 2"}},
                {"id": "m2", "idProperty": "crmkit_id", "properties": {"name": "New"}}]}),
        )
        .await;
    assert_eq!(up.status, 200, "{}", up.body);
    assert_eq!(up.body["results"][0]["id"], id);
    assert_eq!(up.body["results"][0]["new"], json!(false));
    assert_eq!(up.body["results"][1]["new"], json!(true));
    assert_eq!(
        up.body["results"][1]["properties"]["crmkit_id"],
        json!("m2")
    );
    assert_eq!(sb.count("companies"), 3);
}

#[tokio::test]
async fn batch_read_takes_archived_as_a_query_parameter() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    let made = hs
        .post(
            "/crm/v3/objects/companies",
            &json!({"properties": {"name": "Gone"}}),
        )
        .await;
    let id = made.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        hs.delete(&format!("/crm/v3/objects/companies/{id}"))
            .await
            .status,
        204
    );
    let body = json!({"inputs": [{"id": id}]});
    let by_query = hs
        .post("/crm/v3/objects/companies/batch/read?archived=true", &body)
        .await;
    assert_eq!(by_query.status, 200, "{}", by_query.body);
    assert_eq!(by_query.body["results"][0]["archived"], json!(true));
    // The body field is not the spec's: it changes nothing.
    let by_body = hs
        .post(
            "/crm/v3/objects/companies/batch/read",
            &json!({"inputs": [{"id": id}], "archived": true}),
        )
        .await;
    assert_eq!(by_body.status, 207);
    assert_eq!(by_body.body["results"], json!([]));
}

#[tokio::test]
async fn a_batch_naming_one_record_twice_is_refused_whole() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    let upsert = hs
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            &json!({"inputs": [
            {"id": "a@x.io", "idProperty": "email", "properties": {"firstname": "A"}},
            {"id": "b@x.io", "idProperty": "email", "properties": {"firstname": "B"}},
            {"id": "A@x.io", "idProperty": "email", "properties": {"firstname": "C"}}]}),
        )
        .await;
    assert_eq!(upsert.status, 400, "{}", upsert.body);
    assert_eq!(upsert.body["category"], json!("VALIDATION_ERROR"));
    assert!(
        upsert.body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Duplicate IDs found in batch input")),
        "{}",
        upsert.body
    );
    assert_eq!(upsert.body["context"]["ids"], json!(["A@x.io"]));
    assert_eq!(sb.count("contacts"), 0, "nothing written");
    let read = hs
        .post(
            "/crm/v3/objects/contacts/batch/read",
            &json!({"inputs": [{"id": "1"}, {"id": "1"}], "properties": ["email"]}),
        )
        .await;
    assert_eq!(read.status, 400);
}

#[tokio::test]
async fn a_batch_create_with_an_existing_email_is_refused_whole_with_the_first_409() {
    let sb = hubspot(0).await;
    let hs = Hs::new(&sb);
    let made = hs
        .post(
            "/crm/v3/objects/contacts/batch/create",
            &json!({"inputs": [{"properties": {"email": "a@x.io"}}, {"properties": {"email": "b@x.io"}}]}),
        )
        .await;
    assert_eq!(made.status, 201);
    let a = made.body["results"][0]["id"].clone();
    let again = hs
        .post(
            "/crm/v3/objects/contacts/batch/create",
            &json!({"inputs": [{"properties": {"email": "new@x.io"}},
                               {"properties": {"email": "A@x.io"}},
                               {"properties": {"email": "b@x.io"}}]}),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.body["category"], json!("CONFLICT"));
    assert_eq!(
        again.body["message"],
        json!(format!(
            "Contact already exists. Existing ID: {}",
            a.as_str().unwrap_or_default()
        ))
    );
    assert_eq!(sb.count("contacts"), 2, "new@x.io was not written either");
}
