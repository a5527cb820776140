//! Settings from `crmkit.toml`, the environment and a `.env` file (environment wins).

use std::path::Path;

use crmkit_core::{Error, Result, SecretString};
use serde::Deserialize;

/// The `[close]` table of `crmkit.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseSettings {
    /// API key (prefer `CLOSE_API_KEY` in the environment).
    pub api_key: Option<SecretString>,
    /// API root, for a sandbox.
    pub base_url: Option<String>,
    /// Webhook signature key (hex).
    pub webhook_secret: Option<SecretString>,
}

/// The `[hubspot]` table of `crmkit.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSpotSettings {
    /// Private-app or OAuth access token (prefer `HUBSPOT_ACCESS_TOKEN` in the environment).
    pub access_token: Option<SecretString>,
    /// Server root, for a sandbox.
    pub base_url: Option<String>,
}

/// The `[salesforce]` table of `crmkit.toml`; each key stands for the `SF_` variable of
/// the same name in capitals (`client_id` for `SF_CLIENT_ID`), which wins over it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSettings {
    /// The connected app's consumer key.
    pub client_id: Option<String>,
    /// The user the JWT bearer flow signs in as.
    pub username: Option<String>,
    /// The PEM RSA key whose certificate is uploaded to the connected app.
    pub private_key_path: Option<String>,
    /// The org's My Domain URL, or a sandbox's.
    pub instance_url: Option<String>,
    /// The login host (default `https://login.salesforce.com`).
    pub login_url: Option<String>,
    /// The REST API version, such as `59.0`.
    pub api_version: Option<String>,
    /// The connected app's consumer secret (refresh-token and client-credentials flows).
    pub client_secret: Option<SecretString>,
    /// A refresh token (prefer `SF_REFRESH_TOKEN` in the environment).
    pub refresh_token: Option<SecretString>,
    /// An access token, used as is (prefer `SF_ACCESS_TOKEN` in the environment).
    pub access_token: Option<SecretString>,
}

/// The whole `crmkit.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    // The sync tables, read and checked by the sync commands on their own
    // (`crmkit_sync::Config`); named here only so they are not refused as unknown.
    #[serde(default, rename = "sync")]
    _sync: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "company")]
    _company: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "person")]
    _person: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "deal")]
    _deal: Option<serde::de::IgnoredAny>,
    /// Close settings.
    #[serde(default)]
    pub close: CloseSettings,
    /// HubSpot settings.
    #[serde(default)]
    pub hubspot: HubSpotSettings,
    /// Salesforce settings.
    #[serde(default)]
    pub salesforce: SalesforceSettings,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Settings {
    /// Loads `.env` (if present), then `path` (if present), then the environment on top.
    pub fn load(path: &Path) -> Result<Settings> {
        let _ = dotenvy::dotenv();
        let mut s = match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str::<Settings>(&text)
                .map_err(|e| Error::config(format!("{}: {}", path.display(), e.message())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
            Err(e) => {
                return Err(Error::config(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        if let Some(k) = env("CLOSE_API_KEY") {
            s.close.api_key = Some(SecretString::from(k));
        }
        if let Some(u) = env("CLOSE_BASE_URL") {
            s.close.base_url = Some(u);
        }
        if let Some(w) = env("CLOSE_WEBHOOK_SECRET") {
            s.close.webhook_secret = Some(SecretString::from(w));
        }
        if let Some(t) = env("HUBSPOT_ACCESS_TOKEN") {
            s.hubspot.access_token = Some(SecretString::from(t.trim().to_string()));
        }
        if let Some(u) = env("HUBSPOT_BASE_URL") {
            s.hubspot.base_url = Some(u);
        }
        Ok(s)
    }

    /// A Close client from these settings.
    pub fn close_client(&self) -> Result<crmkit_close::Client> {
        self.close_builder()?.build()
    }

    /// A Close client builder from these settings, for adding to before building.
    pub fn close_builder(&self) -> Result<crmkit_close::ClientBuilder> {
        let key = self.close.api_key.clone().ok_or_else(|| {
            Error::config("no Close API key: set CLOSE_API_KEY (environment or .env) or [close] api_key in crmkit.toml")
        })?;
        let mut b = crmkit_close::Client::builder().api_key(key);
        if let Some(u) = &self.close.base_url {
            b = b.base_url(u.clone());
        }
        Ok(b)
    }

    /// The value of a Salesforce variable (`SF_CLIENT_ID`, `SF_USERNAME`, `SF_PRIVATE_KEY_PATH`,
    /// `SF_INSTANCE_URL`, `SF_LOGIN_URL`, `SF_API_VERSION`, `SF_CLIENT_SECRET`,
    /// `SF_REFRESH_TOKEN`, `SF_ACCESS_TOKEN`): the environment's,
    /// else the `[salesforce]` table's.
    pub fn salesforce_var(&self, name: &str) -> Option<String> {
        use crmkit_core::ExposeSecret;
        if let Some(v) = env(name) {
            return Some(v.trim().to_string());
        }
        let sf = &self.salesforce;
        let secret = |s: &Option<SecretString>| s.as_ref().map(|s| s.expose_secret().to_string());
        let v = match name {
            "SF_CLIENT_ID" => sf.client_id.clone(),
            "SF_USERNAME" => sf.username.clone(),
            "SF_PRIVATE_KEY_PATH" => sf.private_key_path.clone(),
            "SF_INSTANCE_URL" => sf.instance_url.clone(),
            "SF_LOGIN_URL" => sf.login_url.clone(),
            "SF_API_VERSION" => sf.api_version.clone(),
            "SF_CLIENT_SECRET" => secret(&sf.client_secret),
            "SF_REFRESH_TOKEN" => secret(&sf.refresh_token),
            "SF_ACCESS_TOKEN" => secret(&sf.access_token),
            _ => None,
        };
        v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    /// Whether any Salesforce credential is configured at all.
    pub fn salesforce_configured(&self) -> bool {
        ["SF_CLIENT_ID", "SF_ACCESS_TOKEN"]
            .iter()
            .any(|n| self.salesforce_var(n).is_some())
    }

    /// A Salesforce client from these settings.
    pub fn salesforce_client(&self) -> Result<crmkit_salesforce::Client> {
        self.salesforce_builder()?.build()
    }

    /// A Salesforce client builder from these settings, for adding to before building: the
    /// sign-in flow the variables describe (see `crmkit_salesforce::Client::from_env`),
    /// pointed at `SF_LOGIN_URL` and `SF_INSTANCE_URL`.
    pub fn salesforce_builder(&self) -> Result<crmkit_salesforce::ClientBuilder> {
        if !self.salesforce_configured() {
            return Err(Error::config(
                "no Salesforce credentials: set SF_CLIENT_ID, SF_USERNAME and SF_PRIVATE_KEY_PATH (JWT bearer), or SF_CLIENT_ID with SF_CLIENT_SECRET, or SF_ACCESS_TOKEN with SF_INSTANCE_URL (environment, .env or [salesforce] in crmkit.toml)",
            ));
        }
        crmkit_salesforce::ClientBuilder::from_vars(|name| self.salesforce_var(name))
    }

    /// A HubSpot client builder from these settings, for adding to before building.
    pub fn hubspot_builder(&self) -> Result<crmkit_hubspot::ClientBuilder> {
        let token = self.hubspot.access_token.clone().ok_or_else(|| {
            Error::config("no HubSpot access token: set HUBSPOT_ACCESS_TOKEN (environment or .env) or [hubspot] access_token in crmkit.toml")
        })?;
        let mut b = crmkit_hubspot::Client::builder().access_token(token);
        if let Some(u) = &self.hubspot.base_url {
            b = b.base_url(u.clone());
        }
        Ok(b)
    }
}
