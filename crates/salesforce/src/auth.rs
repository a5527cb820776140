//! Salesforce authentication: OAuth 2.0 JWT bearer, refresh-token and client-credentials
//! flows, all through the core [`TokenEndpoint`] (timeouts, retries, `invalid_grant` as an
//! [`ErrorKind::Auth`] error with every secret blanked out), and the policy that decides
//! which `instance_url` a token may send requests to.
//!
//! - **JWT bearer** (help.salesforce.com, "OAuth 2.0 JWT Bearer Flow for Server-to-Server
//!   Integration"): an RS256 assertion with `iss` = the connected app's consumer key,
//!   `sub` = the username, `aud` = the login URL (`https://login.salesforce.com`, or
//!   `https://test.salesforce.com` for sandboxes) and `exp` three minutes ahead, posted as
//!   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`. No refresh token
//!   comes back; a new assertion is signed whenever a new access token is needed.
//! - **Refresh token**: `grant_type=refresh_token` with the app's id and secret; a rotated
//!   refresh token is kept for the next refresh.
//! - **Client credentials**: `grant_type=client_credentials` with HTTP Basic client
//!   authentication, against the org's My Domain (Salesforce refuses it on login.salesforce.com).
//!
//! The token answer names the `instance_url` to call. [`instance_url_policy`] accepts it only
//! over https on a documented org host (a My Domain `*.my.salesforce.com` or an instance
//! `InstanceName.salesforce.com` of an instance name's shape, see [`is_salesforce_host`]) or on the host the user
//! configured; plain http only on the loopback address `127.0.0.1` (a local sandbox).
//! Anything else fails the request, so an access token never travels to a host nobody
//! chose.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crmkit_core::http::InstanceUrlPolicy;
use crmkit_core::http::auth::{IssuedToken, TokenRefresher};
use crmkit_core::http::oauth::{ClientAuth, RefreshTokenSlot, TokenEndpoint};
use crmkit_core::{Crm, Error, ErrorKind, ExposeSecret, Result, SecretString};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// The production login host.
pub const LOGIN_URL: &str = "https://login.salesforce.com";
/// The sandbox login host.
pub const TEST_LOGIN_URL: &str = "https://test.salesforce.com";
/// The grant type of the JWT bearer flow (RFC 7523).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How long a signed assertion is valid (Salesforce allows at most three minutes).
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(180);

/// The parent domain of every org's My Domain host, `MyDomainName.my.salesforce.com`, and of
/// its partitioned forms (`MyDomainName--SandboxName.sandbox.my.salesforce.com`,
/// `….develop.my.salesforce.com`, `….scratch.my.salesforce.com`, …): help.salesforce.com,
/// "My Domain" (<https://help.salesforce.com/s/articleView?id=sf.domain_name_overview.htm&type=5>)
/// and "My Domain URL Formats"
/// (<https://help.salesforce.com/s/articleView?id=sf.domain_name_app_url_changes.htm&type=5>).
const MY_DOMAIN_SUFFIX: &str = ".my.salesforce.com";

/// The domain of instanced URLs, `https://InstanceName.salesforce.com` (such as
/// `na1.salesforce.com` or `eu55.salesforce.com`): one label under it, never deeper
/// (MyDomainSettings,
/// <https://developer.salesforce.com/docs/atlas.en-us.api_meta.meta/api_meta/meta_mydomainsettings.htm>),
/// and only of an instance name's shape ([`is_instance_name`]).
///
/// Other partitions (Government Cloud Plus on `salesforce.mil`, Alibaba Cloud on
/// `sfcrmproducts.cn`) are not listed: no Salesforce page found states their API hosts, so
/// such an org's instance URL must be configured (a configured host is trusted as is).
const INSTANCE_DOMAIN: &str = ".salesforce.com";

/// Whether `label` has an instance name's shape: letters, then digits, then at most one
/// letter (`na1`, `eu55`, `cs42`, `usa556s`), as the instance names of Salesforce's
/// instanced URLs are (the examples of the page cited on [`INSTANCE_DOMAIN`], and
/// `usa77.salesforce.com` in help.salesforce.com "Set the My Domain Login Policy",
/// <https://help.salesforce.com/s/articleView?id=xcloud.domain_name_setting_login_policy.htm&type=5>).
/// So `help`, `trailhead`, `api` or `login` under `salesforce.com` are not instances.
fn is_instance_name(label: &str) -> bool {
    let b = label.as_bytes();
    let letters = b.iter().take_while(|c| c.is_ascii_lowercase()).count();
    let digits = b[letters..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let rest = &b[letters + digits..];
    letters > 0
        && digits > 0
        && (rest.is_empty() || (rest.len() == 1 && rest[0].is_ascii_lowercase()))
}

/// The token endpoint at `login_url` (`{login_url}/services/oauth2/token`).
pub fn token_url(login_url: &str) -> String {
    format!(
        "{}/services/oauth2/token",
        login_url.trim().trim_end_matches('/')
    )
}

fn auth_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Auth, message).with_crm(Crm::Salesforce)
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

/// The `aud` Salesforce expects for a token endpoint: the authorization server's URL, which
/// for a My Domain endpoint is still `https://login.salesforce.com` (or
/// `https://test.salesforce.com` for a sandbox org's `….sandbox.my.salesforce.com`); other
/// hosts (login, test, an Experience Cloud site, a local sandbox) are their own audience
/// (help.salesforce.com, "OAuth 2.0 JWT Bearer Flow for Server-to-Server Integration").
pub fn default_audience(login_url: &str) -> String {
    let url = login_url.trim().trim_end_matches('/');
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    if host.ends_with(".sandbox.my.salesforce.com") {
        TEST_LOGIN_URL.to_string()
    } else if host.ends_with(".my.salesforce.com") {
        LOGIN_URL.to_string()
    } else {
        url.to_string()
    }
}

/// Signs JWT bearer assertions with the connected app's private key and trades them for
/// access tokens.
pub struct JwtBearer {
    endpoint: TokenEndpoint,
    username: String,
    audience: String,
    key: EncodingKey,
}

impl fmt::Debug for JwtBearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtBearer")
            .field("client_id", &self.endpoint.client_id())
            .field("username", &self.username)
            .field("audience", &self.audience)
            .field("token_url", &self.endpoint.endpoint())
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl JwtBearer {
    /// The flow for `client_id` (the consumer key) acting as `username`, signing with the
    /// RSA private key in `private_key_pem`, against `login_url` (the audience is
    /// [`default_audience`] of it; see [`Self::audience`]).
    pub fn new(
        client_id: impl Into<String>,
        username: impl Into<String>,
        private_key_pem: &SecretString,
        login_url: &str,
    ) -> Result<Self> {
        let key =
            EncodingKey::from_rsa_pem(private_key_pem.expose_secret().as_bytes()).map_err(|e| {
                Error::config(format!(
                    "the private key is not an RSA key in PEM form: {e}"
                ))
                .with_crm(Crm::Salesforce)
            })?;
        Ok(Self {
            endpoint: TokenEndpoint::new(Crm::Salesforce, token_url(login_url), client_id),
            username: username.into(),
            audience: default_audience(login_url),
            key,
        })
    }

    /// Sets the `aud` claim (a community URL, or `https://test.salesforce.com` when the
    /// token endpoint is a My Domain host of a sandbox).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Who signs in where, to tell orgs apart before a token names its instance.
    pub(crate) fn org_hint(&self) -> String {
        format!(
            "{}|{}|{}",
            self.endpoint.endpoint(),
            self.endpoint.client_id(),
            self.username
        )
    }

    /// A signed assertion valid for [`ASSERTION_LIFETIME`].
    pub fn assertion(&self) -> Result<SecretString> {
        let exp = chrono::Utc::now().timestamp() + ASSERTION_LIFETIME.as_secs() as i64;
        let claims = Claims {
            iss: self.endpoint.client_id(),
            sub: &self.username,
            aud: &self.audience,
            exp,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map(SecretString::from)
            .map_err(|e| auth_error(format!("cannot sign the JWT assertion: {e}")))
    }
}

#[async_trait]
impl TokenRefresher for JwtBearer {
    async fn refresh(&self) -> Result<IssuedToken> {
        let assertion = self.assertion()?;
        let form = vec![
            ("grant_type", JWT_BEARER_GRANT.to_string()),
            ("assertion", assertion.expose_secret().to_string()),
        ];
        Ok(self.endpoint.grant(form, &[&assertion]).await?.issued())
    }
}

/// Refreshes with a refresh token from a web-server or user-agent authorization.
pub struct RefreshToken {
    endpoint: TokenEndpoint,
    slot: RefreshTokenSlot,
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshToken")
            .field("client_id", &self.endpoint.client_id())
            .field("token_url", &self.endpoint.endpoint())
            .finish_non_exhaustive()
    }
}

impl RefreshToken {
    /// Refreshes `refresh_token` for the app `client_id`/`client_secret` at `login_url`.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: Option<SecretString>,
        refresh_token: SecretString,
        login_url: &str,
    ) -> Self {
        let mut endpoint = TokenEndpoint::new(Crm::Salesforce, token_url(login_url), client_id);
        if let Some(s) = client_secret {
            endpoint = endpoint.client_secret(s);
        }
        Self {
            endpoint,
            slot: RefreshTokenSlot::new(refresh_token),
        }
    }
}

impl RefreshToken {
    /// Which app signs in where, to tell orgs apart before a token names its instance.
    pub(crate) fn org_hint(&self) -> String {
        format!("{}|{}", self.endpoint.endpoint(), self.endpoint.client_id())
    }
}

#[async_trait]
impl TokenRefresher for RefreshToken {
    async fn refresh(&self) -> Result<IssuedToken> {
        let tokens = self.endpoint.refresh(&self.slot.current()).await?;
        if let Some(new) = &tokens.refresh_token {
            self.slot.replace(new);
        }
        Ok(tokens.issued())
    }
}

/// The client-credentials flow of a connected app with a run-as user.
pub struct ClientCredentials {
    endpoint: TokenEndpoint,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.endpoint.client_id())
            .field("token_url", &self.endpoint.endpoint())
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// The flow for `client_id`/`client_secret` at the org's My Domain URL.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: SecretString,
        my_domain_url: &str,
    ) -> Self {
        Self {
            endpoint: TokenEndpoint::new(Crm::Salesforce, token_url(my_domain_url), client_id)
                .client_secret(client_secret)
                .client_auth(ClientAuth::Basic),
        }
    }
}

impl ClientCredentials {
    /// Which app signs in where (a My Domain names one org).
    pub(crate) fn org_hint(&self) -> String {
        format!("{}|{}", self.endpoint.endpoint(), self.endpoint.client_id())
    }
}

#[async_trait]
impl TokenRefresher for ClientCredentials {
    async fn refresh(&self) -> Result<IssuedToken> {
        let form = vec![("grant_type", "client_credentials".to_string())];
        Ok(self.endpoint.grant(form, &[]).await?.issued())
    }
}

/// Whether `host` is one Salesforce documents as an org's API host: a My Domain
/// (`*.my.salesforce.com`) or an instance (`InstanceName.salesforce.com`). Other Salesforce
/// domains (`*.force.com` Visualforce and site hosts, `*.my.site.com` Experience Cloud
/// sites, content domains) serve pages and user content, not the REST API, and a token
/// never goes there unless the user configured that host.
pub fn is_salesforce_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let label_ok =
        |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if let Some(sub) = host.strip_suffix(MY_DOMAIN_SUFFIX) {
        return sub.split('.').all(label_ok);
    }
    host.strip_suffix(INSTANCE_DOMAIN)
        .is_some_and(is_instance_name)
}

/// The `scheme://host[:port]` of `url`, checked: no user info, a host, http or https.
fn origin(url: &str) -> Result<(reqwest::Url, String)> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| auth_error(format!("the instance URL {url:?} is not a URL: {e}")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(auth_error(format!(
            "the instance URL {url:?} carries user information; refused"
        )));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| auth_error(format!("the instance URL {url:?} has no host")))?
        .to_string();
    let origin = match parsed.port() {
        Some(p) => format!("{}://{host}:{p}", parsed.scheme()),
        None => format!("{}://{host}", parsed.scheme()),
    };
    Ok((parsed, origin))
}

/// Checks an `instance_url` a token endpoint sent against the hosts the user configured
/// (`trusted`: the instance and login URLs) and returns its origin, or an error naming it.
pub fn check_instance_url(instance_url: &str, trusted: &[String]) -> Result<String> {
    let (url, origin_of) = origin(instance_url)?;
    let host = url.host_str().unwrap_or_default();
    let configured = trusted
        .iter()
        .filter_map(|t| origin(t).ok())
        .any(|(_, o)| o.eq_ignore_ascii_case(&origin_of));
    let ok = match url.scheme() {
        "https" => configured || is_salesforce_host(host),
        // Only a sandbox on this machine: the token never leaves it.
        "http" => host == "127.0.0.1",
        _ => false,
    };
    if !ok {
        return Err(auth_error(format!(
            "the token endpoint named the instance URL {origin_of}, which is neither an https \
             Salesforce domain nor the configured host; not sending the access token there"
        )));
    }
    Ok(origin_of)
}

/// The REST root for an instance: `{origin}/services/data/v{version}/`.
pub fn rest_root(origin: &str, api_version: &str) -> String {
    format!(
        "{}/services/data/v{api_version}/",
        origin.trim_end_matches('/')
    )
}

/// The policy the transport applies to every token's `instance_url`: see
/// [`check_instance_url`]; requests then go to [`rest_root`] of the accepted origin.
pub fn instance_url_policy(trusted: Vec<String>, api_version: String) -> InstanceUrlPolicy {
    Arc::new(move |url: &str| {
        check_instance_url(url, &trusted).map(|origin| rest_root(&origin, &api_version))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_urls_are_accepted_only_where_they_belong() {
        let trusted = vec!["https://crm.example.org".to_string(), LOGIN_URL.to_string()];
        for ok in [
            "https://na1.salesforce.com",
            "https://eu55.salesforce.com",
            "https://cs42.salesforce.com",
            "https://usa556s.salesforce.com",
            "https://acme.my.salesforce.com/",
            "https://acme--dev.sandbox.my.salesforce.com",
            "https://acme-dev-ed.develop.my.salesforce.com",
            "https://crm.example.org",
            "http://127.0.0.1:8080",
        ] {
            check_instance_url(ok, &trusted).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "http://na1.salesforce.com",
            "https://salesforce.com.evil.example",
            "https://evilsalesforce.com",
            "https://attacker.force.com",
            "https://acme.my.site.com",
            "https://acme--c.vf.force.com",
            "https://a.b.salesforce.com",
            "https://help.salesforce.com",
            "https://trailhead.salesforce.com",
            "https://api.salesforce.com",
            "https://test.salesforce.com",
            "https://na.salesforce.com",
            "https://55.salesforce.com",
            "https://na1ab.salesforce.com",
            "https://na1-x.salesforce.com",
            "https://acme.my.salesforce.mil",
            "https://salesforce.com",
            "https://x_y.my.salesforce.com",
            "https://acme.cloudforce.com",
            "https://user:pw@na1.salesforce.com",
            "http://localhost:8080",
            "http://10.0.0.1",
            "ftp://na1.salesforce.com",
            "not a url",
        ] {
            let e = check_instance_url(bad, &trusted).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::Auth, "{bad}");
        }
        let policy = instance_url_policy(trusted, "59.0".into());
        assert_eq!(
            policy("https://na1.salesforce.com/").expect("ok"),
            "https://na1.salesforce.com/services/data/v59.0/"
        );
    }

    #[test]
    fn a_bad_key_is_a_config_error_and_debug_hides_secrets() {
        let e = JwtBearer::new("cid", "u@x", &SecretString::from("nope"), LOGIN_URL)
            .expect_err("not a key");
        assert_eq!(e.kind(), ErrorKind::Config);
        let c = ClientCredentials::new("cid", SecretString::from("s3cret"), LOGIN_URL);
        assert!(!format!("{c:?}").contains("s3cret"));
        let r = RefreshToken::new("cid", None, SecretString::from("rt-secret"), LOGIN_URL);
        assert!(!format!("{r:?}").contains("rt-secret"));
        assert_eq!(
            default_audience("https://acme.my.salesforce.com"),
            LOGIN_URL
        );
        assert_eq!(
            default_audience("https://acme--dev.sandbox.my.salesforce.com/"),
            TEST_LOGIN_URL
        );
        assert_eq!(
            default_audience("https://test.salesforce.com/"),
            TEST_LOGIN_URL
        );
        assert_eq!(default_audience("http://127.0.0.1:9"), "http://127.0.0.1:9");
        assert_eq!(
            token_url("https://login.salesforce.com/"),
            "https://login.salesforce.com/services/oauth2/token"
        );
    }
}
