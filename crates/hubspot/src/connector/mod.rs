//! The unified model on HubSpot: Company = company, Person = contact, Deal = deal,
//! Activity = note, call, task, meeting or email.
//!
//! The connector keeps the [`Connector`] contract:
//!
//! - **Change feed**: keyset slices over CRM search on the modification time, with an upper
//!   bound from HubSpot's clock and an overlap window; tombstones from the archived listing
//!   (see [`feed`] for what it covers and its limits). A record that fails to map comes out
//!   as [`Change::Skipped`].
//! - **Mapping**: companies — `name`, `domain`, `website` → url, `description`,
//!   `lifecyclestage` → status; contacts — `firstname` + `lastname` → name (written back
//!   split at the first space), `jobtitle`, `email` then `hs_additional_emails`, `phone`
//!   then `mobilephone`, `associatedcompanyid` or the linked company (below); deals —
//!   `dealname`, `amount` → [`crmkit_core::Money`] in cents with `deal_currency_code` (USD
//!   when unset), `dealstage`, `pipeline`, `hs_deal_stage_probability` (0–1) → confidence
//!   (0–100, **read-only**: HubSpot calculates the probability from the deal's stage, so a
//!   changed confidence is never sent; change the stage instead), `closedate`, the linked
//!   company and contact; activities —
//!   `hs_timestamp`, the type's body and subject/title, `hs_call_duration` (ms → s),
//!   `hs_call_direction` / `hs_email_direction`, `hs_task_status` `COMPLETED` → completed,
//!   the linked company and contact. Every other property read (the account's
//!   custom properties, found through the properties API once per connector) stays in
//!   `custom`; `raw` keeps the object. Secondary emails are read only: HubSpot's
//!   `hs_additional_emails` cannot be written through the CRM objects API, so a create or update whose
//!   secondary emails differ from what HubSpot holds fails for that record with a
//!   validation error naming the field (nothing is written); so does a third phone number.
//! - **Links read**: associations are read through associations v4 (`get`, the change
//!   feed and search alike), which names each pair's types. Of several associated
//!   companies the link is the one with HubSpot's primary type (contact → company 1, deal →
//!   company 5), else one associated only by the unlabelled type, else the lowest id — a
//!   deterministic pick rather than an error, so a record with several unlabelled or only
//!   labelled companies still reads (and reads the same each time); see
//!   [`crate::associations::sort_by_preference`].
//! - **Writes**: creates go through batch create (with associations to the linked company
//!   and contact) and updates through batch update, one outcome per record. An update sends
//!   only the properties whose value differs from what the record's own `raw` maps to
//!   (clears as `""`, as HubSpot documents); a contact's name, phones and email are compared
//!   per HubSpot property with `raw` (see `patch`): phones stay in the property they were
//!   read from and an added one goes to the empty one, an unchanged name sends nothing and
//!   a one-word name stays in the part it was in, and changes links through associations v4: the
//!   new record is associated with the unlabelled type and, towards a company, the primary
//!   type too (creates send the same types), so the link written is the link read; the old
//!   pair is removed whole only when it carries nothing but HubSpot's unlabelled and
//!   primary types, otherwise only the
//!   primary label goes and the user's (or app's) labels stay, with the unlabelled
//!   association they need (HubSpot deletes every label with it). Nothing to send, no
//!   request. Batch answers are matched to their inputs, not taken in order. Deletes
//!   archive (batch archive).
//! - **Idempotent creates**: the marker is stored in a unique property — `email` for
//!   contacts, [`DEFAULT_MARKER_PROPERTY`] (`crmkit_id`) for companies, deals and
//!   activities (notes, calls, emails, meetings and tasks each have their own), or a
//!   configured one ([`HubSpotConnector::with_marker_property`]). On the first marked create
//!   the property is checked and created when missing (a text property with
//!   `hasUniqueValue: true`, in the type's own property group for engagements; the token
//!   needs the properties write scope — otherwise create it beforehand); a property that
//!   exists but is not unique is refused. Every engagement type documents batch upsert by
//!   `idProperty` (HubSpot's CRM objects v3 reference for calls, emails, meetings, notes and
//!   tasks), so activities go the same way as companies and deals.
//!   `find_by_marker` answers `None` while the property does not exist. Records whose marker exists are returned
//!   untouched (batch read by `idProperty`); the rest go through batch upsert by
//!   `idProperty`, so a create retried after an interruption updates the record it made
//!   instead of making a second one. The property must be unique (`hasUniqueValue`) for
//!   HubSpot to accept it as `idProperty` (developers.hubspot.com/docs/api/crm/properties,
//!   unique identifier properties).
//! - **Search**: HubSpot's `query` text search (default searchable properties of each
//!   type), every match past the 10,000 cap. Search and the change feed ask the search
//!   endpoint only for id and modification time and read each page of up to 100 records in
//!   full with one batch read, so a portal with hundreds of custom properties stays under
//!   search's 3,000-character body limit; a record found but not read back is an error
//!   (search) or [`Change::Skipped`] (feed), never left out.
//!
//! Activity ids are looked up in notes, calls, tasks, meetings and emails in that order
//! when only an id is given (`get`, `delete`, `find_by_marker`).

pub mod feed;
mod mapping;
mod patch;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use crmkit_core::connector::{Change, Marked};
use crmkit_core::{
    BatchOutcome, ChangeCursor, Connector, Crm, Error, ErrorKind, ObjectKind, Record, RecordRef,
    Result,
};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use crate::Client;
use crate::associations::{AssociationSpec, default_type_id, primary_type_id};
use crate::batch::{CreateInput, UpdateInput};
use crate::objects::{HubSpotObject, NewAssociation, ObjectType, ReadOptions};
use crate::schema::NewProperty;
use crate::search::SearchRequest;
use mapping::{linked, object_type_of, object_types, to_record};

/// Batch reads in flight at once in `get_many`; the rate budgets pace them anyway.
const GET_CONCURRENCY: usize = 4;

/// The association types a link the connector writes from `t` to `to` gets: HubSpot's
/// unlabelled type, plus the primary type where the pair has one (contact or deal →
/// company), so the company written is the one read back (reads prefer the primary).
fn link_types(t: &ObjectType, to: &ObjectType) -> Vec<u32> {
    default_type_id(t, to)
        .into_iter()
        .chain(primary_type_id(t, to))
        .collect()
}

/// The unique property that holds the idempotency markers of companies and deals unless
/// configured otherwise ([`HubSpotConnector::with_marker_property`]).
pub const DEFAULT_MARKER_PROPERTY: &str = "crmkit_id";

/// [`Connector`] for HubSpot.
#[derive(Debug, Clone)]
pub struct HubSpotConnector {
    client: Client,
    /// The unique property holding idempotency markers, per kind.
    markers: BTreeMap<ObjectKind, String>,
    overlap: chrono::Duration,
    page_size: usize,
    /// Custom property names per object type, read once.
    custom: Arc<Mutex<HashMap<String, Vec<String>>>>,
    /// `type/property` pairs whose marker property is known to exist and be unique.
    ensured: Arc<Mutex<HashSet<String>>>,
}

impl HubSpotConnector {
    /// A connector using `client`; contacts' markers live in `email`, those of companies,
    /// deals and activities in [`DEFAULT_MARKER_PROPERTY`].
    pub fn new(client: Client) -> Self {
        Self {
            client,
            markers: BTreeMap::from([
                (ObjectKind::Person, "email".to_string()),
                (ObjectKind::Company, DEFAULT_MARKER_PROPERTY.to_string()),
                (ObjectKind::Deal, DEFAULT_MARKER_PROPERTY.to_string()),
                (ObjectKind::Activity, DEFAULT_MARKER_PROPERTY.to_string()),
            ]),
            overlap: chrono::Duration::minutes(1),
            page_size: 200,
            custom: Arc::default(),
            ensured: Arc::default(),
        }
    }

    /// Records per change-feed page (default 200, the most CRM search returns).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.clamp(1, 200);
        self
    }

    /// How far before a resumed cursor the change feed starts again, for records the search
    /// index shows late (default one minute); also the margin of the archived scan.
    pub fn with_overlap(mut self, overlap: std::time::Duration) -> Self {
        self.overlap = chrono::Duration::from_std(overlap).unwrap_or(chrono::Duration::MAX);
        self
    }

    /// Stores the idempotency markers of companies, deals and activities in the unique
    /// property `name` (such as `crmkit_id`, created with `hasUniqueValue: true` on each
    /// object type); contacts keep `email` unless set with
    /// [`Self::with_marker_property_for`].
    pub fn with_marker_property(mut self, name: &str) -> Self {
        for kind in [ObjectKind::Company, ObjectKind::Deal, ObjectKind::Activity] {
            self.markers.insert(kind, name.to_string());
        }
        self
    }

    /// Stores the idempotency markers of `kind` in the unique property `name`.
    pub fn with_marker_property_for(mut self, kind: ObjectKind, name: &str) -> Self {
        self.markers.insert(kind, name.to_string());
        self
    }

    fn marker_property(&self, kind: ObjectKind) -> Result<&str> {
        self.markers.get(&kind).map(String::as_str).ok_or_else(|| {
            Error::config(format!(
                "no marker property for {kind}s: configure HubSpotConnector::with_marker_property"
            ))
            .with_crm(Crm::HubSpot)
        })
    }

    /// Makes sure the marker property `prop` of `t` exists and is unique, creating it (a
    /// text property with `hasUniqueValue: true`) when it is missing; checked once per
    /// connector. HubSpot takes only unique properties as
    /// `idProperty` (developers.hubspot.com/changelog/updating-objects-by-custom-field-and-adding-owner-properties-via-the-api).
    async fn ensure_marker(&self, t: &ObjectType, prop: &str) -> Result<()> {
        let key = format!("{}/{prop}", t.as_str());
        if self.ensured.lock().is_ok_and(|e| e.contains(&key)) {
            return Ok(());
        }
        let defs = self.client.properties(t).await?;
        match defs.iter().find(|p| p.name == prop) {
            Some(p) if p.has_unique_value || (prop == "email" && *t == ObjectType::Contacts) => {}
            Some(_) => {
                return Err(Error::config(format!(
                    "the marker property {prop} of HubSpot {t} is not unique (hasUniqueValue), \
                     so HubSpot cannot find records by it"
                ))
                .with_crm(Crm::HubSpot));
            }
            None => {
                // Engagements (notes, calls, emails, meetings, tasks) take custom properties
                // too (developers.hubspot.com/docs/api/crm/properties); their group is the
                // one their own properties are in.
                let group = match t {
                    ObjectType::Companies => "companyinformation".to_string(),
                    ObjectType::Deals => "dealinformation".to_string(),
                    ObjectType::Contacts => "contactinformation".to_string(),
                    _ => match defs
                        .iter()
                        .find(|p| p.hubspot_defined == Some(true) && !p.group_name.is_empty())
                        .map(|p| p.group_name.clone())
                    {
                        Some(g) => g,
                        None => {
                            return Err(Error::config(format!(
                                "HubSpot {t} have no property {prop}: create it as a unique \
                                 (hasUniqueValue) text property before creating marked records"
                            ))
                            .with_crm(Crm::HubSpot));
                        }
                    },
                };
                let new = NewProperty {
                    name: prop.to_string(),
                    label: "crmkit id".to_string(),
                    kind: "string".to_string(),
                    field_type: "text".to_string(),
                    group_name: group,
                    description: Some(
                        "Idempotency marker written by crmkit; unique per record.".to_string(),
                    ),
                    options: Vec::new(),
                    has_unique_value: Some(true),
                };
                match self.client.create_property(t, &new).await {
                    Ok(_) => {}
                    // Made meanwhile by another run: check it like an existing one next time.
                    Err(e) if e.kind() == ErrorKind::Conflict => {}
                    Err(e) => return Err(e),
                }
                if let Ok(mut c) = self.custom.lock() {
                    c.remove(t.as_str());
                }
            }
        }
        if let Ok(mut e) = self.ensured.lock() {
            e.insert(key);
        }
        Ok(())
    }

    /// Whether HubSpot `t` has the property `prop` (so records can carry a marker in it).
    async fn has_property(&self, t: &ObjectType, prop: &str) -> Result<bool> {
        if prop == "email" && *t == ObjectType::Contacts {
            return Ok(true);
        }
        let key = format!("{}/{prop}", t.as_str());
        if self.ensured.lock().is_ok_and(|e| e.contains(&key)) {
            return Ok(true);
        }
        let def = self
            .client
            .properties(t)
            .await?
            .into_iter()
            .find(|p| p.name == prop);
        if def.as_ref().is_some_and(|p| p.has_unique_value)
            && let Ok(mut e) = self.ensured.lock()
        {
            // Found unique: later look-ups and marked creates need not ask again.
            e.insert(key);
        }
        Ok(def.is_some())
    }

    /// The properties to read for `t`: the mapped ones, the account's custom ones and the
    /// marker property.
    async fn properties(&self, t: &ObjectType) -> Result<Vec<String>> {
        let cached = self
            .custom
            .lock()
            .map(|c| c.get(t.as_str()).cloned())
            .unwrap_or_default();
        let custom = match cached {
            Some(c) => c,
            None => {
                let names: Vec<String> = self
                    .client
                    .properties(t)
                    .await?
                    .into_iter()
                    .filter(|p| p.hubspot_defined == Some(false))
                    .map(|p| p.name)
                    .collect();
                if let Ok(mut c) = self.custom.lock() {
                    c.insert(t.as_str().to_string(), names.clone());
                }
                names
            }
        };
        let mut out: Vec<String> = mapping::mapped(t).into_iter().map(String::from).collect();
        let marker = mapping::kind_of(t).and_then(|k| self.markers.get(&k));
        for name in custom.into_iter().chain(marker.cloned()) {
            if !out.contains(&name) {
                out.push(name);
            }
        }
        Ok(out)
    }

    async fn read_options(&self, t: &ObjectType) -> Result<ReadOptions> {
        Ok(ReadOptions::default()
            .properties(self.properties(t).await?)
            .associations(linked(t).iter().map(ObjectType::as_str)))
    }

    /// The object of `kind` with `id`, and its type (activities are looked up per type).
    async fn find(&self, kind: ObjectKind, id: &str) -> Result<(ObjectType, HubSpotObject)> {
        for t in object_types(kind) {
            let options = self.read_options(t).await?;
            match self.client.objects(t.clone()).get(id, &options).await {
                Ok(o) => return Ok((t.clone(), o)),
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Err(
            Error::new(ErrorKind::NotFound, format!("no HubSpot {kind} {id}"))
                .with_crm(Crm::HubSpot),
        )
    }

    /// Records of `kind` by id, one result per id in order: batch reads of up to 100 ids
    /// (`POST crm/v3/objects/{type}/batch/read`), a few in flight, each page's links read
    /// as the change feed reads them. Activity ids not found in one type are looked up in
    /// the next; an id found in none is its own `NotFound`.
    async fn get_all(&self, kind: ObjectKind, ids: &[String]) -> Vec<Result<Record>> {
        let chunks: Vec<Vec<String>> = ids
            .chunks(crate::batch::BATCH_SIZE)
            .map(<[String]>::to_vec)
            .collect();
        let parts: Vec<Vec<Result<Record>>> = stream::iter(chunks)
            .map(|chunk| self.get_chunk(kind, chunk))
            .buffered(GET_CONCURRENCY)
            .collect()
            .await;
        parts.into_iter().flatten().collect()
    }

    /// [`Self::get_all`] for at most 100 ids.
    async fn get_chunk(&self, kind: ObjectKind, ids: Vec<String>) -> Vec<Result<Record>> {
        let not_found = |id: &str| {
            Error::new(ErrorKind::NotFound, format!("no HubSpot {kind} {id}"))
                .with_crm(Crm::HubSpot)
                .with_record(format!("{kind} {id}"))
        };
        let mut out: Vec<Result<Record>> = ids.iter().map(|id| Err(not_found(id))).collect();
        for t in object_types(kind) {
            let pending: Vec<usize> = (0..ids.len())
                .filter(|&i| matches!(&out[i], Err(e) if e.kind() == ErrorKind::NotFound))
                .collect();
            if pending.is_empty() {
                break;
            }
            let props = match self.properties(t).await {
                Ok(p) => p,
                Err(e) => {
                    for i in pending {
                        out[i] = Err(e.clone());
                    }
                    break;
                }
            };
            let wanted = pending.iter().map(|&i| ids[i].clone()).collect();
            let mut found: Vec<(usize, HubSpotObject)> = Vec::new();
            for (i, got) in pending
                .into_iter()
                .zip(feed::hydrate(&self.client, t, wanted, &props).await)
            {
                match got {
                    Ok(o) => found.push((i, o)),
                    // Not of this type: the next one may hold it.
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => out[i] = Err(e),
                }
            }
            let read: Vec<usize> = found.iter().map(|f| f.0).collect();
            match feed::with_links(&self.client, t, found, |f| &mut f.1).await {
                Ok(linked) => {
                    for (i, o) in linked {
                        out[i] = to_record(t, &o).map_err(|e| {
                            e.with_crm(Crm::HubSpot)
                                .with_record(format!("{kind} {}", ids[i]))
                        });
                    }
                }
                Err(e) => {
                    for i in read {
                        out[i] = Err(e.clone());
                    }
                }
            }
        }
        out
    }

    /// Ends the link from record `id` of `t` to `old` of `to` without losing a label a user
    /// or app put on that pair. Without labels, the association goes as a whole. With them,
    /// only HubSpot's primary label goes: the unlabelled association stays, because
    /// "Deleting an unlabeled association will also delete all labeled associations between
    /// those two objects" (associations v4, `POST …/batch/labels/archive`; HubSpot's v4
    /// associations API reference).
    async fn unlink_default(
        &self,
        t: &ObjectType,
        id: &str,
        to: &ObjectType,
        old: &str,
    ) -> Result<()> {
        use crate::association_types::HUBSPOT_DEFINED;
        use crate::associations::Category;
        let assoc = self.client.associations();
        let pairs: Vec<crate::associations::Associated> = assoc
            .list(t, id, to)
            .try_filter(|a| futures::future::ready(a.to_object_id == old))
            .try_collect()
            .await?;
        let types: Vec<_> = pairs
            .into_iter()
            .flat_map(|a| a.association_types)
            .collect();
        if types.is_empty() {
            return Ok(());
        }
        let primary = |type_id: u32| {
            HUBSPOT_DEFINED
                .iter()
                .any(|(name, n)| *n == type_id && name.starts_with("PRIMARY_"))
        };
        let hubspots = |a: &crate::associations::AssociationType| {
            a.category == Category::HubspotDefined && (a.label.is_none() || primary(a.type_id))
        };
        if types.iter().all(hubspots) {
            return assoc.remove(t, id, to, old).await;
        }
        let primaries: Vec<serde_json::Value> = types
            .iter()
            .filter(|a| a.category == Category::HubspotDefined && primary(a.type_id))
            .map(|a| {
                serde_json::json!({"associationCategory": "HUBSPOT_DEFINED",
                                   "associationTypeId": a.type_id})
            })
            .collect();
        if primaries.is_empty() {
            return Ok(());
        }
        let req = crmkit_core::http::ApiRequest::post(
            format!(
                "crm/v4/associations/{}/{}/batch/labels/archive",
                t.segment()?,
                to.segment()?
            ),
            serde_json::json!({"inputs": [{"from": {"id": id}, "to": {"id": old},
                                           "types": primaries}]}),
        )
        .repeat_safe();
        self.client.raw(&req).await.map(|_| ())
    }

    /// Adds the links of newly written records (company, person), one request each.
    async fn link(
        &self,
        t: &ObjectType,
        id: &str,
        now: (Option<&str>, Option<&str>),
        before: Option<(Option<String>, Option<String>)>,
    ) -> Result<()> {
        let assoc = self.client.associations();
        let pairs = [
            (
                ObjectType::Companies,
                now.0,
                before.as_ref().map(|b| b.0.clone()),
            ),
            (
                ObjectType::Contacts,
                now.1,
                before.as_ref().map(|b| b.1.clone()),
            ),
        ];
        for (to, new, old) in pairs {
            if !linked(t).contains(&to) {
                continue;
            }
            let old = old.flatten();
            if old.as_deref() == new {
                continue;
            }
            // Without `raw`, only links that are set are written (the contract's patch rule).
            if new.is_none() && before.is_none() {
                continue;
            }
            // The new link first: should either call fail, the record is left linked to
            // both records rather than to none, so no association is lost.
            if let Some(new) = new {
                let types: Vec<AssociationSpec> = link_types(t, &to)
                    .into_iter()
                    .map(AssociationSpec::hubspot_defined)
                    .collect();
                assoc.associate(t, id, &to, new, &types).await?;
            }
            if let Some(old) = &old {
                self.unlink_default(t, id, &to, old).await?;
            }
        }
        Ok(())
    }

    /// Records grouped by object type, with their input positions.
    fn by_type<T>(
        items: Vec<(usize, ObjectType, T)>,
    ) -> BTreeMap<String, (ObjectType, Vec<(usize, T)>)> {
        let mut groups: BTreeMap<String, (ObjectType, Vec<(usize, T)>)> = BTreeMap::new();
        for (i, t, item) in items {
            groups
                .entry(t.as_str().to_string())
                .or_insert_with(|| (t, Vec::new()))
                .1
                .push((i, item));
        }
        groups
    }

    async fn create_all(&self, records: Vec<Record>) -> Vec<Result<RecordRef>> {
        let n = records.len();
        let mut out: Vec<Option<Result<RecordRef>>> = (0..n).map(|_| None).collect();
        let mut items = Vec::new();
        for (i, r) in records.into_iter().enumerate() {
            // What HubSpot cannot hold (a secondary email, a third phone) is refused, not
            // dropped in silence.
            match patch::check_create(&r) {
                Ok(()) => items.push((i, object_type_of(&r), r)),
                Err(e) => out[i] = Some(Err(e.with_crm(Crm::HubSpot).with_record(r.describe()))),
            }
        }
        for (_, (t, group)) in Self::by_type(items) {
            let inputs = group
                .iter()
                .map(|(_, r)| {
                    let (company, person) = patch::links(r);
                    let associations = [
                        (ObjectType::Companies, company),
                        (ObjectType::Contacts, person),
                    ]
                    .into_iter()
                    .filter(|(to, _)| linked(&t).contains(to))
                    .flat_map(|(to, id)| {
                        let id = id.map(str::to_string);
                        link_types(&t, &to).into_iter().filter_map(move |n| {
                            Some(NewAssociation::hubspot_defined(id.clone()?, n))
                        })
                    })
                    .collect();
                    CreateInput {
                        properties: patch::create_properties(r),
                        associations,
                    }
                })
                .collect();
            let results = self.client.objects(t.clone()).batch_create(inputs).await;
            for ((i, r), res) in group.into_iter().zip(results) {
                out[i] = Some(
                    res.map(|o| RecordRef::new(Crm::HubSpot, r.kind(), o.id))
                        .map_err(|e| e.with_crm(Crm::HubSpot).with_record(r.describe())),
                );
            }
        }
        finish(out)
    }

    async fn update_all(&self, records: Vec<Record>) -> Vec<Result<RecordRef>> {
        let n = records.len();
        let mut out: Vec<Option<Result<RecordRef>>> = (0..n).map(|_| None).collect();
        let mut items = Vec::new();
        for (i, r) in records.into_iter().enumerate() {
            match patch::update(&r) {
                Ok(u) => items.push((i, object_type_of(&r), (r, u))),
                Err(e) => out[i] = Some(Err(e.with_crm(Crm::HubSpot).with_record(r.describe()))),
            }
        }
        for (_, (t, group)) in Self::by_type(items) {
            let inputs: Vec<UpdateInput> = group
                .iter()
                .filter(|(_, (_, u))| !u.properties.is_empty())
                .map(|(_, (r, u))| UpdateInput {
                    id: r.id().unwrap_or_default().to_string(),
                    properties: u.properties.clone(),
                })
                .collect();
            let mut sent = self
                .client
                .objects(t.clone())
                .batch_update(inputs)
                .await
                .into_iter();
            for (i, (r, u)) in group {
                let id = r.id().unwrap_or_default().to_string();
                let written = if u.properties.is_empty() {
                    Ok(())
                } else {
                    sent.next()
                        .unwrap_or_else(|| Err(Error::bad_response("no batch result")))
                        .map(|_| ())
                };
                let linked = match written {
                    Ok(()) => self.link(&t, &id, patch::links(&r), u.before).await,
                    Err(e) => Err(e),
                };
                out[i] = Some(
                    linked
                        .map(|()| RecordRef::new(Crm::HubSpot, r.kind(), id))
                        .map_err(|e| e.with_crm(Crm::HubSpot).with_record(r.describe())),
                );
            }
        }
        finish(out)
    }

    async fn create_marked_all(&self, records: Vec<Marked>) -> Vec<Result<RecordRef>> {
        let n = records.len();
        let mut out: Vec<Option<Result<RecordRef>>> = (0..n).map(|_| None).collect();
        // Same type and marker: one write, and every input gets its result.
        let mut first: HashMap<(String, String), usize> = HashMap::new();
        let mut copies: Vec<(usize, usize)> = Vec::new();
        let mut items = Vec::new();
        for (i, m) in records.into_iter().enumerate() {
            let kind = m.record.kind();
            let label = format!("{} (marker {:?})", m.record.describe(), m.marker);
            let prop = match self.marker_property(kind) {
                Ok(p) => p.to_string(),
                Err(e) => {
                    out[i] = Some(Err(e.with_record(label)));
                    continue;
                }
            };
            let t = object_type_of(&m.record);
            match first.entry((t.as_str().to_string(), m.marker.clone())) {
                std::collections::hash_map::Entry::Occupied(o) => {
                    copies.push((i, *o.get()));
                    continue;
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(i);
                }
            }
            if let Err(e) = patch::check_create(&m.record) {
                out[i] = Some(Err(e.with_crm(Crm::HubSpot).with_record(label)));
                continue;
            }
            let mut properties = patch::create_properties(&m.record);
            if let Some(have) = properties
                .get(&prop)
                .filter(|v| !v.eq_ignore_ascii_case(&m.marker))
            {
                out[i] = Some(Err(Error::new(
                    ErrorKind::Validation,
                    format!(
                        "the record's {prop} {have:?} is not its marker: the marker lives in {prop}"
                    ),
                )
                .with_crm(Crm::HubSpot)
                .with_record(label)));
                continue;
            }
            properties.insert(prop.clone(), m.marker.clone());
            items.push((i, t, (m, prop, properties)));
        }
        for (_, (t, group)) in Self::by_type(items) {
            let objects = self.client.objects(t.clone());
            // One idProperty per request: group again by marker property.
            let mut by_prop: BTreeMap<String, Vec<_>> = BTreeMap::new();
            for g in group {
                by_prop.entry(g.1.1.clone()).or_default().push(g);
            }
            for (prop, group) in by_prop {
                if let Err(e) = self.ensure_marker(&t, &prop).await {
                    for (i, (m, _, _)) in group {
                        let label = format!("{} (marker {:?})", m.record.describe(), m.marker);
                        out[i] = Some(Err(e.clone().with_record(label)));
                    }
                    continue;
                }
                let markers: Vec<String> = group
                    .iter()
                    .map(|(_, (m, _, _))| m.marker.clone())
                    .collect();
                let options = ReadOptions::default().properties([prop.as_str()]);
                let found = objects.batch_read(markers, &options, Some(&prop)).await;
                let mut missing = Vec::new();
                for ((i, (m, p, props)), f) in group.into_iter().zip(found) {
                    match f {
                        Ok(o) if !o.archived => {
                            // Found after an interrupted run: its links may never have been
                            // made, and a default association is idempotent, so make them.
                            let linked = self.link(&t, &o.id, patch::links(&m.record), None).await;
                            out[i] = Some(
                                linked
                                    .map(|()| RecordRef::new(Crm::HubSpot, m.record.kind(), o.id)),
                            );
                        }
                        Ok(_) => missing.push((i, (m, p, props))),
                        Err(e) if e.kind() == ErrorKind::NotFound => {
                            missing.push((i, (m, p, props)))
                        }
                        // A lookup that failed says nothing about the record: upserting now
                        // could overwrite an existing one with the create payload.
                        Err(e) => out[i] = Some(Err(e)),
                    }
                }
                let inputs = missing
                    .iter()
                    .map(|(_, (m, _, props))| UpdateInput {
                        id: m.marker.clone(),
                        properties: props.clone(),
                    })
                    .collect();
                let results = objects.batch_upsert(&prop, inputs).await;
                for ((i, (m, _, _)), res) in missing.into_iter().zip(results) {
                    let done = match res {
                        Ok(u) => {
                            // Linked whether created now or by an interrupted run.
                            let linked = self
                                .link(&t, &u.object.id, patch::links(&m.record), None)
                                .await;
                            linked.map(|()| {
                                RecordRef::new(Crm::HubSpot, m.record.kind(), u.object.id)
                            })
                        }
                        Err(e) => Err(e),
                    };
                    out[i] = Some(done.map_err(|e| {
                        e.with_crm(Crm::HubSpot).with_record(format!(
                            "{} (marker {:?})",
                            m.record.describe(),
                            m.marker
                        ))
                    }));
                }
            }
        }
        for (i, from) in copies {
            out[i] = out[from].clone();
        }
        finish(out)
    }

    async fn delete_all(&self, refs: Vec<RecordRef>) -> Vec<Result<RecordRef>> {
        let n = refs.len();
        let mut out: Vec<Option<Result<RecordRef>>> = (0..n).map(|_| None).collect();
        let mut items = Vec::new();
        for (i, r) in refs.into_iter().enumerate() {
            let t = if r.object == ObjectKind::Activity {
                match self.find(r.object, &r.id).await {
                    Ok((t, _)) => t,
                    Err(e) => {
                        out[i] = Some(Err(e.with_record(r.to_string())));
                        continue;
                    }
                }
            } else {
                object_types(r.object)[0].clone()
            };
            items.push((i, t, r));
        }
        for (_, (t, group)) in Self::by_type(items) {
            let ids = group.iter().map(|(_, r)| r.id.clone()).collect();
            let results = self.client.objects(t).batch_archive(ids).await;
            for ((i, r), res) in group.into_iter().zip(results) {
                let label = r.to_string();
                out[i] = Some(
                    res.map(|()| r)
                        .map_err(|e| e.with_crm(Crm::HubSpot).with_record(label)),
                );
            }
        }
        finish(out)
    }
}

/// The results in input order; a slot left empty (never expected) is reported, not hidden.
fn finish(out: Vec<Option<Result<RecordRef>>>) -> Vec<Result<RecordRef>> {
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(
                    Error::bad_response("the batch answer did not account for this record")
                        .with_crm(Crm::HubSpot),
                )
            })
        })
        .collect()
}

#[async_trait]
impl Connector for HubSpotConnector {
    fn crm(&self) -> Crm {
        Crm::HubSpot
    }

    fn changes(
        &self,
        kind: ObjectKind,
        since: Option<ChangeCursor>,
    ) -> BoxStream<'_, Result<Change>> {
        let config = feed::FeedConfig {
            overlap: self.overlap.max(chrono::Duration::zero()),
            page_size: self.page_size,
        };
        stream::once(async move {
            let mut properties = BTreeMap::new();
            for t in object_types(kind) {
                properties.insert(t.as_str().to_string(), self.properties(t).await?);
            }
            Ok::<_, Error>(feed::changes(&self.client, kind, since, config, properties))
        })
        .try_flatten()
        .boxed()
    }

    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Record> {
        let (t, o) = self.find(kind, id).await?;
        // A v3 read lists associated records without saying which is primary; v4 does.
        let o = feed::with_links(&self.client, &t, vec![o], |o| o)
            .await?
            .pop()
            .ok_or_else(|| Error::bad_response("the associations read lost the record"))?;
        to_record(&t, &o).map_err(|e| e.with_crm(Crm::HubSpot).with_record(format!("{kind} {id}")))
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
        let prop = self.marker_property(kind)?;
        for t in object_types(kind) {
            // No such property: no record can carry the marker (and HubSpot would refuse
            // the idProperty).
            if !self.has_property(t, prop).await? {
                continue;
            }
            let options = ReadOptions::default().properties([prop]);
            match self
                .client
                .objects(t.clone())
                .get_by(prop, marker, &options)
                .await
            {
                Ok(o) if !o.archived => return Ok(Some(RecordRef::new(Crm::HubSpot, kind, o.id))),
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
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
        let query = query.to_string();
        stream::iter(object_types(kind))
            .then(move |t| {
                let query = query.clone();
                async move {
                    let props = self.properties(t).await?;
                    // Lean search, full read per page: see `feed::upserts` (search body cap).
                    let req = SearchRequest::new().query(query).properties(feed::keys(t));
                    Ok::<_, Error>(
                        self.client
                            .objects(t.clone())
                            .search_all(req)
                            .try_chunks(crate::batch::BATCH_SIZE)
                            .map_err(|e| e.1)
                            .and_then(move |page| {
                                let props = props.clone();
                                async move {
                                    let ids = page.into_iter().map(|o| o.id).collect();
                                    let (mut read, mut failed) = (Vec::new(), Vec::new());
                                    let full = feed::hydrate(&self.client, t, ids, &props).await;
                                    for (i, o) in full.into_iter().enumerate() {
                                        match o {
                                            Ok(o) => read.push((i, o)),
                                            Err(e) => failed.push((i, Err(e))),
                                        }
                                    }
                                    let read =
                                        feed::with_links(&self.client, t, read, |r| &mut r.1)
                                            .await?;
                                    let mut rows: Vec<(usize, Result<Record>)> = read
                                        .into_iter()
                                        .map(|(i, o)| (i, to_record(t, &o)))
                                        .chain(failed)
                                        .collect();
                                    rows.sort_by_key(|r| r.0);
                                    Ok(rows.into_iter().map(|r| r.1).collect::<Vec<_>>())
                                }
                            })
                            .map_ok(stream::iter)
                            .try_flatten(),
                    )
                }
            })
            .try_flatten()
            .boxed()
    }
}
