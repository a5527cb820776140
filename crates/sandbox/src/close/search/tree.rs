//! The Advanced Filtering query tree and its evaluation against one row: `and`, `or`,
//! `object_type`, `field_condition`, `has_related`, `negate`, and the `text`, `term`,
//! `reference`, `number_range`, `moment_range` and `exists` conditions
//! (developer.close.com/api/resources/advanced-filtering).

use serde_json::{Value, json};

use super::super::api_error::ApiError;
use super::super::data::{Data, micros_up, parse_time};
use super::super::render::render;

/// Object types `/data/search/` can return, and the tables they live in.
pub(super) const SEARCHABLE: &[(&str, &str)] = &[
    ("lead", "lead"),
    ("contact", "contact"),
    ("opportunity", "opportunity"),
    ("task", "task"),
    ("activity", "activity"),
];

pub(super) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::Errors(vec![msg.into()])
}

pub(super) fn object_types(query: &Value, out: &mut Vec<String>) {
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

/// A moment of a `moment_range`: `{"type":"fixed_utc","value":…}` (what the Close app's
/// "Copy Filters" emits) or `{"type":"fixed_local_date","value":"YYYY-MM-DD","which":…}`
/// (developer.close.com/api/resources/advanced-filtering). Bare strings are not moments.
fn moment(v: &Value) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    let kind = v.get("type").and_then(Value::as_str);
    let value = v.get("value").and_then(Value::as_str).unwrap_or_default();
    match (v, kind) {
        (Value::Null, _) => Ok(None),
        (_, Some("fixed_utc")) => parse_time(value)
            .map(Some)
            .ok_or_else(|| bad(format!("not a valid moment: {value}"))),
        (_, Some("fixed_local_date")) => {
            let start =
                parse_time(value).ok_or_else(|| bad(format!("not a valid date: {value}")))?;
            let end = v.get("which").and_then(Value::as_str) == Some("end");
            Ok(Some(if end {
                start + chrono::Duration::days(1)
            } else {
                start
            }))
        }
        (other, _) => Err(bad(format!("not a valid moment: {other}"))),
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
                // The whole value, ignoring case (used on emails by third-party clients,
                // e.g. CloseApiWrapper; the case rule is the sandbox's choice).
                "exact_value" => hay
                    .iter()
                    .any(|h| h.to_lowercase() == wanted.to_lowercase()),
                "phrase" => {
                    let w = wanted.to_lowercase();
                    hay.iter().any(|h| h.to_lowercase().contains(&w))
                }
                "beginning_of_words" => {
                    let w = wanted.to_lowercase();
                    hay.iter()
                        .any(|h| words(h).iter().any(|x| x.starts_with(&w)))
                }
                "full_words" => {
                    let need = words(wanted);
                    hay.iter().any(|h| {
                        let have = words(h);
                        need.iter().all(|n| have.contains(n))
                    })
                }
                other => return Err(bad(format!("unknown text mode {other:?}"))),
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
            // Only `on_or_after` and `before` bound a moment range; `gte`/`lt` style keys
            // appear in no Close-issued query and are refused rather than ignored.
            if ["gt", "gte", "lt", "lte"]
                .iter()
                .any(|k| cond.get(*k).is_some())
            {
                return Err(bad("a moment_range takes on_or_after and before"));
            }
            let mut ok = true;
            if let Some(b) = moment(&cond["on_or_after"])? {
                ok &= t >= b;
            }
            if let Some(b) = moment(&cond["before"])? {
                ok &= t < b;
            }
            Ok(ok)
        }
        other => Err(bad(format!("unknown condition type {other:?}"))),
    }
}

/// The `[on_or_after, before)` range a query's top-level `and` puts on the regular field
/// `field_name`, in microseconds, so a search sorted on that time field can start its
/// index scan at the range instead of the beginning. Ranges under `or` or `negate` are not
/// used (the whole tree is still evaluated on every row it visits, so this only narrows).
/// `on_or_after` is rounded down and `before` up, so the range never loses a matching row.
pub(super) fn index_range(
    query: &Value,
    field_name: &str,
) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let mut range = (None::<i64>, None::<i64>);
    let parts: Vec<&Value> = match query["type"].as_str() {
        Some("and") if query["negate"] != true => {
            query["queries"].as_array().into_iter().flatten().collect()
        }
        _ => vec![query],
    };
    for q in parts {
        let cond = &q["condition"];
        if q["type"] != "field_condition"
            || q["negate"] == true
            || q["field"]["type"] != "regular_field"
            || q["field"]["field_name"] != field_name
            || cond["type"] != "moment_range"
        {
            continue;
        }
        if let Some(t) = moment(&cond["on_or_after"])? {
            let t = t.timestamp_micros();
            range.0 = Some(range.0.map_or(t, |r| r.max(t)));
        }
        if let Some(t) = moment(&cond["before"])? {
            let t = micros_up(t);
            range.1 = Some(range.1.map_or(t, |r| r.min(t)));
        }
    }
    Ok(range)
}

/// A row with the derived fields a query may test (status labels and types). A lead is not
/// rendered whole: nesting its children would make every search quadratic.
pub(super) fn view(data: &Data, table: &str, row: &Value) -> Value {
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
pub(super) fn eval(
    data: &Data,
    object_type: &str,
    row: &Value,
    query: &Value,
) -> Result<bool, ApiError> {
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
            let own_id = row["id"].as_str().unwrap_or_default();
            let lead_id = row["lead_id"].as_str().unwrap_or_default();
            // A lead relates to everything under it; anything else to its lead, and to the
            // objects of the same lead that point at it (`contact_id` of an activity) or
            // that it points at (an opportunity's `contact_id`). Found through the lead's
            // children index, so a relation never scans a table.
            let rows: Box<dyn Iterator<Item = &Value>> = match (object_type, related) {
                ("lead", _) => Box::new(data.children(table, own_id)),
                (_, "lead") => Box::new(data.get(table, lead_id).into_iter()),
                _ => {
                    let back = format!("{object_type}_id");
                    let forth = format!("{related}_id");
                    Box::new(data.children(table, lead_id).filter(move |r| {
                        r[back.as_str()] == own_id || row[forth.as_str()] == r["id"]
                    }))
                }
            };
            let mut found = false;
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
