//! `crmkit salesforce …` and `crmkit doctor` against an in-process Salesforce sandbox.

use crmkit_sandbox::salesforce::{RunningSalesforce, SalesforceSandbox};
use serde_json::Value;

use crate::support::crmkit_salesforce;

async fn sandbox() -> RunningSalesforce {
    SalesforceSandbox::builder()
        .seed(5)
        .companies(12)
        .page_size(3)
        .start()
        .await
        .expect("the sandbox starts")
}

async fn ok(sf: &RunningSalesforce, args: &[&str]) -> String {
    let out = crmkit_salesforce(sf.instance_url(), args).await;
    assert!(
        out.status.success(),
        "crmkit {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

#[tokio::test]
async fn a_query_prints_every_page_and_records_round_trip() {
    let sf = sandbox().await;
    let text = ok(
        &sf,
        &[
            "salesforce",
            "query",
            "SELECT Id, Name FROM Account",
            "--output",
            "json",
        ],
    )
    .await;
    let rows: Value = serde_json::from_str(&text).expect("a JSON array");
    assert_eq!(
        rows.as_array().map(Vec::len),
        Some(sf.count("Account")),
        "every page, not the first 3"
    );
    let id = ok(
        &sf,
        &[
            "salesforce",
            "create",
            "Account",
            "--data",
            r#"{"Name":"CLI Co","Website":"cli.example"}"#,
        ],
    )
    .await
    .trim()
    .to_string();
    ok(
        &sf,
        &[
            "salesforce",
            "update",
            "Account",
            &id,
            "--data",
            r#"{"Name":"CLI Co 2"}"#,
        ],
    )
    .await;
    let got: Value = serde_json::from_str(
        &ok(
            &sf,
            &[
                "salesforce",
                "get",
                "Account",
                &id,
                "--fields",
                "Name,Website",
            ],
        )
        .await,
    )
    .expect("JSON");
    assert_eq!(got["Name"], "CLI Co 2");
    assert_eq!(
        got["Website"], "cli.example",
        "the update changed only Name"
    );
    let csv = ok(
        &sf,
        &[
            "salesforce",
            "query",
            "SELECT Id, Name FROM Account WHERE Name = 'CLI Co 2'",
            "--output",
            "csv",
        ],
    )
    .await;
    assert_eq!(csv.lines().next(), Some("Id,Name"));
    assert!(csv.contains(&id));
    ok(&sf, &["salesforce", "delete", "Account", &id]).await;
    let out = crmkit_salesforce(sf.instance_url(), &["salesforce", "get", "Account", &id]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not found"), "{err}");
}

#[tokio::test]
async fn doctor_reports_the_daily_requests_left() {
    let sf = sandbox().await;
    let out = ok(&sf, &["doctor"]).await;
    assert!(out.contains("salesforce: ok"), "{out}");
    assert!(out.contains("daily API requests left"), "{out}");
    let text = ok(
        &sf,
        &[
            "salesforce",
            "describe",
            "Opportunity",
            "--output",
            "ndjson",
        ],
    )
    .await;
    let stage = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|f| f["name"] == "StageName")
        .expect("StageName");
    assert_eq!(stage["required"], true);
    assert!(
        stage["picklist"]
            .as_str()
            .is_some_and(|p| p.contains("Closed Won"))
    );
}
