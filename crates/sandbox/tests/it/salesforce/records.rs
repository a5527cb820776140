//! sObject create, read, update, delete, upsert and describe, with Salesforce's error array.

use serde_json::json;

use super::{Sf, code, salesforce};

#[tokio::test]
async fn create_read_update_delete_round_trip() {
    let sb = salesforce(0).await;
    let api = Sf::new(&sb);
    let a = api
        .post(
            "/sobjects/Account",
            &json!({"Name": "Acme", "Industry": "Energy"}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["success"], true);
    assert_eq!(a.body["errors"], json!([]));
    assert!(a.content_type().starts_with("application/json"));
    let id = a.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("001"));

    // The 15-character form names the same record.
    let r = api
        .get(
            &format!("/sobjects/Account/{}", &id[..15]),
            &[("fields", "Name,Industry")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["Name"], "Acme");
    assert_eq!(r.body["attributes"]["type"], "Account");
    assert_eq!(
        r.body["attributes"]["url"],
        format!("/services/data/v59.0/sobjects/Account/{id}")
    );
    assert!(r.body.get("Phone").is_none());

    let full = api.get(&format!("/sobjects/Account/{id}"), &[]).await;
    let created = full.body["SystemModstamp"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(created.ends_with("+0000"), "{created}");
    let u = api
        .patch(
            &format!("/sobjects/Account/{id}"),
            &json!({"Phone": "(650) 555-1234"}),
        )
        .await;
    assert_eq!(u.status, 204);
    let after = api.get(&format!("/sobjects/Account/{id}"), &[]).await;
    assert_eq!(after.body["Phone"], "(650) 555-1234");
    assert_eq!(
        after.body["Name"], "Acme",
        "a patch keeps the fields it does not name"
    );
    // Whole seconds: a change in the same second keeps the stamp, never goes back.
    assert!(after.body["SystemModstamp"].as_str().unwrap_or_default() >= created.as_str());

    assert_eq!(
        api.delete(&format!("/sobjects/Account/{id}")).await.status,
        204
    );
    let gone = api.get(&format!("/sobjects/Account/{id}"), &[]).await;
    assert_eq!((gone.status, code(&gone.body)), (404, "NOT_FOUND"));
    let again = api.delete(&format!("/sobjects/Account/{id}")).await;
    assert_eq!(
        (again.status, code(&again.body)),
        (404, "ENTITY_IS_DELETED")
    );
}

#[tokio::test]
async fn writes_are_validated_with_the_documented_error_codes() {
    let sb = salesforce(0).await;
    let api = Sf::new(&sb);
    let a = api
        .post("/sobjects/Opportunity", &json!({"Name": "Deal"}))
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(code(&a.body), "REQUIRED_FIELD_MISSING");
    assert_eq!(a.body[0]["fields"], json!(["StageName", "CloseDate"]));

    let a = api
        .post(
            "/sobjects/Opportunity",
            &json!({"Name": "Deal", "StageName": "Maybe", "CloseDate": "2026-03-01"}),
        )
        .await;
    assert_eq!(code(&a.body), "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
    assert_eq!(a.body[0]["fields"], json!(["StageName"]));

    let a = api
        .post(
            "/sobjects/Account",
            &json!({"Name": "X", "Colour__c": "red"}),
        )
        .await;
    assert_eq!((a.status, code(&a.body)), (400, "INVALID_FIELD"));
    assert_eq!(
        a.body[0]["message"],
        "No such column 'Colour__c' on sobject of type Account"
    );

    let a = api
        .post(
            "/sobjects/Account",
            &json!({"Name": "X", "CreatedDate": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(code(&a.body), "INVALID_FIELD_FOR_INSERT_UPDATE");

    let a = api
        .post(
            "/sobjects/Contact",
            &json!({"LastName": "Y", "AccountId": "003000000000000"}),
        )
        .await;
    assert_eq!(code(&a.body), "MALFORMED_ID");
    let a = api
        .post(
            "/sobjects/Contact",
            &json!({"LastName": "Y", "Email": "not-an-email"}),
        )
        .await;
    assert_eq!(code(&a.body), "INVALID_EMAIL_ADDRESS");
    let a = api
        .post("/sobjects/Account", &json!({"Name": "N".repeat(256)}))
        .await;
    assert_eq!(code(&a.body), "STRING_TOO_LONG");

    // Defaults and derived values.
    let o = api
        .post(
            "/sobjects/Opportunity",
            &json!({"Name": "Deal", "StageName": "Closed Won", "CloseDate": "2026-03-01"}),
        )
        .await;
    let id = o.body["id"].as_str().unwrap_or_default();
    let r = api.get(&format!("/sobjects/Opportunity/{id}"), &[]).await;
    assert_eq!(
        (r.body["IsClosed"].clone(), r.body["IsWon"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(r.body["Probability"], 100);
    let l = api
        .post(
            "/sobjects/Lead",
            &json!({"LastName": "Z", "Company": "Zed"}),
        )
        .await;
    let r = api
        .get(
            &format!(
                "/sobjects/Lead/{}",
                l.body["id"].as_str().unwrap_or_default()
            ),
            &[],
        )
        .await;
    assert_eq!(r.body["Status"], "Open - Not Contacted");
    assert_eq!(r.body["Name"], "Z");
    assert!(
        r.body["OwnerId"]
            .as_str()
            .is_some_and(|o| o.starts_with("005"))
    );
    let e = api
        .post(
            "/sobjects/Event",
            &json!({"ActivityDateTime": "2026-03-01T10:00:00Z"}),
        )
        .await;
    assert_eq!(code(&e.body), "REQUIRED_FIELD_MISSING");
    let e = api
        .post(
            "/sobjects/Event",
            &json!({"ActivityDateTime": "2026-03-01T10:00:00Z", "DurationInMinutes": 30}),
        )
        .await;
    let r = api
        .get(
            &format!(
                "/sobjects/Event/{}",
                e.body["id"].as_str().unwrap_or_default()
            ),
            &[],
        )
        .await;
    assert_eq!(r.body["EndDateTime"], "2026-03-01T10:30:00.000+0000");
}

#[tokio::test]
async fn upsert_by_external_id_creates_updates_and_reports_multiple_matches() {
    let sb = salesforce(0).await;
    let api = Sf::new(&sb);
    let a = api
        .patch(
            "/sobjects/Account/External_Id__c/ext-1",
            &json!({"Name": "One"}),
        )
        .await;
    assert_eq!(a.status, 201);
    assert_eq!(a.body["created"], true);
    let id = a.body["id"].clone();
    let b = api
        .patch(
            "/sobjects/Account/External_Id__c/ext-1",
            &json!({"Name": "Uno"}),
        )
        .await;
    assert_eq!(b.status, 200);
    assert_eq!(b.body["created"], false);
    assert_eq!(b.body["id"], id);
    let old = Sf::new(&sb);
    let r = old
        .raw(
            reqwest::Method::PATCH,
            "/../v45.0/sobjects/Account/External_Id__c/ext-1",
        )
        .json(&json!({"Name": "Ein"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        r.status().as_u16(),
        204,
        "before 46.0 an update answers 204"
    );

    // External_Id__c is Unique and case-insensitive: `EXT-1` is `ext-1`, and no second
    // record may take it.
    let c = api
        .patch(
            "/sobjects/Account/External_Id__c/EXT-1",
            &json!({"Name": "Eins"}),
        )
        .await;
    assert_eq!((c.status, &c.body["id"]), (200, &id), "{}", c.body);
    let dup = api
        .post(
            "/sobjects/Account",
            &json!({"Name": "Dup", "External_Id__c": "Ext-1"}),
        )
        .await;
    assert_eq!(dup.status, 400);
    assert_eq!(dup.body[0]["errorCode"], "DUPLICATE_VALUE", "{}", dup.body);
    let got = api.get("/sobjects/Account/External_Id__c/eXt-1", &[]).await;
    assert_eq!(got.body["Id"], id);

    // A lookup field that is not unique can match several records: 300.
    for name in ["Dup A", "Dup B"] {
        api.post(
            "/sobjects/Contact",
            &json!({"LastName": name, "Email": "dup@example.com"}),
        )
        .await;
    }
    let m = api
        .patch(
            "/sobjects/Contact/Email/dup@example.com",
            &json!({"Title": "?"}),
        )
        .await;
    assert_eq!(m.status, 300, "{}", m.body);
    assert_eq!(m.body.as_array().map(Vec::len), Some(2));
    assert!(
        m.body[0]
            .as_str()
            .is_some_and(|u| u.starts_with("/services/data/v59.0/sobjects/Contact/003"))
    );

    let bad = api
        .patch("/sobjects/Account/Namez/x", &json!({"Name": "?"}))
        .await;
    assert_eq!(bad.status, 404);
    assert_eq!(
        bad.body[0]["message"],
        "Provided external ID field does not exist or is not accessible: Namez"
    );
    let got = api.get("/sobjects/Account/External_Id__c/ext-1", &[]).await;
    assert_eq!(got.body["Name"], "Eins");
}

#[tokio::test]
async fn describe_reports_fields_picklists_and_relationships() {
    let sb = salesforce(0).await;
    let api = Sf::new(&sb);
    let g = api.get("/sobjects", &[]).await;
    assert_eq!(g.body["maxBatchSize"], 200);
    let prefixes: Vec<(String, String)> = g.body["sobjects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().into(),
                s["keyPrefix"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    for (n, p) in [
        ("Account", "001"),
        ("Contact", "003"),
        ("Lead", "00Q"),
        ("Opportunity", "006"),
        ("Task", "00T"),
        ("Event", "00U"),
        ("User", "005"),
    ] {
        assert!(prefixes.contains(&(n.into(), p.into())), "{n}");
    }
    let d = api.get("/sobjects/Opportunity/describe", &[]).await;
    let stage = d.body["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["name"] == "StageName")
        .cloned()
        .unwrap_or_default();
    assert_eq!(stage["type"], "picklist");
    assert_eq!(stage["nillable"], false);
    assert!(
        stage["picklistValues"]
            .as_array()
            .is_some_and(|v| v.iter().any(|p| p["value"] == "Closed Won"))
    );
    // A call Task's direction (Object Reference, Task: CallType).
    let d = api.get("/sobjects/Task/describe", &[]).await;
    let call_type = d.body["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["name"] == "CallType")
        .cloned()
        .unwrap_or_default();
    assert_eq!(call_type["type"], "picklist");
    let values: Vec<&str> = call_type["picklistValues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["value"].as_str())
        .collect();
    assert_eq!(values, ["Inbound", "Internal", "Outbound"]);
    let unknown = api.get("/sobjects/Whizbang/describe", &[]).await;
    assert_eq!((unknown.status, code(&unknown.body)), (404, "NOT_FOUND"));
}

#[tokio::test]
async fn stamps_are_whole_seconds_never_ahead_of_the_clock() {
    let sb = salesforce(0).await;
    let api = Sf::new(&sb);
    let records: Vec<serde_json::Value> = (0..200)
        .map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("Tie {i}")}))
        .collect();
    let a = api
        .post(
            "/composite/sobjects",
            &json!({"allOrNone": false, "records": records}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let after = chrono::Utc::now();
    let q = api
        .get(
            "/query",
            &[(
                "q",
                "SELECT Id, SystemModstamp FROM Account WHERE Name LIKE 'Tie %'",
            )],
        )
        .await;
    let stamps: Vec<String> = q.body["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["SystemModstamp"].as_str().map(str::to_string))
        .collect();
    assert_eq!(stamps.len(), 200);
    for s in &stamps {
        assert!(s.ends_with(".000+0000"), "whole seconds: {s}");
        let t = chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3f%z").expect("stamp");
        assert!(t <= after, "{s} is ahead of the clock ({after})");
    }
}

#[tokio::test]
async fn an_opportunitys_contact_is_its_primary_contact_role() {
    let sb = salesforce(0).await;
    let api = Sf::new(&sb);
    let ada = api
        .post("/sobjects/Contact", &json!({"LastName": "Lovelace"}))
        .await
        .body["id"]
        .clone();
    let charles = api
        .post("/sobjects/Contact", &json!({"LastName": "Babbage"}))
        .await
        .body["id"]
        .clone();
    let opp = api
        .post(
            "/sobjects/Opportunity",
            &json!({"Name": "Engines", "StageName": "Prospecting", "CloseDate": "2025-01-01", "ContactId": ada}),
        )
        .await;
    assert_eq!(opp.status, 201, "{}", opp.body);
    let opp = opp.body["id"].as_str().unwrap_or_default().to_string();
    let r = roles(&api, &opp).await;
    assert_eq!(r["totalSize"], 1, "{r}");
    assert_eq!(
        (&r["records"][0]["ContactId"], &r["records"][0]["IsPrimary"]),
        (&ada, &json!(true))
    );
    // ContactId is set on create only.
    let e = api
        .patch(
            &format!("/sobjects/Opportunity/{opp}"),
            &json!({"ContactId": charles}),
        )
        .await;
    assert_eq!(
        (e.status, code(&e.body)),
        (400, "INVALID_FIELD_FOR_INSERT_UPDATE")
    );
    // A role needs its Opportunity; a new primary role moves the flag and the ContactId.
    let e = api
        .post(
            "/sobjects/OpportunityContactRole",
            &json!({"ContactId": charles}),
        )
        .await;
    assert_eq!((e.status, code(&e.body)), (400, "REQUIRED_FIELD_MISSING"));
    let role = api
        .post(
            "/sobjects/OpportunityContactRole",
            &json!({"OpportunityId": opp, "ContactId": charles, "IsPrimary": true, "Role": "Decision Maker"}),
        )
        .await;
    assert_eq!(role.status, 201, "{}", role.body);
    let o = api.get(&format!("/sobjects/Opportunity/{opp}"), &[]).await;
    assert_eq!(o.body["ContactId"], charles);
    let r = roles(&api, &opp).await;
    let primary: Vec<&serde_json::Value> = r["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["IsPrimary"] == true)
        .map(|x| &x["ContactId"])
        .collect();
    assert_eq!(primary, vec![&charles], "one primary: {r}");
    // Deleting the primary role leaves no primary contact.
    let role = role.body["id"].as_str().unwrap_or_default().to_string();
    api.delete(&format!("/sobjects/OpportunityContactRole/{role}"))
        .await;
    let o = api.get(&format!("/sobjects/Opportunity/{opp}"), &[]).await;
    assert_eq!(o.body["ContactId"], serde_json::Value::Null);
}

/// The contact roles of Opportunity `opp`, oldest first.
async fn roles(api: &Sf, opp: &str) -> serde_json::Value {
    let q = format!(
        "SELECT ContactId, IsPrimary FROM OpportunityContactRole WHERE OpportunityId = '{opp}' ORDER BY CreatedDate"
    );
    api.get("/query", &[("q", q.as_str())]).await.body
}
