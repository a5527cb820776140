//! A realistic org: a world of 10,000 companies (about 5,000 Accounts with their Contacts
//! and Opportunities), read in full through `nextRecordsUrl` and queried through indexes.
//! No timing is asserted here; speed targets live in the benchmarks.

use std::collections::HashSet;

use serde_json::Value;

use super::{Sf, salesforce};

async fn all_pages(api: &Sf, soql: &str) -> (usize, Vec<Value>) {
    let mut body = api.get("/query", &[("q", soql)]).await.body;
    let total = body["totalSize"].as_u64().unwrap_or(0) as usize;
    let mut rows = Vec::new();
    loop {
        rows.extend(body["records"].as_array().cloned().unwrap_or_default());
        let Some(next) = body["nextRecordsUrl"].as_str().map(str::to_string) else {
            break;
        };
        body = api
            .get(next.trim_start_matches("/services/data/v59.0"), &[])
            .await
            .body;
    }
    (total, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_org_pages_in_full_and_answers_indexed_queries() {
    let sb = salesforce(10_000).await;
    let accounts = sb.count("Account");
    let contacts = sb.count("Contact");
    assert!((4_000..6_000).contains(&accounts), "{accounts}");
    let leads = sb.count("Lead");
    assert!((1_000..1_600).contains(&leads), "{leads}");
    let api = Sf::new(&sb);

    let (total, rows) = all_pages(&api, "SELECT Id, Email, AccountId FROM Contact").await;
    assert_eq!((total, rows.len()), (contacts, contacts));
    let unique: HashSet<&str> = rows.iter().filter_map(|r| r["Id"].as_str()).collect();
    assert_eq!(unique.len(), contacts);

    // Equality on an indexed field finds its record among tens of thousands.
    let some = &rows[contacts / 2];
    let email = some["Email"].as_str().unwrap_or_default();
    let hit = api
        .get(
            "/query",
            &[(
                "q",
                &format!("SELECT Id FROM Contact WHERE Email = '{email}'"),
            )],
        )
        .await;
    assert!(
        hit.body["records"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x["Id"] == some["Id"]))
    );

    // A semi-join over every open opportunity agrees with the client-side reading.
    let (_, open) = all_pages(
        &api,
        "SELECT AccountId FROM Opportunity WHERE IsClosed = false",
    )
    .await;
    let with_open: HashSet<&str> = open
        .iter()
        .filter_map(|r| r["AccountId"].as_str())
        .collect();
    let counted = api
        .get(
            "/query",
            &[("q", "SELECT COUNT() FROM Account WHERE Id IN (SELECT AccountId FROM Opportunity WHERE IsClosed = false)")],
        )
        .await;
    assert_eq!(
        counted.body["totalSize"].as_u64(),
        Some(with_open.len() as u64)
    );

    // Every account with its contacts as a subquery, page by page.
    let (total, parents) =
        all_pages(&api, "SELECT Id, (SELECT Id FROM Contacts) FROM Account").await;
    assert_eq!(total, accounts);
    let children: u64 = parents
        .iter()
        .map(|p| p["Contacts"]["totalSize"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(children as usize, contacts);
}
