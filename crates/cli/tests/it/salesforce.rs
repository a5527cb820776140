//! `crmkit salesforce …`, `crmkit doctor`, `crmkit sandbox salesforce` and the Salesforce
//! benchmarks against a Salesforce sandbox over loopback.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use crmkit_sandbox::salesforce::{RunningSalesforce, SalesforceSandbox};
use serde_json::Value;

use crate::support::{SALESFORCE_VARS, crmkit, crmkit_salesforce};

/// A seeded sandbox with pages of 7 records, so every listing spans several
/// `nextRecordsUrl` pages.
async fn sandbox() -> RunningSalesforce {
    SalesforceSandbox::builder()
        .seed(4)
        .companies(30)
        .page_size(7)
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

async fn json(sf: &RunningSalesforce, args: &[&str]) -> Value {
    let text = ok(sf, args).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
}

/// Runs a command that must fail; returns its stderr.
async fn refused(sf: &RunningSalesforce, args: &[&str]) -> String {
    let out: Output = crmkit_salesforce(sf.instance_url(), args).await;
    assert!(
        !out.status.success(),
        "crmkit {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("stderr is UTF-8")
}

#[tokio::test]
async fn query_streams_every_page_in_each_format() {
    let sf = sandbox().await;
    let contacts = sf.count("Contact");
    assert!(contacts > 14, "the seed gives several pages");
    let soql = "SELECT Id, LastName, Account.Name FROM Contact";
    let all = json(&sf, &["salesforce", "query", soql, "--output", "json"]).await;
    let all = all.as_array().expect("an array");
    assert_eq!(all.len(), contacts);
    let ids: HashSet<&str> = all.iter().filter_map(|r| r["Id"].as_str()).collect();
    assert_eq!(ids.len(), contacts, "no record twice, none missing");

    let csv = ok(&sf, &["salesforce", "query", soql, "--output", "csv"]).await;
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("Id,LastName,Account.Name"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), contacts);
    // Each seeded contact belongs to an account, whose name the parent column shows.
    assert!(
        rows.iter()
            .all(|r| r.split(',').nth(2).is_some_and(|n| !n.is_empty())),
        "{csv}"
    );

    let ndjson = ok(
        &sf,
        &[
            "salesforce",
            "query",
            soql,
            "--output",
            "ndjson",
            "--max",
            "9",
        ],
    )
    .await;
    let lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 9);
    assert!(lines.iter().all(|r| r["attributes"]["type"] == "Contact"));

    let table = ok(
        &sf,
        &[
            "salesforce",
            "query",
            "SELECT Id, Name, (SELECT Id FROM Contacts) FROM Account",
        ],
    )
    .await;
    let header = table.lines().next().expect("a header");
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["ID", "NAME", "CONTACTS"]
    );
    assert_eq!(table.lines().count(), sf.count("Account") + 1);
}

#[tokio::test]
async fn sobject_commands_create_read_patch_upsert_and_delete() {
    let sf = sandbox().await;
    let created = json(
        &sf,
        &[
            "salesforce",
            "sobject",
            "Contact",
            "create",
            "LastName=Lovelace",
            "Email=ada@example.com",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(created["result"], "created");
    let id = created["id"].as_str().expect("an id").to_string();
    assert!(id.starts_with("003"), "{id}");

    let updated = ok(
        &sf,
        &[
            "salesforce",
            "sobject",
            "Contact",
            "update",
            &id,
            "Title=CTO",
        ],
    )
    .await;
    assert!(updated.contains("updated"), "{updated}");
    let read = json(
        &sf,
        &[
            "salesforce",
            "sobject",
            "Contact",
            "get",
            &id,
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(read["Title"], "CTO");
    // A patch sends only the fields given: the email is untouched.
    assert_eq!(read["Email"], "ada@example.com");
    let table = ok(
        &sf,
        &[
            "salesforce",
            "sobject",
            "Contact",
            "get",
            &id,
            "--fields",
            "LastName,Title",
        ],
    )
    .await;
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Title", "CTO"]),
        "{table}"
    );

    let data = r#"{"LastName":"Hopper","Title":"Admiral"}"#;
    let first = json(
        &sf,
        &[
            "salesforce",
            "sobject",
            "Contact",
            "upsert",
            "--external-id",
            "External_Id__c=ext-1",
            "--data",
            data,
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(first["result"], "created", "{first}");
    let second = json(
        &sf,
        &[
            "salesforce",
            "sobject",
            "Contact",
            "upsert",
            "--external-id",
            "External_Id__c=ext-1",
            "Title=Rear Admiral",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(second["result"], "updated", "{second}");
    let by_ext = json(
        &sf,
        &[
            "salesforce",
            "sobject",
            "Contact",
            "get",
            "--external-id",
            "External_Id__c=ext-1",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(by_ext["Title"], "Rear Admiral");
    assert_eq!(by_ext["LastName"], "Hopper");

    let fields = json(
        &sf,
        &[
            "salesforce",
            "sobject",
            "Contact",
            "describe",
            "--output",
            "json",
        ],
    )
    .await;
    let field = |name: &str| {
        fields
            .as_array()
            .and_then(|all| all.iter().find(|f| f["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from {fields}"))
    };
    assert_eq!(field("LastName")["required"], true);
    assert_eq!(field("Title")["required"], false);
    assert_eq!(field("External_Id__c")["external_id"], true);

    let deleted = ok(&sf, &["salesforce", "sobject", "Contact", "delete", &id]).await;
    assert!(deleted.contains("deleted"), "{deleted}");
    let gone = refused(&sf, &["salesforce", "sobject", "Contact", "get", &id]).await;
    assert!(gone.contains("not found") && gone.contains(&id), "{gone}");
    // queryAll still sees it, in the recycle bin.
    let soql = format!("SELECT Id, IsDeleted FROM Contact WHERE Id = '{id}'");
    let live = json(&sf, &["salesforce", "query", &soql, "--output", "json"]).await;
    assert_eq!(live, Value::Array(Vec::new()));
    let all = json(
        &sf,
        &["salesforce", "query", &soql, "--all", "--output", "json"],
    )
    .await;
    assert_eq!(all[0]["IsDeleted"], true, "{all}");
}

#[tokio::test]
async fn bad_input_is_refused_with_a_message_naming_it() {
    let sf = sandbox().await;
    let e = refused(&sf, &["salesforce", "sobject", "Contact", "create"]).await;
    assert!(e.contains("create needs the fields to write"), "{e}");
    let e = refused(
        &sf,
        &["salesforce", "sobject", "Contact", "create", "LastName"],
    )
    .await;
    assert!(e.contains("create takes no record id"), "{e}");
    let e = refused(
        &sf,
        &[
            "salesforce",
            "sobject",
            "Contact",
            "create",
            "--data",
            "[1]",
        ],
    )
    .await;
    assert!(e.contains("--data must be a JSON object"), "{e}");
    let e = refused(
        &sf,
        &["salesforce", "sobject", "Contact", "upsert", "LastName=X"],
    )
    .await;
    assert!(e.contains("upsert needs --external-id"), "{e}");
    let e = refused(&sf, &["salesforce", "sobject", "Contact", "update"]).await;
    assert!(e.contains("update needs the record id"), "{e}");
    let e = refused(
        &sf,
        &[
            "salesforce",
            "sobject",
            "Contact",
            "create",
            "FirstName=Only",
        ],
    )
    .await;
    assert!(
        e.contains("REQUIRED_FIELD_MISSING") && e.contains("LastName"),
        "{e}"
    );
    let e = refused(&sf, &["salesforce", "query", "hello"]).await;
    assert!(e.contains("is not a SOQL query"), "{e}");
    let e = refused(
        &sf,
        &["salesforce", "query", "SELECT Id FROM Contact WHERE"],
    )
    .await;
    assert!(e.contains("MALFORMED_QUERY"), "{e}");
}

#[tokio::test]
async fn bulk_import_counts_rows_and_writes_the_failed_ones() {
    let sf = sandbox().await;
    let before = sf.count("Contact");
    let dir = std::env::temp_dir().join(format!("crmkit-sf-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let file = dir.join("contacts.csv");
    // CRLF line ends, a quoted comma, and one row without the required LastName.
    std::fs::write(
        &file,
        "LastName,Email,Title\r\nAda,ada@x.com,\"CTO, R&D\"\r\n,nolast@x.com,\r\nGrace,grace@x.com,\r\n",
    )
    .expect("the CSV is written");
    let path = file.to_string_lossy().to_string();
    let out = crmkit_salesforce(
        sf.instance_url(),
        &["salesforce", "bulk", "import", &path, "--object", "Contact"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a failed row fails the command");
    assert!(stdout.contains("successful=2 failed=1"), "{stdout}");
    let failed = dir.join("contacts.failed.csv");
    assert!(stdout.contains(&*failed.to_string_lossy()), "{stdout}");
    assert!(stderr.contains("1 of 3 rows were not imported"), "{stderr}");
    assert_eq!(sf.count("Contact"), before + 2);
    let written = std::fs::read_to_string(&failed).expect("the failed rows are written");
    let mut lines = written.lines();
    assert_eq!(lines.next(), Some("sf__Error,LastName,Email,Title"));
    let row = lines.next().expect("the failed row");
    assert!(
        row.starts_with("REQUIRED_FIELD_MISSING") && row.contains("nolast@x.com"),
        "{row}"
    );
    assert_eq!(lines.next(), None);

    // A ragged file is refused before any job is opened.
    let ragged = dir.join("ragged.csv");
    std::fs::write(&ragged, "LastName,Email\nA,a@x.com\nB\n").expect("written");
    let jobs = |sf: &RunningSalesforce| {
        sf.stats()
            .requests
            .iter()
            .filter(|r| r.path.contains("/jobs/"))
            .count()
    };
    let opened = jobs(&sf);
    let e = refused(
        &sf,
        &[
            "salesforce",
            "bulk",
            "import",
            &ragged.to_string_lossy(),
            "--object",
            "Contact",
        ],
    )
    .await;
    assert!(e.contains("ragged.csv") && e.contains("line: 3"), "{e}");
    assert_eq!(jobs(&sf), opened);
    let e = refused(
        &sf,
        &[
            "salesforce",
            "bulk",
            "import",
            &path,
            "--object",
            "Contact",
            "--operation",
            "upsert",
        ],
    )
    .await;
    assert!(e.contains("--external-id-field"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn limits_and_doctor_report_the_daily_quota() {
    let sf = sandbox().await;
    let limits = json(&sf, &["salesforce", "limits", "--output", "json"]).await;
    let daily = limits
        .as_array()
        .expect("an array")
        .iter()
        .find(|l| l["name"] == "DailyApiRequests")
        .expect("the daily quota")
        .clone();
    assert_eq!(daily["max"], 15_000);
    assert_eq!(
        daily["used"].as_i64(),
        Some(15_000 - daily["remaining"].as_i64().unwrap_or(0))
    );
    let report = ok(&sf, &["doctor"]).await;
    for line in [
        "salesforce token: ok",
        "salesforce API: ok — version 59.0",
        "salesforce limits: ok",
        "SF_CLIENT_ID set",
        "SF_INSTANCE_URL set",
    ] {
        assert!(report.contains(line), "{line:?} missing from:\n{report}");
    }

    // Nothing listens on the port of a stopped sandbox: doctor says so and fails.
    let url = sf.instance_url();
    drop(sf);
    let out = crmkit_salesforce(url, &["doctor"]).await;
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{report}");
    assert!(report.contains("FAILED"), "{report}");
}

#[tokio::test]
async fn sandbox_command_prints_the_lines_that_point_crmkit_at_it() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crmkit"))
        .args(["sandbox", "salesforce", "--port", "0", "--companies", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the sandbox command starts");
    let stdout = child.stdout.take().expect("stdout");
    let env: Vec<(String, String)> = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| {
                l.split_once('=')
                    .filter(|(k, _)| k.starts_with("SF_"))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .take(4)
            .collect()
    })
    .await
    .expect("the reader ends");
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "SF_INSTANCE_URL",
            "SF_LOGIN_URL",
            "SF_CLIENT_ID",
            "SF_CLIENT_SECRET"
        ]
    );
    assert!(env[0].1.starts_with("http://127.0.0.1:"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crmkit"));
    cmd.current_dir(std::env::temp_dir())
        .args([
            "--config",
            "/nonexistent/crmkit.toml",
            "salesforce",
            "query",
        ])
        .arg("SELECT Id FROM Account")
        .args(["--output", "json"])
        .env_remove("CLOSE_API_KEY");
    for var in SALESFORCE_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("the runner ends")
        .expect("crmkit runs");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let accounts: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(!accounts.as_array().expect("an array").is_empty());
}

/// The figures of a benchmark's last line.
fn figures(out: &str) -> Vec<(String, f64)> {
    out.lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_salesforce_import_uses_a_few_bulk_calls() {
    let out = crmkit(
        None,
        &[
            "bench",
            "salesforce-import",
            "--contacts",
            "2500",
            "--reference-sample",
            "40",
        ],
    )
    .await;
    let figures = figures(&out);
    let keys: Vec<&str> = figures.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "calls",
            "polls",
            "reference_calls",
            "reference_sample",
            "speedup"
        ],
        "{out}"
    );
    let value = |name: &str| figures.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    assert!(
        value("calls").is_some_and(|c| (3.0..=10.0).contains(&c)),
        "{out}"
    );
    assert!(value("polls").is_some_and(|p| p >= 1.0), "{out}");
    assert_eq!(value("reference_calls"), Some(2500.0), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_salesforce_query_streams_every_record() {
    let out = crmkit(None, &["bench", "salesforce-query", "--records", "3000"]).await;
    let figures = figures(&out);
    let value = |name: &str| figures.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    assert_eq!(value("records"), Some(3000.0), "{out}");
    assert!(value("peak_rss_mb").is_some_and(|m| m > 0.0), "{out}");
}
