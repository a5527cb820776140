//! Links: one row per record known in several CRMs, holding each CRM's id and what was last
//! synced: a hash per side and, per side, the mapped field values last synced (JSON), so
//! a sync can tell a field changed or cleared on one side from one left alone.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crmkit_core::{Crm, ObjectKind, RecordRef};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::error::{db, is_unique_violation, violation_text};
use crate::store::{Reader, crm_str, json_text, new_id, now_ms, object_str, ops, to_ms};
use crate::{Error, LinkId, Result};

/// Every CRM, in column order.
const CRMS: [Crm; 3] = [Crm::Close, Crm::HubSpot, Crm::Salesforce];

/// The id column of `crm`.
fn id_column(crm: Crm) -> &'static str {
    match crm {
        Crm::Close => "close_id",
        Crm::HubSpot => "hubspot_id",
        Crm::Salesforce => "salesforce_id",
    }
}

/// One record as known across CRMs (a row of `crm_sync_records`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Link {
    /// The link's own id.
    pub id: LinkId,
    /// What kind of record it links.
    pub entity: ObjectKind,
    /// The record's id in Close, if linked there.
    pub close_id: Option<String>,
    /// The record's id in HubSpot, if linked there.
    pub hubspot_id: Option<String>,
    /// The record's id in Salesforce, if linked there.
    pub salesforce_id: Option<String>,
    /// The e-mail address used to match people.
    pub email: Option<String>,
    /// The web domain used to match companies.
    pub domain: Option<String>,
    /// The company name used to match companies.
    pub company_name: Option<String>,
    /// Hash of the record as last seen in Close.
    pub close_hash: Option<String>,
    /// Hash of the record as last seen in HubSpot.
    pub hubspot_hash: Option<String>,
    /// Hash of the record as last seen in Salesforce.
    pub salesforce_hash: Option<String>,
    /// The mapped field values (a JSON object) of the record as last synced in Close.
    pub close_fields: Option<serde_json::Value>,
    /// The mapped field values (a JSON object) of the record as last synced in HubSpot.
    pub hubspot_fields: Option<serde_json::Value>,
    /// The mapped field values (a JSON object) of the record as last synced in Salesforce.
    pub salesforce_fields: Option<serde_json::Value>,
    /// Hash of the unified record as last synced.
    pub sync_hash: Option<String>,
    /// The CRM the last sync took the record from.
    pub sync_source: Option<Crm>,
    /// When the record was last synced.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Bumped by every write; an update names the version it read (optimistic concurrency).
    pub version: i64,
    /// When the link was created.
    pub created_at: DateTime<Utc>,
    /// When the link was last written.
    pub updated_at: DateTime<Utc>,
}

impl Link {
    /// The record's id in `crm`.
    pub fn crm_id(&self, crm: Crm) -> Option<&str> {
        match crm {
            Crm::Close => self.close_id.as_deref(),
            Crm::HubSpot => self.hubspot_id.as_deref(),
            Crm::Salesforce => self.salesforce_id.as_deref(),
        }
    }

    /// The hash of the record as last seen in `crm`.
    pub fn hash(&self, crm: Crm) -> Option<&str> {
        match crm {
            Crm::Close => self.close_hash.as_deref(),
            Crm::HubSpot => self.hubspot_hash.as_deref(),
            Crm::Salesforce => self.salesforce_hash.as_deref(),
        }
    }

    /// The mapped field values of the record as last synced in `crm` (a JSON object), if
    /// stored: the base against which a sync tells which fields changed on that side.
    pub fn fields(&self, crm: Crm) -> Option<&serde_json::Value> {
        match crm {
            Crm::Close => self.close_fields.as_ref(),
            Crm::HubSpot => self.hubspot_fields.as_ref(),
            Crm::Salesforce => self.salesforce_fields.as_ref(),
        }
    }

    fn fields_mut(&mut self, crm: Crm) -> &mut Option<serde_json::Value> {
        match crm {
            Crm::Close => &mut self.close_fields,
            Crm::HubSpot => &mut self.hubspot_fields,
            Crm::Salesforce => &mut self.salesforce_fields,
        }
    }

    /// The record in `crm`, if linked there.
    pub fn record(&self, crm: Crm) -> Option<RecordRef> {
        self.crm_id(crm)
            .map(|id| RecordRef::new(crm, self.entity, id))
    }

    fn crm_id_mut(&mut self, crm: Crm) -> &mut Option<String> {
        match crm {
            Crm::Close => &mut self.close_id,
            Crm::HubSpot => &mut self.hubspot_id,
            Crm::Salesforce => &mut self.salesforce_id,
        }
    }

    fn hash_mut(&mut self, crm: Crm) -> &mut Option<String> {
        match crm {
            Crm::Close => &mut self.close_hash,
            Crm::HubSpot => &mut self.hubspot_hash,
            Crm::Salesforce => &mut self.salesforce_hash,
        }
    }

    fn from_row(row: &AnyRow) -> Result<Link> {
        let r = Reader::new(row, "crm_sync_records", "id");
        Ok(Link {
            id: LinkId::new(r.id()),
            entity: r.object("entity_type")?,
            close_id: r.opt_text("close_id")?,
            hubspot_id: r.opt_text("hubspot_id")?,
            salesforce_id: r.opt_text("salesforce_id")?,
            email: r.opt_text("email")?,
            domain: r.opt_text("domain")?,
            company_name: r.opt_text("company_name")?,
            close_hash: r.opt_text("close_hash")?,
            hubspot_hash: r.opt_text("hubspot_hash")?,
            salesforce_hash: r.opt_text("salesforce_hash")?,
            close_fields: r.opt_json("close_fields")?,
            hubspot_fields: r.opt_json("hubspot_fields")?,
            salesforce_fields: r.opt_json("salesforce_fields")?,
            sync_hash: r.opt_text("sync_hash")?,
            sync_source: r.opt_crm("sync_source")?,
            last_synced_at: r.opt_time("last_synced_at")?,
            version: r.int("version")?,
            created_at: r.time("created_at")?,
            updated_at: r.time("updated_at")?,
        })
    }
}

/// A link to create, or to merge into an existing one ([`Store::upsert_link`](crate::Store::upsert_link)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    entity: ObjectKind,
    ids: BTreeMap<Crm, String>,
    email: Option<String>,
    domain: Option<String>,
    company_name: Option<String>,
}

impl NewLink {
    /// A link of records of kind `entity`; give it at least one CRM id.
    pub fn new(entity: ObjectKind) -> Self {
        Self {
            entity,
            ids: BTreeMap::new(),
            email: None,
            domain: None,
            company_name: None,
        }
    }

    /// A link holding `record` (its kind becomes the link's kind).
    pub fn from_record(record: &RecordRef) -> Self {
        Self::new(record.object).crm_id(record.crm, record.id.clone())
    }

    /// Sets the record's id in `crm`.
    pub fn crm_id(mut self, crm: Crm, id: impl Into<String>) -> Self {
        self.ids.insert(crm, id.into());
        self
    }

    /// Sets the matching e-mail address.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets the matching web domain.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Sets the matching company name.
    pub fn company_name(mut self, name: impl Into<String>) -> Self {
        self.company_name = Some(name.into());
        self
    }
}

/// A patch to a link: only what is set here changes. `Some(None)` clears a field.
///
/// Changing or clearing a CRM id also clears that side's hash and field values (they
/// described the old record) unless the same update sets them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkUpdate {
    ids: BTreeMap<Crm, Option<String>>,
    hashes: BTreeMap<Crm, Option<String>>,
    fields: BTreeMap<Crm, Option<serde_json::Value>>,
    email: Option<Option<String>>,
    domain: Option<Option<String>>,
    company_name: Option<Option<String>>,
    sync_hash: Option<Option<String>>,
    sync_source: Option<Option<Crm>>,
    last_synced_at: Option<Option<DateTime<Utc>>>,
}

impl LinkUpdate {
    /// An update that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (`Some`) or clears (`None`) the record's id in `crm`.
    pub fn crm_id(mut self, crm: Crm, id: Option<String>) -> Self {
        self.ids.insert(crm, id);
        self
    }

    /// Sets or clears the hash of the record as last seen in `crm`.
    pub fn hash(mut self, crm: Crm, hash: Option<String>) -> Self {
        self.hashes.insert(crm, hash);
        self
    }

    /// Sets or clears the mapped field values (a JSON object) of the record as last synced
    /// in `crm`.
    pub fn fields(mut self, crm: Crm, fields: Option<serde_json::Value>) -> Self {
        self.fields.insert(crm, fields);
        self
    }

    /// Sets or clears the matching e-mail address.
    pub fn email(mut self, email: Option<String>) -> Self {
        self.email = Some(email);
        self
    }

    /// Sets or clears the matching web domain.
    pub fn domain(mut self, domain: Option<String>) -> Self {
        self.domain = Some(domain);
        self
    }

    /// Sets or clears the matching company name.
    pub fn company_name(mut self, name: Option<String>) -> Self {
        self.company_name = Some(name);
        self
    }

    /// Records a completed sync: the unified record's hash, the CRM it came from and when.
    pub fn synced(mut self, sync_hash: impl Into<String>, source: Crm, at: DateTime<Utc>) -> Self {
        self.sync_hash = Some(Some(sync_hash.into()));
        self.sync_source = Some(Some(source));
        self.last_synced_at = Some(Some(at));
        self
    }

    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `link` with this update applied.
    fn apply(&self, link: &Link) -> Link {
        let mut out = link.clone();
        for (&crm, id) in &self.ids {
            if out.crm_id(crm) != id.as_deref() {
                *out.crm_id_mut(crm) = id.clone();
                *out.hash_mut(crm) = None;
                *out.fields_mut(crm) = None;
            }
        }
        for (&crm, hash) in &self.hashes {
            *out.hash_mut(crm) = hash.clone();
        }
        for (&crm, fields) in &self.fields {
            *out.fields_mut(crm) = fields.clone();
        }
        if let Some(v) = &self.email {
            out.email = v.clone();
        }
        if let Some(v) = &self.domain {
            out.domain = v.clone();
        }
        if let Some(v) = &self.company_name {
            out.company_name = v.clone();
        }
        if let Some(v) = &self.sync_hash {
            out.sync_hash = v.clone();
        }
        if let Some(v) = self.sync_source {
            out.sync_source = v;
        }
        if let Some(v) = self.last_synced_at {
            out.last_synced_at = v;
        }
        out
    }
}

/// What [`Store::upsert_link`](crate::Store::upsert_link) did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Upserted {
    /// The link as stored now.
    pub link: Link,
    /// Whether it was created (rather than merged into an existing link).
    pub created: bool,
}

const SELECT: &str = "SELECT id, entity_type, close_id, hubspot_id, salesforce_id, email, domain, \
    company_name, close_hash, hubspot_hash, salesforce_hash, close_fields, hubspot_fields, \
    salesforce_fields, sync_hash, sync_source, last_synced_at, version, created_at, updated_at FROM crm_sync_records";

ops! {
    /// The link with this id.
    read fn link(id: &LinkId) -> Option<Link> = get;
    /// The link holding `record` (its CRM id for its kind).
    read fn link_by_record(record: &RecordRef) -> Option<Link> = by_record;
    /// The link holding each of `records`, in the order of `records`: what
    /// [`Store::link_by_record`](crate::Store::link_by_record) answers for each, in one
    /// query per CRM and kind for up to [`LOOKUP_CHUNK`] records.
    read fn links_by_records(records: &[RecordRef]) -> Vec<Option<Link>> = by_records;
    /// The links of kind `entity` whose e-mail address is `email` (for matching).
    read fn links_by_email(entity: ObjectKind, email: &str) -> Vec<Link> = by_email;
    /// The links of kind `entity` whose domain is `domain` (for matching).
    read fn links_by_domain(entity: ObjectKind, domain: &str) -> Vec<Link> = by_domain;
    /// Links of kind `entity` in id order, after `after` (a page of at most `limit`).
    read fn list_links(entity: ObjectKind, after: Option<&LinkId>, limit: u32) -> Vec<Link> = list;
    /// Creates a link. Fails with [`Error::CrmIdTaken`] (naming both links) if another link
    /// of the same kind holds one of its CRM ids, and with [`Error::InvalidInput`] if it has
    /// no CRM id.
    write fn insert_link(new: &NewLink) -> Link = insert;
    /// Applies `update` to `link` if the stored link is still at `link.version`; returns the
    /// new link. A stale version is [`Error::VersionConflict`]; nothing is written.
    write fn update_link(link: &Link, update: &LinkUpdate) -> Link = update_op;
    /// Sets the record's id in `crm` on `link` (version-checked, see
    /// [`Store::update_link`](crate::Store::update_link)).
    write fn set_crm_id(link: &Link, crm: Crm, id: &str) -> Link = set_crm_id_op;
    /// Clears the record's id and hash in `crm` on `link` (version-checked). A link must keep
    /// at least one CRM id: delete it instead.
    write fn unlink(link: &Link, crm: Crm) -> Link = unlink_op;
    /// Sets the hash of the record as last seen in `crm` (version-checked).
    write fn set_hash(link: &Link, crm: Crm, hash: &str) -> Link = set_hash_op;
    /// Deletes `link` if it is still at `link.version`.
    write fn delete_link(link: &Link) -> () = delete;
}

/// How many times [`Store::upsert_link`](crate::Store::upsert_link) runs an upsert that
/// another writer got in the way of.
pub const UPSERT_ATTEMPTS: u32 = 10;

impl crate::Tx {
    /// Creates the link, or merges `new` into the one link holding any of its CRM ids: ids
    /// the link lacks are added and the matching attributes given replace the stored ones.
    /// Fails with [`Error::AmbiguousLinks`] if its ids belong to two links and with
    /// [`Error::CrmIdMismatch`] if the link holds a different id for a side. If another
    /// process creates a link with one of the same ids at the same instant, this fails with
    /// [`Error::CrmIdTaken`] (only this upsert is undone; the transaction stays usable);
    /// running the upsert again merges into that link.
    pub async fn upsert_link(&mut self, new: &NewLink) -> Result<Upserted> {
        self.begin_op().await?;
        let out = upsert(self.conn(), new).await;
        self.end_op(out).await
    }
}

impl crate::Store {
    /// Creates the link, or merges `new` into the one link holding any of its CRM ids: ids
    /// the link lacks are added and the matching attributes given replace the stored ones.
    /// Fails with [`Error::AmbiguousLinks`] if its ids belong to two links and with
    /// [`Error::CrmIdMismatch`] if the link holds a different id for a side.
    ///
    /// An upsert decides nothing from what it read, so when another writer gets in between
    /// (it created a link with one of the same ids at the same instant, or changed the link
    /// being merged into), or the database reports a deadlock, a serialization failure or
    /// a busy lock ([`Error::is_retryable`]), the upsert is simply run again on what is
    /// stored now, up to [`UPSERT_ATTEMPTS`] times in all.
    pub async fn upsert_link(&self, new: &NewLink) -> Result<Upserted> {
        let mut attempt = 1;
        loop {
            let mut tx = self.begin().await?;
            let outcome = match tx.upsert_link(new).await {
                Ok(out) => tx.commit().await.map(|()| out),
                Err(e) => Err(e),
            };
            match outcome {
                Err(e) if e.is_retryable() && attempt < UPSERT_ATTEMPTS => {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

pub(crate) async fn get(conn: &mut AnyConnection, id: &LinkId) -> Result<Option<Link>> {
    let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
        .map_err(db(format!("reading link {id}")))?;
    row.as_ref().map(Link::from_row).transpose()
}

/// The link of kind `entity` holding `id` in `crm`.
async fn holder(
    conn: &mut AnyConnection,
    entity: ObjectKind,
    crm: Crm,
    id: &str,
) -> Result<Option<Link>> {
    find_holder(conn, entity, crm, id, "").await
}

/// Like [`holder`], and on PostgreSQL locks the row until the transaction ends, so that
/// concurrent upserts of one record take turns instead of failing each other's version
/// check. (SQLite transactions here already take the write lock when they begin.)
async fn holder_for_update(
    conn: &mut AnyConnection,
    entity: ObjectKind,
    crm: Crm,
    id: &str,
) -> Result<Option<Link>> {
    let lock = if conn.backend_name() == "PostgreSQL" {
        " FOR UPDATE"
    } else {
        ""
    };
    find_holder(conn, entity, crm, id, lock).await
}

async fn find_holder(
    conn: &mut AnyConnection,
    entity: ObjectKind,
    crm: Crm,
    id: &str,
    lock: &str,
) -> Result<Option<Link>> {
    let row = sqlx::query(&format!(
        "{SELECT} WHERE entity_type = $1 AND {} = $2{lock}",
        id_column(crm)
    ))
    .bind(object_str(entity))
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(db(format!("looking up the link of {crm} {entity} {id}")))?;
    row.as_ref().map(Link::from_row).transpose()
}

async fn by_record(conn: &mut AnyConnection, record: &RecordRef) -> Result<Option<Link>> {
    holder(conn, record.object, record.crm, &record.id).await
}

/// Records per query of [`Store::links_by_records`](crate::Store::links_by_records): far
/// below SQLite's bound-parameter limit (999 before SQLite 3.32).
pub const LOOKUP_CHUNK: usize = 500;

async fn by_records(conn: &mut AnyConnection, records: &[RecordRef]) -> Result<Vec<Option<Link>>> {
    let mut out: Vec<Option<Link>> = vec![None; records.len()];
    let mut by_source: BTreeMap<(ObjectKind, Crm), Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        by_source.entry((r.object, r.crm)).or_default().push(i);
    }
    for ((entity, crm), at) in by_source {
        for chunk in at.chunks(LOOKUP_CHUNK) {
            let params: Vec<String> = (0..chunk.len()).map(|n| format!("${}", n + 2)).collect();
            let sql = format!(
                "{SELECT} WHERE entity_type = $1 AND {} IN ({})",
                id_column(crm),
                params.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(object_str(entity));
            for &i in chunk {
                query = query.bind(records[i].id.as_str());
            }
            let rows = query.fetch_all(&mut *conn).await.map_err(db(format!(
                "looking up the links of {} {crm} {entity} records",
                chunk.len()
            )))?;
            let mut found: BTreeMap<String, Link> = BTreeMap::new();
            for row in &rows {
                let link = Link::from_row(row)?;
                if let Some(id) = link.crm_id(crm) {
                    found.insert(id.to_string(), link);
                }
            }
            for &i in chunk {
                out[i] = found.get(&records[i].id).cloned();
            }
        }
    }
    Ok(out)
}

async fn by_column(
    conn: &mut AnyConnection,
    entity: ObjectKind,
    column: &'static str,
    value: &str,
) -> Result<Vec<Link>> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE entity_type = $1 AND {column} = $2 ORDER BY id"
    ))
    .bind(object_str(entity))
    .bind(value)
    .fetch_all(conn)
    .await
    .map_err(db(format!(
        "looking up {entity} links by {column} {value:?}"
    )))?;
    rows.iter().map(Link::from_row).collect()
}

async fn by_email(conn: &mut AnyConnection, entity: ObjectKind, email: &str) -> Result<Vec<Link>> {
    by_column(conn, entity, "email", email).await
}

async fn by_domain(
    conn: &mut AnyConnection,
    entity: ObjectKind,
    domain: &str,
) -> Result<Vec<Link>> {
    by_column(conn, entity, "domain", domain).await
}

async fn list(
    conn: &mut AnyConnection,
    entity: ObjectKind,
    after: Option<&LinkId>,
    limit: u32,
) -> Result<Vec<Link>> {
    let rows = sqlx::query(&format!(
        "{SELECT} WHERE entity_type = $1 AND id > $2 ORDER BY id LIMIT $3"
    ))
    .bind(object_str(entity))
    .bind(after.map_or("", LinkId::as_str))
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(db(format!("listing {entity} links")))?;
    rows.iter().map(Link::from_row).collect()
}

/// Fails if another link of `link.entity` holds one of `link`'s CRM ids.
async fn check_ids_free(conn: &mut AnyConnection, link: &Link, is_new: bool) -> Result<()> {
    for crm in CRMS {
        let Some(id) = link.crm_id(crm) else { continue };
        let other = holder(conn, link.entity, crm, id).await?;
        if let Some(other) = other.filter(|o| o.id != link.id) {
            return Err(Error::CrmIdTaken {
                entity: link.entity,
                crm,
                crm_id: id.to_owned(),
                link: (!is_new).then(|| link.id.clone()),
                held_by: Some(other.id),
            });
        }
    }
    Ok(())
}

/// Maps a unique violation the pre-check could not see (a concurrent write) to
/// [`Error::CrmIdTaken`].
fn taken_or_db(link: &Link, is_new: bool, context: String) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| {
        if is_unique_violation(&e) {
            let text = violation_text(&e);
            if let Some(crm) = CRMS.into_iter().find(|&c| text.contains(id_column(c))) {
                return Error::CrmIdTaken {
                    entity: link.entity,
                    crm,
                    crm_id: link.crm_id(crm).unwrap_or_default().to_owned(),
                    link: (!is_new).then(|| link.id.clone()),
                    held_by: None,
                };
            }
        }
        db(context)(e)
    }
}

fn require_an_id(link: &Link) -> Result<()> {
    if CRMS.iter().all(|&c| link.crm_id(c).is_none()) {
        return Err(Error::InvalidInput {
            field: format!("link {} CRM ids", link.id),
            reason: "a link must hold at least one CRM id (delete the link instead)".into(),
        });
    }
    for crm in CRMS {
        if link.crm_id(crm) == Some("") {
            return Err(Error::InvalidInput {
                field: format!("link {} {}", link.id, id_column(crm)),
                reason: "an empty CRM id".into(),
            });
        }
    }
    Ok(())
}

async fn insert(conn: &mut AnyConnection, new: &NewLink) -> Result<Link> {
    let now = crate::store::to_time(now_ms());
    let mut link = Link {
        id: LinkId::new(new_id()),
        entity: new.entity,
        close_id: None,
        hubspot_id: None,
        salesforce_id: None,
        email: new.email.clone(),
        domain: new.domain.clone(),
        company_name: new.company_name.clone(),
        close_hash: None,
        hubspot_hash: None,
        salesforce_hash: None,
        close_fields: None,
        hubspot_fields: None,
        salesforce_fields: None,
        sync_hash: None,
        sync_source: None,
        last_synced_at: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    for (&crm, id) in &new.ids {
        *link.crm_id_mut(crm) = Some(id.clone());
    }
    require_an_id(&link)?;
    check_ids_free(conn, &link, true).await?;
    sqlx::query(
        "INSERT INTO crm_sync_records (id, entity_type, close_id, hubspot_id, salesforce_id, \
         email, domain, company_name, close_hash, hubspot_hash, salesforce_hash, sync_hash, \
         sync_source, last_synced_at, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(link.id.as_str())
    .bind(object_str(link.entity))
    .bind(link.close_id.clone())
    .bind(link.hubspot_id.clone())
    .bind(link.salesforce_id.clone())
    .bind(link.email.clone())
    .bind(link.domain.clone())
    .bind(link.company_name.clone())
    .bind(None::<String>)
    .bind(None::<String>)
    .bind(None::<String>)
    .bind(None::<String>)
    .bind(None::<String>)
    .bind(None::<i64>)
    .bind(link.version)
    .bind(to_ms(link.created_at))
    .bind(to_ms(link.updated_at))
    .execute(conn)
    .await
    .map_err(taken_or_db(
        &link,
        true,
        format!("inserting {} link", link.entity),
    ))?;
    Ok(link)
}

/// Writes `next` over the stored link if it is still at `expected` version.
async fn write(conn: &mut AnyConnection, next: &Link, expected: i64) -> Result<Link> {
    require_an_id(next)?;
    check_ids_free(conn, next, false).await?;
    let mut out = next.clone();
    out.version = expected + 1;
    out.updated_at = crate::store::to_time(now_ms());
    let done = sqlx::query(
        "UPDATE crm_sync_records SET close_id = $1, hubspot_id = $2, salesforce_id = $3, \
         email = $4, domain = $5, company_name = $6, close_hash = $7, hubspot_hash = $8, \
         salesforce_hash = $9, sync_hash = $10, sync_source = $11, last_synced_at = $12, \
         version = $13, updated_at = $14, close_fields = $15, hubspot_fields = $16, \
         salesforce_fields = $17 WHERE id = $18 AND version = $19",
    )
    .bind(out.close_id.clone())
    .bind(out.hubspot_id.clone())
    .bind(out.salesforce_id.clone())
    .bind(out.email.clone())
    .bind(out.domain.clone())
    .bind(out.company_name.clone())
    .bind(out.close_hash.clone())
    .bind(out.hubspot_hash.clone())
    .bind(out.salesforce_hash.clone())
    .bind(out.sync_hash.clone())
    .bind(out.sync_source.map(|c| crm_str(c).to_owned()))
    .bind(out.last_synced_at.map(to_ms))
    .bind(out.version)
    .bind(to_ms(out.updated_at))
    .bind(out.close_fields.as_ref().map(json_text))
    .bind(out.hubspot_fields.as_ref().map(json_text))
    .bind(out.salesforce_fields.as_ref().map(json_text))
    .bind(out.id.as_str())
    .bind(expected)
    .execute(&mut *conn)
    .await
    .map_err(taken_or_db(
        next,
        false,
        format!("updating link {}", next.id),
    ))?;
    if done.rows_affected() == 0 {
        return Err(stale(conn, &next.id, expected).await);
    }
    Ok(out)
}

/// The error for a versioned write to `id` that matched no row.
async fn stale(conn: &mut AnyConnection, id: &LinkId, expected: i64) -> Error {
    match get(conn, id).await {
        Ok(Some(current)) => Error::VersionConflict {
            what: "link",
            id: id.to_string(),
            expected,
            found: current.version,
        },
        Ok(None) => Error::NotFound {
            what: "link",
            id: id.to_string(),
        },
        Err(e) => e,
    }
}

async fn update_op(conn: &mut AnyConnection, link: &Link, update: &LinkUpdate) -> Result<Link> {
    write(conn, &update.apply(link), link.version).await
}

async fn set_crm_id_op(conn: &mut AnyConnection, link: &Link, crm: Crm, id: &str) -> Result<Link> {
    update_op(
        conn,
        link,
        &LinkUpdate::new().crm_id(crm, Some(id.to_owned())),
    )
    .await
}

async fn unlink_op(conn: &mut AnyConnection, link: &Link, crm: Crm) -> Result<Link> {
    update_op(conn, link, &LinkUpdate::new().crm_id(crm, None)).await
}

async fn set_hash_op(conn: &mut AnyConnection, link: &Link, crm: Crm, hash: &str) -> Result<Link> {
    update_op(
        conn,
        link,
        &LinkUpdate::new().hash(crm, Some(hash.to_owned())),
    )
    .await
}

async fn delete(conn: &mut AnyConnection, link: &Link) -> Result<()> {
    let done = sqlx::query("DELETE FROM crm_sync_records WHERE id = $1 AND version = $2")
        .bind(link.id.as_str())
        .bind(link.version)
        .execute(&mut *conn)
        .await
        .map_err(db(format!("deleting link {}", link.id)))?;
    if done.rows_affected() == 0 {
        return Err(stale(conn, &link.id, link.version).await);
    }
    Ok(())
}

async fn upsert(conn: &mut AnyConnection, new: &NewLink) -> Result<Upserted> {
    let mut found: Option<(Crm, String, Link)> = None;
    for (&crm, id) in &new.ids {
        let Some(link) = holder_for_update(conn, new.entity, crm, id).await? else {
            continue;
        };
        match &found {
            Some((first_crm, first_id, first)) if first.id != link.id => {
                return Err(Error::AmbiguousLinks {
                    first: first.id.clone(),
                    first_crm: *first_crm,
                    first_id: first_id.clone(),
                    second: link.id,
                    second_crm: crm,
                    second_id: id.clone(),
                });
            }
            Some(_) => {}
            None => found = Some((crm, id.clone(), link)),
        }
    }
    let Some((_, _, existing)) = found else {
        return Ok(Upserted {
            link: insert(conn, new).await?,
            created: true,
        });
    };
    let mut patch = LinkUpdate::new();
    for (&crm, id) in &new.ids {
        match existing.crm_id(crm) {
            Some(held) if held == id => {}
            Some(held) => {
                return Err(Error::CrmIdMismatch {
                    link: existing.id.clone(),
                    crm,
                    existing: held.to_owned(),
                    requested: id.clone(),
                });
            }
            None => patch = patch.crm_id(crm, Some(id.clone())),
        }
    }
    if let Some(v) = &new.email {
        patch = patch.email(Some(v.clone()));
    }
    if let Some(v) = &new.domain {
        patch = patch.domain(Some(v.clone()));
    }
    if let Some(v) = &new.company_name {
        patch = patch.company_name(Some(v.clone()));
    }
    let next = patch.apply(&existing);
    let link = if next == existing {
        existing
    } else {
        write(conn, &next, existing.version).await?
    };
    Ok(Upserted {
        link,
        created: false,
    })
}
