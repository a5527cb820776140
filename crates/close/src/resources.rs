//! The per-resource handler shared by every Close collection, and list streams that never
//! stop at the `_skip` ceiling and never skip a live record when others are deleted: keyset
//! slices on (`date_created`, id) over `/data/search/` for leads and contacts, and over
//! `GET ?date_created__gte=…&date_created__lt=…&_order_by=date_created` for the collections
//! that document those filters (opportunities, tasks, activities), where `_skip` is used
//! only to page through records sharing one instant.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use crmkit_core::http::ApiRequest;
use crmkit_core::http::paginate::{Page, paginate};
use crmkit_core::keyset::{self, KeysetConfig, KeysetCursor, SlicePage, SliceRequest};
use crmkit_core::{Crm, Error, ErrorKind, Result};
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
            page_size: 100.min(max_page(&self.path)),
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

/// How a collection pages past its `_skip` ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paging {
    /// Leads and contacts document neither `_order_by` nor `date_created__gte`
    /// (close-openapi.yml /lead/, /contact/): keyset slices over `/data/search/`.
    Search(&'static str),
    /// Opportunities, tasks and activities document `_order_by` and `date_created__*`
    /// (close-openapi.yml /opportunity/, /task/, /activity/): keyset slices over `GET`.
    DateSlices,
    /// Small configuration collections: offsets up to the ceiling.
    Offsets,
}

/// A filter that Close's lead or contact list does not document, as an error: Close ignores
/// such parameters and would answer with every record. close-openapi.yml gives `GET /lead/`
/// only `_limit`, `_skip` and `_fields`; its older docs also listed the (deprecated since
/// 2022-02-14) text `query`, which this client still passes through on leads.
/// `GET /contact/` adds `lead_id`.
fn undocumented_filter(object_type: &str, filters: &[(String, String)]) -> Option<Error> {
    let documented: &[&str] = if object_type == "contact" {
        &["lead_id"]
    } else {
        &["query"]
    };
    let (key, _) = filters
        .iter()
        .find(|(k, _)| !documented.contains(&k.as_str()))?;
    Some(
        Error::new(
            ErrorKind::Validation,
            format!(
                "Close's {object_type} list takes no `{key}` filter (it documents only `{}`); search with Client::search or search_text instead",
                documented.join("`, `")
            ),
        )
        .with_crm(Crm::Close),
    )
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

/// The number a 400 names after `key = `: the skip ceiling in "The skip you set is larger
/// than the maximum skip for this resource (max_skip = N). …" (airbyte issue 20959), the
/// page ceiling in "The limit you set is larger than the maximum limit for this resource
/// (max_limit = N)." (closeio/flask-mongorest resources.py).
fn named_in(e: &Error, key: &str) -> Option<usize> {
    if e.status() != Some(400) {
        return None;
    }
    let rest = e.message().split(&format!("{key} = ")).nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The largest page known to work on a collection: the sizes Airbyte's Close source uses
/// "due to maximum Close.com limit of data per request" (airbytehq/airbyte source-close-com
/// manifest.yaml and bootstrap.md); 100, flask-mongorest's default maximum, elsewhere.
pub(crate) fn max_page(path: &str) -> usize {
    match path.trim_matches('/') {
        "lead" => 200,
        "opportunity" => 250,
        "task" | "user" | "custom_field" | "sequence" => 1000,
        "event" => 50,
        _ => 100,
    }
}

/// `_limit` for a page: what was asked, within what the server taught us.
fn learned(limit: usize, ceiling: &AtomicUsize) -> usize {
    limit.min(ceiling.load(Ordering::Relaxed)).max(1)
}

impl<T: DeserializeOwned> ListBuilder<T> {
    /// Adds a filter such as `lead_id=lead_…` or `date_updated__gte=2024-01-01`. Leads take
    /// only the deprecated text `query` and contacts only `lead_id`; any other filter on them
    /// is refused, since Close would ignore it and answer with every record.
    /// A filtered listing of leads or contacts pages by offset and stops with an error at the
    /// `_skip` ceiling. On opportunities,
    /// tasks and activities, `date_created__gte` / `date_created__lt` narrow the listing's
    /// own range; `date_created__gt`, `date_created__lte` and `_order_by` are refused, since
    /// the listing orders and bounds by `date_created` itself.
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

    /// Objects per request (`_limit`), capped at the largest page known to work on this
    /// collection (lead 200, opportunity 250, task and user 1000, event 50, others 100). A
    /// server that still answers "…(max_limit = N)" is asked again with pages of N.
    pub fn limit(mut self, n: usize) -> Self {
        self.page_size = n.clamp(1, max_page(&self.path));
        self
    }

    /// Every matching object, oldest first, one page in memory at a time, past the `_skip`
    /// ceiling without duplicates or gaps.
    ///
    /// Leads listed without filters are read through `/data/search/`, which is not shown to
    /// return nested lists: their `addresses`, `contacts` and `opportunities` are empty (read
    /// one lead with [`Resource::get`] for those).
    pub fn stream(self) -> BoxStream<'static, Result<T>>
    where
        T: Send + 'static,
    {
        match paging(&self.path) {
            Paging::Search(object_type) if self.filters.is_empty() => {
                self.search_stream(object_type)
            }
            Paging::Search(object_type) => match undocumented_filter(object_type, &self.filters) {
                Some(e) => futures::stream::once(async { Err(e) }).boxed(),
                None => self.offset_stream(),
            },
            Paging::DateSlices => match self.date_range() {
                Ok((from, until)) => self.date_stream(from, until),
                Err(e) => futures::stream::once(async { Err(e) }).boxed(),
            },
            Paging::Offsets => self.offset_stream(),
        }
    }

    /// Pages by `_skip` up to the collection's ceiling.
    fn offset_stream(self) -> BoxStream<'static, Result<T>>
    where
        T: Send + 'static,
    {
        let ceiling = Arc::new(AtomicUsize::new(self.page_size));
        paginate(0usize, move |skip| {
            let this = self.clone();
            let ceiling = ceiling.clone();
            async move { this.page(skip, &ceiling).await }
        })
        .boxed()
    }

    /// The `date_created` range the user's filters ask for, refusing the filters the
    /// listing's own ordering and range would contradict.
    fn date_range(&self) -> Result<(Bound, Bound)> {
        let (mut from, mut until) = (None, None);
        for (k, v) in &self.filters {
            let slot = match k.as_str() {
                "date_created__gte" => &mut from,
                "date_created__lt" => &mut until,
                "_order_by" | "_skip" | "_limit" | "date_created" | "date_created__gt"
                | "date_created__lte" => {
                    return Err(Error::new(
                        ErrorKind::Validation,
                        format!(
                            "{} listings order and bound by date_created themselves; use \
                             date_created__gte / date_created__lt instead of {k}",
                            self.path
                        ),
                    ));
                }
                _ => continue,
            };
            let t = crmkit_core::time::parse_timestamp(v).ok_or_else(|| {
                Error::new(
                    ErrorKind::Validation,
                    format!("{k}={v:?} is not a date or time"),
                )
            })?;
            *slot = Some(t);
        }
        Ok((from, until))
    }

    /// A listing of a collection that documents `date_created` filters and `_order_by`:
    /// keyset slices on (`date_created`, id), `_skip` only inside one instant.
    fn date_stream(self, from: Bound, until: Bound) -> BoxStream<'static, Result<T>>
    where
        T: Send + 'static,
    {
        // date_created never changes, so a listing needs no upper bound of its own: none is
        // sent unless the caller gave one, and no client clock can hide recent objects.
        let until = until.unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
        let config = KeysetConfig::new(self.page_size).until(until);
        let start = from.map(|time| KeysetCursor {
            time,
            ids: Vec::new(),
        });
        let path = self.path.clone();
        let ceiling = Arc::new(AtomicUsize::new(self.page_size));
        keyset::slices(
            config,
            start,
            |raw: &Value| crate::fields::key(raw, "date_created"),
            move |req| {
                let this = self.clone();
                let ceiling = ceiling.clone();
                async move { this.date_page(&req, &ceiling).await }
            },
        )
        .map(move |r| decode(&path, r?.item))
        .boxed()
    }

    /// One page of a `date_created` slice.
    async fn date_page(
        &self,
        req: &SliceRequest,
        ceiling: &AtomicUsize,
    ) -> Result<SlicePage<Value>> {
        let skip: usize = match req.page.as_deref() {
            None => 0,
            Some(p) => p
                .parse()
                .map_err(|_| Error::bad_response(format!("bad page token {p:?}")))?,
        };
        let max_skip = self.client.max_skip(&self.path);
        if skip > max_skip {
            return Err(Error::new(
                ErrorKind::BadResponse,
                format!(
                    "more than {max_skip} {} objects share one date_created; cannot page past them",
                    self.path
                ),
            ));
        }
        loop {
            let mut r = self.base_request(skip, learned(req.limit, ceiling), true);
            if let Some(from) = req.from {
                r = r.query("date_created__gte", crmkit_core::time::format_close(from));
            }
            if let Some(until) = req.upper_bound() {
                r = r.query("date_created__lt", crmkit_core::time::format_close(until));
            }
            r = r.query("_order_by", "date_created");
            match self.client.json::<ListPage<Value>>(&r).await {
                Ok(page) => {
                    // Close may answer fewer than asked: the offset moves by what came.
                    let next = (page.has_more && !page.data.is_empty())
                        .then(|| (skip + page.data.len()).to_string());
                    return Ok(SlicePage {
                        items: page.data,
                        next,
                    });
                }
                Err(e) => match named_in(&e, "max_limit") {
                    Some(n) if n > 0 && n < learned(req.limit, ceiling) => {
                        ceiling.store(n, Ordering::Relaxed);
                    }
                    _ if skip > 0 && named_in(&e, "max_skip").is_some() => {
                        return Err(Error::new(
                            ErrorKind::BadResponse,
                            format!(
                                "more than {} {} objects share one date_created; cannot page past them",
                                named_in(&e, "max_skip").unwrap_or(skip),
                                self.path
                            ),
                        ));
                    }
                    _ => return Err(e),
                },
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
        // No upper bound is needed (date_created never changes), so none is sent: no client
        // clock can hide objects created just now.
        let config = KeysetConfig::new(self.page_size).until(chrono::DateTime::<Utc>::MAX_UTC);
        let path = self.path.clone();
        self.client
            .search_slices(object_type, "date_created", fields, config, None)
            .map(move |r| decode(&path, r?.item))
            .boxed()
    }

    /// A `GET` of the collection with the user's filters; `own_dates` leaves out the
    /// `date_created` filters a slice sets itself.
    fn base_request(&self, skip: usize, limit: usize, own_dates: bool) -> ApiRequest {
        let mut req = ApiRequest::get(self.path.clone());
        for (k, v) in &self.filters {
            if !(own_dates && k.starts_with("date_created")) {
                req = req.query(k.clone(), v.clone());
            }
        }
        req = req
            .query("_skip", skip.to_string())
            .query("_limit", limit.to_string());
        if let Some(f) = &self.fields {
            req = req.query("_fields", f.clone());
        }
        req
    }

    /// One offset page, for collections too small to need slicing (and filtered lead or
    /// contact listings, which have no documented way past the ceiling).
    async fn page(&self, skip: usize, ceiling: &AtomicUsize) -> Result<Page<T, usize>> {
        let max_skip = self.client.max_skip(&self.path);
        if skip > max_skip {
            // Reached only after every page below the ceiling was handed out.
            return Err(Error::new(
                ErrorKind::Validation,
                format!(
                    "Close pages {} only up to _skip {max_skip}; narrow the listing with filters",
                    self.path
                ),
            ));
        }
        let page: ListPage<Value> = loop {
            let req = self.base_request(skip, learned(self.page_size, ceiling), false);
            match self.client.json(&req).await {
                Ok(p) => break p,
                Err(e) => match named_in(&e, "max_limit") {
                    Some(n) if n > 0 && n < learned(self.page_size, ceiling) => {
                        ceiling.store(n, Ordering::Relaxed);
                    }
                    _ => return Err(e),
                },
            }
        };
        let received = page.data.len();
        let items = page
            .data
            .into_iter()
            .map(|raw| decode(&self.path, raw))
            .collect::<Result<Vec<T>>>()?;
        // Close may answer fewer than asked: the offset moves by what was received.
        let next = (page.has_more && received > 0).then_some(skip + received);
        Ok(Page { items, next })
    }
}

/// One end of a `date_created` range; `None` is open.
type Bound = Option<DateTime<Utc>>;

/// A listed object in its typed form, or an error naming it.
fn decode<T: DeserializeOwned>(path: &str, raw: Value) -> Result<T> {
    let id = raw["id"].as_str().unwrap_or_default().to_string();
    serde_json::from_value::<T>(raw).map_err(|e| {
        Error::bad_response(format!(
            "{path} {id} does not match the expected shape: {e}"
        ))
    })
}
