//! Bulk API 2.0 and Outbound Messages against the sandbox.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use crmkit_salesforce::Client;
use crmkit_salesforce::events::{ack, parse_outbound};
use crmkit_salesforce::sobjects::Fields;
use crmkit_sandbox::salesforce::SalesforceSandbox;
use futures::TryStreamExt;
use serde_json::json;

use crate::sandbox::{jwt_client, strict};
use crate::serve;

#[tokio::test]
async fn a_large_insert_runs_as_a_bulk_job_and_a_bulk_query_reads_it_back() {
    let sandbox = strict(0, 2000).await;
    let base = jwt_client(&sandbox);
    let c = bulk_client(&sandbox, 5);
    let mut rows: Vec<Fields> = (0..12)
        .map(|i| {
            json!({"Name": format!("Bulk, \"quoted\" {i}"), "Website": format!("b{i}.example")})
                .as_object()
                .cloned()
                .expect("object")
        })
        .collect();
    rows[4].remove("Name");
    let before = sandbox.stats().requests.len();
    let out = c.insert_many("Account", rows).await;
    assert_eq!(out.len(), 12);
    assert!(out[4].is_err(), "no Name: {:?}", out[4]);
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 11);
    assert_eq!(sandbox.count("Account"), 11);
    let paths: Vec<String> = sandbox.stats().requests[before..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(
        paths.iter().any(|p| p.contains("/jobs/ingest")),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.contains("composite/sobjects")),
        "{paths:?}"
    );
    // The job passed through InProgress: the client polled on until JobComplete.
    let polls = sandbox.stats().requests[before..]
        .iter()
        .filter(|r| {
            r.method == "GET" && r.path.contains("/jobs/ingest/") && !r.path.contains("Results")
        })
        .count();
    assert!(polls >= 2, "{paths:?}");
    // Each id is the record with that input's name.
    let first = out[0].as_ref().expect("ok");
    let read = base
        .sobject("Account")
        .get(first.as_str(), &["Name"])
        .await
        .expect("read");
    assert_eq!(read["Name"], "Bulk, \"quoted\" 0");

    let names: Vec<String> = c
        .bulk_query("SELECT Id, Name FROM Account", false)
        .map_ok(|r| r["Name"].as_str().unwrap_or_default().to_string())
        .try_collect()
        .await
        .expect("rows");
    assert_eq!(names.len(), 11);
    assert!(names.contains(&"Bulk, \"quoted\" 11".to_string()));
}

/// A JWT client for `sandbox` that switches to Bulk from `threshold` records.
fn bulk_client(
    sandbox: &crmkit_sandbox::salesforce::RunningSalesforce,
    threshold: usize,
) -> Client {
    Client::builder()
        .login_url(sandbox.instance_url())
        .jwt(
            crmkit_salesforce::auth::JwtBearer::new(
                "consumer-key",
                "ada@example.com",
                &crmkit_core::SecretString::from(crate::fixture("throwaway-test-key.pem")),
                &sandbox.instance_url(),
            )
            .expect("key"),
        )
        .retry(crate::fast_retry())
        .bulk_threshold(threshold)
        .build()
        .expect("builds")
}

#[tokio::test]
async fn large_updates_and_deletes_run_as_bulk_jobs_with_outcomes_by_id() {
    let sandbox = strict(0, 2000).await;
    let c = bulk_client(&sandbox, 3);
    let rows: Vec<Fields> = (0..4)
        .map(|i| {
            json!({"Name": format!("U{i}"), "Website": format!("u{i}.example")})
                .as_object()
                .cloned()
                .expect("object")
        })
        .collect();
    let ids: Vec<String> = c
        .insert_many("Account", rows)
        .await
        .into_iter()
        .map(|r| r.expect("created").into_string())
        .collect();
    let mut patches: Vec<Fields> = ids
        .iter()
        .rev()
        .map(|id| {
            json!({"Id": id, "Description": format!("patched {id}")})
                .as_object()
                .cloned()
                .expect("object")
        })
        .collect();
    patches[1].insert("Website".into(), serde_json::Value::Null);
    patches.push(
        json!({"Description": "no id"})
            .as_object()
            .cloned()
            .expect("object"),
    );
    patches.push(
        json!({"Id": "001000000000999AAA", "Description": "ghost"})
            .as_object()
            .cloned()
            .expect("object"),
    );
    let before = sandbox.stats().requests.len();
    let out = c.update_many("Account", patches).await;
    assert_eq!(out.len(), 6);
    assert!(out[..4].iter().all(Result::is_ok), "{out:?}");
    assert!(out[4].is_err() && out[5].is_err(), "{out:?}");
    assert!(
        sandbox.stats().requests[before..]
            .iter()
            .any(|r| r.path.contains("/jobs/ingest")),
        "a bulk job"
    );
    let read = c
        .sobject("Account")
        .get(&ids[2], &["Name", "Website", "Description"])
        .await
        .expect("read");
    assert_eq!(read["Description"], format!("patched {}", ids[2]));
    assert_eq!(read["Website"], serde_json::Value::Null, "#N/A cleared it");
    assert_eq!(read["Name"], "U2", "an empty cell left it alone");
    let first = c
        .sobject("Account")
        .get(&ids[0], &["Website"])
        .await
        .expect("read");
    assert_eq!(first["Website"], "u0.example");

    let gone = c.delete_many("Account", ids.clone()).await;
    assert!(gone.iter().all(Result::is_ok), "{gone:?}");
    assert_eq!(sandbox.count("Account"), 0);
}

#[tokio::test]
async fn outbound_messages_are_parsed_and_acknowledged() {
    let got: Arc<Mutex<Vec<crmkit_salesforce::events::OutboundMessage>>> = Arc::default();
    let g = got.clone();
    let receiver = Router::new().route(
        "/om",
        post(move |body: String| {
            let g = g.clone();
            async move {
                match parse_outbound(&body) {
                    Ok(m) => {
                        g.lock().expect("lock").push(m);
                        ([("content-type", "text/xml")], ack(true))
                    }
                    Err(_) => ([("content-type", "text/xml")], ack(false)),
                }
            }
        }),
    );
    let url = format!("{}/om", serve(receiver).await);
    let sandbox = SalesforceSandbox::builder()
        .outbound_message("Account", &url, ["Name"])
        .outbound_retry(Duration::from_millis(20), 5)
        .start()
        .await
        .expect("starts");
    let c = crate::client(&sandbox.instance_url(), "outbound");
    let id = c
        .sobject("Account")
        .create(
            json!({"Name": "Smith & Sons <EU>"})
                .as_object()
                .expect("object"),
        )
        .await
        .expect("created");
    let mut waited = 0;
    while got.lock().expect("lock").is_empty() && waited < 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    // Longer than the retry delay: an unacknowledged message would have come again.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let messages = got.lock().expect("lock").clone();
    assert_eq!(messages.len(), 1, "acknowledged once, not redelivered");
    let n = &messages[0].notifications[0];
    assert_eq!(n.sobject, "Account");
    assert_eq!(n.fields["Id"], id.as_str());
    assert_eq!(n.fields["Name"], "Smith & Sons <EU>");
}
