//! HubSpot authentication: private-app tokens and OAuth 2.0.
//!
//! A private-app token (`pat-…`) is sent as `Authorization: Bearer` (hubspot-api-python
//! `configuration.py`). OAuth tokens come from `POST /oauth/v1/token` (`oauth-v1.json`)
//! through the core [`TokenEndpoint`] (timeouts, retries of transient failures,
//! `invalid_grant` as an [`ErrorKind::Auth`](crmkit_core::ErrorKind::Auth) error). The core
//! [`TokenSource`](crmkit_core::http::auth::TokenSource) refreshes ahead of expiry, once for
//! many concurrent callers, and the transport refreshes once and retries once on a 401.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crmkit_core::http::auth::{IssuedToken, TokenRefresher};
use crmkit_core::http::oauth::{
    RefreshTokenSlot, TokenEndpoint, TokenResponse, debug_app, debug_grant,
};
use crmkit_core::http::retry::RetryPolicy;
use crmkit_core::{Crm, Error, Result, SecretString};

/// Where HubSpot issues tokens.
pub const DEFAULT_TOKEN_URL: &str = "https://api.hubapi.com/oauth/v1/token";
/// Where users approve an app (`oauth-v1.json`; hubspot-api-python `utils/oauth.py`).
pub const AUTHORIZE_URL: &str = "https://app.hubspot.com/oauth/authorize";

/// Tokens from a grant. `Debug` shows no token.
#[derive(Clone)]
pub struct TokenSet {
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token (absent for the client-credentials grant).
    pub refresh_token: Option<SecretString>,
    /// Seconds until the access token expires.
    pub expires_in: Option<u64>,
    /// The HubSpot account the token acts for.
    pub hub_id: Option<u64>,
    /// The user who approved the app.
    pub user_id: Option<u64>,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_grant(
            f,
            "TokenSet",
            self.refresh_token.as_ref(),
            self.expires_in,
            None,
        )
        .field("hub_id", &self.hub_id)
        .field("scopes", &self.scopes)
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
        let id = |name: &str| t.extra.get(name).and_then(serde_json::Value::as_u64);
        let mut scopes: Vec<String> = t
            .extra
            .get("scopes")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        if scopes.is_empty()
            && let Some(s) = &t.scope
        {
            scopes = s.split_whitespace().map(str::to_string).collect();
        }
        Self {
            hub_id: id("hub_id"),
            user_id: id("user_id"),
            scopes,
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            expires_in: t.expires_in,
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
    /// The app with `client_id` and `client_secret`, using HubSpot's token endpoint.
    pub fn new(client_id: impl Into<String>, client_secret: SecretString) -> Self {
        Self {
            endpoint: TokenEndpoint::new(Crm::HubSpot, DEFAULT_TOKEN_URL, client_id)
                .client_secret(client_secret),
        }
    }

    /// Uses the token endpoint of the API at `base_url` (a sandbox root such as
    /// `http://127.0.0.1:8080`): `{base_url}/oauth/v1/token`.
    pub fn base_url(self, base_url: &str) -> Self {
        let url = format!("{}/oauth/v1/token", base_url.trim().trim_end_matches('/'));
        self.token_url(url)
    }

    /// Uses another token endpoint URL.
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

    /// The token endpoint URL.
    pub fn token_endpoint(&self) -> &str {
        self.endpoint.endpoint()
    }

    /// The URL to send a user to so they approve the app: `scopes` are required,
    /// `optional_scopes` are granted when the account has them; both space separated as
    /// HubSpot expects.
    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        scopes: &[&str],
        optional_scopes: &[&str],
        state: &str,
    ) -> Result<String> {
        let mut url = reqwest::Url::parse(AUTHORIZE_URL)
            .map_err(|e| Error::config(format!("invalid authorize URL: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", self.endpoint.client_id())
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("scope", &scopes.join(" "));
            if !optional_scopes.is_empty() {
                q.append_pair("optional_scope", &optional_scopes.join(" "));
            }
            q.append_pair("state", state);
        }
        Ok(url.into())
    }

    /// Exchanges an authorization code for tokens; HubSpot requires the `redirect_uri` the
    /// user was sent back to.
    pub async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<TokenSet> {
        let code = SecretString::from(code.to_string());
        Ok(self
            .endpoint
            .exchange_code(&code, Some(redirect_uri))
            .await?
            .into())
    }

    /// Uses `refresh_token` for a new access token.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet> {
        Ok(self.endpoint.refresh(refresh_token).await?.into())
    }
}

/// Refreshes access tokens with the app's refresh token, keeping a new one if HubSpot ever
/// sends one.
pub struct Refresher {
    app: OAuthApp,
    refresh_token: RefreshTokenSlot,
}

impl fmt::Debug for Refresher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refresher")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

impl Refresher {
    /// Refreshes with `refresh_token` through `app`.
    pub fn new(app: OAuthApp, refresh_token: SecretString) -> Arc<Self> {
        Arc::new(Self {
            app,
            refresh_token: RefreshTokenSlot::new(refresh_token),
        })
    }
}

#[async_trait]
impl TokenRefresher for Refresher {
    async fn refresh(&self) -> Result<IssuedToken> {
        let tokens = self.app.refresh(&self.refresh_token.current()).await?;
        if let Some(new) = &tokens.refresh_token {
            self.refresh_token.replace(new);
        }
        Ok(tokens.issued())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorize_url_carries_space_separated_scopes() {
        let app = OAuthApp::new("cid", SecretString::from("secret"));
        let url = app
            .authorize_url(
                "https://app.example.com/cb",
                &["crm.objects.contacts.read", "oauth"],
                &["crm.objects.deals.read"],
                "st4te",
            )
            .expect("url");
        let parsed = reqwest::Url::parse(&url).expect("parses");
        assert_eq!(parsed.host_str(), Some("app.hubspot.com"));
        assert_eq!(parsed.path(), "/oauth/authorize");
        let q: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        assert!(q.contains(&("client_id".into(), "cid".into())));
        assert!(q.contains(&("scope".into(), "crm.objects.contacts.read oauth".into())));
        assert!(q.contains(&("optional_scope".into(), "crm.objects.deals.read".into())));
        assert!(q.contains(&("state".into(), "st4te".into())));
        assert!(!url.contains("secret"));
    }

    #[test]
    fn token_responses_keep_hub_and_scopes_and_debug_hides_tokens() {
        let body = br#"{"access_token":"at-1","refresh_token":"rt-1","expires_in":1800,"token_type":"bearer","hub_id":62515,"user_id":7,"scopes":["oauth","crm.objects.contacts.read"]}"#;
        let t: TokenSet = TokenResponse::parse(body).expect("parses").into();
        assert_eq!(t.hub_id, Some(62515));
        assert_eq!(t.user_id, Some(7));
        assert_eq!(t.scopes, vec!["oauth", "crm.objects.contacts.read"]);
        assert_eq!(t.expires_in, Some(1800));
        let shown = format!("{t:?}");
        assert!(
            !shown.contains("at-1") && !shown.contains("rt-1"),
            "{shown}"
        );
        assert_eq!(
            OAuthApp::new("c", SecretString::from("s"))
                .base_url("http://127.0.0.1:9/")
                .token_endpoint(),
            "http://127.0.0.1:9/oauth/v1/token"
        );
    }
}
