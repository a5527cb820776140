//! Advanced Filtering (`POST /data/search/`) evaluated for real: `and`, `or`,
//! `object_type`, `field_condition`, `has_related`, `negate`, and the `text`, `term`,
//! `reference`, `number_range`, `moment_range` and `exists` conditions, with cursor paging.
//!
//! A cursor holds the position of the last result (its sequence number, or its place in a
//! time index), so the next page resumes there instead of scanning from the start, and the
//! sort it was made under: reused with another sort it is a 400. A sort without
//! `field.field_name` is a 400 too.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Bound;

use serde_json::{Map, Value, json};

mod cursor;
mod tree;

use super::api_error::ApiError;
use super::data::Data;
use super::params::{keep, order_by};
use super::render::render;
use crate::shared::store::{Table, TimeField};
use cursor::{Cursor, Resume, decode, encode};
use tree::{SEARCHABLE, bad, eval, index_range, object_types, view};

/// The largest search `_limit`; a larger one is clamped, not refused, unlike list
/// endpoints: the sandbox's choice, after third-party Close clients that page
/// `/data/search/` with at most 200 (developer.close.com/api/resources/advanced-filtering
/// gives no maximum).
const MAX_LIMIT: u64 = 200;

/// The sort of a search: one time field the indexes cover, or anything else.
enum Order {
    Insertion,
    Time(TimeField, bool),
    Fields(Vec<(String, bool)>),
}

/// The sort a search asks for, and its tag: a hash of the sort, recorded in every cursor so
/// a cursor reused under another sort is refused. A sort must name its field: a silent
/// default order would be a wrong answer with status 200.
fn order(body: &Value) -> Result<(Order, u64), ApiError> {
    let sorts = match &body["sort"] {
        Value::Null => Vec::new(),
        Value::Array(list) => list
            .iter()
            .map(|s| {
                let field = s["field"]["field_name"]
                    .as_str()
                    .ok_or_else(|| bad("Each sort needs field.field_name."))?;
                Ok((field.to_string(), s["direction"] == "desc"))
            })
            .collect::<Result<Vec<_>, ApiError>>()?,
        _ => return Err(bad("sort must be a list.")),
    };
    let mut hasher = DefaultHasher::new();
    sorts.hash(&mut hasher);
    let tag = hasher.finish();
    let order = match sorts.as_slice() {
        [] => Order::Insertion,
        [(f, desc)] if f == "date_created" => Order::Time(TimeField::Created, *desc),
        [(f, desc)] if f == "date_updated" => Order::Time(TimeField::Updated, *desc),
        _ => Order::Fields(sorts),
    };
    Ok((order, tag))
}

/// Runs a `/data/search/` request.
pub(crate) fn run(data: &Data, body: &Value) -> Result<Value, ApiError> {
    let query = body.get("query").ok_or_else(|| bad("query is required"))?;
    let mut types = Vec::new();
    object_types(query, &mut types);
    let object_type = match types.as_slice() {
        [one] => one.clone(),
        [] => return Err(bad("The query must select one object_type.")),
        _ => return Err(bad("The query selects more than one object_type.")),
    };
    let table_name = SEARCHABLE
        .iter()
        .find(|(t, _)| *t == object_type)
        .map(|(_, t)| *t)
        .ok_or_else(|| bad(format!("{object_type} cannot be searched")))?;
    let limit = match &body["_limit"] {
        Value::Null => MAX_LIMIT,
        v => v
            .as_u64()
            .ok_or_else(|| ApiError::field("_limit", "A valid integer is required."))?,
    };
    let limit = if limit == 0 {
        MAX_LIMIT
    } else {
        limit.min(MAX_LIMIT)
    } as usize;
    let (order, sort_tag) = order(body)?;
    let (returned, resume) = match &body["cursor"] {
        Value::Null => (0, None),
        Value::String(c) => match decode(c) {
            Some(Cursor { returned, sort, at }) if sort == sort_tag => (returned, Some(at)),
            _ => return Err(ApiError::field("cursor", "Invalid or expired cursor.")),
        },
        _ => return Err(ApiError::field("cursor", "Invalid or expired cursor.")),
    };
    let cap = body["results_limit"].as_u64().map(|c| c as usize);
    let want = cap.map_or(limit, |c| c.saturating_sub(returned).min(limit));
    let empty = Table::new(None);
    let table = data.table(table_name).unwrap_or(&empty);
    let mut error = None;
    let mut matches = |row: &Value| -> bool {
        match eval(data, &object_type, &view(data, table_name, row), query) {
            Ok(hit) => hit,
            Err(e) => {
                error.get_or_insert(e);
                false
            }
        }
    };
    // One result more than the page tells whether there is a next page.
    let mut page: Vec<(&Value, Resume)> = Vec::with_capacity(want + 1);
    match order {
        Order::Insertion => {
            let after = match resume {
                Some(Resume::Seq(s)) => s,
                None => 0,
                Some(_) => return Err(ApiError::field("cursor", "Invalid or expired cursor.")),
            };
            for (seq, row) in table.after_seq(after) {
                if page.len() > want {
                    break;
                }
                if matches(row) {
                    page.push((row, Resume::Seq(seq)));
                }
            }
        }
        Order::Time(field, desc) => {
            let from = match resume {
                Some(Resume::Time(t, id)) => Some((t, id)),
                None => None,
                Some(_) => return Err(ApiError::field("cursor", "Invalid or expired cursor.")),
            };
            // The query's own range on the sorted field narrows the index scan, so a keyset
            // page costs what it returns, not the rows before it. An empty id sorts before
            // every real id at the same instant.
            let field_name = match field {
                TimeField::Created => "date_created",
                TimeField::Updated => "date_updated",
            };
            let (on_or_after, before) = index_range(query, field_name)?;
            let range_low = on_or_after.map(|t| (t, String::new()));
            let range_high = before.map(|t| Bound::Excluded((t, String::new())));
            let (lower, upper) = if desc {
                let upper = match (from, range_high) {
                    (Some(c), Some(Bound::Excluded(h))) if h < c => Bound::Excluded(h),
                    (Some(c), _) => Bound::Excluded(c),
                    (None, Some(h)) => h,
                    (None, None) => Bound::Unbounded,
                };
                (range_low.map_or(Bound::Unbounded, Bound::Included), upper)
            } else {
                let lower = match (from, range_low) {
                    (Some(c), Some(l)) if l > c => Bound::Included(l),
                    (Some(c), _) => Bound::Excluded(c),
                    (None, Some(l)) => Bound::Included(l),
                    (None, None) => Bound::Unbounded,
                };
                (lower, range_high.unwrap_or(Bound::Unbounded))
            };
            for (key, row) in table.by_time(field, lower, upper, desc) {
                if page.len() > want {
                    break;
                }
                if matches(row) {
                    page.push((row, Resume::Time(key.0, key.1.clone())));
                }
            }
        }
        Order::Fields(sorts) => {
            let offset = match resume {
                Some(Resume::Offset(o)) => o,
                None => 0,
                Some(_) => return Err(ApiError::field("cursor", "Invalid or expired cursor.")),
            };
            // Orders the indexes do not cover are sorted whole: the sandbox's slow path.
            let mut hits: Vec<&Value> = table.iter().filter(|r| matches(r)).collect();
            hits.sort_by(|a, b| {
                sorts
                    .iter()
                    .map(|(f, desc)| {
                        let o = order_by(a, b, f);
                        if *desc { o.reverse() } else { o }
                    })
                    .find(|o| o.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            page = hits
                .into_iter()
                .enumerate()
                .skip(offset)
                .take(want + 1)
                .map(|(i, r)| (r, Resume::Offset(i.saturating_add(1))))
                .collect();
        }
    }
    if let Some(e) = error {
        return Err(e);
    }
    let more = page.len() > want;
    page.truncate(want);
    // `returned` comes from the client's cursor, so the count is added with a check.
    let next = match page.last() {
        Some((_, at)) if more => Some(encode(
            returned
                .checked_add(page.len())
                .ok_or_else(|| ApiError::field("cursor", "Invalid or expired cursor."))?,
            sort_tag,
            at,
        )),
        _ => None,
    };
    // `_fields` is `{object_type: [names]}` (developer.close.com/api/resources/advanced-filtering);
    // any other shape is a client bug, so it is refused rather than read as "ids only".
    let fields: Option<Vec<&str>> = match &body["_fields"] {
        Value::Null => None,
        Value::Object(per_type) => match per_type.get(object_type.as_str()) {
            None => None,
            Some(Value::Array(f)) if f.iter().all(Value::is_string) => {
                Some(f.iter().filter_map(Value::as_str).collect())
            }
            Some(_) => {
                return Err(ApiError::field(
                    "_fields",
                    "Each object type maps to a list of field names.",
                ));
            }
        },
        _ => {
            return Err(ApiError::field(
                "_fields",
                "_fields must map object types to lists of field names.",
            ));
        }
    };
    let items: Vec<Value> = page
        .iter()
        .map(|(row, _)| {
            let mut item = Map::new();
            item.insert("__object_type".into(), json!(object_type));
            match &fields {
                // Named fields only: `_all` is documented for GET, not here
                // (developer.close.com/topics/fields), so an unknown name is absent.
                Some(f) => {
                    if let Value::Object(map) = render(data, table_name, (*row).clone()) {
                        item.extend(keep(&map, f, false));
                    }
                }
                None => {
                    item.insert("id".into(), row["id"].clone());
                }
            }
            Value::Object(item)
        })
        .collect();
    Ok(json!({"data": items, "cursor": next}))
}
