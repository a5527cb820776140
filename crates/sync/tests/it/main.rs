//! The sync engine end to end: the Close and HubSpot sandboxes (and, for activities, the
//! Salesforce one) over loopback HTTP, the connectors, and a real SQLite store.

mod activities;
mod deletes;
mod echoes;
mod leases;
mod policies;
mod propagation;
mod readback;
mod retries;
mod safety;

use std::sync::Arc;
use std::time::Duration;

use crmkit_close::{Client as CloseClient, CloseConnector};
use crmkit_core::http::ApiRequest;
use crmkit_core::{Connector, Crm, ObjectKind, RecordRef, SecretString};
use crmkit_hubspot::{Client as HubSpotClient, HubSpotConnector};
use crmkit_sandbox::close::{CloseSandbox, RunningClose};
use crmkit_sandbox::hubspot::{HubSpotSandbox, RunningHubSpot};
use crmkit_store::Store;
use crmkit_sync::config::Config;
use crmkit_sync::engine::Engine;
use serde_json::{Value, json};

/// Both sandboxes, a client for each, and a store.
pub struct World {
    /// The Close sandbox.
    pub close_sb: RunningClose,
    /// The HubSpot sandbox.
    pub hs_sb: RunningHubSpot,
    /// A Close client.
    pub close: CloseClient,
    /// A HubSpot client.
    pub hs: HubSpotClient,
    /// The connectors, markers configured.
    pub connectors: Vec<Arc<dyn Connector>>,
    /// The Close connector of `connectors`, to build variants of.
    pub close_conn: CloseConnector,
    /// The sync store (SQLite file in a temporary directory).
    pub store: Store,
    /// The PostgreSQL schema to drop, if the store is there.
    schema: Option<String>,
    /// Requests each sandbox had logged at the last [`World::reset_stats`].
    seen: std::sync::Mutex<(usize, usize)>,
    _dir: TempDir,
}

/// A directory removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The database a test's store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh schema of the test PostgreSQL (`CRMKIT_TEST_DATABASE_URL`, default
    /// `postgres://postgres@127.0.0.1:5432/test`), dropped by [`World::finish`].
    Postgres,
}

fn pg_base_url() -> String {
    std::env::var("CRMKIT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

async fn pg_admin(base: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(base).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable ({e}): start it or point CRMKIT_TEST_DATABASE_URL at one"
        )
    })
}

fn fast_retry() -> crmkit_core::http::retry::RetryPolicy {
    crmkit_core::http::retry::RetryPolicy {
        base_delay: Duration::from_millis(20),
        ..Default::default()
    }
}

impl World {
    /// The id in `crm` of the record linked to `r`.
    pub async fn linked_id(&self, r: &RecordRef, crm: Crm) -> String {
        self.store
            .link_by_record(r)
            .await
            .expect("store")
            .unwrap_or_else(|| panic!("{r} is linked"))
            .crm_id(crm)
            .unwrap_or_else(|| panic!("{r} has a {crm} record"))
            .to_string()
    }

    /// Empty sandboxes with marker fields, connectors and a fresh SQLite store.
    pub async fn new() -> World {
        Self::on(Db::Sqlite).await
    }

    /// Drops the PostgreSQL schema of a [`Db::Postgres`] world.
    pub async fn finish(self) {
        if let Some(schema) = &self.schema {
            self.store.close().await;
            let mut admin = pg_admin(&pg_base_url()).await;
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut admin)
                .await
                .expect("drop the test schema");
        }
    }

    /// Empty sandboxes with marker fields, connectors and a fresh store on `db`.
    pub async fn on(db: Db) -> World {
        let close_sb = CloseSandbox::builder()
            .leads(0)
            .start()
            .await
            .expect("Close sandbox starts");
        let hs_sb = HubSpotSandbox::builder()
            .burst_limit(1000, Duration::from_secs(10))
            .start()
            .await
            .expect("HubSpot sandbox starts");
        let close = CloseClient::builder()
            .api_key(SecretString::from("k".to_string()))
            .base_url(close_sb.api_url())
            .retry(fast_retry())
            .build()
            .expect("client");
        let hs = HubSpotClient::builder()
            .access_token(SecretString::from("t".to_string()))
            .base_url(hs_sb.base_url())
            .retry(fast_retry())
            .build()
            .expect("client");
        let mut close_conn = CloseConnector::new(close.clone());
        for (object, kind) in [
            ("lead", crmkit_core::ObjectKind::Company),
            ("contact", crmkit_core::ObjectKind::Person),
            ("opportunity", crmkit_core::ObjectKind::Deal),
        ] {
            let cf = close
                .raw(&ApiRequest::post(
                    format!("custom_field/{object}/"),
                    json!({"name": "crmkit marker", "type": "text"}),
                ))
                .await
                .expect("custom field");
            close_conn = close_conn.with_marker_field_for(kind, cf["id"].as_str().expect("id"));
        }
        // Marked creates go through the connector's own path: it creates its unique marker
        // property on first use and upserts by it (`idProperty`). Contacts keep theirs in
        // `crmkit_id` too: their default, `email`, would need the e-mail to be the marker.
        let hs_conn = HubSpotConnector::new(hs.clone())
            .with_marker_property_for(crmkit_core::ObjectKind::Person, "crmkit_id");
        let dir = std::env::temp_dir().join(format!(
            "crmkit-sync-it-{}-{}",
            std::process::id(),
            fastrand_id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (url, schema) = match db {
            Db::Sqlite => (format!("sqlite:{}", dir.join("sync.db").display()), None),
            Db::Postgres => {
                let base = pg_base_url();
                let schema = format!("crmkit_sync_test_{}", fastrand_id());
                let mut admin = pg_admin(&base).await;
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut admin)
                    .await
                    .expect("create the test schema");
                let sep = if base.contains('?') { '&' } else { '?' };
                (
                    format!("{base}{sep}options=-c%20search_path%3D{schema}"),
                    Some(schema),
                )
            }
        };
        let store = Store::open(&url).await.expect("store opens");
        World {
            close_sb,
            hs_sb,
            close,
            hs: hs.clone(),
            connectors: vec![Arc::new(close_conn.clone()), Arc::new(hs_conn)],
            close_conn,
            store,
            schema,
            seen: std::sync::Mutex::new((0, 0)),
            _dir: TempDir(dir),
        }
    }

    /// An engine on this world with `config`.
    pub fn engine(&self, config: Config) -> Engine {
        Engine::new(config, self.store.clone(), self.connectors.clone()).expect("engine")
    }

    /// Requests that wrote to either CRM since the stats were last reset.
    pub fn writes(&self) -> Vec<String> {
        let (skip_close, skip_hs) = *self.seen.lock().expect("lock");
        let close = self
            .close_sb
            .stats()
            .requests
            .into_iter()
            .skip(skip_close)
            .filter(|r| r.method != "GET" && !r.path.contains("data/search"));
        let close: Vec<String> = close
            .map(|r| format!("close {} {}", r.method, r.path))
            .collect();
        let hs = self
            .hs_sb
            .stats()
            .requests
            .into_iter()
            .skip(skip_hs)
            .filter(|r| {
                r.method != "GET"
                    && !r.path.ends_with("/search")
                    && !r.path.ends_with("/batch/read")
            });
        close
            .into_iter()
            .chain(hs.map(|r| format!("hubspot {} {}", r.method, r.path)))
            .collect()
    }

    /// Waits until changes made so far fall inside the next run's feeds: the HubSpot feed
    /// bounds a run by HubSpot's `Date` header, which has whole seconds, so a record changed
    /// in the current second is left for the run after.
    pub async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }

    /// Starts counting writes afresh.
    pub fn reset_stats(&self) {
        *self.seen.lock().expect("lock") = (
            self.close_sb.stats().requests.len(),
            self.hs_sb.stats().requests.len(),
        );
    }

    /// Creates a Close lead.
    pub async fn close_lead(&self, body: Value) -> String {
        let v = self
            .close
            .raw(&ApiRequest::post("lead/", body))
            .await
            .expect("lead created");
        v["id"].as_str().expect("id").to_string()
    }

    /// Updates a Close lead.
    pub async fn close_update(&self, path: &str, body: Value) {
        self.close
            .raw(&ApiRequest::put(path.to_string(), body))
            .await
            .expect("updated");
    }

    /// Reads a Close object.
    pub async fn close_get(&self, path: &str) -> Value {
        self.close
            .raw(&ApiRequest::get(path.to_string()))
            .await
            .expect("read")
    }

    /// Creates a HubSpot object of `object` (`companies`, `contacts`, `deals`).
    pub async fn hs_create(&self, object: &str, properties: Value) -> String {
        self.hs_create_linked(object, properties, None).await
    }

    /// Creates a HubSpot contact or deal associated with company `company` (the primary
    /// association, type 1 for contacts and 5 for deals).
    pub async fn hs_create_linked(
        &self,
        object: &str,
        properties: Value,
        company: Option<&str>,
    ) -> String {
        let mut body = json!({ "properties": properties });
        if let Some(id) = company {
            let type_id = if object == "deals" { 5 } else { 1 };
            body["associations"] = json!([{"to": {"id": id},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}]);
        }
        let v = self
            .hs
            .raw(&ApiRequest::post(format!("crm/v3/objects/{object}"), body))
            .await
            .expect("created");
        v["id"].as_str().expect("id").to_string()
    }

    /// Patches a HubSpot object.
    pub async fn hs_update(&self, object: &str, id: &str, properties: &[(&str, &str)]) {
        let props: crmkit_hubspot::Properties = properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.hs
            .objects(object)
            .update(id, &props)
            .await
            .expect("updated");
    }

    /// Every HubSpot object of `object` with `properties`.
    pub async fn hs_all(&self, object: &str, properties: &str) -> Vec<Value> {
        let v = self
            .hs
            .raw(&ApiRequest::get(format!(
                "crm/v3/objects/{object}?limit=100&properties={properties}"
            )))
            .await
            .expect("listed");
        v["results"].as_array().cloned().unwrap_or_default()
    }

    /// Every Close lead.
    pub async fn close_leads(&self) -> Vec<Value> {
        let v = self.close_get("lead/?_limit=100").await;
        v["data"].as_array().cloned().unwrap_or_default()
    }

    /// Whether Close lead `id` is among [`World::close_leads`]: to check a delete was sent,
    /// or held back.
    pub async fn close_has_lead(&self, id: &str) -> bool {
        self.close_leads().await.iter().any(|l| l["id"] == id)
    }

    /// Every intent of the store not settled yet, of any pair: to check a run left none
    /// open, or which it left.
    pub async fn unsettled_intents(&self) -> Vec<crmkit_store::Intent> {
        self.store.all_unsettled_intents().await.expect("store")
    }

    /// Takes lease `name` as `holder` for `ttl`, as another process would; it must be free.
    pub async fn hold_lease(&self, name: &str, holder: &str, ttl: Duration) -> crmkit_store::Lease {
        self.store
            .acquire_lease(name, holder, ttl)
            .await
            .expect("store")
            .expect("free")
    }
}

/// A config syncing Close and HubSpot companies and people (deals off unless a test turns
/// them on).
pub fn config() -> Config {
    let mut c = Config::new(vec![Crm::Close, Crm::HubSpot]);
    c.deal.enabled = false;
    c
}

fn fastrand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0))
}

/// A Close lead "Acme" linked to the HubSpot company the first run creates for it: the
/// Close and HubSpot ids.
pub async fn linked_acme(w: &World, engine: &Engine) -> (String, String) {
    let close = w
        .close_lead(json!({"name": "Acme", "url": "https://acme.com"}))
        .await;
    w.settle().await;
    let report = engine.run().await.expect("first run");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.created, 1, "{report:?}");
    let company = RecordRef::new(Crm::Close, ObjectKind::Company, close.clone());
    let hs = w.linked_id(&company, Crm::HubSpot).await;
    (close, hs)
}

/// A Close lead with contact Bob, synced to HubSpot by a first run of `engine`: the Close
/// contact id and the HubSpot contact id.
pub async fn linked_bob(w: &World, engine: &Engine) -> (String, String) {
    linked_contact(
        w,
        engine,
        serde_json::json!({"name": "Acme", "url": "https://acme.com",
        "contacts": [{"name": "Bob Stone", "emails": [{"email": "bob@acme.com"}]}]}),
    )
    .await
}

/// Close lead `lead` (its first contact the one to follow), synced to HubSpot by a first
/// run of `engine`: the Close contact id and the HubSpot contact id.
pub async fn linked_contact(
    w: &World,
    engine: &Engine,
    lead: serde_json::Value,
) -> (String, String) {
    let lead = w.close_lead(lead).await;
    let contact = w.close_get(&format!("lead/{lead}/")).await["contacts"][0]["id"]
        .as_str()
        .expect("contact id")
        .to_string();
    w.settle().await;
    let first = engine.run().await.expect("first run");
    assert!(first.errors.is_empty(), "{first:?}");
    let person = RecordRef::new(Crm::Close, ObjectKind::Person, contact.clone());
    let hs = w.linked_id(&person, Crm::HubSpot).await;
    (contact, hs)
}

/// The HubSpot company `id`'s `name` and `description`.
pub async fn hs_company(w: &World, id: &str) -> (Value, Value) {
    let v =
        w.hs.raw(&ApiRequest::get(format!(
            "crm/v3/objects/companies/{id}?properties=name,description"
        )))
        .await
        .expect("read");
    (
        v["properties"]["name"].clone(),
        v["properties"]["description"].clone(),
    )
}
