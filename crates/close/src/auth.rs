//! Close authentication: API keys and OAuth 2.0.
//!
//! An API key is sent as HTTP Basic with the key as the user and an empty password. OAuth
//! tokens come from `/oauth2/token/` through the core
//! [`TokenEndpoint`](crmkit_core::http::oauth::TokenEndpoint) (timeouts, retries of transient
//! failures, `invalid_grant` as an [`ErrorKind::Auth`] error). Close **rotates** refresh
//! tokens (the old one is revoked on use, developer.close.com/topics/authentication-oauth2),
//! so [`RotatingRefresher`] keeps the newest one and hands it to an optional callback for the
//! application to persist. The refresh runs in its own task: a caller cancelled mid-refresh
//! does not lose the rotated token.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crmkit_core::http::auth::{IssuedToken, TokenRefresher};
use crmkit_core::http::oauth::{
    RefreshTokenSlot, TokenEndpoint, TokenResponse, debug_app, debug_grant,
};
use crmkit_core::http::retry::RetryPolicy;
use crmkit_core::{Crm, Result, SecretString};
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
        debug_grant(
            f,
            "TokenSet",
            self.refresh_token.as_ref(),
            self.expires_in,
            self.scope.as_deref(),
        )
        .field("organization_id", &self.organization_id)
        .finish()
    }
}

impl TokenSet {
    pub(crate) fn issued(&self) -> IssuedToken {
        IssuedToken::new(
            self.access_token.clone(),
            self.expires_in.map(Duration::from_secs),
        )
    }
}

impl From<TokenResponse> for TokenSet {
    fn from(t: TokenResponse) -> Self {
        let text = |name: &str| t.extra.get(name).and_then(|v| v.as_str()).map(String::from);
        Self {
            organization_id: text("organization_id"),
            user_id: text("user_id"),
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            expires_in: t.expires_in,
            scope: t.scope,
        }
    }
}

/// A registered OAuth app: client id, secret and the token endpoint.
#[derive(Clone)]
pub struct OAuthApp {
    endpoint: TokenEndpoint,
}

impl fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_app(f, &self.endpoint)
    }
}

impl OAuthApp {
    /// The app with `client_id` and `client_secret`, using Close's token endpoint.
    pub fn new(client_id: impl Into<String>, client_secret: SecretString) -> Self {
        Self {
            endpoint: TokenEndpoint::new(Crm::Close, DEFAULT_TOKEN_URL, client_id)
                .client_secret(client_secret),
        }
    }

    /// Uses another token endpoint (a sandbox's `http://127.0.0.1:P/oauth2/token/`).
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint = self.endpoint.url(url);
        self
    }

    /// Sets the token endpoint's connect and total timeouts (default 10 s and 30 s).
    pub fn timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.endpoint = self.endpoint.timeouts(connect, total);
        self
    }

    /// Sets how transient token-endpoint failures are retried (default: 3 retries).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.endpoint = self.endpoint.retry(retry);
        self
    }

    /// The URL to send a user to so they approve the app.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str) -> String {
        // A constant that parses; no input reaches this.
        let mut url = reqwest::Url::parse(AUTHORIZE_URL).expect("constant URL");
        url.query_pairs_mut()
            .append_pair("client_id", self.endpoint.client_id())
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state);
        url.into()
    }

    /// Exchanges an authorization code for tokens.
    pub async fn exchange_code(&self, code: &str, redirect_uri: Option<&str>) -> Result<TokenSet> {
        let code = SecretString::from(code.to_string());
        Ok(self
            .endpoint
            .exchange_code(&code, redirect_uri)
            .await?
            .into())
    }

    /// Uses `refresh_token` for new tokens; the answer carries the rotated refresh token.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet> {
        Ok(self.endpoint.refresh(refresh_token).await?.into())
    }
}

/// Called with each new refresh token so the application can store it.
pub type RotationHook = Arc<dyn Fn(&SecretString) + Send + Sync>;

/// Refreshes access tokens and keeps Close's rotated refresh token.
pub struct RotatingRefresher {
    app: OAuthApp,
    refresh_token: RefreshTokenSlot,
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
            refresh_token: RefreshTokenSlot::new(refresh_token),
            on_rotate,
        }
    }

    /// The refresh token to use next.
    pub fn current_refresh_token(&self) -> SecretString {
        self.refresh_token.current()
    }
}

#[async_trait]
impl TokenRefresher for RotatingRefresher {
    async fn refresh(&self) -> Result<IssuedToken> {
        let current = self.current_refresh_token();
        let tokens = self.app.refresh(&current).await?;
        if let Some(new) = &tokens.refresh_token {
            self.refresh_token.replace(new);
            if let Some(hook) = &self.on_rotate {
                hook(new);
            }
        }
        Ok(tokens.issued())
    }
}
