//! The token endpoint and session checks (JWT bearer, password, refresh, client
//! credentials; `invalid_grant`; 401 `INVALID_SESSION_ID`).

use std::collections::HashMap;

use crmkit_sandbox::salesforce::{Auth, SalesforceSandbox};
use serde_json::{Value, json};

use super::{Sf, code, salesforce};

const KEY: &str = include_str!("../../fixtures/salesforce/test-key.pem");
const OTHER_KEY: &str = include_str!("../../fixtures/salesforce/other-key.pem");
const CERT: &str = include_str!("../../fixtures/salesforce/test-cert.pem");

fn jwt(key: &str, claims: &Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(key.as_bytes()).expect("test key");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        claims,
        &key,
    )
    .expect("signs")
}

fn claims(exp: Value) -> Value {
    json!({"iss": "consumer-key", "sub": "ops@example.com",
           "aud": "https://login.salesforce.com", "exp": exp})
}

fn soon() -> i64 {
    chrono::Utc::now().timestamp() + 180
}

async fn token(root: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{root}/services/oauth2/token"))
        .form(&form.iter().copied().collect::<HashMap<_, _>>())
        .send()
        .await
        .expect("answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

#[tokio::test]
async fn lenient_jwt_accepts_any_key_and_a_string_exp_but_checks_claims() {
    let sb = salesforce(0).await;
    let root = sb.instance_url();
    let any_key = jwt(OTHER_KEY, &claims(json!(soon().to_string())));
    let (status, body) = token(&root, &[("grant_type", JWT_GRANT), ("assertion", &any_key)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["instance_url"], root);
    assert!(
        body["access_token"]
            .as_str()
            .is_some_and(|t| t.contains('!'))
    );

    let expired = jwt(KEY, &claims(json!(chrono::Utc::now().timestamp() - 10)));
    let (status, body) = token(&root, &[("grant_type", JWT_GRANT), ("assertion", &expired)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(body["error_description"], "expired authorization code");

    let mut wrong_aud = claims(json!(soon()));
    wrong_aud["aud"] = json!("https://example.com");
    let (status, body) = token(
        &root,
        &[
            ("grant_type", JWT_GRANT),
            ("assertion", &jwt(KEY, &wrong_aud)),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error_description"], "audience is invalid");

    let (status, body) = token(
        &root,
        &[("grant_type", JWT_GRANT), ("assertion", "not.a.jwt")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn strict_mode_verifies_the_signature_and_only_accepts_issued_sessions() {
    let sb = SalesforceSandbox::builder()
        .auth(Auth {
            certificate: Some(CERT.to_string()),
            client_id: Some("consumer-key".into()),
            usernames: vec!["ops@example.com".into()],
            ..Auth::default()
        })
        .start()
        .await
        .expect("starts");
    let root = sb.instance_url();
    let forged = jwt(OTHER_KEY, &claims(json!(soon())));
    let (status, body) = token(&root, &[("grant_type", JWT_GRANT), ("assertion", &forged)]).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "invalid assertion"})
    );

    let mut stranger = claims(json!(soon()));
    stranger["sub"] = json!("someone@else.com");
    let (status, body) = token(
        &root,
        &[
            ("grant_type", JWT_GRANT),
            ("assertion", &jwt(KEY, &stranger)),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error_description"],
        "user hasn't approved this consumer"
    );

    // A session the sandbox did not issue is refused like an expired one.
    let api = Sf::with_token(&sb, "00Dforged!AR");
    let a = api.get("/limits", &[]).await;
    assert_eq!(a.status, 401);
    assert_eq!(code(&a.body), "INVALID_SESSION_ID");
    assert_eq!(a.body[0]["message"], "Session expired or invalid");

    let good = jwt(KEY, &claims(json!(soon().to_string())));
    let (status, body) = token(&root, &[("grant_type", JWT_GRANT), ("assertion", &good)]).await;
    assert_eq!(status, 200, "{body}");
    let session = body["access_token"].as_str().unwrap_or_default();
    let a = Sf::with_token(&sb, session).get("/limits", &[]).await;
    assert_eq!(a.status, 200);
    sb.expire_sessions();
    let a = Sf::with_token(&sb, session).get("/limits", &[]).await;
    assert_eq!(a.status, 401);
}

#[tokio::test]
async fn password_and_refresh_grants_follow_the_configured_credentials() {
    let sb = SalesforceSandbox::builder()
        .auth(Auth {
            client_id: Some("cid".into()),
            client_secret: Some("secret".into()),
            usernames: vec!["ops@example.com".into()],
            password: Some("pw+token".into()),
            ..Auth::default()
        })
        .start()
        .await
        .expect("starts");
    let root = sb.instance_url();
    let base = [
        ("grant_type", "password"),
        ("client_id", "cid"),
        ("client_secret", "secret"),
        ("username", "ops@example.com"),
    ];
    let mut bad = base.to_vec();
    bad.push(("password", "wrong"));
    let (status, body) = token(&root, &bad).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "authentication failure"})
    );
    let mut good = base.to_vec();
    good.push(("password", "pw+token"));
    let (status, body) = token(&root, &good).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["issued_at"]
            .as_str()
            .is_some_and(|s| s.parse::<i64>().is_ok())
    );
    let refresh = body["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, _) = token(
        &root,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "cid"),
            ("client_secret", "secret"),
            ("refresh_token", &refresh),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = token(
        &root,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "cid"),
            ("client_secret", "secret"),
            ("refresh_token", "stale"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error_description"], "expired access/refresh token");
}

#[tokio::test]
async fn every_answer_carries_the_api_usage_and_the_quota_really_runs_out() {
    let sb = SalesforceSandbox::builder()
        .daily_limit(3)
        .start()
        .await
        .expect("starts");
    let api = Sf::new(&sb);
    for n in 1..=3 {
        let a = api.get("/limits", &[]).await;
        assert_eq!(a.status, 200);
        let info = a
            .headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok());
        assert_eq!(info, Some(format!("api-usage={n}/3").as_str()));
    }
    let a = api.get("/sobjects", &[]).await;
    assert_eq!(a.status, 403);
    assert_eq!(code(&a.body), "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(a.body[0]["message"], "TotalRequests Limit exceeded.");
    assert!(a.headers.contains_key("sforce-limit-info"));
    let missing = Sf::with_token(&sb, "").get("/limits", &[]).await;
    assert_eq!(missing.status, 401);
}

#[tokio::test]
async fn soap_login_issues_a_session_the_rest_api_accepts() {
    let sb = SalesforceSandbox::builder()
        .auth(Auth {
            usernames: vec!["ops@example.com".into()],
            password: Some("pw+token".into()),
            ..Auth::default()
        })
        .start()
        .await
        .expect("starts");
    let envelope = |user: &str, pass: &str| {
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\" ?><env:Envelope xmlns:env=\"http://schemas.xmlsoap.org/soap/envelope/\"><env:Body><n1:login xmlns:n1=\"urn:partner.soap.sforce.com\"><n1:username>{user}</n1:username><n1:password>{pass}</n1:password></n1:login></env:Body></env:Envelope>"
        )
    };
    let http = reqwest::Client::new();
    let url = format!("{}/services/Soap/u/59.0", sb.instance_url());
    let send = |body: String| {
        http.post(&url)
            .header("content-type", "text/xml")
            .header("soapaction", "login")
            .body(body)
            .send()
    };
    let bad = send(envelope("ops@example.com", "nope"))
        .await
        .expect("answers");
    assert_eq!(bad.status().as_u16(), 500);
    assert!(
        bad.text()
            .await
            .unwrap_or_default()
            .contains("<faultcode>sf:INVALID_LOGIN</faultcode>")
    );
    let ok = send(envelope("ops@example.com", "pw+token"))
        .await
        .expect("answers");
    assert_eq!(ok.status().as_u16(), 200);
    let xml = ok.text().await.unwrap_or_default();
    let session = xml
        .split("<sessionId>")
        .nth(1)
        .and_then(|s| s.split("</sessionId>").next())
        .unwrap_or_default()
        .to_string();
    assert!(xml.contains(&format!(
        "<serverUrl>{}/services/Soap/u/59.0/",
        sb.instance_url()
    )));
    assert_eq!(
        Sf::with_token(&sb, &session)
            .get("/limits", &[])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_identity_url_names_the_user_and_revoked_sessions_stop_working() {
    let sb = SalesforceSandbox::builder()
        .auth(Auth {
            client_id: Some("cid".into()),
            password: Some("p".into()),
            ..Auth::default()
        })
        .start()
        .await
        .expect("starts");
    let root = sb.instance_url();
    let (status, body) = token(
        &root,
        &[
            ("grant_type", "password"),
            ("client_id", "cid"),
            ("client_secret", "s"),
            ("username", "u@example.com"),
            ("password", "p"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let session = body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let id_url = body["id"].as_str().unwrap_or_default().to_string();
    let http = reqwest::Client::new();
    let me: Value = http
        .get(&id_url)
        .bearer_auth(&session)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .unwrap_or_default();
    assert!(me["user_id"].as_str().is_some_and(|u| u.starts_with("005")));
    assert!(
        me["organization_id"]
            .as_str()
            .is_some_and(|o| o.starts_with("00D"))
    );
    let anonymous = http.get(&id_url).send().await.expect("answers");
    assert_eq!(anonymous.status().as_u16(), 401);
    let revoked = http
        .post(format!("{root}/services/oauth2/revoke"))
        .form(&[("token", session.as_str())])
        .send()
        .await
        .expect("answers");
    assert_eq!(revoked.status().as_u16(), 200);
    assert_eq!(
        Sf::with_token(&sb, &session)
            .get("/limits", &[])
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn it_can_serve_https_with_a_given_certificate() {
    let cert = include_str!("../../fixtures/salesforce/tls-cert.pem");
    let key = include_str!("../../fixtures/salesforce/tls-key.pem");
    let ca = include_str!("../../fixtures/salesforce/tls-ca.pem");
    let sb = SalesforceSandbox::builder()
        .tls(cert, key)
        .start()
        .await
        .expect("starts");
    let root = sb.instance_url();
    assert!(root.starts_with("https://127.0.0.1:"));
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA"))
        .build()
        .expect("client");
    let token: Value = http
        .post(format!("{root}/services/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "c"),
            ("client_secret", "s"),
            ("username", "u"),
            ("password", "p"),
        ])
        .send()
        .await
        .expect("answers over TLS")
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(token["instance_url"], root);
    let r = http
        .get(format!("{root}/services/data/v59.0/limits"))
        .bearer_auth(token["access_token"].as_str().unwrap_or_default())
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status().as_u16(), 200);
    // A client that does not trust the certificate is refused at the handshake.
    assert!(
        reqwest::Client::new()
            .get(format!("{root}/services/data/"))
            .send()
            .await
            .is_err()
    );
}

/// The token endpoint's answer to a JWT for `aud`.
async fn with_audience(root: &str, aud: &str) -> (u16, Value) {
    let mut c = claims(json!(soon()));
    c["aud"] = json!(aud);
    token(
        root,
        &[("grant_type", JWT_GRANT), ("assertion", &jwt(KEY, &c))],
    )
    .await
}

#[tokio::test]
async fn only_login_test_and_site_audiences_are_accepted() {
    let sb = salesforce(0).await;
    let root = sb.instance_url();
    for ok in [
        "https://login.salesforce.com",
        "https://test.salesforce.com/",
        "https://acme.my.site.com",
        root.as_str(),
    ] {
        let (status, body) = with_audience(&root, ok).await;
        assert_eq!(status, 200, "{ok}: {body}");
    }
    // A My Domain, an instance, a plain-http login host, a look-alike: all refused.
    for bad in [
        "https://acme.my.salesforce.com",
        "https://na1.salesforce.com",
        "https://evil.salesforce.com",
        "http://login.salesforce.com",
        "https://login.salesforce.com.evil.example",
    ] {
        let (status, body) = with_audience(&root, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error_description"], "audience is invalid", "{bad}");
    }

    // Strict with a configured audience: exactly that one.
    let strict = SalesforceSandbox::builder()
        .auth(Auth {
            certificate: Some(CERT.to_string()),
            audiences: vec!["https://test.salesforce.com".into()],
            ..Auth::default()
        })
        .start()
        .await
        .expect("starts");
    let root = strict.instance_url();
    let (status, body) = with_audience(&root, "https://test.salesforce.com").await;
    assert_eq!(status, 200, "{body}");
    for bad in [
        "https://login.salesforce.com",
        "https://acme.my.site.com",
        root.as_str(),
    ] {
        let (status, body) = with_audience(&root, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}
