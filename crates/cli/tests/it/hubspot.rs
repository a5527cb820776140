//! `crmkit hubspot …` and `crmkit doctor` against an in-process HubSpot sandbox.

use crmkit_sandbox::hubspot::{HubSpotSandbox, RunningHubSpot};
use serde_json::Value;

use crate::support::crmkit_hubspot;

async fn sandbox() -> RunningHubSpot {
    HubSpotSandbox::builder()
        .seed(5)
        .companies(6)
        .burst_limit(1_000_000, std::time::Duration::from_secs(1))
        .search_limit(1_000_000)
        .start()
        .await
        .expect("the sandbox starts")
}

/// Runs `crmkit args…` against `hs` and returns stdout, failing unless it succeeds.
async fn ok(hs: &RunningHubSpot, args: &[&str]) -> String {
    let out = crmkit_hubspot(hs.base_url(), args).await;
    assert!(
        out.status.success(),
        "crmkit {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

async fn json(hs: &RunningHubSpot, args: &[&str]) -> Value {
    let text = ok(hs, args).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
}

async fn create_contact(hs: &RunningHubSpot, email: &str) -> String {
    let data = format!(r#"{{"properties":{{"email":"{email}","firstname":"Ada"}}}}"#);
    let created = json(
        hs,
        &[
            "hubspot", "contacts", "create", "--data", &data, "--output", "json",
        ],
    )
    .await;
    assert_eq!(created["properties"]["email"], email);
    created["id"].as_str().expect("an id").to_string()
}

#[tokio::test]
async fn list_prints_every_record_as_one_json_array() {
    let hs = sandbox().await;
    let companies = json(&hs, &["hubspot", "companies", "list", "--output", "json"]).await;
    let companies = companies.as_array().expect("an array");
    assert_eq!(companies.len(), hs.count("companies"));
    assert!(companies.iter().all(|c| c["id"].is_string()));
    let contacts = json(
        &hs,
        &["hubspot", "0-1", "list", "--max", "3", "--output", "json"],
    )
    .await;
    assert_eq!(contacts.as_array().expect("an array").len(), 3);
    let table = ok(&hs, &["hubspot", "deals", "list"]).await;
    assert!(
        table.lines().next().is_some_and(|l| l.contains("DEALNAME")),
        "{table}"
    );
    assert_eq!(table.lines().count(), hs.count("deals") + 1);
}

#[tokio::test]
async fn create_get_update_and_archive_a_contact() {
    let hs = sandbox().await;
    let before = hs.count("contacts");
    let id = create_contact(&hs, "ada@example.com").await;
    assert_eq!(hs.count("contacts"), before + 1);
    let got = json(
        &hs,
        &[
            "hubspot",
            "contact",
            "get",
            &id,
            "--properties",
            "email,firstname",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(got["id"], id.as_str());
    assert_eq!(got["properties"]["firstname"], "Ada");

    let updated = json(
        &hs,
        &[
            "hubspot",
            "contacts",
            "update",
            &id,
            "--data",
            r#"{"lastname":"Lovelace"}"#,
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(updated["id"], id.as_str());
    let got = json(
        &hs,
        &[
            "hubspot",
            "contacts",
            "get",
            &id,
            "--properties",
            "email,firstname,lastname",
            "--output",
            "json",
        ],
    )
    .await;
    // A patch: the properties not given keep their values.
    assert_eq!(got["properties"]["lastname"], "Lovelace");
    assert_eq!(got["properties"]["firstname"], "Ada");
    assert_eq!(got["properties"]["email"], "ada@example.com");

    let archived = ok(&hs, &["hubspot", "contacts", "archive", &id]).await;
    assert_eq!(archived.trim(), format!("archived contacts {id}"));
    assert_eq!(hs.count("contacts"), before);
    let gone = crmkit_hubspot(hs.base_url(), &["hubspot", "contacts", "get", &id]).await;
    assert!(!gone.status.success());
    let err = String::from_utf8_lossy(&gone.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
}

#[tokio::test]
async fn search_ands_its_filters() {
    let hs = sandbox().await;
    let id = create_contact(&hs, "grace@example.com").await;
    create_contact(&hs, "grace2@example.com").await;
    let found = json(
        &hs,
        &[
            "hubspot",
            "contacts",
            "search",
            "--filter",
            "email EQ grace@example.com",
            "--filter",
            "firstname EQ Ada",
            "--output",
            "json",
        ],
    )
    .await;
    let found = found.as_array().expect("an array");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["id"], id.as_str());
    let none = json(
        &hs,
        &[
            "hubspot",
            "contacts",
            "search",
            "--filter",
            "email EQ grace@example.com",
            "--filter",
            "firstname EQ Bob",
            "--sort",
            "createdate:desc",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(none, Value::Array(vec![]));
    let bad = crmkit_hubspot(
        hs.base_url(),
        &["hubspot", "contacts", "search", "--filter", "email LIKE x"],
    )
    .await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--filter"));
}

#[tokio::test]
async fn pipelines_show_each_stage_with_its_id() {
    let hs = sandbox().await;
    let stages = json(&hs, &["hubspot", "pipelines", "--output", "json"]).await;
    let stages = stages.as_array().expect("an array");
    assert!(!stages.is_empty());
    assert!(
        stages
            .iter()
            .all(|s| s["stage_id"].is_string() && s["stage"].is_string())
    );
    assert!(
        stages.iter().any(|s| s["stage_id"] == "closedwon"),
        "{stages:?}"
    );
    let table = ok(&hs, &["hubspot", "pipelines", "deals"]).await;
    assert!(table.contains("STAGE_ID"), "{table}");
}

async fn associated_companies(hs: &RunningHubSpot, contact: &str) -> Vec<Value> {
    let url = format!(
        "{}/crm/v4/objects/contacts/{contact}/associations/companies",
        hs.base_url().trim_end_matches('/')
    );
    let body: Value = reqwest::Client::new()
        .get(url)
        .bearer_auth("it-token")
        .send()
        .await
        .expect("the sandbox answers")
        .json()
        .await
        .expect("JSON");
    body["results"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn associate_links_two_records() {
    let hs = sandbox().await;
    let contact = create_contact(&hs, "linus@example.com").await;
    let companies = json(
        &hs,
        &[
            "hubspot",
            "companies",
            "list",
            "--max",
            "2",
            "--output",
            "json",
        ],
    )
    .await;
    let first = companies[0]["id"].as_str().expect("an id").to_string();
    let second = companies[1]["id"].as_str().expect("an id").to_string();
    ok(
        &hs,
        &[
            "hubspot",
            "associate",
            "contacts",
            &contact,
            "companies",
            &first,
        ],
    )
    .await;
    ok(
        &hs,
        &[
            "hubspot",
            "associate",
            "contact",
            &contact,
            "company",
            &second,
            "--label",
            "CONTACT_TO_COMPANY",
        ],
    )
    .await;
    let linked = associated_companies(&hs, &contact).await;
    let ids: Vec<String> = linked
        .iter()
        .map(|a| match &a["toObjectId"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    assert!(ids.contains(&first) && ids.contains(&second), "{linked:?}");
}

#[tokio::test]
async fn doctor_checks_the_token_without_printing_it() {
    let hs = sandbox().await;
    let out = ok(&hs, &["doctor"]).await;
    assert!(out.contains("hubspot: ok"), "{out}");
    // Not an OAuth token the sandbox issued, so the private-app endpoint answers.
    assert!(out.contains("hubspot scopes: ok"), "{out}");
    assert!(!out.contains("it-token"), "{out}");
}

#[tokio::test]
async fn doctor_names_the_scopes_a_private_app_token_lacks() {
    let token = "pat-na1-11111111-2222-3333-4444-555555555555";
    let hs = HubSpotSandbox::builder()
        .token_with_scopes(
            token,
            crmkit_sandbox::hubspot::DEFAULT_SCOPES
                .iter()
                .filter(|s| **s != "crm.objects.deals.write")
                .copied(),
        )
        .start()
        .await
        .expect("the sandbox starts");
    let out = crate::support::crmkit_hubspot_as(hs.base_url(), token, &["doctor"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("hubspot scopes:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains("MISSING") && line.contains("crm.objects.deals.write"),
        "{line}"
    );
    assert!(!line.contains("crm.objects.deals.read"), "{line}");
    assert!(!stdout.contains(token), "{stdout}");
}

/// A stand-in for HubSpot that answers the owners check and introspects `it-token` as
/// an OAuth access token with `scopes` (the sandbox has no introspection endpoint).
async fn introspecting(scopes: &'static [&'static str]) -> String {
    use axum::extract::Path;
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/crm/v3/owners",
            get(|| async { axum::Json(serde_json::json!({"results": []})) }),
        )
        .route(
            "/oauth/v1/access-tokens/{token}",
            get(move |Path(token): Path<String>| async move {
                let body =
                    serde_json::json!({"token": token, "token_type": "access", "scopes": scopes});
                let status = if token == "it-token" { 200 } else { 404 };
                (
                    axum::http::StatusCode::from_u16(status).expect("a status"),
                    axum::Json(body),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn doctor_names_the_scopes_an_oauth_token_lacks() {
    let base = introspecting(&["crm.objects.contacts.read", "crm.objects.owners.read"]).await;
    let out = crmkit_hubspot(base, &["doctor"]).await;
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("hubspot scopes:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains("MISSING") && line.contains("crm.objects.deals.write"),
        "{line}"
    );
    assert!(!line.contains("crm.objects.contacts.read ("), "{line}");
    assert!(!stdout.contains("it-token"), "{stdout}");

    let all = &[
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.objects.companies.read",
        "crm.objects.companies.write",
        "crm.objects.deals.read",
        "crm.objects.deals.write",
        "crm.objects.owners.read",
    ];
    let base = introspecting(all).await;
    let out = crmkit_hubspot(base, &["doctor"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("hubspot scopes: ok"), "{stdout}");
}
