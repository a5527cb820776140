//! Sandboxes of one shared world (Close and HubSpot, and Salesforce for three-way tests), the
//! `crmkit sync` binary run as a child against them, and the CRMs' final contents read back
//! for comparison.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crmkit_core::SecretString;
use crmkit_core::http::ApiRequest;
use crmkit_core::{Crm, ObjectKind};
use crmkit_sandbox::close::{CloseSandbox, RunningClose};
use crmkit_sandbox::faults::Faults;
use crmkit_sandbox::hubspot::{HubSpotSandbox, RunningHubSpot};
use crmkit_sandbox::salesforce::{RunningSalesforce, SalesforceSandbox};
use crmkit_store::Store;
use crmkit_sync::matching;
use futures::TryStreamExt;
use serde_json::Value;

use crate::support::SALESFORCE_VARS;

/// The sandboxes of one world: Close and HubSpot, and Salesforce in three-way tests.
pub struct Pair {
    /// Close.
    pub close: RunningClose,
    /// HubSpot.
    pub hubspot: RunningHubSpot,
    /// Salesforce, when the sync is three-way.
    pub salesforce: Option<RunningSalesforce>,
}

impl Pair {
    /// The CRMs of the sync, as `[sync] crms` names them.
    pub fn crms(&self) -> &'static [&'static str] {
        match self.salesforce {
            Some(_) => &["close", "hubspot", "salesforce"],
            None => &["close", "hubspot"],
        }
    }

    /// Sets the faults of every sandbox.
    pub fn set_faults(&self, faults: Faults) {
        self.close.set_faults(faults.clone());
        self.hubspot.set_faults(faults.clone());
        if let Some(sf) = &self.salesforce {
            sf.set_faults(faults);
        }
    }
}

/// Starts Close and HubSpot seeded with world `seed` of `companies` companies, each
/// answering after `latency_ms` (wider windows between a write and its answer).
pub async fn pair(seed: u64, companies: usize, faults: Faults) -> Pair {
    let close = CloseSandbox::builder()
        .seed(seed)
        .leads(companies)
        .rate_limit(1_000_000, Duration::from_secs(1))
        .faults(faults.clone())
        .start()
        .await
        .expect("Close sandbox starts");
    let hubspot = HubSpotSandbox::builder()
        .seed(seed)
        .companies(companies)
        .burst_limit(1_000_000, Duration::from_secs(10))
        .faults(faults)
        .start()
        .await
        .expect("HubSpot sandbox starts");
    Pair {
        close,
        hubspot,
        salesforce: None,
    }
}

/// [`pair`] plus a Salesforce sandbox of the same world, for a three-way sync.
pub async fn trio(seed: u64, companies: usize, faults: Faults) -> Pair {
    let salesforce = SalesforceSandbox::builder()
        .seed(seed)
        .companies(companies)
        .faults(faults.clone())
        .start()
        .await
        .expect("Salesforce sandbox starts");
    Pair {
        salesforce: Some(salesforce),
        ..pair(seed, companies, faults).await
    }
}

/// A scratch directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh directory named after `name`, configured to sync Close and HubSpot.
    pub fn new(name: &str) -> Scratch {
        Self::syncing(name, &["close", "hubspot"])
    }

    /// A fresh directory named after `name`, configured to sync the CRMs of `pair`.
    pub fn for_pair(name: &str, pair: &Pair) -> Scratch {
        Self::syncing(name, pair.crms())
    }

    fn syncing(name: &str, crms: &[&str]) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "crmkit-cli-sync-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        // Deals are left out: the seeded Close statuses are ids the default stage map
        // cannot know. Records on the retry list are due at the next run: the reruns here
        // follow each other within seconds, and the back-off is not what they test.
        let crms: Vec<String> = crms.iter().map(|c| format!("{c:?}")).collect();
        std::fs::write(
            dir.join("crmkit.toml"),
            format!(
                "[sync]\ncrms = [{}]\n\n[sync.retry]\nfirst_delay_seconds = 0\n\n[deal]\nfields = [\"name\"]\nenabled = false\n",
                crms.join(", ")
            ),
        )
        .expect("config");
        Scratch(dir)
    }

    /// The SQLite database URL in this directory.
    pub fn sqlite(&self) -> String {
        format!("sqlite:{}", self.0.join("crmkit.db").display())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `crmkit` command with `args`, pointed at `pair` and `database_url`, run in `dir`.
pub fn command(pair: &Pair, dir: &Path, database_url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crmkit"));
    cmd.current_dir(dir)
        .arg("--config")
        .arg(dir.join("crmkit.toml"))
        .args(args)
        .env("CLOSE_API_KEY", "it-key")
        .env("CLOSE_BASE_URL", pair.close.api_url())
        .env("HUBSPOT_ACCESS_TOKEN", "it-token")
        .env("HUBSPOT_BASE_URL", pair.hubspot.base_url())
        .env("DATABASE_URL", database_url)
        .env_remove("CLOSE_WEBHOOK_SECRET")
        .env_remove("SF_MARKER_FIELD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in SALESFORCE_VARS {
        cmd.env_remove(var);
    }
    if let Some(sf) = &pair.salesforce {
        cmd.env("SF_INSTANCE_URL", sf.instance_url())
            .env("SF_LOGIN_URL", sf.instance_url())
            .env("SF_CLIENT_ID", "it-client")
            .env("SF_CLIENT_SECRET", "it-secret");
    }
    cmd
}

/// Starts `crmkit sync` as a child.
pub fn spawn_sync(pair: &Pair, dir: &Path, database_url: &str) -> Child {
    let mut args = vec!["sync", "--report", "report.json"];
    if database_url.starts_with("postgres") {
        args.push("--break-lease");
    }
    command(pair, dir, database_url, &args)
        .spawn()
        .expect("crmkit starts")
}

/// Waits for `child` without blocking the runtime the sandboxes are served on.
pub async fn wait(child: &mut Child) -> std::process::ExitStatus {
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `crmkit sync` to the end: its exit status, stdout and stderr.
pub async fn run_sync(pair: &Pair, dir: &Path, database_url: &str) -> (bool, String, String) {
    let mut child = spawn_sync(pair, dir, database_url);
    let status = wait(&mut child).await;
    let out = child.wait_with_output().expect("output");
    (
        status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The run report `crmkit sync --report report.json` wrote in `dir`.
pub fn report(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report written");
    serde_json::from_str(&text).expect("report is JSON")
}

/// Syncs until a run succeeds and writes nothing (at most `max` runs); the last report.
pub async fn converge(pair: &Pair, dir: &Path, database_url: &str, max: usize) -> Value {
    converge_allowing(pair, dir, database_url, max, |_| false).await
}

/// [`converge`], where a run whose only errors are `allowed` counts as successful.
pub async fn converge_allowing(
    pair: &Pair,
    dir: &Path,
    database_url: &str,
    max: usize,
    allowed: impl Fn(&str) -> bool,
) -> Value {
    let mut last = String::new();
    for _ in 0..max {
        // HubSpot's feed leaves records changed in the current second for the next run.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let _ = std::fs::remove_file(dir.join("report.json"));
        let (ok, out, err) = run_sync(pair, dir, database_url).await;
        let r = std::fs::read_to_string(dir.join("report.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        if let Some(r) = r {
            let errors_allowed = r["errors"]
                .as_array()
                .is_some_and(|es| es.iter().all(|e| allowed(e.as_str().unwrap_or_default())));
            let quiet = r["created"] == 0 && r["updated"] == 0 && r["deleted"] == 0;
            if quiet && (ok || errors_allowed) {
                return r;
            }
        }
        last = format!("{out}\n{err}");
    }
    panic!("the sync did not settle in {max} runs; last: {last}");
}

/// What one CRM holds: each kind's records as sorted comparable rows, and the markers seen.
#[derive(Debug, PartialEq, Eq)]
pub struct Contents {
    /// Kind → sorted rows (name/domain for companies, email/name for people).
    pub rows: BTreeMap<&'static str, Vec<String>>,
    /// Idempotency markers found, with how often each occurs.
    pub markers: BTreeMap<String, usize>,
}

/// A client of the Close sandbox, to read or edit it as a person would.
pub fn close_client(pair: &Pair) -> crmkit_close::Client {
    crmkit_close::Client::builder()
        .api_key(SecretString::from("it-key".to_string()))
        .base_url(pair.close.api_url())
        .build()
        .expect("client")
}

/// A client of the HubSpot sandbox, to read or edit it as a person would.
pub fn hubspot_client(pair: &Pair) -> crmkit_hubspot::Client {
    crmkit_hubspot::Client::builder()
        .access_token(SecretString::from("it-token".to_string()))
        .base_url(pair.hubspot.base_url())
        .build()
        .expect("client")
}

async fn close_all(c: &crmkit_close::Client, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let page = c
            .raw(&ApiRequest::get(format!(
                "{path}{sep}_limit=100&_skip={}",
                out.len()
            )))
            .await
            .expect("Close lists");
        let data = page["data"].as_array().cloned().unwrap_or_default();
        let n = data.len();
        out.extend(data);
        if n == 0 || page["has_more"] != Value::Bool(true) {
            return out;
        }
    }
}

/// Everything Close holds.
pub async fn close_contents(pair: &Pair) -> Contents {
    let c = close_client(pair);
    let fields = c
        .raw(&ApiRequest::get("custom_field/lead/".to_string()))
        .await
        .expect("fields");
    let marker = fields["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["name"] == "crmkit marker")
        .and_then(|f| f["id"].as_str())
        .map(|id| format!("custom.{id}"));
    let mut markers = BTreeMap::new();
    let mut companies = Vec::new();
    for lead in close_all(&c, "lead/").await {
        companies.push(format!(
            "{} | {}",
            lead["name"].as_str().unwrap_or_default(),
            lead["url"].as_str().unwrap_or_default()
        ));
        if let Some(m) = marker.as_ref().and_then(|k| lead[k.as_str()].as_str()) {
            *markers.entry(m.to_string()).or_default() += 1;
        }
    }
    let mut people = Vec::new();
    for contact in close_all(&c, "contact/").await {
        let email = contact["emails"][0]["email"].as_str().unwrap_or_default();
        people.push(format!(
            "{} | {}",
            email.to_lowercase(),
            contact["name"].as_str().unwrap_or_default()
        ));
    }
    companies.sort();
    people.sort();
    Contents {
        rows: BTreeMap::from([("company", companies), ("person", people)]),
        markers,
    }
}

async fn hubspot_all(c: &crmkit_hubspot::Client, object: &str, props: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("crm/v3/objects/{object}?limit=100&properties={props}");
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let page = c.raw(&ApiRequest::get(path)).await.expect("HubSpot lists");
        out.extend(page["results"].as_array().cloned().unwrap_or_default());
        match page["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_string()),
            None => return out,
        }
    }
}

/// Everything HubSpot holds.
pub async fn hubspot_contents(pair: &Pair) -> Contents {
    let c = hubspot_client(pair);
    let mut markers = BTreeMap::new();
    let mut rows = BTreeMap::new();
    for (kind, object, a, b) in [
        ("company", "companies", "name", "domain"),
        ("person", "contacts", "email", "firstname"),
    ] {
        let mut list = Vec::new();
        for o in hubspot_all(&c, object, &format!("{a},{b},lastname,crmkit_marker")).await {
            let p = &o["properties"];
            list.push(format!(
                "{} | {} {}",
                p[a].as_str().unwrap_or_default().to_lowercase(),
                p[b].as_str().unwrap_or_default(),
                p["lastname"].as_str().unwrap_or_default()
            ));
            if let Some(m) = p["crmkit_marker"].as_str().filter(|m| !m.is_empty()) {
                *markers.entry(m.to_string()).or_default() += 1;
            }
        }
        list.sort();
        rows.insert(kind, list);
    }
    Contents { rows, markers }
}

/// Everything Salesforce holds (Accounts and Contacts), when `pair` has it.
pub async fn salesforce_contents(pair: &Pair) -> Contents {
    let sf = pair.salesforce.as_ref().expect("a Salesforce sandbox");
    let url = sf.instance_url();
    let c = crmkit_salesforce::Client::from_vars(|k| match k {
        "SF_INSTANCE_URL" | "SF_LOGIN_URL" => Some(url.clone()),
        "SF_CLIENT_ID" => Some("it-client".to_string()),
        "SF_CLIENT_SECRET" => Some("it-secret".to_string()),
        _ => None,
    })
    .expect("client");
    let mut markers = BTreeMap::new();
    let mut rows = BTreeMap::new();
    for (kind, soql, a, b) in [
        (
            "company",
            "SELECT Id, Name, Website, External_Id__c FROM Account",
            "Name",
            "Website",
        ),
        (
            "person",
            "SELECT Id, Email, FirstName, LastName, External_Id__c FROM Contact",
            "Email",
            "FirstName",
        ),
    ] {
        let found: Vec<_> = c.query(soql).try_collect().await.expect("Salesforce lists");
        let mut list = Vec::new();
        for r in found {
            let text = |k: &str| {
                r.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let last = if kind == "person" {
                text("LastName")
            } else {
                String::new()
            };
            list.push(format!("{} | {} {last}", text(a).to_lowercase(), text(b)));
            if let Some(m) = r
                .get("External_Id__c")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
            {
                *markers.entry(m.to_string()).or_default() += 1;
            }
        }
        list.sort();
        rows.insert(kind, list);
    }
    Contents { rows, markers }
}

/// Every CRM's contents, in [`Pair::crms`] order.
pub async fn all_contents(pair: &Pair) -> Vec<(&'static str, Contents)> {
    let mut out = vec![
        ("close", close_contents(pair).await),
        ("hubspot", hubspot_contents(pair).await),
    ];
    if pair.salesforce.is_some() {
        out.push(("salesforce", salesforce_contents(pair).await));
    }
    out
}

/// Asserts every company and person link in the store at `database_url` holds a record in
/// each of `crms`: nothing was left unlinked (or uncreated) in one of them.
pub async fn assert_all_linked(database_url: &str, crms: &[Crm]) {
    let store = Store::open(database_url).await.expect("store opens");
    for kind in [ObjectKind::Company, ObjectKind::Person] {
        let mut after = None;
        let mut seen = 0;
        loop {
            let page = store
                .list_links(kind, after.as_ref(), 500)
                .await
                .expect("links");
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.id.clone());
            for link in &page {
                seen += 1;
                let missing: Vec<_> = crms.iter().filter(|c| link.crm_id(**c).is_none()).collect();
                assert!(
                    missing.is_empty(),
                    "{kind} link {} has no record in {missing:?}: {:?}",
                    link.id,
                    crms.iter().map(|c| link.crm_id(*c)).collect::<Vec<_>>()
                );
            }
        }
        assert!(seen > 0, "no {kind} links stored");
    }
    store.close().await;
}

/// How often each key occurs.
fn counts<'a>(keys: impl IntoIterator<Item = &'a str>) -> BTreeMap<&'a str, usize> {
    let mut seen = BTreeMap::new();
    for k in keys {
        *seen.entry(k).or_insert(0) += 1;
    }
    seen
}

/// The identities of a contents row that must not repeat: the whole row, and for a company
/// its normalised name and its domain (so "Acme Inc | acme.com" and "Acme | acme.com" count
/// as one company), for a person the e-mail.
fn identities(kind: &str, row: &str) -> Vec<String> {
    let (head, rest) = row.split_once(" | ").unwrap_or((row, ""));
    let mut out = vec![format!("row:{row}")];
    if kind == "company" {
        out.extend(matching::normalize_company_name(head).map(|n| format!("name:{n}")));
        let domain = rest.split_whitespace().next().unwrap_or_default();
        out.extend(matching::normalize_domain(domain).map(|d| format!("domain:{d}")));
    } else {
        out.extend(matching::normalize_email(head).map(|e| format!("email:{e}")));
    }
    out
}

/// Asserts no record appears in `contents` more often than in `reference` (an uninterrupted
/// run's, where a seeded world may hold a name twice) or, absent there, more than once: by
/// its row, by company name and domain, by person e-mail; and no marker is on two records.
pub fn assert_no_duplicates(crm: &str, contents: &Contents, reference: &Contents) {
    for (kind, rows) in &contents.rows {
        let ids = |rows: &[String]| -> Vec<String> {
            rows.iter().flat_map(|r| identities(kind, r)).collect()
        };
        let want = reference.rows.get(kind).map(|r| ids(r)).unwrap_or_default();
        let allowed = counts(want.iter().map(String::as_str));
        let got = ids(rows);
        let twice: Vec<_> = counts(got.iter().map(String::as_str))
            .into_iter()
            .filter(|(r, n)| *n > allowed.get(r).copied().unwrap_or(1).max(1))
            .collect();
        assert!(twice.is_empty(), "{crm} {kind}s duplicated: {twice:?}");
    }
    let twice: Vec<_> = contents.markers.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{crm} markers on several records: {twice:?}"
    );
}

/// Rows only in `a` and rows only in `b`, per kind, for failure messages.
pub fn diff(a: &Contents, b: &Contents) -> String {
    let mut out = String::new();
    for (kind, rows) in &a.rows {
        let other = b.rows.get(kind).cloned().unwrap_or_default();
        let only_a: Vec<_> = rows.iter().filter(|r| !other.contains(r)).collect();
        let only_b: Vec<_> = other.iter().filter(|r| !rows.contains(r)).collect();
        if !only_a.is_empty() || !only_b.is_empty() {
            out.push_str(&format!(
                "{kind}: only here {only_a:?}; only in the reference {only_b:?}\n"
            ));
        }
    }
    out
}

/// The PostgreSQL the tests use unless `CRMKIT_TEST_DATABASE_URL` names another.
const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A sync database of one test: a SQLite file in a directory of its own, or a fresh schema
/// of the test PostgreSQL; removed when dropped (also when the test panics).
pub struct TestDb {
    /// The URL `crmkit` is given (`DATABASE_URL`).
    pub url: String,
    cleanup: Option<Cleanup>,
}

enum Cleanup {
    Dir(PathBuf),
    Schema { base: String, schema: String },
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

impl TestDb {
    /// A new SQLite database file.
    pub async fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(unique("crmkit-cli-db"));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        TestDb {
            url: format!("sqlite:{}", dir.join("crmkit.db").display()),
            cleanup: Some(Cleanup::Dir(dir)),
        }
    }

    /// A new schema of the test PostgreSQL (`CRMKIT_TEST_DATABASE_URL`, by default
    /// postgres://postgres@127.0.0.1:5432/test); fails, never skips, when it is unreachable.
    pub async fn postgres() -> TestDb {
        let base =
            std::env::var("CRMKIT_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG.to_string());
        let schema = unique("crmkit_cli_sync");
        pg_execute(&base, &format!("CREATE SCHEMA {schema}")).await;
        let sep = if base.contains('?') { '&' } else { '?' };
        TestDb {
            url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
            cleanup: Some(Cleanup::Schema { base, schema }),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match self.cleanup.take() {
            Some(Cleanup::Dir(dir)) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Some(Cleanup::Schema { base, schema }) => {
                // Drop runs inside the test's runtime, which cannot be blocked on: the schema
                // is removed on a thread of its own.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime");
                    rt.block_on(pg_execute(&base, &format!("DROP SCHEMA {schema} CASCADE")));
                })
                .join();
            }
            None => {}
        }
    }
}

/// Runs `sql` on the PostgreSQL at `url`; panics naming the server when it is unreachable.
async fn pg_execute(url: &str, sql: &str) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {} ({e}): start it, or point \
             CRMKIT_TEST_DATABASE_URL at one",
            crmkit_store::redact(url)
        )
    });
    sqlx::query(sql).execute(&mut c).await.expect(sql);
    let _ = c.close().await;
}
