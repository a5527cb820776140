//! The per-resource handler shared by every Close collection, and list streams that slice by
//! `date_created` instead of failing at the `_skip` ceiling.

use std::marker::PhantomData;

use crmkit_core::http::ApiRequest;
use crmkit_core::http::paginate::{Page, paginate};
use crmkit_core::{Error, ErrorKind, Result};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::Client;
use crate::models::ListPage;

/// Create, read, update, delete and list one Close collection (`lead/`, `contact/`…).
pub struct Resource<T> {
    client: Client,
    path: String,
    _t: PhantomData<fn() -> T>,
}

// Manual impls: derives would demand `T: Clone + Debug`, which the handle never needs.
impl<T> Clone for Resource<T> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            path: self.path.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Resource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resource")
            .field("path", &self.path)
            .finish()
    }
}

impl<T> Clone for ListBuilder<T> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            path: self.path.clone(),
            filters: self.filters.clone(),
            fields: self.fields.clone(),
            page_size: self.page_size,
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for ListBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListBuilder")
            .field("path", &self.path)
            .field("filters", &self.filters)
            .finish()
    }
}

impl<T: DeserializeOwned> Resource<T> {
    pub(crate) fn new(client: Client, path: impl Into<String>) -> Self {
        Self {
            client,
            path: path.into(),
            _t: PhantomData,
        }
    }

    fn item(&self, id: &str) -> Result<String> {
        if id.is_empty() || id.contains(['/', '?', '#']) {
            return Err(Error::config(format!("{id:?} is not a valid Close id")));
        }
        Ok(format!("{}{id}/", self.path))
    }

    /// Starts a listing; call [`ListBuilder::stream`] to run it.
    pub fn list(&self) -> ListBuilder<T> {
        ListBuilder {
            client: self.client.clone(),
            path: self.path.clone(),
            filters: Vec::new(),
            fields: None,
            page_size: 100,
            _t: PhantomData,
        }
    }

    /// Reads one object.
    pub async fn get(&self, id: &str) -> Result<T> {
        self.client
            .transport()
            .json(&ApiRequest::get(self.item(id)?))
            .await
    }

    /// Creates an object from any serializable payload (a `*Fields` struct or JSON).
    pub async fn create(&self, fields: &impl Serialize) -> Result<T> {
        let body = serde_json::to_value(fields)?;
        self.client
            .transport()
            .json(&ApiRequest::post(self.path.clone(), body))
            .await
    }

    /// Updates the fields present in `fields`; the others stay as they are.
    pub async fn update(&self, id: &str, fields: &impl Serialize) -> Result<T> {
        let body = serde_json::to_value(fields)?;
        self.client
            .transport()
            .json(&ApiRequest::put(self.item(id)?, body))
            .await
    }

    /// Deletes an object.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.client
            .transport()
            .send(&ApiRequest::delete(self.item(id)?))
            .await
            .map(|_| ())
    }
}

/// A listing being built: filters, fields and page size.
pub struct ListBuilder<T> {
    client: Client,
    path: String,
    filters: Vec<(String, String)>,
    fields: Option<String>,
    page_size: usize,
    _t: PhantomData<fn() -> T>,
}

/// Where a sliced listing stands: the `date_created` floor of the current slice and the
/// offset in it, the ids at that floor the previous slice already yielded, and the newest
/// `date_created` yielded so far with every id yielded at it (a new slice starts there).
#[derive(Debug, Clone, PartialEq)]
struct SliceCursor {
    since: Option<String>,
    skip: usize,
    skip_ids: Vec<String>,
    last: Option<String>,
    at_last: Vec<String>,
}

impl<T: DeserializeOwned> ListBuilder<T> {
    /// Adds a filter such as `lead_id=lead_…` or `date_updated__gte=2024-01-01`.
    pub fn filter(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.filters.push((key.into(), value.into()));
        self
    }

    /// Asks only for these fields (`_fields`); `id` and `date_created` are always added
    /// because slicing needs them.
    pub fn fields(mut self, fields: &[&str]) -> Self {
        let mut f: Vec<&str> = fields.to_vec();
        for needed in ["id", "date_created"] {
            if !f.contains(&needed) {
                f.push(needed);
            }
        }
        self.fields = Some(f.join(","));
        self
    }

    /// Objects per request (`_limit`, at most 100).
    pub fn limit(mut self, n: usize) -> Self {
        self.page_size = n.clamp(1, 100);
        self
    }

    /// Every matching object, oldest first, one page in memory at a time.
    pub fn stream(self) -> BoxStream<'static, Result<T>>
    where
        T: Send + 'static,
    {
        let start = SliceCursor {
            since: None,
            skip: 0,
            skip_ids: Vec::new(),
            last: None,
            at_last: Vec::new(),
        };
        paginate(start, move |cursor| {
            let this = self.clone();
            async move { this.page(cursor).await }
        })
        .boxed()
    }

    fn request(&self, c: &SliceCursor) -> ApiRequest {
        let mut req = ApiRequest::get(self.path.clone());
        for (k, v) in &self.filters {
            req = req.query(k.clone(), v.clone());
        }
        if let Some(since) = &c.since {
            req = req.query("date_created__gte", since.clone());
        }
        req = req
            .query("_order_by", "date_created")
            .query("_skip", c.skip.to_string())
            .query("_limit", self.page_size.to_string());
        if let Some(f) = &self.fields {
            req = req.query("_fields", f.clone());
        }
        req
    }

    async fn page(&self, c: SliceCursor) -> Result<Page<T, SliceCursor>> {
        let ceiling = self.client.max_skip();
        let page: ListPage<Value> = self.client.transport().json(&self.request(&c)).await?;
        let mut items = Vec::with_capacity(page.data.len());
        let (mut last, mut at_last) = (c.last.clone(), c.at_last.clone());
        for raw in page.data {
            let id = raw["id"].as_str().unwrap_or_default().to_string();
            let created = raw["date_created"].as_str().map(str::to_string);
            if c.since.is_some() && created == c.since && c.skip_ids.contains(&id) {
                continue;
            }
            if created != last {
                last = created;
                at_last.clear();
            }
            at_last.push(id.clone());
            let item = serde_json::from_value::<T>(raw).map_err(|e| {
                Error::bad_response(format!(
                    "{} {id} does not match the expected shape: {e}",
                    self.path
                ))
            })?;
            items.push(item);
        }
        let next = if !page.has_more {
            None
        } else if c.skip + self.page_size <= ceiling {
            Some(SliceCursor {
                skip: c.skip + self.page_size,
                last,
                at_last,
                ..c
            })
        } else if last != c.since || at_last.len() > c.skip_ids.len() {
            // The next offset would pass the ceiling: start a new slice at the newest
            // date_created seen, skipping the ids already yielded there.
            Some(SliceCursor {
                since: last.clone(),
                skip: 0,
                skip_ids: at_last.clone(),
                last,
                at_last,
            })
        } else {
            return Err(Error::new(
                ErrorKind::BadResponse,
                format!(
                    "more than {ceiling} {} objects share one date_created; cannot page past them",
                    self.path
                ),
            ));
        };
        Ok(Page { items, next })
    }
}
