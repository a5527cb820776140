//! `GET /{collection}/` and `GET /{collection}/{id}/`.
//!
//! Each collection honours only the parameters Close documents for it; anything else is
//! ignored, as a lenient server does (close-openapi.yml, `GET /lead/` and `GET /contact/`):
//! leads take `query=`, contacts `lead_id`, and opportunities, tasks and activities take
//! field filters, `date_created__*` and `_order_by`. A page is cut from an index walk, so a
//! listing touches the rows it skips and returns, never the whole table.

use std::ops::Bound;

use serde_json::{Value, json};

use super::api_error::ApiError;
use super::data::{Data, parse_time};
use super::kinds::Kind;
use super::params::{Page, Params, matches_filter, page, param, select_fields, sort_rows};
use super::render::render;
use super::text_query;
use crate::shared::store::{TimeField, TimeKey};

/// Overrides of the per-resource limits (tests lower them).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Overrides {
    pub max_limit: Option<usize>,
    pub max_skip: Option<usize>,
}

/// Parameters that are not filters on the collections that take filters.
const CONTROL: &[&str] = &["_limit", "_skip", "_fields", "_order_by", "_type"];

/// `GET /{collection}/`.
pub(crate) fn list(
    data: &Data,
    kind: Kind,
    params: &Params,
    overrides: Overrides,
) -> Result<Value, ApiError> {
    let (max_limit, max_skip) = kind.list_limits();
    let page = page(
        params,
        overrides.max_limit.unwrap_or(max_limit),
        overrides.max_skip.unwrap_or(max_skip),
    )?;
    let fields = param(params, "_fields");
    let show = |r: &Value| select_fields(render(data, kind.table(), r.clone()), fields);
    // A query is checked even when there is nothing to search.
    let query = match kind {
        Kind::Lead => param(params, "query")
            .filter(|q| !q.trim().is_empty())
            .map(text_query::parse)
            .transpose()?,
        _ => None,
    };
    let Some(table) = data.table(kind.table()) else {
        return Ok(json!({"data": [], "has_more": false, "total_results": 0}));
    };
    match kind {
        Kind::Lead => {
            let Some(q) = query else {
                return Ok(cut(table.iter(), page, show, Some(table.len())));
            };
            let keep = |r: &&Value| q.matches(data, r);
            if let Some((field, lower, upper, desc)) = q.time_walk() {
                let rows = table.by_time(field, lower, upper, desc).map(|(_, v)| v);
                return Ok(cut(rows.filter(keep), page, show, None));
            }
            if let Some((_, desc)) = q.sort {
                let mut rows: Vec<&Value> = table.iter().filter(keep).collect();
                sort_rows(&mut rows, if desc { "-name" } else { "name" });
                return Ok(cut(rows.into_iter(), page, show, None));
            }
            Ok(cut(table.iter().filter(keep), page, show, None))
        }
        Kind::Contact => match param(params, "lead_id") {
            Some(lead) => Ok(cut(table.children(lead), page, show, None)),
            None => Ok(cut(table.iter(), page, show, Some(table.len()))),
        },
        Kind::Opportunity | Kind::Task | Kind::Activity(_) => filtered(data, kind, params, page),
        Kind::CustomField(object) => Ok(cut(table.children(object), page, show, None)),
        _ => Ok(cut(table.iter(), page, show, Some(table.len()))),
    }
}

/// One page of `rows`: `has_more` from one row of look-ahead; `total_results` when known
/// without counting.
fn cut<'a>(
    rows: impl Iterator<Item = &'a Value>,
    page: Page,
    show: impl Fn(&Value) -> Value,
    total: Option<usize>,
) -> Value {
    let mut taken: Vec<&Value> = rows.skip(page.skip).take(page.limit + 1).collect();
    let has_more = taken.len() > page.limit;
    taken.truncate(page.limit);
    let data: Vec<Value> = taken.into_iter().map(show).collect();
    let mut body = json!({"data": data, "has_more": has_more});
    if let Some(total) = total {
        body["total_results"] = json!(total);
    }
    body
}

fn time_bound(params: &Params, key: &str, lower: bool) -> Result<Bound<TimeKey>, ApiError> {
    let Some(v) = param(params, key) else {
        return Ok(Bound::Unbounded);
    };
    let at = parse_time(v)
        .ok_or_else(|| ApiError::field(key, "Enter a valid date/time."))?
        .timestamp_micros();
    // Strict bounds become inclusive ones a microsecond further; the filter checks again.
    let strict = key.ends_with("__gt") || key.ends_with("__lt");
    let at = match (lower, strict) {
        (true, true) | (false, false) => at.saturating_add(1),
        _ => at,
    };
    Ok(if lower {
        Bound::Included((at, String::new()))
    } else {
        Bound::Excluded((at, String::new()))
    })
}

/// Opportunities, tasks and activities: field filters, `date_created` ranges, `_order_by`.
fn filtered(data: &Data, kind: Kind, params: &Params, page: Page) -> Result<Value, ApiError> {
    let table_name = kind.table();
    let Some(table) = data.table(table_name) else {
        return Ok(json!({"data": [], "has_more": false}));
    };
    if kind == Kind::Activity(None)
        && ["_type", "user_id", "contact_id"]
            .iter()
            .any(|k| param(params, k).is_some())
        && param(params, "lead_id").is_none()
    {
        return Err(ApiError::Errors(vec![
            "The _type, user_id and contact_id filters require lead_id.".into(),
        ]));
    }
    let type_filter = kind
        .activity_type()
        .map(str::to_string)
        .or_else(|| param(params, "_type").map(str::to_string));
    let lower = match param(params, "date_created__gt") {
        Some(_) => time_bound(params, "date_created__gt", true)?,
        None => time_bound(params, "date_created__gte", true)?,
    };
    let upper = match param(params, "date_created__lt") {
        Some(_) => time_bound(params, "date_created__lt", false)?,
        None => time_bound(params, "date_created__lte", false)?,
    };
    let keep = |row: &&Value| {
        type_filter.as_ref().is_none_or(|types| {
            types
                .split(',')
                .any(|t| row["_type"].as_str() == Some(t.trim()))
        }) && params
            .iter()
            .filter(|(k, _)| !CONTROL.contains(&k.as_str()))
            .all(|(k, v)| matches_filter(row, k, v))
    };
    let order = param(params, "_order_by");
    let by_created = matches!(order, None | Some("date_created" | "-date_created"));
    let desc = order == Some("-date_created");
    // The cheapest walk that holds every match: by id, by parent, or by creation time.
    let candidates: Box<dyn Iterator<Item = &Value>> = if let Some(ids) = param(params, "id__in") {
        Box::new(ids.split(',').filter_map(|id| table.get(id.trim())))
    } else if let Some(lead) = param(params, "lead_id") {
        Box::new(table.children(lead))
    } else if by_created
        && (order.is_some() || lower != Bound::Unbounded || upper != Bound::Unbounded)
    {
        Box::new(
            table
                .by_time(TimeField::Created, lower, upper, desc)
                .map(|(_, v)| v),
        )
    } else {
        Box::new(table.iter())
    };
    let show = |r: &Value| {
        select_fields(
            render(data, table_name, r.clone()),
            param(params, "_fields"),
        )
    };
    // Sorting by anything but the walk's own order needs every match first.
    let walked_in_order =
        by_created && param(params, "lead_id").is_none() && param(params, "id__in").is_none();
    let needs_all = kind == Kind::Opportunity || (order.is_some() && !walked_in_order);
    if !needs_all {
        return Ok(cut(candidates.filter(keep), page, show, None));
    }
    let mut rows: Vec<&Value> = candidates.filter(keep).collect();
    if let Some(order) = order {
        sort_rows(&mut rows, order);
    }
    let total = rows.len();
    let mut body = cut(rows.iter().copied(), page, show, Some(total));
    if kind == Kind::Opportunity {
        // Close's aggregates cover every opportunity the filters match, not just this page.
        let sum = |period: &str| -> i64 {
            rows.iter()
                .filter(|o| o["value_period"] == period)
                .filter_map(|o| o["value"].as_i64())
                .sum()
        };
        body["total_value_one_time"] = json!(sum("one_time"));
        body["total_value_monthly"] = json!(sum("monthly"));
        body["total_value_annual"] = json!(sum("annual"));
    }
    Ok(body)
}

/// `GET /{collection}/{id}/`.
pub(crate) fn get(data: &Data, kind: Kind, id: &str, params: &Params) -> Result<Value, ApiError> {
    let row = find(data, kind, id)?;
    Ok(select_fields(
        render(data, kind.table(), row.clone()),
        param(params, "_fields"),
    ))
}

/// The row `id` of `kind`, or Close's 404.
pub(crate) fn find<'a>(data: &'a Data, kind: Kind, id: &str) -> Result<&'a Value, ApiError> {
    data.get(kind.table(), id)
        .filter(|row| match kind {
            Kind::Activity(Some(_)) => row["_type"].as_str() == kind.activity_type(),
            Kind::CustomField(o) => row["object_type"] == o,
            _ => true,
        })
        .ok_or_else(|| ApiError::NotFound(kind.model_name()))
}
