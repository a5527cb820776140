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
