//! Close authentication: API keys and OAuth 2.0.
//!
//! An API key is sent as HTTP Basic with the key as the user and an empty password. OAuth
//! tokens come from `/oauth2/token/`; Close **rotates** refresh tokens (the old one is revoked
//! on use), so [`RotatingRefresher`] keeps the newest one and hands it to an optional callback
//! for the application to persist.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use crmkit_core::http::auth::{IssuedToken, TokenRefresher};
use crmkit_core::{Crm, Error, ErrorKind, ExposeSecret, Result, SecretString};
use serde::Deserialize;

/// Where Close issues tokens.
pub const DEFAULT_TOKEN_URL: &str = "https://api.close.com/oauth2/token/";
/// Where users approve an app.
pub const AUTHORIZE_URL: &str = "https://app.close.com/oauth2/authorize/";

/// Tokens from a grant. `Debug` shows no token.
#[derive(Clone, Deserialize)]
pub struct TokenSet {
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token (present with `offline_access`).
    pub refresh_token: Option<SecretString>,
    /// Seconds until the access token expires.
    pub expires_in: Option<u64>,
    /// Granted scopes, space separated.
    #[serde(default)]
    pub scope: Option<String>,
    /// The organization the token acts for.
    #[serde(default)]
    pub organization_id: Option<String>,
    /// The user who approved the app.
    #[serde(default)]
    pub user_id: Option<String>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"[REDACTED]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("organization_id", &self.organization_id)
            .finish()
    }
}

impl TokenSet {
    pub(crate) fn issued(&self) -> IssuedToken {
        IssuedToken {
            access_token: self.access_token.clone(),
            expires_in: self.expires_in.map(Duration::from_secs),
        }
    }
}

/// A registered OAuth app: client id, secret and the token endpoint.
#[derive(Clone)]
pub struct OAuthApp {
    client_id: String,
    client_secret: SecretString,
    token_url: String,
    http: reqwest::Client,
}

impl fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .field("token_url", &self.token_url)
            .finish()
    }
}

impl OAuthApp {
    /// The app with `client_id` and `client_secret`, using Close's token endpoint.
    pub fn new(client_id: impl Into<String>, client_secret: SecretString) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret,
            token_url: DEFAULT_TOKEN_URL.into(),
            http: reqwest::Client::new(),
        }
    }

    /// Uses another token endpoint (a sandbox's `http://127.0.0.1:P/oauth2/token/`).
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = url.into();
        self
    }

    /// The URL to send a user to so they approve the app.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str) -> String {
        let mut url = reqwest::Url::parse(AUTHORIZE_URL).expect("constant URL");
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state);
        url.into()
    }

    /// Exchanges an authorization code for tokens.
    pub async fn exchange_code(&self, code: &str, redirect_uri: Option<&str>) -> Result<TokenSet> {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code)];
        if let Some(r) = redirect_uri {
            form.push(("redirect_uri", r));
        }
        self.grant(form).await
    }

    /// Uses `refresh_token` for new tokens; the answer carries the rotated refresh token.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet> {
        self.grant(vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
        ])
        .await
    }

    async fn grant(&self, mut form: Vec<(&str, &str)>) -> Result<TokenSet> {
        form.push(("client_id", &self.client_id));
        form.push(("client_secret", self.client_secret.expose_secret()));
        let resp = self
            .http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Transient,
                    "could not reach the OAuth token endpoint",
                )
                .with_crm(Crm::Close)
                .with_source(e.without_url())
            })?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            let code = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| "unknown_error".into());
            let kind = if matches!(code.as_str(), "invalid_grant" | "invalid_client") {
                ErrorKind::Auth
            } else {
                ErrorKind::from_status(status)
            };
            return Err(Error::new(
                kind,
                format!("the token endpoint refused the grant: {code}"),
            )
            .with_crm(Crm::Close)
            .with_status(status));
        }
        serde_json::from_slice(&body).map_err(|e| {
            Error::bad_response(format!("token response is not valid: {e}")).with_crm(Crm::Close)
        })
    }
}

/// Called with each new refresh token so the application can store it.
pub type RotationHook = Arc<dyn Fn(&SecretString) + Send + Sync>;

/// Refreshes access tokens and keeps Close's rotated refresh token.
pub struct RotatingRefresher {
    app: OAuthApp,
    refresh_token: Mutex<SecretString>,
    on_rotate: Option<RotationHook>,
}

impl fmt::Debug for RotatingRefresher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotatingRefresher")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

impl RotatingRefresher {
    /// Refreshes with `refresh_token` through `app`; `on_rotate` sees every new refresh token.
    pub fn new(
        app: OAuthApp,
        refresh_token: SecretString,
        on_rotate: Option<RotationHook>,
    ) -> Self {
        Self {
            app,
            refresh_token: Mutex::new(refresh_token),
            on_rotate,
        }
    }

    /// The refresh token to use next.
    pub fn current_refresh_token(&self) -> SecretString {
        self.refresh_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl TokenRefresher for RotatingRefresher {
    async fn refresh(&self) -> Result<IssuedToken> {
        let current = self.current_refresh_token();
        let tokens = self.app.refresh(&current).await?;
        if let Some(new) = &tokens.refresh_token {
            *self.refresh_token.lock().unwrap_or_else(|p| p.into_inner()) = new.clone();
            if let Some(hook) = &self.on_rotate {
                hook(new);
            }
        }
        Ok(tokens.issued())
    }
}
