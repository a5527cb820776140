//! A listing that fails part way prints what it fetched, then the error, and fails.

use std::time::Duration;

use crmkit_sandbox::close::{CloseSandbox, Config, RunningClose};
use crmkit_sandbox::faults::Faults;
use serde_json::Value;

use crate::support::crmkit_output;

/// Objects per page the sandbox allows, so a page is not a whole table chunk of 100 and a
/// table has an unfinished chunk when the failure comes.
const PAGE: usize = 30;

/// Each answer takes this long, so the listing is still running when the fault is set.
const LATENCY_MS: u64 = 50;

async fn slow_sandbox() -> RunningClose {
    CloseSandbox::builder()
        .config(Config {
            seed: 3,
            leads: 400,
            rate_limit: 1_000_000,
            rate_window: Duration::from_secs(1),
            max_limit: Some(PAGE),
            faults: Faults {
                latency_ms: LATENCY_MS,
                ..Faults::default()
            },
            ..Config::default()
        })
        .start()
        .await
        .expect("the sandbox starts")
}

/// Lists opportunities in `format`; once the first page was served, every further
/// `GET /opportunity/` answers 500 (retries included). Returns stdout, stderr and the total.
async fn list_until_the_server_fails(format: &'static str) -> (String, String, usize) {
    let sb = slow_sandbox().await;
    let total = sb.count("opportunity");
    assert!(
        total > 8 * PAGE,
        "enough opportunities for several pages: {total}"
    );
    let url = sb.api_url();
    let args = ["close", "opportunities", "list", "--output", format];
    let run = tokio::spawn(async move { crmkit_output(Some(url), &args).await });
    let served = |sb: &RunningClose| {
        sb.stats()
            .requests
            .iter()
            .any(|r| r.method == "GET" && r.path == "/opportunity/" && r.status == 200)
    };
    for _ in 0..3_000 {
        if served(&sb) || run.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    sb.set_faults(Faults {
        rate_500: 1.0,
        route: Some("GET /opportunity/".into()),
        latency_ms: LATENCY_MS,
        ..Faults::default()
    });
    let output = run.await.expect("the run ends");
    assert!(
        !output.status.success(),
        "a failed listing fails the command"
    );
    let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    (stdout, stderr, total)
}

fn check_error(stderr: &str, printed: usize) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .expect("an error line");
    assert!(
        line.contains(&format!("stopped after {printed} opportunities:")) && line.contains("500"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_keeps_the_rows_fetched_before_a_failure_as_a_valid_array() {
    let (stdout, stderr, total) = list_until_the_server_fails("json").await;
    let rows: Vec<Value> = serde_json::from_str(&stdout).expect("still one JSON array");
    assert!(
        !rows.is_empty() && rows.len() < total,
        "{} rows",
        rows.len()
    );
    // Keyset pages re-read the last instant, so the count is not a multiple of the page; what
    // matters is that every row fetched was printed once and the error says how many.
    let ids: std::collections::HashSet<&str> =
        rows.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids.len(), rows.len(), "each row once");
    check_error(&stderr, rows.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_prints_its_unfinished_chunk_before_the_error() {
    let (stdout, stderr, total) = list_until_the_server_fails("table").await;
    let rows = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("oppo_"))
        .count();
    assert!(rows > 0 && rows < total, "{rows} rows");
    check_error(&stderr, rows);
}
