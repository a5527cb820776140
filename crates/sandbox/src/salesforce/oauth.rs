//! The token endpoint, `POST /services/oauth2/token` (form-encoded): the JWT bearer,
//! refresh token, username-password and client credentials grants
//! (help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_flows.htm).
//!
//! Lenient by default: any non-empty client id, secret, username, password or refresh token
//! is accepted, and a JWT is checked for its form, `aud`, `exp` and `sub` but may be signed by
//! any key. Given an [`Auth`] with a certificate or credentials, it refuses everything else
//! with the real endpoint's `invalid_grant` answers, and the REST API accepts only the
//! sessions it issued (or the configured ones).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Form;
use axum::extract::State as AxState;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::State;
use super::api_error::reply;

/// The credentials a strict sandbox accepts. Once anything is configured, passwords and
/// client secrets must match configured ones (an unconfigured one accepts none); client ids,
/// usernames and refresh tokens left empty accept any non-empty value (refresh tokens:
/// only those it issued).
#[derive(Clone, Default)]
pub struct Auth {
    /// PEM certificate (or public key) of the connected app: JWTs must be RS256-signed by
    /// its private key.
    pub certificate: Option<String>,
    /// The connected app's consumer key (`client_id`, or the JWT's `iss`).
    pub client_id: Option<String>,
    /// The consumer secret.
    pub client_secret: Option<String>,
    /// Usernames that may sign in (`username`, or the JWT's `sub`).
    pub usernames: Vec<String>,
    /// The password (with security token appended) of those users.
    pub password: Option<String>,
    /// Refresh tokens accepted.
    pub refresh_tokens: Vec<String>,
    /// Session tokens accepted as `Authorization: Bearer` besides the issued ones.
    pub session_tokens: Vec<String>,
    /// JWT audiences accepted: when any is given, exactly these (an Experience Cloud site
    /// URL, say); when none, the login hosts and the sandbox's own address.
    pub audiences: Vec<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of logs: only which parts are configured.
        f.debug_struct("Auth")
            .field("certificate", &self.certificate.is_some())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.is_some())
            .field("usernames", &self.usernames)
            .field("password", &self.password.is_some())
            .field("refresh_tokens", &self.refresh_tokens.len())
            .field("session_tokens", &self.session_tokens.len())
            .field("audiences", &self.audiences)
            .finish()
    }
}

impl Auth {
    /// Whether anything is configured, so only configured credentials are accepted.
    pub fn strict(&self) -> bool {
        self.certificate.is_some()
            || self.client_id.is_some()
            || self.client_secret.is_some()
            || !self.usernames.is_empty()
            || self.password.is_some()
            || !self.refresh_tokens.is_empty()
            || !self.session_tokens.is_empty()
    }
}

/// Sessions issued by the token endpoint.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    issued: HashSet<String>,
    refresh: HashSet<String>,
}

impl Sessions {
    /// Whether `token` is a session this sandbox issued.
    pub(crate) fn issued(&self, token: &str) -> bool {
        self.issued.contains(token)
    }

    /// Ends every issued session (as a session timeout or revocation would).
    pub(crate) fn expire_all(&mut self) {
        self.issued.clear();
    }
}

fn refused(error: &str, description: &str) -> Response {
    reply(
        400,
        json!({"error": error, "error_description": description}),
    )
}

/// Issues a new session id for the org.
pub(crate) fn issue(state: &State, org: &str) -> String {
    let access = token_text(org);
    state
        .sessions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .issued
        .insert(access.clone());
    access
}

fn token_text(org: &str) -> String {
    let tail: String = (0..96).map(|_| fastrand::alphanumeric()).collect();
    // Session ids start with the org id's first 15 characters and `!` (restforce fixtures).
    format!("{}!AR{tail}", org.get(..15).unwrap_or(org))
}

/// The JWT audiences Salesforce accepts: `https://login.salesforce.com`,
/// `https://test.salesforce.com`, or an Experience Cloud site URL; a My Domain or instance
/// URL is refused with "audience is invalid"
/// (<https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm&type=5>).
/// The sandbox's own address stands for the login host. Configured audiences are accepted
/// exactly and alone; without them, a lenient sandbox also takes any https Experience Cloud
/// site host (`*.my.site.com`, `*.force.com`, not `*.my.salesforce.com`), which a strict one
/// does not know and refuses.
fn audience_ok(aud: &Value, own: &str, auth: &Auth) -> bool {
    let ok = |s: &str| {
        let s = s.trim_end_matches('/');
        if !auth.audiences.is_empty() {
            return auth.audiences.iter().any(|a| a.trim_end_matches('/') == s);
        }
        if s == "https://login.salesforce.com" || s == "https://test.salesforce.com" || s == own {
            return true;
        }
        if auth.strict() {
            return false;
        }
        let host = s
            .strip_prefix("https://")
            .map(|rest| {
                rest.split('/')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let label = |suffix: &str| {
            host.strip_suffix(suffix)
                .is_some_and(|name| !name.is_empty() && !name.ends_with('.'))
        };
        label(".my.site.com") || label(".force.com")
    };
    match aud {
        Value::String(s) => ok(s),
        Value::Array(a) => a.iter().filter_map(Value::as_str).any(ok),
        _ => false,
    }
}

/// `exp` as seconds since the epoch: a number, or a numeric string as some client libraries
/// send it.
fn exp_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|x| x as i64)),
        Value::String(s) => s.trim().parse::<f64>().ok().map(|x| x as i64),
        _ => None,
    }
}

/// Checks a JWT bearer assertion; its subject, or the refusal.
fn check_jwt(
    state: &State,
    assertion: &str,
    own: &str,
) -> Result<String, (&'static str, &'static str)> {
    // Error descriptions of the real endpoint: "invalid assertion" (malformed or badly
    // signed), "audience is invalid", "expired authorization code" (exp passed),
    // "user hasn't approved this consumer" (unknown or unauthorised subject), and
    // invalid_client_id "client identifier invalid" (unknown `iss`); see
    // salesforce.stackexchange.com/questions/282513 and the JWT flow help page.
    let invalid = || ("invalid_grant", "invalid assertion");
    let auth = &state.config.auth;
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| invalid())?;
    if header.alg != jsonwebtoken::Algorithm::RS256 {
        return Err(invalid());
    }
    let claims: Value = match auth.certificate.as_deref() {
        Some(pem) => {
            let key =
                jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| invalid())?;
            let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            // Claims are checked below, where `exp` may also be a numeric string.
            v.validate_exp = false;
            v.validate_aud = false;
            v.required_spec_claims = HashSet::new();
            jsonwebtoken::decode::<Value>(assertion, &key, &v)
                .map_err(|_| invalid())?
                .claims
        }
        None => {
            let mut parts = assertion.split('.');
            let payload = parts.nth(1).ok_or_else(invalid)?;
            if parts.next().is_none_or(str::is_empty) {
                return Err(invalid());
            }
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .map_err(|_| invalid())?;
            serde_json::from_slice(&bytes).map_err(|_| invalid())?
        }
    };
    if !claims.is_object() {
        return Err(invalid());
    }
    let iss = claims["iss"].as_str().unwrap_or_default();
    if iss.is_empty() || auth.client_id.as_deref().is_some_and(|id| id != iss) {
        return Err(("invalid_client_id", "client identifier invalid"));
    }
    if !audience_ok(&claims["aud"], own, auth) {
        return Err(("invalid_grant", "audience is invalid"));
    }
    let exp = exp_of(&claims["exp"]).ok_or_else(invalid)?;
    if exp <= chrono::Utc::now().timestamp() {
        return Err(("invalid_grant", "expired authorization code"));
    }
    let sub = claims["sub"].as_str().unwrap_or_default();
    if sub.is_empty() {
        return Err(invalid());
    }
    if !auth.usernames.is_empty() && !auth.usernames.iter().any(|u| u == sub) {
        return Err(("invalid_grant", "user hasn't approved this consumer"));
    }
    Ok(sub.to_string())
}

/// Whether a secret (password, client secret) is accepted: a strict sandbox accepts only
/// the configured one, so a secret it was not given refuses everything.
fn secret_ok(auth: &Auth, configured: &Option<String>, given: &str) -> bool {
    if auth.strict() && configured.is_none() {
        return false;
    }
    matches(configured, given)
}

fn matches(configured: &Option<String>, given: &str) -> bool {
    !given.is_empty() && configured.as_deref().is_none_or(|c| c == given)
}

/// `POST /services/oauth2/token`.
pub(crate) async fn token(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let auth = &state.config.auth;
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let own = format!("{}://{host}", state.scheme());
    let mut refresh = None;
    match field("grant_type") {
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            if let Err((error, description)) = check_jwt(&state, field("assertion"), &own) {
                return refused(error, description);
            }
        }
        "refresh_token" => {
            let token = field("refresh_token");
            let known = state
                .sessions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .refresh
                .contains(token);
            let ok = !token.is_empty()
                && (known
                    || (auth.refresh_tokens.is_empty() && !auth.strict())
                    || auth.refresh_tokens.iter().any(|t| t == token));
            if !matches(&auth.client_id, field("client_id")) {
                return refused("invalid_client_id", "client identifier invalid");
            }
            if !ok
                || (auth.client_secret.is_some()
                    && !matches(&auth.client_secret, field("client_secret")))
            {
                // restforce `refresh_error_response.json`.
                return refused("invalid_grant", "expired access/refresh token");
            }
            state.stats().token_refreshes += 1;
        }
        "password" => {
            if !matches(&auth.client_id, field("client_id")) {
                return refused("invalid_client_id", "client identifier invalid");
            }
            let user = field("username");
            let user_ok = !user.is_empty()
                && (auth.usernames.is_empty() || auth.usernames.iter().any(|u| u == user));
            if !user_ok
                || !secret_ok(auth, &auth.password, field("password"))
                || !matches(&auth.client_secret, field("client_secret"))
            {
                // restforce `auth_error_response.json`.
                return refused("invalid_grant", "authentication failure");
            }
            let r: String = (0..40).map(|_| fastrand::alphanumeric()).collect();
            refresh = Some(format!("5Aep8{r}"));
        }
        "client_credentials" => {
            // The client's key and secret come as HTTP Basic or as form fields.
            let basic = headers
                .get("authorization")
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.strip_prefix("Basic "))
                .and_then(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .ok()
                })
                .and_then(|b| String::from_utf8(b).ok());
            let (id, secret) = match basic.as_deref().and_then(|b| b.split_once(':')) {
                Some((i, s)) => (i.to_string(), s.to_string()),
                None => (
                    field("client_id").to_string(),
                    field("client_secret").to_string(),
                ),
            };
            if !matches(&auth.client_id, &id) || !secret_ok(auth, &auth.client_secret, &secret) {
                return refused("invalid_client", "invalid client credentials");
            }
        }
        _ => return refused("unsupported_grant_type", "grant type not supported"),
    }
    let (org, user) = {
        let data = state.read();
        (data.org_id.clone(), data.user_id.clone())
    };
    let access = issue(&state, &org);
    let issued_at = chrono::Utc::now().timestamp_millis().to_string();
    let mut sessions = state.sessions.lock().unwrap_or_else(|p| p.into_inner());
    // Success body: restforce `auth_success_response.json` (instance_url, id, issued_at,
    // signature, token_type, scope).
    let mut body = json!({
        "access_token": access,
        "instance_url": own,
        "id": format!("{own}/id/{org}/{user}"),
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": base64::engine::general_purpose::STANDARD
            .encode((0..32).map(|_| fastrand::u8(..)).collect::<Vec<u8>>()),
        "scope": "api refresh_token",
    });
    if let Some(r) = refresh {
        sessions.refresh.insert(r.clone());
        body["refresh_token"] = json!(r);
    }
    reply(200, body)
}

/// `GET /id/{org}/{user}` (the `id` URL of a token answer) and
/// `GET /services/oauth2/userinfo`: who the session belongs to
/// (help.salesforce.com/s/articleView?id=sf.remoteaccess_using_openid.htm, identity URLs).
pub(crate) async fn identity(
    AxState(state): AxState<Arc<State>>,
    request: axum::extract::Request,
) -> Response {
    use crate::shared::gate::GateHooks;
    if state.credential(&request).is_none() {
        return state.unauthorized();
    }
    let own = request
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("{}://{h}", state.scheme()))
        .unwrap_or_default();
    let data = state.read();
    let user = data.get("User", &data.user_id).cloned().unwrap_or_default();
    let (org, uid) = (data.org_id.clone(), data.user_id.clone());
    reply(
        200,
        json!({
            "id": format!("{own}/id/{org}/{uid}"),
            "sub": format!("{own}/id/{org}/{uid}"),
            "user_id": uid, "organization_id": org,
            "username": user["Username"], "preferred_username": user["Username"],
            "display_name": user["Name"], "name": user["Name"], "email": user["Email"],
            "active": true, "user_type": "STANDARD",
            "urls": {
                "rest": format!("{own}/services/data/v{{version}}/"),
                "sobjects": format!("{own}/services/data/v{{version}}/sobjects/"),
                "query": format!("{own}/services/data/v{{version}}/query/"),
                "partner": format!("{own}/services/Soap/u/{{version}}/{}", org.get(..15).unwrap_or(&org)),
            },
        }),
    )
}

/// `POST /services/oauth2/revoke` (`token=`): ends a session or refresh token; 200 even
/// for unknown ones, as revocation endpoints answer (RFC 7009 §2.2).
pub(crate) async fn revoke(
    AxState(state): AxState<Arc<State>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let token = form.get("token").map(String::as_str).unwrap_or_default();
    let mut sessions = state.sessions.lock().unwrap_or_else(|p| p.into_inner());
    sessions.issued.remove(token);
    sessions.refresh.remove(token);
    axum::http::StatusCode::OK.into_response()
}
