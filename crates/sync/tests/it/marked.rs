//! Marked creates on HubSpot for these tests.
//!
//! Real HubSpot accepts any custom property created with `hasUniqueValue: true` as the
//! `idProperty` of batch read and upsert
//! (https://developers.hubspot.com/docs/api/crm/properties, unique identifier properties),
//! which is how the HubSpot connector keeps markers. The sandbox resolves `idProperty` for
//! contacts' `email` only so far, so here marked creates look the marker property up by CRM
//! search instead and create with it set. Everything else is the connector itself.

use async_trait::async_trait;
use crmkit_core::connector::Marked;
use crmkit_core::{
    BatchOutcome, Change, ChangeCursor, Connector, Crm, ObjectKind, Record, RecordRef, Result,
};
use crmkit_hubspot::{Client, Filter, HubSpotConnector, SearchRequest};
use futures::stream::BoxStream;
use serde_json::Value;

/// The marker property on companies, contacts and deals.
pub const MARKER: &str = "crmkit_marker";

/// The HubSpot connector with marker lookups by search.
pub struct SearchMarked {
    /// The connector.
    pub inner: HubSpotConnector,
    /// Its client, for the searches.
    pub client: Client,
}

fn plural(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Company => "companies",
        ObjectKind::Person => "contacts",
        ObjectKind::Deal => "deals",
        ObjectKind::Activity => "notes",
    }
}

#[async_trait]
impl Connector for SearchMarked {
    fn crm(&self) -> Crm {
        self.inner.crm()
    }

    fn changes(
        &self,
        kind: ObjectKind,
        since: Option<ChangeCursor>,
    ) -> BoxStream<'_, Result<Change>> {
        self.inner.changes(kind, since)
    }

    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Record> {
        self.inner.get(kind, id).await
    }

    async fn create(&self, records: Vec<Record>) -> BatchOutcome {
        self.inner.create(records).await
    }

    async fn create_marked(&self, records: Vec<Marked>) -> BatchOutcome {
        let mut results = Vec::new();
        for m in records {
            let kind = m.record.kind();
            let found = match self.find_by_marker(kind, &m.marker).await {
                Ok(f) => f,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            if let Some(r) = found {
                results.push(Ok(r));
                continue;
            }
            let mut record = m.record;
            record
                .custom_mut()
                .insert(MARKER.to_string(), Value::String(m.marker));
            let mut out = self.inner.create(vec![record]).await;
            results.push(out.results.pop().unwrap_or_else(|| {
                Err(crmkit_core::Error::bad_response("no result for a create"))
            }));
        }
        BatchOutcome { results }
    }

    async fn find_by_marker(&self, kind: ObjectKind, marker: &str) -> Result<Option<RecordRef>> {
        let page = self
            .client
            .objects(plural(kind))
            .search(&SearchRequest::new().filter(Filter::eq(MARKER, marker)))
            .await?;
        Ok(page
            .results
            .first()
            .map(|o| RecordRef::new(Crm::HubSpot, kind, o.id.to_string())))
    }

    async fn update(&self, records: Vec<Record>) -> BatchOutcome {
        self.inner.update(records).await
    }

    async fn delete(&self, refs: Vec<RecordRef>) -> BatchOutcome {
        self.inner.delete(refs).await
    }

    fn search(&self, kind: ObjectKind, query: &str) -> BoxStream<'_, Result<Record>> {
        self.inner.search(kind, query)
    }
}
