//! OAuth 2.0 at `/oauth2/token/`: authorization-code exchange and refresh with rotation
//! (the old refresh token stops working), as Close documents.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use axum::Form;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::State;

#[derive(Debug, Default)]
pub(crate) struct OAuth {
    codes: HashSet<String>,
    access: HashMap<String, Instant>,
    refresh: HashSet<String>,
    counter: u64,
}

impl OAuth {
    fn token(&mut self, kind: &str) -> String {
        self.counter += 1;
        let tail: String = (0..32).map(|_| fastrand::alphanumeric()).collect();
        format!("sbx_{kind}_{}_{tail}", self.counter)
    }

    pub(crate) fn issue_code(&mut self) -> String {
        let code = self.token("code");
        self.codes.insert(code.clone());
        code
    }

    pub(crate) fn expire_all(&mut self) {
        let now = Instant::now();
        self.access.values_mut().for_each(|t| *t = now);
    }

    pub(crate) fn access_valid(&self, token: &str) -> bool {
        self.access
            .get(token)
            .is_some_and(|exp| *exp > Instant::now())
    }
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({"error": error}))).into_response()
}

pub(crate) async fn token(
    AxState(state): AxState<Arc<State>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (id, secret) = &state.config.oauth_client;
    if form.get("client_id") != Some(id) || form.get("client_secret") != Some(secret) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let mut oauth = state.oauth.lock().unwrap_or_else(|p| p.into_inner());
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some(code) = form.get("code").filter(|c| oauth.codes.remove(*c)) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            let _ = code;
            state.stats().code_exchanges += 1;
        }
        Some("refresh_token") => {
            let Some(rt) = form.get("refresh_token") else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
            };
            if !oauth.refresh.remove(rt) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            state.stats().token_refreshes += 1;
        }
        _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
    let access = oauth.token("at");
    let refresh = oauth.token("rt");
    oauth
        .access
        .insert(access.clone(), Instant::now() + state.config.token_ttl);
    oauth.refresh.insert(refresh.clone());
    let org = state.read().org_id.clone();
    axum::Json(json!({
        "token_type": "Bearer",
        "access_token": access,
        "expires_in": state.config.token_ttl.as_secs(),
        "refresh_token": refresh,
        "scope": "all.full_access offline_access",
        "organization_id": org,
        "user_id": "user_sandbox",
    }))
    .into_response()
}
