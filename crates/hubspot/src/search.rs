//! CRM search (`POST /crm/v3/objects/{type}/search`): a typed filter builder, HubSpot's
//! limits checked before anything is sent, and a stream that reads past the 10,000-result
//! cap.
//!
//! Filter groups are OR-ed, the filters inside a group AND-ed (HubSpot CRM search guide,
//! developers.hubspot.com/docs/api/crm/search). The limits ([`SearchLimits::DOCUMENTED`])
//! come from that guide: at most 5 filter groups, 6 filters per group and 18 filters in
//! all, one sort rule, pages of at most 200, queries of at most 3,000 characters, and no
//! more than 10,000 results through paging. (A 2024 changelog announced 5 × 10 and 25 in
//! all; the two sources conflict, so the stricter numbers are the default and
//! [`SearchLimits`] can be relaxed.)
//!
//! [`crate::Objects::search_all`] reads every match by keyset slicing on (modification
//! time, `hs_object_id`) with [`crmkit_core::keyset`], and never sends an `after` offset, so
//! no query can page into the 10,000-result cap however many records share one instant:
//!
//! - each query adds `time ≥ last instant read` and `time < the run's start` to every
//!   filter group and sorts by time; ids already read at the last instant are dropped;
//! - when a page is full of one instant `t`, that instant is walked by id instead:
//!   `time = t AND hs_object_id > last id read`, sorted by `hs_object_id` ascending (HubSpot
//!   allows one sort, so ties under a time sort come in no defined order); when that walk
//!   ends, the same answer goes on with `time > t AND time < the run's start`, sorted by
//!   time, and slicing resumes from there.
//!
//! Every slice adds at most two filters to each group, and they count against the limits
//! above: a request whose groups hold more than 4 filters, or more than 18 − 2 × groups in
//! all, is refused before anything is sent.
//!
//! The upper bound is fixed when a run starts. A record modified while a run reads moves
//! to a later time, past that bound: the run does not return it (if it was not read yet)
//! or does not return it twice (if it was), and the next run from the cursor returns it
//! with its new values. Delivery across runs is therefore at least once: a record read
//! and then modified is delivered again by the next run.

use std::fmt;

use chrono::{DateTime, Utc};
use crmkit_core::http::ApiRequest;
use crmkit_core::keyset::{self, KeysetConfig, KeysetCursor, SlicePage, SliceRequest, Sliced};
use crmkit_core::time::parse_timestamp;
use crmkit_core::{Crm, Error, ErrorKind, Result};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::objects::{HubSpotObject, Objects, Paging};

/// A filter operator (`PublicObjectSearchRequest`, HubSpot CRM search guide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operator {
    /// Equal.
    Eq,
    /// Not equal.
    Neq,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Between `value` and `highValue`, inclusive.
    Between,
    /// One of `values`.
    In,
    /// None of `values`.
    NotIn,
    /// The property has a value.
    HasProperty,
    /// The property has no value.
    NotHasProperty,
    /// Contains the token (`*` is a wildcard).
    ContainsToken,
    /// Does not contain the token.
    NotContainsToken,
}

/// One filter. Values are strings; dates are epoch milliseconds or ISO text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// The property compared (or a pseudo-property such as `associations.contact`).
    pub property_name: String,
    /// The comparison.
    pub operator: Operator,
    /// The value, for single-value operators and the low end of `BETWEEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The high end of `BETWEEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_value: Option<String>,
    /// The values of `IN` / `NOT_IN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

impl Filter {
    fn one(property: impl Into<String>, operator: Operator, value: impl Into<String>) -> Self {
        Self {
            property_name: property.into(),
            operator,
            value: Some(value.into()),
            high_value: None,
            values: None,
        }
    }

    fn none(property: impl Into<String>, operator: Operator) -> Self {
        Self {
            property_name: property.into(),
            operator,
            value: None,
            high_value: None,
            values: None,
        }
    }

    fn many<I: IntoIterator<Item = S>, S: Into<String>>(
        property: impl Into<String>,
        operator: Operator,
        values: I,
    ) -> Self {
        Self {
            values: Some(values.into_iter().map(Into::into).collect()),
            ..Self::none(property, operator)
        }
    }

    /// `property = value`.
    pub fn eq(property: impl Into<String>, value: impl Into<String>) -> Self {
        Self::one(property, Operator::Eq, value)
    }
    /// `property ≠ value`.
    pub fn neq(property: impl Into<String>, value: impl Into<String>) -> Self {
        Self::one(property, Operator::Neq, value)
    }
    /// `property < value`.
    pub fn lt(property: impl Into<String>, value: impl Into<String>) -> Self {
        Self::one(property, Operator::Lt, value)
    }
    /// `property ≤ value`.
    pub fn lte(property: impl Into<String>, value: impl Into<String>) -> Self {
        Self::one(property, Operator::Lte, value)
    }
    /// `property > value`.
    pub fn gt(property: impl Into<String>, value: impl Into<String>) -> Self {
        Self::one(property, Operator::Gt, value)
    }
    /// `property ≥ value`.
    pub fn gte(property: impl Into<String>, value: impl Into<String>) -> Self {
        Self::one(property, Operator::Gte, value)
    }
    /// `low ≤ property ≤ high`.
    pub fn between(
        property: impl Into<String>,
        low: impl Into<String>,
        high: impl Into<String>,
    ) -> Self {
        Self {
            high_value: Some(high.into()),
            ..Self::one(property, Operator::Between, low)
        }
    }
    /// `property` is one of `values` (the guide asks for lowercase strings, except for
    /// enumeration properties, which compare case-sensitively).
    pub fn is_in<I: IntoIterator<Item = S>, S: Into<String>>(
        property: impl Into<String>,
        values: I,
    ) -> Self {
        Self::many(property, Operator::In, values)
    }
    /// `property` is none of `values`.
    pub fn not_in<I: IntoIterator<Item = S>, S: Into<String>>(
        property: impl Into<String>,
        values: I,
    ) -> Self {
        Self::many(property, Operator::NotIn, values)
    }
    /// `property` has a value.
    pub fn has_property(property: impl Into<String>) -> Self {
        Self::none(property, Operator::HasProperty)
    }
    /// `property` has no value.
    pub fn not_has_property(property: impl Into<String>) -> Self {
        Self::none(property, Operator::NotHasProperty)
    }
    /// `property` contains the token `value` (`*` is a wildcard).
    pub fn contains_token(property: impl Into<String>, value: impl Into<String>) -> Self {
        Self::one(property, Operator::ContainsToken, value)
    }
    /// `property` does not contain the token `value`.
    pub fn not_contains_token(property: impl Into<String>, value: impl Into<String>) -> Self {
        Self::one(property, Operator::NotContainsToken, value)
    }

    /// Whether the filter carries the values its operator needs.
    fn well_formed(&self) -> bool {
        use Operator::*;
        match self.operator {
            HasProperty | NotHasProperty => true,
            Between => self.value.is_some() && self.high_value.is_some(),
            In | NotIn => self.values.as_ref().is_some_and(|v| !v.is_empty()),
            _ => self.value.is_some(),
        }
    }
}

/// Filters that must all match (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterGroup {
    /// The filters.
    pub filters: Vec<Filter>,
}

impl FilterGroup {
    /// A group of one filter.
    pub fn new(filter: Filter) -> Self {
        Self {
            filters: vec![filter],
        }
    }

    /// Adds a filter that must match too.
    pub fn and(mut self, filter: Filter) -> Self {
        self.filters.push(filter);
        self
    }
}

/// The order of a sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    /// Oldest / smallest first.
    Ascending,
    /// Newest / largest first.
    Descending,
}

/// A sort rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sort {
    /// The property sorted on.
    pub property_name: String,
    /// The order.
    pub direction: Direction,
}

/// HubSpot's search limits, checked before a request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchLimits {
    /// Filter groups per request.
    pub max_groups: usize,
    /// Filters per group.
    pub max_filters_per_group: usize,
    /// Filters in all groups together.
    pub max_filters_total: usize,
    /// Sort rules.
    pub max_sorts: usize,
    /// Results per page.
    pub max_page_size: usize,
    /// Results reachable through paging (`after` + page).
    pub max_results: usize,
    /// Characters of the request body.
    pub max_body_chars: usize,
}

impl SearchLimits {
    /// The HubSpot CRM search guide's numbers: 5 groups, 6 filters per group, 18 in all,
    /// one sort, 200 per page, 10,000 results, 3,000 characters.
    pub const DOCUMENTED: SearchLimits = SearchLimits {
        max_groups: 5,
        max_filters_per_group: 6,
        max_filters_total: 18,
        max_sorts: 1,
        max_page_size: 200,
        max_results: 10_000,
        max_body_chars: 3_000,
    };
}

impl Default for SearchLimits {
    fn default() -> Self {
        Self::DOCUMENTED
    }
}

/// A search: filter groups (OR-ed), sorts, a full-text query, properties and paging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchRequest {
    /// The filter groups, OR-ed.
    pub filter_groups: Vec<FilterGroup>,
    /// The sort rules (HubSpot allows one).
    pub sorts: Vec<Sort>,
    /// Full-text search over the type's default searchable properties.
    pub query: Option<String>,
    /// Properties to return; empty means the type's defaults.
    pub properties: Vec<String>,
    /// Results per page (default 10 on HubSpot's side, at most 200).
    pub limit: Option<usize>,
    /// The offset HubSpot handed back as `paging.next.after`.
    pub after: Option<String>,
}

impl SearchRequest {
    /// An empty search (matches everything).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `filter` to the last group (AND), starting one if there is none.
    pub fn filter(mut self, filter: Filter) -> Self {
        match self.filter_groups.last_mut() {
            Some(g) => g.filters.push(filter),
            None => self.filter_groups.push(FilterGroup::new(filter)),
        }
        self
    }

    /// Adds a group that may match instead (OR).
    pub fn or(mut self, group: FilterGroup) -> Self {
        self.filter_groups.push(group);
        self
    }

    /// Adds a sort rule.
    pub fn sort(mut self, property: impl Into<String>, direction: Direction) -> Self {
        self.sorts.push(Sort {
            property_name: property.into(),
            direction,
        });
        self
    }

    /// Sets the full-text query.
    pub fn query(mut self, query: impl Into<String>) -> Self {
        self.query = Some(query.into());
        self
    }

    /// Asks for `names` as properties.
    pub fn properties<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.properties.extend(names.into_iter().map(Into::into));
        self
    }

    /// Sets the page size.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Starts at HubSpot's offset `after`.
    pub fn after(mut self, after: impl Into<String>) -> Self {
        self.after = Some(after.into());
        self
    }

    /// The JSON body sent.
    pub fn to_json(&self) -> Value {
        let mut body = json!({ "filterGroups": self.filter_groups });
        if !self.sorts.is_empty() {
            body["sorts"] = json!(self.sorts);
        }
        if let Some(q) = &self.query {
            body["query"] = json!(q);
        }
        if !self.properties.is_empty() {
            body["properties"] = json!(self.properties);
        }
        if let Some(l) = self.limit {
            body["limit"] = json!(l);
        }
        if let Some(a) = &self.after {
            body["after"] = json!(a);
        }
        body
    }

    /// Checks the request against `limits`; the error says which limit and by how much.
    pub fn validate(&self, limits: &SearchLimits) -> Result<()> {
        let refuse = |m: String| Err(Error::new(ErrorKind::Validation, m).with_crm(Crm::HubSpot));
        if self.filter_groups.len() > limits.max_groups {
            return refuse(format!(
                "{} filter groups; HubSpot allows at most {}",
                self.filter_groups.len(),
                limits.max_groups
            ));
        }
        let mut total = 0;
        for (i, g) in self.filter_groups.iter().enumerate() {
            if g.filters.is_empty() {
                return refuse(format!("filter group {i} has no filters"));
            }
            if g.filters.len() > limits.max_filters_per_group {
                return refuse(format!(
                    "filter group {i} has {} filters; HubSpot allows at most {} per group",
                    g.filters.len(),
                    limits.max_filters_per_group
                ));
            }
            if let Some(f) = g.filters.iter().find(|f| !f.well_formed()) {
                return refuse(format!(
                    "the {:?} filter on {:?} lacks the value(s) its operator needs",
                    f.operator, f.property_name
                ));
            }
            total += g.filters.len();
        }
        if total > limits.max_filters_total {
            return refuse(format!(
                "{total} filters in all; HubSpot allows at most {}",
                limits.max_filters_total
            ));
        }
        if self.sorts.len() > limits.max_sorts {
            return refuse(format!(
                "{} sort rules; HubSpot allows {}",
                self.sorts.len(),
                limits.max_sorts
            ));
        }
        let limit = self.limit.unwrap_or(10);
        if limit == 0 || limit > limits.max_page_size {
            return refuse(format!(
                "a page of {limit}; HubSpot allows 1 to {}",
                limits.max_page_size
            ));
        }
        if let Some(a) = &self.after {
            let Ok(offset) = a.parse::<usize>() else {
                return refuse(format!(
                    "after {a:?} is not the numeric offset HubSpot hands out"
                ));
            };
            // HubSpot refuses offsets from its cap on; a last page that would run past it is
            // clipped when sent (`Objects::search_request`), so the last reachable records
            // can still be read.
            if offset >= limits.max_results {
                return refuse(format!(
                    "offset {offset} is at or past HubSpot's cap of {} results; use search_all, which slices by modification time",
                    limits.max_results
                ));
            }
        }
        let chars = self.to_json().to_string().chars().count();
        if chars > limits.max_body_chars {
            return refuse(format!(
                "the search body has {chars} characters; HubSpot allows {}",
                limits.max_body_chars
            ));
        }
        Ok(())
    }
}

/// One page of search results.
#[derive(Debug, Clone, Deserialize)]
pub struct SearchPage {
    /// How many records match in all.
    #[serde(default)]
    pub total: u64,
    /// This page's records.
    #[serde(default)]
    pub results: Vec<HubSpotObject>,
    #[serde(default)]
    paging: Option<Paging>,
}

impl SearchPage {
    /// The offset of the next page, if there is one.
    pub fn next_after(&self) -> Option<&str> {
        self.paging
            .as_ref()
            .and_then(|p| p.next.as_ref())
            .map(|n| n.after.as_str())
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = serde_json::to_value(self).map_err(|_| fmt::Error)?;
        f.write_str(v.as_str().unwrap_or_default())
    }
}

/// Epoch milliseconds as HubSpot compares dates.
fn millis(t: DateTime<Utc>) -> String {
    t.timestamp_millis().to_string()
}

/// The page token of a walk through one instant that has read no id yet.
const TIE_START: &str = "";

/// The id property every record has, numeric and sortable (HubSpot CRM search guide).
const ID_PROPERTY: &str = "hs_object_id";

/// The request of one keyset slice: `base` with the time bounds added to every group,
/// sorted by time.
pub(crate) fn slice_request(
    base: &SearchRequest,
    time_property: &str,
    s: &SliceRequest,
) -> SearchRequest {
    let mut bounds = Vec::new();
    if let Some(from) = s.from {
        bounds.push(Filter::gte(time_property, millis(from)));
    }
    if let Some(until) = s.upper_bound() {
        bounds.push(Filter::lt(time_property, millis(until)));
    }
    bounded(base, time_property, bounds, time_property, s.limit)
}

/// One page of the walk through instant `at` by id: `time = at AND hs_object_id > after`,
/// sorted by id ascending.
fn tie_request(
    base: &SearchRequest,
    time_property: &str,
    at: DateTime<Utc>,
    after: Option<&str>,
    limit: usize,
) -> SearchRequest {
    let mut bounds = vec![Filter::eq(time_property, millis(at))];
    if let Some(id) = after {
        bounds.push(Filter::gt(ID_PROPERTY, id));
    }
    bounded(base, time_property, bounds, ID_PROPERTY, limit)
}

/// The first page after instant `s.from`: `from < time < until`, sorted by time.
fn after_instant_request(
    base: &SearchRequest,
    time_property: &str,
    s: &SliceRequest,
) -> SearchRequest {
    let mut bounds = Vec::new();
    if let Some(from) = s.from {
        bounds.push(Filter::gt(time_property, millis(from)));
    }
    if let Some(until) = s.upper_bound() {
        bounds.push(Filter::lt(time_property, millis(until)));
    }
    bounded(base, time_property, bounds, time_property, s.limit)
}

/// The largest id of a page of the walk by id (HubSpot sorted it ascending, but the token
/// must not depend on that): the next page starts after it.
fn last_id(items: &[HubSpotObject], after: Option<&str>) -> Result<String> {
    let mut last: Option<u64> = None;
    for o in items {
        let id = o.id.parse::<u64>().map_err(|_| {
            Error::bad_response(format!(
                "search result id {:?} is not the number hs_object_id is",
                o.id
            ))
            .with_crm(Crm::HubSpot)
        })?;
        last = last.max(Some(id));
    }
    let before = after.and_then(|a| a.parse::<u64>().ok());
    match last {
        Some(l) if before.is_none_or(|b| l > b) => Ok(l.to_string()),
        _ => Err(Error::bad_response(
            "HubSpot announced another page of ids but sent none past the last one read; \
             paging cannot progress",
        )
        .with_crm(Crm::HubSpot)),
    }
}

/// `base` with `bounds` added to every group, sorted ascending by `sort`, without `after`.
fn bounded(
    base: &SearchRequest,
    time_property: &str,
    bounds: Vec<Filter>,
    sort: &str,
    limit: usize,
) -> SearchRequest {
    let mut groups = base.filter_groups.clone();
    if groups.is_empty() && !bounds.is_empty() {
        groups.push(FilterGroup::default());
    }
    for g in &mut groups {
        g.filters.extend(bounds.iter().cloned());
    }
    let mut properties = base.properties.clone();
    if !properties.is_empty() {
        for p in [time_property, ID_PROPERTY] {
            if !properties.iter().any(|q| q == p) {
                properties.push(p.to_string());
            }
        }
    }
    SearchRequest {
        filter_groups: groups,
        sorts: vec![Sort {
            property_name: sort.to_string(),
            direction: Direction::Ascending,
        }],
        query: base.query.clone(),
        properties,
        limit: Some(limit),
        after: None,
    }
}

impl Objects {
    /// The POST of one search page, checked against `limits`.
    /// A page that would run past the result cap asks only for what remains below it.
    pub fn search_request(&self, req: &SearchRequest, limits: &SearchLimits) -> Result<ApiRequest> {
        req.validate(limits)?;
        let offset = req.after.as_deref().and_then(|a| a.parse::<usize>().ok());
        let limit = req.limit.unwrap_or(10);
        let body = match offset {
            Some(o) if o.saturating_add(limit) > limits.max_results => {
                let mut clipped = req.clone();
                clipped.limit = Some(limits.max_results - o);
                clipped.to_json()
            }
            _ => req.to_json(),
        };
        // A search changes nothing, so it is safe to send again after a 5xx.
        Ok(ApiRequest::post(self.path("/search")?, body).repeat_safe())
    }

    /// Runs one search page (documented limits checked first).
    pub async fn search(&self, req: &SearchRequest) -> Result<SearchPage> {
        self.client()
            .json(&self.search_request(req, &SearchLimits::DOCUMENTED)?)
            .await
    }

    /// Every record matching `req`, oldest change first, past the 10,000-result cap (see
    /// the module docs). `req` must not carry sorts or `after`: the order is the keyset's.
    pub fn search_all(&self, req: SearchRequest) -> BoxStream<'static, Result<HubSpotObject>> {
        let page = req.limit.unwrap_or(SearchLimits::DOCUMENTED.max_page_size);
        self.search_slices(req, None, KeysetConfig::new(page))
            .map(|r| r.map(|s| s.item))
            .boxed()
    }

    /// [`Self::search_all`] with each record's resume cursor, starting after `start` (a
    /// change feed); `config` sets page size, overlap and the upper bound.
    pub fn search_slices(
        &self,
        req: SearchRequest,
        start: Option<KeysetCursor>,
        config: KeysetConfig,
    ) -> BoxStream<'static, Result<Sliced<HubSpotObject>>> {
        let limits = SearchLimits::DOCUMENTED;
        let time_property = self.object_type().modified_property();
        let refuse = |m: &str| {
            futures::stream::once(futures::future::ready(Err(
                Error::config(m.to_string()).with_crm(Crm::HubSpot)
            )))
            .boxed()
        };
        if !req.sorts.is_empty() || req.after.is_some() {
            return refuse("search_all orders by modification time itself; remove sorts and after");
        }
        let config = KeysetConfig {
            page_size: config.page_size.clamp(1, limits.max_page_size),
            ..config
        };
        // Check once, with the bounds every kind of slice adds, before anything is sent.
        let probe = SliceRequest {
            from: Some(config.until),
            until: config.until,
            limit: config.page_size,
            page: None,
        };
        let shapes = [
            slice_request(&req, time_property, &probe),
            tie_request(
                &req,
                time_property,
                config.until,
                Some(&u64::MAX.to_string()),
                config.page_size,
            ),
            after_instant_request(&req, time_property, &probe),
        ];
        if let Some(e) = shapes.iter().find_map(|r| r.validate(&limits).err()) {
            return futures::stream::once(futures::future::ready(Err(Error::new(
                e.kind(),
                format!(
                    "{} (search_all adds two filters, on time and id, to every group)",
                    e.message()
                ),
            )
            .with_crm(Crm::HubSpot))))
            .boxed();
        }
        let this = self.clone();
        let key = move |o: &HubSpotObject| {
            let t = o
                .property(time_property)
                .and_then(parse_timestamp)
                .ok_or_else(|| {
                    Error::bad_response(format!(
                        "search result {} has no readable {time_property}",
                        o.id
                    ))
                    .with_crm(Crm::HubSpot)
                })?;
            Ok((t, o.id.clone()))
        };
        let req = std::sync::Arc::new(req);
        keyset::slices(config, start, key, move |s: SliceRequest| {
            let this = this.clone();
            let req = req.clone();
            async move { this.slice_page(&req, time_property, s).await }
        })
    }

    /// Answers one keyset query. A query without a page token reads `[from, until)` by time;
    /// its "next page" is the start of a walk by id through the instant `from` (the slicer
    /// only asks for it when a page holds nothing new, that is when one instant fills it).
    /// A page token is the last id read in such a walk ([`TIE_START`] for none yet).
    async fn slice_page(
        &self,
        req: &SearchRequest,
        time_property: &str,
        s: SliceRequest,
    ) -> Result<SlicePage<HubSpotObject>> {
        let Some(token) = s.page.clone() else {
            let page = self.search(&slice_request(req, time_property, &s)).await?;
            return Ok(SlicePage {
                next: page.next_after().map(|_| TIE_START.to_string()),
                items: page.results,
            });
        };
        let Some(at) = s.from else {
            return Err(Error::bad_response(
                "a walk through one instant was asked for without the instant",
            )
            .with_crm(Crm::HubSpot));
        };
        let after_id = (token != TIE_START).then_some(token.as_str());
        let page = self
            .search(&tie_request(req, time_property, at, after_id, s.limit))
            .await?;
        let more = page.next_after().is_some();
        let mut items = page.results;
        if more {
            let last = last_id(&items, after_id)?;
            return Ok(SlicePage {
                items,
                next: Some(last),
            });
        }
        // The instant is read to its end: go on with what follows it, in the same answer.
        let later = SliceRequest {
            from: Some(at),
            page: None,
            ..s
        };
        let page = self
            .search(&after_instant_request(req, time_property, &later))
            .await?;
        let next = page.next_after().map(|_| TIE_START.to_string());
        items.extend(page.results);
        Ok(SlicePage { items, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_every_operator_as_documented() {
        let req = SearchRequest::new()
            .filter(Filter::contains_token("email", "*@hubspot.com"))
            .filter(Filter::between("amount", "10", "20"))
            .or(FilterGroup::new(Filter::not_has_property("email"))
                .and(Filter::is_in("dealstage", ["closedwon", "closedlost"])))
            .sort("createdate", Direction::Descending)
            .query("x")
            .properties(["email"])
            .limit(20)
            .after("20");
        assert_eq!(
            req.to_json(),
            json!({
                "filterGroups": [
                    {"filters": [
                        {"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@hubspot.com"},
                        {"propertyName": "amount", "operator": "BETWEEN", "value": "10", "highValue": "20"}
                    ]},
                    {"filters": [
                        {"propertyName": "email", "operator": "NOT_HAS_PROPERTY"},
                        {"propertyName": "dealstage", "operator": "IN", "values": ["closedwon", "closedlost"]}
                    ]}
                ],
                "sorts": [{"propertyName": "createdate", "direction": "DESCENDING"}],
                "query": "x", "properties": ["email"], "limit": 20, "after": "20"
            })
        );
        req.validate(&SearchLimits::DOCUMENTED).expect("valid");
        let ops = [
            (Filter::eq("a", "1"), "EQ"),
            (Filter::neq("a", "1"), "NEQ"),
            (Filter::lt("a", "1"), "LT"),
            (Filter::lte("a", "1"), "LTE"),
            (Filter::gt("a", "1"), "GT"),
            (Filter::gte("a", "1"), "GTE"),
            (Filter::not_in("a", ["1"]), "NOT_IN"),
            (Filter::has_property("a"), "HAS_PROPERTY"),
            (Filter::not_contains_token("a", "x"), "NOT_CONTAINS_TOKEN"),
        ];
        for (f, name) in ops {
            assert_eq!(serde_json::to_value(&f).expect("json")["operator"], name);
            assert_eq!(f.operator.to_string(), name);
        }
        assert_eq!(SearchRequest::new().to_json(), json!({"filterGroups": []}));
    }

    fn groups(n: usize, per: usize) -> SearchRequest {
        (0..n).fold(SearchRequest::new(), |r, _| {
            r.or(FilterGroup {
                filters: (0..per).map(|i| Filter::eq(format!("p{i}"), "v")).collect(),
            })
        })
    }

    #[test]
    fn limits_are_checked_before_sending() {
        let l = SearchLimits::DOCUMENTED;
        groups(5, 3).validate(&l).expect("5 × 3 = 15");
        groups(3, 6).validate(&l).expect("3 × 6 = 18");
        let e = groups(6, 1).validate(&l).expect_err("6 groups");
        assert!(e.message().contains("at most 5"), "{e}");
        let e = groups(1, 7).validate(&l).expect_err("7 per group");
        assert!(e.message().contains("at most 6"), "{e}");
        let e = groups(4, 5).validate(&l).expect_err("20 filters");
        assert!(e.message().contains("at most 18"), "{e}");
        assert!(SearchRequest::new().limit(201).validate(&l).is_err());
        assert!(SearchRequest::new().limit(200).validate(&l).is_ok());
        assert!(
            SearchRequest::new()
                .limit(200)
                .after("10000")
                .validate(&l)
                .is_err(),
            "at the 10,000 cap"
        );
        // The last reachable page is allowed and asks only for what remains.
        let last = SearchRequest::new().limit(150).after("9900");
        last.validate(&l).expect("the last page");
        let hs = crate::Client::builder()
            .access_token(crmkit_core::SecretString::from("t"))
            .base_url("http://127.0.0.1:9")
            .build()
            .expect("builds");
        let sent = hs.contacts().search_request(&last, &l).expect("request");
        match &sent.body {
            crmkit_core::http::Body::Json(v) => assert_eq!(v["limit"], json!(100)),
            other => panic!("not JSON: {other:?}"),
        }
        assert!(
            SearchRequest::new()
                .limit(100)
                .after("9900")
                .validate(&l)
                .is_ok()
        );
        assert!(SearchRequest::new().after("abc").validate(&l).is_err());
        let two_sorts = SearchRequest::new()
            .sort("a", Direction::Ascending)
            .sort("b", Direction::Ascending);
        assert!(two_sorts.validate(&l).is_err());
        let lacking = SearchRequest::new().filter(Filter {
            values: None,
            ..Filter::is_in("a", ["x"])
        });
        assert!(lacking.validate(&l).is_err());
        let long = SearchRequest::new().query("x".repeat(3_000));
        assert!(long.validate(&l).is_err());
    }

    #[test]
    fn a_slice_bounds_every_group_and_sorts_by_time() {
        let base = SearchRequest::new()
            .filter(Filter::eq("lifecyclestage", "lead"))
            .or(FilterGroup::new(Filter::has_property("email")))
            .properties(["email"]);
        let from = DateTime::from_timestamp_millis(1_000).expect("t");
        let until = DateTime::from_timestamp_millis(5_000).expect("t");
        let s = SliceRequest {
            from: Some(from),
            until,
            limit: 50,
            page: Some("50".into()),
        };
        let r = slice_request(&base, "lastmodifieddate", &s);
        for g in &r.filter_groups {
            let n = g.filters.len();
            assert_eq!(g.filters[n - 2], Filter::gte("lastmodifieddate", "1000"));
            assert_eq!(g.filters[n - 1], Filter::lt("lastmodifieddate", "5000"));
        }
        assert_eq!(r.sorts[0].property_name, "lastmodifieddate");
        assert_eq!(
            r.properties,
            vec!["email", "lastmodifieddate", "hs_object_id"]
        );
        assert_eq!(
            (r.limit, r.after.as_deref()),
            (Some(50), None),
            "no offsets"
        );
        let unbounded = slice_request(
            &SearchRequest::new(),
            "hs_lastmodifieddate",
            &SliceRequest {
                from: None,
                until: DateTime::<Utc>::MAX_UTC,
                limit: 10,
                page: None,
            },
        );
        assert!(unbounded.filter_groups.is_empty());
        assert!(unbounded.properties.is_empty(), "defaults include the keys");
    }

    #[test]
    fn an_instant_is_walked_by_id_and_then_left_by_time() {
        let base = SearchRequest::new().filter(Filter::eq("lifecyclestage", "lead"));
        let at = DateTime::from_timestamp_millis(2_000).expect("t");
        let r = tie_request(&base, "hs_lastmodifieddate", at, Some("41"), 200);
        assert_eq!(
            r.filter_groups[0].filters,
            vec![
                Filter::eq("lifecyclestage", "lead"),
                Filter::eq("hs_lastmodifieddate", "2000"),
                Filter::gt("hs_object_id", "41"),
            ]
        );
        assert_eq!(r.sorts[0].property_name, "hs_object_id");
        assert_eq!(r.sorts[0].direction, Direction::Ascending);
        assert!(r.after.is_none());
        let first = tie_request(&base, "hs_lastmodifieddate", at, None, 200);
        assert_eq!(first.filter_groups[0].filters.len(), 2);
        let s = SliceRequest {
            from: Some(at),
            until: DateTime::from_timestamp_millis(9_000).expect("t"),
            limit: 200,
            page: None,
        };
        let r = after_instant_request(&base, "hs_lastmodifieddate", &s);
        assert_eq!(
            r.filter_groups[0].filters[1..],
            [
                Filter::gt("hs_lastmodifieddate", "2000"),
                Filter::lt("hs_lastmodifieddate", "9000"),
            ]
        );
        assert_eq!(r.sorts[0].property_name, "hs_lastmodifieddate");
    }

    #[test]
    fn the_next_id_is_the_largest_read_and_must_move_forward() {
        let o = |id: &str| HubSpotObject {
            id: id.to_string(),
            ..serde_json::from_value(json!({"id": "0"})).expect("object")
        };
        let page = [o("9"), o("100"), o("12")];
        assert_eq!(last_id(&page, Some("5")).expect("forward"), "100");
        assert!(last_id(&page, Some("100")).is_err(), "no progress");
        assert!(last_id(&[], None).is_err());
        assert!(last_id(&[o("abc")], None).is_err());
    }
}
