//! `bench hubspot-upsert` ends with its figures as name=value pairs.

use crate::support::crmkit;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_hubspot_upsert_reports_calls_rate_and_reference() {
    // One request per second makes crmkit's three batch calls span two whole windows.
    let out = crmkit(
        None,
        &[
            "bench",
            "hubspot-upsert",
            "--contacts",
            "300",
            "--window-ms",
            "1000",
            "--burst-limit",
            "1",
        ],
    )
    .await;
    let last = out.lines().last().expect("some output");
    let pairs: Vec<(&str, f64)> = last
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            "calls",
            "call_ratio",
            "rate_ratio",
            "share_429",
            "reference_calls",
            "speedup"
        ],
        "{out}"
    );
    let value = |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    // Three chunks of 100; a retried 429 may add one.
    assert!(
        value("calls").is_some_and(|c| (3.0..=4.0).contains(&c)),
        "{out}"
    );
    // The reference spends at least one request per contact; batches are far faster.
    assert!(value("reference_calls").is_some_and(|c| c >= 1.0), "{out}");
    assert!(value("speedup").is_some_and(|s| s > 1.0), "{out}");
}
