//! The unified model on Close: Company = lead, Person = contact, Deal = opportunity,
//! Activity = note, call, email or meeting activity.
//!
//! The connector keeps the [`Connector`] contract: the change feed pages by keyset on
//! (`date_updated`, id) over `/data/search/` with an upper bound fixed at the start of each
//! run and an overlap window (default one minute) for late-indexed records; deletions come
//! from the event log as tombstones; SMS, status-change and other activity types with no
//! unified form are reported as [`Change::Skipped`]. Updates send only what changed; an
//! update with nothing to send makes no request and succeeds without checking that the id
//! exists. Creates of companies, people and deals can carry an idempotency marker stored in a
//! custom field ([`CloseConnector::with_marker_field`]); built-in activities cannot hold one
//! (Close custom fields exist on leads, contacts, opportunities and custom activities only,
//! developer.close.com custom fields docs), so a marked activity create is made idempotent
//! by a natural key instead: the lead's activities of the same type and second are listed
//! (`GET /activity/<type>/?lead_id=…&activity_at__gte=…&activity_at__lt=…`,
//! close-openapi.yml) and one with the same type, time
//! (`activity_at`, to the second), contact, subject and body (trimmed, whitespace runs as one
//! space) is taken as the record already created and returned. [`Connector::find_created`]
//! is the same lookup; `find_by_marker` refuses activities, as the marker alone finds
//! nothing. The limit: two genuinely identical activities on one lead at the same second
//! (same contact, subject and body) are one; an activity created without a time is matched
//! on its text alone (Close stamps it with the time of creation).
//!
//! A marker is looked up twice before a create: through `/data/search/` (reading the
//! marker field back and comparing it exactly), then, because Close's search index updates
//! asynchronously and a record created just before an interruption may not be in it yet,
//! through the event log's `created` events of the last ten minutes, matching
//! `data["custom.<field>"]` (close-openapi.yml /event/: `object_type` + `action` with
//! `date_updated__gte`). Records of one batch sharing a marker are created once.

mod feed;
mod mapping;
mod patch;

use std::collections::BTreeMap;

use async_trait::async_trait;
use crmkit_core::connector::{Change, Marked};
use crmkit_core::http::ApiRequest;
use crmkit_core::{
    BatchOutcome, ChangeCursor, Connector, Crm, Error, ErrorKind, ObjectKind, Record, RecordRef,
    Result, batch,
};
use futures::future;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde_json::Value;

use crate::client::{Client, close_id};
use crate::filter::{Condition, Field, Query, SearchRequest};
use crate::text_query;
use crate::webhook::EventQuery;

pub(crate) use mapping::to_record;

/// Writes in flight at once for a batch; Close has no batch endpoints.
const WRITE_CONCURRENCY: usize = 4;

/// How far back the event log is read for creates the search index may not show yet.
const RECENT_CREATES: chrono::Duration = chrono::Duration::minutes(10);

/// [`Connector`] for Close.
#[derive(Debug, Clone)]
pub struct CloseConnector {
    client: Client,
    /// The custom field holding idempotency markers, per kind.
    markers: BTreeMap<ObjectKind, String>,
    overlap: chrono::Duration,
    page_size: usize,
}

impl CloseConnector {
    /// A connector using `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            markers: BTreeMap::new(),
            overlap: chrono::Duration::minutes(1),
            page_size: 200,
        }
    }

    /// Records per change-feed page (default 200, the most `/data/search/` returns).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.clamp(1, 200);
        self
    }

    /// Stores idempotency markers of companies, people and deals in the custom field
    /// `field_id` (`cf_…`; a Close shared custom field can serve leads, contacts and
    /// opportunities). Activities cannot hold one: see the module docs.
    pub fn with_marker_field(mut self, field_id: &str) -> Self {
        for kind in [ObjectKind::Company, ObjectKind::Person, ObjectKind::Deal] {
            self.markers.insert(kind, field_id.to_string());
        }
        self
    }

    /// Stores idempotency markers of `kind` in the custom field `field_id`. For
    /// [`ObjectKind::Activity`] the field is not used: built-in activities have no custom
    /// fields, so marked activity creates go by their natural key (see the module docs).
    pub fn with_marker_field_for(mut self, kind: ObjectKind, field_id: &str) -> Self {
        self.markers.insert(kind, field_id.to_string());
        self
    }

    /// How far before a resumed cursor the change feed starts again, for records Close
    /// indexes late (default one minute).
    pub fn with_overlap(mut self, overlap: std::time::Duration) -> Self {
        self.overlap = chrono::Duration::from_std(overlap).unwrap_or(chrono::Duration::MAX);
        self
    }

    fn marker_field(&self, kind: ObjectKind) -> Result<&str> {
        if kind == ObjectKind::Activity {
            return Err(Error::config(
                "Close notes, calls, emails and meetings cannot hold an idempotency marker (custom fields exist on leads, contacts, opportunities and custom activities only): find a created activity with find_created, by its natural key",
            )
            .with_crm(Crm::Close));
        }
        self.markers.get(&kind).map(String::as_str).ok_or_else(|| {
            Error::config(format!(
                "no marker field for {kind}s: configure CloseConnector::with_marker_field"
            ))
            .with_crm(Crm::Close)
        })
    }

    async fn create_one(&self, record: Record) -> Result<RecordRef> {
        let kind = record.kind();
        let (collection, body) = patch::create_body(&record)?;
        let v = self.client.raw(&ApiRequest::post(collection, body)).await?;
        record_ref(kind, &v)
    }

    async fn update_one(&self, record: Record) -> Result<RecordRef> {
        let kind = record.kind();
        let (path, fields) = patch::update_body(&record, kind)?;
        let id = record.id().unwrap_or_default().to_string();
        if !fields.is_empty() {
            self.client
                .raw(&ApiRequest::put(path, Value::Object(fields)))
                .await?;
        }
        Ok(RecordRef::new(Crm::Close, kind, id))
    }

    async fn create_marked_one(&self, m: Marked) -> Result<RecordRef> {
        let kind = m.record.kind();
        if kind == ObjectKind::Activity {
            if let Some(found) = self.same_activity(&m.record).await? {
                return Ok(found);
            }
            return self.create_one(m.record).await;
        }
        let field = self.marker_field(kind)?.to_string();
        if let Some(found) = self.find_by_marker(kind, &m.marker).await? {
            return Ok(found);
        }
        if let Some(found) = self.recently_created(kind, &field, &m.marker).await? {
            return Ok(found);
        }
        let mut record = m.record;
        record.custom_mut().insert(field, Value::String(m.marker));
        self.create_one(record).await
    }

    /// The activity of `record`'s lead that `record` would be once created, if one exists:
    /// the natural-key lookup that stands in for a marker (see the module docs).
    async fn same_activity(&self, record: &Record) -> Result<Option<RecordRef>> {
        let (collection, mut body) = patch::create_body(record)?;
        let Some(lead) = body["lead_id"].as_str().map(str::to_string) else {
            // Close refuses an activity without its lead: nothing can exist to be found.
            return Ok(None);
        };
        let lead = close_id(&lead)?.to_string();
        let Record::Activity(a) = record else {
            return Ok(None);
        };
        body["_type"] = Value::String(mapping::activity_type_name(a.kind).to_string());
        // Compared as Close holds it: what it does not store (a call's subject) never counts.
        let Record::Activity(shaped) = to_record(ObjectKind::Activity, body)? else {
            return Ok(None);
        };
        let want = mapping::natural_key(&shaped);
        let mut list = self
            .client
            .resource::<Value>(&collection)
            .list()
            .filter("lead_id", lead);
        // Only the activities of that second (`activity_at__gte` / `__lt`, close-openapi.yml
        // /activity/<type>/), so a lead with years of notes is not read whole per create.
        if let Some(at) = shaped.occurred_at {
            let second = chrono::DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at);
            let next = second + chrono::Duration::seconds(1);
            list = list
                .filter("activity_at__gte", crmkit_core::time::format_close(second))
                .filter("activity_at__lt", crmkit_core::time::format_close(next));
        }
        let found = list
            .stream()
            .try_filter_map(|v| {
                let hit = match to_record(ObjectKind::Activity, v) {
                    Ok(Record::Activity(a)) if want.matches(&mapping::natural_key(&a)) => a.id,
                    _ => None,
                };
                future::ready(Ok(hit))
            })
            .try_next()
            .await?;
        Ok(found.map(|id| RecordRef::new(Crm::Close, ObjectKind::Activity, id)))
    }

    /// A record of `kind` whose `created` event of the last few minutes carries `marker`,
    /// and that still exists: the second lookup, for creates the search index lags behind.
    async fn recently_created(
        &self,
        kind: ObjectKind,
        field: &str,
        marker: &str,
    ) -> Result<Option<RecordRef>> {
        let Some(collection) = collection(kind) else {
            return Ok(None);
        };
        let since = chrono::Utc::now()
            .checked_sub_signed(RECENT_CREATES)
            .unwrap_or_default();
        let key = format!("custom.{field}");
        let hit = self
            .client
            .events(EventQuery {
                object_type: Some(feed::object_type(kind).to_string()),
                action: Some("created".into()),
                date_updated_gte: Some(crmkit_core::time::format_close(since)),
                ..EventQuery::default()
            })
            .try_filter(|e| {
                future::ready(
                    e.data[key.as_str()].as_str() == Some(marker) && e.object_id.is_some(),
                )
            })
            .try_next()
            .await?;
        let Some(id) = hit.and_then(|e| e.object_id) else {
            return Ok(None);
        };
        let id = close_id(&id)?;
        // Created and since deleted: no longer a record to return.
        match self
            .client
            .raw(&ApiRequest::get(format!("{collection}{id}/")))
            .await
        {
            Ok(_) => Ok(Some(RecordRef::new(Crm::Close, kind, id))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn record_ref(kind: ObjectKind, v: &Value) -> Result<RecordRef> {
    let id = v["id"]
        .as_str()
        .ok_or_else(|| Error::bad_response("Close returned an object without an id"))?;
    Ok(RecordRef::new(Crm::Close, kind, id))
}

/// The item collection of a kind; activities have one per type, found with
/// [`Client::find_activity`].
fn collection(kind: ObjectKind) -> Option<&'static str> {
    match kind {
        ObjectKind::Company => Some("lead/"),
        ObjectKind::Person => Some("contact/"),
        ObjectKind::Deal => Some("opportunity/"),
        ObjectKind::Activity => None,
    }
}

fn valid_id(kind: ObjectKind, id: &str) -> Result<&str> {
    close_id(id).map_err(|e| e.with_record(format!("{kind} {id}")))
}

#[async_trait]
impl Connector for CloseConnector {
    fn crm(&self) -> Crm {
        Crm::Close
    }

    fn changes(
        &self,
        kind: ObjectKind,
        since: Option<ChangeCursor>,
    ) -> BoxStream<'_, Result<Change>> {
        feed::changes(&self.client, kind, since, self.overlap, self.page_size)
    }

    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Record> {
        valid_id(kind, id)?;
        let v = match collection(kind) {
            Some(c) => {
                self.client
                    .raw(&ApiRequest::get(format!("{c}{id}/")))
                    .await?
            }
            None => self.client.find_activity(id).await?.1,
        };
        to_record(kind, v).map_err(|e| e.with_crm(Crm::Close).with_record(format!("{kind} {id}")))
    }

    async fn create(&self, records: Vec<Record>) -> BatchOutcome {
        BatchOutcome {
            results: batch::each(records, WRITE_CONCURRENCY, Record::describe, |r| {
                self.create_one(r)
            })
            .await,
        }
    }

    async fn create_marked(&self, records: Vec<Marked>) -> BatchOutcome {
        BatchOutcome {
            // Same marker, same record: one create, and both inputs get its result.
            results: batch::each_unique(
                records,
                WRITE_CONCURRENCY,
                |m| (m.record.kind(), m.marker.clone()),
                |m| format!("{} (marker {:?})", m.record.describe(), m.marker),
                |m| self.create_marked_one(m),
            )
            .await,
        }
    }

    async fn find_by_marker(&self, kind: ObjectKind, marker: &str) -> Result<Option<RecordRef>> {
        let field = self.marker_field(kind)?;
        let ot = feed::object_type(kind);
        // The text condition is the one documented for text fields; it may match more than
        // the marker (words, prefixes), so the field is read back and compared exactly.
        let query = Query::and(vec![
            Query::object_type(ot),
            Query::field(
                Field::CustomField {
                    custom_field_id: field.to_string(),
                },
                Condition::Text {
                    mode: "phrase".into(),
                    value: marker.to_string(),
                },
            ),
        ]);
        let key = format!("custom.{field}");
        let req = SearchRequest::new(query).fields(ot, &["id", key.as_str()]);
        let hit = self
            .client
            .search(req)
            .try_filter(|v| future::ready(v[key.as_str()].as_str() == Some(marker)))
            .try_next()
            .await?;
        hit.map(|v| record_ref(kind, &v)).transpose()
    }

    async fn find_created(&self, created: &Marked) -> Result<Option<RecordRef>> {
        match created.record.kind() {
            ObjectKind::Activity => self.same_activity(&created.record).await,
            kind => self.find_by_marker(kind, &created.marker).await,
        }
    }

    async fn update(&self, records: Vec<Record>) -> BatchOutcome {
        BatchOutcome {
            results: batch::each(records, WRITE_CONCURRENCY, Record::describe, |r| {
                self.update_one(r)
            })
            .await,
        }
    }

    async fn delete(&self, refs: Vec<RecordRef>) -> BatchOutcome {
        let results = batch::each(
            refs,
            WRITE_CONCURRENCY,
            RecordRef::to_string,
            |r| async move {
                valid_id(r.object, &r.id)?;
                let collection = match collection(r.object) {
                    Some(c) => c.to_string(),
                    None => self.client.find_activity(&r.id).await?.0,
                };
                self.client
                    .raw(&ApiRequest::delete(format!("{collection}{}/", r.id)))
                    .await
                    .map(|_| r)
            },
        )
        .await;
        BatchOutcome { results }
    }

    fn search(&self, kind: ObjectKind, text: &str) -> BoxStream<'_, Result<Record>> {
        if kind != ObjectKind::Company {
            let e = Error::new(
                ErrorKind::Validation,
                "the Close query language searches companies (leads); filter people, deals and activities through them",
            );
            return stream::once(async { Err(e) }).boxed();
        }
        let text = text.to_string();
        stream::once(async move { self.client.search_text_request(&text).await })
            .map_ok(|req| {
                self.client
                    .search(req.fields("lead", crate::fields::listing("lead")))
            })
            .try_flatten()
            .and_then(|raw| async move { to_record(ObjectKind::Company, raw) })
            .boxed()
    }
}

impl Client {
    /// Compiles a text query (resolving `custom.<name>` through the lead custom fields) into
    /// an Advanced Filtering request for leads.
    pub async fn search_text_request(&self, text: &str) -> Result<SearchRequest> {
        let parsed = text_query::parse(text)?;
        let wanted = text_query::custom_field_names(&parsed);
        let fields = if wanted.is_empty() {
            Vec::new()
        } else {
            self.custom_field_schema("lead").await?
        };
        let resolve = |name: &str| {
            fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))
                .map(|f| f.id.clone())
        };
        Ok(text_query::compile(&parsed, chrono::Utc::now(), &resolve)?)
    }

    /// Runs a text query and returns the matching leads (the fields a [`crate::Lead`] has).
    pub async fn search_text(&self, text: &str) -> Result<Vec<Value>> {
        let req = self
            .search_text_request(text)
            .await?
            .fields("lead", crate::fields::listing("lead"));
        self.search(req).try_collect().await
    }
}
