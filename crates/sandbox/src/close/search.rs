//! Advanced Filtering (`POST /data/search/`) evaluated for real: `and`, `or`,
//! `object_type`, `field_condition`, `has_related`, `negate`, and the `text`, `term`,
//! `reference`, `number_range`, `moment_range` and `exists` conditions, with cursor paging.
//!
//! A cursor holds the position of the last result (its sequence number, or its place in a
//! time index), so the next page resumes there instead of scanning from the start.

use std::ops::Bound;

use serde_json::{Map, Value, json};

use super::api_error::ApiError;
use super::data::{Data, parse_time};
use super::params::{keep, order_by};
use super::render::render;
use crate::shared::store::{Table, TimeField};

/// The largest `_limit`; a larger one is clamped (third-party Close clients page
/// `/data/search/` with at most 200; developer.close.com/api/resources/advanced-filtering).
const MAX_LIMIT: u64 = 200;

/// Object types `/data/search/` can return, and the tables they live in.
const SEARCHABLE: &[(&str, &str)] = &[
    ("lead", "lead"),
    ("contact", "contact"),
    ("opportunity", "opportunity"),
    ("task", "task"),
    ("activity", "activity"),
];

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::Errors(vec![msg.into()])
}

fn object_types(query: &Value, out: &mut Vec<String>) {
    match query["type"].as_str() {
        Some("object_type") => {
            if let Some(t) = query["object_type"].as_str() {
                out.push(t.to_string());
            }
        }
        Some("and") => {
            for q in query["queries"].as_array().into_iter().flatten() {
                object_types(q, out);
            }
        }
        _ => {}
    }
}

fn field_value<'a>(row: &'a Value, field: &Value) -> Result<&'a Value, ApiError> {
    match field["type"].as_str() {
        Some("regular_field") => {
            let name = field["field_name"]
                .as_str()
                .ok_or_else(|| bad("regular_field needs field_name"))?;
            Ok(&row[name])
        }
        Some("custom_field") => {
            let id = field["custom_field_id"]
                .as_str()
                .ok_or_else(|| bad("custom_field needs custom_field_id"))?;
            Ok(&row[format!("custom.{id}").as_str()])
        }
        other => Err(bad(format!("unknown field type {other:?}"))),
    }
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn scalar_text(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(scalar_text).collect(),
        Value::Null => vec![],
        other => vec![other.to_string()],
    }
}

fn moment(v: &Value) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => parse_time(s)
            .map(Some)
            .ok_or_else(|| bad(format!("not a valid moment: {s}"))),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("fixed_local_date") => {
            let d = o.get("value").and_then(Value::as_str).unwrap_or_default();
            let start = parse_time(d).ok_or_else(|| bad(format!("not a valid date: {d}")))?;
            let end = o.get("which").and_then(Value::as_str) == Some("end");
            Ok(Some(if end {
                start + chrono::Duration::days(1)
            } else {
                start
            }))
        }
        other => Err(bad(format!("not a valid moment: {other}"))),
    }
}

fn condition(value: &Value, cond: &Value) -> Result<bool, ApiError> {
    match cond["type"].as_str() {
        Some("exists") => Ok(!value.is_null() && value != &json!([]) && value != &json!("")),
        Some("text") => {
            let wanted = cond["value"]
                .as_str()
                .ok_or_else(|| bad("text needs value"))?;
            let hay = scalar_text(value);
            Ok(match cond["mode"].as_str().unwrap_or("full_words") {
                "phrase" => {
                    let w = wanted.to_lowercase();
                    hay.iter().any(|h| h.to_lowercase().contains(&w))
                }
                "beginning_of_words" => {
                    let w = wanted.to_lowercase();
                    hay.iter()
                        .any(|h| words(h).iter().any(|x| x.starts_with(&w)))
                }
                _ => {
                    let need = words(wanted);
                    hay.iter().any(|h| {
                        let have = words(h);
                        need.iter().all(|n| have.contains(n))
                    })
                }
            })
        }
        Some("term") => {
            let values = cond["values"]
                .as_array()
                .ok_or_else(|| bad("term needs values"))?;
            let have = scalar_text(value);
            Ok(values.iter().any(|v| {
                have.iter()
                    .any(|h| Some(h.as_str()) == v.as_str() || h == &v.to_string())
            }))
        }
        Some("reference") => {
            let ids = cond["object_ids"]
                .as_array()
                .ok_or_else(|| bad("reference needs object_ids"))?;
            Ok(ids.iter().any(|id| id == value))
        }
        Some("number_range") => {
            let Some(n) = value.as_f64() else {
                return Ok(false);
            };
            let ok =
                |key: &str, f: fn(f64, f64) -> bool| cond[key].as_f64().is_none_or(|b| f(n, b));
            Ok(ok("gt", |a, b| a > b)
                && ok("gte", |a, b| a >= b)
                && ok("lt", |a, b| a < b)
                && ok("lte", |a, b| a <= b))
        }
        Some("moment_range") => {
            let Some(t) = value.as_str().and_then(parse_time) else {
                return Ok(false);
            };
            let mut ok = true;
            for key in ["gt", "gte", "lt", "lte", "on_or_after", "before"] {
                if let Some(b) = moment(&cond[key])? {
                    ok &= match key {
                        "gt" => t > b,
                        "gte" | "on_or_after" => t >= b,
                        "lt" | "before" => t < b,
                        _ => t <= b,
                    };
                }
            }
            Ok(ok)
        }
        other => Err(bad(format!("unknown condition type {other:?}"))),
    }
}

/// A row with the derived fields a query may test (status labels and types). A lead is not
/// rendered whole: nesting its children would make every search quadratic.
fn view(data: &Data, table: &str, row: &Value) -> Value {
    if table != "lead" {
        return render(data, table, row.clone());
    }
    let mut v = row.clone();
    if let Some(s) = row["status_id"]
        .as_str()
        .and_then(|s| data.get("status_lead", s))
    {
        v["status_label"] = s["label"].clone();
    }
    v["display_name"] = row["name"].clone();
    v
}

/// Whether `row` (of `object_type`) satisfies `query`.
fn eval(data: &Data, object_type: &str, row: &Value, query: &Value) -> Result<bool, ApiError> {
    let result = match query["type"].as_str() {
        Some("and") => {
            let mut all = true;
            for q in query["queries"]
                .as_array()
                .ok_or_else(|| bad("and needs queries"))?
            {
                all &= eval(data, object_type, row, q)?;
            }
            all
        }
        Some("or") => {
            let mut any = false;
            for q in query["queries"]
                .as_array()
                .ok_or_else(|| bad("or needs queries"))?
            {
                any |= eval(data, object_type, row, q)?;
            }
            any
        }
        Some("object_type") => query["object_type"] == object_type,
        Some("field_condition") => {
            let field = &query["field"];
            if let Some(ot) = field["object_type"].as_str()
                && ot != object_type
            {
                return Err(bad(format!(
                    "field {} belongs to {ot}, not {object_type}",
                    field["field_name"]
                )));
            }
            condition(field_value(row, field)?, &query["condition"])?
        }
        Some("has_related") => {
            let related = query["related_object_type"]
                .as_str()
                .ok_or_else(|| bad("has_related needs related_object_type"))?;
            let table = SEARCHABLE
                .iter()
                .find(|(t, _)| *t == related)
                .map(|(_, t)| *t)
                .ok_or_else(|| bad(format!("cannot relate to {related}")))?;
            let (key, id) = if object_type == "lead" {
                ("lead_id", row["id"].clone())
            } else {
                ("id", row["lead_id"].clone())
            };
            let mut found = false;
            let rows: Box<dyn Iterator<Item = &Value>> = if key == "lead_id" {
                Box::new(data.children(table, id.as_str().unwrap_or_default()))
            } else {
                Box::new(data.get(table, id.as_str().unwrap_or_default()).into_iter())
            };
            for r in rows {
                if eval(
                    data,
                    related,
                    &view(data, table, r),
                    &query["related_query"],
                )? {
                    found = true;
                    break;
                }
            }
            found
        }
        Some("match_all") => true,
        other => return Err(bad(format!("unknown query node type {other:?}"))),
    };
    Ok(result != query["negate"].as_bool().unwrap_or(false))
}

/// Where the walk resumes.
#[derive(Debug, Clone, PartialEq)]
enum Resume {
    /// After this insertion sequence number.
    Seq(u64),
    /// After this place in a time index.
    Time(i64, String),
    /// After this many sorted matches.
    Offset(usize),
}

/// A cursor: how many results were returned so far, and where to resume.
fn encode(returned: usize, at: &Resume) -> String {
    match at {
        Resume::Seq(s) => format!("sbx2.{returned}.s.{s}"),
        Resume::Time(t, id) => format!("sbx2.{returned}.t.{t}.{id}"),
        Resume::Offset(o) => format!("sbx2.{returned}.o.{o}"),
    }
}

fn decode(cursor: &str) -> Option<(usize, Resume)> {
    let mut parts = cursor.strip_prefix("sbx2.")?.splitn(3, '.');
    let returned = parts.next()?.parse().ok()?;
    let kind = parts.next()?;
    let rest = parts.next()?;
    let at = match kind {
        "s" => Resume::Seq(rest.parse().ok()?),
        "o" => Resume::Offset(rest.parse().ok()?),
        "t" => {
            let (t, id) = rest.split_once('.')?;
            Resume::Time(t.parse().ok()?, id.to_string())
        }
        _ => return None,
    };
    Some((returned, at))
}

/// The sort of a search: one time field the indexes cover, or anything else.
enum Order {
    Insertion,
    Time(TimeField, bool),
    Fields(Vec<(String, bool)>),
}

fn order(body: &Value) -> Order {
    let sorts: Vec<(String, bool)> = body["sort"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let field = s["field"]["field_name"].as_str().unwrap_or("date_created");
            (field.to_string(), s["direction"] == "desc")
        })
        .collect();
    match sorts.as_slice() {
        [] => Order::Insertion,
        [(f, desc)] if f == "date_created" => Order::Time(TimeField::Created, *desc),
        [(f, desc)] if f == "date_updated" => Order::Time(TimeField::Updated, *desc),
        _ => Order::Fields(sorts),
    }
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
    let (returned, resume) = match &body["cursor"] {
        Value::Null => (0, None),
        Value::String(c) => {
            let (n, at) =
                decode(c).ok_or_else(|| ApiError::field("cursor", "Invalid or expired cursor."))?;
            (n, Some(at))
        }
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
    match order(body) {
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
                Some(Resume::Time(t, id)) => Bound::Excluded((t, id)),
                None => Bound::Unbounded,
                Some(_) => return Err(ApiError::field("cursor", "Invalid or expired cursor.")),
            };
            let (lower, upper) = if desc {
                (Bound::Unbounded, from)
            } else {
                (from, Bound::Unbounded)
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
                .map(|(i, r)| (r, Resume::Offset(i + 1)))
                .collect();
        }
    }
    if let Some(e) = error {
        return Err(e);
    }
    let more = page.len() > want;
    page.truncate(want);
    let next = match page.last() {
        Some((_, at)) if more => Some(encode(returned + page.len(), at)),
        _ => None,
    };
    let fields: Option<Vec<&str>> = body["_fields"][object_type.as_str()]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for at in [
            Resume::Seq(7),
            Resume::Offset(3),
            Resume::Time(-5, "lead_a.b".into()),
        ] {
            assert_eq!(decode(&encode(12, &at)), Some((12, at)));
        }
        assert_eq!(decode("sbx2.1.x.1"), None);
        assert_eq!(decode("nonsense"), None);
    }
}
