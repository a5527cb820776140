//! A three-way `crmkit sync` (the binary) over Close, HubSpot and Salesforce sandboxes of one
//! world on SQLite: a company only in Salesforce reaches Close and HubSpot, one only in
//! Close reaches Salesforce, and a second sync writes nothing.

use std::process::Stdio;

use crmkit_core::SecretString;
use crmkit_core::http::ApiRequest;
use crmkit_sandbox::faults::Faults;
use serde_json::{Value, json};

use crate::sync_support::*;

/// Runs `crmkit args` pointed at all three sandboxes: success, stdout, stderr.
async fn run3(pair: &Pair, dir: &Scratch, args: &[&str]) -> (bool, String, String) {
    let mut child = command(pair, &dir.0, &dir.sqlite(), args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("crmkit starts");
    let status = wait(&mut child).await;
    let out = child.wait_with_output().expect("output");
    (
        status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The names of Salesforce's Accounts, read with `crmkit salesforce query`.
async fn account_names(pair: &Pair, dir: &Scratch) -> Vec<String> {
    let (ok, out, err) = run3(
        pair,
        dir,
        &[
            "salesforce",
            "query",
            "SELECT Id, Name FROM Account",
            "--output",
            "json",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let rows: Value = serde_json::from_str(&out).expect("JSON rows");
    rows.as_array()
        .expect("an array")
        .iter()
        .filter_map(|r| r["Name"].as_str().map(str::to_string))
        .collect()
}

fn company_names(contents: &Contents) -> Vec<String> {
    contents.rows["company"]
        .iter()
        .map(|r| r.split(" | ").next().unwrap_or_default().to_lowercase())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_way_sync_spreads_single_crm_companies_and_then_writes_nothing() {
    let pair = trio(11, 6, Faults::default()).await;
    // Companies and people; deals are left out (see `Scratch::new`).
    let dir = Scratch::for_pair("three-way", &pair);

    let (ok, out, err) = run3(
        &pair,
        &dir,
        &[
            "salesforce",
            "sobject",
            "Account",
            "create",
            "Name=Trident Salesforce Only Ltd",
            "--output",
            "json",
        ],
    )
    .await;
    assert!(ok, "{out}\n{err}");
    let close = crmkit_close::Client::builder()
        .api_key(SecretString::from("it-key".to_string()))
        .base_url(pair.close.api_url())
        .build()
        .expect("client");
    close
        .raw(&ApiRequest::post(
            "lead/".to_string(),
            json!({"name": "Trident Close Only Inc"}),
        ))
        .await
        .expect("Close creates the lead");
    // Salesforce's feed reads up to the second of its `Date` header, exclusive, and HubSpot's
    // likewise leaves the current second: records made in it belong to the next run.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let (ok, out, err) = run3(&pair, &dir, &["sync", "--report", "report.json"]).await;
    assert!(ok, "{out}\n{err}");
    let first = report(&dir.0);
    assert!(first["created"].as_u64() > Some(0), "{first}");
    // The per-CRM reads count records only: a checkpoint (a cursor moved over a quiet
    // object, such as Salesforce's contacts here) is not a read.
    let per_crm_read: u64 = first["per_crm"]
        .as_array()
        .expect("per CRM tallies")
        .iter()
        .filter_map(|t| t["read"].as_u64())
        .sum();
    assert_eq!(Some(per_crm_read), first["read"].as_u64(), "{first}");

    let in_close = company_names(&close_contents(&pair).await);
    let in_hubspot = company_names(&hubspot_contents(&pair).await);
    let in_sf: Vec<String> = account_names(&pair, &dir)
        .await
        .iter()
        .map(|n| n.to_lowercase())
        .collect();
    for (crm, names) in [("close", &in_close), ("hubspot", &in_hubspot)] {
        assert_eq!(
            names
                .iter()
                .filter(|n| n.contains("trident salesforce only"))
                .count(),
            1,
            "{crm} holds the Salesforce-only company once: {names:?}"
        );
    }
    for (crm, names) in [("hubspot", &in_hubspot), ("salesforce", &in_sf)] {
        assert_eq!(
            names
                .iter()
                .filter(|n| n.contains("trident close only"))
                .count(),
            1,
            "{crm} holds the Close-only company once: {names:?}"
        );
    }

    // HubSpot's feed leaves records changed in the current second for the next run.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (ok, out, err) = run3(&pair, &dir, &["sync", "--report", "report.json"]).await;
    assert!(ok, "{out}\n{err}");
    let second = report(&dir.0);
    assert_eq!(
        (&second["created"], &second["updated"], &second["deleted"]),
        (&json!(0), &json!(0), &json!(0)),
        "the second sync writes nothing: {second}"
    );
    assert_eq!(
        account_names(&pair, &dir).await.len(),
        in_sf.len(),
        "no Account added by the second sync"
    );
}
