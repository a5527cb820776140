//! `crmkit doctor` for HubSpot: the token with a cheap call, then its scopes: a private-app
//! token's (`pat-…`) from `POST /oauth/v2/private-apps/get/access-token-info`, an OAuth
//! access token's from `GET /oauth/v1/access-tokens/{token}`, then the private-app call
//! (a `pat-` token is only ever sent in that call's body).

use std::time::Duration;

use crmkit_core::http::ApiRequest;
use crmkit_core::{ErrorKind, ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::Settings;

/// The scopes crmkit's HubSpot commands use, with what needs each (HubSpot scopes guide,
/// developers.hubspot.com/docs/apps/developer-platform/build-apps/authentication/scopes;
/// each endpoint's Requirements section).
const NEEDED_SCOPES: &[(&str, &str)] = &[
    ("crm.objects.contacts.read", "reading contacts"),
    ("crm.objects.contacts.write", "writing contacts"),
    ("crm.objects.companies.read", "reading companies"),
    ("crm.objects.companies.write", "writing companies"),
    (
        "crm.objects.deals.read",
        "reading deals and their pipelines",
    ),
    ("crm.objects.deals.write", "writing deals"),
    ("crm.objects.owners.read", "doctor's check"),
];

/// Checks the configured HubSpot token and prints one line per finding; returns how many
/// problems it found (none when HubSpot is not configured).
pub async fn check(settings: &Settings) -> usize {
    let client = match settings.hubspot_builder().and_then(|b| b.build()) {
        Ok(client) => client,
        Err(e) => {
            println!("hubspot: not configured ({e})");
            return 0;
        }
    };
    let base_url = client.transport().base_url().to_string();
    // One owner is the cheapest authenticated read (crm-owners-v3.json, limit).
    let owners = ApiRequest::get("crm/v3/owners").query("limit", "1");
    if let Err(e) = client.raw(&owners).await {
        let hint = match e.kind() {
            ErrorKind::Auth => {
                "the access token is wrong, expired or revoked; copy it again from the private app (Settings → Integrations → Private apps) or sign in again"
            }
            ErrorKind::Forbidden => "the token lacks the crm.objects.owners.read scope",
            ErrorKind::Transient => {
                "HubSpot could not be reached; check the network or HUBSPOT_BASE_URL"
            }
            _ => "see the error above",
        };
        println!("hubspot: FAILED — {e}\n       fix: {hint}");
        return 1;
    }
    println!("hubspot: ok — the access token works at {base_url}");
    let Some(token) = settings.hubspot.access_token.as_ref() else {
        return 0;
    };
    match granted_scopes(&base_url, token).await {
        Some(granted) => {
            let missing: Vec<String> = NEEDED_SCOPES
                .iter()
                .filter(|(scope, _)| !granted.iter().any(|g| g == scope))
                .map(|(scope, why)| format!("{scope} ({why})"))
                .collect();
            if missing.is_empty() {
                println!("hubspot scopes: ok — the token has every scope crmkit's commands use");
                0
            } else {
                println!(
                    "hubspot scopes: MISSING {} — add them to the app and authorize it again",
                    missing.join(", ")
                );
                1
            }
        }
        None => {
            let all: Vec<&str> = NEEDED_SCOPES.iter().map(|(s, _)| *s).collect();
            println!(
                "hubspot scopes: not checked — HubSpot reported no scopes for this token (neither as a private-app token nor as an OAuth access token); crmkit's commands use {}",
                all.join(", ")
            );
            0
        }
    }
}

/// The scopes HubSpot reports for `token`: a private-app token's first when it looks like
/// one (`pat-…`), else an OAuth access token's first, each falling back to the other.
async fn granted_scopes(base_url: &str, token: &SecretString) -> Option<Vec<String>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .ok()?;
    if token.expose_secret().starts_with("pat-") {
        // A private-app token is no OAuth token: it never goes into the OAuth endpoint's
        // URL path, where proxies and server logs would keep it.
        private_app_scopes(&http, base_url, token).await
    } else {
        match oauth_scopes(&http, base_url, token).await {
            Some(s) => Some(s),
            None => private_app_scopes(&http, base_url, token).await,
        }
    }
}

/// The `scopes` of a private app's token: `POST /oauth/v2/private-apps/get/access-token-info`
/// with `{"tokenKey": token}` answers `userId`, `hubId`, `appId` and `scopes` (HubSpot
/// private apps guide, https://developers.hubspot.com/docs/api/private-apps, "Show private
/// app access token information"). The token is in the body, never in a URL or a log line.
async fn private_app_scopes(
    http: &reqwest::Client,
    base_url: &str,
    token: &SecretString,
) -> Option<Vec<String>> {
    let url = reqwest::Url::parse(base_url)
        .ok()?
        .join("oauth/v2/private-apps/get/access-token-info")
        .ok()?;
    let body = serde_json::json!({"tokenKey": token.expose_secret()});
    let response = http.post(url).json(&body).send().await.ok()?;
    scopes_of(response).await
}

/// The `scopes` array of a successful answer.
async fn scopes_of(response: reqwest::Response) -> Option<Vec<String>> {
    if !response.status().is_success() {
        return None;
    }
    let body: Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
    let scopes = body.get("scopes")?.as_array()?;
    Some(
        scopes
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
    )
}

/// The scopes HubSpot's token introspection names for an OAuth access token
/// (`GET /oauth/v1/access-tokens/{token}`, developers.hubspot.com/docs/api/oauth/tokens), or `None` when it does not
/// answer with them. Sent outside the client's transport so the token, which is part of
/// the path, never reaches a log line or an error message.
async fn oauth_scopes(
    http: &reqwest::Client,
    base_url: &str,
    token: &SecretString,
) -> Option<Vec<String>> {
    let mut url = reqwest::Url::parse(base_url)
        .ok()?
        .join("oauth/v1/access-tokens/")
        .ok()?;
    url.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .push(token.expose_secret());
    let response = http.get(url).send().await.ok()?;
    scopes_of(response).await
}
