//! The token endpoint against a scripted loopback HTTP server.

use super::*;

use super::super::test_server::{Answer, script};

const OK: &str = r#"{"access_token":"at-1","refresh_token":"rt-2","expires_in":"3600","scope":"all.full_access offline_access","token_type":"Bearer","organization_id":"orga_1","id_token":"secret-id-token"}"#;

fn endpoint(base: &str) -> TokenEndpoint {
    TokenEndpoint::new(Crm::Close, format!("{base}/oauth2/token/"), "client-1")
        .client_secret(SecretString::from("client-secret-xyz"))
        .timeouts(Duration::from_secs(2), Duration::from_millis(300))
        .retry(RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(10),
            ..RetryPolicy::default()
        })
}

#[tokio::test]
async fn a_refresh_parses_every_field_and_keeps_the_rest() {
    let (url, seen) = script(vec![Answer::Json(200, OK)]).await;
    let t = endpoint(&url)
        .refresh(&SecretString::from("rt-1"))
        .await
        .expect("refreshes");
    assert_eq!(t.access_token.expose_secret(), "at-1");
    assert_eq!(
        t.refresh_token.as_ref().map(|r| r.expose_secret()),
        Some("rt-2")
    );
    assert_eq!(t.expires_in, Some(3600));
    assert_eq!(t.token_type.as_deref(), Some("Bearer"));
    assert_eq!(t.extra["organization_id"], "orga_1");
    let debug = format!("{t:?}");
    assert!(
        !debug.contains("at-1") && !debug.contains("secret-id-token"),
        "{debug}"
    );
    let body = seen.lock().expect("log")[0].body.clone();
    assert!(body.contains("grant_type=refresh_token"), "{body}");
    assert!(
        body.contains("refresh_token=rt-1") && body.contains("client_id=client-1"),
        "{body}"
    );
    assert_eq!(t.issued().expires_in, Some(Duration::from_secs(3600)));
}

#[tokio::test]
async fn a_server_error_is_retried_then_succeeds() {
    let (url, seen) = script(vec![
        Answer::Json(500, r#"{"error":"server_error"}"#),
        Answer::Json(503, ""),
        Answer::Json(200, OK),
    ])
    .await;
    endpoint(&url)
        .refresh(&SecretString::from("rt-1"))
        .await
        .expect("third try works");
    assert_eq!(seen.lock().expect("log").len(), 3);
}

#[tokio::test]
async fn a_refused_grant_is_an_auth_error_with_the_description_and_no_secret() {
    let (url, seen) = script(vec![Answer::Json(
        400,
        r#"{"error":"invalid_grant","error_description":"refresh token rt-secret-1 was revoked"}"#,
    )])
    .await;
    let e = endpoint(&url)
        .refresh(&SecretString::from("rt-secret-1"))
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert_eq!(e.status(), Some(400));
    let text = e.to_string();
    assert!(
        text.contains("invalid_grant") && text.contains("was revoked"),
        "{text}"
    );
    assert!(
        !text.contains("rt-secret-1") && !text.contains("client-secret-xyz"),
        "{text}"
    );
    assert_eq!(
        seen.lock().expect("log").len(),
        1,
        "a refusal is not retried"
    );
}

#[tokio::test]
async fn a_401_without_a_body_is_an_auth_error() {
    let (url, _) = script(vec![Answer::Json(401, "")]).await;
    let e = endpoint(&url)
        .refresh(&SecretString::from("rt"))
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Auth);
}

#[tokio::test]
async fn a_slow_endpoint_times_out_and_is_retried() {
    let (url, seen) = script(vec![
        Answer::Slow(Duration::from_secs(5), OK),
        Answer::Json(200, OK),
    ])
    .await;
    let t = endpoint(&url)
        .refresh(&SecretString::from("rt"))
        .await
        .expect("second try works");
    assert_eq!(t.access_token.expose_secret(), "at-1");
    assert_eq!(seen.lock().expect("log").len(), 2);
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_never_an_empty_token() {
    let (url, _) = script(vec![Answer::Truncated]).await;
    let e = endpoint(&url)
        .refresh(&SecretString::from("rt"))
        .await
        .expect_err("no token from half a body");
    assert_eq!(e.kind(), ErrorKind::Transient);
    let (url, seen) = script(vec![Answer::Truncated, Answer::Json(200, OK)]).await;
    endpoint(&url)
        .refresh(&SecretString::from("rt"))
        .await
        .expect("retried");
    assert_eq!(seen.lock().expect("log").len(), 2);
}

#[test]
fn an_empty_or_missing_access_token_is_a_bad_response() {
    for body in [&b""[..], b"{}", br#"{"access_token":""}"#, b"[]"] {
        let e = TokenResponse::parse(body).expect_err("no token");
        assert_eq!(e.kind(), ErrorKind::BadResponse);
    }
    let t = TokenResponse::parse(br#"{"access_token":"a","expires_in":1e300,"instance_url":"https://na1.my.salesforce.com"}"#)
        .expect("parses");
    assert!(t.expires_in.is_some());
    assert_eq!(
        t.issued().instance_url.as_deref(),
        Some("https://na1.my.salesforce.com")
    );
}

#[tokio::test]
async fn a_form_encoded_echo_of_a_secret_is_blanked_too() {
    let (url, _) = script(vec![Answer::Json(
        400,
        r#"{"error":"invalid_grant","error_description":"bad token a+b%2Fc%3D and a b/c="}"#,
    )])
    .await;
    let e = endpoint(&url)
        .refresh(&SecretString::from("a b/c="))
        .await
        .expect_err("refused");
    let text = e.to_string();
    assert!(
        !text.contains("a+b%2Fc%3D") && !text.contains("a b/c="),
        "{text}"
    );
}

#[tokio::test]
async fn a_refusal_after_a_lost_answer_says_the_token_may_have_rotated() {
    let (url, seen) = script(vec![
        Answer::Truncated,
        Answer::Json(400, r#"{"error":"invalid_grant"}"#),
    ])
    .await;
    let e = endpoint(&url)
        .refresh(&SecretString::from("rt"))
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert!(e.to_string().contains("may have rotated"), "{e}");
    assert_eq!(seen.lock().expect("log").len(), 2);
}

#[test]
fn a_refresh_token_slot_keeps_the_newest_token_and_hides_it() {
    let slot = RefreshTokenSlot::new(SecretString::from("rt-1"));
    assert_eq!(slot.current().expose_secret(), "rt-1");
    slot.replace(&SecretString::from("rt-2"));
    assert_eq!(slot.current().expose_secret(), "rt-2");
    assert!(!format!("{slot:?}").contains("rt-2"));
}
