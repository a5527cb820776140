//! The Salesforce part of `crmkit demo`: the Salesforce sandbox seeded from the same seed,
//! and a tour of the Salesforce client through it — a token, CRUD, SOQL with a subquery, an
//! sObject collection write with a partial failure, a small Bulk API 2.0 import, limits.

use crmkit_core::{Error, Result, SecretString};
use crmkit_salesforce::Client;
use crmkit_salesforce::auth::ClientCredentials;
use crmkit_salesforce::bulk::Operation;
use crmkit_salesforce::sobjects::Fields;
use crmkit_sandbox::salesforce::SalesforceSandbox;
use futures::TryStreamExt;
use serde_json::{Map, Value, json};

use super::step;

/// Records of the demo's Bulk import; one of them lacks the required `LastName`.
const BULK_ROWS: usize = 50;

fn fields(value: Value) -> Fields {
    match value {
        Value::Object(map) => map,
        _ => Fields::new(),
    }
}

/// Runs the Salesforce tour, numbering its steps from `first`; returns its summary figures.
pub async fn tour(first: u32, companies: usize, seed: u64) -> Result<Map<String, Value>> {
    let sandbox = SalesforceSandbox::builder()
        .seed(seed)
        .companies(companies)
        .start()
        .await
        .map_err(|e| Error::config(format!("cannot start the Salesforce sandbox: {e}")))?;
    let url = sandbox.instance_url();
    println!(
        "\nSalesforce sandbox at {url} seeded from the same world (seed {seed}; Salesforce holds part of its {companies} companies)\n"
    );
    // The client-credentials flow, whose token endpoint is the instance itself.
    let client = Client::builder()
        .instance_url(url.clone())
        .login_url(url.clone())
        .client_credentials(ClientCredentials::new(
            "crmkit-demo",
            SecretString::from(format!("demo-secret-{seed}")),
            &url,
        ))
        .build()?;
    let mut n = first;
    let mut next = || {
        let current = n;
        n += 1;
        current
    };

    client.raw(&crmkit_core::http::ApiRequest::get("")).await?;
    step(
        next(),
        &format!(
            "Signed in with the client-credentials flow; API version {} answers",
            client.api_version()
        ),
    );

    let accounts = client.sobject("Account");
    let id = accounts
        .create(&fields(
            json!({"Name": "Demo Robotics", "Industry": "Technology"}),
        ))
        .await?;
    accounts
        .update(id.as_str(), &fields(json!({"Industry": "Manufacturing"})))
        .await?;
    let read = accounts.get(id.as_str(), &["Name", "Industry"]).await?;
    accounts.delete(id.as_str()).await?;
    let gone = accounts
        .get(id.as_str(), &[])
        .await
        .map(|_| ())
        .map_err(|e| e.kind());
    step(
        next(),
        &format!(
            "CRUD: created Account {id}, patched its Industry to {}, deleted it (now: {gone:?})",
            read.get("Industry").and_then(Value::as_str).unwrap_or("?")
        ),
    );

    let rows: Vec<Fields> = client
        .query("SELECT Id, Name, (SELECT Id, LastName FROM Contacts) FROM Account")
        .try_collect()
        .await?;
    let children: usize = rows
        .iter()
        .map(|r| {
            r.get("Contacts")
                .and_then(|c| c.get("records"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        })
        .sum();
    step(
        next(),
        &format!(
            "SOQL with a subquery: {} Accounts with {children} Contacts in their Contacts subqueries, paged by nextRecordsUrl",
            rows.len()
        ),
    );

    let outcomes = client
        .collections("Contact")
        .create(vec![
            fields(json!({"LastName": "Hopper", "Email": "grace@example.com"})),
            fields(json!({"FirstName": "No last name"})),
            fields(json!({"LastName": "Turing", "Email": "alan@example.com"})),
        ])
        .await;
    let created = outcomes.iter().filter(|o| o.is_ok()).count();
    let failure = outcomes
        .iter()
        .find_map(|o| o.as_ref().err())
        .map(ToString::to_string)
        .unwrap_or_default();
    step(
        next(),
        &format!(
            "Collection write (allOrNone false): {created} of {} created; the other failed alone: {failure}",
            outcomes.len()
        ),
    );

    let records: Vec<Fields> = (0..BULK_ROWS)
        .map(|i| {
            let last = if i == 7 {
                Value::Null
            } else {
                json!(format!("Bulk {i}"))
            };
            fields(json!({"LastName": last, "Email": format!("bulk-{i}@example.com")}))
        })
        .collect();
    let (job, results) = client
        .bulk_ingest("Contact", Operation::Insert, None, &records)
        .await?;
    let failed_reason = results
        .failed
        .first()
        .map(|(e, _)| e.clone())
        .unwrap_or_default();
    step(
        next(),
        &format!(
            "Bulk API 2.0 import: job {} {} with {} rows successful and {} failed ({failed_reason})",
            job.id,
            job.state,
            results.successful.len(),
            results.failed.len()
        ),
    );

    let limits = client.limits().await?;
    let daily = limits.get("DailyApiRequests");
    step(
        next(),
        &format!(
            "Limits: {} of {} daily API requests left",
            daily.map_or(0, |l| l.remaining),
            daily.map_or(0, |l| l.max)
        ),
    );

    let mut summary = Map::new();
    for (k, v) in [
        ("salesforce_accounts", json!(rows.len())),
        ("salesforce_subquery_contacts", json!(children)),
        ("salesforce_collection_created", json!(created)),
        (
            "salesforce_collection_failed",
            json!(outcomes.len() - created),
        ),
        (
            "salesforce_bulk_successful",
            json!(results.successful.len()),
        ),
        ("salesforce_bulk_failed", json!(results.failed.len())),
        (
            "salesforce_api_remaining",
            json!(daily.map_or(0, |l| l.remaining)),
        ),
        ("salesforce_requests", json!(sandbox.stats().requests.len())),
    ] {
        summary.insert(k.to_string(), v);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_tour_reports_each_outcome() -> Result<()> {
        let summary = tour(1, 20, 7).await?;
        assert_eq!(summary["salesforce_collection_created"], json!(2));
        assert_eq!(summary["salesforce_collection_failed"], json!(1));
        assert_eq!(summary["salesforce_bulk_successful"], json!(BULK_ROWS - 1));
        assert_eq!(summary["salesforce_bulk_failed"], json!(1));
        assert!(summary["salesforce_accounts"].as_u64().unwrap_or(0) > 0);
        assert!(
            summary["salesforce_subquery_contacts"]
                .as_u64()
                .unwrap_or(0)
                > 0
        );
        Ok(())
    }
}
