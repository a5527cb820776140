//! `crmkit doctor` for HubSpot: the token with a cheap call, then its scopes where HubSpot
//! tells them.

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
                "hubspot scopes: not checked — HubSpot tells the scopes of OAuth access tokens only and did not for this one (a private-app token?); crmkit's commands use {}",
                all.join(", ")
            );
            0
        }
    }
}

/// The scopes HubSpot's token introspection names for `token`
/// (`GET /oauth/v1/access-tokens/{token}`, oauth-v1.json), or `None` when it does not
/// answer with them. Sent outside the client's transport so the token, which is part of
/// the path, never reaches a log line or an error message.
async fn granted_scopes(base_url: &str, token: &SecretString) -> Option<Vec<String>> {
    let mut url = reqwest::Url::parse(base_url)
        .ok()?
        .join("oauth/v1/access-tokens/")
        .ok()?;
    url.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .push(token.expose_secret());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .ok()?;
    let response = http.get(url).send().await.ok()?;
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
