//! SOQL through `query` and `queryAll`: the subset, relationship paths, subqueries,
//! semi-joins, date literals, paging by `nextRecordsUrl`.

use crmkit_sandbox::salesforce::SalesforceSandbox;
use serde_json::{Value, json};

use super::{Sf, code, salesforce};

async fn q(api: &Sf, soql: &str) -> Value {
    let a = api.get("/query", &[("q", soql)]).await;
    assert_eq!(a.status, 200, "{soql}: {}", a.body);
    a.body
}

fn names(body: &Value) -> Vec<String> {
    body["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["Name"].as_str().map(str::to_string))
        .collect()
}

async fn make(api: &Sf, path: &str, body: Value) -> String {
    let a = api.post(path, &body).await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["id"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn filters_relationships_subqueries_and_semi_joins() {
    let sb = salesforce(0).await;
    let api = Sf::new(&sb);
    let acme = make(
        &api,
        "/sobjects/Account",
        json!({"Name": "Acme", "Industry": "Energy"}),
    )
    .await;
    let bolt = make(
        &api,
        "/sobjects/Account",
        json!({"Name": "Bolt's", "Industry": "Retail"}),
    )
    .await;
    make(&api, "/sobjects/Account", json!({"Name": "Crate"})).await;
    make(
        &api,
        "/sobjects/Contact",
        json!({"LastName": "Ames", "AccountId": acme, "Email": "a@acme.com"}),
    )
    .await;
    make(
        &api,
        "/sobjects/Contact",
        json!({"LastName": "Baker", "AccountId": acme}),
    )
    .await;
    make(&api, "/sobjects/Opportunity", json!({"Name": "Open", "AccountId": bolt, "StageName": "Prospecting", "CloseDate": "2026-06-01"})).await;
    make(&api, "/sobjects/Opportunity", json!({"Name": "Won", "AccountId": acme, "StageName": "Closed Won", "CloseDate": "2026-06-01"})).await;

    let b = q(&api, "SELECT Name FROM Account WHERE Name LIKE 'bolt\\'%' OR (Industry IN ('Energy') AND NOT Name = 'x') ORDER BY Name DESC").await;
    assert_eq!(names(&b), ["Bolt's", "Acme"]);
    assert_eq!(b["done"], true);
    assert_eq!(b["totalSize"], 2);

    let b = q(&api, "SELECT Name FROM Account WHERE Id IN (SELECT AccountId FROM Opportunity WHERE IsClosed = false)").await;
    assert_eq!(names(&b), ["Bolt's"]);
    let b = q(&api, "SELECT Name FROM Account WHERE Id NOT IN (SELECT AccountId FROM Opportunity) ORDER BY Name").await;
    assert_eq!(names(&b), ["Crate"]);

    let b = q(&api, "SELECT LastName, Account.Name, Account.Owner.Name FROM Contact WHERE Account.Industry = 'energy' ORDER BY LastName").await;
    assert_eq!(b["records"][0]["Account"]["Name"], "Acme");
    assert_eq!(b["records"][0]["Account"]["attributes"]["type"], "Account");
    assert_eq!(b["records"][0]["Account"]["Owner"]["Name"], "Sandbox Admin");
    assert_eq!(b["totalSize"], 2);

    let b = q(&api, "SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName DESC) FROM Account ORDER BY Name").await;
    let acme_row = &b["records"][0];
    assert_eq!(acme_row["Contacts"]["totalSize"], 2);
    assert_eq!(acme_row["Contacts"]["records"][0]["LastName"], "Baker");
    assert_eq!(
        b["records"][1]["Contacts"],
        Value::Null,
        "no children is null"
    );

    let b = q(
        &api,
        "SELECT COUNT() FROM Account WHERE CreatedDate = LAST_N_DAYS:30",
    )
    .await;
    assert_eq!(b, json!({"totalSize": 3, "done": true, "records": []}));
    let b = q(
        &api,
        "SELECT COUNT(Id) FROM Opportunity WHERE CloseDate > 2026-01-01",
    )
    .await;
    assert_eq!(b["records"][0]["expr0"], 2);
    assert_eq!(b["records"][0]["attributes"]["type"], "AggregateResult");
    let b = q(&api, "SELECT Name FROM Opportunity WHERE SystemModstamp > 2020-01-01T00:00:00Z ORDER BY Name LIMIT 1").await;
    assert_eq!(names(&b), ["Open"]);

    let bad = api
        .get("/query", &[("q", "SELECT Nope FROM Account")])
        .await;
    assert_eq!((bad.status, code(&bad.body)), (400, "INVALID_FIELD"));
    let bad = api
        .get(
            "/query",
            &[("q", "SELECT Name FROM Account WHERE Name = 'open")],
        )
        .await;
    assert_eq!((bad.status, code(&bad.body)), (400, "MALFORMED_QUERY"));
    let bad = api.get("/query", &[("q", "SELECT Id FROM Whizbang")]).await;
    assert_eq!(code(&bad.body), "INVALID_TYPE");
}

#[tokio::test]
async fn query_all_sees_deleted_rows() {
    let sb = salesforce(0).await;
    let api = Sf::new(&sb);
    let id = make(
        &api,
        "/sobjects/Lead",
        json!({"LastName": "Gone", "Company": "Gone Inc"}),
    )
    .await;
    assert_eq!(
        api.delete(&format!("/sobjects/Lead/{id}")).await.status,
        204
    );
    let live = q(&api, "SELECT Id FROM Lead").await;
    assert_eq!(live["totalSize"], 0);
    let all = api
        .get(
            "/queryAll",
            &[("q", "SELECT Id, IsDeleted FROM Lead WHERE IsDeleted = true")],
        )
        .await;
    assert_eq!(all.body["totalSize"], 1);
    assert_eq!(all.body["records"][0]["IsDeleted"], true);
}

#[tokio::test]
async fn pages_follow_next_records_url_including_subqueries() {
    let sb = SalesforceSandbox::builder()
        .seed(3)
        .companies(60)
        .page_size(7)
        .subquery_page_size(1)
        .start()
        .await
        .expect("starts");
    let api = Sf::new(&sb);
    let total = sb.count("Contact");
    assert!(total > 14, "{total}");
    let mut body = q(&api, "SELECT Id, Name FROM Contact").await;
    let mut seen = Vec::new();
    loop {
        assert_eq!(body["totalSize"], total);
        let recs = body["records"].as_array().cloned().unwrap_or_default();
        assert!(recs.len() <= 7);
        seen.extend(
            recs.iter()
                .filter_map(|r| r["Id"].as_str().map(str::to_string)),
        );
        if body["done"] == true {
            assert!(body.get("nextRecordsUrl").is_none());
            break;
        }
        let next = body["nextRecordsUrl"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(next.starts_with("/services/data/v59.0/query/01g"), "{next}");
        let a = api
            .get(next.trim_start_matches("/services/data/v59.0"), &[])
            .await;
        assert_eq!(a.status, 200);
        body = a.body;
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (total, total));

    // A parent with several contacts pages its subquery one child at a time.
    let b = q(
        &api,
        "SELECT Name, (SELECT LastName FROM Contacts) FROM Account",
    )
    .await;
    let with_many = b["records"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["Contacts"]["totalSize"].as_u64().unwrap_or(0) > 1)
        .cloned()
        .unwrap_or_default();
    let sub = &with_many["Contacts"];
    assert_eq!(sub["done"], false);
    let next = sub["nextRecordsUrl"].as_str().unwrap_or_default();
    let more = api
        .get(next.trim_start_matches("/services/data/v59.0"), &[])
        .await;
    assert_eq!(more.status, 200);
    assert_eq!(more.body["records"].as_array().map(Vec::len), Some(1));
    assert_ne!(
        more.body["records"][0]["LastName"],
        sub["records"][0]["LastName"]
    );
}

#[tokio::test]
async fn the_query_options_header_sets_the_batch_size_within_its_bounds() {
    let sb = SalesforceSandbox::builder()
        .seed(3)
        .companies(400)
        .start()
        .await
        .expect("starts");
    let api = Sf::new(&sb);
    let total = sb.count("Contact");
    assert!(total > 250, "{total}");
    let batch = |options: &'static str| {
        let req = api
            .raw(reqwest::Method::GET, "/query")
            .query(&[("q", "SELECT Id FROM Contact")]);
        async move {
            let r = req
                .header("Sforce-Query-Options", options)
                .send()
                .await
                .expect("answer");
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.expect("json");
            (
                body["records"].as_array().map_or(0, Vec::len),
                body["done"].clone(),
            )
        }
    };
    // 200 is the smallest batch Salesforce hands out; smaller asks get 200.
    assert_eq!(batch("batchSize=200").await, (200, json!(false)));
    assert_eq!(batch("batchSize=5").await, (200, json!(false)));
    assert_eq!(batch("batchSize=5000").await.0, total.min(2_000));
}
