//! The benchmarks end with their figures as name=value pairs.

use std::collections::HashMap;

use crate::support::crmkit;

/// The figures of the last line, as numbers.
fn figures(out: &str) -> HashMap<String, f64> {
    let last = out.lines().last().expect("some output");
    last.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_sandbox_reports_seed_list_and_search_figures() {
    let out = crmkit(None, &["bench", "sandbox", "--leads", "500"]).await;
    let figures = figures(&out);
    assert_eq!(figures.get("leads"), Some(&500.0), "{out}");
    for name in ["seed_s", "list_per_s", "search_ms"] {
        assert!(
            figures.get(name).is_some_and(|v| *v > 0.0),
            "{name} in {out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_close_import_compares_with_the_reference_loop() {
    let out = crmkit(
        None,
        &[
            "bench",
            "close-import",
            "--leads",
            "120",
            "--window-ms",
            "500",
            "--latency-ms",
            "0",
        ],
    )
    .await;
    let figures = figures(&out);
    for name in ["rate_ratio", "share_429", "reference_rate_ratio", "speedup"] {
        assert!(figures.contains_key(name), "{name} in {out}");
    }
    // One request per 100 ms cannot reach 100 requests per 500 ms; crmkit can.
    let reference = figures["reference_rate_ratio"];
    assert!(reference > 0.0 && reference < 0.1, "{out}");
    assert!(figures["speedup"] > 1.0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_sync_noop_writes_nothing_and_reads_only_the_listings() {
    let records: usize = 300;
    let n = records.to_string();
    let out = crmkit(
        None,
        &[
            "bench",
            "sync-noop",
            "--records",
            &n,
            "--settle-seconds",
            "0",
        ],
    )
    .await;
    let figures = figures(&out);
    assert_eq!(figures.get("writes"), Some(&0.0), "{out}");
    assert_eq!(figures.get("echo_writes"), Some(&0.0), "{out}");
    assert!(figures.get("seconds").is_some_and(|s| *s > 0.0), "{out}");
    // The echo run: the feeds' pages (search pages of 200 and batch reads of 100, the Close
    // event log) and nothing per record: no single-record read of a linked record's other
    // side.
    let pages = records.div_ceil(100) as f64;
    let bound = 10.0 + 2.0 * pages;
    let calls = figures["echo_calls"];
    assert!(calls > 0.0 && calls <= bound, "{out}");
    // The no-op re-sync: only the listings. Without the settle time the feeds' overlap has
    // not passed, so it reads the echoes again, within the same bound.
    let calls = figures["calls"];
    assert!(calls > 0.0 && calls <= bound, "{out}");
    let single: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" calls GET") && l.contains("{id}"))
        .collect();
    assert!(single.is_empty(), "{single:?} in {out}");
}
