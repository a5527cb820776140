//! OAuth 2.0 at `/oauth/v1/token` (`authorization_code` and `refresh_token` grants,
//! form-encoded; oauth-v1.json). HubSpot's refresh tokens stay valid across refreshes
//! (they do not rotate; HubSpot OAuth guide), so the same one may be used again. Also the
//! private-app token information endpoint, which reports a token's scopes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use axum::Form;
use axum::extract::State as AxState;
use axum::response::Response;
use serde_json::json;

use super::State;
use super::api_error::{correlation_id, reply};

/// The scopes a token has unless configured otherwise: every scope crmkit's HubSpot
/// commands use (HubSpot scopes guide, developers.hubspot.com/docs/api/scopes).
pub const DEFAULT_SCOPES: &[&str] = &[
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.objects.owners.read",
];

/// `POST /oauth/v2/private-apps/get/access-token-info` with `{"tokenKey": "<token>"}`:
/// the private app's `userId`, `hubId`, `appId` and `scopes` (HubSpot private apps guide,
/// "Show private app access token information",
/// https://developers.hubspot.com/docs/api/private-apps; also
/// https://github.com/HubSpot/hubspot-api-php/issues/171). The token travels in the body,
/// so no Bearer header is needed. A token the sandbox does not accept answers 401
/// `INVALID_AUTHENTICATION` (HubSpot's body for a bad token; the guide gives no error
/// shape for this endpoint).
pub(crate) async fn private_app_token_info(
    AxState(state): AxState<Arc<State>>,
    body: axum::body::Bytes,
) -> Response {
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let Some(token) = parsed["tokenKey"].as_str().filter(|t| !t.is_empty()) else {
        return reply(
            400,
            json!({"status": "error", "message": "Invalid input JSON: tokenKey is required",
                   "correlationId": correlation_id(), "category": "VALIDATION_ERROR"}),
        );
    };
    let config = &state.config;
    if !(config.tokens.is_empty() || config.tokens.iter().any(|t| t == token)) {
        return reply(
            401,
            json!({"status": "error", "message": "The access token provided is invalid.",
                   "correlationId": correlation_id(), "category": "INVALID_AUTHENTICATION"}),
        );
    }
    let scopes: Vec<String> = config
        .token_scopes
        .iter()
        .find(|(t, _)| t == token)
        .map(|(_, s)| s.clone())
        .unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect());
    reply(
        200,
        json!({"userId": 1, "hubId": config.portal_id, "appId": config.app_id, "scopes": scopes}),
    )
}

/// Issued codes and tokens.
#[derive(Debug, Default)]
pub(crate) struct OAuth {
    codes: HashSet<String>,
    access: HashMap<String, Instant>,
    refresh: HashSet<String>,
}

impl OAuth {
    fn token(kind: &str) -> String {
        let tail: String = (0..32).map(|_| fastrand::alphanumeric()).collect();
        format!("sbx-{kind}-na1-{tail}")
    }

    /// A code, as if a user had approved the app.
    pub(crate) fn issue_code(&mut self) -> String {
        let code = Self::token("code");
        self.codes.insert(code.clone());
        code
    }

    /// Expires every access token now.
    pub(crate) fn expire_all(&mut self) {
        let now = Instant::now();
        self.access.values_mut().for_each(|t| *t = now);
    }

    /// Whether the sandbox issued this access token (valid or not).
    pub(crate) fn issued(&self, token: &str) -> bool {
        self.access.contains_key(token)
    }

    /// Whether an issued access token is still valid.
    pub(crate) fn access_valid(&self, token: &str) -> bool {
        self.access
            .get(token)
            .is_some_and(|exp| *exp > Instant::now())
    }
}

fn refused(message: &str) -> Response {
    // OAuth errors: 400 with `status: BAD_AUTH_CODE` / `BAD_REFRESH_TOKEN` / `BAD_CLIENT_ID` (HubSpot OAuth guide).
    let status = match message {
        m if m.contains("code") => "BAD_AUTH_CODE",
        m if m.contains("refresh") => "BAD_REFRESH_TOKEN",
        _ => "BAD_CLIENT_ID",
    };
    reply(
        400,
        json!({"status": status, "message": message, "correlationId": correlation_id()}),
    )
}

/// `POST /oauth/v1/token`.
pub(crate) async fn token(
    AxState(state): AxState<Arc<State>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let (id, secret) = &state.config.oauth_client;
    if field("client_id") != id || field("client_secret") != secret {
        return refused("missing or unknown client_id / client_secret");
    }
    let mut oauth = state.oauth.lock().unwrap_or_else(|p| p.into_inner());
    let refresh = match field("grant_type") {
        "authorization_code" => {
            if !oauth.codes.remove(field("code")) {
                return refused("missing or unknown auth code");
            }
            let r = OAuth::token("refresh");
            oauth.refresh.insert(r.clone());
            state.gate.stats.lock().code_exchanges += 1;
            r
        }
        "refresh_token" => {
            let r = field("refresh_token").to_string();
            if !oauth.refresh.contains(&r) {
                return refused("missing or unknown refresh token");
            }
            state.gate.stats.lock().token_refreshes += 1;
            r
        }
        other => return refused(&format!("unsupported grant_type {other} for this client")),
    };
    let access = OAuth::token("access");
    let ttl = state.config.token_ttl;
    oauth.access.insert(access.clone(), Instant::now() + ttl);
    reply(
        200,
        json!({"access_token": access, "refresh_token": refresh, "expires_in": ttl.as_secs(),
               "token_type": "bearer", "token_use": "access_token", "hub_id": 1, "user_id": 1,
               "scopes": ["crm.objects.contacts.read", "crm.objects.contacts.write",
                          "crm.objects.companies.read", "crm.objects.companies.write",
                          "crm.objects.deals.read", "crm.objects.deals.write"]}),
    )
}
