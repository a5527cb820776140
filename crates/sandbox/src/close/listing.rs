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
use super::data::{Data, micros_up, parse_time};
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
    let t = parse_time(v).ok_or_else(|| ApiError::field(key, "Enter a valid date/time."))?;
    // Strict bounds become inclusive ones a microsecond further; the filter checks again.
    // A strict upper bound is rounded up, so the microsecond it falls inside stays in range.
    let strict = key.ends_with("__gt") || key.ends_with("__lt");
    let at = match (lower, strict) {
        (true, true) | (false, false) => t.timestamp_micros().saturating_add(1),
        (false, true) => micros_up(t),
        (true, false) => t.timestamp_micros(),
    };
    Ok(if lower {
        Bound::Included((at, String::new()))
    } else {
        Bound::Excluded((at, String::new()))
    })
}

/// The four range suffixes of a documented date filter.
macro_rules! ranged {
    ($f:literal) => {
        [
            concat!($f, "__gte"),
            concat!($f, "__gt"),
            concat!($f, "__lte"),
            concat!($f, "__lt"),
        ]
    };
}

/// `GET /opportunity/` filters (close-openapi.yml). `query`, `lead_query`,
/// `lead_saved_search_id`, `is_stalled` and `_group_by` are documented but not modelled, so
/// they are ignored like any other parameter.
const OPPORTUNITY_FILTERS: &[&[&str]] = &[
    &[
        "lead_id",
        "organization_id",
        "user_id",
        "user_id__in",
        "status_id",
        "status_id__in",
        "status_type",
        "status_type__in",
        "status_label",
        "status_label__in",
        "status",
        "status__in",
        "value_period",
        "value_period__in",
        "date_won",
        "date_created",
        "date_updated",
    ],
    &ranged!("date_won"),
    &ranged!("date_created"),
    &ranged!("date_updated"),
];

/// `GET /task/` filters (close-openapi.yml; `_type` is read apart). `view` and `format`
/// are documented but not modelled, so they are ignored.
const TASK_FILTERS: &[&[&str]] = &[
    &[
        "assigned_to",
        "id",
        "id__in",
        "is_complete",
        "lead_id",
        "organization_id",
        "_type__in",
        "date",
        "due_date",
    ],
    &ranged!("date"),
    &ranged!("due_date"),
    &ranged!("date_created"),
    &ranged!("date_updated"),
];

/// `GET /activity/{type}/` filters (close-openapi.yml; `_type` is read apart).
const TYPED_ACTIVITY_FILTERS: &[&[&str]] = &[
    &[
        "id__in",
        "lead_id",
        "contact_id",
        "user_id",
        "organization_id",
    ],
    &ranged!("date_created"),
    &ranged!("activity_at"),
];

/// `GET /activity/` adds the `__in` forms (close-openapi.yml). `thread_emails` is
/// described there but not modelled, so it is ignored.
const ACTIVITY_FILTERS: &[&[&str]] = &[
    &["lead_id__in", "user_id__in", "contact_id__in", "_type__in"],
    &[
        "id__in",
        "lead_id",
        "contact_id",
        "user_id",
        "organization_id",
    ],
    &ranged!("date_created"),
    &ranged!("activity_at"),
];

/// Whether `key` is a filter `kind` documents; every other parameter is ignored.
fn is_filter(kind: Kind, key: &str) -> bool {
    let groups = match kind {
        Kind::Opportunity => OPPORTUNITY_FILTERS,
        Kind::Task => TASK_FILTERS,
        Kind::Activity(None) => ACTIVITY_FILTERS,
        Kind::Activity(Some(_)) => TYPED_ACTIVITY_FILTERS,
        _ => &[],
    };
    groups.iter().any(|g| g.contains(&key))
}

/// Whether an opportunity passes `key=wanted`; the status filters read its status, which
/// the stored row names only by id. `status` is read as the label (the spec does not say;
/// the sandbox's choice).
fn opportunity_matches(data: &Data, row: &Value, key: &str, wanted: &str) -> bool {
    let (field, op) = key.split_once("__").unwrap_or((key, ""));
    let status_field = match field {
        "status" | "status_label" => "label",
        "status_type" => "type",
        _ => return matches_filter(row, key, wanted),
    };
    let status = row["status_id"]
        .as_str()
        .and_then(|s| data.get("status_opportunity", s));
    let value = status.map_or(Value::Null, |s| s[status_field].clone());
    let probe = json!({ "v": value });
    let key = if op.is_empty() {
        "v".to_string()
    } else {
        format!("v__{op}")
    };
    matches_filter(&probe, &key, wanted)
}

/// The aggregates every opportunity list carries over all matches, not just the page
/// (close-openapi.yml `GET /opportunity/`), summed in one pass.
#[derive(Default)]
struct Totals {
    count: usize,
    by_period: [(usize, i128, i128); 3],
}

const PERIODS: [&str; 3] = ["one_time", "monthly", "annual"];

impl Totals {
    fn add(&mut self, o: &Value) {
        self.count += 1;
        let Some(i) = PERIODS.iter().position(|p| o["value_period"] == *p) else {
            return;
        };
        let value = i128::from(o["value"].as_i64().unwrap_or(0));
        let confidence = i128::from(o["confidence"].as_i64().unwrap_or(0));
        let slot = &mut self.by_period[i];
        slot.0 += 1;
        slot.1 = slot.1.saturating_add(value);
        slot.2 = slot
            .2
            .saturating_add(value.saturating_mul(confidence) / 100);
    }

    fn write(&self, body: &mut Value) {
        let int = |v: i128| json!(i64::try_from(v).unwrap_or(i64::MAX));
        let [one, monthly, annual] = self.by_period;
        body["total_results"] = json!(self.count);
        body["count_by_value_period"] =
            json!({"one_time": one.0, "monthly": monthly.0, "annual": annual.0});
        body["total_value_one_time"] = int(one.1);
        body["total_value_monthly"] = int(monthly.1);
        body["total_value_annual"] = int(annual.1);
        body["total_value_annualized"] = int(one
            .1
            .saturating_add(monthly.1.saturating_mul(12))
            .saturating_add(annual.1));
        body["expected_value_one_time"] = int(one.2);
        body["expected_value_monthly"] = int(monthly.2);
        body["expected_value_annual"] = int(annual.2);
        body["expected_value_annualized"] = int(one
            .2
            .saturating_add(monthly.2.saturating_mul(12))
            .saturating_add(annual.2));
    }
}

/// Opportunities, tasks and activities: the documented filters, `date_created` ranges,
/// `_order_by`.
fn filtered(data: &Data, kind: Kind, params: &Params, page: Page) -> Result<Value, ApiError> {
    let table_name = kind.table();
    let Some(table) = data.table(table_name) else {
        return Ok(json!({"data": [], "has_more": false}));
    };
    // user_id, contact_id and _type (and their __in forms) work only with lead_id
    // (close-openapi.yml `GET /activity/`).
    if kind == Kind::Activity(None)
        && [
            "_type",
            "_type__in",
            "user_id",
            "user_id__in",
            "contact_id",
            "contact_id__in",
        ]
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
    let filters: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| is_filter(kind, k))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let keep = |row: &&Value| {
        type_filter.as_ref().is_none_or(|types| {
            types
                .split(',')
                .any(|t| row["_type"].as_str() == Some(t.trim()))
        }) && filters.iter().all(|(k, v)| {
            if kind == Kind::Opportunity {
                opportunity_matches(data, row, k, v)
            } else {
                matches_filter(row, k, v)
            }
        })
    };
    let order = param(params, "_order_by");
    let by_created = matches!(order, None | Some("date_created" | "-date_created"));
    let desc = order == Some("-date_created");
    let ids = param(params, "id__in").filter(|_| is_filter(kind, "id__in"));
    let lead = param(params, "lead_id");
    // The cheapest walk that holds every match: by id, by parent, or by creation time.
    let candidates = || -> Box<dyn Iterator<Item = &Value>> {
        if let Some(ids) = ids {
            Box::new(ids.split(',').filter_map(|id| table.get(id.trim())))
        } else if let Some(lead) = lead {
            Box::new(table.children(lead))
        } else if by_created
            && (order.is_some() || lower != Bound::Unbounded || upper != Bound::Unbounded)
        {
            Box::new(
                table
                    .by_time(TimeField::Created, lower.clone(), upper.clone(), desc)
                    .map(|(_, v)| v),
            )
        } else {
            Box::new(table.iter())
        }
    };
    let show = |r: &Value| {
        select_fields(
            render(data, table_name, r.clone()),
            param(params, "_fields"),
        )
    };
    // Sorting by anything but the walk's own order needs every match first.
    let walked_in_order = by_created && lead.is_none() && ids.is_none();
    if order.is_none() || walked_in_order {
        let mut body = cut(candidates().filter(keep), page, show, None);
        if kind == Kind::Opportunity {
            let mut totals = Totals::default();
            candidates().filter(keep).for_each(|o| totals.add(o));
            totals.write(&mut body);
        }
        return Ok(body);
    }
    let mut rows: Vec<&Value> = candidates().filter(keep).collect();
    if let Some(order) = order {
        sort_rows(&mut rows, order);
    }
    let mut body = cut(rows.iter().copied(), page, show, Some(rows.len()));
    if kind == Kind::Opportunity {
        let mut totals = Totals::default();
        rows.iter().for_each(|o| totals.add(o));
        totals.write(&mut body);
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
