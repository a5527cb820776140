//! `POST /crm/v3/objects/{type}/search`: filter groups OR-ed, filters AND-ed, one sort,
//! `limit` ≤ 200, numeric `after` offsets, and the 10,000-result cap
//! (developers.hubspot.com/docs/api/crm/search). Rows are walked along the time index the
//! sort names (creation, modification) so a page stops as soon as it is full.

use std::cmp::Ordering;
use std::ops::Bound;

use serde_json::{Value, json};

use super::api_error::ApiError;
use super::data::Data;
use super::kinds::{ObjectType, PropKind};
use super::objects::{Shape, render};
use crate::shared::store::TimeField;
use crate::shared::time::parse_time;

/// Filter groups per request (search guide: "up to five filterGroups").
pub(crate) const MAX_GROUPS: usize = 5;
/// Filters per group (search guide: "up to six filters" per group).
pub(crate) const MAX_FILTERS_PER_GROUP: usize = 6;
/// Filters in all groups together (search guide: "a maximum of 18 filters").
pub(crate) const MAX_FILTERS: usize = 18;
/// Page size maximum (search guide: "maximum of 200 objects per page").
pub(crate) const MAX_LIMIT: usize = 200;
/// Results reachable by paging (search guide: "a maximum of 10,000 total results").
pub(crate) const MAX_RESULTS: usize = 10_000;

/// Characters in one search request body (search guide: "max 3,000 characters").
pub(crate) const MAX_BODY: usize = 3_000;

/// A value on a comparable scale.
#[derive(Debug, PartialEq, PartialOrd)]
enum Scalar {
    Num(f64),
    Text(String),
}

fn scalar(kind: PropKind, raw: &str) -> Scalar {
    match kind {
        PropKind::Number => raw
            .parse::<f64>()
            .map(Scalar::Num)
            .unwrap_or_else(|_| Scalar::Text(raw.to_lowercase())),
        PropKind::Date => raw
            .parse::<f64>()
            .ok()
            .or_else(|| parse_time(raw).map(|t| t.timestamp_millis() as f64))
            .map(Scalar::Num)
            .unwrap_or_else(|| Scalar::Text(raw.to_lowercase())),
        // Enumeration values are case-sensitive; other text is not (search guide).
        PropKind::Enum => Scalar::Text(raw.to_string()),
        PropKind::Text => Scalar::Text(raw.to_lowercase()),
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether `pattern` (with `*` wildcards) matches `s`.
fn wildcard(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(at) = rest.find(part) {
            rest = &rest[at + part.len()..];
        } else {
            return false;
        }
    }
    rest.is_empty()
}

fn contains_token(stored: &str, value: &str) -> bool {
    let stored = stored.to_lowercase();
    let value = value.to_lowercase();
    if value.contains('*') {
        return wildcard(&value, &stored);
    }
    stored == value
        || stored
            .split(|c: char| !c.is_alphanumeric())
            .any(|tok| tok == value)
}

/// One checked filter.
struct Filter {
    name: String,
    kind: PropKind,
    op: String,
    value: Option<String>,
    high: Option<String>,
    values: Vec<String>,
    /// For the pseudo-property `associations.{type}`: ids of the records associated with
    /// the record named in `value`.
    linked: Option<Vec<String>>,
}

impl Filter {
    fn parse(data: &Data, t: &ObjectType, f: &Value) -> Result<Filter, ApiError> {
        let name = f["propertyName"].as_str().unwrap_or_default().to_string();
        // Pseudo-property `associations.{type}` with EQ (search guide, "Search through associations").
        if let Some(other) = name.strip_prefix("associations.") {
            let other = ObjectType::parse(other).ok_or_else(|| {
                ApiError::invalid(format!("Unable to infer object type from: {other}"))
            })?;
            let value = text_of(&f["value"]).unwrap_or_default();
            let linked = data
                .associations(other, &value, t)
                .iter()
                .map(|a| a.to_id.clone())
                .collect();
            return Ok(Filter {
                name,
                kind: PropKind::Enum,
                op: "EQ".into(),
                value: Some(value),
                high: None,
                values: vec![],
                linked: Some(linked),
            });
        }
        let kind = data.kind(t, &name).ok_or_else(|| {
            ApiError::invalid(format!(
                "There was a problem with the request: property {name} does not exist"
            ))
        })?;
        let op = f["operator"].as_str().unwrap_or("EQ").to_string();
        const OPS: &[&str] = &[
            "EQ",
            "NEQ",
            "LT",
            "LTE",
            "GT",
            "GTE",
            "BETWEEN",
            "IN",
            "NOT_IN",
            "HAS_PROPERTY",
            "NOT_HAS_PROPERTY",
            "CONTAINS_TOKEN",
            "NOT_CONTAINS_TOKEN",
        ];
        if !OPS.contains(&op.as_str()) {
            return Err(ApiError::invalid(format!("Unknown filter operator {op}")));
        }
        let values: Vec<String> = f["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(text_of)
            .collect();
        let value = text_of(&f["value"]);
        let needs_value = !matches!(
            op.as_str(),
            "HAS_PROPERTY" | "NOT_HAS_PROPERTY" | "IN" | "NOT_IN"
        );
        if needs_value && value.is_none() {
            return Err(ApiError::invalid(format!(
                "Filter on {name} with {op} needs a value"
            )));
        }
        Ok(Filter {
            name,
            kind,
            op,
            value,
            high: text_of(&f["highValue"]),
            values,
            linked: None,
        })
    }

    fn matches(&self, row: &Value) -> bool {
        if let Some(linked) = &self.linked {
            return row["id"]
                .as_str()
                .is_some_and(|id| linked.iter().any(|l| l == id));
        }
        let stored = row["properties"][&self.name].as_str();
        let cmp = |v: &str| -> Option<Ordering> {
            stored.and_then(|s| scalar(self.kind, s).partial_cmp(&scalar(self.kind, v)))
        };
        let v = self.value.as_deref().unwrap_or_default();
        match self.op.as_str() {
            "HAS_PROPERTY" => stored.is_some(),
            "NOT_HAS_PROPERTY" => stored.is_none(),
            "EQ" => cmp(v) == Some(Ordering::Equal),
            "NEQ" => cmp(v) != Some(Ordering::Equal),
            "LT" => cmp(v) == Some(Ordering::Less),
            "LTE" => matches!(cmp(v), Some(Ordering::Less | Ordering::Equal)),
            "GT" => cmp(v) == Some(Ordering::Greater),
            "GTE" => matches!(cmp(v), Some(Ordering::Greater | Ordering::Equal)),
            "BETWEEN" => {
                let high = self.high.as_deref().unwrap_or_default();
                matches!(cmp(v), Some(Ordering::Greater | Ordering::Equal))
                    && matches!(cmp(high), Some(Ordering::Less | Ordering::Equal))
            }
            "IN" => self.values.iter().any(|x| cmp(x) == Some(Ordering::Equal)),
            "NOT_IN" => !self.values.iter().any(|x| cmp(x) == Some(Ordering::Equal)),
            "CONTAINS_TOKEN" => stored.is_some_and(|s| contains_token(s, v)),
            _ => !stored.is_some_and(|s| contains_token(s, v)),
        }
    }
}

fn parse_groups(data: &Data, t: &ObjectType, body: &Value) -> Result<Vec<Vec<Filter>>, ApiError> {
    let groups = body["filterGroups"].as_array().cloned().unwrap_or_default();
    let total: usize = groups
        .iter()
        .map(|g| g["filters"].as_array().map_or(0, Vec::len))
        .sum();
    let widest = groups
        .iter()
        .map(|g| g["filters"].as_array().map_or(0, Vec::len))
        .max()
        .unwrap_or(0);
    if groups.len() > MAX_GROUPS || widest > MAX_FILTERS_PER_GROUP || total > MAX_FILTERS {
        return Err(ApiError::invalid(format!(
            "Too many filters or filter groups: at most {MAX_GROUPS} filterGroups, {MAX_FILTERS_PER_GROUP} filters per group and {MAX_FILTERS} filters in total"
        )));
    }
    groups
        .iter()
        .map(|g| {
            g["filters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| Filter::parse(data, t, f))
                .collect()
        })
        .collect()
}

/// The one sort: `{propertyName, direction}` as the docs write it, or a bare name (the
/// spec's `string[]`), read as ascending unless prefixed with `-` (sandbox's reading).
fn parse_sort(
    data: &Data,
    t: &ObjectType,
    body: &Value,
) -> Result<Option<(String, bool)>, ApiError> {
    let sorts = body["sorts"].as_array().cloned().unwrap_or_default();
    if sorts.len() > 1 {
        // Search guide: "only one sorting rule can be applied to any search".
        return Err(ApiError::invalid("Only one sort is allowed"));
    }
    let Some(s) = sorts.first() else {
        return Ok(None);
    };
    let (name, desc) = match s {
        Value::String(n) => match n.strip_prefix('-') {
            Some(n) => (n.to_string(), true),
            None => (n.clone(), false),
        },
        _ => (
            s["propertyName"].as_str().unwrap_or_default().to_string(),
            s["direction"].as_str() == Some("DESCENDING"),
        ),
    };
    if data.kind(t, &name).is_none() {
        return Err(ApiError::invalid(format!(
            "Cannot sort on unknown property {name}"
        )));
    }
    Ok(Some((name, desc)))
}

fn offset(v: &Value, name: &str, default: usize) -> Result<usize, ApiError> {
    match v {
        Value::Null => Ok(default),
        Value::Number(n) => n
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| ApiError::invalid(format!("{name} must be a non-negative integer"))),
        Value::String(s) if s.is_empty() => Ok(default),
        Value::String(s) => s
            .parse()
            .map_err(|_| ApiError::invalid(format!("{name} must be an integer string, got {s}"))),
        _ => Err(ApiError::invalid(format!("{name} must be an integer"))),
    }
}

/// Runs one search.
pub(crate) fn run(data: &Data, t: &ObjectType, body: &Value) -> Result<Value, ApiError> {
    if body.to_string().len() > MAX_BODY {
        return Err(ApiError::invalid(format!(
            "The search request body is limited to {MAX_BODY} characters"
        )));
    }
    let groups = parse_groups(data, t, body)?;
    let sort = parse_sort(data, t, body)?;
    let limit = offset(&body["limit"], "limit", 10)?;
    if limit > MAX_LIMIT {
        return Err(ApiError::invalid(format!(
            "limit must be at most {MAX_LIMIT}"
        )));
    }
    let after = offset(&body["after"], "after", 0)?;
    if after >= MAX_RESULTS {
        // Search guide: paging past 10,000 results "will result in a 400 error".
        return Err(ApiError::invalid(format!(
            "There was a problem with the request: you can only page through the first {MAX_RESULTS} results"
        )));
    }
    let query = body["query"]
        .as_str()
        .map(str::to_lowercase)
        .filter(|q| !q.is_empty());
    let Some(tb) = data.table(t) else {
        return Ok(json!({"total": 0, "results": []}));
    };
    let keep = |row: &Value| -> bool {
        row["archived"] == json!(false)
            && (groups.is_empty() || groups.iter().any(|g| g.iter().all(|f| f.matches(row))))
            && query.as_deref().is_none_or(|q| {
                t.searchable.iter().any(|p| {
                    row["properties"][*p]
                        .as_str()
                        .is_some_and(|s| s.to_lowercase().contains(q))
                })
            })
    };
    let (field, desc) = match &sort {
        None => (Some(TimeField::Created), false),
        Some((n, d)) if n == t.created || n == "hs_createdate" => (Some(TimeField::Created), *d),
        Some((n, d)) if n == t.modified => (Some(TimeField::Updated), *d),
        Some((_, d)) => (None, *d),
    };
    let matched: Vec<&Value> = match field {
        Some(f) => tb
            .by_time(f, Bound::Unbounded, Bound::Unbounded, desc)
            .map(|(_, v)| v)
            .filter(|r| keep(r))
            .collect(),
        None => {
            let (name, _) = sort.clone().unwrap_or_default();
            let kind = data.kind(t, &name).unwrap_or(PropKind::Text);
            let mut rows: Vec<&Value> = tb.iter().filter(|r| keep(r)).collect();
            rows.sort_by(|a, b| {
                let get = |r: &Value| r["properties"][&name].as_str().map(|s| scalar(kind, s));
                let o = get(a).partial_cmp(&get(b)).unwrap_or(Ordering::Equal);
                if desc { o.reverse() } else { o }
            });
            rows
        }
    };
    let total = matched.len();
    let shape = Shape::from_body(body);
    let end = (after + limit).min(total).min(MAX_RESULTS);
    let results: Vec<Value> = matched
        .get(after.min(end)..end)
        .unwrap_or_default()
        .iter()
        .map(|r| render(data, t, r, &shape))
        .collect();
    let mut out = json!({"total": total, "results": results});
    if end < total.min(MAX_RESULTS) {
        out["paging"] = json!({"next": {"after": end.to_string()}});
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_wildcards() {
        assert!(contains_token("ann@hubspot.com", "*@hubspot.com"));
        assert!(contains_token("Ann Lee", "lee"));
        assert!(!contains_token("Annlee", "lee"));
        assert!(wildcard("a*c", "abbc") && !wildcard("a*c", "abbd"));
    }
}
