//! List parameters shared by every collection: `_limit` (a 400 above the maximum), `_skip` (with the
//! per-resource ceiling), `_fields`, field filters and `_order_by`.

use serde_json::{Map, Value};

use super::api_error::ApiError;
use super::data::parse_time;

/// Query parameters as sent, in order.
pub(crate) type Params = [(String, String)];

/// The first value of `key`.
pub(crate) fn param<'a>(params: &'a Params, key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The page size when `_limit` is not given.
const DEFAULT_LIMIT: usize = 100;

/// The page a list request asks for, after checking `_limit` and `_skip` against their maxima.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page {
    pub limit: usize,
    pub skip: usize,
}

/// Reads `_limit` and `_skip`. "There is a maximum limit that can vary per resource. You
/// will get a 400 response with an appropriate message if you exceed it"
/// (developer.close.com/api/overview/pagination); the wording is flask-mongorest's
/// `get_skip_and_limit`. `_limit=0` returns no items, only the totals (Close's own
/// close-api-scripts `find_duplicate_leads.py` reads `total_results` that way). A `_skip`
/// above `max_skip` is refused with Close's message (airbyte issue 20959).
pub(crate) fn page(params: &Params, max_limit: usize, max_skip: usize) -> Result<Page, ApiError> {
    let limit = match param(params, "_limit") {
        Some(l) => l.parse::<usize>().map_err(|_| {
            ApiError::Paging(format!("_limit must be an integer (got \"{l}\" instead)."))
        })?,
        // Lists default to 100 (close-openapi.yml `GET /lead/`).
        None => DEFAULT_LIMIT.min(max_limit),
    };
    if limit > max_limit {
        return Err(ApiError::Paging(format!(
            "The limit you set is larger than the maximum limit for this resource (max_limit = {max_limit})."
        )));
    }
    let skip = match param(params, "_skip") {
        Some(s) => s.parse::<usize>().map_err(|_| {
            ApiError::Paging(format!(
                "_skip must be a non-negative integer (got \"{s}\" instead)."
            ))
        })?,
        None => 0,
    };
    if skip > max_skip {
        return Err(ApiError::Paging(format!(
            "The skip you set is larger than the maximum skip for this resource (max_skip = {max_skip}). Please refine your search query."
        )));
    }
    Ok(Page { limit, skip })
}

/// Compares a stored value with a filter value: numbers as numbers, times as times,
/// everything else as text.
pub(crate) fn compare(stored: &Value, wanted: &str) -> Option<std::cmp::Ordering> {
    match stored {
        Value::Number(n) => n.as_f64()?.partial_cmp(&wanted.parse::<f64>().ok()?),
        Value::String(s) => match (parse_time(s), parse_time(wanted)) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => Some(s.as_str().cmp(wanted)),
        },
        Value::Bool(b) => Some(b.to_string().as_str().cmp(wanted)),
        _ => None,
    }
}

/// Whether `row` passes the filter `key=wanted` (`field`, `field__in`, `field__gte`…).
pub(crate) fn matches_filter(row: &Value, key: &str, wanted: &str) -> bool {
    use std::cmp::Ordering::*;
    let (field, op) = match key.rsplit_once("__") {
        Some((f, op)) if ["gte", "gt", "lte", "lt", "in"].contains(&op) => (f, op),
        _ => (key, "eq"),
    };
    let stored = &row[field];
    match op {
        "in" => wanted.split(',').any(|w| compare(stored, w) == Some(Equal)),
        "eq" => compare(stored, wanted) == Some(Equal),
        "gte" => matches!(compare(stored, wanted), Some(Greater | Equal)),
        "gt" => compare(stored, wanted) == Some(Greater),
        "lte" => matches!(compare(stored, wanted), Some(Less | Equal)),
        "lt" => compare(stored, wanted) == Some(Less),
        _ => false,
    }
}

/// Orders two rows by `field`: times as times, numbers as numbers, nulls first.
pub(crate) fn order_by(a: &Value, b: &Value, field: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (&a[field], &b[field]) {
        (Value::String(x), Value::String(y)) => match (parse_time(x), parse_time(y)) {
            (Some(p), Some(q)) => p.cmp(&q),
            _ => x.cmp(y),
        },
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

/// Orders rows by a field (`-field` for descending); ties keep their order.
pub(crate) fn sort_rows(rows: &mut [&Value], order: &str) {
    let (field, desc) = match order.strip_prefix('-') {
        Some(f) => (f, true),
        None => (order, false),
    };
    rows.sort_by(|a, b| {
        let o = order_by(a, b, field);
        if desc { o.reverse() } else { o }
    });
}

/// Keeps only the requested fields of a GET answer (`_fields=id,name`): `custom` keeps
/// every custom field and `_all` keeps everything (developer.close.com/topics/fields).
pub(crate) fn select_fields(obj: Value, fields: Option<&str>) -> Value {
    let (Some(fields), Value::Object(map)) = (fields, &obj) else {
        return obj;
    };
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    if wanted.contains(&"_all") {
        return obj;
    }
    Value::Object(keep(map, &wanted, true))
}

/// The named fields of `map`; with `custom_group`, `custom` stands for every custom field.
pub(crate) fn keep(
    map: &Map<String, Value>,
    wanted: &[&str],
    custom_group: bool,
) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| {
            wanted.contains(&k.as_str())
                || (custom_group && wanted.contains(&"custom") && k.starts_with("custom."))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn limit_and_skip_have_ceilings() {
        let got = page(&p(&[("_limit", "200"), ("_skip", "5")]), 200, 10).unwrap();
        assert_eq!((got.limit, got.skip), (200, 5));
        let err = page(&p(&[("_limit", "201")]), 200, 10).unwrap_err();
        assert_eq!(
            err.body()["error"],
            "The limit you set is larger than the maximum limit for this resource (max_limit = 200)."
        );
        assert_eq!(page(&p(&[("_limit", "0")]), 200, 10).unwrap().limit, 0);
        let err = page(&p(&[("_skip", "11")]), 200, 10).unwrap_err();
        assert_eq!(
            err.body()["error"],
            "The skip you set is larger than the maximum skip for this resource (max_skip = 10). Please refine your search query."
        );
        assert!(page(&p(&[("_limit", "x")]), 200, 10).is_err());
        assert_eq!(page(&p(&[]), 200, 10).unwrap().limit, 100);
    }
}
