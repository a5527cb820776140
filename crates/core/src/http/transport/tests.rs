//! The transport against a scripted loopback server: instance URLs, several budgets per
//! request, and the token being ready before a budget slot is taken.

use std::sync::Mutex;

use async_trait::async_trait;
use secrecy::SecretString;

use super::*;
use crate::http::auth::{IssuedToken, TokenRefresher, TokenSource};
use crate::http::test_server::{Answer, script};

struct TestDialect {
    daily: Option<u32>,
}

/// Reads `ratelimit: remaining=R, reset=S` (both required), as Close's header reads.
fn ratelimit(headers: &HeaderMap) -> Option<RateInfo> {
    let v = headers.get("ratelimit")?.to_str().ok()?;
    let mut info = RateInfo::default();
    for part in v.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "remaining" => info.remaining = v.parse().ok(),
            "reset" => info.reset = v.parse().ok().and_then(rate::secs_to_duration),
            _ => {}
        }
    }
    Some(info)
}

impl Dialect for TestDialect {
    fn crm(&self) -> Crm {
        Crm::Salesforce
    }
    fn endpoint_group(&self, req: &ApiRequest) -> String {
        format!("{} {}", req.method, req.path)
    }
    fn rate_info(&self, _: u16, headers: &HeaderMap, _: &[u8]) -> Option<RateInfo> {
        ratelimit(headers)
    }
    fn error(&self, status: u16, _: &HeaderMap, _: &[u8]) -> Error {
        Error::new(ErrorKind::from_status(status), "test server said no")
    }
    fn budgets(&self, req: &ApiRequest) -> Vec<BudgetSpec> {
        let mut specs = vec![BudgetSpec::rolling(self.endpoint_group(req))];
        specs.extend(self.daily.map(|d| BudgetSpec::daily("daily", d)));
        specs
    }
}

/// Issues `tok-N` after `delay`, naming `instance` as the instance URL; notes when it ends.
struct Slow {
    delay: Duration,
    instance: Option<String>,
    done: Mutex<Vec<tokio::time::Instant>>,
}

#[async_trait]
impl TokenRefresher for Slow {
    async fn refresh(&self) -> Result<IssuedToken> {
        tokio::time::sleep(self.delay).await;
        self.done
            .lock()
            .expect("log")
            .push(tokio::time::Instant::now());
        Ok(IssuedToken {
            access_token: SecretString::from("tok"),
            expires_in: Some(Duration::from_secs(3600)),
            instance_url: self.instance.clone(),
        })
    }
}

fn oauth(delay: Duration, instance: Option<String>) -> (Auth, Arc<Slow>) {
    let slow = Arc::new(Slow {
        delay,
        instance,
        done: Mutex::new(Vec::new()),
    });
    (Auth::OAuth(TokenSource::new(None, slow.clone())), slow)
}

fn builder(base: &str, daily: Option<u32>) -> TransportBuilder {
    Transport::builder(base, Arc::new(TestDialect { daily }))
}

#[tokio::test]
async fn the_instance_url_is_followed_only_through_the_crms_policy() {
    let (configured, at_configured) = script(vec![Answer::Json(200, "{}")]).await;
    let (instance, at_instance) = script(vec![Answer::Json(200, "{}")]).await;

    let (auth, _) = oauth(Duration::ZERO, Some(instance.clone()));
    let ignoring = builder(&configured, None)
        .auth(auth)
        .build()
        .expect("builds");
    ignoring.send(&ApiRequest::get("a/")).await.expect("sent");
    assert_eq!(at_configured.lock().expect("log").len(), 1);
    assert_eq!(ignoring.current_base_url(), format!("{configured}/"));

    let (auth, _) = oauth(Duration::ZERO, Some(instance.clone()));
    let following = builder(&configured, None)
        .auth(auth)
        .instance_url_policy(Arc::new(|url: &str| {
            if url.starts_with("http://127.0.0.1:") {
                Ok(format!("{url}/services/data/"))
            } else {
                Err(Error::new(ErrorKind::Auth, "unexpected instance URL"))
            }
        }))
        .build()
        .expect("builds");
    following.send(&ApiRequest::get("b/")).await.expect("sent");
    assert_eq!(
        at_instance.lock().expect("log")[0].path,
        "/services/data/b/"
    );
    assert_eq!(
        following.current_base_url(),
        format!("{instance}/services/data/")
    );

    let (auth, _) = oauth(Duration::ZERO, Some("https://evil.example/".into()));
    let refusing = builder(&configured, None)
        .auth(auth)
        .instance_url_policy(Arc::new(|_: &str| {
            Err(Error::new(ErrorKind::Auth, "unexpected instance URL"))
        }))
        .build()
        .expect("builds");
    let e = refusing
        .send(&ApiRequest::get("c/"))
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert_eq!(at_configured.lock().expect("log").len(), 1, "nothing sent");
}

#[tokio::test]
async fn the_budget_slot_is_taken_after_the_token_is_ready() {
    let (base, _) = script(vec![Answer::Json(200, "{}")]).await;
    // The budget the request is charged to, shared through the credential's registry.
    let budget = |t: &Transport| {
        t.inner.budgets.budget(&BudgetSpec::rolling(
            TestDialect { daily: None }.endpoint_group(&ApiRequest::get("x/")),
        ))
    };
    let (auth, slow) = oauth(Duration::from_millis(200), None);
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let log = admitted.clone();
    let t = builder(&base, None)
        .auth(auth)
        .observer(Arc::new(move |e: &TransportEvent<'_>| {
            if let TransportEvent::Admitted { at, .. } = e {
                log.lock().expect("log").push(*at);
            }
        }))
        .build()
        .expect("builds");
    t.send(&ApiRequest::get("x/")).await.expect("sent");
    let refreshed = slow.done.lock().expect("log")[0];
    let counted = budget(&t).sent_log();
    assert_eq!(counted.len(), 1);
    assert!(
        counted[0] >= refreshed,
        "a slot was held while the token was fetched"
    );
    let admitted = admitted.lock().expect("log")[0];
    assert_eq!(
        admitted, counted[0],
        "the event carries the admission instant"
    );
}

/// A transport whose 429 retries are few and quick, with the given answers.
async fn limited(
    answers: Vec<Answer>,
    key: &str,
) -> (Transport, Arc<Mutex<Vec<crate::http::test_server::Seen>>>) {
    let (base, seen) = script(answers).await;
    let t = builder(&base, None)
        .auth(Auth::Bearer(SecretString::from(key.to_string())))
        .retry(RetryPolicy {
            max_rate_limit_retries: 3,
            base_delay: Duration::from_millis(40),
            ..RetryPolicy::default()
        })
        .build()
        .expect("builds");
    (t, seen)
}

#[tokio::test]
async fn a_429_with_retry_after_zero_backs_off_instead_of_spinning() {
    let (t, seen) = limited(
        vec![Answer::Headed(429, "retry-after: 0\r\n", "{}")],
        "zero-retry-after",
    )
    .await;
    let start = tokio::time::Instant::now();
    let e = t.send(&ApiRequest::get("x/")).await.expect_err("gives up");
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(seen.lock().expect("log").len(), 4, "1 try and 3 retries");
    // Backoff from 40 ms, doubling, at least half of each step: 20 + 40 + 80 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(140),
        "{:?}",
        start.elapsed()
    );
}

/// Asserts that after one 429 with `headers` the retry, which succeeds, waited about a second.
async fn a_429_then_success_waits_a_second(headers: &'static str, key: &str) {
    let (t, seen) = limited(
        vec![Answer::Headed(429, headers, "{}"), Answer::Json(200, "{}")],
        key,
    )
    .await;
    let start = tokio::time::Instant::now();
    t.send(&ApiRequest::get("x/")).await.expect("second try");
    assert_eq!(seen.lock().expect("log").len(), 2);
    assert!(
        start.elapsed() >= Duration::from_millis(990),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_429_with_reset_zero_and_nothing_left_waits_a_second() {
    a_429_then_success_waits_a_second("ratelimit: remaining=0, reset=0\r\n", "zero-reset").await;
}

#[tokio::test]
async fn the_longer_of_reset_and_retry_after_is_waited() {
    a_429_then_success_waits_a_second(
        "ratelimit: remaining=0, reset=0.1\r\nretry-after: 1\r\n",
        "longer-hint",
    )
    .await;
}

#[test]
fn a_zero_window_is_a_configuration_error() {
    let e = builder("http://127.0.0.1:9", None)
        .quota(Quota::new(5, Duration::ZERO))
        .build()
        .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn a_spent_daily_quota_fails_without_sending_or_waiting() {
    let (base, seen) = script(vec![Answer::Json(200, "{}")]).await;
    let t = builder(&base, Some(2))
        .auth(Auth::Bearer(SecretString::from("static")))
        .build()
        .expect("builds");
    for path in ["a/", "b/"] {
        t.send(&ApiRequest::get(path)).await.expect("within quota");
    }
    let start = tokio::time::Instant::now();
    let e = t
        .send(&ApiRequest::get("c/"))
        .await
        .expect_err("quota spent");
    assert_eq!(e.kind(), ErrorKind::QuotaExhausted);
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(seen.lock().expect("log").len(), 2);
}

#[tokio::test]
async fn server_errors_are_retried_up_to_the_failure_allowance() {
    let (base, seen) = script(vec![Answer::Json(503, "{}")]).await;
    let t = builder(&base, None)
        .retry(RetryPolicy {
            base_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        })
        .build()
        .expect("builds");
    let e = t.send(&ApiRequest::get("x/")).await.expect_err("fails");
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert_eq!(seen.lock().expect("log").len(), 5, "1 try and 4 retries");
}

#[test]
fn retry_after_never_panics() {
    for (v, want) in [
        ("1e300", Some(rate::LONGEST_WAIT)),
        ("-5", None),
        ("NaN", None),
        ("2.5", Some(Duration::from_millis(2500))),
        ("99999999999999", Some(rate::LONGEST_WAIT)),
    ] {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::RETRY_AFTER,
            v.parse().expect("header value"),
        );
        assert_eq!(retry_after(&h), want, "{v}");
    }
}

/// Like HubSpot: every request counts in `all`, searches also in `search`, and everything in
/// `daily`; a 429's body names the policy that tripped.
struct PolicyDialect;

impl Dialect for PolicyDialect {
    fn crm(&self) -> Crm {
        Crm::Salesforce
    }
    fn endpoint_group(&self, _: &ApiRequest) -> String {
        "all".into()
    }
    fn rate_info(&self, _: u16, _: &HeaderMap, _: &[u8]) -> Option<RateInfo> {
        None
    }
    fn error(&self, status: u16, _: &HeaderMap, body: &[u8]) -> Error {
        let body = String::from_utf8_lossy(body);
        if body.contains("DAILY") {
            Error::new(ErrorKind::QuotaExhausted, "daily limit reached")
        } else if body.contains("CONCURRENT") {
            Error::new(ErrorKind::RateLimited, "too many requests at once")
        } else {
            Error::new(ErrorKind::from_status(status), "test server said no")
        }
    }
    fn budgets(&self, req: &ApiRequest) -> Vec<BudgetSpec> {
        let mut specs = vec![
            BudgetSpec::rolling("all"),
            BudgetSpec::daily("daily", 1_000),
        ];
        if req.path.starts_with("search") {
            specs.push(BudgetSpec::rolling_with(
                "search",
                Quota::new(100, Duration::from_secs(1)),
            ));
        }
        specs
    }
    fn limited_budget(&self, _: u16, _: &HeaderMap, body: &[u8]) -> Option<String> {
        let body = String::from_utf8_lossy(body);
        if body.contains("SECONDLY") {
            Some("search".into())
        } else if body.contains("DAILY") {
            Some("daily".into())
        } else {
            None
        }
    }
}

fn policy_transport(base: &str, key: &str) -> Transport {
    Transport::builder(base, Arc::new(PolicyDialect))
        .auth(Auth::Bearer(SecretString::from(key.to_string())))
        .build()
        .expect("builds")
}

#[tokio::test]
async fn a_429_pauses_the_budget_the_server_names_not_the_first() {
    let (base, seen) = script(vec![
        Answer::Headed(429, "retry-after: 1\r\n", r#"{"policyName":"SECONDLY"}"#),
        Answer::Json(200, "{}"),
    ])
    .await;
    let t = policy_transport(&base, "policy-secondly");
    let search = {
        let t = t.clone();
        tokio::spawn(async move { t.send(&ApiRequest::get("search/")).await.map(|_| ()) })
    };
    while seen.lock().expect("log").is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = tokio::time::Instant::now();
    t.send(&ApiRequest::get("other/"))
        .await
        .expect("not searched");
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "a request outside the search budget waited {:?}",
        start.elapsed()
    );
    search.await.expect("task").expect("search retried");
    assert_eq!(seen.lock().expect("log").len(), 3);
}

#[tokio::test]
async fn a_rate_limit_refused_under_another_status_is_retried_like_a_429() {
    // Salesforce's 403 REQUEST_LIMIT_EXCEEDED for too many concurrent requests: refused,
    // not served, so even a POST is sent again, after a pause, and nothing is marked spent.
    let (base, seen) = script(vec![
        Answer::Json(403, r#"{"code":"CONCURRENT"}"#),
        Answer::Json(403, r#"{"code":"CONCURRENT"}"#),
        Answer::Json(200, "{}"),
        Answer::Json(200, "{}"),
    ])
    .await;
    let t = policy_transport(&base, "policy-concurrent");
    t.send(&ApiRequest::post("other/", serde_json::json!({})))
        .await
        .expect("retried until served");
    t.send(&ApiRequest::get("other/"))
        .await
        .expect("nothing marked spent");
    assert_eq!(seen.lock().expect("log").len(), 4);
}

#[tokio::test]
async fn a_5xx_whose_body_reads_as_a_rate_limit_is_a_failure_not_a_refusal() {
    // A 5xx may come after the server did the work: a POST is not sent again, however its
    // body reads, and the failure is reported as one.
    let (base, seen) = script(vec![
        Answer::Json(503, r#"{"code":"CONCURRENT"}"#),
        Answer::Json(200, "{}"),
    ])
    .await;
    let t = policy_transport(&base, "policy-5xx-post");
    let e = t
        .send(&ApiRequest::post("other/", serde_json::json!({})))
        .await
        .expect_err("not retried");
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert_eq!(e.status(), Some(503));
    assert_eq!(seen.lock().expect("log").len(), 1, "the POST went once");

    // A repeat-safe request takes the same 5xx path, where it is retried.
    let (base, seen) = script(vec![
        Answer::Json(503, r#"{"code":"CONCURRENT"}"#),
        Answer::Json(200, "{}"),
    ])
    .await;
    let t = policy_transport(&base, "policy-5xx-get");
    t.send(&ApiRequest::get("other/"))
        .await
        .expect("retried after the 5xx");
    assert_eq!(seen.lock().expect("log").len(), 2);
}

#[tokio::test]
async fn a_quota_the_server_says_is_spent_fails_later_requests_locally() {
    let (base, seen) = script(vec![Answer::Headed(
        429,
        "retry-after: 3600\r\n",
        r#"{"policyName":"DAILY"}"#,
    )])
    .await;
    let t = policy_transport(&base, "policy-daily");
    for _ in 0..3 {
        let e = t
            .send(&ApiRequest::get("other/"))
            .await
            .expect_err("quota spent");
        assert_eq!(e.kind(), ErrorKind::QuotaExhausted, "{e}");
    }
    assert_eq!(
        seen.lock().expect("log").len(),
        1,
        "only the first was sent"
    );
}

#[test]
fn the_server_date_reads_the_date_header() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "date",
        "Tue, 03 Mar 2026 10:00:07 GMT".parse().expect("header"),
    );
    let resp = ApiResponse {
        status: 200,
        headers,
        body: Vec::new(),
    };
    assert_eq!(
        resp.server_date().map(|t| t.to_rfc3339()),
        Some("2026-03-03T10:00:07+00:00".to_string())
    );
    let none = ApiResponse {
        status: 200,
        headers: HeaderMap::new(),
        body: Vec::new(),
    };
    assert_eq!(none.server_date(), None);
}

#[tokio::test]
async fn a_text_body_goes_out_as_sent() {
    let (base, seen) = script(vec![Answer::Json(201, "{}")]).await;
    let t = builder(&base, None).build().expect("builds");
    let mut req = ApiRequest::new(Method::PUT, "jobs/ingest/750/batches")
        .header("Accept", "application/json");
    req.body = Body::Text {
        content_type: "text/csv".into(),
        text: "Name\n\"Acme, Inc.\"\n".into(),
    };
    let resp = t.send(&req).await.expect("sent");
    assert_eq!(resp.status, 201);
    let seen = seen.lock().expect("log");
    assert_eq!(seen[0].path, "/jobs/ingest/750/batches");
    assert_eq!(seen[0].body, "Name\n\"Acme, Inc.\"\n");
}
