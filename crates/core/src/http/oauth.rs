//! One OAuth 2.0 token-endpoint client that each CRM configures.
//!
//! [`TokenEndpoint`] sends grants as a form POST (RFC 6749 §4.1.3, §6) with a connect and a
//! total timeout, and:
//!
//! - maps refusals (`{"error": "invalid_grant", "error_description": …}`, or any 400/401) to
//!   [`ErrorKind::Auth`] with the server's code and description, with every secret it sent
//!   blanked out should the server echo one;
//! - retries what may go away by itself (5xx, 429, timeouts, broken connections, a body that
//!   could not be read) a few times with backoff. A refresh grant retried after a broken
//!   connection may meet a refresh token the server already rotated; that ends as an `Auth`
//!   error, never as a silently empty token;
//! - parses `access_token`, `refresh_token`, `expires_in` (number or string), `scope`,
//!   `token_type` and `instance_url`, and keeps every other field in
//!   [`TokenResponse::extra`] (Close's `organization_id`, HubSpot's `hub_id`).

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::auth::IssuedToken;
use super::retry::{self, RetryPolicy};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Crm;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// `client_id` and `client_secret` as form fields (Close, HubSpot, Salesforce).
    #[default]
    Form,
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1).
    Basic,
}

/// A token endpoint and the app's client credentials.
#[derive(Clone)]
pub struct TokenEndpoint {
    crm: Crm,
    url: String,
    client_id: String,
    client_secret: Option<SecretString>,
    client_auth: ClientAuth,
    connect_timeout: Duration,
    timeout: Duration,
    retry: RetryPolicy,
}

impl fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEndpoint")
            .field("crm", &self.crm)
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl TokenEndpoint {
    /// The token endpoint of `crm` at `url`, for the app `client_id`. Defaults: 10 s to
    /// connect, 30 s in total per attempt, 3 retries starting at 250 ms.
    pub fn new(crm: Crm, url: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            crm,
            url: url.into(),
            client_id: client_id.into(),
            client_secret: None,
            client_auth: ClientAuth::Form,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            retry: RetryPolicy {
                max_retries: 3,
                max_rate_limit_retries: 3,
                max_hint: Duration::from_secs(30),
                ..RetryPolicy::default()
            },
        }
    }

    /// Sets the client secret.
    pub fn client_secret(mut self, secret: SecretString) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// Sets how the client authenticates.
    pub fn client_auth(mut self, how: ClientAuth) -> Self {
        self.client_auth = how;
        self
    }

    /// Sets the connect and total (per attempt) timeouts.
    pub fn timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.connect_timeout = connect;
        self.timeout = total;
        self
    }

    /// Sets the retries for transient failures (`max_retries`, `base_delay`, `max_delay` and,
    /// for 429s, `max_rate_limit_retries` and `max_hint`).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Moves the endpoint (a sandbox's token URL).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.url
    }

    /// The app's client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Exchanges an authorization code (`grant_type=authorization_code`).
    pub async fn exchange_code(
        &self,
        code: &SecretString,
        redirect_uri: Option<&str>,
    ) -> Result<TokenResponse> {
        let mut form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.expose_secret().to_string()),
        ];
        if let Some(r) = redirect_uri {
            form.push(("redirect_uri", r.to_string()));
        }
        self.grant(form, &[code]).await
    }

    /// Uses a refresh token (`grant_type=refresh_token`).
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenResponse> {
        let form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh_token.expose_secret().to_string()),
        ];
        self.grant(form, &[refresh_token]).await
    }

    /// Sends any grant; `secrets` are the secret values in `form`, blanked out of any error.
    pub async fn grant(
        &self,
        mut form: Vec<(&str, String)>,
        secrets: &[&SecretString],
    ) -> Result<TokenResponse> {
        let http = self.client()?;
        if self.client_auth == ClientAuth::Form {
            form.push(("client_id", self.client_id.clone()));
            if let Some(s) = &self.client_secret {
                form.push(("client_secret", s.expose_secret().to_string()));
            }
        }
        let mut hidden: Vec<&str> = secrets.iter().map(|s| s.expose_secret()).collect();
        if let Some(s) = &self.client_secret {
            hidden.push(s.expose_secret());
        }
        let mut attempts = retry::Attempts::default();
        // Whether an earlier attempt may have reached the server and had its answer lost.
        let mut maybe_processed = false;
        loop {
            let (outcome, hint, err) = match self.attempt(&http, &form, &hidden).await {
                Attempt::Done(result) => return result,
                Attempt::Failed {
                    outcome,
                    hint,
                    error,
                } => (outcome, hint, error),
            };
            // A grant that was not processed or failed on the server is safe to send again;
            // after a broken connection it may have been, which ends as `invalid_grant`.
            match retry::decide_counted(&self.retry, outcome, true, hint, attempts, fastrand::f64())
            {
                retry::Decision::Retry(wait) => {
                    tracing::debug!(
                        ?outcome,
                        wait_ms = wait.as_millis() as u64,
                        "Retrying token grant."
                    );
                    tokio::time::sleep(wait).await;
                    attempts.record(outcome);
                    maybe_processed |=
                        matches!(outcome, retry::Outcome::Timeout | retry::Outcome::Dropped);
                }
                retry::Decision::GiveUp if maybe_processed && err.kind() == ErrorKind::Auth => {
                    let mut e = Error::new(
                        ErrorKind::Auth,
                        format!(
                            "{}; an earlier attempt may have rotated the refresh token and its answer was lost",
                            err.message()
                        ),
                    )
                    .with_crm(self.crm);
                    if let Some(status) = err.status() {
                        e = e.with_status(status);
                    }
                    return Err(e);
                }
                retry::Decision::GiveUp => return Err(err),
            }
        }
    }

    /// A client per grant: grants are rare, and this keeps the endpoint a plain value.
    fn client(&self) -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .user_agent(concat!("crmkit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::config(format!("cannot build HTTP client: {e}")).with_crm(self.crm))
    }

    async fn attempt(
        &self,
        http: &reqwest::Client,
        form: &[(&str, String)],
        hidden: &[&str],
    ) -> Attempt {
        let mut req = http
            .post(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form);
        if self.client_auth == ClientAuth::Basic {
            req = req.basic_auth(
                &self.client_id,
                self.client_secret.as_ref().map(|s| s.expose_secret()),
            );
        }
        let transient = |outcome, what: &str, e: reqwest::Error| Attempt::Failed {
            outcome,
            hint: None,
            error: Error::new(
                ErrorKind::Transient,
                format!("OAuth token endpoint: {what}"),
            )
            .with_crm(self.crm)
            .with_source(e.without_url()),
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return transient(retry::Outcome::Timeout, "no answer before the timeout", e);
            }
            Err(e) if e.is_connect() => {
                return transient(retry::Outcome::Connect, "could not connect", e);
            }
            Err(e) => return transient(retry::Outcome::Dropped, "the connection broke", e),
        };
        let status = resp.status().as_u16();
        let hint = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .and_then(super::rate::secs_to_duration);
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return transient(
                    retry::Outcome::Dropped,
                    "the answer broke off before its end",
                    e,
                );
            }
        };
        if (200..300).contains(&status) {
            return Attempt::Done(TokenResponse::parse(&body).map_err(|e| e.with_crm(self.crm)));
        }
        let error = refusal(status, &body, hidden)
            .with_crm(self.crm)
            .with_status(status);
        let error = match hint {
            Some(h) => error.with_retry_after(h),
            None => error,
        };
        Attempt::Failed {
            outcome: retry::Outcome::Status(status),
            hint,
            error,
        }
    }
}

enum Attempt {
    Done(Result<TokenResponse>),
    Failed {
        outcome: retry::Outcome,
        hint: Option<Duration>,
        error: Error,
    },
}

/// The error for a non-2xx answer: the OAuth `error` code and `error_description`.
fn refusal(status: u16, body: &[u8], hidden: &[&str]) -> Error {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(|s| scrub(s, hidden))
    };
    let code = field("error");
    let description = field("error_description");
    let kind = match (code.as_deref(), status) {
        (
            Some(
                "invalid_grant"
                | "invalid_client"
                | "unauthorized_client"
                | "invalid_scope"
                | "access_denied",
            ),
            _,
        )
        | (_, 400 | 401) => ErrorKind::Auth,
        (_, s) => ErrorKind::from_status(s),
    };
    let mut message = format!(
        "the token endpoint refused the grant: {}",
        code.as_deref().unwrap_or("no error code")
    );
    if let Some(d) = description.filter(|d| !d.trim().is_empty()) {
        message.push_str(&format!(" ({})", d.chars().take(300).collect::<String>()));
    }
    if kind == ErrorKind::Auth {
        message.push_str("; the app must be authorized again if the refresh token was revoked");
    }
    Error::new(kind, message)
}

/// Blanks out every secret the server may have echoed back, as sent or form-encoded (`+`,
/// `%2F`), since the grant went out as a form.
fn scrub(text: &str, hidden: &[&str]) -> String {
    hidden
        .iter()
        .filter(|h| !h.is_empty())
        .flat_map(|h| {
            let encoded: String = reqwest::Url::parse_with_params("x:", [("", *h)])
                .ok()
                .and_then(|u| u.query().map(|q| q.trim_start_matches('=').to_string()))
                .unwrap_or_default();
            [h.to_string(), encoded]
        })
        .filter(|h| !h.is_empty())
        .fold(text.to_string(), |t, h| t.replace(&h, "[REDACTED]"))
}

/// What the token endpoint issued. `Debug` shows no token and no value of `extra`.
#[derive(Clone)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token, if one was issued (possibly a rotated one).
    pub refresh_token: Option<SecretString>,
    /// Seconds until the access token expires.
    pub expires_in: Option<u64>,
    /// Granted scopes, space separated.
    pub scope: Option<String>,
    /// The token type, normally `Bearer`.
    pub token_type: Option<String>,
    /// The API root to use with the token (Salesforce).
    pub instance_url: Option<String>,
    /// Every other field, as sent. May hold secrets (an `id_token`); never log it whole.
    pub extra: Map<String, Value>,
}

/// Starts the `Debug` of a token grant named `name` with the fields every grant has: the
/// tokens only as `[REDACTED]` (the refresh token as `None` when none came), so a CRM's own
/// token type shows the same and cannot leak one.
pub fn debug_grant<'a, 'b>(
    f: &'a mut fmt::Formatter<'b>,
    name: &str,
    refresh_token: Option<&SecretString>,
    expires_in: Option<u64>,
    scope: Option<&str>,
) -> fmt::DebugStruct<'a, 'b> {
    let mut d = f.debug_struct(name);
    d.field("access_token", &"[REDACTED]")
        .field("refresh_token", &refresh_token.map(|_| "[REDACTED]"))
        .field("expires_in", &expires_in)
        .field("scope", &scope);
    d
}

/// Writes the `Debug` of a CRM's OAuth app built on `endpoint`: client id and token URL,
/// the client secret only as `[REDACTED]`, so every CRM's app shows the same.
pub fn debug_app(f: &mut fmt::Formatter<'_>, endpoint: &TokenEndpoint) -> fmt::Result {
    f.debug_struct("OAuthApp")
        .field("client_id", &endpoint.client_id())
        .field("client_secret", &"[REDACTED]")
        .field("token_url", &endpoint.endpoint())
        .finish()
}

/// The refresh token a refresher uses next, replaced when the server sends a new one
/// (Close rotates on every use; HubSpot may). Shared by concurrent refreshes; a poisoned lock
/// still yields the last token stored.
pub struct RefreshTokenSlot(Mutex<SecretString>);

impl fmt::Debug for RefreshTokenSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshTokenSlot([REDACTED])")
    }
}

impl RefreshTokenSlot {
    /// A slot holding `refresh_token`.
    pub fn new(refresh_token: SecretString) -> Self {
        Self(Mutex::new(refresh_token))
    }

    /// The refresh token to use next.
    pub fn current(&self) -> SecretString {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Keeps `new` for the next refresh.
    pub fn replace(&self, new: &SecretString) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = new.clone();
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_grant(
            f,
            "TokenResponse",
            self.refresh_token.as_ref(),
            self.expires_in,
            self.scope.as_deref(),
        )
        .field("token_type", &self.token_type)
        .field("instance_url", &self.instance_url)
        .field("extra_fields", &self.extra.keys().collect::<Vec<_>>())
        .finish()
    }
}

impl TokenResponse {
    /// Parses a token response body; an empty or missing access token is an error.
    pub fn parse(body: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| Error::bad_response(format!("the token response is not JSON: {e}")))?;
        let Value::Object(mut map) = value else {
            return Err(Error::bad_response(
                "the token response is not a JSON object",
            ));
        };
        let mut take_str = |name: &str| match map.remove(name) {
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            _ => None,
        };
        let access_token = take_str("access_token")
            .ok_or_else(|| Error::bad_response("the token response has no access_token"))?;
        let refresh_token = take_str("refresh_token");
        let scope = take_str("scope");
        let token_type = take_str("token_type");
        let instance_url = take_str("instance_url");
        let expires_in = match map.remove("expires_in") {
            Some(Value::Number(n)) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f.min(u64::MAX as f64) as u64)
            }),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        Ok(Self {
            access_token: SecretString::from(access_token),
            refresh_token: refresh_token.map(SecretString::from),
            expires_in,
            scope,
            token_type,
            instance_url,
            extra: map,
        })
    }

    /// The access token for a [`crate::http::auth::TokenSource`].
    pub fn issued(&self) -> IssuedToken {
        IssuedToken {
            access_token: self.access_token.clone(),
            expires_in: self.expires_in.map(Duration::from_secs),
            instance_url: self.instance_url.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
