//! Bulk API 2.0 ingest and query jobs over real CSV.

use serde_json::{Value, json};

use super::{Sf, salesforce};

async fn csv(
    api: &Sf,
    path: &str,
    query: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let r = api
        .raw(reqwest::Method::GET, path)
        .query(query)
        .send()
        .await
        .expect("answers");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn ingest_jobs_process_csv_and_report_results() {
    let sb = salesforce(0).await;
    let api = Sf::new(&sb);
    let job = api.post("/jobs/ingest", &json!({"object": "Account", "operation": "insert", "contentType": "CSV", "lineEnding": "LF"})).await;
    assert_eq!(job.status, 200, "{}", job.body);
    assert_eq!(job.body["state"], "Open");
    let id = job.body["id"].as_str().unwrap_or_default().to_string();
    assert!(id.starts_with("750"));
    let put = api
        .raw(reqwest::Method::PUT, &format!("/jobs/ingest/{id}/batches"))
        .header("content-type", "text/csv")
        .body("Name,Industry,External_Id__c\n\"Quoted, Inc\",Energy,q1\n,Retail,q2\nPlain,,q3\n")
        .send()
        .await
        .expect("answers");
    assert_eq!(put.status().as_u16(), 201);
    let done = api
        .patch(
            &format!("/jobs/ingest/{id}"),
            &json!({"state": "UploadComplete"}),
        )
        .await;
    assert_eq!(done.body["state"], "UploadComplete");
    // Each poll sees one step: picked up, then complete.
    let info = api.get(&format!("/jobs/ingest/{id}"), &[]).await;
    assert_eq!(info.body["state"], "InProgress");
    let info = api.get(&format!("/jobs/ingest/{id}"), &[]).await;
    assert_eq!(info.body["state"], "JobComplete");
    assert_eq!(info.body["numberRecordsProcessed"], 3);
    assert_eq!(info.body["numberRecordsFailed"], 1);
    let (status, headers, ok) =
        csv(&api, &format!("/jobs/ingest/{id}/successfulResults/"), &[]).await;
    assert_eq!(status, 200);
    assert!(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/csv"))
    );
    let mut lines = ok.lines();
    assert_eq!(
        lines.next(),
        Some("sf__Id,sf__Created,Name,Industry,External_Id__c")
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("001") && l.contains(",true,\"Quoted, Inc\",Energy,q1"))
    );
    let (_, _, failed) = csv(&api, &format!("/jobs/ingest/{id}/failedResults/"), &[]).await;
    assert!(failed.starts_with("sf__Id,sf__Error,Name,Industry,External_Id__c\n"));
    assert!(
        failed.contains("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]"),
        "{failed}"
    );
    assert_eq!(sb.count("Account"), 2);

    // Upsert by external id, with a parent resolved by its external id.
    let job = api
        .post(
            "/jobs/ingest",
            &json!({"object": "Contact", "operation": "insert"}),
        )
        .await;
    let cid = job.body["id"].as_str().unwrap_or_default().to_string();
    api.raw(reqwest::Method::PUT, &format!("/jobs/ingest/{cid}/batches"))
        .header("content-type", "text/csv")
        .body("LastName,Account.External_Id__c\nChild,q3\n")
        .send()
        .await
        .expect("answers");
    api.patch(
        &format!("/jobs/ingest/{cid}"),
        &json!({"state": "UploadComplete"}),
    )
    .await;
    let q = api
        .get("/query", &[("q", "SELECT Account.Name FROM Contact")])
        .await;
    assert_eq!(q.body["records"][0]["Account"]["Name"], "Plain");

    let job = api.post("/jobs/ingest", &json!({"object": "Account", "operation": "upsert", "externalIdFieldName": "External_Id__c"})).await;
    let uid = job.body["id"].as_str().unwrap_or_default().to_string();
    api.raw(reqwest::Method::PUT, &format!("/jobs/ingest/{uid}/batches"))
        .header("content-type", "text/csv")
        .body("External_Id__c,Name\nq1,Renamed\nq9,Brand New\n")
        .send()
        .await
        .expect("answers");
    api.patch(
        &format!("/jobs/ingest/{uid}"),
        &json!({"state": "UploadComplete"}),
    )
    .await;
    // No results before the job ends: each of the three answers 400 InvalidJobState.
    for which in ["successfulResults", "failedResults", "unprocessedrecords"] {
        let (status, _, body) = csv(&api, &format!("/jobs/ingest/{uid}/{which}/"), &[]).await;
        assert_eq!(status, 400, "{which}: {body}");
        assert!(body.contains("InvalidJobState"), "{body}");
    }
    for _ in 0..2 {
        api.get(&format!("/jobs/ingest/{uid}"), &[]).await;
    }
    let (_, _, ok) = csv(&api, &format!("/jobs/ingest/{uid}/successfulResults/"), &[]).await;
    assert!(
        ok.contains(",false,q1,Renamed") && ok.contains(",true,q9,Brand New"),
        "{ok}"
    );

    let job = api
        .post(
            "/jobs/ingest",
            &json!({"object": "Account", "operation": "insert"}),
        )
        .await;
    let aid = job.body["id"].as_str().unwrap_or_default().to_string();
    api.raw(reqwest::Method::PUT, &format!("/jobs/ingest/{aid}/batches"))
        .header("content-type", "text/csv")
        .body("Name\nNever\n")
        .send()
        .await
        .expect("answers");
    let ab = api
        .patch(&format!("/jobs/ingest/{aid}"), &json!({"state": "Aborted"}))
        .await;
    assert_eq!(ab.body["state"], "Aborted");
    let (_, _, un) = csv(
        &api,
        &format!("/jobs/ingest/{aid}/unprocessedrecords/"),
        &[],
    )
    .await;
    assert_eq!(un, "Name\nNever\n");
    assert_eq!(api.delete(&format!("/jobs/ingest/{aid}")).await.status, 204);
    let open = api
        .post(
            "/jobs/ingest",
            &json!({"object": "Lead", "operation": "insert"}),
        )
        .await;
    let oid = open.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        api.delete(&format!("/jobs/ingest/{oid}")).await.status,
        400,
        "an open job stays"
    );
    let missing = api.get("/jobs/ingest/750000000000000AAA", &[]).await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn query_jobs_page_results_by_locator() {
    let sb = salesforce(40).await;
    let api = Sf::new(&sb);
    let total = sb.count("Contact");
    let job = api
        .post("/jobs/query", &json!({"operation": "query", "query": "SELECT Id, LastName, Account.Name FROM Contact"}))
        .await;
    assert_eq!(job.status, 200, "{}", job.body);
    assert_eq!(job.body["state"], "UploadComplete");
    let id = job.body["id"].as_str().unwrap_or_default().to_string();
    let mut state = Value::Null;
    let mut seen = Vec::new();
    for _ in 0..5 {
        state = api.get(&format!("/jobs/query/{id}"), &[]).await.body["state"].clone();
        seen.push(state.clone());
        if state == "JobComplete" {
            break;
        }
    }
    assert_eq!(state, "JobComplete");
    assert!(seen.contains(&json!("InProgress")), "{seen:?}");
    let mut rows = 0;
    let mut locator = String::new();
    loop {
        let mut query = vec![("maxRecords", "10")];
        if !locator.is_empty() {
            query.push(("locator", locator.as_str()));
        }
        let (status, headers, body) = csv(&api, &format!("/jobs/query/{id}/results"), &query).await;
        assert_eq!(status, 200);
        let mut lines = body.lines();
        assert_eq!(lines.next(), Some("Id,LastName,Account.Name"));
        let n = lines.count();
        assert!(n <= 10);
        let said: usize = headers
            .get("sforce-numberofrecords")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert_eq!(said, n);
        rows += n;
        let next = headers
            .get("sforce-locator")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("null")
            .to_string();
        if next == "null" {
            break;
        }
        locator = next;
    }
    assert_eq!(rows, total);
    let bad = api
        .post(
            "/jobs/query",
            &json!({"operation": "query", "query": "SELECT Nope FROM Contact"}),
        )
        .await;
    assert_eq!(bad.status, 400);
}
