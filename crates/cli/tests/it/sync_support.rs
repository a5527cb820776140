//! Sandboxes of one shared world, the `crmkit sync` binary run as a child against them, and
//! the CRMs' final contents read back for comparison.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crmkit_core::SecretString;
use crmkit_core::http::ApiRequest;
use crmkit_sandbox::close::{CloseSandbox, RunningClose};
use crmkit_sandbox::faults::Faults;
use crmkit_sandbox::hubspot::{HubSpotSandbox, RunningHubSpot};
use serde_json::Value;

/// The Close and HubSpot sandboxes of one world.
pub struct Pair {
    /// Close.
    pub close: RunningClose,
    /// HubSpot.
    pub hubspot: RunningHubSpot,
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
    Pair { close, hubspot }
}

/// A scratch directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh directory named after `name`.
    pub fn new(name: &str) -> Scratch {
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
        // cannot know.
        std::fs::write(
            dir.join("crmkit.toml"),
            "[sync]\ncrms = [\"close\", \"hubspot\"]\n\n[deal]\nfields = [\"name\"]\nenabled = false\n",
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
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
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
    let mut last = String::new();
    for _ in 0..max {
        // HubSpot's feed leaves records changed in the current second for the next run.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (ok, out, err) = run_sync(pair, dir, database_url).await;
        if ok {
            let r = report(dir);
            if r["created"] == 0 && r["updated"] == 0 && r["deleted"] == 0 {
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

fn close_client(pair: &Pair) -> crmkit_close::Client {
    crmkit_close::Client::builder()
        .api_key(SecretString::from("it-key".to_string()))
        .base_url(pair.close.api_url())
        .build()
        .expect("client")
}

fn hubspot_client(pair: &Pair) -> crmkit_hubspot::Client {
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

fn counts(rows: &[String]) -> BTreeMap<&String, usize> {
    let mut seen = BTreeMap::new();
    for r in rows {
        *seen.entry(r).or_insert(0) += 1;
    }
    seen
}

/// Asserts no record appears in `contents` more often than in `reference` (an uninterrupted
/// run's, where a seeded world may hold a name twice) or, absent there, more than once (by
/// its row: email or name and domain), and no marker is on two records.
pub fn assert_no_duplicates(crm: &str, contents: &Contents, reference: &Contents) {
    for (kind, rows) in &contents.rows {
        let allowed = reference
            .rows
            .get(kind)
            .map(|r| counts(r))
            .unwrap_or_default();
        let twice: Vec<_> = counts(rows)
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
