//! `bench salesforce-load` creates through collections or Bulk and reads every account back
//! through the change feed exactly once.

use crate::support::crmkit;

fn figures(out: &str) -> Vec<(String, f64)> {
    out.lines()
        .last()
        .expect("some output")
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_salesforce_load_reads_back_every_account_once() {
    for threshold in ["100000", "50"] {
        let out = crmkit(
            None,
            &[
                "bench",
                "salesforce-load",
                "--accounts",
                "250",
                "--bulk-threshold",
                threshold,
                "--page-size",
                "40",
            ],
        )
        .await;
        let f = figures(&out);
        let keys: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "writes",
                "write_ratio",
                "write_per_s",
                "feed_runs",
                "feed_per_s",
                "missing",
                "repeated"
            ],
            "{out}"
        );
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        // Collections: 2 calls of up to 200; Bulk: create, upload, close.
        let writes = if threshold == "50" { 3.0 } else { 2.0 };
        assert_eq!(get("writes"), Some(writes), "{out}");
        assert_eq!(get("write_ratio"), Some(1.0), "{out}");
        assert_eq!(get("missing"), Some(0.0), "{out}");
        assert_eq!(get("repeated"), Some(0.0), "{out}");
    }
}
