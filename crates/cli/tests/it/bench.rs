//! `crmkit bench sandbox` ends with its figures as name=value pairs.

use std::collections::HashMap;

use crate::support::crmkit;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_sandbox_reports_seed_list_and_search_figures() {
    let out = crmkit(None, &["bench", "sandbox", "--leads", "500"]).await;
    let last = out.lines().last().expect("some output");
    let figures: HashMap<&str, &str> = last
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .collect();
    assert_eq!(figures.get("leads"), Some(&"500"), "{last}");
    for name in ["seed_s", "list_per_s", "search_ms"] {
        let value: f64 = figures
            .get(name)
            .unwrap_or_else(|| panic!("{name} in {last}"))
            .parse()
            .unwrap_or_else(|_| panic!("{name} is a number in {last}"));
        assert!(value > 0.0, "{name} in {last}");
    }
}
