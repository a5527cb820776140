//! Auth, rate-limit headers, 429 bodies with their policy names, and OAuth.

use std::time::Duration;

use crmkit_sandbox::hubspot::HubSpotSandbox;
use serde_json::json;

use super::Hs;

#[tokio::test]
async fn answers_carry_the_rate_limit_headers() {
    let sb = HubSpotSandbox::builder()
        .burst_limit(190, Duration::from_secs(10))
        .start()
        .await
        .expect("starts");
    let hs = Hs::new(&sb);
    let a = hs.get("/crm/v3/objects/contacts", &[]).await;
    assert_eq!(a.int("x-hubspot-ratelimit-max"), Some(190));
    assert_eq!(a.int("x-hubspot-ratelimit-remaining"), Some(189));
    assert_eq!(
        a.int("x-hubspot-ratelimit-interval-milliseconds"),
        Some(10_000)
    );
    assert_eq!(a.int("x-hubspot-ratelimit-daily"), Some(250_000));
    assert_eq!(a.int("x-hubspot-ratelimit-daily-remaining"), Some(249_999));
}

#[tokio::test]
async fn each_window_answers_429_with_its_policy_name() {
    let sb = HubSpotSandbox::builder()
        .burst_limit(2, Duration::from_secs(30))
        .search_limit(1)
        .start()
        .await
        .expect("starts");
    let hs = Hs::new(&sb);
    assert_eq!(hs.get("/crm/v3/objects/deals", &[]).await.status, 200);
    assert_eq!(hs.get("/crm/v3/objects/deals", &[]).await.status, 200);
    let refused = hs.get("/crm/v3/objects/deals", &[]).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["policyName"], json!("TEN_SECONDLY_ROLLING"));
    assert_eq!(refused.body["errorType"], json!("RATE_LIMIT"));
    assert!(refused.content_type().starts_with("application/json"));
    // Search has its own window.
    assert_eq!(
        hs.post("/crm/v3/objects/deals/search", &json!({}))
            .await
            .status,
        200
    );
    let s = hs.post("/crm/v3/objects/deals/search", &json!({})).await;
    assert_eq!(s.status, 429);
    assert_eq!(s.body["policyName"], json!("SECONDLY"));
    assert_eq!(
        s.body["message"],
        json!("You have reached your secondly limit.")
    );
    // Another token has its own burst window, but the search window is the account's.
    let other = Hs::with_token(&sb, "other");
    assert_eq!(other.get("/crm/v3/objects/deals", &[]).await.status, 200);
    let s = other.post("/crm/v3/objects/deals/search", &json!({})).await;
    assert_eq!(
        s.status, 429,
        "search is limited per account, not per token"
    );
    assert_eq!(s.body["policyName"], json!("SECONDLY"));

    let daily = HubSpotSandbox::builder()
        .daily_limit(1)
        .start()
        .await
        .expect("starts");
    let hs = Hs::new(&daily);
    assert_eq!(hs.get("/crm/v3/objects/deals", &[]).await.status, 200);
    let d = hs.get("/crm/v3/objects/deals", &[]).await;
    assert_eq!(d.body["policyName"], json!("DAILY"));
}

#[tokio::test]
async fn configured_tokens_refuse_everything_else_with_hubspots_401() {
    let open = HubSpotSandbox::builder().start().await.expect("starts");
    assert_eq!(
        Hs::with_token(&open, "anything")
            .get("/crm/v3/objects/contacts", &[])
            .await
            .status,
        200
    );
    assert_eq!(
        Hs::with_token(&open, "")
            .get("/crm/v3/objects/contacts", &[])
            .await
            .status,
        401
    );
    let sb = HubSpotSandbox::builder()
        .tokens(["pat-na1-good"])
        .start()
        .await
        .expect("starts");
    assert_eq!(
        Hs::with_token(&sb, "pat-na1-good")
            .get("/crm/v3/objects/contacts", &[])
            .await
            .status,
        200
    );
    let bad = Hs::with_token(&sb, "pat-na1-bad")
        .get("/crm/v3/objects/contacts", &[])
        .await;
    assert_eq!(bad.status, 401);
    assert_eq!(bad.body["category"], json!("INVALID_AUTHENTICATION"));
    assert!(
        !bad.body["correlationId"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn oauth_codes_and_refresh_tokens_give_access_tokens() {
    let sb = HubSpotSandbox::builder()
        .tokens(["pat-na1-good"])
        .start()
        .await
        .expect("starts");
    let http = reqwest::Client::new();
    let token = |form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = format!("{}/oauth/v1/token", sb.base_url());
        async move {
            let r = http.post(url).form(&form).send().await.expect("answers");
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let client = |grant: &str| {
        vec![
            ("grant_type", grant.to_string()),
            ("client_id", "sandbox-client".to_string()),
            ("client_secret", "sandbox-secret".to_string()),
        ]
    };
    let mut form = client("authorization_code");
    form.push(("code", sb.issue_oauth_code()));
    let (status, body) = token(form.clone()).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        Hs::with_token(&sb, &access)
            .get("/crm/v3/objects/deals", &[])
            .await
            .status,
        200
    );
    assert_eq!(token(form).await.0, 400, "a code works once");
    sb.expire_tokens();
    assert_eq!(
        Hs::with_token(&sb, &access)
            .get("/crm/v3/objects/deals", &[])
            .await
            .status,
        401
    );
    let mut refresh = client("refresh_token");
    refresh.push((
        "refresh_token",
        body["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ));
    let (status, fresh) = token(refresh).await;
    assert_eq!(status, 200);
    let access = fresh["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        Hs::with_token(&sb, &access)
            .get("/crm/v3/objects/deals", &[])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn private_app_token_info_reports_each_tokens_scopes() {
    let sb = HubSpotSandbox::builder()
        .tokens(["pat-full"])
        .token_with_scopes("pat-narrow", ["crm.objects.contacts.read"])
        .start()
        .await
        .expect("starts");
    let http = reqwest::Client::new();
    let info = |body: serde_json::Value| {
        let http = http.clone();
        let url = format!(
            "{}/oauth/v2/private-apps/get/access-token-info",
            sb.base_url()
        );
        async move {
            let r = http.post(url).json(&body).send().await.expect("answers");
            let status = r.status().as_u16();
            (
                status,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let (status, body) = info(json!({"tokenKey": "pat-narrow"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scopes"], json!(["crm.objects.contacts.read"]));
    assert_eq!(body["hubId"], json!(62515));
    assert!(body["appId"].is_u64() && body["userId"].is_u64(), "{body}");
    let (status, body) = info(json!({"tokenKey": "pat-full"})).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["scopes"].as_array().map(Vec::len),
        Some(crmkit_sandbox::hubspot::DEFAULT_SCOPES.len())
    );
    let (status, body) = info(json!({"tokenKey": "pat-unknown"})).await;
    assert_eq!(status, 401);
    assert_eq!(body["category"], json!("INVALID_AUTHENTICATION"));
    let (status, _) = info(json!({})).await;
    assert_eq!(status, 400);
}
