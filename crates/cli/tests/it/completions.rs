//! `crmkit completions <shell>`.

use crate::support::crmkit;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_completions_know_the_commands() {
    let out = crmkit(None, &["completions", "bash"]).await;
    assert!(out.contains("_crmkit()"), "a bash completion function");
    for word in ["close", "bench", "completions", "ndjson"] {
        assert!(out.contains(word), "completes {word}");
    }
}
