//! The per-resource handler shared by every Close collection, and list streams that never
//! stop at the `_skip` ceiling: keyset slices over `/data/search/` for leads and contacts,
//! `date_created` slices for the collections that document `_order_by`.

use std::marker::PhantomData;

use crmkit_core::http::ApiRequest;
use crmkit_core::http::paginate::{Page, paginate};
use crmkit_core::keyset::{self, KeysetConfig};
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
            return Err(Error::new(
                ErrorKind::Validation,
                format!("{id:?} is not a valid Close id"),
            ));
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
        self.client.json(&ApiRequest::get(self.item(id)?)).await
    }

    /// Creates an object from any serializable payload (a `*Fields` struct or JSON).
    pub async fn create(&self, fields: &impl Serialize) -> Result<T> {
        let body = serde_json::to_value(fields)?;
        self.client
            .json(&ApiRequest::post(self.path.clone(), body))
            .await
    }

    /// Updates the fields present in `fields`; the others stay as they are.
    pub async fn update(&self, id: &str, fields: &impl Serialize) -> Result<T> {
        let body = serde_json::to_value(fields)?;
        self.client
            .json(&ApiRequest::put(self.item(id)?, body))
            .await
    }

    /// Deletes an object.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.client
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

/// How a collection pages past its `_skip` ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paging {
    /// Leads and contacts document neither `_order_by` nor `date_created__gte`
    /// (close-openapi.yml /lead/, /contact/): keyset slices over `/data/search/`.
    Search(&'static str),
    /// Opportunities, tasks and activities document `_order_by` and `date_created__gte`:
    /// offset pages inside `date_created` slices.
    DateSlices,
    /// Small configuration collections: offsets up to the ceiling.
    Offsets,
}

fn paging(path: &str) -> Paging {
    match path.trim_matches('/') {
        "lead" => Paging::Search("lead"),
        "contact" => Paging::Search("contact"),
        p if p == "opportunity" || p == "task" || p == "activity" || p.starts_with("activity/") => {
            Paging::DateSlices
        }
        _ => Paging::Offsets,
    }
}

/// The ceiling a 400 names: "The skip you set is larger than the maximum skip for this
/// resource (max_skip = N). …" (airbyte issue 20959).
fn ceiling_in(e: &Error) -> Option<usize> {
    let rest = e.message().split("max_skip = ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl<T: DeserializeOwned> ListBuilder<T> {
    /// Adds a filter such as `lead_id=lead_…` or `date_updated__gte=2024-01-01`. Leads and
    /// contacts document no filters but `lead_id` on contacts: a filtered listing of them
    /// pages by offset and stops with an error at the `_skip` ceiling.
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

    /// Objects per request (`_limit`, at most 200; Close clamps larger pages itself).
    pub fn limit(mut self, n: usize) -> Self {
        self.page_size = n.clamp(1, 200);
        self
    }

    /// Every matching object, oldest first, one page in memory at a time, past the `_skip`
    /// ceiling without duplicates or gaps.
    pub fn stream(self) -> BoxStream<'static, Result<T>>
    where
        T: Send + 'static,
    {
        match paging(&self.path) {
            Paging::Search(object_type) if self.filters.is_empty() => {
                self.search_stream(object_type)
            }
            _ => {
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
        }
    }

    fn search_stream(self, object_type: &'static str) -> BoxStream<'static, Result<T>>
    where
        T: Send + 'static,
    {
        let fields: Vec<String> = match &self.fields {
            Some(f) => f.split(',').map(str::to_string).collect(),
            None => crate::fields::listing(object_type)
                .iter()
                .map(|f| f.to_string())
                .collect(),
        };
        // No upper bound is needed (date_created never changes); a minute of slack keeps
        // objects created just now on a server whose clock runs ahead.
        let config = KeysetConfig::new(self.page_size)
            .until(chrono::Utc::now() + chrono::Duration::minutes(1));
        let client = self.client.clone();
        let path = self.path.clone();
        keyset::slices(
            config,
            None,
            |raw: &Value| crate::fields::key(raw, "date_created"),
            move |req| {
                let client = client.clone();
                let fields = fields.clone();
                async move {
                    client
                        .slice(object_type, "date_created", &fields, &req)
                        .await
                }
            },
        )
        .map(move |r| {
            let raw = r?.item;
            let id = raw["id"].as_str().unwrap_or_default().to_string();
            serde_json::from_value::<T>(raw).map_err(|e| {
                Error::bad_response(format!(
                    "{path} {id} does not match the expected shape: {e}"
                ))
            })
        })
        .boxed()
    }

    fn request(&self, c: &SliceCursor, sliced: bool) -> ApiRequest {
        let mut req = ApiRequest::get(self.path.clone());
        for (k, v) in &self.filters {
            req = req.query(k.clone(), v.clone());
        }
        if sliced {
            if let Some(since) = &c.since {
                req = req.query("date_created__gte", since.clone());
            }
            req = req.query("_order_by", "date_created");
        }
        req = req
            .query("_skip", c.skip.to_string())
            .query("_limit", self.page_size.to_string());
        if let Some(f) = &self.fields {
            req = req.query("_fields", f.clone());
        }
        req
    }

    /// The next slice, starting at the newest `date_created` yielded and skipping the ids
    /// already yielded there.
    fn next_slice(&self, c: &SliceCursor, ceiling: usize) -> Result<SliceCursor> {
        if c.last != c.since || c.at_last.len() > c.skip_ids.len() {
            Ok(SliceCursor {
                since: c.last.clone(),
                skip: 0,
                skip_ids: c.at_last.clone(),
                last: c.last.clone(),
                at_last: c.at_last.clone(),
            })
        } else {
            Err(Error::new(
                ErrorKind::BadResponse,
                format!(
                    "more than {ceiling} {} objects share one date_created; cannot page past them",
                    self.path
                ),
            ))
        }
    }

    async fn page(&self, c: SliceCursor) -> Result<Page<T, SliceCursor>> {
        let sliced = paging(&self.path) == Paging::DateSlices;
        let ceiling = self.client.max_skip(&self.path);
        let page: ListPage<Value> = match self.client.json(&self.request(&c, sliced)).await {
            Ok(p) => p,
            // The server's ceiling is lower than the configured one: slice where it says.
            Err(e) if sliced && c.skip > 0 && ceiling_in(&e).is_some_and(|n| c.skip > n) => {
                let next = self.next_slice(&c, c.skip)?;
                return Ok(Page {
                    items: Vec::new(),
                    next: Some(next),
                });
            }
            Err(e) => return Err(e),
        };
        let received = page.data.len();
        let mut items = Vec::with_capacity(received);
        let mut at = c.clone();
        for raw in page.data {
            let id = raw["id"].as_str().unwrap_or_default().to_string();
            let created = raw["date_created"].as_str().map(str::to_string);
            if c.since.is_some() && created == c.since && c.skip_ids.contains(&id) {
                continue;
            }
            if created != at.last {
                at.last = created;
                at.at_last.clear();
            }
            at.at_last.push(id.clone());
            let item = serde_json::from_value::<T>(raw).map_err(|e| {
                Error::bad_response(format!(
                    "{} {id} does not match the expected shape: {e}",
                    self.path
                ))
            })?;
            items.push(item);
        }
        // Close may clamp `_limit`: the offset moves by what was received, not what was asked.
        let skip = c.skip + received;
        let next = if !page.has_more || received == 0 {
            None
        } else if skip <= ceiling {
            Some(SliceCursor { skip, ..at })
        } else if sliced {
            Some(self.next_slice(&at, ceiling)?)
        } else {
            return Err(Error::new(
                ErrorKind::Validation,
                format!(
                    "Close pages {} only up to _skip {ceiling}; narrow the listing with filters",
                    self.path
                ),
            ));
        };
        Ok(Page { items, next })
    }
}
