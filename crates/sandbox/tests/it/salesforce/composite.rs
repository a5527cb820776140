//! sObject Collections, Composite with references, and sObject Tree.

use serde_json::{Value, json};

use super::{Sf, salesforce};

#[tokio::test]
async fn collections_report_each_record_and_all_or_none_rolls_back() {
    let sb = salesforce(0).await;
    let api = Sf::new(&sb);
    let a = api
        .post(
            "/composite/sobjects",
            &json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Account"}, "Name": "A"},
                {"attributes": {"type": "Account"}},
                {"attributes": {"type": "Contact"}, "LastName": "C"},
            ]}),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body[0]["success"], true);
    assert_eq!(a.body[1]["success"], false);
    assert_eq!(
        a.body[1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(a.body[1]["errors"][0]["fields"], json!(["Name"]));
    assert_eq!(a.body[2]["success"], true);
    assert_eq!(sb.count("Account"), 1);

    let b = api
        .post(
            "/composite/sobjects",
            &json!({"allOrNone": true, "records": [
                {"attributes": {"type": "Account"}, "Name": "B"},
                {"attributes": {"type": "Opportunity"}, "Name": "O", "StageName": "Nope", "CloseDate": "2026-01-01"},
            ]}),
        )
        .await;
    assert_eq!(
        b.body[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        b.body[1]["errors"][0]["statusCode"],
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    );
    assert_eq!(sb.count("Account"), 1, "the valid record was rolled back");

    let id = a.body[0]["id"].as_str().unwrap_or_default().to_string();
    let u = api
        .patch(
            "/composite/sobjects",
            &json!({"records": [{"attributes": {"type": "Account"}, "id": id, "Phone": "1"}]}),
        )
        .await;
    assert_eq!(u.body[0]["success"], true);
    let up = api
        .patch(
            "/composite/sobjects/Account/External_Id__c",
            &json!({"records": [{"attributes": {"type": "Account"}, "External_Id__c": "x1", "Name": "X"}]}),
        )
        .await;
    assert_eq!(up.body[0]["created"], true);
    let got = api
        .get(
            "/composite/sobjects/Account",
            &[
                ("ids", &format!("{id},001000000000000AAA")),
                ("fields", "Name,Phone"),
            ],
        )
        .await;
    assert_eq!(got.body[0]["Phone"], "1");
    assert_eq!(got.body[1], Value::Null);
    let d = api.delete(&format!("/composite/sobjects?ids={id}")).await;
    assert_eq!(d.body[0]["success"], true);
    let many: Vec<Value> = (0..201)
        .map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("N{i}")}))
        .collect();
    let too = api
        .post("/composite/sobjects", &json!({"records": many}))
        .await;
    assert_eq!(too.status, 400);
}

#[tokio::test]
async fn composite_resolves_references_and_rolls_back_on_failure() {
    let sb = salesforce(0).await;
    let api = Sf::new(&sb);
    let a = api
        .post(
            "/composite",
            &json!({"allOrNone": true, "compositeRequest": [
                {"method": "POST", "url": "/services/data/v59.0/sobjects/Account", "referenceId": "acct", "body": {"Name": "Ref Co"}},
                {"method": "POST", "url": "/services/data/v59.0/sobjects/Contact", "referenceId": "con", "body": {"LastName": "L", "AccountId": "@{acct.id}"}},
                {"method": "GET", "url": "/services/data/v59.0/query?q=SELECT+Id,+Account.Name+FROM+Contact", "referenceId": "q"},
                {"method": "GET", "url": "/services/data/v59.0/sobjects/Account/@{q.records[0].Account.attributes.url}", "referenceId": "bad"},
            ]}),
        )
        .await;
    assert_eq!(a.status, 200);
    let r = &a.body["compositeResponse"];
    assert_eq!(r[0]["httpStatusCode"], 400, "rolled back");
    assert_eq!(r[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(r[3]["httpStatusCode"], 404);
    assert_eq!(sb.count("Account"), 0);

    let a = api
        .post(
            "/composite",
            &json!({"allOrNone": false, "compositeRequest": [
                {"method": "POST", "url": "/services/data/v59.0/sobjects/Account", "referenceId": "acct", "body": {"Name": "Ref Co"}},
                {"method": "POST", "url": "/services/data/v59.0/sobjects/Contact", "referenceId": "con", "body": {"LastName": "L", "AccountId": "@{acct.id}"}},
                {"method": "GET", "url": "/services/data/v59.0/query?q=SELECT+Id,+Account.Name+FROM+Contact", "referenceId": "q"},
            ]}),
        )
        .await;
    let r = &a.body["compositeResponse"];
    assert_eq!(r[0]["httpStatusCode"], 201);
    assert!(
        r[0]["httpHeaders"]["Location"]
            .as_str()
            .is_some_and(|l| l.contains("/sobjects/Account/001"))
    );
    assert_eq!(r[1]["httpStatusCode"], 201);
    assert_eq!(r[2]["body"]["records"][0]["Account"]["Name"], "Ref Co");
}

#[tokio::test]
async fn tree_creates_parents_with_children_or_nothing() {
    let sb = salesforce(0).await;
    let api = Sf::new(&sb);
    let ok = api
        .post(
            "/composite/tree/Account",
            &json!({"records": [{"attributes": {"type": "Account", "referenceId": "ref1"}, "Name": "Tree Co",
                "Contacts": {"records": [{"attributes": {"type": "Contact", "referenceId": "ref2"}, "LastName": "Leaf"}]}}]}),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert_eq!(ok.body["hasErrors"], false);
    assert_eq!(ok.body["results"][1]["referenceId"], "ref2");
    let q = api
        .get("/query", &[("q", "SELECT Account.Name FROM Contact")])
        .await;
    assert_eq!(q.body["records"][0]["Account"]["Name"], "Tree Co");
    let bad = api
        .post(
            "/composite/tree/Account",
            &json!({"records": [{"attributes": {"type": "Account", "referenceId": "ref1"}, "Name": "Two",
                "Contacts": {"records": [{"attributes": {"type": "Contact", "referenceId": "ref2"}, "FirstName": "NoLast"}]}}]}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["hasErrors"], true);
    assert_eq!(bad.body["results"][0]["referenceId"], "ref2");
    assert_eq!(
        bad.body["results"][0]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(sb.count("Account"), 1);
}

#[tokio::test]
async fn an_all_or_none_composite_rolls_back_a_partly_failed_collection_and_all_before_it() {
    let sb = salesforce(0).await;
    let api = Sf::new(&sb);
    let a = api
        .post(
            "/composite",
            &json!({"allOrNone": true, "compositeRequest": [
                {"method": "POST", "url": "/services/data/v59.0/sobjects/Lead", "referenceId": "lead", "body": {"LastName": "L", "Company": "C"}},
                {"method": "POST", "url": "/services/data/v59.0/composite/sobjects", "referenceId": "coll",
                 "body": {"allOrNone": false, "records": [
                    {"attributes": {"type": "Account"}, "Name": "Kept?"},
                    {"attributes": {"type": "Account"}}]}},
            ]}),
        )
        .await;
    assert_eq!(a.status, 200);
    let r = &a.body["compositeResponse"];
    assert_eq!(r[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(
        r[1]["body"][0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!((sb.count("Lead"), sb.count("Account")), (0, 0));
}

#[tokio::test]
async fn composite_limits_queries_and_batch_runs_independent_subrequests() {
    let sb = salesforce(0).await;
    let api = Sf::new(&sb);
    let six: Vec<Value> = (0..6)
        .map(|i| json!({"method": "GET", "url": "/services/data/v59.0/query?q=SELECT+Id+FROM+Account", "referenceId": format!("q{i}")}))
        .collect();
    let a = api
        .post("/composite", &json!({"compositeRequest": six}))
        .await;
    assert_eq!(a.status, 400);
    let b = api
        .post(
            "/composite/batch",
            &json!({"haltOnError": false, "batchRequests": [
                {"method": "POST", "url": "v59.0/sobjects/Account", "richInput": {"Name": "Batch Co"}},
                {"method": "POST", "url": "v59.0/sobjects/Account", "richInput": {}},
                {"method": "GET", "url": "v59.0/query?q=SELECT+Name+FROM+Account"},
            ]}),
        )
        .await;
    assert_eq!(b.status, 200, "{}", b.body);
    assert_eq!(b.body["hasErrors"], true);
    assert_eq!(b.body["results"][0]["statusCode"], 201);
    assert_eq!(b.body["results"][1]["statusCode"], 400);
    assert_eq!(
        b.body["results"][2]["result"]["records"][0]["Name"],
        "Batch Co"
    );
}
