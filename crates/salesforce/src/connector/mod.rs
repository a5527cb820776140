//! The unified model on Salesforce: Company = Account, Person = Contact (or Lead, when
//! configured), Deal = Opportunity, Activity = Task (to-dos, calls, emails) or Event
//! (meetings).
//!
//! The connector keeps the [`Connector`] contract:
//!
//! - **Change feed**: keyset slices over SOQL on `(SystemModstamp, Id)` with an upper bound
//!   from Salesforce's clock, and tombstones from getDeleted (see [`feed`] for its limits).
//!   A record that fails to map comes out as [`Change::Skipped`].
//! - **Mapping**: Account — `Name`, `Website` → url (and domain, its host), `Description`,
//!   `Type` → status; Contact/Lead — `FirstName` + `LastName` → name (written back split at
//!   the first space), `Title`, `Email`, `Phone` then `MobilePhone`, `AccountId` → company
//!   (contacts only; a lead's `Company` text stays in `custom` and is required on create);
//!   Opportunity — `Name`, `Amount` → [`crmkit_core::Money`] in cents with
//!   `CurrencyIsoCode` (or the configured currency, default USD), `StageName` → stage,
//!   `Probability` → confidence, `CloseDate`, `AccountId`, `ContactId` → person (the
//!   primary contact: sent on create; a later change makes that contact's
//!   OpportunityContactRole primary, creating it if needed, since `ContactId` cannot be
//!   updated; `None` takes the flag from the primary role); Task — `TaskSubtype` `Call` /
//!   `Email` / other → call / email / task, `Subject`, `Description` → body,
//!   `ActivityDate`, `CallDurationInSeconds`, `CallType` → direction, `Status`
//!   `Completed` (or `IsClosed`) → completed; Event → meeting with `ActivityDateTime`,
//!   `DurationInMinutes`; both with `WhoId` → person and an account `WhatId` → company.
//!   Every other field read (the org's custom `__c` fields, found through the describe) stays
//!   in `custom`; `raw` keeps the record. Notes have no Task or Event form and are refused.
//! - **Writes**: creates, updates and deletes go through sObject collections (200 per
//!   call, `allOrNone: false`, one outcome per record), or through a Bulk API 2.0 job from
//!   the client's bulk threshold on (default 2,000 records of one object). An update sends
//!   only the fields whose value differs from what the record's own `raw` maps to (clears
//!   as `null`); nothing to send, no request. Mapped standard fields the org lacks (per its
//!   describe) are left out of writes.
//! - **Idempotent creates**: the marker lives in an external id field
//!   ([`SalesforceConnector::with_marker_field`], such as `crmkit_id__c`, defined as
//!   External ID and Unique on each object). Markers already stored are found with one SOQL
//!   query per object and returned untouched; the rest are upserted by that field
//!   (collections, or a Bulk API 2.0 upsert job from the bulk threshold on), so a create
//!   retried after an interruption updates the record it made. Markers match as Salesforce's
//!   upsert does: without case (ASCII letters) only when the field's describe says Unique
//!   and not `caseSensitive`, so `SRC-1` and `src-1` are one record there and two records
//!   on a non-unique or case-sensitive field (or one missing from the describe).
//! - **Search**: a text search with `LIKE '%text%'` on the name fields (Name; FirstName,
//!   LastName, Email; Subject), the text escaped as a literal.
//!
//! The sObject of an id is told by its key prefix (`00T` Task, `00U` Event, `003` Contact,
//! `00Q` Lead).

pub mod feed;
mod mapping;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use crmkit_core::connector::{Change, Marked};
use crmkit_core::{
    ActivityKind, BatchOutcome, ChangeCursor, Connector, Crm, Error, ErrorKind, ObjectKind, Record,
    RecordRef, Result,
};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde_json::Value;

use crate::client::Client;
use crate::soql::{Condition, Soql};
use mapping::{create_fields, kind_of, patch_fields, sobject_of_id, to_record};

/// [`Connector`] for Salesforce.
#[derive(Debug, Clone)]
pub struct SalesforceConnector {
    client: Client,
    person: &'static str,
    marker: Option<String>,
    overlap: chrono::Duration,
    page_size: usize,
    currency: String,
    clock_tolerance: chrono::Duration,
    /// Fields to read per sObject (the mapped ones the org has, its custom ones, the
    /// marker), found once.
    fields: Arc<Mutex<HashMap<String, Vec<String>>>>,
}

impl SalesforceConnector {
    /// A connector using `client`: people are Contacts, no marker field.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            person: "Contact",
            marker: None,
            overlap: chrono::Duration::minutes(1),
            page_size: 200,
            currency: "USD".into(),
            clock_tolerance: chrono::Duration::minutes(5),
            fields: Arc::default(),
        }
    }

    /// People are Leads instead of Contacts.
    pub fn with_leads(mut self) -> Self {
        self.person = "Lead";
        self
    }

    /// Stores idempotency markers in the external id field `name` (such as `crmkit_id__c`)
    /// of every object.
    pub fn with_marker_field(mut self, name: &str) -> Self {
        self.marker = Some(name.to_string());
        self
    }

    /// Records per change-feed query (default 200, at most 2,000).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.clamp(1, 2000);
        self
    }

    /// How far before a resumed cursor the feed starts again (default one minute).
    pub fn with_overlap(mut self, overlap: std::time::Duration) -> Self {
        self.overlap = chrono::Duration::from_std(overlap).unwrap_or(chrono::Duration::MAX);
        self
    }

    /// How far Salesforce's clock (its `Date` header) may be from this machine's before the
    /// change feed refuses to run (default five minutes).
    pub fn with_clock_tolerance(mut self, tolerance: std::time::Duration) -> Self {
        self.clock_tolerance =
            chrono::Duration::from_std(tolerance).unwrap_or(chrono::Duration::MAX);
        self
    }

    /// The currency of amounts without `CurrencyIsoCode` (orgs without multi-currency).
    pub fn with_currency(mut self, code: &str) -> Self {
        self.currency = code.to_ascii_uppercase();
        self
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn sobjects(&self, kind: ObjectKind) -> Vec<&'static str> {
        match kind {
            ObjectKind::Company => vec!["Account"],
            ObjectKind::Person => vec![self.person],
            ObjectKind::Deal => vec!["Opportunity"],
            ObjectKind::Activity => vec!["Task", "Event"],
        }
    }

    /// The sObject a record is written to.
    fn sobject_for(&self, record: &Record) -> Result<&'static str> {
        if let Some(s) = record.id().and_then(sobject_of_id)
            && kind_of(s) == Some(record.kind())
        {
            return Ok(s);
        }
        Ok(match record {
            Record::Company(_) => "Account",
            Record::Person(_) => self.person,
            Record::Deal(_) => "Opportunity",
            Record::Activity(a) => match a.kind {
                ActivityKind::Meeting => "Event",
                ActivityKind::Call | ActivityKind::Email | ActivityKind::Task => "Task",
                ActivityKind::Note => {
                    return Err(Error::new(
                        ErrorKind::Validation,
                        "Salesforce notes are not Tasks or Events; this connector does not write them",
                    )
                    .with_crm(Crm::Salesforce));
                }
            },
        })
    }

    fn sobject_of_ref(&self, kind: ObjectKind, id: &str) -> &'static str {
        sobject_of_id(id)
            .filter(|s| kind_of(s) == Some(kind))
            .unwrap_or_else(|| self.sobjects(kind)[0])
    }

    /// The fields to read of `sobject`.
    async fn fields(&self, sobject: &str) -> Result<Vec<String>> {
        if let Some(f) = self
            .fields
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sobject)
        {
            return Ok(f.clone());
        }
        let describe = self.client.sobject(sobject).describe().await?;
        let mut out: Vec<String> = mapping::mapped(sobject)
            .iter()
            .filter(|f| describe.field(f).is_some())
            .map(|f| f.to_string())
            .collect();
        for f in &describe.fields {
            let wanted = f.name.ends_with("__c") || Some(&f.name) == self.marker.as_ref();
            if wanted && !out.contains(&f.name) {
                out.push(f.name.clone());
            }
        }
        self.fields
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sobject.to_string(), out.clone());
        Ok(out)
    }

    /// Drops the mapped standard fields the org does not have (`CurrencyIsoCode` without
    /// multi-currency, call fields on a trimmed Task); custom fields are kept, so a wrong
    /// one is refused by Salesforce rather than dropped.
    async fn writable(
        &self,
        sobject: &str,
        mut f: crate::sobjects::Fields,
    ) -> Result<crate::sobjects::Fields> {
        let known = self.fields(sobject).await?;
        let mapped = mapping::mapped(sobject);
        f.retain(|k, _| {
            !(mapped.contains(&k.as_str()) || k == "TaskSubtype") || known.iter().any(|n| n == k)
        });
        Ok(f)
    }

    fn marker_field(&self) -> Result<&str> {
        self.marker.as_deref().ok_or_else(|| {
            Error::config(
                "no marker field: configure SalesforceConnector::with_marker_field (an External ID field such as crmkit_id__c)",
            )
            .with_crm(Crm::Salesforce)
        })
    }

    /// Records grouped by sObject with their input positions.
    fn group<T>(items: Vec<(usize, &'static str, T)>) -> BTreeMap<&'static str, Vec<(usize, T)>> {
        let mut g: BTreeMap<&'static str, Vec<(usize, T)>> = BTreeMap::new();
        for (i, s, t) in items {
            g.entry(s).or_default().push((i, t));
        }
        g
    }

    async fn create_all(&self, records: Vec<Record>) -> Vec<Result<RecordRef>> {
        let mut out: Vec<Option<Result<RecordRef>>> = records.iter().map(|_| None).collect();
        let mut items = Vec::new();
        for (i, r) in records.into_iter().enumerate() {
            let fields = self
                .sobject_for(&r)
                .and_then(|s| Ok((s, create_fields(s, &r)?)));
            match fields {
                Ok((s, f)) => items.push((i, s, (r, f))),
                Err(e) => out[i] = Some(Err(named(e, &r.describe()))),
            }
        }
        for (sobject, group) in Self::group(items) {
            let mut bodies = Vec::with_capacity(group.len());
            for (_, (_, f)) in &group {
                match self.writable(sobject, f.clone()).await {
                    Ok(b) => bodies.push(b),
                    Err(e) => {
                        for (i, (r, _)) in group {
                            out[i] = Some(Err(named(e.clone(), &r.describe())));
                        }
                        return finish(out);
                    }
                }
            }
            let results = self.client.insert_many(sobject, bodies).await;
            for ((i, (r, _)), res) in group.into_iter().zip(results) {
                out[i] = Some(
                    res.map(|id| RecordRef::new(Crm::Salesforce, r.kind(), id.into_string()))
                        .map_err(|e| named(e, &r.describe())),
                );
            }
        }
        finish(out)
    }

    async fn update_all(&self, records: Vec<Record>) -> Vec<Result<RecordRef>> {
        let mut out: Vec<Option<Result<RecordRef>>> = records.iter().map(|_| None).collect();
        let mut items = Vec::new();
        for (i, r) in records.into_iter().enumerate() {
            let Some(id) = r.id().map(str::to_string) else {
                out[i] = Some(Err(named(
                    Error::new(ErrorKind::Validation, "an update needs the record's id"),
                    &r.describe(),
                )));
                continue;
            };
            let sobject = match self.sobject_for(&r) {
                Ok(s) => s,
                Err(e) => {
                    out[i] = Some(Err(named(e, &r.describe())));
                    continue;
                }
            };
            let mut patch = patch_fields(sobject, &r, &self.currency);
            if patch.is_empty() {
                out[i] = Some(Ok(RecordRef::new(Crm::Salesforce, r.kind(), id)));
                continue;
            }
            patch = match self.writable(sobject, patch).await {
                Ok(p) if p.is_empty() => {
                    out[i] = Some(Ok(RecordRef::new(Crm::Salesforce, r.kind(), id)));
                    continue;
                }
                Ok(p) => p,
                Err(e) => {
                    out[i] = Some(Err(named(e, &r.describe())));
                    continue;
                }
            };
            // An Opportunity's ContactId is set on create only; later its primary contact
            // role carries the change.
            let contact = if sobject == "Opportunity" {
                patch.remove("ContactId")
            } else {
                None
            };
            patch.insert("Id".into(), Value::String(id.clone()));
            items.push((i, sobject, (r, id, patch, contact)));
        }
        for (sobject, group) in Self::group(items) {
            let (sent, unsent): (Vec<_>, Vec<_>) =
                group.into_iter().partition(|(_, (_, _, p, _))| p.len() > 1);
            let bodies = sent.iter().map(|(_, (_, _, p, _))| p.clone()).collect();
            let results = if sent.is_empty() {
                Vec::new()
            } else {
                self.client.update_many(sobject, bodies).await
            };
            let done = sent
                .into_iter()
                .zip(results)
                .chain(unsent.into_iter().map(|item| (item, Ok(()))));
            for ((i, (r, id, _, contact)), mut res) in done {
                if let (Ok(()), Some(contact)) = (&res, contact) {
                    res = self.set_primary_contact(&id, contact).await;
                }
                out[i] = Some(
                    res.map(|()| RecordRef::new(Crm::Salesforce, r.kind(), id))
                        .map_err(|e| named(e, &r.describe())),
                );
            }
        }
        finish(out)
    }

    /// Makes `contact` (an id, or `null` for none) the primary contact of Opportunity
    /// `opportunity` through its OpportunityContactRole, the only way to change the
    /// Opportunity's `ContactId` after create (Object Reference, Opportunity `ContactId`:
    /// <https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_opportunity.htm>):
    /// an existing role of that contact is made primary, else a primary role is created;
    /// `null` takes the flag from the primary role.
    async fn set_primary_contact(&self, opportunity: &str, contact: Value) -> Result<()> {
        let roles = self.client.sobject("OpportunityContactRole");
        let mut cond = Condition::eq("OpportunityId", opportunity);
        cond = match contact.as_str() {
            Some(c) => cond.and(Condition::eq("ContactId", c)),
            None => cond.and(Condition::eq("IsPrimary", true)),
        };
        let q = Soql::select(["Id"])
            .from("OpportunityContactRole")
            .filter(cond);
        let found: Vec<_> = self.client.query_soql(&q).try_collect().await?;
        let ids: Vec<&str> = found
            .iter()
            .filter_map(|r| r.get("Id").and_then(Value::as_str))
            .collect();
        let primary = contact.is_string();
        let mut flag = crate::sobjects::Fields::new();
        flag.insert("IsPrimary".into(), Value::Bool(primary));
        match (ids.first(), contact) {
            (Some(role), Value::String(_)) => roles.update(role, &flag).await,
            (None, Value::String(c)) => {
                flag.insert("OpportunityId".into(), Value::String(opportunity.into()));
                flag.insert("ContactId".into(), Value::String(c));
                roles.create(&flag).await.map(drop)
            }
            _ => {
                for role in ids {
                    roles.update(role, &flag).await?;
                }
                Ok(())
            }
        }
    }

    /// Whether Salesforce takes `sobject`'s markers without case: an upsert by a custom
    /// field matches without case only when the field is Unique and case-insensitive
    /// (<https://developer.salesforce.com/docs/atlas.en-us.apexcode.meta/apexcode/langCon_apex_dml_examples_upsert.htm>),
    /// as its describe says (`unique`, `caseSensitive`). A non-unique External ID field, a
    /// case-sensitive one, or one the describe does not show: markers match exactly.
    async fn marker_folds(&self, sobject: &str) -> Result<bool> {
        let field = self.marker_field()?;
        let describe = self.client.sobject(sobject).describe().await?;
        Ok(describe
            .field(field)
            .is_some_and(|f| f.unique && !f.case_sensitive))
    }

    /// The ids of the records of `sobject` whose marker is in `markers`, keyed by
    /// [`marker_key`] as Salesforce matches them.
    async fn lookup(&self, sobject: &str, markers: &[String]) -> Result<HashMap<String, String>> {
        let field = self.marker_field()?;
        let folds = self.marker_folds(sobject).await?;
        let mut found = HashMap::new();
        for chunk in markers.chunks(200) {
            let q = Soql::select(["Id", field])
                .from(sobject)
                .filter(Condition::is_in(field, chunk.iter()));
            let rows: Vec<_> = self.client.query_soql(&q).try_collect().await?;
            for r in rows {
                if let (Some(id), Some(m)) = (
                    r.get("Id").and_then(Value::as_str),
                    r.get(field).and_then(Value::as_str),
                ) {
                    found.insert(marker_key(m, folds), id.to_string());
                }
            }
        }
        Ok(found)
    }

    async fn create_marked_all(&self, records: Vec<Marked>) -> Vec<Result<RecordRef>> {
        let mut out: Vec<Option<Result<RecordRef>>> = records.iter().map(|_| None).collect();
        let field = match self.marker_field() {
            Ok(f) => f.to_string(),
            Err(e) => {
                return records
                    .iter()
                    .map(|m| Err(named(e.clone(), &m.record.describe())))
                    .collect();
            }
        };
        let mut first: HashMap<(&'static str, String), usize> = HashMap::new();
        let mut folding: HashMap<&'static str, bool> = HashMap::new();
        let mut copies = Vec::new();
        let mut items = Vec::new();
        for (i, m) in records.into_iter().enumerate() {
            let label = format!("{} (marker {:?})", m.record.describe(), m.marker);
            let prepared = self
                .sobject_for(&m.record)
                .and_then(|s| Ok((s, create_fields(s, &m.record)?)));
            let (sobject, mut fields) = match prepared {
                Ok(p) => p,
                Err(e) => {
                    out[i] = Some(Err(named(e, &label)));
                    continue;
                }
            };
            let folds = match folding.get(sobject) {
                Some(&c) => c,
                None => match self.marker_folds(sobject).await {
                    Ok(c) => *folding.entry(sobject).or_insert(c),
                    Err(e) => {
                        out[i] = Some(Err(named(e, &label)));
                        continue;
                    }
                },
            };
            // Markers Salesforce takes for one value are one record.
            let key = (sobject, marker_key(&m.marker, folds));
            if let Some(&at) = first.get(&key) {
                copies.push((i, at));
                continue;
            }
            first.insert(key, i);
            fields = match self.writable(sobject, fields).await {
                Ok(f) => f,
                Err(e) => {
                    out[i] = Some(Err(named(e, &label)));
                    continue;
                }
            };
            fields.insert(field.clone(), Value::String(m.marker.clone()));
            items.push((i, sobject, (m, label, fields)));
        }
        for (sobject, group) in Self::group(items) {
            let markers: Vec<String> = group
                .iter()
                .map(|(_, (m, _, _))| m.marker.clone())
                .collect();
            let found = match self.lookup(sobject, &markers).await {
                Ok(f) => f,
                Err(e) => {
                    // A failed lookup says nothing about the records: upserting now could
                    // overwrite an existing one with the create payload.
                    for (i, (_, label, _)) in group {
                        out[i] = Some(Err(named(e.clone(), &label)));
                    }
                    continue;
                }
            };
            let mut missing = Vec::new();
            let folds = folding.get(sobject).copied().unwrap_or(false);
            for (i, (m, label, fields)) in group {
                match found.get(&marker_key(&m.marker, folds)) {
                    Some(id) => {
                        out[i] = Some(Ok(RecordRef::new(
                            Crm::Salesforce,
                            m.record.kind(),
                            id.clone(),
                        )))
                    }
                    None => missing.push((i, (m, label, fields))),
                }
            }
            let bodies = missing.iter().map(|(_, (_, _, f))| f.clone()).collect();
            let results = self.client.upsert_many(sobject, &field, bodies).await;
            for ((i, (m, label, _)), res) in missing.into_iter().zip(results) {
                out[i] = Some(
                    res.and_then(|u| {
                        u.id.ok_or_else(|| Error::bad_response("the upsert answered no id"))
                    })
                    .map(|id| RecordRef::new(Crm::Salesforce, m.record.kind(), id.into_string()))
                    .map_err(|e| named(e, &label)),
                );
            }
        }
        for (i, from) in copies {
            out[i] = out[from].clone();
        }
        finish(out)
    }

    async fn delete_all(&self, refs: Vec<RecordRef>) -> Vec<Result<RecordRef>> {
        let items = refs
            .into_iter()
            .enumerate()
            .map(|(i, r)| (i, self.sobject_of_ref(r.object, &r.id), r))
            .collect();
        let mut out: Vec<Option<Result<RecordRef>>> = Vec::new();
        let groups = Self::group(items);
        out.resize_with(groups.values().map(Vec::len).sum(), || None);
        for (sobject, group) in groups {
            let ids = group.iter().map(|(_, r)| r.id.clone()).collect();
            let results = self.client.delete_many(sobject, ids).await;
            for ((i, r), res) in group.into_iter().zip(results) {
                let label = r.to_string();
                out[i] = Some(res.map(|()| r).map_err(|e| named(e, &label)));
            }
        }
        finish(out)
    }

    /// Records of `kind` by id, one result per id in order: per sObject (told by the id's
    /// prefix, as `get` does), through sObject Collections retrieve.
    async fn get_all(&self, kind: ObjectKind, ids: &[String]) -> Vec<Result<Record>> {
        let mut by_sobject: BTreeMap<&'static str, Vec<usize>> = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            by_sobject
                .entry(self.sobject_of_ref(kind, id))
                .or_default()
                .push(i);
        }
        let mut out: Vec<Option<Result<Record>>> = ids.iter().map(|_| None).collect();
        for (sobject, at) in by_sobject {
            let wanted: Vec<String> = at.iter().map(|&i| ids[i].clone()).collect();
            let got = match self.fields(sobject).await {
                Ok(fields) => {
                    let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
                    self.client
                        .collections(sobject)
                        .retrieve(&wanted, &refs)
                        .await
                }
                Err(e) => wanted.iter().map(|_| Err(e.clone())).collect(),
            };
            for (i, f) in at.into_iter().zip(got) {
                let label = format!("{kind} {}", ids[i]);
                out[i] = Some(
                    f.and_then(|f| to_record(sobject, &f, &self.currency))
                        .map_err(|e| named(e, &label)),
                );
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(
                        Error::bad_response("the batch read did not account for this record")
                            .with_crm(Crm::Salesforce),
                    )
                })
            })
            .collect()
    }
}

/// A marker as its field compares it: ASCII letters lower-cased when Salesforce `folds`
/// its case, else as is.
fn marker_key(marker: &str, folds: bool) -> String {
    if folds {
        marker.to_ascii_lowercase()
    } else {
        marker.to_string()
    }
}

/// The error named after the unified record (its kind, id and name), which says more to a
/// caller than the sObject label of the layer below.
fn named(e: Error, label: &str) -> Error {
    e.with_crm(Crm::Salesforce).with_record(label.to_string())
}

fn finish(out: Vec<Option<Result<RecordRef>>>) -> Vec<Result<RecordRef>> {
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(
                    Error::bad_response("the batch answer did not account for this record")
                        .with_crm(Crm::Salesforce),
                )
            })
        })
        .collect()
}

#[async_trait]
impl Connector for SalesforceConnector {
    fn crm(&self) -> Crm {
        Crm::Salesforce
    }

    fn changes(
        &self,
        kind: ObjectKind,
        since: Option<ChangeCursor>,
    ) -> BoxStream<'_, Result<Change>> {
        let config = feed::FeedConfig {
            overlap: self.overlap.max(chrono::Duration::zero()),
            page_size: self.page_size,
            currency: self.currency.clone(),
            clock_tolerance: self.clock_tolerance,
        };
        stream::once(async move {
            let mut sobjects = Vec::new();
            for s in self.sobjects(kind) {
                let mut fields = self.fields(s).await?;
                if !fields.iter().any(|f| f == "SystemModstamp") {
                    fields.push("SystemModstamp".into());
                }
                sobjects.push((s.to_string(), fields));
            }
            Ok::<_, Error>(feed::changes(&self.client, kind, sobjects, since, config))
        })
        .try_flatten()
        .boxed()
    }

    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Record> {
        let sobject = self.sobject_of_ref(kind, id);
        let fields = self.fields(sobject).await?;
        let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
        let f = self.client.sobject(sobject).get(id, &refs).await?;
        to_record(sobject, &f, &self.currency).map_err(|e| named(e, &format!("{kind} {id}")))
    }

    async fn get_many(&self, kind: ObjectKind, ids: &[String]) -> Vec<Result<Record>> {
        self.get_all(kind, ids).await
    }

    async fn create(&self, records: Vec<Record>) -> BatchOutcome {
        BatchOutcome {
            results: self.create_all(records).await,
        }
    }

    async fn create_marked(&self, records: Vec<Marked>) -> BatchOutcome {
        BatchOutcome {
            results: self.create_marked_all(records).await,
        }
    }

    async fn find_by_marker(&self, kind: ObjectKind, marker: &str) -> Result<Option<RecordRef>> {
        for sobject in self.sobjects(kind) {
            let found = self.lookup(sobject, &[marker.to_string()]).await?;
            let key = marker_key(marker, self.marker_folds(sobject).await?);
            if let Some(id) = found.get(&key) {
                return Ok(Some(RecordRef::new(Crm::Salesforce, kind, id.clone())));
            }
        }
        Ok(None)
    }

    async fn update(&self, records: Vec<Record>) -> BatchOutcome {
        BatchOutcome {
            results: self.update_all(records).await,
        }
    }

    async fn delete(&self, refs: Vec<RecordRef>) -> BatchOutcome {
        BatchOutcome {
            results: self.delete_all(refs).await,
        }
    }

    fn search(&self, kind: ObjectKind, query: &str) -> BoxStream<'_, Result<Record>> {
        let text = query.to_string();
        stream::iter(self.sobjects(kind))
            .then(move |sobject| {
                let text = text.clone();
                async move {
                    let fields = self.fields(sobject).await?;
                    let names: &[&str] = match sobject {
                        "Contact" | "Lead" => &["FirstName", "LastName", "Email"],
                        "Task" | "Event" => &["Subject"],
                        _ => &["Name"],
                    };
                    let cond = names
                        .iter()
                        .map(|n| Condition::like_contains(n, &text))
                        .reduce(Condition::or)
                        .unwrap_or_else(|| Condition::like_contains("Name", &text));
                    let q = Soql::select(fields).from(sobject).filter(cond);
                    let currency = self.currency.clone();
                    Ok::<_, Error>(
                        self.client
                            .query_soql(&q)
                            .map(move |r| r.and_then(|f| to_record(sobject, &f, &currency))),
                    )
                }
            })
            .try_flatten()
            .boxed()
    }
}
