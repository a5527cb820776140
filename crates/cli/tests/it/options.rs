//! Numeric options out of range and filters a listing would ignore are refused with one
//! clear sentence, before anything runs.

use crate::support::crmkit_output;

async fn refused(args: &[&str]) -> String {
    let out = crmkit_output(None, args).await;
    assert!(!out.status.success(), "{args:?} is refused");
    assert!(out.stdout.is_empty(), "nothing printed for {args:?}");
    String::from_utf8(out.stderr).expect("stderr is UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_and_limits_out_of_range_are_refused() {
    for (args, expected) in [
        (
            &["sandbox", "close", "--window-ms", "18446744073709551615"][..],
            "1..=86400000",
        ),
        (&["sandbox", "close", "--window-ms", "0"], "1..=86400000"),
        (&["sandbox", "close", "--rate-limit", "0"], "--rate-limit"),
        (
            &["bench", "close-import", "--window-ms", "999999999999"],
            "1..=86400000",
        ),
        (&["bench", "close-import", "--concurrency", "0"], "1..=1000"),
        (
            &["bench", "close-import", "--latency-ms", "99999999"],
            "0..=60000",
        ),
    ] {
        let stderr = refused(args).await;
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_shares_outside_zero_to_one_are_refused() {
    let stderr = refused(&["sandbox", "close", "--faults", r#"{"rate_500": 2.0}"#]).await;
    assert_eq!(
        stderr.trim(),
        "error: configuration error: --faults rate_500 is 2; a share must be from 0 to 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_a_listing_would_ignore_are_refused() {
    let stderr = refused(&["close", "leads", "list", "--filter", "name=Acme"]).await;
    assert!(
        stderr.starts_with("error: ") && stderr.contains("crmkit close search"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let stderr = refused(&["close", "contacts", "list", "--filter", "email=a@b.c"]).await;
    assert!(
        stderr.contains("only --filter lead_id") && stderr.contains("not email"),
        "{stderr}"
    );
}
