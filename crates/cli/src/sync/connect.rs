//! What a sync command works on: the store, the sync configuration from `crmkit.toml` and
//! one connector per configured CRM, with markers set up so creates are idempotent.

use std::path::Path;
use std::sync::Arc;

use crmkit_close::CloseConnector;
use crmkit_core::http::ApiRequest;
use crmkit_core::{Connector, Crm, Error, ObjectKind, Result};
use crmkit_hubspot::HubSpotConnector;
use crmkit_salesforce::SalesforceConnector;
use crmkit_store::Store;
use crmkit_sync::Config;
use serde_json::json;

use crate::config::Settings;
use crate::waits::Waits;

/// The database used when neither `--database-url` nor `DATABASE_URL` is given.
pub const DEFAULT_DATABASE: &str = "crmkit.db";

/// The Close custom field (on leads, contacts and opportunities) and the HubSpot property
/// (on companies, contacts and deals) that hold idempotency markers.
pub const MARKER_NAME: &str = "crmkit marker";
/// The HubSpot property holding markers (unique, so HubSpot finds records by it).
pub const MARKER_PROPERTY: &str = "crmkit_marker";
/// The Salesforce field holding markers on Account, Contact and Opportunity unless
/// `SF_MARKER_FIELD` names another: a custom text field marked External ID, so records are
/// found by it (https://help.salesforce.com/s/articleView?id=sf.custom_field_attributes.htm).
/// It is not created by crmkit: an admin adds it in Setup (the sandbox has it).
pub const SALESFORCE_MARKER_FIELD: &str = "External_Id__c";

/// The Salesforce marker field: `SF_MARKER_FIELD`, else [`SALESFORCE_MARKER_FIELD`].
pub fn salesforce_marker_field() -> String {
    std::env::var("SF_MARKER_FIELD")
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| SALESFORCE_MARKER_FIELD.to_string())
}

/// Opens the store at `url`, or `DATABASE_URL`, or [`DEFAULT_DATABASE`].
pub async fn open_store(url: Option<&str>) -> Result<Store> {
    let url = url
        .map(str::to_string)
        .or_else(|| {
            std::env::var("DATABASE_URL")
                .ok()
                .filter(|u| !u.trim().is_empty())
        })
        .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
    Store::open(&url)
        .await
        .map_err(|e| Error::config(format!("cannot open the sync database: {e}")))
}

/// The sync configuration: the `[sync]`, `[company]`, `[person]`, `[deal]` and `[activity]`
/// tables of `path` when it has a `[sync]` table, else every default over the CRMs with
/// credentials.
pub fn load_config(path: &Path, settings: &Settings) -> Result<Config> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(Error::config(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    if let Some(text) = text {
        let table: toml::Table = toml::from_str(&text)
            .map_err(|e| Error::config(format!("{}: {}", path.display(), e.message())))?;
        if table.contains_key("sync") {
            // The credentials tables ([close], [hubspot]) share the file; the sync config
            // refuses keys it does not know, so only its own tables are handed over.
            let own: toml::Table = table
                .into_iter()
                .filter(|(k, _)| matches!(k.as_str(), "sync" | "company" | "person" | "deal"))
                .collect();
            let text = toml::to_string(&own)
                .map_err(|e| Error::config(format!("{}: {e}", path.display())))?;
            return Config::from_toml(&text)
                .map_err(|e| Error::config(format!("{}: {e}", path.display())));
        }
    }
    let crms = available(settings);
    if crms.len() < 2 {
        return Err(Error::config(
            "sync needs two CRMs: set two of CLOSE_API_KEY, HUBSPOT_ACCESS_TOKEN and the SF_* \
             variables (with CLOSE_BASE_URL / HUBSPOT_BASE_URL / SF_INSTANCE_URL for a \
             sandbox), or list them under [sync] crms in crmkit.toml (`crmkit init` writes one)",
        ));
    }
    Ok(Config::new(crms))
}

/// The CRMs whose credentials are configured.
pub fn available(settings: &Settings) -> Vec<Crm> {
    let mut crms = Vec::new();
    if settings.close.api_key.is_some() {
        crms.push(Crm::Close);
    }
    if settings.hubspot.access_token.is_some() {
        crms.push(Crm::HubSpot);
    }
    if settings.salesforce_configured() {
        crms.push(Crm::Salesforce);
    }
    crms
}

/// A connector for each of `crms`, its client reporting waits to `waits`.
pub async fn connectors(
    settings: &Settings,
    crms: &[Crm],
    waits: &Waits,
) -> Result<Vec<Arc<dyn Connector>>> {
    let mut out: Vec<Arc<dyn Connector>> = Vec::new();
    for crm in crms {
        match crm {
            Crm::Close => {
                let client = settings
                    .close_builder()?
                    .observer(waits.observer())
                    .build()?;
                let mut conn = CloseConnector::new(client.clone());
                for (object, kind) in [
                    ("lead", ObjectKind::Company),
                    ("contact", ObjectKind::Person),
                    ("opportunity", ObjectKind::Deal),
                ] {
                    let id = close_marker_field(&client, object).await?;
                    conn = conn.with_marker_field_for(kind, &id);
                }
                out.push(Arc::new(conn));
            }
            Crm::HubSpot => {
                let client = settings
                    .hubspot_builder()?
                    .observer(waits.observer())
                    .build()?;
                let conn = HubSpotConnector::new(client)
                    .with_marker_property(MARKER_PROPERTY)
                    .with_marker_property_for(ObjectKind::Person, MARKER_PROPERTY);
                out.push(Arc::new(conn));
            }
            Crm::Salesforce => {
                let client = settings
                    .salesforce_builder()?
                    .observer(waits.observer())
                    .build()?;
                let conn =
                    SalesforceConnector::new(client).with_marker_field(&salesforce_marker_field());
                out.push(Arc::new(conn));
            }
        }
    }
    Ok(out)
}

/// The id of the Close text custom field named [`MARKER_NAME`] on `object`, created when
/// missing (https://developer.close.com/resources/custom-fields/). A failed creation is
/// tried again after listing again, so a creation that happened but whose answer was lost
/// is found instead of made twice.
async fn close_marker_field(client: &crmkit_close::Client, object: &str) -> Result<String> {
    let mut attempt = 0;
    loop {
        match close_marker_field_once(client, object).await {
            Err(e) if e.is_retryable() && attempt < 4 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(250 << attempt)).await;
            }
            other => return other,
        }
    }
}

async fn close_marker_field_once(client: &crmkit_close::Client, object: &str) -> Result<String> {
    let listed = client
        .raw(&ApiRequest::get(format!("custom_field/{object}/")))
        .await?;
    if let Some(id) = listed["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["name"].as_str() == Some(MARKER_NAME))
        .and_then(|f| f["id"].as_str())
    {
        return Ok(id.to_string());
    }
    let made = client
        .raw(&ApiRequest::post(
            format!("custom_field/{object}/"),
            json!({"name": MARKER_NAME, "type": "text"}),
        ))
        .await?;
    made["id"].as_str().map(str::to_string).ok_or_else(|| {
        Error::bad_response(format!(
            "Close answered the creation of the {object} custom field {MARKER_NAME:?} without an id"
        ))
    })
}

/// Frees the sync leases of `crms` ([`crmkit_sync::engine::lease_names`]: `sync-crm:*` of
/// each CRM, the canonical name, and the name of every other order of the CRMs and of every
/// other set sharing one of them, which an older crmkit used and a run holds too) whose
/// holder is a `crmkit sync` process of this machine that no longer runs (killed, so it never
/// released them): on SQLite, a file only this machine's processes use, always; on
/// PostgreSQL only with `force`, since a process of another machine may hold one under a
/// process id that is free here. A lease is released by its fencing token, so one taken
/// over meanwhile is left alone. `freeing` is the command doing it, for the note printed.
pub async fn free_dead_lease(
    store: &Store,
    crms: &[Crm],
    force: bool,
    freeing: Freeing,
) -> Result<()> {
    for name in crmkit_sync::engine::lease_names(crms) {
        free_dead(store, &name, force, freeing).await?;
    }
    Ok(())
}

/// The command freeing a killed sync's leases ([`free_dead_lease`]): what happens to the
/// writes that sync left unsettled depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freeing {
    /// A sync (or migrate) run, which reconciles them before anything else.
    Sync,
    /// `crmkit sync retry reset`, which leaves them to the next sync.
    Reset,
}

/// Frees lease `name` when its holder is a dead `crmkit sync` process (see
/// [`free_dead_lease`]).
async fn free_dead(store: &Store, name: &str, force: bool, freeing: Freeing) -> Result<()> {
    let lease = store
        .lease(name)
        .await
        .map_err(|e| Error::config(format!("sync store: {e}")))?;
    let Some(lease) = lease else { return Ok(()) };
    let pid = lease
        .holder
        .strip_prefix("crmkit-sync-")
        .and_then(|rest| rest.split('-').next())
        .and_then(|p| p.parse::<u32>().ok());
    let Some(pid) = pid else { return Ok(()) };
    let local = store.backend() == crmkit_store::Backend::Sqlite || force;
    let can_tell = Path::new("/proc/self").exists();
    if !local || !can_tell || pid == std::process::id() {
        return Ok(());
    }
    if Path::new(&format!("/proc/{pid}")).exists() {
        return Ok(());
    }
    let freed = store
        .release_lease(&lease)
        .await
        .map_err(|e| Error::config(format!("sync store: {e}")))?;
    if freed {
        let then = match freeing {
            Freeing::Sync => "its unsettled writes are reconciled now",
            Freeing::Reset => "the next crmkit sync reconciles its unsettled writes",
        };
        eprintln!(
            "note: freed the lease {name:?} of an interrupted sync (process {pid} no longer runs); {then}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_killed_run_leaves_the_leases_of_every_order_of_its_crms_free() {
        let store = Store::open("sqlite::memory:").await.expect("store");
        // No process has an id this high (Linux caps them at 2^22).
        let dead = "crmkit-sync-4000000000-1";
        // Process 1 (init) always runs.
        let alive = "crmkit-sync-1-1";
        let ttl = Duration::from_secs(600);
        for (name, holder) in [
            ("sync:close-hubspot", dead),
            ("sync:hubspot-close", dead),
            ("sync-crm:close", dead),
            ("sync-crm:hubspot", dead),
            ("sync-crm:salesforce", dead),
            ("sync:close-salesforce", alive),
        ] {
            store
                .acquire_lease(name, holder, ttl)
                .await
                .expect("store")
                .expect("free");
        }
        // Configured in sorted order, the name of the other order is freed too (a run holds
        // both, whatever its config's order), and so is each of its CRMs' own lease.
        free_dead_lease(&store, &[Crm::Close, Crm::HubSpot], false, Freeing::Sync)
            .await
            .expect("freed");
        for name in [
            "sync:close-hubspot",
            "sync:hubspot-close",
            "sync-crm:close",
            "sync-crm:hubspot",
        ] {
            assert_eq!(store.lease(name).await.expect("store"), None, "{name}");
        }
        // Salesforce is no CRM of this run: its lease is left to a run that holds it.
        assert!(
            store
                .lease("sync-crm:salesforce")
                .await
                .expect("store")
                .is_some(),
            "another CRM's lease is left alone"
        );
        // `sync:close-salesforce` is among the names a `[close, hubspot]` run holds (a set
        // sharing Close), so the same call judged it: a live process keeps its lease.
        assert!(
            store
                .lease("sync:close-salesforce")
                .await
                .expect("store")
                .is_some(),
            "a live process keeps its lease"
        );
    }
}
